"""Import generated modules, and the `compile` cache.

`compile` caches generated modules on disk, keyed by a hash of the definition
and of symgrad's own source, so a second compile of the same activation does no
SymPy work: a catalog name with its parameters is looked up without importing
SymPy at all.  A cache entry ends with a hash of its content and is generated
again if it does not match (a truncated or edited file); a cache folder that
cannot be used is reported once and layers are compiled in memory instead.
Compiling is thread-safe: a module is seen by other threads only once it has
run to the end.  Instances of compiled layers pickle as what they are (the
activation, its parameters and the target), so a new process unpickles them by
compiling the same layer.  File safety (regular files only, atomic writes, the
overwrite guard) is `symgrad.files`.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.resources
import importlib.util
import os
import sys
import threading
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import __version__
from .files import (
    HEADER_PREFIX,
    NotRegularFileError,
    OverwriteError,
    is_generated,
    read_bytes,
    write_module,
)
from .targets import Target, get_target

if TYPE_CHECKING:
    from .model import Activation, Prefer

__all__ = [
    "HEADER_PREFIX",
    "NotRegularFileError",
    "OverwriteError",
    "cache_dir",
    "compile",
    "import_path",
    "is_generated",
    "write_module",
]

#: The last line of a cache entry: a hash of everything above it.
_CHECK = "# symgrad cache entry, sha256 of the lines above: "
#: A cache entry larger than this is not a module symgrad wrote.
_MAX_ENTRY = 8 * 2**20


class CacheWarning(UserWarning):
    """The compile cache cannot be used; layers are compiled in memory."""


def import_path(path: str | os.PathLike[str], name: str) -> ModuleType:
    """Import the Python file at ``path`` as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    return _execute(spec)


class _SourceLoader(importlib.abc.SourceLoader):
    """Loads a module from source already in memory (a verified cache entry,
    or one that could not be written)."""

    def __init__(self, source: bytes, path: str) -> None:
        self.source, self.path = source, path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        return self.source


def _import_source(source: bytes, path: Path, name: str) -> ModuleType:
    loader = _SourceLoader(source, str(path))
    spec = importlib.util.spec_from_loader(name, loader, origin=str(path))
    assert spec is not None
    spec.has_location = True
    return _execute(spec)


def _execute(spec) -> ModuleType:
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as import does, while the module runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def cache_dir() -> Path:
    """Where compiled layers live: $SYMGRAD_CACHE, else the user's cache folder."""
    override = os.environ.get("SYMGRAD_CACHE")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "symgrad"


def templates_root() -> Path | importlib.resources.abc.Traversable:
    """The templates folder: inside the installed package, or the checkout's top level."""
    packaged = importlib.resources.files("symgrad") / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


@cache
def source_fingerprint() -> str:
    """A hash of symgrad's modules and templates: any change to the code that
    generates layers gives new cache keys."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes())
    for name, content in sorted(_template_files(templates_root())):
        digest.update(name.encode() + b"\0" + content)
    return digest.hexdigest()


def _template_files(folder, prefix: str = ""):
    """(relative name, bytes) of every file under a templates folder."""
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _template_files(entry, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", entry.read_bytes()


def _key(*parts: str) -> str:
    text = "\0".join((source_fingerprint(), *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def definition_key(act: Activation) -> str:
    """A hash of everything that decides the generated code, and of symgrad."""
    import sympy

    return _key(
        act.name,
        act.class_name,
        sympy.srepr(act.expr),
        repr([(p.name, p.value, p.learnable, p.channels, p.init) for p in act.params]),
        act.summary,
        act.prefer,
    )


def request_key(
    name: str, params: dict[str, object], style: str = "numpy-readable"
) -> str:
    """A hash of a catalog request (a name, its keyword arguments, the target
    and style)."""
    return _key("catalog", style, name, repr(sorted(params.items())))


_loaded: dict[str, ModuleType] = {}  # compiled modules that ran to the end
_lock = threading.RLock()
_warned: set[str] = set()


def compile(  # noqa: A001 (public API name)
    act: Activation | str,
    *,
    target: str = "numpy",
    fast: bool = False,
    prefer: Prefer | None = None,
    **params: object,
) -> Any:
    """The generated layer for an activation (or catalog name), imported.

    For the ``numpy`` target, the layer class; ``fast=True`` gives the
    block-kernel one (`symgrad.generate`), for arrays of 1e5 elements and more.
    For ``torch``, the ``torch.nn.Module`` class (its ``autograd.Function`` is in
    the same module); for ``jax``, the ``jax.custom_vjp`` function.  The module
    is generated once and cached on disk (see `cache_dir`); later calls, in this
    process or another, import it without deriving anything.  A catalog name is
    looked up by the name and its arguments as given (``prefer``, the
    precision policy of `symgrad.model.PREFERENCES`, among them), so the cached case never
    imports SymPy.  Safe to call from several threads.
    """
    chosen = get_target(target, fast=fast)
    chosen.require_framework()
    if prefer is not None:
        params = {**params, "prefer": prefer}
    if isinstance(act, str):
        key = request_key(act, params, f"{chosen.name}-{chosen.style}")
        module_name = f"_symgrad_{_slug(act)}_{key}"
    else:
        act = _resolve(act, params)
        key = _key(definition_key(act), chosen.name, chosen.style)
        module_name = f"_symgrad_{act.class_name.lower()}_{key}"
    module = _loaded.get(module_name)
    if module is None:
        with _lock:
            module = _loaded.get(module_name) or _load(act, params, module_name, chosen)
            _loaded[module_name] = module
    layer = _layer(module, chosen)
    if isinstance(layer, type) and "_symgrad_request" not in vars(layer):
        layer._symgrad_request = (act, params, target, fast)
        layer.__reduce__ = _reduce
    return layer


def _load(
    act: Activation | str, params: dict[str, object], module_name: str, target: Target
) -> ModuleType:
    """The module from a verified cache entry, else generated (and cached where
    the cache can be written)."""
    folder = cache_dir()
    path = folder / f"{module_name}.py"
    source = _cached_source(path)
    if source is None:
        from .codegen import generate

        text = generate(
            [_resolve(act, params)], target=target.name, fast=target.style == "fast"
        )
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        source = f"{text}{_CHECK}{digest}\n".encode()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_module(path, source.decode("utf-8"), force=True)
        except OSError as error:
            _warn_unusable(folder, error)
    return _import_source(source, path, module_name)


def _cached_source(path: Path) -> bytes | None:
    """The cache entry at ``path`` if it is whole (its hash line matches)."""
    try:
        source = read_bytes(path, _MAX_ENTRY, "cache entry")
    except (OSError, ValueError):
        return None
    body, _, last = source.rstrip(b"\n").rpartition(b"\n")
    expected = _CHECK.encode() + hashlib.sha256(body + b"\n").hexdigest().encode()
    if not source.startswith(HEADER_PREFIX.encode()) or last != expected:
        return None  # truncated, edited or not ours: generated again
    return source


def _warn_unusable(folder: Path, error: OSError) -> None:
    reason = error.strerror or str(error)
    if str(folder) in _warned:
        return
    _warned.add(str(folder))
    warnings.warn(
        f"symgrad's compile cache {folder} cannot be used ({reason}); compiling in "
        "memory instead. Set SYMGRAD_CACHE to a writable folder to keep layers "
        "between runs.",
        CacheWarning,
        stacklevel=4,
    )


def _reduce(self):
    """Pickle a compiled layer as the request that compiles it, plus its state."""
    state = self.__getstate__() if hasattr(self, "__getstate__") else self.__dict__
    return (_unpickle, (type(self)._symgrad_request,), state)


def _unpickle(request) -> Any:
    act, params, target, fast = request
    layer = compile(act, target=target, fast=fast, **params)
    return layer.__new__(layer)


def _resolve(act: Activation | str, params: dict[str, object]) -> Activation:
    from .catalog import resolve

    return resolve(act, **params)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower())[:40]


def _layer(module: ModuleType, target: Target) -> Any:
    """The one layer a compiled module defines, of the kind its target's entry says."""
    public = [
        value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
    ]
    if target.entry == "function":
        (layer,) = [value for value in public if not isinstance(value, type)]
    elif target.entry == "module":
        base = sys.modules[target.framework].nn.Module
        (layer,) = [v for v in public if isinstance(v, type) and issubclass(v, base)]
    else:
        (layer,) = [value for value in public if isinstance(value, type)]
    return layer
