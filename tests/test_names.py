"""Names: a parameter named like something the generated code already uses (a
local such as ``s``, a kernel's ``c0``, an attribute, a helper, an import, a
builtin) is refused, in every target and style; any other name computes what
the same layer with a fresh name computes.

The set of taken names is not kept by hand: `symgrad.codegen` generates the
layer with stand-in names and takes every identifier of that module.
"""

import io
import keyword
import tokenize

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad
from symgrad.targets import NAMES as TARGETS

FORMULAS = [
    "{p}*tanh(x) + x",
    "{p}*exp(-{q}*x**2)*x + x",
    "x/(1 + {p}*x**2) + {q}*sigmoid(x)*x",
    "x*sigmoid({p}*x) + {q}*softplus(x)",
    "where(x > 0, x, {p}*expm1(x/{q}))",
]
STYLES = [("numpy", False), ("numpy", True), ("torch", False), ("jax", False)]


def _identifiers(source: str) -> set[str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.string for t in tokens if t.type == tokenize.NAME}


def _act(formula, p, q, learn):
    params = {p: 1.5, q: 0.75} if "{q}" in formula else {p: 1.5}
    return symgrad.parse(
        formula.format(p=p, q=q), name="probe", params=params, learnable=learn
    )


def _taken_names(formula, target, fast):
    """Every identifier the module for ``formula`` uses, with fresh names for
    its parameters."""
    act = _act(formula, "pfresh", "qfresh", ["pfresh"])
    source = symgrad.generate(act, target=target, fast=fast)
    return sorted(_identifiers(source) - {"pfresh", "qfresh", "dpfresh", "dqfresh"})


@pytest.mark.slow
@pytest.mark.parametrize("target, fast", STYLES, ids=lambda v: str(v))
@pytest.mark.parametrize("formula", FORMULAS[:3])  # the suite stays short
def test_every_name_the_module_uses_is_refused_as_a_parameter(formula, target, fast):
    """Each identifier of the generated module, tried as the name of a
    parameter: refused with a message that names it, or refused earlier by the
    formula's own rules (x, function names, keywords)."""
    for name in _taken_names(formula, target, fast):
        try:
            act = _act(formula, name, "qfresh", [name])
        except (symgrad.FormulaError, ValueError):
            continue  # the formula's own names, keywords, underscores
        with pytest.raises(symgrad.FormulaError, match=f"{name!r}.* is taken"):
            symgrad.generate(act, target=target, fast=fast)


@pytest.mark.parametrize(
    "formula, params, fast",
    [
        ("s*tanh(x) + x", ["s"], False),  # the shared part's attribute
        ("c0*exp(-c1*x**2)*x + x", ["c0", "c1"], True),  # a kernel's constant
        ("x*sigmoid(x) + np*x", ["np"], False),  # the module's import
        ("x*tanh(x) + float*x", ["float"], False),  # a builtin it calls
    ],
)
def test_reported_clashes_are_refused(formula, params, fast):
    try:
        act = symgrad.parse(
            formula,
            name="probe",
            params=dict.fromkeys(params, 1.0),
            learnable=params[:1],
        )
    except symgrad.FormulaError as error:  # refused before generation: also fine
        assert "reserved" in str(error)
        return
    with pytest.raises(symgrad.FormulaError, match="is taken"):
        symgrad.generate(act, fast=fast)


@pytest.mark.parametrize("target, fast", [*STYLES, ("numba", False)], ids=str)
def test_a_name_that_makes_a_keyword_is_refused(target, fast):
    """A name the generated code builds on (``d{p}`` for a gradient, ``d{p}s``
    for its array...) is refused where the built name is a Python keyword: every
    pattern the module uses, tried against every keyword."""
    made = [
        name.replace("pfresh", "{}")
        for name in _taken_names(FORMULAS[0], target, fast) + ["dpfresh"]
        if "pfresh" in name
    ]
    refused = 0
    for pattern in made:
        head, tail = pattern.split("{}")
        for word in keyword.kwlist:
            p = word.removeprefix(head).removesuffix(tail)
            if not (word.startswith(head) and word.endswith(tail) and p.isidentifier()):
                continue
            try:
                act = _act(FORMULAS[0], p, "qfresh", [p])
            except (symgrad.FormulaError, ValueError):
                continue  # refused by the formula's own rules
            with pytest.raises(
                symgrad.FormulaError, match=f"{p!r}.* is taken.*{word!r}"
            ):
                symgrad.generate(act, target=target, fast=fast)
            refused += 1
    assert refused >= 2  # at least "ef" and "el", for def and del


_names = st.from_regex(r"[a-z][a-z0-9]{0,3}", fullmatch=True)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    formula=st.sampled_from(FORMULAS),
    p=_names,
    q=_names,
    fast=st.booleans(),
)
def test_any_accepted_name_computes_what_a_fresh_name_computes(formula, p, q, fast):
    """The invariant behind the refusals: a layer whose parameters have the
    accepted names gives, forward and backward, what the same layer with fresh
    names gives. Not bit for bit: SymPy orders a sum's terms by symbol name, so
    a rename may change the order of additions by an ulp or two; a name bound to
    the wrong value would be off by far more than the tolerance."""
    if p == q:
        return
    try:
        act = _act(formula, p, q, [p])
        layer = symgrad.compile(act, fast=fast)()
    except (symgrad.FormulaError, ValueError):
        return  # refused: nothing is computed wrongly
    reference = symgrad.compile(
        _act(formula, "pfresh", "qfresh", ["pfresh"]), fast=fast
    )()
    x = np.linspace(-4.0, 4.0, 301)
    dout = np.cos(x)
    close = {"rtol": 1e-13, "atol": 1e-15}
    np.testing.assert_allclose(layer.forward(x), reference.forward(x), **close)
    np.testing.assert_allclose(layer.backward(dout), reference.backward(dout), **close)
    np.testing.assert_allclose(layer.grads[p], reference.grads["pfresh"], **close)


@pytest.mark.parametrize("target", TARGETS)
def test_catalog_layers_are_not_checked_twice(target, monkeypatch):
    """A catalog activation as defined needs no second generation."""
    from symgrad import codegen

    calls = []
    real = codegen._render
    monkeypatch.setattr(
        codegen, "_render", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    symgrad.generate(["elu", "softplus", "prelu"], target=target)
    assert len(calls) == 1
