"""Regimes: an asymptotic form beyond a switch point, where the stable form fails.

The rewrite rules (`symgrad.rewrite`) know patterns; a user's formula can still
give NaN, inf or a flushed 0 far out where the true value is an ordinary number:
x*atan(exp(x)) has the slope atan(exp(x)) + x*exp(x)/(exp(2x) + 1), which is
inf*0 = NaN beyond x = 710; log(cosh(x) + 1) is inf beyond 711.  This stage
finds such failures by measurement and repairs them, for any formula in x:

1. **Measure.** The stable form, printed for NumPy, is run on a grid
   log-spaced from each dtype's smallest normal number to its largest (both
   signs, dense on 0.5..2000, where exp(|x|) leaves float32 and float64) in
   float64 and float32, and compared with the formula in mpmath
   (`symgrad.oracle`) by the layer contract: finite where the truth is finite,
   within `CONTRACT` relative where it is a normal float, and no overflow or
   invalid warning there.  A cheap screen comes first (`_plainly_fine`): a
   form with no sign of failing costs no mpmath.
2. **Expand.** On a side where it fails, the formula is written in exp, every
   exp(a*x + b) whose argument grows becomes exp(b)*t**(-a*side) with t =
   exp(-|x|), and SymPy expands it in t at 0 with x held fixed: sum c_k(x)
   t**k (log(t) is -|x|).  A formula with no such exponential is expanded in
   w = 1/|x| instead.  The first n terms, n = 1, 2, ..., are the candidates;
   an expansion that is 0 to every order (x*exp(-exp(x))) is the candidate 0.
3. **Switch.** A candidate holds from the smallest grid point from which it is
   within `_FORM_ULPS` of the truth in both dtypes; the switch is the first
   point from there where it meets the stable form within 1 ulp in both (or
   that point itself), rounded up to two digits.  A term c_k(x) t**k reads x
   clipped where the term has left float64 for good, so that no x**2 * 0
   becomes inf*0 at 1e300.
4. **Verify.** The formula becomes Piecewise((form(max(x, s)), x > s),
   (stable(min(x, s)), True)) (mirrored for the other side): each branch reads
   an input clamped to its range, as the rules' clamps do, so no branch warns
   outside it.  It is measured again on the whole grid, and kept only if it
   fails nowhere the stable form passed and fails less.  The candidate with
   the fewest failures left wins, the fewer terms on a tie.

Where it fails near 0, a polynomial about 0 fitted to the whole formula
(`symgrad.series.near_zero_series`) takes over up to where the formula is more
than 4 ulps off.  An output form that is NaN or inf far out is refused
(`output_form_breaks`).

The NumPy target's readable printer is the reference evaluator; the other
targets print the same expression, clamps and select with their own functions.
Catalog layers are audited (`symgrad audit`) and meet the contract by their
rules, so `layer_regimes` searches only formulas outside the catalog, and only
those whose derivative is in x alone with no parameters (a parameter's value
can change after generation, and with it the switch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import mpmath
import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1 as Expm1
from sympy.codegen.cfunctions import log1p as Log1p

from .budgets import attempt
from .catalog import is_builtin
from .functions import clip, near_zero, sigmoid, softplus
from .model import Activation, BackwardPlan, X, Y
from .oracle import breaks_contract, exact, mpmath_function, ulps
from .rewrite import stabilize, tail_products
from .series import near_zero_series

#: The dtypes a regime must serve (float16 is computed in float32).
DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
#: How close to the truth a candidate form must be, in ulps, from its switch on.
_FORM_ULPS = 2.0
#: The most terms of an expansion tried.
_MAX_TERMS = 6
#: The highest power of the expansion variable asked of SymPy's series.
_MAX_ORDER = 12
#: Beyond this |x| a term c_k(x)*t**k is below float64's smallest subnormal
#: (checked per term: `_silent_from`).
_SILENT = mpmath.mpf(2) ** -1100


@dataclass(frozen=True)
class Regime:
    """``form`` (in x) used where side*x > switch, instead of the stable form;
    side 0 is a polynomial about 0 where |x| < switch (``form`` is then x**k,
    times a fitted polynomial of ``terms`` coefficients)."""

    side: int
    switch: float
    form: sympy.Expr
    terms: int
    #: Per dtype name, the worst error beyond the switch, in ulps (verified).
    worst: tuple[tuple[str, float], ...]

    def where(self) -> str:
        """Where it holds: x > 34, x < -34, or |x| < 0.5 (side 0: about 0)."""
        if self.side == 0:
            return f"|x| < {self.switch:g}"
        return f"x > {self.switch:g}" if self.side > 0 else f"x < {-self.switch:g}"

    def describe(self) -> str:
        """One line: where, what, and how accurate."""
        errors = ", ".join(f"{name} {_ulps_text(u)}" for name, u in self.worst)
        form = _text(self.form)
        if self.side == 0:  # form is x**order
            c = f"{self.switch:g}"
            form = (
                f"{form}*P(2*x**2/{c}**2 - 1), P of degree {self.terms - 1} "
                "fitted in 40 digits"
            )
        return f"{self.where()}: {form} (worst {errors})"


@dataclass(frozen=True)
class Regimes:
    """An expression with its regimes (a Piecewise) or as it was, the regimes
    chosen, and the failures that are left (one line each)."""

    expr: sympy.Basic
    chosen: tuple[Regime, ...] = ()
    left: tuple[str, ...] = ()


def with_regimes(stable: sympy.Basic, truth: sympy.Expr) -> Regimes:
    """``stable`` (``truth`` after the rewrite rules) with an asymptotic regime
    on each side where it fails the contract, if one is found and verified."""
    if truth.free_symbols != {X} or stable.free_symbols != {X}:
        return Regimes(stable)
    return attempt(
        "searching regimes where the stable form fails",
        lambda: (
            Regimes(stable) if _plainly_fine(stable) else _Search(stable, truth).run()
        ),
        lambda: Regimes(stable, left=("the regime search ran out of time",)),
        share=0.5,
    )


def _plainly_fine(stable: sympy.Basic) -> bool:
    """Whether the stable form shows none of the signs of a failure on the
    grid, so that the truth (0.3-1 s of mpmath) need not be computed: no
    warning, nothing non-finite, float32 within 1e-3 of float64 wherever
    float64's value is a normal float32 (a cancellation that costs float64
    the contract's 1e-6 leaves float32 nothing), and no 0 in float64 next to
    a value above 1e-250 (a tail flushed to 0, not underflowing through the
    subnormals as exp(x) does).  Measured on float32's grid."""
    x32 = _grid(np.dtype(np.float32))
    x64 = x32.astype(np.float64)
    loud = numpy_function(stable, quiet=False)
    try:
        wide, narrow = loud(x64.copy()), loud(x32.copy())
    except FloatingPointError:
        return False
    if not (np.isfinite(wide).all() and np.isfinite(narrow).all()):
        return False
    info = np.finfo(np.float32)
    comparable = (np.abs(wide) >= info.tiny) & (np.abs(wide) <= info.max)
    relative = np.abs(narrow[comparable] - wide[comparable]) / np.abs(wide[comparable])
    if (relative > 1e-3).any():
        return False
    for side in (x64 > 0, x64 < 0):
        values = np.abs(wide[side])
        if side[0]:  # negative side: from 0 outward is right to left
            values = values[::-1]
        # From 0 outward, a 0 right after a value above 1e-250 is a flushed tail.
        if ((values[1:] == 0) & (values[:-1] > 1e-250)).any():
            return False
    return True


class _Search:
    """One expression's search: its grid, truth and failures, side by side."""

    def __init__(self, stable: sympy.Basic, truth: sympy.Expr) -> None:
        self.stable, self.truth = stable, truth
        self.points = {dtype: _grid(dtype) for dtype in DTYPES}
        self.exact = {dtype: _truth(truth, dtype) for dtype in DTYPES}

    def run(self) -> Regimes:
        before = self.failing(self.stable)
        if not any(f.any() for f in before.values()):
            return Regimes(self.stable)
        expr, chosen, pieces = self.stable, [], []
        for side in (1, -1):
            if not any(
                (f & (side * x > 0)).any()
                for f, x in zip(before.values(), self.points.values(), strict=True)
            ):
                continue
            best = self.best_regime(pieces, side, before)
            if best is not None:
                regime, piece, expr, before = best
                chosen.append(regime)
                pieces.append(piece)
        small = self.near_zero(expr, before)
        if small is not None:
            regime, expr, before = small
            chosen.append(regime)
        left = tuple(
            _failure_text(dtype, self.points[dtype], failing)
            for dtype, failing in before.items()
            if failing.any()
        )
        return Regimes(expr, tuple(chosen), left)

    def near_zero(self, expr, before):
        """(regime, expression with it, its failures) for a polynomial about 0
        where the formula fails below |x| = 1 (log(cosh(x)) is 0 below 1e-8,
        where the truth is x**2/2), or None.  The switch is twice the largest
        such |x|, rounded up; the polynomial is `symgrad.series`' Chebyshev fit
        of the formula itself, x**order * P(2*x**2/c**2 - 1), for a formula odd
        or even about 0 that vanishes there."""
        largest = max(
            (float(np.abs(x[f & (np.abs(x) < 1)]).max(initial=0.0))
             for f, x in zip(before.values(), self.points.values(), strict=True)),
            default=0.0,
        )  # fmt: skip
        if largest == 0.0:
            return None
        # Up to where the formula is more than a few ulps off below |x| = 2,
        # else (if no polynomial fits that far) twice its largest failure.
        evaluate = numpy_function(expr)
        lossy = 0.0
        for dtype, x in self.points.items():
            small = np.abs(x) < 2
            error = ulps(
                evaluate(x[small].copy()), _at(self.exact[dtype], small), dtype
            )
            lossy = max(lossy, float(np.abs(x[small][error > 4]).max(initial=0.0)))
        found = None
        for switch in dict.fromkeys([_round_up(1.2 * lossy), _round_up(2 * largest)]):
            found = found or (switch > 0 and near_zero_series(self.truth, switch))
        if not found:
            return None
        switch, order, coefficients = found
        combined = near_zero(expr, X, sympy.Float(switch), order, *coefficients)
        after = self.failing(combined)
        if any(
            (a & ~b).any() for a, b in zip(after.values(), before.values(), strict=True)
        ):
            return None
        if sum(int(a.sum()) for a in after.values()) >= sum(
            int(b.sum()) for b in before.values()
        ):
            return None
        worst = self.worst(combined, lambda x: np.abs(x) < switch)
        regime = Regime(0, switch, X**order, len(coefficients), worst)
        return regime, combined, after

    def worst(self, expr, where) -> tuple[tuple[str, float], ...]:
        """Per dtype, ``expr``'s worst error in ulps on the grid points
        ``where(x)`` selects: what a regime reports as verified."""
        evaluate = numpy_function(expr)
        found = []
        for dtype, x in self.points.items():
            inside = where(x)
            errors = ulps(
                evaluate(x[inside].copy()), _at(self.exact[dtype], inside), dtype
            )
            found.append((dtype.name, float(errors.max(initial=0.0))))
        return tuple(found)

    def failing(self, expr) -> dict[np.dtype, np.ndarray]:
        """Per dtype, where ``expr`` breaks the contract on the grid: a wrong
        value, or an overflow, invalid or divide warning where the true value
        is finite (atan(exp(x)) is pi/2 at 1e300, but exp warns first)."""
        evaluate = numpy_function(expr)
        loud = numpy_function(expr, quiet=False)
        failing = {}
        for dtype, x in self.points.items():
            head = self.exact[dtype][0]
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(head) & (np.abs(head) <= np.finfo(dtype).max)
            broken = breaks_contract(evaluate(x.copy()), self.exact[dtype], dtype)
            failing[dtype] = broken | (_warns(loud, x) & finite)
        return failing

    def best_regime(self, pieces, side, before):
        """(regime, expression with it, its failures) for the candidate that
        leaves the fewest failures on ``side``, or None if none helps."""
        count = _on_side(before, self.points, side)
        best = None
        for terms, form in enumerate(_candidates(self.truth, side), start=1):
            found = self.regime(pieces, side, form, terms, before)
            if found is None:
                continue
            left = _on_side(found[3], self.points, side)
            if left < count:
                best, count = found, left
            if count == 0:
                break
        return best

    def regime(self, pieces, side, form, terms, before):
        """(regime, its piece, the expression with it, its failures) for one
        candidate, or None if it has no switch or fails anywhere new."""
        switch = self.switch(side, form)
        if switch is None:
            return None
        printed = _clamped_terms(form, side, switch)
        piece = (side, switch, printed)
        combined = _assembled(self.stable, [*pieces, piece])
        after = self.failing(combined)
        if any(
            (a & ~b).any() for a, b in zip(after.values(), before.values(), strict=True)
        ):
            return None
        worst = self.worst(printed, lambda x: side * x > switch)
        regime = Regime(side, switch, form, terms, worst)
        return regime, piece, combined, after

    def switch(self, side, form) -> float | None:
        """The switch point for ``form`` on ``side`` (module docstring, step 3):
        per dtype, where the form starts to hold, or where it first meets the
        stable form from there if that is within a factor of 2; the larger of
        the two dtypes', rounded up to two digits."""
        form_values = numpy_function(_clamped_terms(form, side, 0.0))
        stable_values = numpy_function(self.stable)
        switches = []
        for dtype, x in self.points.items():
            mine = np.flatnonzero(side * x > 0)
            mine = mine[np.argsort(np.abs(x[mine]))]
            xs = x[mine]
            values = form_values(xs.copy())
            start = _holds_from(_close(values, _at(self.exact[dtype], mine), dtype))
            if start is None:
                return None
            held = float(abs(xs[start]))
            meets = _within_ulp(values[start:], stable_values(xs[start:].copy()), dtype)
            meeting = float(abs(xs[start:][meets][0])) if meets.any() else held
            switches.append(meeting if meeting <= 2 * held else held)
        return _round_up(max(switches))


@dataclass(frozen=True)
class LayerRegimes:
    """A layer's regimes: forward's, and backward's where it reads only x;
    neither where no search was made (``skipped`` says why)."""

    forward: Regimes | None
    backward: Regimes | None = None
    #: Why no search was made, if none was.
    skipped: str = ""

    @property
    def chosen(self) -> tuple[tuple[str, Regime], ...]:
        """(direction, regime) for each regime chosen."""
        found = []
        if self.forward is not None:
            found += [("forward", r) for r in self.forward.chosen]
        if self.backward is not None:
            found += [("backward", r) for r in self.backward.chosen]
        return tuple(found)

    def summary(self) -> str:
        """Where the regimes hold, in one line, or "" if there are none."""
        parts = []
        for direction in ("forward", "backward"):
            ranges = [r.where() for d, r in self.chosen if d == direction]
            if ranges:
                parts.append(f"{direction} {', '.join(ranges)}")
        if not parts:
            return ""
        return "; ".join(parts) + " (symgrad check lists the forms)"

    def lines(self) -> list[str]:
        """One line per regime chosen and per failure left."""
        lines = [f"{direction}, {r.describe()}" for direction, r in self.chosen]
        for direction, regimes in (
            ("forward", self.forward),
            ("backward", self.backward),
        ):
            if regimes is not None:
                lines += [f"{direction}, {left}" for left in regimes.left]
        return lines


def output_form_breaks(form: sympy.Expr, act: Activation, truth: sympy.Expr) -> bool:
    """Whether the output form g(y), reading the stable forward's output
    rounded to the dtype, is NaN or inf on the grid where the true slope
    (``truth``, in x) is finite: log(exp(x) + exp(2*x)) has g(y) = (4*exp(y) +
    1 - sqrt(4*exp(y) + 1))*exp(-y)/2, which is 0*inf below x = -709.  Such a
    form is not a trade of digits for memory but a broken backward; only
    formulas in x alone outside the catalog are measured."""
    if is_builtin(act) or act.expr.free_symbols != {X}:
        return False
    forward = numpy_function(stabilize(act.expr, act.prefer))
    slope = numpy_function(stabilize(form, act.prefer).xreplace({Y: X}))
    for dtype in DTYPES:
        x = _grid(dtype)
        with np.errstate(all="ignore"):
            g = slope(forward(x.copy()))
        if np.isfinite(g).all():
            continue  # the truth is not needed
        head, _ = _truth(truth, dtype)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(head) & (np.abs(head) <= np.finfo(dtype).max)
        if (finite & ~np.isfinite(g)).any():
            return True
    return False


def _truth(expr: sympy.Expr, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """expr in mpmath on the grid of dtype (`_grid`), settled: computed once
    on float64's grid, which holds float32's."""
    head, tail = _truth_on_float64_grid(expr)
    where = np.searchsorted(
        _grid(np.dtype(np.float64)), _grid(dtype).astype(np.float64)
    )
    return head[where], tail[where]


@functools.lru_cache(maxsize=64)
def _truth_on_float64_grid(expr: sympy.Expr) -> tuple[np.ndarray, np.ndarray]:
    """The output-form check and the regime search of one derivative ask
    once."""
    return exact(mpmath_function(expr), _grid(np.dtype(np.float64)))


def layer_regimes(act: Activation, plan: BackwardPlan) -> LayerRegimes:
    """The regimes of an activation's layer: searched for forward, and for
    backward where its plan reads only x.  `symgrad.derivation` asks once and
    keeps the answer in the `Derivation`."""
    if is_builtin(act):
        return LayerRegimes(None, skipped="a catalog layer, audited")
    if act.expr.free_symbols != {X}:
        names = ", ".join(sorted(p.name for p in act.params))
        return LayerRegimes(
            None,
            skipped=f"the formula has parameters ({names}), whose values can change",
        )
    forward = stabilize(act.expr, act.prefer)
    backward = None
    if plan.saves == "input" and not plan.param_grads:
        backward = with_regimes(stabilize(plan.local_grad, act.prefer), plan.local_grad)
    return LayerRegimes(with_regimes(forward, act.expr), backward)


@functools.lru_cache(maxsize=4)
def _grid(dtype: np.dtype) -> np.ndarray:
    """Both signs: log-spaced from the dtype's smallest normal number to its
    largest, and dense on [0.5, 2000], where exp(|x|) leaves float32 and
    float64 and where a switch point is usually found.  float64's grid is
    float32's (every float32 is a float64) plus the points beyond float32's
    range, so that the truth is computed once for both."""
    if dtype == np.float64:
        far = np.geomspace(3.5e38, 1.7e308, 40)
        tiny = np.geomspace(2.3e-308, 1e-38, 40)
        extra = np.concatenate([far, [np.finfo(np.float64).max], tiny])
        x = np.concatenate([_grid(np.dtype(np.float32)), extra, -extra])
        return np.unique(x.astype(np.float64))
    info = np.finfo(dtype)
    magnitudes = np.concatenate(
        [
            np.geomspace(1.0, float(info.max) / 2, 40),
            [float(info.max)],
            np.geomspace(0.5, 2000.0, 200),
            np.geomspace(float(info.tiny), 0.5, 30),
        ]
    )
    x = np.concatenate([magnitudes, -magnitudes]).astype(dtype)
    return np.unique(x[np.isfinite(x)])


def _close(values, truth, dtype) -> np.ndarray:
    """Where ``values`` are within `_FORM_ULPS` of the truth, or round as it
    does where it is not a normal float (0 for a subnormal is close enough)."""
    head, _ = truth
    info = np.finfo(dtype)
    a = np.asarray(values, dtype=np.float64)
    error = ulps(a, truth, dtype)
    with np.errstate(all="ignore"):
        normal = (
            np.isfinite(head) & (np.abs(head) >= info.tiny) & (np.abs(head) <= info.max)
        )
        tiny = np.isfinite(head) & (np.abs(head) < info.tiny)
        huge = ~np.isfinite(head) | (np.abs(head) > info.max)
        small_ok = tiny & np.isfinite(a) & (np.abs(a) < info.tiny)
        huge_ok = huge & ((np.abs(a) > info.max) | np.isnan(head))
    return (normal & (error <= _FORM_ULPS)) | small_ok | huge_ok


def _within_ulp(a, b, dtype) -> np.ndarray:
    """Where two results of the dtype differ by at most an ulp of the larger."""
    a = np.asarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    with np.errstate(all="ignore"):
        spacing = np.spacing(np.maximum(np.abs(a), np.abs(b)))
        return np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= spacing)


def _holds_from(close: np.ndarray) -> int | None:
    """The first index from which every element is true, or None."""
    if close.size == 0 or not close[-1]:
        return None
    failing = np.flatnonzero(~close)
    return int(failing[-1]) + 1 if failing.size else 0


def _on_side(failing, points, side) -> int:
    return sum(
        int((f & (side * x > 0)).sum())
        for f, x in zip(failing.values(), points.values(), strict=True)
    )


def _at(truth, where):
    return truth[0][where], truth[1][where]


def _round_up(number: float) -> float:
    """number rounded up to two significant digits, for a readable literal."""
    if number <= 0:
        return 0.0
    unit = 10.0 ** (math.floor(math.log10(number)) - 1)
    return float(f"{math.ceil(number / unit - 1e-9) * unit:.2g}")


# --- step 2: expansions ---------------------------------------------------------


def _candidates(truth: sympy.Expr, side: int) -> Iterator[sympy.Expr]:
    """Partial sums of ``truth``'s expansion at side*oo (module docstring, step
    2), in x, one term more each; at most `_MAX_TERMS`."""
    t = sympy.Dummy("t", positive=True)
    written = _in_exponentials(truth)
    in_t = _exponentials_in(written, side, t)
    if in_t.has(t):
        variable, back = t, {t: sympy.exp(-side * X)}
        log_back = -side * X
    else:
        variable = sympy.Dummy("w", positive=True)
        in_t = written.subs(X, side / variable)
        back, log_back = {variable: side / X}, -sympy.log(side * X)
    in_t = _without_flat_exponentials(in_t, variable)
    if in_t is None:
        return
    terms = _terms(in_t, variable)
    if terms is None:
        return
    if not terms:
        yield sympy.S.Zero
        return
    total = sympy.S.Zero
    for term in terms:
        term = term.subs(sympy.log(variable), log_back).xreplace(back)
        total += term
        yield total


def _terms(expr, variable) -> list[sympy.Expr] | None:
    """The first `_MAX_TERMS` terms of expr's series in ``variable`` at 0+,
    lowest power first, [] where it is 0 to every order tried (exp(-1/t)), None
    where SymPy cannot expand it.  The order asked for grows, up to
    `_MAX_ORDER`: SymPy's lazy series would search forever for the next term
    of a function that is 0 to every order."""
    by_power: dict[sympy.Expr, sympy.Expr] = {}
    for order in (2, 4, 8, _MAX_ORDER):
        try:
            series = expr.series(variable, 0, order).removeO()
        except (
            ValueError,
            NotImplementedError,
            TypeError,
            ZeroDivisionError,
            RecursionError,
            AttributeError,
            sympy.PoleError,
        ):
            return None
        by_power = {}
        for term in sympy.Add.make_args(sympy.expand(series)):
            coefficient, power = term.as_coeff_exponent(variable)
            if coefficient.has(variable) and not _only_logs(coefficient, variable):
                return None
            by_power[power] = by_power.get(power, 0) + coefficient * variable**power
        if len(by_power) >= _MAX_TERMS:
            break
    powers = sorted(by_power, key=float)
    return [by_power[p] for p in powers if by_power[p] != 0][:_MAX_TERMS]


def _only_logs(coefficient, variable) -> bool:
    """Whether ``variable`` appears in ``coefficient`` only as log(variable)."""
    log = sympy.log(variable)
    return not coefficient.xreplace({log: sympy.Dummy()}).has(variable)


def _in_exponentials(expr: sympy.Expr) -> sympy.Expr:
    """expr with symgrad's functions, log1p, expm1 and the hyperbolic functions
    written in exp and log, so that their growth is visible to the expansion."""
    return (
        expr.replace(
            lambda e: isinstance(e, sigmoid), lambda e: 1 / (1 + sympy.exp(-e.args[0]))
        )
        .replace(
            lambda e: isinstance(e, softplus),
            lambda e: sympy.log(1 + sympy.exp(e.args[0])),
        )
        .replace(lambda e: isinstance(e, Log1p), lambda e: sympy.log(1 + e.args[0]))
        .replace(lambda e: isinstance(e, Expm1), lambda e: sympy.exp(e.args[0]) - 1)
        .rewrite(sympy.tanh, sympy.exp)
        .rewrite(sympy.cosh, sympy.exp)
        .rewrite(sympy.sinh, sympy.exp)
    )


def _without_flat_exponentials(expr, variable) -> sympy.Expr | None:
    """expr with each exp(g) whose argument tends to -oo or +oo as the variable
    tends to 0+ (exp(-1/t), exp(2/t): exp(-exp(x)) and tanh(exp(x)) far out)
    written as F or 1/F for F = exp(-|g|), smaller than any power of the
    variable, and F then taken to 0: SymPy cannot expand exp(2/t) at 0, but
    (1/F - F)/(1/F + F) tends to 1.  None if that limit is not finite."""
    flat = sympy.Dummy("F", positive=True)
    replacements = {}
    for e in expr.atoms(sympy.exp):
        try:
            end = sympy.limit(e.args[0], variable, 0, "+")
        except (NotImplementedError, ValueError, TypeError, sympy.PoleError):
            return None
        if end == -sympy.oo:
            replacements[e] = flat
        elif end == sympy.oo:
            replacements[e] = 1 / flat
    if not replacements:
        return expr
    try:  # every such exp alike: each is beyond all orders of the variable
        limit = sympy.limit(expr.xreplace(replacements), flat, 0, "+")
    except (NotImplementedError, ValueError, TypeError, sympy.PoleError):
        return None
    if limit.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan, flat, sympy.Limit):
        return None
    return limit


def _exponentials_in(expr, side, t):
    """exp(a*x + b) -> exp(b) * t**(-a*side), for t = exp(-side*x)."""

    def substitute(e):
        argument = sympy.expand(e.args[0])
        if not argument.is_polynomial(X):
            return e
        poly = sympy.Poly(argument, X)
        if poly.degree() != 1:
            return e
        a, b = poly.all_coeffs()
        return sympy.exp(b) * t ** (-a * side)

    return expr.replace(lambda e: isinstance(e, sympy.exp), substitute)


# --- step 3 and 4: the printed form -------------------------------------------------


def _clamped_terms(form: sympy.Expr, side: int, switch: float) -> sympy.Expr:
    """``form`` reading x clamped to side*x >= switch.  Each term that decays
    exponentially, c(x)*exp(-k*|x|), reads x clamped also where it has left
    float64 for good, and is printed as it is: the rewrite rules would clip
    it where it is below the normal range, which is not where it is small
    beside the other terms (exp(2x) clipped at x = -370 is 4e-322, 10 ulps of
    exp(x) at x = -705); only `tail_products` applies (x*exp(x) at -91 in
    float32, where exp(x) is subnormal).  The other terms go through the
    rules."""
    near = clip(X, switch, sympy.oo) if side > 0 else clip(X, -sympy.oo, -switch)
    total = sympy.S.Zero
    for term in sympy.Add.make_args(sympy.expand(form)):
        far = _silent_from(term, side, switch)
        if far is not None:
            bounded = clip(X, switch, far) if side > 0 else clip(X, -far, -switch)
            term = tail_products(term) or term
            total += term.xreplace({X: bounded})
        else:
            total += _fold_clips(stabilize(term).xreplace({X: near}))
    return total


def _silent_from(term, side, switch) -> float | None:
    """The magnitude beyond which ``term`` is below `_SILENT` for good (an
    exponential decay), or None if it is not such a term."""
    if not term.has(sympy.exp):
        return None
    function = mpmath_function(term)
    with mpmath.workdps(30):
        for far in (750.0, 1500.0, 3000.0, 12000.0, 1e5):
            if far <= switch:
                continue
            try:
                values = [abs(function(mpmath.mpf(side * far * k))) for k in (1, 2, 10)]
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                return None
            if all(v < _SILENT for v in values):
                return far
    return None


def _assembled(stable, pieces) -> sympy.Piecewise:
    """One select: each piece's form beyond its switch (pieces are (side,
    switch, form)), ``stable`` on x clamped between the switches elsewhere."""
    low, high = -sympy.oo, sympy.oo
    branches = []
    for side, switch, form in pieces:
        if side > 0:
            high = sympy.Float(switch)
            branches.append((form, X > high))
        else:
            low = sympy.Float(-switch)
            branches.append((form, X < low))
    inner = _fold_clips(stable.xreplace({X: clip(X, low, high)}))
    return sympy.Piecewise(*branches, (inner, True))


def _fold_clips(expr):
    """clip(clip(u, a, b), c, d) -> clip(u, max(a, c), min(b, d))."""

    def fold(e):
        inner = e.args[0]
        if not isinstance(inner, clip):
            return e
        u, a, b = inner.args
        _, c, d = e.args
        return clip(u, sympy.Max(a, c), sympy.Min(b, d))

    return expr.replace(lambda e: isinstance(e, clip), fold)


# --- evaluation ---------------------------------------------------------------------


def numpy_function(
    expr: sympy.Basic, quiet: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """``expr`` (in x) as the NumPy readable target prints it, as a function of
    an array x; its helpers come from `symgrad.targets.numpy_helpers`.  Unless
    ``quiet``, overflow, invalid and divide warnings raise FloatingPointError
    (the helpers' own deliberate `np.errstate` still holds inside them)."""
    from .targets import numpy_helpers
    from .targets.numpy_readable import ReadablePrinter

    printer = ReadablePrinter({X: "x"}, [X])
    text = printer.doprint(expr)
    tables = SimpleNamespace(
        **{name: coefficients for coefficients, name in printer.table_names.items()}
    )
    namespace = {**vars(numpy_helpers), "np": np, "self": tables}
    # The text is symgrad's own printing of a SymPy expression, never user text.
    function = eval(compile(f"lambda x: {text}", "<symgrad regime>", "eval"), namespace)

    def evaluate(x: np.ndarray) -> np.ndarray:
        if quiet:
            with np.errstate(all="ignore"):
                return np.asarray(function(x), dtype=x.dtype) * np.ones_like(x)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            return np.asarray(function(x), dtype=x.dtype) * np.ones_like(x)

    return evaluate


def _warns(loud: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Where evaluating at x raises a floating-point warning: all of x at
    once, and element by element only if that warns."""
    try:
        loud(x.copy())
        return np.zeros(x.shape, dtype=bool)
    except FloatingPointError:
        pass
    warned = np.zeros(x.shape, dtype=bool)
    for i in range(x.size):
        try:
            loud(x[i : i + 1].copy())
        except FloatingPointError:
            warned[i] = True
    return warned


def _failure_text(dtype, x, failing) -> str:
    where = x[failing]
    return (
        f"{dtype.name}: {int(failing.sum())} of {x.size} grid points still break "
        f"the contract, from x = {float(where.min()):g} to {float(where.max()):g}"
    )


def _ulps_text(count: float) -> str:
    if count < 0.01:
        return "< 0.01 ulps"
    return f"{count:.2g} ulp" + ("" if count == 1 else "s")


def _text(expr: sympy.Expr) -> str:
    from .notation import text

    return text(expr)
