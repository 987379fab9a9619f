"""The training loop: it learns, it is reproducible, and resuming equals not stopping."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npnet.autoencoder import DenoisingAutoencoder
from npnet.data import binarize
from npnet.io import load_arrays, save_arrays
from npnet.optim import Adam
from npnet.train import (
    EXPLOSION_FACTOR,
    CheckpointError,
    CheckpointMismatch,
    TrainingDiverged,
    burda_schedule,
    checkpoint_config,
    checkpoint_meta,
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


def test_each_epoch_says_when_training_will_end(monkeypatch):
    """The line after each epoch but the last says the time left for the whole run, from the
    pace so far: after epoch 1 of 3, twice what is left after epoch 2 (on a clock where every
    epoch takes as long)."""
    import re

    import npnet.train

    ticks = iter(range(10**6))
    monkeypatch.setattr(npnet.train.time, "perf_counter", lambda: float(next(ticks)))
    lines = []
    run(3, log=lines.append)
    epochs = [line for line in lines if line.startswith("epoch ")]
    left = [re.search(r"training ends in about (\d+):(\d\d)\)$", line) for line in epochs]
    assert left[0] and left[1] and left[2] is None, epochs
    seconds = [60 * int(m[1]) + int(m[2]) for m in left[:2]]
    assert seconds[1] > 0 and abs(seconds[0] - 2 * seconds[1]) <= 1, epochs


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
    """A step that blows up gives a NaN loss and NaN gradients (here the 4th);
    fit must stop there with the parameters of the step before, all finite."""
    model, opt = model_and_optimizer()
    steps = []
    train_step = model.train_step

    def recording_step(batch, rng):
        steps.append({k: v.copy() for k, v in model.params.items()})
        losses = train_step(batch, rng)
        if len(steps) == 4:
            for grad in model.grads.values():
                grad[...] = np.nan
            losses["loss"] = float("nan")
        return losses

    model.train_step = recording_step
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        fit(model, opt, X, epochs=2, batch_size=16, seed=0, progress=False, log=lambda _: None)
    assert len(steps) == 4
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
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        iterate_minibatches(10, 0, 0)


# --- divergence: a run that went wrong stops, and its last good checkpoint is kept ----------


def scaled_losses(model, factor_from_step, factor):
    """Make ``model.train_step`` report losses ``factor`` times larger from the
    ``factor_from_step``-th step on (counted from 1), as a run that blows up would."""
    original, calls = model.train_step, {"n": 0}

    def step(x, rng):
        calls["n"] += 1
        losses = original(x, rng)
        return {k: v * (factor if calls["n"] >= factor_from_step else 1) for k, v in
                losses.items()}

    model.train_step = step


def fit_quietly(model, opt, **kwargs):
    kwargs = {"x_eval": X_EVAL, "epochs": 3, "batch_size": 16, "seed": 5, "progress": False,
              "log": lambda _: None, **kwargs}
    return fit(model, opt, X, **kwargs)


def test_an_exploded_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    model, opt = model_and_optimizer()
    scaled_losses(model, factor_from_step=7, factor=1e4)  # epoch 2 has 6 steps from step 7
    with pytest.raises(TrainingDiverged, match=r"epoch 2: train_loss.*exploded.*--lr"):
        fit_quietly(model, opt, checkpoint=checkpoint)
    assert checkpoint_meta(checkpoint)["epoch"] == 1
    assert issubclass(TrainingDiverged, FloatingPointError)  # what the scripts catch


def test_a_first_epoch_far_above_its_first_step_has_exploded():
    model, opt = model_and_optimizer()
    scaled_losses(model, factor_from_step=2, factor=1e4)
    with pytest.raises(TrainingDiverged, match="epoch 1.*exploded"):
        fit_quietly(model, opt)


def test_a_loss_a_little_above_the_best_is_not_divergence():
    model, opt = model_and_optimizer()
    scaled_losses(model, factor_from_step=7, factor=EXPLOSION_FACTOR / 2)
    fit_quietly(model, opt)  # a bad epoch, not a blow-up


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_evaluation_stops_training_and_is_not_checkpointed(tmp_path, value):
    checkpoint = tmp_path / "ckpt.npz"
    model, opt = model_and_optimizer()
    evaluate, calls = model.evaluate, {"n": 0}

    def evaluate_then_break(x, rng):
        calls["n"] += 1
        losses = evaluate(x, rng)
        return {**losses, "mse_clean": value} if calls["n"] == 2 else losses

    model.evaluate = evaluate_then_break
    with pytest.raises(TrainingDiverged, match="epoch 2: test_mse_clean is (nan|inf), not finite"):
        fit_quietly(model, opt, checkpoint=checkpoint)
    assert checkpoint_meta(checkpoint)["epoch"] == 1
    run(3, checkpoint=checkpoint, resume=True)  # the checkpoint kept is a good one


def test_non_finite_parameters_are_never_checkpointed(tmp_path):
    """A blow-up on the last step of an epoch: its loss was finite, its update was not."""
    checkpoint = tmp_path / "ckpt.npz"
    model, opt = model_and_optimizer()
    model.evaluate = lambda x, rng: {"loss": 1.0}  # blind to the damage, as a bad metric is
    step, calls = opt.step, {"n": 0}

    def step_then_break(grads):
        step(grads)
        calls["n"] += 1
        if calls["n"] == 12:  # the last step of epoch 2
            model.params["encoder.0.W"][0, 0] = np.inf

    opt.step = step_then_break
    with pytest.raises(TrainingDiverged, match="encoder.0.W.*not finite"):
        fit_quietly(model, opt, checkpoint=checkpoint)
    assert checkpoint_meta(checkpoint)["epoch"] == 1


def test_a_failed_model_check_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    model, opt = model_and_optimizer()
    verdicts = iter([None, "every reconstruction is the same image"])
    with pytest.raises(TrainingDiverged, match="epoch 2: every reconstruction is the same"):
        fit_quietly(model, opt, checkpoint=checkpoint, check_model=lambda: next(verdicts))
    assert checkpoint_meta(checkpoint)["epoch"] == 1


def test_nan_in_the_evaluation_data_is_refused_before_training():
    model, opt = model_and_optimizer()
    model.train_step = None  # training must not start
    x_eval = X_EVAL.copy()
    x_eval[3, 4] = np.nan
    with pytest.raises(ValueError, match="x_eval holds NaN or infinite values"):
        fit_quietly(model, opt, x_eval=x_eval)


@pytest.mark.parametrize("seed", [-1, None, 1.5, "3", True])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused(seed):
    model, opt = model_and_optimizer()
    with pytest.raises((TypeError, ValueError), match="seed must be an integer >= 0"):
        fit_quietly(model, opt, seed=seed)


def test_lists_train_like_arrays():
    model, opt = model_and_optimizer()
    history = fit_quietly(model, opt, epochs=1, x_eval=X_EVAL.tolist())
    assert np.isfinite(history["test_loss"][0])
    model, opt = model_and_optimizer()
    fit(model, opt, X.tolist(), epochs=1, batch_size=16, seed=0, progress=False)


# --- checkpoints are checked when loaded ----------------------------------------------------


def damage_checkpoint(path, how):
    """Rewrite the checkpoint at ``path`` damaged in one way (as by hand or by a blow-up)."""
    saved = load_arrays(path)
    meta = json.loads(str(saved["meta"]))
    if how == "nan weights":
        saved["params/encoder.0.W"][2, 3] = np.nan
    elif how == "inf optimizer state":
        saved["optim/v/decoder.2.b"][0] = np.inf
    elif how == "string weights":
        saved["params/encoder.0.b"] = np.array(["x"] * len(saved["params/encoder.0.b"]))
    elif how == "wrong optimizer-state shape":
        saved["optim/m/encoder.0.W"] = saved["optim/m/encoder.0.W"][:, :2]
    elif how == "missing steps":
        del saved["optim/steps"]
    elif how == "negative steps":
        saved["optim/steps"] = np.array(-4)
    elif how.startswith("epoch "):
        meta["epoch"] = json.loads(how.removeprefix("epoch "))
    elif how == "history as a list":
        meta["history"] = [1.0, 2.0]
    elif how == "history of numbers":
        meta["history"] = {"train_loss": 0.5}
    elif how == "history of another length":
        meta["history"]["train_loss"].append(0.5)
    elif how == "nan in the history":
        meta["history"]["test_loss"][0] = float("nan")
    elif how == "steps of 2**64 - 1":
        saved["optim/steps"] = np.array(2**64 - 1, dtype=np.uint64)
    elif how == "run_id a number":
        meta["run_id"] = 12345
    if how == "meta nested 100,000 deep":
        saved["meta"] = np.array("[" * 100_000 + "]" * 100_000)
    else:
        saved["meta"] = np.array(json.dumps(meta))
    save_arrays(path, saved)


@pytest.mark.parametrize("how", [
    "nan weights", "inf optimizer state", "string weights", "wrong optimizer-state shape",
    "missing steps", "negative steps", "epoch -3", 'epoch "two"', "epoch 1.5", "epoch true",
    "history as a list", "history of numbers", "history of another length",
    "nan in the history", "steps of 2**64 - 1", "run_id a number", "meta nested 100,000 deep",
])
def test_a_damaged_checkpoint_is_refused_naming_it_and_changes_nothing(tmp_path, how):
    checkpoint = tmp_path / "ckpt.npz"
    run(1, checkpoint=checkpoint)
    damage_checkpoint(checkpoint, how)
    damaged = checkpoint.read_bytes()
    model, opt = model_and_optimizer()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(CheckpointError, match=f"{checkpoint}.*cannot be resumed"):
        fit_quietly(model, opt, checkpoint=checkpoint, resume=True)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])
    assert opt.steps == 0 and not opt.state
    assert checkpoint.read_bytes() == damaged


def test_a_checkpoint_that_is_a_folder_is_a_clear_error(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    checkpoint.mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        run(1, checkpoint=checkpoint, resume=True)
    with pytest.raises(CheckpointError, match="is a directory"):
        checkpoint_config(checkpoint)


# --- --epochs on resume -------------------------------------------------------------------


def test_resuming_with_fewer_epochs_than_the_checkpoint_has_done_is_refused(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    run(3, checkpoint=checkpoint)
    with pytest.raises(CheckpointMismatch, match="already trained 3 epochs.*epochs=1"):
        run(1, checkpoint=checkpoint, resume=True)
    _, history = run(3, checkpoint=checkpoint, resume=True)  # as many: nothing more to train
    assert len(history["train_loss"]) == 3


def test_training_further_under_a_schedule_says_that_it_is_not_a_longer_run(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    run(2, checkpoint=checkpoint, lr_schedule=cosine_decay)
    lines = []
    _, history = run(3, checkpoint=checkpoint, resume=True, lr_schedule=cosine_decay,
                     log=lines.append)
    assert len(history["train_loss"]) == 3
    assert any("trained as a 2-epoch run" in line and "not the same as a 3-epoch run" in line
               for line in lines), lines
    lines.clear()
    run(3, checkpoint=checkpoint, resume=True, lr_schedule=cosine_decay, log=lines.append)
    assert not any("-epoch run" in line for line in lines)  # the same run, continued


def test_the_checkpoint_records_the_run_id(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    run(1, checkpoint=checkpoint, run_id="0-20250101T000000-abc123")
    assert checkpoint_meta(checkpoint)["run_id"] == "0-20250101T000000-abc123"


def test_burda_schedule_has_the_papers_stages():
    """Over 3,280 epochs: 3^i epochs at 10^(-i/7), i = 0..7 (Burda et al., 2015)."""
    epochs = 3280
    rates = [burda_schedule((e + 0.5) / epochs) for e in range(epochs)]
    start = 0
    for i in range(8):
        stage = rates[start : start + 3**i]
        assert len(stage) == 3**i and all(r == 10.0 ** (-i / 7) for r in stage), i
        start += 3**i
    assert start == epochs
    assert burda_schedule(0.0) == 1.0 and burda_schedule(1.0) == 10.0 ** (-1)


def test_batch_transform_sees_every_batch_with_the_epochs_generator():
    """fit applies batch_transform to each mini-batch before its step (dynamic binarisation):
    the model trains on what it returns."""
    seen = []

    class Recorder:
        params, grads = {}, {}

        def train_step(self, x, rng):
            seen.append(x.copy())
            return {"loss": 1.0}

    class NoOptimizer:
        lr, params, state = 0.1, {}, {}

        def step(self, grads):
            pass

        def state_dict(self):
            return {}

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    fit(Recorder(), NoOptimizer(), x, epochs=2, batch_size=3, seed=0, progress=False,
        batch_transform=lambda batch, rng: -batch, log=lambda message: None)
    assert len(seen) == 4 and all(np.all(batch <= 0) for batch in seen)


def test_resume_with_dynamic_binarisation_and_burda_schedule_continues_exactly(tmp_path):
    """Dynamic binarisation draws from the epoch's generator, which a resumed epoch recreates,
    and the Burda schedule depends on the step number only: an interrupted run ends where a
    straight one does, bit for bit (a different binarisation would not)."""
    kwargs = dict(lr_schedule=burda_schedule, batch_transform=binarize)
    straight, straight_history = run(4, **kwargs)
    checkpoint = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        run(4, checkpoint=checkpoint, log=interrupt_at_epoch(3), **kwargs)
    resumed, resumed_history = run(4, checkpoint=checkpoint, resume=True, **kwargs)
    for name in straight.params:
        np.testing.assert_array_equal(resumed.params[name], straight.params[name])
    assert resumed_history["train_loss"] == straight_history["train_loss"]
    other, _ = run(4, lr_schedule=burda_schedule,
                   batch_transform=lambda x, rng: binarize(x, rng.integers(2**32)))
    assert not np.array_equal(other.params["encoder.0.W"], straight.params["encoder.0.W"])


def test_a_checkpoint_that_deflates_to_gigabytes_is_refused_unread(tmp_path):
    """A deflated member that promises 4 GB in a few kB: np.load would allocate it all."""
    import zipfile

    checkpoint = tmp_path / "ckpt.npz"
    run(1, checkpoint=checkpoint)
    saved = load_arrays(checkpoint)
    with zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in saved.items():
            with archive.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, value)
        with archive.open("bomb.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.zeros(2**29))  # 4 GiB of zeros, 4 MB deflated
    model, opt = model_and_optimizer()
    with pytest.raises(CheckpointError, match="more than the .* expected"):
        fit_quietly(model, opt, checkpoint=checkpoint, resume=True)


@pytest.mark.parametrize("factor", [-0.5, float("nan"), float("inf"), "1"])
def test_a_schedule_that_returns_no_rate_stops_training_before_a_step(factor):
    """A negative factor would climb the loss (gradient ascent) without a word."""
    model, opt = model_and_optimizer()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="schedule returned .* finite number >= 0"):
        fit_quietly(model, opt, lr_schedule=lambda done: factor)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("kwargs, error", [({"epochs": 2.5}, TypeError),
                                           ({"batch_size": 8.0}, TypeError),
                                           ({"epochs": -1}, ValueError)])
def test_fit_checks_its_counts(kwargs, error):
    model, opt = model_and_optimizer()
    with pytest.raises(error, match="must be an integer"):
        fit_quietly(model, opt, **kwargs)
