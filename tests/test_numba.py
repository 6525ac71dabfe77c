"""The numba target's own parts: its vectorisable math in float64 and float32
(in ulps against mpmath, special values, SIMD code in the compiled loop), and
the layer's loops (float32 computed in float64 under prefer='accuracy' and
where a pass's sums need an exact path, its tail's elements in float64 where
only the tail does, in float32 elsewhere; ``out=`` buffers, the cache next to
the module, the loop over threads agreeing with the serial one).  The catalog's
accuracy, extremes and agreement with the NumPy layers run over this target in
test_targets."""

import math
import re
import time

import mpmath
import numpy as np
import pytest
import sympy

import symgrad
from symgrad.functions import sigmoid, softplus
from symgrad.model import X
from symgrad.rewrite import exp_like_calls, from_shared_exponential
from symgrad.targets import numba_target

numba = pytest.importorskip("numba")
helpers = pytest.importorskip("symgrad.targets.numba_helpers")

#: The functions, their mpmath definitions, and where their argument lies.
FUNCTIONS = {
    "_exp": (mpmath.exp, (-800.0, 800.0)),
    "_expm1": (mpmath.expm1, (-800.0, 800.0)),
    "_log": (mpmath.log, (0.0, math.inf)),
    "_log1p": (mpmath.log1p, (-1.0, math.inf)),
    "_tanh": (mpmath.tanh, (-math.inf, math.inf)),
    "_sigmoid": (lambda x: 1 / (1 + mpmath.exp(-x)), (-math.inf, math.inf)),
    "_softplus": (lambda x: mpmath.log1p(mpmath.exp(x)), (-math.inf, math.inf)),
    "_erf": (mpmath.erf, (-math.inf, math.inf)),
    # mpmath's erfc cannot take 1e300; beyond 30 the truth is 0 or 2 in float64.
    "_erfc": (
        lambda x: mpmath.erfc(x) if abs(x) < 30 else mpmath.mpf(0 if x > 0 else 2),
        (-math.inf, math.inf),
    ),
}
#: The bounds the target's issue asks of them, in ulps: 2, and 4 for erf's.
BOUND = {name: 4.0 if name.startswith("_erf") else 2.0 for name in FUNCTIONS}


def _loop(function):
    """A compiled loop applying ``function`` to every element, as a layer does."""

    @numba.njit(error_model="numpy")
    def run(xs, outs):
        for i in range(xs.size):
            outs[i] = function(xs[i])

    return run


@pytest.fixture(scope="module")
def loops():
    return {name: _loop(getattr(helpers, name)) for name in FUNCTIONS}


def _points(low: float, high: float, dtype=np.float64) -> np.ndarray:
    """Uniform on [-40, 40] and the whole range, log-spaced magnitudes from the
    smallest subnormal to the largest float, and the ends, clipped to the
    function's domain, in ``dtype``."""
    rng = np.random.default_rng(11)
    info = np.finfo(dtype)
    smallest = math.log10(info.smallest_subnormal)
    magnitudes = 10.0 ** rng.uniform(smallest, math.log10(info.max), 3000)
    overflow = math.log(info.max)
    xs = np.concatenate(
        [
            rng.uniform(-40, 40, 3000),
            rng.uniform(-1, 1, 1000),
            rng.uniform(-overflow - 20, overflow + 20, 1000),
            magnitudes,
            -magnitudes,
        ]
    ).astype(dtype)
    xs = np.concatenate([xs, np.nextafter(dtype(overflow), dtype([-np.inf, np.inf]))])
    return xs[(xs >= low) & (xs <= high)]


def _ulps(actual: float, exact, dtype=np.float64) -> float:
    """|actual - exact| in ulps of exact (a normal float of ``dtype``), inf if
    not finite."""
    if not math.isfinite(actual):
        return math.inf
    bits = np.finfo(dtype).nmant
    spacing = mpmath.mpf(2) ** (mpmath.floor(mpmath.log(abs(exact), 2)) - bits)
    return float(abs(mpmath.mpf(actual) - exact) / spacing)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_within_their_bound_in_ulps_of_mpmath_over_the_whole_range(loops, name, dtype):
    """In float32 too: a pass computing in float32 calls the float32 code."""
    exact, (low, high) = FUNCTIONS[name]
    xs = _points(low, high, dtype)
    out = np.empty_like(xs)
    loops[name](xs, out)
    worst, where = 0.0, None
    info = np.finfo(dtype)
    with mpmath.workdps(40):
        for x, y in zip(xs.tolist(), out.tolist(), strict=True):
            truth = exact(mpmath.mpf(x))
            if truth == 0 or not info.tiny <= abs(truth) <= info.max:
                continue
            error = _ulps(y, truth, dtype)
            if error > worst:
                worst, where = error, x
    assert worst <= BOUND[name], f"{worst:.3g} ulps at x = {where!r}"


SPECIAL = {
    "_exp": [(0.0, 1.0), (-0.0, 1.0), (math.inf, math.inf), (-math.inf, 0.0)],
    "_expm1": [(0.0, 0.0), (-0.0, -0.0), (math.inf, math.inf), (-math.inf, -1.0)],
    "_log": [(0.0, -math.inf), (1.0, 0.0), (math.inf, math.inf), (-1.0, math.nan)],
    "_log1p": [(0.0, 0.0), (-0.0, -0.0), (-1.0, -math.inf), (math.inf, math.inf)],
    "_tanh": [(0.0, 0.0), (-0.0, -0.0), (math.inf, 1.0), (-math.inf, -1.0)],
    "_sigmoid": [(0.0, 0.5), (-0.0, 0.5), (math.inf, 1.0), (-math.inf, 0.0)],
    "_softplus": [(800.0, 800.0), (math.inf, math.inf), (-math.inf, 0.0)],
    "_erf": [(0.0, 0.0), (-0.0, -0.0), (math.inf, 1.0), (-math.inf, -1.0)],
    "_erfc": [(0.0, 1.0), (-0.0, 1.0), (math.inf, 0.0), (-math.inf, 2.0)],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_special_values_are_numpys(loops, name, dtype):
    """inf, -0.0 (sign kept), NaN in, NaN out, subnormals kept by the functions
    that are x near 0; the same as NumPy's ufunc gives (mpmath's, rounded, for
    erf and erfc, which NumPy lacks)."""
    cases = [*SPECIAL[name], (math.nan, math.nan)]
    tiny = float(np.finfo(dtype).smallest_subnormal)
    if name in ("_expm1", "_log1p", "_tanh", "_erf"):
        cases += [(tiny, tiny), (-tiny, -tiny)]
    if name == "_erfc":
        cases += [(tiny, 1.0), (-tiny, 1.0), (28.0, 0.0)]
    xs = np.array([x for x, _ in cases], dtype)
    out = np.empty_like(xs)
    loops[name](xs, out)
    for (x, want), got in zip(cases, out.tolist(), strict=True):
        if math.isnan(want):
            assert math.isnan(got), (x, got)
        else:
            same_sign = math.copysign(1, got) == math.copysign(1, want)
            assert got == want and same_sign, (x, got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_compiled_loop_is_simd_code(loops, name, dtype):
    """LLVM vectorised the loop: its IR works on vectors of doubles (or of
    floats, for the float32 code; a call to libm, a branch it could not turn
    into a select, or a Python-style division check would have kept it
    scalar)."""
    xs = (np.linspace(-3.0, 3.0, 64) + (4.0 if name == "_log" else 0.0)).astype(dtype)
    loops[name](xs, np.empty_like(xs))
    signature = next(
        s for s in loops[name].signatures if str(s[0].dtype) == xs.dtype.name
    )
    ir = loops[name].inspect_llvm(signature)
    if dtype == np.float32 and name.startswith("_erf"):
        assert "x double>" in ir  # erf and erfc compute in float64
    else:
        assert f"x {'float' if dtype == np.float32 else 'double'}>" in ir


def test_polynomials_take_fused_multiply_adds_of_their_arguments_precision():
    """`_mul_add` is LLVM's fmuladd (one FMA instruction where the CPU has it),
    in float32 when all three numbers are, as a*b + c would be."""

    @numba.njit
    def horner(t):
        table = helpers._pick(t, (np.float32(1), np.float32(2)), (1.0, 2.0))
        return helpers._horner(t, table)

    @numba.njit
    def mul_add(a, b, c):
        return helpers._mul_add(a, b, c)

    assert horner(np.float32(3)) == 7.0 and horner(3.0) == 7.0
    assert mul_add(np.float32(0.1), np.float32(3), 0.2) == np.float32(0.1) * 3.0 + 0.2
    for signature in horner.signatures:
        (kind,) = signature
        assert horner.overloads[signature].signature.return_type == kind
        assert f"@llvm.fmuladd.f{kind.bitwidth}" in horner.inspect_llvm(signature)
    mul_add(np.float32(1), np.float32(2), np.float32(3))
    returns = {
        tuple(s): mul_add.overloads[s].signature.return_type for s in mul_add.signatures
    }
    assert returns == {
        (numba.float32, numba.float32, numba.float64): numba.float64,
        (numba.float32, numba.float32, numba.float32): numba.float32,
    }


def test_erfc_of_a_float32_argument_takes_the_float32_fit():
    """A float32 argument gets `_erfc_float32` (float32's fit in float64),
    within float32's 4 ulps (test above) with a third of the work."""

    @numba.njit(error_model="numpy")
    def both(xs, dispatched, short, scale, square):
        for i in range(xs.size):
            dispatched[i] = helpers._erfc(xs[i], scale, square)
            short[i] = helpers._erfc_float32(xs[i], scale, square)

    scale, square = np.float32(-0.70710677), np.float32(0.5)
    xs = np.linspace(-15, 15, 3001).astype(np.float32)
    dispatched, short = np.empty_like(xs), np.empty_like(xs)
    both(xs, dispatched, short, scale, square)
    np.testing.assert_array_equal(dispatched, short)


@pytest.fixture(scope="module")
def mish(tmp_path_factory):
    """A numba Mish module, written to a folder of its own (its cache goes there)."""
    folder = tmp_path_factory.mktemp("numba_mish")
    path = folder / "mish_numba.py"
    path.write_text(symgrad.generate(["mish", "prelu"], target="numba"))
    from symgrad.loader import import_path

    return import_path(path, "mish_numba"), folder


def test_float32_is_computed_in_float64_and_rounded_once_for_accuracy():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(4096) * 5).astype(np.float32)
    layer = symgrad.compile("silu", target="numba", prefer="accuracy")
    y32, y64 = layer().forward(x), layer().forward(x.astype(np.float64))
    assert y32.dtype == np.float32
    np.testing.assert_array_equal(y32, y64.astype(np.float32))


def test_a_memory_pass_computes_float32_sums_in_float32_and_its_tail_in_float64(
    mish,
):
    """Mish's forward sums in 16 float32 lanes, near the float64 result; the
    tail's elements (x < -86.3125, where a float32 factor is subnormal) in
    float64, rounded once: the float32 product keeps every digit there."""
    module, _ = mish
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(4096) * 5, np.linspace(-100, -80, 801)])
    x = x.astype(np.float32)
    narrow, wide = module.Mish(), module.Mish()
    y32, y64 = narrow.forward(x), wide.forward(x.astype(np.float64))
    assert y32.dtype == np.float32
    rounded = y64.astype(np.float32)
    tail = x < -86.3125
    np.testing.assert_array_equal(y32[tail], rounded[tail])
    assert np.any(y32[~tail] != rounded[~tail])  # computed in float32
    np.testing.assert_array_max_ulp(y32, rounded, maxulp=3)
    ir = "".join(
        text
        for signature, text in module._mish_forward_block.inspect_llvm().items()
        if "float32" in str(signature)
    )
    assert "<16 x float>" in ir


def test_out_buffers_are_written_and_checked(mish):
    module, _ = mish
    x = np.linspace(-4, 4, 1000)
    layer = module.Mish()
    out = np.empty_like(x)
    assert layer.forward(x, out=out) is out
    dx = np.empty_like(x)
    assert layer.backward(np.ones_like(x), out=dx) is dx
    np.testing.assert_array_equal(out, module.Mish().forward(x))
    with pytest.raises(ValueError, match="shares memory"):
        layer.forward(x, out=x)


@pytest.mark.parametrize("threads", ["2", "3", "7"])
def test_the_parts_over_threads_give_the_serial_loops_bits(mish, monkeypatch, threads):
    """Split over threads, in parts of whole 4,096-element blocks and a last
    part of what is left, each loop writes the bits of the serial loop: Mish's
    two passes (each with tail elements) and PReLU's backward, whose number
    goes to every part whole and whose per-element gradient is split too."""
    module, _ = mish
    monkeypatch.setenv("SYMGRAD_THREADS", threads)
    x = np.random.default_rng(5).standard_normal(3 * 4096 + 123) * 8
    dout = np.random.default_rng(6).standard_normal(x.size)

    def both(threads):
        out, s, dx = (np.empty_like(x) for _ in range(3))
        module._run(module._mish_forward, threads, x, out, s)
        module._run(module._mish_backward, threads, dout, x, s, dx)
        dweight, dx2 = np.empty_like(x), np.empty_like(x)
        module._run(module._prelu_backward, threads, dout, x, 0.25, dweight, dx2)
        return out, s, dx, dweight, dx2

    for serial, split in zip(both(False), both(True), strict=True):
        np.testing.assert_array_equal(serial, split)


def test_the_layer_splits_over_threads_from_parallel_from(mish, monkeypatch):
    """Below ``parallel_from`` a loop runs once, from it on over threads, with
    the same bits; an instance can move the threshold."""
    module, _ = mish
    taken = []
    run = module._run
    monkeypatch.setattr(
        module, "_run", lambda *a: taken.append((a[0].__name__, a[1])) or run(*a)
    )
    layer = module.Mish()
    x = np.random.default_rng(6).standard_normal(9000) * 10
    expected = (layer.forward(x).copy(), layer.backward(np.ones_like(x)).copy())
    layer.parallel_from = 9000
    got = (layer.forward(x).copy(), layer.backward(np.ones_like(x)).copy())
    assert taken == [
        ("_mish_forward", False),
        ("_mish_backward", False),
        ("_mish_forward", True),
        ("_mish_backward", True),
    ]
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_idle_threads_sleep_and_the_loops_release_the_gil(mish, monkeypatch):
    """After a layer's loops ran over threads, the process takes no CPU time
    while it waits: numba's OpenMP loops (``prange``) left their threads
    spinning for milliseconds, which took the cores from NumPy's matrix
    products.  The loops are compiled without the GIL, so the parts run at
    once, and no loop is numba's ``parallel=True``."""
    module, _ = mish
    monkeypatch.setenv("SYMGRAD_THREADS", "2")
    layer = module.Mish()
    layer.parallel_from = 1
    x = np.random.default_rng(7).standard_normal(1 << 18)
    for _ in range(3):
        layer.forward(x)
        layer.backward(np.ones_like(x))
    started = time.process_time()
    time.sleep(0.05)
    assert time.process_time() - started < 0.002  # OpenMP's threads: 6.6 ms
    for loop in (module._mish_forward, module._mish_backward, module._prelu_forward):
        assert loop.targetoptions["nogil"] is True
        assert not loop.targetoptions.get("parallel")


@pytest.mark.parametrize(
    "expressions, calls",
    [
        ([sympy.Max(X, 0)], 0),
        ([sigmoid(X) + X * sigmoid(X)], 1),  # one call, computed once
        ([softplus(X)], 2),  # a log and an exp
        ([sympy.exp(X) * sympy.tanh(X), sympy.erf(X)], 4),
        ([sigmoid(X) + softplus(X)], 3),
        (from_shared_exponential([sigmoid(X) + softplus(X)]), 2),  # exp, log1p
    ],
)
def test_exp_like_calls_are_counted_once_each(expressions, calls):
    assert exp_like_calls(expressions) == calls


def test_calls_of_one_argument_take_one_exp_in_the_loop(tmp_path):
    """Mish's backward computes its sigmoid from the exp of its merged part,
    and a formula with sigmoid and softplus of one argument takes one exp for
    both; the loop agrees with the NumPy layer within 2 ulps."""
    mish = symgrad.generate(["mish"], target="numba")
    backward = mish.split("def _mish_backward_one")[1].split("\n\n")[0]
    assert backward.count("_exp(") == 1 and "_sigmoid_from(xc, u)" in backward
    act = symgrad.parse("sigmoid(x) + softplus(x)", name="both")
    source = symgrad.generate([act], target="numba")
    forward = source.split("def _both_forward_one")[1].split("\n\n")[0]
    assert forward.count("_exp(") == 1, forward
    assert "_sigmoid_from(" in forward and "_softplus_from(" in forward
    layer = symgrad.compile(act, target="numba")()
    reference = symgrad.compile(act)()
    # Where the value is a normal float (below, NumPy's layer keeps fewer digits).
    x = np.concatenate([np.linspace(-700, 750, 2001), [-np.inf, np.inf, np.nan]])
    y, want = layer.forward(x), reference.forward(x)
    np.testing.assert_array_equal(y[-3:], want[-3:])  # inf, inf, NaN
    np.testing.assert_array_max_ulp(y[:-3], want[:-3], maxulp=2)


def test_parallel_from_falls_with_the_calls_an_element_takes():
    """PARALLEL_WORK / (1 + calls), a power of 2: each layer's measured
    crossover (the benchmark prints both)."""
    thresholds = [numba_target.parallel_from(calls) for calls in range(12)]
    assert thresholds[0] == numba_target.PARALLEL_WORK
    assert all(t & (t - 1) == 0 for t in thresholds)
    assert thresholds == sorted(thresholds, reverse=True)
    assert [
        symgrad.compile(n, target="numba").parallel_from for n in ("relu", "mish")
    ] == [
        numba_target.parallel_from(0),
        numba_target.parallel_from(2),  # one exp forward, one back
    ]


def test_compiled_loops_are_cached_next_to_the_module(mish):
    module, folder = mish
    module.Mish().forward(np.ones(8))
    cached = list((folder / "__pycache__").glob("mish_numba*.nbi"))
    assert cached, "numba wrote no cache index next to the module"


def test_a_learnable_parameters_gradient_is_summed(mish):
    module, _ = mish
    x = np.array([-2.0, -1.0, 3.0])
    layer = module.PRelu(weight=0.5)
    layer.forward(x)
    layer.backward(np.ones_like(x))
    assert layer.grads["weight"] == -3.0


#: GELU-tanh's u = 2 sqrt(2/pi) (x + 0.044715 x**3), as (high, low) pairs.
with mpmath.workdps(40):
    _C1 = 2 * mpmath.sqrt(2 / mpmath.pi)
    _C3 = _C1 * mpmath.mpf(8943) / 200000
_GELU_U = tuple(
    part
    for c in (mpmath.mpf(0), _C1, mpmath.mpf(0), _C3)
    for part in (float(c), float(c - mpmath.mpf(float(c))))
)


@pytest.mark.parametrize(
    "helper, exact",
    [
        ("_exp_of_polynomial", mpmath.exp),
        ("_sigmoid_of_polynomial", lambda u: 1 / (1 + mpmath.exp(-u))),
    ],
)
def test_functions_of_a_polynomial_carry_its_rounding(helper, exact):
    """exp(P(v)) and sigmoid(P(v)) for float64 results within 2 ulps where
    P's rounding alone costs hundreds (GELU-tanh's u at x = -19: 700); for
    float32 results, f of P as computed (the rounding is below float32's)."""
    function = getattr(helpers, helper)

    @numba.njit(error_model="numpy")
    def run(vs, outs, exact_out):
        for i in range(vs.size):
            v = vs[i]
            u = _GELU_U[6] * v * v * v + _GELU_U[2] * v
            outs[i] = function(u, v, _GELU_U, exact_out)

    v = np.concatenate([np.linspace(-25, 10, 701) + 0.0123, [0.0, -19.4877]])
    out = np.empty_like(v)
    run(v, out, True)
    worst = 0.0
    for vi, yi in zip(v.tolist(), out.tolist(), strict=True):
        with mpmath.workdps(60):
            truth = exact(_C1 * vi + _C3 * mpmath.mpf(vi) ** 3)
        if abs(truth) > 2.2250738585072014e-308:
            worst = max(worst, _ulps(yi, truth))
    assert worst <= 2.0
    plain = np.empty_like(v)
    run(v, plain, False)
    with np.errstate(over="ignore"):
        u = _GELU_U[6] * v * v * v + _GELU_U[2] * v
        e = np.exp(-np.abs(u))
        stable = np.where(u < 0, e, 1.0) / (1 + e)
        expected = np.exp(u) if helper == "_exp_of_polynomial" else stable
    np.testing.assert_allclose(plain, expected, rtol=1e-13)


def test_a_product_with_a_subnormal_factor_keeps_its_digits():
    """x*sigmoid(x) through `_tail_product`: within 2 ulps from x = -745 to
    -700 where the product is normal (the plain product: 226 ulps), from a
    factor computed in float64 or read from a float32 cache (x = -95..-85), and
    0 for a factor of 0 (x = -1.8e308), with no overflow."""

    @numba.njit(error_model="numpy")
    def run(xs, factors, outs, float64_out, cached):
        for i in range(xs.size):
            x = xs[i]
            rest = max(x, -1400.0)
            if cached:
                outs[i] = helpers._tail_product(
                    factors[i], rest, rest, float64_out, True
                )
            else:
                outs[i] = helpers._tail_product(factors[i], rest, rest, float64_out)

    def check(xs, factors, dtype, cached):
        out = np.empty_like(xs)
        run(xs, factors, out, dtype == np.float64, cached)
        info = np.finfo(dtype)
        for xi, yi in zip(xs.tolist(), out.astype(dtype).tolist(), strict=True):
            with mpmath.workdps(60):
                truth = xi / (1 + mpmath.exp(-xi))
            if abs(truth) >= info.tiny:
                exponent = mpmath.floor(mpmath.log(abs(truth), 2)) - info.nmant
                assert abs(yi - truth) <= 2 * mpmath.mpf(2) ** exponent, xi

    far = np.linspace(-745, -700, 451) + 0.0123
    sigmoid_far = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(x)))) for x in far])
    check(far, sigmoid_far, np.float64, cached=False)
    near = np.linspace(-95, -85, 101) + 0.0123
    cached = np.array(
        [float(1 / (1 + mpmath.exp(-mpmath.mpf(x)))) for x in near], dtype=np.float32
    ).astype(np.float64)
    check(near, cached, np.float32, cached=True)
    out = np.empty(1)
    with np.errstate(all="raise"):
        run(np.array([-1.7976931348623157e308]), np.zeros(1), out, True, False)
    assert out[0] == 0.0


def test_a_tail_is_computed_again_on_its_elements_in_blocks(mish):
    """Mish's backward computes the sum on every element and the series on
    those beyond x = -5.0625, block by block: each element is the element
    function its side asks for, across block edges and in the last, partial
    block, and the loop split over threads gives the same bits."""
    module, _ = mish
    rng = np.random.default_rng(11)
    x = rng.uniform(-12.0, 3.0, 3 * 4096 + 1000)
    x[[4095, 4096, 8191, 8192, x.size - 1]] = -7.0  # tails at the blocks' edges
    dout = rng.standard_normal(x.size)
    s = np.tanh(np.log1p(np.exp(x)))
    serial, parallel = np.empty_like(x), np.empty_like(x)
    module._mish_backward(dout, x, s, serial)
    module._run(module._mish_backward, True, dout, x, s, parallel)
    np.testing.assert_array_equal(serial, parallel)
    tail = x < -5.0625
    assert 0 < tail.sum() < x.size
    for i in np.flatnonzero(tail)[::97].tolist() + [4095, 4096, x.size - 1]:
        want = module._mish_backward_tail(dout[i], x[i], s[i], True)
        assert serial[i] == want, i
    for i in np.flatnonzero(~tail)[::97]:
        assert serial[i] == module._mish_backward_one(dout[i], x[i], s[i], True), i


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_block_with_a_tail_is_simd_code(mish, dtype):
    """The block's loops (the sums, and the tail's gathered elements) work on
    vectors: a branch per element would have kept them scalar."""
    module, _ = mish
    x = np.linspace(-9.0, 3.0, 512).astype(dtype)
    dx = np.empty_like(x)
    module._mish_backward_block(np.ones_like(x), x, x, dx)
    block = module._mish_backward_block
    signature = next(s for s in block.signatures if str(s[0].dtype) == x.dtype.name)
    ir = block.inspect_llvm(signature)
    assert "x double>" in ir


def test_the_loops_ask_for_512_bit_vectors(mish):
    """Each loop's function carries LLVM's "prefer-vector-width"="512", which
    it takes on a CPU with AVX-512, where LLVM's own tuning stops at 256 bits:
    a loop over the elements, and a pass's block (sums and tail)."""
    from llvmlite import binding

    module, _ = mish
    x = np.linspace(-9.0, 3.0, 512)
    out, s = np.empty_like(x), np.empty_like(x)
    loops = {
        module._prelu_forward: (x, 0.25, out),
        module._mish_forward_block: (x, out, s),
        module._mish_backward_block: (np.ones_like(x), x, s, np.empty_like(x)),
    }
    avx512 = binding.get_host_cpu_features().get("avx512f", False)
    for loop, arguments in loops.items():
        loop(*arguments)
        ir = loop.inspect_llvm(loop.signatures[0])
        assert '"prefer-vector-width"="512"' in ir, loop.__name__
        if avx512:
            assert "<8 x double>" in ir, loop.__name__


def test_products_with_a_subnormal_factor_are_a_tail_of_their_own():
    """A `tail_product` is computed plainly in the sums; its exact path is a
    tail, with its condition solved for x where SymPy can (GELU-tanh's cubic
    exponent below log(tiny) + 1 is x < -9.956, rounded up to a 16th).  A
    float32 result computed in float64 skips it (the flag), unless the factor
    is read from the cache; a series' tail that holds it adds no condition."""
    from symgrad.functions import tail_product

    def passes(name):
        from symgrad.layer import layer_formulas

        formulas = layer_formulas(symgrad.derive(name))
        forward, _ = numba_target._for_fused_loops(formulas.forward)
        backward, _ = numba_target._for_fused_loops(formulas.backward)
        return forward, backward, [s for s, _ in formulas.reads]

    forward, _, _ = passes("silu")
    plain, conditions, nodes, float64_only = numba_target.split_tails(forward)
    assert not any(expr.has(tail_product) for _, expr in plain)
    assert any(isinstance(n, tail_product) for n in nodes)
    assert [str(c) for c in conditions] == ["x < -86.3125"]
    assert float64_only == frozenset(conditions)

    forward, backward, loaded = passes("gelu_tanh")
    _, conditions, _, _ = numba_target.split_tails(forward)
    assert [str(c) for c in conditions] == ["x < -9.9375"]
    # Backward: the series' tail x < -2.0625 holds the cached product's.
    _, conditions, nodes, float64_only = numba_target.split_tails(backward, loaded)
    assert [str(c) for c in conditions] == ["x < -2.0625"]
    assert any(isinstance(n, tail_product) for n in nodes)
    assert float64_only == frozenset()


@pytest.fixture(scope="module")
def silu(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numba_silu")
    path = folder / "silu_numba.py"
    path.write_text(symgrad.generate(["silu"], target="numba"))
    from symgrad.loader import import_path

    return import_path(path, "silu_numba")


def test_the_product_tail_takes_the_exact_product_across_blocks(silu):
    """SiLU's forward: x*sigmoid(x) from exp(x) below x = -86.3 (where sigmoid
    is below float32's normal range), at block edges too; the plain product
    elsewhere, with the same bits over threads."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-800.0, 5.0, 2 * 4096 + 77)
    x[[4095, 4096, x.size - 1]] = -720.0
    serial = [np.empty_like(x), np.empty_like(x)]
    parallel = [np.empty_like(x), np.empty_like(x)]
    silu._silu_forward(x, *serial)
    silu._run(silu._silu_forward, True, x, *parallel)
    np.testing.assert_array_equal(serial[0], parallel[0])
    with mpmath.workdps(30):
        for i in [4095, 4096, x.size - 1, *range(0, x.size, 301)]:
            truth = mpmath.mpf(x[i]) / (1 + mpmath.exp(-mpmath.mpf(x[i])))
            if abs(truth) >= np.finfo(np.float64).tiny:
                assert _ulps(serial[0][i], truth) <= 2.0, (i, x[i])


def test_the_flag_is_a_constant_of_the_loop():
    """`_holds_float64` is a constant of the array's type: in Mish's forward
    under prefer='accuracy' (float32 computed in float64), whose product tail
    only float64 results need, the float32 block drops the tail (no array to
    gather it into), the float64 block keeps it."""
    import sys

    layer = symgrad.compile("mish", target="numba", prefer="accuracy")
    module = sys.modules[layer.__module__]
    for dtype, kept in ((np.float32, False), (np.float64, True)):
        x = np.linspace(-3.0, 3.0, 64).astype(dtype)
        block = module._mish_forward_block
        block(x, np.empty_like(x), np.empty_like(x))
        signature = next(
            s for s in block.signatures if s[0].dtype == numba.from_dtype(dtype)
        )
        assert ("NRT_MemInfo_alloc" in block.inspect_llvm(signature)) == kept, dtype


@pytest.mark.parametrize("name", sorted(symgrad.CATALOG))
def test_a_native_pass_has_no_float64_number(name):
    """A pass that computes in its arrays' precision writes every number as
    ``_like(reference, c)``: one float64 literal (``1.0 / u``) would make its
    float32 arithmetic float64 from there on.  Its tail, if it reads float64,
    may."""
    from symgrad.layer import layer_formulas

    act = symgrad.activation(name)
    layer = numba_target.layer_source(layer_formulas(symgrad.derive(act)))
    for part in (layer.forward, layer.backward):
        if "np.float64(" in part.reads:
            continue
        for line in part.lines:
            code = re.sub(r"_like\(\w+, -?[0-9.e+-]+\)|_[A-Z0-9_]+", "", line)
            code = code.split("#")[0]
            assert not re.search(r"(?<![\w.])[0-9]+\.[0-9]*", code), (name, line)
