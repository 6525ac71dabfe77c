"""A series in the exponential where a sum decays in a tail: the tail regime.

Mish's slope, tanh(sp) + 4*x*sigmoid(x)*sigmoid(-2*sp)*sigmoid(2*sp) with sp =
softplus(x), tends to 0 like (x + 1)*exp(x) as x -> -inf.  Its terms hardly
cancel there, but each is a product of three or four NumPy functions of an ulp
or so, and their roundings add up: 6.7 ulps at x = -9.01.  Written in e =
exp(x), the slope is rational in e with coefficients that are polynomials in x,

    e*(4*(x + 1) + (4*x + 6)*e + 4*e**2 + e**3)/(e**2 + 2*e + 2)**2,

and in the tail, where e is small, it is e**m * sum c_k(x)*e**k: the leading
coefficient c_0 (x + 1) computed in double-double arithmetic, the others plain
(each is e times smaller), and one exp.  That is within 2 ulps (1.93 on
20,000 random points in x < -3).

`series_in_tails` finds such sums for any formula: every exp-like call (exp,
sigmoid, softplus, tanh ... of an integer multiple of one polynomial a(x)) is
written in e = exp(a), or exp(-a) on the side where a grows, and the
numerator's power series is divided by the denominator's.  It takes the first
switch point, from b = log(e) = -3 outward and no nearer than a root's fitted
window, from which `_MAX_TERMS` terms reach `_TRUNCATION` of the sum and the
series' terms do not cancel (checked in mpmath out to where the value
underflows), and builds `symgrad.functions.near_tail`.  Both policies apply
it (`memory` keeps the sum about a root, and its tail begins beyond that
window all the same), on the tail's elements only: the NumPy helpers pick
them out, the fused loops (numba) gather them per block of the array.
"""

from __future__ import annotations

import math

import mpmath
import sympy
from sympy.codegen.cfunctions import expm1 as Expm1

from .functions import (
    clip,
    exp_of_polynomial,
    finite,
    near_tail,
    scaled,
    sigmoid,
    sigmoid_of_polynomial,
    softplus,
    tail_product,
    tame,
)
from .model import X

#: Functions that are rational in exp of their argument (or, for softplus, whose
#: exp of an integer multiple is).
OF_EXP = (sympy.exp, sympy.tanh, sympy.cosh, sympy.sinh, sigmoid, softplus, Expm1)
#: The largest integer multiple of the common argument taken.
MAX_MULTIPLE = 4
#: The most terms of the series, and the relative truncation they must reach.
_MAX_TERMS, _TRUNCATION = 24, mpmath.mpf(2) ** -60
#: log(e) at the switch points tried, nearest first: at -3, e = 0.05.
_SWITCHES = (-3, -4, -5, -6, -8, -10, -12, -16, -20, -24, -32)
#: How much the series' terms may cancel (their sizes' sum over the sum's).
_CANCELLATION = 1.5
#: Beyond the clamp the value is below this: 0 in every float.
_SILENT = mpmath.mpf(2) ** -1100
#: The highest degree in x of a coefficient, and of the exponent.
_MAX_DEGREE = 8


def common_base(calls: list[sympy.Expr], scaled: bool = True) -> sympy.Expr | None:
    """The argument a of which every innermost call takes a small integer
    multiple (with a free of such calls), or None.  a is each argument's part
    after its integer coefficient where that serves all (sigmoid(2*u) and
    sigmoid(-2*u): u), else, if ``scaled``, one of the arguments
    (sigmoid(0.8*x) and tanh(1.6*x): 0.8*x)."""
    innermost = [c for c in calls if not any(c.args[0].has(o) for o in calls)]
    arguments = [call.args[0] for call in innermost]
    if not arguments or any(a.has(*OF_EXP) or not a.free_symbols for a in arguments):
        return None
    bases = {a.as_coeff_Mul()[1] for a in arguments}
    candidates = [bases.pop()] if len(bases) == 1 else []
    if scaled:
        candidates += dict.fromkeys(arguments)
    for base in candidates:
        if all(_small_multiple(a, base) for a in arguments):
            return base
    return None


def _small_multiple(argument: sympy.Expr, base: sympy.Expr) -> bool:
    """Whether argument = k*base for an integer k, 0 < |k| <= `MAX_MULTIPLE`."""
    ratio = sympy.simplify(argument / base)
    return ratio.is_Integer and 0 < abs(ratio) <= MAX_MULTIPLE


def rational_in_exponential(
    expr: sympy.Expr, scaled: bool = True
) -> tuple[sympy.Expr, sympy.Dummy, sympy.Expr] | None:
    """(a, e, R) with expr = R(e) at e = exp(a), R rational in e, for an
    expression whose exp-like calls (`OF_EXP`) all take integer multiples of
    one argument a, nested or not (`common_base`); else None."""
    calls = list(
        dict.fromkeys(
            n for n in sympy.preorder_traversal(expr) if isinstance(n, OF_EXP)
        )
    )
    base = common_base(calls, scaled)
    if base is None:
        return None
    e = sympy.Dummy("e", positive=True)
    # Each innermost argument is k*a: it becomes k*log(e).
    logs = {
        c.args[0]: sympy.simplify(c.args[0] / base) * sympy.log(e)
        for c in calls
        if not any(c.args[0].has(o) for o in calls)
    }
    outermost = {
        call: call.func(*(arg.xreplace(logs) for arg in call.args)).rewrite(sympy.exp)
        for call in calls
        if not any(call is not other and other.has(call) for other in calls)
    }
    in_e = sympy.cancel(sympy.together(expr.xreplace(outermost)))
    if in_e.has(sympy.exp, sympy.log) or not in_e.has(e):
        return None
    return base, e, in_e


def plain(expr: sympy.Expr) -> sympy.Expr:
    """expr as mathematics: the helpers' products, polynomial arguments and
    clamps (which change nothing where the values are finite) unwrapped."""
    return (
        expr.replace(
            lambda n: isinstance(n, (tail_product, scaled)), lambda n: n.as_product()
        )
        .replace(
            lambda n: isinstance(n, (sigmoid_of_polynomial, exp_of_polynomial)),
            lambda n: n.plain,
        )
        .replace(lambda n: isinstance(n, (clip, finite, tame)), lambda n: n.args[0])
    )


def series_in_tails(
    expr: sympy.Expr,
    v: sympy.Expr,
    shape: sympy.Expr,
    outside: dict[int, float] | None = None,
) -> sympy.Expr | None:
    """expr with a `near_tail` on each side where it decays exponentially, or
    None.  ``shape`` is expr as a function of X standing for ``v`` (x itself,
    or p*x for a parameter p: `symgrad.series.in_one_variable`).  A tail
    begins no nearer than ``outside[side]`` (a root's fitted window ends
    there: fewer elements and fewer terms)."""
    if not isinstance(expr, sympy.Add):
        return None
    found = rational_in_exponential(plain(shape))
    if found is None:
        return None
    base, e, in_e = found
    if base.free_symbols != {X} or not base.is_polynomial(X):
        return None
    exponent = sympy.Poly(base, X)
    if not 1 <= exponent.degree() <= _MAX_DEGREE:
        return None
    if not all(c.is_number for c in exponent.all_coeffs()):
        return None
    result = expr
    for side in (-1, 1):
        lead = exponent.LC() * side ** exponent.degree()
        b = base if lead < 0 else -base  # b -> -inf on this side
        rational = in_e if lead < 0 else sympy.cancel(in_e.xreplace({e: 1 / e}))
        tail = _tail(rational, e, b, side, (outside or {}).get(side, 0.0))
        if tail is not None:
            b, switch, lowest, m, coefficients = tail
            table = _table(b, m, coefficients, switch, lowest, side)
            result = near_tail(result, v, *map(sympy.Float, table))
    return None if result is expr else result


def _tail(rational, e, b, side, outside=0.0):
    """(b, switch, lowest, m, [c_0, c_1, ...]) with rational = e**m * sum
    c_k*e**k, e = exp(b), to `_TRUNCATION` for side*x > side*switch, clamped at
    lowest (beyond which the value is 0 in every float); or None.  b is the
    one given, or a multiple of it where rational is in a power of e alone."""
    numerator, denominator = sympy.fraction(rational)
    try:
        top, bottom = sympy.Poly(numerator, e), sympy.Poly(denominator, e)
    except sympy.PolynomialError:
        return None
    tops, bottoms = top.all_coeffs()[::-1], bottom.all_coeffs()[::-1]
    # In e**g alone (GELU-tanh's slope is rational in exp(2*a)): a series in it.
    powers = [k for c in (tops, bottoms) for k, term in enumerate(c) if term != 0]
    g = math.gcd(*powers)
    value = sympy.lambdify(X, rational.xreplace({e: sympy.exp(b)}), "mpmath")
    if g > 1:
        tops, bottoms, b = tops[::g], bottoms[::g], g * b
    if not bottoms[0].is_number or bottoms[0] == 0:
        return None  # the series' coefficients would not be polynomials in x
    m = next(k for k, c in enumerate(tops) if c != 0)
    if m == 0:
        return None  # it does not decay
    tops = tops[m:]
    coefficients = []
    for k in range(_MAX_TERMS):
        c = tops[k] if k < len(tops) else sympy.S.Zero
        for j in range(1, min(k, len(bottoms) - 1) + 1):
            c -= bottoms[j] * coefficients[k - j]
        c = sympy.expand(c / bottoms[0])
        if not c.is_polynomial(X) or sympy.degree(c, X) > _MAX_DEGREE:
            return None
        coefficients.append(c)
    polynomials = [sympy.Poly(c, X) for c in coefficients]
    if not all(c.is_number for p in polynomials for c in p.all_coeffs()):
        return None
    with mpmath.workdps(50):
        in_mpmath = [
            [mpmath.mpf(sympy.N(c, 50)) for c in p.all_coeffs()] for p in polynomials
        ]
    exponent = sympy.lambdify(X, b, "mpmath")
    lowest = _silent_from(exponent, in_mpmath[0], m, side)
    if lowest is None:
        return None
    for at in _SWITCHES:
        switch = _where(exponent, at, side)
        if switch is None:
            continue
        switch = max(switch, outside) if side > 0 else min(switch, outside)
        if (lowest - switch) * side <= 0:
            continue
        terms = _terms_needed(value, exponent, in_mpmath, m, switch, lowest)
        if terms is not None:
            return b, switch, lowest, m, polynomials[:terms]
    return None


def _where(exponent, at: float, side: int) -> float | None:
    """The x on ``side``, a multiple of 1/16 rounded outward, from which the
    exponent is below ``at`` (found by bisection; it decreases outward)."""
    near, far = 0.0, side * 1.0
    while exponent(far) >= at:
        far *= 2
        if abs(far) > 1e6:
            return None
    for _ in range(80):
        middle = (near + far) / 2
        near, far = (middle, far) if exponent(middle) >= at else (near, middle)
    return math.ceil(far * 16) / 16 if side > 0 else math.floor(far * 16) / 16


def _silent_from(exponent, leading, m: int, side: int) -> float | None:
    """The integer x on ``side`` beyond which |e**m * c_0(x)| < `_SILENT`."""
    with mpmath.workdps(30):
        x = side * 1.0
        for _ in range(60):
            size = m * exponent(x) + mpmath.log(abs(mpmath.polyval(leading, x)) + 1)
            if size < mpmath.log(_SILENT):
                return float(math.ceil(x) if side < 0 else math.floor(x))
            x *= 2
    return None


def _terms_needed(value, exponent, polynomials, m, switch, lowest):
    """The fewest terms that reach `_TRUNCATION` of the value from the switch
    to the clamp, if the series' terms cancel by at most `_CANCELLATION` there
    and the exponent keeps decreasing; else None."""
    needed = 1
    previous = None
    with mpmath.workdps(50):
        for x in _grid(switch, lowest):
            b = exponent(mpmath.mpf(x))
            if previous is not None and b > previous:
                return None
            previous = b
            e = mpmath.exp(b)
            truth = value(mpmath.mpf(x)) / e**m
            if truth == 0:
                return None
            terms = [mpmath.polyval(p, x) * e**k for k, p in enumerate(polynomials)]
            if sum(abs(t) for t in terms) > _CANCELLATION * abs(truth):
                return None
            total = mpmath.mpf(0)
            for k, term in enumerate(terms):
                total += term
                if abs(total - truth) <= _TRUNCATION * abs(truth):
                    needed = max(needed, k + 1)
                    break
            else:
                return None
    return needed


def _grid(switch: float, lowest: float) -> list[float]:
    """Points from the switch to the clamp: dense near the switch (where the
    most terms are needed), geometric beyond."""
    near = [switch + (lowest - switch) * k / 64 for k in range(8)]
    far = [switch + (lowest - switch) * 2.0 ** (k / 4 - 6) for k in range(25)]
    return sorted(set(near + far), key=lambda x: abs(x - switch))


def _pairs(values) -> list[float]:
    """Each exact value as a high and a low float (about 106 bits)."""
    pairs = []
    for c in values:
        exact = sympy.N(c, 40)
        high = float(exact)
        pairs += [high, float(exact - sympy.Float(high, 40))]
    return pairs


def _table(b, m, polynomials, switch, lowest, side) -> list[float]:
    """What the helpers read: switch, side, lowest, m, terms, the degree of the
    coefficients and of the exponent, the exponent's coefficients as pairs,
    c_0's as pairs, and c_1 ... plain, each lowest power first."""
    exponent = sympy.Poly(b, X).all_coeffs()[::-1]
    width = max(len(p.all_coeffs()) for p in polynomials)
    rows = [p.all_coeffs()[::-1] for p in polynomials]
    rows = [[*row, *[0] * (width - len(row))] for row in rows]
    head = [switch, side, lowest, m, len(polynomials), width - 1, len(exponent) - 1]
    rest = [float(c) for row in rows[1:] for c in row]
    return [*head, *_pairs(exponent), *_pairs(rows[0]), *rest]
