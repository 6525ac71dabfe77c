"""Stability rewrites: rules over SymPy expressions, applied before printing.

Each rule maps one numerically fragile pattern to an equivalent, stable one and
returns None where it does not apply.  No rule knows which activation it serves;
`stabilize` applies them to every forward and backward expression:

- top-down, to the largest subexpression that matches:
  `rational_in_exp_as_sigmoid` (t/(1 + t)**2 with t = exp(v) becomes s*(1 - s)
  with s = sigmoid(v), which never overflows) and `clip_saturating` (a part that
  tends to a finite limit, such as tanh(x + x**3) or x*exp(-x**2), is evaluated
  on an input clipped where it has reached that limit, so x**3 cannot overflow);
- bottom-up, at every node: `softplus_of_exp`, `log_of_sigmoid`, `log1p`,
  `expm1`, `erfc_of_complement`, `tanh_complement`, `cos_complement`,
  `sech_squared`,
  `piecewise_as_extremum`, `guard_branches`, `erfc_of_scaled`, `exp_of_square`;
  under the `accuracy` policy also `sigmoid_complement`, which spends a pass to
  keep the tails;
- last, `rounded_polynomial_arguments` (exp or sigmoid of a polynomial whose
  rounding the helpers correct, GELU's tanh form), `tail_products` (a product
  whose factor is subnormal where the product is not, such as x*sigmoid(x) at
  x = -714), `symgrad.series.series_near_zero` (a fitted polynomial where a
  sum's terms cancel at 0), under `accuracy` `series_near_root` (one where
  they cancel at a root, as Mish's slope does at -1.19),
  `symgrad.tails.series_in_tails` (a series in the exponential where a sum
  decays, beyond the root's window) and `scaled_arguments`
  (a parameter times the input, as a function's argument, whose overflow to inf
  is its right rounding).

One rule is not in `stabilize` but asked for by a target: `one_exponential`
(`for_fused_loops`) writes several exp-like calls of one argument, such as
Mish's tanh(softplus(x)), as one exp and a rational function of it, where no
term can cancel; that pays in a fused loop (numba), not in whole-array code.

Every rewrite is an identity (or, for clipping, exact to float64 rounding);
`tests/test_rewrite.py` checks each rule on its own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import sympy
from sympy.codegen.cfunctions import expm1 as Expm1
from sympy.codegen.cfunctions import log1p as Log1p
from sympy.core.relational import Relational
from sympy.functions.elementary.hyperbolic import HyperbolicFunction
from sympy.functions.elementary.trigonometric import (
    InverseTrigonometricFunction,
    TrigonometricFunction,
)

from .budgets import attempt, stage
from .functions import (
    blend,
    clip,
    erfc,
    exp_of_polynomial,
    exp_once,
    finite,
    near_root,
    near_zero,
    nearest,
    scaled,
    scaled_erfc,
    sigmoid,
    sigmoid_from,
    sigmoid_of_polynomial,
    softplus,
    softplus_from,
    tail_product,
    tame,
)
from .model import X, Y
from .printing import Times
from .series import in_one_variable, series_near_root, series_near_zero
from .tails import rational_in_exponential, series_in_tails
from .tidy import tidy
from .verify import evaluate_fixed

Rule = Callable[[sympy.Expr], "sympy.Expr | None"]

# Functions whose value (or whose argument's value) can overflow for large input.
_EXPLOSIVE = (sympy.exp, sympy.cosh, sympy.sinh, Expm1)


# -- top-down rules ------------------------------------------------------------


def rational_in_exp_as_sigmoid(expr: sympy.Expr) -> sympy.Expr | None:
    """R(exp(v)) with exp(v) in a denominator -> a polynomial in sigmoid(-v).

    With t = exp(v) and s = sigmoid(-v) = 1/(1 + t), t = (1 - s)/s; when R then
    becomes a polynomial in s (no s left in a denominator) it is bounded and
    overflow-free: 1/(1 + exp(-x)) -> sigmoid(x), exp(-x)/(1 + exp(-x))**2 ->
    sigmoid(x)*(1 - sigmoid(x)).
    """
    if not isinstance(expr, (sympy.Add, sympy.Mul, sympy.Pow)):
        return None
    if isinstance(expr, sympy.Mul):
        # Convert the factors that involve exp; x*exp(-x)/(1 + exp(-x))**2 keeps its x.
        inner = [f for f in expr.args if f.has(sympy.exp)]
        outer = [f for f in expr.args if not f.has(sympy.exp)]
        if outer and inner:
            converted = rational_in_exp_as_sigmoid(sympy.Mul(*inner))
            return None if converted is None else sympy.Mul(*outer) * converted
    exps = {e for e in expr.atoms(sympy.exp) if e.free_symbols}
    if not exps:
        return None
    v = min((e.args[0] for e in exps), key=sympy.default_sort_key)
    t, s = sympy.Dummy("t", positive=True), sympy.Dummy("s", positive=True)
    in_t = expr.xreplace({sympy.exp(v): t, sympy.exp(-v): 1 / t})
    if in_t.has(sympy.exp) or in_t.free_symbols & v.free_symbols:
        return None
    if not sympy.denom(sympy.together(in_t)).has(t):
        return None
    in_s = sympy.cancel(sympy.together(in_t.xreplace({t: (1 - s) / s})))
    numerator, denominator = sympy.fraction(in_s)
    if denominator.has(s) or not numerator.has(s):
        return None
    return tidy(in_s).xreplace({s: sigmoid(-v)})


#: The largest degree in e that `one_exponential` takes: beyond it the
#: polynomials cost more than the calls they replace.
_MAX_DEGREE = 8


#: Calls that cost about one exp, and those that cost two (a log and an exp, or
#: erfc's exp and its long polynomial): `exp_like_calls`.
_ONE_CALL = (
    sympy.exp,
    exp_once,
    sympy.log,
    Expm1,
    Log1p,
    sigmoid,
    sigmoid_of_polynomial,
    exp_of_polynomial,
    HyperbolicFunction,
    TrigonometricFunction,
    InverseTrigonometricFunction,
    softplus_from,  # its log1p; its exp is the argument's
)
_TWO_CALLS = (softplus, sympy.erf, erfc, scaled_erfc)


def exp_like_calls(expressions) -> int:
    """The exp-like calls the expressions take, weighted (`_ONE_CALL`,
    `_TWO_CALLS`); a call that appears twice is computed once."""
    nodes = {n for expr in expressions for n in sympy.preorder_traversal(expr)}
    return sum(
        2 if isinstance(n, _TWO_CALLS) else isinstance(n, _ONE_CALL) for n in nodes
    )


def one_exponential(expr: sympy.Expr) -> sympy.Expr | None:
    """Several exp-like calls of one argument a -> one exp and a rational function.

    Every function in `symgrad.tails.OF_EXP` of an integer multiple of a,
    nested or not, is rational in e = exp(a) (tanh(softplus(a)) = (e**2 +
    2e)/(e**2 + 2e + 2));
    the part is rewritten so when that takes fewer calls, and only where the
    coefficients of its numerator, and those of its denominator, as polynomials
    in e, have one sign: a sum of like-signed terms cannot cancel, so each
    operation adds at most its own rounding.  To stay finite, e = exp(-|a|) and
    for a > 0 both polynomials are reversed (divided by the highest power).
    This trades calls for arithmetic, which pays in a fused loop (numba) and
    not in whole-array code, so only the fused target asks for it.
    """
    if exp_like_calls([expr]) < 2:
        return None  # one call already
    found = rational_in_exponential(expr, scaled=False)
    if found is None:
        return None
    base, e, in_e = found
    numerator, denominator = sympy.fraction(in_e)
    polynomials = []
    for part in (numerator, denominator):
        if not part.is_polynomial(e):
            return None
        coefficients = sympy.Poly(part, e).all_coeffs()
        nonzero = [c for c in coefficients if c != 0]
        if not all(
            (c / nonzero[0]).is_Number and (c / nonzero[0]) > 0 for c in nonzero
        ):
            return None  # terms of both signs: they could cancel
        polynomials.append(coefficients)
    degree = max(len(c) for c in polynomials) - 1
    if degree > _MAX_DEGREE:
        return None
    small = exp_once(-sympy.Abs(base))  # exp(a) for a <= 0, exp(-a) for a > 0

    def padded(coefficients, reverse):
        full = [0] * (degree + 1 - len(coefficients)) + list(coefficients)
        return full[::-1] if reverse else full

    def polynomial(coefficients):
        return sympy.horner(sympy.Poly(coefficients, e).as_expr(), e).xreplace(
            {e: small}
        )

    branches = []
    for reverse in (False, True):
        numerator, denominator = (padded(c, reverse) for c in polynomials)
        if denominator[-1] == 0:
            return None  # a power of e divides: it would overflow as e -> 0
        # The numerator's power of e is multiplied in last, one factor at a
        # time: the partial products stay above the final value, so none is
        # subnormal where the value is normal (x*e**2 at x = -357).
        power = next(i for i, c in enumerate(reversed(numerator)) if c != 0)
        value = polynomial(numerator[: len(numerator) - power]) / polynomial(
            denominator
        )
        for _ in range(power):
            value = Times(value, small)
        branches.append(value)
    low, high = branches
    return sympy.Piecewise((high, base > 0), (low, True))


def for_fused_loops(
    expr: sympy.Basic,
) -> tuple[sympy.Basic, tuple[tuple[sympy.Expr, sympy.Expr], ...]]:
    """``expr`` with `one_exponential` applied to its largest matches: what a
    target that computes each element in registers (numba) prints; with each
    (part, argument) merged, for the reader."""
    merged: list[tuple[sympy.Expr, sympy.Expr]] = []

    def recorded(part: sympy.Expr) -> sympy.Expr | None:
        replacement = one_exponential(part)
        if replacement is not None:
            merged.append((part, replacement.args[0].cond.lhs))
        return replacement

    return _top_down(expr, recorded), tuple(merged)


def from_shared_exponential(exprs: list[sympy.Basic]) -> list[sympy.Basic]:
    """sigmoid(a) and softplus(a) computed from e = exp(-|a|) (`sigmoid_from`,
    `softplus_from`: the helpers' own formulas) wherever a pass has two or more
    of sigmoid(a), softplus(a) and e itself (a part `one_exponential` merged
    computes e), so that one exp serves them all.  Left to LLVM, each inlined
    call would keep its own exp: the helpers are optimised apart before they
    are inlined, and their copies of exp no longer look alike (Mish's backward
    took 1.3x as long)."""
    calls: dict[sympy.Expr, set[sympy.Expr]] = {}
    for expr in exprs:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, (sigmoid, softplus)):
                calls.setdefault(node.args[0], set()).add(node)
            elif isinstance(node, exp_once) and isinstance(-node.args[0], sympy.Abs):
                calls.setdefault((-node.args[0]).args[0], set()).add(node)
    replacements = {}
    for a, nodes in calls.items():
        if len(nodes) >= 2:
            e = exp_once(-sympy.Abs(a))
            replacements[sigmoid(a)] = sigmoid_from(a, e)
            replacements[softplus(a)] = softplus_from(a, e)
    return [expr.xreplace(replacements) for expr in exprs]


def clip_saturating(expr: sympy.Expr) -> sympy.Expr | None:
    """A parameter-free part with finite limits -> the same part on a clipped input.

    Where S(x) has reached its limit to float64 precision beyond |x| = B, S(x) ==
    S(clip(x, -B, B)) in floating point, and inside the clip no power or exp of x
    can overflow: 0.5*(1 + tanh(c*(x + 0.044715*x**3))) for |x| up to 1e308.
    Only the sides toward which something overflows (or meets inf*0) are clipped;
    a side with no finite limit is left to the subexpressions, which `stabilize`
    visits after this rule too.
    """
    if isinstance(expr, sympy.Piecewise) or not expr.free_symbols:
        return None
    if len(expr.free_symbols) > 1:
        return _finite_input(expr)
    (v,) = expr.free_symbols
    if not _explosive(expr, v):
        return None
    bounds = {}
    for side in (-1, +1):
        if _overflows_toward(expr, v, side):
            bound = _saturation_bound(expr, v, side)
            if bound is not None:
                bounds[side] = bound
    if not bounds:
        return None
    if max(bounds.values()) > _FLOAT16_MAX:
        # Not representable in every dtype: keep only inf out of the part.
        side = next(iter(bounds)) if len(bounds) == 1 else 0
        return expr.xreplace({v: finite(v, side)})
    lower = sympy.Float(-bounds[-1]) if -1 in bounds else -sympy.oo
    upper = sympy.Float(bounds[+1]) if +1 in bounds else sympy.oo
    return expr.xreplace({v: clip(v, lower, upper)})


def _finite_input(expr: sympy.Expr) -> sympy.Expr | None:
    """With parameters, a clip bound would depend on their values; but where the
    input meets inf*0 (x*sigmoid(beta*x) at -inf), replacing +-inf by the dtype's
    largest value is right whatever they are, and changes no finite input.
    Parameters are taken as 1 only to detect the hazard."""
    arrays = expr.free_symbols & {X, Y}
    if len(arrays) != 1:
        return None
    (v,) = arrays
    probe = expr.xreplace({s: sympy.S.One for s in expr.free_symbols - arrays})
    saturating = [s for s in (-1, +1) if _saturation_bound(probe, v, s)]
    overflowing = [s for s in saturating if _overflows_toward(probe, v, s)]
    degree = _polynomial_degree(expr, v)
    if degree and overflowing:
        # Powers of v overflow first: clip where the degree-th power still fits the
        # dtype (x/sqrt(1 + a*x**2) is +-1/sqrt(a) there for any sensible a).
        return expr.xreplace({v: tame(v, degree)})
    sides = [s for s in saturating if _meets_inf_times_zero(probe, v, s)]
    if not sides:
        return None
    return expr.xreplace({v: finite(v, sides[0] if len(sides) == 1 else 0)})


def _polynomial_degree(expr, v) -> int:
    """The largest integer power of an expression in v inside expr (0 if none)."""
    powers = [
        int(abs(node.exp))
        for node in sympy.preorder_traversal(expr)
        if isinstance(node, sympy.Pow) and node.base.has(v) and node.exp.is_Integer
    ]
    return max([p for p in powers if p >= 2], default=0)


def _explosive(expr: sympy.Expr, v: sympy.Symbol) -> bool:
    """Whether some power, product or exponential of v inside expr can overflow
    (or, for a product, meet inf*0)."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, _EXPLOSIVE) and node.has(v):
            return True
        if isinstance(node, sympy.Mul) and sum(a.has(v) for a in node.args) >= 2:
            return True
        if isinstance(node, sympy.Pow) and node.base.has(v):
            exponent = node.exp
            if not exponent.is_number or abs(exponent) >= 2 or exponent.is_negative:
                return True
    return False


# A clip bound must be representable in every dtype a layer accepts.
_FLOAT16_MAX = 65504.0
_PROBES = [10.0**k for k in (1, 2, 4, 8, 16, 32, 64, 128)]
#: A probe that is no multiple of a power-of-2 step (`nearest`'s), where the
#: rounding error x - nearest(x) is not 0: exp(q*(x - h)*(x + h)) equals 1 at
#: every probe above, and looked saturated from x = 0.32.
_OFF_GRID = 1000.0 + 1.0 / 3.0


def _overflows_toward(expr, v, side) -> bool:
    """Whether something inside expr leaves the float64 range as v -> side*inf
    (exp(-x) does not toward +inf; x**3 does both ways), or a product meets
    inf*0 there (x*sigmoid(x) at -inf), which is NaN in floating point."""
    far = {v: side * 1e300}
    for node in sympy.preorder_traversal(expr):
        if not node.has(v):
            continue
        if (
            isinstance(node, (*_EXPLOSIVE, sympy.Pow, sympy.Mul))
            and _value(node, far) is None
        ):
            return True
    return _meets_inf_times_zero(expr, v, side) or _scales_past_float16(expr, v, side)


def _scales_past_float16(expr, v, side) -> bool:
    """Whether a product inside expr leaves float16's range at v = side*65504
    (2*x there is inf in float16, although tanh's slope from 4*sigmoid(2*x)*
    sigmoid(-2*x) is 0)."""
    edge = {v: side * _FLOAT16_MAX}
    return any(
        isinstance(node, sympy.Mul)
        and node.has(v)
        and abs(_value(node, edge) or 0) > _FLOAT16_MAX
        for node in sympy.preorder_traversal(expr)
    )


def _meets_inf_times_zero(expr, v, side) -> bool:
    """Whether a bounded product in expr has an unbounded factor as v -> side*inf."""
    far = {v: side * 1e300}
    for node in sympy.preorder_traversal(expr):
        if (
            isinstance(node, sympy.Mul)
            and node.has(v)
            and abs(_value(node, far) or 0) < 1e299
        ):
            factors = [_value(f, far) for f in node.args if f.has(v)]
            if any(f is None or abs(f) >= 1e299 for f in factors):
                return True
    return False


def _saturation_bound(expr, v, side):
    """The |x| beyond which expr equals its limit at side*inf in float64, or None
    where there is no finite limit or nothing there can overflow.  Within a
    budget, a search that takes too long finds None: the part is not clipped."""
    return attempt(
        "finding where a part saturates",
        lambda: _search_saturation_bound(expr, v, side),
        lambda: None,
        share=0.2,
    )


def _search_saturation_bound(expr, v, side):
    values = [_value(expr, {v: side * p}) for p in _PROBES]
    if any(value is None for value in values):
        return None
    limit = values[-1]
    if not all(_saturated(value, limit) for value in values[-3:]):
        return None
    if expr.has(nearest) and not _saturated(_value(expr, {v: side * _OFF_GRID}), limit):
        return None  # the probes are multiples of nearest's step: x - h = 0 there
    unsaturated = [
        p for p, y in zip(_PROBES, values, strict=True) if not _saturated(y, limit)
    ]
    low = max(unsaturated, default=0.0)
    high = min(p for p in _PROBES if p > low)
    for _ in range(100):  # bisect (in log space) to the first saturated point
        if high - low <= 1e-3 * high:
            break
        middle = math.sqrt(low * high) if low > 0 else high / 2
        if _saturated(_value(expr, {v: side * middle}), limit):
            high = middle
        else:
            low = middle
    return _round_up(high)


def _round_up(number: float) -> float:
    """number rounded up to two significant digits, for a readable literal."""
    unit = 10.0 ** (math.floor(math.log10(number)) - 1)
    return math.ceil(number / unit) * unit


def _value(expr, point):
    """expr at point to 30 digits, or None where it is not a finite float64."""
    value = evaluate_fixed(expr, point)
    if value is None or abs(value) > 1.7e308:
        return None
    return value


def _saturated(value, limit) -> bool:
    """value equals limit once rounded to float64 (or both underflow to 0)."""
    if value is None:
        return False
    if abs(limit) < 1e-320:  # below the smallest subnormal: the limit is 0
        return abs(value) < 1e-320
    return abs(value - limit) <= 2.0**-60 * abs(limit)


# -- bottom-up rules -----------------------------------------------------------


def softplus_of_exp(expr: sympy.Expr) -> sympy.Expr | None:
    """log(1 + exp(u)) -> softplus(u): exp(u) overflows for u > 709."""
    if isinstance(expr, sympy.log):
        u = _one_plus_exp_argument(expr.args[0])
        if u is not None:
            return softplus(u)
    return None


def log_of_sigmoid(expr: sympy.Expr) -> sympy.Expr | None:
    """log(sigmoid(u)) -> -softplus(-u): sigmoid underflows to 0 for u < -745."""
    if isinstance(expr, sympy.log) and isinstance(expr.args[0], sigmoid):
        return -softplus(-expr.args[0].args[0])
    return None


def log1p(expr: sympy.Expr) -> sympy.Expr | None:
    """log(1 + u) -> log1p(u): 1 + u rounds away u's digits when |u| is small."""
    if isinstance(expr, sympy.log) and isinstance(expr.args[0], sympy.Add):
        constant, rest = expr.args[0].as_coeff_Add()
        if constant == 1 and rest != 0:
            return Log1p(rest)
    return None


def expm1(expr: sympy.Expr) -> sympy.Expr | None:
    """exp(u) - 1 -> expm1(u) (and 1 - exp(u) -> -expm1(u)): no cancellation near 0."""
    if not isinstance(expr, sympy.Add):
        return None
    constant, rest = expr.as_coeff_Add()
    for term in sympy.Add.make_args(rest):
        coeff, factor = term.as_coeff_Mul()
        if isinstance(factor, sympy.exp) and constant == -coeff:
            return expr - term - constant + coeff * Expm1(factor.args[0])
    return None


def _complement(expr, function):
    """(term, c, sign, u) where expr = c + sign*c*function(u) + rest, else None."""
    if not isinstance(expr, sympy.Add):
        return None
    constant, rest = expr.as_coeff_Add()
    for term in sympy.Add.make_args(rest):
        coeff, factor = term.as_coeff_Mul()
        if isinstance(factor, function) and constant == abs(coeff) and coeff != 0:
            return term, constant, (1 if coeff > 0 else -1), factor.args[0]
    return None


def erfc_of_complement(expr: sympy.Expr) -> sympy.Expr | None:
    """c + c*erf(u) -> c*erfc(-u), c - c*erf(u) -> c*erfc(u): no cancellation in
    the tail, where erf(u) is -1 (or 1) to double precision."""
    found = _complement(expr, sympy.erf)
    if found is None:
        return None
    term, c, sign, u = found
    return expr - term - c + c * erfc(-sign * u)


def tanh_complement(expr: sympy.Expr) -> sympy.Expr | None:
    """c + c*tanh(u) -> 2c*sigmoid(2u), c - c*tanh(u) -> 2c*sigmoid(-2u).

    Where tanh(u) is -1 (or 1) to working precision the sum cancels; in float32,
    1 + tanh(-7.2) keeps one significant bit.  The sigmoid keeps them all.
    """
    found = _complement(expr, sympy.tanh)
    if found is None:
        return None
    term, c, sign, u = found
    return expr - term - c + 2 * c * sigmoid(sign * 2 * u)


def cos_complement(expr: sympy.Expr) -> sympy.Expr | None:
    """c - c*cos(u) -> 2c*sin(u/2)**2 (and c*cos(u) - c -> -2c*sin(u/2)**2).

    Wherever cos(u) is 1 to working precision (u near 0, and near every
    multiple of 2*pi) the difference cancels: 1 - cos(x) is 0 at x = 1e-9,
    where the truth is 5e-19.  The half-angle form has no difference at all.
    """
    if not isinstance(expr, sympy.Add):
        return None
    constant, rest = expr.as_coeff_Add()
    for term in sympy.Add.make_args(rest):
        coeff, factor = term.as_coeff_Mul()
        if isinstance(factor, sympy.cos) and constant == -coeff and coeff != 0:
            half = sympy.sin(factor.args[0] / 2)
            return expr - term - constant + 2 * constant * half**2
    return None


def sigmoid_complement(expr: sympy.Expr) -> sympy.Expr | None:
    """c - c*sigmoid(u) -> c*sigmoid(-u) (and c*sigmoid(u) - c -> -c*sigmoid(-u)):
    where sigmoid(u) is 1 to working precision (u > 36.7 in float64) the
    difference is 0, but sigmoid(-u) keeps every digit.  An `accuracy` rule: it
    costs a second exp where a layer could have reused sigmoid(u)."""
    if not isinstance(expr, sympy.Add):
        return None
    constant, rest = expr.as_coeff_Add()
    for term in sympy.Add.make_args(rest):
        coeff, factor = term.as_coeff_Mul()
        if isinstance(factor, sigmoid) and constant == -coeff and coeff != 0:
            return expr - term - constant - coeff * sigmoid(-factor.args[0])
    return None


def erfc_of_scaled(expr: sympy.Expr) -> sympy.Expr | None:
    """erfc(c*u) with c**2 rational (c = -1/sqrt(2) in GELU) -> scaled_erfc(u, c,
    c**2), whose helper squares u, not the rounded c*u: exp(-z**2) in erfc's
    tail is then accurate to an ulp or two instead of 2 z**2 ulps (400 at
    GELU's x = -19)."""
    if not isinstance(expr, (erfc, sympy.erfc)):
        return None
    scale, rest = expr.args[0].as_independent(X, Y, as_Add=False)
    if not scale.is_number or scale in (1, -1) or not rest.has(X, Y):
        return None
    if not (scale**2).is_Rational:
        return None
    return scaled_erfc(rest, scale, scale**2)


#: Beyond |q| u**2 = _SQUARE_ZERO, exp(q*u**2) times any float64 is 0: u is
#: clipped there (the bound rounded up to 1/16).  The split is taken for |q| up
#: to _SQUARE_SPLIT_Q, where the correction's exponent, at most |q| |u| / 16,
#: stays below 57 inside the clip: finite in float32 too (exp(-1000*x**2) was
#: NaN in float32 at x = 1.9, 0*inf, with an integer bound and |q| up to 1024).
_SQUARE_ZERO = 1460
_SQUARE_SPLIT_Q = 512


def exp_of_square(expr: sympy.Expr) -> sympy.Expr | None:
    """exp(q*u**2) -> exp(q*h**2) * exp(q*(v - h)*(v + h)), v = u clipped where
    exp(q*u**2) is 0, h = v to 1/16.

    u**2 is rounded, so exp(q*u**2) is off by |q| u**2 ulps (220 at GELU's
    slope, x = -21); h**2 is exact, and (v - h)*(v + h) is small, so its
    rounding costs nothing.  Unclipped, 16*u overflowed at the float's largest
    value, and (u - h)*(u + h), up to |u|/16, made the product 0*inf where
    exp(q*h**2) is 0 (x*exp(-x**2) was NaN from x = 6e8).
    """
    if not isinstance(expr, sympy.exp):
        return None
    q, rest = expr.args[0].as_coeff_Mul()
    if not (isinstance(rest, sympy.Pow) and rest.exp == 2 and q.is_negative):
        return None
    u = rest.base
    if not u.has(X, Y) or isinstance(u, nearest) or -q > _SQUARE_SPLIT_Q:
        return None
    bound = sympy.Float(math.ceil(16 * math.sqrt(_SQUARE_ZERO / -float(q))) / 16)
    v = clip(u, -bound, bound)
    h = nearest(v, sympy.Rational(1, 16))
    return sympy.exp(q * h**2) * sympy.exp(q * (v - h) * (v + h))


def sech_squared(expr: sympy.Expr) -> sympy.Expr | None:
    """c - c*tanh(u)**2 and c/cosh(u)**2 -> 4c*sigmoid(2u)*sigmoid(-2u).

    The first cancels where |tanh(u)| is 1 to working precision; in the second
    cosh(u) overflows (float16 already at u = 12) although the quotient is tiny.
    """
    if (
        isinstance(expr, sympy.Pow)
        and expr.exp.is_Integer
        and expr.exp < 0
        and expr.exp % 2 == 0
        and isinstance(expr.base, sympy.cosh)
    ):
        u = expr.base.args[0]
        return (4 * sigmoid(2 * u) * sigmoid(-2 * u)) ** (-expr.exp // 2)
    if not isinstance(expr, sympy.Add):
        return None
    constant, rest = expr.as_coeff_Add()
    for term in sympy.Add.make_args(rest):
        coeff, factor = term.as_coeff_Mul()
        if (
            isinstance(factor, sympy.Pow)
            and factor.exp == 2
            and isinstance(factor.base, sympy.tanh)
            and constant == -coeff
            and constant != 0
        ):
            u = factor.base.args[0]
            replacement = 4 * constant * sigmoid(2 * u) * sigmoid(-2 * u)
            return expr - term - constant + replacement
    return None


def piecewise_as_extremum(expr: sympy.Expr) -> sympy.Expr | None:
    """Piecewise((a, a > b), (b, True)) -> Max(a, b), likewise Min.

    np.maximum is one pass and lets NaN through; a select is two passes and, with a
    constant default branch, would turn NaN into that constant.  The branches agree
    where a == b, so the kink convention (a matter for the derivative) is unaffected.
    """
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 2:
        return None
    (first, cond), (second, default) = expr.args
    if default is not sympy.true or not isinstance(cond, Relational):
        return None
    for rel in (cond, cond.reversed):
        if {rel.lhs, rel.rhs} != {first, second} or rel.lhs != first:
            continue
        if rel.rel_op in (">", ">="):
            return sympy.Max(first, second)
        if rel.rel_op in ("<", "<="):
            return sympy.Min(first, second)
    return None


def select_as_clamp(expr: sympy.Expr) -> sympy.Expr | None:
    """Piecewise((a, v <= p), (b, v >= q), (f, True)) -> Min(Max(f, a), b) where f
    is increasing and linear in v with f(p) = a and f(q) = b (Hardtanh,
    Hardsigmoid).

    A linear f rounds monotonically, so below p it is at most a and above q at
    least b, and the clamp gives the select's value to the last bit, NaN included,
    without a select's mispredicted branches.
    """
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 3:
        return None
    (first, c1), (second, c2), (f, default) = expr.args
    if default is not sympy.true:
        return None
    bounds = {}
    for value, cond in ((first, c1), (second, c2)):
        side = _bound_of(cond)
        if side is None or value.has(X, Y):
            return None
        bounds[side[0]] = (value, side[1], side[2])
    if set(bounds) != {"below", "above"}:
        return None
    v = bounds["below"][2]
    if bounds["above"][2] != v:
        return None
    slope = sympy.diff(f, v)
    if not f.is_polynomial(v) or slope.has(v) or slope.is_positive is not True:
        return None
    (low, p, _), (high, q, _) = bounds["below"], bounds["above"]
    if f.subs(v, p) != low or f.subs(v, q) != high:
        return None
    return sympy.Min(sympy.Max(f, low), high)


def _bound_of(cond):
    """("below", k, v) for v <= k (or v < k), ("above", k, v) for v >= k; else None."""
    if not isinstance(cond, Relational) or cond.rel_op in ("==", "!="):
        return None
    arrays = cond.free_symbols & {X, Y}
    if len(arrays) != 1:
        return None
    (v,) = arrays
    rel = cond if cond.lhs == v else cond.reversed
    if rel.lhs != v or rel.rhs.has(v):
        return None
    return ("below" if rel.rel_op in ("<", "<=") else "above", rel.rhs, v)


def select_as_sum(expr: sympy.Expr) -> sympy.Expr | None:
    """Piecewise((f, v > k), (g, True)) -> f(max(v, k)) + g(min(v, k)) where
    f(k) = g(k) = 0 (ELU, SELU, CELU, LeakyReLU at k = 0).

    On each side the other term is g(k) or f(k), exactly 0.0, so the sum is the
    select to the last bit, NaN and infinities included (ELU(-inf) = 0 + g(-inf)).
    A select mispredicts a branch at every sign change of the input; np.maximum,
    np.minimum and an addition do not branch.  k must be a number or built from
    parameters by arithmetic (no pi or functions, which would not round to 0).
    """
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 2:
        return None
    (f, cond), (g, default) = expr.args
    if default is not sympy.true or not isinstance(cond, Relational):
        return None
    arrays = cond.free_symbols & {X, Y}
    if len(arrays) != 1 or cond.rel_op in ("==", "!="):
        return None
    (v,) = arrays
    rel = cond if cond.lhs == v else cond.reversed
    k = rel.rhs
    if rel.lhs != v or k.has(v) or k.atoms(sympy.Function) or k.has(sympy.pi, sympy.E):
        return None
    if f.subs(v, k) != 0 or g.subs(v, k) != 0:
        return None
    if rel.rel_op in (">", ">="):
        f_side, g_side = sympy.Max(v, k), sympy.Min(v, k)
    else:
        f_side, g_side = sympy.Min(v, k), sympy.Max(v, k)
    return f.xreplace({v: f_side}) + g.xreplace({v: g_side})


def select_as_blend(expr: sympy.Expr) -> sympy.Expr | None:
    """Piecewise((a, v > k), (b, True)) -> blend(v > k, a(max(v, k)), b(min(v, k))).

    Each branch is evaluated only on its own side of the kink (clamped there), so
    it is finite wherever the select's input is finite if it is finite at the kink
    itself; then c*a + (not c)*b equals the select to the last bit, with no branch
    per element (ELU's backward: 1 where y > 0, else y + alpha).  NaN fails the
    condition and reaches b, or a through its clamp: one of them must depend on v.
    """
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 2:
        return None
    (a, cond), (b, default) = expr.args
    side = _bound_of(cond)
    if default is not sympy.true or side is None:
        return None
    where, k, v = side
    if k.atoms(sympy.Function) or not (a.has(v) or b.has(v)):
        return None
    for branch in (a, b):
        at_kink = branch.subs(v, k)
        if at_kink.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return None
    a_side, b_side = (sympy.Min(v, k), sympy.Max(v, k))
    if where == "above":
        a_side, b_side = b_side, a_side
    return blend(cond, a.xreplace({v: a_side}), b.xreplace({v: b_side}))


def guard_branches(expr: sympy.Expr) -> sympy.Expr | None:
    """Evaluate each non-linear branch of a select on an input clamped to its domain.

    np.where computes every branch everywhere, so ELU's alpha*expm1(x) overflows
    for x = 1000 although that branch is not selected there.  Clamping x to the
    branch's interval (Min(x, 0) for x <= 0) leaves the selected values unchanged.
    """
    if not isinstance(expr, sympy.Piecewise):
        return None
    changed, pieces, earlier = False, [], []
    for value, cond in expr.args:
        exclusive = sympy.And(cond, *[sympy.Not(c) for c in earlier])
        earlier.append(cond)
        guarded = _clamped_to(value, exclusive)
        changed |= guarded is not value
        pieces.append((guarded, cond))
    return sympy.Piecewise(*pieces) if changed else None


def _clamped_to(value, condition):
    """value with its variable clamped to the interval the condition allows."""
    for v in sorted(value.free_symbols & condition.free_symbols & {X, Y}, key=str):
        lower, upper = _interval(condition, v)
        if (lower is not None or upper is not None) and (
            _explosive(value, v) or _scaled_by_parameter(value, v)
        ):
            break
    else:
        return value
    clamped = v
    if lower is not None:
        clamped = sympy.Max(clamped, lower)
    if upper is not None:
        clamped = sympy.Min(clamped, upper)
    return value if clamped is v else value.xreplace({v: clamped})


def _scaled_by_parameter(value, v) -> bool:
    """Whether value multiplies (or divides) v by a parameter, which may
    overflow for large v: CELU's 1 + y/alpha, with alpha = 0.7 at y = 1e308."""
    return any(
        isinstance(node, sympy.Mul)
        and node.has(v)
        and any(not f.has(v) and f.free_symbols for f in node.args)
        for node in sympy.preorder_traversal(value)
    )


def _interval(condition, v):
    """(lower, upper) bounds on v implied by a conjunction of relations, or None."""
    relations = sympy.And.make_args(condition)
    lower = upper = None
    for rel in relations:
        if rel is sympy.true:
            continue
        if not isinstance(rel, Relational) or rel.rel_op in ("==", "!="):
            return None, None
        if rel.lhs == v and not rel.rhs.has(v):
            bound, op = rel.rhs, rel.rel_op
        elif rel.rhs == v and not rel.lhs.has(v):
            bound, op = rel.lhs, rel.reversed.rel_op
        else:
            return None, None
        if op in (">", ">="):
            if lower is not None:
                return None, None
            lower = bound
        else:
            if upper is not None:
                return None, None
            upper = bound
    return lower, upper


def _one_plus_exp_argument(expr: sympy.Expr) -> sympy.Expr | None:
    """u where expr is 1 + exp(u), else None."""
    if not isinstance(expr, sympy.Add):
        return None
    constant, rest = expr.as_coeff_Add()
    if constant != 1 or not isinstance(rest, sympy.exp):
        return None
    return rest.args[0]


# -- polynomial arguments of exp ------------------------------------------------------

#: Functions whose relative error is |u| times their argument's as u grows, and
#: their forms that correct a polynomial argument's rounding.
_OF_POLYNOMIAL = {sympy.exp: exp_of_polynomial, sigmoid: sigmoid_of_polynomial}
_MAX_POLYNOMIAL_DEGREE = 8


def rounded_polynomial_arguments(expr: sympy.Expr) -> sympy.Expr | None:
    """exp(P) or sigmoid(P), P a polynomial in x (or in a clipped x) whose
    computed value rounds -> exp_of_polynomial / sigmoid_of_polynomial(P, v,
    coefficients as hi, lo pairs).

    A rounding of P by e costs exp(P) a relative |P*e|: GELU's tanh form,
    sigmoid(2*sqrt(2/pi)*(x + 0.044715*x**3)), was 300 ulps off at x = -14.  A
    P that is exact in floating point (x, -x, 2*x) is left alone.
    """
    wrapper = _OF_POLYNOMIAL.get(type(expr))
    if wrapper is None:
        return None
    found = _rounding_polynomial(expr.args[0])
    if found is None:
        return None
    v, beyond, coefficients = found
    return wrapper(expr.args[0], v, beyond, *coefficients)


def _rounding_polynomial(p: sympy.Expr):
    """(v, beyond, hi/lo coefficient pairs) where p is a polynomial with numeric
    coefficients in v (x or one clamp of x) that does not compute exactly, and
    its terms' magnitudes add up to 2 or more where |v| > beyond."""
    clamps = {
        node
        for node in sympy.preorder_traversal(p)
        if isinstance(node, (clip, finite, tame)) and node.args[0] == X
    }
    if len(clamps) > 1:
        return None
    v = clamps.pop() if clamps else X
    t = sympy.Dummy("t")
    body = p.xreplace({v: t})
    if body.free_symbols != {t}:
        return None  # x outside the clamp, or a parameter
    try:
        poly = sympy.Poly(sympy.expand(body), t)
    except sympy.PolynomialError:
        return None
    coefficients = poly.all_coeffs()[::-1]  # lowest power first
    degree = len(coefficients) - 1
    if not 1 <= degree <= _MAX_POLYNOMIAL_DEGREE:
        return None
    if not all(c.is_number and c.is_real for c in coefficients):
        return None
    if degree == 1 and coefficients[0] == 0 and _power_of_two(abs(coefficients[1])):
        return None  # c*v with c = +-2**k: exact
    pairs = []
    for c in coefficients:
        exact = sympy.N(c, 40)
        hi = float(exact)
        pairs += [sympy.Float(hi), sympy.Float(float(exact - sympy.Float(hi, 40)))]
    return v, sympy.Float(_terms_reach(coefficients, 2.0)), pairs


def _terms_reach(coefficients, size: float) -> float:
    """The |v| from which sum |c_k| |v|**k reaches size (0 if it does at 0),
    rounded down to two digits: below it, P's rounding costs exp(P) an ulp or
    so, and the helpers need not correct it."""
    magnitudes = [abs(float(c)) for c in coefficients]

    def terms(r):
        return sum(m * r**k for k, m in enumerate(magnitudes))

    if terms(0.0) >= size:
        return 0.0
    low, high = 0.0, 1.0
    while terms(high) < size:
        low, high = high, 2 * high
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if terms(middle) < size else (low, middle)
    if low == 0.0:
        return 0.0
    unit = 10.0 ** (math.floor(math.log10(low)) - 1)
    return math.floor(low / unit) * unit


def _power_of_two(c: sympy.Expr) -> bool:
    return c.is_Rational and c > 0 and (c.p & (c.p - 1)) == 0 and (c.q & (c.q - 1)) == 0


# -- products past underflow -------------------------------------------------------

#: Functions that tend to exp(u) as their argument u -> -inf.
_EXPONENTIAL_TAIL = (sympy.exp, sigmoid, softplus)
#: Functions that are 0 only at 0 and monotonic: h(v) ~ h'(0)*v as v -> 0 keeps
#: an exponential tail exponential (tanh(softplus(x)) ~ exp(x)).
_VANISHING_AT_ZERO = (
    sympy.tanh,
    sympy.sinh,
    sympy.atan,
    sympy.asinh,
    sympy.erf,
    Expm1,
    Log1p,
)
#: log of float32's smallest normal number: below it a factor has lost bits.
_LOG_TINY_FLOAT32 = math.log(2.0**-126)


def tail_products(expr: sympy.Expr) -> sympy.Expr | None:
    """f*r -> tail_product(f, r, w, c), where f tends to c*exp(w) as w -> -inf
    and the rest r exceeds 1 somewhere f is below float32's normal range.

    There f is subnormal (or 0, once exp(-w) overflows inside sigmoid) while
    f*r is normal: x*sigmoid(x) at x = -714 came out 0 where the truth is
    -4.2e-308.  The helper recomputes those elements from exp(w/2).
    """
    if not isinstance(expr, sympy.Mul):
        return None
    for i, factor in enumerate(expr.args):
        tail = _exponential_tail(factor)
        if tail is None:
            continue
        exponent, scale, polynomial = tail
        rest = sympy.Mul(*expr.args[:i], *expr.args[i + 1 :])
        if (
            exponent.has(X)
            and rest.has(X)
            and not expr.has(Y)
            and _large_in_tail(rest, exponent)
        ):
            return tail_product(factor, rest, exponent, scale, *polynomial)
    return None


def _exponential_tail(expr: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr, tuple] | None:
    """(w, c, polynomial) where expr = c*exp(w)*(1 + O(exp(w))) as w -> -inf,
    else None; polynomial is w's variable and coefficients where w is a
    `sigmoid_of_polynomial`'s (or `exp_of_polynomial`'s) argument, else ()."""
    if isinstance(expr, _EXPONENTIAL_TAIL):
        return expr.args[0], sympy.S.One, ()
    if isinstance(expr, (sigmoid_of_polynomial, exp_of_polynomial)):
        return expr.args[0], sympy.S.One, (expr.args[1], *expr.args[3:])
    if isinstance(expr, _VANISHING_AT_ZERO):
        inner = _exponential_tail(expr.args[0])
        if inner is not None:
            v = sympy.Dummy("v")
            slope = sympy.diff(expr.func(v), v).subs(v, 0)
            return inner[0], slope * inner[1], inner[2]
    return None


def _large_in_tail(rest: sympy.Expr, exponent: sympy.Expr) -> bool:
    """Whether |rest| > 1 at some probe x where exp(exponent) is below float32's
    normal range: only there can the product be normal while the factor is not.
    Parameters are taken as 1 (their values are the layer's, at run time)."""
    parameters = {p: 1.0 for p in (rest.free_symbols | exponent.free_symbols) - {X}}
    for side in (-1, 1):
        for probe in _PROBES:
            point = {**parameters, X: side * probe}
            w, r = _value(exponent, point), _value(rest, point)
            if w is not None and r is not None and w < _LOG_TINY_FLOAT32 and abs(r) > 1:
                return True
    return False


# -- parameter-scaled arguments ---------------------------------------------------------


def scaled_arguments(expr: sympy.Basic) -> sympy.Basic | None:
    """p*u or u/p as the argument of a function or a side of a comparison ->
    scaled(u, p, ...) (`symgrad.functions.scaled`), for a parameter p (or a
    number, where p*u leaves float64 at x = +-max) and an array expression u: where the product overflows, +-inf is its rounding and
    the function's limit the true result, so the overflow is not an error."""
    if isinstance(expr, (clip, finite, tame, nearest, scaled, near_zero, near_root)):
        return None
    if isinstance(expr, (sigmoid_of_polynomial, exp_of_polynomial)):
        u, *rest = expr.args  # the rest are its variable and its coefficients
        scaled_u = _as_scaled(u)
        return expr.func(scaled_u, *rest) if scaled_u != u else None
    if isinstance(expr, sympy.Piecewise):  # its conditions are not expressions
        pieces = [
            (value, cond.replace(
                lambda r: isinstance(r, Relational),
                lambda r: r.func(_as_scaled(r.lhs), _as_scaled(r.rhs)),
            ))
            for value, cond in expr.args
        ]  # fmt: skip
        changed = any(
            c != old for (_, c), (_, old) in zip(pieces, expr.args, strict=True)
        )
        return sympy.Piecewise(*pieces) if changed else None
    if not isinstance(expr, sympy.Function) or isinstance(expr, _PERIODIC):
        return None  # sin(inf) is NaN: a periodic function has no limit to give
    args = tuple(_as_scaled(a) for a in expr.args)
    return expr.func(*args) if args != expr.args else None


_PERIODIC = (sympy.sin, sympy.cos, sympy.tan)


def _as_scaled(arg):
    if not isinstance(arg, sympy.Mul):
        return arg
    fixed, varying = arg.as_independent(X, Y, as_Add=False)
    if not varying.has(X, Y):
        return arg
    if not (fixed.free_symbols - {X, Y}) and not _overflows_at_the_ends(arg):
        return arg  # a number times an input that stays in range: plain
    if fixed.is_Pow and fixed.exp == -1:
        return scaled(varying, fixed.base, 1)
    return scaled(varying, fixed, 0)


def _overflows_at_the_ends(arg) -> bool:
    """Whether a number times the input leaves float64 at x = +-max (2*x in
    sigmoid(2*x) does; 2*clip(x, -22, 7.5) does not)."""
    if arg.has(Y):
        return False
    return any(_value(arg, {X: side * 1.7e308}) is None for side in (-1, 1))


#: Passes in order: sigmoid forms first (they remove most exp), then the local
#: rules, then clipping for whatever can still overflow.
FIRST: Rule = rational_in_exp_as_sigmoid
LAST: Rule = clip_saturating
#: Rules applied at every node, children first, in this order.
BOTTOM_UP: tuple[Rule, ...] = (
    softplus_of_exp,
    log_of_sigmoid,
    log1p,
    expm1,
    erfc_of_complement,
    erfc_of_scaled,
    exp_of_square,
    tanh_complement,
    cos_complement,
    sech_squared,
    piecewise_as_extremum,
    guard_branches,
    select_as_clamp,
    select_as_sum,
    select_as_blend,
)


#: Rules the `accuracy` policy adds: they keep the tails at the cost of a pass.
ACCURACY: tuple[Rule, ...] = (sigmoid_complement,)


@functools.lru_cache(maxsize=1024)
def stabilize(expr: sympy.Basic, prefer: str = "memory") -> sympy.Basic:
    """``expr`` with every rule applied throughout (see the module docstring);
    under ``prefer="accuracy"`` the `ACCURACY` rules too.  Memoised: each
    layer's formulas, docstring and shared part ask again."""
    rules = BOTTOM_UP + ACCURACY if prefer == "accuracy" else BOTTOM_UP
    with stage("rewriting for stability"):
        first = _bottom_up(_top_down(expr, FIRST), rules)
        clipped = _top_down(first, LAST, descend=True)
        exact = _top_down(clipped, rounded_polynomial_arguments, descend=True)
        products = _top_down(exact, tail_products, descend=True)
        return _top_down(
            _top_down(products, _CANCELLING_SUMS[prefer]),
            scaled_arguments,
            descend=True,
        )


def _cancelling_sums(expr: sympy.Expr, fit_roots: bool = True) -> sympy.Expr | None:
    """A sum whose terms cancel at 0 -> the polynomial there; else the series
    in each tail where it decays (`symgrad.tails`) and, with ``fit_roots``
    (`accuracy`), the polynomial about each root where its terms cancel.  The
    polynomial about a root costs SiLU's layer 3-7x its time, so `memory`
    keeps the sum there and states the window; its tails begin beyond that
    window all the same, so that the two policies' tails are one table (the
    loss there is the sum's rounding, not an output form's: Mish's and
    GELU-tanh's NumPy layers take 1.06-1.35x their time at 1e6 elements for
    it).  `memory` leaves a complement (`_is_complement`) as it is."""
    near_zero = series_near_zero(expr)
    if near_zero is not None:
        return near_zero
    if not fit_roots and _is_complement(expr):
        return None
    about_roots = series_near_root(expr)
    windows = [n.window for n in (about_roots or expr).atoms(near_root)]
    tails = _decaying_tails(expr, windows)
    if not fit_roots or about_roots is None:
        return tails
    if tails is None:
        return about_roots
    return about_roots.xreplace({expr: tails})  # the root's window comes first


def _is_complement(expr: sympy.Expr) -> bool:
    """Whether a sum has a number among its terms: sigmoid(x) - 1 decays as
    x -> inf because sigmoid(x) tends to 1.  The complement rules write it
    exactly (sigmoid(-x), an `accuracy` rule); `memory` computes it as written
    where it reads the cached output (SiLU's s - 1), and states that loss."""
    return isinstance(expr, sympy.Add) and any(t.is_number for t in expr.args)


def _decaying_tails(expr: sympy.Expr, windows) -> sympy.Expr | None:
    """`symgrad.tails.series_in_tails` for a sum in x (or in p*x alone), each
    tail beginning outside the ``windows`` fitted about roots."""
    if not isinstance(expr, sympy.Add) or X not in expr.free_symbols:
        return None
    found = in_one_variable(expr)
    if found is None:
        return None
    shape, v = found
    outside = {-1: min((w[0] for w in windows), default=0.0)}
    outside[1] = max((w[1] for w in windows), default=0.0)
    return attempt(
        "expanding a decaying sum in its exponential",
        lambda: series_in_tails(expr, v, shape, outside),
        lambda: None,
        share=0.2,
    )


def exact_branch(expr: sympy.Expr) -> sympy.Expr:
    """The rules that make a branch exact where its values are: a rounding
    polynomial's exp corrected, products past underflow computed in halves."""
    exact = _top_down(expr, rounded_polynomial_arguments, descend=True)
    return _top_down(exact, tail_products, descend=True)


#: The rule for cancelling sums, per policy.
_CANCELLING_SUMS: dict[str, Rule] = {
    "memory": functools.partial(_cancelling_sums, fit_roots=False),
    "accuracy": _cancelling_sums,
}


def _top_down(expr: sympy.Basic, rule: Rule, descend: bool = False) -> sympy.Basic:
    """Apply rule at the largest matches; with ``descend``, inside them too."""
    if isinstance(expr, sympy.Expr):
        replacement = rule(expr)
        if replacement is not None:
            if not descend or not replacement.args:
                return replacement
            expr = replacement
    if not expr.args:
        return expr
    args = tuple(_top_down(a, rule, descend) for a in expr.args)
    return expr.func(*args) if args != expr.args else expr


def _bottom_up(expr: sympy.Basic, rules: tuple[Rule, ...]) -> sympy.Basic:
    if expr.args:
        args = tuple(_bottom_up(a, rules) for a in expr.args)
        if args != expr.args:
            expr = expr.func(*args)
    for _ in range(len(rules) * 4):  # each rule removes its pattern: this terminates
        for rule in rules:
            replacement = rule(expr) if isinstance(expr, sympy.Expr) else None
            if replacement is not None and replacement != expr:
                expr = _bottom_up(replacement, rules)
                break
        else:
            return expr
    return expr
