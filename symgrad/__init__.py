"""symgrad: derive an activation's derivative with SymPy, generate its layer code.

The pipeline, one module per stage: `model` (data), `catalog` (built-ins),
`derivation` (derivative), `output_form` (f' as a function of y), `plan` (what
to cache), `rewrite` (stable forms), `layer` (the passes as assignments),
`targets` (how each target prints them: readable NumPy, ``--fast`` kernels,
PyTorch, JAX),
`codegen` (Jinja2), `loader` (write, import, cache).

Names are imported on first use, so ``import symgrad`` is cheap and
``symgrad.compile("sigmoid")`` of a cached layer never imports SymPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "audit": "auditing",
    "AuditResult": "auditing",
    "Budget": "budgets",
    "BudgetExceeded": "budgets",
    "budget": "budgets",
    "CATALOG": "catalog",
    "activation": "catalog",
    "generate": "codegen",
    "DerivationError": "derivation",
    "derive": "derivation",
    "FormulaError": "errors",
    "MissingFrameworkError": "errors",
    "SymgradError": "errors",
    "parse": "formula",
    "GradcheckResult": "finite_differences",
    "gradcheck": "finite_differences",
    "compile": "loader",
    "Activation": "model",
    "BackwardPlan": "model",
    "Derivation": "model",
    "Param": "model",
}

__all__ = [
    "Activation",
    "AuditResult",
    "BackwardPlan",
    "Budget",
    "BudgetExceeded",
    "CATALOG",
    "Derivation",
    "DerivationError",
    "FormulaError",
    "GradcheckResult",
    "MissingFrameworkError",
    "Param",
    "SymgradError",
    "activation",
    "audit",
    "budget",
    "compile",
    "derive",
    "generate",
    "gradcheck",
    "parse",
]


def __getattr__(name: str) -> object:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'symgrad' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .budgets import Budget, BudgetExceeded, budget
    from .catalog import CATALOG, activation
    from .codegen import generate
    from .derivation import DerivationError, derive
    from .errors import FormulaError, MissingFrameworkError, SymgradError
    from .finite_differences import GradcheckResult, gradcheck
    from .formula import parse
    from .loader import compile
    from .model import Activation, BackwardPlan, Derivation, Param
