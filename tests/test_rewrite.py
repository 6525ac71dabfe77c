"""Stability rewrite rules, each on its own and on the source it makes printed."""

import mpmath
import numpy as np
import pytest
import sympy
from sympy import Max, Min, Piecewise, Rational, cos, erf, exp, log, sin, sqrt, tanh

from symgrad.functions import (
    blend,
    clip,
    erfc,
    exp_of_polynomial,
    exp_once,
    sigmoid,
    sigmoid_from,
    sigmoid_of_polynomial,
    softplus,
    softplus_from,
    tail_product,
    tame,
)
from symgrad.model import X, Y
from symgrad.rewrite import (
    clip_saturating,
    cos_complement,
    erfc_of_complement,
    expm1,
    from_shared_exponential,
    guard_branches,
    log1p,
    log_of_sigmoid,
    one_exponential,
    piecewise_as_extremum,
    rational_in_exp_as_sigmoid,
    rounded_polynomial_arguments,
    select_as_blend,
    select_as_clamp,
    select_as_sum,
    sigmoid_complement,
    softplus_of_exp,
    stabilize,
    tail_products,
)
from symgrad.targets.numpy_kernels import emit_kernel
from symgrad.verify import evaluate_fixed

alpha = sympy.Symbol("alpha", real=True)
NAMES = {X: "x", alpha: "self.alpha"}


def printed(expr):
    """The block-kernel lines symgrad emits for expr after every rewrite."""
    return " | ".join(emit_kernel([("out", stabilize(expr))], NAMES, {X}).lines)


# Each rule: an input, what the rule returns, and a non-matching input.
RULES = [
    (
        select_as_blend,
        Piecewise((1, X > 0), (X + 2, True)),
        blend(X > 0, 1, Min(X, 0) + 2),
        Piecewise((X, X > 0), (1 / X, True)),  # 1/x is infinite at the kink
    ),
    (
        select_as_clamp,
        Piecewise((0, X <= -3), (1, X >= 3), (X / 6 + Rational(1, 2), True)),
        Min(Max(X / 6 + Rational(1, 2), 0), 1),
        Piecewise((0, X <= -3), (1, X >= 3), (X / 5, True)),  # f(3) != 1
    ),
    (
        select_as_sum,
        Piecewise((X, X > 0), (Rational(1, 4) * X, True)),
        Max(X, 0) + Rational(1, 4) * Min(X, 0),
        Piecewise((X + 1, X > 0), (X, True)),
    ),
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
    (sigmoid_complement, 1 - sigmoid(X), sigmoid(-X), 1 + sigmoid(X)),
    (cos_complement, 1 - cos(X), 2 * sin(X / 2) ** 2, 2 - cos(X)),
    (cos_complement, 3 * cos(2 * X) - 3 + X, X - 6 * sin(X) ** 2, 1 + cos(X)),
    (
        sigmoid_complement,
        3 * sigmoid(2 * X) - 3 + X,
        X - 3 * sigmoid(-2 * X),
        2 - 3 * sigmoid(X),
    ),
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
        # mpmath at fixed precision: SymPy's evalf cannot order Max(0, 0.e-165).
        assert float(evaluate_fixed(result, {X: v})) == pytest.approx(
            float(evaluate_fixed(before, {X: v})), rel=1e-14, abs=1e-300
        )


def test_clip_saturating_clips_where_the_limit_is_reached():
    """tanh(x**3) is +-1 in float64 beyond |x| ~ 2.6: evaluate it on a clipped x."""
    result = clip_saturating(tanh(X**3))
    assert isinstance(result, tanh)
    (inner,) = result.args
    clipped = inner.base
    assert isinstance(clipped, clip) and clipped.args[0] == X
    lower, upper = float(clipped.args[1]), float(clipped.args[2])
    assert lower == -upper and 2.5 < upper < 4
    assert np.tanh(np.float64(upper) ** 3) == 1.0


def test_clip_saturating_clips_a_scaled_input_that_overflows_float16():
    """2*x is inf in float16 from x = 32752, although 4*sigmoid(2x)*sigmoid(-2x)
    (tanh's slope) is 0 there: the input is clipped where the part is 0 in
    float64, inside float16's range."""
    part = 4 * sigmoid(2 * X) * sigmoid(-2 * X)
    result = clip_saturating(part)
    assert result is not None
    (bound,) = {abs(float(b)) for c in result.atoms(clip) for b in c.args[1:]}
    assert 300 < bound < 65504
    assert float(evaluate_fixed(part, {X: bound})) < 1e-300


def test_the_accuracy_policy_adds_the_complement_rule():
    """1 - sigmoid(x) is 0 in float64 from x = 37; sigmoid(-x) is not.  Only
    prefer='accuracy' spends the second exp."""
    expr = sigmoid(X) * (1 - sigmoid(X))
    assert stabilize(expr, "accuracy").has(sigmoid(-X))
    assert not stabilize(expr).has(sigmoid(-X))


def test_clip_saturating_leaves_unbounded_parts_alone():
    assert clip_saturating(X**3) is None
    assert clip_saturating(exp(-X)) is None  # no overflow towards +inf, none clipped
    # With a parameter the bound is the dtype's: where x**3 still fits.
    assert clip_saturating(alpha * tanh(X**3)) == alpha * tanh(tame(X, 3) ** 3)


# Printed source: each rule as the generated code shows it.
PRINTED = [
    ("sigmoid", 1 / (1 + exp(-X)), "_sigmoid_into(x, out)"),
    (
        "sigmoid derivative",
        exp(-X) / (1 + exp(-X)) ** 2,
        "_sigmoid_into(x, t0) | np.subtract(1.0, t0, out=out) | out *= t0",
    ),
    (
        "silu derivative",
        sympy.diff(X / (1 + exp(-X)), X),
        "c0 = _clip_into(x, lower=-750.0, upper=46.0, out=t0) | _sigmoid_into(c0, t1) | "
        "np.subtract(1.0, t1, out=t2) | np.multiply(c0, t2, out=t2) | "
        "np.multiply(t1, t2, out=out) | _tail_product_into(t1, t2, c0, out=out) | "
        "out += t1 | _near_tail_into(x, self._NEAR_TAIL, out=out)",
    ),
    ("softplus", log(1 + exp(X)), "_softplus_into(x, out, t0, t1)"),
    (
        "log sigmoid",
        log(1 / (1 + exp(-X))),
        "np.negative(x, out=t0) | _softplus_into(t0, t1, t2, t3) | np.negative(t1, out=out)",
    ),
    ("log1p", log(1 + X**2), "np.square(x, out=t0) | _log1p_into(t0, out, t1)"),
    (
        "expm1",
        alpha * (exp(X) - 1),
        "_expm1_into(x, out, t0) | out *= self.alpha",
    ),
    (
        "select as a sum of clamped branches (no branch mispredictions)",
        Piecewise((X, X > 0), (alpha * (exp(X) - 1), True)),
        "t0.fill(0.0) | np.minimum(x, t0, out=t0) | _expm1_into(t0, out, t1) | "
        "out *= self.alpha | t0.fill(0.0) | np.maximum(x, t0, out=t0) | "
        "out += t0",
    ),
    (
        "other selects blend clamped branches: c*a + (not c)*b",
        Piecewise((X, X > 0), (sympy.sin(X) + 1, True)),
        "np.greater(x, 0.0, out=b0) | t0.fill(0.0) | "
        "np.maximum(x, t0, out=t0) | np.multiply(t0, b0, out=out) | "
        "np.logical_not(b0, out=b0) | t0.fill(0.0) | "
        "np.minimum(x, t0, out=t0) | np.sin(t0, out=t0) | t0 += 1.0 | "
        "t0 *= b0 | out += t0",
    ),
    (
        "a branch infinite at the kink keeps the select",
        Piecewise((X, X > 0), (1 / X, True)),
        "t0.fill(0.0) | np.minimum(x, t0, out=t0) | np.divide(1.0, t0, out=out) | "
        "np.greater(x, 0.0, out=b0) | np.copyto(out, x, where=b0)",
    ),
    (
        "erfc, clipped against -inf * 0",
        X * (1 + erf(X / sqrt(2))) / 2,
        # erfc(-x/sqrt(2)) from x itself, with the exact square 1/2.
        "c0 = _clip_into(x, lower=-39.0, out=t0) | "
        "_erfc_into(c0, out, t1, t2, t3, t4, scale=-0.7071067811865476, square=0.5)"
        " | out *= 0.5 | out *= c0",
    ),
    (
        "constants are float literals",
        sqrt(2) * X,
        "np.multiply(x, 1.4142135623730951, out=out)",
    ),
    (
        "no logaddexp",
        log(exp(X) + 1) + X,
        "_softplus_into(x, out, t0, t1) | out += x",
    ),
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
        assert "] =" not in source


beta = sympy.Symbol("beta", real=True)


@pytest.mark.parametrize(
    "expr, factor, scale",
    [
        (X * sigmoid(X), sigmoid(X), 1),  # SiLU
        (X * tanh(softplus(X)), tanh(softplus(X)), 1),  # Mish: tanh(v) ~ v
        (X * sigmoid(beta * X), sigmoid(beta * X), 1),  # a parameter, taken as 1
        (X**2 * exp(3 * X), exp(3 * X), 1),
        (X * erf(exp(X)), erf(exp(X)), 2 / sqrt(sympy.pi)),  # erf(v) ~ 2v/sqrt(pi)
        (X * sigmoid(-X), sigmoid(-X), 1),  # its tail is at +inf
    ],
)
def test_tail_products_finds_a_factor_that_is_exponential_in_its_tail(
    expr, factor, scale
):
    result = tail_products(expr)
    assert isinstance(result, tail_product)
    assert result.args[0] == factor
    assert sympy.simplify(result.args[3] - scale) == 0
    assert sympy.simplify(result.as_product() - expr) == 0


@pytest.mark.parametrize(
    "expr",
    [
        sigmoid(X) * sigmoid(-X),  # the rest is at most 1: the product is no larger
        4 * sigmoid(X),  # a constant rest
        X * sin(exp(X)),  # sin is not monotonic: small does not mean in the tail
        X * sigmoid(X**2),  # its argument never goes to -inf
        X * exp(Y),  # a form in the output
        X + sigmoid(X),  # not a product
    ],
)
def test_tail_products_leaves_other_products_alone(expr):
    assert tail_products(expr) is None


def test_tail_products_run_last_and_print_as_the_helper():
    """After clipping: the rest is the clipped x, the exponent too."""
    text = printed(X * sigmoid(X))
    assert "_tail_product_into(" in text
    assert stabilize(X * sigmoid(X)).has(tail_product)


@pytest.mark.parametrize(
    "expr, degree",
    [
        # GELU's tanh form: irrational coefficients, a cube.
        (sigmoid(2 * sqrt(2 / sympy.pi) * (X + Rational(8943, 200000) * X**3)), 3),
        (exp(-(X**3) / 3 + X), 3),  # 1/3 does not round exactly
        (sigmoid(Rational(1702, 1000) * X), 1),  # one rounded product
        (exp(X**2 + 1), 2),
        (sigmoid(clip(X, -22, 7) ** 3 / 10), 3),  # in a clipped x
    ],
)
def test_rounded_polynomial_arguments_carry_exact_coefficients(expr, degree):
    """hi + lo is each coefficient to 32 digits, lowest power first, and the
    value is unchanged."""
    result = rounded_polynomial_arguments(expr)
    assert isinstance(result, (sigmoid_of_polynomial, exp_of_polynomial))
    assert result.plain == expr
    u, v = result.args[:2]
    coefficients = result.coefficients
    assert len(coefficients) == 2 * (degree + 1)
    t = sympy.Dummy("t")
    exact = sympy.Poly(sympy.expand(u.xreplace({v: t})), t).all_coeffs()[::-1]
    for k, c in enumerate(exact):
        hi, lo = coefficients[2 * k], coefficients[2 * k + 1]
        assert abs(sympy.Float(hi, 40) + sympy.Float(lo, 40) - sympy.N(c, 40)) <= (
            1e-31 * abs(sympy.N(c, 40)) + 1e-300
        )


@pytest.mark.parametrize(
    "expr",
    [
        sigmoid(X),  # exact
        exp(-X),
        sigmoid(X / 4),  # a power of two: exact
        exp(alpha * X),  # a parameter: its value is the layer's
        sigmoid(sympy.sin(X)),  # not a polynomial
        exp(X + exp(X)),
        tanh(X**3 / 3),  # not exp or sigmoid
    ],
)
def test_rounded_polynomial_arguments_leaves_exact_and_other_arguments(expr):
    assert rounded_polynomial_arguments(expr) is None


def test_the_correction_starts_where_the_terms_reach_two():
    """GELU's tanh-form argument, sqrt(8/pi)*x + ...: its terms add up to 2 at
    |x| = 1.17; the threshold is that rounded down to two digits."""
    u = 2 * sqrt(2 / sympy.pi) * (X + Rational(8943, 200000) * X**3)
    beyond = float(rounded_polynomial_arguments(sigmoid(u)).args[2])
    terms = float(u.subs(X, beyond))
    assert beyond == 1.1 and 1.5 < terms < 2
    assert float(rounded_polynomial_arguments(exp(X**2 + 3)).args[2]) == 0.0


def test_a_rounded_square_part_is_not_clipped_where_it_only_looks_saturated():
    """exp(q*(x - h)*(x + h)) is 1 wherever x is a multiple of 1/16, as every
    saturation probe is: it was clipped at |x| = 0.32, and x*exp(-0.3*x**2) came
    out wrong (gradcheck 1.0)."""
    import symgrad

    layer = symgrad.compile(symgrad.parse("x*exp(-0.3*x**2)", name="f"))()
    x = np.linspace(-5, 5, 41) + 0.0123
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(y, x * np.exp(-0.3 * x**2), rtol=1e-13)
    np.testing.assert_allclose(dx, (1 - 0.6 * x**2) * np.exp(-0.3 * x**2), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_number_times_the_input_overflows_quietly(dtype):
    """sigmoid(2*x) at x = +-max: 2*x is +-inf, its right rounding, and the
    sigmoid's limit the true result; no overflow is reported."""
    import symgrad

    layer = symgrad.compile(symgrad.parse("x*sigmoid(2*x)", name="f"))()
    largest = np.finfo(dtype).max
    x = np.array([-largest, largest], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    assert y.tolist() == [0.0, float(largest)] and dx.tolist() == [0.0, 1.0]


# -- one_exponential: several exp-like calls of one argument as one exp ----------

_OF_ONE_EXP = [
    tanh(softplus(X)),  # Mish's forward
    4
    * X
    * sigmoid(X)
    * sigmoid(2 * softplus(X))
    * sigmoid(-2 * softplus(X)),  # its slope
    sigmoid(X) * sigmoid(-X),
    sigmoid(2 * X) / (1 + exp(-X)),
    X * sigmoid(X) ** 2 * sigmoid(-3 * X),
    sympy.cosh(X) ** -2 * sigmoid(X),
    X * sigmoid(X) * tanh(softplus(X)),  # x*e**2*...: subnormal e**2 at x = -357
]
_LEFT_ALONE = [
    sigmoid(X),  # one call already
    tanh(X) * sigmoid(X),  # tanh's numerator e**2 - 1 has terms of both signs
    sigmoid(X) - sigmoid(2 * X),  # a difference
    sigmoid(X) * sigmoid(X**2),  # two arguments
    sigmoid(X) * sigmoid(X / 2),  # not an integer multiple
    sigmoid(X) * sigmoid(alpha * X),  # a parameter's multiple
    sigmoid(X) * sigmoid(9 * X),  # a polynomial of degree 10 costs more than a call
    sigmoid(X) ** 9 * sigmoid(-X),  # the same
]


def _calls(expr):
    kinds = (exp, tanh, sympy.cosh, sympy.sinh, sigmoid, softplus, exp_once)
    return [n for n in sympy.preorder_traversal(expr) if isinstance(n, kinds)]


def _float64(expr, x: float) -> float:
    """``expr`` at x computed in float64 operations (NumPy), no mpmath."""
    helpers = {"Abs": np.abs, "exp_once": np.exp, "Times": lambda a, b: a * b}
    function = sympy.lambdify(X, expr, modules=[helpers, "numpy"])  # in its order
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        return float(function(np.float64(x)))


@pytest.mark.parametrize("expr", _OF_ONE_EXP, ids=str)
def test_one_exponential_takes_one_call_and_keeps_the_value(expr):
    """One exp of -|x| replaces every call, and the result, computed in float64
    in the order it is printed, is within a few ulps of the original at 50
    digits, tails included: no overflow at |x| = 700, no cancellation, no
    subnormal partial product where the value is normal."""
    merged = one_exponential(expr)
    assert merged is not None
    assert {str(c) for c in _calls(merged)} == {"exp(-Abs(x))"}
    points = (-700.0, -357.0, -356.5, -40.0, -3.5, -1.0, -1e-9, 0.0, 1e-9, 2.5, 700.0)
    for x in points:
        with mpmath.workdps(400):  # log(1 + exp(-357)) needs 160 digits and more
            exact = sympy.lambdify(X, expr.rewrite(exp), "mpmath")(mpmath.mpf(x))
        value = _float64(merged, x)
        if exact == 0 or abs(exact) < np.finfo(np.float64).tiny:
            assert abs(value) < 1e-300
            continue
        ulps = abs(value - exact) / np.spacing(abs(float(exact)))
        assert ulps <= 8, (x, value, exact, ulps)


@pytest.mark.parametrize("expr", _LEFT_ALONE, ids=str)
def test_one_exponential_leaves_what_it_cannot_make_exact(expr):
    assert one_exponential(expr) is None


def test_only_the_fused_target_merges_calls():
    """The NumPy layer keeps Mish's tanh(softplus(x)) (one array pass per call
    is cheaper there than the arithmetic); the numba layer takes one exp."""
    import symgrad

    readable = symgrad.generate("mish")
    fused = symgrad.generate("mish", target="numba")
    assert "np.tanh(" in readable
    forward = fused.split("def _mish_forward_one")[1].split("\n\n")[0]
    assert forward.count("_exp(") == 1 and "_tanh(" not in forward


# -- from_shared_exponential: one exp(-|a|) for every call that computes it -------

_A = clip(X, -750.0, 24.0)


@pytest.mark.parametrize(
    "exprs, shared",
    [
        ([sigmoid(X) + softplus(X)], {X}),
        ([sigmoid(X), softplus(X) * X], {X}),  # across a pass's assignments
        ([exp_once(-abs(_A)) * _A, sigmoid(_A)], {_A}),  # a merged part's exp
        ([sigmoid(2 * X) * softplus(2 * X) + sigmoid(X)], {2 * X}),
        ([sigmoid(X)], set()),  # one call: the helper computes it
        ([sigmoid(X) * softplus(2 * X)], set()),  # two arguments
        ([exp_once(X) * sigmoid(X)], set()),  # exp(a) is not exp(-|a|)
    ],
    ids=str,
)
def test_calls_of_one_argument_share_exp_of_minus_its_magnitude(exprs, shared):
    """Each argument with two or more of sigmoid, softplus and exp(-|a|) in the
    pass gets the `_from` forms, which take that exp; the value is the same."""
    rewritten = from_shared_exponential(exprs)
    froms = {
        n.args[0]
        for e in rewritten
        for n in sympy.preorder_traversal(e)
        if isinstance(n, (sigmoid_from, softplus_from))
    }
    assert froms == shared
    for n in (n for e in rewritten for n in sympy.preorder_traversal(e)):
        if isinstance(n, (sigmoid_from, softplus_from)):
            assert n.args[1] == exp_once(-abs(n.args[0]))
            assert not isinstance(n.args[0], (sigmoid, softplus))
    for before, after in zip(exprs, rewritten, strict=True):
        for x in (-800.0, -3.0, -0.5, 0.0, 0.25, 2.0, 30.0):
            want, got = (float(e.subs(X, x).evalf(30)) for e in (before, after))
            assert got == pytest.approx(want, rel=1e-15, abs=0.0)


# -- exp_of_square far out: 0, not 0*inf ---------------------------------------------


@pytest.mark.parametrize(
    "formula",
    [
        "x*exp(-x**2)",
        "x**2*exp(-(x/3)**2)",
        "exp(-x**2/2)*sigmoid(x)",
        "x**3*exp(-(x - 1)**2)",
        "exp(-400*x**2)",  # a steep one: the correction stays finite in float32
    ],
)
@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_exp_of_a_square_is_zero_far_out_without_warnings(formula, target):
    """h = x to 1/16 made exp(q*h**2)*exp(q*(x - h)*(x + h)) 0*inf from x = 6e8
    (NaN), and 16*x overflowed at the largest float: now x is clipped where the
    value is 0, in the rule and in what forward caches for backward.  Finite,
    below the normal range far out; within 4 ulps of mpmath near 0."""
    if target == "numba":
        pytest.importorskip("numba")
    import warnings

    import symgrad

    act = symgrad.parse(formula, name="gauss")
    layer = symgrad.compile(act, target=target)()
    for dtype in (np.float64, np.float32):
        largest = float(np.finfo(dtype).max)
        far = np.array([largest, -largest, 6.4e8, -2.2e10, 63739.5, 1e4 + 1 / 3])
        x = np.concatenate([far, [0.75, -1.5]]).astype(dtype)
        with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
            warnings.simplefilter("error")
            y = layer.forward(x)
            dx = layer.backward(np.ones_like(x))
        tiny = np.finfo(dtype).tiny  # the truth is 0 there, or subnormal
        assert np.all(np.abs(y[: far.size]) < tiny), y
        assert np.all(np.abs(dx[: far.size]) < tiny), dx
        f = sympy.lambdify(X, act.expr, "mpmath")
        slope = sympy.lambdify(X, sympy.diff(act.expr, X), "mpmath")
        for i, point in enumerate(x[far.size :].tolist(), start=far.size):
            for value, exact in ((y[i], f(point)), (dx[i], slope(point))):
                ulps = abs(float(value) - float(exact)) / np.spacing(dtype(abs(exact)))
                assert ulps <= 4, (dtype, point, value, exact)
