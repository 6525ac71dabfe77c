"""Fit the polynomial tables behind the generated ``_erf`` and ``_erfc`` helpers.

Generated modules import only NumPy, which has no erf, so the helpers in
`symgrad.targets.numpy_helpers` carry their own, built from polynomial fits against mpmath (40 digits):

=============  ==============================================  ==================
table          form                                            variable in [-1, 1]
=============  ==============================================  ==================
ERF_SMALL      erf(x) = x * P(u), |x| < 1                      u = 2x^2 - 1
ERFC_F64/F32   erfc(z) = t * exp(P(u) - z^2), z >= 0           u = 2t - 1, t = 2/(2 + z)
=============  ==============================================  ==================

The erfc form covers every z >= 0 with one polynomial (t maps [0, inf) onto
(0, 1], and log(erfc(z) exp(z^2) / t) is smooth there), so the helper needs no
branches or masks: that is what makes it fast in NumPy.  The fit is in absolute
error of the log, which is relative error of erfc.  Degree 24 gives about 2e-15
(float64), degree 12 about 6e-9 (float32 and float16).  Each P is a
least-squares Chebyshev fit at Chebyshev nodes, converted to the power basis so
the helper evaluates it by Horner's rule.  Run ``python -m symgrad.approximations``
to print the tables that ``targets/polynomial_tables.py`` holds.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath
import numpy as np
from numpy.polynomial import chebyshev

#: name -> (degree, function of u in [-1, 1], weighted by 1/|f|?).
_TABLES: dict[str, tuple[int, Callable[[mpmath.mpf], mpmath.mpf], bool]] = {}


def _erf_over_x(u: mpmath.mpf) -> mpmath.mpf:
    """erf(x)/x as a function of u = 2x^2 - 1 (its limit at x = 0 is 2/sqrt(pi))."""
    square = (u + 1) / 2
    if square == 0:
        return 2 / mpmath.sqrt(mpmath.pi)
    x = mpmath.sqrt(square)
    return mpmath.erf(x) / x


def _log_scaled_erfc(u: mpmath.mpf) -> mpmath.mpf:
    """log(erfc(z) exp(z^2) / t) with t = (u + 1)/2 and z = 2/t - 2."""
    t = (u + 1) / 2
    if t == 0:  # z -> inf: erfc(z) exp(z^2) ~ 1/(z sqrt(pi)) and z t -> 2
        return -mpmath.log(2 * mpmath.sqrt(mpmath.pi))
    z = 2 / t - 2
    return mpmath.log(mpmath.erfc(z) * mpmath.exp(z * z) / t)


_TABLES["ERF_SMALL"] = (10, _erf_over_x, True)
_TABLES["ERFC_F64"] = (24, _log_scaled_erfc, False)
_TABLES["ERFC_F32"] = (12, _log_scaled_erfc, False)


def fit(name: str, nodes: int = 600) -> tuple[float, ...]:
    """Power-basis coefficients (lowest first) of table ``name``'s polynomial."""
    degree, target, relative = _TABLES[name]
    u = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    with mpmath.workdps(40):
        values = np.array([float(target(mpmath.mpf(float(p)))) for p in u])
    weights = 1.0 / np.abs(values) if relative else None
    series = chebyshev.chebfit(u, values, degree, w=weights)
    return tuple(float(c) for c in chebyshev.cheb2poly(series))


def fit_all() -> dict[str, tuple[float, ...]]:
    return {name: fit(name) for name in _TABLES}


def _format_table(name: str, coefficients: tuple[float, ...]) -> str:
    rows = "".join(f"    {c!r},\n" for c in coefficients)
    return f"_{name} = (\n{rows})"


if __name__ == "__main__":
    for table_name, table in fit_all().items():
        print(_format_table(table_name, table))
