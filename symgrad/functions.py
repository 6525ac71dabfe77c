"""SymPy functions that symgrad prints as stable NumPy helpers.

The rewrite stage (`symgrad.rewrite`) recognises numerically fragile patterns such
as 1/(1 + exp(-u)) and replaces them with these functions; the printer maps each
to a helper of the same name in `symgrad.runtime`, copied into the generated
module.  Each function knows its derivative and its definition through exp, so
derivation and numeric verification work on expressions that contain it.
"""

from __future__ import annotations

import sympy


class sigmoid(sympy.Function):  # noqa: N801 (SymPy's convention: functions are lower case)
    """The logistic function 1/(1 + exp(-u)), evaluated without overflow."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sympy.Rational(1, 2)
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sympy.exp(-arg))

    def _eval_evalf(self, prec):
        return self.rewrite(sympy.exp)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer):
        return rf"\sigma\left({printer._print(self.args[0])}\right)"


#: Every symgrad function, by name (the printer emits a helper of the same name).
FUNCTIONS = {f.__name__: f for f in (sigmoid,)}
