"""JAX functions: one ``jax.custom_vjp`` function per activation.

The same `LayerFormulas` as the NumPy layers, printed with ``jax.numpy`` and
JAX's own stable primitives (``jax.nn.sigmoid``, ``jax.nn.softplus``,
``jax.scipy.special.erfc``) by `JaxPrinter`, and laid out by ``templates/jax/``.
The forward rule returns as residuals exactly what the plan saves (output, mask
or input, and any learnable parameter); the backward rule is the derived formula,
itself differentiable, so ``grad`` of ``grad`` works.  Parameters that are not
learned are ``nondiff_argnums``; where one is learnable, a small class holds it
in a ``params`` dict.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from sympy.printing.numpy import NumPyPrinter

from ..functions import sigmoid, softplus
from ..layer import DOUT, LayerFormulas, comment_lines, local_name, snake_name
from ..model import MASK, X, Y
from ..printing import UnprintableError
from ..sharing import S
from .framework_printer import FrameworkPrinter
from .numpy_readable import print_pass

#: NumPy's function name -> jax.numpy's, where they differ or are missing.
_JAX = {"clip": "jnp.clip"}
_NUMPY_NAMES = {
    "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "sign", "sin", "cos",
    "tan", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan", "arcsinh",
    "arccosh", "arctanh", "maximum", "minimum", "where", "clip", "rint",
}  # fmt: skip


class JaxPrinter(FrameworkPrinter):
    """The readable printer in jax.numpy: JAX arrays are immutable, so every
    statement is a plain expression."""

    calls = {
        "erf": "jax.scipy.special.erf",
        "erfc": "jax.scipy.special.erfc",
        "log1p": "jnp.log1p",
        "expm1": "jnp.expm1",
    }
    log_sigmoid = "jax.nn.log_sigmoid"

    in_place = False

    def fn(self, name: str) -> str:
        if name not in _NUMPY_NAMES:
            raise UnprintableError(f"jax.numpy has no function for {name}")
        return _JAX.get(name, f"jnp.{name}")

    def _print_Function(self, expr) -> str:
        arg = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, sigmoid):
            return f"jax.nn.sigmoid({arg})"
        if isinstance(expr, softplus):
            return f"jax.nn.softplus({arg})"
        if type(expr).__name__ in self.calls:  # symgrad's erfc, as SymPy's
            return self._print_framework_call(expr)
        return super()._print_Function(expr)

    def _print(self, expr, **kwargs) -> str:
        # JAX computes functions of parameters too: no float() around them.
        return NumPyPrinter._print(self, expr, **kwargs)


@dataclass(frozen=True)
class JaxLayer:
    """The printed pieces of one JAX function, for the template."""

    name: str  # the public function
    class_name: str
    docstring: str
    note: tuple[str, ...]  # the docstring's paragraph on static parameters, wrapped
    args: tuple[str, ...]  # parameters after x, with defaults: "alpha=1.0"
    arg_names: tuple[str, ...]
    plain: tuple[str, ...]  # parameters that are not differentiated
    nondiff: tuple[int, ...]
    channels: tuple[tuple[str, str], ...]  # (local, parameter) per channel
    forward: tuple[str, ...]
    residuals: tuple[str, ...]
    loads: tuple[str, ...]
    comments: tuple[str, ...]
    backward: tuple[str, ...]
    grads: tuple[str, ...]  # the backward's results: dx, then each learnable's
    holder: tuple[str, ...]  # the learnable-parameter class's __init__ arguments
    holder_params: tuple[str, ...]  # its params dict entries
    helpers: frozenset[str]

    @property
    def defines(self) -> tuple[str, ...]:
        """The module-level names this layer's code defines."""
        private = (f"_{self.name}_{part}" for part in ("vjp", "forward", "backward"))
        holder = (self.class_name,) if self.holder_params else ()
        return (self.name, *private, *holder)


def layer_source(formulas: LayerFormulas) -> JaxLayer:
    """Print one layer as a jax.custom_vjp function."""
    act = formulas.derivation.activation
    learnable = [p for p in act.params if p.learnable]
    locals_ = {p.symbol: p.name for p in act.params}
    channels = []
    for p in learnable:
        if p.channels:
            local = "w" if p.name == "weight" else f"{p.name}_c"
            locals_[p.symbol] = local
            channels.append((local, p.name))
    taken = {p.name for p in act.params} | set(locals_.values())
    taken |= {f"d{name}" for name in formulas.param_grads} | {"jax", "jnp", "saved"}
    forward = print_pass(
        formulas.forward,
        {X: "x", S: "s", **locals_},
        {X, S},
        taken,
        printer_class=JaxPrinter,
    )
    backward = print_pass(
        formulas.backward,
        {DOUT: "dout", **{s: local_name(s) for s, _ in formulas.reads}, **locals_},
        {DOUT, Y, X, S, MASK},
        taken,
        printer_class=JaxPrinter,
    )
    helpers = {"_in_float32"} | forward.helpers | backward.helpers
    if channels:
        helpers.add("_channels")
    if learnable:
        helpers.add("_sum_like")
    plain = [p.name for p in act.params if not p.learnable]
    return JaxLayer(
        name=function_name(act),
        class_name=act.class_name,
        docstring=formulas.docstring,
        note=tuple(_static_note(plain)),
        args=tuple(f"{p.name}={p.value!r}" for p in act.params),
        arg_names=tuple(p.name for p in act.params),
        plain=tuple(plain),
        nondiff=tuple(i + 1 for i, p in enumerate(act.params) if not p.learnable),
        channels=tuple(channels),
        forward=tuple(forward.lines),
        residuals=(*formulas.saved_attributes, *(p.name for p in learnable)),
        loads=(
            *(local_name(s) for s, _ in formulas.reads),
            *(p.name for p in learnable),
        ),
        comments=comment_lines(formulas.comments, indent=4),
        backward=tuple(backward.lines),
        grads=("dx", *(f"_sum_like(d{p.name}, {p.name})" for p in learnable)),
        holder=tuple(_holder_args(learnable)),
        holder_params=tuple(_holder_params(learnable)),
        helpers=frozenset(helpers),
    )


def function_name(act) -> str:
    """The JAX function's name: the activation's, in snake case."""
    return snake_name(act)


def _static_note(plain: list[str]) -> list[str]:
    """Why a parameter that is not learned cannot be a traced value."""
    if not plain:
        return []
    names = " and ".join(f"``{name}``" for name in plain)
    verb = "is a constant" if len(plain) == 1 else "are constants"
    return textwrap.wrap(
        f"{names} {verb} of the rule, not differentiated (``nondiff_argnums``): "
        "pass numbers; under ``jax.jit``, close over them or name them in "
        "``static_argnames``.",
        width=84,
    )


def _holder_args(learnable) -> list[str]:
    args = []
    for p in learnable:
        if p.channels:
            args.append("num_parameters=1")
        args.append(f"{p.init or p.name}={p.value!r}")
    return args


def _holder_params(learnable) -> list[str]:
    entries = []
    for p in learnable:
        value = p.init or p.name
        if p.channels:
            entries.append(f'"{p.name}": jnp.full((num_parameters,), {value})')
        else:
            entries.append(f'"{p.name}": jnp.asarray({value})')
    return entries
