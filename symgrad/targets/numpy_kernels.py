"""Block kernels: SymPy assignments as NumPy calls that write into buffers.

A generated layer evaluates its formulas one cache-sized block at a time
(``_map_blocks`` in `symgrad.targets.numpy_fast_helpers`).  Each block's kernel computes with
``out=`` into a few scratch buffers that `_map_blocks` hands it, so the hot loop
allocates nothing and makes exactly one pass over the block per operation:

    np.subtract(1.0, y, out=t0)
    np.multiply(y, t0, out=t0)
    np.multiply(dout, t0, out=dx)

This module is the compiler from expressions to those lines.  Common
subexpressions are computed once (SymPy's ``cse``); an operand that is not needed
afterwards is overwritten in place; integer powers become ``np.square`` and
products; a select on a cached mask is a multiplication.  Parts that depend on
parameters only are printed as scalar expressions by `symgrad.printing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy
from sympy.logic.boolalg import to_nnf

from ..printing import (
    LINE_LENGTH,
    LayerPrinter,
    Times,
    UnprintableError,
    _nan_passing_order,
    _negative,
    floats_for_constants,
    format_expression,
    reciprocal_power,
    root_factored,
)
from ..rewrite import _explosive, _interval
from .numpy_readable import table_name

#: SymPy function -> the NumPy ufunc that computes it elementwise.
UFUNCS: dict[type, str] = {
    sympy.exp: "np.exp",
    sympy.log: "np.log",
    sympy.Abs: "np.abs",
    sympy.sign: "np.sign",
    sympy.sin: "np.sin",
    sympy.cos: "np.cos",
    sympy.tan: "np.tan",
    sympy.sinh: "np.sinh",
    sympy.cosh: "np.cosh",
    sympy.tanh: "np.tanh",
    sympy.asin: "np.arcsin",
    sympy.acos: "np.arccos",
    sympy.atan: "np.arctan",
    sympy.asinh: "np.arcsinh",
    sympy.acosh: "np.arccosh",
    sympy.atanh: "np.arctanh",
}

#: symgrad function name -> (helper, scratch buffers it needs besides ``out``).
#: A helper with scratch reads its argument after writing ``out``, so the two
#: must be different buffers.
HELPERS: dict[str, tuple[str, int]] = {
    "sigmoid": ("_sigmoid_into", 0),
    "softplus": ("_softplus_into", 2),
    "log1p": ("_log1p_into", 1),
    "expm1": ("_expm1_into", 1),
    "erfc": ("_erfc_into", 4),
    "erf": ("_erf_into", 5),
}

#: ufunc -> the operator whose augmented assignment calls it in place.
_AUGMENTED = {"np.add": "+", "np.subtract": "-", "np.multiply": "*", "np.divide": "/"}

_RELATIONS = {
    ">": "np.greater",
    ">=": "np.greater_equal",
    "<": "np.less",
    "<=": "np.less_equal",
    "==": "np.equal",
    "!=": "np.not_equal",
}


@dataclass
class Kernel:
    """The body of one block kernel and the scratch buffers it uses."""

    lines: list[str]
    floats: tuple[str, ...]
    bools: tuple[str, ...]
    helpers: set[str] = field(default_factory=set)
    results: list[str] = field(default_factory=list)


@dataclass
class _Operand:
    """A value an operation can read: a name or literal, and the scratch buffers
    that hold it (freed when it dies); ``writable`` if it may be overwritten."""

    text: str
    slots: tuple[str, ...] = ()
    writable: bool = False


def emit_kernel(
    assignments: Sequence[tuple[str, sympy.Expr]],
    names: Mapping[sympy.Symbol, str],
    arrays: Iterable[sympy.Symbol],
    *,
    results: Iterable[str] = (),
    tables: dict[tuple[float, ...], str] | None = None,
) -> Kernel:
    """Lines computing each ``(target, expr)`` into the output array ``target``.

    ``names`` maps every symbol to its source name; ``arrays`` are the symbols that
    are blocks of arrays (the rest are scalars, such as parameters).  A target
    named in ``results`` is not an array but a value the kernel returns: it is
    computed into scratch and its sum over the block is returned.  ``tables``
    collects coefficient tables (coefficients -> class attribute), shared with
    the layer's other passes.
    """
    results = set(results)
    exprs = [floats_for_constants(e) for _, e in assignments]
    arrays = set(arrays)

    def varies(e: sympy.Basic) -> bool:
        return bool(e.free_symbols & arrays)

    # Branch order is fixed before cse, which may hide a condition behind a
    # symbol; comparisons get the array alone on the left, so that cse sees the
    # mask's x >= -lambd and a select's lambd >= -x as one.
    solved = LayerPrinter(names)._solved_for_array
    exprs = [
        e.replace(
            lambda r: (
                isinstance(r, sympy.core.relational.Relational)
                and r.rel_op not in ("==", "!=")
            ),
            solved,
        ).replace(
            lambda p: isinstance(p, sympy.Piecewise),
            lambda p: sympy.Piecewise(*_nan_passing_order(p, varies)),
        )
        for e in exprs
    ]
    symbols = sympy.numbered_symbols("_cse", real=True)
    replacements, reduced = sympy.cse(
        exprs, symbols=symbols, optimizations=None, order="canonical"
    )
    emitter = _Emitter(dict(names), arrays, {} if tables is None else tables)
    for symbol, value in replacements:
        emitter.define(symbol, value)
    returned = []
    for (target, _), expr in zip(assignments, reduced, strict=True):
        if target in results:
            operand = emitter.value(expr)
            returned.append(f"float(np.sum({operand.text}, dtype=np.float64))")
        else:
            emitter.assign(target, expr)
    return Kernel(
        lines=emitter.lines,
        floats=tuple(emitter.pools["f"].names),
        bools=tuple(emitter.pools["b"].names),
        helpers=emitter.printer.helpers | emitter.helpers,
        results=returned,
    )


class _Pool:
    """Scratch buffers of one kind (t: float, b: bool), reused once free."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []
        self.free: list[str] = []

    def take(self) -> str:
        if self.free:
            return self.free.pop(0)
        name = f"{self.prefix}{len(self.names)}"
        self.names.append(name)
        return name

    def give(self, name: str) -> None:
        if name not in self.free:
            self.free.append(name)
            self.free.sort(key=lambda n: int(n[len(self.prefix) :]))


class _Emitter:
    def __init__(
        self,
        names: dict[sympy.Symbol, str],
        arrays: set,
        tables: dict[tuple[float, ...], str],
    ) -> None:
        self.names = names
        self.arrays = arrays
        self.tables = tables
        self.printer = LayerPrinter(names)
        self.lines: list[str] = []
        self.helpers: set[str] = set()
        self.pools = {"f": _Pool("t"), "b": _Pool("b")}
        self.kept: dict[sympy.Symbol, _Operand] = {}
        # What each kept subexpression stands for, in the original symbols.
        self.meanings: dict[sympy.Symbol, sympy.Basic] = {}
        self.locals = 0

    # -- statements ------------------------------------------------------------------

    def define(self, symbol: sympy.Symbol, value: sympy.Expr) -> None:
        """A common subexpression: computed once, kept for the whole kernel."""
        if not self._varies(value):
            name = f"s{self.locals}"
            self.locals += 1
            self.emit(f"{name} = {self.scalar(value)}")
            self.names[symbol] = self.printer.names[symbol] = name
            return
        operand = self.value(value)
        self.arrays.add(symbol)
        self.kept[symbol] = operand
        self.meanings[symbol] = value.xreplace(self.meanings)
        self.names[symbol] = self.printer.names[symbol] = operand.text

    def assign(self, target: str, expr: sympy.Expr) -> None:
        operand = self.value(expr, dest=target)
        if operand.text != target:
            self.emit(f"np.copyto({target}, {operand.text})")
        self.release(operand)

    def emit(self, line: str) -> None:
        self.lines.extend(fitted(line))

    def call(self, function: str, args: Sequence[str], out: str) -> None:
        operator = _AUGMENTED.get(function)
        if operator and len(args) == 2 and args[0] == out:
            # out *= y: the same ufunc in place, without parsing out= (15% faster
            # on a batch of 5,000 elements).
            self.emit(f"{out} {operator}= {args[1]}")
            return
        self.emit(f"{function}({', '.join(args)}, out={out})")

    # -- operands --------------------------------------------------------------------

    def scalar(self, expr: sympy.Basic) -> str:
        """Source for a name, a number or an expression in parameters only."""
        return format_expression(self.printer.doprint(expr))

    def _varies(self, expr: sympy.Basic) -> bool:
        """Whether expr depends on an array (else it is a scalar expression)."""
        return bool(expr.free_symbols & self.arrays)

    def release(self, *operands: _Operand, keep: str | None = None) -> None:
        kept_slots = {s for o in self.kept.values() for s in o.slots}
        for operand in operands:
            for slot in operand.slots:
                if slot != keep and slot not in kept_slots:
                    self.pools["b" if slot.startswith("b") else "f"].give(slot)

    def destination(
        self, dest: str | None, operands: Sequence[_Operand], kind: str = "f"
    ) -> str:
        """``dest``, else the buffer of an operand that dies here, else a new one."""
        if dest is not None:
            return dest
        for operand in operands:
            if (
                operand.writable
                and operand.slots
                and operand.slots[0][0] == ("b" if kind == "b" else "t")
            ):
                return operand.slots[0]
        return self.pools[kind].take()

    def value(self, expr: sympy.Expr, dest: str | None = None) -> _Operand:
        """Compute expr; into ``dest`` if given (and it is an array expression)."""
        if expr in self.kept:
            return _Operand(self.kept[expr].text)
        if expr.is_Symbol or not self._varies(expr):
            return _Operand(self.scalar(expr))
        method = getattr(self, f"_{type(expr).__name__}", None)
        if method is None:
            for function, ufunc in UFUNCS.items():
                if isinstance(expr, function):
                    return self._ufunc(ufunc, expr.args[0], dest)
            name = type(expr).__name__
            if name in HELPERS:
                return self._helper(name, expr.args[0], dest)
            if isinstance(expr, sympy.core.relational.Relational):
                return self._relation(expr, dest)
            raise UnprintableError(f"NumPy has no function for {name}")
        return method(expr, dest)

    def _result(self, dest: str | None, slot: str) -> _Operand:
        if dest is not None:
            return _Operand(dest)
        return _Operand(slot, (slot,), writable=True)

    # -- arithmetic ------------------------------------------------------------------

    def _chain(
        self, ufunc: str, first: _Operand, rest: Sequence[tuple[str, _Operand]], dest
    ) -> _Operand:
        """first (op) rest[0] (op) rest[1] ..., accumulated in one buffer."""
        operands = [first, *(o for _, o in rest)]
        out = self.destination(dest, operands[:2])
        current = first.text
        for op, operand in rest:
            self.call(op or ufunc, [current, operand.text], out)
            current = out
        self.release(*operands, keep=out)
        return self._result(dest, out)

    def _Add(self, expr: sympy.Add, dest) -> _Operand:
        factored = root_factored(expr)
        if factored is not None:  # exact near its root (`root_factored`)
            return self._Mul(factored, dest)
        fixed = sympy.Add(*[t for t in expr.args if not self._varies(t)])
        terms = [t for t in expr.args if self._varies(t)]
        positive = [t for t in terms if not _negative(t)]
        negative = [-t for t in terms if _negative(t)]
        if fixed != 0:
            (positive if not _negative(fixed) else negative).append(
                fixed if not _negative(fixed) else -fixed
            )
        if not positive:
            inner = self.value(sympy.Add(*negative), dest)
            out = self.destination(dest, [inner])
            self.call("np.negative", [inner.text], out)
            self.release(inner, keep=out)
            return self._result(dest, out)
        positive = self._computed_first(positive, dest)
        values = [
            self.value(t, dest if i == 0 else None) for i, t in enumerate(positive)
        ]
        values += [self.value(t) for t in negative]
        ops = ["np.add"] * (len(positive) - 1) + ["np.subtract"] * len(negative)
        if len(values) == 1:
            return self._copy(values[0], dest)
        return self._chain(
            "np.add", values[0], list(zip(ops, values[1:], strict=True)), dest
        )

    def _Mul(self, expr: sympy.Mul, dest) -> _Operand:
        fixed, numerator, denominator = sympy.S.One, [], []
        for factor in expr.args:
            base, exponent = factor.as_base_exp()
            if not self._varies(factor):
                fixed *= factor
            elif reciprocal_power(factor):
                numerator.append(factor)  # (1/u)**n: see _Pow
            elif factor.is_Pow and exponent.is_Number and exponent.is_negative:
                denominator.append(base ** (-exponent))
            else:
                numerator.append(factor)
        if fixed == -1 and len(numerator) == 1 and not denominator:
            inner = self.value(numerator[0])
            out = self.destination(dest, [inner])
            self.call("np.negative", [inner.text], out)
            self.release(inner, keep=out)
            return self._result(dest, out)
        numerator = self._computed_first(numerator, dest)
        values = [
            self.value(f, dest if i == 0 else None) for i, f in enumerate(numerator)
        ]
        scale, divisor = sympy.fraction(fixed)
        if fixed.is_Rational and (scale != 1 or not int(divisor) & (int(divisor) - 1)):
            # 26829/200000 as one literal (26829*x would overflow float16); 1/4 is
            # exact as a factor; 1/3 stays a division, which is exact.
            scale, divisor = fixed, sympy.S.One
        if scale != 1:
            # The constant first, as written (0.5 * x * g): x * g could overflow.
            values.insert(min(1, len(values)), _Operand(self.scalar(scale)))
        if not values:
            values.append(_Operand("1.0"))
        steps = [("np.multiply", v) for v in values[1:]]
        steps += [("np.divide", self.value(d)) for d in denominator]
        if divisor != 1:
            steps.append(("np.divide", _Operand(self.scalar(divisor))))
        if not steps:
            return self._copy(values[0], dest)
        return self._chain("np.multiply", values[0], steps, dest)

    def _Times(self, expr: Times, dest) -> _Operand:
        left, right = expr.args
        if self._computed(right) and dest is not None:
            # The local gradient straight into the result, then times dout.
            inner = self.value(right, dest)
            return self._chain(
                "np.multiply", inner, [("np.multiply", self.value(left))], dest
            )
        left, right = self.value(left), self.value(right)
        return self._chain("np.multiply", left, [("np.multiply", right)], dest)

    def _computed(self, expr: sympy.Expr) -> bool:
        """Whether expr takes operations to compute (not a name or a kept value)."""
        return not expr.is_Atom and expr not in self.kept and self._varies(expr)

    def _computed_first(self, operands: list, dest) -> list:
        """The operands with one that must be computed first, when there is a
        destination: it is computed into the destination, which then
        accumulates the rest in place, so no scratch buffer is needed for it."""
        if dest is None:
            return operands
        for i, operand in enumerate(operands):
            if self._computed(operand):
                return [operand, *operands[:i], *operands[i + 1 :]]
        return operands

    def _Pow(self, expr: sympy.Pow, dest) -> _Operand:
        base, exponent = expr.args
        if base == sympy.E:
            return self._ufunc("np.exp", exponent, dest)
        if reciprocal_power(expr):
            # (1/u)**n, not 1/u**n: u**n overflows where the quotient is finite.
            inverse = self._Pow(sympy.Pow(base, -1, evaluate=False), None)
            return self._power(inverse, int(-exponent), dest)
        if exponent.is_Integer and exponent < 0:
            positive = self.value(base ** (-exponent))
            one = _Operand("1.0")
            return self._chain("np.divide", one, [("np.divide", positive)], dest)
        if exponent.is_Integer:
            return self._power(self.value(base), int(exponent), dest)
        if exponent == sympy.S.Half:
            return self._ufunc("np.sqrt", base, dest)
        if exponent.is_Rational and exponent.q == 2:
            whole = sympy.Pow(base, exponent - sympy.S.Half, evaluate=False)
            root = sympy.sqrt(base, evaluate=False)
            return self._Mul(sympy.Mul(whole, root, evaluate=False), dest)
        values = [self.value(base), self.value(exponent)]
        return self._chain("np.power", values[0], [("np.power", values[1])], dest)

    def _power(self, base: _Operand, n: int, dest) -> _Operand:
        """base**n by squaring and multiplying: never ``**``, which is far slower."""
        if n == 1:
            return self._copy(base, dest)
        out = dest if dest is not None else self.pools["f"].take()
        bits = bin(n)[3:]  # after the leading 1
        self.call("np.square", [base.text], out)
        if bits and bits[0] == "1":
            self.call("np.multiply", [out, base.text], out)
        for bit in bits[1:]:
            self.call("np.square", [out], out)
            if bit == "1":
                self.call("np.multiply", [out, base.text], out)
        self.release(base)
        return self._result(dest, out)

    def _copy(self, operand: _Operand, dest) -> _Operand:
        if dest is None or operand.text == dest:
            return operand
        self.emit(f"np.copyto({dest}, {operand.text})")
        self.release(operand)
        return _Operand(dest)

    # -- functions -------------------------------------------------------------------

    def _ufunc(self, ufunc: str, arg: sympy.Expr, dest) -> _Operand:
        inner = self.value(arg)
        out = self.destination(dest, [inner])
        self.call(ufunc, [inner.text], out)
        self.release(inner, keep=out)
        return self._result(dest, out)

    def _helper(
        self, name: str, arg: sympy.Expr, dest, options: Sequence[str] = ()
    ) -> _Operand:
        """The helper for function ``name`` of ``arg``, with its scratch buffers
        and any keyword ``options``."""
        helper, scratch = HELPERS[name]
        self.helpers.add(helper)
        inner = self.value(arg)
        out = (
            self.destination(dest, [inner])
            if scratch == 0
            else (dest if dest is not None else self.pools["f"].take())
        )
        extra = [self.pools["f"].take() for _ in range(scratch)]
        self.emit(f"{helper}({', '.join([inner.text, out, *extra, *options])})")
        for slot in extra:
            self.pools["f"].give(slot)
        self.release(inner, keep=out)
        return self._result(dest, out)

    def _scaled_erfc(self, expr, dest) -> _Operand:
        """erfc(scale*u) with the exact square (functions.scaled_erfc)."""
        u, scale, square = expr.args
        options = [f"scale={self.scalar(scale)}", f"square={self.scalar(square)}"]
        return self._helper("erfc", u, dest, options)

    def _scaled(self, expr, dest) -> _Operand:
        """A scaled argument (functions.scaled), with its overflow unreported."""
        u, p, inverse = expr.args
        self.helpers.add("_scaled_into")
        inner = self.value(u)
        out = self.destination(dest, [inner])
        factor = self.scalar(p)
        arguments = (
            [inner.text, factor, "divide=True"] if inverse else [inner.text, factor]
        )
        self.emit(f"_scaled_into({', '.join(arguments)}, out={out})")
        self.release(inner, keep=out)
        return self._result(dest, out)

    def _tail_product(self, expr, dest) -> _Operand:
        """factor*rest, then the elements where the factor is subnormal again
        from exp(exponent/2) (functions.tail_product, `_tail_product_into`)."""
        factor, rest, exponent, scale = expr.args[:4]
        others = self.value(rest)
        small = self.value(factor)
        out = dest if dest is not None else self.pools["f"].take()
        self.call("np.multiply", [small.text, others.text], out)
        tail = self.value(exponent)
        operands = [small, others, tail]
        helper = "_tail_product_into"
        if expr.polynomial is not None:  # its rounding corrected from P's table
            v, coefficients = expr.polynomial
            operands.append(self.value(v))
            helper = "_tail_product_of_polynomial_into"
        arguments = [operand.text for operand in operands]
        if expr.polynomial is not None:
            table = table_name(self.tables, expr.polynomial[1], "_POLYNOMIAL")
            arguments.append(f"self.{table}")
        if scale != 1:
            arguments.append(self.scalar(sympy.Float(scale)))
        self.helpers.add(helper)
        self.emit(f"{helper}({', '.join(arguments)}, out={out})")
        self.release(*operands, keep=out)
        return self._result(dest, out)

    def _sigmoid_of_polynomial(self, expr, dest) -> _Operand:
        """f(u), then the elements where |v| > beyond corrected for u's rounding
        from P's exact coefficients (`_sigmoid_of_polynomial_into`, ...)."""
        u, v, beyond = expr.args[:3]
        name = type(expr).__name__
        helper = f"_{name}_into"
        self.helpers.add(helper)
        argument = self.value(u)
        out = dest if dest is not None else self.pools["f"].take()
        if name == "sigmoid_of_polynomial":
            self.helpers.add("_sigmoid_into")
            self.emit(f"_sigmoid_into({argument.text}, {out})")
        else:
            self.call("np.exp", [argument.text], out)
        variable = self.value(v)
        table = table_name(self.tables, expr.coefficients, "_POLYNOMIAL")
        arguments = [argument.text, variable.text, f"self.{table}"]
        if beyond != 0:
            arguments.append(f"beyond={self.scalar(beyond)}")
        self.emit(f"{helper}({', '.join(arguments)}, out={out})")
        self.release(argument, variable, keep=out)
        return self._result(dest, out)

    _exp_of_polynomial = _sigmoid_of_polynomial

    def _nearest(self, expr, dest) -> _Operand:
        """u to the nearest multiple of a power-of-2 step: rint(u/step)*step."""
        u, step = expr.args
        inner = self.value(u)
        out = self.destination(dest, [inner])
        scale = self.scalar(1 / step)
        self.call("np.multiply", [inner.text, scale], out)
        self.call("np.rint", [out], out)
        self.emit(f"{out} /= {scale}")
        self.release(inner, keep=out)
        return self._result(dest, out)

    def _clip(self, expr, dest) -> _Operand:
        value, lower, upper = expr.args
        bounds = []
        if lower != -sympy.oo:
            bounds.append(f"lower={self.scalar(lower)}")
        if upper != sympy.oo:
            bounds.append(f"upper={self.scalar(upper)}")
        return self._clamp("_clip_into", value, bounds, dest)

    def _finite(self, expr, dest) -> _Operand:
        value, side = expr.args
        return self._clamp("_finite_into", value, [f"side={int(side)}"], dest)

    def _near_root(self, expr, dest) -> _Operand:
        """The sum everywhere, then (u - r)*P(s) on the elements in the
        window only (`_near_root_into`), its table a class attribute."""
        far, u = expr.args[:2]
        table = table_name(self.tables, expr.table, "_NEAR_ROOT")
        return self._then_near(far, u, "_near_root_into", [f"self.{table}"], dest)

    def _near_tail(self, expr, dest) -> _Operand:
        """The sum everywhere, then the series on the tail's elements only
        (`_near_tail_into`), its table a class attribute."""
        far, u = expr.args[:2]
        table = table_name(self.tables, expr.table, "_NEAR_TAIL")
        return self._then_near(far, u, "_near_tail_into", [f"self.{table}"], dest)

    def _near_zero(self, expr, dest) -> _Operand:
        """The sum everywhere, then the polynomial on the elements near 0 only
        (`_near_zero_into`), its coefficients a class attribute."""
        far, u, switch, order = expr.args[:4]
        table = table_name(self.tables, expr.coefficients, "_NEAR_ZERO")
        options = [repr(float(switch)), str(int(order)), f"self.{table}"]
        return self._then_near(far, u, "_near_zero_into", options, dest)

    def _then_near(self, far, u, helper: str, options: list[str], dest) -> _Operand:
        """far into the destination, then the helper overwrites the elements
        where u is near the point (a fitted polynomial, `symgrad.series`)."""
        self.helpers.add(helper)
        value = self.value(far, dest)
        out = self.destination(dest, [value])
        if value.text != out:
            self.emit(f"np.copyto({out}, {value.text})")
            self.release(value, keep=out)
        near = self.value(u)
        self.emit(f"{helper}({', '.join([near.text, *options])}, out={out})")
        self.release(near)
        return self._result(dest, out)

    def _tame(self, expr, dest) -> _Operand:
        value, degree = expr.args
        return self._clamp("_tame_into", value, [f"degree={int(degree)}"], dest)

    def _clamp(self, helper: str, value, options: list[str], dest) -> _Operand:
        """A clip that usually changes nothing returns its input, so its result
        gets a name of its own and is never overwritten in place."""
        self.helpers.add(helper)
        inner = self.value(value)
        out = self.pools["f"].take()
        name = f"c{self.locals}"
        self.locals += 1
        self.emit(f"{name} = {helper}({', '.join([inner.text, *options])}, out={out})")
        clamped = _Operand(name, (*inner.slots, out))
        return self._copy(clamped, dest) if dest is not None else clamped

    def _Max(self, expr, dest) -> _Operand:
        return self._extremum("np.maximum", expr.args, dest)

    def _Min(self, expr, dest) -> _Operand:
        clamp = _clamp_of(expr, self._varies)
        if clamp is not None:
            # min(max(x, a), b): one np.clip, where two extrema with their
            # filled buffers take four passes.
            value, low, high = clamp
            inner = self.value(value)
            out = self.destination(dest, [inner])
            bounds = f"{self.scalar(low)}, {self.scalar(high)}"
            self.emit(f"np.clip({inner.text}, {bounds}, out={out})")
            self.release(inner, keep=out)
            return self._result(dest, out)
        return self._extremum("np.minimum", expr.args, dest)

    def _extremum(self, ufunc: str, args, dest) -> _Operand:
        ordered = sorted(args, key=lambda a: not self._varies(a))  # arrays first
        values = [self.value(a) for a in ordered]
        for k, (arg, value) in enumerate(zip(ordered, values, strict=True)):
            if not self._varies(arg):
                # NumPy vectorises np.maximum of two arrays but not of an array and
                # a scalar: filling a buffer and comparing is about twice as fast.
                slot = self.pools["f"].take()
                self.emit(f"{slot}.fill({value.text})")
                values[k] = _Operand(slot, (slot,), writable=True)
        return self._chain(ufunc, values[0], [(ufunc, v) for v in values[1:]], dest)

    # -- selects and conditions ----------------------------------------------------------

    def _Piecewise(self, expr: sympy.Piecewise, dest) -> _Operand:
        if len(expr.args) == 2 and expr.args[0][1].is_Symbol:
            return self._on_mask(expr, dest)
        zero = self._zero_on_interval(expr)
        if zero is not None:
            return zero(dest)
        branches = expr.args  # in NaN-passing order already (see emit_kernel)
        default = self.value(branches[-1][0], dest=dest)
        if default.writable or default.text == dest:
            out = default.text
        else:
            out = dest if dest is not None else self.pools["f"].take()
            self.emit(f"np.copyto({out}, {default.text})")
            self.release(default)
        for value, condition in reversed(branches[:-1]):
            chosen = self.value(value)
            where = self.condition(condition)
            self.emit(f"np.copyto({out}, {chosen.text}, where={where.text})")
            self.release(chosen, where)
        return self._result(dest, out)

    def _zero_on_interval(self, expr: sympy.Piecewise):
        """0 where x lies in a bounded interval, g elsewhere (Hardshrink): g times
        the condition's negation, exact wherever g is finite on the interval (a
        select would mispredict a branch at every crossing).  A function that
        emits it, or None."""
        if len(expr.args) != 2 or expr.args[0][0] != 0:
            return None
        (_, condition), (g, _) = expr.args
        meaning = condition.xreplace(self.meanings).replace(
            lambda r: isinstance(r, sympy.core.relational.Relational),
            self.printer._solved_for_array,
        )
        arrays = sorted(meaning.free_symbols & self.arrays, key=str)
        if len(arrays) != 1 or _explosive(g.xreplace(self.meanings), arrays[0]):
            return None
        lower, upper = _interval(meaning, arrays[0])
        if lower is None or upper is None:
            return None

        def emit(dest):
            held = self.condition(condition)
            outside = self.destination(None, [held], "b")
            self.call("np.logical_not", [held.text], outside)
            selected = _Operand(outside, (outside,))
            return self._chain(
                "np.multiply", self.value(g), [("np.multiply", selected)], dest
            )

        return emit

    def _on_mask(self, expr: sympy.Piecewise, dest) -> _Operand:
        """A select on a cached bool mask, without a branch per element (a select
        mispredicts at every sign change of the input): a where b is 0 or a*g
        where b*g, for numbers a and b, as g times a factor of the mask."""
        (inside, mask), (outside, _) = expr.args
        g = sympy.S.One
        for candidate in (inside, outside):
            _, factors = candidate.as_coeff_mul()
            varying = sympy.Mul(*[f for f in factors if self._varies(f)])
            if varying != 1:
                g = varying
                break
        a, b = sympy.cancel(inside / g), sympy.cancel(outside / g)
        if self._varies(a) or self._varies(b):
            raise UnprintableError(f"cannot select {expr} by a mask")
        if g == 1:
            return self._mask_factor(mask, a, b, dest)
        if b == 0 or a == 0:
            # The branch where the mask holds (b = 0), or where it does not (a = 0),
            # times that condition, which is 1 there and 0 elsewhere.
            selected = self.condition(mask if b == 0 else sympy.Not(mask))
            chosen = _Operand(selected.text, selected.slots)
            branch = self.value(inside if b == 0 else outside)
            return self._chain("np.multiply", branch, [("np.multiply", chosen)], dest)
        factor = self._mask_factor(mask, a, b, None)
        return self._chain(
            "np.multiply", self.value(g), [("np.multiply", factor)], dest
        )

    def _mask_factor(self, mask, inside, outside, dest) -> _Operand:
        """mask*a + (not mask)*b: a where the mask holds, else b, exactly (each
        product is the constant or 0.0) and without a branch."""
        out = dest if dest is not None else self.pools["f"].take()
        negated = self.pools["b"].take()
        spare = self.pools["f"].take()
        self.call("np.multiply", [self.scalar(mask), self.scalar(inside)], out)
        self.call("np.logical_not", [self.scalar(mask)], negated)
        if outside == 1:  # adding a bool adds 1 where it holds
            self.call("np.add", [out, negated], out)
        else:
            self.call("np.multiply", [negated, self.scalar(outside)], spare)
            self.call("np.add", [out, spare], out)
        self.pools["b"].give(negated)
        self.pools["f"].give(spare)
        return self._result(dest, out)

    def _blend(self, expr, dest) -> _Operand:
        """c*a + (not c)*b: exact where both are finite (see functions.blend)."""
        condition, inside, outside = expr.args
        chosen = self.condition(condition)
        first = self.value(inside)
        out = self.destination(dest, [first])
        self.call("np.multiply", [first.text, chosen.text], out)
        self.release(first, keep=out)
        negated = self.destination(None, [chosen], "b")
        self.call("np.logical_not", [chosen.text], negated)
        second = self.value(outside)
        spare = self.destination(None, [second])
        self.call("np.multiply", [second.text, negated], spare)
        self.call("np.add", [out, spare], out)
        self.release(second, _Operand(negated, (negated,)), _Operand(spare, (spare,)))
        return self._result(dest, out)

    def condition(self, cond: sympy.Basic, dest: str | None = None) -> _Operand:
        cond = to_nnf(cond, simplify=False)
        if cond.is_Symbol or not self._varies(cond):
            return _Operand(self.scalar(cond))
        if isinstance(cond, sympy.core.relational.Relational):
            return self._relation(cond, dest)
        if isinstance(cond, (sympy.And, sympy.Or)):
            ufunc = "np.logical_and" if isinstance(cond, sympy.And) else "np.logical_or"
            parts = [
                self.condition(a) for a in sorted(cond.args, key=sympy.default_sort_key)
            ]
            out = self.destination(dest, parts[:2], "b")
            current = parts[0].text
            for part in parts[1:]:
                self.call(ufunc, [current, part.text], out)
                current = out
            self.release(*parts, keep=out)
            return self._result(dest, out)
        if isinstance(cond, sympy.Not):
            inner = self.condition(cond.args[0])
            out = self.destination(dest, [inner], "b")
            self.call("np.logical_not", [inner.text], out)
            self.release(inner, keep=out)
            return self._result(dest, out)
        raise UnprintableError(f"cannot evaluate the condition {cond}")

    def _relation(self, rel, dest) -> _Operand:
        rel = self.printer._solved_for_array(rel)
        left, right = self.value(rel.lhs), self.value(rel.rhs)
        out = dest if dest is not None else self.pools["b"].take()
        self.call(_RELATIONS[rel.rel_op], [left.text, right.text], out)
        self.release(left, right)
        if dest is not None:
            return _Operand(dest)
        return _Operand(out, (out,), writable=True)

    def _And(self, expr, dest) -> _Operand:
        return self.condition(expr, dest)

    _Or = _And
    _Not = _And


def _clamp_of(expr: sympy.Min, varies):
    """(x, a, b) for min(max(x, a), b) with bounds free of arrays, else None."""
    if len(expr.args) != 2:
        return None
    inner = [a for a in expr.args if isinstance(a, sympy.Max) and len(a.args) == 2]
    bound = [a for a in expr.args if not varies(a)]
    if len(inner) != 1 or len(bound) != 1:
        return None
    values = [a for a in inner[0].args if varies(a)]
    lows = [a for a in inner[0].args if not varies(a)]
    if len(values) != 1 or len(lows) != 1:
        return None
    return values[0], lows[0], bound[0]


def fitted(line: str, indent: int = 8) -> list[str]:
    """A call split over lines as ruff format splits it, when it is too long."""
    if indent + len(line) <= LINE_LENGTH or "(" not in line:
        return [line]
    head, _, rest = line.partition("(")
    inner = rest[: rest.rindex(")")]
    one = " " * 4 + inner
    if indent + len(one) <= LINE_LENGTH:
        return [f"{head}(", one, ")"]
    args = _split_arguments(inner)
    return [f"{head}(", *(" " * 4 + a + "," for a in args), ")"]


def _split_arguments(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts
