"""The stored audit of the catalog's layers, which their docstrings quote.

`python -m symgrad.auditing` measures every catalog layer at its defaults, per
precision policy and dtype, and writes ``audited.json`` beside this module; a
test audits the layers again and fails if any is worse than the table says.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from .model import Activation

#: Where the audited figures are kept.
TABLE = Path(__file__).with_name("audited.json")
#: The dtypes the table holds, in the order docstrings quote them.
DTYPES = ("float64", "float32")


@functools.cache
def _table() -> dict[str, dict]:
    try:
        return json.loads(TABLE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def audited(act: Activation) -> dict[str, dict] | None:
    """The stored audit of a catalog layer at its default parameters, per
    dtype (``{"forward": ulps, "backward": ulps, "passed": bool}``), or None
    for a formula or other parameter values."""
    from .catalog import CATALOG

    known = CATALOG.get(act.name)
    if known is None or known.preferring(act.prefer) != act:
        return None
    found = {d: _table().get(f"{act.name}/{act.prefer}/{d}") for d in DTYPES}
    return None if None in found.values() else found


def audited_sentence(act: Activation, lossy: bool = False) -> str:
    """The stored figures as a sentence (backward's outside the range where the
    cached output loses, if ``lossy``, and near a root of the slope where the
    table lists one), or how to measure them."""
    found = audited(act)
    if found is None:
        return "`symgrad audit` measures this layer's error in ulps."
    figures = ", ".join(
        f"{direction} {' and '.join(_figure(found[d][direction]) for d in DTYPES)}"
        for direction in ("forward", "backward")
    )
    where = " outside that range" if lossy else ""
    sentence = (
        f"Audited worst error in ulps, {' and '.join(DTYPES)} (`symgrad audit`): "
        f"{figures}{where}."
    )
    sentence += _over_the_bound(act, found)
    roots = sorted({r for d in DTYPES for r in found[d].get("roots", ())})
    windows = sorted({tuple(w) for d in DTYPES for w in found[d].get("windows", ())})
    if windows:
        at = " and ".join(f"{low:g} < x < {high:g}" for low, high in windows)
        near = " and ".join(f"{r:g}" for r in roots)
        sentence += (
            f" Where {at}, about the slope's root at x = {near}, its terms cancel "
            "by more than 1.5x: backward loses relative accuracy there, without "
            "bound at the root (prefer='accuracy' fits a polynomial there)."
        )
    elif roots:
        at = " and ".join(f"x = {r:g}" for r in roots)
        sentence += (
            f" Within a quarter of the slope's root at {at}, its terms cancel and "
            "backward's relative error is not bounded (prefer='accuracy' fits "
            "a polynomial about it)."
        )
    return sentence


def _over_the_bound(act: Activation, found: dict[str, dict]) -> str:
    """Under `memory`, where the audit failed and `accuracy`'s passed: which
    dtypes, and what `accuracy` measures instead, so the docstring states the
    loss `memory` keeps (no catalog layer has one: a safety net)."""
    if act.prefer != "memory":
        return ""
    other = audited(act.preferring("accuracy"))
    failed = [d for d in DTYPES if not found[d]["passed"]]
    if other is None or not failed or not all(other[d]["passed"] for d in failed):
        return ""
    figures = " and ".join(_figure(other[d]["backward"]) for d in failed)
    windowed = any(found[d].get("windows") for d in failed)
    where = " outside the window named next" if windowed else ""
    return (
        f" In {' and '.join(failed)}, backward is over its bound{where}; "
        f"prefer='accuracy' is within it (backward {figures})."
    )


def _figure(ulps: float) -> str:
    return "inf" if ulps == float("inf") else f"{float(f'{ulps:.2g}'):g}"
