"""`symgrad audit`: how accurate a generated layer is, in ulps, and what it caches.

For each activation, policy and dtype, the layer's forward and backward are run
on a grid (log-spaced from the dtype's smallest normal to its largest, both
signs; dense in [-50, 50] and in +-[50, 2000], denser out to ten times |r|
about each root r of f'; 0..4 ulps either side of every kink and root)
and compared with the SymPy definition and derivative evaluated in mpmath, at a
precision raised until two evaluations agree (x - tanh(x) at 1e-300 needs 600
digits).  Errors are in ulps of the exact value, counted only where it is a
normal float of the dtype; a non-finite result there counts as infinitely far.

Near a root of f' a sum of terms loses relative accuracy to cancellation.
Under `accuracy` the layers fit a polynomial about each root they find, on the
window where the terms cancel by more than 1.5x (`symgrad.series`), and the
verdict counts those points; under `memory` they do not, and that window
(`cancelling`; a quarter of |r| about a root with none) is left out of the
verdict and stated.  Either way the worst error there is shown apart
(``near_roots``).  The range where the `memory` policy's output form loses
(`symgrad.conditioning`) is left out of the verdict, and the audit states it.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import mpmath
import numpy as np
import sympy

from .audit_table import TABLE
from .catalog import resolve
from .conditioning import describe
from .derivation import derive
from .errors import MissingFrameworkError
from .files import replace_atomically
from .functions import clip, erfc, finite, near_root, scaled, tame
from .layer import layer_formulas, shared_part
from .loader import compile as compile_layer
from .model import PREFERENCES, Activation, Prefer, X
from .oracle import CONTRACT, breaks_contract, mpmath_function, settled, split, ulps
from .plan import kink_values
from .series import MAX_ROOTS

#: Ulps allowed per direction: 4, or 64 for layers built on erf/erfc (their
#: polynomial fits and exp(-x**2) tails); float16, computed in float32 and
#: rounded once, 1.
BOUND, ERF_BOUND, FLOAT16_BOUND = 4.0, 64.0, 1.0
#: Near a root r of f', within NEAR_ROOT * max(|r|, 1), the terms of f' cancel
#: (Mish's by 10x at 0.2 from its root); the worst error there is reported
#: apart (``near_roots``), left out of `memory`'s verdict, and a failure there
#: names its cause.
NEAR_ROOT = 0.25
#: How far either side of a root r of f', in units of max(|r|, 1), the grid
#: is dense (2,001 points).
ROOT_REACH = 10.0
#: The dtypes an audit can measure, and those it measures unless asked.
DTYPES = ("float64", "float32", "float16")
DEFAULT_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Errors:
    """One direction's error over the grid, in ulps."""

    max_ulps: float
    p999_ulps: float
    worst_x: float


def contract_terms() -> str:
    """The contract's relative bounds, as the reports state them."""
    bounds = {dtype: f"{CONTRACT[dtype]:g}".replace("e-0", "e-") for dtype in CONTRACT}
    return f"{bounds['float64']} (float64) or {bounds['float32']} (float32)"


@dataclass(frozen=True)
class Failure:
    """A stretch of the grid where one direction breaks the contract."""

    direction: str  # "forward" or "backward"
    low: float
    high: float
    #: What goes wrong: NaN or inf where the true value is finite, or the
    #: worst relative error.
    reason: str
    #: Why, where it is known and stated: near a root of f', or where the
    #: memory policy's form loses (empty otherwise).
    known: str = ""

    def __str__(self) -> str:
        where = (
            f"at x = {self.low:.6g}"
            if self.low == self.high
            else f"for x in [{self.low:.6g}, {self.high:.6g}]"
        )
        known = f" ({self.known})" if self.known else ""
        return f"{self.direction} is {self.reason} {where}{known}"


@dataclass(frozen=True)
class AuditResult:
    """What `audit` found for one activation, policy and dtype."""

    name: str
    prefer: Prefer
    dtype: str
    forward: Errors
    backward: Errors
    #: Where the output form loses (text; empty where nothing does).
    loss: str
    bytes_per_element: float
    bound: float
    #: The worst backward error near a root r of f', where its terms cancel:
    #: in the window about r (`cancelling`), or |x - r| <= max(|r|, 1)/4.
    near_roots: float
    x: np.ndarray = field(repr=False, compare=False)
    forward_ulps: np.ndarray = field(repr=False, compare=False)
    backward_ulps: np.ndarray = field(repr=False, compare=False)
    #: Where the contract (`CONTRACT`) does not hold, grid stretch by stretch.
    failures: tuple[Failure, ...] = ()
    #: The roots of f' the grid found (on [-50, 50]).
    roots: tuple[float, ...] = field(default=(), compare=False)
    #: Where the terms of f' cancel about its roots (`cancelling`), in x.
    windows: tuple[tuple[float, float], ...] = field(default=(), compare=False)

    @property
    def passed(self) -> bool:
        return max(self.forward.max_ulps, self.backward.max_ulps) <= self.bound

    @property
    def verdict(self) -> str:
        if self.passed:
            return f"within {self.bound:g} {_ulps_word(self.bound)}"
        worst = (
            self.forward
            if self.forward.max_ulps > self.backward.max_ulps
            else self.backward
        )
        bound = f"{self.bound:g} {_ulps_word(self.bound)}"
        return f"over {bound} (at x = {worst.worst_x:.6g})"


def _ulps_word(count: float) -> str:
    return "ulp" if count == 1 else "ulps"


def audit(
    acts: Activation | str | Iterable[Activation | str],
    *,
    prefer: Sequence[Prefer] = PREFERENCES,
    dtypes: Sequence[str] = DEFAULT_DTYPES,
    fast: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[AuditResult]:
    """Audit the NumPy layers (readable, or with ``fast`` the block kernels) of
    ``acts`` under each policy in ``prefer`` and each dtype in ``dtypes``."""
    if isinstance(acts, (Activation, str)):
        acts = [acts]
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    results = []
    for act in [resolve(a) for a in acts]:
        oracle = _Oracle(act)
        windows = cancelling(act)  # the same for both policies and every dtype
        for policy in prefer:
            chosen = act.preferring(policy)
            if progress is not None:
                progress(f"auditing {act.name} (prefer={policy})")
            for dtype in dtypes:
                results.append(
                    _audit_one(chosen, np.dtype(dtype), oracle, windows, fast)
                )
    return results


def _audit_one(act: Activation, dtype: np.dtype, oracle: _Oracle, windows, fast):
    derivation = derive(act)
    layer_class = compile_layer(act, fast=fast)
    layer = layer_class()
    x, roots = grid(act, dtype, oracle)
    module = sys.modules[layer_class.__module__]
    # A fast layer gives small arrays to its readable statements: audit its kernels.
    small = getattr(module, "_SMALL", None)
    if small is not None:
        module._SMALL = 0
    try:
        with np.errstate(all="ignore"):
            y = layer.forward(x.copy())
            dx = layer.backward(np.ones_like(x))
    finally:
        if small is not None:
            module._SMALL = small
    exact_y, exact_dy = oracle.values(x)
    forward = ulps(np.asarray(y), exact_y, dtype)
    backward = ulps(np.asarray(dx), exact_dy, dtype)
    near = _near(x, roots) | _inside(x, windows)
    lossy = derivation.lossy if derivation.plan.saves == "output" else ()
    shared = shared_part(derivation)
    if shared is not None and not lossy:
        lossy = shared.lossy
    inside = _inside(x, lossy)
    # Under memory no polynomial is fitted about a root of f' (it would cost
    # SiLU 3-7x its time); the loss there is shown apart, not in the verdict.
    left_out = near if act.prefer == "memory" else np.zeros_like(near)
    bound = ERF_BOUND if _uses_erf(derivation) else BOUND
    if dtype == np.float16:
        bound = FLOAT16_BOUND
    return AuditResult(
        name=act.name,
        prefer=act.prefer,
        dtype=dtype.name,
        forward=_summary(x, forward),
        backward=_summary(x[~(inside | left_out)], backward[~(inside | left_out)]),
        loss=describe(lossy),
        bytes_per_element=_bytes_cached(layer, dtype),
        bound=bound,
        near_roots=float(backward[near].max(initial=0.0)),
        x=x,
        roots=tuple(roots),
        windows=windows,
        forward_ulps=forward,
        backward_ulps=backward,
        failures=(
            *contract_failures(x, np.asarray(y), exact_y, dtype, "forward"),
            *(
                _explained(failure, roots, windows, lossy, act.prefer)
                for failure in contract_failures(
                    x, np.asarray(dx), exact_dy, dtype, "backward"
                )
            ),
        ),
    )


def _explained(failure: Failure, roots, windows, lossy, prefer: str) -> Failure:
    """The failure, with its known cause where it lies within a quarter of a
    root of f' (`NEAR_ROOT`) or the window where its terms cancel, or within
    the range where the cached form loses."""
    ends = np.array([failure.low, failure.high])
    if (_near(ends, roots) | _inside(ends, windows)).all():
        return replace(failure, known="near a root of f'")
    if _inside(ends, lossy).all():
        return replace(failure, known=f"where prefer={prefer!r}'s form loses")
    return failure


def contract_failures(
    x: np.ndarray,
    actual: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    dtype: np.dtype,
    direction: str,
) -> list[Failure]:
    """The stretches of the (sorted) grid x where ``actual`` is NaN or inf and
    the true value (float64 head + tail) is finite in ``dtype``, or where it
    is off by more than `CONTRACT` relative and the true value is normal: one
    `Failure` per run of consecutive points that fail the same way."""
    head, tail = exact
    a = actual.astype(np.float64)
    with np.errstate(all="ignore"):
        relative = np.abs((a - head) - tail) / np.abs(head)
    kinds = np.zeros(x.shape, dtype=np.int8)  # 0 fine, 1 NaN, 2 inf, 3 off
    kinds[breaks_contract(a, exact, dtype)] = 3
    kinds[(kinds == 3) & np.isinf(a)] = 2
    kinds[(kinds == 3) & np.isnan(a)] = 1
    failures = []
    starts = np.flatnonzero(np.diff(kinds, prepend=0) != 0)
    ends = [*starts[1:], kinds.size] if starts.size else []
    for start, end in zip(starts, ends, strict=True):
        kind = int(kinds[start])
        if kind == 0:
            continue
        if kind == 3:
            reason = f"off by up to {relative[start:end].max():.2g} relative"
        else:
            value = "NaN" if kind == 1 else "inf"
            reason = f"{value} where the true value is finite"
        failures.append(Failure(direction, float(x[start]), float(x[end - 1]), reason))
    return failures


def grid(
    act: Activation, dtype: np.dtype, oracle: _Oracle
) -> tuple[np.ndarray, list[float]]:
    """The audit's points in ``dtype``, and the roots of f' among them."""
    info = np.finfo(dtype)
    logs = np.linspace(math.log10(info.tiny), math.log10(info.max), 400)
    with np.errstate(over="ignore"):  # the last one rounds past max: dropped
        magnitudes = 10.0**logs
    # Where exp(-|x|) leaves the dtype's normal range (|x| from 87 in float32,
    # 708 in float64), a product with a subnormal factor can still be normal:
    # +-[50, 2000] densely, so that such windows are seen.
    far = np.geomspace(50.0, 2000.0, 800)
    points = [magnitudes, -magnitudes, far, -far, np.linspace(-50.0, 50.0, 1001), [0.0]]
    kinks = [
        float(p.subs(act.values))
        for p, _ in kink_values(derive(act).derivative, act.values)
    ]
    roots = oracle.roots(np.linspace(-50.0, 50.0, 1001))
    for centre in kinks + roots:
        points.append(_ulps_around(centre, dtype))
    # About a root the slope's terms cancel, mildly (by 1.1-1.5x) far out from
    # it (Mish's to x = -20); there an error over the bound at one point in fifty
    # showed only on a grid ten times as dense as the one above.
    # A periodic slope (sin's, 32 roots on the grid) is not a sum that cancels
    # about a root, and is not fitted about them (`series.series_near_root`).
    for root in roots if len(roots) <= MAX_ROOTS else ():
        reach = ROOT_REACH * max(abs(root), 1.0)
        points.append(np.linspace(root - reach, root + reach, 2001))
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.unique(
            np.concatenate([np.asarray(p, dtype=np.float64) for p in points]).astype(
                dtype
            )
        )
    return x[np.isfinite(x)], roots


def _ulps_around(centre: float, dtype: np.dtype, reach: int = 4) -> list[float]:
    value = np.asarray(centre, dtype=dtype)
    below, above = [value], [value]
    for _ in range(reach):
        below.append(np.nextafter(below[-1], dtype.type(-np.inf)))
        above.append(np.nextafter(above[-1], dtype.type(np.inf)))
    return [float(v) for v in below + above]


def _summary(x: np.ndarray, error: np.ndarray) -> Errors:
    if error.size == 0:
        return Errors(0.0, 0.0, math.nan)
    worst = int(np.argmax(error))
    return Errors(
        float(error[worst]),
        float(np.quantile(error, 0.999, method="higher")),
        float(x[worst]),
    )


def cancelling(act: Activation) -> tuple[tuple[float, float], ...]:
    """The windows, in x, where the terms of the slope cancel about a root of
    it by more than 1.5x: those `prefer="accuracy"` fits a polynomial on
    (`symgrad.series.series_near_root`), where `prefer="memory"`, which sums
    the terms as written, loses relative accuracy (without bound at the root).
    A window fitted in u = p*x (Swish's) is mapped back with p's value."""
    formulas = layer_formulas(derive(act.preferring("accuracy")))
    windows = set()
    for _, expr in formulas.backward:
        for node in expr.atoms(near_root):
            lower, upper = node.window
            u = node.args[1].replace(
                lambda e: isinstance(e, scaled), lambda e: e.as_product()
            )
            u = u.replace(
                lambda e: isinstance(e, (clip, finite, tame)), lambda e: e.args[0]
            )
            scale = (u / X).subs(act.values)
            if not scale.is_number or scale == 0:
                continue  # not p*x: the quarter of |r| about the root stands
            ends = sorted((lower / float(scale), upper / float(scale)))
            windows.add((ends[0], ends[1]))
    return tuple(sorted(windows))


def _near(x: np.ndarray, roots: list[float]) -> np.ndarray:
    near = np.zeros(x.shape, dtype=bool)
    for root in roots:
        near |= np.abs(x.astype(np.float64) - root) <= NEAR_ROOT * max(abs(root), 1.0)
    return near


def _inside(x: np.ndarray, ranges) -> np.ndarray:
    inside = np.zeros(x.shape, dtype=bool)
    for low, high in ranges:
        inside |= (x >= low) & (x <= high)
    return inside


def _uses_erf(derivation) -> bool:
    return derivation.forward.has(sympy.erf, sympy.erfc, erfc)


def _bytes_cached(layer, dtype: np.dtype, count: int = 1024) -> float:
    """Bytes per element that forward keeps for backward, measured."""
    layer.forward(np.linspace(-3.0, 3.0, count).astype(dtype))
    kept = sum(
        value.nbytes for value in vars(layer).values() if isinstance(value, np.ndarray)
    )
    return kept / count


class _Oracle:
    """f and f' of one activation in mpmath, from its SymPy definition, at a
    precision raised until two evaluations agree to 40 digits."""

    def __init__(self, act: Activation) -> None:
        derivation = derive(act)
        self.functions = [
            mpmath_function(e.subs(act.values))
            for e in (derivation.forward, derivation.derivative)
        ]
        self.cache: dict[float, tuple[mpmath.mpf | None, mpmath.mpf | None]] = {}

    def at(self, x: float):
        if x not in self.cache:
            self.cache[x] = tuple(settled(f, x) for f in self.functions)
        return self.cache[x]

    def values(self, xs: np.ndarray):
        """(y, dy/dx) at xs, each as float64 head and tail arrays (NaN where
        the value is not a real number)."""
        pairs = [self.at(float(x)) for x in xs.astype(np.float64)]
        return tuple(split([pair[k] for pair in pairs]) for k in (0, 1))

    def roots(self, xs: np.ndarray) -> list[float]:
        """The roots of f' in [xs[0], xs[-1]], by bisection from sign changes."""
        derivative = self.functions[1]
        found = []
        values = [self.at(float(x))[1] for x in xs]
        for a, b, fa, fb in zip(xs, xs[1:], values, values[1:], strict=False):
            if fa is None or fb is None or fa == 0 or fa * fb > 0:
                continue
            with mpmath.workdps(40):
                root = mpmath.findroot(
                    derivative, (mpmath.mpf(a), mpmath.mpf(b)), solver="anderson"
                )
            found.append(float(root))
        return found


def report(results: Sequence[AuditResult]) -> str:
    """A Markdown table of audit results."""
    header = (
        "| layer | prefer | dtype | forward max / p99.9 (ulps) | worst x | "
        "backward max / p99.9 (ulps) | worst x | near f' roots | output form loses | "
        "bytes cached | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r.name} | {r.prefer} | {r.dtype} | {r.forward.max_ulps:.3g} / "
        f"{r.forward.p999_ulps:.3g} | {r.forward.worst_x:.6g} | "
        f"{r.backward.max_ulps:.3g} / {r.backward.p999_ulps:.3g} | "
        f"{r.backward.worst_x:.6g} | {r.near_roots:.3g} | {r.loss or '-'} | "
        f"{r.bytes_per_element:g} | {r.verdict} |"
        for r in results
    ]
    broken = failure_lines(results)
    notes = (
        [
            "",
            "Where the layer is not finite, or not within "
            f"{contract_terms()} relative, while the true value is:",
            *broken,
        ]
        if broken
        else []
    )
    return "\n".join([header, *rows, *notes]) + "\n"


def unexplained(results: Sequence[AuditResult]) -> list[Failure]:
    """The failures no stated loss explains."""
    return [f for r in results for f in r.failures if not f.known]


def failure_lines(results: Sequence[AuditResult]) -> list[str]:
    """One line per `Failure`, saying which layer, policy and dtype."""
    return [
        f"- {r.name} ({r.prefer}, {r.dtype}): {failure}"
        for r in results
        for failure in r.failures
    ]


def plot(results: Sequence[AuditResult], path: str) -> None:
    """log10(ulps) against x (symlog axis, |x| <= 1e3), one panel per layer and direction,
    one line per policy, for the first dtype audited; written to ``path`` (.png
    or .svg).  Needs matplotlib (``pip install symgrad[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise MissingFrameworkError(
            "--plot needs matplotlib; install it with: pip install 'symgrad[plot]'"
        ) from None
    dtype = results[0].dtype
    shown = [r for r in results if r.dtype == dtype]
    names = list(dict.fromkeys(r.name for r in shown))
    figure, axes = pyplot.subplots(
        len(names), 2, figsize=(10, 2.2 * len(names)), squeeze=False, sharex=True
    )
    colours = {"memory": "tab:orange", "accuracy": "tab:blue"}
    for row, name in zip(axes, names, strict=True):
        # Accuracy first, so that where the policies agree memory's dots show.
        for r in sorted((r for r in shown if r.name == name), key=lambda r: r.prefer):
            # Beyond |x| = 1e3 every layer here is at its limits: the plot shows
            # where things happen, on matplotlib's symlog axis.
            inside = np.abs(r.x) <= _PLOTTED
            for axis, errors, what in (
                (row[0], r.forward_ulps, "forward"),
                (row[1], r.backward_ulps, "backward"),
            ):
                height = np.log10(np.clip(errors[inside], 1e-2, 1e18))
                axis.plot(
                    r.x[inside], height, ".", ms=1.5, color=colours[r.prefer],
                    label=f"prefer={r.prefer}",
                )  # fmt: skip
                axis.set_xscale("symlog", linthresh=1.0)
                axis.set_xlim(-_PLOTTED, _PLOTTED)
                axis.axhline(math.log10(r.bound), color="grey", lw=0.5)
                axis.set_title(f"{name} {what} ({dtype})", fontsize=9)
                axis.set_ylabel("log10 ulps", fontsize=8)
                axis.tick_params(labelsize=7)
        row[1].legend(fontsize=7, markerscale=4, loc="upper left")
    for axis in axes[-1]:
        axis.set_xlabel("x (symlog: linear within |x| < 1)")
    figure.tight_layout()
    # Drawn to a temporary file and renamed, so a failure leaves no partial plot.
    kind = os.path.splitext(path)[1][1:].lower()
    try:
        replace_atomically(path, lambda stream: figure.savefig(stream, format=kind))
    finally:
        pyplot.close(figure)


#: The plot's x range, +-1e3: beyond it the catalog's layers sit at their limits.
_PLOTTED = 1e3


def catalog_table(progress: Callable[[str], None] | None = None) -> dict:
    """The audit of every catalog layer at its defaults, per policy and dtype:
    ``{"name/prefer/dtype": {"forward": ulps, "backward": ulps, "passed": bool}}``
    (the worst errors the verdict counts, rounded up to two digits), and
    ``"roots"``, those of f' near which backward is over the bound, and the
    ``"windows"`` about them where the terms cancel (`cancelling`), the verdict
    leaving them out (`memory`)."""
    from .catalog import CATALOG

    table = {}
    for r in audit(sorted(CATALOG), progress=progress):
        row = {
            "forward": _round_up(r.forward.max_ulps),
            "backward": _round_up(r.backward.max_ulps),
            "passed": r.passed,
        }
        if r.near_roots > r.bound and r.prefer == "memory":
            row["roots"] = [float(f"{root:.3g}") for root in r.roots]
            row["windows"] = [[float(f"{e:.3g}") for e in w] for w in r.windows]
        table[f"{r.name}/{r.prefer}/{r.dtype}"] = row
    return table


def _round_up(ulps: float) -> float:
    if not math.isfinite(ulps):
        return math.inf
    if ulps <= 0:
        return 0.0
    unit = 10.0 ** (math.floor(math.log10(ulps)) - 1)
    return float(f"{math.ceil(ulps / unit) * unit:.2g}")


def stderr_progress(message: str) -> None:
    print(f"symgrad: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":  # python -m symgrad.auditing: refresh the stored table
    TABLE.write_text(
        json.dumps(catalog_table(stderr_progress), indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
