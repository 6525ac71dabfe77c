"""PyTorch layers: a ``torch.autograd.Function`` and an ``nn.Module`` per activation.

The same `LayerFormulas` as the NumPy layers, printed with torch's own
primitives by `TorchPrinter` (the readable printer with torch names:
``torch.sigmoid``, ``torch.special.erfc``, ``F.softplus``, ``torch.clamp``) and
laid out by ``templates/torch/``.  The Function's ``forward`` saves exactly what
the plan says (output, mask or input, and any learnable parameter) with
``ctx.save_for_backward``; its ``backward`` is the derived formula.  The Module
takes PyTorch's constructor names and defaults and computes half and bfloat16
in float32.  Nothing in either leaves torch: no NumPy, no ``.item()``, so the
layer runs on any device and under ``torch.compile``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sympy
from sympy.printing.numpy import NumPyPrinter

from ..functions import sigmoid, softplus
from ..layer import DOUT, LayerFormulas, comment_lines, local_name
from ..model import MASK, X, Y
from ..printing import Times, UnprintableError
from ..sharing import S
from .framework_printer import FrameworkPrinter
from .numpy_readable import print_pass

#: NumPy's function name (as the printers ask for it) -> torch's.
_TORCH = {
    "exp": "torch.exp",
    "log": "torch.log",
    "log1p": "torch.log1p",
    "expm1": "torch.expm1",
    "sqrt": "torch.sqrt",
    "square": "torch.square",
    "rint": "torch.round",  # to the nearest, ties to even, as np.rint
    "abs": "torch.abs",
    "sign": "torch.sign",
    "sin": "torch.sin",
    "cos": "torch.cos",
    "tan": "torch.tan",
    "sinh": "torch.sinh",
    "cosh": "torch.cosh",
    "tanh": "torch.tanh",
    "arcsin": "torch.asin",
    "arccos": "torch.acos",
    "arctan": "torch.atan",
    "arcsinh": "torch.asinh",
    "arccosh": "torch.acosh",
    "arctanh": "torch.atanh",
    "maximum": "torch.maximum",
    "minimum": "torch.minimum",
    "where": "torch.where",
    "clip": "torch.clamp",
}
#: softplus(u) without overflow and exact in float64: torch's own, switching to u
#: only where log1p(exp(-u)) is below float64's resolution (u > 36.7).
_SOFTPLUS_THRESHOLD = 40.0


class TorchPrinter(FrameworkPrinter):
    """The readable printer in torch's functions.  ``like`` names the tensor whose
    dtype and device a function of parameters alone is computed in."""

    calls = {
        "erf": "torch.special.erf",
        "erfc": "torch.special.erfc",
        "log1p": "torch.log1p",
        "expm1": "torch.expm1",
    }
    log_sigmoid = "F.logsigmoid"

    like = "x"

    def fn(self, name: str) -> str:
        try:
            return _TORCH[name]
        except KeyError:
            raise UnprintableError(f"PyTorch has no function for {name}") from None

    def _print(self, expr, **kwargs) -> str:
        if (
            isinstance(expr, (sympy.Function, sympy.Max, sympy.Min))
            and not isinstance(expr, Times)
            and expr.free_symbols
            and not self._varies(expr)
        ):
            # A function of parameters alone: on tensors, not Python floats.
            return self._on_tensors(expr)
        return NumPyPrinter._print(self, expr, **kwargs)

    def _on_tensors(self, expr) -> str:
        args = []
        for arg in expr.args:
            if arg.is_number:
                args.append(arg)
                continue
            dummy = sympy.Dummy(real=True)
            self.names[dummy] = f"_const({self._print(arg)}, {self.like})"
            self.arrays.add(dummy)
            args.append(dummy)
        self.helpers.add("_const")
        return self._print(expr.func(*args))

    def _nested(self, func: str, args: Sequence[sympy.Expr]) -> str:
        """torch.maximum of tensors, then torch.clamp against the bounds."""
        tensors = [a for a in args if self._varies(a)]
        bounds = [a for a in args if not self._varies(a)]
        text = self._print(tensors[0])
        for other in tensors[1:]:
            text = f"{func}({text}, {self._print(other)})"
        side = "min" if func == "torch.maximum" else "max"
        for bound in bounds:
            text = f"torch.clamp({text}, {side}={self._print(bound)})"
        return text

    def _print_clip(self, expr) -> str:
        u, lower, upper = expr.args
        if lower == -sympy.oo:
            return f"torch.clamp({self._print(u)}, max={self._print(upper)})"
        if upper == sympy.oo:
            return f"torch.clamp({self._print(u)}, min={self._print(lower)})"
        return super()._print_clip(expr)

    def _print_Function(self, expr) -> str:
        arg = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, sigmoid):
            return f"torch.sigmoid({arg})"
        if isinstance(expr, softplus):
            return f"F.softplus({arg}, threshold={_SOFTPLUS_THRESHOLD})"
        if type(expr).__name__ in self.calls:  # symgrad's erfc, as SymPy's
            return self._print_framework_call(expr)
        return super()._print_Function(expr)


def _printer(like: str) -> type[TorchPrinter]:
    return type("TorchPrinter", (TorchPrinter,), {"like": like})


@dataclass(frozen=True)
class TorchLayer:
    """The printed pieces of one torch Function and Module, for the template."""

    class_name: str
    docstring: str
    init: tuple[str, ...]  # the Module's constructor parameters, "name=default"
    attributes: tuple[str, ...]  # the Module's __init__ lines after super()
    args: tuple[str, ...]  # what the Function takes after x, in order
    channels: tuple[tuple[str, str], ...]  # (local, parameter) broadcast per channel
    forward: tuple[str, ...]
    saved: tuple[str, ...]  # forward's tensors that backward reads, in order
    loads: tuple[str, ...]  # backward's names for them
    plain: tuple[str, ...]  # parameters that are numbers, kept on ctx
    plain_loads: tuple[str, ...]  # those backward uses
    comments: tuple[str, ...]
    backward: tuple[str, ...]
    grads: tuple[str, ...]  # backward's return values after dx
    extra_repr: str
    helpers: frozenset[str]
    uses_functional: bool  # F.softplus and the like: the module imports F
    #: backward reads a part forward computed outside autograd, so grad of grad
    #: would take it for a constant: the Function refuses double backward.
    once_differentiable: bool

    @property
    def defines(self) -> tuple[str, ...]:
        """The module-level names this layer's code defines."""
        return (f"{self.class_name}Function", self.class_name)


def layer_source(formulas: LayerFormulas) -> TorchLayer:
    """Print one layer as a torch.autograd.Function and an nn.Module."""
    act = formulas.derivation.activation
    learnable = [p for p in act.params if p.learnable]
    plain = [p for p in act.params if not p.learnable]
    locals_ = {p.symbol: p.name for p in act.params}
    channels = []
    for p in learnable:
        if p.channels:
            local = "w" if p.name == "weight" else f"{p.name}_c"
            locals_[p.symbol] = local
            channels.append((local, p.name))
    taken = {p.name for p in act.params} | set(locals_.values())
    taken |= {f"d{name}" for name in formulas.param_grads} | {"ctx", "torch", "F"}

    forward = print_pass(
        formulas.forward,
        {X: "x", S: "s", **locals_},
        {X, S},
        taken,
        printer_class=_printer("x"),
    )
    forward_lines = list(forward.lines)
    if forward_lines == ["out = x"]:
        forward_lines = ["out = x.clone()"]  # a Function returns a new tensor
    backward = print_pass(
        formulas.backward,
        {DOUT: "dout", **{s: local_name(s) for s, _ in formulas.reads}, **locals_},
        {DOUT, Y, X, S, MASK},
        taken,
        printer_class=_printer("dout"),
    )
    body = "\n".join(backward.lines)
    helpers = {"_in_float32"} | forward.helpers | backward.helpers
    if learnable:
        helpers.add("_channel_sum")
    if channels:
        helpers.add("_channels")
    return TorchLayer(
        class_name=act.class_name,
        docstring=formulas.docstring,
        init=tuple(_init_params(act)),
        attributes=tuple(_attributes(act)),
        args=tuple(p.name for p in act.params),
        channels=tuple(channels),
        forward=tuple(forward_lines),
        saved=(*formulas.saved_attributes, *(p.name for p in learnable)),
        loads=(
            *(local_name(s) for s, _ in formulas.reads),
            *(p.name for p in learnable),
        ),
        plain=tuple(p.name for p in plain),
        plain_loads=tuple(p.name for p in plain if re.search(rf"\b{p.name}\b", body)),
        comments=comment_lines(formulas.comments, indent=8),
        backward=tuple(backward.lines),
        grads=tuple(
            f"_channel_sum(d{p.name}, {p.name})" if p.learnable else "None"
            for p in act.params
        ),
        extra_repr=", ".join(f"{p.name}={{self.{p.name}}}" for p in plain),
        helpers=frozenset(helpers),
        uses_functional="F." in "\n".join([*forward_lines, body]),
        once_differentiable=any(symbol == S for symbol, _ in formulas.reads),
    )


def _init_params(act) -> list[str]:
    """The Module's constructor parameters, with PyTorch's names and defaults."""
    params = []
    for p in act.params:
        if p.channels:
            params.append("num_parameters=1")
        params.append(f"{p.init or p.name}={p.value!r}")
    if any(p.learnable for p in act.params):  # torch.nn's factory arguments
        params += ["device=None", "dtype=None"]
    return params


def _attributes(act) -> list[str]:
    """The Module's __init__ body: numbers as attributes, learnable parameters as
    nn.Parameter (one per channel where the parameter has channels)."""
    lines = []
    for p in act.params:
        value = p.init or p.name
        if not p.learnable:
            lines.append(f"self.{p.name} = {value}")
            continue
        if p.channels:
            lines.append("self.num_parameters = num_parameters")
            tensor = f"torch.full((num_parameters,), float({value}), "
        else:
            tensor = f"torch.tensor(float({value}), "
        # One line each: symgrad.layout splits the long ones as ruff would.
        lines.append(
            f"self.{p.name} = torch.nn.Parameter({tensor}device=device, dtype=dtype))"
        )
    return lines
