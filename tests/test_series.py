"""The polynomial about a root (`symgrad.series.series_near_root`).

Where a sum's terms cancel at a root r != 0 (Mish's slope at -1.19), a layer
under prefer='accuracy' computes (x - r)*P there.  Each formula below is parsed as a user would write
it; the truth is its own SymPy expression (or derivative) in mpmath, and the
layer is checked in ulps at the floats nearest the root and across the window,
where the sum as written is thousands of ulps off or more.
"""

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad
from symgrad.functions import near_root
from symgrad.model import X
from symgrad.oracle import exact, mpmath_function, ulps
from symgrad.regimes import numpy_function
from symgrad.rewrite import stabilize
from symgrad.series import _split_root

# (formula, direction): the sum that cancels is that direction's.
CANCELLING = [
    ("x*tanh(softplus(x))", "backward"),  # Mish: -1.19
    ("x*sigmoid(x)", "backward"),  # SiLU: -1.28
    ("x*log(1 + exp(x))", "backward"),  # x*softplus(x)
    ("x*atan(x) - 1", "forward"),  # +-1.16
    ("exp(x) - 2", "forward"),  # log(2)
    ("log(1 + x**2) - 1", "forward"),  # +-1.31
    ("x**3 - 2", "forward"),  # 2**(1/3)
]
DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _truth(formula: str, direction: str) -> sympy.Expr:
    act = symgrad.parse(formula, name="F")
    return act.expr if direction == "forward" else sympy.diff(act.expr, X)


def _roots(truth: sympy.Expr) -> list[float]:
    """The roots of truth on [-5, 5], from the definition (not symgrad's)."""
    function = mpmath_function(truth)
    points = np.linspace(-5.0, 5.0, 201) + 0.0123
    found = []
    for a, b in zip(points, points[1:], strict=False):
        fa, fb = function(mpmath.mpf(a)), function(mpmath.mpf(b))
        if fa * fb < 0:
            with mpmath.workdps(40):
                found.append(mpmath.findroot(function, (a, b), solver="anderson"))
    return found


def _around(roots, dtype) -> np.ndarray:
    """0..4 floats either side of each root, and a spread across +-1 of it."""
    points = []
    for root in roots:
        centre = dtype.type(float(root))
        for direction in (-np.inf, np.inf):
            value = centre
            for _ in range(5):
                points.append(value)
                value = np.nextafter(value, dtype.type(direction))
        points.extend(dtype.type(float(root) + d) for d in np.linspace(-1, 1, 41))
    return np.unique(np.array(points, dtype=dtype))


@pytest.mark.parametrize("formula, direction", CANCELLING)
def test_a_sum_is_accurate_in_ulps_at_its_root(formula, direction):
    """Within 4 ulps at the floats nearest each root and across +-1 of it, in
    float64 and float32, where the sum as written loses thousands of ulps."""
    truth = _truth(formula, direction)
    layer_class = symgrad.compile(symgrad.parse(formula, name="F", prefer="accuracy"))
    roots = _roots(truth)
    assert roots, formula
    for dtype in DTYPES:
        x = _around(roots, dtype)
        layer = layer_class()
        with np.errstate(all="raise", under="ignore"):
            y = layer.forward(x.copy())
            dx = layer.backward(np.ones_like(x))
        actual = y if direction == "forward" else dx
        errors = ulps(actual, exact(mpmath_function(truth), x), dtype)
        worst = int(np.argmax(errors))
        assert errors[worst] <= 4.0, (formula, dtype.name, x[worst], errors[worst])


@pytest.mark.parametrize("target", ["numpy", "numba"])
@pytest.mark.parametrize("name", ["mish", "gelu_tanh"])  # slopes that are the fit
def test_the_fit_is_rounded_once_across_its_whole_window(name, target, catalog_modules):
    """d*P(d) in double-double arithmetic: within an ulp in float64 on 2,001
    points across the window, its ends included, where P's own terms cancel
    (a float64 Horner in a mapped variable lost 5.6 ulps there: Mish at x =
    -2.873046874).  numba's layer is the catalog module's, whose loops the
    workers share."""
    if target == "numba":
        pytest.importorskip("numba")
    act = symgrad.activation(name, prefer="accuracy")
    (node,) = stabilize(sympy.diff(act.expr, X), "accuracy").atoms(near_root)
    lower, upper = node.window
    x = np.concatenate([np.linspace(lower, upper, 2001)[1:-1], [-2.873046874]])
    x = x[(x > lower) & (x < upper)]
    if target == "numba":
        layer = getattr(catalog_modules["numba accuracy"], act.class_name)()
    else:
        layer = symgrad.compile(act, target=target)()
    layer.forward(x.copy())
    dx = layer.backward(np.ones_like(x))
    errors = ulps(dx, exact(mpmath_function(sympy.diff(act.expr, X)), x), x.dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= 1.0, (x[worst], errors[worst])


def test_a_framework_takes_the_fit_only_where_its_float64_holds():
    """PyTorch computes the fit in its own float64, in s = x mapped onto [-1,
    1], and only where that keeps 2 ulps (`functions._held`); Mish's window is
    wide, and P in powers of d there was 9e6 ulps off at its end."""
    torch = pytest.importorskip("torch")
    act = symgrad.activation("mish", prefer="accuracy")
    (node,) = stabilize(sympy.diff(act.expr, X), "accuracy").atoms(near_root)
    x = np.linspace(*node.window, 2001)[1:-1]
    inputs = torch.tensor(x, requires_grad=True)
    (slope,) = torch.autograd.grad(
        symgrad.compile(act, target="torch")()(inputs).sum(), inputs
    )
    truth = exact(mpmath_function(sympy.diff(act.expr, X)), x)
    assert ulps(slope.numpy(), truth, x.dtype).max() <= 8.0


@pytest.mark.parametrize("formula, direction", CANCELLING)
def test_the_sum_as_written_fails_there(formula, direction):
    """Without the polynomial (its far argument, the stable sum) the same
    points are far off: the rule is what makes the test above pass."""
    truth = _truth(formula, direction)
    assert not stabilize(truth).atoms(near_root)  # memory: the sum as written
    stable = stabilize(truth, "accuracy")
    nodes = stable.atoms(near_root)
    assert nodes, f"no polynomial about a root in {stable}"
    plain = stable.replace(lambda e: isinstance(e, near_root), lambda e: e.args[0])
    x = _around(_roots(truth), np.dtype(np.float64))
    with np.errstate(all="ignore"):
        value = np.broadcast_to(numpy_function(plain)(x), x.shape)
    errors = ulps(value, exact(mpmath_function(truth), x), np.dtype(np.float64))
    assert errors.max() > 1e3


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_frameworks_subtract_the_root_in_parts(target):
    """PyTorch and JAX print (x - r) as the parts' subtractions in turn and
    agree with the NumPy layer at the root to within 4 ulps (float64)."""
    pytest.importorskip(target)
    act = symgrad.parse("x*tanh(softplus(x))", name="MyMish", prefer="accuracy")
    source = symgrad.generate(act, target=target)
    assert "1.1923828125" in source  # the root's first part, 11 bits
    (root,) = _roots(_truth("x*tanh(softplus(x))", "backward"))
    x = _around([root], np.dtype(np.float64))
    module = symgrad.compile(act, target=target)
    if target == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        module()(t).sum().backward()
        dx = t.grad.numpy()
    else:
        import jax

        jax.config.update("jax_enable_x64", True)
        dx = np.asarray(jax.grad(lambda v: module(v).sum())(x))
    truth = exact(mpmath_function(_truth("x*tanh(softplus(x))", "backward")), x)
    assert ulps(dx, truth, np.dtype(np.float64)).max() <= 4.0


def test_a_line_is_left_to_the_printers():
    """Hardswish's slope x/3 + 1/2 is printed about its root, (x + 1.5)/3, and
    gets no window."""
    for prefer in ("memory", "accuracy"):
        layer = symgrad.generate("hardswish", prefer=prefer)
        assert "(x + 1.5) / 3.0" in layer
        assert "_near_root" not in layer
    half = symgrad.parse("x**2/6 + x/2", name="Half")  # dx alone: not split
    assert "dx = dout * ((x + 1.5) / 3.0)" in symgrad.generate(half)
    # erf(0.5 - x) reads x - 0.5 (x clipped): exact near 0.5 as it is.
    shifted = symgrad.parse("erf(0.5 - x)", name="Shifted", prefer="accuracy")
    assert "_near_root" not in symgrad.generate(shifted)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-3, max_value=1e3), st.sampled_from([-1, 1]))
def test_a_root_is_split_into_parts_that_subtract_exactly(value, sign):
    """Four parts of 11, 24, 53 and 53 bits, summing to the root to 1e-40."""
    with mpmath.workdps(50):
        root = sign * mpmath.mpf(value) * (1 + mpmath.mpf(10) ** -20 * mpmath.pi)
        parts = _split_root(root)
        assert abs(mpmath.fsum(map(mpmath.mpf, parts)) - root) <= abs(root) * 1e-40
    for part, bits in zip(parts, (11, 24, 53), strict=False):
        mantissa = abs(mpmath.mpf(part))
        if mantissa:
            scaled = mantissa / mpmath.mpf(2) ** (
                mpmath.floor(mpmath.log(mantissa, 2)) - bits + 1
            )
            assert scaled == int(scaled), (part, bits)
