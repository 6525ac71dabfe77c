"""NumPy helpers that ``--fast`` generated modules carry with them.

Generated files import only NumPy, so `symgrad.codegen` copies the source of each
helper a module uses into it.  These write into buffers the block kernels hand
them (`symgrad.targets.numpy_kernels`); the polynomial tables are shared with the
readable helpers (`symgrad.targets.numpy_helpers`).  They live here as ordinary functions so they are
tested directly.  Each is stable for every finite input and preserves the dtype
of its argument (constants are Python floats, which NumPy treats as weak).
"""

import threading
from functools import cache

import numpy as np

from .interface_helpers import (  # noqa: F401 (the layers' interface, copied too)
    _check_backward,
    _check_out,
    _float16_in_float32_out,
    _float32_in_float64_out,
)
from .numpy_helpers import (
    _ERF_SMALL,
    _ERFC_F32,
    _ERFC_F64,
    _EXPM1_IS_SIMD,
    _LOG1P_IS_SIMD,
    _erfc_near_zero,
)
from .thread_helpers import _executor, _threads

_BOOL = np.dtype(bool)
#: Below this many elements, and with no out= buffer, a layer runs whole-array
#: NumPy statements (those of the readable layers) instead of its kernels: a
#: kernel call's fixed cost of a few microseconds would dominate there.
_SMALL = 65536
#: Arrays of this many elements or more are split over threads, in blocks;
#: below, a kernel runs once on the whole arrays, which measured faster here
#: than blocks (no per-block dispatch; the arrays fit in the L2 cache).
_PARALLEL = 1 << 18


class _Scratch(threading.local):
    """The calling thread's scratch buffers, kept from call to call: buffers of
    a block's size made anew would be mapped and zeroed by the OS every time.
    Views of them in the shapes asked for are kept too (a few dozen at most)."""

    def __init__(self):
        self.buffers = {}
        self.views = {}

    def take(self, count, shape, dtype):
        """``count`` buffers of this shape and dtype, the same ones every time."""
        if not count:
            return []
        key = (count, shape, dtype)
        views = self.views.get(key)
        if views is not None:
            return views
        size = 1
        for n in shape:
            size *= n
        buffers = self.buffers.get(dtype)
        if buffers is None or len(buffers) < count or len(buffers[0]) < size:
            length = max(size, len(buffers[0]) if buffers else 0)
            kept = max(count, len(buffers) if buffers else 0)
            buffers = [np.empty(length, dtype) for _ in range(kept)]
            self.buffers[dtype] = buffers
            self.views.clear()  # views of the old buffers would keep them alive
        if len(self.views) >= 64:
            self.views.clear()
        views = self.views[key] = [b[:size].reshape(shape) for b in buffers[:count]]
        return views


@cache
def _scratch_store():
    return _Scratch()


def _map_blocks(kernel, inputs, outputs, floats=0, bools=0):
    """Call kernel(*input_blocks, *output_blocks, *scratch) block by block.

    Arrays below `_PARALLEL` elements go to the kernel whole, shape and strides
    included, with no pool, copy or error-state change: the kernel is
    elementwise.  Larger ones are split into one contiguous part per thread
    (NumPy releases the GIL inside its loops; every call takes it back), each
    run in blocks of 512 KiB of each array, so that a kernel's buffers stay in
    the CPU's cache.  Returns the kernel's results in block order, whatever the
    threads, so sums over them are deterministic.
    """
    first = outputs[0]
    size = first.size
    if size < _PARALLEL:
        if not (floats or bools):
            return [kernel(*inputs, *outputs)]
        store = _scratch_store()
        shape = first.shape
        scratch = store.take(floats, shape, first.dtype) if floats else []
        if bools:
            scratch = scratch + store.take(bools, shape, _BOOL)
        return [kernel(*inputs, *outputs, *scratch)]
    block = 524288 // max(a.dtype.itemsize for a in inputs + outputs)
    dtype = first.dtype
    inputs = [a.reshape(-1) for a in inputs]
    outputs = [a.reshape(-1) for a in outputs]  # views: outputs are C-contiguous
    errors = np.geterr()  # error handling is per thread; workers follow the caller

    def run(start, stop):
        n = min(block, stop - start)
        store = _scratch_store()
        scratch = store.take(floats, (n,), dtype) + store.take(bools, (n,), _BOOL)
        results = []
        with np.errstate(**errors):
            for i in range(start, stop, block):
                j = min(i + block, stop)
                buffers = scratch if j - i == n else [b[: j - i] for b in scratch]
                results.append(kernel(*(a[i:j] for a in inputs + outputs), *buffers))
        return results

    parts = min(_threads(), size // _PARALLEL)
    if parts <= 1:
        return run(0, size)
    bounds = [size * k // parts for k in range(parts)] + [size]
    pool = _executor(parts - 1)
    futures = [pool.submit(run, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    results = run(bounds[0], bounds[1])
    for future in futures:
        results += future.result()
    return results


@np.errstate(over="ignore")
def _sigmoid_into(u, out):
    """out = 1/(1 + exp(-u)), to rounding error wherever the result is normal.

    Where exp(-u) overflows (u < -88.7 in float32, -709.8 in float64) the true value
    is below the smallest normal number and 1/inf = 0 is the right rounding, so the
    overflow is not reported.  float16, whose exp overflows already at u < -11, is
    computed in float32.
    """
    if out.dtype == np.float16:
        wide = u.astype(np.float32)
        out[...] = _sigmoid_into(wide, wide)
        return out
    np.negative(u, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.divide(1.0, out, out=out)
    return out


def _clip_into(u, lower=None, upper=None, *, out):
    """u limited to [lower, upper] (None: that side is open); NaN stays NaN.

    Usually no element is outside, and then u itself is returned: checking costs
    two SIMD reductions, a seventh of np.maximum with a scalar (which NumPy does
    not vectorise).  Otherwise the clipped values are written to ``out``.
    """
    if u.size == 0:
        return u
    if (lower is None or u.min() >= lower) and (upper is None or u.max() <= upper):
        return u
    return np.clip(u, lower, upper, out=out)


def _finite_into(u, side=0, *, out):
    """u with -inf (side -1), +inf (side 1) or both (0) replaced by the largest
    finite value of its dtype, so that inf * 0 cannot make NaN."""
    largest = float(np.finfo(u.dtype).max)
    lower = -largest if side <= 0 else None
    return _clip_into(u, lower, largest if side >= 0 else None, out=out)


def _tame_into(u, degree, *, out):
    """u clipped where u**degree still fits its dtype, with a factor 16 to spare."""
    bound = float(np.finfo(u.dtype).max) ** (1.0 / degree) / 16.0
    return _clip_into(u, -bound, bound, out=out)


def _softplus_into(u, out, t1, t2):
    """out = log(1 + exp(u)) without overflow: log1p(exp(-|u|)) + max(u, 0)."""
    np.abs(u, out=t1)
    np.negative(t1, out=t1)
    np.exp(t1, out=t1)
    _log1p_into(t1, out, t2)
    t1.fill(0.0)  # np.maximum of two arrays is vectorised, with a scalar it is not
    np.maximum(u, t1, out=t1)
    out += t1
    return out


def _log1p_into(t, out, t1):
    """out = log(1 + t): np.log1p where NumPy vectorises it, else from np.log,
    corrected for the rounding of 1 + t (as `_log1p_by_log`).  The correction
    is NaN only where log(1 + t) is +-inf or NaN; clamped to [-1, 1] (fmax and
    fmin drop NaN) it leaves that answer alone."""
    if _LOG1P_IS_SIMD:
        return np.log1p(t, out=out)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.add(t, 1.0, out=t1)  # v
        np.subtract(t1, 1.0, out=out)
        out -= t  # (v - 1) - t, the rounding error of v
        out /= t1
        np.fmax(out, -1.0, out=out)
        np.fmin(out, 1.0, out=out)
        np.log(t1, out=t1)
        np.subtract(t1, out, out=out)
    return out


def _expm1_into(z, out, t1):
    """out = exp(z) - 1: np.expm1, except in float32 where NumPy does not
    vectorise it: there (1 + exp(z)) tanh(z/2) (as `_expm1_by_tanh`)."""
    if _EXPM1_IS_SIMD or out.dtype != np.float32:
        return np.expm1(z, out=out)
    np.exp(z, out=out)
    out += 1.0
    np.multiply(z, 0.5, out=t1)
    np.tanh(t1, out=t1)
    out *= t1
    return out


def _horner_into(t, coefficients, out):
    """out = the polynomial with these coefficients (lowest first) at t."""
    out.fill(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        out *= t
        out += c
    return out


def _scaled_into(u, factor, divide=False, *, out):
    """out = factor*u (or u/factor), the argument of a function or comparison,
    its overflow to +-inf unreported: that is its rounding, and the function's
    limit there the true result (see the readable `_scaled`)."""
    with np.errstate(over="ignore"):
        if divide:
            return np.divide(u, factor, out=out)
        return np.multiply(u, factor, out=out)


def _erfc_into(u, out, t1, t2, t3, t4, scale=1.0, square=1.0):
    """out = erfc(scale*u) = 1 - erf(scale*u), within 5 ulps (float64) or 1e-7
    relative (float32; to an ulp below |scale*u| = 1/8, `_erfc_near_zero`), with
    no branches: for z = |scale*u|, erfc(z) = t exp(P(2t - 1) - z^2) with t =
    2/(2 + z), fitted by symgrad.approximations; erfc(-z) = 2 - erfc(z).  square
    is scale**2 exactly, so z^2 = square*(h^2 + (a - h)(a + h)) is computed from
    a = |u| (h = a to 1/16 has an exact square), not from the rounded z."""
    if out.dtype == np.float64:
        table = _ERFC_F64
        largest = 27.3  # erfc is below the smallest float64 from here
    else:
        table = _ERFC_F32
        largest = 10.1  # likewise for float32
    np.abs(u, out=t1)
    a = _clip_into(t1, upper=largest / abs(scale), out=t1)
    np.multiply(a, abs(scale), out=t2)  # z
    t2 += 2.0
    np.divide(2.0, t2, out=t2)  # t
    np.multiply(t2, 2.0, out=t3)
    t3 -= 1.0
    _horner_into(t3, table, out)
    np.multiply(a, 16.0, out=t3)
    np.rint(t3, out=t3)
    t3 *= 0.0625  # h
    np.subtract(a, t3, out=t4)
    np.add(a, t3, out=t1)
    t4 *= t1
    t4 *= square
    out -= t4
    np.exp(out, out=out)
    out *= t2
    np.square(t3, out=t3)
    t3 *= -square
    np.exp(t3, out=t3)
    out *= t3
    # 2 - out where scale*u < 0, without a branch: out + (scale*u < 0) * (2 - 2 out).
    np.multiply(out, -2.0, out=t4)
    t4 += 2.0
    if scale > 0:
        np.less(u, 0.0, out=t1)
    else:
        np.greater(u, 0.0, out=t1)
    t4 *= t1
    out += t4
    _erfc_near_zero(u, out, scale)
    return out


def _erf_into(u, out, t1, t2, t3, t4, t5):
    """out = erf(u), to about 3e-15 (relative) in float64; NaN stays NaN.

    For |u| <= 1, u P(2u^2 - 1) (fitted by symgrad.approximations); beyond,
    sign(u) (1 - erfc(|u|)).
    """
    np.abs(u, out=t5)
    _erfc_into(t5, out, t1, t2, t3, t4)
    np.subtract(1.0, out, out=out)
    np.copysign(out, u, out=out)
    small = _clip_into(u, -1.0, 1.0, out=t1)
    np.square(small, out=t2)
    t2 *= 2.0
    t2 -= 1.0
    _horner_into(t2, _ERF_SMALL, t3)
    t3 *= small
    np.copyto(out, t3, where=t5 <= 1.0)
    return out
