"""Render derivations into one NumPy module with Jinja2.

The math arrives here already printed (`symgrad.printing`); the templates in the
top-level ``templates/`` folder only lay out the file and the class skeleton.
Helpers the printed code calls are copied from `symgrad.runtime`, so the module
imports nothing but NumPy.  Output is deterministic: the same activations give
the same bytes.
"""

from __future__ import annotations

import importlib.resources
import inspect
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
import sympy

from . import __version__, runtime
from .catalog import CATALOG, resolve
from .derive import derive
from .errors import FormulaError
from .model import MASK, Activation, Derivation, X, Y
from .notation import latex, text
from .plan import kink_values
from .printing import Times, print_assignments
from .rewrite import stabilize

MODULE_TEMPLATE = "module.py.j2"
DOUT = sympy.Symbol("dout", real=True)

# What each plan caches: attribute name, and the value forward stores in it.
_CACHE = {
    "output": ("out", "out"),
    "input": ("x", "x"),
    "mask": ("mask", "mask"),
    "nothing": ("shape", "out.shape"),
}
_ALWAYS_HELPERS = ("_as_float_array", "_check_backward")


@dataclass(frozen=True)
class LayerSource:
    """The printed pieces of one generated class, ready for the template."""

    class_name: str
    docstring: str
    params: tuple[dict[str, str], ...]
    cache: str
    cache_value: str
    learnable: tuple[str, ...]
    forward: tuple[str, ...]
    backward: tuple[str, ...]
    comment: str
    param_grads: tuple[dict[str, object], ...]
    helpers: frozenset[str]


def generate(
    acts: Activation | str | Iterable[Activation | str],
    *,
    command: str | None = None,
) -> str:
    """The source of one module with a layer class per activation.

    ``command`` is the shell command recorded in the header as the way to
    regenerate the file; by default, ``symgrad generate`` with the activations.
    """
    if isinstance(acts, (Activation, str)):
        acts = [acts]
    activations = [resolve(a) for a in acts]
    if not activations:
        raise ValueError("generate needs at least one activation")
    _check_unique_class_names(activations)
    layers = [_layer_source_or_error(derive(a)) for a in activations]
    used = set().union(*(layer.helpers for layer in layers))
    helpers = [_helper_source(name) for name in _helper_order(used)]
    if command is None:
        command = "symgrad generate " + " ".join(cli_spec(a) for a in activations)
    names = ", ".join(a.name for a in activations)
    source = (
        _environment()
        .get_template(MODULE_TEMPLATE)
        .render(
            version=__version__,
            template=f"templates/{MODULE_TEMPLATE}",
            command=command,
            docstring=f"NumPy layers for {names}, with forward and backward.",
            helpers=helpers,
            layers=layers,
        )
    )
    return source.rstrip("\n") + "\n"


def _layer_source_or_error(derivation: Derivation) -> LayerSource:
    """`layer_source`, with SymPy's failures on an odd formula reported as such."""
    try:
        return layer_source(derivation)
    except FormulaError:
        raise
    except (TypeError, ValueError, NotImplementedError, ZeroDivisionError) as error:
        name = derivation.activation.name
        raise FormulaError(f"cannot generate a layer for {name!r}: {error}") from None


def cli_spec(act: Activation) -> str:
    """How the command line names this activation: ``elu`` or ``elu:alpha=0.5``."""
    default = CATALOG.get(act.name)
    changed = [
        f"{p.name}={p.value!r}"
        for p in act.params
        if default is None or default.param(p.name).value != p.value
    ]
    learned = [
        p.name
        for p in act.learnable
        if default is None or not default.param(p.name).learnable
    ]
    if learned:
        changed.append("learnable=" + "+".join(learned))
    return act.name + (":" + ",".join(changed) if changed else "")


def layer_source(derivation: Derivation) -> LayerSource:
    """Print one derivation's forward and backward into template-ready pieces."""
    act, plan = derivation.activation, derivation.plan
    names = {X: "x", Y: "out", MASK: "mask", DOUT: "dout"}
    # Learnable parameters are read from self.params into a local of their name.
    names.update(
        {p.symbol: p.name if p.learnable else f"self.{p.name}" for p in act.params}
    )
    cache, cache_value = _CACHE[plan.saves]

    # The forward pass prints the definition as written (Max stays np.maximum);
    # the mask gets its own line, not shared with out, so NaN still reaches out.
    forward, forward_printer = print_assignments([("out", stabilize(act.expr))], names)
    if plan.saves == "mask":
        mask_lines, _ = print_assignments([("mask", plan.mask)], names)
        forward = mask_lines + forward

    gradient = _chain_rule(stabilize(plan.local_grad))
    backward, backward_printer = print_assignments(
        [("dx", gradient)], names, temporaries=(f"g{i}" for i in range(10_000))
    )
    helpers = (
        frozenset(_ALWAYS_HELPERS) | forward_printer.helpers | backward_printer.helpers
    )
    param_grads = []
    for name, derivative in plan.param_grads:
        expression = stabilize(_chain_rule(derivative))
        lines, printer = print_assignments(
            [(f"d{name}", expression)],
            names,
            temporaries=(f"p{i}" for i in range(10_000)),
        )
        helpers |= printer.helpers
        param_grads.append(
            {
                "name": name,
                "comment": f"dy/d{name} = {text(derivative)}",
                "lines": lines,
            }
        )
    return LayerSource(
        class_name=act.class_name,
        docstring=_docstring(derivation),
        params=tuple({"name": p.name, "default": repr(p.value)} for p in act.params),
        cache=cache,
        cache_value=cache_value,
        learnable=tuple(p.name for p in act.learnable),
        forward=tuple(forward),
        backward=tuple(backward),
        comment=f"dy/dx = {_gradient_comment(derivation)}",
        param_grads=tuple(param_grads),
        helpers=helpers,
    )


def _chain_rule(local_grad: sympy.Expr) -> sympy.Expr:
    """dout times the local gradient: inside each branch of a piecewise one (so a
    select picks dout or dout*g), else as one factor, dout * (g)."""
    if isinstance(local_grad, sympy.Piecewise):
        return sympy.piecewise_fold(DOUT * local_grad)
    if local_grad == 1:
        return DOUT
    return Times(DOUT, local_grad)


def _gradient_comment(derivation: Derivation) -> str:
    plan = derivation.plan
    if plan.saves == "mask":
        return f"{text(plan.local_grad)}, with mask = {text(plan.mask)}"
    return text(plan.local_grad)


def _docstring(derivation: Derivation) -> str:
    act, plan = derivation.activation, derivation.plan
    y_eq = f"y = {text(derivation.forward)}"
    dy_eq = f"dy/dx = {text(derivation.derivative)}"
    lines = [act.summary or f"{act.class_name} activation.", "", y_eq, dy_eq]
    if derivation.output_form is not None and plan.saves == "output":
        lines.append(f"      = {text(derivation.output_form)}  (in the output y)")
    lines.append("")
    prose = [_caching_sentence(derivation)]
    for point, value in kink_values(derivation.derivative, act.values):
        prose.append(
            f"At x = {text(point)}, dy/dx = {text(value)}: the branch that holds "
            "there decides, as in PyTorch."
        )
    lines += textwrap.wrap(" ".join(prose), width=80, break_on_hyphens=False)
    lines += ["", ".. math::", ""]
    lines.append(f"    y = {latex(derivation.forward)}")
    lines.append("")
    final = derivation.output_form if plan.saves == "output" else derivation.derivative
    lines.append(rf"    \frac{{dy}}{{dx}} = {latex(final)}")
    return "\n".join(lines)


def _caching_sentence(derivation: Derivation) -> str:
    plan = derivation.plan
    if plan.saves == "output":
        return "Backward needs only the output, so forward caches ``out``."
    if plan.saves == "mask":
        return f"Forward caches the boolean ``mask = {text(plan.mask)}``; backward selects."
    if plan.saves == "input" and plan.param_grads:
        learned = ", ".join(name for name, _ in plan.param_grads)
        return (
            f"Learnable: {learned} (in self.params; backward puts its gradient, "
            "summed over all elements, in self.grads), so forward caches ``x``."
        )
    if plan.saves == "input":
        return "The derivative is not a function of y, so forward caches ``x``."
    return "The derivative is constant, so forward caches only the shape."


def _check_unique_class_names(activations: Sequence[Activation]) -> None:
    seen: dict[str, str] = {}
    for act in activations:
        if act.class_name in seen:
            raise ValueError(
                f"class name {act.class_name!r} is used twice "
                f"({seen[act.class_name]!r} and {act.name!r}); one module needs "
                "distinct layer names"
            )
        seen[act.class_name] = act.name


def _helper_order(used: set[str]) -> list[str]:
    """The helpers used and those they call, in the order `symgrad.runtime` defines
    them (deterministic)."""
    defined = {
        name: func
        for name, func in inspect.getmembers(runtime, inspect.isfunction)
        if func.__module__ == runtime.__name__
    }
    unknown = used - set(defined)
    if unknown:
        raise RuntimeError(f"printer used undefined helpers: {sorted(unknown)}")
    needed, pending = set(), list(used)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += [n for n in defined[name].__code__.co_names if n in defined]
    order = sorted(needed, key=lambda n: inspect.getsourcelines(defined[n])[1])
    return order


@cache
def _helper_source(name: str) -> str:
    return inspect.getsource(getattr(runtime, name)).rstrip("\n")


def templates_root() -> Path | importlib.resources.abc.Traversable:
    """The templates folder: inside the installed package, or the checkout's top level."""
    packaged = importlib.resources.files("symgrad") / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    root = templates_root()

    def load(name: str) -> tuple[str, str, None]:
        path = root / name
        if not path.is_file():
            raise jinja2.TemplateNotFound(name)
        return path.read_text(encoding="utf-8"), str(path), None

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
