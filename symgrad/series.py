"""A polynomial where a sum's terms cancel at 0: the series regime.

x - tanh(x) is x**3/3 to leading order but is computed as the difference of two
numbers near x: it loses a digit per decade of x below 1 and is 0 below 1e-8.
`series_near_zero` finds such sums by measurement (the value at 0 is 0 while the
terms are not, and they cancel by a factor of a million at 1e-4), reads their
order and parity at 0, picks the switch point where the terms cancel by at most
`_CANCELLATION`, and fits P with expr = v**k * P(2 v**2/c**2 - 1) in mpmath (40
digits, Chebyshev) to the smallest degree that reaches `_FIT_ERROR`.  The result
is `symgrad.functions.near_zero`, which the printers compute only on the
elements below the switch.  `symgrad.rewrite.stabilize` applies it last.
"""

from __future__ import annotations

import functools
import math

import mpmath
import sympy

from .budgets import attempt
from .functions import blend, clip, near_zero
from .model import X, Y
from .verify import evaluate_fixed

#: The cancellation (sum of the terms' sizes over the sum's) up to which the
#: formula as written is kept: about 2 ulps lost to its rounding, at most.
_CANCELLATION = 4
#: The largest polynomial a series may take, and the relative error it must meet.
_MAX_DEGREE, _FIT_ERROR = 30, 4e-16


def series_near_zero(expr: sympy.Expr) -> sympy.Expr | None:
    """A sum whose terms cancel at v = 0 -> a polynomial there, the sum beyond.

    x - tanh(x) is x**3/3 to leading order, computed as the difference of two
    numbers near x: it loses a digit per decade of x below 1 and is 0 below
    1e-8.  Where the terms cancel by more than `_CANCELLATION`, |v| < c, the sum
    is v**k * P(s) instead, with k its order at 0 and P fitted in mpmath
    (Chebyshev, s = 2 v**2/c**2 - 1 for an odd or even sum) to 4e-16; the
    polynomial reads v clipped to [-c, c], so it cannot overflow beyond c.
    """
    if not isinstance(expr, sympy.Add) or len(expr.free_symbols) != 1:
        return None
    (v,) = expr.free_symbols
    if v not in (X, Y) or expr.has(sympy.Piecewise, blend, near_zero):
        return None
    if not all(_open_around_zero(c) for c in expr.atoms(clip)):
        return None
    return attempt(
        "fitting a polynomial where terms cancel",
        lambda: _series_near_zero(expr, v),
        lambda: None,
        share=0.2,
    )


def _open_around_zero(c: clip) -> bool:
    """Whether a clip leaves its argument alone around 0 (x clipped to [-750,
    inf) is x there)."""
    _, lower, upper = c.args
    return bool(lower.is_number and upper.is_number and lower < 0 < upper)


def near_zero_series(
    expr: sympy.Expr, switch: float
) -> tuple[float, int, tuple[sympy.Float, ...]] | None:
    """(switch, order, coefficients) of expr (in x) about 0 as
    `symgrad.functions.near_zero` takes them, fitted on |x| <= switch; None
    if expr is not 0 at 0, odd or even, or of a measurable order there, or
    no polynomial up to `_MAX_DEGREE` reaches `_FIT_ERROR`.  The regime search
    (`symgrad.regimes`) asks for it where a formula fails near 0."""
    if evaluate_fixed(expr, {X: 0.0}) != 0:
        return None
    order, parity = _order_at_zero(expr, X), _parity(expr, X)
    if (
        order is None
        or parity is None
        or order < 1
        or (order % 2 == 0) != (parity == 1)
    ):
        return None
    coefficients = _fitted(expr, X, order, switch)
    if coefficients is None:
        return None
    return switch, order, tuple(map(sympy.Float, coefficients))


def _series_near_zero(expr, v):
    at = functools.partial(_cancellation, expr, v)
    zero = evaluate_fixed(expr, {v: 0.0})
    if zero is None or zero != 0 or not _cancels_at_zero(at):
        return None
    order = _order_at_zero(expr, v)
    parity = _parity(expr, v)
    if order is None or parity is None:
        return None
    switch = _switch_point(at)
    if switch is None:
        return None
    coefficients = _fitted(expr, v, order, switch)
    if coefficients is None:
        return None
    return near_zero(
        expr, v, sympy.Float(switch), order, *map(sympy.Float, coefficients)
    )


def _cancels_at_zero(cancellation) -> bool:
    """Whether the terms cancel without bound toward 0: by a factor of a
    million at 1e-4 (x - tanh(x), of order 3), or by one that keeps growing to
    a million at 1e-8 (1 - 2*sigmoid(-x), of order 1, cancels by 4/|x|)."""
    near, nearer = cancellation(1e-4), cancellation(1e-8)
    if near is None or nearer is None:
        return False
    return near >= 1e6 or (nearer >= 1e6 and nearer >= 1e3 * near)


def _cancellation(expr, v, at: float):
    """sum of |terms| / |sum| at v = at (in 50 digits), or None."""
    point = {v: at}
    total = evaluate_fixed(expr, point, digits=50)
    sizes = [evaluate_fixed(term, point, digits=50) for term in expr.args]
    if total is None or None in sizes or total == 0:
        return None
    return float(sum(abs(s) for s in sizes) / abs(total))


def _order_at_zero(expr, v) -> int | None:
    """k where expr ~ v**k at 0 (an integer, measured), or None."""
    small, smaller = (evaluate_fixed(expr, {v: h}, digits=60) for h in (1e-5, 5e-6))
    if not small or not smaller:
        return None
    order = math.log(abs(small / smaller)) / math.log(2)
    return round(order) if abs(order - round(order)) < 1e-3 else None


def _parity(expr, v) -> int | None:
    """+1 (even) or -1 (odd) at sample points, else None."""
    with mpmath.workdps(50):
        pairs = [
            (
                evaluate_fixed(expr, {v: -h}, digits=50),
                evaluate_fixed(expr, {v: h}, digits=50),
            )
            for h in (0.3, 0.7, 1.1)
        ]
        if any(None in pair for pair in pairs):
            return None
        for sign in (1, -1):
            if all(abs(a - sign * b) <= 1e-40 * abs(b) for a, b in pairs):
                return sign
    return None


def _switch_point(cancellation) -> float | None:
    """The smallest round c beyond which (up to 8) the terms cancel by no more
    than `_CANCELLATION`, on both sides."""
    grid = [k / 20 for k in range(1, 161)]
    ratios = [(cancellation(c), cancellation(-c)) for c in grid]
    for i, c in enumerate(grid):
        if all(
            r is not None and r <= _CANCELLATION for pair in ratios[i:] for r in pair
        ):
            return c
    return None


def _fitted(expr, v, order, switch):
    """Coefficients (lowest first) of P with expr = v**order * P(2 v**2/c**2 - 1)
    to `_FIT_ERROR` on |v| <= c, of the smallest degree that does, or None.
    The fit (mpmath's chebyfit) is in 40 digits; only the coefficients are
    rounded to float64."""

    def target(u):
        x = mpmath.sqrt((u + 1) / 2) * switch
        if x == 0:
            x = mpmath.mpf(switch) * mpmath.mpf(10) ** -12
        # A value of order x**order computed from terms of order 1 (log(cosh(x)),
        # 1 - cos(x)) or x (x - atan(x)) loses about order*log10(1/x) digits.
        lost = (order + 1) * max(0, int(-mpmath.log10(x)) + 1)
        value = evaluate_fixed(expr, {v: x}, digits=40 + lost)
        return mpmath.mpf(value) / x**order

    with mpmath.workdps(40):
        checks = [mpmath.mpf(k) / 100 - 1 for k in range(201)]
        exact = [target(u) for u in checks]
        for degree in range(4, _MAX_DEGREE + 1, 2):
            poly = mpmath.chebyfit(target, [-1, 1], degree + 1)
            coefficients = [float(c) for c in reversed(poly)]
            worst = max(
                abs(_horner_exact(coefficients, u) - e) / abs(e)
                for u, e in zip(checks, exact, strict=True)
            )
            if worst <= _FIT_ERROR:
                return coefficients
    return None


def _horner_exact(coefficients, u):
    total = mpmath.mpf(0)
    for c in reversed(coefficients):
        total = total * u + mpmath.mpf(c)
    return total
