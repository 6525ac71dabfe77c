"""NumPy layers for large arrays (``--fast``): block kernels, threads, ``out=``.

`layer_source` compiles one layer's `LayerFormulas` into two block kernels
(`symgrad.targets.numpy_kernels`), one per pass, and describes how the class
stores what backward needs.  The template runs each kernel over cache-sized
blocks of the arrays, on one thread per CPU for large arrays, and directly, with
no pool, for arrays of one block (`_map_blocks` in
`symgrad.targets.numpy_fast_helpers`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..layer import DOUT, LayerFormulas, local_name
from ..model import MASK, X, Y
from ..sharing import S
from .numpy_kernels import Kernel, emit_kernel, fitted

#: Helpers every fast module uses.
ALWAYS = frozenset(
    {
        "_as_float_array",
        "_check_out",
        "_check_backward",
        "_map_blocks",
    }
)


@dataclass(frozen=True)
class FastLayer:
    """The printed pieces of one ``--fast`` class, ready for the template."""

    class_name: str
    docstring: str
    params: tuple[dict[str, str], ...]
    cache: dict[str, str]
    loads: tuple[str, ...]
    cached: str
    dtype: str
    allocate: tuple[tuple[str, str], ...]
    forward_outputs: tuple[str, ...]
    backward_inputs: tuple[str, ...]
    learnable: tuple[str, ...]
    forward_params: tuple[str, ...]
    backward_params: tuple[str, ...]
    forward: Kernel
    backward: Kernel
    comments: tuple[str, ...]
    param_grads: tuple[str, ...]
    helpers: frozenset[str]
    check_forward: tuple[str, ...]
    check_backward: tuple[str, ...]


def layer_source(formulas: LayerFormulas) -> FastLayer:
    """Compile one layer's passes into block kernels and its storage layout."""
    act = formulas.derivation.activation
    names = {X: "x", Y: "y", MASK: "mask", DOUT: "dout", S: "s"}
    # Learnable parameters are read from self.params into a local of their name.
    names.update(
        {p.symbol: p.name if p.learnable else f"self.{p.name}" for p in act.params}
    )
    arrays = {X, Y, MASK, DOUT, S}
    forward = emit_kernel(formulas.forward, names, arrays)
    # Parameter gradients (summed per block) first, then dx, in one kernel so they
    # share subexpressions; dx last, as dout may be its buffer.
    backward = emit_kernel(
        formulas.backward,
        names,
        arrays,
        results=[f"d{name}" for name in formulas.param_grads],
    )

    forward_outputs = ["out"] + [name for name, _ in formulas.forward if name != "out"]
    cache = {attribute: attribute for attribute in formulas.saved_attributes}
    loads = tuple(local_name(symbol) for symbol, _ in formulas.reads)
    allocate = tuple(
        (name, "bool" if name == "mask" else "x.dtype")
        for name in forward_outputs
        if name != "out"
    )
    if formulas.saves in ("mask", "nothing"):
        # A mask or a shape does not say the gradient's dtype: keep it.
        cache["dtype"] = "x.dtype"
    if not loads:
        cache["shape"] = "x.shape"
    dtype = "self.dtype" if "dtype" in cache else f"{loads[0]}.dtype"
    name = act.class_name
    reads = "".join(f", {local}={local}" for local in ("dout", *loads))
    check_forward = f'_check_out("{name}.forward", out, x.shape, x.dtype, x=x)'
    check_backward = (
        f'dx = _check_out("{name}.backward", out, dout.shape, {dtype}{reads})'
    )
    return FastLayer(
        class_name=act.class_name,
        docstring=formulas.docstring,
        params=tuple({"name": p.name, "default": repr(p.value)} for p in act.params),
        cache=cache,
        loads=loads,
        cached=(loads or ("shape",))[0],
        dtype=dtype,
        allocate=allocate,
        forward_outputs=tuple(forward_outputs),
        backward_inputs=("dout", *loads),
        learnable=tuple(p.name for p in act.learnable),
        forward_params=_mentioned(act.learnable, forward.lines),
        backward_params=_mentioned(act.learnable, backward.lines),
        forward=forward,
        backward=backward,
        comments=formulas.comments,
        param_grads=formulas.param_grads,
        helpers=ALWAYS | forward.helpers | backward.helpers,
        check_forward=tuple(fitted(check_forward, indent=12)),
        check_backward=tuple(fitted(check_backward, indent=12)),
    )


def _mentioned(params, lines: Sequence[str]) -> tuple[str, ...]:
    """The learnable parameters these source lines use (each kernel reads those)."""
    text = "\n".join(lines)
    return tuple(p.name for p in params if re.search(rf"\b{p.name}\b", text))
