"""Error paths: every mistake is one line and exit status 2, with no traceback,
and the messages teach (the allowed choices, the fix); a reader that leaves a
pipe early ends symgrad quietly; backward takes dout by one rule in every
layer; the fast layers keep one thread pool.

Variants of each class of problem, not only the reported inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import symgrad
from symgrad import CATALOG
from symgrad.cli import main


def _cli(*args: str, stdin=None, **kwargs):
    run = subprocess.run(
        [sys.executable, "-m", "symgrad", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=stdin,
        **kwargs,
    )
    return run.returncode, run.stdout, run.stderr


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("symgrad: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


SPECS = {
    "deep arrays": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "deep tables": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    "activation of integers": "activation = [1, 2]\n",
    "activation of strings": 'activation = ["relu"]\n',
    "activation a string": 'activation = "relu"\n',
    "name a number": "[[activation]]\nname = 3\n",
    "formula a number": '[[activation]]\nname = "f"\nformula = 3\n',
    "params an array": '[[activation]]\nname = "elu"\nparams = [1]\n',
    "param a string": '[[activation]]\nname = "f"\nformula = "a*x"\nparams = {a = "b"}\n',
    "learnable a string": '[[activation]]\nname = "f"\nformula = "a*x"\n'
    'params = {a = 1.0}\nlearnable = "a"\n',
    "not UTF-8": b"[[activation]]\nname = '\xff'\n",
    "unknown key": '[[activation]]\nname = "elu"\nalpha = 1\n',
}


@pytest.mark.parametrize("content", SPECS.values(), ids=SPECS.keys())
def test_bad_spec_files_are_one_line_errors(content, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    if isinstance(content, bytes):
        spec.write_bytes(content)
    else:
        spec.write_text(content, encoding="utf-8")
    err = _one_line_error(capsys, ["generate", "--spec", str(spec), "-o", "-"])
    assert str(spec) in err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["generate", "--formula", "gamma(x)", "--name", "g", "-o", "-"],
         "the functions are abs, asinh"),
        (["generate", "--formula", "x*exq(x)", "--name", "g", "-o", "-"],
         "did you mean exp?"),
        (["generate", "--formula", "x^2", "--name", "g", "-o", "-"],
         "for a power write ** (x**2)"),
        (["generate", "--formula", "x^a", "--name", "g", "--param", "a=2", "-o", "-"],
         "for a power write **"),
        (["generate", "--formula", "x*slope", "--name", "g", "-o", "-"],
         "--param slope=VALUE"),
        (["generate", "--formula", "x*a", "--name", "g", "--param", "a=1",
          "--param", "b=2", "-o", "-"], "parameter 'b' is not used"),
        (["generate", "--formula", "x*a", "--name", "g", "--param", "a=1",
          "--param", "a=2", "-o", "-"], "--param a is given twice"),
        (["generate", "elu:alpha=1,alpha=2", "-o", "-"], "'alpha' is given twice"),
        (["generate", "relu"], "give -o PATH, or -o - to print it"),
        (["latex", "relu"], "give -o PATH, or -o - to print it"),
        (["generate", "relux", "-o", "-"], "did you mean relu"),
        (["generate", "relu", "-o", "-", "--target", "tf"], "(choose from 'numpy'"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_and_say_how_to_fix_them(argv, expected, capsys):
    assert expected in _one_line_error(capsys, argv)


def test_bare_symgrad_prints_its_usage(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: symgrad") and "symgrad list" in err


def test_help_describes_names_and_points_at_the_list(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "symgrad list shows them all" in out and "elu:alpha=0.5" in out


def test_show_takes_several_names(capsys):
    assert (
        main(["show", "relu", "sigmoid", "--formula", "x*tanh(x)", "--name", "t"]) == 0
    )
    out = capsys.readouterr().out
    assert (
        out.index("relu (Relu)") < out.index("sigmoid (Sigmoid)") < out.index("t (T)")
    )


def test_printed_modules_do_not_claim_a_command_that_prints(capsys):
    """The header of a module written to stdout says how to regenerate it into
    a file, not the command that printed it."""
    assert main(["generate", "relu", "-o", "-"]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header == "# Regenerate with: symgrad generate relu -o FILE"


@pytest.mark.parametrize(
    "args",
    [["list"], ["generate", *CATALOG, "-o", "-"], ["show", "gelu", "--format", "dot"],
     ["latex", "relu", "sigmoid", "-o", "-"]],
    ids=["list", "generate", "show-dot", "latex"],
)  # fmt: skip
def test_a_reader_that_leaves_early_ends_symgrad_quietly(args):
    """``symgrad ... | head -1`` (the reader closes the pipe): no traceback, no
    'Broken pipe' message, a status that is not a crash."""
    process = subprocess.Popen(
        [sys.executable, "-m", "symgrad", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.read(1)
    process.stdout.close()  # as head does after its line
    status = process.wait(timeout=120)
    err = process.stderr.read().decode()
    process.stderr.close()
    assert err == "" and status in (0, 1)


@pytest.mark.parametrize("command", ["generate relu", "latex relu", "show relu"])
def test_a_closed_stdout_is_a_one_line_error(command):
    words = command.split() + (["-o", "-"] if command != "show relu" else [])
    run = subprocess.run(  # the shell closes stdout (>&-), as a user's would
        ["sh", "-c", f'"{sys.executable}" -m symgrad {" ".join(words)} >&-'],
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr == (
        "symgrad: error: standard output is closed; give a file with -o PATH\n"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names")
@pytest.mark.parametrize("name", [b"\xff.py", b"caf\xe9.py", b"a\x80b\xfe.py"])
def test_file_names_that_are_not_utf8_work_and_regenerate(name, tmp_path):
    target = os.fsdecode(name)
    status, _, err = _cli("generate", "relu", "-o", target, cwd=tmp_path)
    assert status == 0, err
    header = (tmp_path / target).read_text(encoding="utf-8").splitlines()[1]
    command = header.removeprefix("# Regenerate with: ")
    rerun = subprocess.run(
        ["bash", "-c", command.replace("symgrad", f"{sys.executable} -m symgrad", 1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0 and "unchanged" in rerun.stderr, rerun.stderr


# -- dout and dtypes -------------------------------------------------------------

DOUTS = {
    "int64": lambda s: np.ones(s, np.int64),
    "int8": lambda s: np.full(s, 2, np.int8),
    "bool": lambda s: np.ones(s, bool),
    "float16": lambda s: np.ones(s, np.float16),
    "float32": lambda s: np.ones(s, np.float32),
    "float64": lambda s: np.ones(s, np.float64),
    "list": lambda s: np.ones(s).tolist(),
}


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_layer_takes_dout_by_one_rule(name, fast):
    """dout is taken as forward takes x (integers, booleans and lists become
    float64) and cast to the float array the layer kept: dx has the layer's
    dtype, or, where the layer kept only a mask or a shape, dout's."""
    layer = symgrad.compile(name, fast=fast)()
    kept_floats = symgrad.derive(name).saves in ("input", "output")
    for dtype in (np.float32, np.float64):
        x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
        layer.forward(x)
        for kind, make in DOUTS.items():
            dout = make((3, 4))
            dx = layer.backward(dout)
            taken = np.asarray(dout).dtype
            if taken.kind != "f":
                taken = np.dtype(np.float64)
            assert dx.dtype == (dtype if kept_floats else taken), (kind, dtype)
            assert np.isfinite(dx).all(), kind


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
@pytest.mark.parametrize("name", ["gelu", "sigmoid", "relu", "softplus"])
@pytest.mark.parametrize("dtype", ["longdouble", "complex128", "object", "U3"])
def test_unsupported_input_dtypes_are_refused_clearly(name, fast, dtype):
    x = np.array([0.5, -0.5]).astype(dtype)
    if np.dtype(dtype) == np.float64:  # a platform whose long double is double
        pytest.skip("long double is float64 here")
    with pytest.raises(TypeError, match="expected float16, float32 or float64"):
        symgrad.compile(name, fast=fast)().forward(x)


def test_the_fast_layers_keep_one_thread_pool(monkeypatch):
    """Thread counts and array sizes varying call to call leave one pool's
    threads alive, not a pool per size."""
    from symgrad.targets import thread_helpers as helpers

    layer = symgrad.compile("gelu", fast=True)()
    before = threading.active_count()
    for threads in (2, 8, 3, 16, 5):
        monkeypatch.setenv("SYMGRAD_THREADS", str(threads))
        for size in (1 << 18, 3 << 18, 1 << 20, 5 << 18):
            x = np.linspace(-4, 4, size)
            layer.forward(x)
            layer.backward(np.ones_like(x))
    pools = [p for p in helpers._pools.values()]
    assert len(pools) <= 1
    alive = [t for t in threading.enumerate() if t.name.startswith("symgrad")]
    assert len(alive) <= 15  # one pool, at most its largest size
    assert threading.active_count() - before <= 15
