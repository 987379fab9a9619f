"""The training loop: it learns, it is reproducible, and resuming equals not stopping."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npnet.autoencoder import DenoisingAutoencoder
from npnet.optim import Adam
from npnet.train import (
    CheckpointError,
    CheckpointMismatch,
    cosine_decay,
    fit,
    iterate_minibatches,
)

X = np.random.default_rng(0).random((96, 12), dtype=np.float32) ** 3  # sparse-ish "images"
X_EVAL = np.random.default_rng(1).random((20, 12), dtype=np.float32) ** 3


def model_and_optimizer(seed=0, lr=1e-2):
    model = DenoisingAutoencoder(12, (8, 6), 3, noise_level=0.1, rng=seed)
    return model, Adam(model.params, lr=lr)


def run(epochs, **kwargs):
    model, opt = model_and_optimizer()
    kwargs.setdefault("log", lambda _: None)
    history = fit(model, opt, X, x_eval=X_EVAL, epochs=epochs, batch_size=16, seed=5,
                  progress=False, **kwargs)
    return model, history


def test_loss_goes_down_and_history_has_every_epoch():
    _, history = run(8)
    assert len(history["train_loss"]) == len(history["test_mse_clean"]) == 8
    assert history["train_loss"][-1] < 0.6 * history["train_loss"][0]


def test_same_seed_same_result():
    a, _ = run(2)
    b, _ = run(2)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_resume_continues_exactly(tmp_path):
    straight, straight_history = run(4)
    checkpoint = tmp_path / "ckpt.npz"
    run(2, checkpoint=checkpoint)  # "interrupted" after epoch 2
    resumed, resumed_history = run(4, checkpoint=checkpoint, resume=True)
    for name in straight.params:
        np.testing.assert_array_equal(resumed.params[name], straight.params[name])
    assert resumed_history["train_loss"] == straight_history["train_loss"]


def test_resume_with_other_settings_is_refused(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    run(1, checkpoint=checkpoint, config={"lr": 1e-3})
    with pytest.raises(CheckpointMismatch, match="lr"):
        run(2, checkpoint=checkpoint, resume=True, config={"lr": 1e-2})


@pytest.mark.parametrize(
    "damage",
    [b"", b"not a zip file at all", "truncated", "no meta"],
    ids=["empty", "garbage", "truncated", "no meta"],
)
def test_a_damaged_checkpoint_is_a_clear_error(tmp_path, damage):
    checkpoint = tmp_path / "ckpt.npz"
    run(1, checkpoint=checkpoint)
    if damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    elif damage == "no meta":
        np.savez(checkpoint, x=np.zeros(2))
    else:
        checkpoint.write_bytes(damage)
    with pytest.raises(CheckpointError, match="cannot be resumed.*Delete it"):
        run(2, checkpoint=checkpoint, resume=True)


def test_ctrl_c_leaves_the_last_checkpoint_intact(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    run(1, checkpoint=checkpoint)
    before = checkpoint.read_bytes()
    model, opt = model_and_optimizer()
    calls = {"n": 0}
    original = model.train_step

    def interrupted_step(x, rng):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(x, rng)

    model.train_step = interrupted_step
    with pytest.raises(KeyboardInterrupt):
        fit(model, opt, X, epochs=3, batch_size=16, seed=5, checkpoint=checkpoint,
            resume=True, progress=False, log=lambda _: None)
    assert checkpoint.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]


def test_divergence_is_reported():
    model, opt = model_and_optimizer()
    model.train_step = lambda x, rng: {"loss": float("nan")}
    with pytest.raises(FloatingPointError, match="--lr"):
        fit(model, opt, X, epochs=2, batch_size=16, seed=0, progress=False, log=lambda _: None)


def test_a_non_finite_loss_stops_training_before_its_step_is_applied():
    """One NaN pixel makes the first batch that holds it give a NaN loss and NaN gradients;
    fit must stop there with the parameters of the step before, all finite."""
    model, opt = model_and_optimizer()
    x = X.copy()
    x[50, 3] = np.nan
    steps = []
    train_step = model.train_step

    def recording_step(batch, rng):
        steps.append({k: v.copy() for k, v in model.params.items()})
        return train_step(batch, rng)

    model.train_step = recording_step
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        fit(model, opt, x, epochs=2, batch_size=16, seed=0, progress=False, log=lambda _: None)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, steps[-1][name])
        assert np.all(np.isfinite(value))


def test_batch_size_larger_than_the_data_is_a_clear_error():
    model, opt = model_and_optimizer()
    with pytest.raises(ValueError, match="--batch-size"):
        fit(model, opt, X, epochs=1, batch_size=len(X) + 1, seed=0, progress=False)


def test_cosine_schedule_scales_every_step_and_restores_the_rate():
    model, opt = model_and_optimizer(lr=0.01)
    seen = []
    original_step = opt.step

    def recording_step(grads):
        seen.append(opt.lr)
        original_step(grads)

    opt.step = recording_step
    fit(model, opt, X, epochs=2, batch_size=16, seed=0, lr_schedule=cosine_decay,
        progress=False, log=lambda _: None)
    steps = 2 * (len(X) // 16)
    expected = [0.01 * 0.5 * (1 + np.cos(np.pi * i / steps)) for i in range(steps)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert opt.lr == 0.01


def test_resume_with_a_schedule_continues_exactly(tmp_path):
    straight, _ = run(4, lr_schedule=cosine_decay)
    checkpoint = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        run(4, lr_schedule=cosine_decay, checkpoint=checkpoint, log=interrupt_at_epoch(2))
    resumed, _ = run(4, lr_schedule=cosine_decay, checkpoint=checkpoint, resume=True)
    for name in straight.params:
        np.testing.assert_array_equal(resumed.params[name], straight.params[name])


def interrupt_at_epoch(n):
    """A log function that stops the run (like Ctrl-C) as epoch n ends, before its checkpoint
    is written: the run resumes from the checkpoint of epoch n - 1."""

    def log(line):
        if line.startswith(f"epoch {n}/"):
            raise KeyboardInterrupt

    return log


@given(
    n=st.integers(0, 50),
    batch_size=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    drop_last=st.booleans(),
)
def test_minibatches_cover_each_example_once(n, batch_size, seed, drop_last):
    batches = iterate_minibatches(n, batch_size, seed, drop_last=drop_last)
    sizes = [len(b) for b in batches]
    assert all(s == batch_size for s in sizes[:-1])
    if drop_last:
        assert sizes == [batch_size] * (n // batch_size)
    else:
        assert sum(sizes) == n
        np.testing.assert_array_equal(np.sort(np.concatenate([[], *batches])), np.arange(n))
    again = iterate_minibatches(n, batch_size, seed, drop_last=drop_last)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_minibatches_from_a_generator_change_every_epoch():
    rng = np.random.default_rng(0)
    first = np.concatenate(iterate_minibatches(100, 10, rng))
    second = np.concatenate(iterate_minibatches(100, 10, rng))
    assert not np.array_equal(first, second)  # a Generator moves on: a new epoch, a new order
    with pytest.raises(ValueError, match="batch_size must be positive"):
        iterate_minibatches(10, 0, 0)
