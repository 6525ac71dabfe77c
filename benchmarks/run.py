"""Generated layers against hand-written NumPy, on this machine's CPU class.

    python benchmarks/run.py [--sections learner,overhead,sizes,memory,startup]
                             [--activations relu,sigmoid] [--dtypes float32]
                             [--repeats 1.0] [--cpu-class native|avx2]
                             [--prefer memory|accuracy]
                             [--json PATH] [--markdown PATH] [--no-torch]
    python benchmarks/run.py --target torch|jax [--no-compile] ...
    python benchmarks/run.py --target numba [--activations ...] [--dtypes ...]

``--target torch`` and ``--target jax`` measure the generated PyTorch and JAX
layers against the frameworks' own functions instead (`frameworks`).

Everything is measured in one process and interleaved: each repeat runs every
candidate once, in turn, so a slow moment of the machine hurts all alike.
Reported are medians of forward+backward, and ratios of medians:

- learner: the book's batch shapes (100, 50), (100, 784), (1000, 100); the
  readable layer (the default) and the ``--fast`` one against the book's ReLU
  and Sigmoid (`baselines.BOOK`) and a plain hand-written NumPy class for every
  catalog layer (`baselines.PLAIN`);
- overhead: the per-call cost of argument handling, apart from the math;
- sizes: flat arrays of 1e4 to 1e7 elements, against the same plain classes
  (whose formulas are the naive ones: ``np.log(1 + np.exp(x))``), the
  memory-bandwidth floor and, when it can be imported, PyTorch CPU autograd;
- memory: peak extra memory of forward+backward at the largest size;
- startup: deriving the catalog, a cached ``symgrad.compile``, importing.

Speed depends on the CPU: NumPy vectorises ``log1p``, ``expm1`` and float64
``tanh`` only with AVX-512.  Every table says which SIMD extensions NumPy found
(its runtime report).  ``--cpu-class avx2`` runs the script again with NumPy's
AVX-512 code switched off (``NPY_DISABLE_CPU_FEATURES``), numba compiling for
Haswell (``NUMBA_CPU_NAME``) and PyTorch's AVX2 kernels
(``ATEN_CPU_CAPABILITY``), so a machine with AVX-512 measures both classes.
The targets of the readable-layers issue are checked at the end, each with its
measured value.
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

#: What NPY_DISABLE_CPU_FEATURES switches off to run an AVX-512 machine as AVX2.
AVX512_FEATURES = (
    "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512_SKX AVX512_CLX AVX512_CNL"
)
#: The settings that make NumPy, numba (LLVM's Haswell: AVX2 and FMA) and
#: PyTorch's kernels those of an AVX2 machine.
AVX2_CLASS = {
    "NPY_DISABLE_CPU_FEATURES": AVX512_FEATURES,
    "NUMBA_CPU_NAME": "haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
}
LEARNER_SHAPES = [(100, 50), (100, 784), (1000, 100)]
SIZES = [10_000, 100_000, 1_000_000, 10_000_000]
DTYPES = ["float64", "float32"]
SECTIONS = ["learner", "overhead", "sizes", "memory", "startup"]
TORCH_NAMES = (
    "relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu", "softplus", "mish", "elu",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cpu_class == "avx2" and not os.environ.get("NPY_DISABLE_CPU_FEATURES"):
        env = {**os.environ, **AVX2_CLASS}
        return subprocess.call([sys.executable, __file__, *sys.argv[1:]], env=env)

    from baselines import BOOK, NAIVE, PLAIN  # imports NumPy: after the CPU class

    import symgrad

    names = _choices(args.activations, list(symgrad.CATALOG), "activation")
    dtypes = _choices(args.dtypes, DTYPES, "dtype")
    if args.target != "numba":
        # PyTorch runs in this process, interleaved with the others, whose
        # threads its idle OpenMP threads would take the cores from: they sleep
        # at once.  (`--target numba` runs PyTorch in a process of its own, as
        # it comes.)  Set before its runtime starts, which reads it once.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    info = machine()
    print(_machine_line(info), flush=True)
    if args.target == "numba":
        return fused(args, names, dtypes, info)
    if args.target != "numpy":
        return framework(args, names, dtypes, info)
    sections = _choices(args.sections, SECTIONS, "section")
    report: dict = {"machine": info}
    with tempfile.TemporaryDirectory() as folder:
        styles = {
            style: generated_classes(
                names, Path(folder), fast=style == "fast", prefer=args.prefer
            )
            for style in ("readable", "fast")
        }
        if "learner" in sections:
            report["learner"] = learner(names, dtypes, styles, PLAIN, BOOK, args)
        if "overhead" in sections:
            report["overhead"] = overhead(names, styles)
        if "sizes" in sections:
            torch = None if args.no_torch else load_torch()
            report["sizes"] = sizes(names, dtypes, styles, NAIVE, torch, args)
        if "memory" in sections:
            report["memory"] = memory(names, dtypes, styles, args)
        if "startup" in sections:
            report["startup"] = startup(names)
    if args.json is None:
        stem = "results-avx2" if info["emulated"] else "results"
        suffix = "-accuracy" if args.prefer == "accuracy" else ""
        args.json = HERE / f"{stem}{suffix}.json"
    if args.update and args.json.exists():
        report = updated(json.loads(args.json.read_text()), report)
    report["targets"] = targets(report)
    _print_targets(report["targets"], info)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(report))
        print(f"wrote {args.markdown}")
    return 0


def fused(args, names: list[str], dtypes: list[str], info: dict) -> int:
    """``--target numba``: the fused layers against --fast, PyTorch and the floor."""
    import numba_target

    if not args.activations:
        names = ["relu", "sigmoid", "tanh", "elu", *numba_target.TRANSCENDENTAL]
    with tempfile.TemporaryDirectory() as folder:
        report = numba_target.run(names, dtypes, Path(folder), args)
    report["machine"] = info
    if args.json is None:
        stem = "results-numba-avx2" if info["emulated"] else "results-numba"
        args.json = HERE / f"{stem}.json"
    if args.update and args.json.exists():
        report = updated(json.loads(args.json.read_text()), report)
    report["targets"] = numba_target.targets(report)
    _print_targets(report["targets"], info)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


def framework(args, names: list[str], dtypes: list[str], info: dict) -> int:
    """``--target torch|jax``: the generated layers against the framework's own."""
    import frameworks

    if not args.activations:
        names = list(TORCH_NAMES)
    if not args.dtypes:
        dtypes = ["float32"]
    with tempfile.TemporaryDirectory() as folder:
        report = frameworks.run_target(args.target, names, dtypes, Path(folder), args)
    report["machine"] = info
    _print_targets(report["targets"], info)
    if args.json is None:
        args.json = HERE / f"results-{args.target}.json"
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    if args.markdown:
        args.markdown.write_text(frameworks.markdown(report, _machine_line(info)))
        print(f"wrote {args.markdown}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--activations", default="", help="default: the catalog")
    parser.add_argument(
        "--dtypes", default="", help="default: both; float32 for torch and jax"
    )
    parser.add_argument(
        "--target", choices=["numpy", "torch", "jax", "numba"], default="numpy"
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="torch: skip torch.compile"
    )
    parser.add_argument(
        "--repeats", type=float, default=1.0, help="scale the repeat counts"
    )
    parser.add_argument("--cpu-class", choices=["native", "avx2"], default="native")
    parser.add_argument(
        "--prefer",
        choices=["memory", "accuracy"],
        default="memory",
        help="the layers' precision policy (accuracy: results-accuracy.json)",
    )
    parser.add_argument(
        "--json", type=Path, help="default: results.json, or results-avx2.json"
    )
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the measured rows in the JSON file, keep the rest",
    )
    return parser


def _choices(given: str, allowed: list[str], what: str) -> list[str]:
    if not given:
        return list(allowed)
    chosen = [g.strip() for g in given.split(",") if g.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise SystemExit(
            f"run.py: unknown {what} {unknown[0]!r}; choose from {', '.join(allowed)}"
        )
    return chosen


# -- the machine -------------------------------------------------------------------


def simd() -> dict[str, list[str]]:
    """NumPy's runtime report of SIMD extensions (what ``np.show_runtime`` prints)."""
    try:
        from numpy._core._multiarray_umath import (
            __cpu_baseline__,
            __cpu_dispatch__,
            __cpu_features__,
        )
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import (
            __cpu_baseline__,
            __cpu_dispatch__,
            __cpu_features__,
        )
    return {
        "baseline": list(__cpu_baseline__),
        "found": [f for f in __cpu_dispatch__ if __cpu_features__[f]],
        "not_found": [f for f in __cpu_dispatch__ if not __cpu_features__[f]],
    }


def machine() -> dict[str, object]:
    import numpy as np

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    found = simd()["found"]
    vectorised_avx512 = any(f.startswith(("AVX512", "X86_V4")) for f in found)
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simd": simd(),
        "cpu_class": "AVX-512" if vectorised_avx512 else "no AVX-512 (AVX2)",
        "emulated": bool(os.environ.get("NPY_DISABLE_CPU_FEATURES")),
        # How PyTorch's idle OpenMP threads wait (libgomp's policy).
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def _machine_line(info: dict) -> str:
    emulated = (
        " (AVX-512 switched off in NumPy, numba and PyTorch)"
        if info["emulated"]
        else ""
    )
    return (
        f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, NumPy "
        f"{info['numpy']}; SIMD found: {' '.join(info['simd']['found']) or 'none'}"
        f"; class: {info['cpu_class']}{emulated}"
        f"; OMP_WAIT_POLICY: {info.get('omp_wait_policy', 'not recorded')}"
    )


# -- candidates ----------------------------------------------------------------------


def generated_classes(
    names: list[str], folder: Path, fast: bool, prefer: str = "memory"
) -> dict[str, type]:
    """The generated layers, written to one module and imported as a user would."""
    import symgrad
    from symgrad.loader import import_path

    module_name = "bench_fast" if fast else "bench_readable"
    path = folder / f"{module_name}.py"
    path.write_text(symgrad.generate(names, fast=fast, prefer=prefer))
    module = import_path(path, module_name)
    return {n: getattr(module, symgrad.activation(n).class_name) for n in names}


def both(layer, x, dout) -> Callable[[], object]:
    """forward then backward, each on its own dout (the book's ReLU writes into it)."""
    own = dout.copy()

    def run():
        layer.forward(x)
        return layer.backward(own)

    run()
    return run


def interleaved(candidates: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Median seconds per call of each candidate, every repeat running each once
    (in rotated order), each sample timing enough calls to last about 1 ms."""
    inner = {}
    for name, run in candidates.items():
        started = time.perf_counter()
        run()
        inner[name] = max(
            1, min(200, int(1e-3 / max(time.perf_counter() - started, 1e-7)))
        )
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    for r in range(repeats):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            run, count = candidates[name], inner[name]
            started = time.perf_counter()
            for _ in range(count):
                run()
            samples[name].append((time.perf_counter() - started) / count)
    return {name: statistics.median(v) for name, v in samples.items()}


def _repeats(size: int, scale: float) -> int:
    base = 9 if size >= 5_000_000 else 25 if size >= 500_000 else 61
    return max(5, int(base * scale))


def _data(shape, dtype):
    import numpy as np

    rng = np.random.default_rng(0)
    x = (2.0 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return x, dout


# -- sections ------------------------------------------------------------------------


def learner(names, dtypes, styles, plain, book, args) -> list[dict]:
    """The book's batch shapes: readable and fast against the hand-written classes."""
    print("\nlearner sizes: forward+backward, medians; ratios < 1 mean faster")
    print(f"{'layer':<12} {'dtype':<8} {'shape':<11} {'readable':>9} {'plain':>9} "
          f"{'read/plain':>10} {'fast/read':>9}")  # fmt: skip
    rows = []
    for dtype in dtypes:
        for shape in LEARNER_SHAPES:
            x, dout = _data(shape, dtype)
            for name in names:
                candidates = {
                    "readable": both(styles["readable"][name](), x, dout),
                    "fast": both(styles["fast"][name](), x, dout),
                    "plain": both(plain[name](), x, dout),
                }
                if name in book:
                    candidates["book"] = both(book[name](), x, dout)
                median = interleaved(candidates, _repeats(x.size, args.repeats) * 3)
                row = {
                    "activation": name,
                    "dtype": dtype,
                    "shape": list(shape),
                    **{f"{k}_us": v * 1e6 for k, v in median.items()},
                    "readable_over_plain": median["readable"] / median["plain"],
                    "fast_over_readable": median["fast"] / median["readable"],
                }
                if "book" in median:
                    row["readable_over_book"] = median["readable"] / median["book"]
                rows.append(row)
                print(
                    f"{name:<12} {dtype:<8} {str(shape):<11} "
                    f"{row['readable_us']:>8.1f}u {row['plain_us']:>8.1f}u "
                    f"{row['readable_over_plain']:>10.2f} "
                    f"{row['fast_over_readable']:>9.2f}",
                    flush=True,
                )
    return rows


def overhead(names, styles) -> dict[str, float]:
    """Per-call argument handling, apart from the math, in microseconds.

    Readable: `_float_array` on x and `_check_dout` on dout, what forward and
    backward do besides their formulas.  Fast: a forward+backward of a
    one-element array minus its two block kernels called directly.
    """
    import numpy as np

    print("\nper-call argument handling (forward+backward)")
    x, dout = np.full((1,), 0.5), np.ones(1)
    layer = styles["readable"]["sigmoid"]()
    module = sys.modules[type(layer).__module__]
    y = layer.forward(x)

    def readable():
        module._float_array(x)
        module._check_dout("Sigmoid", dout, y)

    fast = styles["fast"]["sigmoid"]()
    y = fast.forward(x)
    # Each block kernel with buffers for all its array arguments, scratch included.
    forward_args = [x] + _buffers(fast._forward_block, 1)
    backward_args = [dout, y] + _buffers(fast._backward_block, 2)

    def fast_whole():
        fast.forward(x)
        fast.backward(dout)

    def fast_kernels():
        fast._forward_block(*forward_args)
        fast._backward_block(*backward_args)

    median = interleaved(
        {"readable": readable, "fast_whole": fast_whole, "fast_kernels": fast_kernels},
        301,
    )
    result = {
        "readable_us": median["readable"] * 1e6,
        "fast_us": (median["fast_whole"] - median["fast_kernels"]) * 1e6,
    }
    for key, value in result.items():
        print(f"  {key:<12} {value:6.2f} us")
    return result


def _floor(x, dout):
    """The memory-bandwidth floor: one copy forward, one multiply backward, into
    arrays made beforehand."""
    import numpy as np

    out, dx = np.empty_like(x), np.empty_like(x)

    def floor():
        np.copyto(out, x)
        np.multiply(dout, x, out=dx)

    return floor


def _with_buffers(layer, x, dout):
    """forward and backward of a fast layer into out= arrays made beforehand."""
    import numpy as np

    out, dx = np.empty_like(x), np.empty_like(x)

    def run():
        layer.forward(x, out=out)
        return layer.backward(dout, out=dx)

    return run


def _buffers(method, given: int) -> list:
    """One-element buffers for the parameters of a block kernel after ``given``."""
    import inspect

    import numpy as np

    count = len(inspect.signature(method).parameters) - given
    return [np.empty(1) for _ in range(count)]


def sizes(names, dtypes, styles, plain, torch, args) -> list[dict]:
    """Flat arrays of 1e4 to 1e7 elements against the naive formulas."""
    import numpy as np

    print("\nlarge arrays: forward+backward, medians")
    print(f"{'layer':<12} {'dtype':<8} {'N':>7} {'readable':>10} {'fast':>10} "
          f"{'naive':>10} {'read/naive':>10} {'fast/naive':>10} {'fast/floor':>10} "
          f"{'fast/torch':>10}")  # fmt: skip
    rows = []
    for dtype in dtypes:
        for size in SIZES:
            x, dout = _data(size, dtype)
            floor = _floor(x, dout)

            for name in names:
                naive = plain[name]()
                with np.errstate(all="ignore"):
                    finite = bool(
                        np.isfinite(naive.forward(x)).all()
                        and np.isfinite(naive.backward(dout.copy())).all()
                    )
                fast_out = _with_buffers(styles["fast"][name](), x, dout)

                candidates = {
                    "readable": both(styles["readable"][name](), x, dout),
                    "fast": both(styles["fast"][name](), x, dout),
                    "fast_out": fast_out,
                    "naive": both(naive, x, dout),
                    "floor": floor,
                }
                if torch is not None and name in torch[1]:
                    candidates["torch"] = _torch_both(torch, name, x, dout)
                median = interleaved(candidates, _repeats(size, args.repeats))
                row = {
                    "activation": name,
                    "dtype": dtype,
                    "size": size,
                    "naive_finite": finite,
                    **{f"{k}_us": v * 1e6 for k, v in median.items()},
                    "readable_over_naive": median["readable"] / median["naive"],
                    "fast_over_naive": median["fast"] / median["naive"],
                    "fast_over_readable": median["fast"] / median["readable"],
                    "fast_over_floor": median["fast_out"] / median["floor"],
                }
                if "torch" in median:
                    row["fast_over_torch"] = median["fast"] / median["torch"]
                rows.append(row)
                torch_cell = (
                    f"{row['fast_over_torch']:>10.2f}"
                    if "torch" in median
                    else f"{'-':>10}"
                )
                print(
                    f"{name:<12} {dtype:<8} {size:>7.0e} {_time(median['readable']):>10} "
                    f"{_time(median['fast']):>10} {_time(median['naive']):>10} "
                    f"{row['readable_over_naive']:>10.2f} {row['fast_over_naive']:>10.2f} "
                    f"{row['fast_over_floor']:>10.2f} {torch_cell}"
                    + ("" if finite else "  (naive not finite)"),
                    flush=True,
                )
    return rows


def memory(names, dtypes, styles, args) -> list[dict]:
    """Peak extra memory of forward+backward of the fast layers at 1e7 elements,
    in units of x's size, against what the layer must hold: the output, dx and
    what it caches."""
    import numpy as np

    import symgrad
    from symgrad.layer import layer_formulas

    print("\npeak extra memory of forward+backward (fast), in units of the array")
    rows = []
    for dtype in dtypes:
        x, dout = _data(10_000_000, dtype)
        for name in names:
            layer = styles["fast"][name]()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                layer.forward(x)
                layer.backward(dout)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            sizes_of = {"mask": 1 / np.dtype(dtype).itemsize, "x": 0.0}
            saved = layer_formulas(symgrad.derive(name)).saved_attributes
            cached = sum(sizes_of.get(a, 1.0) for a in saved)
            rows.append(
                {
                    "activation": name,
                    "dtype": dtype,
                    "peak": (peak - base) / x.nbytes,
                    "allowed": 2 + cached,
                }
            )
            print(f"  {name:<12} {dtype:<8} {rows[-1]['peak']:.2f} x "
                  f"(allowed {rows[-1]['allowed']:.3g} x)")  # fmt: skip
    return rows


def startup(names) -> dict[str, float]:
    """Deriving and generating the catalog cold, a cached compile in a new process,
    and importing a generated module over importing NumPy (medians of 5)."""
    import symgrad

    def seconds(code: str, env: dict[str, str]) -> float:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=HERE.parent,
        )
        return float(result.stdout.strip().splitlines()[-1])

    print("\ngeneration and import")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SYMGRAD_CACHE": cache, "PYTHONPATH": str(HERE.parent)}
        catalog = seconds(
            "import time; t = time.perf_counter(); import symgrad; "
            "symgrad.generate(list(symgrad.CATALOG)); print(time.perf_counter() - t)",
            env,
        )
        compile_code = (
            "import time; import numpy; t = time.perf_counter(); import symgrad; "
            "symgrad.compile('sigmoid'); print(time.perf_counter() - t)"
        )
        seconds(compile_code, env)
        warm = [seconds(compile_code, env) for _ in range(5)]
        module = Path(cache) / "bench_import.py"
        module.write_text(symgrad.generate(names))
        numpy_only = [
            seconds(
                "import time; t = time.perf_counter(); import numpy; "
                "print(time.perf_counter() - t)",
                env,
            )
            for _ in range(5)
        ]
        layers = [
            seconds(
                f"import sys, time; sys.path.insert(0, {cache!r}); import numpy; "
                "u = time.perf_counter(); import bench_import; "
                "print(time.perf_counter() - u)",
                env,
            )
            for _ in range(5)
        ]
    result = {
        "catalog_generate_cold_s": catalog,
        "compile_cached_s": statistics.median(warm),
        "import_numpy_s": statistics.median(numpy_only),
        "import_generated_over_numpy_s": statistics.median(layers),
    }
    for key, value in result.items():
        print(f"  {key:<32} {value * 1e3:9.1f} ms")
    return result


# -- PyTorch ---------------------------------------------------------------------------


def load_torch():
    """torch and its functions for the layers it has, or None."""
    try:
        import torch
    except ImportError:
        return None
    from frameworks import torch_native

    return torch, {n: f for n, f in torch_native().items() if n in TORCH_NAMES}


def _torch_both(torch_setup, name, x, dout):
    torch, functions = torch_setup
    function = functions[name]
    tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)

    def run():
        leaf = tx.detach().requires_grad_()
        function(leaf).backward(tdout)
        return leaf.grad

    run()
    return run


# -- targets and report ------------------------------------------------------------------


def targets(report: dict) -> list[dict]:
    """Each target of the readable-layers issue with its measured value."""
    checks = []

    def check(what, value, limit):
        checks.append(
            {"target": what, "value": value, "limit": limit, "met": value <= limit}
        )

    for row in report.get("learner", []):
        where = f"{row['activation']} {row['dtype']} {tuple(row['shape'])}"
        if "readable_over_book" in row:
            check(f"{where}: readable/book <= 1.0", row["readable_over_book"], 1.0)
        check(f"{where}: readable/plain <= 1.3", row["readable_over_plain"], 1.3)
        check(f"{where}: fast/readable <= 1.0", row["fast_over_readable"], 1.0)
    if "overhead" in report:
        for style in ("readable", "fast"):
            value = report["overhead"][f"{style}_us"]
            check(f"{style} argument handling per call <= 5 us", value, 5.0)
    for row in report.get("sizes", []):
        where = f"{row['activation']} {row['dtype']} N={row['size']:.0e}"
        if row["naive_finite"]:
            check(f"{where}: readable/naive <= 1.0", row["readable_over_naive"], 1.0)
            check(f"{where}: fast/naive <= 1.0", row["fast_over_naive"], 1.0)
        check(f"{where}: fast/readable <= 1.0", row["fast_over_readable"], 1.0)
    for row in report.get("memory", []):
        check(
            f"{row['activation']} {row['dtype']} N=1e7: fast peak memory <= "
            f"{row['allowed']:.3g} x",
            row["peak"],
            row["allowed"],
        )
    if "startup" in report:
        s = report["startup"]
        check("catalog derive+generate cold <= 10 s", s["catalog_generate_cold_s"], 10)
        check(
            "cached compile in a new process <= 50 ms",
            s["compile_cached_s"] * 1e3,
            50,
        )
        check(
            "import generated module over numpy <= 20 ms",
            s["import_generated_over_numpy_s"] * 1e3,
            20,
        )
    return checks


def updated(old: dict, new: dict) -> dict:
    """``old`` with the rows ``new`` measured again replaced, and new sections."""
    keys = {
        "learner": ("activation", "dtype", "shape"),
        "sizes": ("activation", "dtype", "size"),
        "threads": ("activation", "dtype"),  # numba's serial against threads
        "network": ("activation", "shape"),  # numba's layers in a network
    }
    merged = {**old, "machine": new["machine"]}
    for section, value in new.items():
        if section in keys:
            fresh = {tuple(str(r[k]) for k in keys[section]): r for r in value}
            rows = [
                fresh.pop(tuple(str(r[k]) for k in keys[section]), r)
                for r in old.get(section, [])
            ]
            merged[section] = rows + list(fresh.values())
        elif isinstance(value, dict) and isinstance(old.get(section), dict):
            # numba's one-time costs: per layer, one level down
            merged[section] = {
                key: {**old[section].get(key, {}), **part}
                if isinstance(part, dict)
                else part
                for key, part in {**old[section], **value}.items()
            }
        elif section != "machine":
            merged[section] = value
    return merged


def _print_targets(checks: list[dict], info: dict) -> None:
    met = sum(c["met"] for c in checks)
    print(f"\ntargets ({_machine_line(info)}): {met} of {len(checks)} met")
    for c in checks:
        if not c["met"]:
            print(f"  MISS {c['target']}: {c['value']:.3g}")


def _time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def markdown(report: dict) -> str:
    """README tables: the learner sizes and the large arrays, with the machine."""
    info = report["machine"]
    lines = [f"Measured on {_machine_line(info)}.", ""]
    if report.get("learner"):
        lines += [
            "| layer | dtype | shape | readable | plain NumPy | readable/plain | "
            "readable/book | fast/readable |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in report["learner"]:
            book = row.get("readable_over_book")
            lines.append(
                f"| {row['activation']} | {row['dtype']} | {tuple(row['shape'])} | "
                f"{row['readable_us']:.1f} us | {row['plain_us']:.1f} us | "
                f"{row['readable_over_plain']:.2f} | "
                f"{'-' if book is None else f'{book:.2f}'} | "
                f"{row['fast_over_readable']:.2f} |"
            )
    if report.get("sizes"):
        lines += [
            "",
            "| layer | dtype | N | readable | fast | naive | readable/naive | "
            "fast/naive | fast/floor | fast/torch |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in report["sizes"]:
            torch = row.get("fast_over_torch")
            lines.append(
                f"| {row['activation']} | {row['dtype']} | {row['size']:.0e} | "
                f"{_time(row['readable_us'] / 1e6)} | {_time(row['fast_us'] / 1e6)} | "
                f"{_time(row['naive_us'] / 1e6)} | {row['readable_over_naive']:.2f} | "
                f"{row['fast_over_naive']:.2f} | {row['fast_over_floor']:.2f} | "
                f"{'-' if torch is None else f'{torch:.2f}'} |"
            )
    checks = report.get("targets", [])
    if checks:
        met = sum(c["met"] for c in checks)
        lines += ["", f"Targets met: {met} of {len(checks)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
