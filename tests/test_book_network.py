"""The generated layers in the book's own network (Deep Learning from Scratch, ch05).

A two-layer network in the book's style: Affine, the generated activation,
Affine, and softmax-with-loss, the last three written here as the book writes
them.  On scikit-learn's bundled digits it must pass the book's gradient check
(backprop against central differences for every parameter) and train to over
90% test accuracy, with ReLU and with Sigmoid, in both generated styles.
"""

from collections import OrderedDict

import numpy as np
import pytest

import symgrad

sklearn = pytest.importorskip(
    "sklearn.datasets", reason="scikit-learn is in the test extra"
)


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = None
        self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        dx = dout @ self.W.T
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return dx


def softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        rows = np.arange(len(t))
        return -np.mean(np.log(self.y[rows, t] + 1e-7))

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dx * dout / len(self.t)


class TwoLayerNet:
    def __init__(self, activation, input_size, hidden_size, output_size, seed=0):
        rng = np.random.default_rng(seed)
        scale = np.sqrt(2.0 / input_size)  # He initialisation, good for both
        self.params = {
            "W1": scale * rng.standard_normal((input_size, hidden_size)),
            "b1": np.zeros(hidden_size),
            "W2": np.sqrt(1.0 / hidden_size)
            * rng.standard_normal((hidden_size, output_size)),
            "b2": np.zeros(output_size),
        }
        self.layers = OrderedDict(
            Affine1=Affine(self.params["W1"], self.params["b1"]),
            Activation=activation(),
            Affine2=Affine(self.params["W2"], self.params["b2"]),
        )
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        return float(np.mean(np.argmax(self.predict(x), axis=1) == t))

    def numerical_gradient(self, x, t, h=1e-4):
        grads = {}
        for key, value in self.params.items():
            grad = np.zeros_like(value)
            for index in np.ndindex(value.shape):
                kept = value[index]
                value[index] = kept + h
                above = self.loss(x, t)
                value[index] = kept - h
                below = self.loss(x, t)
                value[index] = kept
                grad[index] = (above - below) / (2 * h)
            grads[key] = grad
        return grads

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}


@pytest.fixture(scope="module")
def digits():
    data = sklearn.load_digits()
    x = data.data / 16.0
    t = data.target
    order = np.random.default_rng(0).permutation(len(t))
    x, t = x[order], t[order]
    return x[:1400], t[:1400], x[1400:], t[1400:]


CASES = [(name, fast) for name in ("relu", "sigmoid") for fast in (False, True)]


@pytest.mark.parametrize(
    "name, fast", CASES, ids=[f"{n}-{'fast' if f else 'readable'}" for n, f in CASES]
)
def test_gradient_check_passes_for_every_parameter(digits, name, fast):
    """The book's gradient check: backprop against central differences, mean
    absolute difference below 1e-6 for W1, b1, W2 and b2."""
    x_train, t_train, _, _ = digits
    net = TwoLayerNet(symgrad.compile(name, fast=fast), 64, 10, 10)
    x, t = x_train[:5], t_train[:5]
    numeric = net.numerical_gradient(x, t)
    backprop = net.gradient(x, t)
    for key in net.params:
        difference = np.mean(np.abs(backprop[key] - numeric[key]))
        assert difference < 1e-6, (key, difference)


@pytest.mark.parametrize(
    "name, fast", CASES, ids=[f"{n}-{'fast' if f else 'readable'}" for n, f in CASES]
)
def test_network_trains_to_over_90_percent_on_held_out_digits(digits, name, fast):
    """Minibatch SGD as in the book's training script reaches over 90% accuracy
    on the 397 digits it never saw."""
    x_train, t_train, x_test, t_test = digits
    net = TwoLayerNet(symgrad.compile(name, fast=fast), 64, 50, 10)
    rng = np.random.default_rng(1)
    learning_rate = 0.5 if name == "sigmoid" else 0.1
    for _ in range(1500):
        batch = rng.choice(len(t_train), 100)
        grads = net.gradient(x_train[batch], t_train[batch])
        for key in net.params:
            net.params[key] -= learning_rate * grads[key]
    assert net.accuracy(x_test, t_test) > 0.9
