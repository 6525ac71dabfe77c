"""A polynomial where a sum's terms cancel at 0 or at a root: the series regimes.

x - tanh(x) is x**3/3 to leading order but is computed as the difference of two
numbers near x: it loses a digit per decade of x below 1 and is 0 below 1e-8.
`series_near_zero` finds such sums by measurement (the value at 0 is 0 while the
terms are not, and they cancel by a factor of a million at 1e-4), reads their
order and parity at 0, picks the switch point where the terms cancel by at most
`_CANCELLATION`, and fits P with expr = v**k * P(2 v**2/c**2 - 1) in mpmath (40
digits, Chebyshev) to the smallest degree that reaches `_FIT_ERROR`.  The result
is `symgrad.functions.near_zero`, which the printers compute only on the
elements below the switch.  `symgrad.rewrite.stabilize` applies it last.

A sum can also cancel where it crosses 0 away from 0: Mish's slope, tanh(sp)
+ x*sech(sp)**2*sigmoid(x), is 0 at x = -1.19 where each term is 0.3, and is
off there by the terms' ulps over its own size (1e16 ulps at the root, 5 at
-2).  `series_near_root` (a `prefer="accuracy"` rule: its window can hold a
third of the data, and SiLU's layer took 3-7x its time with it) finds such
roots by a sign change of the sum, takes the window where the terms cancel by
more than 1.5 (or 2, 3 ...), and fits the sum there as d*P(d), d = x - r:
r to 140 bits, so that d keeps its digits (`symgrad.functions.minus_root`),
and P in Chebyshev points, its coefficients as pairs of floats (about 106
bits), which the helpers evaluate in double-double arithmetic: the result is
the fit's value rounded once.  (P in a variable mapped onto [-1, 1], in
float64, lost up to 5 ulps to the mapping's and Horner's roundings near the
window's ends, where P's terms cancel.)
"""

from __future__ import annotations

import functools
import itertools
import math

import mpmath
import sympy

from .budgets import attempt
from .functions import (
    blend,
    clip,
    finite,
    near_root,
    near_zero,
    scaled,
    shifted_polynomial,
    tame,
)
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
    if v not in (X, Y) or expr.has(sympy.Piecewise, blend, near_zero, near_root):
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


#: The cancellations from which a sum about its root is fitted instead, the
#: first whose window a polynomial fits: beyond 1.5 the terms' 2-3 ulps each
#: would exceed the 4-ulp bound; a wide window can need more terms than fit.
_ROOT_CANCELLATIONS = (1.5, 2.0, 3.0, 4.0, 8.0)
#: Where roots are looked for (a sign change between neighbours), and the most
#: a sum may have there (a periodic one has more: it is left as it is).
_ROOT_SCAN, _ROOT_STEP = 20.0, 0.25
#: A sum with more roots than this (a periodic one) is not fitted about them.
MAX_ROOTS = 4
#: Window ends are multiples of this, and at most this far from the root.
_WINDOW_STEP, _WINDOW_REACH = 1 / 16, 8.0
#: Chebyshev points of the fit, the largest degree kept, and the relative
#: error the polynomial with its coefficients as pairs of floats must keep
#: (an eighth of an ulp: the helpers' double-double evaluation adds 1e-30).
_ROOT_NODES, _ROOT_MAX_DEGREE, _ROOT_FIT_ERROR = 64, 40, 2**-56


def series_near_root(expr: sympy.Expr) -> sympy.Expr | None:
    """A sum in x whose terms cancel where it crosses 0 -> (x - r)*P there.

    Mish's slope is the sum of two terms of 0.3 that cancel at x = -1.19, and
    their few ulps each become 1e16 ulps of the sum at the root and 5 at -2.
    Each root (a sign change on [-20, 20]) gets a `symgrad.functions.near_root`
    on the window where the terms cancel by more than `_ROOT_CANCELLATIONS`.
    A sum in p*x alone, p a parameter (Swish's), is fitted in u = p*x.  A line
    is left to the printers, which factor it about its root.
    """
    if not isinstance(expr, sympy.Add) or X not in expr.free_symbols:
        return None
    if expr.has(sympy.Piecewise, blend, near_zero, near_root):
        return None
    found = in_one_variable(expr)
    if found is None:
        return None
    shape, u = found
    if _line(shape):
        return None  # the printers factor it about its root (`root_factored`)
    return attempt(
        "fitting a polynomial about a root of a sum",
        lambda: _series_near_roots(expr, shape, u),
        lambda: None,
        share=0.2,
    )


def in_one_variable(expr) -> tuple[sympy.Expr, sympy.Expr] | None:
    """(the sum as a function of X, the array it reads there): (expr, x) for
    a sum in x alone; for one in x and one parameter p that reads x only as
    p*x, (the sum with p*x as X, p*x as `scaled`); else None."""
    parameters = expr.free_symbols - {X}
    if not parameters:
        return expr, X
    if len(parameters) != 1:
        return None
    (p,) = parameters
    plain = expr.replace(lambda e: isinstance(e, scaled), lambda e: e.as_product())
    plain = plain.replace(lambda e: isinstance(e, (finite, tame)), lambda e: e.args[0])
    shape = plain.xreplace({X: X / p})
    # p*x, computed without an overflow warning where it leaves the float range.
    return (shape, scaled(X, p, 0)) if shape.free_symbols == {X} else None


def _line(expr) -> bool:
    """Whether expr is a*x + b with numbers a and b, x perhaps clamped (x - 0.5
    with x clipped to [-27, 28] is exact near 0.5 all the same)."""
    expr = expr.replace(
        lambda e: isinstance(e, (clip, finite, tame)), lambda e: e.args[0]
    )
    if not expr.is_polynomial(X):
        return False
    poly = sympy.Poly(expr, X)
    return poly.degree() == 1 and all(c.is_number for c in poly.all_coeffs())


def _series_near_roots(expr, shape, u):
    """expr with a polynomial about each root of shape (expr in u)."""
    roots = _roots(shape)
    if not roots or len(roots) > MAX_ROOTS:
        return None
    result = expr
    bounds = [-math.inf, *((a + b) / 2 for a, b in itertools.pairwise(roots)), math.inf]
    for root, (left, right) in zip(roots, itertools.pairwise(bounds), strict=True):
        fitted = _about_root(shape, root, left, right)
        if fitted is not None:
            parts, (lower, upper), coefficients = fitted
            constants = map(sympy.Float, (*parts, lower, upper, *coefficients))
            result = near_root(result, u, *constants)
    return None if result is expr else result


def _roots(expr) -> list[mpmath.mpf]:
    """The sum's roots on [-_ROOT_SCAN, _ROOT_SCAN] where its terms cancel,
    each found from a sign change and refined to 50 digits (bisection)."""
    count = round(2 * _ROOT_SCAN / _ROOT_STEP)
    points = [-_ROOT_SCAN + k * _ROOT_STEP for k in range(count + 1)]
    values = [evaluate_fixed(expr, {X: p}, digits=20) for p in points]
    roots = []
    for (a, fa), (b, fb) in itertools.pairwise(zip(points, values, strict=True)):
        if fa is None or fb is None:
            continue
        if fa == 0:
            roots.append(mpmath.mpf(a))
        elif fa * fb < 0:
            roots.append(_bisected(expr, a, b, fa))
        if len(roots) > MAX_ROOTS:
            break
    return [r for r in roots if _cancels_at(expr, r)]


def _bisected(expr, a: float, b: float, fa) -> mpmath.mpf:
    with mpmath.workdps(50):
        low, high, sign = mpmath.mpf(a), mpmath.mpf(b), mpmath.sign(fa)
        for _ in range(170):  # 2**-170 of a step: below 50 digits
            middle = (low + high) / 2
            value = evaluate_fixed(expr, {X: middle}, digits=60)
            if value is None or value == 0:
                return middle
            if mpmath.sign(value) == sign:
                low = middle
            else:
                high = middle
        return (low + high) / 2


def _cancels_at(expr, root) -> bool:
    """Whether the terms are not 0 themselves where the sum is (x*(x + 1)
    expanded is x**2 + x: its terms vanish at 0, they do not cancel there)."""
    nearby = _cancellation(expr, X, root + mpmath.mpf(10) ** -6)
    return nearby is not None and nearby > 1e3


def _about_root(expr, root, left, right):
    """((root in four parts), (lower, upper), P's coefficients) for the window
    about root inside (left, right), or None if no polynomial fits it.  A
    window whose polynomial is too long or loses digits in Horner evaluation
    is narrowed (a larger cancellation threshold) until one fits."""
    # Each narrower window walks the same points: measure each once.
    ratio = functools.cache(functools.partial(_cancellation, expr, X))
    for threshold in _ROOT_CANCELLATIONS:
        window = _window(ratio, root, threshold, left, right)
        if window is None:
            return None
        coefficients = _fitted_about(expr, root, *window)
        if coefficients is not None:
            return _split_root(root), window, coefficients
    return None


def _window(cancellation, root, threshold, left, right):
    """(lower, upper): multiples of `_WINDOW_STEP` beyond which the terms
    cancel by at most threshold (``cancellation(x)``, `_cancellation`), within
    (left, right) and `_WINDOW_REACH`."""
    ends = []
    for direction in (-1, 1):
        end = mpmath.mpf(round(float(root) / _WINDOW_STEP)) * _WINDOW_STEP
        limit = left if direction < 0 else right
        while abs(end - root) < _WINDOW_REACH:
            end += direction * _WINDOW_STEP
            if (end - limit) * direction >= 0:
                end = mpmath.mpf(limit) - direction * _WINDOW_STEP
                break
            ratio = cancellation(end)
            if ratio is not None and ratio <= threshold:
                break
        ends.append(float(end))
    lower, upper = ends
    return (lower, upper) if lower < float(root) < upper else None


def _fitted_about(expr, root, lower: float, upper: float):
    """Coefficients of P with expr = d*P(d), d = x - root, on [lower, upper],
    lowest power first, each as (high, low) floats, or None.  P interpolates in
    `_ROOT_NODES` Chebyshev points of the window (40 digits, more where x is
    near root), keeps the fewest terms whose tail is below 1e-17 of |P|, and
    must hold `_ROOT_FIT_ERROR` with its coefficients as the pairs."""
    with mpmath.workdps(40):
        centre = (mpmath.mpf(lower) + upper) / 2
        half = (mpmath.mpf(upper) - lower) / 2

        def quotient(s):
            x = centre + half * s
            distance = abs(x - root)
            if distance < mpmath.mpf(10) ** -30:
                x, distance = root + mpmath.mpf(10) ** -30, mpmath.mpf(10) ** -30
            lost = max(0, int(-mpmath.log10(distance)) + 1)
            value = evaluate_fixed(expr, {X: x}, digits=40 + lost)
            return None if value is None else value / (x - root)

        n = _ROOT_NODES
        angles = [mpmath.pi * (k + mpmath.mpf(1) / 2) / n for k in range(n)]
        values = [quotient(mpmath.cos(a)) for a in angles]
        if None in values or 0 in values:
            return None
        series = [
            2
            * mpmath.fsum(
                v * mpmath.cos(j * a) for v, a in zip(values, angles, strict=True)
            )
            / n
            for j in range(n)
        ]
        series[0] /= 2
        smallest = min(abs(v) for v in values)
        degree = next(
            (
                k
                for k in range(min(n - 1, _ROOT_MAX_DEGREE + 1))
                if mpmath.fsum(abs(c) for c in series[k + 1 :]) < 1e-17 * smallest
            ),
            None,
        )
        if degree is None:
            return None
        # s = (d + root - centre)/half: P's coefficients in d.
        in_d = shifted_polynomial(
            _monomial(series[: degree + 1]), 1 / half, (root - centre) / half
        )
        pairs = [(float(c), float(c - mpmath.mpf(float(c)))) for c in in_d]
        exact = [mpmath.mpf(high) + low for high, low in pairs]
        for s in (mpmath.mpf(k) / 100 - 1 for k in range(201)):
            target = quotient(s)
            d = centre + half * s - root
            value = mpmath.fsum(c * d**k for k, c in enumerate(exact))
            if target is None or abs(value - target) > _ROOT_FIT_ERROR * abs(target):
                return None
    return tuple(part for pair in pairs for part in pair)


def _monomial(series):
    """Chebyshev coefficients -> monomial ones, lowest power first (mpmath)."""
    previous, current = [mpmath.mpf(1)], [mpmath.mpf(0), mpmath.mpf(1)]
    total = [series[0]] + [mpmath.mpf(0)] * (len(series) - 1)
    for k, c in enumerate(series[1:], start=1):
        if k > 1:
            previous, current = (
                current,
                [
                    2 * a - b
                    for a, b in itertools.zip_longest(
                        [mpmath.mpf(0), *current], previous, fillvalue=mpmath.mpf(0)
                    )
                ],
            )
        for i, t in enumerate(current):
            total[i] += c * t
    return total


def _split_root(root) -> tuple[float, float, float, float]:
    """root as hi + mid + lo + rest of 11, 24, 53 and 53 bits, so that x - hi,
    - mid and - lo are exact near root in float16, float32 and float64 alike;
    the x nearest a root can be 1e-17 from it, so r is needed to 1e-33."""
    with mpmath.workdps(50):
        parts, left = [], root
        for bits in (11, 24, 53):
            parts.append(_rounded_to_bits(left, bits))
            left -= parts[-1]
        return (*map(float, parts), float(left))


def _rounded_to_bits(value, bits: int) -> mpmath.mpf:
    if value == 0:
        return mpmath.mpf(0)
    exponent = int(mpmath.floor(mpmath.log(abs(value), 2))) - bits + 1
    return mpmath.nint(value / mpmath.mpf(2) ** exponent) * mpmath.mpf(2) ** exponent
