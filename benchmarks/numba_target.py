"""``run.py --target numba``: the fused numba layers, side by side with the
NumPy ``--fast`` layers, PyTorch's CPU autograd and the memory-bandwidth floor,
and what compiling them costs once.

Every candidate writes into ``out=`` arrays made beforehand (PyTorch cannot),
forward then backward, interleaved in one process; reported are medians and
ratios of medians.  PyTorch runs in a process of its own, interleaved with
the floor there: its OpenMP threads spin for milliseconds after each call
(libgomp's default), and took the cores from the threads of whatever ran next
(numba's loops 1.5-2x slower at 1e6).  The one-time costs are measured in
fresh processes: the first call's compile of a layer's two loops (one dtype),
and the same module imported again with numba's cache next to it.  A training
step of a small NumPy network shows what the threads do beside NumPy's
matrix products (`network`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

#: The book's (100, 50) batch, then the sizes the issue's targets are for.
SIZES = [5_000, 100_000, 1_000_000, 10_000_000]
ISSUE_SIZES_FROM = 100_000
#: The issue's bounds: fwd+bwd over the bandwidth floor.
FLOOR_BOUND = {"relu": 1.5, "sigmoid": 1.5, "tanh": 1.5, "elu": 1.5}
TRANSCENDENTAL = ("silu", "softplus", "mish", "gelu", "gelu_tanh")


def run(names, dtypes, folder: Path, args) -> dict:
    """The size table and the one-time costs, as a report for run.py."""
    import run as bench

    import symgrad
    from symgrad.loader import import_path

    path = folder / "bench_numba.py"
    path.write_text(symgrad.generate(names, target="numba"))
    fused = import_path(path, "bench_numba")
    fast = bench.generated_classes(names, folder, fast=True)
    torch = {} if args.no_torch else torch_in_a_process(names, dtypes, args.repeats)
    print("\nfused numba layers: forward+backward into out= arrays, medians")
    print(f"{'layer':<10} {'dtype':<8} {'N':>7} {'numba':>10} {'fast':>10} "
          f"{'numba/floor':>11} {'numba/fast':>10} {'torch/numba':>11}")  # fmt: skip
    rows = []
    for dtype in dtypes:
        for size in SIZES:
            x, dout = bench._data(size, dtype)
            for name in names:
                layer = getattr(fused, symgrad.activation(name).class_name)()
                layer.forward(x)  # compile outside the timing
                layer.backward(dout)
                candidates = {
                    "numba": bench._with_buffers(layer, x, dout),
                    "fast": bench._with_buffers(fast[name](), x, dout),
                    "floor": bench._floor(x, dout),
                }
                median = bench.interleaved(
                    candidates, bench._repeats(size, args.repeats)
                )
                if (name, dtype, size) in torch:
                    median["torch"], torch_floor = torch[name, dtype, size]
                    # Its process's floor, for the record: the two should agree.
                    median["torch_floor"] = torch_floor
                row = {
                    "activation": name,
                    "dtype": dtype,
                    "size": size,
                    **{f"{k}_us": v * 1e6 for k, v in median.items()},
                    "numba_over_floor": median["numba"] / median["floor"],
                    "numba_over_fast": median["numba"] / median["fast"],
                }
                if "torch" in median:
                    row["torch_over_numba"] = median["torch"] / median["numba"]
                rows.append(row)
                torch_cell = f"{row.get('torch_over_numba', float('nan')):>11.2f}"
                print(
                    f"{name:<10} {dtype:<8} {size:>7.0e} "
                    f"{bench._time(median['numba']):>10} "
                    f"{bench._time(median['fast']):>10} "
                    f"{row['numba_over_floor']:>11.2f} "
                    f"{row['numba_over_fast']:>10.2f} {torch_cell}",
                    flush=True,
                )
            del x, dout
    return {
        "sizes": rows,
        "threads": crossover(fused, names, dtypes, args),
        "network": network(fused, "mish" if "mish" in names else names[-1], args),
        "costs": one_time_costs(names, folder),
    }


def torch_in_a_process(names, dtypes, repeats: float, sizes=SIZES) -> dict:
    """{(name, dtype, size): (PyTorch's seconds, the floor's)}, measured in a
    child process (`torch_rows`), or {} without PyTorch."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import numba_target; "
        f"print(json.dumps(numba_target.torch_rows({names!r}, {dtypes!r}, "
        f"{repeats!r}, {list(sizes)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def torch_rows(names, dtypes, repeats: float, sizes=SIZES) -> list[list]:
    """PyTorch autograd's forward+backward and the floor, interleaved, for
    each layer it has, at the table's sizes: [name, dtype, size, s, floor s]."""
    import run as bench

    torch = bench.load_torch()
    if torch is None:
        return []
    data = {(d, s): bench._data(s, d) for d in dtypes for s in sizes}
    cases = [
        (name, dtype, size, *data[dtype, size])
        for dtype in dtypes
        for size in sizes
        for name in names
        if name in torch[1]
    ]
    # One forward+backward of each first, at every size, as in a process that
    # has trained a while: the first calls at a size run with the allocator
    # cold (glibc maps fresh pages for them), up to 3.5x slower at 1e6.
    runs = [bench._torch_both(torch, name, x, dout) for name, _, _, x, dout in cases]
    rows = []
    for (name, dtype, size, x, dout), run in zip(cases, runs, strict=True):
        median = bench.interleaved(
            {"torch": run, "floor": bench._floor(x, dout)},
            bench._repeats(size, repeats),
        )
        rows.append([name, dtype, size, median["torch"], median["floor"]])
    return rows


#: (batch, features) of the network: a hidden layer of 100 units, and batches
#: from the book's largest to 1e7 elements a layer.
NETWORK_SHAPES = [(1000, 100), (10_000, 100), (100_000, 100)]


def network(fused, name: str, args, shapes=NETWORK_SHAPES) -> list[dict]:
    """A training step of a NumPy network (x @ W, the layer, twice; backward
    through both, with the weights' gradients): the layers as they come
    (threads from ``parallel_from``) against serial loops.  The matrix products
    run on OpenBLAS's threads; loops whose idle threads spun (numba's OpenMP
    ``prange``) made the step up to 8.5x slower."""
    import numpy as np
    import run as bench

    import symgrad

    cls = getattr(fused, symgrad.activation(name).class_name)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((100, 100)) * 0.1 for _ in range(2)]

    def step(x, layers):
        def run():
            h, inputs = x, []
            for w, layer in zip(weights, layers, strict=True):
                inputs.append(h)
                h = layer.forward(h @ w)
            d = np.ones_like(h)
            backward = zip(weights[::-1], layers[::-1], inputs[::-1], strict=True)
            for w, layer, h_in in backward:
                d = layer.backward(d)
                _ = h_in.T @ d  # the weights' gradient
                d = d @ w.T

        return run

    print(f"\na NumPy network's training step, {name} layers: as they come / serial")
    rows = []
    for shape in shapes:
        x = rng.standard_normal(shape)
        serial = [cls(), cls()]
        for layer in serial:
            layer.parallel_from = x.size + 1
        median = bench.interleaved(
            {"threads": step(x, [cls(), cls()]), "serial": step(x, serial)},
            bench._repeats(x.size, args.repeats),
        )
        row = {
            "activation": name,
            "shape": list(shape),
            "threads_from": cls.parallel_from,
            "step_us": median["threads"] * 1e6,
            "serial_us": median["serial"] * 1e6,
            "step_over_serial": median["threads"] / median["serial"],
        }
        rows.append(row)
        print(
            f"  {str(shape):<12} {bench._time(median['threads']):>10} "
            f"{bench._time(median['serial']):>10} {row['step_over_serial']:6.2f}"
        )
    return rows


def crossover(fused, names, dtypes, args) -> list[dict]:
    """Per layer and dtype, the smallest size (powers of 2 from 2**12) from which
    the loops over threads beat the serial ones, forward+backward, beside the
    class's ``parallel_from``: what it should be on this machine."""
    import run as bench

    import symgrad

    print("\nserial loops against the loops over threads (forward+backward)")
    rows = []
    for dtype in dtypes:
        for name in names:
            layer = getattr(fused, symgrad.activation(name).class_name)()
            found = None
            for power in range(12, 23):
                x, dout = bench._data(2**power, dtype)
                loops = _loops(layer, x, dout)
                for run in loops.values():  # compile both outside the timing
                    run()
                median = bench.interleaved(loops, bench._repeats(x.size, args.repeats))
                if median["parallel"] < median["serial"]:
                    found = 2**power
                    break
            chosen = type(layer).parallel_from
            rows.append(
                {"activation": name, "dtype": dtype, "from": found, "chosen": chosen}
            )
            print(
                f"  {name:<10} {dtype:<8} threads win from {found} elements "
                f"(parallel_from: {chosen})"
            )
    return rows


def _loops(layer, x, dout):
    """forward+backward through the layer with its threshold set to 0 (every
    size over threads) or past the array (every size serial)."""
    import numpy as np

    out, dx = np.empty_like(x), np.empty_like(x)

    def with_threshold(threshold):
        def run():
            layer.parallel_from = threshold
            layer.forward(x, out=out)
            layer.backward(dout, out=dx)

        return run

    return {"serial": with_threshold(x.size + 1), "parallel": with_threshold(0)}


def one_time_costs(names, folder: Path) -> dict:
    """Seconds, in fresh processes: importing numba after NumPy, the first
    forward+backward of each layer (compiling its two serial loops, float64),
    and the same again with the cache the first run left."""
    import symgrad

    path = folder / "costs_numba.py"
    path.write_text(symgrad.generate(names, target="numba"))
    classes = [symgrad.activation(n).class_name for n in names]
    code = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        t = time.perf_counter(); import numba; imported = time.perf_counter() - t
        sys.path.insert(0, {str(folder)!r})
        import costs_numba
        x = np.linspace(-3, 3, 1000)
        times = [imported]
        for name in {classes!r}:
            layer = getattr(costs_numba, name)()
            t = time.perf_counter()
            layer.forward(x); layer.backward(np.ones_like(x))
            times.append(time.perf_counter() - t)
        print(" ".join(map(str, times)))
        """
    )

    def measure() -> list[float]:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return [float(v) for v in result.stdout.split()]

    cold = measure()
    warm = [measure() for _ in range(3)]
    costs = {
        "import_numba_s": statistics.median(w[0] for w in warm),
        "first_call_compile_s": dict(zip(names, cold[1:], strict=True)),
        "cached_reload_s": {
            n: statistics.median(w[i + 1] for w in warm) for i, n in enumerate(names)
        },
    }
    print("\none-time costs (fresh processes, float64):")
    print(f"  import numba after NumPy: {costs['import_numba_s'] * 1e3:.0f} ms")
    for n in names:
        print(
            f"  {n:<10} first forward+backward {cold[names.index(n) + 1]:.2f} s "
            f"(compiling), {costs['cached_reload_s'][n] * 1e3:.1f} ms from the cache"
        )
    return costs


def targets(report: dict) -> list[dict]:
    """The issue's speed targets (1e5 to 1e7 elements), each with its measured
    value."""
    checks = []
    for row in report["sizes"]:
        name, ratio = row["activation"], row["numba_over_floor"]
        if row["size"] < ISSUE_SIZES_FROM:  # the book's batch: reported, no target
            continue
        if name in FLOOR_BOUND:
            limit = FLOOR_BOUND[name]
        elif name in TRANSCENDENTAL:
            limit = 3.0
        else:
            continue
        checks.append(
            {
                "target": f"{name} {row['dtype']} N={row['size']:.0e}: "
                f"numba/floor <= {limit:g}",
                "value": round(ratio, 2),
                "met": ratio <= limit,
            }
        )
        if row["size"] >= 1_000_000 and "torch_over_numba" in row:
            need = 1.0 if name == "gelu" else 2.0
            if name in TRANSCENDENTAL or name in ("sigmoid", "tanh", "elu"):
                checks.append(
                    {
                        "target": f"{name} {row['dtype']} N={row['size']:.0e}: "
                        f"torch/numba >= {need:g}",
                        "value": round(row["torch_over_numba"], 2),
                        "met": row["torch_over_numba"] >= need,
                    }
                )
    return checks
