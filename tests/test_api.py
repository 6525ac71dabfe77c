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


def test_generate_refuses_duplicate_class_names():
    with pytest.raises(ValueError, match="class name 'Relu' is used twice"):
        symgrad.generate(["relu", "relu"])


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
