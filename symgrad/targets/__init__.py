"""Where a derivation is printed: one module per target and style.

Everything before this stage (derivation, output form, backward plan, stability
rules, `symgrad.layer`) is shared.  A `Target` says only how layers are written:
the function that prints one layer's `LayerFormulas` for its templates, the
template folder (under the top-level ``templates/``), and the module whose
helpers generated files carry.  Adding a target adds a module here and a row to
`TARGETS`; no other target changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..layer import LayerFormulas


@dataclass(frozen=True)
class Target:
    """How one target and style writes a layer."""

    name: str
    style: str
    #: ``module:function`` printing one layer for the templates.
    printer: str
    #: Folder of ``module.py.j2`` and ``layer.py.j2`` under ``templates/``.
    templates: str
    #: The modules whose helpers (functions and constants) are copied into files.
    helpers: tuple[str, ...]
    #: Completes "... layers for relu, sigmoid" in the module docstring.
    summary: str

    def layer_source(self, formulas: LayerFormulas) -> Any:
        module, _, function = self.printer.partition(":")
        printer: Callable[[LayerFormulas], Any] = getattr(
            importlib.import_module(f".{module}", __name__), function
        )
        return printer(formulas)


TARGETS = {
    ("numpy", "readable"): Target(
        "numpy",
        "readable",
        "numpy_readable:layer_source",
        "numpy",
        (f"{__name__}.numpy_helpers",),
        "NumPy layers",
    ),
    ("numpy", "fast"): Target(
        "numpy",
        "fast",
        "numpy_fast:layer_source",
        "numpy_fast",
        (f"{__name__}.numpy_helpers", f"{__name__}.numpy_fast_helpers"),
        "NumPy block-kernel layers (symgrad --fast)",
    ),
}


def get_target(name: str = "numpy", *, fast: bool = False) -> Target:
    """The target ``name`` in its readable style, or its fast one."""
    style = "fast" if fast else "readable"
    try:
        return TARGETS[name, style]
    except KeyError:
        known = ", ".join(sorted({n for n, _ in TARGETS}))
        raise ValueError(f"unknown target {name!r}; choose from {known}") from None
