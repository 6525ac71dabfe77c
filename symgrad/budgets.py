"""Time and memory budgets for the work whose cost a formula controls.

Parsing bounds a formula's length, depth and constants, but not what SymPy then
does with it: ``simplify`` on ``((x+1)**64+1)**64`` grows past 13 GB, and the
saturation search on ``x**x**x`` runs for minutes.  SymPy cannot be interrupted
safely inside a thread, so a user's activation is worked on in a child process
which the parent kills when its time runs out or its memory passes the budget.
The child reports each `stage` it enters, so the error names the stage that ran
out.  Children are forked from a server process of our own that has imported
SymPy once (a fork costs milliseconds; a fresh interpreter, a second), started on
first use and ended with its parent.  Not `multiprocessing`: its children import
the user's ``__main__`` again, which runs an unguarded script twice.

Inside the child, a stage with a cheaper path (`attempt`) gets a share of the
time left and takes that path when the share is spent: the raw derivative for an
unfinished simplification, the input instead of an output form, an expression
without a stability rewrite.  Interrupting SymPy is safe there, because the
process is thrown away afterwards.  Catalog activations, whose cost is known, are
worked on in-process.

The budget is 10 s and 2 GB per piece of work by default; ``SYMGRAD_TIME_LIMIT``
and ``SYMGRAD_MEMORY_LIMIT`` (or the command line's ``--time-limit`` and
``--memory-limit``, or `budget` in Python) set it.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import math
import os
import pickle
import queue
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .catalog import is_builtin
from .errors import FormulaError

if TYPE_CHECKING:
    from .model import Activation

T = TypeVar("T")

#: The modules a worker needs, imported once by the server it is forked from.
_PRELOAD = ("symgrad.derivation", "symgrad.codegen", "symgrad.steps")
_POLL_SECONDS = 0.02
#: How long the server may take to start (import SymPy), outside any budget.
_START_SECONDS = 120.0
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class BudgetExceeded(FormulaError):
    """Work on a formula ran out of its time or memory budget; the message names
    the stage it was in and how to raise the budget."""


@dataclass(frozen=True)
class Budget:
    """How long, and with how much memory, one piece of work on a formula may run."""

    seconds: float = 10.0
    memory: int = 2 * 2**30

    def __post_init__(self) -> None:
        if not (isinstance(self.seconds, (int, float)) and 0 < self.seconds < math.inf):
            raise ValueError(
                f"time limit must be a positive number of seconds, not {self.seconds!r}"
            )
        if not (isinstance(self.memory, int) and self.memory >= 2**20):
            raise ValueError(f"memory limit must be at least 1M, not {self.memory!r}")

    def describe(self) -> str:
        return f"{self.seconds:g} s and {format_size(self.memory)}"


def parse_seconds(text: str, origin: str = "time limit") -> float:
    """A positive number of seconds, from text such as ``10`` or ``2.5``."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"{origin} {text!r} is not a positive number of seconds")
    return seconds


def parse_size(text: str, origin: str = "memory limit") -> int:
    """A number of bytes, from text such as ``2G``, ``512M``, ``1.5GB`` or ``1048576``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    if match is None:
        raise ValueError(
            f"{origin} {text!r} is not a size such as 2G, 512M or a number of bytes"
        )
    size = int(float(match[1]) * _UNITS[match[2].upper()])
    if size < 2**20:
        raise ValueError(f"{origin} {text!r} is below 1M")
    return size


def format_size(size: int) -> str:
    for unit in "TGMK":
        if size >= _UNITS[unit] and size % (_UNITS[unit] // 4) == 0:
            return f"{size / _UNITS[unit]:g}{unit}"
    return f"{size} bytes"


def _from_environment() -> Budget:
    seconds, memory = Budget.seconds, Budget.memory
    if text := os.environ.get("SYMGRAD_TIME_LIMIT"):
        seconds = parse_seconds(text, "SYMGRAD_TIME_LIMIT")
    if text := os.environ.get("SYMGRAD_MEMORY_LIMIT"):
        memory = parse_size(text, "SYMGRAD_MEMORY_LIMIT")
    return Budget(seconds, memory)


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "symgrad_budget", default=None
)


def current() -> Budget:
    """The budget in force: set by `budget`, else from the environment."""
    return _current.get() or _from_environment()


@contextlib.contextmanager
def budget(
    seconds: float | None = None, memory: int | str | None = None
) -> Iterator[Budget]:
    """Work on formulas inside the ``with`` block gets this budget (``memory`` in
    bytes or as text such as ``"4G"``); what is not given stays as it was."""
    base = current()
    if isinstance(memory, str):
        memory = parse_size(memory)
    chosen = Budget(
        base.seconds if seconds is None else seconds,
        base.memory if memory is None else memory,
    )
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


# The worker's side: a child forked by the server runs one piece of work.


@dataclass
class _Worker:
    output: Any
    deadline: float
    stages: list[str]
    #: The innermost stage an exception left, for the error.
    failed_in: str | None = None
    #: The stage that ended last: time spent between stages follows it.
    ended: str | None = None

    def report(self) -> None:
        _send(self.output, ("stage", _stage()))


_worker: _Worker | None = None


class _OutOfTime(BaseException):
    """Raised inside a worker when an `attempt`'s share of the time is spent.
    A BaseException, so that no ``except Exception`` in SymPy swallows it."""


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Mark the work inside as the stage ``name`` (what a budget error names)."""
    if _worker is None:
        yield
        return
    _worker.stages.append(name)
    _worker.report()
    try:
        yield
    except BaseException:
        _worker.failed_in = _worker.failed_in or name
        raise
    finally:
        _worker.ended = _worker.stages.pop()
        _worker.report()


def attempt(
    name: str, work: Callable[[], T], fallback: Callable[[], T], share: float
) -> T:
    """``work()`` as the stage ``name``; in a worker, with ``share`` of the time
    left, after which ``fallback()`` (a cheaper path) is taken instead."""
    with stage(name):
        if (
            _worker is None
            or not hasattr(signal, "setitimer")  # Windows: the whole budget only
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0  # inside another
        ):
            return work()
        seconds = share * (_worker.deadline - time.monotonic())
        if seconds <= 0:
            return fallback()

        def out_of_time(signum, frame):
            raise _OutOfTime

        previous = signal.signal(signal.SIGALRM, out_of_time)
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                return work()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _OutOfTime:
            pass
        finally:
            signal.signal(signal.SIGALRM, previous)
    return fallback()


def _stage() -> str:
    """The stage the worker is in, for a budget error: the innermost one
    open, else what follows the one that ended last."""
    if _worker is None:
        return "starting"
    if _worker.stages:
        return _worker.stages[-1]
    return f"the work after {_worker.ended}" if _worker.ended else "starting"


def _run_one(output, limits: Budget, function, args) -> None:
    """Run ``function(*args)`` and send its outcome (in the forked child)."""
    global _worker
    _worker = _Worker(output, time.monotonic() + limits.seconds, [])
    _send(output, ("pid", os.getpid(), _statm(os.getpid(), 1) or 0))
    _cap(limits)
    try:
        message = ("done", function(*args))
    except MemoryError:
        message = ("exceeded", "memory", _worker.failed_in or _stage())
    except RecursionError:
        where = _worker.failed_in or _stage()
        message = ("error", FormulaError(f"it is nested too deeply ({where})"))
    except BaseException as error:  # the parent raises it
        message = ("error", error)
    try:
        _send(output, message)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        _send(output, ("error", FormulaError(f"{_stage()} failed: {error}")))


def _cap(limits: Budget) -> None:
    """Hard limits a little above the budget, should the parent be late."""
    try:
        import resource
    except ImportError:  # not POSIX: the parent's watch alone
        return
    size = _statm(os.getpid(), 0) or 0
    caps = [
        (resource.RLIMIT_AS, size + limits.memory + limits.memory // 2),
        (resource.RLIMIT_CPU, math.ceil(limits.seconds) + 5),
    ]
    for which, cap in caps:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (cap, resource.getrlimit(which)[1]))


# The server: started by the parent, forks a child per piece of work.

_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from symgrad.budgets import _serve; _serve()"
)


def _serve() -> None:
    """Read work from stdin, run each in a forked child (where there is fork;
    else here, and the parent starts another server), report on stdout."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    # Anything SymPy prints must not mix with the replies.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for module in _PRELOAD:
        __import__(module)
    _send(replies, ("ready",))
    while (request := _receive(requests)) is not None:
        if not hasattr(os, "fork"):
            _run_one(replies, *request)
            _send(replies, ("exit", 0))
            return
        pid = os.fork()
        if pid == 0:
            try:
                _run_one(replies, *request)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        _send(replies, ("exit", os.waitstatus_to_exitcode(status)))


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    """The next message, or None at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


class _Server:
    """The parent's handle on a server process."""

    def __init__(self) -> None:
        threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        self.owner = os.getpid()
        self.child: int | None = None
        # What the server says if it fails to start; read only then.
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env={**os.environ, **threads},
        )
        self.replies: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + _START_SECONDS
        while (message := self._next(deadline)) is _TIMEOUT:
            if time.monotonic() >= deadline:
                break
        if message != ("ready",):
            self.process.kill()
            self.process.wait()
            self.errors.seek(0)
            said = self.errors.read().decode(errors="replace").strip().splitlines()
            self.close()
            raise OSError(
                "symgrad's worker process did not start"
                + (f": {said[-1]}" if said else "")
            )

    def _read(self) -> None:
        while True:
            message = _receive(self.process.stdout)
            self.replies.put(message)
            if message is None:
                return

    def _next(self, deadline: float):
        """The next reply, None when the server ended, or _TIMEOUT."""
        try:
            return self.replies.get(
                timeout=max(0.0, min(_POLL_SECONDS, deadline - time.monotonic()))
            )
        except queue.Empty:
            return _TIMEOUT

    def run(self, limits: Budget, function, args):
        """Returns (outcome message, whether the server can be used again)."""
        _send(self.process.stdin, (limits, function, args))
        deadline = time.monotonic() + limits.seconds
        stage_name, pid, limit, outcome = "starting", None, 0, None
        while True:
            message = self._next(deadline)
            if message is None:
                return ("ended", stage_name, self.process.poll()), False
            if message is _TIMEOUT:
                if time.monotonic() >= deadline:
                    self._kill(pid)
                    return ("exceeded", "time", stage_name), False
                if pid is not None and (_statm(pid, 1) or 0) > limit:
                    self._kill(pid)
                    return ("exceeded", "memory", stage_name), False
                continue
            kind = message[0]
            if kind == "pid":  # its memory counts from what it started with
                pid, started_with = message[1], message[2]
                self.child, limit = pid, started_with + limits.memory
            elif kind == "stage":
                stage_name = message[1]
            elif kind == "exit":
                self.child = None
                if outcome is None:
                    outcome = ("ended", stage_name, message[1])
                return outcome, hasattr(os, "fork")
            else:
                outcome = message

    def _kill(self, pid: int | None) -> None:
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))

    def close(self) -> None:
        """End the server and any work it is running."""
        self._kill(self.child)
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        self.reader.join(5)  # it reads to the end of the killed server's output
        self.process.stdout.close()
        self.errors.close()


_TIMEOUT = object()
_server: _Server | None = None
_server_lock = threading.Lock()


@atexit.register
def _close_server() -> None:
    global _server
    if _server is not None and _server.owner == os.getpid():
        _server.close()
    _server = None


_known_cost: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "symgrad_known_cost", default=False
)


@contextlib.contextmanager
def known_cost() -> Iterator[None]:
    """Work inside is done in this process: its cost is known (a catalog
    activation's, or a stand-in for one)."""
    token = _known_cost.set(True)
    try:
        yield
    finally:
        _known_cost.reset(token)


def for_activation(
    act: Activation, function: Callable[..., T], *args: Any, known: bool = False
) -> T:
    """``function(*args)``, work on ``act``: in this process where its cost is
    known (a catalog activation, or ``known``: a stand-in for one), else in a
    worker within the budget (`within_budget`)."""
    if known or is_builtin(act):
        with known_cost():
            return function(*args)
    return within_budget(function, *args, subject=act.name)


def within_budget(function: Callable[..., T], *args: Any, subject: str) -> T:
    """``function(*args)`` in a worker process bounded by the current budget.

    ``function`` must be importable by name and its arguments and result
    picklable.  ``subject`` says what is worked on (an activation's name), for
    the error.  What the function raises is raised here; running out of time or
    memory raises `BudgetExceeded`.  Inside a worker, it just calls.
    """
    global _server
    if _worker is not None or _known_cost.get():
        return function(*args)
    limits = current()
    with _server_lock:
        if _server is None or _server.owner != os.getpid():
            _server = _Server()  # a fork of the parent starts its own
        reusable = False
        try:
            outcome, reusable = _server.run(limits, function, args)
        finally:  # also on KeyboardInterrupt: no work is left running
            if not reusable:
                _server.close()
                _server = None
    kind = outcome[0]
    if kind == "done":
        return outcome[1]
    if kind == "error":
        raise outcome[1]
    if kind == "exceeded":
        raise _exceeded(outcome[1], subject, outcome[2], limits)
    raise FormulaError(
        f"work on {subject!r} stopped while {outcome[1]}: its process ended "
        f"with status {outcome[2]}"
    )


def _exceeded(resource: str, subject: str, stage_name: str, limits: Budget):
    if resource == "time":
        spent = f"ran out of time ({limits.seconds:g} s)"
        how = "--time-limit SECONDS (SYMGRAD_TIME_LIMIT)"
    else:
        spent = f"ran out of memory ({format_size(limits.memory)})"
        how = "--memory-limit SIZE (SYMGRAD_MEMORY_LIMIT)"
    return BudgetExceeded(
        f"{subject!r}: {stage_name} {spent}; simplify the formula or raise the "
        f"budget with {how}"
    )


def _statm(pid: int, field: int) -> int | None:
    """Field 0 (virtual size) or 1 (resident size) of /proc/pid/statm, in bytes."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as file:
            return int(file.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
