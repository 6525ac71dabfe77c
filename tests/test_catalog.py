"""The catalog: torch.nn's names and defaults, output forms, learnable parameters,
and agreement with PyTorch (a stored table, and PyTorch itself when installed)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

import symgrad
from symgrad.cli import main
from symgrad.layer import shared_part
from symgrad.model import X, Y
from symgrad.verify import evaluate_fixed

from .conftest import layer_class
from .torch_functions import POINTS, torch_values

NAMES = sorted(symgrad.CATALOG)
REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "torch_reference.json").read_text()
)

TORCH_DEFAULTS = {
    "leaky_relu": {"negative_slope": 0.01},
    "prelu": {"weight": 0.25},
    "elu": {"alpha": 1.0},
    "celu": {"alpha": 1.0},
    "softplus": {"beta": 1.0, "threshold": 20.0},
    "hardtanh": {"min_val": -1.0, "max_val": 1.0},
    "softshrink": {"lambd": 0.5},
    "hardshrink": {"lambd": 0.5},
    "swish": {"beta": 1.0},
}


def test_catalog_has_every_elementwise_torch_activation_and_the_extras():
    expected = {
        "relu", "sigmoid", "tanh", "leaky_relu", "prelu", "elu", "selu", "celu",
        "gelu", "gelu_tanh", "silu", "mish", "softplus", "softsign", "hardtanh",
        "relu6", "hardsigmoid", "hardswish", "log_sigmoid", "tanhshrink",
        "softshrink", "hardshrink", "threshold", "identity", "exp", "sin", "swish",
    }  # fmt: skip
    assert set(symgrad.CATALOG) == expected


@pytest.mark.parametrize("name, defaults", sorted(TORCH_DEFAULTS.items()))
def test_parameters_use_torch_names_and_defaults(name, defaults):
    params = {p.name: p.value for p in symgrad.activation(name).params}
    assert params == defaults


def test_gelu_approximate_option_selects_the_tanh_form():
    assert symgrad.activation("gelu", approximate="tanh").name == "gelu_tanh"
    assert symgrad.activation("gelu", approximate="none").name == "gelu"
    with pytest.raises(ValueError, match="approximate must be one of 'none', 'tanh'"):
        symgrad.activation("gelu", approximate="fast")


def test_torch_class_names_are_accepted():
    assert symgrad.activation("LeakyReLU").name == "leaky_relu"
    assert symgrad.activation("Hardswish").name == "hardswish"
    assert symgrad.activation("LogSigmoid").name == "log_sigmoid"


def test_list_shows_parameters_and_caches(capsys):
    assert main(["list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert (
        "negative_slope=0.01" in rows["leaky_relu"] and " mask " in rows["leaky_relu"]
    )
    assert (
        "beta=1.0, threshold=20.0" in rows["softplus"] and " input " in rows["softplus"]
    )
    assert " input " in rows["gelu"]
    assert set(NAMES) <= set(rows)


# Output forms the issue names, with the expected form where it is simple to state.
OUTPUT_FORMS = {
    "sigmoid": Y * (1 - Y),
    "tanh": 1 - Y**2,
    "exp": Y,
    "softsign": (1 - sympy.Abs(Y)) ** 2,
    "log_sigmoid": 1 - sympy.exp(Y),
    "elu": None,
    "celu": None,
    "selu": None,
    "leaky_relu": None,
    "relu6": None,
    "hardtanh": None,
}


@pytest.mark.parametrize("name", sorted(OUTPUT_FORMS))
def test_output_form_is_found_and_right(name):
    """g(f(x)) equals f'(x) at points on both sides of every kink."""
    d = symgrad.derive(name)
    g = d.output_form
    assert g is not None
    if OUTPUT_FORMS[name] is not None:
        assert sympy.simplify(g - OUTPUT_FORMS[name]) == 0
    values = d.activation.values
    for x in (-7.3, -2.2, -0.9, -0.3, 0.2, 0.8, 1.6, 4.1, 7.7, 25.0):
        point = {X: x, **values}
        y = evaluate_fixed(d.forward, point)
        expected = evaluate_fixed(d.derivative, point)
        assert float(evaluate_fixed(g, {Y: y, **values})) == pytest.approx(
            float(expected), rel=1e-12, abs=1e-15
        )


def test_elu_output_form_negative_branch_is_y_plus_alpha():
    g = symgrad.derive("elu").output_form
    alpha = symgrad.activation("elu").param("alpha").symbol
    assert g.args[1][0] == Y + alpha


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
@pytest.mark.parametrize(
    "threshold, xs",
    [
        (20.0, [20 + 1e-9, 20 + 2e-9, np.nextafter(20.0, 21.0)]),
        (1.0, [1.1, 1.2, 1.3, np.nextafter(1.0, 2.0)]),
        (5.0, [5.0 + 1e-12, 5.5, 6.5]),
    ],
)
def test_softplus_backward_takes_the_branch_forward_took(threshold, xs, fast):
    """Regression (issue 12): forward's linear branch (beta*x > threshold) has
    slope 1 there.  Softplus jumps down at the threshold (x = 1.1 gives y = 1.1,
    below softplus(1) = 1.31), so no condition on y tells its branches apart:
    the output-form search refuses it, and backward reads x, as PyTorch's does."""
    d = symgrad.derive("softplus", threshold=threshold)
    assert d.output_form is None and d.saves == "input"
    layer = symgrad.compile("softplus", threshold=threshold, fast=fast)()
    if fast:
        sys.modules[type(layer).__module__]._SMALL = 0
    x = np.array(xs)
    layer.forward(x)
    assert layer.backward(np.ones_like(x)).tolist() == [1.0] * len(xs)
    below = np.array([threshold * 0.99])
    layer.forward(below)
    expected = 1 / (1 + np.exp(-below[0]))
    assert layer.backward(np.ones(1))[0] == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_docstring_says_which_form_backward_uses_and_what_is_cached(name):
    saves = symgrad.derive(name).saves
    source = symgrad.generate(name)
    phrase = {
        "output": "Backward needs only the output, so forward caches ``out``.",
        "mask": "Forward caches the boolean ``mask = ",
        "input": "forward caches ``x``",
        "nothing": "forward caches nothing but the shape.",
    }[saves]
    if shared_part(symgrad.derive(name)) is not None:
        phrase = "``s = "  # the part both passes use, cached once
    assert phrase in " ".join(source.split())


@pytest.mark.parametrize(
    "name", [n for n in NAMES if symgrad.derive(n).plan.mask is not None]
)
def test_kink_convention_is_stated(name):
    assert "the branch that holds there decides, as in PyTorch" in " ".join(
        symgrad.generate(name).split()
    )


# -- PyTorch ------------------------------------------------------------------------


# PyTorch's float64 hardsigmoid backward multiplies by 1/6 rounded to float32
# (0.1666666716337204); symgrad's 1/6 is exact, 3e-8 away.
GRAD_RTOL = {"hardsigmoid": 1e-7}


@pytest.mark.parametrize("name", NAMES)
def test_values_and_gradients_match_pytorch_reference_table(catalog_module, name):
    """Forward and backward (dout = 1) equal PyTorch's, kinks included."""
    entry = REFERENCE["activations"][name]
    layer = layer_class(catalog_module, name)()
    x = np.array(REFERENCE["points"])
    np.testing.assert_allclose(layer.forward(x), entry["out"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        layer.backward(np.ones_like(x)),
        entry["grad"],
        rtol=GRAD_RTOL.get(name, 1e-9),
        atol=1e-12,
    )
    for param, grad in entry["param_grads"].items():
        assert layer.grads[param] == pytest.approx(grad, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_values_and_gradients_match_live_pytorch(catalog_module, name):
    pytest.importorskip(
        "torch", reason="PyTorch is not installed; the stored table covers it"
    )
    out, grad, params = torch_values(name)
    layer = layer_class(catalog_module, name)()
    x = np.array(POINTS)
    np.testing.assert_allclose(layer.forward(x), out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        layer.backward(np.ones_like(x)),
        grad,
        rtol=GRAD_RTOL.get(name, 1e-9),
        atol=1e-12,
    )
    for param, value in params.items():
        assert layer.grads[param] == pytest.approx(value, rel=1e-9, abs=1e-12)


# -- learnable parameters ------------------------------------------------------------


def _numeric_param_grad(layer, name, x, dout, h=1e-6):
    base = layer.params[name]
    totals = []
    for step in (h, -h):
        layer.params[name] = base + step
        totals.append(float(np.sum(dout * layer.forward(x))))
    layer.params[name] = base
    return (totals[0] - totals[1]) / (2 * h)


@pytest.mark.parametrize(
    "act",
    [
        symgrad.activation("prelu"),
        symgrad.activation("prelu", weight=-0.3),
        symgrad.activation("swish", learnable=["beta"]),
        symgrad.activation("swish", beta=1.7, learnable=["beta"]),
    ],
    ids=["prelu", "prelu-negative", "swish-beta", "swish-beta-1.7"],
)
def test_learnable_parameter_gradient_matches_finite_differences(act):
    """backward sums d(dout*y)/dparam over all elements into self.grads."""
    layer = symgrad.compile(act)()
    rng = np.random.default_rng(3)
    x = rng.uniform(-4, 4, (5, 6))
    dout = rng.uniform(-1, 1, x.shape)
    (name,) = [p.name for p in act.learnable]
    layer.forward(x)
    layer.backward(dout)
    expected = _numeric_param_grad(layer, name, x, dout)
    assert layer.grads[name] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    symgrad.gradcheck(layer, x)


def test_learnable_parameter_is_an_attribute_and_lives_in_params():
    layer = symgrad.compile("prelu")(weight=0.1)
    assert layer.weight == 0.1 and layer.params == {"weight": 0.1}
    assert layer.grads == {"weight": None}
    layer.params["weight"] -= 0.05  # an optimiser step, DLfS style
    assert layer.weight == pytest.approx(0.05)
    out = layer.forward(np.array([-2.0, 3.0]))
    np.testing.assert_allclose(out, [-0.1, 3.0])


def test_unknown_learnable_parameter_is_refused():
    with pytest.raises(ValueError, match="has no parameter 'gamma' to learn"):
        symgrad.activation("swish", learnable=["gamma"])


@pytest.mark.parametrize("target", ["numpy-readable", "numpy-fast", "torch", "jax"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_hardsigmoid_does_not_cancel_near_minus_three(target, dtype):
    """Regression (issue 12): x/6 + 1/2 cancelled at the root (nextafter(-3, 0)
    gave 5.55e-17 against 7.40e-17, 2e15 ulps; 341 ulps in float16); the
    printers write c*u + b as (u + b/c)*c wherever b/c is whole: (x + 3)/6."""
    import mpmath

    name, _, style = target.partition("-")
    source = symgrad.generate("hardsigmoid", target=name, fast=style == "fast")
    assert "(x + 3.0) / 6.0" in source and "x / 6.0 + 0.5" not in source
    if name != "numpy":
        return  # the printed form is the same; the torch and jax suites run it
    layer = symgrad.compile("hardsigmoid", fast=style == "fast")()
    if style == "fast":
        sys.modules[type(layer).__module__]._SMALL = 0
    points = [np.nextafter(np.array(-3.0, dtype), np.array(0.0, dtype))]
    points += [np.array(v, dtype) for v in (-2.99, -2.5, -1.0, 0.7, 2.9)]
    x = np.array(points, dtype=dtype)
    out = layer.forward(x)
    for xi, yi in zip(x, out, strict=True):
        exact = (mpmath.mpf(float(xi)) + 3) / 6
        spacing = float(np.spacing(np.array(float(exact), dtype)))
        assert abs(float(yi) - float(exact)) <= spacing, (xi, yi, exact)


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
def test_gelu_near_zero_is_exact_to_an_ulp(fast):
    """Regression (issue 12): the helper's erfc fit gave erfc(0) = 1 - 1.4e-15, so
    gelu'(0) was 0.49999999999999928 and |x| < 1e-3 was 6-15 ulps off; below
    |u| = 1/8 erfc is now 1 - erf(u) from erf's own polynomial."""
    import mpmath

    layer = symgrad.compile("gelu", fast=fast)()
    if fast:
        sys.modules[type(layer).__module__]._SMALL = 0
    x = np.array([0.0, -0.0, 1e-12, -3e-7, 1e-4, -2e-4, 5e-4, -9.99e-4, 0.01, -0.05])
    y = layer.forward(x)
    dy = layer.backward(np.ones_like(x))
    assert dy[0] == dy[1] == 0.5 and y[0] == 0.0
    with mpmath.workdps(40):
        for xi, yi, di in zip(x, y, dy, strict=True):
            v = mpmath.mpf(float(xi))
            phi = mpmath.erfc(-v / mpmath.sqrt(2)) / 2
            exact_y = v * phi
            exact_d = phi + v * mpmath.exp(-(v**2) / 2) / mpmath.sqrt(2 * mpmath.pi)
            assert abs(di - float(exact_d)) <= 2 * np.spacing(float(exact_d)), xi
            if xi != 0:
                assert abs(yi - float(exact_y)) <= 2 * abs(np.spacing(float(exact_y)))
