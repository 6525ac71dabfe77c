"""Plain-text and LaTeX renderings of expressions, for docstrings and `show`.

Piecewise expressions read as conditional expressions (``1 if x > 0 else 0``)
in text and as ``cases`` in LaTeX, the way the seed writes ReLU.
"""

from __future__ import annotations

import sympy


def text(expr: sympy.Basic) -> str:
    """A one-line plain-text rendering, Python-like."""
    if isinstance(expr, sympy.Piecewise):
        *branches, (default, _) = expr.args
        parts = [f"{text(e)} if {text(c)} else" for e, c in branches]
        return " ".join([*parts, text(default)])
    if isinstance(expr, sympy.And):
        return " and ".join(_wrap(a) for a in expr.args)
    if isinstance(expr, sympy.Or):
        return " or ".join(_wrap(a) for a in expr.args)
    return sympy.sstr(expr)


def _wrap(expr: sympy.Basic) -> str:
    return f"({text(expr)})" if isinstance(expr, (sympy.And, sympy.Or)) else text(expr)


def latex(expr: sympy.Basic) -> str:
    """LaTeX with Piecewise as an amsmath ``cases`` environment."""
    if isinstance(expr, sympy.Piecewise):
        rows = []
        for e, c in expr.args:
            where = (
                r"\text{otherwise}" if c is sympy.true else rf"\text{{if }} {latex(c)}"
            )
            rows.append(rf"{latex(e)} & {where}")
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"
    return sympy.latex(expr)
