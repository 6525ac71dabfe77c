"""The ``symgrad`` command: a thin argparse layer over the library.

Every expected failure (a bad name, a bad parameter, a file symgrad must not
overwrite) is reported as one line on stderr with exit status 2, never a
traceback; nothing is written unless the whole module was generated.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .auditing import DEFAULT_DTYPES as DEFAULT_AUDIT_DTYPES
from .auditing import DTYPES as AUDIT_DTYPES
from .auditing import (
    audit,
    contract_terms,
    failure_lines,
    stderr_progress,
    unexplained,
)
from .auditing import plot as save_plot
from .auditing import report as audit_report
from .budgets import budget, parse_seconds, parse_size
from .catalog import CATALOG, activation
from .check import check_activation
from .codegen import cli_spec, generate
from .derivation import derive
from .document import FORMATS, document, render
from .errors import MissingFrameworkError
from .files import write_module
from .formula import parse
from .model import PREFERENCES, Activation
from .spec import load_spec
from .steps import explain
from .targets import NAMES as TARGET_NAMES
from .targets import get_target
from .text import shell_join


class UsageError(Exception):
    """A mistake in the command line; the message is shown as is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(message)


def parse_spec(spec: str) -> Activation:
    """``NAME[:PARAM=VALUE,...]`` as a catalog activation.

    VALUE is a number, or a word for an option (``gelu:approximate=tanh``);
    ``learnable=a+b`` makes parameters learnable (``swish:learnable=beta``).
    """
    name, _, assignments = spec.partition(":")
    values: dict[str, float | str] = {}
    learnable: list[str] = []
    for item in filter(None, assignments.split(",")):
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or not key or not raw:
            raise UsageError(
                f"bad parameter {item!r} in {spec!r}: expected PARAM=VALUE"
            )
        if key in values or (key == "learnable" and learnable):
            raise UsageError(f"{key!r} is given twice in {spec!r}; give it once")
        if key == "learnable":
            learnable += raw.split("+")
            continue
        try:
            values[key] = float(raw)
        except ValueError:
            values[key] = raw  # an option such as approximate=tanh
    try:
        return activation(name.strip(), learnable=learnable, **values)
    except TypeError as error:  # a word where a number was needed
        raise UsageError(f"{spec!r}: {error}") from None


def _add_sources(command: argparse.ArgumentParser, names: str) -> None:
    """The ways a command is told which activations: catalog names, a formula, a spec."""
    command.add_argument(
        "names",
        nargs=names,
        metavar="NAME[:PARAM=VALUE,...]",
        help="a built-in activation (symgrad list shows them all), with "
        "parameters if you like: elu:alpha=0.5, swish:learnable=beta",
    )
    command.add_argument(
        "--formula", metavar="F", help="your own activation, e.g. 'x*tanh(exp(x))'"
    )
    command.add_argument("--name", metavar="N", help="the layer name for --formula")
    command.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="P=V",
        help="a --formula parameter",
    )
    command.add_argument(
        "--learnable",
        action="append",
        default=[],
        metavar="P",
        help="learn parameter P",
    )
    command.add_argument("--spec", metavar="FILE", help="a TOML file of activations")
    command.add_argument(
        "--prefer",
        choices=PREFERENCES,
        help="the precision policy: memory caches the output where backward can "
        "use it (sigmoid' = y*(1 - y), which loses the tails), accuracy caches what "
        "a tail-exact backward needs (default: memory, or a spec entry's prefer)",
    )
    limits = command.add_argument_group(
        "budget", "how long and with how much memory a formula may be worked on"
    )
    limits.add_argument(
        "--time-limit",
        type=_argument(parse_seconds),
        metavar="SECONDS",
        help="per derivation (default 10, or $SYMGRAD_TIME_LIMIT)",
    )
    limits.add_argument(
        "--memory-limit",
        type=_argument(parse_size),
        metavar="SIZE",
        help="per derivation, e.g. 4G (default 2G, or $SYMGRAD_MEMORY_LIMIT)",
    )


def _argument(parse):
    """An argparse type from a parser that raises ValueError with a message."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _add_output(command: argparse.ArgumentParser) -> None:
    """Where a writing command puts its file, and whether it may replace a foreign one."""
    command.add_argument(
        "-o", "--output", metavar="PATH", help="the file to write, or - for stdout"
    )
    command.add_argument(
        "--force", action="store_true", help="overwrite a file symgrad did not generate"
    )


def _add_target(command: argparse.ArgumentParser, fast_help: str) -> None:
    """Which framework the layers are written for, and NumPy's fast style."""
    command.add_argument(
        "--target",
        choices=TARGET_NAMES,
        default="numpy",
        help="numpy (default): layer classes with forward/backward; torch: an "
        "autograd.Function and nn.Module each; jax: jax.custom_vjp functions",
    )
    command.add_argument("--fast", action="store_true", help=fast_help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="symgrad",
        description="Derive activation functions and generate their layers for "
        "NumPy, PyTorch or JAX.",
        epilog="Start with: symgrad list (the built-in activations), then "
        "symgrad generate relu sigmoid -o layers.py. Each command's --help "
        "says more.",
    )
    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    commands.add_parser("list", help="list the built-in activations")

    gen = commands.add_parser("generate", help="write a module of layer classes")
    _add_sources(gen, "*")
    _add_output(gen)
    _add_target(
        gen,
        "numpy only: block kernels with threads and out= buffers, for arrays of "
        "1e5 elements and more (default: readable layers like the book's)",
    )

    show = commands.add_parser(
        "show", help="the derivation, step by step through the computational graph"
    )
    _add_sources(show, "*")
    show.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default), latex (a section), markdown, or dot (Graphviz)",
    )
    show.add_argument(
        "--latex",
        dest="format",
        action="store_const",
        const="latex",
        help="short for --format latex",
    )

    tex = commands.add_parser(
        "latex", help="write a standalone LaTeX document of derivations"
    )
    _add_sources(tex, "*")
    _add_output(tex)

    check = commands.add_parser(
        "check", help="gradient-, reference- and extreme-input-check generated layers"
    )
    _add_sources(check, "*")
    _add_target(check, "check the numpy target's --fast layers")

    audit = commands.add_parser(
        "audit",
        help="measure a layer's accuracy in ulps against mpmath, per precision policy",
        description="Forward and backward errors in ulps (max, 99.9th percentile, "
        "worst input) on a grid out to the dtype's limits, under both precision "
        "policies unless --prefer picks one; exit status 1 if a layer is over its "
        "bound.",
    )
    _add_sources(audit, "*")
    audit.add_argument(
        "--dtype",
        action="append",
        choices=AUDIT_DTYPES,
        help=(
            "audit this dtype (repeatable; default: float64 and float32; float16, "
            "computed in float32 and rounded once, is held to 1 ulp)"
        ),
    )
    audit.add_argument(
        "--fast", action="store_true", help="audit the --fast block-kernel layers"
    )
    audit.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw log10(ulps) against x to FILE (.png or .svg; needs "
        "symgrad[plot])",
    )
    audit.add_argument(
        "--force", action="store_true", help="let --plot replace an existing file"
    )
    return parser


def activations_from(args: argparse.Namespace) -> list[Activation]:
    """Every activation the arguments name, in order: names, then formula, then spec."""
    names = (
        args.names if isinstance(args.names, list) else [args.names] * bool(args.names)
    )
    acts = [parse_spec(spec) for spec in names]
    if args.formula is not None:
        if not args.name:
            raise UsageError("--formula needs --name, the layer's name")
        params: dict[str, float] = {}
        for key, value in map(_assignment, args.param):
            if key in params:
                raise UsageError(f"--param {key} is given twice; give it once")
            params[key] = value
        acts.append(
            parse(args.formula, name=args.name, params=params, learnable=args.learnable)
        )
    elif args.name or args.param or args.learnable:
        raise UsageError("--name, --param and --learnable go with --formula")
    if args.spec is not None:
        acts += load_spec(args.spec)
    if not acts:
        raise UsageError("name an activation, or give --formula or --spec")
    return [act.preferring(args.prefer) for act in acts]


def _assignment(item: str) -> tuple[str, float]:
    key, sep, raw = (part.strip() for part in item.partition("="))
    if not sep or not key:
        raise UsageError(f"bad --param {item!r}: expected NAME=VALUE")
    try:
        return key, float(raw)
    except ValueError:
        raise UsageError(f"bad --param {item!r}: {raw!r} is not a number") from None


def _regenerate_command(args: argparse.Namespace, command: str = "generate") -> str:
    words = ["symgrad", command, *args.names]
    if args.formula is not None:
        words += ["--formula", args.formula, "--name", args.name]
        for item in args.param:
            words += ["--param", item]
        for item in args.learnable:
            words += ["--learnable", item]
    if args.spec is not None:
        words += ["--spec", args.spec]
    if args.prefer is not None:
        words += ["--prefer", args.prefer]
    if getattr(args, "target", "numpy") != "numpy":
        words += ["--target", args.target]
    if getattr(args, "fast", False):
        words.append("--fast")
    # Written to stdout, the file's name is the shell's: FILE stands for it.
    return (
        shell_join([*words, "-o", args.output])
        if args.output != "-"
        else (shell_join(words) + " -o FILE")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # bare symgrad: what it can do, not a one-line error
        build_parser().print_help(sys.stderr)
        return 2
    try:
        args = build_parser().parse_args(argv)
        seconds = getattr(args, "time_limit", None)
        with budget(seconds=seconds, memory=getattr(args, "memory_limit", None)):
            status = _COMMANDS[args.command](args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # The reader left (symgrad list | head -1): stop quietly, as the Python
        # docs' SIGPIPE recipe does, with nothing more written to the pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (UsageError, ValueError, OSError, MissingFrameworkError) as error:
        print(f"symgrad: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symgrad: interrupted", file=sys.stderr)
        return 130


def _write_stdout(text: str) -> None:
    """Write to standard output, which may have been closed (``>&-``)."""
    if sys.stdout is None:
        raise OSError("standard output is closed; give a file with -o PATH")
    sys.stdout.write(text)


def _one_line(error: BaseException) -> str:
    message = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        message = f"{error.filename}: {error.strerror}"
    return " ".join(message.split())


def _list(args: argparse.Namespace) -> int:
    rows = []
    for act in CATALOG.values():
        params = ", ".join(f"{p.name}={p.value!r}" for p in act.params) or "-"
        rows.append((act.name, act.class_name, params, derive(act).saves, act.summary))
    header = ("name", "class", "parameters", "caches", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]).rstrip())
    return 0


def _require_output(args: argparse.Namespace, what: str) -> None:
    if args.output is None:
        raise UsageError(
            f"{args.command} writes {what}: give -o PATH, or -o - to print it"
        )


def _generate(args: argparse.Namespace) -> int:
    _require_output(args, "a module of layers")
    acts = activations_from(args)
    named = acts[: len(args.names)]
    if args.prefer is not None:  # said once, by --prefer
        named = [a.preferring("memory") for a in named]
    args.names = [cli_spec(a) for a in named]
    output = args.output
    source = generate(
        acts, target=args.target, fast=args.fast, command=_regenerate_command(args)
    )
    if output == "-":
        _write_stdout(source)
        return 0
    changed = write_module(output, source, force=args.force)
    classes = ", ".join(a.class_name for a in acts)
    print(
        f"{'wrote' if changed else 'unchanged'} {output} ({classes})", file=sys.stderr
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    acts = activations_from(args)
    _write_stdout("\n".join(render(derive(a), args.format) for a in acts))
    return 0


def _latex(args: argparse.Namespace) -> int:
    _require_output(args, "a LaTeX document")
    acts = activations_from(args)
    command = _regenerate_command(args, "latex")
    source = document([explain(derive(a)) for a in acts], command=command)
    if args.output == "-":
        _write_stdout(source)
        return 0
    changed = write_module(args.output, source, force=args.force)
    names = ", ".join(a.class_name for a in acts)
    print(
        f"{'wrote' if changed else 'unchanged'} {args.output} ({names})",
        file=sys.stderr,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    get_target(args.target, fast=args.fast).require_framework()  # before any work
    acts = activations_from(args)
    results = [check_activation(a, target=args.target, fast=args.fast) for a in acts]
    header = ("name", "caches", "gradcheck", "vs mpmath", "result")
    rows = [
        (r.name, r.saves, f"{r.gradcheck_error:.1e}", f"{r.reference_error:.1e}",
         "ok" if r.passed else "FAIL")
        for r in results
    ]  # fmt: skip
    _print_table(header, rows)
    for r in results:
        for problem in r.problems:
            print(f"{r.name}: {problem}")
    if args.target == "numpy":
        # The NumPy layers' accuracy in ulps, under both policies unless one is
        # asked for (`symgrad audit` has the details and a plot).
        audited = audit(
            acts,
            prefer=[args.prefer] if args.prefer else PREFERENCES,
            fast=args.fast,
        )
        print()
        _print_table(
            ("name", "prefer", "dtype", "forward ulps", "backward ulps",
             "output form loses", "audit"),
            [
                (r.name, r.prefer, r.dtype, f"{r.forward.max_ulps:.3g}",
                 f"{r.backward.max_ulps:.3g}", r.loss or "-", r.verdict)
                for r in audited
            ],
        )  # fmt: skip
        chosen = _regime_lines(acts, [args.prefer] if args.prefer else PREFERENCES)
        if chosen:
            print()
            print("regimes: where the formula as written fails, another form (its")
            print("verified worst error there):")
            print("\n".join(chosen))
        broken = failure_lines(audited)
        if broken:
            print()
            print(f"where the layer is not finite, or not within {contract_terms()}")
            print("relative, while the true value is:")
            print("\n".join(broken))
        clean = all(r.passed for r in results) and not unexplained(audited)
        return 0 if clean else 1
    return 0 if all(r.passed for r in results) else 1


def _regime_lines(acts: list[Activation], policies) -> list[str]:
    """Each layer's regimes under each policy (`symgrad.regimes`), one per line,
    and any failure a regime search left."""
    lines = []
    for act in acts:
        for policy in policies:
            regimes = derive(act, prefer=policy).regimes
            if regimes is not None:
                lines += [
                    f"- {act.name} ({policy}): {line}" for line in regimes.lines()
                ]
    return lines


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _audit(args: argparse.Namespace) -> int:
    if args.plot is not None:
        suffix = os.path.splitext(args.plot)[1].lower()
        if suffix not in (".png", ".svg"):
            raise UsageError(f"--plot {args.plot!r}: the file must end in .png or .svg")
        if os.path.lexists(args.plot) and not args.force:
            raise UsageError(f"{args.plot} exists; add --force to replace it")
    acts = activations_from(args)
    results = audit(
        acts,
        prefer=[args.prefer] if args.prefer else PREFERENCES,
        dtypes=args.dtype or DEFAULT_AUDIT_DTYPES,
        fast=args.fast,
        progress=stderr_progress,
    )
    _write_stdout(audit_report(results))
    if args.plot is not None:
        save_plot(results, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


_COMMANDS = {
    "audit": _audit,
    "list": _list,
    "generate": _generate,
    "show": _show,
    "latex": _latex,
    "check": _check,
}
