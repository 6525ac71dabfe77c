"""The output form comes from elimination, for listed and unlisted formulas alike."""

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy import Abs, Piecewise, exp, log, sin, sqrt, tanh

import symgrad
from symgrad.model import X as x
from symgrad.model import Y as y
from symgrad.output_form import find_output_form
from symgrad.verify import evaluate

a = sympy.Symbol("a", real=True)
alpha = sympy.Symbol("alpha", real=True)

# (name, f, expected g(y) or None, parameter values)
CASES = [
    ("sigmoid", 1 / (1 + exp(-x)), y * (1 - y), {}),
    ("tanh", tanh(x), 1 - y**2, {}),
    ("exp", exp(x), y, {}),
    ("square", x**2, None, {}),
    ("cube", x**3, 3 * Abs(y) ** sympy.Rational(2, 3), {}),
    ("sin", sin(x), None, {}),
    ("mish", x * tanh(log(1 + exp(x))), None, {}),
    ("softplus", log(1 + exp(x)), 1 - exp(-y), {}),
    ("log_sigmoid", -log(1 + exp(-x)), 1 - exp(y), {}),
    ("bipolar_sigmoid", (1 - exp(-x)) / (1 + exp(-x)), (1 - y**2) / 2, {}),
    ("softsign", x / (1 + Abs(x)), (1 - Abs(y)) ** 2, {}),
    ("scaled_tanh", 2 * tanh(x / 3), (4 - y**2) / 6, {}),
    (
        "elu",
        Piecewise((x, x > 0), (alpha * (exp(x) - 1), True)),
        Piecewise((1, y > 0), (y + alpha, True)),
        {alpha: 1.0},
    ),
    (
        "isrlu_negative",
        x / sqrt(1 + a * x**2),
        (1 - a * y**2) ** sympy.Rational(3, 2),
        {a: 1.0},
    ),
]


@pytest.mark.parametrize("name, f, expected, values", CASES, ids=[c[0] for c in CASES])
def test_output_form_found_or_refused(name, f, expected, values):
    """Each formula gets exactly the expected g(y), or None where none exists."""
    f = symgrad.derive(symgrad.Activation(name, "L", f, _params(values))).forward
    derivative = sympy.diff(f, x)
    g = find_output_form(f, derivative, values)
    if expected is None:
        assert g is None
        return
    assert g is not None
    for point in (-2.5, -0.7, -0.1, 0.3, 1.1, 2.9):
        yv = evaluate(f, {x: point, **values})
        if yv is None:
            continue
        lhs = evaluate(g, {y: yv, **values})
        rhs = evaluate(expected, {y: yv, **values})
        assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)


def test_sigmoid_output_form_is_symbolically_y_times_one_minus_y():
    """derive('sigmoid').output_form simplifies to exactly y*(1 - y)."""
    g = symgrad.derive("sigmoid").output_form
    assert sympy.simplify(g - y * (1 - y)) == 0


def test_square_falls_back_to_saving_the_input():
    """x**2 has no output form (±2*sqrt(y) is wrong on one side), so x is saved."""
    act = symgrad.Activation("square", "Square", x**2)
    derivation = symgrad.derive(act)
    assert derivation.output_form is None
    assert derivation.saves == "input"


def _params(values):
    return tuple(symgrad.Param(str(s), v) for s, v in values.items())


@settings(max_examples=25, deadline=None)
@given(
    scale=st.integers(1, 4),
    rate=st.sampled_from([sympy.Rational(1, 2), 1, 2, 3]),
    shift=st.integers(-3, 3),
    kind=st.sampled_from(["sigmoid", "tanh", "exp"]),
)
def test_affine_images_of_invertible_functions_have_verified_output_forms(
    scale, rate, shift, kind
):
    """For f = s*h(r*x) + c with h invertible, an output form exists and is right."""
    inner = {
        "sigmoid": 1 / (1 + exp(-rate * x)),
        "tanh": tanh(rate * x),
        "exp": exp(rate * x),
    }[kind]
    f = scale * inner + shift
    derivative = sympy.diff(f, x)
    g = find_output_form(f, derivative)
    assert g is not None, f
    for point in (-1.7, -0.4, 0.6, 1.3):
        yv = evaluate(f, {x: point})
        expected = float(evaluate(derivative, {x: point}))
        assert float(evaluate(g, {y: yv})) == pytest.approx(
            expected, rel=1e-12, abs=1e-12
        )
