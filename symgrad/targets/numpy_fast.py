"""NumPy layers for large arrays (``--fast``): block kernels, threads, ``out=``.

`layer_source` compiles one layer's `LayerFormulas` into two block kernels
(`symgrad.targets.numpy_kernels`), one per pass, and describes how the class
stores what backward needs.  The template runs each kernel on the whole arrays,
or for large ones over cache-sized blocks on one thread per CPU (`_map_blocks`
in `symgrad.targets.numpy_fast_helpers`).  Below ``_SMALL`` elements, with no
``out=`` buffer, the class runs the readable layer's statements instead
(`symgrad.targets.numpy_readable`, the same formulas printed as whole-array
NumPy): there a kernel call's fixed cost of a few microseconds would make
``--fast`` slower than the default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..layer import DOUT, LayerFormulas, comment_lines, local_name
from ..model import MASK, X, Y
from ..sharing import S
from .numpy_kernels import Kernel, emit_kernel, fitted
from .numpy_readable import DECORATORS, class_tables, print_pass

#: Helpers (and constants) every fast module uses.
ALWAYS = frozenset(
    {
        "_float_array",
        "_check_out",
        "_check_backward",
        "_map_blocks",
        "_SMALL",
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
    small_forward: tuple[str, ...]
    small_backward: tuple[str, ...]
    map_forward: tuple[str, ...]
    map_backward: tuple[str, ...]
    #: The small statements' coefficient tables (`numpy_readable.class_tables`).
    tables: tuple = ()
    #: The class decorator that computes narrow floats in a wider dtype.
    decorator: str = "_float16_in_float32_out"

    @property
    def defines(self) -> tuple[str, ...]:
        """The module-level names this layer's code defines."""
        return (self.class_name,)


def layer_source(formulas: LayerFormulas) -> FastLayer:
    """Compile one layer's passes into block kernels and its storage layout."""
    act = formulas.derivation.activation
    names = {X: "x", Y: "y", MASK: "mask", DOUT: "dout", S: "s"}
    # Learnable parameters are read from self.params into a local of their name.
    names.update(
        {p.symbol: p.name if p.learnable else f"self.{p.name}" for p in act.params}
    )
    arrays = {X, Y, MASK, DOUT, S}
    tables: dict[tuple[float, ...], str] = {}
    forward = emit_kernel(formulas.forward, names, arrays, tables=tables)
    # Parameter gradients (summed per block) first, then dx, in one kernel so they
    # share subexpressions; dx last, as dout may be its buffer.
    backward = emit_kernel(
        formulas.backward,
        names,
        arrays,
        results=[f"d{name}" for name in formulas.param_grads],
        tables=tables,
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
    # The readable statements, for small arrays: parameters as attributes.
    attributes = {p.symbol: f"self.{p.name}" for p in act.params}
    taken = {p.name for p in act.params} | {f"d{n}" for n in formulas.param_grads}
    taken |= set(forward.floats + forward.bools + backward.floats + backward.bools)
    small_forward = print_pass(
        formulas.forward, {**names, **attributes}, {X, S}, taken, 12, tables=tables
    )
    small_backward = print_pass(
        formulas.backward, {**names, **attributes}, arrays, taken, 12, tables=tables
    )
    name = act.class_name
    reads = "".join(f", {local}={local}" for local in ("dout", *loads))
    check_forward = f'_check_out("{name}.forward", out, x.shape, x.dtype, x=x)'
    map_forward = _map_call("", "_forward_block", ["x"], [*forward_outputs], forward)
    map_backward = _map_call(
        "sums = " if formulas.param_grads else "",
        "_backward_block",
        ["dout", *loads],
        ["dx"],
        backward,
    )
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
        comments=comment_lines(formulas.comments, indent=12),
        param_grads=formulas.param_grads,
        decorator=f"{DECORATORS[act.prefer]}_out",
        helpers=ALWAYS
        | {f"{DECORATORS[act.prefer]}_out"}
        | forward.helpers
        | backward.helpers
        | small_forward.helpers
        | small_backward.helpers,
        check_forward=tuple(fitted(check_forward, indent=16)),
        check_backward=tuple(fitted(check_backward, indent=12)),
        map_forward=tuple(fitted(map_forward, indent=12)),
        map_backward=tuple(fitted(map_backward, indent=8)),
        small_forward=tuple(small_forward.lines),
        small_backward=tuple(small_backward.lines),
        tables=class_tables(tables, formulas),
    )


def _map_call(assign: str, method: str, inputs, outputs, kernel: Kernel) -> str:
    """The `_map_blocks` call running one kernel, with its scratch counts."""
    args = [f"self.{method}", f"[{', '.join(inputs)}]", f"[{', '.join(outputs)}]"]
    if kernel.floats:
        args.append(f"floats={len(kernel.floats)}")
    if kernel.bools:
        args.append(f"bools={len(kernel.bools)}")
    return f"{assign}_map_blocks({', '.join(args)})"


def _mentioned(params, lines: Sequence[str]) -> tuple[str, ...]:
    """The learnable parameters these source lines use (each kernel reads those)."""
    text = "\n".join(lines)
    return tuple(p.name for p in params if re.search(rf"\b{p.name}\b", text))
