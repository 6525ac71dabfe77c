"""PyTorch's own function for each catalog activation, at the catalog defaults.

Used by `tests/data/make_torch_reference.py` to write the stored reference table,
and by the tests to compare against PyTorch directly when it is importable.
"""

from __future__ import annotations


def torch_functions():
    """name -> (function of a float64 tensor, {parameter name: tensor}) or raises
    ImportError when PyTorch is missing."""
    import torch
    import torch.nn.functional as F

    weight = torch.tensor([0.25], dtype=torch.float64, requires_grad=True)
    return {
        "relu": (F.relu, {}),
        "sigmoid": (torch.sigmoid, {}),
        "tanh": (torch.tanh, {}),
        "leaky_relu": (lambda x: F.leaky_relu(x, 0.01), {}),
        "prelu": (lambda x: F.prelu(x, weight), {"weight": weight}),
        "elu": (lambda x: F.elu(x, 1.0), {}),
        "selu": (F.selu, {}),
        "celu": (lambda x: F.celu(x, 1.0), {}),
        "gelu": (lambda x: F.gelu(x, approximate="none"), {}),
        "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), {}),
        "silu": (F.silu, {}),
        "swish": (lambda x: x * torch.sigmoid(x), {}),
        "mish": (F.mish, {}),
        "softplus": (lambda x: F.softplus(x, beta=1.0, threshold=20.0), {}),
        "softsign": (F.softsign, {}),
        "hardtanh": (lambda x: F.hardtanh(x, -1.0, 1.0), {}),
        "relu6": (F.relu6, {}),
        "hardsigmoid": (F.hardsigmoid, {}),
        "hardswish": (F.hardswish, {}),
        "log_sigmoid": (F.logsigmoid, {}),
        "tanhshrink": (F.tanhshrink, {}),
        "softshrink": (lambda x: F.softshrink(x, 0.5), {}),
        "hardshrink": (lambda x: F.hardshrink(x, 0.5), {}),
        "threshold": (lambda x: F.threshold(x, 0.0, 0.0), {}),
        "identity": (lambda x: x * 1.0, {}),
        "exp": (torch.exp, {}),
        "sin": (torch.sin, {}),
    }


#: Inputs for the reference table: ordinary points, every kink of the catalog at
#: its default parameters, and both sides of softplus's threshold.
POINTS = [
    -40.0,
    -30.0,
    -20.0,
    -6.0,
    -3.0,
    -2.5,
    -1.0,
    -0.5,
    -0.25,
    -1e-3,
    0.0,
    1e-3,
    0.25,
    0.5,
    1.0,
    2.5,
    3.0,
    6.0,
    19.99,
    20.0,
    20.01,
    30.0,
    40.0,
]


def torch_values(name: str):
    """(outputs, input gradients, {parameter: gradient}) of PyTorch at POINTS."""
    import torch

    function, params = torch_functions()[name]
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    y = function(x)
    y.backward(torch.ones_like(y))
    grads = {k: float(v.grad.sum()) for k, v in params.items()}
    return y.detach().tolist(), x.grad.tolist(), grads
