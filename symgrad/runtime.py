"""NumPy helpers that generated modules carry with them.

Generated files import only NumPy, so `symgrad.codegen` copies the source of each
helper a module uses into it.  They live here as ordinary functions so they are
tested directly.  Each is stable for every finite input and preserves the dtype
of its argument (constants are Python floats, which NumPy treats as weak).
"""

import numpy as np


def _as_float_array(x):
    """Return x as a floating-point array; integer and bool input becomes float64."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    raise TypeError(f"expected real numbers, got an array of dtype {x.dtype}")


def _check_backward(layer, cached, dout):
    """Return dout as an array shaped like forward's output, or say what is wrong."""
    if cached is None:
        raise RuntimeError(f"{layer}.backward() called before forward()")
    shape = cached if isinstance(cached, tuple) else cached.shape
    dout = np.asarray(dout)
    if dout.shape != shape:
        raise ValueError(
            f"{layer}.backward(): dout has shape {dout.shape}, "
            f"but forward's output has shape {shape}"
        )
    return dout


def _sigmoid(x):
    """1/(1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _finite(x, side=0):
    """x with -inf (side -1), +inf (side 1) or both (0) replaced by the largest
    finite value of its dtype, so that inf * 0 cannot make NaN."""
    largest = np.finfo(x.dtype).max
    if side < 0:
        return np.maximum(x, -largest)
    if side > 0:
        return np.minimum(x, largest)
    return np.clip(x, -largest, largest)


def _tame(x, degree):
    """x clipped where x**degree still fits its dtype, with a factor 16 to spare."""
    bound = np.finfo(x.dtype).max ** (1.0 / degree) / 16.0
    return np.clip(x, -bound, bound)


def _softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _horner(t, coefficients):
    """Evaluate the polynomial with these coefficients (lowest first) at t."""
    result = np.zeros_like(t) + coefficients[-1]
    for c in reversed(coefficients[:-1]):
        result = result * t + c
    return result


def _erf_small(x):
    """erf(x) for |x| < 1: x * P(2x^2 - 1), fitted by symgrad.approximations."""
    table = (
        0.9654687386698668,
        -0.140536089022721,
        0.019852496688968435,
        -0.0022854855610894916,
        0.00021751715616035553,
        -1.753716980600954e-05,
        1.2233824537685668e-06,
        -7.511475607612834e-08,
        4.116062174229629e-09,
        -2.0452577896123528e-10,
        9.10216657259224e-12,
    )
    return x * _horner(2.0 * x * x - 1.0, table)


def _erfc_tail(a):
    """erfc(a) for a >= 1, as exp(-a^2) times a fitted polynomial by region."""
    a = np.minimum(a, 27.3)  # erfc(27.3) underflows to 0
    # exp(-a^2) = exp(-h^2) exp(-(a - h)(a + h)) with h*h exact: no rounding in a^2.
    h = np.round(a * 16.0) / 16.0
    gauss = np.exp(-h * h) * np.exp(-(a - h) * (a + h))
    near = a < 2.0
    middle = (a >= 2.0) & (a < 4.0)
    far = a >= 4.0
    scaled = np.empty_like(a)
    scaled[near] = _horner(
        2.0 * a[near] - 3.0,
        (
            0.3215854164543173,
            -0.08181145886628313,
            0.019037759963884862,
            -0.004116363162381666,
            0.0008360838093935742,
            -0.0001608111737647376,
            2.9470858423065972e-05,
            -5.171327470956441e-06,
            8.72301122714922e-07,
            -1.4191397455420582e-07,
            2.2335382726333406e-08,
            -3.403733877106638e-09,
            4.96428381205083e-10,
            -7.383619881944175e-11,
            1.523747841232384e-11,
            -1.2057997368530913e-12,
            -1.0340430818023154e-12,
        ),
    )
    scaled[middle] = _horner(
        a[middle] - 3.0,
        (
            0.1790011511813902,
            -0.05437226000716956,
            0.015884371159862583,
            -0.004479431018497313,
            0.001223039052523461,
            -0.00032412554292532685,
            8.355413847497349e-05,
            -2.098947383846794e-05,
            5.146441361316881e-06,
            -1.2333374508996689e-06,
            2.8925513901921683e-07,
            -6.652263527160451e-08,
            1.499442546860067e-08,
            -3.2545184841541005e-09,
            7.052795081959431e-10,
            -1.8568708427265848e-10,
            3.932685853165362e-11,
        ),
    )
    tail = a[far]
    scaled[far] = (
        _horner(
            32.0 / (tail * tail) - 1.0,
            (
                0.5557581685752837,
                -0.00807380516851433,
                0.0003335970130715949,
                -2.186107493217706e-05,
                1.9147126495844766e-06,
                -2.0641901674511492e-07,
                2.610226563607403e-08,
                -3.752864598127971e-09,
                6.006776422925663e-10,
                -1.0360209117305648e-10,
                1.8683329046009895e-11,
                -4.825430619943757e-12,
                1.3696456112168008e-12,
            ),
        )
        / tail
    )
    return gauss * scaled


def _erf(x):
    """The error function to about 3e-15 (relative), in the dtype of x; NaN stays NaN."""
    x = np.asarray(x)
    flat = x.reshape(-1)
    out = flat.copy()
    a = np.abs(flat)
    small = a < 1.0
    out[small] = _erf_small(flat[small])
    large = a >= 1.0
    out[large] = np.copysign(1.0 - _erfc_tail(a[large]), flat[large])
    return out.reshape(x.shape)


def _erfc(x):
    """The complementary error function 1 - erf(x), accurate where it is tiny."""
    x = np.asarray(x)
    flat = x.reshape(-1)
    out = flat.copy()
    small = np.abs(flat) < 1.0
    out[small] = 1.0 - _erf_small(flat[small])
    positive = flat >= 1.0
    out[positive] = _erfc_tail(flat[positive])
    negative = flat <= -1.0
    out[negative] = 2.0 - _erfc_tail(-flat[negative])
    return out.reshape(x.shape)
