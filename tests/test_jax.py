"""The JAX target as a JAX user would try it: check_grads to second order,
jit, vmap, grad of grad, static parameters, learnable-parameter holders and
dtypes.  (Accuracy, extreme inputs and agreement with the NumPy layers and
PyTorch are in test_targets, for every target.)"""

import inspect

import numpy as np
import pytest

import symgrad
from symgrad.check import ordinary_points
from symgrad.targets.jax_target import function_name

from .conftest import load_generated

jax = pytest.importorskip("jax")
jnp = jax.numpy
from jax.test_util import check_grads  # noqa: E402 (after the importorskip)

NAMES = sorted(symgrad.CATALOG)


@pytest.fixture
def module(catalog_modules):
    return catalog_modules["jax"]


@pytest.fixture
def x64():
    """JAX's 64-bit mode for one test."""
    with jax.enable_x64(True):
        yield


def _function(module, name):
    return getattr(module, function_name(symgrad.CATALOG[name]))


@pytest.mark.parametrize("name", NAMES)
def test_check_grads_to_second_order(module, name, x64):
    """jax.test_util.check_grads in reverse mode, first and second order (grad of
    the custom backward rule), at points off the kinks."""
    f = _function(module, name)
    x = jnp.asarray(ordinary_points(symgrad.CATALOG[name], 31))
    check_grads(f, (x,), order=2, modes=["rev"])


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_give_the_eager_results(module, name, x64):
    """To the catalog's float64 tolerance: XLA fuses the jitted operations and may
    round an ulp differently, which a derivative taken from the output (tanh's
    1 - y**2 at |x| = 7) magnifies."""
    f = _function(module, name)
    x = jnp.linspace(-7.0, 7.0, 24).reshape(4, 6)
    eager = f(x)

    def same(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)

    same(jax.jit(f)(x), eager)
    same(jax.vmap(f)(x), eager)
    grad = jax.grad(lambda u: f(u).sum())
    same(jax.jit(grad)(x), grad(x))
    same(jax.vmap(jax.grad(f))(x.ravel()), grad(x).ravel())


@pytest.mark.parametrize("name", ["relu", "gelu", "softplus", "prelu"])
def test_pmap_over_the_devices_gives_the_eager_results(module, name, x64):
    """Under jax.pmap (one slice per device; one CPU device here), values and
    gradients are the eager ones."""
    f = _function(module, name)
    count = jax.local_device_count()
    x = jnp.linspace(-7.0, 7.0, 6 * count).reshape(count, 6)
    grad = jax.grad(lambda u: f(u).sum())
    np.testing.assert_allclose(jax.pmap(f)(x), f(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.pmap(grad)(x), grad(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_grad_of_grad_matches_the_second_derivative(module, name, x64):
    """d2y/dx2 from grad(grad(f)) against central differences of the derivative."""
    f = _function(module, name)
    first = jax.grad(f)
    second = jax.vmap(jax.grad(first))
    x = jnp.asarray(ordinary_points(symgrad.CATALOG[name], 41))
    h = 1e-5 * jnp.maximum(1.0, jnp.abs(x))
    numeric = (jax.vmap(first)(x + h) - jax.vmap(first)(x - h)) / (2 * h)
    np.testing.assert_allclose(second(x), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"], ids=lambda d: d)
@pytest.mark.parametrize("name", NAMES)
def test_dtypes_without_x64_are_kept(module, name, dtype):
    """In JAX's default 32-bit mode, float32 stays float32, and float16 and
    bfloat16 are computed in float32 and returned in their own dtype."""
    f = _function(module, name)
    x = jnp.linspace(-8, 8, 33, dtype=dtype)
    out, vjp = jax.vjp(f, x)
    (dx,) = vjp(jnp.ones_like(out))
    assert out.dtype == dx.dtype == jnp.dtype(dtype)
    reference = f(x.astype(jnp.float32)).astype(dtype)
    np.testing.assert_array_equal(out, reference)
    assert bool(jnp.isfinite(out).all() and jnp.isfinite(dx).all())


def test_fixed_parameters_are_static_under_jit(module, x64):
    """Numbers that are not learned go in as Python numbers: as keywords, closed
    over, or named in static_argnames; jax.grad differentiates x only."""
    x = jnp.linspace(-3, 3, 7)
    expected = jnp.where(2.0 * x > 20.0, x, jnp.logaddexp(0.0, 2.0 * x) / 2.0)
    np.testing.assert_allclose(module.softplus(x, beta=2.0), expected, rtol=1e-15)
    static = jax.jit(module.softplus, static_argnames=("beta", "threshold"))
    np.testing.assert_allclose(static(x, beta=2.0), expected, rtol=1e-15)
    np.testing.assert_allclose(
        jax.jit(lambda u: module.softplus(u, 2.0))(x), expected, rtol=1e-15
    )
    assert "static_argnames" in inspect.getdoc(module.softplus)


def test_prelu_holder_trains_a_weight_per_channel(module, x64):
    layer = module.PRelu(num_parameters=3, init=0.1)
    assert layer.params["weight"].shape == (3,)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 5))
    grads = jax.grad(lambda p: layer(x, p).sum())(layer.params)
    np.testing.assert_allclose(
        grads["weight"], jnp.minimum(x, 0.0).sum(axis=(0, 2)), rtol=1e-14
    )
    jitted = jax.jit(jax.grad(lambda p: layer(x, p).sum()))(layer.params)
    np.testing.assert_allclose(jitted["weight"], grads["weight"], rtol=1e-14)
    torch = pytest.importorskip("torch")
    weight = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(np.asarray(x), requires_grad=True)
    torch.nn.functional.prelu(xt, weight).sum().backward()
    np.testing.assert_allclose(grads["weight"], weight.grad.numpy(), rtol=1e-13)


def test_learnable_swish_beta_holder(tmp_path, x64):
    act = symgrad.activation("swish", learnable="beta")
    module = load_generated(symgrad.generate(act, target="jax"), tmp_path)
    layer = module.Swish(beta=1.5)
    x = jnp.linspace(-6, 6, 41)
    grads = jax.grad(lambda p: layer(x, p).sum())(layer.params)
    expected = jax.grad(lambda b: (x * jax.nn.sigmoid(b * x)).sum())(1.5)
    np.testing.assert_allclose(grads["beta"], expected, rtol=1e-13)


def test_module_imports_jax_alone():
    source = symgrad.generate(NAMES, target="jax")
    imports = [
        line for line in source.splitlines() if line.startswith(("import", "from"))
    ]
    assert imports == ["import jax", "import jax.numpy as jnp"]
    assert "numpy as np" not in source and ".item(" not in source
