"""Decide what forward caches and what backward multiplies ``dout`` by.

The cheapest sufficient cache wins, in this order:

- nothing, when the derivative does not depend on x (identity);
- a boolean mask, when the derivative is piecewise constant with two values
  (ReLU, LeakyReLU, Hardtanh): one byte per element, and backward is a select.
  As in the book, the mask marks where the gradient is stopped or scaled (ReLU:
  ``x <= 0``), not where it passes;
- the output y, when an output form g(y) was found (sigmoid: y*(1 - y));
- the input x otherwise, and always when a parameter is learnable (its
  gradient, such as PReLU's x where x <= 0, needs x itself).
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from .model import MASK, BackwardPlan, X
from .output_form import exclusive_branches


def plan_backward(
    derivative: sympy.Expr,
    output_form: sympy.Expr | None,
    param_grads: tuple[tuple[str, sympy.Expr], ...] = (),
) -> BackwardPlan:
    """The backward plan for a derivative (in x) and its output form (in y, or None);
    ``param_grads`` are the derivatives by learnable parameters, also in x."""
    if param_grads:
        return BackwardPlan(
            "input",
            derivative,
            reason="a learnable parameter's gradient needs the input",
            param_grads=param_grads,
        )
    if not derivative.has(X):
        return BackwardPlan(
            "nothing", derivative, reason="the derivative does not depend on x"
        )
    mask = _two_valued_mask(derivative)
    if mask is not None:
        condition, masked, passed = mask
        return BackwardPlan(
            "mask",
            sympy.Piecewise((masked, MASK), (passed, True)),
            mask=condition,
            reason="the derivative takes two constant values, so one bit per element "
            "says which",
        )
    if output_form is not None:
        return BackwardPlan(
            "output", output_form, reason="the derivative is a function of the output"
        )
    return BackwardPlan(
        "input", derivative, reason="the derivative is not a function of the output"
    )


def _two_valued_mask(derivative):
    """(condition, value where it holds, value elsewhere) for a piecewise-constant
    derivative with exactly two values; None otherwise.

    The value elsewhere is the one that lets the gradient through (1 if it is one
    of the two, else the nonzero one); the condition marks the other, as the
    book's ReLU mask ``x <= 0`` marks where the gradient is zeroed.
    """
    if not isinstance(derivative, sympy.Piecewise):
        return None
    branches = exclusive_branches(derivative)
    if any(value.has(X) for value, _ in branches):
        return None
    values = list(dict.fromkeys(value for value, _ in branches))
    if len(values) != 2:
        return None
    if 1 in values:
        passed = sympy.S.One
    else:
        passed = values[0] if values[0] != 0 else values[1]
    masked = values[1] if passed == values[0] else values[0]
    condition = sympy.Or(*[cond for value, cond in branches if value == masked])
    condition = (
        sympy.simplify_logic(condition) if condition.has(sympy.Not) else condition
    )
    return _x_first(condition), masked, passed


def _x_first(condition):
    """The condition with x on the left of each comparison: threshold >= x reads
    x <= threshold, as the generated code writes it."""
    return condition.replace(
        lambda r: (
            isinstance(r, sympy.core.relational.Relational)
            and r.rhs == X
            and not r.lhs.has(X)
        ),
        lambda r: r.reversed,
    )


def kink_values(
    derivative: sympy.Expr, values: Mapping[sympy.Symbol, float]
) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """(x, f'(x)) at each boundary between branches: the value the branch that holds
    there gives, which is the convention the generated backward follows."""
    if not isinstance(derivative, sympy.Piecewise):
        return []
    points = []
    for _, cond in derivative.args:
        for rel in cond.atoms(sympy.core.relational.Relational):
            solved = sympy.solve(rel.lhs - rel.rhs, X)
            points += [p for p in solved if p not in points]
    ordered = sorted(points, key=lambda p: float(p.subs(values)))
    return [(p, _branch_value(derivative, p, values)) for p in ordered]


def _branch_value(derivative: sympy.Piecewise, point, values) -> sympy.Expr:
    """f'(point) from the first branch whose condition holds there, deciding the
    conditions with the parameters' values (at x = -lambd, which side is it?)."""
    for value, cond in derivative.args:
        holds = cond.subs(X, point).subs(values)
        if holds == sympy.true or cond == sympy.true:
            return value.subs(X, point)
    return derivative.subs(X, point)
