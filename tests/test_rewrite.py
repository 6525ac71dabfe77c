"""Stability rewrite rules, each on its own."""

import sympy
from sympy import Max, Min, Piecewise, exp

from symgrad.functions import sigmoid
from symgrad.model import X
from symgrad.rewrite import (
    exp_times_sigmoid,
    piecewise_as_extremum,
    reciprocal_one_plus_exp,
    stabilize,
)

u = sympy.Symbol("u", real=True)


def test_reciprocal_one_plus_exp_becomes_sigmoid():
    assert reciprocal_one_plus_exp(1 / (1 + exp(-u))) == sigmoid(u)
    assert reciprocal_one_plus_exp(1 / (1 + exp(2 * u))) == sigmoid(-2 * u)
    assert reciprocal_one_plus_exp(1 / (2 + exp(u))) is None
    assert reciprocal_one_plus_exp(1 + exp(u)) is None


def test_exp_times_sigmoid_of_the_negation_becomes_sigmoid():
    assert exp_times_sigmoid(3 * exp(u) * sigmoid(-u)) == 3 * sigmoid(u)
    assert exp_times_sigmoid(exp(u) * sigmoid(u)) is None


def test_piecewise_select_becomes_extremum():
    assert piecewise_as_extremum(Piecewise((X, X > 0), (0, True))) == Max(X, 0)
    assert piecewise_as_extremum(Piecewise((0, X <= 0), (X, True))) == Max(X, 0)
    assert piecewise_as_extremum(Piecewise((X, X < 6), (6, True))) == Min(X, 6)
    assert piecewise_as_extremum(Piecewise((2 * X, X > 0), (0, True))) is None


def test_stabilize_applies_rules_everywhere_in_an_expression():
    expr = X * (1 / (1 + exp(-X))) + sympy.log(1 / (1 + exp(X)))
    assert stabilize(expr) == X * sigmoid(X) + sympy.log(sigmoid(-X))


def test_stable_forms_are_equal_to_the_originals():
    for original in [1 / (1 + exp(-3 * X)), exp(X) / (1 + exp(X))]:
        stable = stabilize(original)
        assert stable.has(sigmoid)
        assert sympy.simplify(stable.rewrite(exp) - original) == 0
