"""A derivation a learner can follow: the computational graph, step by step.

As the seed derives the sigmoid layer, the forward expression is split into
primitive nodes with names (a = -x, b = exp(a), c = b + 1, y = 1/c); each node
gets its local derivative, written in its own output where that is simpler (for
y = 1/c, dy/dc = -1/c^2 = -y^2); the backward pass carries dL/dy back node by
node; and the product is simplified, step by step, to the final form (the
output form y(1 - y) where one exists).

Every step is checked before it is kept: the two sides are proven equal by SymPy
or, failing that, agree to 1e-12 at 20 points where the step applies.  A step
that cannot be checked raises `DerivationError`; nothing unverified is returned.
Piecewise activations are derived by cases, one graph per branch.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace

import sympy
from sympy.logic.boolalg import to_nnf

from .budgets import for_activation, stage
from .derivation import differentiate
from .errors import FormulaError
from .layer import shared_part
from .model import Derivation, X, Y
from .output_form import exclusive_branches, find_output_form
from .plan import kink_values
from .sharing import Shared
from .verify import evaluate, holds, sample_points

#: dL/dy, the gradient arriving from the layer above.
DOUT = sympy.Symbol(r"\frac{\partial L}{\partial y}", real=True)
_NAMES = [c for c in string.ascii_lowercase if c not in "eilosxyz"]


class StepError(FormulaError):
    """A step of the explanation could not be verified."""


@dataclass(frozen=True)
class Node:
    """One primitive operation: ``name = expr``, with ``expr`` in its inputs."""

    name: sympy.Symbol
    expr: sympy.Expr
    inputs: tuple[sympy.Symbol, ...]
    operation: str
    value: sympy.Expr  # the node's value as a function of x


@dataclass(frozen=True)
class LocalDerivative:
    """d node / d input, in the input and, where simpler, in the node's output."""

    node: sympy.Symbol
    wrt: sympy.Symbol
    in_inputs: sympy.Expr
    in_output: sympy.Expr | None

    @property
    def used(self) -> sympy.Expr:
        return self.in_output if self.in_output is not None else self.in_inputs


@dataclass(frozen=True)
class BackwardStep:
    """dL/d target = sum of dL/d node * (d node/d target) over the nodes it feeds."""

    target: sympy.Symbol
    terms: tuple[tuple[sympy.Symbol, sympy.Expr], ...]


@dataclass(frozen=True)
class Simplification:
    """One line of the chain from the backward product to the final form."""

    expr: sympy.Expr
    reason: str


@dataclass(frozen=True)
class BranchSteps:
    """The graph derivation of one branch (the whole function if not piecewise)."""

    condition: sympy.Basic
    forward: sympy.Expr
    derivative: sympy.Expr
    nodes: tuple[Node, ...]
    local: tuple[LocalDerivative, ...]
    backward: tuple[BackwardStep, ...]
    chain: tuple[Simplification, ...]

    @property
    def trivial(self) -> bool:
        """No operation on x (y = x or a constant): nothing to draw."""
        return not self.nodes


@dataclass(frozen=True)
class Steps:
    """The whole explanation of one derivation."""

    derivation: Derivation
    branches: tuple[BranchSteps, ...]
    kinks: tuple[tuple[sympy.Expr, sympy.Expr], ...]
    output_form: sympy.Expr | None
    #: The part forward caches for backward besides x (`symgrad.layer.shared_part`).
    shared: Shared | None = None

    @property
    def piecewise(self) -> bool:
        return isinstance(self.derivation.forward, sympy.Piecewise)


def explain(derivation: Derivation) -> Steps:
    """Decompose, differentiate node by node, and verify every step; outside the
    catalog, within the budget (`symgrad.budgets`)."""
    return for_activation(derivation.activation, _explain, derivation)


def _explain(derivation: Derivation) -> Steps:
    act = derivation.activation
    values = act.values
    branches = tuple(
        _branch(f, derivation.derivative, to_nnf(condition, simplify=False), values)
        for f, condition in exclusive_branches(derivation.forward)
    )
    form = derivation.output_form
    if (
        form is not None
        and len(branches) == 1
        and not isinstance(form, sympy.Piecewise)
    ):
        branch = branches[0]
        last = Simplification(form, "in the output y")
        _check(form.xreplace({Y: branch.forward}), derivation.derivative, values,
               sympy.true, last)  # fmt: skip
        branches = (replace(branch, chain=(*branch.chain, last)),)
    if form is not None:
        for f, condition in exclusive_branches(derivation.forward):
            in_x = _PointwiseForm(form, f)
            _check(in_x, derivation.derivative, values, condition, "the output form")
    kinks = tuple(kink_values(derivation.derivative, values))
    with stage("finding what forward caches"):
        shared = shared_part(derivation)
    return Steps(derivation, branches, kinks, form, shared)


# -- the graph ---------------------------------------------------------------------


def _branch(forward, whole_derivative, condition, values) -> BranchSteps:
    """One branch's graph; its chain ends at the branch's derivative, checked
    against the whole derivative where the branch holds."""
    derivative = differentiate(forward, values)
    _check(derivative, whole_derivative, values, condition, "the branch derivative")
    builder = _GraphBuilder(reserved={str(s) for s in forward.free_symbols})
    top = builder.node_for(forward)
    nodes = builder.nodes
    if nodes and top == nodes[-1].name:
        last = nodes[-1]
        y_node = Node(Y, last.expr, last.inputs, last.operation, last.value)
        nodes = [*nodes[:-1], y_node]
        renamed = {last.name: Y}
        nodes = [
            Node(n.name, n.expr.xreplace(renamed), n.inputs, n.operation, n.value)
            for n in nodes
        ]
    local = tuple(d for n in nodes for d in _local_derivative(n, values))
    backward = _backward(nodes, local)
    chain = _chain(nodes, backward, derivative, values, condition)
    return BranchSteps(
        condition, forward, derivative, tuple(nodes), local, backward, chain
    )


class _GraphBuilder:
    """Post-order decomposition into primitive nodes; equal parts share a node."""

    def __init__(self, reserved: set[str]) -> None:
        self.nodes: list[Node] = []
        self.seen: dict[sympy.Expr, sympy.Symbol] = {}
        # Node names never clash with a parameter's (ISRLU's a).
        self.names = [n for n in _NAMES if n not in reserved]

    def node_for(self, expr: sympy.Expr) -> sympy.Expr:
        """The symbol standing for expr (x itself, or a node), or expr if constant."""
        if expr == X or not expr.has(X):
            return expr
        if expr in self.seen:
            return self.seen[expr]
        operation, local = self._split(expr)
        inputs = tuple(sorted(local.free_symbols & self._symbols(), key=str))
        name = sympy.Symbol(self._name(len(self.nodes)), real=True)
        self.nodes.append(Node(name, local, inputs, operation, expr))
        self.seen[expr] = name
        return name

    def _name(self, k: int) -> str:
        """a, b, c, ... then a_1, b_1, ... for long formulas."""
        letter, round_ = self.names[k % len(self.names)], k // len(self.names)
        return letter if round_ == 0 else f"{letter}_{round_}"

    def _symbols(self) -> set[sympy.Symbol]:
        return {X, *(n.name for n in self.nodes)}

    def _split(self, expr: sympy.Expr) -> tuple[str, sympy.Expr]:
        """(the node's label in LaTeX, expr with its varying parts as nodes)."""
        if isinstance(expr, (sympy.Add, sympy.Mul)):
            fixed = [a for a in expr.args if not a.has(X)]
            varying = [a for a in expr.args if a.has(X)]
            parts = [self.node_for(a) for a in varying]
            local = expr.func(*parts, *fixed)
            symbol = "+" if isinstance(expr, sympy.Add) else r"\times"
            if len(parts) == 1 and fixed:
                constant = expr.func(*fixed)
                if symbol == "+" and constant.could_extract_minus_sign():
                    return f"- {_latex_factor(-constant)}", local
                return f"{symbol} {_latex_factor(constant)}", local
            if fixed:
                return f"{symbol} \\; ({sympy.latex(expr.func(*fixed))})", local
            return symbol, local
        if isinstance(expr, sympy.Pow):
            base, exponent = expr.args
            if base == sympy.E:
                return r"\exp", sympy.exp(self.node_for(exponent))
            local = sympy.Pow(self.node_for(base), self.node_for(exponent))
            if exponent == -1:
                return r"1/\cdot", local
            if exponent == sympy.S.Half:
                return r"\sqrt{\cdot}", local
            return rf"(\cdot)^{{{sympy.latex(exponent)}}}", local
        if isinstance(expr, sympy.Function) and len(expr.args) == 1:
            inner = self.node_for(expr.args[0])
            return _function_label(expr), expr.func(inner)
        args = [self.node_for(a) for a in expr.args]
        return rf"\operatorname{{{type(expr).__name__}}}", expr.func(*args)


def _latex_factor(constant: sympy.Expr) -> str:
    text = sympy.latex(constant)
    return (
        f"({text})" if constant.could_extract_minus_sign() or constant.is_Add else text
    )


def _function_label(expr: sympy.Function) -> str:
    """\\exp, \\tanh, \\sigma, \\operatorname{erf}: the function's own name."""
    name = type(expr).__name__
    known = {"exp": r"\exp", "log": r"\log", "sin": r"\sin", "cos": r"\cos",
             "tan": r"\tan", "sinh": r"\sinh", "cosh": r"\cosh", "tanh": r"\tanh",
             "sigmoid": r"\sigma"}  # fmt: skip
    return known.get(name, rf"\operatorname{{{name}}}")


def _local_derivative(node: Node, values) -> list[LocalDerivative]:
    results = []
    for u in node.inputs:
        raw = sympy.simplify(sympy.diff(node.expr, u))
        results.append(
            LocalDerivative(node.name, u, raw, _in_output(node, u, raw, values))
        )
    return results


def _in_output(node: Node, u, raw, values) -> sympy.Expr | None:
    """raw (a function of u) written in the node's own output v, found by the
    same search as the layer's output form: exp(a) -> b for b = exp(a),
    -1/c**2 -> -y**2 for y = 1/c, 1/cosh(x)**2 -> 1 - y**2 for y = tanh(x)."""
    if len(node.inputs) != 1 or not raw.has(u) or not _transcendental(node.expr):
        return None
    f = node.expr.xreplace({u: X})
    g = find_output_form(f, raw.xreplace({u: X}), values)
    if g is None or isinstance(g, sympy.Piecewise):
        return None
    return g.xreplace({Y: node.name})


def _transcendental(expr) -> bool:
    """Whether a node's output form is worth finding (not for x + 1 or 2*x)."""
    return not expr.is_polynomial(*expr.free_symbols) or any(
        isinstance(p, sympy.Pow) and p.exp.is_negative
        for p in sympy.preorder_traversal(expr)
    )


def _backward(nodes, local) -> tuple[BackwardStep, ...]:
    """dL/d(each node and x), last node first: what flows back along each edge."""
    steps = []
    targets = [n.name for n in reversed(nodes[:-1])] + [X] if nodes else []
    for target in targets:
        terms = tuple((d.node, d.used) for d in local if d.wrt == target)
        steps.append(BackwardStep(target, terms))
    return tuple(steps)


def _chain(
    nodes, backward, derivative, values, condition
) -> tuple[Simplification, ...]:
    """dL/dx as the product of local derivatives, then simplified to the
    derivative symgrad found; each line checked against it."""
    if not nodes:
        return (Simplification(derivative, "no operation on x"),)
    gradient = {Y: sympy.S.One}
    for step in backward:
        gradient[step.target] = sympy.Add(
            *[gradient[node] * local for node, local in step.terms]
        )
    product = gradient[X]
    in_x = {n.name: n.value for n in nodes}
    lines = [Simplification(product, "the backward pass, multiplied out")]
    expanded = _substitute(product, in_x)
    # Nodes replaced by their values, unless that only makes a long line longer.
    if expanded != product and sympy.count_ops(expanded) <= 2 * max(
        sympy.count_ops(derivative), 8
    ):
        lines.append(Simplification(expanded, "each node replaced by its value in x"))
    if derivative not in (product, expanded):
        lines.append(Simplification(derivative, "simplified"))
    for line in lines:
        _check(_substitute(line.expr, in_x), derivative, values, condition, line)
    return tuple(lines)


def _substitute(expr, in_x):
    """Replace node names by their values in x (nodes may refer to earlier ones)."""
    for _ in range(len(in_x) + 1):
        replaced = expr.xreplace(in_x)
        if replaced == expr:
            break
        expr = replaced
    return expr


@dataclass(frozen=True)
class _PointwiseForm:
    """g(f(x)) for a piecewise g: evaluated per point, not substituted
    symbolically (its conditions are on y)."""

    form: sympy.Expr
    forward: sympy.Expr


# -- verification --------------------------------------------------------------------


def _check(lhs, rhs, values, condition, what) -> None:
    if not _same(lhs, rhs, values, condition):
        label = what.reason if isinstance(what, Simplification) else what
        raise StepError(f"could not verify the step '{label}': {lhs} = {rhs}")


def _same(lhs, rhs, values: Mapping, condition, variable=X) -> bool:
    """Symbolically equal, or equal to 1e-12 at 20 points where condition holds."""
    if not isinstance(lhs, _PointwiseForm):
        try:
            if sympy.simplify(lhs - rhs) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError):
            pass
    points = _points(condition, values)
    checked = 0
    for p in points:
        env = {X: p, **values}
        if variable is not X:
            env[variable] = p
        try:
            right = evaluate(rhs, env)
            left = _value(lhs, env)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            continue
        if right is None or left is None:
            continue
        if abs(left - right) > 1e-12 * max(1.0, abs(right)):
            return False
        checked += 1
    return checked >= 3


#: Points at which a step that SymPy cannot prove is checked numerically.
_POINTS = 20


def _points(condition, values) -> list[float]:
    """Sample points where condition holds (both sides of its boundaries), topped
    up with random ones at several scales until there are `_POINTS`."""
    points = sample_points(condition, values, count=_POINTS)
    rng = random.Random(1)
    condition = condition.subs(values) if condition is not sympy.true else condition
    tries = 0
    while len(points) < _POINTS and tries < 2000:
        tries += 1
        candidate = rng.uniform(-1.0, 1.0) * 10.0 ** rng.randint(0, 2)
        if candidate not in points and holds(condition, {X: candidate}):
            points.append(candidate)
    return points


def _value(lhs, env):
    if isinstance(lhs, _PointwiseForm):
        # y exactly where it can be (y(0) = 0, not 1e-31), as the form's
        # conditions on y decide branches at the kink.
        exact = {s: sympy.Rational(float(v)) for s, v in env.items()}
        y = evaluate(lhs.forward.xreplace(exact), {})
        if y is None:
            return None
        return evaluate(lhs.form, {**env, Y: y})
    return evaluate(lhs, env)
