"""Block kernels: the rules of the emitted source, out= buffers and memory."""

import inspect
import re
import tracemalloc

import numpy as np
import pytest
import sympy
from sympy import Max, Piecewise, exp, log, sqrt

import symgrad
from symgrad.functions import sigmoid
from symgrad.layer import layer_formulas, shared_part
from symgrad.model import MASK, X, Y
from symgrad.targets import numpy_fast_helpers as runtime
from symgrad.targets.numpy_fast import layer_source
from symgrad.targets.numpy_kernels import HELPERS, emit_kernel

from .conftest import layer_class

NAMES = sorted(symgrad.CATALOG)
alpha = sympy.Symbol("alpha", real=True)
SYMBOLS = {X: "x", Y: "y", MASK: "mask", alpha: "self.alpha"}
ARRAYS = {X, Y, MASK}

# What a kernel line may be: a ufunc or helper writing into a buffer, a copy, a
# clip that names its result, or a scalar of parameters.  Nothing else allocates.
LINE = re.compile(
    r"^(np\.\w+\(.*out=\w+\)"  # np.multiply(a, b, out=t0)
    r"|\w+ [-+*/]= [^=]+"  # t0 *= y: the same ufunc, in place
    r"|np\.copyto\(\w+, [^()]*(, where=\w+)?\)"  # np.copyto(out, t0, where=b0)
    r"|_(sigmoid|softplus|erfc|erf|log1p|expm1)_into\([\w, ]+\)"  # _erf_into(x, t0)
    r"|_erfc_into\([\w, ]+, scale=[-\d.e]+, square=[\d.e-]+\)"  # erfc(scale*x)
    r"|_scaled_into\([\w., ]+(, divide=True)?, out=\w+\)"  # beta*x, overflow quiet
    # _near_zero_into(x, 1.55, 3, self._NEAR_ZERO, out=out): a subset, in place
    r"|_near_zero_into\(\w+, [\d.e-]+, \d+, self\._NEAR_ZERO\w*, out=\w+\)"
    # _near_root_into(x, self._NEAR_ROOT, out=out): the window's elements
    r"|_near_root_into\(\w+, self\._NEAR_ROOT\w*, out=\w+\)"
    # _near_tail_into(x, self._NEAR_TAIL, out=dx): the tail's elements
    r"|_near_tail_into\(\w+, self\._NEAR_TAIL\w*, out=\w+\)"
    # _tail_product_into(s, t0, x, out=out): the subnormal-factor elements again
    r"|_tail_product_into\([\w., ]+, out=\w+\)"
    r"|_tail_product_of_polynomial_into\([\w, ]+, self\._POLYNOMIAL\w*, out=\w+\)"
    # _sigmoid_of_polynomial_into(t1, c0, self._POLYNOMIAL, beyond=1.1, out=t3)
    r"|_(sigmoid|exp)_of_polynomial_into\(\w+, \w+, self\._POLYNOMIAL\w*"
    r"(, beyond=[\d.e-]+)?, out=\w+\)"
    r"|c\d+ = _(clip|finite|tame)_into\(.*out=t\d+\)"  # c0 = _clip_into(x, ...)
    r"|s\d+ = [^\[\]]*"  # s0 = float(...) / self.beta
    r"|t\d+\.fill\([^()]*\)"  # t0.fill(0.0), for np.maximum against a constant
    r"|# .*)$"
)


def kernel_lines(name):
    source = layer_source(layer_formulas(symgrad.derive(name)))
    return source.forward.lines + source.backward.lines


def emitted(expr):
    return emit_kernel([("out", expr)], SYMBOLS, ARRAYS).lines


@pytest.mark.parametrize("name", NAMES)
def test_every_kernel_line_writes_into_a_buffer(name):
    """No line allocates a temporary: each writes with out= (or names a clip)."""
    for line in kernel_lines(name):
        assert LINE.match(line.strip()), line


@pytest.mark.parametrize("name", NAMES)
def test_kernels_never_use_slow_paths(name):
    """No ** (x**3 is 260x slower than x*x*x), no logaddexp (27x slower than the
    softplus helper), no boolean-mask assignment, no NumPy-scalar constants."""
    text = "\n".join(kernel_lines(name))
    assert "**" not in text
    assert "logaddexp" not in text
    assert not re.search(r"\[[^\]]*\]\s*=", text)
    assert not re.search(r"np\.(sqrt|exp|log)\(\d", text)
    assert "np.pi" not in text and "np.e," not in text


@pytest.mark.parametrize(
    "expr, expected",
    [
        (X**2, ["np.square(x, out=out)"]),
        (X**3, ["np.square(x, out=out)", "out *= x"]),
        (X**5, ["np.square(x, out=out)", "np.square(out, out=out)", "out *= x"]),
        # (1/x)**2, not 1/x**2: x**2 overflows where the quotient is finite.
        (X**-2, ["np.divide(1.0, x, out=t0)", "np.square(t0, out=out)"]),
        (sqrt(X), ["np.sqrt(x, out=out)"]),
        (sqrt(2) * X, ["np.multiply(x, 1.4142135623730951, out=out)"]),
        (X / 3, ["np.divide(x, 3.0, out=out)"]),
        (alpha * X, ["np.multiply(x, self.alpha, out=out)"]),
        (Max(X, 0), ["t0.fill(0.0)", "np.maximum(x, t0, out=out)"]),
        (sigmoid(X), ["_sigmoid_into(x, out)"]),
        (Piecewise((Y, MASK), (0, True)), ["np.multiply(y, mask, out=out)"]),
    ],
    ids=str,
)
def test_emission_rules(expr, expected):
    assert emitted(expr) == expected


def test_common_subexpressions_are_computed_once():
    e = exp(-abs(X))
    lines = emitted(e / (1 + e) + e)
    assert sum("np.exp(" in line for line in lines) == 1


def test_an_operand_that_dies_is_overwritten_in_place():
    """tanh(exp(x)) needs one buffer, not two; the first computed operand of the
    result goes straight into the output."""
    assert emitted(sympy.tanh(exp(X)) * Y) == [
        "np.exp(x, out=t0)",
        "np.tanh(t0, out=out)",
        "out *= y",
    ]
    assert emitted(sympy.tanh(exp(X)) * Y + X) == [
        "np.exp(x, out=t0)",
        "np.tanh(t0, out=out)",
        "out *= y",
        "out += x",
    ]


def test_a_select_lets_nan_reach_the_branch_that_depends_on_x():
    lines = emitted(Piecewise((X, X > 0), (0, True)))
    assert lines[-1] == "np.copyto(out, 0.0, where=b0)"
    assert "np.less_equal(x, 0.0, out=b0)" in lines


def test_helpers_with_scratch_get_distinct_buffers():
    """A helper that needs scratch never receives its argument as out."""
    line = emitted(log(1 + exp(sympy.tanh(X))))[-1]
    args = [a.strip() for a in line[line.index("(") + 1 : -1].split(",")]
    assert len(set(args)) == len(args)


def test_helper_scratch_counts_match_the_runtime_signatures():
    for helper, scratch in HELPERS.values():
        parameters = inspect.signature(getattr(runtime, helper)).parameters
        required = [p for p in parameters.values() if p.default is p.empty]
        assert len(required) == 2 + scratch, helper


def test_long_calls_are_wrapped_as_ruff_formats_them():
    expr = sympy.Float(0.123456789012345) * X + sympy.Float(1.98765432109876)
    lines = emit_kernel(
        [("a_rather_long_output_buffer_name_for_the_test", expr)], SYMBOLS, ARRAYS
    ).lines
    assert all(8 + len(line) <= 88 for line in lines)


# -- out= buffers -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "prelu", "identity"])
def test_out_buffers_receive_the_results(fast_catalog_module, name):
    x = np.linspace(-4, 4, 1001)
    dout = np.cos(x)
    plain = layer_class(fast_catalog_module, name)()
    expected_y, expected_dx = plain.forward(x), plain.backward(dout)
    layer = layer_class(fast_catalog_module, name)()
    out, dx = np.empty_like(x), np.empty_like(x)
    assert layer.forward(x, out=out) is out
    assert layer.backward(dout, out=dx) is dx
    np.testing.assert_array_equal(out, expected_y)
    np.testing.assert_array_equal(dx, expected_dx)


@pytest.mark.parametrize(
    "buffer, message",
    [
        (
            np.empty(5),
            r"shape \(5,\) and dtype float64, but the result has shape \(4,\)",
        ),
        (np.empty(4, np.float32), "dtype float32, but the result has shape"),
        (np.empty(8)[::2], "writeable, C-contiguous"),
        ([0.0] * 4, "must be a NumPy array, not list"),
    ],
    ids=["shape", "dtype", "strided", "list"],
)
def test_a_bad_out_buffer_is_a_clear_error(fast_catalog_module, buffer, message):
    layer = layer_class(fast_catalog_module, "sigmoid")()
    with pytest.raises((ValueError, TypeError), match=message):
        layer.forward(np.zeros(4), out=buffer)


def test_out_may_not_overwrite_what_backward_needs(fast_catalog_module):
    x = np.linspace(-1, 1, 8)
    gelu = layer_class(fast_catalog_module, "gelu")()
    with pytest.raises(ValueError, match="shares memory"):
        gelu.forward(x, out=x)
    sigmoid_layer = layer_class(fast_catalog_module, "sigmoid")()
    y = sigmoid_layer.forward(x)
    with pytest.raises(ValueError, match="shares memory"):
        sigmoid_layer.backward(np.ones(8), out=y)


def test_blocks_and_their_ragged_end_give_the_same_values(fast_catalog_module):
    """Sizes around the block length agree with one long evaluation."""
    layer = layer_class(fast_catalog_module, "silu")()
    x = np.linspace(-30, 30, 3 * 65536 + 7)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    for n in (1, 65535, 65536, 65537):
        part = layer_class(fast_catalog_module, "silu")()
        np.testing.assert_array_equal(part.forward(x[:n]), y[:n])
        np.testing.assert_array_equal(part.backward(np.ones(n)), dx[:n])


def test_parameter_gradients_do_not_depend_on_the_block_split(fast_catalog_module):
    """Per-block sums are added in block order: the same for any split."""
    x = np.random.default_rng(1).standard_normal(100_000)
    layer = layer_class(fast_catalog_module, "prelu")()
    layer.forward(x)
    layer.backward(np.ones_like(x))
    expected = float(np.sum(np.minimum(x, 0.0)))
    assert layer.grads["weight"] == pytest.approx(expected, rel=1e-13)


# -- memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_allocate_only_results_and_cache(
    fast_catalog_module, name
):
    """Peak extra memory of forward+backward is the output, dx and the cache
    (a bool mask is an eighth of float64, a part both passes use, such as
    sigmoid(x), a whole array), plus scratch bounded by the block size."""
    x = np.linspace(-6, 6, 1_000_000)
    dout = np.ones_like(x)
    layer = layer_class(fast_catalog_module, name)()
    derivation = symgrad.derive(name)
    cached = {"mask": 1 / 8}.get(derivation.saves, 0.0)
    cached += 1.0 if shared_part(derivation) is not None else 0.0
    # Once first: the threads' scratch buffers are kept from call to call (and
    # grown to the most any layer asked for), so that a warm call allocates none.
    layer.forward(x)
    layer.backward(dout)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        layer.forward(x)
        layer.backward(dout)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    scratch = 16 * 524_288
    assert peak <= (2 + cached) * x.nbytes + scratch


@pytest.mark.parametrize(
    "name, part, helper",
    [("silu", "sigmoid(x)", "_sigmoid"), ("gelu", "erfc(", "_erfc")],
)
def test_the_part_both_passes_use_is_cached_not_recomputed(name, part, helper):
    """SiLU's backward reads sigmoid(x) from the cache instead of computing it."""
    formulas = layer_formulas(symgrad.derive(name))
    source = layer_source(formulas)
    assert "s" in source.cache and part in str(formulas.shared.part)
    assert any(helper in line for line in source.forward.lines)
    assert not any(helper in line for line in source.backward.lines)


def test_a_clip_is_dropped_only_where_the_part_has_saturated():
    from symgrad.functions import clip
    from symgrad.sharing import S, _replace

    part = sympy.tanh(X)
    assert _replace(sympy.tanh(clip(X, -20, 20)), part, {}) == S  # tanh(20) == 1.0
    assert _replace(sympy.tanh(clip(X, -2, 2)), part, {}) != S  # tanh(2) != 1.0


def test_a_two_valued_gradient_on_a_mask_is_a_branch_free_factor(fast_catalog_module):
    """LeakyReLU: mask*1 + (not mask)*slope, then dout times it; exact on both
    sides, infinite dout included."""
    lines = kernel_lines("leaky_relu")
    assert not any("where=" in line for line in lines)
    layer = layer_class(fast_catalog_module, "leaky_relu")()
    layer.forward(np.array([-2.0, -0.0, 3.0, 1e-300, -1e-300]))
    dx = layer.backward(np.array([3.0, np.inf, -np.inf, 7.0, 5.0]))
    assert dx.tolist() == [0.03, 0.01 * np.inf, -np.inf, 7.0, 0.01 * 5.0]
