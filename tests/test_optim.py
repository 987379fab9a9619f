"""Optimizers against update rules computed by hand, and their checkpointable state."""

import numpy as np
import pytest

from npnet.optim import SGD, Adam


def run(optimizer_cls, grads_sequence, w0=1.0, **kwargs):
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


def test_adam_by_hand():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2, 0.3], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w -= lr * m_hat / (np.sqrt(v_hat) + eps)
    assert run(Adam, [0.5, -0.2, 0.3], lr=lr) == pytest.approx(w, rel=1e-12)


def test_adam_first_step_moves_by_lr():
    # m_hat / sqrt(v_hat) = g / |g| at t = 1: the first step has size lr whatever g's scale.
    assert run(Adam, [1e-2], lr=0.01) == pytest.approx(0.99, rel=1e-6)


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


@pytest.mark.parametrize(
    "kwargs", [{"lr": 0}, {"lr": 0.1, "momentum": 1.0}, {"lr": 0.1, "nesterov": True}]
)
def test_bad_hyperparameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        SGD({"w": np.ones(1)}, **kwargs)
