"""Layers: hand-written gradients against numeric ones, shapes, dtypes and clear errors."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import KINK_MARGIN, away_from_zero, batches, he_or_glorot, seeds, sizes

from npnet.gradcheck import check_layer
from npnet.layers import (
    Dense,
    LeakyReLU,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    layer_width,
    layer_widths,
    mlp,
)

TOLERANCE = 1e-6


def assert_gradients_match(layer, x, seed):
    errors = check_layer(layer, x, rng=seed)
    assert max(errors.values()) < TOLERANCE, errors
    return errors


@given(x=batches(), d_out=sizes, seed=seeds, init=st.sampled_from(["he", "glorot"]))
def test_dense_gradients(x, d_out, seed, init):
    layer = Dense(x.shape[1], d_out, init=init, rng=seed, dtype=np.float64)
    layer.params["b"][:] = np.random.default_rng(seed).standard_normal(d_out)
    errors = assert_gradients_match(layer, x, seed)
    assert set(errors) == {"x", "W", "b"}


@given(x=batches(), seed=seeds)
def test_relu_gradients(x, seed):
    assert_gradients_match(ReLU(), away_from_zero(x), seed)


@given(x=batches(), seed=seeds, alpha=st.floats(0.0, 0.5))
def test_leaky_relu_gradients(x, seed, alpha):
    assert_gradients_match(LeakyReLU(alpha), away_from_zero(x), seed)


@given(x=batches(), seed=seeds)
def test_sigmoid_gradients(x, seed):
    assert_gradients_match(Sigmoid(), x, seed)


@given(x=batches(), seed=seeds)
def test_tanh_gradients(x, seed):
    assert_gradients_match(Tanh(), x, seed)


@given(
    x=batches(),
    widths=st.lists(sizes, min_size=3, max_size=3),
    seed=seeds,
    activation=st.sampled_from([ReLU, LeakyReLU, Tanh, Sigmoid]),
)
def test_three_layer_sequential_gradients(x, widths, seed, activation):
    """Dense -> act -> Dense -> act -> Dense -> Sigmoid: every parameter and the input."""
    rng = np.random.default_rng(seed)
    dims = [x.shape[1], *widths]
    layers = []
    for i in range(3):
        dense = Dense(dims[i], dims[i + 1], rng=rng, dtype=np.float64)
        dense.params["b"][:] = 0.1 * rng.standard_normal(dims[i + 1])
        layers += [dense, activation() if i < 2 else Sigmoid()]
    model = Sequential(*layers)
    # Keep every pre-activation of a kinked layer at least KINK_MARGIN away from 0.
    h = x
    for layer in model.layers:
        if isinstance(layer, ReLU | LeakyReLU):
            assume(np.min(np.abs(h)) > KINK_MARGIN)
        h = layer.forward(h)
    # Finite differences resolve a gradient only down to their rounding noise, about
    # 1e-16 |f| / h = 1e-11 |f| for the checked scalar f (h = 1e-5). Through width-1 layers
    # and two leaky slopes of 0.01 a gradient can shrink to 1e-7 |f|, where that noise is
    # 1e-4 of it: such draws cannot be checked to TOLERANCE and are skipped, as kinks are.
    dout = np.random.default_rng(seed).standard_normal(h.shape)  # check_layer's dout
    f = np.sum(h * dout)
    gradients = [model.backward(dout), *model.grads.values()]
    assume(all(np.max(np.abs(g)) > 1e-4 * abs(f) or not g.any() for g in gradients))
    errors = assert_gradients_match(model, x, seed)
    assert set(errors) == {"x", "0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}


def test_gradient_check_catches_a_wrong_backward():
    """The checks above can fail: a Dense whose db forgets to sum over the batch is caught."""

    class BrokenDense(Dense):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["b"][:] = dout[0]  # wrong: only the first example
            return dx

    layer = BrokenDense(3, 2, rng=0, dtype=np.float64)
    errors = check_layer(layer, np.random.default_rng(1).standard_normal((4, 3)), rng=2)
    assert errors["b"] > 1e-2
    assert errors["W"] < TOLERANCE


def test_dense_forward_matches_definition():
    layer = Dense(3, 2, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["W"] + layer.params["b"])


@pytest.mark.parametrize("init,expected_std", [("he", np.sqrt(2 / 400)), ("glorot", None)])
def test_dense_initialisation_scale(init, expected_std):
    layer = Dense(400, 300, init=init, rng=0)
    W = layer.params["W"]
    if expected_std is None:  # Glorot uniform: bounded by sqrt(6 / (fan_in + fan_out))
        limit = np.sqrt(6 / 700)
        assert np.abs(W).max() <= limit
        expected_std = limit / np.sqrt(3)
    assert abs(W.std() - expected_std) / expected_std < 0.02
    assert not layer.params["b"].any()


@pytest.mark.parametrize("activation, output_activation, first, last", [
    ("relu", None, "he", "glorot"), ("leaky_relu", "relu", "he", "he"),
    ("tanh", "sigmoid", "glorot", "glorot"), ("sigmoid", "leaky_relu", "glorot", "he"),
])
def test_mlp_initialises_by_the_activation_that_follows(activation, output_activation,
                                                         first, last):
    """init_for: He before ReLU-like activations, which zero half their inputs; Glorot
    before the others and before nothing."""
    model = mlp([300, 200, 100], activation, output_activation, rng=0)
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert he_or_glorot(dense[0].params["W"], 300, 200) == first
    assert he_or_glorot(dense[1].params["W"], 200, 100) == last


def test_dense_same_seed_same_weights():
    a, b = Dense(5, 4, rng=7), Dense(5, 4, rng=7)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], Dense(5, 4, rng=8).params["W"])


@pytest.mark.parametrize(
    "layer", [Dense(4, 3, rng=0), ReLU(), LeakyReLU(), Sigmoid(), Tanh()], ids=repr
)
def test_float32_in_float32_out(layer):
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_sigmoid_is_stable_at_extremes():
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        y = Sigmoid().forward(x)
    assert np.all(np.isfinite(y))
    assert y[0, 0] == 0.0 and y[0, 2] == 0.5 and y[0, 4] == 1.0


def test_dense_shape_mismatch_names_layer_and_shapes():
    model = Sequential(Dense(784, 16, rng=0), ReLU(), name="encoder")
    with pytest.raises(ValueError, match=r"'encoder\.0' \(784 -> 16\).*\(N, 784\).*\(32, 783\)"):
        model.forward(np.zeros((32, 783), dtype=np.float32))


@pytest.mark.parametrize("layer", [Dense(3, 2, rng=0), ReLU(), Sigmoid(), Tanh(), LeakyReLU()])
def test_backward_before_forward_is_a_clear_error(layer):
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 2)))


def test_dout_shape_mismatch_is_a_clear_error():
    layer = Dense(3, 2, rng=0)
    layer.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"dout of shape \(4, 3\).*\(4, 2\)"):
        layer.backward(np.zeros((4, 3)))


def test_backward_does_not_change_parameters():
    layer = Dense(3, 2, rng=0)
    before = {k: v.copy() for k, v in layer.params.items()}
    layer.forward(np.ones((4, 3)))
    layer.backward(np.ones((4, 2)))
    for key, value in layer.params.items():
        np.testing.assert_array_equal(value, before[key])


def test_sequential_parameter_names_and_sharing():
    model = Sequential(Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1), name="decoder")
    assert list(model.params) == ["decoder.0.W", "decoder.0.b", "decoder.2.W", "decoder.2.b"]
    assert model.params["decoder.2.W"] is model.layers[2].params["W"]
    assert model.grads.keys() == model.params.keys()


def test_a_layer_used_twice_is_refused():
    """One layer object at two places would have one name (so one parameter key for two
    positions) and one cache (so backward at the first place would use the second's)."""
    dense = Dense(3, 3, rng=0)
    with pytest.raises(ValueError, match=r"Dense layer .* twice.*a new layer for each place"):
        Sequential(dense, ReLU(), dense)
    relu = ReLU()
    with pytest.raises(ValueError, match="ReLU layer .* twice"):
        Sequential(Dense(3, 3), relu, Dense(3, 3), relu)
    inner = Dense(3, 3)
    with pytest.raises(ValueError, match="already in the Sequential"):
        Sequential(Sequential(inner, ReLU()), inner)
    block = Sequential(Dense(3, 3))
    with pytest.raises(ValueError, match="Sequential .* twice"):
        Sequential(block, block)
    assert len(Sequential(dense, ReLU(), Dense(3, 3)).params) == 4


def test_a_layer_in_another_sequential_is_refused():
    """A Sequential names its layers by position: a layer placed in a second one would be
    renamed in the first (its parameters keyed "decoder.0.W" inside "encoder")."""
    dense = Dense(3, 3, rng=0)
    encoder = Sequential(dense, ReLU(), name="encoder")
    with pytest.raises(ValueError, match="Dense layer 'encoder.0' .* already in the Sequential "
                                         "'encoder'.*build a new layer"):
        Sequential(dense, name="decoder")
    assert list(encoder.params) == ["encoder.0.W", "encoder.0.b"]
    assert dense.container is encoder


NOT_WIDTHS = [
    (2.7, TypeError),
    (3.0, TypeError),
    (float("nan"), TypeError),
    (None, TypeError),
    ("abc", TypeError),
    ("3", TypeError),
    (True, TypeError),
    (0, ValueError),
    (np.int64(-2), ValueError),
]


@pytest.mark.parametrize("width,error", NOT_WIDTHS, ids=repr)
def test_widths_are_integers_of_at_least_one(width, error):
    """int() would turn 2.7 into 2, "3" into 3 and True into 1 without a word."""
    for build in (lambda: Dense(width, 3), lambda: Dense(3, width), lambda: mlp([4, width, 2])):
        with pytest.raises(error, match=r"integer >= 1.*got"):
            build()
    with pytest.raises(error, match="code must be an integer >= 1"):
        layer_width(width, "code")


def test_widths_may_be_numpy_integers_but_not_a_string():
    assert layer_widths(np.array([784, 512])) == [784, 512]
    assert type(layer_width(np.int32(5))) is int
    assert Dense(np.int64(3), np.uint8(2)).params["W"].shape == (3, 2)
    with pytest.raises(TypeError, match="sequence of integer widths.*'784'"):
        mlp("784")  # would be read as the widths 7, 8, 4
    with pytest.raises(TypeError, match="sequence of integer widths.*512"):
        layer_widths(512, "hidden")


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, bool, np.complex64], ids=str)
def test_dense_refuses_a_dtype_that_is_not_floating(dtype):
    """Integer weights round to 0 (He's scale is below 1); complex ones are not what the
    gradients in this file are derived for."""
    with pytest.raises(TypeError, match=r"floating.*float32.*got"):
        Dense(4, 3, rng=0, dtype=dtype)
    with pytest.raises(TypeError, match="floating"):
        mlp([4, 3], dtype=dtype)


@pytest.mark.parametrize(
    "layer", [Dense(2, 2, rng=0), ReLU(), LeakyReLU(), Sigmoid(), Tanh()], ids=repr
)
@pytest.mark.parametrize(
    "x",
    [np.full((2, 2), 1 + 2j, np.complex64), np.array([["0.5", "1"], ["0", "1"]]),
     np.array([[None, 1.0], [0.0, 1.0]])],
    ids=["complex", "strings", "objects"],
)
def test_input_that_is_not_real_numbers_is_refused(layer, x):
    """A cast to float would keep only the real part of complex numbers (with a warning)."""
    with pytest.raises(TypeError, match=f"{type(layer).__name__} layer .*real numbers.*got"):
        layer.forward(x)
    assert layer.forward(np.ones((2, 2), dtype=np.int64)).shape == (2, 2)
