"""Numeric evidence for symbolic claims: sample points and high-precision agreement.

Every rewrite symgrad makes (an output form, a simplification, a mask) is accepted
only when SymPy proves it or, failing that, when both sides agree to high
precision at many points of the domain.  This module supplies those points and
that comparison; it never decides anything by itself.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping

import mpmath
import sympy

from .model import X

#: Evaluation precision, in decimal digits, for numeric checks.
DIGITS = 30
#: Relative tolerance at which two sides count as equal.
RTOL = 1e-15

_BASE_POINTS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
_OFFSETS = (1e-3, 0.1, 0.5, 1.0, 2.0)


def evaluate(
    expr: sympy.Basic, point: Mapping[sympy.Symbol, float]
) -> sympy.Float | None:
    """``expr`` at ``point`` to `DIGITS` digits, or None where it is not a finite real.

    The value stays a `DIGITS`-digit Float: feeding y = f(x) into g(y) as a double
    would lose the digits that cancel in forms like 1 - y**2 near |y| = 1.
    """
    point = {s: sympy.Float(v, DIGITS) for s, v in point.items()}
    try:
        value = expr.evalf(DIGITS, subs=point)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if value.is_Boolean:
        return sympy.Float(int(bool(value)))
    if not value.is_number or value.is_real is not True:
        return None
    value = sympy.Float(value, DIGITS)
    return value if value.is_finite and math.isfinite(float(value)) else None


def holds(condition: sympy.Basic, point: Mapping[sympy.Symbol, float]) -> bool:
    """Whether a condition on x is true at a numeric point."""
    if condition is sympy.true or condition == True:  # noqa: E712 (SymPy's true)
        return True
    value = condition.subs({s: sympy.Float(v, DIGITS) for s, v in point.items()})
    return bool(value == sympy.true)


def boundaries(
    condition: sympy.Basic, values: Mapping[sympy.Symbol, float]
) -> set[float]:
    """The numeric values of x at which the relations in ``condition`` change."""
    found: set[float] = set()
    for rel in condition.atoms(sympy.core.relational.Relational):
        diff = (rel.lhs - rel.rhs).subs(values)
        try:
            roots = sympy.solve(diff, X)
        except (NotImplementedError, TypeError):
            continue
        for root in roots:
            number = evaluate(root, {})
            if number is not None:
                found.add(number)
    return found


def sample_points(
    condition: sympy.Basic = sympy.true,
    values: Mapping[sympy.Symbol, float] | None = None,
    *,
    extra: Iterable[float] = (),
    around: sympy.Basic = sympy.true,
    seed: int = 0,
    count: int = 6,
) -> list[float]:
    """Points of x, on both sides of 0 and of every boundary of ``condition`` and of
    ``around``'s conditions, where ``condition`` holds."""
    values = dict(values or {})
    condition = condition.subs(values) if condition is not sympy.true else condition
    edges = boundaries(condition, {}) if condition is not sympy.true else set()
    # Also the kinks of ``around`` (a piecewise f), where branches meet.
    edges |= boundaries(around.subs(values), {}) if around is not sympy.true else set()
    rng = random.Random(seed)
    candidates = [s * p for p in _BASE_POINTS for s in (1.0, -1.0)]
    for edge in sorted(edges):
        candidates += [edge + s * d for d in _OFFSETS for s in (1.0, -1.0)]
        candidates += [edge * 1.5, edge * 0.5]
    candidates += [rng.uniform(-6.0, 6.0) for _ in range(count)]
    candidates += list(extra)
    points = []
    for value in candidates:
        if value not in points and holds(condition, {X: value}):
            points.append(value)
    return points


def agree(a: float, b: float, rtol: float = RTOL) -> bool:
    """Equality to ``rtol`` relative to the larger magnitude (and to 1)."""
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))


def numerically_equal(
    lhs: sympy.Basic,
    rhs: sympy.Basic,
    points: Iterable[Mapping[sympy.Symbol, float]],
    *,
    minimum: int = 4,
) -> bool:
    """True when lhs and rhs agree at every point where both are defined (at least
    ``minimum`` of them); a point where only one side is defined is a disagreement."""
    compared = 0
    for point in points:
        a, b = evaluate(lhs, point), evaluate(rhs, point)
        if a is None and b is None:
            continue
        if a is None or b is None or not agree(a, b):
            return False
        compared += 1
    return compared >= minimum


def proven_equal(
    lhs: sympy.Expr,
    rhs: sympy.Expr,
    values: Mapping[sympy.Symbol, float] | None = None,
    condition: sympy.Basic = sympy.true,
) -> bool:
    """Equal symbolically, or failing that numerically at sample points of ``condition``."""
    try:
        if sympy.simplify(lhs - rhs) == 0:
            return True
    except (TypeError, ValueError, NotImplementedError):
        pass
    values = dict(values or {})
    points = [{X: p, **values} for p in sample_points(condition, values, count=14)]
    return numerically_equal(lhs, rhs, points)


# -- fixed-precision evaluation ------------------------------------------------


def _mp_erfc(u):
    """mpmath's erfc, with its asymptotic form where mpmath overflows (|u| > 1e6)."""
    if abs(u) < 1e6:
        return mpmath.erfc(u)
    tail = mpmath.exp(-u * u) / (abs(u) * mpmath.sqrt(mpmath.pi))
    return tail if u > 0 else 2 - tail


# Beyond this, exp's result is far outside float64's range; asking mpmath for it
# (say exp(exp(1e128))) would take forever, so such values end evaluation.
_HUGE = 1e7


def _mp_exp(u):
    if u > _HUGE:
        raise OverflowError("exp overflows")
    return mpmath.mpf(0) if u < -_HUGE else mpmath.exp(u)


def _mp_sigmoid(u):
    if abs(u) > _HUGE:
        return mpmath.mpf(1 if u > 0 else 0)
    return 1 / (1 + mpmath.exp(-u))


def _mp_softplus(u):
    if abs(u) > _HUGE:
        return u if u > 0 else mpmath.mpf(0)
    return mpmath.log1p(mpmath.exp(u)) if u < 0 else u + mpmath.log1p(mpmath.exp(-u))


def _bounded(function):
    """A cosh-like function: overflow beyond _HUGE instead of a huge computation."""

    def guarded(u):
        if abs(u) > _HUGE:
            raise OverflowError(f"{function.__name__} overflows")
        return function(u)

    return guarded


_MP_FUNCTIONS = {
    "exp": _mp_exp,
    "log": mpmath.log,
    "sin": mpmath.sin,
    "cos": mpmath.cos,
    "tan": mpmath.tan,
    "sinh": _bounded(mpmath.sinh),
    "cosh": _bounded(mpmath.cosh),
    "tanh": lambda u: mpmath.sign(u) if abs(u) > 1e4 else mpmath.tanh(u),
    "asinh": mpmath.asinh,
    "atan": mpmath.atan,
    "erf": lambda u: 1 - _mp_erfc(u),
    "erfc": _mp_erfc,
    "expm1": lambda u: _mp_exp(u) - 1 if abs(u) > _HUGE else mpmath.expm1(u),
    "log1p": mpmath.log1p,
    "Abs": abs,
    "sign": mpmath.sign,
    "sigmoid": _mp_sigmoid,
    "softplus": _mp_softplus,
}


def evaluate_fixed(
    expr: sympy.Basic, point: Mapping[sympy.Symbol, float], digits: int = DIGITS
) -> mpmath.mpf | None:
    """``expr`` at ``point`` in mpmath at a fixed precision, or None if not real.

    Unlike `evaluate` (SymPy's evalf), precision is never raised to resolve a
    cancellation, so 1/2 + erf(x)/2 at x = -1e4 returns at once (as ~0) instead
    of asking for millions of digits.  It walks the expression tree itself.
    """
    with mpmath.workdps(digits):
        try:
            value = _walk(expr, {s: mpmath.mpf(v) for s, v in point.items()})
        except (
            ZeroDivisionError,
            ValueError,
            OverflowError,
            TypeError,
            KeyError,
            MemoryError,
        ):
            return None
    if isinstance(value, bool):
        return mpmath.mpf(int(value))
    if not isinstance(value, mpmath.mpf) or not mpmath.isfinite(value):
        return None
    return value


def _walk(expr, env):
    if isinstance(expr, sympy.Symbol):
        return env[expr]
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol):
        return mpmath.mpf(sympy.Float(expr, mpmath.mp.dps + 5))
    if expr is sympy.true or expr is sympy.false:
        return bool(expr)
    if isinstance(expr, sympy.Add):
        return mpmath.fsum(_walk(a, env) for a in expr.args)
    if isinstance(expr, sympy.Mul):
        return mpmath.fprod(_walk(a, env) for a in expr.args)
    if isinstance(expr, sympy.Pow):
        base, exponent = _walk(expr.base, env), _walk(expr.exp, env)
        if base < 0 and exponent != int(exponent):
            raise ValueError("complex power")
        return base**exponent
    if isinstance(expr, sympy.Piecewise):
        for value, cond in expr.args:
            if _walk(cond, env):
                return _walk(value, env)
        raise ValueError("no branch holds")
    if isinstance(expr, sympy.core.relational.Relational):
        lhs, rhs = _walk(expr.lhs, env), _walk(expr.rhs, env)
        return {
            "<": lhs < rhs,
            "<=": lhs <= rhs,
            ">": lhs > rhs,
            ">=": lhs >= rhs,
            "==": lhs == rhs,
            "!=": lhs != rhs,
        }[expr.rel_op]
    if isinstance(expr, sympy.And):
        return all(_walk(a, env) for a in expr.args)
    if isinstance(expr, sympy.Or):
        return any(_walk(a, env) for a in expr.args)
    if isinstance(expr, sympy.Not):
        return not _walk(expr.args[0], env)
    if isinstance(expr, sympy.Max):
        return max(_walk(a, env) for a in expr.args)
    if isinstance(expr, sympy.Min):
        return min(_walk(a, env) for a in expr.args)
    name = type(expr).__name__
    if name in ("finite", "tame"):  # identities on finite numbers
        return _walk(expr.args[0], env)
    if name == "clip":  # max(lower, min(u, upper)), an infinite bound left out
        u, lower, upper = expr.args
        value = _walk(u, env)
        if upper != sympy.oo:
            value = min(value, _walk(upper, env))
        return value if lower == -sympy.oo else max(value, _walk(lower, env))
    if name == "near_root":  # the fit as its coefficient pairs give it
        return _walk(expr.as_piecewise(exact=True), env)
    if name == "near_tail":  # the series is the sum's value: the sum, exactly
        return _walk(expr.args[0], env)
    if name in ("blend", "near_zero"):
        return _walk(expr.as_piecewise(), env)
    if name == "minus_root":  # u - (hi + mid + lo), exactly
        u, *parts = (_walk(a, env) for a in expr.args)
        return u - mpmath.fsum(parts)
    if name == "scaled_erfc":
        return _walk(expr.as_erfc(), env)
    if name in ("scaled", "tail_product"):
        return _walk(expr.as_product(), env)
    if name in ("sigmoid_of_polynomial", "exp_of_polynomial"):
        return _walk(expr.plain, env)
    if name == "nearest":
        u, step = (_walk(a, env) for a in expr.args)
        return mpmath.nint(u / step) * step
    if name in _MP_FUNCTIONS and len(expr.args) == 1:
        result = _MP_FUNCTIONS[name](_walk(expr.args[0], env))
        if isinstance(result, mpmath.mpc):
            raise ValueError("complex value")
        return result
    raise TypeError(f"cannot evaluate {name}")
