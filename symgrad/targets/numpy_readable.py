"""The default NumPy layers: whole-array expressions that read like the book.

`layer_source` prints one layer's `LayerFormulas` as the bodies of ``forward``
and ``backward``.  Each assignment becomes a statement of whole-array NumPy
operations (``out = _sigmoid(x)``, ``dx = np.where(mask, 0.0, dout)``); a part
used twice is computed once into a named local (``xc = np.maximum(x, -39.0)``);
a statement too long for its line is split at its largest part; and a product or
sum of three or more operands at the top of a statement is built in place::

    dx = 1.0 - y
    dx *= y
    dx *= dout

so that it allocates one array, not one per operation (the derivative stands in
a comment above).  Stable functions print as calls to the helpers in
`symgrad.targets.numpy_helpers`, which the module carries.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import sympy
from sympy.codegen.cfunctions import expm1 as Expm1
from sympy.codegen.cfunctions import log1p as Log1p
from sympy.core.relational import Relational

from ..functions import (
    blend,
    clip,
    erfc,
    exp_of_polynomial,
    finite,
    near_root,
    near_tail,
    near_zero,
    sigmoid,
    sigmoid_of_polynomial,
    softplus,
    tail_product,
    tame,
)
from ..layer import DOUT, LayerFormulas, comment_lines, local_name, text
from ..model import MASK, X, Y
from ..printing import (
    LINE_LENGTH,
    PRECEDENCE,
    LayerPrinter,
    Times,
    _nan_passing_order,
    _negative,
    floats_for_constants,
    format_expression,
    root_factored,
)
from ..rewrite import _bound_of, _explosive, _scaled_by_parameter
from ..sharing import S

#: Names a generated method already uses; temporaries take others.
RESERVED = frozenset(
    {"x", "y", "out", "dout", "dx", "mask", "s", "self", "np", "float", "shape"}
)
#: A short name for a temporary, by what computes it.
_MNEMONICS = {
    sigmoid: "sig",
    sigmoid_of_polynomial: "sig",
    exp_of_polynomial: "e",
    softplus: "sp",
    erfc: "ec",
    sympy.erf: "ef",
    sympy.exp: "e",
    sympy.tanh: "t",
    sympy.log: "lg",
    Log1p: "lg",
    Expm1: "em",
    sympy.Piecewise: "w",
    blend: "w",
}
_CLAMPS = (clip, finite, tame, sympy.Max, sympy.Min)


class ReadablePrinter(LayerPrinter):
    """`LayerPrinter` for whole arrays: clamps print as NumPy calls or helpers,
    a blend as ``np.where``, log1p and expm1 as the vectorised helpers."""

    #: Whether statements may build a result in place (dx *= y).
    in_place = True
    #: Whether a near-zero polynomial prints as the ``_near_zero`` helper with
    #: its coefficients in a class attribute (else as its select, written out).
    tables = True
    #: The fitted polynomials printed as their selects, written out.
    written_out: tuple[type[sympy.Function], ...] = ()

    def __init__(
        self,
        names: Mapping[sympy.Symbol, str],
        arrays: Iterable[sympy.Symbol],
        tables: dict[tuple[float, ...], str] | None = None,
    ) -> None:
        super().__init__(names)
        self.arrays = set(arrays)
        #: Coefficients -> the class attribute that holds them, shared by passes.
        self.table_names = {} if tables is None else tables

    def _varies(self, expr: sympy.Basic) -> bool:
        return bool(expr.free_symbols & self.arrays)

    def _print_clip(self, expr: clip) -> str:
        u, lower, upper = expr.args
        if lower == -sympy.oo:
            return f"{self.fn('minimum')}({self._print(u)}, {self._print(upper)})"
        if upper == sympy.oo:
            return f"{self.fn('maximum')}({self._print(u)}, {self._print(lower)})"
        bounds = f"{self._print(lower)}, {self._print(upper)}"
        return f"{self.fn('clip')}({self._print(u)}, {bounds})"

    def _print_finite(self, expr: finite) -> str:
        self.helpers.add("_finite")
        u, side = expr.args
        extra = f", side={int(side)}" if side != 0 else ""
        return f"_finite({self._print(u)}{extra})"

    def _print_near_zero(self, expr: near_zero) -> str:
        far, u, switch, order = expr.args[:4]
        table = table_name(self.table_names, expr.coefficients, "_NEAR_ZERO")
        self.helpers.add("_near_zero")
        arguments = [self._print(a) for a in (far, u, switch)] + [str(int(order))]
        return f"_near_zero({', '.join(arguments)}, self.{table})"

    def _print_near_root(self, expr: near_root) -> str:
        far, u = expr.args[:2]
        table = table_name(self.table_names, expr.table, "_NEAR_ROOT")
        self.helpers.add("_near_root")
        return f"_near_root({self._print(far)}, {self._print(u)}, self.{table})"

    def _print_near_tail(self, expr: near_tail) -> str:
        far, u = expr.args[:2]
        table = table_name(self.table_names, expr.table, "_NEAR_TAIL")
        self.helpers.add("_near_tail")
        return f"_near_tail({self._print(far)}, {self._print(u)}, self.{table})"

    def _print_sigmoid_of_polynomial(self, expr: sympy.Function) -> str:
        """f(u) for u = P(v), by the helper that corrects u's rounding from P's
        exact coefficients (a class attribute); a framework prints f(u)."""
        if not self.tables:
            return self._print(expr.plain)
        u, v, beyond = expr.args[:3]
        helper = f"_{type(expr).__name__}"
        self.helpers.add(helper)
        table = table_name(self.table_names, expr.coefficients, "_POLYNOMIAL")
        arguments = [self._print(u), self._print(v), f"self.{table}"]
        if beyond != 0:
            arguments.append(f"beyond={self._print(beyond)}")
        return f"{helper}({', '.join(arguments)})"

    _print_exp_of_polynomial = _print_sigmoid_of_polynomial

    def _print_tail_product(self, expr: sympy.Function) -> str:
        """The helper; for a polynomial exponent, the one that corrects its
        rounding, with its variable and coefficients."""
        if expr.polynomial is None:
            return super()._print_tail_product(expr)
        factor, rest, exponent, scale = expr.args[:4]
        v, coefficients = expr.polynomial
        self.helpers.add("_tail_product_of_polynomial")
        table = table_name(self.table_names, coefficients, "_POLYNOMIAL")
        arguments = [self._print(a) for a in (factor, rest, exponent, v)]
        arguments.append(f"self.{table}")
        if scale != 1:
            arguments.append(self._print(sympy.Float(scale)))
        return f"_tail_product_of_polynomial({', '.join(arguments)})"

    def _print_tame(self, expr: tame) -> str:
        self.helpers.add("_tame")
        u, degree = expr.args
        return f"_tame({self._print(u)}, {int(degree)})"

    def _print_blend(self, expr: blend) -> str:
        """np.where, with NaN sent to a branch that depends on the input."""
        condition, inside, outside = expr.args
        inside, outside = (_unclamped(b, condition) for b in (inside, outside))
        select = sympy.Piecewise((inside, condition), (outside, True))
        if not isinstance(select, sympy.Piecewise):  # both branches the same
            return self._print(select)
        return self._print_Piecewise(select)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        """A select on the cached mask as a product (dout * ~mask): 10x faster
        than np.where at 1e5 elements, where a select mispredicts at every sign
        change of x; other selects as nested np.where, NaN sent to a branch
        that depends on the input."""
        factored = _on_mask(expr, self._varies)
        if factored is None:
            return super()._print_Piecewise(expr)
        mask, g, inside, outside = factored
        m = self._print(mask)
        prec = PRECEDENCE["Mul"]
        if inside == 0 or outside == 0:
            # The branch that is not 0, times where it holds: dout * ~mask.
            branch, holds = (
                (expr.args[1][0], f"~{m}")
                if inside == 0
                else (
                    expr.args[0][0],
                    m,
                )
            )
            return f"{self.parenthesize(branch, prec)} * {holds}"
        # g * mask * a + g * ~mask * b: each product g, g*a, g*b or 0, in g's dtype.
        g_text = self.parenthesize(g, prec)
        masked = f"{g_text} * {m}" + (
            "" if inside == 1 else f" * {self._print(inside)}"
        )
        passed = f"{g_text} * ~{m}" + (
            "" if outside == 1 else f" * {self._print(outside)}"
        )
        return f"{masked} + {passed}"

    def _print_Min(self, expr: sympy.Min) -> str:
        """min(max(x, a), b) as np.clip(x, a, b): one call, NaN passes."""
        if len(expr.args) == 2:
            inner = [a for a in expr.args if isinstance(a, sympy.Max)]
            bound = [a for a in expr.args if not isinstance(a, sympy.Max)]
            if len(inner) == 1 and len(bound) == 1 and not self._varies(bound[0]):
                arrays = [a for a in inner[0].args if self._varies(a)]
                lows = [a for a in inner[0].args if not self._varies(a)]
                if len(arrays) == 1 and len(lows) == 1:
                    args = ", ".join(
                        self._print(a) for a in (arrays[0], lows[0], bound[0])
                    )
                    return f"{self.fn('clip')}({args})"
        return super()._print_Min(expr)

    def _nested(self, func: str, args: Sequence[sympy.Expr]) -> str:
        """np.maximum(x, 0.0): the array first, then the bounds."""
        ordered = sorted(args, key=lambda a: not self._varies(a))
        text = self._print(ordered[0])
        for arg in ordered[1:]:
            text = f"{func}({text}, {self._print(arg)})"
        return text

    def _print_log1p(self, expr: Log1p) -> str:
        self.helpers.add("_log1p")
        return f"_log1p({self._print(expr.args[0])})"

    def _print_expm1(self, expr: Expm1) -> str:
        self.helpers.add("_expm1")
        return f"_expm1({self._print(expr.args[0])})"

    def _print_Mul(self, expr: sympy.Mul) -> str:
        """-softplus(-u) as `_log_sigmoid(u)`: two negations fewer."""
        coefficient, rest = expr.as_coeff_Mul()
        if coefficient == -1 and isinstance(rest, softplus):
            inner = -rest.args[0]
            self.helpers.add("_log_sigmoid")
            return f"_log_sigmoid({self._print(inner)})"
        return super()._print_Mul(expr)

    def _print_Times(self, expr: Times) -> str:
        """dout * y * (1.0 - y): the local gradient's factors after dout, unless it
        divides (dout * (a / b) is not (dout * a) / b where dout * a overflows)."""
        left, right = expr.args
        if isinstance(right, sympy.Mul) and not _has_denominator(right):
            return f"{self._print(left)} * {self._print(right)}"
        return super()._print_Times(expr)


def _on_mask(expr: sympy.Piecewise, varies):
    """(mask, g, a, b) for Piecewise((a*g, mask), (b*g, True)) with a cached mask
    and numbers (or parameters) a and b, else None."""
    if len(expr.args) != 2 or expr.args[0][1] != MASK:
        return None
    (inside, mask), (outside, _) = expr.args
    g = sympy.S.One
    for candidate in (inside, outside):
        _, factors = candidate.as_coeff_mul()
        varying = sympy.Mul(*[f for f in factors if varies(f)])
        if varying != 1:
            g = varying
            break
    a, b = sympy.cancel(inside / g), sympy.cancel(outside / g)
    if varies(a) or varies(b):
        return None
    return mask, g, a, b


def _unclamped(branch: sympy.Expr, condition: sympy.Basic) -> sympy.Expr:
    """A blend's branch without the clamp to its side of the kink that
    `symgrad.rewrite.select_as_blend` gave it, where nothing in it can overflow
    without: np.where evaluates both branches everywhere, and ELU's alpha + y
    needs no clamp, where alpha*expm1(x) would."""
    side = _bound_of(condition)
    if side is None:
        return branch
    _, k, v = side
    plain = branch.xreplace({sympy.Max(v, k): v, sympy.Min(v, k): v})
    if _explosive(plain, v) or _scaled_by_parameter(plain, v):
        return branch  # CELU's 1 + y/alpha overflows at y = 1e308 for alpha < 1
    return plain


def _has_denominator(expr: sympy.Mul) -> bool:
    return any(
        f.is_Pow and f.exp.is_Number and f.exp.is_negative for f in expr.args
    ) or any(f.is_Rational and f.q != 1 for f in expr.args)


@dataclass
class PassSource:
    """The printed statements of one pass and the helpers they call."""

    lines: list[str]
    helpers: set[str]


class _Pass:
    """Builds one method body: temporaries, statements, line splitting."""

    def __init__(self, printer: ReadablePrinter, taken: set[str], indent: int) -> None:
        self.printer = printer
        self.taken = set(taken)
        self.limit = LINE_LENGTH - indent
        self.lines: list[str] = []
        self.counter = itertools.count()
        self._texts: dict[sympy.Basic, str] = {}

    def text(self, expr: sympy.Basic) -> str:
        """expr as printed; remembered, for fitting a long statement measures
        every part of it again after each split (a fitted polynomial under
        prefer='accuracy' took seconds).  A part's text cannot change: names
        are only ever added, for new temporaries."""
        if expr not in self._texts:
            self._texts[expr] = format_expression(self.printer.doprint(expr))
        return self._texts[expr]

    def varies(self, expr: sympy.Basic) -> bool:
        return self.printer._varies(expr)

    def temporary(self, value: sympy.Basic, name: str | None = None) -> sympy.Symbol:
        """A named local holding value, computed here (split if too long)."""
        symbol = sympy.Symbol(f"_tmp{next(self.counter)}", real=True)
        array = self.varies(value)
        if name is None:
            name = self._fresh(_mnemonic(value, self.printer.names) if array else "k")
        value = self._fitted(name, value)
        self.lines.append(f"{name} = {self.text(value)}")
        self.printer.names[symbol] = name
        if array:
            self.printer.arrays.add(symbol)
        return symbol

    def _fresh(self, base: str) -> str:
        for n in itertools.count(1):
            name = base if n == 1 else f"{base}{n}"
            if name not in self.taken:
                self.taken.add(name)
                return name
        raise AssertionError("unreachable")

    def _fitted(self, target: str, value: sympy.Basic) -> sympy.Basic:
        """value, with its largest parts moved into temporaries until
        ``target = value`` fits on a line."""
        while len(target) + 3 + len(self.text(value)) > self.limit:
            part = self._largest_part(value)
            if part is None:
                break
            value = value.xreplace({part: self.temporary(part)})
        return value

    def _largest_part(self, value: sympy.Basic) -> sympy.Basic | None:
        whole = len(self.text(value))
        parts = [
            p
            for p in sympy.preorder_traversal(value)
            if p is not value
            and isinstance(p, sympy.Expr)
            and not p.is_Atom
            and self.varies(p)
            # 1/u apart would be a reciprocal and a product: u is a part too
            and not (p.is_Pow and p.exp.is_negative)
        ]
        sized = sorted(
            ((len(self.text(p)), sympy.default_sort_key(p), p) for p in parts),
            key=lambda item: (-item[0], item[1]),
        )
        for size, _, part in sized:
            if size < whole:
                return part
        return None

    def assign(self, target: str, value: sympy.Basic) -> None:
        """``target = value``, built in place where value is a long product or sum
        (and the framework's arrays can be changed in place)."""
        steps = _in_place_steps(value, self.varies) if self.printer.in_place else None
        if steps is None:
            value = self._fitted(target, value)
            self.lines.append(f"{target} = {self.text(value)}")
            return
        (first, _), *rest = steps
        first = self._fitted(target, first)
        self.lines.append(f"{target} = {self.text(first)}")
        for operand, operator in rest:
            operand = self._fitted(target, operand)
            self.lines.append(f"{target} {operator}= {self.text(operand)}")


def _in_place_steps(value, varies):
    """[(first, ''), (operand, op), ...] building value in place, or None.

    Only for a product (or dout times a local gradient) or a sum of three or
    more operands one of which is itself computed (so the target starts as a new
    array, never an input): ``dx = 1.0 - y; dx *= y; dx *= dout``.  dout comes
    last, as `Times` groups it; a numeric coefficient stays with the first
    operand (``0.5 * xc``), or divides right after it where it is 1/3 or 1/6.
    """
    last = []
    if isinstance(value, Times):
        left, value = value.args
        last = [(left, "*")]
    if root_factored(value) is not None:
        return None  # x/3 + 1/2 prints whole, as (x + 1.5)/3: split, it cancels
    coefficient = sympy.S.One
    if isinstance(value, sympy.Mul):
        coefficient, factors = value.as_coeff_mul()
        operands = [(f, "*") for f in factors if not _reciprocal(f)]
        operands += [(f.base, "/") for f in factors if _reciprocal(f)]
    elif isinstance(value, sympy.Add):
        operands = []
        for term in sympy.Add.make_args(value):
            negative = _negative(term)
            operands.append((-term if negative else term, "-" if negative else "+"))
    else:
        operands = [(value, "")]
    operands += last
    if len(operands) < 3:
        return None
    starts = [
        i
        for i, (operand, op) in enumerate(operands)
        if op in ("*", "+", "") and not operand.is_Atom and varies(operand)
    ]
    if not starts:
        return None
    first, _ = operands.pop(starts[0])
    if (
        coefficient.is_Rational
        and coefficient.p == 1
        and coefficient.q & (coefficient.q - 1)
    ):
        operands.insert(0, (sympy.Integer(coefficient.q), "/"))
    elif coefficient != 1:
        first = sympy.Mul(coefficient, first, evaluate=False)
    return [(first, ""), *operands]


def _reciprocal(factor: sympy.Expr) -> bool:
    return factor.is_Pow and factor.exp == -1


def _mnemonic(value: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """A short name for a temporary: xc for a clamped x, sig for a sigmoid, ..."""
    if isinstance(value, _CLAMPS):
        inner = [a for a in value.args if a.is_Symbol and a in names]
        if len(inner) == 1 and names[inner[0]].isidentifier():
            return f"{names[inner[0]]}c"
    if isinstance(value, (Relational, sympy.And, sympy.Or, sympy.Not)):
        return "cond"
    for function, name in _MNEMONICS.items():
        if isinstance(value, function):
            return name
    return "u"


def print_pass(
    assignments: Sequence[tuple[str, sympy.Basic]],
    names: Mapping[sympy.Symbol, str],
    arrays: Iterable[sympy.Symbol],
    taken: Iterable[str] = (),
    indent: int = 8,
    printer_class: Callable[..., ReadablePrinter] | None = None,
    tables: dict[tuple[float, ...], str] | None = None,
) -> PassSource:
    """Statements computing each ``(target, expr)`` into a local ``target``.

    ``names`` maps every symbol to its source; ``arrays`` are the symbols that
    stand for arrays (the rest, such as ``self.alpha``, are numbers).  Another
    framework's printer (`printer_class`) gives the same statements in its own
    functions.  ``tables`` collects the coefficient tables the statements read
    (coefficients -> class attribute), shared by a layer's passes.
    """
    printer = (printer_class or ReadablePrinter)(names, arrays, tables)
    body = _Pass(printer, RESERVED | set(taken) | {t for t, _ in assignments}, indent)
    exprs = [_prepared(e, body.varies, printer) for _, e in assignments]
    symbols = sympy.numbered_symbols("_cse", real=True)
    replacements, reduced = sympy.cse(
        exprs, symbols=symbols, optimizations=None, order="canonical"
    )
    # A part that is a whole assignment's value is computed under its name.
    shared = {symbol for symbol, _ in replacements}
    whole = {
        expr: target
        for (target, _), expr in zip(assignments, reduced, strict=True)
        if expr in shared
    }
    inline: dict[sympy.Symbol, sympy.Basic] = {}
    for symbol, value in replacements:
        value = value.xreplace(inline)
        if _cheap(value, body.varies) and symbol not in whole:
            inline[symbol] = value  # -x, or arithmetic of parameters: inline
        elif symbol in whole:
            inline[symbol] = body.temporary(value, whole[symbol])
        else:
            inline[symbol] = body.temporary(value)
    for (target, _), expr in zip(assignments, reduced, strict=True):
        if not (expr in whole and whole[expr] == target):
            body.assign(target, expr.xreplace(inline))
    return PassSource(body.lines, printer.helpers)


def _cheap(value: sympy.Basic, varies) -> bool:
    """Whether a shared part reads better written out where it is used: -x, and
    arithmetic of parameters alone (a function of them, such as softplus of a
    threshold, gets a local)."""
    if not varies(value):
        return not value.atoms(sympy.Function)
    if not isinstance(value, sympy.Expr):  # a condition shared by selects
        return False
    coefficient, rest = value.as_coeff_Mul()
    return coefficient == -1 and rest.is_Symbol


def _prepared(expr: sympy.Basic, varies, printer) -> sympy.Basic:
    """Constants as literals, comparisons with the array alone on the left, and
    selects in NaN-passing order (fixed before cse, which may hide a condition
    behind a symbol, and so that equal conditions look equal to it)."""
    expr = floats_for_constants(expr)
    if printer.written_out:
        expr = expr.replace(
            lambda e: isinstance(e, printer.written_out), lambda e: e.as_piecewise()
        )
    expr = expr.replace(
        lambda r: isinstance(r, Relational) and r.rel_op not in ("==", "!="),
        printer._solved_for_array,
    )
    return expr.replace(
        lambda p: isinstance(p, sympy.Piecewise),
        lambda p: sympy.Piecewise(*_nan_passing_order(p, varies)),
    )


# -- the layer ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReadableLayer:
    """The printed pieces of one readable class, ready for the template."""

    class_name: str
    docstring: str
    params: tuple[dict[str, str], ...]
    learnable: tuple[str, ...]
    saved: tuple[str, ...]
    keeps_shape: bool
    forward: tuple[str, ...]
    loads: tuple[tuple[str, str], ...]
    checked: str
    comments: tuple[str, ...]
    backward: tuple[str, ...]
    param_grads: tuple[str, ...]
    helpers: frozenset[str]
    #: The class decorator that computes narrow floats in a wider dtype.
    decorator: str = "_float16_in_float32"
    #: (class attribute, comment lines, coefficients) of each near-zero polynomial.
    tables: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()

    @property
    def defines(self) -> tuple[str, ...]:
        """The module-level names this layer's code defines."""
        return (self.class_name,)


#: Helpers every readable module uses.
ALWAYS = frozenset({"_float_array", "_check_dout"})
#: The class decorator of each precision policy: under `accuracy` float32 is
#: computed in float64, as float16 is in float32 under both.
DECORATORS = {"memory": "_float16_in_float32", "accuracy": "_float32_in_float64"}


def layer_source(formulas: LayerFormulas) -> ReadableLayer:
    """Print one layer's passes as readable forward and backward bodies."""
    act = formulas.derivation.activation
    parameters = {p.symbol: f"self.{p.name}" for p in act.params}
    taken = {p.name for p in act.params} | {f"d{n}" for n in formulas.param_grads}

    forward_names = {X: "x", S: "s", **parameters}
    tables: dict[tuple[float, ...], str] = {}
    forward = print_pass(formulas.forward, forward_names, {X, S}, taken, tables=tables)

    backward_names = {
        DOUT: "dout",
        **{symbol: local_name(symbol) for symbol, _ in formulas.reads},
        **parameters,
    }
    arrays = {DOUT, Y, X, S, MASK}
    backward = print_pass(
        formulas.backward, backward_names, arrays, taken, tables=tables
    )

    loads = tuple((local_name(symbol), attr) for symbol, attr in formulas.reads)
    return ReadableLayer(
        class_name=act.class_name,
        docstring=formulas.docstring,
        params=tuple({"name": p.name, "default": repr(p.value)} for p in act.params),
        learnable=tuple(p.name for p in act.learnable),
        saved=tuple(attr for _, attr in formulas.reads),
        keeps_shape=not formulas.reads,
        forward=tuple(forward.lines),
        loads=loads,
        checked=loads[0][0] if loads else "self.shape",
        comments=comment_lines(formulas.comments, indent=8),
        backward=tuple(backward.lines),
        param_grads=formulas.param_grads,
        helpers=ALWAYS | {DECORATORS[act.prefer]} | forward.helpers | backward.helpers,
        decorator=DECORATORS[act.prefer],
        tables=class_tables(tables, formulas),
    )


def table_name(tables: dict[tuple[float, ...], str], coefficients, prefix: str) -> str:
    """The class attribute holding these coefficients: _NEAR_ZERO, _NEAR_ZERO_2,
    _POLYNOMIAL..."""
    if coefficients not in tables:
        count = sum(name.rstrip("_0123456789") == prefix for name in tables.values())
        tables[coefficients] = prefix + (f"_{count + 1}" if count else "")
    return tables[coefficients]


def class_tables(
    tables: Mapping[tuple[float, ...], str], formulas: LayerFormulas
) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Each coefficient table as (attribute, comment, literals), with the
    comment saying what the coefficients stand for."""
    found = {}
    expressions = [expr for _, expr in (*formulas.forward, *formulas.backward)]
    # A tail's series written out (frameworks, fused loops) has tables of its own.
    expressions += [n.as_piecewise() for e in expressions for n in e.atoms(near_tail)]
    for expr in expressions:
        for node in expr.atoms(near_zero, sigmoid_of_polynomial, exp_of_polynomial):
            found.setdefault(node.coefficients, node)  # as the definition has it
        for node in expr.atoms(near_root, near_tail):
            found.setdefault(node.table, node)
        for node in expr.atoms(tail_product):
            if node.polynomial is not None:
                found.setdefault(node.polynomial[1], node)
    rows = []
    for coefficients, attribute in tables.items():
        comment = _table_comment(found[coefficients], formulas)
        lines = tuple(textwrap.wrap(comment, width=76, break_on_hyphens=False))
        rows.append((attribute, lines, tuple(repr(c) for c in coefficients)))
    return tuple(rows)


def _table_comment(node: sympy.Function, formulas: LayerFormulas) -> str:
    if isinstance(node, near_zero):
        far, u, switch, order = node.args[:4]
        if formulas.shared is not None:  # as the definition writes it, not via s
            far = far.xreplace({S: formulas.shared.part})
        v, c = text(u), repr(float(switch))
        return (
            f"Where |{v}| < {c}, {text(far)} cancels; there it is "
            f"{v}**{int(order)} * P(2*{v}**2/{c}**2 - 1), and these are P's "
            "coefficients, lowest power first, fitted by symgrad in 40 digits."
        )
    if isinstance(node, near_root):
        far, u = node.args[:2]
        if formulas.shared is not None:
            far = far.xreplace({S: formulas.shared.part})
        v, (lower, upper) = text(u), node.window
        return (
            f"Where {lower!r} < {v} < {upper!r}, {text(_as_defined(far))} cancels "
            f"about its root r = {sum(node.root)!r}; there it is d*P(d), d = "
            f"{v} - r.  These are r as four floats (subtracted in turn, d keeps "
            "its digits), the window's ends, and P's coefficients, lowest power "
            "first, each as a high and a low float (fitted by symgrad in 40 "
            "digits; evaluated in double-double arithmetic, rounded once)."
        )
    if isinstance(node, near_tail):
        far, u = node.args[:2]
        if formulas.shared is not None:
            far = far.xreplace({S: formulas.shared.part})
        v, switch = text(u), node.switch
        where = f"{v} < {switch!r}" if node.side < 0 else f"{v} > {switch!r}"
        return (
            f"Where {where}, {text(_as_defined(far))} decays like a power of an "
            f"exponential e = exp(b({v})); there it is e**m * (c_0({v}) + "
            f"e*(c_1({v}) + ...)), the series symgrad derived.  These are the "
            "switch, the side, the clamp, m, the number of terms, the "
            "coefficients' degree and b's, b's coefficients and c_0's (each as "
            "a high and a low float, evaluated in double-double arithmetic), "
            "then c_1, c_2 ..., lowest power first."
        )
    if isinstance(node, tail_product):
        p, v = node.args[2], node.polynomial[0]
    else:
        p, v = node.args[:2]
    return (
        f"u = {text(_as_defined(p))} as a polynomial in {text(_as_defined(v))}: each "
        "coefficient, lowest power first, as two floats whose sum is exact to "
        "about 32 digits, from which the helpers correct the rounding of the "
        "computed u where its terms add up to 2 or more (exp(u) is off by as "
        "much as u is)."
    )


def _as_defined(expr: sympy.Expr) -> sympy.Expr:
    """expr with x for each clamp of x, and the sum for its tail's series, as
    the definition writes it."""
    return expr.replace(
        lambda e: isinstance(e, (clip, finite, tame, near_tail)), lambda e: e.args[0]
    )
