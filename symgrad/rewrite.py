"""Stability rewrites: rules over SymPy expressions, applied before printing.

Each rule maps one numerically fragile pattern to an equivalent, stable one and
returns None where it does not apply.  `stabilize` applies every rule bottom-up
over the whole expression, so a rule fires wherever its pattern occurs, in any
activation, forward or backward; no rule knows which activation it is serving.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

from .functions import sigmoid

Rule = Callable[[sympy.Expr], sympy.Expr | None]


def reciprocal_one_plus_exp(expr: sympy.Expr) -> sympy.Expr | None:
    """1/(1 + exp(v)) -> sigmoid(-v): exp(v) overflows for large v, sigmoid never."""
    if not (isinstance(expr, sympy.Pow) and expr.exp == -1):
        return None
    v = _one_plus_exp_argument(expr.base)
    return None if v is None else sigmoid(-v)


def exp_times_sigmoid(expr: sympy.Expr) -> sympy.Expr | None:
    """exp(v)*sigmoid(-v) -> sigmoid(v): the product is inf*0 for large v."""
    if not isinstance(expr, sympy.Mul):
        return None
    factors = list(expr.args)
    for i, e in enumerate(factors):
        if not isinstance(e, sympy.exp):
            continue
        partner = sigmoid(-e.args[0])
        if partner in factors:
            rest = [f for j, f in enumerate(factors) if j != i]
            rest.remove(partner)
            return sympy.Mul(*rest, sigmoid(e.args[0]))
    return None


def piecewise_as_extremum(expr: sympy.Expr) -> sympy.Expr | None:
    """Piecewise((a, a > b), (b, True)) -> Max(a, b), likewise Min.

    np.maximum is one pass and lets NaN through; a select is two passes and, with a
    constant default branch, would turn NaN into that constant.  The branches agree
    where a == b, so the kink convention (a matter for the derivative) is unaffected.
    """
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 2:
        return None
    (first, cond), (second, default) = expr.args
    if default is not sympy.true or not isinstance(
        cond, sympy.core.relational.Relational
    ):
        return None
    for rel in (cond, cond.reversed):
        if {rel.lhs, rel.rhs} != {first, second} or rel.lhs != first:
            continue
        if rel.rel_op in (">", ">="):
            return sympy.Max(first, second)
        if rel.rel_op in ("<", "<="):
            return sympy.Min(first, second)
    return None


def _one_plus_exp_argument(expr: sympy.Expr) -> sympy.Expr | None:
    """v where expr is 1 + exp(v), else None."""
    if not isinstance(expr, sympy.Add) or len(expr.args) != 2:
        return None
    one, other = sorted(expr.args, key=lambda a: not a.is_Number)
    if one != 1 or not isinstance(other, sympy.exp):
        return None
    return other.args[0]


#: The rules, applied in this order at every node.
RULES: tuple[Rule, ...] = (
    reciprocal_one_plus_exp,
    exp_times_sigmoid,
    piecewise_as_extremum,
)


def stabilize(expr: sympy.Basic, rules: tuple[Rule, ...] = RULES) -> sympy.Basic:
    """``expr`` with every rule applied bottom-up until none fires."""
    if expr.args:
        args = tuple(stabilize(a, rules) for a in expr.args)
        if args != expr.args:
            expr = expr.func(*args)
    changed = True
    while changed:
        changed = False
        for rule in rules:
            replacement = rule(expr)
            if replacement is not None and replacement != expr:
                expr = (
                    stabilize(replacement, rules) if replacement.args else replacement
                )
                changed = True
                break
    return expr
