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
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MissingFrameworkError

if TYPE_CHECKING:  # the loader reads TARGETS without importing SymPy
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
    #: The names the templates import the framework as.
    imports: tuple[str, ...] = ("np",)
    #: What `symgrad.compile` returns from a module of one layer: its "class",
    #: its torch.nn "module" class, or its "function".
    entry: str = "class"
    #: The package the generated code imports, its display name, and the extra
    #: of symgrad that installs it (None: a run-time dependency).
    framework: str = "numpy"
    framework_name: str = "NumPy"
    extra: str | None = None

    def require_framework(self) -> None:
        """Raise `MissingFrameworkError`, naming the extra, if the generated code
        could not be imported here."""
        if self.extra and importlib.util.find_spec(self.framework) is None:
            raise MissingFrameworkError(
                f"the {self.name} target needs {self.framework_name}, which is not "
                f"installed: pip install 'symgrad[{self.extra}]'"
            )

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
    ("torch", "readable"): Target(
        "torch",
        "readable",
        "torch_target:layer_source",
        "torch",
        (f"{__name__}.torch_helpers",),
        "PyTorch layers (autograd.Function and nn.Module)",
        imports=("torch", "F"),
        entry="module",
        framework="torch",
        framework_name="PyTorch",
        extra="torch",
    ),
    ("jax", "readable"): Target(
        "jax",
        "readable",
        "jax_target:layer_source",
        "jax",
        (f"{__name__}.jax_helpers",),
        "JAX functions (jax.custom_vjp)",
        imports=("jax", "jnp"),
        entry="function",
        framework="jax",
        framework_name="JAX",
        extra="jax",
    ),
    ("numba", "readable"): Target(
        "numba",
        "readable",
        "numba_target:layer_source",
        "numba",
        (f"{__name__}.numba_helpers",),
        "fused CPU layers (numba)",
        imports=("np", "numba"),
        framework="numba",
        framework_name="numba",
        extra="numba",
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


#: The target names, in the order the command line lists them.
NAMES = ("numpy", "torch", "jax", "numba")


def get_target(name: str = "numpy", *, fast: bool = False) -> Target:
    """The target ``name`` in its readable style, or its fast one (NumPy only)."""
    if name not in {n for n, _ in TARGETS}:
        known = ", ".join(n for n in NAMES if any(n == t for t, _ in TARGETS))
        raise ValueError(f"unknown target {name!r}; choose from {known}")
    if (name, "fast" if fast else "readable") not in TARGETS:
        raise ValueError(f"--fast is for the numpy target; {name} has one style")
    return TARGETS[name, "fast" if fast else "readable"]
