"""SymPy expressions to NumPy source that reads as if written by hand.

`LayerPrinter` subclasses SymPy's `NumPyPrinter` and overrides only what reads
badly or runs slowly in stock output: numbers become Python float literals (NumPy
treats them as weak, so float32 stays float32), integer powers become products,
Piecewise becomes nested ``np.where`` that lets NaN through, Max/Min become
``np.maximum``/``np.minimum``, and symgrad's stable functions become calls to the
helpers in `symgrad.targets.numpy_helpers`.  The readable printer
(`symgrad.targets.numpy_readable`) subclasses it; block kernels
(`symgrad.targets.numpy_kernels`) use it for operands and for the parts of a
formula that depend on parameters only.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence

import sympy
from sympy.logic.boolalg import to_nnf
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from .errors import FormulaError
from .functions import FUNCTIONS

#: Columns a generated line may use (ruff format's default).
LINE_LENGTH = 88
#: Integer powers up to this are written as repeated multiplication.
MAX_UNROLLED_POWER = 4


class Times(sympy.Function):
    """An unevaluated product a * (b) that keeps its grouping through CSE.

    SymPy flattens dout*(y*(1 - y)) into dout*y*(1 - y); backward reads better,
    and rounds like the hand-written layer, when the local gradient stays one factor.
    """

    nargs = 2


def root_factored(expr: sympy.Expr) -> sympy.Mul | None:
    """``c*u + b`` as ``(u + b/c)*c`` (unevaluated), where c > 0 and b/c is a
    float (and c not a power of two, for which c*u + b is exact there already):
    the sum is then exact near its root and rounds once after, where
    ``c*u + b`` cancels (Hardsigmoid's x/6 + 1/2 at x = -3 + 1e-15 lost 2e15
    ulps; (x + 3)/6 keeps them; Hardswish's slope x/3 + 1/2 is (x + 1.5)/3).
    None for any other expression."""
    if not isinstance(expr, sympy.Add) or len(expr.args) != 2:
        return None
    b, term = expr.as_coeff_Add()
    c, u = term.as_coeff_Mul()
    if not (b.is_Rational and b != 0 and c.is_Rational and c > 0 and c != 1):
        return None
    root = b / c
    if sympy.Rational(float(root)) != root or isinstance(u, sympy.Add):
        return None
    if math.frexp(float(c))[0] == 0.5:  # c*u is exact: so is c*u + b near -b/c
        return None
    return sympy.Mul(sympy.Add(u, root, evaluate=False), c, evaluate=False)


class UnprintableError(FormulaError):
    """An expression uses something generated NumPy code cannot express."""


class LayerPrinter(NumPyPrinter):
    """NumPy printer for layer bodies; ``names`` maps each symbol to its source name."""

    printmethod = "_symgrad_numpy"

    def __init__(self, names: Mapping[sympy.Symbol, str]) -> None:
        super().__init__(
            {"fully_qualified_modules": True, "allow_unknown_functions": False}
        )
        self.names = dict(names)
        self.helpers: set[str] = set()

    def _print(self, expr, **kwargs) -> str:
        text = super()._print(expr, **kwargs)
        if (
            isinstance(expr, (sympy.Function, sympy.Max, sympy.Min))
            and not isinstance(expr, Times)
            and expr.free_symbols
            and not self._varies(expr)
        ):
            # A NumPy function of parameters alone returns a float64 scalar, which
            # would upcast a float32 layer; a Python float is weak and does not.
            return f"float({text})"
        return text

    # -- names -------------------------------------------------------------------

    def fn(self, name: str) -> str:
        """The source name of NumPy's function ``name`` (``np.exp``); a printer
        for another framework maps the names to its own."""
        return f"np.{name}"

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            if register:
                self.module_imports["numpy"].add(fqn.split(".")[1])
            return self.fn(fqn[len("numpy.") :])
        return super()._module_format(fqn, register)

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        try:
            return self.names[expr]
        except KeyError:
            raise UnprintableError(f"no name for symbol {expr}") from None

    _print_Dummy = _print_Symbol

    # -- numbers -----------------------------------------------------------------

    def _print_Float(self, expr: sympy.Float) -> str:
        return _float_literal(float(expr))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return _float_literal(expr.p / expr.q)

    def _print_Integer(self, expr: sympy.Integer) -> str:
        return _float_literal(float(expr))

    _print_Half = _print_Rational
    _print_One = _print_Integer
    _print_Zero = _print_Integer
    _print_NegativeOne = _print_Integer

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return _float_literal(float(expr))

    def _print_Pi(self, expr: sympy.Expr) -> str:
        return _float_literal(float(expr))

    def _print_NaN(self, expr: sympy.Expr) -> str:
        raise UnprintableError("the expression is undefined (nan)")

    def _print_ComplexInfinity(self, expr: sympy.Expr) -> str:
        raise UnprintableError("the expression is infinite (division by zero)")

    _print_Infinity = _print_ComplexInfinity
    _print_NegativeInfinity = _print_ComplexInfinity

    def _print_ImaginaryUnit(self, expr: sympy.Expr) -> str:
        raise UnprintableError("the expression is complex")

    # -- arithmetic --------------------------------------------------------------

    def _print_Add(self, expr: sympy.Add, order: str | None = None) -> str:
        factored = root_factored(expr)
        if factored is not None:
            return self._print_Mul(factored)
        # Positive terms first, so 1 - a*y**2 reads that way, not -a*y**2 + 1.
        terms = expr.as_ordered_terms()
        terms = [t for t in terms if not _negative(t)] + [
            t for t in terms if _negative(t)
        ]
        prec = PRECEDENCE["Add"]
        text = self.parenthesize(terms[0], prec)
        for term in terms[1:]:
            if _negative(term):
                text += " - " + self.parenthesize(-term, prec)
            else:
                text += " + " + self.parenthesize(term, prec)
        return text

    def _print_Mul(self, expr: sympy.Mul) -> str:
        coeff, _ = expr.as_coeff_Mul()
        if coeff.is_negative:
            return "-" + self.parenthesize(-expr, PRECEDENCE["Mul"], strict=True)
        numerator, denominator = [], []
        for factor in expr.as_ordered_factors():
            base, exponent = factor.as_base_exp()
            if reciprocal_power(factor):
                numerator.append(factor)
            elif exponent.is_Number and exponent.is_negative and factor.is_Pow:
                denominator.append(base ** (-exponent))
            elif factor.is_Rational and factor.p == 1 and factor.q & (factor.q - 1):
                # 1/3: divide, which is exact; 1/2, 1/4 stay factors in front, so
                # 0.5 * x * g cannot overflow where x * g / 2.0 would.
                denominator.append(sympy.Integer(factor.q))
            else:
                numerator.append(factor)
        prec = PRECEDENCE["Mul"]
        top = " * ".join(self.parenthesize(f, prec, strict=True) for f in numerator)
        top = top or self._one()
        if not denominator:
            return top
        # Always parenthesised (format_expression drops what is redundant): an
        # unrolled power prints as a product, and a / u * u is not a / (u * u).
        bottom = " * ".join(f"({self._print(f)})" for f in denominator)
        if len(denominator) > 1:
            bottom = f"({bottom})"
        return f"{top} / {bottom}"

    def _one(self) -> str:
        """1 as this printer writes numbers (of the arrays' type, where a
        printer computes in it: a float64 1.0 there would widen the rest)."""
        return self._print(sympy.Float(1.0))

    def _print_Pow(self, expr: sympy.Pow, rational: bool = False) -> str:
        base, exponent = expr.args
        prec = PRECEDENCE["Mul"]
        if exponent == 2 and not base.is_Atom:
            # A sum squared: one ufunc pass, and the sum is computed once.
            return f"{self.fn('square')}({self._print(base)})"
        if reciprocal_power(expr):
            # 1/u**n as (1/u)**n: u**n overflows where the quotient is finite.
            inverse = sympy.Pow(base, -1, evaluate=False)
            return self._print(sympy.Pow(inverse, -exponent, evaluate=False))
        if exponent.is_Integer and 0 < abs(exponent) <= MAX_UNROLLED_POWER:
            product = " * ".join([self.parenthesize(base, prec)] * int(abs(exponent)))
            if exponent > 0:
                return product
            return (
                f"{self._one()} / {product if abs(exponent) == 1 else f'({product})'}"
            )
        if exponent == sympy.S.Half:
            return f"{self.fn('sqrt')}({self._print(base)})"
        if exponent == -sympy.S.Half:
            return f"{self._one()} / {self.fn('sqrt')}({self._print(base)})"
        if (
            exponent.is_Rational
            and exponent.q == 2
            and abs(exponent.p) <= 2 * MAX_UNROLLED_POWER
        ):
            # u**(3/2) -> u * sqrt(u): one sqrt instead of a general power.
            whole = sympy.Pow(base, (abs(exponent.p) - 1) // 2, evaluate=False)
            text = f"{self._print(whole)} * {self.fn('sqrt')}({self._print(base)})"
            return text if exponent > 0 else f"{self._one()} / ({text})"
        if base == sympy.E:
            return f"{self.fn('exp')}({self._print(exponent)})"
        pow_prec = PRECEDENCE["Pow"]
        base_text = self.parenthesize(base, pow_prec)
        return f"{base_text} ** {self.parenthesize(exponent, pow_prec)}"

    # -- piecewise and logic ------------------------------------------------------

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        branches = _nan_passing_order(expr, self._varies)
        text = self._print(branches[-1][0])
        for value, cond in reversed(branches[:-1]):
            where = self.fn("where")
            text = f"{where}({self._print(cond)}, {self._print(value)}, {text})"
        return text

    def _varies(self, expr: sympy.Expr) -> bool:
        """Whether an expression depends on an array (not only on parameters)."""
        return any(
            not self.names.get(s, "").startswith("self.") for s in expr.free_symbols
        )

    def _print_Relational(self, expr: sympy.core.relational.Relational) -> str:
        expr = self._solved_for_array(expr)
        prec = PRECEDENCE["Relational"]
        lhs = self.parenthesize(expr.lhs, prec)
        rhs = self.parenthesize(expr.rhs, prec)
        return f"{lhs} {expr.rel_op} {rhs}"

    def _solved_for_array(self, rel):
        """lambd < -x reads x < -lambd: the array alone on the left where the
        relation is linear in it with a numeric coefficient."""
        arrays = [s for s in rel.free_symbols if self._varies(s)]
        if len(arrays) != 1:
            return rel
        (v,) = arrays
        difference = sympy.expand(rel.lhs - rel.rhs)
        coefficient = difference.coeff(v)
        if (
            not coefficient.is_number
            or coefficient == 0
            or (difference - coefficient * v).has(v)
        ):
            return rel
        bound = -(difference - coefficient * v) / coefficient
        op = rel.rel_op if coefficient > 0 else rel.reversed.rel_op
        return sympy.Rel(v, bound, op, evaluate=False)

    def _print_And(self, expr: sympy.And) -> str:
        return " & ".join(f"({self._print(a)})" for a in _sorted_args(expr))

    def _print_Or(self, expr: sympy.Or) -> str:
        return " | ".join(f"({self._print(a)})" for a in _sorted_args(expr))

    def _print_Not(self, expr: sympy.Not) -> str:
        return f"~({self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr: sympy.Basic) -> str:
        return "True"

    def _print_BooleanFalse(self, expr: sympy.Basic) -> str:
        return "False"

    def _print_Times(self, expr: Times) -> str:
        prec = PRECEDENCE["Mul"]
        left, right = expr.args
        return f"{self.parenthesize(left, prec)} * {self.parenthesize(right, prec)}"

    def _print_Abs(self, expr: sympy.Abs) -> str:
        return f"{self.fn('abs')}({self._print(expr.args[0])})"

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._nested(self.fn("maximum"), expr.args)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._nested(self.fn("minimum"), expr.args)

    def _nested(self, func: str, args: Sequence[sympy.Expr]) -> str:
        ordered = sorted(
            args, key=lambda a: a.is_number
        )  # arrays first, constants last
        text = self._print(ordered[0])
        for arg in ordered[1:]:
            text = f"{func}({text}, {self._print(arg)})"
        return text

    # -- functions -----------------------------------------------------------------

    def _print_Function(self, expr: sympy.Function) -> str:
        name = type(expr).__name__
        if name in FUNCTIONS:
            self.helpers.add(f"_{name}")
            return f"_{name}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    def _print_array_only(self, expr) -> str:
        # Clamps guard arrays; the target printers compute them.
        raise UnprintableError(f"{type(expr).__name__} applies to arrays only")

    _print_clip = _print_finite = _print_tame = _print_array_only

    def _print_erf(self, expr: sympy.erf) -> str:
        self.helpers.add("_erf")
        return f"_erf({self._print(expr.args[0])})"

    def _print_erfc(self, expr: sympy.erfc) -> str:
        self.helpers.add("_erfc")
        return f"_erfc({self._print(expr.args[0])})"

    def _print_scaled_erfc(self, expr) -> str:
        """erfc(scale*u) as _erfc(u, scale, square): the helper squares u."""
        self.helpers.add("_erfc")
        return f"_erfc({', '.join(self._print(a) for a in expr.args)})"

    def _print_scaled(self, expr) -> str:
        """A scaled argument (functions.scaled): its overflow to +-inf is its
        rounding, not an error."""
        u, p, inverse = expr.args
        helper = "_quotient" if inverse else "_scaled"
        self.helpers.add(helper)
        return f"{helper}({self._print(u)}, {self._print(p)})"

    def _print_exp_once(self, expr) -> str:
        """exp, printed as exp (functions.exp_once only keeps SymPy from
        merging its powers into new calls)."""
        return self._print(sympy.exp(expr.args[0]))

    def _print_tail_product(self, expr) -> str:
        """factor*rest, right where the factor is subnormal (functions.tail_product)."""
        factor, rest, exponent, scale = expr.args[:4]
        self.helpers.add("_tail_product")
        arguments = [self._print(a) for a in (factor, rest, exponent)]
        if scale != 1:
            arguments.append(self._print(sympy.Float(scale)))
        return f"_tail_product({', '.join(arguments)})"

    def _print_minus_root(self, expr) -> str:
        """u - r as ((u - hi) - mid) - lo, in that order (functions.minus_root)."""
        u, *parts = expr.args
        result = self._print(u)
        for part in parts:
            value = float(part)
            if value != 0:
                sign = "-" if value > 0 else "+"
                result = f"({result} {sign} {_float_literal(abs(value))})"
        return result

    def _print_nearest(self, expr) -> str:
        """u to the nearest multiple of a power-of-2 step, exactly."""
        u, step = expr.args
        scale = self._print(sympy.Float(1 / step))
        return f"{self.fn('rint')}({scale} * {self._print(u)}) / {scale}"

    def _print_not_supported(self, expr: sympy.Basic) -> str:
        raise UnprintableError(f"NumPy has no function for {type(expr).__name__}")


def _negative(term: sympy.Expr) -> bool:
    return term.as_coeff_Mul()[0].is_negative is True


def _float_literal(value: float) -> str:
    """The shortest round-trip literal, spelled as ruff format spells it (1.2e18)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise UnprintableError(f"constant {value} is not finite")
    return repr(value).replace("e+", "e")


def _sorted_args(expr: sympy.Basic) -> list[sympy.Basic]:
    return sorted(expr.args, key=sympy.default_sort_key)


def _nan_passing_order(expr, varies):
    """Branches ordered so that a NaN input reaches a branch that depends on it.

    NaN fails every comparison, so it lands in the last (default) branch; if that
    branch is a constant, ``np.where(x > 0, x, 0.0)`` would turn NaN into 0.  Here
    the conditions are made exclusive and the last branch that depends on the
    input becomes the default, so NaN in gives NaN out.
    """
    args = [(e, c) for e, c in expr.args]
    default_expr = args[-1][0]
    compares = any(c.atoms(sympy.core.relational.Relational) for _, c in args)
    if not compares or varies(default_expr) or not any(varies(e) for e, _ in args):
        return args
    exclusive, earlier = [], []
    for e, c in args:
        # Negations pushed into the relations (x <= 0, not ~(x > 0)): NaN fails
        # both, where ~(NaN > 0) would be True.
        condition = sympy.And(c, *[sympy.Not(p) for p in earlier])
        exclusive.append((e, to_nnf(condition, simplify=False)))
        earlier.append(c)
    fallback = max(i for i, (e, _) in enumerate(exclusive) if varies(e))
    ordered = [b for i, b in enumerate(exclusive) if i != fallback]
    return [*ordered, (exclusive[fallback][0], sympy.true)]


def floats_for_constants(expr: sympy.Basic) -> sympy.Basic:
    """Irrational constants (sqrt(2), pi, log(2)...) as Float literals.

    Printed as np.sqrt(2.0) they would be NumPy float64 scalars, which turn a
    float32 layer into float64; a Python float literal is weak and does not.
    """
    return expr.replace(
        lambda e: (
            isinstance(e, sympy.Expr)
            and e.is_number
            and not e.is_Rational
            and not e.is_Float
            and e.is_real
        ),
        lambda e: sympy.Float(float(e)),
    )


_SIMPLE_POWER = re.compile(r"(?<![\w.)\]])([\w.]+) \*\* ([\w.]+)(?![\w(\[])")


def format_expression(source: str) -> str:
    """Canonical spacing and parentheses, as ruff format writes them.

    The printed source is parsed (never evaluated) and unparsed, then powers of
    simple operands lose their spaces (``x**0.5``) and exponents their plus sign
    (``1e18``), as ruff format does.
    """
    text = ast.unparse(ast.parse(source, mode="eval"))
    text = re.sub(r"(\d)e\+(\d)", r"\1e\2", text)
    return _SIMPLE_POWER.sub(r"\1**\2", text)


def reciprocal_power(factor: sympy.Basic) -> bool:
    """u**-n for an integer n >= 2: printed as (1/u)**n, since u**n overflows
    (softsign's 1/(1 + x)**2 at x = 1e200) where 1/u**n is finite."""
    return factor.is_Pow and factor.exp.is_Integer and factor.exp <= -2
