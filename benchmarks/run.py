"""Generated layers against seed-style NumPy, the memory-bandwidth floor and PyTorch.

    python benchmarks/run.py [--activations relu,sigmoid] [--sizes 1e5,1e6]
                             [--dtypes float32] [--repeats 1.0] [--json PATH]
                             [--markdown PATH] [--no-torch] [--skip-startup]

Everything is measured in one process and interleaved: each repeat runs every
candidate once, in turn, so a slow minute of the machine hurts all of them
alike.  Reported are medians, and ratios of medians:

- ``seed/gen``: how many times faster the generated layer is than the
  hand-written seed-style class (`baselines.py`);
- ``gen/floor``: the generated layer writing into preallocated ``out=`` buffers
  against the memory-bandwidth floor, one ``np.copyto`` (forward) and one
  ``np.multiply(out=)`` (backward) over the same arrays, also preallocated (a
  fresh 40 MB array costs page faults that neither should be charged with);
- ``gen/torch``: against PyTorch CPU autograd, when torch can be imported.

PyTorch's OpenMP threads spin for a while after each call; interleaved with
other threaded code that steals a core from whoever runs next, so the script
sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before importing torch.

Also measured: peak extra memory (tracemalloc) of forward+backward at the
largest size, generating the whole catalog cold, a cached ``symgrad.compile``
in a new process, and importing a generated module over importing NumPy.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from baselines import SEED_STYLE, scipy_gelu  # noqa: E402

import symgrad  # noqa: E402
from symgrad.loader import import_path  # noqa: E402

ACTIVATIONS = list(SEED_STYLE)
SIZES = [1_000, 100_000, 1_000_000, 10_000_000]
DTYPES = ["float32", "float64"]
PHASES = ("forward", "backward", "both")
FLOOR_TARGETS = ("relu", "sigmoid", "tanh", "silu", "softplus")


def load_torch(enabled: bool):
    if not enabled:
        return None
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    return torch, {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "softplus": F.softplus,
        "mish": F.mish,
        "elu": F.elu,
    }


def generated_classes(names: list[str], folder: Path) -> dict[str, type]:
    """The generated layers, written to one module and imported like a user would."""
    path = folder / "bench_layers.py"
    path.write_text(symgrad.generate(names))
    module = import_path(path, "bench_layers")
    return {n: getattr(module, symgrad.activation(n).class_name) for n in names}


# -- candidates: each returns {phase: zero-argument function to time} ---------------


def layer_phases(layer, x, dout, buffers=False) -> dict[str, Callable[[], object]]:
    """Forward, backward and both; with ``buffers``, into preallocated out= arrays
    (as the floor writes), else allocating their results (as torch does)."""
    out = np.empty_like(x) if buffers else None
    dx = np.empty_like(x) if buffers else None

    def forward():
        return layer.forward(x, out=out)

    def backward():
        return layer.backward(dout, out=dx)

    def both():
        layer.forward(x, out=out)
        return layer.backward(dout, out=dx)

    forward()
    return {"forward": forward, "backward": backward, "both": both}


def seed_phases(layer, x, dout) -> dict[str, Callable[[], object]]:
    # The seed-style ReLU writes into dout; give it its own copy to spoil.
    own = dout.copy()

    def backward():
        return layer.backward(own)

    def both():
        layer.forward(x)
        return layer.backward(own)

    layer.forward(x)
    return {"forward": lambda: layer.forward(x), "backward": backward, "both": both}


def torch_phases(torch, function, x, dout) -> dict[str, Callable[[], object]]:
    tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)
    pending = []

    def forward():
        return function(tx.detach().requires_grad_())

    def prepare_backward():
        leaf = tx.detach().requires_grad_()
        pending.append(function(leaf))

    def backward():
        if not pending:
            prepare_backward()
        pending.pop().backward(tdout)

    def both():
        leaf = tx.detach().requires_grad_()
        function(leaf).backward(tdout)
        return leaf.grad

    return {
        "forward": forward,
        "backward": backward,
        "both": both,
        "_prepare": {"backward": prepare_backward},
    }


def floor_phases(x, dout) -> dict[str, Callable[[], object]]:
    out, dx = np.empty_like(x), np.empty_like(x)

    def both():
        np.copyto(out, x)
        np.multiply(dout, x, out=dx)

    return {
        "forward": lambda: np.copyto(out, x),
        "backward": lambda: np.multiply(dout, x, out=dx),
        "both": both,
    }


# -- timing ------------------------------------------------------------------------


def repeats_for(size: int, scale: float) -> int:
    base = {1_000: 300, 100_000: 60, 1_000_000: 25, 10_000_000: 9}.get(size)
    if base is None:
        base = max(5, int(3e7 / max(size, 1)))
        base = min(base, 300)
    return max(3, int(base * scale))


def interleaved(candidates: dict[str, dict], repeats: int) -> dict[str, dict]:
    """Median seconds per (candidate, phase), running every candidate in turn."""
    samples = {name: {phase: [] for phase in PHASES} for name in candidates}
    order = list(candidates)
    for phase in PHASES:
        for name in order:  # warm up: first touches, thread pools, caches
            candidates[name][phase]()
        for r in range(repeats):
            rotated = order[r % len(order) :] + order[: r % len(order)]
            for name in rotated:
                prepare = candidates[name].get("_prepare", {}).get(phase)
                if prepare:
                    prepare()
                run = candidates[name][phase]
                started = time.perf_counter()
                run()
                samples[name][phase].append(time.perf_counter() - started)
    return {
        name: {phase: statistics.median(v) for phase, v in phases.items()}
        for name, phases in samples.items()
    }


def peak_memory(make_layer, x, dout) -> float:
    """Peak memory allocated during forward+backward, in units of x's size."""
    layer = make_layer()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        layer.forward(x)
        layer.backward(dout)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / x.nbytes


def cached_arrays(name: str, dtype: np.dtype) -> float:
    """The arrays a generated layer caches for backward, in units of x's size: a
    bool mask is 1/itemsize of it; the input, the output or a shared part (s)
    count as one each."""
    from symgrad.codegen import layer_source

    sizes = {"mask": 1 / np.dtype(dtype).itemsize, "x": 1.0, "out": 1.0, "s": 1.0}
    cache = layer_source(symgrad.derive(name)).cache
    return sum(sizes.get(attribute, 0.0) for attribute in cache)


# -- generation and import speed -----------------------------------------------------


def _subprocess_seconds(code: str, env: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=HERE.parent,
    )
    return float(result.stdout.strip().splitlines()[-1])


def startup_figures(names: list[str], repeats: int = 5) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SYMGRAD_CACHE": cache, "PYTHONPATH": str(HERE.parent)}
        catalog = _subprocess_seconds(
            "import time; t = time.perf_counter(); import symgrad; "
            "symgrad.generate(list(symgrad.CATALOG)); print(time.perf_counter() - t)",
            env,
        )
        compile_code = (
            "import time; import numpy; t = time.perf_counter(); import symgrad; "
            "symgrad.compile('sigmoid'); print(time.perf_counter() - t)"
        )
        cold_compile = _subprocess_seconds(compile_code, env)
        warm = [_subprocess_seconds(compile_code, env) for _ in range(repeats)]
        module = Path(cache) / "bench_import.py"
        module.write_text(symgrad.generate(names))
        numpy_only, layers = [], []
        for _ in range(repeats):
            numpy_only.append(
                _subprocess_seconds(
                    "import time; t = time.perf_counter(); import numpy; "
                    "print(time.perf_counter() - t)",
                    env,
                )
            )
            layers.append(
                _subprocess_seconds(
                    f"import sys, time; sys.path.insert(0, {cache!r}); "
                    "t = time.perf_counter(); import numpy; "
                    "u = time.perf_counter(); import bench_import; "
                    "print(time.perf_counter() - u)",
                    env,
                )
            )
    return {
        "catalog_generate_cold_s": catalog,
        "compile_cold_s": cold_compile,
        "compile_cached_s": statistics.median(warm),
        "import_numpy_s": statistics.median(numpy_only),
        "import_generated_over_numpy_s": statistics.median(layers),
    }


# -- report ------------------------------------------------------------------------


def rows_for(results: dict, name: str, dtype: str, size: int) -> list[dict]:
    rows = []
    for phase in PHASES:
        gen = results["generated"][phase]
        row = {
            "activation": name,
            "dtype": dtype,
            "size": size,
            "phase": phase,
            "generated_us": gen * 1e6,
            "seed_us": results["seed"][phase] * 1e6,
            "floor_us": results["floor"][phase] * 1e6,
            "buffers_us": results["buffers"][phase] * 1e6,
            "seed_over_generated": results["seed"][phase] / gen,
            "generated_over_floor": results["buffers"][phase] / results["floor"][phase],
        }
        if "torch" in results:
            row["torch_us"] = results["torch"][phase] * 1e6
            row["generated_over_torch"] = gen / results["torch"][phase]
        if "scipy" in results and phase == "forward":
            row["scipy_us"] = results["scipy"][phase] * 1e6
            row["scipy_over_generated"] = results["scipy"][phase] / gen
        rows.append(row)
    return rows


def format_row(row: dict) -> str:
    torch_part = (
        f"{row['torch_us']:>10.0f} {row['generated_over_torch']:>9.2f}"
        if "torch_us" in row
        else f"{'-':>10} {'-':>9}"
    )
    return (
        f"{row['activation']:<10} {row['dtype']:<8} {row['size']:>9.0e} "
        f"{row['phase']:<8} {row['generated_us']:>10.0f} {row['seed_us']:>10.0f} "
        f"{row['seed_over_generated']:>8.2f} {row['generated_over_floor']:>9.2f} "
        + torch_part
    )


HEADER = (
    f"{'layer':<10} {'dtype':<8} {'N':>9} {'phase':<8} {'gen us':>10} "
    f"{'seed us':>10} {'seed/gen':>8} {'gen/floor':>9} {'torch us':>10} "
    f"{'gen/torch':>9}"
)


def targets(rows: list[dict], memory: list[dict], startup: dict) -> list[dict]:
    """Each target of the speed issue with its measured value."""
    checks = []

    def check(what, value, limit, ok):
        checks.append({"target": what, "value": value, "limit": limit, "met": ok})

    for row in rows:
        if row["phase"] != "both":
            continue
        name, size, dtype = row["activation"], row["size"], row["dtype"]
        where = f"{name} {dtype} N={size:.0e}"
        if size >= 100_000:
            need = 10.0 if name == "relu" else 1.5
            value = row["seed_over_generated"]
            check(f"{where}: seed/gen >= {need}", value, need, value >= need)
        if size == 10_000_000:
            limit = {"relu": 2.5}.get(name, 3.5)
            if name in FLOOR_TARGETS:
                value = row["generated_over_floor"]
                check(f"{where}: gen/floor <= {limit}", value, limit, value <= limit)
            if "generated_over_torch" in row and name in FLOOR_TARGETS:
                value = row["generated_over_torch"]
                check(f"{where}: gen/torch < 1", value, 1.0, value < 1.0)
        if size == 1_000_000 and "generated_over_torch" in row:
            if name in ("relu", "sigmoid", "tanh", "silu"):
                value = row["generated_over_torch"]
                check(f"{where}: gen/torch <= 1.5", value, 1.5, value <= 1.5)
    for row in rows:
        if "scipy_over_generated" in row and row["size"] >= 100_000:
            value = row["scipy_over_generated"]
            where = f"gelu {row['dtype']} N={row['size']:.0e} forward"
            check(f"{where}: scipy/gen >= 3", value, 3.0, value >= 3.0)
    for entry in memory:
        allowed = 2 + entry["cached"]
        check(
            f"{entry['activation']} {entry['dtype']} N={entry['size']:.0e}: "
            f"peak memory <= {allowed:.3g} x",
            entry["generated"],
            allowed,
            entry["generated"] <= allowed,
        )
    if startup:
        check(
            "catalog derive+generate cold <= 10 s",
            startup["catalog_generate_cold_s"],
            10.0,
            startup["catalog_generate_cold_s"] <= 10.0,
        )
        check(
            "cached compile in a new process <= 50 ms",
            startup["compile_cached_s"] * 1e3,
            50.0,
            startup["compile_cached_s"] <= 0.05,
        )
        check(
            "import generated module over numpy <= 20 ms",
            startup["import_generated_over_numpy_s"] * 1e3,
            20.0,
            startup["import_generated_over_numpy_s"] <= 0.02,
        )
    return checks


def machine() -> dict[str, object]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def markdown(rows: list[dict], memory: list[dict], startup: dict, info: dict) -> str:
    lines = [
        f"Taken on {info['cpu']} ({info['cores']} cores), Python {info['python']}, "
        f"NumPy {info['numpy']}"
        + (f", PyTorch {info['torch']} CPU" if "torch" in info else "")
        + "; forward+backward, medians, interleaved.",
        "",
        "| layer | dtype | N | generated | seed-style | seed/gen | gen/floor | torch | gen/torch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["phase"] != "both" or row["size"] < 100_000:
            continue
        torch_cells = (
            f"{_us(row['torch_us'])} | {row['generated_over_torch']:.2f}"
            if "torch_us" in row
            else "- | -"
        )
        lines.append(
            f"| {row['activation']} | {row['dtype']} | {row['size']:.0e} | "
            f"{_us(row['generated_us'])} | {_us(row['seed_us'])} | "
            f"{row['seed_over_generated']:.1f} | {row['generated_over_floor']:.2f} | "
            + torch_cells
            + " |"
        )
    gelu = [r for r in rows if "scipy_over_generated" in r and r["size"] >= 100_000]
    if gelu:
        lines += [
            "",
            "| GELU forward | dtype | N | generated | SciPy erf | SciPy/gen |",
            "|---|---|---|---|---|---|",
        ]
        for row in gelu:
            lines.append(
                f"| gelu | {row['dtype']} | {row['size']:.0e} | {_us(row['generated_us'])} | "
                f"{_us(row['scipy_us'])} | {row['scipy_over_generated']:.1f} |"
            )
    if memory:
        lines += [
            "",
            "| peak extra memory, fwd+bwd | dtype | N | generated | seed-style | allowed |",
            "|---|---|---|---|---|---|",
        ]
        for entry in memory:
            lines.append(
                f"| {entry['activation']} | {entry['dtype']} | {entry['size']:.0e} | "
                f"{entry['generated']:.2f} x | {entry['seed']:.2f} x | "
                f"{2 + entry['cached']:.3g} x |"
            )
    if startup:
        lines += [
            "",
            f"Whole catalog derived and generated, cold: "
            f"{startup['catalog_generate_cold_s']:.1f} s. Cached `symgrad.compile` in a "
            f"new process: {startup['compile_cached_s'] * 1e3:.0f} ms (after NumPy). "
            f"Importing a generated module: +{startup['import_generated_over_numpy_s'] * 1e3:.0f} ms "
            f"over NumPy's {startup['import_numpy_s'] * 1e3:.0f} ms.",
        ]
    return "\n".join(lines) + "\n"


def _us(value: float) -> str:
    return f"{value / 1e3:.2f} ms" if value >= 1e3 else f"{value:.0f} us"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--activations", default=",".join(ACTIVATIONS))
    parser.add_argument("--sizes", default=",".join(f"{s:.0e}" for s in SIZES))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument(
        "--repeats", type=float, default=1.0, help="scale the default repeat counts"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.activations.split(",") if n.strip()]
    unknown = [n for n in names if n not in SEED_STYLE]
    if unknown:
        parser.error(
            f"no seed-style baseline for {', '.join(unknown)}; "
            f"choose from {', '.join(SEED_STYLE)}"
        )
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    dtypes = [d.strip() for d in args.dtypes.split(",")]
    bad = [d for d in dtypes if d not in ("float16", "float32", "float64")]
    if bad:
        parser.error(f"unknown dtype {bad[0]!r}; choose from float16, float32, float64")

    torch_setup = load_torch(not args.no_torch)
    info = machine()
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    rng = np.random.default_rng(0)
    rows, memory = [], []
    with tempfile.TemporaryDirectory() as folder:
        classes = generated_classes(names, Path(folder))
        print(HEADER)
        for dtype in dtypes:
            for size in sizes:
                x = (2.0 * rng.standard_normal(size)).astype(dtype)
                dout = rng.standard_normal(size).astype(dtype)
                floor = floor_phases(x, dout)
                for name in names:
                    candidates = {
                        "generated": layer_phases(classes[name](), x, dout),
                        "buffers": layer_phases(classes[name](), x, dout, True),
                        "seed": seed_phases(SEED_STYLE[name](), x, dout),
                        "floor": floor,
                    }
                    if torch_setup is not None:
                        torch, functions = torch_setup
                        candidates["torch"] = torch_phases(
                            torch, functions[name], x, dout
                        )
                    if name == "gelu":
                        candidates["scipy"] = dict.fromkeys(
                            PHASES, functools.partial(scipy_gelu, x)
                        )
                    results = interleaved(candidates, repeats_for(size, args.repeats))
                    for row in rows_for(results, name, dtype, size):
                        rows.append(row)
                        print(format_row(row), flush=True)
                if size == max(sizes):
                    for name in names:
                        memory.append(
                            {
                                "activation": name,
                                "dtype": dtype,
                                "size": size,
                                "generated": peak_memory(classes[name], x, dout),
                                "seed": peak_memory(SEED_STYLE[name], x, dout.copy()),
                                "cached": cached_arrays(name, dtype),
                            }
                        )
    if memory:
        print("\npeak extra memory of forward+backward, in units of the array size")
        for entry in memory:
            print(
                f"{entry['activation']:<10} {entry['dtype']:<8} N={entry['size']:.0e} "
                f"generated {entry['generated']:.2f}x (allowed {2 + entry['cached']:.3g}x)"
                f", seed-style {entry['seed']:.2f}x"
            )
    startup = {} if args.skip_startup else startup_figures(names)
    if startup:
        print("\ngeneration and import")
        for key, value in startup.items():
            print(f"{key:<32} {value * 1e3:10.1f} ms")
    checks = targets(rows, memory, startup)
    print("\ntargets")
    for c in checks:
        mark = "met " if c["met"] else "MISS"
        print(f"  {mark} {c['target']}: {c['value']:.3g}")
    report = {
        "machine": info,
        "rows": rows,
        "memory": memory,
        "startup": startup,
        "targets": checks,
    }
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(rows, memory, startup, info))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
