"""Long generated lines are split as ruff format splits them, for every target."""

import keyword
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import symgrad
from symgrad.formula import _TEMPORARY, RESERVED
from symgrad.layout import wrap_long_lines

TARGETS = ("numpy", "torch", "jax", "numba")


def _ruff_format(source: str, tmp_path) -> str:
    path = tmp_path / "formatted.py"
    path.write_text(source)
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--isolated", "-q", str(path)],
        check=True,
    )
    return path.read_text()


@pytest.mark.parametrize(
    "source",
    [
        "def f(self, alpha=1.0, beta=2.0, gamma=3.0, delta=4.0, eps=0.5, zeta=0.1, "
        "device=None):\n    pass\n",
        "x = g(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, "
        "cccccccccccccccccccccccccccccc)\n",
        "def f():\n    return (dx, h(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb))\n",
        'd = {"key": g(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa), "other": '
        "h(bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)}\n",
        "def f():\n    return dxxxxxxxxxxxxxxxxxxxxxxxxxx, g(daaaaaaaaaaaaaaaaaaaaaa, a0), "
        "g(daaaaaaaaaaaaaaaaaaaaa, a1)\n",
        "ab, cd = gggggggggggggggggggggggggggggggggg(xxxxxxxxxxxxxxxxxxxxxxxxxx), "
        "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh(y)\n",
        "x = ff(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa + bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)\n",
        "if True:\n    value = fffffffffffffffffffffffffffffffffffff(a=1, b=2)[0] + "
        "ggggggggggggggggggggg(c, d)\n",
        "def f():\n    u2 = u3 + self.n3f03l56qd9top6srcqddw4frrjcdetlfvpxh + self.sf + "
        "self.sz5vu4k + self.wtbof3dh3\n",
        "def f():\n    dx = dout * np.exp(self.n3f03l56qd9top6srcqddw4frrjcdetlfvpxh * "
        "self.sfaaaaaaaaaaaa * xxxxx)\n",
        "def f():\n    dx += self.n3f03l56qd9top6srcqddw4frrjcdetlfvpxh * "
        "self.sfaaaaaaaaaaaa * np.exp(xxxxxxxxxxxx)\n",
        "def f():\n    dx = self.n3f03l56qd9top6srcqddw4frrjcdetlfvpxh * "
        "self.sfaaaaaaaaaaaa + np.exp(xxxxxxxxxxxx)\n",
        "def f():\n    return -self.n3f03l56qd9top6srcqddw4frrjcdetlfvpxh * "
        "self.sfaaaaaaaaaaaa * (xxxxxxxxxxxx - 1.0)\n",
        "def f():\n    return _pnsamg_koc988wn_forward(x, "
        "n3f03l56qd9top6srcqddw4frrjcdetlfvpxh, sf, wtbof3dh3, sz5vu4k)[0]\n",
        "def f():\n    x, zo7za7p0klvpe78klyb5n0pc6m57epz2h9dy, cg3c6pabt2r_ki8u715_8, s8 = "
        "ctx.saved_tensors\n",
        "def f():\n    sp9v, lxzt2v75kbjqo9ihl_dg7rgnqe96fenl50bx, "
        "psom4p01x7m3eq_ma7y54ez50cw2amta7ht5, x798 = ctx.params\n",
        "y = f(x)\n",
        # The call's opening line would not fit: the value goes in parentheses,
        # or, where the targets and " = (" do not fit either, the targets do.
        "for i in r:\n    dp9ziwc734v6l65dpwilw9s[i], dido344gygpaxy0dy_6a1wgwl73os[i], "
        "dxs[i] = _y280_backward_one(float(douts[i]), float(xs[i]), p9ziwc734v6l65dpwilw9, "
        "ido344gygpaxy0dy_6a1wgwl73o, uc4k3, hgbvf)\n",
        "for i in r:\n    dp9ziwc734v6l65dpwilw9s[i], dido344gygpaxy0dy_6a1wgwl73os[i], "
        "dxs[i] = _y2(float(douts[i]))\n",
        "for i in r:\n    dp9ziwc734v6l65dpwilw9s[i], dido344gygpaxy0dy_6a1wgwl73os[i], "
        "dxsxxxxxxxxxxxxxxxxxxxx[i] = _y2(float(douts[i]))\n",
        "def f():\n    return _pnsamg_koc988wn_forward_with_a_very_long_name_indeed_so_long(x)\n",
        'def f(self):\n    return f"a={self.a}, b_long_name_long_long_long={self.b_long_name_long_long_long}, c={self.c}"\n',
    ],
)
def test_lines_are_split_as_ruff_splits_them(source, tmp_path):
    assert wrap_long_lines(source) == _ruff_format(source, tmp_path)


_identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n)
)
_targets = st.one_of(
    _identifiers,
    _identifiers.map(lambda n: f"{n}[i]"),
    _identifiers.map(lambda n: f"self.{n}"),
)
_operands = st.one_of(
    _targets,
    _identifiers.map(lambda n: f"float({n}[i])"),
    st.floats(0.5, 1e6).map(repr),
)
_calls = st.builds(
    lambda name, args, index: f"{name}({', '.join(args)}){index}",
    _identifiers,
    st.lists(_operands, max_size=6),
    st.sampled_from(["", "", "[0]"]),
)
_values = st.one_of(
    _calls,
    _operands,
    st.builds(
        lambda parts, operator: f" {operator} ".join(parts),
        st.lists(st.one_of(_calls, _operands), min_size=2, max_size=4),
        st.sampled_from(["+", "*"]),
    ),
)
_statements = st.builds(
    lambda targets, value: (
        f"{', '.join(targets)} = {value}" if targets else f"return {value}"
    ),
    st.lists(_targets, max_size=4),
    _values,
)


def _nested(statement: str, depth: int) -> str:
    """``statement`` in a function, ``depth`` blocks deep."""
    blocks = "".join(f"{'    ' * d}if x:\n" for d in range(1, depth))
    return f"def f():\n{blocks}{'    ' * depth}{statement}\n"


@settings(max_examples=50, deadline=None)
@given(
    statements=st.lists(
        st.tuples(_statements, st.integers(1, 3)), min_size=1, max_size=20
    )
)
def test_random_statements_are_split_as_ruff_splits_them(statements):
    """Targets, calls, subscripts and operators of any lengths, at any depth:
    the split equals ruff's (one ruff run checks a batch of statements)."""
    source = "\n\n".join(_nested(s, depth) for s, depth in statements)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--isolated", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    )
    assert wrap_long_lines(source) == result.stdout


def test_strings_and_docstrings_are_never_touched():
    source = (
        'def f():\n    """A docstring line that is long, long, long (a, b, c), '
        'longer than eighty-eight columns."""\n'
        '    return "a string (with, commas) that is long, far longer than the '
        'line length (88)"\n'
    )
    assert wrap_long_lines(source) == source


_names = st.from_regex(r"[a-z][a-z0-9_]{0,38}[a-z0-9]", fullmatch=True).filter(
    lambda n: (
        n not in RESERVED
        and not keyword.iskeyword(n)
        and not _TEMPORARY.fullmatch(n)
        and not n.startswith("d")
        and "__" not in n
    )
)


@pytest.mark.slow
@settings(
    max_examples=10,  # each is a new formula, derived in a worker
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking takes minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    layer=_names,
    params=st.lists(_names, min_size=1, max_size=4, unique=True),
    learn=st.integers(0, 3),
)
def test_any_names_give_ruff_clean_modules_for_every_target(
    layer, params, learn, tmp_path
):
    """Long layer and parameter names, many parameters, some learnable: every
    target's module passes ruff format --check and ruff check."""
    # A parameter named as the layer is refused (the JAX function has its name).
    params = [p for p in params if p != layer] or ["pz"]
    formula = " + ".join(f"{p}*tanh(x)" for p in params) + " + x"
    act = symgrad.parse(
        formula,
        name=layer,
        params={p: 1.0 + i for i, p in enumerate(params)},
        learnable=params[: learn % (len(params) + 1)],
    )
    paths = []
    for target in TARGETS:
        try:
            source = symgrad.generate(act, target=target)
        except symgrad.FormulaError as error:  # a name the code uses (test_names)
            assert "is taken" in str(error)
            continue
        paths.append(tmp_path / f"{target}.py")  # ruff's report names the target
        paths[-1].write_text(source)
    for command in (["format", "--check"], ["check"]):  # all targets in one run
        if not paths:
            break
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--isolated", *map(str, paths)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout
