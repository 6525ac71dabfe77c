"""The built-in activations: one literal table of data, no behaviour.

Each row is an `Activation`: a SymPy expression in x with its parameters and
their defaults (torch.nn's names), the class name of the generated layer, and a
one-line summary.  Piecewise rows write their conditions so that the branch that
holds at a kink gives PyTorch's derivative there.  Adding a row adds its tests.
"""

from __future__ import annotations

import difflib

from sympy import Piecewise, exp, tanh

from .model import Activation, X

x = X

CATALOG: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation(
            "relu",
            "Relu",
            Piecewise((x, x > 0), (0, True)),
            summary="Rectified linear unit: x where x > 0, else 0.",
            aliases=("ReLU",),
        ),
        Activation(
            "sigmoid",
            "Sigmoid",
            1 / (1 + exp(-x)),
            summary="Logistic sigmoid: 1/(1 + exp(-x)).",
        ),
        Activation(
            "tanh",
            "Tanh",
            tanh(x),
            summary="Hyperbolic tangent.",
        ),
        Activation(
            "exp",
            "Exp",
            exp(x),
            summary="Exponential: exp(x).",
        ),
    ]
}


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


_INDEX = {
    _key(alias): act.name
    for act in CATALOG.values()
    for alias in (act.name, *act.aliases)
}


def activation(name: str, **params: float) -> Activation:
    """The catalog activation ``name`` (case and underscores ignored), with parameters.

    An unknown name raises ValueError listing the close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, not {type(name).__name__}")
    found = _INDEX.get(_key(name))
    if found is None:
        close = difflib.get_close_matches(name.lower(), list(CATALOG), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown activation {name!r}{hint} (known: {', '.join(sorted(CATALOG))})"
        )
    act = CATALOG[found]
    return act.with_values(**params) if params else act


def resolve(act: Activation | str, **params: float) -> Activation:
    """An `Activation` from an activation or a catalog name."""
    if isinstance(act, Activation):
        return act.with_values(**params) if params else act
    return activation(act, **params)
