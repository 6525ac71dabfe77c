"""Fused CPU layers with numba: one loop per direction, over SIMD math.

The same `LayerFormulas` as the NumPy layers, with one more rewrite: exp-like
calls of one argument become one exp and a rational function of it where that
is exact (`symgrad.rewrite.one_exponential`: Mish takes one exp forward and one
backward, not 3 and 5 calls; a sigmoid or softplus left beside such an exp
takes it too, `from_shared_exponential`), noted in a comment.  Each pass is printed as the
body of an element function (`NumbaPrinter`: the readable printer on numbers,
with the vectorisable functions of `numba_helpers` for exp, log, tanh, sigmoid,
softplus ...), and one loop per direction calls it over the flattened arrays.
The loop releases the GIL, and from the class's ``parallel_from`` elements on
(`PARALLEL_WORK` over the element's exp-like calls) the layer runs it on one
part of the arrays per thread, from a pool whose idle threads sleep
(`numba_helpers._run`), not numba's ``prange``, whose OpenMP threads spin
after each loop and took the cores from NumPy's matrix products.  A loop reads each input
once and writes only the outputs and the arrays forward keeps for backward.
Under ``prefer="memory"`` a pass computes in its arrays' precision, as NumPy's
layers do (float32 in float32 arithmetic: twice the SIMD lanes), unless its
sums need an exact float64 path (exp of a polynomial that rounds: the `EXACT`
flag); where only its tail does (a product with a subnormal factor), the
tail's elements compute in float64.  Passes with such sums, and every pass
under ``prefer="accuracy"``, compute in float64 and round once where the loop
stores the result.  Loops compile on first use and are cached next to the module (``cache=True``).  The
class around them has the NumPy ``--fast`` layers' API: ``forward(x,
out=None)``, ``backward(dout, out=None)``, ``params`` and ``grads``.
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
from dataclasses import dataclass, replace

import sympy
from sympy.printing.numpy import NumPyPrinter

from ..budgets import attempt
from ..functions import near_root, near_tail, near_zero, softplus, tail_product
from ..layer import DOUT, LayerFormulas, comment_lines, local_name, snake_name
from ..model import MASK, X, Y
from ..printing import LayerPrinter, UnprintableError, _float_literal
from ..rewrite import exp_like_calls, for_fused_loops, from_shared_exponential
from ..sharing import S
from .framework_printer import FrameworkPrinter
from .numpy_readable import class_tables, print_pass, table_name

#: float32's smallest normal number: below it, `numba_helpers._tail_product`
#: computes a product from its factor's exponent.
_FLOAT32_TINY = 1.1754943508222875e-38

#: The element functions' flag: whether the loop stores float64 results, which
#: need products with subnormal factors and polynomial arguments of exp computed
#: exactly (`numba_helpers._tail_product`); float32 results computed in float64
#: do not.  A compile-time constant in each loop, so the other path is removed.
EXACT = "float64_out"

#: NumPy's function name (as the printers ask for it) -> the numba code's.
_FUNCTIONS = {
    "exp": "_exp",
    "log": "_log",
    "tanh": "_tanh",
    "maximum": "_maximum",
    "minimum": "_minimum",
    "where": "_where",
    "clip": "_clip",
    "abs": "abs",
    "sqrt": "np.sqrt",
    "square": "_square",
    "sign": "np.sign",
    "rint": "np.rint",
    "sin": "np.sin",
    "cos": "np.cos",
    "tan": "np.tan",
    "sinh": "np.sinh",
    "cosh": "np.cosh",
    "arcsin": "np.arcsin",
    "arccos": "np.arccos",
    "arctan": "np.arctan",
    "arcsinh": "np.arcsinh",
    "arccosh": "np.arccosh",
    "arctanh": "np.arctanh",
}


class NumbaPrinter(FrameworkPrinter):
    """The readable printer on numbers: statements of an element function, with
    the vectorisable helpers of `numba_helpers` as its functions (each computes
    in its argument's precision)."""

    calls = {"erf": "_erf", "erfc": "_erfc", "log1p": "_log1p", "expm1": "_expm1"}
    log_sigmoid = "_log_sigmoid"
    in_place = False
    #: A polynomial about a root is a function of the layer's
    #: (`near_root_function`), not its select written out.
    written_out = (near_zero, near_tail)

    def __init__(
        self, names, arrays, tables=None, *, table_prefix: str = "", loaded=()
    ) -> None:
        super().__init__(names, arrays, tables)
        #: Coefficient tables are module constants, named after the layer.
        self.table_prefix = table_prefix
        #: The symbols the element function reads from the cache.
        self.loaded = frozenset(loaded)

    def fn(self, name: str) -> str:
        try:
            function = _FUNCTIONS[name]
        except KeyError:
            raise UnprintableError(f"the numba target has no {name}") from None
        if function.startswith("_"):
            self.helpers.add(function)
        return function

    def _print_framework_call(self, expr: sympy.Function) -> str:
        self.helpers.add(self.calls[type(expr).__name__])
        return super()._print_framework_call(expr)

    def _table(self, coefficients: tuple[float, ...]) -> tuple[str, bool]:
        """(the module constant holding P's coefficients, whether it holds
        -P's): a polynomial and its negation share one table, so that one
        evaluation of it serves both (sigmoid(P) forward and sigmoid(-P)
        backward, where LLVM sees the same operations on the same values)."""
        negated = tuple(-c for c in coefficients)
        if negated in self.table_names and coefficients not in self.table_names:
            return self.table_names[negated], True
        name = f"{self.table_prefix}_POLYNOMIAL"
        return table_name(self.table_names, coefficients, name), False

    def _print_near_root(self, expr: near_root) -> str:
        """The layer's function for the fit (`near_root_function`), its table a
        module constant."""
        far, u = (self._print(a) for a in expr.args[:2])
        table = table_name(
            self.table_names, expr.table, f"{self.table_prefix}_NEAR_ROOT"
        )
        self.helpers |= {"_near_root", "_minus_root", "_horner_step"}
        return f"{table.lower()}({far}, {u})"

    def _print_sigmoid_of_polynomial(self, expr: sympy.Function) -> str:
        """f(u) for u = P(v): where the results are float64, the helper
        carries P's rounding into exp from P's exact coefficients."""
        helper = f"_{type(expr).__name__}"
        self.helpers.add(helper)
        u, v = (self._print(a) for a in expr.args[:2])
        table, negated = self._table(expr.coefficients)
        sign = ", -1.0" if negated else ""
        return f"{helper}({u}, {v}, {table}, {EXACT}{sign})"

    def _print_exp_of_polynomial(self, expr: sympy.Function) -> str:
        return self._print_sigmoid_of_polynomial(expr)

    def _print_tail_product(self, expr: sympy.Function) -> str:
        """The helper that computes a product with a subnormal factor from the
        factor's exponent (`numba_helpers._tail_product`): where the results
        are float64, or the factor comes from the cache, rounded to its dtype."""
        factor, rest, exponent, scale = expr.args[:4]
        arguments = [self._print(a) for a in (factor, rest, exponent)]
        if expr.polynomial is None:
            helper = "_tail_product"
        else:
            helper = "_tail_product_of_polynomial"
            v, coefficients = expr.polynomial
            table, negated = self._table(coefficients)
            if negated:
                raise UnprintableError("a negated polynomial as an exponent")
            arguments += [self._print(v), table]
        arguments.append(EXACT)
        if factor in self.loaded:
            arguments.append("cached=True")
        if scale != 1:
            arguments.append(f"scale={self._print(scale)}")
        self.helpers.add(helper)
        return f"{helper}({', '.join(arguments)})"

    def _print_sigmoid_from(self, expr: sympy.Function) -> str:
        """sigmoid(a) from exp(-|a|), computed already (`_sigmoid_from`)."""
        helper = f"_{type(expr).__name__}"
        self.helpers.add(helper)
        return f"{helper}({', '.join(self._print(a) for a in expr.args)})"

    _print_softplus_from = _print_sigmoid_from

    def _print_Mul(self, expr: sympy.Mul) -> str:
        coefficient, rest = expr.as_coeff_Mul()
        if coefficient == -1 and isinstance(rest, softplus):
            self.helpers.add(self.log_sigmoid)
        return super()._print_Mul(expr)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        """Nested selects: a product with a boolean (dout * ~mask) would be an
        integer operation on numbers."""
        return LayerPrinter._print_Piecewise(self, expr)

    def _print_Not(self, expr: sympy.Not) -> str:
        return f"not ({self._print(expr.args[0])})"

    def _print_And(self, expr: sympy.And) -> str:
        return " and ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr: sympy.Or) -> str:
        return " or ".join(f"({self._print(a)})" for a in expr.args)

    def _print_scaled_erfc(self, expr) -> str:
        """erfc(scale*u) as _erfc(u, scale, square): the helper squares u, not
        the rounded product (whose square would cost exp 2 z**2 ulps)."""
        return LayerPrinter._print_scaled_erfc(self, expr)

    def _print_finite(self, expr) -> str:
        self.helpers.add("_finite")
        u, side = expr.args
        return f"_finite({self._print(u)}, {int(side)})"

    def _print_tame(self, expr) -> str:
        self.helpers.add("_tame")
        u, degree = expr.args
        return f"_tame({self._print(u)}, {int(degree)})"

    def _print(self, expr, **kwargs) -> str:
        # Parameters are numbers in the element function: no float() needed.
        return NumPyPrinter._print(self, expr, **kwargs)


class InPrecisionPrinter(NumbaPrinter):
    """`NumbaPrinter` for a pass that computes in its arrays' precision: its
    numbers as ``_like(x, c)``, of the type of ``reference`` (the pass's first
    float argument), so that float32 arrays compute in float32 (a float64
    constant would make the whole expression float64), as NumPy's layers do.
    It also keeps an output form exact at its limit: SELU's cached float32 y =
    -1.7580993 meets the float32 constant, where in float64 the slope would be
    2e-8 instead of 0."""

    def __init__(self, *args, reference: str = "x", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reference = reference

    def _number(self, value: float) -> str:
        self.helpers.add("_like")
        return f"_like({self.reference}, {_float_literal(value)})"

    def _print_Float(self, expr) -> str:
        return self._number(float(expr))

    def _print_Rational(self, expr) -> str:
        return self._number(expr.p / expr.q)

    def _print_Integer(self, expr) -> str:
        return self._number(float(expr))

    _print_Half = _print_Rational
    _print_One = _print_Zero = _print_NegativeOne = _print_Integer


#: Elements times (1 + exp-like calls per element) from which the layer's loops
#: split over threads beat one loop, measured with `benchmarks/run.py --target
#: numba` on 2 cores (Intel Xeon, AVX-512): 524,288 elements for ReLU (no call);
#: 131,072 in float64 and 262,144 in float32 for sigmoid, tanh, SiLU (1),
#: softplus and Mish (2); 65,536 and 131,072 for GELU and GELU-tanh.  Each call
#: wakes a sleeping thread (tens of microseconds here); the more work an
#: element takes, the sooner that pays.  The rule takes float32's crossover,
#: up to 2x past float64's.
PARALLEL_WORK = 524_288


def parallel_from(calls: int) -> int:
    """`PARALLEL_WORK` / (1 + calls), rounded down to a power of 2."""
    return 1 << (PARALLEL_WORK // (1 + calls)).bit_length() - 1


def _for_fused_loops(assignments) -> tuple[tuple, tuple[str, ...]]:
    """A pass's assignments with exp-like calls merged where that is exact
    enough (`symgrad.rewrite.one_exponential`): in a fused loop a call costs
    far more than the arithmetic that replaces it.  With a note per merge for
    the element function's comments."""
    merged, notes = [], []
    for name, expr in assignments:
        rewritten, parts = for_fused_loops(expr)
        merged.append((name, rewritten))
        for part, argument in parts:
            a = argument if argument == X else sympy.Symbol("a")
            if a != X:
                notes.append(f"a = {sympy.sstr(argument)}")
            part = sympy.sstr(part.xreplace({argument: a}))
            notes.append(f"{part} = rational in exp(-|{a}|)")
    names = [name for name, _ in merged]
    shared = from_shared_exponential([expr for _, expr in merged])
    return tuple(zip(names, shared, strict=True)), tuple(dict.fromkeys(notes))


def _tail_note(node: near_tail | tail_product) -> str:
    """The comment on a tail written out: where, and the series' shape (or,
    for a product, how it is computed there)."""
    if isinstance(node, tail_product):
        return (
            "A product whose factor may be below float32's normal range: from "
            "the factor's exponent (_tail_product)."
        )
    m, b, coefficients = node.series()
    v = sympy.sstr(node.args[1])
    where = f"{v} {'<' if node.side < 0 else '>'} {node.switch!r}"
    power = "e" if m == 1 else f"e**{m}"
    exponent = sympy.sstr(b)
    if len(exponent) > 30:
        exponent = f"b({v})"  # a polynomial of long floats
    return (
        f"{where}: {power}*(c0 + c1*e + ...), e = exp({exponent}), "
        f"{len(coefficients)} terms (symgrad.tails)"
    )


@dataclass(frozen=True)
class Pass:
    """One direction: its element function, and the loop and call around it."""

    function: str  # the element function: _mish_forward_one
    loop: str  # the loop: _mish_forward
    arguments: tuple[str, ...]  # the element function's, numbers
    lines: tuple[str, ...]
    results: tuple[str, ...]
    loop_arguments: str  # "xs, beta, outs, ss": input arrays, numbers, outputs
    stores: str  # "outs[i], ss[i]"
    reads: str  # "xs[i], beta"
    tail_reads: str  # the same for the tail's element function
    size: str  # the first input array, whose size the loop runs to
    call: str  # the class's arguments to the loop: "_flat(x), self.beta, ..."
    notes: tuple[str, ...] = ()  # comment lines: the calls merged into one exp
    #: With a tail's series (`split_tails`): the element function with it
    #: (``function`` then has the sum in its place), and the condition, in
    #: the element function's arguments, for the elements that need it.
    tail_lines: tuple[str, ...] = ()
    in_tail: str = ""  # the tail's condition, as the comments give it
    in_tail_lines: tuple[str, ...] = ()  # the statements that test it
    in_tail_result: str = ""  # and what the test returns
    tail_notes: tuple[str, ...] = ()  # comment lines: each series' shape
    tail_takes: str = ""  # what the tail's elements take: "the series", ...
    block_notes: tuple[str, ...] = ()  # the comment on the loop over a block
    block_arguments: str = ""  # the loop's, each array cut to the block b
    picked_arguments: str = ""  # the loop's, on the gathered arrays
    input_arrays: tuple[str, ...] = ()  # the loop's inputs: "douts", "xs"
    result_arrays: tuple[str, ...] = ()  # the loop's results: "dxs"

    @property
    def tail_function(self) -> str:
        """The element function with the series: _mish_backward_tail."""
        return f"{self.loop}_tail"


def split_tails(
    assignments, loaded=()
) -> tuple[tuple, tuple[sympy.Basic, ...], list, frozenset]:
    """(the assignments with each tail's series replaced by its sum and each
    product with a subnormal factor by the plain product, the tails'
    conditions, the tails).  A fused loop that computed the series for every
    element took Mish's and GELU-tanh's loops 1.5-1.8x their time, for the
    0.6-15% of standard-normal data in the tail; an exact product
    (`tail_product`) costs one more exp on every element, for the elements
    whose factor is below float32's normal range.  The loops compute the sums
    and plain products everywhere, then gather a block's tail elements and
    compute the function again on them, with the series and exact products.
    A product's tail that a series' tail already holds adds no condition.
    Last, the conditions only float64 results need: a product's whose factor
    is not read from the cache (``loaded``), which a float32 result computed
    in float64 takes plainly."""
    series = sorted(
        {n for _, expr in assignments for n in expr.atoms(near_tail)},
        key=sympy.default_sort_key,
    )
    products = {
        node: condition
        for _, expr in assignments
        for node in expr.atoms(tail_product)
        if (condition := _tail_product_condition(node)) is not None
    }
    if not series and not products:
        return tuple(assignments), (), [], frozenset()
    plain = tuple(
        (
            target,
            expr.replace(
                lambda e: isinstance(e, near_tail), lambda e: e.args[0]
            ).xreplace({node: node.as_product() for node in products}),
        )
        for target, expr in assignments
    )
    conditions = {node.as_piecewise().args[0][1] for node in series}
    held = _union_of_sets(conditions)
    new = {c for c in products.values() if not _holds(held, c)}
    cached = {c for node, c in products.items() if node.args[0] in loaded}
    nodes = [*series, *sorted(products, key=sympy.default_sort_key)]
    every = tuple(sorted(conditions | new, key=sympy.default_sort_key))
    return plain, every, nodes, frozenset(new - conditions - cached)


def _tail_product_condition(node: tail_product) -> sympy.Basic | None:
    """Where ``node``'s factor may be below float32's normal range, where
    `numba_helpers._tail_product` computes the product from the exponent: the
    exponent below log(tiny/|scale|), with a factor e to spare for the
    factor's own rounding, rounded up to a 16th.  None for a scale that is
    not a number."""
    scale, exponent = node.args[3], node.args[2]
    if not scale.is_number or scale == 0:
        return None
    bound = math.log(_FLOAT32_TINY / abs(float(scale))) + 1.0
    return _as_bound(sympy.Lt(exponent, sympy.Float(math.ceil(bound * 16) / 16)))


def _as_bound(condition: sympy.Basic) -> sympy.Basic:
    """``condition`` as v < c where it holds on (-oo, c) of its one variable v
    (SymPy solves it; c rounded up to a 16th, a tail a little larger), so
    that the loop tests a number, not the exponent: GELU-tanh's cubic becomes
    x < -9.9375.  Otherwise the condition as it is."""
    region = _union_of_sets([condition])
    if not (
        isinstance(region, sympy.Interval)
        and region.start == -sympy.oo
        and region.end.is_finite
        and len(condition.free_symbols) == 1
    ):
        return condition
    (v,) = condition.free_symbols
    return sympy.Lt(v, sympy.Float(math.ceil(float(region.end) * 16) / 16))


def _union_of_sets(conditions) -> sympy.Set | None:
    """The real numbers where any of ``conditions`` holds, or None where SymPy
    cannot say."""
    regions = [_region(c) for c in conditions]
    if any(r is None for r in regions):
        return None
    return sympy.Union(*regions)


def _holds(held: sympy.Set | None, condition) -> bool:
    """Whether ``held`` (`_union_of_sets`) holds every number ``condition``
    holds for, as far as SymPy can prove it."""
    region = _region(condition)
    if held is None or region is None:
        return False
    try:
        return bool(region.is_subset(held))
    except (NotImplementedError, ValueError, TypeError):
        return False


def _region(condition) -> sympy.Set | None:
    """The real numbers where ``condition`` holds, or None where SymPy cannot
    say, or not within a tenth of the budget left: the solve only makes a
    loop's test cheaper (x < c, not the exponent's), and SymPy took 6 s for
    each condition of x**3*exp(-(x - 1)**2)'s tails, solving each twice.
    Each condition is solved once."""
    return attempt(
        "solving where a tail starts",
        lambda: _solved(condition),
        lambda: None,
        share=0.1,
    )


@functools.lru_cache(maxsize=256)
def _solved(condition) -> sympy.Set | None:
    try:
        return condition.rewrite(sympy.Max).as_set()
    except (NotImplementedError, ValueError, TypeError):
        return None


def _reads_flag(lines) -> bool:
    """Whether printed statements take the `EXACT` flag (an exact path)."""
    return any(re.search(rf"\b{EXACT}\b", line) for line in lines)


def _pass(
    name,
    arguments,
    lines,
    inputs,
    params,
    outputs,
    values,
    native=False,
    tail_native=None,
) -> Pass:
    """A `Pass`; ``values`` maps a parameter to what the class passes for it.
    A ``native`` pass reads its arrays, and takes its parameters, in the
    arrays' precision; any other reads numbers in float64.  Its tail, if any,
    is native where ``tail_native`` says (by default, where the pass is)."""
    arrays = [f"{a}s" for a in inputs]
    results = [f"{r}s" for r in outputs]
    flag = []
    if _reads_flag(lines):
        arguments = (*arguments, EXACT)
        flag = [f"_holds_float64({results[0]})"]

    def reads(native: bool) -> str:
        # Numbers in float64 (booleans as they are): the element function
        # computes in float64, and the loop's store rounds once; a native
        # pass's numbers in its first array's type.
        return ", ".join(
            [
                *(
                    f"{a}[i]" if a == "masks" or native else f"np.float64({a}[i])"
                    for a in arrays
                ),
                *(f"_like({arrays[0]}[i], {p})" if native else p for p in params),
                *flag,
            ]
        )

    return Pass(
        function=f"{name}_one",
        loop=name,
        arguments=arguments,
        lines=lines,
        results=outputs,
        loop_arguments=", ".join([*arrays, *params, *results]),
        block_arguments=", ".join(
            [*(f"{a}[b]" for a in arrays), *params, *(f"{r}[b]" for r in results)]
        ),
        picked_arguments=", ".join(
            [
                *(f"{a}_picked" for a in arrays),
                *params,
                *(f"{r}_picked" for r in results),
            ]
        ),
        input_arrays=tuple(arrays),
        result_arrays=tuple(results),
        stores=", ".join(f"{r}[i]" for r in results),
        reads=reads(native),
        tail_reads=reads(native if tail_native is None else tail_native),
        size=arrays[0],
        call=", ".join(
            [
                *(f"_flat({a})" for a in inputs),
                *(values[p] for p in params),
                *(f"_flat({r})" for r in outputs),
            ]
        ),
    )


def near_root_function(table: str, values: tuple[float, ...]) -> str:
    """The element function of a fit about a root whose table (r's parts, the
    window, P's coefficient pairs) is the constant ``table``: Horner's rule in
    double-double arithmetic, one `numba_helpers._horner_step` per coefficient,
    written out so that LLVM sees straight-line code (a loop over a tuple of
    more than about 13 numbers is not unrolled, and the element loop around it
    would not be SIMD code)."""
    lower, upper = values[4], values[5]
    last = len(values) - 2
    lines = [
        "@_inline",
        f"def {table.lower()}(far, u):",
        f'    """far, except where {lower!r} < u < {upper!r}: d*P(d) with d = u - r,',
        f"    from {table}, in double-double arithmetic and rounded once.",
        '    """',
        f"    t = {table}",
        "    d, e = _minus_root(u, t)",
        f"    p, q = t[{last}], t[{last + 1}]",
        *(
            f"    p, q = _horner_step(p, q, d, e, t[{k}], t[{k + 1}])"
            for k in range(last - 2, 5, -2)
        ),
        "    return _near_root(far, u, t, d, e, p, q)",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class NumbaLayer:
    """The printed pieces of one numba layer, for the template."""

    class_name: str
    prefix: str  # of its module-level functions: _mish_forward, ...
    docstring: str
    params: tuple[dict[str, str], ...]
    learnable: tuple[str, ...]
    forward: Pass
    backward: Pass
    cache: dict[str, str]  # attribute -> the forward local it keeps
    loads: tuple[str, ...]  # backward's locals, read from the cache
    cached: str  # the attribute that says forward ran (and its shape)
    dtype: str  # dx's dtype
    allocate: tuple[tuple[str, str], ...]  # forward's arrays besides out
    param_grads: tuple[str, ...]
    comments: tuple[str, ...]
    helpers: frozenset[str]
    parallel_from: int  # elements from which the loops run over threads
    parallel_comment: tuple[str, ...]  # why that many
    #: Module constants (name, comment lines, literals): coefficient tables.
    tables: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()
    #: The element functions of fits about roots (`near_root_function`).
    functions: tuple[str, ...] = ()

    @property
    def defines(self) -> tuple[str, ...]:
        functions = [
            f"{self.prefix}_{direction}{kind}"
            for direction in ("forward", "backward")
            for kind in ("_one", "")
        ]
        functions += [
            name
            for part in (self.forward, self.backward)
            if part.in_tail
            for name in (
                part.tail_function,
                *(f"{part.loop}_{kind}" for kind in ("in_tail", "picked", "block")),
            )
        ]
        tables = [name for name, _, _ in self.tables]
        fits = [name.lower() for name in tables if "_NEAR_ROOT" in name]
        return (self.class_name, *functions, *tables, *fits)


def _print_numba_pass(
    assignments, names, arrays, taken, tables, prefix, loaded, reference, memory
):
    """A pass's statements, and whether it computes in its arrays' precision:
    under prefer='memory', where no statement takes the `EXACT` flag (no exact
    float64 path), its numbers are then of ``reference``'s type
    (`InPrecisionPrinter`); otherwise it computes in float64."""
    options = {"table_prefix": prefix.upper(), "loaded": loaded}
    printer = functools.partial(NumbaPrinter, **options)
    lines = print_pass(assignments, names, arrays, taken, 4, printer, tables)
    if not memory or _reads_flag(lines.lines):
        return lines, False
    printer = functools.partial(InPrecisionPrinter, reference=reference, **options)
    return print_pass(assignments, names, arrays, taken, 4, printer, tables), True


def _print_with_tails(assignments, names, arrays, taken, tables, *rest):
    """`_print_numba_pass` for a pass whose tails (`split_tails`) are computed
    apart: (its statements with the sums, whether they are native, whether the
    tail's are, and () or (the statements with the series, the tails'
    condition printed, the tails)).  Where only the tail has a float64 path,
    the sums compute in the arrays' precision and the tail's few elements in
    float64, every dtype's (a float32 factor is subnormal where a float64 one
    is not: each tail's condition then holds for both); where the sums have
    one, both compute in float64.  With one condition, the tail's elements
    take the series alone, not the select."""
    _, loaded, *_ = rest  # (prefix, loaded, reference, memory)
    plain, conditions, nodes, float64_only = split_tails(assignments, loaded)
    if len(conditions) == 1:  # its elements need the series alone
        assignments = [(target, _series_alone(expr)) for target, expr in assignments]
    lines, native = _print_numba_pass(assignments, names, arrays, taken, tables, *rest)
    if not conditions:
        return lines, native, native, ()
    sums, sums_native = _print_numba_pass(plain, names, arrays, taken, tables, *rest)
    if native and not sums_native:  # the sums have a float64 path: both take it
        *options, _ = rest
        native = False
        lines, _ = _print_numba_pass(
            assignments, names, arrays, taken, tables, *options, False
        )
    if sums_native and not native:  # float32's tail is in float64 too
        float64_only = frozenset()
    printer = NumbaPrinter(names, arrays, tables)
    flags = [f"{EXACT} and " if c in float64_only else "" for c in conditions]
    condition = " or ".join(
        flag + printer.doprint(c) for flag, c in zip(flags, conditions, strict=True)
    )
    targets = [f"tail_{k}" for k in range(1, len(conditions) + 1)]
    test = print_pass(
        list(zip(targets, conditions, strict=True)),
        names,
        arrays,
        taken,
        4,
        NumbaPrinter,
        tables,
    )
    lines.helpers.update(test.helpers)  # the condition's, with the tail's
    statements = test.lines
    result = " or ".join(flag + t for flag, t in zip(flags, targets, strict=True))
    if len(statements) == 1 and len(targets) == 1:  # return it, if on one line
        tested = flags[0] + statements[0].removeprefix(f"{targets[0]} = ")
        if len(f"    return {tested}") <= 88:
            statements, result = [], tested
    return sums, sums_native, native, (lines, condition, nodes, statements, result)


def _series_alone(expr: sympy.Expr) -> sympy.Expr:
    """expr on its tail's elements: each tail's series written out
    (`near_tail.as_piecewise`), and the sum it replaced without the polynomial
    about a root, whose window the tail begins beyond."""
    expr = expr.replace(
        lambda e: isinstance(e, near_root) and e.args[0].has(near_tail),
        lambda e: e.args[0],
    )
    return expr.replace(
        lambda e: isinstance(e, near_tail), lambda e: e.as_piecewise().args[0][0]
    )


def _with_tail(part: Pass, sums, tail) -> Pass:
    """``part`` with its element function computing the sums, and the one with
    the series for the tail's elements, where there is a tail."""
    if not tail:
        return part
    lines, condition, nodes, test, tested = tail
    notes = dict.fromkeys(_tail_note(n) for n in nodes if isinstance(n, near_tail))
    products = dict.fromkeys(
        _tail_note(n) for n in nodes if isinstance(n, tail_product)
    )
    present = (("the series", notes), ("exact products", products))
    takes = " and ".join(what for what, found in present if found)
    block = (
        f"The sums, vectorised; then the elements where {condition} again, with "
        f"{takes}."
    )
    return replace(
        part,
        lines=tuple(sums.lines),
        tail_lines=tuple(lines.lines),
        in_tail=condition,
        in_tail_lines=tuple(test),
        in_tail_result=tested,
        tail_notes=(
            *comment_lines(tuple(notes), indent=4),
            *(line for note in products for line in textwrap.wrap(note, 84)),
        ),
        tail_takes=takes,
        block_notes=tuple(textwrap.wrap(block, 80, break_long_words=False)),
    )


def layer_source(formulas: LayerFormulas) -> NumbaLayer:
    """Print one layer as element functions, loops and a class."""
    act = formulas.derivation.activation
    prefix = f"_{snake_name(act)}"
    names = {X: "x", Y: "y", MASK: "mask", DOUT: "dout", S: "s"}
    names.update({p.symbol: p.name for p in act.params})
    arrays = {X, Y, MASK, DOUT, S}
    taken = {p.name for p in act.params} | {f"d{n}" for n in formulas.param_grads}
    taken |= {"np", "numba", "i", EXACT}

    forward_assignments, forward_notes = _for_fused_loops(formulas.forward)
    backward_assignments, backward_notes = _for_fused_loops(formulas.backward)
    tables: dict[tuple[float, ...], str] = {}
    loaded = [symbol for symbol, _ in formulas.reads]
    memory = act.prefer == "memory"
    forward_lines, forward_native, forward_tail_native, forward_tail = (
        _print_with_tails(
            forward_assignments, names, arrays, taken, tables, prefix, (), "x", memory
        )
    )
    backward_lines, backward_native, backward_tail_native, backward_tail = (
        _print_with_tails(
            backward_assignments,
            names,
            arrays,
            taken,
            tables,
            prefix,
            loaded,
            next((local_name(s) for s in loaded if s != MASK), "dout"),
            memory,
        )
    )
    forward_results = ("out", *(n for n, _ in formulas.forward if n != "out"))
    loads = tuple(local_name(symbol) for symbol, _ in formulas.reads)
    backward_results = (*(f"d{n}" for n in formulas.param_grads), "dx")
    forward_params = _mentioned(act, [e for _, e in formulas.forward])
    backward_params = _mentioned(act, [e for _, e in formulas.backward])
    values = {
        p.name: f'float(self.params["{p.name}"])' if p.learnable else f"self.{p.name}"
        for p in act.params
    }
    forward = _pass(
        f"{prefix}_forward",
        ("x", *forward_params),
        (*forward_lines.lines, *(forward_tail[0].lines if forward_tail else ())),
        ("x",),
        forward_params,
        forward_results,
        values,
        native=forward_native,
        tail_native=forward_tail_native,
    )
    forward = replace(
        _with_tail(forward, forward_lines, forward_tail),
        notes=comment_lines(forward_notes, indent=4),
    )
    backward = _pass(
        f"{prefix}_backward",
        ("dout", *loads, *backward_params),
        (*backward_lines.lines, *(backward_tail[0].lines if backward_tail else ())),
        ("dout", *loads),
        backward_params,
        backward_results,
        values,
        native=backward_native,
        tail_native=backward_tail_native,
    )
    backward = replace(
        _with_tail(backward, backward_lines, backward_tail),
        notes=comment_lines(backward_notes, indent=4),
    )
    cache = {attribute: attribute for attribute in formulas.saved_attributes}
    if formulas.saves in ("mask", "nothing"):
        # A mask or a shape does not say the gradient's dtype: keep it.
        cache["dtype"] = "x.dtype"
    if not loads:
        cache["shape"] = "x.shape"
    # Under prefer='accuracy' a float32 layer keeps its cache in float64, as
    # the NumPy layers do: a float32 sigmoid(x) is subnormal below x = -87,
    # where SiLU's backward s*(1 + x*(1 - s)) is still normal.
    kept = "np.float64" if act.prefer == "accuracy" else "x.dtype"
    allocate = tuple(
        (name, "np.bool_" if name == "mask" else kept)
        for name in forward_results
        if name != "out"
    )
    if kept != "x.dtype" and allocate and loads[0] != "x":
        cache["dtype"] = "x.dtype"  # the cache's arrays do not say dx's dtype
    helpers = {"_float_array", "_check_out", "_check_backward", "_flat", "_run"}
    helpers.add("_prefer_512_bit_vectors")
    if any(EXACT in part.arguments for part in (forward, backward)):
        helpers.add("_holds_float64")  # the loops' flag
    if formulas.param_grads:
        helpers.add("_total")
    helpers |= {"_float16_in_float32_out", "_inline"}
    if (forward_native and forward_params) or (backward_native and backward_params):
        helpers.add("_like")  # the loops pass parameters in the arrays' type
    calls = sum(
        exp_like_calls([e for _, e in assignments])
        for assignments in (forward_assignments, backward_assignments)
    )
    threshold = parallel_from(calls)
    parallel_comment = textwrap.wrap(
        f"Threads from this many elements on: {PARALLEL_WORK:,} / (1 + {calls} "
        "exp-like calls per element), rounded down to a power of 2 (measured on "
        "2 cores; set it to tune a machine).",
        80,
    )
    return NumbaLayer(
        class_name=act.class_name,
        prefix=prefix,
        docstring=formulas.docstring,
        params=tuple({"name": p.name, "default": repr(p.value)} for p in act.params),
        learnable=tuple(p.name for p in act.learnable),
        forward=forward,
        backward=backward,
        cache=cache,
        loads=loads,
        cached=(loads or ("shape",))[0],
        dtype="self.dtype" if "dtype" in cache else f"{loads[0]}.dtype",
        allocate=allocate,
        param_grads=formulas.param_grads,
        comments=comment_lines(formulas.comments, indent=4),
        parallel_from=threshold,
        parallel_comment=tuple(parallel_comment),
        helpers=frozenset(
            helpers.union(
                *(
                    source.helpers
                    for source in (
                        forward_lines,
                        backward_lines,
                        *forward_tail[:1],
                        *backward_tail[:1],
                    )
                )
            )
        ),
        tables=class_tables(tables, formulas),
        functions=tuple(
            near_root_function(name, values)
            for values, name in tables.items()
            if "_NEAR_ROOT" in name
        ),
    )


def _mentioned(act, expressions) -> tuple[str, ...]:
    """The parameters (by name, in the activation's order) the passes read."""
    used = set().union(*(e.free_symbols for e in expressions))
    return tuple(p.name for p in act.params if p.symbol in used)
