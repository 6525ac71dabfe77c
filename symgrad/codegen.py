"""Render derivations into one module of layer classes with Jinja2.

The math arrives here already printed by a target (`symgrad.targets`: the
readable NumPy layers by default, block kernels with ``fast=True``); the
templates in the top-level ``templates/<target>/`` folder only lay out the file
and the class skeleton.  Helpers the printed code calls are copied from the
target's helper module (`symgrad.helper_sources`), so the module imports
nothing but NumPy.  Output is deterministic: the same activations give the same
bytes.
"""

from __future__ import annotations

import io
import keyword
import sys
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cache, lru_cache
from typing import Any

import jinja2

from . import __version__, text
from .budgets import for_activation, stage
from .catalog import CATALOG, is_builtin, resolve
from .derivation import derive
from .errors import SYMPY_FAILURES, FormulaError
from .helper_sources import helper_module
from .layer import DOUT, layer_formulas
from .layout import wrap_long_lines
from .loader import templates_root
from .model import MASK, Activation, Derivation, Prefer, X, Y, param_symbol
from .sharing import S
from .targets import Target, get_target

MODULE_TEMPLATE = "module.py.j2"


def generate(
    acts: Activation | str | Iterable[Activation | str],
    *,
    target: str = "numpy",
    fast: bool = False,
    prefer: Prefer | None = None,
    command: str | None = None,
) -> str:
    """The source of one module with a layer class per activation.

    By default the layers are the readable ones, whole-array NumPy expressions
    like the book's; ``fast=True`` gives block kernels with threads and ``out=``
    buffers, for arrays of 1e5 elements and more.  ``prefer`` sets every
    layer's precision policy (`symgrad.model.PREFERENCES`; by default each
    activation's own, ``"memory"``).  ``command`` is the shell
    command recorded in the header as the way to regenerate the file; by
    default, ``symgrad generate`` with the activations.
    """
    if isinstance(acts, (Activation, str)):
        acts = [acts]
    activations = [resolve(a, prefer) for a in acts]
    if not activations:
        raise ValueError("generate needs at least one activation")
    for act in activations:
        _check_param_names(act, target, fast)
    return _render(activations, target, fast, command)


def _render(
    activations: Sequence[Activation],
    target: str,
    fast: bool,
    command: str | None,
    known_cost: bool = False,
) -> str:
    """The module; ``known_cost`` (a stand-in for a catalog activation) skips
    the budget, as the catalog's own activations do."""
    chosen = get_target(target, fast=fast)
    layers = [_layer(a, target, fast, known_cost) for a in activations]
    helpers = helper_module(*chosen.helpers)
    _check_names(activations, layers, {*chosen.imports, *helpers.names()})
    names = helpers.closure(set().union(*(layer.helpers for layer in layers)))
    if command is None:
        command = "symgrad generate " + " ".join(cli_spec(a) for a in activations)
        command += f" --target {target}" if target != "numpy" else ""
        command += " --fast" if fast else ""
    template = f"{chosen.templates}/{MODULE_TEMPLATE}"
    source = (
        _environment()
        .get_template(template)
        .render(
            version=__version__,
            template=f"templates/{template}",
            command=command,
            docstring=f"{chosen.summary} for "
            f"{', '.join(a.name for a in activations)}, with forward and backward.",
            imports=helpers.imports_for(names),
            helpers=helpers.block(names),
            layers=layers,
        )
    )
    return wrap_long_lines(source.rstrip("\n") + "\n")


@lru_cache(maxsize=256)
def _layer(act: Activation, target: str, fast: bool, known_cost: bool):
    """One layer's source for the templates.  Unless its cost is known (the
    catalog's, or ``known_cost``), the work on it (derivation, stability
    rewrites, printing) is done within the budget (`symgrad.budgets`).
    Memoised: the parameter-name check and the modules that hold a layer ask
    again."""
    return for_activation(act, _layer_now, act, target, fast, known=known_cost)


def _layer_now(act: Activation, target: str, fast: bool):
    return _layer_source(get_target(target, fast=fast), derive(act))


def _layer_source(target: Target, derivation: Derivation):
    """The target's layer source, with SymPy's failures on an odd formula
    reported as such."""
    try:
        with stage("laying out forward and backward"):
            formulas = layer_formulas(derivation)
        with stage(f"writing the {target.name} layer"):
            return target.layer_source(formulas)
    except FormulaError:
        raise
    except SYMPY_FAILURES as error:
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
    if act.prefer != "memory":
        changed.append(f"prefer={act.prefer}")
    return act.name + (":" + ",".join(changed) if changed else "")


def _check_param_names(act: Activation, target: str, fast: bool) -> None:
    """Refuse a parameter whose name the generated code already uses for
    something else (a local such as ``s`` or ``c0``, an attribute, a helper, an
    import, a builtin it calls), which would silently change what the layer
    computes.

    The names are not listed by hand: the layer is generated once with fresh
    names for its parameters, and every identifier of that module is taken.
    Names made from a parameter's (``dalpha``, ``weight_c``) are checked too,
    and must not be keywords (``el`` would give ``del``).
    A catalog activation as the catalog defines it is known to be clear.
    """
    if not act.params or _as_in_catalog(act):
        return
    internal = {str(symbol) for symbol in (X, Y, MASK, S, DOUT)}
    for p in act.params:
        if p.name in internal:  # the pipeline's own symbols go by these names
            raise FormulaError(
                f"parameter name {p.name!r} of {act.name!r} is taken: symgrad's "
                f"derivation uses it (taken: {', '.join(sorted(internal))}); "
                "choose another"
            )
    names = [p.name for p in act.params]
    stem = "zzparam"
    while any(stem in n for n in names):  # a stand-in no name contains
        stem += "z"
    fresh = {name: f"{stem}{i}" for i, name in enumerate(names)}
    renamed = Activation(
        act.name,
        act.class_name,
        act.expr.xreplace({p.symbol: param_symbol(fresh[p.name]) for p in act.params}),
        # Text lands in docstrings and comments only; without it, every act
        # of the same formula has the same stand-in, generated once.
        tuple(replace(p, name=fresh[p.name], init="", doc="") for p in act.params),
    )
    module = _render([renamed], target, fast, command="", known_cost=is_builtin(act))
    used = _identifiers(module)
    for name, stand_in in fresh.items():
        for made in sorted(u for u in used if stand_in in u):
            clash = made.replace(stand_in, name)
            if keyword.iskeyword(clash):
                raise FormulaError(
                    f"parameter name {name!r} of {act.name!r} is taken: the generated "
                    f"{target} code would name {clash!r} after it, a Python keyword; "
                    "choose another"
                )
            if clash in used:
                raise FormulaError(
                    f"parameter name {name!r} of {act.name!r} is taken: the generated "
                    f"{target} code uses {clash!r} for something else; choose another"
                )


def _as_in_catalog(act: Activation) -> bool:
    """Whether ``act`` is a catalog activation, parameter values aside."""
    known = CATALOG.get(act.name)
    if known is None or known.expr != act.expr:
        return False
    return [replace(p, value=0.0) for p in known.params] == [
        replace(p, value=0.0) for p in act.params
    ]


def _identifiers(source: str) -> set[str]:
    """Every name token of ``source`` (not those inside strings or comments)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.string for t in tokens if t.type == tokenize.NAME}


def _check_names(
    activations: Sequence[Activation], layers: Sequence[Any], reserved: set[str]
) -> None:
    """Every module-level name a layer defines is its own: not another layer's,
    not an import's or a helper's of the generated module."""
    seen: dict[str, str] = {}
    for act, layer in zip(activations, layers, strict=True):
        for name in layer.defines:
            if name in reserved:
                raise ValueError(
                    f"layer name {name!r} (from {act.name!r}) is taken by the "
                    "generated module's own imports or helpers; choose another"
                )
            if name in seen:
                raise ValueError(
                    f"layer name {name!r} is used twice ({seen[name]!r} and "
                    f"{act.name!r}); one module needs distinct layer names"
                )
            seen[name] = act.name


@cache
def _environment() -> jinja2.Environment:
    root = templates_root()

    def load(name: str) -> tuple[str, str, None]:
        path = root.joinpath(*name.split("/"))
        if not path.is_file():
            raise jinja2.TemplateNotFound(name)
        return path.read_text(encoding="utf-8"), str(path), None

    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Text from the user goes through these where it lands (`symgrad.text`).
    environment.filters["comment"] = text.comment
    environment.filters["docstring"] = text.docstring
    environment.tests["standard"] = _from_standard_library
    return environment


def _from_standard_library(statement: str) -> bool:
    """Whether an import statement imports from Python's standard library (ruff
    puts those in a group of their own, first)."""
    module = statement.removeprefix("from ").removeprefix("import ").split()[0]
    return module.partition(".")[0] in sys.stdlib_module_names
