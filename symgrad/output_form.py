"""Find g with f'(x) = g(f(x)), so that backward needs only the saved output.

Note [Output form]
The search is algebraic elimination, not a table of known answers:

1. Rewrite hyperbolic (and symgrad's own) functions in terms of exp.  If f holds
   logarithms c*log(h), lift the equation by exponentiating: exp(y/c) is then an
   algebraic expression in x as well (softplus: exp(y) = 1 + e^x).
2. Replace exp(k*x) by powers of one generator t = exp(x/L) and every radical
   u**(p/q) by a generator s with s**q = u, so that y = f(x) and d = f'(x)
   become polynomial equations in (x, t, s..., d, y).
3. A lexicographic Groebner basis eliminates x, t and s; what is left relates
   d and y alone.  Its roots in d are the candidate forms g(y).
4. A candidate is accepted only when g(f(x)) agrees with f'(x) to 1e-15 at
   sample points on both sides of 0 and of every branch boundary.

Piecewise f is handled branch by branch: each branch needs its own g, and the
branch conditions on x are carried over to y through f (x > k becomes y > f(k)).
The whole piecewise form is verified again, so a non-monotone f cannot slip
through.  Where no candidate survives, the answer is None and the layer saves x.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import sympy

from .model import X, Y
from .tidy import tidy
from .verify import (
    agree,
    evaluate,
    evaluate_fixed,
    holds,
    numerically_equal,
    sample_points,
)

# Limits that keep elimination fast on formulas nobody listed (a Groebner basis
# can grow doubly exponentially); beyond them we give up and save the input.
_MAX_GENERATORS = 4
_MAX_DEGREE = 12
_MAX_ROOT_DEGREE = 4

_D = sympy.Symbol("d")
_LIFTED = sympy.Symbol("Y", positive=True)
_HYPERBOLIC = (sympy.tanh, sympy.sinh, sympy.cosh, sympy.coth, sympy.sech, sympy.csch)


class _NotAlgebraic(Exception):
    """The expression has a part elimination cannot handle (e.g. sin, erf)."""


def find_output_form(
    f: sympy.Expr,
    derivative: sympy.Expr,
    values: Mapping[sympy.Symbol, float] | None = None,
) -> sympy.Expr | None:
    """g(y) with derivative == g(f) on f's whole domain, verified; None if none found.

    ``values`` gives numbers for the parameters, used only for verification.
    """
    values = dict(values or {})
    # Exact arithmetic: 1.05070098735548 stays every digit it was written with.
    f = sympy.nsimplify(f, rational=True)
    derivative = sympy.nsimplify(derivative, rational=True)
    if isinstance(f, sympy.Piecewise):
        return _piecewise_output_form(f, derivative, values)
    return _branch_output_form(f, derivative, sympy.true, values)


def _branch_output_form(f, derivative, condition, values):
    if not derivative.has(X):
        return derivative
    for candidate in _candidates(f, derivative):
        if _verified(candidate, f, derivative, condition, values):
            return _floats_for_long_rationals(candidate)
    return None


def _floats_for_long_rationals(expr):
    """Constants that came in as floats (SELU's) go back to 30-digit Floats."""
    long = [r for r in expr.atoms(sympy.Rational) if r.q > 10**6]
    return expr.xreplace({r: sympy.Float(r, 30) for r in long})


def _piecewise_output_form(f, derivative, values):
    pieces = []
    flats = [e for e, _ in exclusive_branches(f) if not e.has(X)]
    branches = exclusive_branches(f)
    for i, (expr, cond) in enumerate(branches):
        g = _branch_output_form(expr, sympy.diff(expr, X), cond, values)
        if g is None:
            return None
        if i == len(branches) - 1:  # the default branch: its condition is not used
            pieces.append((g, sympy.true))
            break
        others = [c for c in flats if c != expr]
        y_cond = _condition_on_output(f, cond, values, others)
        if y_cond is None:
            return None
        pieces.append((g, y_cond))
    # The last branch is the default: its condition follows from the others.
    pieces[-1] = (pieces[-1][0], sympy.true)
    pieces = [(g, _simpler_condition(c)) for g, c in pieces]
    g = sympy.Piecewise(*pieces)
    merged = _merge_by_symmetry(g, f, values)
    for candidate in (merged, g):
        if candidate is not None and _verified(
            candidate, f, derivative, sympy.true, values
        ):
            return _floats_for_long_rationals(candidate)
    return None


def exclusive_branches(pw: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Basic]]:
    """(expr, condition) pairs of a Piecewise whose conditions hold one at a time.

    Branch i holds where its own condition does and no earlier one does; the
    conditions keep their relations (no rewriting into Abs) so they can be mapped.
    """
    if not isinstance(pw, sympy.Piecewise):
        return [(pw, sympy.true)]
    branches, earlier = [], []
    for expr, cond in pw.args:
        exclusive = sympy.And(cond, *[sympy.Not(c) for c in earlier])
        if exclusive is not sympy.false:
            branches.append((expr, exclusive))
        earlier.append(cond)
    return branches


def _condition_on_output(f, condition, values, flats=()):
    """The condition on y = f(x) that selects the same branch as ``condition`` on x."""
    if condition in (sympy.true, sympy.false):
        return condition
    return _map_relations(f, condition, values, flats, negated=False)


def _map_relations(f, condition, values, flats, negated):
    """Map each relation, knowing whether it sits under an odd number of Nots (a
    negated x >= k holds as x < k, which is strict)."""
    if isinstance(condition, sympy.core.relational.Relational):
        return _relation_on_output(f, condition, values, flats, negated)
    if isinstance(condition, sympy.Not):
        inner = _map_relations(f, condition.args[0], values, flats, not negated)
        return None if inner is None else sympy.Not(inner)
    if isinstance(condition, (sympy.And, sympy.Or)):
        args = [_map_relations(f, a, values, flats, negated) for a in condition.args]
        return None if any(a is None for a in args) else condition.func(*args)
    return None


def _relation_on_output(f, rel, values, flats=(), negated=False):
    """x op k  ->  y op f(k), assuming f increases (verification checks it).

    A non-strict y >= f(k) is refused when a flat branch takes the value f(k): in
    floating point its outputs would satisfy the relation too.
    """
    try:
        solved = sympy.solve_linear(rel.lhs - rel.rhs, symbols=[X])
    except (NotImplementedError, TypeError):
        return None
    if not (isinstance(solved, tuple) and solved[0] == X):
        return None
    k = solved[1]
    # Normalise to "x op k": the coefficient of x decides whether op flips.
    coefficient = sympy.diff(rel.lhs - rel.rhs, X)
    sign = coefficient.subs(values)
    if not sign.is_number or sign == 0:
        return None
    op = rel.rel_op if sign > 0 else _FLIPPED[rel.rel_op]
    fk = _value_at(f, k, values)
    if fk is None or _jumps_down(f, k, values):
        return None
    effective = _FLIPPED_STRICTNESS[op] if negated else op
    if effective in (">=", "<=") and any(sympy.simplify(fk - c) == 0 for c in flats):
        return None
    return sympy.Rel(Y, fk, op)


def _jumps_down(f, k, values) -> bool:
    """Whether f's value just right of k is below its value just left of k: then
    outputs on both sides overlap, and no condition on y tells the branches
    apart (Softplus with threshold=1: x = 1.1 gives y = 1.1, below softplus(1))."""
    if not isinstance(f, sympy.Piecewise):
        return False
    k = sympy.sympify(k).subs(values)
    step = sympy.Float(1e-9) * (abs(k) + 1)
    sides = []
    for point in (k - step, k + step):
        branch = next((e for e, c in f.args if holds(c.subs(X, point), values)), None)
        if branch is None:
            return True
        sides.append(sympy.N(branch.subs(values).subs(X, k), 30))
    left, right = sides
    if not (left.is_number and right.is_number):
        return True
    return bool(right < left)


def _value_at(f, k, values):
    """f(k), taking the branch that holds at k for the given parameter values."""
    if isinstance(f, sympy.Piecewise):
        for expr, cond in f.args:
            if holds(cond.subs(X, k), values):
                return sympy.simplify(expr.subs(X, k))
        return None
    value = sympy.simplify(f.subs(X, k))
    return None if value.has(sympy.nan) else value


def _simpler_condition(condition):
    """Drop redundant clauses from a mapped condition (relations kept as written)."""
    if condition in (sympy.true, sympy.false):
        return condition
    try:
        return sympy.simplify_logic(condition, force=True)
    except (TypeError, ValueError):
        return condition


# The relation that holds where op does not: x >= k fails exactly where x < k.
_FLIPPED_STRICTNESS = {
    "<": ">=",
    "<=": ">",
    ">": "<=",
    ">=": "<",
    "==": "!=",
    "!=": "==",
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _merge_by_symmetry(g, f, values):
    """Try writing a two-branch form split at y = 0 as one expression in |y|."""
    if len(g.args) != 2:
        return None
    xs = sample_points(sympy.true, values, around=f)
    outputs = [evaluate(f, {X: v, **values}) for v in xs]
    points = [{Y: y, **values} for y in outputs if y is not None]
    for expr, _ in g.args:
        for candidate in (expr.subs(Y, sympy.Abs(Y)), expr.subs(Y, -sympy.Abs(Y))):
            if numerically_equal(candidate, g, points, minimum=8):
                return tidy(candidate)
    return None


def _verified(g, f, derivative, condition, values) -> bool:
    """g(f(x)) == f'(x) at sample points of the branch (y is computed first, so a
    piecewise g is evaluated on a number, not on a piecewise expression).

    g is evaluated as real arithmetic (`evaluate_fixed`): a form such as
    y**(2/3) that SymPy would take through complex numbers for y < 0 is NaN in
    NumPy, and is rejected here.
    """
    compared = 0
    for v in sample_points(condition, values, around=f, count=10):
        point = {X: v, **values}
        y, slope = evaluate(f, point), evaluate(derivative, point)
        if y is None or slope is None:
            continue
        g_value = evaluate_fixed(g, {Y: y, **values})
        if g_value is None or not agree(g_value, slope):
            return False
        compared += 1
    return compared >= 4


# -- elimination ---------------------------------------------------------------


def _candidates(f, derivative) -> list[sympy.Expr]:
    """Roots d = g(y) of the eliminant of y = f(x), d = f'(x), simplest first."""
    f, derivative = _in_exp(f), _in_exp(derivative)
    lifted = _lift_logs(f)
    if lifted is None:
        return []
    y_gen, y_value, scale = lifted
    try:
        algebra = _Algebraizer([y_value, derivative])
        y_alg = algebra.convert(y_value)
        d_alg = algebra.convert(derivative)
    except _NotAlgebraic:
        return []
    elim = algebra.generators
    if len(elim) > _MAX_GENERATORS or {X, algebra.t} <= set(elim):
        # x and exp(x) are algebraically independent: nothing can be eliminated.
        return []
    equations = [
        sympy.numer(sympy.together(y_gen - y_alg)),
        sympy.numer(sympy.together(_D - d_alg)),
        *algebra.relations,
    ]
    gens = [*elim, _D, y_gen]
    if any(sympy.Poly(e, *gens).total_degree() > _MAX_DEGREE for e in equations):
        return []
    try:
        basis = sympy.groebner(equations, *gens, order="lex")
    except (sympy.polys.polyerrors.PolynomialError, NotImplementedError):
        return []
    eliminants = [
        p for p in basis.exprs if not p.has(*elim) and p.has(_D) and p.has(y_gen)
    ] + [p for p in basis.exprs if not p.has(*elim) and p.has(_D) and not p.has(y_gen)]
    back = {y_gen: sympy.exp(Y / scale)} if y_gen is _LIFTED else {}
    found: list[sympy.Expr] = []
    for poly in sorted(eliminants, key=lambda p: (sympy.degree(p, _D), len(str(p)))):
        if sympy.degree(poly, _D) > _MAX_ROOT_DEGREE:
            continue
        for root in sympy.solve(poly, _D):
            candidate = tidy(root.subs(back))
            if candidate.has(sympy.I) or candidate in found:
                continue
            found.append(candidate)
    return found


def _in_exp(expr: sympy.Expr) -> sympy.Expr:
    """Hyperbolic and symgrad functions rewritten through exp; trig left alone."""
    rewritable = [
        cls
        for cls in {type(a) for a in expr.atoms(sympy.Function)}
        if cls in _HYPERBOLIC or hasattr(cls, "_eval_rewrite_as_exp")
    ]
    rewritable = [c for c in rewritable if c not in (sympy.sin, sympy.cos, sympy.tan)]
    if rewritable:
        expr = expr.rewrite(rewritable, sympy.exp)
    return expr


def _lift_logs(f):
    """(generator, its value in x, scale): y itself, or Y = exp(y/c) when f has logs."""
    if not f.has(sympy.log):
        return Y, f, None
    expanded = sympy.expand_log(sympy.expand(f), force=True)
    coefficients = []
    for term in sympy.Add.make_args(expanded):
        if term.has(sympy.log):
            coeff, rest = term.as_independent(X, as_Add=False)
            if not isinstance(rest, sympy.log):
                return None
            coefficients.append(coeff)
    base = coefficients[0]
    ratios = [sympy.nsimplify(c / base) for c in coefficients]
    if not all(r.is_Rational for r in ratios):
        return None
    scale = base / functools.reduce(sympy.ilcm, [r.q for r in ratios], 1)
    lifted = sympy.powsimp(sympy.expand_power_exp(sympy.exp(expanded / scale)))
    lifted = sympy.simplify(lifted)
    if lifted.has(sympy.log):
        return None
    return _LIFTED, lifted, scale


class _Algebraizer:
    """Rewrites expressions in x as rational functions of polynomial generators."""

    def __init__(self, exprs: list[sympy.Expr]) -> None:
        self.t = sympy.Symbol("t", positive=True)
        self.base = self._exp_base(exprs)
        self.radicals: dict[tuple[sympy.Expr, int], sympy.Symbol] = {}
        self.relations: list[sympy.Expr] = []
        self.used: set[sympy.Symbol] = set()

    @property
    def generators(self) -> list[sympy.Symbol]:
        ordered = [*self.radicals.values(), self.t, X]
        return [g for g in ordered if g in self.used]

    @staticmethod
    def _exp_base(exprs):
        slopes = []
        for expr in exprs:
            for e in expr.atoms(sympy.exp):
                arg = sympy.expand(e.args[0])
                slope = arg.coeff(X)
                if slope == 0 or not (arg - slope * X).free_symbols.isdisjoint({X}):
                    if arg.has(X):
                        raise _NotAlgebraic(e)
                    continue
                slopes.append(slope)
        if not slopes:
            return None
        ratios = [sympy.nsimplify(s / slopes[0]) for s in slopes]
        if not all(r.is_Rational for r in ratios):
            raise _NotAlgebraic("exp arguments with incommensurable slopes")
        return slopes[0] / functools.reduce(sympy.ilcm, [r.q for r in ratios], 1)

    def convert(self, expr: sympy.Expr) -> sympy.Expr:
        if not expr.has(X):
            return expr
        if expr == X:
            self.used.add(X)
            return X
        if isinstance(expr, sympy.exp):
            arg = sympy.expand(expr.args[0])
            power = sympy.nsimplify(arg.coeff(X) / self.base)
            self.used.add(self.t)
            return sympy.exp(arg - arg.coeff(X) * X) * self.t**power
        if isinstance(expr, (sympy.Add, sympy.Mul)):
            return expr.func(*(self.convert(a) for a in expr.args))
        if isinstance(expr, sympy.Pow):
            base, exponent = expr.args
            if exponent.has(X) or not exponent.is_Rational:
                if base == sympy.E:
                    return self.convert(sympy.exp(exponent))
                raise _NotAlgebraic(expr)
            inner = self.convert(base)
            if exponent.is_Integer:
                return inner**exponent
            root = self._radical(inner, exponent.q)
            return root**exponent.p
        raise _NotAlgebraic(expr)

    def _radical(self, inner, q):
        key = (inner, q)
        if key not in self.radicals:
            s = sympy.Symbol(f"s{len(self.radicals)}", positive=True)
            self.radicals[key] = s
            self.relations.append(sympy.numer(sympy.together(s**q - inner)))
        s = self.radicals[key]
        self.used.add(s)
        return s
