"""The source of the helpers a generated module carries, read from symgrad itself.

Generated files import only their framework, so the helpers their layers call
(``_sigmoid``, ``_erfc``, ...) are copied into them.  The helpers live in ordinary
modules (`symgrad.targets.numpy_helpers`, ...) where they are tested directly;
`HelperModule` reads such modules' source (without importing them: writing a
torch module must not need torch) and hands out, for the names a layer uses,
the definitions those need (functions, classes and constant tables, including
those imported from a sibling helper module), in a fixed order, with the
standard-library imports they need.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class _Definition:
    name: str
    source: str
    constant: bool  # a module-level assignment
    order: tuple[int, int]  # (rank of its module, line)
    overloads: str | None = None  # the function it implements (numba's overload)


class HelperModule:
    """The definitions of one or more helper modules, ready to be copied by name.

    Modules are read in order (a sibling one imports from first), and their
    definitions keep that order, so that each follows those it uses.  A name
    defined twice must be one definition imported from the other module.
    """

    def __init__(self, *modules: str) -> None:
        self.definitions: dict[str, _Definition] = {}
        self.imports: dict[str, str] = {}  # name -> the import statement it needs
        self._read_modules: list[str] = []
        for module in modules:
            self._read(module)

    def _read(self, module: str) -> None:
        """Read the module named ``module`` (a full name) from its file."""
        if module in self._read_modules:
            return
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"helper module {module!r} not found")
        source = Path(spec.origin).read_text(encoding="utf-8")
        tree = ast.parse(source)
        package = module.rpartition(".")[0]
        for node in tree.body:  # siblings first: their definitions come first
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                relative = "." * node.level + (node.module or "")
                self._read(importlib.util.resolve_name(relative, package))
        rank = len(self._read_modules)
        self._read_modules.append(module)
        lines = source.splitlines()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                self._define(
                    node.name, lines, start, node, rank, False, _overloaded(node)
                )
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self._define(target.id, lines, node.lineno, node, rank, True)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = ast.unparse(
                        ast.Import([alias])
                    )
            elif isinstance(node, ast.ImportFrom) and not node.level:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = ast.unparse(
                        ast.ImportFrom(node.module, [alias], 0)
                    )

    def _define(self, name, lines, start, node, rank, constant, overloads=None):
        if name in self.definitions:
            raise RuntimeError(f"helper {name!r} is defined in two helper modules")
        while start > 1 and lines[start - 2].startswith("#"):
            start -= 1  # the comment that says what it is goes with it
        text = "\n".join(lines[start - 1 : node.end_lineno])
        self.definitions[name] = _Definition(
            name, text, constant, (rank, start), overloads
        )

    def names(self) -> set[str]:
        """Every name a generated module could take from here: the definitions
        and what their imports bind."""
        return set(self.definitions) | set(self.imports)

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
                # A function's compiled implementation comes with it.
                pending += [
                    d.name for d in self.definitions.values() if d.overloads == name
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
        each naming only what they use (``from numba.extending import
        intrinsic`` without ``overload``), sorted as ruff sorts them: plain
        imports, then from-imports."""
        used = {
            self.imports[n]
            for name in names
            for n in _names_in(self.source(name))
            if n in self.imports
        }
        used.discard("import numpy as np")
        plain = sorted(s for s in used if s.startswith("import "))
        members: dict[str, list[str]] = {}
        for statement in used - set(plain):
            module, _, member = statement.removeprefix("from ").partition(" import ")
            members.setdefault(module, []).append(member)
        joined = [
            f"from {module} import {', '.join(sorted(members[module], key=_by_type))}"
            for module in sorted(members)
        ]
        return plain + joined


@cache
def helper_module(*names: str) -> HelperModule:
    """The helper modules ``names`` (full module names) as one, read once."""
    return HelperModule(*names)


def _by_type(member: str) -> tuple[int, str]:
    """isort's (and ruff's) order within a from-import: constants, classes,
    then the rest, each alphabetical."""
    kind = 0 if member.isupper() else 1 if member[:1].isupper() else 2
    return kind, member


def _names_in(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def _overloaded(node: ast.FunctionDef | ast.ClassDef) -> str | None:
    """The function a definition decorated ``@overload(f, ...)`` implements in
    numba's compiled code, else None."""
    for decorator in node.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Name)
            and decorator.func.id == "overload"
            and decorator.args
            and isinstance(decorator.args[0], ast.Name)
        ):
            return decorator.args[0].id
    return None
