"""The helpers generated modules carry, checked in ulps against mpmath.

Both ways of each CPU-dependent helper are tested on every machine: `_log1p`
and `_expm1` use NumPy's ufunc where NumPy vectorises it and a formula on
vectorised functions elsewhere, so the formulas (`_log1p_by_log`,
`_expm1_by_tanh`) are called here directly.  Errors are counted in units in the
last place of the exact value, only where that value is a normal float.
"""

import warnings

import mpmath
import numpy as np
import pytest

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
