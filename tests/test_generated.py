"""Generated layers, table-driven over the whole catalog: adding a row adds tests."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import symgrad
from symgrad.layer import shared_part
from symgrad.model import X, Y
from symgrad.verify import evaluate_fixed as evaluate

from .conftest import layer_class, load_generated, policy

NAMES = sorted(symgrad.CATALOG)


def _points(rng, shape, kink_gap=1e-3):
    """Random inputs in [-5, 5], kept away from the kink at 0."""
    x = rng.uniform(-5.0, 5.0, shape)
    return np.where(np.abs(x) < kink_gap, kink_gap, x)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_central_differences(catalog_module, name):
    """backward agrees with finite differences on random n-d arrays (the seed's check)."""
    rng = np.random.default_rng(1)
    layer = layer_class(catalog_module, name)()
    result = symgrad.gradcheck(layer, _points(rng, (7, 11)))
    assert result.passed


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_agree_with_mpmath(catalog_module, name):
    """Values and derivatives match the SymPy definition evaluated at 30 digits.

    Tolerances are issue #3's float64 bar (rtol 1e-9, atol 1e-12): an output form
    such as 1 - y**2 loses relative accuracy where the derivative is tiny.
    """
    derivation = symgrad.derive(name)
    layer = layer_class(catalog_module, name)()
    xs = np.array([-7.5, -2.0, -0.3, 0.4, 1.7, 6.0])
    out = layer.forward(xs)
    dx = layer.backward(np.ones_like(xs))
    for xi, yi, di in zip(xs, out, dx, strict=True):
        point = {X: xi, **derivation.activation.values}
        expected_y = float(evaluate(derivation.forward, point))
        expected_dy = float(evaluate(derivation.derivative, point))
        assert yi == pytest.approx(expected_y, rel=1e-9, abs=1e-12)
        assert di == pytest.approx(expected_dy, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [3, 2.5, np.float32(-1.5), np.array(0.75)])
def test_scalars_and_zero_d_arrays(catalog_module, name, value):
    """Python and NumPy scalars and 0-d arrays go through forward and backward."""
    layer = layer_class(catalog_module, name)()
    out = layer.forward(value)
    assert np.shape(out) == ()
    assert np.shape(layer.backward(1.0)) == ()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_preserved(catalog_module, name, dtype):
    """float16/32/64 in gives the same dtype out, forward and backward."""
    layer = layer_class(catalog_module, name)()
    x = np.linspace(-3, 3, 13).astype(dtype)
    assert layer.forward(x).dtype == dtype
    assert layer.backward(np.ones_like(x)).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_integer_input_is_promoted_to_float64(catalog_module, name):
    layer = layer_class(catalog_module, name)()
    assert layer.forward(np.arange(-3, 4)).dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_nan_in_nan_out(catalog_module, name):
    """NaN input gives NaN output, whichever branch would hold."""
    layer = layer_class(catalog_module, name)()
    assert np.isnan(layer.forward(np.array([np.nan]))).all()


@pytest.mark.parametrize("name", NAMES)
def test_extreme_inputs_raise_no_floating_point_errors(catalog_module, name):
    """No overflow or invalid-value error where the true result is finite."""
    derivation = symgrad.derive(name)
    layer = layer_class(catalog_module, name)()
    magnitudes = [1e-300, 1e-8, 1.0, 20.0, 40.0, 89.0, 710.0, 1e10, 1e300]
    xs = np.array([s * m for m in magnitudes for s in (1.0, -1.0)])
    for xi in xs:
        point = {X: float(xi), **derivation.activation.values}
        expected = evaluate(derivation.forward, point)
        slope = evaluate(derivation.derivative, point)
        if expected is None or slope is None or abs(float(expected)) > 1e300:
            continue  # the true result is not a finite float64 (exp(710) is not)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            layer.forward(np.array([xi]))
            layer.backward(np.array([1.0]))


@pytest.mark.parametrize("name", NAMES)
def test_backward_before_forward_is_a_clear_error(catalog_module, name):
    layer = layer_class(catalog_module, name)()
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        layer.backward(1.0)


@pytest.mark.parametrize("name", NAMES)
def test_dout_of_the_wrong_shape_is_a_clear_error(catalog_module, name):
    layer = layer_class(catalog_module, name)()
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dout has shape \(3, 2\)"):
        layer.backward(np.zeros((3, 2)))


@pytest.mark.parametrize("name", NAMES)
def test_backward_leaves_dout_and_cache_untouched(catalog_module, name):
    layer = layer_class(catalog_module, name)()
    x = np.linspace(-2, 2, 9)
    layer.forward(x)
    cached = {
        k: np.copy(v) for k, v in vars(layer).items() if isinstance(v, np.ndarray)
    }
    dout = np.linspace(1, 2, 9)
    before = dout.copy()
    layer.backward(dout)
    np.testing.assert_array_equal(dout, before)
    for key, value in cached.items():
        np.testing.assert_array_equal(getattr(layer, key), value)


@pytest.mark.parametrize("name", NAMES)
def test_forward_caches_only_what_backward_needs(catalog_modules, style, name):
    """The constructor sets exactly the planned cache to None; forward fills it.
    A mask or a shape does not say the gradient's dtype, so fast layers keep it
    (readable ones return dout's dtype, as the book's do)."""
    derivation = symgrad.derive(name, prefer=policy(style))
    saves = derivation.saves
    attribute = {"output": "out", "input": "x", "mask": "mask", "nothing": "shape"}[
        saves
    ]
    layer = layer_class(catalog_modules[style], name)()
    parameters = {p.name for p in symgrad.activation(name).params} | {"params", "grads"}
    state = {k: v for k, v in vars(layer).items() if k not in parameters}
    expected = {attribute: None}
    if saves in ("mask", "nothing") and style.startswith("fast"):
        expected["dtype"] = None
    shared = shared_part(derivation)
    if shared is not None:  # the part both passes use is cached as s
        expected = {"s": None}
        if shared.derivative.has(X):
            expected["x"] = None
        if shared.derivative.has(Y):
            expected["out"] = None
        attribute = "s"
    assert state == expected
    layer.forward(np.linspace(-1, 1, 4))
    cached = getattr(layer, attribute)
    assert cached is not None
    if saves == "mask":
        assert cached.dtype == np.bool_


#: The options of each module the determinism tests compare across processes.
VARIANTS = {
    "readable": {},
    "fast": {"fast": True},
    "readable accuracy": {"prefer": "accuracy"},
    "fast accuracy": {"fast": True, "prefer": "accuracy"},
    "torch": {"target": "torch"},
    "jax": {"target": "jax"},
    "numba": {"target": "numba"},
}


def test_generation_is_deterministic(style):
    """The same activations give byte-identical modules twice in a process."""
    first = symgrad.generate(NAMES, **VARIANTS[style])
    assert symgrad.generate(NAMES, **VARIANTS[style]) == first


def test_every_variant_is_the_same_in_another_process(tmp_path):
    """Each variant's module of the whole catalog, generated in one new process
    with an empty cache (and another hash seed), is byte-identical to this
    process's.  One process for all: deriving the catalog takes 12-15 s."""
    code = (
        "import json, symgrad, sys; "
        f"json.dump({{k: symgrad.generate({NAMES!r}, **o) for k, o in {VARIANTS!r}"
        ".items()}, sys.stdout)"
    )
    env = os.environ | {"SYMGRAD_CACHE": str(tmp_path), "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    other = json.loads(done.stdout)
    for variant, options in VARIANTS.items():
        assert other[variant] == symgrad.generate(NAMES, **options), variant


@pytest.mark.parametrize(
    "fast, template, command",
    [
        (False, "templates/numpy/module.py.j2", "symgrad generate relu sigmoid"),
        (
            True,
            "templates/numpy_fast/module.py.j2",
            "symgrad generate relu sigmoid --fast",
        ),
    ],
)
def test_header_names_generator_version_and_command(fast, template, command):
    lines = symgrad.generate(["relu", "sigmoid"], fast=fast).splitlines()
    assert lines[0] == (
        f"# Generated by symgrad {symgrad.__version__} from {template}. Do not edit."
    )
    assert lines[1] == f"# Regenerate with: {command}"


def test_generated_module_is_ruff_clean(tmp_path, style):
    """ruff check and ruff format --check accept the whole catalog's module."""
    path = tmp_path / "layers.py"
    path.write_text(symgrad.generate(NAMES, fast=style == "fast"))
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--isolated", str(path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "fast, stdlib",
    [
        (False, []),
        (
            True,
            [
                "import os",
                "import threading",
                "from concurrent.futures import ThreadPoolExecutor",
                "from functools import cache",
            ],
        ),
    ],
)
def test_generated_module_imports_only_numpy_and_the_standard_library(
    tmp_path, fast, stdlib
):
    """Importing a generated module pulls in neither sympy nor jinja2 nor symgrad.
    The readable module imports NumPy alone; a fast one also what its thread pool
    needs from the standard library."""
    path = tmp_path / "layers.py"
    path.write_text(symgrad.generate(NAMES, fast=fast))
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import layers; "
        "bad = [m for m in ('sympy', 'jinja2', 'symgrad') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
    imports = [
        line
        for line in path.read_text().splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert imports == [*stdlib, "import numpy as np"]
    modules = {line.split()[1].split(".")[0] for line in imports}
    assert modules - {"numpy"} <= sys.stdlib_module_names


def test_class_docstring_gives_formula_and_derivative():
    module_source = symgrad.generate("sigmoid")
    assert "y = 1/(1 + exp(-x))" in module_source
    assert "= y*(1 - y)  (in the output y)" in module_source
    assert r"\frac{dy}{dx} = y \left(1 - y\right)" in module_source


def test_layers_round_trip_through_a_real_file(tmp_path):
    """A module written to disk imports and its classes work like compiled ones."""
    module = load_generated(symgrad.generate(["relu", "sigmoid"]), tmp_path)
    assert module.Relu().forward(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("name", NAMES)
def test_fast_layers_run_the_readable_statements_on_small_arrays(
    catalog_modules, fast_as_generated, name
):
    """Below _SMALL elements, without out=, a fast layer computes exactly what the
    readable one does; with out=, or from _SMALL on, its kernels run."""
    x = np.linspace(-6, 6, 301)
    dout = np.cos(x)
    readable = layer_class(catalog_modules["readable"], name)()
    fast = layer_class(fast_as_generated, name)()
    np.testing.assert_array_equal(fast.forward(x), readable.forward(x))
    np.testing.assert_array_equal(fast.backward(dout), readable.backward(dout))
    assert x.size < fast_as_generated._SMALL
    big = np.linspace(-6, 6, fast_as_generated._SMALL + 1)
    np.testing.assert_allclose(
        layer_class(fast_as_generated, name)().forward(big),
        readable.forward(big),
        rtol=1e-13,
        atol=1e-300,
    )


@pytest.mark.parametrize("target", ["torch", "jax", "numba"])
def test_framework_targets_are_ruff_clean_and_headed(tmp_path, target):
    """Each target's module of the whole catalog: ruff check and ruff format
    accept it, and it says what generated it and how to regenerate it (that it
    is the same in another process, test_every_variant_is_the_same_...)."""
    source = symgrad.generate(NAMES, target=target)
    lines = source.splitlines()
    assert lines[0] == (
        f"# Generated by symgrad {symgrad.__version__} from "
        f"templates/{target}/module.py.j2. Do not edit."
    )
    assert lines[1].startswith(f"# Regenerate with: symgrad generate {NAMES[0]} ")
    assert lines[1].endswith(f" --target {target}")
    path = tmp_path / "layers.py"
    path.write_text(source)
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--isolated", str(path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("prefer", symgrad.model.PREFERENCES)
def test_each_layer_alone_defines_every_helper_it_calls(tmp_path, prefer):
    """A module of one layer carries the helpers that layer calls, and no other,
    in every target and style: ruff's undefined-name and unused checks (F821,
    F811, F401) pass on each.  The whole catalog's module would hide a helper
    left out for one layer (numba's celu called ``_expm1`` without defining it)
    when another layer brings it in."""
    variants = [("numpy", False), ("numpy", True)] + [
        (target, False) for target in ("torch", "jax", "numba")
    ]
    paths = []
    for target, fast in variants:
        for name in NAMES:
            source = symgrad.generate([name], target=target, fast=fast, prefer=prefer)
            style = "fast" if fast else "readable"
            path = tmp_path / f"{target}_{style}_{name}.py"
            path.write_text(source)
            paths.append(path)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
