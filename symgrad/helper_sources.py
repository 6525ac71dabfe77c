"""The source of the helpers a generated module carries, read from symgrad itself.

Generated files import only their framework, so the helpers their layers call
(``_sigmoid``, ``_erfc``, ...) are copied into them.  The helpers live in ordinary
modules (`symgrad.targets.numpy_helpers`, ...) where they are tested directly;
`HelperModule` reads one such module and hands out, for the names a layer
uses, the definitions those need (functions, classes and constant tables,
including those imported from a sibling helper module), in a fixed order, with
the standard-library imports they need.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from types import ModuleType


@dataclass(frozen=True)
class _Definition:
    name: str
    source: str
    constant: bool  # a module-level assignment
    order: tuple[int, int]  # (0 if imported from a sibling else 1, line)


class HelperModule:
    """The definitions of one helper module, ready to be copied by name."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.definitions: dict[str, _Definition] = {}
        self.imports: dict[str, str] = {}  # name -> the import statement it needs
        self._read(module)

    def _read(self, module: ModuleType) -> None:
        source = inspect.getsource(module)
        lines = source.splitlines()
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                self._define(node.name, lines, start, node, constant=False)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self._define(target.id, lines, node.lineno, node, constant=True)
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                sibling = importlib.import_module(
                    "." * node.level + (node.module or ""), module.__package__
                )
                other = helper_module(sibling.__name__)
                for alias in node.names:
                    imported = other.definitions[alias.name]
                    self.definitions[alias.name] = _Definition(
                        imported.name,
                        imported.source,
                        imported.constant,
                        (0, imported.order[1]),
                    )
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = ast.unparse(node)

    def _define(self, name, lines, start, node, constant) -> None:
        text = "\n".join(lines[start - 1 : node.end_lineno])
        self.definitions[name] = _Definition(name, text, constant, (1, start))

    def closure(self, used: Iterable[str]) -> list[str]:
        """The names used and those their definitions refer to, in the order of
        the source (what is imported from a sibling module first), so that each
        definition follows those it uses at import time."""
        unknown = set(used) - set(self.definitions)
        if unknown:
            raise RuntimeError(f"printer used undefined helpers: {sorted(unknown)}")
        needed: set[str] = set()
        pending = list(used)
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                pending += [
                    n for n in _names_in(self.source(name)) if n in self.definitions
                ]
        return sorted(needed, key=lambda n: self.definitions[n].order)

    def source(self, name: str) -> str:
        return self.definitions[name].source

    def block(self, names: Iterable[str]) -> str:
        """The definitions of ``names`` (in `closure` order) as they follow the
        imports in a module: consecutive constants one blank line apart,
        anything else two, as ruff format and isort space them."""
        text = ""
        previous = None
        for name in names:
            constant = self.definitions[name].constant
            gap = "\n" if constant and previous in (None, True) else "\n\n"
            text += f"{gap}{self.source(name)}\n"
            previous = constant
        return text

    def imports_for(self, names: Iterable[str]) -> list[str]:
        """The import statements (other than numpy's) that these helpers need,
        sorted as ruff sorts them: plain imports, then from-imports."""
        used = {
            self.imports[n]
            for name in names
            for n in _names_in(self.source(name))
            if n in self.imports
        }
        used.discard("import numpy as np")
        plain = sorted(s for s in used if s.startswith("import "))
        return plain + sorted(s for s in used if s.startswith("from "))


@cache
def helper_module(name: str) -> HelperModule:
    """The helper module ``name`` (a full module name), read once."""
    return HelperModule(importlib.import_module(name))


def _names_in(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
