"""Where a form of the derivative loses digits to the rounded values it reads.

A backward from the output computes g(y) from y = f(x) rounded to the dtype, so
it inherits y's rounding error times the condition number of g at y,

    cond(x) = sum over the values v it reads of |v * dg/dv| / |g|,

and loses about cond/2 ulps: sigmoid' = y*(1 - y) has cond = |1 - 2y|/(1 - y),
about exp(x), so it is more than a few ulps off from x = 1.4 on and 0 from x = 36.7
(float64), where 1 - y rounds to 0.  Near a root of the derivative every form
loses relative accuracy as its terms cancel; such ranges are not reported here.  The input itself is exact, so a form in x
alone loses nothing this way.  The `memory` policy states these ranges in the
layer's docstring; the `accuracy` policy refuses a form that has any.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import mpmath
import sympy

from .functions import near_root, near_tail, near_zero
from .model import X
from .verify import evaluate_fixed

#: cond above which rounding the values read costs more than about 2 ulps, on
#: top of the form's own rounding.
LIMIT = 4.0
#: Where the search looks: +-10**-3 ... +-10**3 and 0; a range that reaches the
#: end of the grid is taken to go on to infinity.
_EXPONENTS = [k / 10 for k in range(-30, 31)]
#: Beyond it, where a value read can overflow while the slope does not (y =
#: 2.5*x**3 is inf from x = 4.2e102, its slope 7.5*x**2 is finite to 4.9e153).
_FAR = [10.0**e for e in range(4, 309, 8)]
_GRID = sorted(
    [0.0] + [s * 10.0**e for e in _EXPONENTS for s in (-1.0, 1.0)],
)

Interval = tuple[float, float]
#: What a search that ran out of time reports: no range can be vouched for.
EVERYWHERE: tuple[Interval, ...] = ((-math.inf, math.inf),)


def lossy_ranges(
    form: sympy.Expr,
    reads: Mapping[sympy.Symbol, sympy.Expr],
    truth: sympy.Expr,
    values: Mapping[sympy.Symbol, float],
) -> tuple[Interval, ...]:
    """The intervals of x on which ``form`` (in the symbols of ``reads``, each
    standing for a rounded expression in x; x itself is exact) is ill-conditioned
    or cancels to 0 where ``truth`` (the same value in x) does not; ends to three
    digits, +-inf where they reach the grid's end."""
    check = _Conditioning(form, reads, truth, values)
    lossy = _outward_filled([check.lossy(x) for x in _GRID])
    ranges = []
    i = 0
    while i < len(_GRID):
        if not lossy[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(_GRID) and lossy[j + 1]:
            j += 1
        low = -math.inf if i == 0 else _edge(_GRID[i - 1], _GRID[i], check)
        high = math.inf if j == len(_GRID) - 1 else _edge(_GRID[j + 1], _GRID[j], check)
        if not check.changes_sign(max(low, _GRID[0]), min(high, _GRID[-1])):
            ranges.append((low, high))
        i = j + 1
    for side in (-1.0, 1.0):
        far = _overflowing_from(check, side)
        if far is not None and not any(low <= far <= high for low, high in ranges):
            ranges.append((-math.inf, far) if side < 0 else (far, math.inf))
    return tuple(sorted(ranges))


def _overflowing_from(check: _Conditioning, side: float) -> float | None:
    """Where, beyond the grid, a value read overflows while the true slope is a
    normal float: the edge (three digits), signed, or None."""
    previous = _GRID[-1]
    for magnitude in _FAR:
        if check.overflows(side * magnitude):
            low, high = previous, magnitude
            for _ in range(60):  # bisect in log space
                middle = math.sqrt(low * high)
                if check.overflows(side * middle):
                    high = middle
                else:
                    low = middle
            return side * float(f"{high:.3g}")
        previous = magnitude
    return None


def _outward_filled(states: list[bool | None]) -> list[bool]:
    """Where the true value is not a normal float (None), the state of the
    neighbour nearer 0: sigmoid' underflows beyond x = 745, and its loss from
    x = 2.2 on reads as one range, x >= 2.2."""
    filled = list(states)
    middle = _GRID.index(0.0)
    for i in range(middle + 1, len(filled)):
        if filled[i] is None:
            filled[i] = filled[i - 1]
    for i in range(middle - 1, -1, -1):
        if filled[i] is None:
            filled[i] = filled[i + 1]
    return [bool(state) for state in filled]


def describe(ranges: tuple[Interval, ...]) -> str:
    """The ranges as text: ``x >= 2.8``, ``x <= -19``, ``-3 <= x <= 5``."""
    parts = []
    for low, high in ranges:
        if math.isinf(low) and math.isinf(high):
            parts.append("every x")
        elif math.isinf(high):
            parts.append(f"x >= {_short(low)}")
        elif math.isinf(low):
            parts.append(f"x <= {_short(high)}")
        else:
            parts.append(f"{_short(low)} <= x <= {_short(high)}")
    return " and ".join(parts)


def _short(number: float) -> str:
    return f"{number:.3g}"


def _edge(good: float, bad: float, check: _Conditioning) -> float:
    """The boundary between a well- and an ill-conditioned point, by bisection."""
    for _ in range(30):
        middle = (good + bad) / 2
        if check.lossy(middle) is not False:
            bad = middle
        else:
            good = middle
    return float(f"{bad:.3g}")


_FLOAT64_MAX = float.fromhex("0x1.fffffffffffffp+1023")


class _Conditioning:
    """cond(x) of one form, evaluated in 30 digits."""

    def __init__(self, form, reads, truth, values) -> None:
        # A fitted polynomial reads x alone; as a select, SymPy differentiates it.
        form = form.replace(
            lambda e: isinstance(e, (near_root, near_zero, near_tail)),
            lambda e: e.as_piecewise(),
        )
        self.form, self.reads, self.truth = form, dict(reads), truth
        self.partials = {v: sympy.diff(form, v) for v in reads}
        self.env = {s: mpmath.mpf(v) for s, v in values.items()}

    def changes_sign(self, low: float, high: float) -> bool:
        """Whether the true value has a root in [low, high]: near a root any form
        loses relative accuracy (its terms cancel), so that loss is no form's."""
        ends = [
            evaluate_fixed(self.truth, {**self.env, X: mpmath.mpf(x)})
            for x in (low, high)
        ]
        return None not in ends and ends[0] * ends[1] <= 0

    def overflows(self, x: float) -> bool:
        """Whether a value read is beyond float64 at x where the true value
        is a normal float (the form would read inf)."""
        point = {**self.env, X: mpmath.mpf(x)}
        truth = evaluate_fixed(self.truth, point)
        if truth is None or not 1e-300 <= abs(truth) <= 1e300:
            return False
        values = [evaluate_fixed(expr, point) for expr in self.reads.values()]
        return any(v is not None and abs(v) > _FLOAT64_MAX for v in values)

    def lossy(self, x: float) -> bool | None:
        """Whether the form loses at x; None where the true value is not a
        normal float64 (nothing to lose)."""
        point = {**self.env, X: mpmath.mpf(x)}
        truth = evaluate_fixed(self.truth, point)
        if truth is None or not 1e-300 <= abs(truth) <= 1e300:
            return None
        for symbol, expr in self.reads.items():
            value = evaluate_fixed(expr, point)
            if value is None:
                return False
            if abs(value) > _FLOAT64_MAX:  # cached as inf
                return True
            point[symbol] = value
        g = evaluate_fixed(self.form, point)
        if g is None or abs(g) < 1e-300:
            # 0 in 30 digits where the true value is not: 1 - y with y rounded to 1.
            return g is not None
        cond = mpmath.mpf(0)
        for symbol, partial in self.partials.items():
            slope = evaluate_fixed(partial, point)
            if slope is None:
                return False
            cond += abs(point[symbol] * slope)
        return cond / abs(g) > LIMIT
