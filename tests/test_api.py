"""The public Python API: activation, derive, generate, compile."""

import numpy as np
import pytest
import sympy

import symgrad
from symgrad.model import X, Y
from symgrad.verify import proven_equal


def test_activation_lookup_ignores_case_and_underscores():
    assert symgrad.activation("ReLU").name == "relu"
    assert symgrad.activation("SIGMOID").class_name == "Sigmoid"


def test_unknown_activation_lists_close_matches():
    with pytest.raises(
        ValueError, match=r"unknown activation 'sigmod'; did you mean sigmoid"
    ):
        symgrad.activation("sigmod")


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(
        ValueError, match=r"has no parameter 'beta'; its parameters: none"
    ):
        symgrad.activation("relu", beta=2.0)


@pytest.mark.parametrize(
    "name, saves, output_form",
    [
        ("relu", "mask", sympy.Piecewise((1, Y > 0), (0, True))),
        ("sigmoid", "output", Y * (1 - Y)),
        ("tanh", "output", 1 - Y**2),
        ("exp", "output", Y),
    ],
)
def test_derive_exposes_forward_derivative_output_form_and_saves(
    name, saves, output_form
):
    d = symgrad.derive(name)
    assert d.saves == saves
    assert proven_equal(sympy.diff(d.forward, X), d.derivative)
    assert d.output_form == output_form


def test_derive_accepts_an_activation_or_a_name():
    act = symgrad.activation("tanh")
    assert symgrad.derive(act).output_form == symgrad.derive("tanh").output_form


def test_relu_derivative_at_the_kink_is_zero():
    """ReLU'(0) = 0, as in the seed and in PyTorch: the branch x <= 0 holds there."""
    d = symgrad.derive("relu")
    assert d.derivative.subs(X, 0) == 0
    layer = symgrad.compile("relu")()
    layer.forward(np.array([0.0]))
    assert layer.backward(np.array([1.0])).tolist() == [0.0]


def test_generate_accepts_names_activations_and_a_single_item():
    assert "class Tanh" in symgrad.generate("tanh")
    both = symgrad.generate([symgrad.activation("relu"), "exp"])
    assert "class Relu" in both and "class Exp" in both


@pytest.mark.parametrize(
    "target, acts, taken",
    [
        ("numpy", ["relu", "relu"], "Relu"),
        ("torch", ["relu", "relu"], "ReluFunction"),
        ("jax", ["relu", "relu"], "relu"),
        # Two layers whose names differ but whose defined names meet.
        ("torch", ["relu", ("relu_function", "x*2")], "ReluFunction"),
        ("jax", ["relu", ("Relu", "x*2")], "relu"),
    ],
)
def test_generate_refuses_a_name_two_layers_define(target, acts, taken):
    acts = [a if isinstance(a, str) else symgrad.parse(a[1], name=a[0]) for a in acts]
    with pytest.raises(ValueError, match=f"layer name '{taken}' is used twice"):
        symgrad.generate(acts, target=target)


@pytest.mark.parametrize(
    "target, name, taken",
    [
        ("torch", "F", "F"),
        ("torch", "torch", None),  # class Torch: no clash
        ("jax", "jax", "jax"),
        ("jax", "Jnp", "jnp"),
        ("jax", "In_float32", None),  # function in_float32, not the helper
    ],
)
def test_generate_refuses_a_layer_name_the_module_imports_or_defines(
    target, name, taken
):
    act = symgrad.parse("x*2", name=name)
    if taken is None:
        symgrad.generate(act, target=target)
        return
    with pytest.raises(ValueError, match=f"layer name '{taken}' .* is taken"):
        symgrad.generate(act, target=target)


def test_a_helper_name_cannot_become_a_layer_name():
    """Helpers' names start with an underscore, which no layer name may."""
    with pytest.raises(ValueError, match="'_in_float32' must not start with an un"):
        symgrad.Activation("in_float32", "_in_float32", X * 2)


def test_custom_activation_objects_work_everywhere():
    """An Activation built by hand derives, generates and compiles like a catalog one."""
    alpha = symgrad.Param("alpha", 2.0)
    act = symgrad.Activation(
        "scaled_tanh", "ScaledTanh", alpha.symbol * sympy.tanh(X), params=(alpha,)
    )
    d = symgrad.derive(act)
    assert d.saves == "output"
    layer = symgrad.compile(act)()
    assert layer.alpha == 2.0
    symgrad.gradcheck(layer, np.linspace(-2, 2, 9))


def test_activation_rejects_bad_class_names_and_stray_symbols():
    with pytest.raises(ValueError, match="not a valid Python identifier"):
        symgrad.Activation("bad", "class", X)
    with pytest.raises(ValueError, match="unknown symbols z"):
        symgrad.Activation("bad", "Bad", X * sympy.Symbol("z", real=True))


def test_gradcheck_catches_a_wrong_backward():
    class Wrong:
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, dout):
            return dout * self.x  # should be 2 * x

    with pytest.raises(AssertionError, match="gradcheck failed for Wrong"):
        symgrad.gradcheck(Wrong(), np.linspace(1, 2, 5))
    assert not symgrad.gradcheck(
        Wrong(), np.linspace(1, 2, 5), raise_exception=False
    ).passed


def test_compile_gives_each_targets_layer_and_caches_them_apart():
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    numpy_layer = symgrad.compile("elu", alpha=0.5)
    module = symgrad.compile("elu", target="torch", alpha=0.5)
    function = symgrad.compile("elu", target="jax", alpha=0.5)
    assert numpy_layer.__name__ == "Elu" and hasattr(numpy_layer, "backward")
    assert issubclass(module, torch.nn.Module) and module().alpha == 0.5
    assert callable(function) and not isinstance(function, type)
    assert symgrad.compile("elu", target="torch", alpha=0.5) is module
    x = np.array([-1.0, 2.0])
    expected = numpy_layer().forward(x)
    np.testing.assert_allclose(module()(torch.tensor(x)).numpy(), expected)
    np.testing.assert_allclose(np.asarray(function(x, 0.5)), expected, rtol=1e-6)


def test_compile_without_the_framework_names_the_extra(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else find_spec(name, *a),
    )
    with pytest.raises(symgrad.MissingFrameworkError, match=r"symgrad\[torch\]"):
        symgrad.compile("relu", target="torch")
    with pytest.raises(ImportError, match="PyTorch, which is not installed"):
        symgrad.compile(symgrad.activation("relu"), target="torch")
