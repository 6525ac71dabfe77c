"""Fit the polynomial tables behind the generated ``_erf``, ``_erfc`` and float32
``_tanh`` helpers.

Generated modules import only NumPy, which has no erf, so the helpers in
`symgrad.targets.numpy_helpers` (and `numba_helpers`) carry their own, built
from polynomial fits against mpmath (50 digits):

=============  ==============================================  ==================
table          form                                            variable in [-1, 1]
=============  ==============================================  ==================
ERF_SMALL      erf(x) = x * P(u), |x| < 1                      u = 2x^2 - 1
ERFC_F64/F32   erfc(z) = t * exp(P(u) - z^2), z >= 0           u = 2t - 1, t = 2/(2 + z)
TANH_F32       tanh(a) = a + a^3 P(u), 0 <= a < 0.625          u = 2a^2/0.390625 - 1
=============  ==============================================  ==================

The erfc form covers every z >= 0 with one polynomial (t maps [0, inf) onto
(0, 1], and log(erfc(z) exp(z^2) / t) is smooth there), so the helper needs no
branches or masks: that is what makes it fast in NumPy.  The fit is in absolute
error of the log, which is relative error of erfc.  Degree 26 gives about
2.4e-16 (float64), degree 12 about 6e-9 (float32 and float16); numba's float32
tanh core, degree 5, about 1.6e-9.  Each P is the
Chebyshev series of its function, computed at 50 digits by interpolation at
96 Chebyshev nodes and truncated (within a few ulps of the minimax
polynomial), then converted to the power basis at 50 digits and rounded once
per coefficient, so the helper evaluates it by Horner's rule.  A least-squares
fit in float64 stalled at 1.7e-15: its noise, not the degree, was the limit.
Run ``python -m symgrad.approximations`` to print the tables that
``targets/polynomial_tables.py`` holds.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath

#: name -> (degree, function of u in [-1, 1]).
_TABLES: dict[str, tuple[int, Callable[[mpmath.mpf], mpmath.mpf]]] = {}
_DIGITS = 50
_NODES = 96


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


def _tanh_core(u: mpmath.mpf) -> mpmath.mpf:
    """(tanh(a) - a)/a^3 with a^2 = (u + 1)/2 * 0.390625 (its limit at a = 0 is
    -1/3): numba's float32 tanh below 0.625."""
    square = (u + 1) / 2 * mpmath.mpf(25) / 64
    if square == 0:
        return -mpmath.mpf(1) / 3
    a = mpmath.sqrt(square)
    return (mpmath.tanh(a) - a) / (a * square)


_TABLES["ERF_SMALL"] = (11, _erf_over_x)
_TABLES["ERFC_F64"] = (26, _log_scaled_erfc)
_TABLES["ERFC_F32"] = (12, _log_scaled_erfc)
_TABLES["TANH_F32"] = (5, _tanh_core)


def chebyshev_series(
    target: Callable[[mpmath.mpf], mpmath.mpf], terms: int, nodes: int = _NODES
) -> list[mpmath.mpf]:
    """The first ``terms`` Chebyshev coefficients of ``target`` on [-1, 1], from
    its interpolant at ``nodes`` Chebyshev points (a discrete cosine transform)."""
    angles = [mpmath.pi * (k + mpmath.mpf(1) / 2) / nodes for k in range(nodes)]
    values = [target(mpmath.cos(angle)) for angle in angles]
    series = [
        2
        * mpmath.fsum(
            v * mpmath.cos(j * a) for v, a in zip(values, angles, strict=True)
        )
        / nodes
        for j in range(terms)
    ]
    series[0] /= 2
    return series


def power_basis(series: list[mpmath.mpf]) -> list[mpmath.mpf]:
    """sum c_k T_k(u) as sum a_i u^i, by T_k = 2u T_(k-1) - T_(k-2)."""
    previous, current = [mpmath.mpf(1)], [mpmath.mpf(0), mpmath.mpf(1)]
    coefficients = [series[0]] + [mpmath.mpf(0)] * (len(series) - 1)
    for k in range(1, len(series)):
        for i, t in enumerate(current):
            coefficients[i] += series[k] * t
        following = [mpmath.mpf(0)] + [2 * t for t in current]
        for i, t in enumerate(previous):
            following[i] -= t
        previous, current = current, following
    return coefficients


def fit(name: str) -> tuple[float, ...]:
    """Power-basis coefficients (lowest first) of table ``name``'s polynomial."""
    degree, target = _TABLES[name]
    with mpmath.workdps(_DIGITS):
        coefficients = power_basis(chebyshev_series(target, degree + 1))
    return tuple(float(c) for c in coefficients)


def fit_all() -> dict[str, tuple[float, ...]]:
    return {name: fit(name) for name in _TABLES}


def _format_table(name: str, coefficients: tuple[float, ...]) -> str:
    rows = "".join(f"    {c!r},\n" for c in coefficients)
    return f"_{name} = (\n{rows})"


if __name__ == "__main__":
    for table_name, table in fit_all().items():
        print(_format_table(table_name, table))
