"""The precision guarantees, in ulps, against an mpmath oracle of the tests' own.

The oracle below is written from each activation's published formula, not from
symgrad's expressions, so a wrong derivation or rewrite cannot agree with
itself.  Errors count only where the exact value is a normal float of the
dtype; the grid takes 0..4 ulps either side of every kink and every root of f',
where the derivative's terms cancel.  Under prefer='accuracy' the layers fit a
polynomial about each root (`symgrad.series.series_near_root`), compute float32
in float64, and are held to the bound there; under prefer='memory' they do not,
and backward is left out where the slope's terms cancel about a root (the
window accuracy fits, `symgrad.auditing.cancelling`, or a quarter of |r|), as
is the range where the cached output loses accuracy: both are what the layer's
docstring states.  Every catalog layer, style and policy is held to its bound:
the NumPy layers in both styles, and the numba target.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest

import symgrad
from symgrad.auditing import NEAR_ROOT, cancelling
from symgrad.series import MAX_ROOTS

mp = mpmath

# Constants as the catalog defines them (SELU's from the paper, GELU-tanh's
# 0.044715), made at 60 digits: an mpf keeps the precision it was made with, and
# at the default 15 digits 0.044715 is off by 1e-18, which costs GELU-tanh's
# tail 50 ulps at x = -13.
with mp.workdps(60):
    SELU_ALPHA = mp.mpf("1.67326324235437728481704299167")
    SELU_SCALE = mp.mpf("1.05070098735548049341933498529")
    GELU_K = mp.mpf(8943) / 200000


#: Beyond this |t|, exp(-|t|) < 1e-43000: below every float even times the
#: largest (1e308**3 = 1e924 in GELU-tanh's u), so sigmoid(t) is 0 or 1 and
#: sech(t) 0 to any float's resolution; mpmath took 1.5 s per point there.
FAR = 1e5


def _sigmoid(x):
    if abs(x) > FAR:
        return mp.mpf(0 if x < 0 else 1)
    return 1 / (1 + mp.exp(-x))


def _sech(u):
    return mp.mpf(0) if abs(u) > FAR else mp.sech(u)


def _softplus(x):
    return mp.log1p(mp.exp(x))


def _ncdf(x):
    """The normal CDF; beyond |x| = 1e6 its distance from 0 or 1 is below any
    float's resolution (and mpmath's erfc cannot take such arguments)."""
    if abs(x) > 1e6:
        return mp.mpf(0) if x < 0 else mp.mpf(1)
    return mp.ncdf(x)


def _npdf(x):
    return mp.mpf(0) if abs(x) > 1e6 else mp.npdf(x)


def _gelu_tanh_inner(x):
    return mp.sqrt(2 / mp.pi) * (x + GELU_K * x**3)


#: name -> (f, f', points where f' jumps or f has a kink)
ORACLE = {
    "celu": (
        lambda x: x if x > 0 else mp.expm1(x),
        lambda x: 1 if x > 0 else mp.exp(x),
        [0],
    ),
    "elu": (
        lambda x: x if x > 0 else mp.expm1(x),
        lambda x: 1 if x > 0 else mp.exp(x),
        [0],
    ),
    "exp": (mp.exp, mp.exp, []),
    "gelu": (lambda x: x * _ncdf(x), lambda x: _ncdf(x) + x * _npdf(x), []),
    # (1 + tanh(u))/2 is sigmoid(2u), which does not cancel at -inf (at 40 and
    # 80 digits 1 + tanh(-103) is 0 both times, and would settle there).
    "gelu_tanh": (
        lambda x: x * _sigmoid(2 * _gelu_tanh_inner(x)),
        lambda x: (
            _sigmoid(2 * _gelu_tanh_inner(x))
            + x
            / 2
            * _sech(_gelu_tanh_inner(x)) ** 2
            * mp.sqrt(2 / mp.pi)
            * (1 + 3 * GELU_K * x**2)
        ),
        [],
    ),  # fmt: skip
    "hardshrink": (
        lambda x: x if abs(x) > 0.5 else 0,
        lambda x: 1 if abs(x) > 0.5 else 0,
        [-0.5, 0.5],
    ),
    "hardsigmoid": (
        lambda x: 0 if x <= -3 else 1 if x >= 3 else (x + 3) / 6,
        lambda x: 0 if abs(x) >= 3 else mp.mpf(1) / 6,
        [-3, 3],
    ),
    "hardswish": (
        lambda x: 0 if x <= -3 else x if x >= 3 else x * (x + 3) / 6,
        lambda x: 0 if x <= -3 else 1 if x >= 3 else (2 * x + 3) / 6,
        [-3, 3],
    ),
    "hardtanh": (
        lambda x: max(-1, min(1, x)),
        lambda x: 1 if -1 < x < 1 else 0,
        [-1, 1],
    ),
    "identity": (lambda x: x, lambda x: 1, []),
    "leaky_relu": (
        lambda x: x if x > 0 else x / 100,
        lambda x: 1 if x > 0 else mp.mpf(1) / 100,
        [0],
    ),
    "log_sigmoid": (lambda x: -_softplus(-x), lambda x: _sigmoid(-x), []),
    "mish": (
        lambda x: x * mp.tanh(_softplus(x)),
        lambda x: mp.tanh(_softplus(x)) + x * _sech(_softplus(x)) ** 2 * _sigmoid(x),
        [],
    ),
    "prelu": (
        lambda x: x if x > 0 else x / 4,
        lambda x: 1 if x > 0 else mp.mpf(1) / 4,
        [0],
    ),
    "relu": (lambda x: max(x, 0), lambda x: 1 if x > 0 else 0, [0]),
    "relu6": (lambda x: min(6, max(0, x)), lambda x: 1 if 0 < x < 6 else 0, [0, 6]),
    "selu": (
        lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * mp.expm1(x)),
        lambda x: SELU_SCALE * (1 if x > 0 else SELU_ALPHA * mp.exp(x)),
        [0],
    ),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * _sigmoid(-x), []),
    "silu": (
        lambda x: x * _sigmoid(x),
        lambda x: _sigmoid(x) * (1 + x * _sigmoid(-x)),
        [],
    ),
    "sin": (mp.sin, mp.cos, []),
    "softplus": (
        lambda x: x if x > 20 else _softplus(x),
        lambda x: 1 if x > 20 else _sigmoid(x),
        [20],
    ),
    "softshrink": (
        lambda x: x - 0.5 if x > 0.5 else x + 0.5 if x < -0.5 else 0,
        lambda x: 1 if abs(x) > 0.5 else 0,
        [-0.5, 0.5],
    ),
    "softsign": (lambda x: x / (1 + abs(x)), lambda x: 1 / (1 + abs(x)) ** 2, [0]),
    "swish": (
        lambda x: x * _sigmoid(x),
        lambda x: _sigmoid(x) * (1 + x * _sigmoid(-x)),
        [],
    ),
    "tanh": (mp.tanh, lambda x: mp.sech(x) ** 2, []),
    "tanhshrink": (lambda x: x - mp.tanh(x), lambda x: mp.tanh(x) ** 2, []),
    "threshold": (lambda x: x if x > 0 else 0, lambda x: 1 if x > 0 else 0, [0]),
}

#: Bounds in ulps (the issue's): 4, and 64 for layers built on erf.
BOUND = {name: 4.0 for name in ORACLE} | {"gelu": 64.0}


def test_the_oracle_covers_the_catalog():
    assert set(ORACLE) == set(symgrad.CATALOG)


def _settled(function, x: float):
    """function(x) in mpmath, its digits raised until two evaluations agree."""
    previous = None
    for digits in (40, 80, 160, 320, 640, 1280):
        with mp.workdps(digits):
            value = mp.mpf(function(mp.mpf(x)))
        if previous is not None and (
            value == previous or abs(value - previous) <= abs(value) * mp.mpf(10) ** -30
        ):
            return value
        previous = value
    return previous


def grid(dtype, kinks, roots=()) -> np.ndarray:
    """Log-spaced out to the dtype's largest value, a dense [-50, 50] and
    +-[50, 2000], a denser stretch where exp(x) leaves the normal range, denser
    still out to ten times |r| about each root r of f' (where the terms of the
    slope cancel, mildly far out), and 0..4 ulps either side of every kink and
    root."""
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        magnitudes = 10.0 ** np.linspace(np.log10(info.tiny), np.log10(info.max), 160)
    far = np.geomspace(50, 2000, 240)  # where exp(-|x|) leaves the normal range
    # Where exp(x) is subnormal but x*exp(x) is not (SiLU at x = -714 in float64,
    # -89 in float32): a product with a subnormal factor keeps its few digits.
    edge = np.log(info.tiny) + np.linspace(-8, 2, 81)
    points = [magnitudes, -magnitudes, far, -far, np.linspace(-50, 50, 401) + 0.0123]
    points += [edge, -edge]
    points.append([0.0])
    for r in roots if len(roots) <= MAX_ROOTS else ():  # not sin's 64: no cancelling
        reach = 10 * max(abs(r), 1.0)
        points.append(np.linspace(r - reach, r + reach, 201) + 0.00123)
    for k in [*kinks, *roots]:
        centre = dtype(k)
        for direction in (-np.inf, np.inf):
            value = centre
            for _ in range(5):
                points.append([float(value)])
                value = np.nextafter(value, dtype(direction))
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.unique(
            np.concatenate([np.asarray(p, dtype=np.float64) for p in points]).astype(
                dtype
            )
        )
    return x[np.isfinite(x)]


@functools.cache
def exact(name: str, dtype_name: str):
    """(x, y, dy/dx) on the grid, the exact values as mpmath numbers."""
    f, df, kinks = ORACLE[name]
    x = grid(np.dtype(dtype_name).type, kinks, roots_of_slope(name))
    return x, [_settled(f, float(v)) for v in x], [_settled(df, float(v)) for v in x]


def ulps(actual, truth, dtype) -> np.ndarray:
    """|actual - truth| in ulps of truth, 0 where truth is not a normal float."""
    info = np.finfo(dtype)
    errors = []
    for a, t in zip(actual.astype(np.float64).tolist(), truth, strict=True):
        if t == 0 or not info.tiny <= abs(t) <= info.max:
            errors.append(0.0)
            continue
        if not math.isfinite(a):
            errors.append(math.inf)
            continue
        spacing = mp.mpf(2) ** (mp.floor(mp.log(abs(t), 2)) - info.nmant)
        errors.append(float(abs(mp.mpf(a) - t) / spacing))
    return np.array(errors)


@functools.cache
def _cancelling(name: str) -> tuple[tuple[float, float], ...]:
    return cancelling(symgrad.CATALOG[name])


@functools.cache
def roots_of_slope(name: str) -> list[float]:
    f, df, _ = ORACLE[name]
    xs = np.linspace(-50, 50, 2001)
    values = [df(mp.mpf(float(v))) for v in xs]
    found = []
    for a, b, fa, fb in zip(xs, xs[1:], values, values[1:], strict=False):
        if fa == 0:  # on the grid (hardswish's -1.5)
            found.append(float(a))
        elif fa * fb < 0:
            found.append(
                float(mp.findroot(df, (mp.mpf(a), mp.mpf(b)), solver="anderson"))
            )
    return found


#: NumPy's two styles and the numba target, which is held to the same bounds.
STYLES = ("readable", "fast", "numba")


@pytest.mark.slow
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("prefer", symgrad.model.PREFERENCES)
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize(
    # One worker takes every test of a layer: the oracle's values (seconds of
    # mpmath per layer and dtype) are computed once, not once per worker.
    "name",
    [
        pytest.param(n, marks=pytest.mark.xdist_group(f"ulps-{n}"))
        for n in sorted(ORACLE)
    ],
)
def test_forward_and_backward_within_their_bound_in_ulps(
    name, dtype, prefer, style, catalog_modules
):
    """float16 is computed in float32 and rounded once: within 1 ulp."""
    x, y_exact, dy_exact = exact(name, dtype)
    if style == "numba":
        pytest.importorskip("numba")
        module = catalog_modules["numba accuracy" if prefer == "accuracy" else "numba"]
        layer_class = getattr(module, symgrad.CATALOG[name].class_name)
    else:
        layer_class = symgrad.compile(name, prefer=prefer, fast=style == "fast")
        module = __import__("sys").modules[layer_class.__module__]
    if style == "fast":
        module._SMALL, small = 0, module._SMALL  # the kernels, at this size too
    try:
        layer = layer_class()
        with np.errstate(all="ignore"):
            y = layer.forward(x.copy())
            dx = layer.backward(np.ones_like(x))
    finally:
        if style == "fast":
            module._SMALL = small
    assert y.dtype == x.dtype and dx.dtype == x.dtype
    forward = ulps(y, y_exact, x.dtype)
    backward = ulps(dx, dy_exact, x.dtype)
    keep = np.ones(x.shape, dtype=bool)
    # Under memory, where the slope's terms cancel about its roots (the
    # windows the layer's docstring states; a quarter of |r| about a root that
    # has none).
    for r in roots_of_slope(name) if prefer == "memory" else ():
        keep &= np.abs(x.astype(np.float64) - r) > NEAR_ROOT * max(abs(r), 1.0)
    for low, high in _cancelling(name) if prefer == "memory" else ():
        keep &= ~((x > low) & (x < high))
    derivation = symgrad.derive(name, prefer=prefer)
    lossy = derivation.lossy if derivation.saves == "output" else ()
    from symgrad.layer import shared_part

    shared = shared_part(derivation)
    lossy = lossy or (shared.lossy if shared is not None else ())
    for low, high in lossy:
        keep &= ~((x >= low) & (x <= high))
    bound = 1.0 if dtype == "float16" else BOUND[name]
    worst = max(forward.max(), backward[keep].max(initial=0.0))
    where = x[np.argmax(np.maximum(forward, np.where(keep, backward, 0)))]
    assert worst <= bound, f"{worst:.3g} ulps at x = {where!r}"
