"""Spec files: several activations, from formulas or the catalog, in one TOML file.

    [[activation]]
    name = "TanhExp"
    formula = "x*tanh(exp(x))"

    [[activation]]
    name = "isrlu"
    formula = "where(x >= 0, x, x/sqrt(1 + a*x**2))"
    params = { a = 1.0 }
    learnable = ["a"]

    [[activation]]
    name = "elu"            # no formula: a catalog activation
    params = { alpha = 0.5 }
    prefer = "accuracy"     # the precision policy (default "memory")

Read with the standard library's tomllib (tomli before Python 3.11).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .catalog import activation
from .errors import SymgradError
from .files import read_bytes
from .formula import parse
from .model import Activation

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KEYS = {"name", "formula", "params", "learnable", "prefer"}


class SpecError(SymgradError):
    """A spec file that cannot be read as a list of activations."""


def load_spec(path: str | os.PathLike[str]) -> list[Activation]:
    """The activations a spec file lists, in order."""
    path = Path(path)
    try:
        data = tomllib.loads(read_bytes(path, MAX_BYTES, "spec file").decode("utf-8"))
    except OSError as error:
        raise SpecError(f"{path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a spec file") from None
    extra = set(data) - {"activation"}
    if extra:
        raise SpecError(
            f"{path}: unknown table {sorted(extra)[0]!r}; expected [[activation]]"
        )
    entries = data.get("activation")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{path}: no [[activation]] entries")
    return [_entry(path, i, entry) for i, entry in enumerate(entries, start=1)]


#: A spec file is a few activations; anything larger is not read.
MAX_BYTES = 2**20


def _entry(path: Path, index: int, entry: object) -> Activation:
    where = f"{path}: activation #{index}"
    if not isinstance(entry, dict):
        raise SpecError(
            f"{where} is {_toml_type(entry)}; each must be an [[activation]] table"
        )
    unknown = set(entry) - _KEYS
    if unknown:
        raise SpecError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_KEYS))}"
        )
    name = entry.get("name")
    if not isinstance(name, str):
        raise SpecError(f"{where}: 'name' is required and must be text")
    params = entry.get("params", {})
    learnable = entry.get("learnable", [])
    if not isinstance(params, dict) or not isinstance(learnable, list):
        raise SpecError(
            f"{where} ({name}): 'params' must be a table, 'learnable' a list"
        )
    prefer = entry.get("prefer", "memory")
    try:
        if "formula" in entry:
            return parse(
                entry["formula"],
                name=name,
                params=params,
                learnable=learnable,
                prefer=prefer,
            )
        return activation(name, learnable=learnable, prefer=prefer, **params)
    except (ValueError, TypeError) as error:
        raise SpecError(f"{where} ({name}): {error}") from None


def _toml_type(value: object) -> str:
    """What a TOML value is, in the file's own words."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return next((n for t, n in names.items() if isinstance(value, t)), "a date or time")
