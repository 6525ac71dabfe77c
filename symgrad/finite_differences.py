"""Check a layer's backward against central finite differences.

The check the seed recommends: backpropagation is fast, numeric differentiation
is simple and slow, so use the second to test the first.  For an elementwise
layer, dL/dx_i with L = sum(dout * forward(x)) is dout_i * f'(x_i), and
(f(x + h) - f(x - h)) / 2h approximates f'(x) with error O(h**2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GradcheckResult:
    """How far backward is from the finite-difference gradient."""

    max_abs_error: float
    max_rel_error: float
    worst_x: float
    passed: bool


def gradcheck(
    layer: Any,
    x: Any,
    *,
    dout: Any = None,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    raise_exception: bool = True,
) -> GradcheckResult:
    """Compare ``layer.backward`` with central differences of ``layer.forward`` at x.

    ``layer`` is an instance with ``forward(x)`` and ``backward(dout)``; x is
    used as float64.  Fails (raising AssertionError, unless ``raise_exception``
    is false) where |analytic - numeric| > atol + rtol*|numeric|.
    """
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(0).uniform(0.5, 1.5, x.shape) if dout is None else dout
    dout = np.asarray(dout, dtype=np.float64)
    step = eps * np.maximum(1.0, np.abs(x))
    numeric = (
        (np.asarray(layer.forward(x + step)) - np.asarray(layer.forward(x - step)))
        / (2 * step)
        * dout
    )
    layer.forward(x)
    analytic = np.asarray(layer.backward(dout), dtype=np.float64)
    error = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    passed = bool(np.all(error <= bound))
    worst = int(np.argmax(error - bound)) if error.size else 0
    result = GradcheckResult(
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(
            (error / np.maximum(np.abs(numeric), 1e-300)).max(initial=0.0)
        ),
        worst_x=float(x.reshape(-1)[worst]) if x.size else float("nan"),
        passed=passed,
    )
    if raise_exception and not passed:
        raise AssertionError(
            f"gradcheck failed for {type(layer).__name__}: max abs error "
            f"{result.max_abs_error:.3g} (worst at x = {result.worst_x!r})"
        )
    return result
