"""`symgrad check`: generate a layer and test it the way the test suite does.

For each activation, in any target (called through `symgrad.targets.runners`): backward against central finite differences (float64),
forward and backward against the SymPy definition in mpmath, and the extreme-input
sweep with floating-point errors raised.  A row per activation says what it
caches, the largest errors and any floating-point error seen.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .budgets import for_activation, stage
from .derivation import derive
from .finite_differences import gradcheck
from .loader import compile as compile_layer
from .model import Activation, X
from .plan import kink_values
from .targets.runners import runner
from .verify import evaluate_fixed

#: Accuracy bar against mpmath (float64), as in the test suite.
RTOL, ATOL = 1e-9, 1e-12
PROBES = [1e-300, 1e-8, 1.0, 20.0, 40.0, 89.0, 710.0, 1e10, 1e300]


@dataclass
class CheckResult:
    """What `check_activation` found for one activation."""

    name: str
    saves: str
    gradcheck_error: float = 0.0
    reference_error: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def ordinary_points(act: Activation, count: int = 201) -> np.ndarray:
    """Points in [-5, 5] at least 1e-3 away from every kink."""
    derivation = derive(act)
    kinks = [
        float(p.subs(act.values))
        for p, _ in kink_values(derivation.derivative, act.values)
    ]
    xs = np.linspace(-5.0, 5.0, count) + 0.0123  # off the grid of round numbers
    if not kinks:
        return xs
    return xs[np.all([np.abs(xs - k) > 1e-3 for k in kinks], axis=0)]


def check_activation(
    act: Activation, *, target: str = "numpy", fast: bool = False
) -> CheckResult:
    """Check the generated layer for ``target`` (for NumPy, the readable one, or
    with ``fast`` the block kernels) the way the test suite does."""
    layer = compile_layer(act, target=target, fast=fast)
    make = functools.partial(runner, target, layer)
    if not fast:
        return _check(act, make)
    # The checks use small arrays, which a fast layer would give to its readable
    # statements: the kernels are checked here, at every size.
    module = sys.modules[layer.__module__]
    small, module._SMALL = module._SMALL, 0
    try:
        return _check(act, make)
    finally:
        module._SMALL = small


def _check(act: Activation, make: Callable[[], Any]) -> CheckResult:
    derivation = derive(act)
    result = CheckResult(act.name, derivation.saves)
    layer = make()
    ordinary, extreme = references(act)
    if not ordinary:
        result.problems.append(
            "no point in [-5, 5] where the formula is a finite real number"
        )
        return result
    x, y_ref, dy_ref = (np.array(column) for column in zip(*ordinary, strict=True))
    with np.errstate(all="ignore"):
        y = np.asarray(layer.forward(x), dtype=np.float64)
        dy = np.asarray(layer.backward(np.ones_like(x)), dtype=np.float64)
        grad = gradcheck(make(), x, raise_exception=False)
    result.gradcheck_error = grad.max_abs_error
    scale = ATOL + RTOL * np.maximum(np.abs(y_ref), np.abs(dy_ref))
    errors = np.maximum(np.abs(y - y_ref), np.abs(dy - dy_ref))
    result.reference_error = float(np.max(errors))
    if not grad.passed:
        result.problems.append(f"gradcheck failed (worst at x = {grad.worst_x:.6g})")
    if np.any(~(errors <= scale)):
        worst = float(x[np.argmax(errors - scale)])
        result.problems.append(f"differs from mpmath (worst at x = {worst:.6g})")
    result.problems += _sweep(make, extreme)
    return result


def references(act: Activation):
    """The exact values the checks compare with: (x, y, dy/dx) at the ordinary
    points where both are finite, and (dtype, x) at the extreme inputs whose true
    results that dtype can hold.  Outside the catalog, computed within the budget
    (`symgrad.budgets`): evaluating a formula far out can take without end."""
    return for_activation(act, _references, act)


def _references(act: Activation):
    derivation = derive(act)
    ordinary = []
    with stage("evaluating the formula at ordinary points"):
        for xi in ordinary_points(act):
            y, dy = _exact(derivation, float(xi), act, 1e300)
            if y is not None:
                ordinary.append((float(xi), y, dy))
    extreme = []
    with stage("evaluating the formula at extreme inputs"):
        for dtype in (np.float16, np.float32, np.float64):
            limit = float(np.finfo(dtype).max)
            for magnitude in [*PROBES, limit]:
                for xi in (magnitude, -magnitude):
                    if abs(xi) <= limit:
                        y, _ = _exact(derivation, float(dtype(xi)), act, limit)
                        if y is not None:
                            extreme.append((np.dtype(dtype).name, xi))
    return ordinary, extreme


def _exact(derivation, xi: float, act: Activation, limit: float):
    """(y, dy/dx) at xi as floats, or (None, None) where either is not finite
    within ``limit``."""
    point = {X: xi, **act.values}
    y = evaluate_fixed(derivation.forward, point)
    dy = evaluate_fixed(derivation.derivative, point)
    if y is None or dy is None or abs(y) > limit or abs(dy) > limit:
        return None, None
    return float(y), float(dy)


def _sweep(make: Callable[[], Any], extreme) -> list[str]:
    """Floating-point errors, and NaN or inf results, at extreme inputs whose true
    results are finite."""
    problems = []
    for dtype_name, xi in extreme:
        layer = make()
        value = np.array([xi], dtype=dtype_name)
        where = f"{dtype_name} x={xi:.3g}"
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                out = layer.forward(value)
                dx = layer.backward(np.ones_like(value))
        except FloatingPointError as error:
            problems.append(f"{where}: {error}")
            continue
        if not (np.isfinite(out).all() and np.isfinite(dx).all()):
            problems.append(f"{where}: y = {out[0]}, dy/dx = {dx[0]}")
    return problems
