"""The built wheel carries the templates: install it in a fresh venv and run the CLI."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_generates(tmp_path):
    """pip install of the wheel (not editable), then `symgrad generate relu sigmoid`."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("symgrad-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [str(bin_dir / "symgrad"), "generate", "relu", "sigmoid", "-o", "layers.py"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # The stored audit ships too: the docstrings quote it.
    assert "Audited worst error in ulps" in (work / "layers.py").read_text()
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import layers; print(layers.Relu().forward(-5), layers.Sigmoid().forward(10))",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.split() == ["0.0", "0.9999546021312976"]
    located = subprocess.run(
        [str(python), "-c", "import symgrad.codegen as c; print(c.templates_root())"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "site-packages" in located
