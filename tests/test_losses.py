"""Losses: values against their definitions, gradients against numeric ones, stability."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from strategies import batches

from npnet.gradcheck import check_gradients
from npnet.losses import (
    bce_with_logits,
    bce_with_logits_per_example,
    mse_loss,
    squared_error_per_image,
)

TOLERANCE = 1e-6


def pixel_targets(shape):
    return arrays(np.float64, shape, elements=st.floats(0.0, 1.0))


@given(data=st.data(), prediction=batches())
def test_mse_value_and_gradient(data, prediction):
    target = data.draw(pixel_targets(prediction.shape))
    loss, _ = mse_loss(prediction, target)
    expected = np.mean(np.sum((target - prediction) ** 2, axis=1))  # the course's L
    assert loss == pytest.approx(expected, rel=1e-12, abs=1e-12)
    errors = check_gradients(
        lambda: mse_loss(prediction, target)[0:1] + ({"p": mse_loss(prediction, target)[1]},),
        {"p": prediction},
    )
    assert errors["p"] < TOLERANCE


@given(data=st.data(), logits=batches())
def test_bce_value_and_gradient(data, logits):
    target = data.draw(pixel_targets(logits.shape))
    loss, _ = bce_with_logits(logits, target)
    p = 1 / (1 + np.exp(-logits))  # the naive definition, safe for |logits| <= 3
    expected = np.mean(np.sum(-target * np.log(p) - (1 - target) * np.log(1 - p), axis=1))
    assert loss == pytest.approx(expected, rel=1e-10)

    def loss_and_grads():
        value, grad = bce_with_logits(logits, target)
        return value, {"s": grad}

    assert check_gradients(loss_and_grads, {"s": logits})["s"] < TOLERANCE


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_is_finite_at_extreme_logits(dtype):
    logits = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], dtype=dtype)
    target = np.array([[1.0, 0.0, 0.5, 1.0, 0.0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        loss, grad = bce_with_logits(logits, target)
        per_example = bce_with_logits_per_example(logits, target)
    # -1000 with target 1 costs 1000 nats, 1000 with target 0 too; 0 with 0.5 costs log 2.
    assert loss == pytest.approx(2000 + np.log(2), rel=1e-6)
    assert per_example.shape == (1,)
    assert np.all(np.isfinite(grad)) and grad.dtype == dtype
    np.testing.assert_allclose(grad, [[-1.0, 0.0, 0.0, 0.0, 1.0]], atol=1e-6)


def test_bce_floor_on_gray_targets_is_the_entropy():
    t = np.array([[0.3, 0.9]])
    logits = np.log(t / (1 - t))  # sigmoid(logits) = t, the minimiser
    loss, grad = bce_with_logits(logits, t)
    entropy = -np.sum(t * np.log(t) + (1 - t) * np.log(1 - t))
    assert loss == pytest.approx(entropy)
    np.testing.assert_allclose(grad, 0, atol=1e-12)


@pytest.mark.parametrize("loss_fn", [mse_loss, bce_with_logits])
def test_losses_keep_float32(loss_fn):
    p = np.zeros((3, 4), dtype=np.float32)
    _, grad = loss_fn(p, np.ones((3, 4)))
    assert grad.dtype == np.float32


@pytest.mark.parametrize("loss_fn", [mse_loss, bce_with_logits])
def test_losses_reject_mismatched_shapes(loss_fn):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        loss_fn(np.zeros((3, 4)), np.zeros((3, 5)))


def test_mse_does_not_modify_its_inputs():
    p, t = np.ones((2, 3)), np.zeros((2, 3))
    mse_loss(p, t)
    assert np.all(p == 1) and np.all(t == 0)


@pytest.mark.parametrize("loss_fn", [mse_loss, bce_with_logits, bce_with_logits_per_example])
def test_integer_predictions_are_a_clear_error(loss_fn):
    with pytest.raises(TypeError, match="floating point.*astype"):
        loss_fn(np.array([[1, 0]]), np.array([[0, 1]]))


@pytest.mark.parametrize("loss_fn", [bce_with_logits, bce_with_logits_per_example])
@pytest.mark.parametrize("bad", [255.0, -0.5, np.nan])
def test_bce_targets_outside_0_1_are_a_clear_error(loss_fn, bad):
    """Raw 0-255 pixels would give a negative 'cross-entropy' without a word."""
    target = np.array([[bad, 0.0], [0.5, 1.0]])
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        loss_fn(np.full((2, 2), 5.0), target)


def test_squared_error_per_image():
    """Sum over pixels, mean over images, in float64, for flat and (N, H, W) stacks; the
    value of mse_loss on the same batch."""
    x = np.zeros((2, 3))
    x_hat = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])  # per image: 5 and 9
    assert squared_error_per_image(x, x_hat) == pytest.approx(7.0)
    assert squared_error_per_image(x.reshape(2, 3, 1), x_hat.reshape(2, 3, 1)) == 7.0
    assert squared_error_per_image(x, x_hat) == pytest.approx(mse_loss(x_hat, x)[0])
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 2\)"):
        squared_error_per_image(x, x_hat[:, :2])


def test_squared_error_of_integer_images_does_not_wrap_around():
    """0 - 1 is 255 in uint8: 0-255 images are subtracted in float64."""
    zeros, ones = np.zeros((1, 2), np.uint8), np.ones((1, 2), np.uint8)
    assert squared_error_per_image(zeros, ones) == 2.0
    assert squared_error_per_image(zeros.astype(bool), ones.astype(bool)) == 2.0
    with pytest.raises(TypeError, match="real numbers"):
        squared_error_per_image(zeros + 1j, ones)


@pytest.mark.parametrize("loss_fn", [bce_with_logits, bce_with_logits_per_example])
def test_bce_at_infinite_logits_is_its_limit(loss_fn):
    """max(s, 0) - s t is inf - inf at s = +inf: the limit instead, 0 where the target agrees
    (t = 1 at +inf, t = 0 at -inf), +inf where it does not."""
    logits = np.array([[np.inf, -np.inf, 0.0], [np.inf, -np.inf, 0.0]])
    target = np.array([[1.0, 0.0, 1.0], [0.5, 1.0, 1.0]])
    value = loss_fn(logits, target)
    value = value[0] if isinstance(value, tuple) else value
    expected = [np.log(2), np.inf]  # softplus(0) = log 2 for the third pixel
    if loss_fn is bce_with_logits:
        assert value == np.inf
    else:
        np.testing.assert_allclose(value, expected)
    assert loss_fn is not bce_with_logits or np.all(np.isfinite(bce_with_logits(
        logits[:1], target[:1])[1]))  # the gradient sigmoid(s) - t stays finite
