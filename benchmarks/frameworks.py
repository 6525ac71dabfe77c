"""Generated PyTorch and JAX layers against the frameworks' own activations.

    python benchmarks/run.py --target torch [--activations relu,silu] [--dtypes float32]
                                            [--no-compile] [--repeats 1.0]
    python benchmarks/run.py --target jax

Forward+backward of one array, medians interleaved in one process (see
`run.interleaved`), on the CPU:

- torch: the generated ``torch.autograd.Function`` (through its module) against
  PyTorch's native op (``torch.sigmoid``, ``F.silu``, ...), eager; and, unless
  ``--no-compile``, both under ``torch.compile``, with each one's compile time.
  Native ops are single fused C++ kernels for forward and for backward; the
  generated backward is a few eager ops (``dx = 1 - y; dx *= y; dx *= dout``),
  each one pass over memory, which is what its ratio measures.
- jax: ``jax.jit`` of the generated ``custom_vjp`` function's forward and
  pullback against the same for ``jax.nn``'s.  XLA fuses either into one loop.

Shapes: the book's (100, 50) batch, where per-call overhead decides, and flat
arrays of 1e6 and 1e7 elements.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from run import _data, _repeats, _time, interleaved

SHAPES = [(100, 50), (1_000_000,), (10_000_000,)]
#: The issue's target: generated fwd+bwd <= 1.3x native at these sizes, float32.
TARGET_RATIO, TARGET_SIZES = 1.3, (1_000_000, 10_000_000)


def torch_native():
    """PyTorch's own function for each layer it has, by symgrad's name."""
    import torch
    import torch.nn.functional as F

    return {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "softplus": F.softplus,
        "mish": F.mish,
        "elu": F.elu,
        "selu": F.selu,
        "celu": F.celu,
        "hardtanh": F.hardtanh,
        "hardsigmoid": F.hardsigmoid,
        "hardswish": F.hardswish,
        "softsign": F.softsign,
        "tanhshrink": F.tanhshrink,
        "log_sigmoid": F.logsigmoid,
        "leaky_relu": F.leaky_relu,
        "relu6": F.relu6,
    }


def jax_native():
    """jax.nn's function for each layer it has, by symgrad's name."""
    import jax
    import jax.numpy as jnp

    return {
        "relu": jax.nn.relu,
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
        "silu": jax.nn.silu,
        "softplus": jax.nn.softplus,
        "mish": jax.nn.mish,
        "elu": jax.nn.elu,
        "selu": jax.nn.selu,
        "celu": jax.nn.celu,
        "hardtanh": jax.nn.hard_tanh,
        "softsign": jax.nn.soft_sign,
        "log_sigmoid": jax.nn.log_sigmoid,
        "leaky_relu": jax.nn.leaky_relu,
        "relu6": jax.nn.relu6,
    }


def generated_module(target: str, names: list[str], folder: Path):
    """The generated module for ``target``, written and imported as a user would."""
    import symgrad
    from symgrad.loader import import_path

    path = folder / f"bench_{target}.py"
    path.write_text(symgrad.generate(names, target=target))
    return import_path(path, f"bench_{target}")


def versions(target: str) -> dict[str, object]:
    if target == "torch":
        import torch

        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    import jax

    return {"jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}


# -- PyTorch --------------------------------------------------------------------------


def torch_rows(names, dtypes, folder, args) -> list[dict]:
    import torch

    import symgrad

    native = torch_native()
    names = [n for n in names if n in native]
    module = generated_module("torch", names, folder)
    compiled = not args.no_compile
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads: "
        "forward+backward, medians; ratios over the native op, eager"
    )
    header = f"{'layer':<12} {'dtype':<8} {'shape':<12} {'generated':>10} {'native':>10} {'gen/nat':>8}"
    if compiled:
        header += f" {'compiled gen':>13} {'compiled nat':>13} {'cgen/nat':>8} {'cgen/cnat':>9}"
    print(header)
    rows = []
    for dtype in dtypes:
        for shape in SHAPES:
            x, dout = _data(shape, dtype)
            tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)
            for name in names:
                layer = getattr(module, symgrad.activation(name).class_name)()
                candidates = {
                    "generated": _torch_step(layer, tx, tdout),
                    "native": _torch_step(native[name], tx, tdout),
                }
                compile_s = {}
                if compiled:
                    # A fresh cache per row: each shape and layer compiles anew,
                    # rather than running past dynamo's recompile limit.
                    torch._dynamo.reset()
                    for key, function in (
                        ("generated", layer),
                        ("native", native[name]),
                    ):
                        started = time.perf_counter()
                        step = _torch_step(torch.compile(function), tx, tdout)
                        compile_s[key] = time.perf_counter() - started
                        candidates[f"compiled_{key}"] = step
                median = interleaved(candidates, _repeats(x.size, args.repeats))
                row = {
                    "activation": name,
                    "dtype": dtype,
                    "shape": list(shape),
                    **{f"{k}_us": v * 1e6 for k, v in median.items()},
                    "generated_over_native": median["generated"] / median["native"],
                }
                line = (
                    f"{name:<12} {dtype:<8} {str(shape):<12} "
                    f"{_time(median['generated']):>10} {_time(median['native']):>10} "
                    f"{row['generated_over_native']:>8.2f}"
                )
                if compiled:
                    row["compiled_generated_over_native"] = (
                        median["compiled_generated"] / median["native"]
                    )
                    row["compiled_generated_over_compiled_native"] = (
                        median["compiled_generated"] / median["compiled_native"]
                    )
                    row["compile_s"] = compile_s
                    line += (
                        f" {_time(median['compiled_generated']):>13}"
                        f" {_time(median['compiled_native']):>13}"
                        f" {row['compiled_generated_over_native']:>8.2f}"
                        f" {row['compiled_generated_over_compiled_native']:>9.2f}"
                    )
                rows.append(row)
                print(line, flush=True)
    return rows


def _torch_step(function, tx, tdout):
    """forward then backward of ``function`` at ``tx``; the first call (where
    torch.compile compiles) is made here."""

    def run():
        leaf = tx.detach().requires_grad_()
        function(leaf).backward(tdout)
        return leaf.grad

    run()
    return run


# -- JAX --------------------------------------------------------------------------------


def jax_rows(names, dtypes, folder, args) -> list[dict]:
    import jax

    import symgrad

    if "float64" in dtypes:
        jax.config.update("jax_enable_x64", True)
    native = jax_native()
    names = [n for n in names if n in native]
    module = generated_module("jax", names, folder)
    print(
        f"\njax {jax.__version__} on {jax.devices()[0].platform}: jit of forward and "
        "pullback, medians; ratios over jax.nn's"
    )
    print(f"{'layer':<12} {'dtype':<8} {'shape':<12} {'generated':>10} "
          f"{'jax.nn':>10} {'gen/nat':>8}")  # fmt: skip
    rows = []
    for dtype in dtypes:
        for shape in SHAPES:
            x, dout = _data(shape, dtype)
            jx, jdout = jax.device_put(x), jax.device_put(dout)
            for name in names:
                generated = getattr(module, symgrad.activation(name).name)
                candidates = {
                    "generated": _jax_step(generated, jx, jdout),
                    "native": _jax_step(native[name], jx, jdout),
                }
                median = interleaved(candidates, _repeats(x.size, args.repeats))
                row = {
                    "activation": name,
                    "dtype": dtype,
                    "shape": list(shape),
                    **{f"{k}_us": v * 1e6 for k, v in median.items()},
                    "generated_over_native": median["generated"] / median["native"],
                }
                rows.append(row)
                print(
                    f"{name:<12} {dtype:<8} {str(shape):<12} "
                    f"{_time(median['generated']):>10} {_time(median['native']):>10} "
                    f"{row['generated_over_native']:>8.2f}",
                    flush=True,
                )
    return rows


def _jax_step(function, jx, jdout):
    import jax

    @jax.jit
    def step(x, dout):
        y, pullback = jax.vjp(function, x)
        return y, pullback(dout)[0]

    def run():
        return jax.block_until_ready(step(jx, jdout))

    run()
    return run


# -- targets and report -------------------------------------------------------------------


def checks(rows: list[dict], target: str) -> list[dict]:
    """The issue's speed target, each with its measured value."""
    found = []
    for row in rows:
        size = 1
        for n in row["shape"]:
            size *= n
        if row["dtype"] != "float32" or size not in TARGET_SIZES:
            continue
        value = row["generated_over_native"]
        found.append(
            {
                "target": f"{target} {row['activation']} float32 N={size:.0e}: "
                f"generated/native <= {TARGET_RATIO}",
                "value": value,
                "limit": TARGET_RATIO,
                "met": value <= TARGET_RATIO,
            }
        )
        if "compiled_generated_over_native" in row:
            value = row["compiled_generated_over_native"]
            found.append(
                {
                    "target": f"{target} {row['activation']} float32 N={size:.0e}: "
                    f"compiled generated/native eager <= {TARGET_RATIO}",
                    "value": value,
                    "limit": TARGET_RATIO,
                    "met": value <= TARGET_RATIO,
                }
            )
    return found


def markdown(report: dict, machine_line: str) -> str:
    target = report["target"]
    lines = [f"Measured on {machine_line}; {report['versions']}.", ""]
    compiled = any("compiled_generated_us" in r for r in report["rows"])
    head = "| layer | dtype | shape | generated | native | generated/native |"
    rule = "|---|---|---|---|---|---|"
    if compiled:
        head += " compiled generated | compiled native | compiled gen/native eager |"
        rule += "---|---|---|"
    lines += [head, rule]
    for row in report["rows"]:
        line = (
            f"| {row['activation']} | {row['dtype']} | {tuple(row['shape'])} | "
            f"{_time(row['generated_us'] / 1e6)} | {_time(row['native_us'] / 1e6)} | "
            f"{row['generated_over_native']:.2f} |"
        )
        if compiled:
            line += (
                f" {_time(row['compiled_generated_us'] / 1e6)} |"
                f" {_time(row['compiled_native_us'] / 1e6)} |"
                f" {row['compiled_generated_over_native']:.2f} |"
            )
        lines.append(line)
    met = sum(c["met"] for c in report["targets"])
    lines += ["", f"{target}: targets met {met} of {len(report['targets'])}."]
    return "\n".join(lines) + "\n"


def run_target(target: str, names, dtypes, folder: Path, args) -> dict:
    """Measure ``target`` ('torch' or 'jax'); the report for the JSON file."""
    rows = (torch_rows if target == "torch" else jax_rows)(names, dtypes, folder, args)
    return {
        "target": target,
        "versions": versions(target),
        "rows": rows,
        "targets": checks(rows, target),
    }


if __name__ == "__main__":
    sys.exit("run benchmarks/run.py --target torch|jax")
