"""The benchmark's baselines compute what the generated layers compute, and the
benchmark script runs: a comparison with a wrong baseline would mean nothing."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad

from .conftest import layer_class

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
