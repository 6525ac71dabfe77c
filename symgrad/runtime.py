"""NumPy helpers that generated modules carry with them.

Generated files import only NumPy, so `symgrad.codegen` copies the source of each
helper a module uses into it.  They live here as ordinary functions so they are
tested directly.  Each is stable for every finite input and preserves the dtype
of its argument (constants are Python floats, which NumPy treats as weak).
"""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np


def _as_float_array(x):
    """Return x as a floating-point array; integer and bool input becomes float64."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    raise TypeError(f"expected real numbers, got an array of dtype {x.dtype}")


def _output_array(name, shape, dtype, out):
    """A new array for a result, or ``out`` after checking it can hold it."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: out must be a NumPy array, not {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"{name}: out has shape {out.shape} and dtype {out.dtype}, "
            f"but the result has shape {shape} and dtype {dtype}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"{name}: out must be a writeable, C-contiguous array")
    return out


def _check_no_overlap(name, out, cached):
    """Refuse an out buffer that would overwrite what backward still needs."""
    if out is not None and np.may_share_memory(out, cached):
        raise ValueError(
            f"{name}: out shares memory with the array the layer keeps for backward"
        )


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


def _threads():
    """Threads to split large arrays over: SYMGRAD_THREADS, else the usable CPUs."""
    setting = os.environ.get("SYMGRAD_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    if hasattr(os, "sched_getaffinity"):
        return min(len(os.sched_getaffinity(0)), 8)
    return min(os.cpu_count() or 1, 8)


@cache
def _executor(pid, workers):
    """One pool per process (a forked child gets its own) and size."""
    return ThreadPoolExecutor(workers, thread_name_prefix="symgrad")


def _map_blocks(kernel, inputs, outputs):
    """Call kernel(*input_blocks, *output_blocks) on matching blocks of the arrays.

    Blocks of 8192 elements keep a kernel's temporaries in cache.  Arrays of more
    than 2**17 elements are split into contiguous parts, one per thread (NumPy
    releases the GIL inside its loops).
    Returns the kernel's results in block order, whatever the threads, so sums
    over them are deterministic.
    """
    block = 8192
    inputs = [a.reshape(-1) for a in inputs]
    outputs = [a.reshape(-1) for a in outputs]  # views: outputs are C-contiguous
    size = outputs[0].size
    errors = np.geterr()  # error handling is per thread; workers follow the caller's

    def run(start, stop):
        results = []
        with np.errstate(**errors):
            for i in range(start, stop, block):
                j = min(i + block, stop)
                blocks = [a[i:j] for a in inputs + outputs]
                results.append(kernel(*blocks))
        return results

    parts = min(_threads(), size >> 17)
    if parts <= 1:
        return run(0, size)
    bounds = [size * k // parts // block * block for k in range(parts)] + [size]
    pool = _executor(os.getpid(), parts - 1)
    futures = [pool.submit(run, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    results = run(bounds[0], bounds[1])
    for future in futures:
        results += future.result()
    return results


def _sigmoid(x):
    """1/(1 + exp(-x)), to rounding error wherever the result is a normal number.

    Where exp(-x) overflows (x < -88.7 in float32, -709.8 in float64) the true value
    is below the smallest normal number and 1/inf = 0 is the right rounding, so the
    overflow is not reported.  float16, whose exp overflows already at x < -11, is
    computed in float32.
    """
    if x.dtype == np.float16:
        return _sigmoid(x.astype(np.float32)).astype(np.float16)
    with np.errstate(over="ignore"):
        e = np.exp(-x)
    e += 1.0
    return 1.0 / e


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
    result = np.full_like(t, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result *= t
        result += c
    return result


def _erf_small(x):
    """erf(x) for |x| <= 1: x * P(2x^2 - 1), fitted by symgrad.approximations."""
    table = (
        0.9654687386698675,
        -0.14053608902271858,
        0.019852496688984072,
        -0.0022854855610828367,
        0.00021751715600404245,
        -1.7537169850003567e-05,
        1.2233828890317266e-06,
        -7.511470175174964e-08,
        4.115583677030161e-09,
        -2.0454454077636733e-10,
        9.285797278855822e-12,
    )
    return x * _horner(2.0 * x * x - 1.0, table)


def _erfc(x):
    """The complementary error function 1 - erf(x), to about 2e-15 relative (float64)
    or 1e-7 (float32), with no branches: for z = |x| >= 0,
    erfc(z) = t * exp(P(2t - 1) - z^2) with t = 2/(2 + z), fitted by
    symgrad.approximations, and erfc(x) = 2 - erfc(z) for x < 0."""
    if x.dtype == np.float64:
        table = (
            -0.6717940840566928,
            0.672643223977663,
            0.047343306841855365,
            -0.04689561023178306,
            -0.009872689362830391,
            0.008824938573411266,
            0.0017589334825018448,
            -0.0023458126922898757,
            -0.00014624607244169538,
            0.0006736800135702656,
            -9.373997451672967e-05,
            -0.00017430752777757475,
            7.142107059899836e-05,
            3.1755469172738424e-05,
            -3.0243182077834392e-05,
            1.2566879829204936e-07,
            8.668435721924567e-06,
            -2.9478391689209566e-06,
            -1.4130940270288206e-06,
            1.2724772482871896e-06,
            -4.0623185073282804e-08,
            -2.851822870051933e-07,
            7.769755450813186e-08,
            2.9035764314457584e-08,
            -1.2904784139758925e-08,
        )
        z = np.minimum(np.abs(x), 26.5)  # erfc(26.5) is near the smallest normal
    else:
        table = (
            -0.6717940851517221,
            0.6726431547745415,
            0.04734341752107453,
            -0.04689364055994189,
            -0.009874534918335263,
            0.008808825369350053,
            0.0017706661187908963,
            -0.0022887652386632193,
            -0.00018278214203318072,
            0.0005737663722033466,
            -3.211377201307163e-05,
            -8.728381032907334e-05,
            1.3371503385448394e-05,
        )
        z = np.minimum(np.abs(x), 9.1)
    t = 2.0 / (2.0 + z)
    # exp(-z^2) = exp(-h^2) exp(-(z - h)(z + h)): h = z to 1/16 has an exact square.
    h = np.round(z * 16.0) / 16.0
    result = t * np.exp(_horner(2.0 * t - 1.0, table) - (z - h) * (z + h))
    result *= np.exp(-h * h)
    # 2 - result where x < 0, without a branch (x < 0 is 1 or 0).
    return result + (x < 0.0) * (2.0 - 2.0 * result)


def _erf(x):
    """The error function, to about 3e-15 (relative) in float64; NaN stays NaN."""
    small = _erf_small(np.clip(x, -1.0, 1.0))
    large = np.copysign(1.0 - _erfc(np.abs(x)), x)
    return np.where(np.abs(x) <= 1.0, small, large)
