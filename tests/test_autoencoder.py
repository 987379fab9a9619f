"""The denoising autoencoder: its gradients, its corruptions, evaluation in slices."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import batches, seeds

from npnet.autoencoder import CORRUPTIONS, DenoisingAutoencoder, corrupt, in_batches
from npnet.gradcheck import check_gradients
from npnet.losses import mse_loss

X = np.random.default_rng(0).random((200, 50), dtype=np.float32)


@given(x=batches(d=st.integers(2, 6)), seed=seeds, code=st.integers(1, 3))
def test_dae_loss_gradients(x, seed, code):
    """L = mse(dec(enc(x~)), x) through every layer, for the input x~ and every parameter.

    tanh hidden layers have no kink, so no margin is needed; the corruption is drawn once
    and held fixed, as the training step's noise is a constant of its backward pass.
    """
    clean = (np.tanh(x) + 1) / 2  # pixels in (0, 1)
    model = DenoisingAutoencoder(
        x.shape[1], (5, 4), code, activation="tanh", rng=seed, dtype=np.float64
    )
    noisy = model.corrupt(clean, seed)

    def loss_and_grads():
        loss, dreconstruction = mse_loss(model.forward(noisy), clean)
        dnoisy = model.backward(dreconstruction)
        return loss, {**model.grads, "x~": dnoisy}

    errors = check_gradients(loss_and_grads, {"x~": noisy, **model.params})
    assert max(errors.values()) < 1e-6, errors
    assert len(errors) == 1 + 2 * 6  # the input and W, b of six Dense layers


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corruption_range_dtype_seed_and_input_untouched(kind):
    before = X.copy()
    a, b = corrupt(X, kind, 0.3, 1), corrupt(X, kind, 0.3, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, corrupt(X, kind, 0.3, 2))
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(X, before)


def test_corruption_rates():
    level = 0.25
    masked = corrupt(X, "masking", level, 0)
    assert np.mean(masked == 0) == pytest.approx(level, abs=0.01)
    salted = corrupt(X, "salt_and_pepper", level, 0)
    assert np.mean(salted == 1) == pytest.approx(level / 2, abs=0.01)
    assert np.mean(salted == 0) == pytest.approx(level / 2, abs=0.01)
    middle = np.full((400, 400), 0.5, dtype=np.float32)  # far from the clip at 0 and 1
    noisy = corrupt(middle, "gaussian", 0.05, 0)
    assert np.std(noisy - middle) == pytest.approx(0.05, rel=0.02)
    assert abs(np.mean(noisy - middle)) < 0.001


def test_corruption_bad_arguments():
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        corrupt(X, "blur", 0.1, 0)
    with pytest.raises(ValueError, match="probability in \\[0, 1\\]"):
        corrupt(X, "masking", 1.5, 0)
    with pytest.raises(ValueError, match="standard deviation >= 0"):
        corrupt(X, "gaussian", -0.1, 0)
    with pytest.raises(TypeError, match="x / 255"):
        corrupt((X * 255).astype(np.uint8), "gaussian", 0.1, 0)


def test_in_batches_equals_one_batch():
    model = DenoisingAutoencoder(50, (8, 6), 3, rng=0, dtype=np.float64)
    x = X[:23].astype(np.float64)
    np.testing.assert_allclose(in_batches(model.forward, x, 5), model.forward(x), rtol=1e-12)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        in_batches(model.forward, x[:0])
