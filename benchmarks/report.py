"""The README's performance tables, from the JSON that run.py writes.

    python benchmarks/report.py [results.json [results-avx2.json]] > tables.md

Each table puts the CPU classes side by side (the machine and SIMD level of each
run stated above the tables); a missing file leaves its columns out.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHOWN = ["relu", "sigmoid", "tanh", "gelu", "silu", "softplus", "mish", "elu"]


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def label(report: dict) -> str:
    info = report["machine"]
    return "AVX2" if info["emulated"] or "AVX2" in info["cpu_class"] else "AVX-512"


def machines(reports: list[dict]) -> list[str]:
    lines = []
    for report in reports:
        info = report["machine"]
        how = (
            "NumPy's AVX-512 code switched off with NPY_DISABLE_CPU_FEATURES"
            if info["emulated"]
            else "as it is"
        )
        lines.append(
            f"- **{label(report)}**: {info['cpu']}, {info['cores']} cores, "
            f"Python {info['python']}, NumPy {info['numpy']}, {how}; NumPy's "
            f"runtime report of SIMD extensions found: "
            f"{' '.join(info['simd']['found']) or 'none'}."
        )
    return lines


def book_table(reports: list[dict]) -> list[str]:
    """ReLU and Sigmoid at the book's shapes against the book's classes."""
    head = "| layer | dtype | shape |"
    rule = "|---|---|---|"
    for report in reports:
        name = label(report)
        head += f" book ({name}) | readable | readable/book | fast/readable |"
        rule += "---|---|---|---|"
    rows = defaultdict(list)
    for report in reports:
        for row in report.get("learner", []):
            if "readable_over_book" in row:
                key = (row["activation"], row["dtype"], tuple(row["shape"]))
                rows[key].append(
                    f" {row['book_us']:.1f} us | {row['readable_us']:.1f} us | "
                    f"{row['readable_over_book']:.2f} | {row['fast_over_readable']:.2f} |"
                )
    lines = [head, rule]
    for (name, dtype, shape), cells in rows.items():
        lines.append(f"| {name} | {dtype} | {shape} |" + "".join(cells))
    return lines


def catalog_table(reports: list[dict]) -> list[str]:
    """Per catalog layer, the worst ratio over the book's shapes and dtypes."""
    head = "| layer |"
    rule = "|---|"
    for report in reports:
        name = label(report)
        head += f" readable/plain, worst ({name}) | fast/readable, worst |"
        rule += "---|---|"
    worst: dict[str, list[str]] = defaultdict(list)
    for report in reports:
        by_layer = defaultdict(list)
        for row in report.get("learner", []):
            by_layer[row["activation"]].append(row)
        for name, rows in by_layer.items():
            plain = max(r["readable_over_plain"] for r in rows)
            fast = max(r["fast_over_readable"] for r in rows)
            worst[name].append(f" {plain:.2f} | {fast:.2f} |")
    return [head, rule] + [f"| {n} |" + "".join(c) for n, c in worst.items()]


def sizes_table(reports: list[dict], dtype: str) -> list[str]:
    head = "| layer | N |"
    rule = "|---|---|"
    for report in reports:
        name = label(report)
        head += f" naive ({name}) | readable/naive | fast/naive |"
        rule += "---|---|---|"
    rows = defaultdict(list)
    for report in reports:
        for row in report.get("sizes", []):
            if row["dtype"] == dtype and row["activation"] in SHOWN:
                key = (row["activation"], row["size"])
                rows[key].append(
                    f" {_time(row['naive_us'])} | {row['readable_over_naive']:.2f} | "
                    f"{row['fast_over_naive']:.2f} |"
                )
    lines = [head, rule]
    for (name, size), cells in sorted(
        rows.items(), key=lambda kv: (SHOWN.index(kv[0][0]), kv[0][1])
    ):
        lines.append(f"| {name} | {size:.0e} |" + "".join(cells))
    return lines


def targets(reports: list[dict]) -> list[str]:
    lines = []
    for report in reports:
        checks = report.get("targets", [])
        met = sum(c["met"] for c in checks)
        lines.append(f"- {label(report)}: {met} of {len(checks)} targets met.")
    return lines


def _time(us: float) -> str:
    return f"{us / 1e3:.2f} ms" if us >= 1e3 else f"{us:.0f} us"


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [
        HERE / "results.json",
        HERE / "results-avx2.json",
    ]
    reports = load(paths)
    if not reports:
        raise SystemExit("report.py: no results; run benchmarks/run.py first")
    out = machines(reports) + [""]
    out += book_table(reports) + [""] + catalog_table(reports) + [""]
    out += sizes_table(reports, "float32") + [""] + targets(reports)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
