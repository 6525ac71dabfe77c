"""The benchmark's baselines compute what the generated layers compute, and the
benchmark script runs: a comparison with a wrong baseline would mean nothing."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad

from .conftest import layer_class, target_runner

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from baselines import BOOK, NAIVE, PLAIN  # noqa: E402


def _ordinary_points():
    """Points in [-5, 5] away from every catalog kink (0, +-0.5, +-1, +-3, 6)."""
    x = np.linspace(-5.0, 5.0, 97) + 0.0137
    return x.reshape(1, -1)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_baselines_agree_with_the_generated_layers(readable_catalog_module, name):
    x = _ordinary_points()
    dout = np.cos(x)
    plain, generated = PLAIN[name](), layer_class(readable_catalog_module, name)()
    np.testing.assert_allclose(plain.forward(x), generated.forward(x), rtol=1e-7)
    np.testing.assert_allclose(
        plain.backward(dout.copy()), generated.backward(dout), rtol=1e-7, atol=1e-12
    )


def test_every_catalog_layer_has_a_baseline():
    assert set(PLAIN) == set(symgrad.CATALOG)
    assert set(NAIVE) == set(PLAIN) and set(BOOK) == {"relu", "sigmoid"}


@pytest.mark.slow
def test_the_benchmark_script_runs_and_checks_its_targets(tmp_path):
    """A short run writes its JSON with the machine's SIMD level and the targets."""
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run.py"),
            "--sections", "learner,overhead",
            "--activations", "relu,sigmoid",
            "--dtypes", "float32",
            "--repeats", "0.05",
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SIMD found" in done.stdout
    import json

    report = json.loads(out.read_text())
    assert report["machine"]["simd"]["baseline"]
    assert any("readable/book" in c["target"] for c in report["targets"])


def _framework_natives(target):
    pytest.importorskip(target)
    import frameworks

    return frameworks.torch_native() if target == "torch" else frameworks.jax_native()


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_framework_baselines_agree_with_the_generated_layers(catalog_modules, target):
    """Each framework op the benchmark times computes what the generated layer
    does, forward and backward, at the catalog's defaults."""
    natives = _framework_natives(target)
    assert {"relu", "sigmoid", "tanh", "silu", "softplus", "gelu", "elu"} <= set(
        natives
    )
    x = _ordinary_points().ravel()
    dout = np.cos(x)
    for name, native in natives.items():
        generated = target_runner(catalog_modules[target], target, name)
        y = generated.forward(x)
        dx = generated.backward(dout)
        if target == "torch":
            import torch

            leaf = torch.tensor(x, requires_grad=True)
            out = native(leaf)
            out.backward(torch.tensor(dout))
            want_y, want_dx = out.detach().numpy(), leaf.grad.numpy()
        else:
            import jax

            from symgrad.targets.runners import _x64

            with _x64():
                out, pullback = jax.vjp(native, jax.numpy.asarray(x))
                want_y, want_dx = np.asarray(out), np.asarray(pullback(dout)[0])
        np.testing.assert_allclose(y, want_y, rtol=1e-7, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-7, atol=1e-12, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["torch", "jax"])
def test_the_framework_benchmark_runs_and_checks_its_targets(tmp_path, target):
    pytest.importorskip(target)
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run.py"),
            "--target", target,
            "--activations", "relu,sigmoid",
            "--repeats", "0.05",
            "--no-compile",
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SIMD found" in done.stdout
    import json

    report = json.loads(out.read_text())
    assert {r["activation"] for r in report["rows"]} == {"relu", "sigmoid"}
    assert {tuple(r["shape"]) for r in report["rows"]} == {
        (100, 50),
        (1000000,),
        (10000000,),
    }
    assert all(r["generated_over_native"] > 0 for r in report["rows"])
    assert len(report["targets"]) == 4  # two layers at 1e6 and 1e7


def test_an_update_replaces_only_the_rows_measured_again():
    """``--update`` of a numba report keeps every other layer's rows, threads
    and one-time costs, so that measuring two layers again does not lose the
    other 84 targets' figures."""
    from run import updated

    old = {
        "machine": {"cpu": "old"},
        "sizes": [
            {"activation": "relu", "dtype": "float64", "size": 10, "t": 1.0},
            {"activation": "mish", "dtype": "float64", "size": 10, "t": 2.0},
        ],
        "threads": [
            {"activation": "relu", "dtype": "float64", "from": 4},
            {"activation": "mish", "dtype": "float64", "from": 8},
        ],
        "costs": {"import_numba_s": 0.1, "first_call_compile_s": {"relu": 0.4}},
    }
    new = {
        "machine": {"cpu": "new"},
        "sizes": [{"activation": "mish", "dtype": "float64", "size": 10, "t": 3.0}],
        "threads": [{"activation": "mish", "dtype": "float64", "from": 16}],
        "costs": {"import_numba_s": 0.2, "first_call_compile_s": {"mish": 5.0}},
    }
    merged = updated(old, new)
    assert merged["machine"] == {"cpu": "new"}
    assert [r["t"] for r in merged["sizes"]] == [1.0, 3.0]
    assert [r["from"] for r in merged["threads"]] == [4, 16]
    assert merged["costs"] == {
        "import_numba_s": 0.2,
        "first_call_compile_s": {"relu": 0.4, "mish": 5.0},
    }


@pytest.mark.slow
def test_the_numba_benchmark_times_pytorch_apart_and_a_network_step(tmp_path):
    """PyTorch's rows come from a process of their own (its idle threads spin
    into the others' timing), for the layers it has; the network step runs
    the layers as they come and with serial loops, and both compute."""
    pytest.importorskip("torch")
    pytest.importorskip("numba")
    import numba_target

    from symgrad.loader import import_path

    rows = numba_target.torch_in_a_process(
        ["mish", "softsign"], ["float32"], 0.05, sizes=[1000]
    )
    assert list(rows) == [("mish", "float32", 1000)]
    assert all(t > 0 for t in rows["mish", "float32", 1000])
    path = tmp_path / "net_numba.py"
    path.write_text(symgrad.generate(["mish"], target="numba"))
    fused = import_path(path, "net_numba")

    class Args:
        repeats = 0.05

    [row] = numba_target.network(fused, "mish", Args, shapes=[(300, 100)])
    assert (
        row["shape"] == [300, 100] and row["threads_from"] == fused.Mish.parallel_from
    )
    assert row["step_us"] > 0 and row["serial_us"] > 0
