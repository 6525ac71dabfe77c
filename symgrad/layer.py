"""What a generated layer computes, decided once for every target and style.

From a `Derivation` this stage builds `LayerFormulas`: the forward pass as named
assignments of stabilised SymPy expressions (the mask, the part both passes
share, the output), the backward pass likewise (each learnable parameter's
gradient, then ``dx = dout * dy/dx``), which forward locals the layer keeps for
backward and under which attribute, and the text every generated class shows
(docstring, derivative comments).  Printers (`symgrad.targets`) decide only how
these are written; nothing here knows NumPy.
"""

from __future__ import annotations

import functools
import keyword
import re
import textwrap
from dataclasses import dataclass

import sympy

from .audit_table import audited_sentence
from .conditioning import describe
from .functions import scaled
from .model import MASK, Derivation, X, Y
from .notation import latex as _full_latex
from .notation import text as _full_text
from .plan import kink_values
from .printing import Times
from .rewrite import stabilize
from .sharing import S, Shared, shared_intermediate

#: The gradient arriving from the layer above.
DOUT = sympy.Symbol("dout", real=True)

#: Forward's local name for each symbol backward may read, and the attribute that
#: keeps it: the output is ``out`` in forward and ``y`` in backward.
_ATTRIBUTE = {Y: "out", X: "x", MASK: "mask", S: "s"}
_LOCAL = {Y: "y", X: "x", MASK: "mask", S: "s"}


@dataclass(frozen=True)
class LayerFormulas:
    """One layer's passes as assignments, and what forward keeps for backward.

    ``forward`` assigns ``mask``, ``s`` and ``out`` (those that apply) from `X`;
    ``backward`` assigns ``d<param>`` for each learnable parameter, then ``dx``,
    from `DOUT` and the symbols in ``reads``, which pairs each with the attribute
    that keeps it (forward's local of the same name: ``out``, ``x``, ``mask``,
    ``s``).
    """

    derivation: Derivation
    forward: tuple[tuple[str, sympy.Basic], ...]
    backward: tuple[tuple[str, sympy.Expr], ...]
    reads: tuple[tuple[sympy.Symbol, str], ...]
    param_grads: tuple[str, ...]
    comments: tuple[str, ...]
    docstring: str
    shared: Shared | None

    @property
    def class_name(self) -> str:
        return self.derivation.activation.class_name

    @property
    def saves(self) -> str:
        return self.derivation.plan.saves

    @property
    def saved_attributes(self) -> tuple[str, ...]:
        """The attributes forward sets for backward, each from its local."""
        return tuple(attribute for _, attribute in self.reads)


def layer_formulas(derivation: Derivation) -> LayerFormulas:
    """The forward and backward assignments of one derivation's layer."""
    act, plan = derivation.activation, derivation.plan
    forward_expr, local_grad = _with_regimes(derivation)
    forward: list[tuple[str, sympy.Basic]] = []
    shared = shared_part(derivation)
    if shared is not None:
        # Forward computes the shared part once, keeps it, and uses it.
        forward.append(("s", stabilize(shared.part, act.prefer)))
        forward_expr, local_grad = shared.forward, shared.derivative
    if plan.saves == "mask":
        # Its own statement, not shared with out, so that NaN reaches out.
        forward.append(("mask", plan.mask))
    # The definition as written (Max stays a maximum).
    forward.append(("out", forward_expr))

    backward = [
        (f"d{name}", stabilize(chain_rule(derivative), act.prefer))
        for name, derivative in plan.param_grads
    ]
    backward.append(("dx", chain_rule(local_grad)))
    used = set().union(*(expr.free_symbols for _, expr in backward))
    reads = [
        (symbol, _ATTRIBUTE[symbol]) for symbol in (Y, X, MASK, S) if symbol in used
    ]
    if plan.param_grads and X not in used:
        reads.append((X, "x"))
    comments = [f"dy/dx = {_gradient_comment(derivation)}"] + [
        f"dy/d{name} = {text(derivative)}" for name, derivative in plan.param_grads
    ]
    return LayerFormulas(
        derivation=derivation,
        forward=tuple(forward),
        backward=tuple(backward),
        reads=tuple(reads),
        param_grads=tuple(name for name, _ in plan.param_grads),
        comments=tuple(comments),
        docstring=docstring(derivation),
        shared=shared,
    )


def _with_regimes(derivation: Derivation) -> tuple[sympy.Basic, sympy.Basic]:
    """The stable forward and local gradient, each with its regimes, if any
    (`symgrad.regimes`)."""
    act, regimes = derivation.activation, derivation.regimes
    forward = stabilize(act.expr, act.prefer)
    local_grad = stabilize(derivation.plan.local_grad, act.prefer)
    if regimes is None or regimes.forward is None:
        return forward, local_grad
    if regimes.backward is not None:
        local_grad = regimes.backward.expr
    return regimes.forward.expr, local_grad


def comment_lines(comments: tuple[str, ...], indent: int) -> tuple[str, ...]:
    """The comments as lines of at most 88 columns, each continuation indented
    under the text after its ``=`` (a long derivative reads as a formula)."""
    lines: list[str] = []
    for comment in comments:
        head, _, rest = comment.partition(" = ")
        first = f"{head} = "
        width = max(40, 88 - indent - 2 - len(first))
        pieces = textwrap.wrap(rest, width, break_long_words=False) or [""]
        lines.append(first + pieces[0])
        lines += [" " * len(first) + piece for piece in pieces[1:]]
    return tuple(lines)


def snake_name(act) -> str:
    """The activation's name in snake case, a valid identifier: what a target
    names its functions after (JAX's ``mish``, numba's ``_mish_forward``)."""
    name = act.name if act.name.isidentifier() else act.class_name
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return f"{name}_" if keyword.iskeyword(name) else name


def local_name(symbol: sympy.Symbol) -> str:
    """The name backward gives a value it reads from the layer (y for the output)."""
    return _LOCAL[symbol]


def chain_rule(local_grad: sympy.Expr) -> sympy.Expr:
    """dout times the local gradient: inside each branch of a piecewise one (so a
    select picks dout or dout*g), else as one factor, dout * (g)."""
    if isinstance(local_grad, sympy.Piecewise):
        return sympy.piecewise_fold(DOUT * local_grad)
    if local_grad == 1:
        return DOUT
    return Times(DOUT, local_grad)


@functools.lru_cache(maxsize=256)
def shared_part(derivation: Derivation) -> Shared | None:
    """The part forward caches for backward besides x (`symgrad.sharing`), if any.
    Memoised, like the derivation it comes from."""
    plan = derivation.plan
    regimes = derivation.regimes
    if plan.saves != "input" or plan.param_grads or (regimes and regimes.chosen):
        return None  # a regime's select does not share its parts
    act = derivation.activation
    return shared_intermediate(
        stabilize(act.expr, act.prefer),
        stabilize(plan.local_grad, act.prefer),
        act.values,
        refuse_lossy=act.prefer == "accuracy",
    )


def _as_float64(expr: sympy.Basic) -> sympy.Basic:
    """Long floats as the float64 the code uses (SELU's constants are given to 30
    digits), so a docstring or comment shows the literal the code has; a scaled
    argument (how the code computes beta*x) as the product it stands for."""
    expr = expr.replace(lambda e: isinstance(e, scaled), lambda e: e.as_product())
    floats = {f: sympy.Float(repr(float(f))) for f in expr.atoms(sympy.Float)}
    return expr.xreplace(floats) if floats else expr


def text(expr: sympy.Basic) -> str:
    """Plain text for an expression, floats as float64."""
    return _full_text(_as_float64(expr))


def latex(expr: sympy.Basic) -> str:
    """LaTeX for an expression, floats as float64."""
    return _full_latex(_as_float64(expr))


def _gradient_comment(derivation: Derivation) -> str:
    plan = derivation.plan
    if plan.saves == "mask":
        return f"{text(plan.local_grad)}, with mask = {text(plan.mask)}"
    return text(plan.local_grad)


def docstring(derivation: Derivation) -> str:
    """The class docstring: summary, formula, derivative, what is cached and why,
    the kink convention, and both formulas in LaTeX."""
    act, plan = derivation.activation, derivation.plan
    y_eq = f"y = {text(derivation.forward)}"
    dy_eq = f"dy/dx = {text(derivation.derivative)}"
    lines = [act.summary or f"{act.class_name} activation.", "", y_eq, dy_eq]
    if derivation.output_form is not None and plan.saves == "output":
        lines.append(f"      = {text(derivation.output_form)}  (in the output y)")
    lines.append("")
    prose = [caching_sentence(derivation), precision_sentence(derivation)]
    for point, value in kink_values(derivation.derivative, act.values):
        prose.append(
            f"At x = {text(point)}, dy/dx = {text(value)}: the branch that holds "
            "there decides, as in PyTorch."
        )
    wrapped = textwrap.wrap(" ".join(prose), width=80, break_on_hyphens=False)
    lines += [line.replace(_NO_BREAK, " ") for line in wrapped]
    lines += _regime_lines(derivation)
    lines += ["", ".. math::", ""]
    lines.append(f"    y = {latex(derivation.forward)}")
    lines.append("")
    final = derivation.output_form if plan.saves == "output" else derivation.derivative
    lines.append(rf"    \frac{{dy}}{{dx}} = {latex(final)}")
    return "\n".join(lines)


def _regime_lines(derivation: Derivation) -> list[str]:
    """A paragraph listing the regimes (`symgrad.regimes`), if there are any:
    where each holds, its form, and its verified worst error."""
    regimes = derivation.regimes
    if regimes is None or not regimes.chosen:
        return []
    lines = [
        "",
        "Where the formula as written fails (NaN, inf or lost digits, far out or "
        "near 0), another form takes over, found and verified on a grid by "
        "symgrad:",
    ]
    for direction, regime in regimes.chosen:
        lines += textwrap.wrap(
            f"- {direction}, {regime.describe()}",
            width=80,
            subsequent_indent="  ",
            break_on_hyphens=False,
        )
    return [lines[0], *textwrap.wrap(lines[1], width=80), "", *lines[2:]]


#: Joins the words of a range (x >= 1.61) so that wrapping keeps them on a line.
_NO_BREAK = "\u00a0"


def _unbroken(text: str) -> str:
    return text.replace(" and ", "\0").replace(" ", _NO_BREAK).replace("\0", " and ")


def precision_sentence(derivation: Derivation) -> str:
    """The precision policy, where the cached form loses accuracy (if it does)
    and the audited worst error (`symgrad.audit_table`)."""
    act, plan = derivation.activation, derivation.plan
    loss = derivation.lossy if plan.saves == "output" else ()
    shared = shared_part(derivation)
    if not loss and shared is not None:
        loss = shared.lossy
    sentence = f"Precision policy: prefer={act.prefer!r}."
    if act.prefer == "accuracy":
        sentence = (
            "Precision policy: prefer='accuracy' (in NumPy, float32 is computed "
            "in float64 and rounded once)."
        )
    if loss:
        sentence += (
            f" Backward, reading the rounded cache, loses accuracy for "
            f"{_unbroken(describe(loss))} (prefer='accuracy' computes it from x)."
        )
    return f"{sentence} {audited_sentence(act, lossy=bool(loss))}"


def caching_sentence(derivation: Derivation) -> str:
    """What forward keeps for backward, and why, in one or two sentences."""
    plan = derivation.plan
    if plan.saves == "output":
        return "Backward needs only the output, so forward caches ``out``."
    if plan.saves == "mask":
        (masked, _), (passed, _) = plan.local_grad.args
        return (
            f"Forward caches the boolean ``mask = {text(plan.mask)}``, where dy/dx is "
            f"{text(masked)} (elsewhere it is {text(passed)}), as the book's ReLU does."
        )
    if plan.saves == "input" and plan.param_grads:
        learned = ", ".join(name for name, _ in plan.param_grads)
        return (
            f"Learnable: {learned}; backward also gives its gradient, summed over "
            "the elements that share it, which needs the input, so forward caches "
            "``x``."
        )
    shared = shared_part(derivation)
    if plan.saves == "input" and shared is not None:
        part = text(shared.part)
        if shared.derivative.has(X):
            return (
                f"{_why_input(derivation)}, so forward caches ``x``, and "
                f"also ``s = {part}``, which backward would otherwise recompute."
            )
        if shared.derivative.has(Y):
            return (
                f"Backward needs the output and ``s = {part}``, which forward "
                "computes anyway, so forward caches ``out`` and ``s``."
            )
        return (
            f"Backward needs only ``s = {part}``, which forward computes anyway, "
            "so forward caches it."
        )
    if plan.saves == "input":
        return f"{_why_input(derivation)}, so forward caches ``x``."
    return "The derivative is constant, so forward caches nothing but the shape."


def _why_input(derivation: Derivation) -> str:
    """Why backward reads x: there is no output form, or it loses accuracy and
    the policy is ``accuracy``."""
    if derivation.output_form is None:
        return "The derivative is not a function of y"
    return (
        f"In y, dy/dx = {text(derivation.output_form)} loses accuracy for "
        f"{describe(derivation.lossy)}; under prefer='accuracy' it is computed from x"
    )
