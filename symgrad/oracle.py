"""The exact values symgrad measures against: a formula in mpmath, settled.

The audit (`symgrad.auditing`) and the regime search (`symgrad.regimes`) both
compare what a layer computes with the SymPy definition evaluated in mpmath, at
a precision raised until two evaluations agree, and count the difference in
ulps of the exact value.  Both read these helpers, so that the contract they
hold a layer to is one contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import sympy
from sympy.codegen.cfunctions import log1p as Log1p

from .functions import erfc, sigmoid, softplus
from .model import X

#: The contract a layer keeps for any formula: finite wherever the true value
#: is finite in the dtype, and within this relative error wherever it is a
#: normal float.
CONTRACT = {"float64": 1e-6, "float32": 1e-3, "float16": 1e-2}


def breaks_contract(
    actual: np.ndarray, truth: tuple[np.ndarray, np.ndarray], dtype: np.dtype
) -> np.ndarray:
    """Where ``actual`` breaks the contract (`CONTRACT`) against the true values
    (float64 head + tail): not finite where the truth is finite in the dtype,
    or too far off where it is a normal float."""
    head, tail = truth
    info = np.finfo(dtype)
    a = np.asarray(actual, dtype=np.float64)
    with np.errstate(all="ignore"):
        finite = np.isfinite(head) & (np.abs(head) <= info.max)
        normal = finite & (np.abs(head) >= info.tiny)
        relative = np.abs((a - head) - tail) / np.abs(head)
    return (finite & ~np.isfinite(a)) | (normal & (relative > CONTRACT[dtype.name]))


def mpmath_function(expr: sympy.Expr) -> Callable[[mpmath.mpf], mpmath.mpf]:
    """``expr`` (in x alone) as an mpmath function, symgrad's own functions in
    terms mpmath knows and exp, cosh, sinh, tanh bounded far out (`_FAR`)."""
    return sympy.lambdify(X, _for_mpmath(expr), [_FAR, "mpmath"])


def exact(function: Callable, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """function at xs, settled (`settled`), as float64 head and tail arrays."""
    return split([settled(function, float(x)) for x in np.asarray(xs, np.float64)])


#: Beyond this |u|, exp(u), cosh(u), sinh(u) and tanh(u) are taken as their
#: limits (0, +-1 or +-inf).  exp(-1e1000) is far below any float, and
#: exp(1e1000) far above, so only an argument that is itself astronomical
#: (exp(exp(exp(x)))) is affected, and with it a true value such as
#: log(exp(exp(exp(x)))) there, then taken as infinite.
_FAR_ARGUMENT = mpmath.mpf("1e1000")
#: From this |u| on, exp reduces its argument itself (`_exp`).
_REDUCED = mpmath.mpf("1e4")


def _exp(u):
    """exp(u), accurate to the working precision for any |u| up to
    `_FAR_ARGUMENT`: u = k*log(2) + r with k computed in as many more digits
    as u has before the point, then exp(r) * 2**k.  mpmath's own exp keeps only
    the working precision in that reduction, so its exp(1e308) at 50 digits has
    a wrong mantissa, and raising the precision enough costs 0.05 s a call."""
    if abs(u) <= _REDUCED:
        return mpmath.exp(u)
    if abs(u) > _FAR_ARGUMENT:
        return mpmath.inf if u > 0 else mpmath.mpf(0)
    with mpmath.extradps(int(mpmath.log10(abs(u))) + 10):
        k = mpmath.floor(u / mpmath.ln2)
        r = u - k * mpmath.ln2
    return mpmath.ldexp(mpmath.exp(r), int(k))


def _cosh(u):
    return (_exp(u) + _exp(-u)) / 2 if abs(u) > _REDUCED else mpmath.cosh(u)


def _sinh(u):
    return (_exp(u) - _exp(-u)) / 2 if abs(u) > _REDUCED else mpmath.sinh(u)


def _tanh(u):
    """tanh(u): +-1 beyond `_REDUCED`, where 1 - |tanh(u)| < 1e-8000."""
    return mpmath.sign(u) if abs(u) > _REDUCED else mpmath.tanh(u)


_FAR = {"exp": _exp, "cosh": _cosh, "sinh": _sinh, "tanh": _tanh}


def settled(function, x: float):
    """function(x), its digits settled: evaluated at d, 2d, 4d... digits until
    two agree (a cancellation needs more), or None if not real.

    d starts at 50 plus, for |x| <= 800, the decimal exponent of exp(|x|): 1 +
    exp(-413) is 1 to 100 digits, so two low precisions would agree on a value
    that has lost its smallest term (log(1 + sigmoid(x)) at x = -413).  Beyond
    800, exp(-|x|) is below every float64, and such a term cannot matter."""
    previous = None
    digits = 50 + (int(abs(x) * 0.4343) if abs(x) <= 800 else 0)
    while digits <= 8000:
        with mpmath.workdps(digits):
            try:
                value = function(mpmath.mpf(x))
            except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                return None
            except MemoryError:  # mpmath on an argument of astronomical size
                return None
            if isinstance(value, mpmath.mpc):
                if abs(value.imag) > 1e-30 * max(1, abs(value.real)):
                    return None
                value = value.real
            value = mpmath.mpf(value)
            if mpmath.isnan(value):  # inf/inf where exp is taken as its limit (_FAR)
                return None
            if not mpmath.isfinite(value):
                return value
            if previous is not None and (
                value == previous
                or abs(value - previous) <= mpmath.mpf(10) ** -40 * abs(value)
            ):
                return value
        previous = value
        digits *= 2
    return previous


def split(values) -> tuple[np.ndarray, np.ndarray]:
    """mpmath values as float64 head + tail (head + tail = value to 106 bits)."""
    head = np.empty(len(values))
    tail = np.zeros(len(values))
    for i, value in enumerate(values):
        if value is None:
            head[i] = np.nan
            continue
        with mpmath.workdps(60):
            h = float(value) if abs(value) < 1e309 else math.copysign(math.inf, value)
            head[i] = h
            if math.isfinite(h):
                tail[i] = float(value - h)
    return head, tail


def _for_mpmath(expr: sympy.Expr) -> sympy.Expr:
    """symgrad's own functions in terms mpmath knows: softplus as log1p(exp(u)),
    whose small values no precision rescues from log(1 + exp(u)) (mish's
    tanh(softplus(-413)) is 1e-180; 1 + 1e-180 is 1 to 100 digits)."""
    return (
        expr.replace(
            lambda e: isinstance(e, softplus),
            lambda e: Log1p(sympy.exp(e.args[0])),
        )
        .replace(lambda e: isinstance(e, sigmoid), lambda e: e.rewrite(sympy.exp))
        .replace(lambda e: isinstance(e, erfc), lambda e: sympy.erfc(e.args[0]))
    )


def ulps(
    actual: np.ndarray, exact: tuple[np.ndarray, np.ndarray], dtype: np.dtype
) -> np.ndarray:
    """|actual - exact| in ulps of exact (given as float64 head + tail), 0 where
    exact is not a normal float of ``dtype`` (or is NaN), inf where actual is not
    finite but exact is."""
    head, tail = exact
    info = np.finfo(dtype)
    a = actual.astype(np.float64)
    with np.errstate(all="ignore"):
        normal = (
            np.isfinite(head) & (np.abs(head) >= info.tiny) & (np.abs(head) <= info.max)
        )
        spacing = 2.0 ** (np.floor(np.log2(np.abs(head))) - info.nmant)
        error = np.abs((a - head) - tail) / spacing
    error = np.where(np.isfinite(a), error, np.inf)
    return np.where(normal, error, 0.0)
