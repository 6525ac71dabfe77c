"""The array interface the NumPy and numba layers share: what they accept, the
dtype they compute in, and the checks on ``dout`` and ``out``.

Generated files carry these functions (`symgrad.helper_sources` copies them
from here, through the target's helper modules, which import them).
"""

import numpy as np


def _float_array(x):
    """x as an array of float16, float32 or float64 (kept as it is); integers
    and booleans become float64.  Other dtypes (long double, whose constants
    these layers do not carry; complex; objects) are refused."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype.itemsize <= 8:
        return x
    if x.dtype.kind not in "biu":
        raise TypeError(
            f"expected float16, float32 or float64 numbers (or integers), got an "
            f"array of dtype {x.dtype}; convert it with .astype(np.float64)"
        )
    return x.astype(np.float64)


_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)


def _float16_in_float32(layer):
    """A class decorator: float16 in, float16 out, computed in float32 and
    rounded once.  In half precision every operation would round to 11 bits
    (ELU's slope came out 2,000 ulps off); the cache keeps float32, and
    backward after a float16 forward rounds its result the same way.  Other
    inputs pass straight through (a check of the dtype, no copy)."""
    return _computed_wider(layer, {_FLOAT16: np.dtype(np.float32)})


def _float32_in_float64(layer):
    """prefer='accuracy''s class decorator: float32 computed in float64 and
    rounded once (float16 in float32, as always).  NumPy's float32 functions
    carry 1-2.5 ulps each, and a slope that adds several of them loses more
    (Mish's, 5 ulps at x = -5.7); in float64 the same steps are within an ulp
    of float32 after rounding.  The cache keeps float64: twice the memory."""
    wider = {_FLOAT16: np.dtype(np.float32), _FLOAT32: np.dtype(np.float64)}
    return _computed_wider(layer, wider)


def _computed_wider(layer, wider):
    """Wrap ``layer``'s forward and backward so that an array of a dtype in
    ``wider`` is computed in the dtype it maps to and the result rounded back
    once; backward follows the dtype its forward was given."""
    forward, backward = layer.forward, layer.backward
    layer._given = None  # the dtype forward was given, when it computed wider

    def forward_wider(self, x):
        dtype = getattr(x, "dtype", None)
        wide = wider.get(dtype)
        if wide is None:
            self._given = None
            return forward(self, x)
        self._given = dtype
        return _rounded(forward(self, x.astype(wide)), dtype)

    def backward_wider(self, dout):
        given = self._given
        if given is None:
            return backward(self, dout)
        return _rounded(backward(self, np.asarray(dout, wider[given])), given)

    forward_wider.__doc__ = forward.__doc__
    backward_wider.__doc__ = backward.__doc__
    layer.forward, layer.backward = forward_wider, backward_wider
    return layer


def _rounded(result, dtype):
    """result rounded to the narrower ``dtype``: a value beyond its range
    becomes +-inf, the rounding of a true result that is not finite there, so
    that overflow is not reported."""
    with np.errstate(over="ignore"):
        return result.astype(dtype)


def _check_dout(layer, dout, saved):
    """dout as an array backward can use, or an error that says what is wrong:
    no forward before it, or a shape other than forward's output's (which NumPy
    would otherwise broadcast silently).  Its dtype follows `_dout_dtype`."""
    if saved is None or getattr(dout, "shape", None) != getattr(saved, "shape", saved):
        _refuse_dout(layer, dout, saved)
    kept = getattr(saved, "dtype", None)
    if type(dout) is np.ndarray:  # the usual cases, checked cheaply
        dtype = dout.dtype
        if kept is not None and kept.kind == "f":
            if dtype is kept:
                return dout
        elif dtype.kind == "f" and dtype.itemsize <= 8:
            return dout
    return _dout_dtype(layer, np.asarray(dout), kept)


def _dout_dtype(layer, dout, kept):
    """One rule for every layer: dout is taken as forward takes x (integers and
    booleans become float64), then cast to the dtype of the float array the
    layer kept, so dx has the layer's dtype (a float64 dout into a float32
    layer gives float32, as PyTorch requires of a gradient).  A layer that kept
    only a mask or a shape gives dx in dout's dtype."""
    if kept is not None and kept.kind == "f":
        return dout if dout.dtype == kept else _float_array(dout).astype(kept)
    return _float_array(dout)


def _refuse_dout(layer, dout, saved):
    """`_check_dout`'s slow path: a Python number or list as dout is fine if
    its shape is right; anything else is an error that says what is wrong."""
    if saved is None:
        raise RuntimeError(f"{layer}.backward() called before forward()")
    shape = saved if isinstance(saved, tuple) else np.shape(saved)
    if np.shape(dout) != shape:
        raise ValueError(
            f"{layer}.backward(): dout has shape {np.shape(dout)}, "
            f"but forward's output has shape {shape}"
        )


def _check_out(name, out, shape, dtype, **reads):
    """``out``, after checking that it can hold the result and shares no memory
    with ``reads``, the arrays the call still reads or the layer keeps for
    backward (blocks are written before all are read)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: out must be a NumPy array, not {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"{name}: out has shape {out.shape} and dtype {out.dtype}, "
            f"but the result has shape {shape} and dtype {dtype}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"{name}: out must be a writeable, C-contiguous array")
    for label, array in reads.items():
        if np.may_share_memory(out, array):
            raise ValueError(f"{name}: out shares memory with {label}")
    return out


def _float16_in_float32_out(layer):
    """The fast layers' `_float16_in_float32`: float16 computed in float32 and
    rounded once, into ``out`` where one is given (checked as the layer would)."""
    return _computed_wider_out(layer, {_FLOAT16: np.dtype(np.float32)})


def _float32_in_float64_out(layer):
    """The fast layers' `_float32_in_float64` (prefer='accuracy'): float32
    computed in float64 and float16 in float32, each rounded once."""
    wider = {_FLOAT16: np.dtype(np.float32), _FLOAT32: np.dtype(np.float64)}
    return _computed_wider_out(layer, wider)


def _computed_wider_out(layer, wider):
    """`_computed_wider` for layers whose forward and backward take ``out``."""
    forward, backward = layer.forward, layer.backward
    name = layer.__name__
    layer._given = None  # the dtype forward was given, when it computed wider

    def forward_wider(self, x, out=None):
        dtype = getattr(x, "dtype", None)
        wide = wider.get(dtype)
        if wide is None:
            self._given = None
            return forward(self, x, out)
        self._given = dtype
        result = forward(self, x.astype(wide))
        return _rounded_into(result, out, dtype, f"{name}.forward")

    def backward_wider(self, dout, out=None):
        given = self._given
        if given is None:
            return backward(self, dout, out)
        dx = backward(self, np.asarray(dout, wider[given]))
        return _rounded_into(dx, out, given, f"{name}.backward")

    forward_wider.__doc__ = forward.__doc__
    backward_wider.__doc__ = backward.__doc__
    layer.forward, layer.backward = forward_wider, backward_wider
    return layer


def _rounded_into(result, out, dtype, name):
    """result rounded to ``dtype``, into ``out`` if given."""
    if out is None:
        return _rounded(result, dtype)
    _check_out(name, out, result.shape, dtype)
    with np.errstate(over="ignore"):  # as in `_rounded`
        np.copyto(out, result, casting="same_kind")
    return out


def _check_backward(layer, cached, dout):
    """Return dout as an array shaped like forward's output, or say what is wrong."""
    if cached is None:
        raise RuntimeError(f"{layer}.backward() called before forward()")
    shape = cached if isinstance(cached, tuple) else cached.shape
    kept = getattr(cached, "dtype", None)
    usual = type(dout) is np.ndarray and dout.dtype is kept and kept.kind == "f"
    if usual and dout.shape == shape:
        return dout  # an array of the layer's own float dtype
    dout = np.asarray(dout)
    if dout.shape != shape:
        raise ValueError(
            f"{layer}.backward(): dout has shape {dout.shape}, "
            f"but forward's output has shape {shape}"
        )
    return _dout_dtype(layer, dout, getattr(cached, "dtype", None))
