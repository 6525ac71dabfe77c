"""The PyTorch target as a PyTorch user would try it: gradcheck, what the
Function saves, torch.nn's constructors, PReLU's per-channel weight, half
precision, devices, pickling, training in a model, DistributedDataParallel and
torch.compile.  (Accuracy, extreme inputs and agreement with the NumPy layers
and PyTorch's own functions are in test_targets, for every target.)"""

import inspect
import pickle

import numpy as np
import pytest

import symgrad
from symgrad.check import ordinary_points
from symgrad.layer import layer_formulas

from .conftest import layer_class, load_generated

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

NAMES = sorted(symgrad.CATALOG)
#: torch.nn's module for each catalog activation that has one.
TORCH_MODULES = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU, "elu": nn.ELU, "selu": nn.SELU,
    "celu": nn.CELU, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish,
    "softplus": nn.Softplus, "softsign": nn.Softsign, "hardtanh": nn.Hardtanh,
    "relu6": nn.ReLU6, "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish,
    "log_sigmoid": nn.LogSigmoid, "tanhshrink": nn.Tanhshrink,
    "softshrink": nn.Softshrink, "hardshrink": nn.Hardshrink,
    "threshold": nn.Threshold,
}  # fmt: skip
#: torch.nn arguments that are not the activation's: in-place, GELU's choice of
#: formula (a separate layer here), Hardtanh's deprecated aliases.
NOT_PARAMETERS = {"inplace", "approximate", "min_value", "max_value"}


@pytest.fixture
def module(catalog_modules):
    return catalog_modules["torch"]


def _function_and_args(module, name, dtype=torch.float64):
    """The autograd.Function and its arguments after x: numbers as numbers,
    learnable parameters as leaf tensors that require grad."""
    act = symgrad.CATALOG[name]
    function = getattr(module, f"{act.class_name}Function")
    args = [
        torch.tensor([p.value], dtype=dtype, requires_grad=True)
        if p.learnable
        else p.value
        for p in act.params
    ]
    return function, args


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_in_float64(module, name):
    """torch.autograd.gradcheck of the Function, in x and in every learnable
    parameter, at points off the kinks."""
    function, args = _function_and_args(module, name)
    x = torch.tensor(ordinary_points(symgrad.CATALOG[name], 31), requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: function.apply(*a), (x, *args))


@pytest.mark.parametrize("name", NAMES)
def test_grad_of_grad_is_right_or_refused(module, name):
    """Where backward reads only x, the output, a mask or a parameter, double
    backward is exact (gradgradcheck); where it reads a part forward computed
    outside autograd, it raises rather than treat that part as a constant."""
    function, args = _function_and_args(module, name)
    x = torch.tensor(ordinary_points(symgrad.CATALOG[name], 31), requires_grad=True)
    once = "once_differentiable" in inspect.getsource(function.backward)
    if not once:
        assert torch.autograd.gradgradcheck(lambda *a: function.apply(*a), (x, *args))
        return
    dout = torch.rand_like(x, requires_grad=True)
    (dx,) = torch.autograd.grad(function.apply(x, *args), x, dout, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        dx.sum().backward()


@pytest.mark.parametrize("name", NAMES)
def test_forward_saves_exactly_what_the_plan_says(module, name):
    """save_for_backward holds the plan's tensors: the output itself, the boolean
    mask, the input itself, the shared part, then learnable parameters."""
    derivation = symgrad.derive(name)
    formulas = layer_formulas(derivation)
    x = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    layer = layer_class(module, name)().double()
    out = layer(x)
    saved = out.grad_fn.saved_tensors
    learnable = [p.name for p in derivation.activation.params if p.learnable]
    assert len(saved) == len(formulas.saved_attributes) + len(learnable)
    for attribute, tensor in zip(formulas.saved_attributes, saved, strict=False):
        if attribute == "out":
            assert tensor.data_ptr() == out.data_ptr()
        elif attribute == "x":
            assert tensor.data_ptr() == x.data_ptr()
        elif attribute == "mask":
            assert tensor.dtype == torch.bool
        else:  # the shared part, computed once in forward
            assert tensor.shape == x.shape and tensor.dtype == x.dtype


@pytest.mark.parametrize("name", sorted(TORCH_MODULES))
def test_constructor_has_torch_nn_names_and_defaults(module, name):
    def parameters(cls):
        signature = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in signature.parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD  # not nn.Module.__init__(*args)
            and p.name != "self"
            and p.name not in NOT_PARAMETERS
        }

    ours, theirs = (
        parameters(layer_class(module, name)),
        parameters(TORCH_MODULES[name]),
    )
    assert list(ours) == list(theirs)
    for key, default in theirs.items():
        if default is not inspect.Parameter.empty:  # nn.Threshold requires its own
            assert ours[key] == default, key


def test_prelu_weight_is_a_per_channel_parameter_like_torch(module):
    ours = layer_class(module, "prelu")(num_parameters=3, init=0.1).double()
    theirs = nn.PReLU(num_parameters=3, init=0.1).double()
    assert isinstance(ours.weight, nn.Parameter) and ours.weight.shape == (3,)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with torch.no_grad():
        ours.weight.copy_(torch.tensor([0.1, -0.2, 0.3]))
        theirs.weight.copy_(ours.weight)
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    dout = torch.randn(4, 3, 5, dtype=torch.float64)
    ours(x).backward(dout)
    theirs(x2).backward(dout)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-14, atol=0)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-13, atol=0)


def test_prelu_takes_torch_factory_arguments(module):
    layer = layer_class(module, "prelu")(2, dtype=torch.float64, device="cpu")
    assert layer.weight.dtype == torch.float64 and layer.weight.device.type == "cpu"


def test_learnable_swish_beta_is_a_parameter_with_the_right_gradient(tmp_path):
    source = symgrad.generate(
        symgrad.activation("swish", learnable="beta"), target="torch"
    )
    layer = load_generated(source, tmp_path).Swish(beta=1.5).double()
    assert [name for name, _ in layer.named_parameters()] == ["beta"]
    x = torch.linspace(-6, 6, 41, dtype=torch.float64)
    layer(x).sum().backward()
    beta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    (x * torch.sigmoid(beta * x)).sum().backward()
    torch.testing.assert_close(layer.beta.grad, beta.grad, rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_is_computed_in_float32(module, name, dtype):
    """The output and the gradient keep the input's dtype, and equal the float32
    computation rounded to it."""
    x = torch.linspace(-8, 8, 33).to(dtype).requires_grad_()
    x32 = x.detach().float().requires_grad_()
    layer = layer_class(module, name)()
    out, out32 = layer(x), layer(x32)
    dout = torch.ones_like(x)
    out.backward(dout)
    out32.backward(dout.float())
    assert out.dtype == x.grad.dtype == dtype
    assert torch.equal(out, out32.to(dtype))
    assert torch.equal(x.grad, x32.grad.to(dtype))


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_any_device_without_leaving_it(module, name):
    """On the meta device (shapes, no data) forward and backward run through:
    nothing is read back to the host or made on the CPU."""
    layer = layer_class(module, name)().to("meta")
    x = torch.empty(4, 3, device="meta", requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert out.device.type == x.grad.device.type == "meta"
    assert x.grad.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(module, name):
    layer = layer_class(module, name)()
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    xc = x.detach().cuda().requires_grad_()
    layer.double()(x).sum().backward()
    layer.cuda()(xc).sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), x.grad)


@pytest.mark.parametrize("name", ["prelu", "softplus", "elu", "gelu"])
def test_modules_pickle_and_copy(module, name):
    layer = layer_class(module, name)()
    copy = pickle.loads(pickle.dumps(layer))
    x = torch.linspace(-3, 3, 7)
    assert torch.equal(copy(x), layer(x))
    fresh = layer_class(module, name)()
    fresh.load_state_dict(layer.state_dict())


def test_function_bodies_never_leave_torch():
    """No NumPy, no .item(), no float() of a tensor: device and dtype agnostic,
    traceable by torch.compile.  The module imports torch alone."""
    source = symgrad.generate(NAMES, target="torch")
    imports = [
        line for line in source.splitlines() if line.startswith(("import", "from"))
    ]
    assert imports == ["import torch", "import torch.nn.functional as F"]
    functions = source.split("class ")
    for chunk in functions:
        if "(torch.autograd.Function)" in chunk.splitlines()[0]:
            for banned in (".item(", ".tolist(", "numpy", "float(", "math."):
                assert banned not in chunk, (chunk.splitlines()[0], banned)


def _mlp(activation, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), activation, nn.Linear(16, 1)).double()


@pytest.mark.parametrize("name", ["elu", "silu", "gelu", "softplus", "prelu"])
def test_trains_in_a_model_exactly_as_the_torch_module(module, name):
    """Adam on a small regression: the generated module and torch.nn's give the
    same losses, step after step."""
    data = torch.randn(
        64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    target = torch.sin(data.sum(dim=1, keepdim=True))
    losses = []
    for activation in (layer_class(module, name)(), TORCH_MODULES[name]()):
        model = _mlp(activation)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        history = []
        for _ in range(30):
            optimizer.zero_grad()
            loss = F.mse_loss(model(data), target)
            loss.backward()
            optimizer.step()
            history.append(loss.item())
        losses.append(history)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-10)
    assert losses[0][-1] < 0.5 * losses[0][0]


# -- DistributedDataParallel and torch.compile ---------------------------------------


def _ddp_worker(rank, path, store, results):
    """One of two gloo processes: a DDP step on this rank's half of the batch."""
    import torch.distributed as dist

    from symgrad.loader import import_path

    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=2
    )
    try:
        layers = import_path(path, "ddp_layers")
        model = nn.parallel.DistributedDataParallel(
            _mlp(layers.PRelu(num_parameters=16))
        )
        data = torch.randn(
            8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(rank)
        )
        model(data).pow(2).sum().backward()
        torch.save([p.grad for p in model.parameters()], f"{results}.{rank}")
        # Neither rank tears gloo down while the other still talks to it (under
        # load one aborted: "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_data_parallel_with_gloo_on_two_processes(tmp_path):
    """Both ranks end the step with the same gradients: the mean of what each
    half of the batch gives in one process, PReLU's weight included."""
    import torch.multiprocessing as mp

    path = tmp_path / "ddp_layers.py"
    path.write_text(symgrad.generate("prelu", target="torch"))
    results = tmp_path / "grads"
    mp.spawn(
        _ddp_worker, args=(str(path), str(tmp_path / "store"), str(results)), nprocs=2
    )
    ranks = [torch.load(f"{results}.{rank}") for rank in (0, 1)]
    layers = load_generated(path.read_text(), tmp_path)
    expected = []
    for rank in (0, 1):
        model = _mlp(layers.PRelu(num_parameters=16))
        data = torch.randn(
            8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(rank)
        )
        model(data).pow(2).sum().backward()
        expected.append([p.grad for p in model.parameters()])
    for got0, got1, a, b in zip(*ranks, *expected, strict=True):
        torch.testing.assert_close(got0, got1, rtol=0, atol=0)
        torch.testing.assert_close(got0, (a + b) / 2, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
# torch's own dynamo and inductor warn of their internals' deprecations.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ["silu", "prelu"])
def test_torch_compile_gives_the_eager_results(module, name):
    layer = layer_class(module, name)()
    compiled = torch.compile(layer)
    x = torch.linspace(-30, 30, 257, requires_grad=True)
    xc = x.detach().clone().requires_grad_()
    out, outc = layer(x), compiled(xc)
    out.sum().backward()
    outc.sum().backward()
    torch.testing.assert_close(outc, out, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(xc.grad, x.grad, rtol=1e-6, atol=1e-7)
