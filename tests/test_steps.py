"""Step-by-step derivations: the graph, its checks, and every rendering of it."""

import re
import shutil
import subprocess

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from sympy import exp

import symgrad
from symgrad import steps as steps_module
from symgrad.cli import main
from symgrad.document import document, dot, latex_section, markdown, render, text
from symgrad.model import X, Y
from symgrad.steps import StepError, explain

from .test_formula import formulas

NAMES = sorted(symgrad.CATALOG)
a, b, c = (sympy.Symbol(n, real=True) for n in "abc")


@pytest.fixture(scope="module")
def catalog_steps():
    return {name: symgrad.derive(name).steps for name in NAMES}


def test_sigmoid_follows_the_seed_node_by_node(catalog_steps):
    """-x, exp, +1, reciprocal; the reciprocal node's -y**2, the exp node's own
    output, and the product simplified to y(1 - y)."""
    (branch,) = catalog_steps["sigmoid"].branches
    assert [(n.name, n.expr) for n in branch.nodes] == [
        (a, -X),
        (b, exp(a)),
        (c, b + 1),
        (Y, 1 / c),
    ]
    local = {(d.node, d.wrt): d for d in branch.local}
    assert local[(Y, c)].in_inputs == -1 / c**2
    assert local[(Y, c)].in_output == -(Y**2)
    assert local[(b, a)].in_inputs == exp(a)
    assert local[(b, a)].in_output == b
    assert local[(a, X)].in_inputs == -1
    backward = {s.target: s.terms for s in branch.backward}
    assert backward[c] == ((Y, -(Y**2)),)
    assert backward[X] == ((a, -1),)
    assert branch.chain[0].expr == b * Y**2
    assert branch.chain[-1].expr == Y * (1 - Y)
    assert branch.chain[-1].reason == "in the output y"


def test_shared_inputs_collect_gradient_from_every_path(catalog_steps):
    """SiLU: x feeds sigmoid and the product; dL/dx sums both contributions."""
    (branch,) = catalog_steps["silu"].branches
    (to_x,) = [s for s in branch.backward if s.target == X]
    assert len(to_x.terms) == 2


def test_relu_is_derived_by_cases_with_its_kink_convention(catalog_steps):
    steps = catalog_steps["relu"]
    assert steps.piecewise
    assert [br.derivative for br in steps.branches] == [1, 0]
    assert steps.kinks == ((0, 0),)
    section = latex_section(steps)
    assert section.count(r"\begin{cases}") >= 2  # y and dy/dx
    assert "At $x = 0$" in section and "branch that holds" in section


@pytest.mark.parametrize("name", NAMES)
def test_every_catalog_derivation_is_explained_and_verified(catalog_steps, name):
    """explain() returns only after every step was checked; the chain of each
    branch ends at that branch's derivative (or at the output form)."""
    steps = catalog_steps[name]
    for branch in steps.branches:
        assert branch.chain
        final = branch.chain[-1].expr
        if Y in final.free_symbols:
            final = final.xreplace({Y: branch.forward})
        assert steps_module._same(final, branch.derivative, {}, branch.condition) or (
            steps.derivation.activation.params
        )


def test_a_step_that_does_not_hold_is_refused():
    with pytest.raises(StepError, match="could not verify"):
        steps_module._check(X**2, 2 * X + 1e-9, {}, sympy.true, "a wrong step")


def test_a_wrong_output_form_is_refused(monkeypatch):
    """If the output-form search lied, explain() would say so, not print it."""
    d = symgrad.derive("tanh")
    wrong = type(d)(d.activation, d.forward, d.derivative, 1 - Y**3, d.plan)
    with pytest.raises(StepError, match="could not verify .*in the output y"):
        explain(wrong)


def test_steps_are_checked_numerically_where_sympy_cannot_prove_them():
    """Equal functions SymPy does not simplify to 0 pass at 20 points."""
    lhs = sympy.erfc(-X)
    rhs = 2 - sympy.erfc(X)
    assert steps_module._same(lhs, rhs, {}, sympy.true)
    assert not steps_module._same(lhs, rhs + 1e-9, {}, sympy.true)


# -- renderings ------------------------------------------------------------------------


def test_text_rendering_reads_like_the_seed(catalog_steps):
    out = text(catalog_steps["sigmoid"])
    assert "db/da = exp(a) = b" in out
    assert "dL/da = dL/db * (b)" in out
    assert "every step verified" in out


def test_latex_section_is_readable_source(catalog_steps):
    section = latex_section(catalog_steps["sigmoid"])
    assert r"\begin{align*}" in section and r"\begin{tikzpicture}" in section
    assert r"\frac{\partial y}{\partial c} &= - \frac{1}{c^{2}} = - y^{2}" in section
    assert r"&= \frac{\partial L}{\partial y} \cdot y \left(1 - y\right)" in section
    # one equation per line
    align = section.split(r"\begin{align*}")[1].split(r"\end{align*}")[0]
    assert all(line.count("&=") <= 2 for line in align.strip().splitlines())


def test_tikz_puts_forward_values_above_and_backward_values_below(catalog_steps):
    section = latex_section(catalog_steps["sigmoid"])
    assert (
        r"\draw[->] (c) -- node[lab, above] {$c$} node[lab, below] "
        r"{$\frac{\partial L}{\partial y} \cdot \left(- y^{2}\right)$} (y);"
    ) in section


def test_dot_graph_is_well_formed(catalog_steps):
    graph = dot(catalog_steps["sigmoid"])
    assert graph.startswith('digraph "Sigmoid" {') and graph.rstrip().endswith("}")
    declared = set(re.findall(r"^\s+(\w+) \[", graph, flags=re.M))
    for source, target in re.findall(r"(\w+) -> (\w+)", graph):
        assert {source, target} <= declared
    assert "dL/dy * (-y**2)" in graph
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=graph, text=True, check=True,
                       capture_output=True)  # fmt: skip


def test_markdown_and_notebook_reprs():
    d = symgrad.derive("sigmoid")
    md = d._repr_markdown_()
    assert md.startswith("### Sigmoid") and "$$" in md
    latex = d._repr_latex_()
    assert latex.startswith("$$") and latex.endswith("$$")
    assert r"- y^{2}" in latex
    act = symgrad.activation("relu")
    assert act._repr_latex_().startswith("$$y = \\begin{cases}")
    assert markdown(d.steps) == md


def test_render_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="choose from text, latex, markdown, dot"):
        render(symgrad.derive("relu"), "html")


# -- the command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["show", "sigmoid", "--latex"], r"\section{Sigmoid (sigmoid)}"),
        (["show", "sigmoid", "--format", "latex"], r"\begin{tikzpicture}"),
        (["show", "relu", "--format", "markdown"], "### Relu"),
        (["show", "gelu", "--format", "dot"], 'digraph "Gelu"'),
        (["show", "tanh"], "dy/dx = cosh(x)**(-2) = 1 - y**2"),
    ],
)
def test_show_formats(capsys, argv, expected):
    assert main(argv) == 0
    assert expected in capsys.readouterr().out


def test_latex_command_writes_a_document_and_guards_foreign_files(tmp_path, capsys):
    target = tmp_path / "derivations.tex"
    assert main(["latex", "sigmoid", "relu", "-o", str(target)]) == 0
    source = target.read_text()
    assert source.startswith("% Generated by symgrad")
    assert f"% Regenerate with: symgrad latex sigmoid relu -o {target}" in source
    assert source.count(r"\section{") == 2
    assert main(["latex", "tanh", "-o", str(target)]) == 0  # its own file: replaced
    mine = tmp_path / "notes.tex"
    mine.write_text("my notes\n")
    assert main(["latex", "tanh", "-o", str(mine)]) == 2
    assert mine.read_text() == "my notes\n"
    assert "not generated by symgrad" in capsys.readouterr().err


# -- pdflatex ------------------------------------------------------------------------------


def _tex_tools_missing() -> str | None:
    if shutil.which("pdflatex") is None:
        return "pdflatex is not installed (.ci/run installs texlive-latex-base)"
    found = subprocess.run(["kpsewhich", "tikz.sty"], capture_output=True, text=True)
    if not found.stdout.strip():
        return "TikZ is not installed (.ci/run installs texlive-pictures)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_tex_tools_missing() is not None, reason=str(_tex_tools_missing()))
def test_the_whole_catalog_document_compiles_with_pdflatex(tmp_path, catalog_steps):
    source = document(catalog_steps[name] for name in NAMES)
    (tmp_path / "derivations.tex").write_text(source)
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "derivations.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if line.startswith("!")]
    assert result.returncode == 0, errors or result.stdout[-2000:]
    assert (tmp_path / "derivations.pdf").stat().st_size > 10_000


@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(formulas(2))
def test_random_formulas_are_explained_or_refused_clearly(formula):
    """Any formula symgrad derives is explained with every step verified, or the
    step that could not be checked is named; never another exception."""
    try:
        act = symgrad.parse(formula, name="Fuzz", params={"a": 0.75})
        derivation = symgrad.derive(act)
    except symgrad.FormulaError:
        return
    try:
        steps = derivation.steps
    except StepError as error:
        assert "could not verify the step" in str(error)
        return
    assert steps.branches
    for fmt in ("text", "latex", "markdown", "dot"):
        assert render(derivation, fmt)
