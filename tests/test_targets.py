"""The PyTorch and JAX targets, judged as the NumPy layers are: the whole catalog
against mpmath, the NumPy layer and PyTorch's own functions, with extreme
inputs, infinities, NaN and every dtype.

Each layer is called through `symgrad.targets.runners` (NumPy in, NumPy out,
the input's dtype kept), so the same checks run on every target.
"""

import numpy as np
import pytest

import symgrad

from .conftest import FRAMEWORKS, layer_class, target_runner
from .test_catalog import GRAD_RTOL
from .test_numerics import (
    TOLERANCE,
    _close,
    _limit,
    probes,
    random_points,
    reference,
)
from .torch_functions import POINTS, torch_values

NAMES = sorted(symgrad.CATALOG)


@pytest.fixture(params=FRAMEWORKS)
def target(request):
    return request.param


@pytest.fixture
def module(target, catalog_modules):
    return catalog_modules[target]


def _run(module, target, name, x, dout=None):
    layer = target_runner(module, target, name)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(x) if dout is None else dout)
    return np.asarray(out), np.asarray(dx)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_accuracy_against_mpmath_at_random_and_probe_points(
    module, target, name, dtype
):
    """The NumPy layers' bar: 1,000 random points and the probes, forward and
    backward, to rtol 1e-9 + atol 1e-12 (float64) or 1e-4 + 1e-6 (float32)."""
    rtol, atol = TOLERANCE[dtype]
    xs = np.concatenate([random_points(), probes(dtype)]).astype(dtype)
    out, dx = _run(module, target, name, xs)
    assert out.dtype == dx.dtype == dtype
    limit = float(np.finfo(dtype).max)
    failures = []
    for xi, yi, di in zip(xs.tolist(), out.tolist(), dx.tolist(), strict=True):
        ref = reference(name, xi)
        if ref is None or abs(ref[0]) > limit or abs(ref[1]) > limit:
            continue
        if not (_close(yi, ref[0], rtol, atol) and _close(di, ref[1], rtol, atol)):
            failures.append((xi, yi, float(ref[0]), di, float(ref[1])))
    assert not failures, failures[:5]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_finite_wherever_the_true_result_is_finite(module, target, name, dtype):
    """The extreme-input sweep: every probe whose true y and dy/dx are finite
    numbers of the dtype gives finite ones, float16 (computed in float32) too."""
    xs = probes(dtype)
    out, dx = _run(module, target, name, xs)
    limit = float(np.finfo(dtype).max)
    for xi, yi, di in zip(xs.tolist(), out.tolist(), dx.tolist(), strict=True):
        ref = reference(name, float(xi))
        if ref is None or abs(ref[0]) > limit or abs(ref[1]) > limit:
            continue
        assert np.isfinite(yi) and np.isfinite(di), (xi, yi, di)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_infinities_give_the_mathematical_limit(module, target, name, dtype):
    out, dx = _run(module, target, name, np.array([np.inf, -np.inf], dtype=dtype))
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
def test_nan_propagates_through_forward_and_backward(module, target, name):
    out, _ = _run(module, target, name, np.array([np.nan, 0.7]))
    assert np.isnan(out[0]) and np.isfinite(out[1])
    _, dx = _run(module, target, name, np.array([0.7, 0.7]), np.array([np.nan, 1.0]))
    assert np.isnan(dx[0]) and np.isfinite(dx[1])


@pytest.mark.parametrize("name", NAMES)
def test_values_and_gradients_match_the_numpy_layer(
    module, target, name, readable_catalog_module
):
    """At the kinks (PyTorch's conventions) and ordinary points, float64, to the
    catalog's tolerances.  (Where a derivative is computed from the output, as
    tanh's 1 - y**2, both lose its far tail alike: issue 12's business.)"""
    x = np.concatenate([np.array(POINTS), np.linspace(-9, 9, 181)])
    out, dx = _run(module, target, name, x)
    layer = layer_class(readable_catalog_module, name)()
    rtol, atol = TOLERANCE[np.float64]
    np.testing.assert_allclose(out, layer.forward(x), rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        dx, layer.backward(np.ones_like(x)), rtol=rtol, atol=atol
    )


@pytest.mark.parametrize("name", NAMES)
def test_values_and_gradients_match_pytorchs_own_function(module, target, name):
    pytest.importorskip("torch")
    out, grad, _ = torch_values(name)
    x = np.array(POINTS)
    mine, dx = _run(module, target, name, x)
    np.testing.assert_allclose(mine, out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, grad, rtol=GRAD_RTOL.get(name, 1e-9), atol=1e-12)
