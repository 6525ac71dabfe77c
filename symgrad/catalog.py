"""The built-in activations: one literal table of data, no behaviour.

Each row is an `Activation`: a SymPy expression in x with torch.nn's parameter
names and defaults, the class name of the generated layer, and a one-line
summary.  Piecewise rows write their conditions so that the branch that holds at
a kink gives PyTorch's derivative there (ReLU'(0) = 0, LeakyReLU'(0) =
negative_slope, Hardswish'(3) = 1, ...); `tests/data` holds PyTorch's values
to prove it.  Adding a row adds its tests.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import sympy
from sympy import Abs, Max, Min, Piecewise, Rational, erf, exp, log, pi, sin, sqrt, tanh

from .functions import sigmoid, softplus
from .model import Activation, Param, Prefer, X, param_symbol

x = X
alpha, beta, lambd = (param_symbol(n) for n in ("alpha", "beta", "lambd"))
weight, slope = param_symbol("weight"), param_symbol("negative_slope")
threshold, value = param_symbol("threshold"), param_symbol("value")
min_val, max_val, w0 = (param_symbol(n) for n in ("min_val", "max_val", "w0"))

# SELU's constants, as torch.nn.SELU defines them (30 digits).
SELU_ALPHA = sympy.Float("1.6732632423543772848170429916717", 30)
SELU_SCALE = sympy.Float("1.0507009873554804934193349852946", 30)

_ROWS = [
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
    Activation("tanh", "Tanh", tanh(x), summary="Hyperbolic tangent."),
    Activation(
        "leaky_relu",
        "LeakyRelu",
        Piecewise((x, x > 0), (slope * x, True)),
        (Param("negative_slope", 0.01),),
        summary="Leaky ReLU: x where x > 0, else negative_slope*x.",
    ),
    Activation(
        "prelu",
        "PRelu",
        Piecewise((x, x > 0), (weight * x, True)),
        (
            Param(
                "weight",
                0.25,
                learnable=True,
                doc="torch.nn.PReLU's init",
                channels=True,
                init="init",
            ),
        ),
        summary="Parametric ReLU: a leaky ReLU whose slope is learned.",
    ),
    Activation(
        "elu",
        "Elu",
        Piecewise((x, x > 0), (alpha * (exp(x) - 1), True)),
        (Param("alpha", 1.0),),
        summary="Exponential linear unit: x where x > 0, else alpha*(exp(x) - 1).",
    ),
    Activation(
        "selu",
        "Selu",
        SELU_SCALE * Piecewise((x, x > 0), (SELU_ALPHA * (exp(x) - 1), True)),
        summary="Scaled ELU with the self-normalising constants of torch.nn.SELU.",
    ),
    Activation(
        "celu",
        "Celu",
        Piecewise((x, x > 0), (alpha * (exp(x / alpha) - 1), True)),
        (Param("alpha", 1.0),),
        summary="Continuously differentiable ELU: alpha*(exp(x/alpha) - 1) below 0.",
    ),
    Activation(
        "gelu",
        "Gelu",
        x / 2 * (1 + erf(x / sqrt(2))),
        summary="Gaussian error linear unit, exact form: x*Phi(x).",
        aliases=("GELU",),
    ),
    Activation(
        "gelu_tanh",
        "GeluTanh",
        x / 2 * (1 + tanh(sqrt(2 / pi) * (x + Rational(44715, 1000000) * x**3))),
        summary="GELU, tanh approximation (torch.nn.GELU(approximate='tanh')).",
    ),
    Activation(
        "silu",
        "Silu",
        x * sigmoid(x),
        summary="Sigmoid linear unit: x*sigmoid(x).",
    ),
    Activation(
        "swish",
        "Swish",
        x * sigmoid(beta * x),
        (Param("beta", 1.0),),
        summary="Swish: x*sigmoid(beta*x); beta may be made learnable.",
    ),
    Activation(
        "mish",
        "Mish",
        x * tanh(softplus(x)),
        summary="Mish: x*tanh(softplus(x)).",
    ),
    Activation(
        "softplus",
        "Softplus",
        Piecewise((x, beta * x > threshold), (softplus(beta * x) / beta, True)),
        (Param("beta", 1.0), Param("threshold", 20.0)),
        summary="Softplus: log(1 + exp(beta*x))/beta, linear above the threshold.",
    ),
    Activation(
        "softsign",
        "Softsign",
        x / (1 + Abs(x)),
        summary="Softsign: x/(1 + |x|).",
    ),
    Activation(
        "hardtanh",
        "Hardtanh",
        Piecewise((min_val, x <= min_val), (max_val, x >= max_val), (x, True)),
        (Param("min_val", -1.0), Param("max_val", 1.0)),
        summary="Hard tanh: x clipped to [min_val, max_val].",
    ),
    Activation(
        "relu6",
        "Relu6",
        Min(Max(x, 0), 6),
        summary="ReLU capped at 6.",
    ),
    Activation(
        "hardsigmoid",
        "Hardsigmoid",
        Piecewise((0, x <= -3), (1, x >= 3), (x / 6 + Rational(1, 2), True)),
        summary="Hard sigmoid: x/6 + 1/2 clipped to [0, 1].",
    ),
    Activation(
        "hardswish",
        "Hardswish",
        Piecewise((0, x <= -3), (x, x >= 3), (x * (x + 3) / 6, True)),
        summary="Hard swish: x*relu6(x + 3)/6.",
    ),
    Activation(
        "log_sigmoid",
        "LogSigmoid",
        log(sigmoid(x)),
        summary="Log-sigmoid: log(1/(1 + exp(-x))).",
    ),
    Activation(
        "tanhshrink",
        "Tanhshrink",
        x - tanh(x),
        summary="Tanh shrink: x - tanh(x).",
    ),
    Activation(
        "softshrink",
        "Softshrink",
        Piecewise((x - lambd, x > lambd), (x + lambd, x < -lambd), (0, True)),
        (Param("lambd", 0.5),),
        summary="Soft shrinkage: x moved towards 0 by lambd, 0 within [-lambd, lambd].",
    ),
    Activation(
        "hardshrink",
        "Hardshrink",
        Piecewise((x, x > lambd), (x, x < -lambd), (0, True)),
        (Param("lambd", 0.5),),
        summary="Hard shrinkage: x outside [-lambd, lambd], else 0.",
    ),
    Activation(
        "threshold",
        "Threshold",
        Piecewise((x, x > threshold), (value, True)),
        (Param("threshold", 0.0), Param("value", 0.0)),
        summary="Threshold: x where x > threshold, else value (torch requires both).",
    ),
    Activation("identity", "Identity", x, summary="Identity: y = x."),
    Activation("exp", "Exp", exp(x), summary="Exponential: exp(x)."),
    Activation(
        "sin",
        "Sin",
        sin(w0 * x),
        (Param("w0", 1.0),),
        summary="Sine, as in SIREN: sin(w0*x).",
    ),
]

CATALOG: dict[str, Activation] = {a.name: a for a in _ROWS}

#: Options that select another row: (name, option) -> {choice: row name}.
VARIANTS: dict[tuple[str, str], dict[str, str]] = {
    ("gelu", "approximate"): {"none": "gelu", "tanh": "gelu_tanh"},
}


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


_INDEX = {
    _key(alias): act.name
    for act in CATALOG.values()
    for alias in (act.name, *act.aliases)
}


def activation(
    name: str,
    *,
    learnable: str | Iterable[str] = (),
    prefer: Prefer | None = None,
    **params: float | str,
) -> Activation:
    """The catalog activation ``name`` (case and underscores ignored), with parameters.

    ``learnable`` names parameters whose gradient backward should compute (PReLU's
    weight is learnable already).  String options select a variant, as in
    ``activation("gelu", approximate="tanh")``.  ``prefer`` sets the precision
    policy (`symgrad.model.PREFERENCES`).  An unknown name raises ValueError
    listing the close matches; an unknown parameter names the allowed ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, not {type(name).__name__}")
    found = _INDEX.get(_key(name))
    if found is None:
        close = difflib.get_close_matches(_key(name), list(_INDEX), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(_INDEX[c] for c in close)}?" if close else ""
        raise ValueError(
            f"unknown activation {name!r}{hint} (known: {', '.join(sorted(CATALOG))})"
        )
    for option, choices in [(o, c) for (n, o), c in VARIANTS.items() if n == found]:
        if option in params:
            choice = params.pop(option)
            if choice not in choices:
                raise ValueError(
                    f"activation {found!r}: {option} must be one of "
                    f"{', '.join(map(repr, choices))}, not {choice!r}"
                )
            found = choices[choice]
    act = CATALOG[found]
    if params:
        act = act.with_values(**params)
    if learnable:
        act = act.with_learnable(learnable)
    return act.preferring(prefer)


def resolve(
    act: Activation | str, prefer: Prefer | None = None, **params: float
) -> Activation:
    """An `Activation` from an activation or a catalog name, under ``prefer``
    (None: the activation's own policy)."""
    if isinstance(act, Activation):
        act = act.with_values(**params) if params else act
        return act.preferring(prefer)
    return activation(act, prefer=prefer, **params)


def is_builtin(act: Activation) -> bool:
    """Whether ``act`` is a catalog activation (any parameter values, any of its
    parameters learnable): its derivation's cost is known, so it needs no budget
    (`symgrad.budgets`)."""
    known = CATALOG.get(act.name)
    return (
        known is not None
        and known.expr == act.expr
        and [p.name for p in known.params] == [p.name for p in act.params]
    )
