"""Derive an activation: normal form, derivative, output form and backward plan.

Pure functions of an `Activation`.  The forward expression is put in a normal
form first (Abs, Max, Min, sign and Heaviside become Piecewise, folded to the
top), so that every kink is an explicit branch condition; the derivative is taken
branch by branch, which keeps the convention that the branch holding at a kink
gives the value there.  Every simplification is checked against the raw
derivative (`symgrad.verify.proven_equal`) before it is kept.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import sympy

from .budgets import attempt, for_activation, stage
from .catalog import resolve
from .conditioning import EVERYWHERE, describe, lossy_ranges
from .errors import SYMPY_FAILURES, FormulaError
from .model import Activation, Derivation, Prefer, X, Y
from .output_form import find_output_form
from .plan import plan_backward
from .regimes import layer_regimes, output_form_breaks
from .verify import proven_equal

_KINKED = (sympy.Abs, sympy.Max, sympy.Min, sympy.sign, sympy.Heaviside)


class DerivationError(FormulaError):
    """A derivation step could not be done or verified."""


def normal_form(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with its kinks as explicit Piecewise branches at the top."""
    if expr.has(*_KINKED):
        expr = expr.rewrite(sympy.Piecewise)
    if expr.has(sympy.Piecewise):
        expr = sympy.piecewise_fold(expr)
    return expr


def differentiate(expr: sympy.Expr, values=None, wrt: sympy.Symbol = X) -> sympy.Expr:
    """d expr/d wrt (x by default), branch by branch, each simplified and checked."""
    if isinstance(expr, sympy.Piecewise):
        return sympy.Piecewise(
            *[(_simplified_derivative(e, values, c, wrt), c) for e, c in expr.args]
        )
    return _simplified_derivative(expr, values, sympy.true, wrt)


def _simplified_derivative(expr, values, condition, wrt=X):
    with stage(f"taking d/d{wrt}"):
        raw = sympy.diff(expr, wrt)
    # Within a budget, simplification that takes too long leaves the raw
    # derivative, which is correct as it stands.
    return attempt(
        f"simplifying d/d{wrt}",
        lambda: _simplified(raw, values, condition, wrt),
        lambda: raw,
        share=0.3,
    )


def _simplified(raw, values, condition, wrt):
    simple = sympy.simplify(raw)
    if sympy.count_ops(simple) > sympy.count_ops(raw):
        return raw
    if simple != raw and not proven_equal(simple, raw, values, condition):
        raise DerivationError(f"could not verify that d/d{wrt} = {simple}")
    return simple


def derive(
    act: Activation | str, *, prefer: Prefer | None = None, **params: float
) -> Derivation:
    """Derive an activation (or catalog name): derivative, output form, plan.

    ``prefer`` is the precision policy (`symgrad.model.PREFERENCES`; by default
    the activation's own, ``"memory"``): under ``"accuracy"`` the plan refuses
    an output form that loses accuracy anywhere (`symgrad.conditioning`).

    Results are memoised per activation (activations are immutable), so deriving
    the same one again, as `generate` and `symgrad list` do, costs nothing.  An
    activation outside the catalog is derived within the time and memory budget
    (`symgrad.budgets`); running out raises `symgrad.budgets.BudgetExceeded`.
    """
    return _derive(resolve(act, **params).preferring(prefer))


@functools.lru_cache(maxsize=256)
def _derive(act: Activation) -> Derivation:
    return for_activation(act, _derive_or_error, act)


def _derive_or_error(act: Activation) -> Derivation:
    try:
        return _derive_uncached(act)
    except FormulaError:
        raise
    except SYMPY_FAILURES as error:
        raise DerivationError(f"cannot derive {act.name!r}: {error}") from None


def _derive_uncached(act: Activation) -> Derivation:
    with stage("putting the formula in normal form"):
        forward = normal_form(act.expr)
    derivative = differentiate(forward, act.values)
    if derivative.has(
        sympy.Derivative, sympy.Subs, sympy.DiracDelta, sympy.zoo, sympy.nan
    ):
        raise DerivationError(
            f"{act.name!r} is not differentiable where it is defined: d/dx = {derivative}"
        )
    # Without an output form, backward reads the input: the cheaper path.
    output_form = attempt(
        "finding the output form",
        lambda: find_output_form(forward, derivative, act.values),
        lambda: None,
        share=0.4,
    )
    param_grads = tuple(
        (p.name, differentiate(forward, act.values, p.symbol)) for p in act.learnable
    )
    lossy = ()
    if output_form is not None:
        lossy = attempt(
            "finding where the output form loses accuracy",
            lambda: lossy_ranges(output_form, {Y: forward}, derivative, act.values),
            lambda: EVERYWHERE,
            share=0.2,
        )
    broken = output_form is not None and attempt(
        "checking the output form out to the float limits",
        lambda: output_form_breaks(output_form, act, derivative),
        lambda: False,
        share=0.2,
    )
    with stage("planning backward"):
        usable = None if (lossy and act.prefer == "accuracy") or broken else output_form
        plan = plan_backward(derivative, usable, param_grads)
    if broken and plan.saves == "input":
        plan = replace(
            plan,
            reason=f"dy/dx in y, {output_form}, is NaN or inf far out where the "
            "slope is finite, so backward reads the input",
        )
    elif usable is None and output_form is not None and plan.saves == "input":
        plan = replace(
            plan,
            reason=f"dy/dx in y loses accuracy for {describe(lossy)}, "
            "so under prefer='accuracy' backward reads the input",
        )
    regimes = layer_regimes(act, plan)
    return Derivation(act, forward, derivative, output_form, plan, lossy, regimes)
