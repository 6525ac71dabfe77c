"""What the PyTorch and JAX printers share: the readable statements, with the
functions the frameworks have printed as calls to them.

A framework printer names its calls in `FrameworkPrinter.calls` (SymPy's
function name -> the framework's) and its log-sigmoid; the rest is
`ReadablePrinter`'s.
"""

from __future__ import annotations

import sympy

from ..functions import near_root, near_tail, near_zero, softplus
from .numpy_readable import ReadablePrinter


class FrameworkPrinter(ReadablePrinter):
    """`ReadablePrinter` with erf, erfc, log1p and expm1 as the framework's own
    calls, and -softplus(-u) as its log-sigmoid of u."""

    #: SymPy function name -> the framework function that computes it.
    calls: dict[str, str] = {}
    #: The framework's log-sigmoid.
    log_sigmoid: str = ""
    #: A fitted polynomial prints as its select, written out.
    tables = False
    written_out = (near_zero, near_root, near_tail)

    def _print_framework_call(self, expr: sympy.Function) -> str:
        return f"{self.calls[type(expr).__name__]}({self._print(expr.args[0])})"

    # Each goes through self, so that a subclass's `_print_framework_call` (the
    # numba printer's, which records the helper it calls) is the one used.
    def _print_erf(self, expr: sympy.Function) -> str:
        return self._print_framework_call(expr)

    _print_erfc = _print_log1p = _print_expm1 = _print_erf

    def _print_scaled(self, expr: sympy.Function) -> str:
        """The plain product: frameworks report no floating-point flags."""
        return self._print(expr.as_product())

    def _print_tail_product(self, expr: sympy.Function) -> str:
        """The plain product (the frameworks' own sigmoid and exp give its tail)."""
        return self._print(expr.as_product())

    def _print_scaled_erfc(self, expr: sympy.Function) -> str:
        """The framework's erfc of the product (it has no scaled form)."""
        return self._print_framework_call(expr.as_erfc())

    def _print_Mul(self, expr: sympy.Mul) -> str:
        coefficient, rest = expr.as_coeff_Mul()
        if coefficient == -1 and isinstance(rest, softplus):
            return f"{self.log_sigmoid}({self._print(-rest.args[0])})"
        return super()._print_Mul(expr)
