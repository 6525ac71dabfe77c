"""Render derivations into one NumPy module with Jinja2.

The math arrives here already printed (`symgrad.printing`); the templates in the
top-level ``templates/`` folder only lay out the file and the class skeleton.
Helpers the printed code calls are copied from `symgrad.runtime`, so the module
imports nothing but NumPy.  Output is deterministic: the same activations give
the same bytes.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import jinja2
import sympy

from . import __version__, runtime
from .catalog import CATALOG, resolve
from .derivation import derive
from .errors import FormulaError
from .kernels import Kernel, emit_kernel
from .loader import templates_root
from .model import MASK, Activation, Derivation, X, Y
from .notation import latex, text
from .plan import kink_values
from .printing import Times
from .rewrite import stabilize
from .sharing import S, Shared, shared_intermediate

MODULE_TEMPLATE = "module.py.j2"
DOUT = sympy.Symbol("dout", real=True)


@dataclass(frozen=True)
class _Storage:
    """How a plan's layer keeps what backward needs, in the generated source."""

    cache: dict[str, str]  # attribute -> the forward local it stores
    loads: tuple[str, ...]  # cached arrays backward reads (attribute = local)
    dtype: str  # source of the gradient's dtype (forward's input dtype)
    allocate: tuple[tuple[str, str], ...] = ()  # arrays forward makes: name, dtype
    forward_outputs: tuple[str, ...] = ("out",)  # arrays forward's kernel fills


_STORAGE = {
    "output": _Storage({"out": "out"}, ("y",), "y.dtype"),
    "input": _Storage({"x": "x"}, ("x",), "x.dtype"),
    "mask": _Storage(
        {"mask": "mask", "dtype": "x.dtype"},
        ("mask",),
        "self.dtype",
        allocate=(("mask", "bool"),),
        forward_outputs=("out", "mask"),
    ),
    "nothing": _Storage({"shape": "x.shape", "dtype": "x.dtype"}, (), "self.dtype"),
}


def _shared_storage(derivative: sympy.Expr) -> _Storage:
    """An input plan that also caches the part both passes share, as ``s``;
    backward reads x or the output y only if the derivative still needs it."""
    cache, loads = {}, []
    if derivative.has(X):
        cache["x"], loads = "x", ["x"]
    if derivative.has(Y):
        cache["out"], loads = "out", ["y"]
    cache["s"] = "s"
    return _Storage(
        cache,
        (*loads, "s"),
        "s.dtype",
        allocate=(("s", "x.dtype"),),
        forward_outputs=("out", "s"),
    )


_ALWAYS_HELPERS = (
    "_as_float_array",
    "_output_array",
    "_check_no_overlap",
    "_check_backward",
    "_map_blocks",
)


@dataclass(frozen=True)
class LayerSource:
    """The printed pieces of one generated class, ready for the template."""

    class_name: str
    docstring: str
    params: tuple[dict[str, str], ...]
    saves: str
    cache: dict[str, str]
    loads: tuple[str, ...]
    cached: str
    dtype: str
    allocate: tuple[tuple[str, str], ...]
    forward_outputs: tuple[str, ...]
    backward_inputs: tuple[str, ...]
    shared: str
    learnable: tuple[str, ...]
    forward_params: tuple[str, ...]
    backward_params: tuple[str, ...]
    forward: Kernel
    backward: Kernel
    comments: tuple[str, ...]
    param_grads: tuple[str, ...]
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
    helper_names = _helper_order(used)
    helpers = [_helper_source(name) for name in helper_names]
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
            imports=_helper_imports(helper_names),
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
    storage = _STORAGE[plan.saves]
    names = {X: "x", Y: "y", MASK: "mask", DOUT: "dout", S: "s"}
    # Learnable parameters are read from self.params into a local of their name.
    names.update(
        {p.symbol: p.name if p.learnable else f"self.{p.name}" for p in act.params}
    )
    arrays = {X, Y, MASK, DOUT, S}
    forward_expr = stabilize(act.expr)
    local_grad = stabilize(plan.local_grad)
    forward_assignments = []
    shared = shared_part(derivation)
    if shared is not None:
        # Forward computes the shared part once, into the cache, and uses it.
        forward_assignments.append(("s", stabilize(shared.part)))
        forward_expr, local_grad = shared.forward, shared.derivative
        storage = _shared_storage(local_grad)
    # The forward pass computes the definition as written (Max stays np.maximum);
    # the mask gets its own statement, not shared with out, so NaN reaches out.
    forward_assignments.append(("out", forward_expr))
    if plan.saves == "mask":
        forward_assignments.insert(0, ("mask", plan.mask))
    forward = emit_kernel(forward_assignments, names, arrays)

    # Backward: parameter gradients (summed per block) first, then dx, in one
    # kernel so they share subexpressions; dx last, as dout may be its buffer.
    backward_assignments = [
        (f"d{name}", stabilize(_chain_rule(derivative)))
        for name, derivative in plan.param_grads
    ]
    backward_assignments.append(("dx", _chain_rule(local_grad)))
    backward = emit_kernel(
        backward_assignments,
        names,
        arrays,
        results=[f"d{name}" for name, _ in plan.param_grads],
    )
    helpers = frozenset(_ALWAYS_HELPERS) | forward.helpers | backward.helpers
    comments = [f"dy/dx = {_gradient_comment(derivation)}"] + [
        f"dy/d{name} = {text(derivative)}" for name, derivative in plan.param_grads
    ]
    return LayerSource(
        class_name=act.class_name,
        docstring=_docstring(derivation),
        params=tuple({"name": p.name, "default": repr(p.value)} for p in act.params),
        saves=plan.saves,
        cache=storage.cache,
        loads=storage.loads,
        cached=(storage.loads or ("shape",))[0],
        dtype=storage.dtype,
        allocate=storage.allocate,
        forward_outputs=storage.forward_outputs,
        backward_inputs=("dout", *storage.loads),
        shared=text(shared.part) if shared is not None else "",
        learnable=tuple(p.name for p in act.learnable),
        forward_params=_mentioned(act.learnable, forward.lines),
        backward_params=_mentioned(act.learnable, backward.lines),
        forward=forward,
        backward=backward,
        comments=tuple(comments),
        param_grads=tuple(name for name, _ in plan.param_grads),
        helpers=helpers,
    )


def _mentioned(params, lines: Sequence[str]) -> tuple[str, ...]:
    """The learnable parameters these source lines use (each kernel reads those)."""
    text = "\n".join(lines)
    return tuple(p.name for p in params if re.search(rf"\b{p.name}\b", text))


def _chain_rule(local_grad: sympy.Expr) -> sympy.Expr:
    """dout times the local gradient: inside each branch of a piecewise one (so a
    select picks dout or dout*g), else as one factor, dout * (g)."""
    if _two_constants_on_mask(local_grad):
        # LeakyReLU's 1 or slope: one factor from the mask, then dout * factor.
        return Times(DOUT, local_grad)
    if isinstance(local_grad, sympy.Piecewise):
        return sympy.piecewise_fold(DOUT * local_grad)
    if local_grad == 1:
        return DOUT
    return Times(DOUT, local_grad)


def _two_constants_on_mask(expr: sympy.Expr) -> bool:
    """Piecewise((a, mask), (b, True)) with a, b numbers or parameters, b != 0."""
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 2:
        return False
    (a, mask), (b, _) = expr.args
    return mask == MASK and b != 0 and not (a.has(X, Y) or b.has(X, Y))


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


def shared_part(derivation: Derivation) -> Shared | None:
    """The part forward caches for backward besides x (`symgrad.sharing`), if any."""
    plan = derivation.plan
    if plan.saves != "input" or plan.param_grads:
        return None
    act = derivation.activation
    return shared_intermediate(
        stabilize(act.expr), stabilize(plan.local_grad), act.values
    )


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
    shared = shared_part(derivation)
    if plan.saves == "input" and shared is not None:
        part = text(shared.part)
        if shared.derivative.has(X):
            return (
                "The derivative is not a function of y, so forward caches ``x``, and "
                f"also ``s = {part}``, which backward would otherwise recompute."
            )
        if shared.derivative.has(Y):
            return (
                f"Backward needs the output and ``s = {part}``, which forward "
                "computes anyway, so forward caches ``out`` and ``s``."
            )
        return (
            f"Backward needs only ``s = {part}``, which forward computes anyway, "
            "so forward caches it."
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
    """The helpers used and those they refer to, in the order `symgrad.runtime`
    defines them (deterministic)."""
    defined = _runtime_definitions()
    unknown = used - set(defined)
    if unknown:
        raise RuntimeError(f"printer used undefined helpers: {sorted(unknown)}")
    needed, pending = set(), list(used)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += [n for n in _names_in(_helper_source(name)) if n in defined]
    return sorted(needed, key=lambda n: defined[n])


@cache
def _runtime_definitions() -> dict[str, int]:
    """Each function and class `symgrad.runtime` defines, with its line number."""
    tree = ast.parse(inspect.getsource(runtime))
    return {
        node.name: node.lineno
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }


def _names_in(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def _helper_imports(helpers: Sequence[str]) -> list[str]:
    """The standard-library imports the helpers need, sorted as ruff sorts them."""
    tree = ast.parse(inspect.getsource(runtime))
    statements: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                statements[alias.asname or alias.name] = ast.unparse(node)
    used = {
        statements[n]
        for name in helpers
        for n in _names_in(_helper_source(name))
        if n in statements
    }
    used.discard("import numpy as np")
    plain = sorted(s for s in used if s.startswith("import "))
    return plain + sorted(s for s in used if s.startswith("from "))


@cache
def _helper_source(name: str) -> str:
    tree = ast.parse(inspect.getsource(runtime))
    lines = inspect.getsource(runtime).splitlines()
    (node,) = [n for n in tree.body if getattr(n, "name", None) == name]
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return "\n".join(lines[start - 1 : node.end_lineno])


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
