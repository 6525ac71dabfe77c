"""SymPy functions that symgrad prints as stable NumPy helpers.

The rewrite stage (`symgrad.rewrite`) recognises numerically fragile patterns such
as 1/(1 + exp(-u)) and log(1 + exp(u)) and replaces them with these functions; the
printers map each to the helper of the same name in `symgrad.targets.numpy_helpers`, copied
into the generated module.  Each function knows its derivative and its definition
through exp, so derivation, output forms and numeric verification work on
expressions that contain it.  Catalog rows may use them directly (SiLU is
x*sigmoid(x)).
"""

from __future__ import annotations

import math

import mpmath
import sympy
from mpmath.libmp import prec_to_dps


class _PositiveOfReal(sympy.Function):
    """A function defined through exp that is positive for every real argument;
    it evaluates numerically through that definition."""

    def _eval_evalf(self, prec):
        value = self.rewrite(sympy.exp).evalf(prec_to_dps(prec))
        # exp of a real evaluated through mpmath can carry a 1e-50*I residue.
        return sympy.re(value) if self.args[0].is_real else value

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None


class sigmoid(_PositiveOfReal):  # noqa: N801 (SymPy's convention: functions are lower case)
    """The logistic function 1/(1 + exp(-u)), evaluated without overflow."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sympy.Rational(1, 2)
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sympy.exp(-arg))

    def _latex(self, printer, exp=None):
        return _power(rf"\sigma\left({printer._print(self.args[0])}\right)", exp)


class softplus(_PositiveOfReal):  # noqa: N801
    """log(1 + exp(u)), evaluated without overflow."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sympy.log(2)
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return sympy.log(1 + sympy.exp(arg))

    _eval_rewrite_as_log = _eval_rewrite_as_exp

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        return _power(rf"\operatorname{{softplus}}\left({inner}\right)", exp)


class erfc(sympy.Function):  # noqa: N801
    """The complementary error function, left as written.

    SymPy's own erfc rewrites erfc(-u) as 2 - erfc(u), which is exactly the
    cancellation `symgrad.rewrite.erfc_of_complement` exists to avoid.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        u = self.args[0]
        return -2 * sympy.exp(-(u**2)) / sympy.sqrt(sympy.pi)

    def _eval_evalf(self, prec):
        return sympy.erfc(self.args[0]).evalf(prec_to_dps(prec))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        return _power(rf"\operatorname{{erfc}}\left({inner}\right)", exp)


class scaled_erfc(sympy.Function):  # noqa: N801
    """erfc(scale*u), with scale**2 = square given exactly (GELU's erfc(-x/sqrt(2)):
    scale -1/sqrt(2), square 1/2).

    Rounding scale*u costs erfc's tail its relative accuracy: exp(-z**2) is off by
    2 z**2 ulps.  Knowing the square exactly, the helper computes z**2 from u
    itself (`symgrad.rewrite.erfc_of_scaled` builds it).
    """

    nargs = 3

    def as_erfc(self) -> sympy.Expr:
        u, scale, _ = self.args
        return erfc(scale * u)

    def _eval_evalf(self, prec):
        return self.as_erfc()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return (
            printer._print(self.as_erfc(), exp=exp)
            if exp
            else printer._print(self.as_erfc())
        )


class scaled(sympy.Function):  # noqa: N801
    """u times a parameter (``scaled(u, p, 0)``) or divided by it (``scaled(u, p,
    1)``), as the argument of a function or a comparison.

    softplus(beta*x) with beta = 2 at x = 1.8e308, or expm1(min(x, 0)/alpha)
    with alpha = 0.7 at x = -1.8e308: the product leaves the dtype's range,
    and +-inf is its correct rounding; the function (or comparison) then gives
    its limit, which is the true result.  The helper computes it without
    reporting that overflow (`symgrad.rewrite.scaled_arguments` builds it).
    """

    nargs = 3

    def as_product(self) -> sympy.Expr:
        u, p, inverse = self.args
        return u / p if inverse else u * p

    def _eval_evalf(self, prec):
        return self.as_product()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real

    def _latex(self, printer, exp=None):
        return printer._print(self.as_product())


class nearest(sympy.Function):  # noqa: N801
    """u rounded to the nearest multiple of ``step``, a power of 2: h with an
    exact square, for exp(-q*u**2) = exp(-q*h**2) * exp(-q*(u - h)*(u + h))."""

    nargs = 2

    def _eval_evalf(self, prec):
        u, step = (a.evalf(prec_to_dps(prec)) for a in self.args)
        return (sympy.Float(round(float(u / step))) * step).evalf(prec_to_dps(prec))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return _power(printer._print(self.args[0]), exp)


class _Clamp(sympy.Function):
    """A clip that changes no finite input: an identity to SymPy (derivative 1,
    value of its first argument), a clip to NumPy (see `symgrad.targets`)."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.S.One if argindex == 1 else sympy.S.Zero

    def _eval_evalf(self, prec):
        return self.args[0]._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return _power(printer._print(self.args[0]), exp)


class finite(_Clamp):  # noqa: N801
    """u, with +-inf replaced by the largest finite value of u's dtype.

    ``finite(u, -1)`` replaces only -inf, ``finite(u, 1)`` only +inf, ``finite(u, 0)``
    both: a side whose limit is infinite must keep its inf.  Where a part tends to
    a finite limit only far beyond float16's range (x/(1 + |x|) reaches 1 at |x| ~
    1e18), clipping at a number would overflow the cast in float16; clipping at the
    dtype's own maximum keeps inf/inf from becoming NaN.  Nested, the two become
    one: finite(finite(u, 1), -1) is finite(u, 0).
    """

    @classmethod
    def eval(cls, u, side):
        if isinstance(u, finite):
            inner, inner_side = u.args
            return finite(inner, side if side == inner_side else sympy.S.Zero)
        return None


class tame(_Clamp):  # noqa: N801
    """u clipped to where u**degree still fits u's dtype (with a factor 16 to spare).

    For a part with parameters, whose saturation point depends on their values,
    this is the clip that needs none: x/sqrt(1 + a*x**2) has reached +-1/sqrt(a)
    long before x**2 overflows.
    """

    @classmethod
    def eval(cls, u, degree):
        if isinstance(u, tame):  # the tighter of the two bounds, once
            inner, other = u.args
            return tame(inner, sympy.Max(degree, other))
        return None


class clip(sympy.Function):  # noqa: N801
    """u limited to [lower, upper]; a bound of -oo or oo leaves that side open.

    `symgrad.rewrite.clip_saturating` evaluates a saturating part on a clipped input
    (where the part has reached its limit in floating point, that changes nothing
    but keeps exp and powers from overflowing).  It prints as the ``_clip`` helper,
    which skips the pass when no element is outside the bounds, the usual case.
    """

    nargs = 3

    @classmethod
    def eval(cls, u, lower, upper):
        if u.is_number and lower.is_number and upper.is_number:
            return sympy.Min(sympy.Max(u, lower), upper)
        if isinstance(u, clip):  # one clip to the intersection of the intervals
            inner, low, high = u.args
            return clip(inner, sympy.Max(low, lower), sympy.Min(high, upper))
        return None

    def _eval_rewrite_as_Max(self, u, lower, upper, **kwargs):
        return sympy.Min(sympy.Max(u, lower), upper)

    def fdiff(self, argindex=1):
        u, lower, upper = self.args
        if argindex != 1:
            raise sympy.ArgumentIndexError(self, argindex)
        return sympy.Piecewise((1, (u > lower) & (u < upper)), (0, True))

    def _eval_evalf(self, prec):
        return self.rewrite(sympy.Max)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        u, lower, upper = (printer._print(a) for a in self.args)
        return _power(rf"\operatorname{{clip}}\left({u}, {lower}, {upper}\right)", exp)


class blend(sympy.Function):  # noqa: N801
    """a where the condition holds, else b, computed as c*a + (not c)*b.

    `symgrad.rewrite.select_as_blend` builds it only where both branches are
    finite wherever they are evaluated, so each product is the branch or 0.0 and
    the sum is the select exactly, without a branch per element.
    """

    nargs = 3

    def as_piecewise(self) -> sympy.Piecewise:
        condition, a, b = self.args
        return sympy.Piecewise((a, condition), (b, True))

    def _eval_evalf(self, prec):
        return self.as_piecewise()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[1].is_real and self.args[2].is_real


class _Fitted(sympy.Function):
    """far, except near a point, where a fitted polynomial replaces it (the
    first argument is far; `as_piecewise` says where and what)."""

    def as_piecewise(self) -> sympy.Piecewise:
        raise NotImplementedError

    @staticmethod
    def _horner(coefficients, s: sympy.Expr) -> sympy.Expr:
        total = sympy.S.Zero
        for c in reversed(coefficients):
            total = c + s * total
        return total

    def _eval_evalf(self, prec):
        return self.as_piecewise()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return _power(printer._print(self.args[0]), exp)


class near_zero(_Fitted):  # noqa: N801
    """far, except where |u| < switch: u**order * P(2 u**2/switch**2 - 1) there.

    `symgrad.rewrite.series_near_zero` builds it for a sum whose terms cancel at
    u = 0 (x - tanh(x)); the arguments are (far, u, switch, order, *coefficients
    of P, lowest first).  The polynomial reads u clipped to [-switch, switch].
    """

    def as_piecewise(self) -> sympy.Piecewise:
        far, u, switch, order, *coefficients = self.args
        near = clip(u, -switch, switch)
        s = near**2 * (2 / switch**2) - 1
        horner = self._horner(coefficients, s)
        return sympy.Piecewise(
            (near**order * horner, sympy.Abs(u) < switch), (far, True)
        )

    @property
    def coefficients(self) -> tuple[float, ...]:
        return tuple(float(c) for c in self.args[4:])


class minus_root(sympy.Function):  # noqa: N801
    """u - r for r = hi + mid + lo + rest, computed in that order.

    hi has 11 bits, mid 24 and lo 53, so near r every subtraction but the
    last is exact in float16, float32 and float64 alike (Sterbenz): u - r
    keeps its relative precision where u is within an ulp of r, which u -
    float(r) does not (r is needed to 1e-33 there).  SymPy would fold the
    constants into one.
    """

    nargs = 5

    def _eval_evalf(self, prec):
        u, *parts = self.args
        return (u - sympy.Add(*parts)).evalf(prec_to_dps(prec))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _sympystr(self, printer):
        root = sum(map(float, self.args[1:]))
        sign = "-" if root >= 0 else "+"
        return f"({printer._print(self.args[0])} {sign} {abs(root)!r})"


def _held(exact, rounded, root: float, ulps: float = 2.0) -> tuple[float, float]:
    """The widest [first, last] about ``root`` in [-1, 1] (steps of 1/64) on
    which float64 Horner with the ``rounded`` coefficients keeps within
    ``ulps`` of P (its ``exact`` ones, mpmath): where a framework, computing in
    its own float64, takes the polynomial; the sum beyond, where its terms
    cancel less than P's own do near a wide window's ends."""

    def holds(s: float) -> bool:
        total = 0.0
        for c in reversed(rounded):
            total = total * s + c
        truth = mpmath.polyval(exact[::-1], s)
        spacing = mpmath.mpf(2) ** (mpmath.floor(mpmath.log(abs(truth), 2)) - 52)
        return abs(total - truth) <= ulps * spacing

    ends = []
    for direction in (-1, 1):
        end = root
        while abs(end + direction / 64) <= 1 and holds(end + direction / 64):
            end += direction / 64
        ends.append(end)
    return ends[0], ends[1]


def shifted_polynomial(coefficients, scale, shift) -> list:
    """The coefficients (lowest power first) of P(scale*t + shift) in t, from
    P's (mpmath numbers, at the working precision)."""
    result = [mpmath.mpf(0)] * len(coefficients)
    for k, c in enumerate(coefficients):
        for j in range(k + 1):
            result[j] += c * math.comb(k, j) * scale**j * shift ** (k - j)
    return result


class near_root(_Fitted):  # noqa: N801
    """far, except where lower < u < upper: d*P(d) there, with d = u - r and r
    the sum's root in the window, in four parts (`minus_root`).

    `symgrad.series.series_near_root` builds it for a sum whose terms cancel
    at a root (Mish's slope at -1.19); the arguments are (far, u, *the root's
    parts, lower, upper, *P's coefficients, lowest power first, each as a
    high and a low float).  The helpers evaluate it in double-double
    arithmetic; `as_piecewise` (the frameworks' form) with the high parts.
    The polynomial reads u clipped to the window, so it cannot overflow.
    """

    @property
    def root(self) -> tuple[float, float, float, float]:
        return tuple(float(c) for c in self.args[2:6])

    @property
    def window(self) -> tuple[float, float]:
        return float(self.args[6]), float(self.args[7])

    @property
    def coefficients(self) -> tuple[float, ...]:
        """P's coefficients as (high, low) pairs, flattened."""
        return tuple(float(c) for c in self.args[8:])

    @property
    def table(self) -> tuple[float, ...]:
        """The root's parts, the window's ends and P's coefficients, in one
        tuple: the constant the helpers read."""
        return tuple(float(c) for c in self.args[2:])

    def as_piecewise(self, exact: bool = False) -> sympy.Piecewise:
        """The select as a framework computes it in its own float64: P in s =
        u mapped onto [-1, 1] (in powers of d, P's terms can be 1e7 times P
        over a wide window, and float64 Horner would lose that much), its
        coefficients converted from the pairs in 40 digits.  ``exact``: P in
        d with each pair's sum (40 digits), the fit itself."""
        far, u, hi, mid, lo, rest, lower, upper, *coefficients = self.args
        near = clip(u, lower, upper)
        d = minus_root(near, hi, mid, lo, rest)
        inside = sympy.And(u > lower, u < upper)
        in_d = [
            sympy.Float(h, 40) + sympy.Float(low, 40)
            for h, low in zip(coefficients[0::2], coefficients[1::2], strict=True)
        ]
        if exact:
            return sympy.Piecewise((d * self._horner(in_d, d), inside), (far, True))
        with mpmath.workdps(40):
            half = (mpmath.mpf(float(upper)) - float(lower)) / 2
            centre = (mpmath.mpf(float(upper)) + float(lower)) / 2
            root = mpmath.fsum(mpmath.mpf(float(c)) for c in (hi, mid, lo, rest))
            exact_s = shifted_polynomial(
                [mpmath.mpf(c._mpf_) for c in in_d], half, centre - root
            )
            in_s = [float(c) for c in exact_s]
            first, last = _held(exact_s, in_s, float((root - centre) / half))
        s = near * (2 / (upper - lower)) - (upper + lower) / (upper - lower)
        held = sympy.And(u > centre + half * first, u < centre + half * last)
        held = held.xreplace(
            {n: sympy.Float(float(n)) for n in held.atoms(sympy.Number)}
        )
        horner = self._horner([sympy.Float(c) for c in in_s], s)
        return sympy.Piecewise((d * horner, held), (far, True))

    def _eval_evalf(self, prec):
        return self.as_piecewise(exact=True)._eval_evalf(prec)


class near_tail(_Fitted):  # noqa: N801
    """far, except beyond a switch point, where the sum decays like exp(b(v)):
    there e**m * sum c_k(v)*e**k with e = exp(b(v)).

    `symgrad.tails.series_in_tails` builds it; the arguments are (far, v,
    *table), the table being what the NumPy helpers read (`table`): they
    compute b and c_0 in double-double arithmetic, on the tail's elements
    only.  `as_piecewise` writes the tail out (frameworks, fused loops).
    """

    @property
    def switch(self) -> float:
        return float(self.args[2])

    @property
    def side(self) -> int:
        return int(self.args[3])

    @property
    def table(self) -> tuple[float, ...]:
        """switch, side, lowest, m, terms, the coefficients' degree, the
        exponent's degree, b's coefficients and c_0's as (high, low) pairs, then
        c_1, c_2 ... (lowest power first)."""
        return tuple(float(c) for c in self.args[2:])

    def series(self) -> tuple[int, sympy.Expr, list[sympy.Expr]]:
        """(m, b, [c_0, c_1, ...]) as polynomials in the tail's variable v, in
        Horner's form (c_0 and b from their pairs, in 40 digits)."""
        v = self.args[1]
        switch, side, lowest, m, terms, degree, exponent_degree = self.args[2:9]
        values = self.args[9:]
        width, exponent_width = int(degree) + 1, int(exponent_degree) + 1

        def from_pairs(pairs):
            """Each pair's sum, in 40 digits."""
            return [
                sympy.Float(h, 40) + sympy.Float(low, 40)
                for h, low in zip(pairs[0::2], pairs[1::2], strict=True)
            ]

        def polynomial(coefficients):
            """In Horner's form, an integer coefficient as one (x is exact,
            1.0*x is not)."""
            total = sympy.S.Zero
            for c in reversed(coefficients):
                whole = sympy.Integer(int(c)) if float(c).is_integer() else c
                total = whole + v * total
            return total

        b = polynomial(from_pairs(values[: 2 * exponent_width]))
        rest = values[2 * exponent_width :]
        leading = from_pairs(rest[: 2 * width])
        later = rest[2 * width :]
        rows = [leading] + [
            later[k * width : (k + 1) * width] for k in range(int(terms) - 1)
        ]
        return int(m), b, [polynomial(row) for row in rows]

    def as_piecewise(self) -> sympy.Piecewise:
        """The tail written out in v clamped to it, b's exp and the product
        past underflow made exact by the rules that do so elsewhere."""
        from .printing import Times
        from .rewrite import exact_branch  # the rules build on these functions

        far, v, switch, side, lowest = self.args[:5]
        m, b, polynomials = self.series()
        low, high = (lowest, switch) if side < 0 else (switch, lowest)
        clamped = clip(v, low, high)
        exponent = b.xreplace({v: clamped})
        # e's rounding corrected where b rounds; the products in the series are
        # corrections, left plain (a product past underflow is not needed there).
        e = exact_branch(sympy.exp(exponent))
        total = sympy.S.Zero
        for p in reversed(polynomials):
            # Unevaluated: e*(e*...) where a c_k is 0 would become exp(2*b).
            later = Times(e, total) if total != 0 else total
            total = p.xreplace({v: clamped}) + later
        # The product past underflow is decided by the leading term, c_0.
        leading = polynomials[0].xreplace({v: clamped})
        product = exact_branch(sympy.exp(m * exponent) * leading)
        if isinstance(product, tail_product):
            near = product.func(product.args[0], total, *product.args[2:])
        else:
            near = Times(exact_branch(sympy.exp(m * exponent)), total)
        beyond = v < switch if side < 0 else v > switch
        return sympy.Piecewise((near, beyond), (far, True))


class _OfPolynomial(sympy.Function):
    """f(P) for a polynomial P in v with exact coefficients: the arguments are
    (P, v, beyond, hi_0, lo_0, hi_1, lo_1, ...), each coefficient c_k = hi_k +
    lo_k to about 106 bits, lowest power first.

    The computed P is off by its rounding (its constants' and each operation's),
    about an ulp of its largest term, and exp(P) is off by that much relative:
    GELU's tanh form, sigmoid(P) with P = 2*sqrt(2/pi)*(x + 0.044715*x**3), was
    300 ulps off at x = -14.  Where |v| > beyond, where P's terms exceed 2, the
    helper computes P's error from the exact coefficients and corrects f by it.
    `symgrad.rewrite.rounded_polynomial_arguments` builds it.
    """

    function: type[sympy.Function]

    @property
    def plain(self) -> sympy.Expr:
        return self.function(self.args[0])

    @property
    def coefficients(self) -> tuple[float, ...]:
        return tuple(float(c) for c in self.args[3:])

    def _eval_evalf(self, prec):
        return self.plain._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return _power(printer._print(self.plain), exp)

    def _sympystr(self, printer):
        return printer._print(self.plain)


class sigmoid_of_polynomial(_OfPolynomial):  # noqa: N801
    __doc__ = _OfPolynomial.__doc__
    function = sigmoid


class exp_of_polynomial(_OfPolynomial):  # noqa: N801
    __doc__ = _OfPolynomial.__doc__
    function = sympy.exp


class tail_product(sympy.Function):  # noqa: N801
    """factor*rest, where factor is scale*exp(exponent) to float64 precision
    wherever it is below the normal range (sigmoid(x) for x < -37, scale 1).

    There the factor has few bits or none (sigmoid(-714) is subnormal, and 0
    once exp(714) overflows) while the product can be normal (x*sigmoid(x) at
    x = -714 is -4.2e-308); the helper computes those elements as
    (rest*h)*h*scale with h = exp(exponent/2), which is normal.  An exponent
    that is a polynomial (a `sigmoid_of_polynomial`'s) comes with its variable
    and coefficients as further arguments, and its rounding is corrected too.
    `symgrad.rewrite.tail_products` builds it.
    """

    @property
    def polynomial(self) -> tuple[sympy.Expr, tuple[float, ...]] | None:
        """(v, coefficients) of a polynomial exponent, else None."""
        if len(self.args) <= 4:
            return None
        return self.args[4], tuple(float(c) for c in self.args[5:])

    def as_product(self) -> sympy.Expr:
        return self.args[0] * self.args[1]

    def _eval_evalf(self, prec):
        return self.as_product()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real

    def _latex(self, printer, exp=None):
        return _power(printer._print(self.as_product()), exp)

    def _sympystr(self, printer):
        return printer._print(self.as_product())


class exp_once(sympy.Function):  # noqa: N801
    """exp(u) as one call whose powers stay its powers: SymPy would write
    exp(u)**2 as exp(2*u), a second call where a square of the first is
    enough (`symgrad.rewrite.one_exponential` builds it)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return self

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return sympy.exp(arg)

    def _eval_evalf(self, prec):
        return sympy.exp(self.args[0])._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def _latex(self, printer, exp=None):
        return _power(rf"e^{{{printer._print(self.args[0])}}}", exp)

    def _sympystr(self, printer):
        return f"exp({printer._print(self.args[0])})"


class _FromExponential(sympy.Function):
    """f(a) computed from e = exp(-|a|), its second argument, which the fused
    loop computes for another part already (`symgrad.rewrite.from_shared_exponential`
    builds it): the function is its first argument's, and prints as one."""

    nargs = 2
    of: type[sympy.Function]

    def as_call(self) -> sympy.Expr:
        return self.of(self.args[0])

    def _eval_evalf(self, prec):
        return self.as_call()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return printer._print(self.as_call(), exp=exp)

    def _sympystr(self, printer):
        return printer._print(self.as_call())


class sigmoid_from(_FromExponential):  # noqa: N801
    """sigmoid(a) from exp(-|a|): (e if a < 0 else 1)/(1 + e)."""

    of = sigmoid


class softplus_from(_FromExponential):  # noqa: N801
    """softplus(a) from exp(-|a|): max(a, 0) + log1p(e)."""

    of = softplus


def _power(latex: str, exp: str | None) -> str:
    """SymPy's LaTeX printer passes ``exp`` when the function is raised to a power."""
    return latex if exp is None else rf"\left({latex}\right)^{{{exp}}}"


#: Every symgrad function, by name (the printer emits a helper ``_<name>``).
FUNCTIONS = {f.__name__: f for f in (sigmoid, softplus, erfc, finite, tame)}
