"""Shared fixtures: an isolated compile cache and generated modules as real files."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import symgrad
from symgrad.loader import import_path

_counter = itertools.count()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test compiles into its own cache folder, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SYMGRAD_CACHE", str(cache))
    return cache


def load_generated(source: str, folder: Path):
    """Write generated source to a file in ``folder`` and import it as a module."""
    name = f"generated_{next(_counter)}"
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return import_path(path, name)


@pytest.fixture(scope="session")
def catalog_module(tmp_path_factory):
    """One module with a layer for every catalog activation, imported from disk."""
    folder = tmp_path_factory.mktemp("catalog")
    return load_generated(symgrad.generate(list(symgrad.CATALOG)), folder)


def layer_class(module, name: str):
    return getattr(module, symgrad.CATALOG[name].class_name)
