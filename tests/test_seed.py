"""The seed's own examples give the seed's printed values."""

import numpy as np

import symgrad


def test_relu_matches_seed_printed_values():
    """Relu: forward(10) -> 10, backward(1) -> 1; forward(-5) -> 0, backward(1) -> 0."""
    relu = symgrad.compile("relu")
    relu1, relu2 = relu(), relu()
    assert relu1.forward(10) == 10
    assert relu1.backward(1) == 1
    assert relu2.forward(-5) == 0
    assert relu2.backward(1) == 0


def test_sigmoid_matches_seed_printed_values():
    """Sigmoid: forward(10) -> 0.9999546021312976, backward(1) -> 4.5395807735907655e-05."""
    sigmoid = symgrad.compile("sigmoid")()
    out = sigmoid.forward(10)
    grad = sigmoid.backward(1)
    assert float(out) == 0.9999546021312976
    assert float(grad) == 4.5395807735907655e-05


def test_relu_works_on_arrays_unlike_the_seed():
    """The seed's Relu fails on arrays and never sets its mask; ours handles both,
    and its mask means what the book's does: x <= 0, where the gradient is zeroed."""
    relu = symgrad.compile("relu")()
    x = np.array([[-2.0, 0.0], [3.0, -0.5]])
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(relu.mask, [[True, True], [False, True]])
    np.testing.assert_array_equal(relu.backward(np.full((2, 2), 5.0)), [[0, 0], [5, 0]])
