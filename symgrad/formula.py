"""The formula language: a user's text to an `Activation`, safely.

The text is parsed with Python's ``ast`` and the SymPy expression is built from
the tree by hand, node type by node type from an allowlist; nothing the user
writes is ever passed to ``eval``, ``exec``, ``sympify`` or ``parse_expr``.
Length, nesting depth, node count and the size of constants are bounded before
anything is built, so a hostile formula is refused in well under a second.

Language: numbers, ``x``, the named parameters, ``pi`` and ``e``; ``+ - * / **``,
unary minus, parentheses; the functions in `FUNCTIONS`; ``where(cond, a, b)``
with ``< <= > >=`` (chains allowed) combined by ``&`` and ``|``.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping

import sympy

from .errors import FormulaError
from .functions import sigmoid, softplus
from .model import Activation, Param, Prefer, X, check_name, param_symbol
from .targets import TARGETS

MAX_LENGTH = 2000
MAX_DEPTH = 40
MAX_NODES = 400
MAX_MAGNITUDE = 1e300
MAX_EXPONENT = 64


def _clip(u, lo, hi):
    return sympy.Min(sympy.Max(u, lo), hi)


#: name -> (number of arguments, or None for two or more; builder).
FUNCTIONS: dict[str, tuple[int | None, Callable[..., sympy.Expr]]] = {
    "exp": (1, sympy.exp),
    "log": (1, sympy.log),
    "log1p": (1, lambda u: sympy.log(1 + u)),
    "expm1": (1, lambda u: sympy.exp(u) - 1),
    "sqrt": (1, sympy.sqrt),
    "abs": (1, sympy.Abs),
    "sign": (1, sympy.sign),
    "sin": (1, sympy.sin),
    "cos": (1, sympy.cos),
    "tan": (1, sympy.tan),
    "sinh": (1, sympy.sinh),
    "cosh": (1, sympy.cosh),
    "tanh": (1, sympy.tanh),
    "asinh": (1, sympy.asinh),
    "atan": (1, sympy.atan),
    "erf": (1, sympy.erf),
    "erfc": (1, sympy.erfc),
    "sigmoid": (1, sigmoid),
    "softplus": (1, softplus),
    "max": (None, sympy.Max),
    "min": (None, sympy.Min),
    "clip": (3, _clip),
    "where": (3, None),  # built by the parser: its first argument is a condition
}
CONSTANTS = {"pi": sympy.pi, "e": sympy.E}

# Names a parameter may not take: they already mean something in the formula or
# in the generated class.
RESERVED = {
    "x", "y", "out", "dout", "dx", "mask", "self", "params", "grads", "ctx",
    "saved", "shape", "float", "forward", "backward", *FUNCTIONS, *CONSTANTS,
    # compile()'s own keywords, beside a layer's parameters:
    "target", "fast", "prefer",
    *(name for target in TARGETS.values() for name in target.imports),
}  # fmt: skip
_TEMPORARY = re.compile(r"[tgp][0-9]+")

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_NODE_NAMES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.IfExp: "'a if c else b' (use where(c, a, b))",
    ast.BoolOp: "'and'/'or' (use & and | inside where)",
    ast.Starred: "starred arguments",
    ast.NamedExpr: "':='",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
}


def parse(
    formula: str,
    *,
    name: str,
    params: Mapping[str, float] | None = None,
    learnable: Iterable[str] = (),
    prefer: Prefer = "memory",
) -> Activation:
    """An `Activation` from a formula in x and named parameters.

    ``params`` maps parameter names to default values; ``learnable`` names those
    whose gradient backward computes; ``prefer`` is the precision policy
    (`symgrad.model.PREFERENCES`).  Every problem raises `FormulaError` naming
    it and, where it has one, its position.
    """
    class_name = _class_name(name)
    params = dict(params or {})
    learnable = list(learnable)
    _check_params(params, learnable)
    expr = build(formula, params)
    unused = [p for p in params if param_symbol(p) not in expr.free_symbols]
    if unused:
        raise FormulaError(
            f"parameter {unused[0]!r} is not used in the formula "
            f"{formula.strip()!r}; remove it or use it"
        )
    act_params = tuple(
        Param(p, float(v), learnable=p in learnable) for p, v in params.items()
    )
    try:
        return Activation(
            name,
            class_name,
            expr,
            act_params,
            summary=f"{class_name}: y = {formula.strip()}.",
            prefer=prefer,
        )
    except (TypeError, ValueError) as error:
        raise FormulaError(str(error)) from None


def build(formula: str, params: Mapping[str, float] | None = None) -> sympy.Expr:
    """The SymPy expression of ``formula`` (no Activation around it)."""
    if not isinstance(formula, str):
        raise FormulaError(f"a formula is text, not {type(formula).__name__}")
    if len(formula) > MAX_LENGTH:
        raise FormulaError(
            f"formula is {len(formula)} characters long; the limit is {MAX_LENGTH}"
        )
    for column, char in enumerate(formula):
        # The formula is quoted in the generated file's header and docstring: no
        # comment, line break or control character may ride along.
        if char == "#" or not char.isprintable():
            raise FormulaError(f"character {char!r} is not allowed", formula, column)
    _check_nesting(formula)
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as error:
        column = (error.offset or 1) - 1
        raise FormulaError(f"{error.msg}", formula, column) from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError("formula is too deeply nested", formula, 0) from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise FormulaError(f"formula has {nodes} parts; the limit is {MAX_NODES}")
    expr = _Builder(formula.strip(), params or {}).expr(tree.body)
    _check_value(expr, formula)
    return expr


def _check_nesting(formula: str) -> None:
    depth = 0
    for column, char in enumerate(formula):
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise FormulaError(
                    f"formula nests deeper than {MAX_DEPTH} parentheses",
                    formula,
                    column,
                )
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(
                    "unbalanced parenthesis: ')' without '('", formula, column
                )
    if depth > 0:
        raise FormulaError(
            f"unbalanced parenthesis: {depth} '(' not closed",
            formula,
            formula.rfind("("),
        )


def _check_value(expr: sympy.Expr, formula: str) -> None:
    if expr.has(sympy.I):
        raise FormulaError(
            "formula is complex-valued (a root or log of a negative constant?)"
        )
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise FormulaError(
            "formula has an infinite or undefined constant (division by zero?)"
        )
    if not expr.has(X):
        raise FormulaError(f"formula {formula.strip()!r} does not depend on x")


def _class_name(name: object) -> str:
    try:
        check_name("layer name", name)
    except ValueError as error:
        raise FormulaError(str(error)) from None
    if name[0].isupper():
        return name
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _check_params(params: dict[str, float], learnable: list[str]) -> None:
    for p, value in params.items():
        try:
            check_name("parameter name", p)
        except ValueError as error:
            raise FormulaError(str(error)) from None
        if p in RESERVED or _TEMPORARY.fullmatch(p):
            raise FormulaError(f"parameter name {p!r} is reserved; choose another")
        if "d" + p in params:
            raise FormulaError(f"parameter names {p!r} and {'d' + p!r} would clash")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FormulaError(f"parameter {p!r} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise FormulaError(f"parameter {p!r} must be finite, not {value!r}")
    unknown = [p for p in learnable if p not in params]
    if unknown:
        raise FormulaError(
            f"learnable {', '.join(map(repr, unknown))} is not a parameter; "
            f"parameters: {', '.join(params) or 'none'}"
        )


class _Builder:
    """Builds SymPy from an allowlisted ast, one node type per method."""

    def __init__(self, source: str, params: Mapping[str, float]) -> None:
        self.source = source
        self.names = {"x": X, **CONSTANTS, **{p: param_symbol(p) for p in params}}

    def fail(self, message: str, node: ast.AST) -> FormulaError:
        return FormulaError(message, self.source, getattr(node, "col_offset", 0))

    def expr(self, node: ast.AST) -> sympy.Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.expr(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand)
            raise self.fail(f"operator {_describe(node.op)} is not allowed", node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Compare):
            raise self.fail("a comparison is only allowed as where()'s condition", node)
        raise self.fail(
            f"{_NODE_NAMES.get(type(node), type(node).__name__)} not allowed", node
        )

    def constant(self, node: ast.Constant) -> sympy.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            raise self.fail(f"{value!r} is not a number", node)
        if isinstance(value, complex):
            raise self.fail(f"complex constant {value!r} is not allowed", node)
        if (
            isinstance(value, int)
            and value.bit_length() > 1000
            or abs(value) > MAX_MAGNITUDE
        ):
            raise self.fail("constant is too large", node)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(f"constant {value!r} is not finite", node)
            return sympy.Rational(repr(value))  # the decimal as written, exactly
        return sympy.Integer(value)

    def name(self, node: ast.Name) -> sympy.Expr:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in FUNCTIONS:
            raise self.fail(
                f"{node.id!r} is a function; call it as {node.id}(...)", node
            )
        close = difflib.get_close_matches(node.id, [*self.names, *FUNCTIONS], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        defined = ", ".join(self.names)
        raise self.fail(
            f"unknown name {node.id!r}{hint} (defined: {defined}); a parameter is "
            f"given with --param {node.id}=VALUE (params= in Python)",
            node,
        )

    def binop(self, node: ast.BinOp) -> sympy.Expr:
        op = type(node.op)
        if op not in _OPERATORS:
            hint = "; for a power write ** (x**2)" if op is ast.BitXor else ""
            raise self.fail(f"operator {_describe(node.op)} is not allowed{hint}", node)
        left, right = self.expr(node.left), self.expr(node.right)
        if op is ast.Add:
            return left + right
        if op is ast.Sub:
            return left - right
        if op is ast.Mult:
            return left * right
        if op is ast.Div:
            if right == 0:
                raise self.fail("division by zero", node)
            return left / right
        return self.power(left, right, node)

    def power(
        self, base: sympy.Expr, exponent: sympy.Expr, node: ast.AST
    ) -> sympy.Expr:
        if exponent.is_number:
            if not exponent.is_real:
                raise self.fail("complex exponent", node)
            if abs(float(exponent)) > MAX_EXPONENT:
                raise self.fail(
                    f"exponent {exponent} is too large (limit {MAX_EXPONENT})", node
                )
        if base.is_number and exponent.is_number:
            magnitude = abs(float(exponent)) * math.log10(max(abs(float(base)), 1e-300))
            if magnitude > 300:
                raise self.fail("constant is too large", node)
            if base == 0 and exponent.is_negative:
                raise self.fail("division by zero", node)
        return base**exponent

    def call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only the listed functions may be called", node)
        name = node.func.id
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, FUNCTIONS, n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"the functions are {', '.join(sorted(FUNCTIONS))}"
            )
            raise self.fail(f"unknown function {name!r}; {hint}", node.func)
        if node.keywords:
            raise self.fail(f"{name}() takes no keyword arguments", node)
        arity, builder = FUNCTIONS[name]
        count = len(node.args)
        if (arity is None and count < 2) or (arity is not None and count != arity):
            wanted = "two or more" if arity is None else str(arity)
            noun = "argument" if wanted == "1" else "arguments"
            raise self.fail(f"{name}() takes {wanted} {noun}, not {count}", node)
        if name == "where":
            condition = self.condition(node.args[0])
            a, b = self.expr(node.args[1]), self.expr(node.args[2])
            return sympy.Piecewise((a, condition), (b, True))
        return builder(*(self.expr(a) for a in node.args))

    def condition(self, node: ast.AST) -> sympy.Basic:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            left, right = self.condition(node.left), self.condition(node.right)
            return (
                sympy.And(left, right)
                if isinstance(node.op, ast.BitAnd)
                else sympy.Or(left, right)
            )
        if not isinstance(node, ast.Compare):
            raise self.fail(
                "where()'s first argument must be a comparison such as x > 0", node
            )
        terms = [self.expr(node.left), *(self.expr(c) for c in node.comparators)]
        relations = []
        for op, lhs, rhs in zip(node.ops, terms, terms[1:], strict=False):
            if type(op) not in _COMPARISONS:
                raise self.fail(
                    f"comparison {_describe(op)} is not allowed (use < <= > >=)", node
                )
            relations.append(sympy.Rel(lhs, rhs, _COMPARISONS[type(op)]))
        result = sympy.And(*relations)
        if result in (sympy.true, sympy.false):
            raise self.fail("where()'s condition does not depend on x", node)
        return result


def _describe(op: ast.AST) -> str:
    symbols = {
        ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&",
        ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
        ast.Invert: "~", ast.Not: "not", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
        ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    }  # fmt: skip
    return repr(symbols.get(type(op), type(op).__name__))
