"""Hand-written layers in the seed's style, the baseline symgrad must beat.

These are what a careful student writes after the seed's blog post: the obvious
NumPy expression for forward, the textbook derivative for backward, caching what
the derivation needs.  The ReLU is the seed's layer with its bugs fixed (it
handles arrays and assigns the mask).  GELU uses SciPy's erf, the usual choice.
"""

import numpy as np
from scipy.special import erf


class Relu:
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


class Sigmoid:
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
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out**2)


class Gelu:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return x * (1 + erf(x / np.sqrt(2))) / 2

    def backward(self, dout):
        x = self.x
        cdf = (1 + erf(x / np.sqrt(2))) / 2
        pdf = np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)
        return dout * (cdf + x * pdf)


class GeluTanh:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        inner = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + np.tanh(inner))

    def backward(self, dout):
        x = self.x
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        return dout * (
            0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)
        )


class Silu:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return x / (1 + np.exp(-x))

    def backward(self, dout):
        s = 1 / (1 + np.exp(-self.x))
        return dout * s * (1 + self.x * (1 - s))


class Softplus:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return np.log(1 + np.exp(x))

    def backward(self, dout):
        return dout / (1 + np.exp(-self.x))


class Mish:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return x * np.tanh(np.log(1 + np.exp(x)))

    def backward(self, dout):
        x = self.x
        t = np.tanh(np.log(1 + np.exp(x)))
        s = 1 / (1 + np.exp(-x))
        return dout * (t + x * (1 - t**2) * s)


class Elu:
    def __init__(self, alpha=1.0):
        self.alpha = alpha
        self.out = None

    def forward(self, x):
        out = np.where(x > 0, x, self.alpha * (np.exp(x) - 1))
        self.out = out
        return out

    def backward(self, dout):
        return dout * np.where(self.out > 0, 1, self.out + self.alpha)


#: symgrad catalog name -> the seed-style class.
SEED_STYLE = {
    "relu": Relu,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": Gelu,
    "gelu_tanh": GeluTanh,
    "silu": Silu,
    "softplus": Softplus,
    "mish": Mish,
    "elu": Elu,
}


def scipy_gelu(x):
    """The GELU forward pass most NumPy users write: SciPy's erf."""
    return x * (1 + erf(x / np.sqrt(2))) / 2
