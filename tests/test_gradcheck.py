"""The gradient checker itself: it must be right on known functions, and refuse float32."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import batches

from npnet.gradcheck import check_gradients, numerical_gradient, relative_error


@given(x=batches())
def test_numerical_gradient_of_a_known_function(x):
    # f(x) = sum(sin(x) * x^2)  ->  df/dx = cos(x) x^2 + 2 x sin(x)
    original = x.copy()
    numeric = numerical_gradient(lambda: float(np.sum(np.sin(x) * x**2)), x)
    np.testing.assert_allclose(numeric, np.cos(x) * x**2 + 2 * x * np.sin(x), atol=1e-8)
    np.testing.assert_array_equal(x, original)  # restored exactly


VIEWS = {  # views that are not C-contiguous, as tied weights (W.T) give
    "transpose": lambda a: a.T,
    "every other column": lambda a: a[:, ::2],
    "reversed": lambda a: a[::-1, ::-1],
}


@given(x=batches(), view=st.sampled_from(sorted(VIEWS)))
def test_numerical_gradient_through_a_strided_view(x, view):
    """f reads a base array; perturbing a strided view of it must perturb what f reads."""
    base = x.copy()
    numeric = numerical_gradient(lambda: float(np.sum(np.sin(base) * base**2)), VIEWS[view](base))
    expected = np.cos(base) * base**2 + 2 * base * np.sin(base)
    np.testing.assert_allclose(numeric, VIEWS[view](expected), atol=1e-8)
    np.testing.assert_array_equal(base, x)  # restored exactly


def test_numerical_gradient_refuses_a_read_only_array():
    x = np.zeros(3)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        numerical_gradient(lambda: 0.0, x)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_relative_error_scale_and_floor():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 2e-6])) == pytest.approx(5e-7)
    assert relative_error(np.array([1.0]), np.array([-1.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes"):
        relative_error(np.zeros(2), np.zeros(3))


def test_check_gradients_names_a_missing_gradient():
    """A loss_and_grads that forgot a key: the error says which, and which keys it gave."""
    x, w = np.ones(2), np.ones(3)

    def loss_and_grads():
        return float(np.sum(x) + np.sum(w)), {"x": np.ones(2), "dw": np.ones(3)}

    with pytest.raises(KeyError, match=r"no gradient for 'w'.*\['dw', 'x'\]"):
        check_gradients(loss_and_grads, {"x": x, "w": w})
