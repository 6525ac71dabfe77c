"""Numerics over the whole catalog: accuracy against mpmath, extreme inputs with
floating-point errors raised, infinities, NaN, dtypes and memory layouts."""

import functools

import mpmath
import numpy as np
import pytest

import symgrad
from symgrad.model import X
from symgrad.verify import evaluate_fixed

from .conftest import layer_class

NAMES = sorted(symgrad.CATALOG)
DTYPES = [np.float16, np.float32, np.float64]
# Issue #3's tolerances: (rtol, atol) per dtype.
TOLERANCE = {np.float64: (1e-9, 1e-12), np.float32: (1e-4, 1e-6)}
MAGNITUDES = [1e-300, 1e-8, 1.0, 20.0, 40.0, 89.0, 710.0, 1e10, 1e300]


def probes(dtype):
    """+-each magnitude and +-the dtype's max, as the dtype represents them."""
    values = [m for m in MAGNITUDES] + [float(np.finfo(dtype).max)]
    xs = np.array([s * v for v in values for s in (1.0, -1.0)])
    with np.errstate(over="ignore"):
        cast = xs.astype(dtype)
    return np.unique(cast[np.isfinite(cast)])


def random_points(count=1000, seed=7):
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(-8, 8, count // 2)
    magnitude = 10.0 ** rng.uniform(-3, 2.5, count - count // 2)
    return np.concatenate(
        [uniform, magnitude * rng.choice([-1.0, 1.0], magnitude.size)]
    )


@functools.cache
def reference(name, x):
    """(y, dy/dx) at x from the SymPy definition in mpmath at 50 digits, or None."""
    d = symgrad.derive(name)
    point = {X: x, **d.activation.values}
    y = evaluate_fixed(d.forward, point, digits=50)
    dy = evaluate_fixed(d.derivative, point, digits=50)
    return None if y is None or dy is None else (y, dy)


def _close(actual, expected, rtol, atol):
    return abs(actual - float(expected)) <= atol + rtol * abs(float(expected))


#: Layers whose readable code calls _log1p or _expm1, which take another way on
#: CPUs where NumPy's log1p and expm1 are scalar code.
CPU_DEPENDENT = ["celu", "elu", "log_sigmoid", "mish", "selu", "softplus"]


@pytest.mark.parametrize("style", ["readable", "fast"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CPU_DEPENDENT)
def test_the_cpu_dependent_way_is_as_accurate(catalog_modules, name, dtype, style):
    """With log1p and expm1 built on log and exp (as without AVX-512), the
    layers meet the same bar against mpmath, with no floating-point error."""
    module = catalog_modules[f"{style} without SIMD log1p"]
    test_accuracy_against_mpmath_at_random_and_probe_points(module, name, dtype)
    test_no_floating_point_error_where_the_true_result_is_finite(module, name, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_accuracy_against_mpmath_at_random_and_probe_points(
    catalog_module, name, dtype
):
    """Forward and backward agree with 50-digit mpmath at 1,000 random points and
    at the probes, to rtol 1e-9 + atol 1e-12 (float64) or 1e-4 + 1e-6 (float32)."""
    rtol, atol = TOLERANCE[dtype]
    xs = np.concatenate([random_points(), probes(dtype)]).astype(dtype)
    layer = layer_class(catalog_module, name)()
    with np.errstate(over="ignore", invalid="ignore"):
        out = layer.forward(xs)
        dx = layer.backward(np.ones_like(xs))
    limit = float(np.finfo(dtype).max)
    failures = []
    for xi, yi, di in zip(xs.tolist(), out.tolist(), dx.tolist(), strict=True):
        ref = reference(name, xi)
        if ref is None or abs(ref[0]) > limit or abs(ref[1]) > limit:
            continue  # the true value is not a finite number of this dtype
        if not (_close(yi, ref[0], rtol, atol) and _close(di, ref[1], rtol, atol)):
            failures.append((xi, yi, float(ref[0]), di, float(ref[1])))
    assert not failures, failures[:5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_no_floating_point_error_where_the_true_result_is_finite(
    catalog_module, name, dtype
):
    """With over/invalid/divide raising, every probe whose true y and dy/dx are finite
    numbers of the dtype goes through forward and backward."""
    layer = layer_class(catalog_module, name)()
    _assert_finite_without_errors(layer, dtype, lambda xi: reference(name, xi))


def _assert_finite_without_errors(layer, dtype, exact):
    """At each probe whose exact (y, dy/dx) (``exact(x)``, None if not real) are
    finite numbers of the dtype, forward and backward raise no floating-point
    error and give finite results."""
    limit = float(np.finfo(dtype).max)
    for xi in probes(dtype):
        ref = exact(float(xi))
        if ref is None or abs(ref[0]) > limit or abs(ref[1]) > limit:
            continue
        x = np.array([xi], dtype=dtype)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = layer.forward(x)
            dx = layer.backward(np.ones_like(x))
        assert np.isfinite(out).all() and np.isfinite(dx).all(), (xi, out, dx)


def _limit(name, side, derivative):
    """The value at side*inf, from mpmath far out: ('inf', sign), a number, or None."""
    near, far = (reference(name, side * m) for m in (1e200, 1e250))
    if near is None or far is None:
        return None
    a, b = near[derivative], far[derivative]
    if abs(b) > 1e150:
        return ("inf", mpmath.sign(b))
    if abs(a - b) <= 1e-12 * max(1, abs(b)):
        return float(b)
    return None  # no limit (sin)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_infinities_give_the_mathematical_limit(catalog_module, name, dtype):
    layer = layer_class(catalog_module, name)()
    x = np.array([np.inf, -np.inf], dtype=dtype)
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, and NumPy says so
        out = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    for i, side in enumerate((1, -1)):
        for derivative, actual in ((0, out[i]), (1, dx[i])):
            expected = _limit(name, side, derivative)
            if expected is None:
                continue
            if isinstance(expected, tuple):
                assert actual == expected[1] * np.inf, (side, derivative, actual)
            else:
                assert actual == pytest.approx(expected, rel=1e-6, abs=1e-12), (
                    side, derivative, actual)  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_nan_propagates_through_forward_and_backward(catalog_module, name):
    layer = layer_class(catalog_module, name)()
    assert np.isnan(layer.forward(np.array([np.nan, 0.7]))[0])
    layer.forward(np.array([0.7, 0.7]))
    dx = layer.backward(np.array([np.nan, 1.0]))
    assert np.isnan(dx[0]) and np.isfinite(dx[1])


@pytest.mark.parametrize("layout", ["strided", "transposed", "reversed"])
@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_arrays_give_the_same_results(catalog_module, name, layout):
    base = np.linspace(-4, 4, 48).reshape(6, 8)
    x = {"strided": base[:, ::2], "transposed": base.T, "reversed": base[::-1, ::-1]}[
        layout
    ]
    dout = np.cos(x)
    layer = layer_class(catalog_module, name)()
    out, dx = layer.forward(x), layer.backward(dout)
    contiguous = layer_class(catalog_module, name)()
    # NumPy's SIMD exp may round a strided element differently by an ulp.
    np.testing.assert_allclose(
        out, contiguous.forward(np.ascontiguousarray(x)), rtol=1e-15, atol=0
    )
    np.testing.assert_allclose(
        dx, contiguous.backward(np.ascontiguousarray(dout)), rtol=1e-15, atol=0
    )


#: Parameter values other than the defaults, which scale the input: beta*x
#: and x/alpha overflow at the dtype's largest values for beta > 1, alpha < 1.
SCALED = [
    ("softplus", {"beta": 2.0}),
    ("softplus", {"beta": 7.5, "threshold": 3.0}),
    ("softplus", {"beta": 0.25}),
    ("celu", {"alpha": 0.7}),
    ("celu", {"alpha": 0.01}),
    ("elu", {"alpha": 0.3}),
    ("swish", {"beta": 3.0}),
    ("leaky_relu", {"negative_slope": 5.0}),
]


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", SCALED, ids=[f"{n}-{p}" for n, p in SCALED])
def test_parameters_that_scale_the_input_raise_no_overflow(name, params, dtype, fast):
    """softplus(beta=2) at x = finfo.max computed beta*x (an overflow, though the
    result is x), celu(alpha=0.7) at -finfo.max overflowed in x/alpha: a scaled
    argument's overflow is its rounding to +-inf, not an error."""
    act = symgrad.activation(name, **params)
    layer = symgrad.compile(act, fast=fast)()
    d = symgrad.derive(act)

    def exact(xi):
        point = {X: xi, **act.values}
        y, dy = (evaluate_fixed(e, point) for e in (d.forward, d.derivative))
        return None if y is None or dy is None else (y, dy)

    _assert_finite_without_errors(layer, dtype, exact)
