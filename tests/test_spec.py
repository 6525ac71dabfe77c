"""Spec files and the command line for your own formulas, and `symgrad check`."""

import subprocess
import sys

import pytest

from symgrad.cli import main
from symgrad.spec import SpecError, load_spec

SPEC = """
[[activation]]
name = "TanhExp"
formula = "x*tanh(exp(x))"

[[activation]]
name = "isrlu"
formula = "where(x >= 0, x, x/sqrt(1 + a*x**2))"
params = { a = 1.0 }
learnable = ["a"]

[[activation]]
name = "elu"
params = { alpha = 0.5 }
"""


def test_spec_lists_formulas_and_catalog_entries(tmp_path):
    path = tmp_path / "acts.toml"
    path.write_text(SPEC)
    acts = load_spec(path)
    assert [a.class_name for a in acts] == ["TanhExp", "Isrlu", "Elu"]
    assert acts[1].learnable[0].name == "a"
    assert acts[2].param("alpha").value == 0.5


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[[activation]]\nname = 'x'\nformula = 'x*exq(x)'",
            "activation #1 (x): unknown function 'exq'",
        ),
        ("[[activation]]\nformula = 'x'", "'name' is required"),
        ("[[activation]]\nname = 'a'\nfromula = 'x'", "unknown key 'fromula'"),
        (
            "[[activation]]\nname = 'relu'\nparams = { beta = 1 }",
            "has no parameter 'beta'",
        ),
        ("[layers]\nname = 'a'", "unknown table 'layers'"),
        ("[[activation]\nname = 'a'", "not valid TOML"),
        ("", "no [[activation]] entries"),
    ],
)
def test_bad_specs_say_where(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_generate_from_a_formula_writes_a_working_layer(tmp_path):
    target = tmp_path / "layers.py"
    code = main(
        [
            "generate",
            "--formula",
            "x*tanh(exp(x))",
            "--name",
            "TanhExp",
            "-o",
            str(target),
        ]
    )
    assert code == 0
    source = target.read_text()
    assert "class TanhExp:" in source
    assert (
        "# Regenerate with: symgrad generate --formula 'x*tanh(exp(x))' --name TanhExp"
        in source
    )


def test_generate_from_a_spec_and_names_together(tmp_path, capsys):
    path = tmp_path / "acts.toml"
    path.write_text(SPEC)
    assert main(["generate", "relu", "--spec", str(path), "-o", "-"]) == 0
    out = capsys.readouterr().out
    for name in ("Relu", "TanhExp", "Isrlu", "Elu"):
        assert f"class {name}:" in out


def test_show_a_formula_with_a_parameter(capsys):
    args = [
        "show",
        "--formula",
        "where(x >= 0, x, x/sqrt(1 + a*x**2))",
        "--name",
        "isrlu",
    ]
    assert main([*args, "--param", "a=1"]) == 0
    assert (
        "= 1 if y >= 0 else (-a*y**2 + 1)**(3/2)  (in the output y)"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["generate", "--formula", "x*exq(x)", "--name", "T", "-o", "out.py"],
            "unknown function 'exq'",
        ),
        (["generate", "--formula", "x", "-o", "out.py"], "--formula needs --name"),
        (["generate", "--name", "T", "-o", "out.py"], "go with --formula"),
        (["generate", "-o", "out.py"], "name an activation"),
        (
            [
                "generate",
                "--formula",
                "a*x",
                "--name",
                "T",
                "--param",
                "a=b",
                "-o",
                "out.py",
            ],
            "'b' is not a number",
        ),
        (
            [
                "generate",
                "--formula",
                "__import__('os')",
                "--name",
                "T",
                "-o",
                "out.py",
            ],
            "unknown function",
        ),
        (
            ["generate", "--formula", "x", "--name", "../../evil", "-o", "out.py"],
            "not a valid Python identifier",
        ),
        (["generate", "--spec", "missing.toml", "-o", "out.py"], "missing.toml"),
    ],
)
def test_formula_mistakes_are_one_line_and_write_nothing(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "symgrad", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_reports_a_row_per_activation_and_passes(capsys):
    code = main(
        [
            "check",
            "relu",
            "gelu",
            "--formula",
            "x*tanh(softplus(x))",
            "--name",
            "MyMish",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["name", "caches", "gradcheck", "vs", "mpmath", "result"]
    assert [line.split()[0] for line in out[1:4]] == ["relu", "gelu", "MyMish"]
    assert all(line.split()[-1] == "ok" for line in out[1:4])


def test_check_fails_where_a_layer_overflows_and_exits_1(capsys):
    """log(1 + a*x**2) is finite everywhere, but x*x overflows past 1e154; with
    a parameter, no regime is searched: check says where, and exits 1."""
    argv = ["check", "--formula", "log(1 + a*x**2)", "--param", "a=1", "--name", "L"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "L: float64 x=1e+300: overflow encountered in" in out
