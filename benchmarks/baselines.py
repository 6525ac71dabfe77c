"""Hand-written layers, the baselines the generated ones are measured against.

``BOOK`` holds the seed's two layers as *Deep Learning from Scratch* writes them
(ch05): ReLU with a boolean mask and boolean indexing, Sigmoid as
``1 / (1 + np.exp(-x))``.  ``PLAIN`` holds, for every catalog activation, what a
careful student writes from the same formula (PyTorch's, parameters included)
in plain NumPy: the obvious expression for forward, with no stability tricks,
the textbook derivative for backward, caching what the derivation needs.
``NAIVE`` is ``PLAIN`` with the seed-style softplus, ``np.log(1 + np.exp(x))``.
GELU uses SciPy's erf, the usual choice (NumPy has none).  None of these
modifies ``dout`` except the book's ReLU, which does, as in the book.
"""

import numpy as np
from scipy.special import erf


class Layer:
    """forward caches x; subclasses say what they compute."""

    def __init__(self, **params):
        self.__dict__.update(params)
        self.x = None

    def forward(self, x):
        self.x = x
        return self.f(x)

    def backward(self, dout):
        return dout * self.df(self.x)


class BookRelu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        dx = dout
        return dx


class BookSigmoid:
    def __init__(self):
        self.out = None

    def forward(self, x):
        out = 1 / (1 + np.exp(-x))
        self.out = out
        return out

    def backward(self, dout):
        dx = dout * (1.0 - self.out) * self.out
        return dx


class Tanh:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out**2)


class LeakyRelu(Layer):
    def __init__(self):
        super().__init__(negative_slope=0.01)

    def f(self, x):
        return np.where(x > 0, x, self.negative_slope * x)

    def df(self, x):
        return np.where(x > 0, 1.0, self.negative_slope)


class PRelu(Layer):
    """torch.nn.PReLU's default: one learned weight, 0.25."""

    def __init__(self):
        super().__init__(weight=0.25)

    def f(self, x):
        return np.where(x > 0, x, self.weight * x)

    def df(self, x):
        return np.where(x > 0, 1.0, self.weight)

    def backward(self, dout):
        self.dweight = np.sum(dout * np.where(self.x > 0, 0.0, self.x))
        return super().backward(dout)


class Elu:
    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, x):
        self.out = np.where(x > 0, x, self.alpha * (np.exp(x) - 1))
        return self.out

    def backward(self, dout):
        return dout * np.where(self.out > 0, 1, self.out + self.alpha)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


class Selu:
    def forward(self, x):
        self.out = SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))
        return self.out

    def backward(self, dout):
        grad = np.where(self.out > 0, SELU_SCALE, self.out + SELU_SCALE * SELU_ALPHA)
        return dout * grad


class Celu(Elu):
    def forward(self, x):
        self.out = np.where(x > 0, x, self.alpha * (np.exp(x / self.alpha) - 1))
        return self.out

    def backward(self, dout):
        return dout * np.where(self.out > 0, 1, self.out / self.alpha + 1)


class Gelu(Layer):
    def f(self, x):
        return x * (1 + erf(x / np.sqrt(2))) / 2

    def df(self, x):
        cdf = (1 + erf(x / np.sqrt(2))) / 2
        pdf = np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)
        return cdf + x * pdf


class GeluTanh(Layer):
    def f(self, x):
        inner = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + np.tanh(inner))

    def df(self, x):
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)


class Silu(Layer):
    def f(self, x):
        return x / (1 + np.exp(-x))

    def df(self, x):
        s = 1 / (1 + np.exp(-x))
        return s * (1 + x * (1 - s))


class Swish(Layer):
    def __init__(self):
        super().__init__(beta=1.0)

    def f(self, x):
        return x / (1 + np.exp(-self.beta * x))

    def df(self, x):
        s = 1 / (1 + np.exp(-self.beta * x))
        return s * (1 + self.beta * x * (1 - s))


class Mish(Layer):
    def f(self, x):
        return x * np.tanh(np.log(1 + np.exp(x)))

    def df(self, x):
        t = np.tanh(np.log(1 + np.exp(x)))
        s = 1 / (1 + np.exp(-x))
        return t + x * (1 - t**2) * s


class Softplus(Layer):
    """torch.nn.Softplus's formula: linear where beta*x > threshold."""

    def __init__(self):
        super().__init__(beta=1.0, threshold=20.0)

    def f(self, x):
        bx = self.beta * x
        return np.where(bx > self.threshold, x, np.log(1 + np.exp(bx)) / self.beta)

    def df(self, x):
        bx = self.beta * x
        return np.where(bx > self.threshold, 1.0, 1 / (1 + np.exp(-bx)))


class NaiveSoftplus(Layer):
    """The seed-style softplus: log(1 + exp(x)), which overflows above x = 88.7
    (float32) or 709.8 (float64)."""

    def f(self, x):
        return np.log(1 + np.exp(x))

    def df(self, x):
        return 1 / (1 + np.exp(-x))


class Softsign(Layer):
    def f(self, x):
        return x / (1 + np.abs(x))

    def df(self, x):
        return 1 / (1 + np.abs(x)) ** 2


class Hardtanh(Layer):
    def f(self, x):
        return np.clip(x, -1.0, 1.0)

    def df(self, x):
        return np.where((x > -1.0) & (x < 1.0), 1.0, 0.0)


class Relu6(Layer):
    def f(self, x):
        return np.clip(x, 0.0, 6.0)

    def df(self, x):
        return np.where((x > 0.0) & (x < 6.0), 1.0, 0.0)


class Hardsigmoid(Layer):
    def f(self, x):
        return np.clip(x / 6 + 0.5, 0.0, 1.0)

    def df(self, x):
        return np.where((x > -3.0) & (x < 3.0), 1 / 6, 0.0)


class Hardswish(Layer):
    def f(self, x):
        return x * np.clip(x + 3, 0.0, 6.0) / 6

    def df(self, x):
        return np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2 * x + 3) / 6))


class LogSigmoid(Layer):
    def f(self, x):
        return np.log(1 / (1 + np.exp(-x)))

    def df(self, x):
        return 1 / (1 + np.exp(x))


class Tanhshrink(Layer):
    def f(self, x):
        return x - np.tanh(x)

    def df(self, x):
        return np.tanh(x) ** 2


class Softshrink(Layer):
    def __init__(self):
        super().__init__(lambd=0.5)

    def f(self, x):
        lambd = self.lambd
        return np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0))

    def df(self, x):
        return np.where(np.abs(x) > self.lambd, 1.0, 0.0)


class Hardshrink(Softshrink):
    def f(self, x):
        return np.where(np.abs(x) > self.lambd, x, 0.0)


class Threshold(Layer):
    def __init__(self):
        super().__init__(threshold=0.0, value=0.0)

    def f(self, x):
        return np.where(x > self.threshold, x, self.value)

    def df(self, x):
        return np.where(x > self.threshold, 1.0, 0.0)


class Identity:
    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


class Exp:
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


class Sin(Layer):
    def __init__(self):
        super().__init__(w0=1.0)

    def f(self, x):
        return np.sin(self.w0 * x)

    def df(self, x):
        return self.w0 * np.cos(self.w0 * x)


#: The book's two layers, for the catalog names they implement.
BOOK = {"relu": BookRelu, "sigmoid": BookSigmoid}

#: catalog name -> the plain hand-written class.
PLAIN = {
    "relu": BookRelu,
    "sigmoid": BookSigmoid,
    "tanh": Tanh,
    "leaky_relu": LeakyRelu,
    "prelu": PRelu,
    "elu": Elu,
    "selu": Selu,
    "celu": Celu,
    "gelu": Gelu,
    "gelu_tanh": GeluTanh,
    "silu": Silu,
    "swish": Swish,
    "mish": Mish,
    "softplus": Softplus,
    "softsign": Softsign,
    "hardtanh": Hardtanh,
    "relu6": Relu6,
    "hardsigmoid": Hardsigmoid,
    "hardswish": Hardswish,
    "log_sigmoid": LogSigmoid,
    "tanhshrink": Tanhshrink,
    "softshrink": Softshrink,
    "hardshrink": Hardshrink,
    "threshold": Threshold,
    "identity": Identity,
    "exp": Exp,
    "sin": Sin,
}


#: The seed-style formulas: PLAIN, with softplus as the seed would write it.
NAIVE = {**PLAIN, "softplus": NaiveSoftplus}


def scipy_gelu(x):
    """The GELU forward pass most NumPy users write: SciPy's erf."""
    return x * (1 + erf(x / np.sqrt(2))) / 2
