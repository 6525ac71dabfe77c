"""Scalar math for the numba target's fused loops, written so LLVM vectorises it.

A loop that calls ``math.exp`` runs libm's scalar code element by element (pip's
llvmlite has no vector math library), so each function here is range reduction
plus a polynomial, in float64 arithmetic with integer bit tricks and selects
where the libm code would branch: the loop vectoriser turns a whole fused pass
into SIMD code.  The polynomial tables are fitted by `symgrad.approximations`
(``python -m symgrad.approximations`` prints them).  Accuracy, against mpmath
over each function's whole float64 range (`tests/test_numba.py`): exp, log,
log1p, expm1, tanh, sigmoid and softplus within 2 ulps (measured: 1.8), erf
and erfc within 4 (measured: 1.79 and 1.93); inf, NaN, -0.0 and subnormals as
NumPy gives them.  Polynomials are evaluated with fused multiply-adds where
the CPU has them (`_mul_add`), so the last bits can differ from a CPU without.

exp, expm1, log, log1p, tanh, sigmoid and softplus compute in their argument's
precision: the same algorithm, on float32 bits and float32 constants with
shorter polynomials for a float32 argument (twice the SIMD lanes), within 2
ulps of float32 over its whole range.  `_pick` gives each constant of the
argument's precision when numba types the call, so nothing branches and each
function is written once.  A pass of a ``prefer="memory"`` layer reads float32
arrays as they are (it computes in their precision, as NumPy's layers do),
except where it needs an exact float64 path (for its tail's elements alone
where only they do); there, and under ``prefer="accuracy"``, a float32 layer
is computed in float64 and rounded once when the loop stores it.  The rest (erf, erfc, the exact tails)
compute in float64; erfc of a float32 argument takes float32's shorter fit
there (`_erfc_float32`, within 0.6 ulps of float32).  All are compiled once
per argument types and inlined by LLVM into the loop that calls them
(`_FORCE_INLINE`), and use NumPy's error model: a division by zero gives inf,
as in NumPy, instead of raising, which would put a branch in the loop.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .interface_helpers import (  # noqa: F401 (the layers' interface, copied too)
    _check_backward,
    _check_out,
    _float16_in_float32_out,
    _float_array,
)
from .polynomial_tables import _ERF_SMALL, _ERFC_F32, _ERFC_F64, _TANH_F32
from .thread_helpers import _executor, _threads

#: 1.5 * 2**52: x + _SHIFTER rounds x to an integer, which the low bits hold.
_SHIFTER = 6755399441055744.0
_SHIFTER_BITS = 0x4338000000000000
_INV_LN2 = 1.4426950408889634
#: ln 2 in two parts; the first has 33 bits, so k * _LN2_HI is exact for the
#: |k| <= 1100 that exp's reduction meets.
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_SMALLEST_NORMAL = 2.2250738585072014e-308
_FLOAT32_TINY = 1.1754943508222875e-38
_TWO_TO_54 = 18014398509481984.0
_SQRT2 = 1.4142135623730951
#: The sign, exponent and first 25 stored bits of a float64: 26 significant
#: bits, so that the square is exact.
_HIGH_26_BITS = -(1 << 27)

# exp(r) - 1 = r + r**2 * Q(r) for |r| <= ln(2)/2, Q of degree 10.
_EXPM1_CORE = (
    0.5,
    0.1666666666666667,
    0.04166666666666667,
    0.008333333333326141,
    0.0013888888888883752,
    0.00019841269874800493,
    2.4801587325533363e-05,
    2.7557255425746435e-06,
    2.7557273661348637e-07,
    2.510520637395701e-08,
    2.0914679376583935e-09,
)

# log(1 + f) = 2s + s z T(z) with s = f/(2 + f), z = s**2 <= (3 - 2 sqrt(2))**2.
_LOG_CORE = (
    0.6666666666666666,
    0.4000000000000088,
    0.28571428570803614,
    0.22222222391713917,
    0.18181795640132906,
    0.15386239702814658,
    0.13268773138656886,
    0.13086626147840102,
)

# tanh(a) = a + a**3 P(a**2) for |a| < 0.625.
_TANH_CORE = (
    -0.3333333333333333,
    0.13333333333333042,
    -0.05396825396789699,
    0.021869488519008305,
    -0.008863235103240878,
    0.0035921217511549622,
    -0.0014557754120478055,
    0.0005896606577757043,
    -0.0002375906496055562,
    9.257116129556769e-05,
    -3.12011014257974e-05,
    6.485163482793113e-06,
)
_TANH_SMALL = 0.625

#: How every helper is compiled: once per argument types, marked for LLVM to
#: inline wherever it is called, so the loop it ends up in is vectorised whole.
#: Numba's own ``inline="always"`` gives the same machine code but parses and
#: types the helper again at every call site: GELU-tanh's first call took 13 s
#: with it, 4 s without (float64, `prefer="accuracy"`).
_FORCE_INLINE = {"forceinline": True, "error_model": "numpy"}
_inline = numba.njit(**_FORCE_INLINE)


@intrinsic
def _mul_add(typing_context, a, b, c):
    """a*b + c as one fused instruction where the CPU has one (LLVM's fmuladd;
    every x86-64-v3 CPU does), else a product and a sum: Horner's rule in half
    the instructions, rounded once a step instead of twice.  float32 if all
    three are, else float64, as ``a*b + c`` would be."""
    narrow = all(isinstance(t, types.Float) and t.bitwidth == 32 for t in (a, b, c))
    kind = types.float32 if narrow else types.float64

    def fused(context, builder, signature, arguments):
        value = context.get_value_type(kind)
        function = builder.module.declare_intrinsic(
            "llvm.fmuladd", [value], ir.FunctionType(value, [value] * 3)
        )
        return builder.call(function, arguments)

    return kind(kind, kind, kind), fused


#: LLVM's function attribute for the widest vectors a loop should take.
_PREFER_512_BITS = '"prefer-vector-width"="512"'


@intrinsic
def _prefer_512_bit_vectors(typing_context):
    """Let LLVM vectorise the function this is called in with 512-bit vectors
    (clang's -mprefer-vector-width=512); it compiles to no instruction.  LLVM's
    tuning for Intel's AVX-512 cores keeps loops to 256 bits, for the clock
    drop 512-bit instructions cost on the first of them (Skylake-X); these
    loops are arithmetic from end to end, where 512 bits took 0.7-0.8x the
    time (exp over 1e6 elements, float32 and float64, an AVX-512 Xeon).  A CPU
    without AVX-512 keeps vectors as wide as its registers.  The attribute
    goes on the function being compiled: for a loop over threads, its body,
    which numba compiles apart.  Should llvmlite's function attributes stop
    being a set, the loop keeps LLVM's choice."""

    def note(context, builder, signature, arguments):
        try:
            set.add(builder.function.attributes, _PREFER_512_BITS)
        except TypeError:
            pass
        return context.get_dummy_value()

    return types.none(), note


@_inline
def _horner(t, coefficients):
    """coefficients[0] + coefficients[1] t + ... (a constant tuple, so that the
    loop is unrolled), each step one `_mul_add`."""
    p = coefficients[-1]
    for i in range(len(coefficients) - 2, -1, -1):
        p = _mul_add(p, t, coefficients[i])
    return p


@_inline
def _horner_long(t, coefficients):
    """`_horner` for more than 13 coefficients, in two parts: LLVM unrolls a
    loop over a tuple of 13, not of 25, and a loop it cannot unroll indexes
    the tuple element by element, which is not SIMD code."""
    return _horner(t, coefficients[:13]) + t**13 * _horner(t, coefficients[13:])


# The float32 constants, for the passes of a `prefer="memory"` layer that read
# float32 arrays and compute in their precision (16 lanes of AVX-512, not 8):
# a float64 constant would make the whole expression float64.
_F32_ONE = np.float32(1.0)
#: 1.5 * 2**23: x + _F32_SHIFTER rounds x to an integer, which the low bits hold.
_F32_SHIFTER = np.float32(12582912.0)
_F32_SHIFTER_BITS = np.int32(0x4B400000)
_F32_INV_LN2 = np.float32(1.4426950408889634)
#: ln 2 in two parts; the first has 15 bits, so k * _F32_LN2_HI is exact for
#: the |k| <= 152 that exp's reduction and log's exponent meet.
_F32_LN2_HI = np.float32(0.693145751953125)
_F32_LN2_LO = np.float32(1.4286068e-06)
#: exp's range: below, exp rounds to 0; above, it overflows to inf.
_F32_EXP_LOW = np.float32(-104.0)
_F32_EXP_HIGH = np.float32(89.0)
#: Below this, expm1 rounds to -1; below _F32_TINY_ARGUMENT, expm1, log1p
#: and tanh round to x itself.
_F32_EXPM1_LOW = np.float32(-18.0)
_F32_TINY_ARGUMENT = np.float32(1e-30)
_F32_SMALLEST_NORMAL = np.float32(1.1754943508222875e-38)
_F32_TWO_TO_25 = np.float32(33554432.0)
_F32_SQRT2 = np.float32(1.4142135623730951)
#: Per precision, for log's decomposition: the smallest normal number, the
#: power of 2 that makes a subnormal normal and its exponent, sqrt(2).
_LOG_PARTS = (_SMALLEST_NORMAL, _TWO_TO_54, 54, _SQRT2)
_F32_LOG_PARTS = (
    _F32_SMALLEST_NORMAL,
    _F32_TWO_TO_25,
    np.int32(25),
    _F32_SQRT2,
)
#: exp(r) - 1 = r + r**2 Q(r) for |r| <= ln(2)/2: Q's Taylor coefficients
#: 1/2! ... 1/7!, whose remainder is below 6e-9.
_F32_EXPM1_CORE = tuple(np.float32(1 / n) for n in (2, 6, 24, 120, 720, 5040))
#: log(1 + f) = 2s + s z T(z), T's Taylor coefficients 2/3, 2/5, 2/7, 2/9:
#: z <= 0.0295, so the remainder is below 3e-9.
_F32_LOG_CORE = tuple(np.float32(2 / (2 * n + 3)) for n in range(4))
#: tanh(a) = a + a**3 P(u) with u = a**2 * _F32_TANH_SCALE - 1 for a < 0.625.
_F32_TANH_CORE = tuple(np.float32(c) for c in _TANH_F32)
_F32_TANH_SCALE = np.float32(2 / 0.390625)
_F32_TANH_ONE = np.float32(10.0)


def _pick(like, narrow, wide):
    """``narrow`` where ``like`` is a float32, ``wide`` otherwise: the helpers'
    constants of their argument's precision (in compiled code, `_pick_in_numba`
    settles it when numba types the call, with no branch)."""
    return narrow if isinstance(like, np.float32) else wide


@overload(_pick, jit_options=_FORCE_INLINE)
def _pick_in_numba(like, narrow, wide):
    if like == types.float32:
        return lambda like, narrow, wide: narrow
    return lambda like, narrow, wide: wide


def _holds_float64(array):
    """Whether ``array`` holds float64 numbers: in compiled code a constant of
    the array's type (`_holds_float64_in_numba`), so that LLVM drops the path
    the other dtype takes (``array.itemsize == 8`` is read at run time, and a
    loop LLVM does not split in two computes both paths)."""
    return array.dtype == np.float64


@overload(_holds_float64, jit_options=_FORCE_INLINE)
def _holds_float64_in_numba(array):
    holds = array.dtype == types.float64
    return lambda array: holds


def _float(x):
    """x as a float of its precision: a float32 stays one, anything else is
    float64."""
    return x if isinstance(x, np.float32) else np.float64(x)


@overload(_float, jit_options=_FORCE_INLINE)
def _float_in_numba(x):
    if x == types.float32:
        return lambda x: x
    return lambda x: np.float64(x)


def _bits(x):
    """A float's bits as the signed integer of its width."""
    x = _float(x)
    return x.view(np.int32 if isinstance(x, np.float32) else np.int64)


@overload(_bits, jit_options=_FORCE_INLINE)
def _bits_in_numba(x):
    if x == types.float32:
        return lambda x: np.float32(x).view(np.int32)
    return lambda x: np.float64(x).view(np.int64)


def _integer(like, value):
    """An integer as the signed integer of like's width: numba computes int32
    arithmetic in int64, and the cast back lets LLVM keep a float32 pass's
    integer steps in 32-bit lanes (sigmoid's float32 loop: 0.82x the time)."""
    return np.int32(value) if isinstance(like, np.float32) else np.int64(value)


@overload(_integer, jit_options=_FORCE_INLINE)
def _integer_in_numba(like, value):
    if like == types.float32:
        return lambda like, value: np.int32(value)
    return lambda like, value: np.int64(value)


def _from_bits(like, bits):
    """The float of like's precision whose bits are ``bits``."""
    if isinstance(like, np.float32):
        return np.int32(bits).view(np.float32)
    return np.int64(bits).view(np.float64)


@overload(_from_bits, jit_options=_FORCE_INLINE)
def _from_bits_in_numba(like, bits):
    if like == types.float32:
        return lambda like, bits: np.int32(bits).view(np.float32)
    return lambda like, bits: np.int64(bits).view(np.float64)


#: Per precision, the constants of exp's reduction: 1.5 * 2**52 (2**23) and
#: its bits, 1/ln 2, ln 2 in two parts.
_REDUCTION = (_SHIFTER, _SHIFTER_BITS, _INV_LN2, _LN2_HI, _LN2_LO)
_F32_REDUCTION = (
    _F32_SHIFTER,
    _F32_SHIFTER_BITS,
    _F32_INV_LN2,
    _F32_LN2_HI,
    _F32_LN2_LO,
)
#: Per precision, a float's layout: the exponent's bias, its position, its
#: mask, and the mantissa's mask.
_LAYOUT = (1023, 52, 0x7FF, 0x000FFFFFFFFFFFFF)
_F32_LAYOUT = (np.int32(127), np.int32(23), np.int32(0xFF), np.int32(0x007FFFFF))
#: Per precision: exp's range (0 below, inf above), where expm1 is -1, the k
#: up to which 2**k - 1 is exact, and below which |x| expm1 and log1p are x.
_RANGES = (-746.0, 710.0, -40.0, 64, 1e-300)
_F32_RANGES = (
    _F32_EXP_LOW,
    _F32_EXP_HIGH,
    _F32_EXPM1_LOW,
    np.int32(32),
    _F32_TINY_ARGUMENT,
)


@_inline
def _two_to(like, k):
    """2.0**k in like's precision, for an integer k in its normal exponents
    ([-126, 127] in float32, [-1022, 1023] in float64), built from its bits."""
    bias, width, _, _ = _pick(like, _F32_LAYOUT, _LAYOUT)
    return _from_bits(like, (k + bias) << width)


@_inline
def _reduce(x, tail, small):
    """(k, r) with x + tail + small = k ln 2 + r, k an integer and |r| <=
    ln(2)/2 (Cody and Waite: k ln 2 in two parts, the first product exact;
    the other parts, if any, join after it)."""
    shifter, bits, inv_ln2, high, low = _pick(x, _F32_REDUCTION, _REDUCTION)
    t = (x + tail) * inv_ln2 + shifter
    k = _integer(x, _bits(t) - bits)
    kf = t - shifter
    return k, ((x - kf * high) + tail) + (small - kf * low)


@_inline
def _scaled(p, k):
    """p * 2**k for k up to twice the normal exponents in two exact steps, so
    that a result that overflows is inf and one in the subnormals is rounded
    once."""
    half = _integer(p, k >> 1)
    return p * _two_to(p, half) * _two_to(p, _integer(p, k - half))


@_inline
def _expm1_core(r):
    """exp(r) - 1 for |r| <= ln(2)/2."""
    return r + r * r * _horner(r, _pick(r, _F32_EXPM1_CORE, _EXPM1_CORE))


@_inline
def _exp_of_sum(x, tail, small):
    """exp(x + tail + small): 2**k exp(r), within an ulp.  A ``tail`` and a
    ``small`` part join r after the reduction, so that a sum that would not
    round well (erfc's P - z**2, z**2 in two parts) reaches exp whole."""
    low, high, _, _, _ = _pick(x, _F32_RANGES, _RANGES)
    zero = _like(x, 0.0)
    whole = x + tail
    inside = low <= whole <= high
    head = x if inside else (zero if np.isnan(whole) else min(max(whole, low), high))
    k, r = _reduce(head, tail if inside else zero, small if inside else zero)
    y = _scaled(_like(x, 1.0) + _expm1_core(r), k)
    return x if np.isnan(x) else y


@_inline
def _exp(x):
    """exp(x) in x's precision (float32 or float64), within an ulp."""
    x = _float(x)
    zero = _like(x, 0.0)
    return _exp_of_sum(x, zero, zero)


@_inline
def _expm1(x):
    """exp(x) - 1 = 2**k (exp(r) - 1) + (2**k - 1), the last exact for the k
    that matter (from k = 33 in float32, 65 in float64, on: exp(x) itself); x
    itself below 1e-30 (1e-300), -1 below -18 (-40)."""
    x = _float(x)
    zero, one = _like(x, 0.0), _like(x, 1.0)
    _, high, low, exact_up_to, tiny = _pick(x, _F32_RANGES, _RANGES)
    xc = zero if np.isnan(x) else min(max(x, low), high)
    k, r = _reduce(xc, zero, zero)
    p = _expm1_core(r)
    scale = _scaled(one, min(k, exact_up_to))
    y = scale * p + (scale - one)
    y = p if k == 0 else y
    y = _scaled(one + p, k) if k > exact_up_to else y  # rounds to exp(x)
    y = y if x > low else -one
    y = x if abs(x) < tiny else y  # -0.0 and the subnormals as they are
    return x if np.isnan(x) else y


@_inline
def _log_parts(x):
    """(e, f) with x = 2**e (1 + f) and sqrt(1/2) <= 1 + f < sqrt(2), for a
    positive finite x (a subnormal is scaled by 2**25 in float32, 2**54 in
    float64, first)."""
    smallest, scale, extra, sqrt2 = _pick(x, _F32_LOG_PARTS, _LOG_PARTS)
    bias, width, exponent_mask, mantissa_mask = _pick(x, _F32_LAYOUT, _LAYOUT)
    small = x < smallest
    x = x * scale if small else x
    bits = _bits(x)
    # The exponent as int32 in both precisions: int32 to float is one SIMD
    # instruction, int64 to float64 is not one before AVX-512.
    e = np.int32(((bits >> width) & exponent_mask) - (bias + extra if small else bias))
    m = _from_bits(x, (bits & mantissa_mask) | (bias << width))
    big = m > sqrt2
    f = (m * _like(x, 0.5) if big else m) - _like(x, 1.0)
    return _like(x, np.int32(e + 1) if big else e), f


@_inline
def _log1p_core(f):
    """log(1 + f) for sqrt(1/2) <= 1 + f < sqrt(2): f - (f**2/2 - s (f**2/2 +
    z T(z))), which adds the small corrections to f, exact, last."""
    s = f / (_like(f, 2.0) + f)
    z = s * s
    half_square = _like(f, 0.5) * f * f
    core = _pick(f, _F32_LOG_CORE, _LOG_CORE)
    return f - (half_square - s * (half_square + z * _horner(z, core)))


@_inline
def _log(x):
    """log(x) = e ln 2 + log(1 + f), within an ulp."""
    x = _float(x)
    zero, inf = _like(x, 0.0), _like(x, np.inf)
    e, f = _log_parts(x if zero < x < inf else _like(x, 1.0))
    high, low = _pick(x, _F32_LN2_HI, _LN2_HI), _pick(x, _F32_LN2_LO, _LN2_LO)
    y = e * high + (_log1p_core(f) + e * low)
    y = y if x < inf else x
    y = y if x > zero else (-inf if x == zero else _like(x, np.nan))
    return x if np.isnan(x) else y


@_inline
def _log1p(x):
    """log(1 + x) as log(u) + (x - (u - 1))/u with u = 1 + x rounded: the
    second term is what the rounding lost, to first order."""
    x = _float(x)
    zero, one = _like(x, 0.0), _like(x, 1.0)
    u = one + x
    lost = (x - (u - one)) / u if zero < u < _like(x, np.inf) else zero
    y = _log(u) + lost
    y = x if abs(x) < _pick(x, _F32_RANGES, _RANGES)[4] else y  # -0.0, subnormals
    return x if np.isnan(x) else y


@_inline
def _tanh(x):
    """tanh(x): a + a**3 P(.) below |x| = 0.625 (P of a**2 in float64, of
    a**2 mapped onto [-1, 1] in float32), 1 - 2/(exp(2a) + 1) above (1 from |x|
    = 20, 10 in float32), with x's sign: there 2/(exp(2a) + 1) < 0.45, so its
    error shrinks in the difference (exp is cheaper than expm1)."""
    x = _float(x)
    one, two = _like(x, 1.0), _like(x, 2.0)
    a = abs(x)
    w = a * a
    u = w * _pick(x, _F32_TANH_SCALE, 1.0) - _pick(x, _F32_ONE, 0.0)
    small = a + a * w * _horner(u, _pick(x, _F32_TANH_CORE, _TANH_CORE))
    e = _exp(two * min(a, _pick(x, _F32_TANH_ONE, 20.0)))
    y = small if a < _like(x, _TANH_SMALL) else one - two / (e + one)
    return x if np.isnan(x) else np.copysign(y, x)


@_inline
def _sigmoid(x):
    """1/(1 + exp(-x)), as exp(x)/(1 + exp(x)) for x < 0: no overflow, and the
    tail keeps its digits."""
    x = _float(x)
    return _sigmoid_from(x, _exp(-abs(x)))


@_inline
def _sigmoid_from(x, e):
    """sigmoid(x) from e = exp(-|x|), which the loop computes for another part
    too: one exp for both."""
    one = _like(e, 1.0)
    y = (e if x < _like(x, 0.0) else one) / (one + e)
    return x if np.isnan(x) else y


@_inline
def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow."""
    x = _float(x)
    return _softplus_from(x, _exp(-abs(x)))


@_inline
def _softplus_from(x, e):
    """softplus(x) from e = exp(-|x|), as `_sigmoid_from`."""
    y = max(x, _like(x, 0.0)) + _log1p(e)
    return x if np.isnan(x) else y


@_inline
def _maximum(a, b):
    """np.maximum of two numbers: NaN if either is."""
    return a if a > b or np.isnan(a) else b


@_inline
def _minimum(a, b):
    """np.minimum of two numbers: NaN if either is."""
    return a if a < b or np.isnan(a) else b


@_inline
def _where(condition, a, b):
    """np.where of numbers: both are computed, and the loop selects."""
    return a if condition else b


@_inline
def _clip(u, lower, upper):
    """np.clip of a number: NaN stays NaN."""
    return _minimum(_maximum(u, lower), upper)


@_inline
def _finite(u, side):
    """u with -inf (side -1), +inf (side 1) or both (0) replaced by the largest
    float64, so that inf * 0 cannot make NaN."""
    largest = 1.7976931348623157e308
    u = max(u, -largest) if side <= 0 and not np.isnan(u) else u
    return min(u, largest) if side >= 0 and not np.isnan(u) else u


@_inline
def _tame(u, degree):
    """u clipped where u**degree still fits float64, with a factor 16 to spare."""
    bound = 1.7976931348623157e308 ** (1.0 / degree) / 16.0
    return _clip(u, -bound, bound)


@_inline
def _log_sigmoid(u):
    """log(sigmoid(u)) = min(u, 0) - log1p(exp(-|u|)): no overflow."""
    u = np.float64(u)
    y = min(u, 0.0) - _log1p(_exp(-abs(u)))
    return u if np.isnan(u) else y


def _flat(array):
    """A C-contiguous array as 1-D, without a copy where it already is one."""
    return np.ascontiguousarray(array).reshape(-1)


def _total(values):
    """A parameter's gradient summed over the elements that share it: a sum
    beyond float's range is +-inf, its rounding, not an error."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum(values))


def _run(loop, threads, *arguments):
    """loop(*arguments), and if ``threads``, over one part of the flat arrays
    per thread (`_threads`; numbers go to every part whole), each part whole
    blocks of 4,096 elements: the loops release the GIL (``nogil``), and the
    caller runs the first part while the pool's threads run the others."""
    size = arguments[0].size
    blocks = -(-size // 4096)
    parts = min(_threads(), blocks) if threads else 1
    if parts <= 1:
        return loop(*arguments)
    bounds = [min(blocks * k // parts * 4096, size) for k in range(parts)] + [size]

    def part(k):
        start, stop = bounds[k], bounds[k + 1]
        return [a[start:stop] if isinstance(a, np.ndarray) else a for a in arguments]

    pool = _executor(parts - 1)
    futures = [pool.submit(loop, *part(k)) for k in range(1, parts)]
    loop(*part(0))
    for future in futures:
        future.result()


@_inline
def _square(u):
    return u * u


@intrinsic
def _fma(typing_context, a, b, c):
    """a*b + c rounded once (LLVM's fma, one instruction on x86-64-v3 and
    later): it gives a product's rounding error exactly."""

    def fused(context, builder, signature, arguments):
        return builder.fma(*arguments)

    return types.float64(types.float64, types.float64, types.float64), fused


@_inline
def _two_sum_error(a, b, s):
    """(a + b) - s exactly, for s = a + b rounded (Knuth's TwoSum)."""
    b_part = s - a
    return (a - (s - b_part)) + (b - b_part)


@_inline
def _polynomial_with_error(v, coefficients):
    """(p, e) with P(v) = p + e to about 106 bits: Horner's rule in
    double-double arithmetic over P's coefficients, given as (high, low) pairs
    lowest power first (`symgrad.functions.sigmoid_of_polynomial`), each
    product's rounding from `_fma` and each sum's from `_two_sum_error`.  e is
    0 where it is not finite (v infinite)."""
    v = np.float64(v)
    p = coefficients[-2]
    e = coefficients[-1]
    for i in range(len(coefficients) - 4, -1, -2):
        p, e = _horner_step(p, e, v, 0.0, coefficients[i], coefficients[i + 1])
    return p, (e if abs(e) < np.inf else 0.0)


@_inline
def _minus_root(u, table):
    """(d, e) with d + e = u - r to about 106 bits, u clipped to the window
    first: r's four parts (the table's first four numbers, laid out as in
    `numpy_helpers._near_root_into`) subtracted in turn, each subtraction's
    error kept (`_two_sum_error`)."""
    v = min(max(np.float64(u), table[4]), table[5])
    d = v - table[0]
    e = _two_sum_error(v, -table[0], d)
    for k in range(1, 4):
        t = d - table[k]
        e += _two_sum_error(d, -table[k], t)
        d = t
    t = d + e
    return t, _two_sum_error(d, e, t)


@_inline
def _horner_step(p, p_error, d, d_error, high, low):
    """(p + p_error)*(d + d_error) + (high + low) in double-double arithmetic:
    one step of Horner's rule, each product's error from `_fma`."""
    p_error = p_error * d + p * d_error
    product = p * d
    p_error += _fma(p, d, -product)
    total = product + high
    return total, p_error + (_two_sum_error(product, high, total) + low)


@_inline
def _near_root(far, u, table, d, d_error, p, p_error):
    """far, except where the table's window holds u: there (d + d_error)*(p +
    p_error), rounded once (a layer's ``_..._near_root`` gives the parts)."""
    product = p * d
    value = product + (_fma(p, d, -product) + p * d_error + p_error * d)
    return value if table[4] < u < table[5] else far


@_inline
def _exp_of_polynomial(u, v, coefficients, float64_out, sign=1.0):
    """exp(P(v)), for u = P(v) as the layer computed it and P = sign times the
    polynomial with these coefficients.  Where the results are float64, P's
    rounding is carried into exp (`_polynomial_with_error`): exp(P) is off by
    as much as P, 700 ulps at GELU-tanh's x = -19.  A float32 result is not
    affected: exp(u)."""
    if not float64_out:
        return _exp(u)
    p, e = _polynomial_with_error(v, coefficients)
    return _exp_of_sum(sign * p, sign * e, 0.0)


@_inline
def _sigmoid_of_polynomial(u, v, coefficients, float64_out, sign=1.0):
    """sigmoid(P(v)), as `_exp_of_polynomial` computes exp(P(v))."""
    if not float64_out:
        return _sigmoid(u)
    p, e = _polynomial_with_error(v, coefficients)
    p, e = sign * p, sign * e
    negative = p < 0.0
    z = _exp_of_sum(-abs(p), e if negative else -e, 0.0)
    return (z if negative else 1.0) / (1.0 + z)


@_inline
def _exp_times(rest, x, tail=0.0):
    """rest*exp(x + tail) with rest multiplied in between the two steps of exp's
    scaling by 2**k (`_scaled`): where exp alone would be subnormal and keep few
    digits, the product is rounded once, and a rest up to the largest float
    does not overflow first (x*sigmoid(x) at x = -1.8e308)."""
    x = min(max(np.float64(x), -1400.0), 710.0)
    k, r = _reduce(x, tail, 0.0)
    half = k >> 1
    return (1.0 + _expm1_core(r)) * _two_to(x, half) * rest * _two_to(x, k - half)


@_inline
def _tail_product(
    factor, rest, exponent, float64_out, cached=False, scale=1.0, tail=0.0
):
    """factor*rest, where factor = scale*exp(exponent) below the normal range
    (`symgrad.functions.tail_product`).  There the factor has few digits left
    while the product can be normal (x*sigmoid(x) at x = -714), so it is
    `_exp_times`, where that matters: for float64 results, and for a factor
    read from the cache, which may be float32 (its tail starts at float32's
    normal range, where the factor is scale*exp(exponent) to within a relative
    1e-38).  A float32 result of a factor computed in float64 needs nothing.
    Both are computed and one selected, so that the loop stays SIMD code: one
    more exp per element, where it is needed.  ``tail`` is a second part of
    the exponent (a rounding error), which joins it after exp's reduction."""
    if not (float64_out or cached):
        return factor * rest
    exact = _exp_times(rest * scale, exponent, tail)
    return exact if abs(factor) < _FLOAT32_TINY else factor * rest


@_inline
def _tail_product_of_polynomial(
    factor, rest, exponent, v, coefficients, float64_out, cached=False, scale=1.0
):
    """`_tail_product` for an exponent P(v); for float64 results, its rounding
    carried into exp (`_exp_of_polynomial`)."""
    p, e = exponent, 0.0
    if float64_out:
        p, e = _polynomial_with_error(v, coefficients)
    return _tail_product(factor, rest, p, float64_out, cached, scale, e)


def _erfc(u, scale=1.0, square=1.0):
    """erfc(scale*u) in u's precision: `_erfc_float32` for a float32 u,
    `_erfc_float64` otherwise (in compiled code, `_erfc_in_numba` settles it
    when numba types the call)."""
    if isinstance(u, np.float32):
        return _erfc_float32(u, scale, square)
    return _erfc_float64(u, scale, square)


@overload(_erfc, jit_options=_FORCE_INLINE)
def _erfc_in_numba(u, scale=1.0, square=1.0):
    if u == types.float32:
        return lambda u, scale=1.0, square=1.0: _erfc_float32(u, scale, square)
    return lambda u, scale=1.0, square=1.0: _erfc_float64(u, scale, square)


@_inline
def _erfc_float32(u, scale=1.0, square=1.0):
    """erfc(scale*u) for a float32 result: t exp(P(v) - z**2) with the float32
    fit (`numpy_helpers._erfc`'s, 13 coefficients, 6e-9), computed in float64,
    where its roundings are far below float32's, and rounded once (measured:
    0.58 ulps, 0.87 with GELU's float32 scale).  A third of `_erfc_float64`'s
    work: no second parts, and no branch near 0, where the relative error of
    t exp(P(v)) stays small."""
    x = np.float64(u)
    scale, square = np.float64(scale), np.float64(square)
    a = min(abs(x), 10.1 / abs(scale))
    t = 2.0 / (2.0 + abs(scale) * a)
    tail = t * _exp(_horner(2.0 * t - 1.0, _ERFC_F32) - square * (a * a))
    y = 2.0 - tail if scale * x < 0.0 else tail
    return np.float32(x if np.isnan(x) else y)


@_inline
def _erfc_float64(u, scale=1.0, square=1.0):
    """erfc(scale*u) within 4 ulps: t exp(P(v) - z**2) with z = |scale*u|,
    t = 2/(2 + z) and v = 2t - 1 (the fit of `numpy_helpers._erfc`), with the
    roundings that would cost ulps carried as second parts:

    - t's and v's, and the last two Horner steps', from `_fma` and
      `_two_sum_error`; v's reaches P through P' ~ c1 + 2 c2 v + 3 c3 v**2;
    - z**2 = square (h**2 + (a - h)(a + h)) with a = |u| and h = a with 26
      bits, whose square is exact; exp adds the small parts after its
      reduction.

    2 - erfc(z) below 0; 1 - erf(z) from erf's own polynomial below z = 1/8.
    """
    u = np.float64(u)
    a = min(abs(u), 27.3 / abs(scale))
    z = abs(scale) * a
    d = 2.0 + z
    t = 2.0 / d
    t_low = (_fma(-t, d, 2.0) - t * _two_sum_error(2.0, z, d)) * (0.5 * t)
    v = 2.0 * t - 1.0
    v_low = _two_sum_error(2.0 * t, -1.0, v) + 2.0 * t_low
    c = _ERFC_F64
    q = _horner_long(v, c[2:])
    product = q * v
    p1 = product + c[1]
    p1_low = _fma(q, v, -product) + _two_sum_error(product, c[1], p1)
    product = p1 * v
    p = product + c[0]
    slope = c[1] + v * (2.0 * c[2] + v * (3.0 * c[3]))
    p_low = _fma(p1, v, -product) + _two_sum_error(product, c[0], p)
    p_low = p_low + (p1_low * v + v_low * slope)
    h = np.int64(np.float64(a).view(np.int64) & _HIGH_26_BITS).view(np.float64)
    small = p_low - square * ((a - h) * (a + h))
    e = _exp_of_sum(-square * (h * h), p, small)
    tail = t * e + t_low * e
    y = 2.0 - tail if scale * u < 0.0 else tail
    s = scale * u
    near = 1.0 - s * _horner(2.0 * s * s - 1.0, _ERF_SMALL)
    y = near if abs(s) < 0.125 else y
    return u if np.isnan(u) else y


@_inline
def _erf(u):
    """erf(u): u P(2u**2 - 1) for |u| <= 1, sign(u) (1 - erfc(|u|)) beyond."""
    u = np.float64(u)
    small = min(max(u, -1.0), 1.0)
    inner = small * _horner(2.0 * small * small - 1.0, _ERF_SMALL)
    outer = np.copysign(1.0 - _erfc_float64(abs(u)), u)
    y = inner if abs(u) <= 1.0 else outer
    return u if np.isnan(u) else y


def _like(like, value):
    """``value`` as a number of ``like``'s type (float32 or float64)."""
    return type(like)(value)


@overload(_like, jit_options=_FORCE_INLINE)
def _like_in_numba(like, value):
    """`_like` in compiled code: the cast to like's numba type."""
    kind = like
    return lambda like, value: kind(value)
