"""What forward can compute once and hand to backward.

Where the derivative is not a function of the output, backward recomputes from x
the expensive parts it shares with the forward pass: SiLU's sigmoid(x), GELU's
erfc(-x/sqrt(2)), Mish's softplus(x).  Caching the largest such part (one array,
the same size as the output) makes backward a few multiplications instead of a
second pass through exp or erfc.

The search works on the stabilised expressions (`symgrad.rewrite`), where the two
sides may evaluate the part on differently clipped inputs (forward clips x below
at -750, backward at [-750, 46]).  A clip is dropped only where the part has
already saturated at its bound, checked in 30 digits, so the cached value is what
either side would have computed, to the last bit of float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mpmath
import sympy

from .conditioning import lossy_ranges
from .functions import (
    clip,
    erfc,
    exp_of_polynomial,
    finite,
    near_root,
    near_zero,
    nearest,
    scaled_erfc,
    sigmoid,
    sigmoid_of_polynomial,
    softplus,
    tail_product,
    tame,
)
from .model import X, Y
from .verify import evaluate_fixed

#: The cached intermediate, as backward's expressions refer to it.
S = sympy.Symbol("s", real=True)

_EXPENSIVE = (
    sympy.exp,
    sympy.log,
    sympy.tanh,
    sympy.erf,
    sympy.erfc,
    erfc,
    scaled_erfc,
    sigmoid,
    sigmoid_of_polynomial,
    exp_of_polynomial,
    softplus,
    sympy.atan,
    sympy.asinh,
    sympy.sin,
    sympy.cos,
)


@dataclass(frozen=True)
class Shared:
    """The part both passes use, and both passes rewritten to read it as `S`."""

    part: sympy.Expr
    forward: sympy.Expr
    derivative: sympy.Expr
    #: Intervals of x where the derivative, read from the rounded y and s,
    #: loses more than a few ulps (`symgrad.conditioning`).
    lossy: tuple[tuple[float, float], ...] = ()


def shared_intermediate(
    forward: sympy.Expr,
    derivative: sympy.Expr,
    values: Mapping[sympy.Symbol, float],
    refuse_lossy: bool = False,
) -> Shared | None:
    """The largest expensive part of x that the stabilised forward and derivative
    both compute (up to saturation clips), or None.  With ``refuse_lossy``, a
    derivative in the cached values that loses accuracy somewhere is not used
    (SiLU's s + y*(1 - s) for x > 5)."""
    if isinstance(forward, sympy.Piecewise) or isinstance(derivative, sympy.Piecewise):
        return None
    ours = _parts(forward)
    theirs = _parts(derivative)
    common = [p for p in ours if p in theirs]
    for part in sorted(common, key=lambda p: (-sympy.count_ops(p), sympy.srepr(p))):
        new_forward = _replace(forward, part, values)
        new_derivative = _replace(derivative, part, values)
        if not (new_forward.has(S) and new_derivative.has(S)):
            continue
        in_output = _in_output_and_part(new_forward, new_derivative, part, values)
        options = [
            (candidate, _loss(candidate, forward, derivative, part, values))
            for candidate in (in_output, new_derivative)
            if candidate is not None
        ]
        # A form that loses nothing, the one reading fewest arrays; else, unless
        # refused, the first (it reads no x: y = x*s already holds it).
        clean = [o for o in options if not o[1]]
        if clean:
            chosen = min(clean, key=lambda o: len(o[0].free_symbols & {X, Y, S}))
        elif refuse_lossy:
            return None
        else:
            chosen = options[0]
        return Shared(part, new_forward, *chosen)
    return None
    return None


def _loss(candidate, forward, derivative, part, values):
    """Where ``candidate``, reading rounded y and s, loses accuracy."""
    plain = _unclipped(candidate)
    reads = {S: part, Y: _unclipped(forward)}
    reads = {symbol: expr for symbol, expr in reads.items() if plain.has(symbol)}
    return lossy_ranges(plain, reads, _unclipped(derivative), values)


def _in_output_and_part(forward, derivative, part, values) -> sympy.Expr | None:
    """The derivative in y and s alone, if x can be eliminated and that is
    shorter: SiLU's s*(1 + x*(1 - s)) is s + y*(1 - s), as y = x*s.  Backward then
    needs no x; y is wrapped in `finite` so y = inf (x = inf) times 1 - s = 0 cannot
    make NaN."""
    plain_forward, plain_derivative = _unclipped(forward), _unclipped(derivative)
    if plain_derivative.has(near_root, near_zero):
        # Its polynomial reads x - r: x recomputed from y and s is an ulp or
        # two off, and near r that is all of x - r.
        return None
    if plain_forward.has(nearest):
        # A step function of x has no inverse, and SymPy took 18 s to say so
        # (exp(-1000*x**2), past the default budget).
        return None
    try:
        solutions = sympy.solve(sympy.Eq(Y, plain_forward), X)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if len(solutions) != 1:
        return None
    candidate = sympy.simplify(plain_derivative.subs(X, solutions[0]))
    if candidate.has(X) or sympy.count_ops(candidate) >= sympy.count_ops(
        plain_derivative
    ):
        return None
    env = {s: mpmath.mpf(v) for s, v in values.items()}
    for x in (-7.5, -2.25, -0.5, 0.125, 1.5, 4.0, 9.0):
        point = {**env, X: mpmath.mpf(x)}
        s_value = evaluate_fixed(part, point)
        y_value = evaluate_fixed(plain_forward.xreplace({S: part}), point)
        expected = evaluate_fixed(plain_derivative.xreplace({S: part}), point)
        if None in (s_value, y_value, expected):
            return None
        got = evaluate_fixed(candidate, {**env, S: s_value, Y: y_value})
        if got is None or abs(got - expected) > 1e-12 * max(1, abs(expected)):
            return None
    return candidate.xreplace({Y: finite(Y, 0)})


def _unclipped(expr: sympy.Expr) -> sympy.Expr:
    """expr without clips, and with tail products as plain products."""
    products = expr.replace(
        lambda e: isinstance(e, tail_product), lambda e: e.as_product()
    )
    return products.replace(
        lambda e: isinstance(e, (clip, finite, tame)), lambda e: e.args[0]
    )


def _parts(expr: sympy.Expr) -> set[sympy.Expr]:
    """Expensive subexpressions of x, with clips removed."""
    found = set()
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, _EXPENSIVE) and sub.has(X):
            found.add(_unclipped(sub))
    return found


def _replace(expr: sympy.Expr, part: sympy.Expr, values) -> sympy.Expr:
    """expr with every occurrence of part (on a clipped x where the clip leaves
    part unchanged in float64) replaced by `S`."""

    def matches(sub):
        return isinstance(sub, sympy.Expr) and _unclipped(sub) == part

    def swap(sub):
        return S if _saturated_at_clips(sub, part, values) else sub

    return expr.replace(matches, swap)


#: The largest finite float16, float32 and float64: where `finite` clamps.
_DTYPE_MAXIMA = (65504.0, 3.4028234663852886e38, 1.7976931348623157e308)


def _saturated_at_clips(sub: sympy.Expr, part: sympy.Expr, values) -> bool:
    """Whether each clip inside sub sits where part no longer changes in float64.

    A `finite` or `tame` clamp's bound depends on the dtype, so part is checked
    at the bound of each of float16, float32 and float64."""
    bounds = []
    for c in sub.atoms(clip):
        bounds += [float(b) for b in c.args[1:] if b.is_finite]
    for c in sub.atoms(finite):
        side = int(c.args[1])
        bounds += [s * m for m in _DTYPE_MAXIMA for s in (-1, 1) if side in (0, s)]
    for c in sub.atoms(tame):
        degree = int(c.args[1])
        bounds += [s * m ** (1 / degree) / 16 for m in _DTYPE_MAXIMA for s in (-1, 1)]
    env = {s: mpmath.mpf(v) for s, v in values.items()}
    for b in bounds:
        near = evaluate_fixed(part, {**env, X: b})
        # Far out, on and off the grid of a `nearest` inside part: on it, exp's
        # correction (x - h)*(x + h) is 0 and looks saturated.
        for far_x in (1e3 * b, 1e3 * b + b / 3):
            far = evaluate_fixed(part, {**env, X: far_x})
            if near is None or far is None:
                return False
            if (
                abs(near - far) > 2.0**-53 * abs(far)
                and max(abs(near), abs(far)) > 1e-300
            ):
                return False
    return True
