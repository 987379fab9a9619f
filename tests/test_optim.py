"""Optimizers against update rules computed by hand, and their checkpointable state."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import npnet.optim
from npnet.kernels import numba_available
from npnet.optim import SGD, Adam

# Adam runs as NumPy passes (fused=False) or as one compiled loop (fused=True, numba).
ADAM_PATHS = [
    False,
    pytest.param(
        True, marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")
    ),
]


def run(optimizer_cls, grads_sequence, w0=1.0, **kwargs):
    """The parameter after one step per gradient, starting from w0 (a 1-element array)."""
    w = np.array([w0])
    opt = optimizer_cls({"w": w}, **kwargs)
    for g in grads_sequence:
        opt.step({"w": np.array([g])})
    return w[0]


def test_plain_sgd():
    assert run(SGD, [0.5, -1.0], lr=0.1) == pytest.approx(1.0 - 0.05 + 0.1)


def test_sgd_momentum_by_hand():
    # v1 = 0.5, w1 = 1 - 0.05 = 0.95; v2 = 0.9*0.5 + 1 = 1.45, w2 = 0.95 - 0.145 = 0.805
    assert run(SGD, [0.5, 1.0], lr=0.1, momentum=0.9) == pytest.approx(0.805)


def test_sgd_nesterov_by_hand():
    # v1 = 0.5, step = 0.5 + 0.9*0.5 = 0.95 -> w1 = 0.905
    # v2 = 0.45 + 1 = 1.45, step = 1 + 0.9*1.45 = 2.305 -> w2 = 0.905 - 0.2305 = 0.6745
    assert run(SGD, [0.5, 1.0], lr=0.1, momentum=0.9, nesterov=True) == pytest.approx(0.6745)


def test_sgd_weight_decay_by_hand():
    # g = 0.5 + 0.1 * 1.0 = 0.6 -> w = 1 - 0.06
    assert run(SGD, [0.5], lr=0.1, weight_decay=0.1) == pytest.approx(0.94)


@pytest.mark.parametrize("fused", ADAM_PATHS)
def test_adam_by_hand(fused):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2, 0.3], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w -= lr * m_hat / (np.sqrt(v_hat) + eps)
    assert run(Adam, [0.5, -0.2, 0.3], lr=lr, fused=fused) == pytest.approx(w, rel=1e-12)


@pytest.mark.parametrize("fused", ADAM_PATHS)
def test_adam_first_step_moves_by_lr(fused):
    # m_hat / sqrt(v_hat) = g / |g| at t = 1: the first step has size lr whatever g's scale.
    assert run(Adam, [1e-2], lr=0.01, fused=fused) == pytest.approx(0.99, rel=1e-6)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=array_shapes(min_dims=1, max_dims=2, max_side=40),
    seed=st.integers(0, 2**32 - 1),
    weight_decay=st.sampled_from([0.0, 0.01]),
)
def test_fused_adam_gives_the_same_bits_as_numpy_passes(dtype, shape, seed, weight_decay):
    """The compiled loop does the NumPy passes' operations in their order: equal results."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape).astype(dtype)
    results = {}
    for fused in (False, True):
        w = w0.copy()
        opt = Adam({"w": w}, lr=0.01, weight_decay=weight_decay, fused=fused)
        for g in np.random.default_rng(seed + 1).standard_normal((4, *shape)).astype(dtype):
            opt.step({"w": g})
        results[fused] = (w, opt.state["w"]["m"], opt.state["w"]["v"])
    for numpy_array, fused_array in zip(results[False], results[True], strict=True):
        np.testing.assert_array_equal(fused_array, numpy_array)


@given(x=arrays(np.float32, (3, 4), elements=st.floats(-2, 2, width=32)))
def test_fused_adam_falls_back_on_arrays_it_cannot_loop_over(x):
    """A non-contiguous parameter (a transposed view) is updated by the NumPy passes."""
    w_view, w_copy = x.copy().T, np.ascontiguousarray(x.T)
    g = np.ones_like(w_copy)
    Adam({"w": w_view}, lr=0.1).step({"w": g})
    Adam({"w": w_copy}, lr=0.1, fused=False).step({"w": g})
    np.testing.assert_array_equal(w_view, w_copy)


def test_fused_adam_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(npnet.optim, "numba_available", lambda: False)
    with pytest.raises(ImportError, match="pip install 'npnet\\[fast\\]'"):
        Adam({"w": np.ones(2)}, fused=True)
    assert Adam({"w": np.ones(2)}).fused is False  # the default falls back quietly


@pytest.mark.parametrize("cls,kwargs", [(SGD, {"momentum": 0.9}), (Adam, {})])
def test_float32_parameters_stay_float32(cls, kwargs):
    w = np.ones(3, dtype=np.float32)
    opt = cls({"w": w}, lr=0.1, **kwargs)
    opt.step({"w": np.ones(3, dtype=np.float32)})
    assert w.dtype == np.float32
    assert all(s.dtype == np.float32 for slots in opt.state.values() for s in slots.values())


@pytest.mark.parametrize("cls,kwargs", [(SGD, {"momentum": 0.9}), (Adam, {})])
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    grads = [np.array([0.3, -0.1]), np.array([0.2, 0.4]), np.array([-0.5, 0.1])]
    w_a = np.array([1.0, 2.0])
    opt_a = cls({"w": w_a}, lr=0.1, **kwargs)
    for g in grads:
        opt_a.step({"w": g})

    w_b = np.array([1.0, 2.0])
    opt_b = cls({"w": w_b}, lr=0.1, **kwargs)
    opt_b.step({"w": grads[0]})
    saved = {k: v.copy() for k, v in opt_b.state_dict().items()}
    w_c = w_b.copy()
    opt_c = cls({"w": w_c}, lr=0.1, **kwargs)
    opt_c.load_state_dict(saved)
    for g in grads[1:]:
        opt_c.step({"w": g})
    np.testing.assert_array_equal(w_c, w_a)


def test_mismatched_gradients_are_a_clear_error():
    opt = SGD({"w": np.ones(2)}, lr=0.1)
    with pytest.raises(KeyError, match="missing: \\['w'\\].*unexpected: \\['v'\\]"):
        opt.step({"v": np.ones(2)})


OPTIMIZERS = [
    (SGD, {}),
    (SGD, {"momentum": 0.9}),
    (Adam, {"fused": False}),
    pytest.param(
        Adam, {"fused": True},
        marks=pytest.mark.skipif(not numba_available(), reason="numba not installed"),
    ),
]


@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS)
@pytest.mark.parametrize("grad_shape", [(1, 3), (3,), (2, 3), (12,)])
def test_a_gradient_of_another_shape_is_refused_before_any_update(cls, kwargs, grad_shape):
    """A (1, 3) gradient would broadcast over a (4, 3) parameter, and the compiled loop
    would read a smaller one past its end: both must be an error that changes nothing."""
    params = {"a": np.ones((2, 2)), "w": np.ones((4, 3))}
    before = {k: v.copy() for k, v in params.items()}
    opt = cls(params, lr=0.1, **kwargs)
    with pytest.raises(ValueError, match=r"gradient 'w' has shape .*\(4, 3\)"):
        opt.step({"a": np.ones((2, 2)), "w": np.ones(grad_shape)})
    for name, value in params.items():
        np.testing.assert_array_equal(value, before[name])
    assert opt.steps == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"m/a": np.ones(2), "v/a": np.ones(2), "m/b": np.ones(5), "steps": np.array(99)},
        {"m/a": np.ones(2), "v/a": np.ones(2), "x/b": np.ones(3), "steps": np.array(99)},
        {"m/a": np.ones(2), "v/a": np.ones(2), "m/nope": np.ones(3), "steps": np.array(99)},
        {"m/a": np.ones(2), "v/a": np.ones(2)},
    ],
    ids=["wrong shape", "unknown slot", "unknown parameter", "no steps"],
)
def test_a_bad_state_dict_leaves_the_optimizer_as_it_was(bad):
    params = {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 2.0, 3.0])}
    opt = Adam(params, lr=0.1)
    for g in (0.5, -0.25):
        opt.step({"a": np.full(2, g), "b": np.full(3, g)})
    saved = {k: v.copy() for k, v in opt.state_dict().items()}
    with pytest.raises((KeyError, ValueError)):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after.keys() == saved.keys()
    for key, value in saved.items():
        np.testing.assert_array_equal(after[key], value)


@pytest.mark.parametrize(
    "kwargs", [{"lr": 0}, {"lr": 0.1, "momentum": 1.0}, {"lr": 0.1, "nesterov": True}]
)
def test_bad_hyperparameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        SGD({"w": np.ones(1)}, **kwargs)
