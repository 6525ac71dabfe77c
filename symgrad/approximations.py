"""Fit the polynomial tables behind the generated ``_erf`` and ``_erfc`` helpers.

Generated modules import only NumPy, which has no erf, so `symgrad.runtime`
carries its own, built from four polynomial fits against mpmath (40 digits):

==========  ===================================================  =================
region      form                                                 variable in [-1, 1]
==========  ===================================================  =================
|x| < 1     erf(x) = x * P(t)                                    t = 2x^2 - 1
1 <= |x|<2  erfc(|x|) = exp(-x^2) * P(t)                         t = 2|x| - 3
2 <= |x|<4  erfc(|x|) = exp(-x^2) * P(t)                         t = |x| - 3
|x| >= 4    erfc(|x|) = exp(-x^2) / |x| * P(t)                   t = 32/x^2 - 1
==========  ===================================================  =================

Each P is a weighted least-squares Chebyshev fit (relative error) at Chebyshev
nodes, converted to the power basis so the helper evaluates it by Horner's rule.
The maximum relative error of every region is about 3e-15.  Run
``python -m symgrad.approximations`` to print the tables that ``runtime.py`` holds.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath
import numpy as np
from numpy.polynomial import chebyshev

#: name -> (degree, lower end, upper end, function of the region's variable).
_REGIONS: dict[str, tuple[int, float, float, Callable[[mpmath.mpf], mpmath.mpf]]] = {}


def _region(name: str, degree: int, lower: float, upper: float):
    def register(target):
        _REGIONS[name] = (degree, lower, upper, target)
        return target

    return register


def _scaled_erfc(x: mpmath.mpf) -> mpmath.mpf:
    return mpmath.erfc(x) * mpmath.exp(x * x)


@_region("ERF_SMALL", 10, 0.0, 1.0)
def _erf_over_x(square: mpmath.mpf) -> mpmath.mpf:
    """erf(x)/x as a function of x**2 (its limit at 0 is 2/sqrt(pi))."""
    if square == 0:
        return 2 / mpmath.sqrt(mpmath.pi)
    x = mpmath.sqrt(square)
    return mpmath.erf(x) / x


@_region("ERFC_1_2", 16, 1.0, 2.0)
def _erfc_1_2(x: mpmath.mpf) -> mpmath.mpf:
    return _scaled_erfc(x)


@_region("ERFC_2_4", 16, 2.0, 4.0)
def _erfc_2_4(x: mpmath.mpf) -> mpmath.mpf:
    return _scaled_erfc(x)


@_region("ERFC_LARGE", 12, 0.0, 1.0 / 16.0)
def _erfc_large(inverse_square: mpmath.mpf) -> mpmath.mpf:
    """x * exp(x**2) * erfc(x) as a function of 1/x**2 (limit 1/sqrt(pi) at 0)."""
    if inverse_square == 0:
        return 1 / mpmath.sqrt(mpmath.pi)
    x = 1 / mpmath.sqrt(inverse_square)
    return x * _scaled_erfc(x)


def fit(name: str, nodes: int = 400) -> tuple[float, ...]:
    """Power-basis coefficients (lowest first) of region ``name``'s polynomial."""
    degree, lower, upper, target = _REGIONS[name]
    with mpmath.workdps(40):
        t = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
        points = (lower + upper) / 2 + (upper - lower) / 2 * t
        values = np.array([float(target(mpmath.mpf(float(p)))) for p in points])
    series = chebyshev.chebfit(t, values, degree, w=1.0 / np.abs(values))
    return tuple(float(c) for c in chebyshev.cheb2poly(series))


def fit_all() -> dict[str, tuple[float, ...]]:
    return {name: fit(name) for name in _REGIONS}


def _format_table(name: str, coefficients: tuple[float, ...]) -> str:
    rows = "".join(f"    {c!r},\n" for c in coefficients)
    return f"_{name} = (\n{rows})"


if __name__ == "__main__":
    for region, table in fit_all().items():
        print(_format_table(region, table))
