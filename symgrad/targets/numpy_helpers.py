"""NumPy helpers that the default (readable) generated layers carry with them.

Generated files import only NumPy, so `symgrad.codegen` copies into each module
the source of the helpers its layers call (and the constants those use).  They
live here as ordinary functions, tested directly.  Each takes and returns whole
arrays, keeps its argument's dtype (constants are Python floats, which NumPy
treats as weak) and stays finite wherever the true result is finite.

Two of them stand in for NumPy ufuncs that are scalar code on many CPUs:
``np.log1p`` and ``np.expm1`` are SIMD code on x86 with AVX-512 and 4-6x slower
than ``np.log`` and ``np.exp`` without it.  `_log1p` and `_expm1` ask NumPy
which it is (`_vectorised`, once, at import) and otherwise compute the same
values from the vectorised ``np.log``, ``np.exp`` and ``np.tanh``
(`tests/test_helpers.py` checks both ways in ulps).
"""

import numpy as np

from .interface_helpers import (  # noqa: F401 (the layers' interface, copied too)
    _check_dout,
    _float16_in_float32,
    _float32_in_float64,
    _float_array,
)
from .polynomial_tables import _ERF_SMALL, _ERFC_F32, _ERFC_F64


@np.errstate(over="ignore")
def _sigmoid(u):
    """1/(1 + exp(-u)), computed in one new array.

    exp(-u) overflows to inf below u = -88.7 (float32) or -709.8 (float64), and
    below -11 in float16; the true value there is not a normal number and
    1/(1 + inf) = 0 is its rounding, so that overflow is not reported.
    """
    s = np.negative(u, out=np.empty_like(u))
    np.exp(s, out=s)
    s += 1.0
    return np.divide(1.0, s, out=s)


def _vectorised(ufunc):
    """Whether NumPy runs ``ufunc`` on float32 with SIMD code on this CPU, as its
    own introspection (NumPy 2) reports; False where it cannot say."""
    try:
        from numpy.lib.introspect import opt_func_info
    except ImportError:
        return False
    loop = opt_func_info(func_name=f"^{ufunc}$").get(ufunc, {}).get("ff")
    return loop is not None and not loop["current"].startswith("baseline")


#: np.log1p and np.expm1 are SIMD code on x86 with AVX-512, and scalar code,
#: 4-6x slower than np.log and np.exp, elsewhere.
_LOG1P_IS_SIMD = _vectorised("log1p")
_EXPM1_IS_SIMD = _vectorised("expm1")


@np.errstate(invalid="ignore", divide="ignore")
def _log1p_by_log(t):
    """log(1 + t), accurate for tiny t, built on the vectorised np.log.

    With v = 1 + t rounded, log(1 + t) = log(v) + log(1 + (t - (v - 1))/v), and
    the second term is (t - (v - 1))/v to within the square of a rounding error.
    Where log(v) is not finite (t = -1, inf or NaN), it is the answer.
    """
    v = np.add(t, 1.0)
    correction = v - 1.0
    correction -= t
    correction /= v
    log_v = np.log(v)
    return np.where(np.isfinite(log_v), log_v - correction, log_v)


def _log1p(t):
    """log(1 + t): np.log1p where NumPy vectorises it, else `_log1p_by_log`."""
    return np.log1p(t) if _LOG1P_IS_SIMD else _log1p_by_log(t)


def _softplus(u):
    """log(1 + exp(u)) without overflow: log1p(exp(-|u|)) + max(u, 0)."""
    t = _log1p(np.exp(-np.abs(u)))
    t += np.maximum(u, 0.0)
    return t


def _log_sigmoid(u):
    """log(sigmoid(u)) = -softplus(-u) without overflow: min(u, 0) - log1p(exp(-|u|))."""
    t = _log1p(np.exp(-np.abs(u)))
    return np.minimum(u, 0.0) - t


def _expm1_by_tanh(z):
    """exp(z) - 1 as (1 + exp(z)) * tanh(z/2), an identity whose two factors are
    each accurate for every z, so their product is too: no cancellation near 0,
    -1 and inf at the ends."""
    e = np.exp(z)
    e += 1.0
    e *= np.tanh(0.5 * z)
    return e


def _expm1(z):
    """exp(z) - 1, accurate near 0: np.expm1, except in float32 where NumPy does
    not vectorise it and `_expm1_by_tanh`, two vectorised functions, is faster."""
    z = np.asarray(z)
    if _EXPM1_IS_SIMD or z.dtype != np.float32:
        return np.expm1(z)
    return _expm1_by_tanh(z)


def _finite(u, side=0):
    """u with -inf (side -1), +inf (side 1) or both (0) replaced by the largest
    finite value of its dtype, so that inf * 0 cannot make NaN."""
    u = np.asarray(u)
    largest = np.finfo(u.dtype).max
    return np.clip(u, -largest if side <= 0 else None, largest if side >= 0 else None)


def _tame(u, degree):
    """u clipped where u**degree still fits its dtype, with a factor 16 to spare."""
    u = np.asarray(u)
    bound = float(np.finfo(u.dtype).max) ** (1.0 / degree) / 16.0
    return np.clip(u, -bound, bound)


def _horner(t, coefficients):
    """The polynomial with these coefficients (lowest first) at t."""
    p = np.full_like(t, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        p *= t
        p += c
    return p


def _erfc(u, scale=1.0, square=1.0):
    """erfc(scale*u) = 1 - erf(scale*u), within 5 ulps (float64) or 1e-7 relative
    (float32), and to an ulp below |scale*u| = 1/8 (`_erfc_near_zero`).

    For z = |scale*u|, erfc(z) = t exp(P(2t - 1) - z^2) with t = 2/(2 + z), where P
    is a polynomial fitted by symgrad.approximations; erfc(-z) = 2 - erfc(z).
    square is scale**2 exactly, so z^2 = square*(h^2 + (a - h)(a + h)) comes from
    a = |u| itself (h = a rounded to 1/16 has an exact square): from the rounded
    z, exp(-z^2) would be off by 2 z^2 ulps.
    """
    u = np.asarray(u)
    table, largest = (_ERFC_F64, 27.3) if u.dtype == np.float64 else (_ERFC_F32, 10.1)
    a = np.minimum(np.abs(u), largest / abs(scale))
    t = 2.0 / (2.0 + abs(scale) * a)
    h = np.rint(16.0 * a) / 16.0
    tail = t * np.exp(_horner(2.0 * t - 1.0, table) - square * ((a - h) * (a + h)))
    tail *= np.exp(-square * (h * h))
    out = np.where(scale * u < 0.0, 2.0 - tail, tail)
    _erfc_near_zero(u, out, scale)
    return out


def _erfc_near_zero(u, out, scale=1.0):
    """Below |scale*u| = 1/8, out = 1 - erf(scale*u) from erf's own polynomial,
    right to an ulp where the erfc fit alone is not (with a least-squares fit,
    erfc(0) came out 1 - 1.4e-15, GELU's slope at 0 0.49999999999999928).  Only those elements
    are computed."""
    near = np.flatnonzero(np.abs(u) < 0.125 / abs(scale))
    if near.size:
        s = scale * u.flat[near]
        out.flat[near] = 1.0 - s * _horner(2.0 * s * s - 1.0, _ERF_SMALL)


@np.errstate(over="ignore")
def _scaled(u, factor):
    """factor*u, the argument of a function or a comparison: where it leaves the
    dtype's range, +-inf is its rounding and the function's limit there the
    true result (softplus(beta*x) with beta = 2 at x = 1.8e308), so that
    overflow is not reported."""
    return factor * u


@np.errstate(over="ignore")
def _quotient(u, divisor):
    """u/divisor, as `_scaled`: expm1(x/alpha) with alpha = 0.7 at x = -1.8e308
    is -1, whatever x/alpha rounds to."""
    return u / divisor


def _tail_product(factor, rest, exponent, scale=1.0):
    """factor*rest, where factor = scale*exp(exponent) below the normal range.

    There the factor has few bits left, or none (sigmoid(x) is 0 once exp(-x)
    overflows), while the product can be normal: x*sigmoid(x) at x = -714 is
    -4.2e-308.  See `_tail_product_into`.
    """
    return _tail_product_into(factor, rest, exponent, scale, out=factor * rest)


def _tail_product_into(factor, rest, exponent, scale=1.0, *, out):
    """Where scale*exp(exponent) is below the normal range, out = (rest*half)*half
    *scale with half = exp(exponent/2), which is normal (in float64, rounded
    once to a float32 out); elsewhere out is left as it is (the product).  The
    factor's own elements there become half*half*scale too: a layer may cache
    it, and SiLU's backward s + y*(1 - s) needs s where the sigmoid gave 0."""
    for tail, exponents in _tails(exponent, out, scale):
        _put_tail_product(factor, rest, tail, exponents, 0.0, scale, out)
    return out


def _tails(exponent, out, scale):
    """(flat indices, exponents there in float64) where scale*exp(exponent) is
    below out's normal range, in slices (`_chunks`); nothing, after one
    ``min``, where no element is."""
    exponent = np.asarray(exponent)
    limit = _LOG_TINY[out.dtype]
    if scale != 1.0:
        limit -= np.log(abs(scale))
    if not exponent.size or exponent.min() >= limit:  # cheaper than the indices
        return
    for tail in _chunks(np.flatnonzero(exponent < limit)):
        yield tail, np.take(exponent, tail).astype(np.float64)


def _put_tail_product(factor, rest, tail, exponents, error, scale, out):
    """out = (rest*half)*half*scale*(1 + error) at the flat indices ``tail``, with
    half = exp(exponents/2); the factor there half*half*scale*(1 + error)."""
    half = np.exp(0.5 * exponents)
    product = np.take(rest, tail) * half * half * scale
    np.put(out, tail, product + product * error)
    if isinstance(factor, np.ndarray) and factor.shape == np.shape(out):
        alone = half * half * scale
        np.put(factor, tail, alone + alone * error)


#: The log of each dtype's smallest normal number: exp(u) is subnormal below it.
_LOG_TINY = {
    np.dtype(t): float(np.log(np.finfo(t).tiny))
    for t in (np.float16, np.float32, np.float64)
}


def _chunks(indices, size=16384):
    """indices in slices of at most ``size``: the corrections' float64
    temporaries stay small whatever the array's size."""
    for start in range(0, indices.size, size):
        yield indices[start : start + size]


def _tail_product_of_polynomial(factor, rest, exponent, v, coefficients, scale=1.0):
    """`_tail_product`, for an exponent computed as P(v): its rounding, which
    costs exp(P) |P| times as much, corrected (`_polynomial_error`)."""
    out = factor * rest
    return _tail_product_of_polynomial_into(
        factor, rest, exponent, v, coefficients, scale, out=out
    )


def _tail_product_of_polynomial_into(
    factor, rest, exponent, v, coefficients, scale=1.0, *, out
):
    """`_tail_product_into`, with the rounding of the exponent P(v) corrected."""
    for tail, exponents in _tails(exponent, out, scale):
        error = _polynomial_error(exponents, v, coefficients, tail)
        _put_tail_product(factor, rest, tail, exponents, error, scale, out)
    return out


def _sigmoid_of_polynomial(u, v, coefficients, beyond=0.0):
    """sigmoid(u) for u = P(v) as the layer computed it, corrected for u's
    rounding where |v| > beyond (`_sigmoid_of_polynomial_into`)."""
    return _sigmoid_of_polynomial_into(u, v, coefficients, beyond, out=_sigmoid(u))


def _sigmoid_of_polynomial_into(u, v, coefficients, beyond=0.0, *, out):
    """Where |v| > beyond and u < 2, out = sigmoid(P(v)) = 1/(1 + exp(-u)*(1 -
    du)) with du = P(v) - u from `_polynomial_error` (in float64, rounded
    once); elsewhere out is left as it is (sigmoid(u)).  u is off by about an
    ulp of P's largest term, and sigmoid(u) by that times sigmoid(-u): 300 ulps
    at u = -150, an eighth of it or less from u = 2 on."""
    u = np.asarray(u)
    for where in _chunks(np.flatnonzero((np.abs(v) > beyond) & (u < 2.0))):
        w = np.take(u, where).astype(np.float64)
        du = _polynomial_error(w, v, coefficients, where)
        with np.errstate(over="ignore"):  # exp(-w) = inf: the sigmoid is 0
            np.put(out, where, 1.0 / (1.0 + np.exp(-w) * (1.0 - du)))
    return out


def _exp_of_polynomial(u, v, coefficients, beyond=0.0):
    """exp(u) for u = P(v) as the layer computed it, corrected for u's rounding
    where |v| > beyond (`_exp_of_polynomial_into`)."""
    return _exp_of_polynomial_into(u, v, coefficients, beyond, out=np.exp(u))


def _exp_of_polynomial_into(u, v, coefficients, beyond=0.0, *, out):
    """Where |v| > beyond, out = exp(P(v)) = exp(u)*(1 + du), du = P(v) - u from
    `_polynomial_error` (in float64, rounded once); elsewhere out is left as it
    is (exp(u))."""
    u = np.asarray(u)
    for where in _chunks(np.flatnonzero(np.abs(v) > beyond)):
        w = np.take(u, where).astype(np.float64)
        with np.errstate(over="ignore"):  # exp(P) beyond the dtype: inf is right
            e = np.exp(w)
            np.put(out, where, e + e * _polynomial_error(w, v, coefficients, where))
    return out


@np.errstate(over="ignore", invalid="ignore")
def _polynomial_error(u, v, coefficients, where):
    """P(v) - u at the flat indices ``where`` of v, for u (float64, those
    elements) = P(v) as the layer computed it, with its constants and every
    operation rounded.  P comes from exact coefficients (hi, lo pairs, lowest
    power first): in float64 for a float32 v, in double-double arithmetic for
    float64 (Dekker's exact products; NumPy has no fused multiply-add).  0
    where u or v is not finite."""
    v = np.asarray(v)
    at = np.take(v, where).astype(np.float64)
    if v.dtype != np.float64:
        error = _horner(at, coefficients[0::2]) - u  # float64 holds its error
    else:
        value, error = _horner_double(at, None, coefficients)
        error += value - u
    return np.where(np.isfinite(error), error, 0.0)


def _horner_double(t, t_error, coefficients):
    """(p, error): P(t + t_error) = p + error in double-double arithmetic
    (Dekker's exact products, Knuth's exact sums), P's coefficients as (high,
    low) pairs lowest power first; ``t_error`` None where t is exact."""
    highs, lows = coefficients[0::2], coefficients[1::2]
    halves = _split(t)
    p, error = np.full_like(t, highs[-1]), np.full_like(t, lows[-1])
    for high, low in zip(reversed(highs[:-1]), reversed(lows[:-1]), strict=True):
        error *= t
        if t_error is not None:
            error += p * t_error
        p, product_error = _two_product(p, t, halves)
        error += product_error
        if high:  # GELU's odd polynomial skips its zero coefficients' sums
            p, sum_error = _two_sum(p, high)
            error += sum_error
        if low:
            error += low
    return p, error


def _two_sum(first, second):
    """(total, error): the rounded sum and what it lost, exactly (Knuth)."""
    total = first + second
    second_part = total - first
    return total, (first - (total - second_part)) + (second - second_part)


def _two_product(first, second, second_halves=None):
    """(product, error): the rounded product and what it lost, exactly
    (Dekker); second's halves may be given (`_split`), for one used again."""
    product = first * second
    first_high, first_low = _split(first)
    second_high, second_low = second_halves or _split(second)
    error = first_high * second_high - product
    error += first_high * second_low
    error += first_low * second_high
    error += first_low * second_low
    return product, error


def _split(value):
    """(high, low): value = high + low, each of at most 26 bits (Veltkamp)."""
    scaled = 134217729.0 * value  # 2**27 + 1
    high = scaled - (scaled - value)
    return high, value - high


def _near_zero(far, u, switch, order, coefficients):
    """far, except where |u| < switch: there u**order * P(2u^2/switch^2 - 1),
    the polynomial symgrad fitted where the terms of far cancel (x - tanh(x) is
    0 below x = 1e-8, x**3/3 to leading order)."""
    out = np.array(far, dtype=np.result_type(far, u))
    return _near_zero_into(u, switch, order, coefficients, out=out)


def _near_zero_into(u, switch, order, coefficients, *, out):
    """Where |u| < switch, out = u**order * P(2u^2/switch^2 - 1); elsewhere out
    is left as it is (the sum).  Only those elements are computed."""
    near = np.flatnonzero(np.abs(u) < switch)
    if near.size:
        v = u.flat[near]
        square = v * v
        p = _horner(square * (2.0 / (switch * switch)) - 1.0, coefficients)
        for _ in range(order // 2):  # v**order by products: ** is far slower
            p *= square
        if order % 2:
            p *= v
        out.flat[near] = p
    return out


def _near_root(far, u, table):
    """far, except where the table's window holds u: there d*P(d) with d = u - r,
    the polynomial symgrad fitted where the terms of far cancel about their
    root r (Mish's slope, two terms of 0.3 that cancel at u = -1.19)."""
    out = np.array(far, dtype=np.result_type(far, u))
    return _near_root_into(u, table, out=out)


@np.errstate(over="ignore", invalid="ignore")
def _near_root_into(u, table, *, out):
    """Where lower < u < upper, out = d*P(d) with d = u - r; elsewhere out is
    left as it is (the sum).  The table is (r in parts of 11, 24, 53 and 53
    bits, lower, upper, P's coefficients, lowest power first, each a high and
    a low float).  d, P(d) and their product are computed in double-double
    arithmetic (`_two_sum`, `_two_product`) and rounded once: the value is the
    fit's to within an ulp wherever the terms cancel (a float64 Horner lost up
    to 5 ulps near the window's ends, where P's own terms cancel)."""
    hi, mid, lo, rest, lower, upper, *coefficients = table
    near = np.flatnonzero((u > lower) & (u < upper))
    if near.size:
        v = u.flat[near].astype(np.float64)
        d, d_error = _two_sum(v, -hi)
        for part in (mid, lo, rest):
            d, error = _two_sum(d, -part)
            d_error += error
        d, d_error = _two_sum(d, d_error)
        p, p_error = _horner_double(d, d_error, coefficients)
        product, error = _two_product(p, d)
        error += p * d_error + p_error * d
        out.flat[near] = product + error
    return out


def _near_tail(far, u, table):
    """far, except beyond the table's switch, where the sum decays like
    exp(b(u)): there the series e**m * sum c_k(u)*e**k, e = exp(b(u)), that
    symgrad derived for it (Mish's slope is (x + 1)*e + ... for x < -3)."""
    out = np.array(far, dtype=np.result_type(far, u))
    return _near_tail_into(u, table, out=out)


@np.errstate(under="ignore")
def _near_tail_into(u, table, *, out):
    """Beyond the switch, out = e**m * (c_0(u) + c_1(u)*e + c_2(u)*e**2 + ...)
    with e = exp(b(u)); elsewhere out is left as it is (the sum).  In float64,
    b and c_0 are computed in double-double arithmetic (`_exact_polynomial`);
    the other terms, each e times smaller, in float64 as one matrix product,
    a dozen NumPy calls whatever the number of terms (the book's batches have
    a few elements in the tail).  The value is about 2 ulps off at most (1.9
    for Mish, 2.3 for GELU-tanh, on random tail points), where the sum's 4-5
    rounded functions lost up to 7.  u is clamped at lowest, beyond which
    the value is 0.  The tail is taken in slices (`_chunks`) that stay in the
    cache.  See `_tail_parts` for the table."""
    switch, side, lowest, m, exponent, leading, later = _tail_parts(table)
    exact = out.dtype == np.float64  # float64 arithmetic is exact enough for less
    for tail in _chunks(np.flatnonzero(u < switch if side < 0 else u > switch)):
        v = np.take(u, tail).astype(np.float64)
        v = np.clip(v, lowest, switch) if side < 0 else np.clip(v, switch, lowest)
        b, b_error = _exact_polynomial(v, exponent, exact)
        c, c_error = _exact_polynomial(v, leading, exact)
        e = np.exp(b)
        e += e * b_error
        rest = np.zeros_like(v)
        for c_k in (later.T @ _powers(v, later.shape[0]))[::-1]:  # c_k(v), k >= 1
            rest += c_k
            rest *= e
        np.put(out, tail, _times_power(c + (c_error + rest), e, m, b, b_error))
    return out


def _powers(v, count):
    """[1, v, v**2 ...], count rows."""
    rows = np.empty((count, v.size))
    rows[0] = 1.0
    for j in range(1, count):
        np.multiply(rows[j - 1], v, out=rows[j])
    return rows


def _exact_polynomial(v, coefficients, exact):
    """(p, error), P(v) = p + error.  If ``exact``, in double-double
    arithmetic (`_horner_double`), or for a line k*v + c with k a power of two
    (Mish's b = x and c_0 = x + 1) by one exact product and sum; otherwise (a
    float32 result) P in float64, error 0."""
    if not exact:
        return _horner(v, coefficients[0::2]), np.zeros_like(v)
    if len(coefficients) == 4 and not coefficients[3]:
        intercept, low, slope = coefficients[:3]
        if slope and abs(np.frexp(slope)[0]) == 0.5:  # k*v is exact
            p, error = _two_sum(slope * v, intercept)
            return p, error + low
    return _horner_double(v, None, coefficients)


def _tail_parts(table):
    """The table of `_near_tail_into`, (switch, side, lowest, m, terms, the
    coefficients' degree, b's degree, b's and c_0's coefficients as high and
    low floats, then c_1, c_2 ..., lowest power first), as (switch, side,
    lowest, m, b's and c_0's coefficients, the others as a matrix with a
    column per power of e).  Worked out once per table."""
    parts = _TAIL_PARTS.get(table)
    if parts is None:
        switch, side, lowest, m, terms, degree, exponent_degree = table[:7]
        width, exponent_width = int(degree) + 1, int(exponent_degree) + 1
        exponent = table[7 : 7 + 2 * exponent_width]
        leading = table[7 + 2 * exponent_width : 7 + 2 * (exponent_width + width)]
        rows = table[7 + 2 * (exponent_width + width) :]
        later = np.reshape(rows, (int(terms) - 1, width)).T
        parts = (switch, side, lowest, int(m), exponent, leading, later)
        _TAIL_PARTS[table] = parts
    return parts


#: Each tail table's parts (`_tail_parts`), worked out on its first call.
_TAIL_PARTS = {}


def _times_power(value, e, m, b, b_error):
    """value*e**m, e = exp(b + b_error); where e**m is below the normal range
    while the product may not be, in halves: (value*h)*h, h = exp(m*b/2)."""
    product = value * e
    for _ in range(m - 1):
        product *= e
    low = m * b < _LOG_TINY[np.dtype(np.float64)]
    if low.any():
        half = np.exp(0.5 * m * b[low])
        half += half * (0.5 * m * b_error[low])
        product[low] = value[low] * half * half
    return product


def _erf(u):
    """erf(u), to about 3e-15 relative (float64): u P(2u^2 - 1) for |u| <= 1
    (fitted by symgrad.approximations), sign(u) (1 - erfc(|u|)) beyond."""
    u = np.asarray(u)
    small = np.clip(u, -1.0, 1.0)
    inner = small * _horner(2.0 * small * small - 1.0, _ERF_SMALL)
    outer = np.copysign(1.0 - _erfc(np.abs(u)), u)
    return np.where(np.abs(u) <= 1.0, inner, outer)
