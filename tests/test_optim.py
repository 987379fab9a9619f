"""Optimizers against update rules computed by hand, and their checkpointable state."""

import numpy as np
import pytest

from npnet.fast.optim import FastAdam, numba_available
from npnet.optim import SGD, Adam

# The core's Adam, and the fast path's compiled loop (tests/test_fast.py proves them equal
# bit for bit; these tests hold both to the rule itself).
ADAMS = [
    Adam,
    pytest.param(
        FastAdam, marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")
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


@pytest.mark.parametrize("adam", ADAMS)
def test_adam_by_hand(adam):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2, 0.3], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w -= lr * m_hat / (np.sqrt(v_hat) + eps)
    assert run(adam, [0.5, -0.2, 0.3], lr=lr) == pytest.approx(w, rel=1e-12)


@pytest.mark.parametrize("adam", ADAMS)
def test_adam_first_step_moves_by_lr(adam):
    # m_hat / sqrt(v_hat) = g / |g| at t = 1: the first step has size lr whatever g's scale.
    assert run(adam, [1e-2], lr=0.01) == pytest.approx(0.99, rel=1e-6)


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
    (Adam, {}),
    pytest.param(
        FastAdam, {}, marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")
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


BAD_HYPERPARAMETERS = [
    (SGD, {"lr": np.inf}, ValueError),
    (SGD, {"lr": -0.1}, ValueError),
    (SGD, {"lr": "0.1"}, TypeError),
    (SGD, {"weight_decay": np.nan}, ValueError),
    (SGD, {"weight_decay": -1e-4}, ValueError),
    (SGD, {"weight_decay": np.inf}, ValueError),
    (SGD, {"momentum": np.nan}, ValueError),
    (SGD, {"momentum": -0.5}, ValueError),
    (SGD, {"momentum": "0.9"}, TypeError),
    (Adam, {"lr": np.inf}, ValueError),
    (Adam, {"lr": np.nan}, ValueError),
    (Adam, {"lr": "0.1"}, TypeError),
    (Adam, {"lr": None}, TypeError),
    (Adam, {"lr": True}, TypeError),
    (Adam, {"weight_decay": -1}, ValueError),
    (Adam, {"weight_decay": np.nan}, ValueError),
    (Adam, {"eps": np.nan}, ValueError),
    (Adam, {"eps": np.inf}, ValueError),
    (Adam, {"eps": 0.0}, ValueError),
    (Adam, {"eps": "1e-8"}, TypeError),
    (Adam, {"beta1": 1.0}, ValueError),
    (Adam, {"beta1": np.nan}, ValueError),
    (Adam, {"beta2": -0.1}, ValueError),
    (Adam, {"beta2": "0.999"}, TypeError),
]


@pytest.mark.parametrize(
    "cls,kwargs,error", BAD_HYPERPARAMETERS,
    ids=[f"{cls.__name__} {kw}" for cls, kw, _ in BAD_HYPERPARAMETERS],
)
def test_every_hyperparameter_is_checked(cls, kwargs, error):
    """Finite, in its range, and a number (not the string a config file might hold)."""
    (name, value), = kwargs.items()
    with pytest.raises(error, match=f"{name} must be .*got {value!r}"):
        cls({"w": np.ones(2)}, **kwargs)


def test_numpy_numbers_are_hyperparameters_too():
    opt = Adam({"w": np.ones(2)}, lr=np.float32(0.5), beta1=np.float64(0.8), eps=np.int64(1))
    assert (opt.lr, opt.beta1, opt.eps) == (0.5, 0.8, 1.0)
    assert all(type(v) is float for v in (opt.lr, opt.beta1, opt.beta2, opt.eps))


@pytest.mark.parametrize("adam", [Adam, FastAdam])
def test_adam_refuses_float16_parameters(adam):
    """In float16, eps = 1e-8 rounds to 0 and v underflows: a zero gradient moved the core's
    weight to NaN, a small one to -inf, and the compiled loop raised numba's error."""
    with pytest.raises(TypeError, match=r"parameter 'w' is float16.*Adam.*float32"):
        adam({"w": np.ones(3, dtype=np.float16)}, lr=0.1)
    w = np.ones(3, dtype=np.float16)  # SGD's update has no such terms: it stays float16
    SGD({"w": w}, lr=0.5, momentum=0.9).step({"w": np.array([0.0, 1e-3, 1.0], np.float16)})
    assert w.dtype == np.float16 and np.all(np.isfinite(w)) and w[2] == 0.5


@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS)
def test_read_only_parameters_are_refused(cls, kwargs):
    """The update is in place: a read-only array would fail half-way through a step (the
    core) or inside the compiled loop (numba's typing error)."""
    w = np.ones(3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="parameter 'w' is read-only.*writeable"):
        cls({"w": w}, lr=0.1, **kwargs)


@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS)
def test_lists_and_integer_arrays_are_refused_as_parameters_or_gradients(cls, kwargs):
    for params, match in (
        ({"w": [1.0, 2.0]}, "parameter 'w' is a list.*NumPy array"),
        ({"w": np.ones(2, dtype=np.int64)}, "parameter 'w' .*int64.*floating"),
        ([np.ones(2)], "dict of parameter arrays.*model.params.*list"),
    ):
        with pytest.raises(TypeError, match=match):
            cls(params, lr=0.1, **kwargs)
    w = np.ones(2)
    opt = cls({"w": w}, lr=0.1, **kwargs)
    for grads, match in (
        ({"w": [1.0, 2.0]}, "gradient 'w' is a list.*NumPy array"),
        ({"w": np.ones(2, dtype=np.complex128)}, "gradient 'w' .*complex128.*real"),
        ([np.ones(2)], "dict of gradient arrays.*model.grads.*list"),
    ):
        with pytest.raises(TypeError, match=match):
            opt.step(grads)
    assert opt.steps == 0 and w.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("fast_path", [False, True])
def test_parameters_made_read_only_after_building_are_refused_before_any_update(fast_path):
    """The check at construction cannot see a later ``flags.writeable = False``; the step
    refuses it before it changes anything (m and v included, in the fast path's loop too)."""
    from npnet import fast
    from npnet.autoencoder import DenoisingAutoencoder

    model = DenoisingAutoencoder(16, (8,), 2, rng=0)
    optimizer = Adam(model.params)
    if fast_path:
        fast.enable(model, optimizer, blas_threads=None)
    model.train_step(np.full((4, 16), 0.5, np.float32), 0)
    optimizer.step(model.grads)
    before = {k: v.copy() for k, v in optimizer.state_dict().items()}
    next(iter(model.params.values())).flags.writeable = False
    with pytest.raises(ValueError, match="has become read-only"):
        optimizer.step(model.grads)
    for key, value in optimizer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
