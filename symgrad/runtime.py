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
    dout = np.asarray(dout)
    if dout.shape != cached.shape:
        raise ValueError(
            f"{layer}.backward(): dout has shape {dout.shape}, "
            f"but forward's output has shape {cached.shape}"
        )
    return dout


def _sigmoid(x):
    """1/(1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
