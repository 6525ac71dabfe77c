"""The helpers generated modules carry, checked in ulps against mpmath.

Both ways of each CPU-dependent helper are tested on every machine: `_log1p`
and `_expm1` use NumPy's ufunc where NumPy vectorises it and a formula on
vectorised functions elsewhere, so the formulas (`_log1p_by_log`,
`_expm1_by_tanh`) are called here directly.  Errors are counted in units in the
last place of the exact value, only where that value is a normal float.
"""

import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symgrad.targets import numpy_fast_helpers as fast
from symgrad.targets import numpy_helpers as readable

mpmath.mp.dps = 40


def grid(dtype, low, high, above=-np.inf, count=4001):
    """Points spread evenly in magnitude over [low, high] and their negatives
    (and 0), as the dtype represents them; only those above ``above``."""
    magnitudes = np.geomspace(low, high, count)
    values = np.concatenate([-magnitudes[::-1], [0.0], magnitudes])
    values = np.unique(values.astype(dtype))
    return values[values > above]


def ulps(actual, exact, dtype):
    """|actual - exact| in ulps of exact, where exact is a normal float (else 0)."""
    info = np.finfo(dtype)
    errors = []
    for a, e in zip(actual.tolist(), exact, strict=True):
        if not (float(info.tiny) <= abs(e) <= float(info.max)):
            errors.append(0.0)
            continue
        spacing = mpmath.mpf(2) ** (mpmath.floor(mpmath.log(abs(e), 2)) - info.nmant)
        errors.append(float(abs(mpmath.mpf(a) - e) / spacing))
    return np.array(errors)


def sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def softplus(x):
    return mpmath.log1p(mpmath.exp(x))  # log(1 + e) would need 40+ digits


def log_sigmoid(x):
    return -mpmath.log1p(mpmath.exp(-x))


def expm1(x):
    return mpmath.expm1(x)


def log1p(x):
    return mpmath.log1p(x)


def erfc(x):
    return mpmath.erfc(x)


def erf(x):
    return mpmath.erf(x)


#: (helper, exact function, domain (low, high, above) of x, ulps allowed per dtype).
#: The erf family's bounds are those of its fitted tables (2e-15 relative).
CASES = [
    (readable._sigmoid, sigmoid, (1e-30, 1e4), {np.float32: 3, np.float64: 3}),
    (readable._softplus, softplus, (1e-30, 1e4), {np.float32: 3, np.float64: 3}),
    (readable._log_sigmoid, log_sigmoid, (1e-30, 1e4), {np.float32: 3, np.float64: 3}),
    (readable._log1p_by_log, log1p, (1e-30, 1e30, -1), {np.float32: 3, np.float64: 3}),
    (readable._log1p, log1p, (1e-30, 1e30, -1), {np.float32: 3, np.float64: 3}),
    (readable._expm1_by_tanh, expm1, (1e-30, 80.0), {np.float32: 3, np.float64: 3}),
    (readable._expm1, expm1, (1e-30, 80.0), {np.float32: 3, np.float64: 3}),
    (readable._erfc, erfc, (1e-30, 27.0), {np.float32: 8, np.float64: 20}),
    (readable._erf, erf, (1e-30, 27.0), {np.float32: 4, np.float64: 12}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "helper, exact, domain, allowed", CASES, ids=[c[0].__name__ for c in CASES]
)
def test_readable_helper_is_accurate_in_ulps(helper, exact, domain, allowed, dtype):
    """Within a few ulps wherever the exact value is a normal float of the
    dtype, tails included, and no floating-point warning where it is finite."""
    x = grid(dtype, *domain)
    with mpmath.workdps(40):
        truth = [exact(mpmath.mpf(float(v))) for v in x.tolist()]
    finite = np.array([abs(t) <= float(np.finfo(dtype).max) for t in truth])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore"):  # exp(x) beyond the dtype's range
            got = helper(x)
    assert got.dtype == dtype
    errors = ulps(
        got[finite], [t for t, f in zip(truth, finite, strict=True) if f], dtype
    )
    worst = int(np.argmax(errors))
    assert errors.max() <= allowed[dtype], (x[finite][worst], errors.max())


@pytest.mark.parametrize(
    "helper, exact, domain, allowed", CASES, ids=[c[0].__name__ for c in CASES]
)
def test_readable_helper_keeps_nan_and_the_dtype(helper, exact, domain, allowed):
    for dtype in (np.float16, np.float32, np.float64):
        x = np.array([np.nan, 0.5], dtype)
        got = helper(x)
        assert np.isnan(got[0]) and np.isfinite(got[1]) and got.dtype == dtype


@pytest.mark.parametrize("helper", [readable._log1p_by_log, readable._log1p])
def test_log1p_ends(helper):
    """-1 gives -inf, inf gives inf, below -1 NaN, as np.log1p gives them."""
    with np.errstate(divide="ignore", invalid="ignore"):
        got = helper(np.array([-1.0, np.inf, -2.0]))
    assert got[0] == -np.inf and got[1] == np.inf and np.isnan(got[2])


@pytest.mark.parametrize("helper", [readable._expm1_by_tanh, readable._expm1])
def test_expm1_ends(helper):
    got = helper(np.array([-np.inf, np.inf, -800.0], np.float32))
    assert got.tolist() == [-1.0, np.inf, -1.0]


def test_helpers_take_python_scalars_and_zero_d_arrays():
    """Parameters alone (softplus(threshold)) reach the helpers as Python floats."""
    assert float(readable._softplus(20.0)) == pytest.approx(20.000000002061153)
    assert float(readable._sigmoid(np.asarray(0.0))) == 0.5
    assert float(readable._expm1(1e-10)) == pytest.approx(1.00000000005e-10)
    assert float(readable._expm1_by_tanh(1e-10)) == pytest.approx(1.00000000005e-10)
    assert float(readable._log1p_by_log(1e-10)) == pytest.approx(9.9999999995e-11)


def test_vectorised_reads_numpys_own_report():
    """True or False, never an error, whatever the NumPy and the CPU."""
    assert readable._vectorised("log1p") in (True, False)
    assert readable._vectorised("no_such_ufunc") is False


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_fast_and_readable_erfc_agree(dtype):
    """The two styles' erfc share one fitted table and agree to an ulp or two."""
    x = grid(dtype, 1e-6, 26.0, count=501)
    out = np.empty_like(x)
    scratch = [np.empty_like(x) for _ in range(4)]
    fast._erfc_into(x, out, *scratch)
    assert np.allclose(out, readable._erfc(x), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("simd", [True, False], ids=["ufunc", "formula"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_fast_log1p_and_expm1_agree_with_the_readable_ones(monkeypatch, simd, dtype):
    """The kernels' log1p and expm1 take the same two ways, to the same values
    (within an ulp), ends included."""
    monkeypatch.setattr(fast, "_LOG1P_IS_SIMD", simd)
    monkeypatch.setattr(fast, "_EXPM1_IS_SIMD", simd)
    monkeypatch.setattr(readable, "_LOG1P_IS_SIMD", simd)
    monkeypatch.setattr(readable, "_EXPM1_IS_SIMD", simd)
    t = np.concatenate([grid(dtype, 1e-30, 1e30, above=-1, count=501), [np.inf]])
    t = t.astype(dtype)
    out, scratch = np.empty_like(t), np.empty_like(t)
    fast._log1p_into(t, out, scratch)
    np.testing.assert_allclose(out, readable._log1p(t), rtol=2 * np.finfo(dtype).eps)
    z = grid(dtype, 1e-30, 80.0, count=501)
    out, scratch = np.empty_like(z), np.empty_like(z)
    with np.errstate(over="ignore"):
        fast._expm1_into(z, out, scratch)
        expected = readable._expm1(z)
    np.testing.assert_allclose(out, expected, rtol=2 * np.finfo(dtype).eps)


@pytest.mark.parametrize("fast_style", [False, True], ids=["readable", "fast"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_tail_product_is_exact_where_its_factor_is_subnormal(dtype, fast_style):
    """x*sigmoid(x) across the stretch where sigmoid(x) is subnormal or 0 (exp(-x)
    overflows) but the product is normal: within 3 ulps, and the factor's own
    tail filled in (it is 0 where exp(-x) overflowed)."""
    edge = float(np.log(np.finfo(dtype).tiny))
    x = np.linspace(edge - 12, edge + 3, 601).astype(dtype)
    with np.errstate(over="ignore"):
        s = readable._sigmoid(x)
    assert (s == 0).any()  # the case that needs the helper
    if fast_style:
        got = np.empty_like(x)
        np.multiply(s, x, out=got)
        readable._tail_product_into(s, x, x, out=got)
    else:
        got = readable._tail_product(s, x, x)
    assert got.dtype == dtype
    values = [float(v) for v in x.tolist()]
    truth = [mpmath.mpf(v) * sigmoid(mpmath.mpf(v)) for v in values]
    assert ulps(got, truth, dtype).max() <= 3
    smallest = float(np.finfo(dtype).smallest_subnormal)
    for value, fixed in zip(values, s.tolist(), strict=True):
        exact_factor = sigmoid(mpmath.mpf(value))
        allowed = max(2 * smallest, 4 * float(np.finfo(dtype).eps) * exact_factor)
        assert abs(fixed - exact_factor) <= allowed, value


def test_tail_product_keeps_nan_scales_and_takes_zero_d_arrays():
    x = np.array([np.nan, -720.0, 1.0])
    with np.errstate(over="ignore"):
        s = readable._sigmoid(x)
    got = readable._tail_product(s, x, x, 2.0)
    assert np.isnan(got[0])
    assert got[1] == pytest.approx(2 * float(mpmath.mpf(-720) * mpmath.exp(-720)))
    assert got[2] == pytest.approx(float(readable._sigmoid(1.0)))  # scale: tail only
    zero_d = readable._tail_product(np.asarray(0.0), np.asarray(-800.0), -800.0)
    assert float(zero_d) == 0.0  # below the subnormal range, -0 or 0


finite_doubles = st.floats(
    min_value=-1e150, max_value=1e150, allow_nan=False, allow_infinity=False
)


@settings(max_examples=300, deadline=None)
@given(finite_doubles, finite_doubles)
def test_two_sum_and_two_product_are_exact(a, b):
    """The error-free transformations the double-double polynomial is built on:
    the rounded result and its error add up to the exact sum and product."""
    s, e = readable._two_sum(np.float64(a), np.float64(b))
    assert Fraction(float(s)) + Fraction(float(e)) == Fraction(a) + Fraction(b)
    if abs(a * b) < 1e290 and (a == 0 or b == 0 or abs(a * b) > 1e-290):
        p, e = readable._two_product(np.float64(a), np.float64(b))
        assert Fraction(float(p)) + Fraction(float(e)) == Fraction(a) * Fraction(b)


# GELU's tanh form: u = 2*sqrt(2/pi)*(x + 0.044715*x**3), and a quadratic.
POLYNOMIALS = [
    [
        0,
        2 * mpmath.sqrt(2 / mpmath.pi),
        0,
        2 * mpmath.sqrt(2 / mpmath.pi) * mpmath.mpf("0.044715"),
    ],
    [mpmath.mpf("0.1"), -mpmath.sqrt(3), -mpmath.mpf(1) / 3],
]


def _table(coefficients):
    """hi, lo pairs, lowest power first, as symgrad's rule builds them."""
    table = []
    for c in coefficients:
        hi = float(c)
        table += [hi, float(c - hi)]
    return tuple(table)


def _computed(x, coefficients):
    """P(x) as a layer computes it: rounded constants, rounded operations."""
    out = np.zeros_like(x)
    for k, c in enumerate(coefficients):
        out = out + x.dtype.type(float(c)) * x**k
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("coefficients", POLYNOMIALS, ids=["gelu_tanh", "quadratic"])
def test_polynomial_error_recovers_the_rounding_of_u(coefficients, dtype):
    """u + du is P(x) to far below an ulp of P's largest term: 2**-90 of it in
    float64 (double-double), 2**-45 in float32 (float64)."""
    x = np.linspace(-20, 20, 801).astype(dtype)
    u = _computed(x, coefficients)
    where = np.arange(x.size)
    du = readable._polynomial_error(
        u.astype(np.float64), x, _table(coefficients), where
    )
    with mpmath.workdps(60):
        for xi, ui, di in zip(x.tolist(), u.tolist(), du.tolist(), strict=True):
            exact = sum(c * mpmath.mpf(xi) ** k for k, c in enumerate(coefficients))
            residual = abs(mpmath.mpf(ui) + mpmath.mpf(di) - exact)
            terms = sum(
                abs(c * mpmath.mpf(xi) ** k) for k, c in enumerate(coefficients)
            )
            allowed = 2.0 ** (-90 if dtype == np.float64 else -45) * terms
            assert residual <= allowed + 1e-300, xi


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "helper, function, coefficients",
    [
        (readable._sigmoid_of_polynomial, sigmoid, POLYNOMIALS[0]),
        (readable._exp_of_polynomial, mpmath.exp, POLYNOMIALS[1]),
    ],
    ids=["sigmoid", "exp"],
)
def test_exp_family_of_a_polynomial_is_within_two_ulps(
    helper, function, coefficients, dtype
):
    """sigmoid(u) for GELU's tanh-form argument was 300 ulps off at x = -14
    (float64); with u's rounding corrected everywhere (beyond=0), within 3 ulps
    wherever the exact value is normal, and the uncorrected form is far over."""
    x = np.linspace(-21, 7, 2801).astype(dtype)
    u = _computed(x, coefficients)
    with np.errstate(over="ignore"):
        got = helper(u, x, _table(coefficients))
        plain = (
            readable._sigmoid(u)
            if helper is readable._sigmoid_of_polynomial
            else np.exp(u)
        )
    assert got.dtype == dtype
    with mpmath.workdps(60):
        truth = [
            function(sum(c * mpmath.mpf(v) ** k for k, c in enumerate(coefficients)))
            for v in x.tolist()
        ]
    finite = np.array([abs(t) <= float(np.finfo(dtype).max) for t in truth])
    kept = [t for t, f in zip(truth, finite, strict=True) if f]
    assert ulps(got[finite], kept, dtype).max() <= 3
    assert ulps(plain[finite], kept, dtype).max() > 8


def test_the_polynomial_tables_are_what_the_fit_gives():
    """`targets/polynomial_tables.py` holds `symgrad.approximations`' output,
    coefficient for coefficient: a table edited by hand, or a fit changed
    without its tables, fails here."""
    from symgrad import approximations
    from symgrad.targets import polynomial_tables

    for name, table in approximations.fit_all().items():
        assert getattr(polynomial_tables, f"_{name}") == table, name
