"""Printer rules, each checked on the exact source it prints."""

import pytest
import sympy
from sympy import Abs, Max, Min, Piecewise, Rational, exp, sqrt

from symgrad.functions import sigmoid
from symgrad.model import MASK, X, Y
from symgrad.printing import LayerPrinter, format_expression

alpha = sympy.Symbol("alpha", real=True)
NAMES = {X: "x", Y: "out", MASK: "mask", alpha: "self.alpha"}

CASES = [
    ("integer power", X**3, "x * x * x"),
    ("square of a sum", (1 - Y) ** 2, "np.square(1.0 - out)"),
    ("cube of a sum", (1 - Y) ** 3, "(1.0 - out) * (1.0 - out) * (1.0 - out)"),
    # (1/x)**2: x * x overflows where the quotient is finite (x = 1e200).
    ("negative power", X**-2, "np.square(1.0 / x)"),
    ("power-of-two fraction", Rational(1, 4) * X, "0.25 * x"),
    ("other fraction divides", Rational(1, 3) * X, "x / 3.0"),
    ("rational coefficient", Rational(3, 4) * X, "0.75 * x"),
    ("integer constant", 2 * X + 1, "2.0 * x + 1.0"),
    ("float constant", sympy.Float(0.01) * X, "0.01 * x"),
    ("pi is a float literal", sympy.pi * X, "3.141592653589793 * x"),
    ("sqrt", sqrt(1 + X**2), "np.sqrt(x * x + 1.0)"),
    (
        "three halves power",
        (1 - alpha * Y**2) ** Rational(3, 2),
        "(1.0 - self.alpha * out * out) * np.sqrt(1.0 - self.alpha * out * out)",
    ),
    ("max", Max(X, 0), "np.maximum(x, 0.0)"),
    ("min of max", Min(Max(X, 0), 6), "np.minimum(np.maximum(x, 0.0), 6.0)"),
    ("abs", Abs(X), "np.abs(x)"),
    ("parameter", alpha * X, "self.alpha * x"),
    ("division", X / (1 + Abs(X)), "x / (np.abs(x) + 1.0)"),
    ("stable helper", sigmoid(X), "_sigmoid(x)"),
    ("exp", exp(-X), "np.exp(-x)"),
    (
        "piecewise, NaN reaches x",
        Piecewise((X, X > 0), (0, True)),
        "np.where(x <= 0.0, 0.0, x)",
    ),
    (
        "select by a mask between two values stays a select",
        Piecewise((X, MASK), (2 * X, True)),
        "np.where(mask, x, 2.0 * x)",
    ),
    (
        "three branches",
        Piecewise((-1, X <= -1), (1, X >= 1), (X, True)),
        "np.where(x <= -1.0, -1.0, np.where(x >= 1.0, 1.0, x))",
    ),
    ("and", sympy.And(X > -1, X < 1), "(x > -1.0) & (x < 1.0)"),
]


@pytest.mark.parametrize("name, expr, expected", CASES, ids=[c[0] for c in CASES])
def test_printer_rule(name, expr, expected):
    assert format_expression(LayerPrinter(NAMES).doprint(expr)) == expected


def test_printer_records_numpy_import_and_helpers():
    printer = LayerPrinter(NAMES)
    printer.doprint(sigmoid(X) + exp(X))
    assert set(printer.module_imports) == {"numpy"}
    assert printer.helpers == {"_sigmoid"}


def test_unknown_symbol_is_refused():
    with pytest.raises(ValueError, match="no name for symbol z"):
        LayerPrinter(NAMES).doprint(sympy.Symbol("z") * X)


def test_complex_constants_are_refused():
    with pytest.raises(ValueError, match="complex"):
        LayerPrinter(NAMES).doprint(sympy.I * X)


def test_format_expression_writes_like_ruff_format():
    assert format_expression("x ** 0.5 + (a + b) ** 2.5") == "x**0.5 + (a + b) ** 2.5"
    assert format_expression("(x) / (3.0) + 1e+18") == "x / 3.0 + 1e18"
