"""Choose the most readable of several equivalent spellings of an expression.

Used wherever symgrad shows an expression it computed (output forms, stable
rewrites): the shortest spelling wins, and minus signs move into differences so
that -y*(y - 1) reads y*(1 - y).
"""

from __future__ import annotations

import sympy


def tidy(expr: sympy.Expr) -> sympy.Expr:
    """The shortest of a few equivalent spellings; ties go to the factored one.

    Signs are absorbed into differences, so -y*(y - 1) reads y*(1 - y) and
    (|y| - 1)**2 reads (1 - |y|)**2.
    """
    expr = sympy.simplify(expr)
    if expr.has(sympy.Piecewise):
        return expr
    expanded = sympy.expand(expr)
    spellings = [
        sympy.factor(expr),
        sympy.factor_terms(expanded),
        expanded,
        expr,
    ]
    spellings = [_absorb_signs(s) for s in spellings]
    return min(spellings, key=lambda e: (sympy.count_ops(e), len(str(e))))


def _absorb_signs(expr: sympy.Expr) -> sympy.Expr:
    """Move minus signs into sums where that removes a negation."""
    if not expr.args:
        return expr
    args = tuple(_absorb_signs(a) for a in expr.args)
    if args != expr.args:
        expr = expr.func(*args)
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        inner, power = base.as_base_exp()
        if power.is_Integer and power != 1 and exponent.is_Rational and _is_sum(inner):
            # sqrt(u**3) -> u**(3/2): equal wherever the root is real.
            return _absorb_signs(inner ** (power * exponent))
        if _is_sum(base) and exponent.is_even and _reads_better_negated(base):
            return (-base) ** exponent
        return expr
    if isinstance(expr, sympy.Mul):
        coeff, rest = expr.as_coeff_Mul()
        if coeff >= 0:
            return expr
        factors = list(sympy.Mul.make_args(rest))
        for i, factor in enumerate(factors):
            base, exponent = factor.as_base_exp()
            if _is_sum(base) and exponent.is_odd:
                factors[i] = (-base) ** exponent
                return -coeff * sympy.Mul(*factors)
    return expr


def _is_sum(expr: sympy.Expr) -> bool:
    return isinstance(expr, sympy.Add)


def _reads_better_negated(total: sympy.Add) -> bool:
    """More negative terms than positive, or a tie with a negative constant."""
    signs = [t.could_extract_minus_sign() for t in total.args]
    negative, positive = sum(signs), len(signs) - sum(signs)
    constant = total.as_coeff_Add()[0]
    return negative > positive or (negative == positive and constant < 0)
