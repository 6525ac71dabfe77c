"""Render an explained derivation (`symgrad.steps`) as text, LaTeX, Markdown, DOT.

The LaTeX is meant to be read as source too: one equation per line in ``align*``
environments, named intermediates, and the computational graph drawn in TikZ the
way the seed draws it (forward values above the arrows, backward values below).
A standalone document needs ``amsmath`` and ``tikz`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sympy

from . import __version__
from .model import Derivation, X, Y
from .notation import latex as latex_cases
from .notation import text as plain
from .steps import BranchSteps, LocalDerivative, Node, Steps, explain
from .text import comment

FORMATS = ("text", "latex", "markdown", "dot")
_CACHING = {
    "output": "Backward needs only the output, so forward caches the output $y$.",
    "input": "The derivative is not a function of $y$, so forward caches the input $x$.",
    "mask": "The derivative takes two constant values, so forward caches one boolean "
    "per element (a mask) and backward selects.",
    "nothing": "The derivative is constant, so forward caches nothing but the shape.",
}


def tex(expr: sympy.Basic) -> str:
    """LaTeX for an expression, with long floats shortened to 12 digits."""
    floats = {f: sympy.Float(f, 12) for f in expr.atoms(sympy.Float)}
    return latex_cases(expr.xreplace(floats) if floats else expr)


def _grad(name: sympy.Symbol | str) -> str:
    return rf"\frac{{\partial L}}{{\partial {name}}}"


def _times(expr: sympy.Expr) -> str:
    """`` \\cdot (expr)`` with parentheses only where a sum or sign needs them."""
    if expr == 1:
        return ""
    body = tex(expr)
    if expr.is_Add or expr.could_extract_minus_sign():
        body = rf"\left({body}\right)"
    return rf" \cdot {body}"


# -- LaTeX -----------------------------------------------------------------------------


def latex_section(steps: Steps, level: str = "section") -> str:
    """One activation's derivation: definition, graph, local derivatives, backward
    pass, simplification, final form and what the layer caches."""
    d = steps.derivation
    act = d.activation
    out = [rf"\{level}{{{_escape(act.class_name)} ({_escape(act.name)})}}", ""]
    if act.summary:
        out += [_escape(act.summary), ""]
    out += [r"\paragraph{Definition.}", *_equation(f"y = {tex(d.forward)}")]
    if act.params:
        values = ", ".join(f"${tex(p.symbol)} = {p.value!r}$" for p in act.params)
        out += [f"Parameters: {values}.", ""]
    for branch in steps.branches:
        out += _branch_latex(branch, steps)
    out += [
        r"\paragraph{Result.}",
        *_equation(rf"\frac{{dy}}{{dx}} = {tex(d.derivative)}"),
    ]
    if steps.output_form is not None:
        out += [
            "In the output $y$ (checked on every branch):",
            *_equation(rf"\frac{{dy}}{{dx}} = {tex(steps.output_form)}"),
        ]
    for point, value in steps.kinks:
        out += [
            f"At $x = {tex(point)}$ the derivative is taken from the branch that holds "
            f"there: $\\frac{{dy}}{{dx}} = {tex(value)}$ (as in PyTorch).",
            "",
        ]
    out += [r"\paragraph{What the generated layer caches.}", _caching(steps), ""]
    return "\n".join(out)


def _branch_latex(branch: BranchSteps, steps: Steps) -> list[str]:
    out = []
    if steps.piecewise:
        where = tex(branch.condition) if branch.condition is not sympy.true else ""
        title = f"Where ${where}$" if where else "Otherwise"
        out += [rf"\paragraph{{{title}:}} $y = {tex(branch.forward)}$."]
    if branch.trivial:
        return [*out, *_equation(rf"\frac{{dy}}{{dx}} = {tex(branch.derivative)}")]
    out += [
        "",
        r"\paragraph{Computational graph.}",
        r"\begin{center}",
        tikz(branch),
        r"\end{center}",
        "",
        r"\paragraph{Forward pass and local derivatives.}",
        r"\begin{align*}",
    ]
    rows = []
    for node in branch.nodes:
        for local in [x for x in branch.local if x.node == node.name]:
            derivative = _both_forms(local, tex)
            rows.append(
                f"  {tex(node.name)} &= {tex(node.expr)} & "
                rf"\frac{{\partial {tex(node.name)}}}{{\partial {tex(local.wrt)}}} "
                f"&= {derivative}"
            )
    out += [" \\\\\n".join(rows), r"\end{align*}", ""]
    out += [
        rf"\paragraph{{Backward pass}} (from ${_grad('y')}$, which arrives from the "
        "layer above):",
        r"\begin{align*}",
    ]
    lines = []
    for step in branch.backward:
        terms = " + ".join(
            f"{_grad(tex(node))}{_times(local)}" for node, local in step.terms
        )
        lines.append(f"  {_grad(tex(step.target))} &= {terms}")
    out += [" \\\\\n".join(lines), r"\end{align*}", ""]
    out += [r"\paragraph{Simplification.}", r"\begin{align*}"]
    lines = []
    for k, line in enumerate(branch.chain):
        lhs = _grad("x") if k == 0 else ""
        lines.append(
            f"  {lhs} &= {_grad('y')}{_times(line.expr)} && \\text{{{line.reason}}}"
        )
    out += [" \\\\\n".join(lines), r"\end{align*}", ""]
    return out


def _equation(body: str) -> list[str]:
    return [r"\begin{equation*}", f"  {body}", r"\end{equation*}", ""]


def _caching(steps: Steps) -> str:
    d, shared = steps.derivation, steps.shared
    if shared is not None:
        uses = [
            name
            for name, symbol in (("$x$", X), ("$y$", Y))
            if shared.derivative.has(symbol)
        ]
        return (
            f"Backward reads $s = {tex(shared.part)}$, which forward computes "
            "anyway, so forward caches it"
            + (f" with {' and '.join(uses)}" if uses else "")
            + "; backward does not recompute it."
        )
    sentence = _CACHING[d.plan.saves]
    if d.plan.saves == "mask":
        sentence += f" The mask is ${tex(d.plan.mask)}$."
    if d.plan.param_grads:
        names = ", ".join(f"${tex(sympy.Symbol(n))}$" for n, _ in d.plan.param_grads)
        sentence = (
            f"A parameter is learnable ({names}); its gradient needs the input, so "
            "forward caches $x$."
        )
    return sentence


def tikz(branch: BranchSteps) -> str:
    """The computational graph as a TikZ picture: operations in circles, the
    forward value above each arrow and the backward value below it."""
    columns = _columns(branch.nodes)
    rows: dict[int, int] = {}
    place = {}
    for name, column in columns.items():
        place[name] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    lines = [
        r"\begin{tikzpicture}[>=stealth, x=2.5cm, y=-1.9cm,",
        r"    op/.style={draw, circle, minimum size=9mm, inner sep=1pt},",
        r"    lab/.style={font=\scriptsize}]",
    ]
    for name, (column, row) in place.items():
        label = "x" if name == X else _node(branch.nodes, name).operation
        style = "" if name == X else "op"
        lines.append(f"  \\node[{style}] ({name}) at ({column}, {row}) {{${label}$}};")
    last = branch.nodes[-1].name
    end = max(c for c, _ in place.values()) + 1
    lines.append(f"  \\node (out) at ({end}, {place[last][1]}) {{}};")
    local = {(d.node, d.wrt): d.used for d in branch.local}
    for node in branch.nodes:
        for u in node.inputs:
            back = f"{_grad(tex(node.name))}{_times(local[(node.name, u)])}"
            lines.append(
                f"  \\draw[->] ({u}) -- node[lab, above] {{${tex(u)}$}} "
                f"node[lab, below] {{${back}$}} ({node.name});"
            )
    lines.append(
        f"  \\draw[->] ({last}) -- node[lab, above] {{$y$}} "
        f"node[lab, below] {{${_grad('y')}$}} (out);"
    )
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def _both_forms(local: LocalDerivative, render) -> str:
    """A local derivative in its inputs, and in the node's output where simpler."""
    text = render(local.in_inputs)
    if local.in_output is not None:
        text += f" = {render(local.in_output)}"
    return text


def _node(nodes: Sequence[Node], name) -> Node:
    return next(n for n in nodes if n.name == name)


def _columns(nodes: Sequence[Node]) -> dict:
    """Longest path from x: the column each node is drawn in."""
    columns = {X: 0}
    for node in nodes:
        columns[node.name] = 1 + max(columns[u] for u in node.inputs)
    return columns


def document(steps: Iterable[Steps], command: str | None = None) -> str:
    """A standalone LaTeX document, one section per activation (amsmath, TikZ)."""
    steps = list(steps)
    names = ", ".join(_escape(s.derivation.activation.class_name) for s in steps)
    header = [f"% Generated by symgrad {__version__}. Do not edit."]
    if command:
        header.append(f"% Regenerate with: {comment(command)}")
    body = "\n\n".join(latex_section(s) for s in steps)
    return "\n".join(
        [
            *header,
            r"\documentclass{article}",
            r"\usepackage{amsmath}",
            r"\usepackage{tikz}",
            r"\allowdisplaybreaks",
            r"\title{Derivations: " + names + "}",
            r"\author{symgrad " + __version__ + "}",
            r"\date{}",
            r"\begin{document}",
            r"\maketitle",
            "Each layer's backward pass, derived through its computational graph as "
            "in a backpropagation tutorial. Every step below was checked by SymPy: "
            "the two sides are equal symbolically or, failing that, to $10^{-12}$ "
            "at 20 points where the step applies.",
            "",
            body,
            r"\end{document}",
            "",
        ]
    )


_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def _escape(text: str) -> str:
    return "".join(_SPECIAL.get(c, c) for c in text)


# -- text and Markdown -----------------------------------------------------------------


def text(steps: Steps) -> str:
    """The derivation as plain text, for a terminal."""
    d = steps.derivation
    act = d.activation
    out = [f"{act.name} ({act.class_name}): {act.summary}".rstrip(": ")]
    out += [f"  parameter {p.name} = {p.value!r}" for p in act.params]
    out.append(f"  y = {plain(d.forward)}")
    for branch in steps.branches:
        if steps.piecewise:
            where = (
                plain(branch.condition) if branch.condition is not sympy.true else ""
            )
            out.append("")
            out.append(f"  where {where}: y = {plain(branch.forward)}" if where else
                       f"  otherwise: y = {plain(branch.forward)}")  # fmt: skip
        if branch.trivial:
            out.append(f"    dy/dx = {plain(branch.derivative)}")
            continue
        out += ["", "  forward graph and local derivatives:"]
        for local in branch.local:
            node = _node(branch.nodes, local.node)
            derivative = _both_forms(local, plain)
            out.append(
                f"    {plain(node.name)} = {plain(node.expr):<16}"
                f" d{node.name}/d{local.wrt} = {derivative}"
            )
        out += ["", "  backward pass (dL/dy arrives from the layer above):"]
        for step in branch.backward:
            terms = " + ".join(
                f"dL/d{node}" + ("" if local == 1 else f" * ({plain(local)})")
                for node, local in step.terms
            )
            out.append(f"    dL/d{step.target} = {terms}")
        out += ["", "  simplification:"]
        for k, line in enumerate(branch.chain):
            lhs = "dL/dx" if k == 0 else "     "
            out.append(f"    {lhs} = dL/dy * ({plain(line.expr)})   [{line.reason}]")
    out += ["", f"  dy/dx = {plain(d.derivative)}"]
    if steps.output_form is not None:
        out.append(f"        = {plain(steps.output_form)}  (in the output y)")
    for point, value in steps.kinks:
        out.append(
            f"  at x = {plain(point)}: dy/dx = {plain(value)} (the branch that holds there)"
        )
    cached = {"mask": f"mask = {plain(d.plan.mask)}", "output": "out (y)", "input": "x"}
    out.append(f"  caches: {cached.get(d.plan.saves, 'nothing')} ({d.plan.reason})")
    if d.regimes is not None and d.regimes.chosen:
        out.append(f"  regimes: {d.regimes.summary()}")
    out.append("  every step verified")
    return "\n".join(out) + "\n"


def markdown(steps: Steps) -> str:
    """Markdown with display math, as Jupyter and GitHub render it (no TikZ)."""
    d = steps.derivation
    act = d.activation
    out = [f"### {act.class_name} (`{act.name}`)", ""]
    if act.summary:
        out += [act.summary, ""]
    out += [f"$$y = {tex(d.forward)}$$", ""]
    for branch in steps.branches:
        if steps.piecewise:
            where = tex(branch.condition) if branch.condition is not sympy.true else ""
            out += [(f"**Where ${where}$:**" if where else "**Otherwise:**")
                    + f" $y = {tex(branch.forward)}$", ""]  # fmt: skip
        if branch.trivial:
            out += [rf"$$\frac{{dy}}{{dx}} = {tex(branch.derivative)}$$", ""]
            continue
        rows = []
        for local in branch.local:
            node = _node(branch.nodes, local.node)
            derivative = _both_forms(local, tex)
            rows.append(
                f"{tex(node.name)} &= {tex(node.expr)} & "
                rf"\frac{{\partial {tex(node.name)}}}{{\partial {tex(local.wrt)}}} &= "
                + derivative
            )
        out += ["Forward graph and local derivatives:", "",
                r"$$\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}$$", ""]  # fmt: skip
        backward = [
            f"{_grad(tex(s.target))} &= "
            + " + ".join(f"{_grad(tex(n))}{_times(v)}" for n, v in s.terms)
            for s in branch.backward
        ]
        out += ["Backward pass:", "",
                r"$$\begin{aligned}" + r" \\ ".join(backward) + r"\end{aligned}$$", ""]  # fmt: skip
        chain = [
            f"{_grad('x') if k == 0 else ''} &= {_grad('y')}{_times(c.expr)}"
            rf" && \text{{{c.reason}}}"
            for k, c in enumerate(branch.chain)
        ]
        out += ["Simplification:", "",
                r"$$\begin{aligned}" + r" \\ ".join(chain) + r"\end{aligned}$$", ""]  # fmt: skip
    result = rf"\frac{{dy}}{{dx}} &= {tex(d.derivative)}"
    if steps.output_form is not None:
        result += rf" \\ &= {tex(steps.output_form)} && \text{{in the output }} y"
    out += ["Result:", "", r"$$\begin{aligned}" + result + r"\end{aligned}$$", ""]
    out += [_caching(steps), ""]
    return "\n".join(out)


def math_latex(steps: Steps) -> str:
    """Display math only (``$$...$$``), for Jupyter's ``_repr_latex_``."""
    d = steps.derivation
    lines = [f"y &= {tex(d.forward)}"]
    for branch in steps.branches:
        for local in branch.local:
            node = _node(branch.nodes, local.node)
            lines.append(
                f"{tex(node.name)} &= {tex(node.expr)}, \\quad "
                rf"\frac{{\partial {tex(node.name)}}}{{\partial {tex(local.wrt)}}} "
                f"= {tex(local.used)}"
            )
    lines.append(rf"\frac{{dy}}{{dx}} &= {tex(d.derivative)}")
    if steps.output_form is not None:
        lines.append(f"&= {tex(steps.output_form)}")
    return r"$$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$$"


# -- Graphviz ----------------------------------------------------------------------------


def dot(steps: Steps) -> str:
    """The computational graph(s) in Graphviz DOT: forward value above each edge,
    the backward value below it."""
    act = steps.derivation.activation
    out = [f'digraph "{act.class_name}" {{', "  rankdir=LR;", "  node [shape=circle];"]
    for k, branch in enumerate(steps.branches):
        if branch.trivial:
            continue
        prefix = f"b{k}_" if len(steps.branches) > 1 else ""
        label = plain(branch.condition) if branch.condition is not sympy.true else "y"
        out.append(f'  subgraph "cluster_{k}" {{')
        out.append(f'    label="{_dot_escape(label)}";')
        out.append(f'    {prefix}x [shape=plaintext, label="x"];')
        for node in branch.nodes:
            out.append(
                f'    {prefix}{node.name} [label="{_dot_escape(plain(node.expr))}"];'
            )
        local = {(d.node, d.wrt): d.used for d in branch.local}
        for node in branch.nodes:
            for u in node.inputs:
                factor = local[(node.name, u)]
                back = f"dL/d{node.name}" + (
                    "" if factor == 1 else f" * ({plain(factor)})"
                )
                out.append(
                    f"    {prefix}{u} -> {prefix}{node.name} "
                    f'[label=<{_html(str(u))}<BR/><FONT COLOR="firebrick">'
                    f"{_html(back)}</FONT>>];"
                )
        last = branch.nodes[-1].name
        out.append(f'    {prefix}out [shape=plaintext, label=""];')
        out.append(
            f"    {prefix}{last} -> {prefix}out "
            '[label=<y<BR/><FONT COLOR="firebrick">dL/dy</FONT>>];'
        )
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(derivation: Derivation, fmt: str = "text") -> str:
    """The derivation in one of `FORMATS` (LaTeX: a section, not a document)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    steps = explain(derivation)
    renderer = {"text": text, "latex": latex_section, "markdown": markdown, "dot": dot}
    return renderer[fmt](steps)
