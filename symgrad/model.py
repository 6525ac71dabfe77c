"""The data model every stage shares: immutable, typed, and free of behaviour.

`Activation` is what the user defines (an expression in ``x`` plus named parameters),
`BackwardPlan` is what the layer caches and how backward uses it, and `Derivation`
ties an activation to its derivative, output form and plan.  Stages pass these
objects forward only; nothing here imports a later stage.
"""

from __future__ import annotations

import functools
import keyword
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import sympy

#: The input of every activation, a real number.
X = sympy.Symbol("x", real=True)
#: The output of an activation, y = f(x); output forms are written in it.
Y = sympy.Symbol("y", real=True)
#: The cached boolean mask, used by backward plans that only need a branch test.
MASK = sympy.Symbol("mask")

Saves = Literal["output", "input", "mask", "nothing"]

#: Precision policies: ``memory`` caches the output wherever the derivative is a
#: function of it (sigmoid' = y*(1 - y)), which loses the tails; ``accuracy``
#: caches what a tail-exact backward needs and uses the forms that keep them.
Prefer = Literal["memory", "accuracy"]
PREFERENCES: tuple[Prefer, ...] = ("memory", "accuracy")


def check_name(kind: str, name: object) -> None:
    """Refuse a name that generated code could not carry safely: not a Python
    identifier, a keyword, starting with an underscore (helpers' names), or one
    that Python would read as another (it folds identifiers with NFKC, so a
    full-width ``ｓｅｌｆ`` is ``self``).  ``kind`` says which name it is."""
    if not isinstance(name, str):
        raise ValueError(f"{kind} must be text, not {type(name).__name__}")
    folded = unicodedata.normalize("NFKC", name)
    if folded != name and folded.isidentifier():
        raise ValueError(
            f"{kind} {name!r} reads as {folded!r} in Python (NFKC); write {folded!r}"
        )
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{kind} {name!r} is not a valid Python identifier")
    if name.startswith("_"):
        raise ValueError(f"{kind} {name!r} must not start with an underscore")


def check_text(kind: str, text: object) -> None:
    """Refuse text for a docstring or comment line that holds a line break or
    another unprintable character, naming it and where it is."""
    if not isinstance(text, str):
        raise ValueError(f"{kind} must be text, not {type(text).__name__}")
    for column, char in enumerate(text):
        if not char.isprintable():
            raise ValueError(
                f"{kind} has the unprintable character {char!r} at column {column}; "
                "it must be one line of printable text"
            )


def check_prefer(prefer: object) -> None:
    """Refuse a precision policy that is not one of `PREFERENCES`, naming them."""
    if prefer not in PREFERENCES:
        raise ValueError(
            f"prefer must be one of {', '.join(map(repr, PREFERENCES))}, not {prefer!r}"
        )


def param_symbol(name: str) -> sympy.Symbol:
    """The SymPy symbol that stands for the parameter ``name`` (always real)."""
    return sympy.Symbol(name, real=True)


@dataclass(frozen=True)
class Param:
    """A named, real parameter of an activation, with its current value.

    ``channels`` marks a learnable parameter that frameworks with channels hold
    once per channel of the input's dimension 1 (PyTorch's PReLU ``weight``, its
    count a constructor argument ``num_parameters``); ``init`` is the name under
    which their constructors take its value, where that is not ``name``.
    """

    name: str
    value: float
    learnable: bool = False
    doc: str = ""
    channels: bool = False
    init: str = ""

    def __post_init__(self) -> None:
        check_name("parameter name", self.name)
        check_text(f"parameter {self.name!r}'s doc", self.doc)
        if self.init:
            check_name(f"parameter {self.name!r}'s init name", self.init)

    @property
    def symbol(self) -> sympy.Symbol:
        return param_symbol(self.name)


@dataclass(frozen=True)
class Activation:
    """An elementwise activation y = f(x): the definition every later stage starts from.

    ``expr`` is a SymPy expression in `X` and the parameter symbols; piecewise
    activations use ``sympy.Piecewise`` whose conditions decide the derivative at a
    kink (the branch that holds there gives the value, as PyTorch does).
    """

    name: str
    class_name: str
    expr: sympy.Expr
    params: tuple[Param, ...] = ()
    summary: str = ""
    kink: str = ""
    aliases: tuple[str, ...] = field(default=(), compare=False)
    #: The precision policy its layer follows (see `PREFERENCES`).
    prefer: Prefer = "memory"

    def __post_init__(self) -> None:
        check_name("activation name", self.name)
        check_prefer(self.prefer)
        check_name(f"activation {self.name!r}: class name", self.class_name)
        check_text(f"activation {self.name!r}: summary", self.summary)
        check_text(f"activation {self.name!r}: kink", self.kink)
        allowed = {X} | {p.symbol for p in self.params}
        unknown = sorted(str(s) for s in self.expr.free_symbols - allowed)
        if unknown:
            raise ValueError(
                f"activation {self.name!r}: unknown symbols {', '.join(unknown)}; "
                f"the formula may use x and its parameters "
                f"({', '.join(p.name for p in self.params) or 'none'})"
            )

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def _check_known(self, names, purpose: str = "") -> None:
        known = {p.name for p in self.params}
        unknown = sorted(set(names) - known)
        if unknown:
            choices = ", ".join(sorted(known)) or "none"
            raise ValueError(
                f"activation {self.name!r} has no parameter "
                f"{', '.join(map(repr, unknown))}{purpose}; its parameters: {choices}"
            )

    def with_values(self, **values: float) -> Activation:
        """A copy with some parameter values replaced; unknown names raise ValueError."""
        self._check_known(values)
        params = tuple(
            replace(p, value=_as_real(self.name, p.name, values[p.name]))
            if p.name in values
            else p
            for p in self.params
        )
        return replace(self, params=params)

    def with_learnable(self, names: str | Iterable[str]) -> Activation:
        """A copy in which the parameters ``names`` (one name, or several) are
        learnable."""
        names = (names,) if isinstance(names, str) else tuple(names)
        self._check_known(names, " to learn")
        params = tuple(
            replace(p, learnable=True) if p.name in names else p for p in self.params
        )
        return replace(self, params=params)

    def preferring(self, prefer: Prefer | None) -> Activation:
        """A copy under the precision policy ``prefer`` (None keeps this one's)."""
        if prefer is None or prefer == self.prefer:
            return self
        check_prefer(prefer)
        return replace(self, prefer=prefer)

    @property
    def learnable(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.learnable)

    def _repr_latex_(self) -> str:
        """Jupyter shows the formula typeset."""
        from .notation import latex

        return f"$$y = {latex(self.expr)}$$"

    @property
    def values(self) -> dict[sympy.Symbol, float]:
        """Parameter symbols mapped to their current values (for numeric checks)."""
        return {p.symbol: p.value for p in self.params}

    def _repr_markdown_(self) -> str:
        return f"**{self.class_name}** (`{self.name}`): {self._repr_latex_()}"


def _as_real(activation: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"activation {activation!r}: parameter {name!r} must be a real number, "
            f"not {value!r}"
        )
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(
            f"activation {activation!r}: parameter {name!r} must be finite, not {value!r}"
        )
    return number


@dataclass(frozen=True)
class BackwardPlan:
    """What forward caches and the expression backward multiplies ``dout`` by.

    ``local_grad`` is written in `X` (saves input), `Y` (saves output), `MASK`
    (saves mask) or in parameters only (saves nothing).  ``mask`` is the condition
    on `X` that forward stores when ``saves == "mask"``.
    """

    saves: Saves
    local_grad: sympy.Expr
    mask: sympy.Basic | None = None
    reason: str = ""
    #: (parameter name, d f/d parameter in x) for each learnable parameter.
    param_grads: tuple[tuple[str, sympy.Expr], ...] = ()


@dataclass(frozen=True)
class Derivation:
    """An activation with its derivative, its output form and its backward plan."""

    activation: Activation
    forward: sympy.Expr
    derivative: sympy.Expr
    output_form: sympy.Expr | None
    plan: BackwardPlan
    #: Intervals (low, high) of x where the output form, computed from the
    #: rounded output, loses more than a few ulps (`symgrad.conditioning`).
    lossy: tuple[tuple[float, float], ...] = ()
    #: Where an asymptotic form takes over from the stable one
    #: (`symgrad.regimes.LayerRegimes`), searched once with the derivation;
    #: None where none was searched.
    regimes: Any = field(default=None, compare=False)

    @property
    def saves(self) -> Saves:
        return self.plan.saves

    @functools.cached_property
    def steps(self):
        """The step-by-step derivation through the computational graph (each node,
        its local derivative, the backward pass, the simplifications), every step
        verified; see `symgrad.steps`.  Computed on first use."""
        from .steps import explain

        return explain(self)

    def _repr_latex_(self) -> str:
        """Jupyter shows the derivation typeset (display math)."""
        from .document import math_latex

        return math_latex(self.steps)

    def _repr_markdown_(self) -> str:
        from .document import markdown

        return markdown(self.steps)
