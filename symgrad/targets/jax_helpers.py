"""JAX helpers that generated JAX modules carry with them.

Copied into the generated file, which imports only JAX.  Everything else the
printed code calls is JAX's own: ``jax.nn.sigmoid``, ``jax.nn.softplus``,
``jax.scipy.special.erfc``, ``jnp.log1p``.
"""

import jax.numpy as jnp


def _in_float32(function, x, *args):
    """``function(x, *args)``, with half and bfloat16 computed in float32 and
    returned in their own dtype (their exp overflows, and rounds, too soon)."""
    x = jnp.asarray(x)
    if x.dtype in (jnp.float16, jnp.bfloat16):
        return function(x.astype(jnp.float32), *args).astype(x.dtype)
    return function(x, *args)


def _finite(u, side=0):
    """u with -inf (side -1), +inf (side 1) or both (0) replaced by the largest
    finite value of its dtype, so that inf * 0 cannot make NaN."""
    largest = jnp.finfo(u.dtype).max
    return jnp.clip(u, -largest if side <= 0 else None, largest if side >= 0 else None)


def _tame(u, degree):
    """u clipped where u**degree still fits its dtype, with a factor 16 to spare."""
    bound = float(jnp.finfo(u.dtype).max) ** (1.0 / degree) / 16.0
    return jnp.clip(u, -bound, bound)


def _sum_like(grad, param):
    """The gradient of a parameter the elements share: summed to its shape (one
    value, or one per channel of dimension 1), in its dtype."""
    param = jnp.asarray(param)
    if param.size == 1 or grad.ndim < 2:
        return jnp.sum(grad).reshape(param.shape).astype(param.dtype)
    axes = tuple(d for d in range(grad.ndim) if d != 1)
    return jnp.sum(grad, axis=axes).reshape(param.shape).astype(param.dtype)


def _channels(param, x):
    """A parameter broadcast over x's dimension 1, one value per channel; a single
    value applies everywhere."""
    param = jnp.asarray(param)
    if param.size == 1 or x.ndim < 2:
        return param.reshape(())
    return param.reshape((1, -1) + (1,) * (x.ndim - 2))
