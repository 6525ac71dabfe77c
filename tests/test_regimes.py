"""Regimes (`symgrad.regimes`): any formula stays finite and accurate far out.

Each formula below (published activations and textbook functions, in the four
classes of failure the regime search is for) is compiled as a user would, with
default settings, and run in float64 and float32 at the inputs where the
stable form alone fails and on a log-spaced grid to the dtype's largest
number.  The truth is the formula's own SymPy expression (and its derivative)
in mpmath, not anything symgrad rewrote.
"""

import math

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings

import symgrad
from symgrad.model import X
from symgrad.oracle import breaks_contract, exact, mpmath_function
from symgrad.regimes import Regimes, numpy_function, with_regimes
from symgrad.rewrite import stabilize
from tests.test_formula import formulas

# (formula, direction, x): there the rewrite rules alone fail the contract.
FORMULAS = [
    # inf*0 or inf - inf in the gradient
    ("x*atan(exp(x))", "backward", 1000.0),
    ("x*sigmoid(exp(x))", "backward", 1000.0),
    ("x*exp(-exp(x))", "backward", 1000.0),
    ("x*tanh(exp(x))", "backward", 1000.0),
    ("exp(x)*exp(-exp(x))", "forward", 1000.0),  # the Gumbel density
    ("x*atan(exp(2*x))", "backward", 500.0),
    # overflow inside a log
    ("log(cosh(x) + 1)", "forward", 1000.0),
    ("log(cosh(x) + 1)", "backward", -1000.0),
    ("log(exp(x) + exp(2*x))", "forward", 1000.0),
    ("log(exp(x) + exp(2*x))", "forward", -1000.0),
    ("log(cosh(x))", "forward", 1000.0),  # log-cosh loss
    ("log(1 + x**2)", "forward", 1e300),
    ("sqrt(1 + x**2) - 1", "forward", 1e200),  # pseudo-Huber
    ("log(1 + exp(x) + exp(-x))", "forward", -1000.0),
    # tails flushed to zero
    ("exp(x)/(1 + exp(x))**2", "forward", -50.0),
    ("exp(x)/(1 + exp(x))**2", "backward", -50.0),
    ("log(1 + exp(x))**2", "backward", -50.0),
    ("sinh(x)/cosh(x)**2", "forward", 400.0),
    ("x*exp(x)/(1 + exp(x))**2", "forward", -50.0),
    # cancellation near a point
    ("x - sin(x)", "forward", 1e-9),
    ("1 - cos(x)", "forward", 1e-9),
    ("1 - cos(x)", "forward", 2 * math.pi),
    ("x - atan(x)", "forward", 1e-9),
    ("sinh(x) - x", "forward", 1e-9),
    ("x - tanh(x)", "forward", 1e-9),
]

DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _grid(dtype: np.dtype, extra: float) -> np.ndarray:
    top = float(np.finfo(dtype).max)
    magnitudes = np.concatenate(
        [np.geomspace(1e-9, top / 2, 70), np.geomspace(10.0, 1000.0, 30), [top]]
    )
    with np.errstate(over="ignore"):
        x = np.concatenate([magnitudes, -magnitudes, [extra]]).astype(dtype)
    return np.unique(x[np.isfinite(x)])


def _roots(derivative, x: np.ndarray) -> np.ndarray:
    """Where x is within a quarter of a root of f' in [-50, 50]: there every
    form loses relative accuracy, and the audit says so (`test_precision`)."""
    function = mpmath_function(derivative)
    near = np.zeros(x.shape, dtype=bool)
    points = np.linspace(-50.0, 50.0, 401)
    values = [function(mpmath.mpf(float(p))) for p in points]
    for a, fa, fb in zip(points, values, values[1:], strict=False):
        if fa == 0 or fa * fb < 0:
            near |= np.abs(x - a) <= 0.25 * max(abs(a), 1.0) + 0.05
    return near


@pytest.fixture(scope="module")
def layers():
    made = {}

    def layer(formula):
        if formula not in made:
            act = symgrad.parse(formula, name="F")
            made[formula] = (act, symgrad.compile(act), symgrad.derive(act))
        return made[formula]

    return layer


@pytest.mark.parametrize("formula", sorted({f for f, _, _ in FORMULAS}))
def test_a_formula_keeps_the_contract_out_to_the_float_limits(formula, layers):
    """Finite wherever the true value is finite, within 1e-6 (float64) or 1e-3
    (float32) wherever it is a normal float: forward and backward, on the grid
    and at the inputs quoted in the table (near roots of f' excepted)."""
    act, layer_class, derivation = layers(formula)
    quoted = [x for f, _, x in FORMULAS if f == formula]
    for dtype in DTYPES:
        x = np.unique(np.concatenate([_grid(dtype, q) for q in quoted]))
        truths = [
            exact(mpmath_function(e), x) for e in (act.expr, derivation.derivative)
        ]
        # No warning where every true value is finite in the dtype.
        finite = all(
            (np.abs(head[np.isfinite(head)]) <= np.finfo(dtype).max).all()
            and np.isfinite(head).all()
            for head, _ in truths
        )
        layer = layer_class()
        with np.errstate(all="raise" if finite else "ignore", under="ignore"):
            y = layer.forward(x.copy())
            dx = layer.backward(np.ones_like(x))
        assert y.dtype == dx.dtype == dtype
        near_root = _roots(derivation.derivative, x)
        for name, truth, actual in zip(
            ("forward", "backward"), truths, (y, dx), strict=True
        ):
            broken = breaks_contract(actual, truth, dtype)
            if name == "backward":
                broken &= ~near_root
            assert not broken.any(), (formula, name, dtype.name, x[broken][:5])


@pytest.mark.parametrize(
    "formula, direction, x", FORMULAS, ids=[f"{f}-{d}-{x:g}" for f, d, x in FORMULAS]
)
def test_the_rules_alone_fail_where_the_table_says(formula, direction, x):
    """The table's inputs are failures the regimes (or the near-point rules)
    repair, not inputs that any form gets right: the rewrite rules alone,
    without regimes, break the contract there in float64 or float32."""
    act = symgrad.parse(formula, name="F")
    truth = act.expr if direction == "forward" else sympy.diff(act.expr, X)
    stable = stabilize(truth)
    if stable.has(symgrad.functions.near_zero) or "cos" in formula:
        pytest.skip("repaired by a rule: the series near 0, or the half angle")
    broken = False
    for dtype in DTYPES:
        with np.errstate(over="ignore"):  # 1e300 is inf in float32
            point = np.array([x], dtype=dtype)
        got = numpy_function(stable)(point.copy())
        broken |= bool(
            breaks_contract(got, exact(mpmath_function(truth), point), dtype)[0]
        )
    assert broken


def test_the_regime_search_names_each_regime_and_its_verified_error():
    """log(cosh(x) + 1): |x| - log(2) beyond a switch on both sides, each
    verified within 2 ulps in both dtypes, and one select in the layer."""
    truth = sympy.log(sympy.cosh(X) + 1)
    found = with_regimes(stabilize(truth), truth)
    assert [r.side for r in found.chosen] == [1, -1]
    for regime in found.chosen:
        assert regime.form == regime.side * X - sympy.log(2)
        assert 20 < regime.switch < 50
        assert all(ulps <= 2 for _, ulps in regime.worst)
    assert isinstance(found.expr, sympy.Piecewise) and len(found.expr.args) == 3
    assert not found.left


def test_a_formula_without_failures_is_left_as_it_is():
    truth = X * sympy.tanh(X)
    assert with_regimes(stabilize(truth), truth) == Regimes(stabilize(truth))


def test_a_formula_with_parameters_is_not_searched_and_says_why():
    act = symgrad.parse("log(cosh(a*x) + 1)", name="F", params={"a": 1.0})
    regimes = symgrad.derive(act).regimes
    assert not regimes.chosen and "parameters (a)" in regimes.skipped


def test_the_catalog_is_not_searched(layers):
    assert symgrad.derive("mish").regimes.skipped == "a catalog layer, audited"


def test_regimes_reach_the_docstring_show_and_check(capsys):
    from symgrad.cli import main

    source = symgrad.generate([symgrad.parse("log(cosh(x) + 1)", name="F")])
    assert "- forward, x > 34: x - log(2) (worst float64" in source
    assert main(["show", "--formula", "log(cosh(x) + 1)", "--name", "F"]) == 0
    out = capsys.readouterr().out
    assert "regimes: forward x > 34, x < -34; backward x > 39, x < -39" in out
    assert main(["check", "--formula", "log(cosh(x) + 1)", "--name", "F"]) == 0
    out = capsys.readouterr().out
    assert "- F (memory): forward, x > 34: x - log(2)" in out


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_every_target_prints_the_regimes(target):
    """The select and its clamps come out in each framework's functions; the
    layer is finite at 1000 where the formula's gradient is inf*0."""
    pytest.importorskip(target)
    made = symgrad.compile(symgrad.parse("x*atan(exp(x))", name="Xatan"), target=target)
    if target == "torch":
        import torch

        x = torch.tensor([1000.0, -3.0], dtype=torch.float64, requires_grad=True)
        made()(x).sum().backward()
        grad = x.grad.numpy()
    else:
        import jax

        with jax.enable_x64(True):
            grad = jax.grad(lambda v: made(v).sum())(np.array([1000.0, -3.0]))
            grad = np.asarray(grad)
    assert grad[0] == pytest.approx(math.pi / 2, rel=1e-15)
    assert np.isfinite(grad).all()


# -- property: random formulas -----------------------------------------------------


_FAR = np.concatenate([np.geomspace(1.0, 1e300, 30), np.geomspace(20.0, 1000.0, 15)])


@pytest.mark.slow
@settings(
    max_examples=15, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(formulas(2, leaves=("x", "x", "2.5", "0.5"), selects=False))
def test_random_formulas_are_finite_wherever_the_truth_is(formula):
    """For formulas from the fuzz generator: no NaN or inf from forward or
    backward, in float64 or float32, where mpmath's value is finite, out to
    1e300 both ways, unless the memory policy states the range (a cached
    output that overflows)."""
    try:
        act = symgrad.parse(formula, name="Fuzz")
        layer = symgrad.compile(act)()
    except symgrad.FormulaError:
        return
    derivation = symgrad.derive(act)
    for dtype in DTYPES:
        with np.errstate(over="ignore"):  # beyond float32, inf: dropped
            x = np.unique(np.concatenate([_FAR, -_FAR]).astype(dtype))
        x = x[np.isfinite(x)]
        with np.errstate(all="ignore"):
            y = layer.forward(x.copy())
            dx = layer.backward(np.ones_like(x))
        for name, expr, actual in (
            ("forward", derivation.forward, y),
            ("backward", derivation.derivative, dx),
        ):
            head, _ = exact(mpmath_function(expr), x)
            finite = np.isfinite(head) & (np.abs(head) <= np.finfo(dtype).max)
            broken = finite & ~np.isfinite(actual)
            if name == "backward" and derivation.plan.saves == "output":
                for low, high in derivation.lossy:
                    broken &= ~((low <= x) & (x <= high))
            assert not broken.any(), (formula, name, dtype.name, x[broken][:4])
