"""Shared fixtures: an isolated compile cache and generated modules as real files.

The catalog is generated for every target.  For NumPy, in both styles, the
readable default and ``--fast`` block kernels, each under both precision
policies; tests that take ``catalog_module`` run once for each, so every
accuracy, dtype, extreme-input and gradient test covers both printers and both
policies.  The fast module's small-array
threshold is set to 0 there, so that its kernels run even on the tests' small
arrays (below it, a fast layer runs the readable statements, which the readable
style's run covers).  ``catalog_modules["torch"]`` and ``["jax"]`` hold the same
catalog for those targets (skipping where the framework is not installed).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from pathlib import Path

import pytest

import symgrad
from symgrad import loader
from symgrad.loader import import_path
from symgrad.targets.jax_target import function_name
from symgrad.targets.runners import runner

#: NumPy's two styles, each under both precision policies (memory is the default).
STYLES = ("readable", "fast", "readable accuracy", "fast accuracy")
#: The targets besides NumPy; `catalog_modules[target]` is the catalog in each.
FRAMEWORKS = ("torch", "jax", "numba")
_counter = itertools.count()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test compiles into its own cache folder, never the user's, and
    starts with no compiled module imported (compile reuses those in-process)."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SYMGRAD_CACHE", str(cache))
    monkeypatch.setattr(loader, "_loaded", {})
    for name in [n for n in sys.modules if n.startswith("_symgrad_")]:
        monkeypatch.delitem(sys.modules, name)
    return cache


def policy(style: str) -> str:
    """The precision policy a catalog module's style was generated under."""
    return "accuracy" if style.endswith("accuracy") else "memory"


def load_generated(source: str, folder: Path):
    """Write generated source to a file in ``folder`` and import it as a module."""
    name = f"generated_{next(_counter)}"
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return import_path(path, name)


class _CatalogModules:
    """One module per style with a layer for every catalog activation, generated
    on first use and imported from disk."""

    def __init__(self, folder: Path, shared: Path) -> None:
        self.folder = folder
        #: A folder every pytest-xdist worker sees (numba's compiled loops).
        self.shared = shared
        self.modules: dict[str, object] = {}

    def __getitem__(self, style: str):
        if style not in self.modules:
            fast = style.startswith("fast")
            target = style.split()[0] if style.split()[0] in FRAMEWORKS else "numpy"
            if target != "numpy":
                pytest.importorskip(target, reason=f"{target} is not installed")
            source = symgrad.generate(
                list(symgrad.CATALOG), target=target, fast=fast, prefer=policy(style)
            )
            if target == "numba":
                module = _shared_numba_module(source, self.shared, style)
            else:
                module = load_generated(source, self.folder)
            if fast and style != "fast as generated":
                module._SMALL = 0  # kernels at every size
            if style.endswith("without SIMD log1p"):
                # As on a CPU without AVX-512: log1p and expm1 from log and exp.
                module._LOG1P_IS_SIMD = module._EXPM1_IS_SIMD = False
            self.modules[style] = module
        return self.modules[style]


def _shared_numba_module(source: str, folder: Path, style: str):
    """The numba catalog module from one file that every worker imports, so
    that numba's cache beside it serves a loop one worker compiled to the
    others (compiling the catalog's loops is most of the target's test time).
    The first worker to get here creates the file; it is never rewritten, as a
    new modification time would void the cache."""
    folder.mkdir(exist_ok=True)
    name = "catalog_" + style.replace(" ", "_")
    path = folder / f"{name}.py"
    if not path.exists():
        draft = folder / f"{name}.{os.getpid()}.tmp"
        draft.write_text(source, encoding="utf-8")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)  # atomic: fails if another worker was first
        draft.unlink()
    assert path.read_text(encoding="utf-8") == source
    return import_path(path, name)


@pytest.fixture(scope="session")
def catalog_modules(tmp_path_factory):
    # Under pytest-xdist each worker's base folder sits in the run's own.
    base = tmp_path_factory.getbasetemp()
    run = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shared = run / "shared-numba"
    return _CatalogModules(tmp_path_factory.mktemp("catalog"), shared)


@pytest.fixture(params=STYLES)
def catalog_module(request, catalog_modules):
    """The whole catalog's module, once in each style."""
    return catalog_modules[request.param]


@pytest.fixture
def fast_catalog_module(catalog_modules):
    """The whole catalog's ``--fast`` module (out= buffers, block kernels)."""
    return catalog_modules["fast"]


@pytest.fixture
def readable_catalog_module(catalog_modules):
    return catalog_modules["readable"]


@pytest.fixture
def fast_as_generated(catalog_modules):
    """The fast module with its threshold as generated (small arrays take the
    readable statements)."""
    return catalog_modules["fast as generated"]


def layer_class(module, name: str):
    return getattr(module, symgrad.CATALOG[name].class_name)


def target_layer(module, target: str, name: str):
    """What `symgrad.compile` gives for catalog ``name`` in ``target``: the NumPy
    layer class, the torch Module class or the JAX function."""
    if target == "jax":
        return getattr(module, function_name(symgrad.CATALOG[name]))
    return layer_class(module, name)


def target_runner(module, target: str, name: str, **params):
    """A fresh layer of ``target`` behind the NumPy forward/backward interface."""
    return runner(target, target_layer(module, target, name), **params)


@pytest.fixture(params=STYLES)
def style(request):
    """Each generated style in turn: "readable" (the default) and "fast"."""
    return request.param
