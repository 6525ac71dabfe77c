"""Every target's layer behind one NumPy-in, NumPy-out interface, for checking.

`symgrad check` and the tests judge every target the same way: they call
``forward(x)`` and then ``backward(dout)`` with NumPy arrays, as on the NumPy
layers, and compare the results with mpmath.  A runner does that for a torch
``nn.Module`` (through autograd) or a JAX function (through ``jax.vjp``, in
64-bit mode so that float64 stays float64), keeping the input's dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class NumpyRunner:
    """A NumPy layer is already the interface: a fresh instance per runner."""

    def __init__(self, layer_class: type, **params: Any) -> None:
        self.layer = layer_class(**params)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.layer.forward(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.layer.backward(dout)


class TorchRunner:
    """A torch Module: forward on a tensor that requires grad, backward by
    ``torch.autograd.grad`` of the output against dout."""

    def __init__(self, module_class: type, **params: Any) -> None:
        self.layer = module_class(**params)

    def forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        self._x = torch.tensor(np.asarray(x), requires_grad=True)
        self._out = self.layer(self._x)
        return self._out.detach().numpy()

    def backward(self, dout: np.ndarray) -> np.ndarray:
        import torch

        dout = torch.tensor(np.asarray(dout), dtype=self._out.dtype)
        (dx,) = torch.autograd.grad(self._out, self._x, dout)
        return dx.numpy()


class JaxRunner:
    """A JAX function: forward by ``jax.vjp``, backward by the vjp it returns."""

    def __init__(self, function: Callable[..., Any], **params: Any) -> None:
        self.function = function
        self.params = params

    def forward(self, x: np.ndarray) -> np.ndarray:
        import jax

        with _x64():
            out, self._vjp = jax.vjp(
                lambda u: self.function(u, **self.params), np.asarray(x)
            )
            return np.asarray(out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        with _x64():
            (dx,) = self._vjp(np.asarray(dout))
            return np.asarray(dx)


@contextlib.contextmanager
def _x64() -> Iterator[None]:
    """JAX's 64-bit mode for a block: float64 arrays stay float64."""
    import jax

    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # JAX before 0.6 has it under experimental
        from jax.experimental import enable_x64 as enable
    with enable(True):
        yield


RUNNERS = {
    "numpy": NumpyRunner,
    "torch": TorchRunner,
    "jax": JaxRunner,
    "numba": NumpyRunner,  # the same class interface as the NumPy layers
}


def runner(target: str, layer: Any, **params: Any) -> Any:
    """A fresh NumPy-interface runner of ``layer`` (what `symgrad.compile` gave
    for ``target``), with the layer's parameters ``params``."""
    return RUNNERS[target](layer, **params)
