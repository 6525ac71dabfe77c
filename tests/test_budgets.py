"""Budgets: no formula, however short, makes symgrad run without end or exhaust
memory.  Work on an activation outside the catalog runs in a child process
under a time and memory budget (`symgrad.budgets`); a stage with a cheaper path
takes it when its share of the time is spent, and otherwise the work ends with a
`BudgetExceeded` that names the stage.

The formulas are variants of each class the hardening pass found (towers of
powers, huge polynomial powers, deep nesting of kinks and saturating functions,
constants past float64), not only the reported strings.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import symgrad
from symgrad import budgets
from symgrad.budgets import BudgetExceeded, attempt, stage, within_budget
from symgrad.cli import main

SECONDS = 2.0
#: Time on top of the budget: the server's start (importing SymPy) and the
#: generated module's import.
SLACK = 8.0

HOSTILE = [
    "x**x**x",
    "x**x**x**x",
    "(x**x)**(x**x)",
    "((x+1)**64+1)**64",
    "((x-2)**60 + x)**50",
    "(1 + x + x**2)**64 * (2 - x)**64",
    "abs(abs(abs(abs(abs(abs(abs(abs(x-1)-1)-1)-1)-1)-1)-1)-1)",
    "abs(abs(abs(abs(abs(abs(x+1)-2)+3)-4)+5)-6)",
    "max(x, 2*x, 3*x-1, x**2, -x, x/2+1, 4*x-3, 5-x, x**3, 1-x**2)",
    "tanh(tanh(tanh(tanh(tanh(tanh(tanh(tanh(tanh(tanh(x))))))))))",
    "clip(clip(clip(clip(clip(x, -1, 1)*2, -1, 1)*2, -1, 1)*2, -1, 1)*2, -1, 1)",
    "exp(exp(exp(exp(x))))",
    "sigmoid(sigmoid(sigmoid(sigmoid(sigmoid(x)))))*x",
]


def _outcome(work):
    """(seconds taken, the result or the FormulaError raised)."""
    start = time.monotonic()
    try:
        result = work()
    except symgrad.FormulaError as error:
        result = error
    return time.monotonic() - start, result


@pytest.mark.slow
@pytest.mark.parametrize("formula", HOSTILE)
def test_hostile_formulas_end_within_the_budget(formula, tmp_path):
    """Each one generates a working layer or is refused naming the stage that ran
    out, well within the budget either way."""
    act = symgrad.parse(formula, name="hostile")
    with symgrad.budget(seconds=SECONDS):
        taken, result = _outcome(lambda: symgrad.generate(act))
    assert taken < SECONDS + SLACK, f"{formula}: {taken:.1f} s"
    if isinstance(result, symgrad.FormulaError):
        message = str(result)
        assert "'hostile'" in message and "\n" not in message
        if isinstance(result, BudgetExceeded):
            assert "ran out of time (2 s)" in message and "--time-limit" in message
        return
    path = tmp_path / "hostile_layer.py"
    path.write_text(result, encoding="utf-8")
    from symgrad.loader import import_path

    layer = import_path(path, f"hostile_{abs(hash(formula))}").Hostile()
    with np.errstate(all="ignore"):  # some of these overflow for any x > 0
        out = layer.forward(np.array([0.25, 0.5, 0.75]))
    assert out.shape == (3,)


@pytest.mark.parametrize(
    "formula",
    ["x*exp(exp(exp(exp(9))))", "x + exp(exp(exp(exp(8))))*0", "x*10**(10**10)"],
)
def test_constants_too_large_for_any_float_are_a_formula_error(formula):
    """Constants past float64 (a number with billions of digits) are refused
    with a FormulaError, whichever stage meets them, never an OverflowError."""
    with symgrad.budget(seconds=SECONDS):
        taken, result = _outcome(
            lambda: symgrad.generate(symgrad.parse(formula, name="big"))
        )
    assert taken < SECONDS + SLACK
    assert isinstance(result, (str, symgrad.FormulaError))


def _sleep_in_stage(name: str) -> None:
    with stage(name):
        time.sleep(60)


def _sleep_after_stage(name: str) -> None:
    with stage(name):
        pass
    time.sleep(60)


def _cheaper_path() -> str:
    return attempt("a slow stage", lambda: time.sleep(60), lambda: "cheap", 0.2)


def _hold_memory(megabytes: int) -> None:
    with stage("holding memory"):
        block = b"x" * (megabytes * 2**20)  # written, so resident
        time.sleep(60)
        del block


def _allocate_at_once(megabytes: int) -> bytearray:
    return bytearray(megabytes * 2**20)


def _recurse(depth: int) -> int:
    return _recurse(depth + 1) + 1


def _out_of_time(function, *args) -> tuple[float, str]:
    """(seconds taken, the error) of ``function(*args)`` with 0.5 s to run."""
    with symgrad.budget(seconds=0.5):
        taken, result = _outcome(lambda: within_budget(function, *args, subject="f"))
    assert isinstance(result, BudgetExceeded)
    return taken, str(result)


def test_running_out_of_time_names_the_stage_and_how_to_raise_it():
    taken, error = _out_of_time(_sleep_in_stage, "weighing")
    assert error.startswith("'f': weighing ran out of time (0.5 s)")
    assert taken < 0.5 + SLACK
    # The server that ran it was ended with it; the next piece of work starts
    # a new one and succeeds.
    assert within_budget(pow, 2, 10, subject="f") == 1024


def test_time_spent_between_stages_names_the_stage_before_it():
    """Not "starting", as it said: the work after the stage that ended last."""
    _, error = _out_of_time(_sleep_after_stage, "weighing")
    assert error.startswith("'f': the work after weighing ran out of time")


def test_a_stage_with_a_cheaper_path_takes_it():
    with symgrad.budget(seconds=3):
        taken, result = _outcome(lambda: within_budget(_cheaper_path, subject="f"))
    assert result == "cheap"
    assert taken < 3


@pytest.mark.parametrize("megabytes", [130, 400])
def test_resident_memory_past_the_budget_ends_the_work(megabytes):
    """Past the budget, the parent's watch ends the work (130M); far past it,
    the child's capped address space does (400M)."""
    with symgrad.budget(seconds=30, memory="100M"):
        taken, result = _outcome(
            lambda: within_budget(_hold_memory, megabytes, subject="g")
        )
    assert isinstance(result, BudgetExceeded)
    assert "holding memory ran out of memory (100M)" in str(result)
    assert "--memory-limit" in str(result)
    assert taken < 30


def test_one_allocation_past_the_cap_is_a_memory_error_not_a_crash():
    """A single allocation far past the budget fails in the child (its address
    space is capped), reported as the memory budget."""
    with symgrad.budget(seconds=30, memory="64M"):
        _, result = _outcome(
            lambda: within_budget(_allocate_at_once, 4096, subject="h")
        )
    assert isinstance(result, BudgetExceeded)
    assert "ran out of memory (64M)" in str(result)


def test_errors_inside_the_worker_are_raised_as_they_are():
    with pytest.raises(ValueError, match="invalid literal"):
        within_budget(int, "twelve", subject="f")
    with pytest.raises(symgrad.FormulaError, match="nested too deeply"):
        within_budget(_recurse, 0, subject="f")


def test_concurrent_threads_each_get_their_own_answer():
    results: dict[int, int] = {}

    def work(k: int) -> None:
        results[k] = within_budget(pow, k, 2, subject="f")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {k: k * k for k in range(8)}


def test_catalog_activations_are_worked_on_in_process(monkeypatch):
    """Their cost is known: no child process, no budget."""

    def refuse(*args, **kwargs):
        raise AssertionError("a catalog activation went to a worker")

    monkeypatch.setattr(budgets._Server, "run", refuse)
    acts = [symgrad.activation("elu", alpha=0.5), "gelu"]
    symgrad.generate([*acts, symgrad.activation("swish", learnable="beta")])
    assert symgrad.derive("mish").steps.shared is not None


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """The worker is not `multiprocessing`: a user's unguarded script is not
    imported again in a child."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import symgrad
            print("ran")
            symgrad.generate(symgrad.parse("x*tanh(x)", name="mine"))
            """
        )
    )
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "ran\n"


def test_budget_settings_are_checked_and_scoped(monkeypatch):
    with symgrad.budget(seconds=3, memory="512M") as chosen:
        assert chosen == budgets.current() == symgrad.Budget(3, 512 * 2**20)
        with symgrad.budget(memory=2**30):
            assert budgets.current() == symgrad.Budget(3, 2**30)
    assert budgets.current() == symgrad.Budget()
    monkeypatch.setenv("SYMGRAD_TIME_LIMIT", "2.5")
    monkeypatch.setenv("SYMGRAD_MEMORY_LIMIT", "1.5G")
    assert budgets.current() == symgrad.Budget(2.5, 3 * 2**29)
    for seconds in (0, -1, float("inf"), float("nan"), "10"):
        with pytest.raises(ValueError, match="time limit"):
            symgrad.Budget(seconds=seconds)
    for text in ("lots", "2X", "-1G", "100", "0.5K"):
        with pytest.raises(ValueError, match="memory limit"):
            budgets.parse_size(text)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--time-limit", "soon"], "--time-limit: time limit 'soon'"),
        (["--time-limit", "0"], "--time-limit: time limit '0'"),
        (["--memory-limit", "2Q"], "--memory-limit: memory limit '2Q'"),
    ],
)
def test_cli_budget_flags_are_checked(flags, message, capsys):
    assert main(["generate", "relu", "-o", "-", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_reports_a_budget_in_one_line(capsys, monkeypatch):
    monkeypatch.setenv("SYMGRAD_TIME_LIMIT", "nope")
    assert main(["generate", "relu", "-o", "-"]) == 2
    assert "SYMGRAD_TIME_LIMIT 'nope'" in capsys.readouterr().err
    monkeypatch.delenv("SYMGRAD_TIME_LIMIT")
    formula = "abs(abs(abs(abs(abs(abs(abs(abs(x-1)-1)-1)-1)-1)-1)-1)-1)"
    args = ["show", "--formula", formula, "--name", "deep", "--time-limit", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("symgrad: error: 'deep': ") and err.count("\n") == 1
    assert "ran out of time (1 s)" in err


def test_a_worker_server_that_cannot_start_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(budgets, "_BOOT", "raise SystemExit('no SymPy here')")
    monkeypatch.setattr(budgets, "_server", None)
    with pytest.raises(OSError, match="worker process did not start: no SymPy here"):
        within_budget(pow, 2, 3, subject="f")
    monkeypatch.undo()
    assert within_budget(pow, 2, 3, subject="f") == 8


@pytest.mark.parametrize("formula", ["x**x**x", "x**(x**x)*2", "(x**x)**(x**x)"])
def test_check_evaluates_a_formula_within_the_budget(formula, capsys):
    """`symgrad check` evaluates the definition in mpmath far out (x = 1e300):
    bounded too, and refused naming that stage."""
    start = time.monotonic()
    status = main(["check", "--formula", formula, "--name", "h", "--time-limit", "2"])
    err = capsys.readouterr().err
    assert time.monotonic() - start < 2 * 2 + SLACK
    assert status == 2 and err.count("\n") == 1
    assert "ran out of time (2 s)" in err
