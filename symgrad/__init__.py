"""symgrad: derive an activation's derivative with SymPy, generate its NumPy layer.

The pipeline, one module per stage: `model` (data), `catalog` (built-ins),
`derive` (derivative), `output_form` (f' as a function of y), `plan` (what to
cache), `rewrite` (stable forms), `printing` (SymPy to NumPy source), `codegen`
(Jinja2), `loader` (write, import, cache).
"""

__version__ = "0.1.0"

from .catalog import CATALOG, activation  # noqa: E402
from .codegen import generate  # noqa: E402
from .derive import DerivationError, derive  # noqa: E402
from .errors import FormulaError, SymgradError  # noqa: E402
from .formula import parse  # noqa: E402
from .gradcheck import GradcheckResult, gradcheck  # noqa: E402
from .loader import compile  # noqa: E402
from .model import Activation, BackwardPlan, Derivation, Param  # noqa: E402

__all__ = [
    "CATALOG",
    "Activation",
    "BackwardPlan",
    "Derivation",
    "DerivationError",
    "FormulaError",
    "GradcheckResult",
    "Param",
    "SymgradError",
    "activation",
    "compile",
    "derive",
    "generate",
    "gradcheck",
    "parse",
]
