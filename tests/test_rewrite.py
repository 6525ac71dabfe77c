"""Stability rewrite rules, each on its own and on the source it makes printed."""

import numpy as np
import pytest
import sympy
from sympy import Max, Min, Piecewise, Rational, erf, exp, log, sqrt, tanh

from symgrad.functions import erfc, sigmoid, softplus, tame
from symgrad.model import X
from symgrad.printing import print_assignments
from symgrad.rewrite import (
    clip_saturating,
    erfc_of_complement,
    expm1,
    guard_branches,
    log1p,
    log_of_sigmoid,
    piecewise_as_extremum,
    rational_in_exp_as_sigmoid,
    softplus_of_exp,
    stabilize,
)
from symgrad.verify import evaluate

alpha = sympy.Symbol("alpha", real=True)
NAMES = {X: "x", alpha: "self.alpha"}


def printed(expr):
    """The source lines symgrad prints for expr after every rewrite."""
    lines, _ = print_assignments([("out", stabilize(expr))], NAMES)
    return " | ".join(lines)


# Each rule: an input, what the rule returns, and a non-matching input.
RULES = [
    (rational_in_exp_as_sigmoid, 1 / (1 + exp(-X)), sigmoid(X), exp(X) + 1),
    (
        rational_in_exp_as_sigmoid,
        exp(-X) / (1 + exp(-X)) ** 2,
        sigmoid(X) * (1 - sigmoid(X)),
        exp(X) / (exp(X) - 1),
    ),
    (softplus_of_exp, log(1 + exp(X)), softplus(X), log(2 + exp(X))),
    (log_of_sigmoid, log(sigmoid(X)), -softplus(-X), log(X)),
    (log1p, log(1 + X**2), sympy.codegen.cfunctions.log1p(X**2), log(X)),
    (expm1, exp(X) - 1, sympy.codegen.cfunctions.expm1(X), exp(X) - 2),
    (expm1, 1 - exp(X), -sympy.codegen.cfunctions.expm1(X), 1 + exp(X)),
    (erfc_of_complement, 1 + erf(X), erfc(-X), 2 + erf(X)),
    (erfc_of_complement, Rational(1, 2) - erf(X) / 2, erfc(X) / 2, 1 - erf(X) / 2),
    (
        piecewise_as_extremum,
        Piecewise((X, X > 0), (0, True)),
        Max(X, 0),
        Piecewise((2 * X, X > 0), (0, True)),
    ),
    (
        piecewise_as_extremum,
        Piecewise((X, X < 6), (6, True)),
        Min(X, 6),
        Piecewise((X, X < 6), (5, True)),
    ),
    (
        guard_branches,
        Piecewise((X, X > 0), (exp(X), True)),
        Piecewise((X, X > 0), (exp(Min(X, 0)), True)),
        Piecewise((X, X > 0), (2 * X, True)),
    ),
]


@pytest.mark.parametrize(
    "rule, before, after, untouched",
    RULES,
    ids=[f"{r[0].__name__}-{i}" for i, r in enumerate(RULES)],
)
def test_rule_rewrites_its_pattern_and_nothing_else(rule, before, after, untouched):
    result = rule(before)
    assert result is not None
    assert sympy.simplify(sympy.expand(result - after)) == 0 or result == after
    assert rule(untouched) is None


@pytest.mark.parametrize(
    "rule, before, after, untouched",
    RULES[:-3],
    ids=[r[0].__name__ + str(i) for i, r in enumerate(RULES[:-3])],
)
def test_rules_are_identities(rule, before, after, untouched):
    """Each rewrite has the same value as the original at sample points."""
    result = rule(before)
    for v in (-3.0, -0.5, 0.25, 2.0):
        assert float(evaluate(result, {X: v})) == pytest.approx(
            float(evaluate(before, {X: v})), rel=1e-14, abs=1e-300
        )


def test_clip_saturating_clips_where_the_limit_is_reached():
    """tanh(x**3) is +-1 in float64 beyond |x| ~ 2.6: evaluate it on a clipped x."""
    result = clip_saturating(tanh(X**3))
    assert isinstance(result, tanh)
    (inner,) = result.args
    clipped = inner.base
    assert clipped.has(Min) and clipped.has(Max)
    bound = float(max(clipped.atoms(sympy.Float)))
    assert 2.5 < bound < 4
    assert np.tanh(np.float64(bound) ** 3) == 1.0


def test_clip_saturating_leaves_unbounded_parts_alone():
    assert clip_saturating(X**3) is None
    assert clip_saturating(exp(-X)) is None  # no overflow towards +inf, none clipped
    # With a parameter the bound is the dtype's: where x**3 still fits.
    assert clip_saturating(alpha * tanh(X**3)) == alpha * tanh(tame(X, 3) ** 3)


# Printed source: each rule as the generated code shows it.
PRINTED = [
    ("sigmoid", 1 / (1 + exp(-X)), "out = _sigmoid(x)"),
    (
        "sigmoid derivative",
        exp(-X) / (1 + exp(-X)) ** 2,
        "t0 = _sigmoid(x) | out = t0 * (1.0 - t0)",
    ),
    (
        "silu derivative",
        sympy.diff(X / (1 + exp(-X)), X),
        "t0 = np.minimum(np.maximum(x, -750.0), 46.0) | t1 = _sigmoid(t0) | "
        "out = t0 * t1 * (1.0 - t1) + t1",
    ),
    ("softplus", log(1 + exp(X)), "out = _softplus(x)"),
    ("log sigmoid", log(1 / (1 + exp(-X))), "out = -_softplus(-x)"),
    ("log1p", log(1 + X**2), "out = np.log1p(x * x)"),
    ("expm1", alpha * (exp(X) - 1), "out = self.alpha * np.expm1(x)"),
    (
        "guarded select",
        Piecewise((X, X > 0), (alpha * (exp(X) - 1), True)),
        "out = np.where(x > 0.0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))",
    ),
    (
        "erfc, clipped against -inf * 0",
        X * (1 + erf(X / sqrt(2))) / 2,
        "t0 = np.maximum(x, -39.0) | out = 0.5 * t0 * _erfc(-0.7071067811865476 * t0)",
    ),
    ("constants are float literals", sqrt(2) * X, "out = 1.4142135623730951 * x"),
    ("no logaddexp", log(exp(X) + 1) + X, "out = x + _softplus(x)"),
]


@pytest.mark.parametrize("name, expr, expected", PRINTED, ids=[p[0] for p in PRINTED])
def test_printed_source(name, expr, expected):
    assert printed(expr) == expected


def test_printed_source_never_uses_slow_or_upcasting_forms():
    """No **, logaddexp, boolean-mask assignment or NumPy-scalar constant."""
    exprs = [X**3 + X**2, log(1 + exp(X)), sqrt(2) * X * sympy.pi, X**-3]
    for expr in exprs:
        source = printed(expr)
        assert "**" not in source and "logaddexp" not in source
        assert "np.sqrt(2" not in source and "np.pi" not in source
