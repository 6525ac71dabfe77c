"""PyTorch helpers that generated torch modules carry with them.

Like the NumPy helpers (`symgrad.targets.numpy_helpers`), these are copied into
the generated file, which imports only torch.  Everything else the printed code
calls is torch's own: ``torch.sigmoid``, ``torch.special.erfc``,
``F.softplus``, ``torch.log1p`` (vectorised on every CPU, through SLEEF).
"""

import torch


def _in_float32(function, x, *args):
    """``function.apply(x, *args)``, with half and bfloat16 computed in float32 and
    returned in their own dtype (their exp overflows, and rounds, too soon)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return function.apply(x.float(), *args).to(x.dtype)
    return function.apply(x, *args)


def _const(value, like):
    """A parameter (a Python number or a tensor) as a tensor like ``like``, so that
    a function of parameters alone is computed by torch, on its device."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _channels(weight, x):
    """``weight`` broadcast over x's dimension 1, one value per channel, as
    torch.nn.PReLU does; a single value applies everywhere."""
    if weight.numel() == 1 or x.dim() < 2:
        return weight.reshape(())
    return weight.reshape([1, -1] + [1] * (x.dim() - 2))


def _channel_sum(grad, weight):
    """The gradient of a parameter broadcast by `_channels`: summed over every
    dimension but the channels', in the parameter's shape and dtype."""
    if weight.numel() == 1 or grad.dim() < 2:
        return grad.sum().reshape(weight.shape).to(weight.dtype)
    dims = [d for d in range(grad.dim()) if d != 1]
    return grad.sum(dim=dims).reshape(weight.shape).to(weight.dtype)


def _finite(u, side=0):
    """u with -inf (side -1), +inf (side 1) or both (0) replaced by the largest
    finite value of its dtype, so that inf * 0 cannot make NaN."""
    largest = torch.finfo(u.dtype).max
    return torch.clamp(
        u, min=-largest if side <= 0 else None, max=largest if side >= 0 else None
    )


def _tame(u, degree):
    """u clipped where u**degree still fits its dtype, with a factor 16 to spare."""
    bound = torch.finfo(u.dtype).max ** (1.0 / degree) / 16.0
    return torch.clamp(u, -bound, bound)
