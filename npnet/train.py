"""One training loop for every npnet model: epochs, progress, evaluation, checkpoint/resume.

The loop knows nothing of MNIST or of which model it trains. A model only has to offer

* ``params`` and ``grads``: dicts of arrays under the same keys (what the optimizer uses);
* ``train_step(x_batch, rng) -> dict[str, float]``: forward and backward on one batch,
  filling ``grads`` and returning the batch's losses (``"loss"`` at least);
* ``evaluate(x, rng) -> dict[str, float]``: the same losses on a whole dataset.

Reproducibility: every random choice of epoch ``e`` (the shuffle, the noise of the
corruption or of the VAE sampler) comes from ``numpy.random.default_rng([seed, e])``. An
epoch is therefore the same whether the run went straight through or was resumed from a
checkpoint written after epoch ``e - 1``.

Checkpoints: after every epoch, one ``.npz`` file holds the parameters, the optimizer's
state and the history (as JSON text), written atomically (:func:`npnet.io.save_arrays`), so
Ctrl-C at any moment leaves the last complete checkpoint in place. A checkpoint is checked
when it is loaded (finite numbers, a sane epoch and history), and only a sound epoch is
written: a run that diverges stops with :class:`TrainingDiverged` and keeps the checkpoint
of its last good epoch.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import checks
from .io import assign_params, load_arrays, save_arrays

__all__ = ["fit", "iterate_minibatches", "cosine_decay", "burda_schedule", "checkpoint_config",
           "checkpoint_meta", "CheckpointError", "CheckpointMismatch", "TrainingDiverged",
           "EXPLOSION_FACTOR"]

# A loss this many times above the reference (below) has exploded: far beyond the noise of a
# bad epoch, and reached within an epoch or two by a learning rate that is too high.
EXPLOSION_FACTOR = 100.0
# No run takes more optimizer steps (2^53: a float64 counts them exactly); a checkpoint's
# larger count is damage, and would overflow when written back.
MAX_STEPS = 2**53


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed: it is damaged, or it is not a checkpoint."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint was written by a run with other settings than the one resuming it."""


class TrainingDiverged(FloatingPointError):
    """Training stopped because it went wrong: a loss or an evaluation that is not finite or
    has exploded, parameters that are not finite, or a failed ``check_model``. The checkpoint
    of the last good epoch is kept."""


def iterate_minibatches(
    n: int, batch_size: int, rng: np.random.Generator | int | None, drop_last: bool = True
) -> list[np.ndarray]:
    """One epoch's mini-batches: index arrays into N examples, in a seeded random order.

    Every example appears in at most one batch. Each batch has ``batch_size`` indices; the
    last N mod batch_size examples of the shuffled order are left out when ``drop_last``
    (then every step's loss averages over the same number of examples), else they form a
    smaller last batch. Use a batch as ``x[indices]``.
    """
    n = checks.integer(n, "n (the number of examples)")
    batch_size = checks.integer(batch_size, "batch_size", low=1)
    order = checks.generator(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[start : start + batch_size] for start in range(0, stop, batch_size)]


def cosine_decay(progress: float) -> float:
    """Learning-rate multiplier ``(1 + cos(pi * progress)) / 2``: 1 at the start, 0 at the end.

    Large steps early explore, small steps late settle into a minimum (Loshchilov & Hutter,
    *SGDR*, 2017, without restarts). ``progress`` is the fraction of training done, in [0, 1].
    """
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# Burda, Grosse & Salakhutdinov (2015), section 5: 3^i epochs at learning rate
# 0.001 * 10^(-i/7), for i = 0..7, 3,280 epochs in all.
BURDA_STAGES = tuple(3**i for i in range(8))


def burda_schedule(progress: float) -> float:
    """Learning-rate multiplier of Burda et al.'s schedule, stretched to any run length:
    ``10^(-i/7)`` in stage i = 0..7, stage i taking the fraction ``3^i / 3280`` of training.

    With 3,280 epochs and an initial rate of 0.001 it is the paper's schedule (3^i epochs
    at 0.001 * 10^(-i/7)); with fewer, each stage keeps its share of the run.

    Tested by: tests/test_train.py::test_burda_schedule_has_the_papers_stages
    """
    boundary, total = 0, sum(BURDA_STAGES)
    for i, length in enumerate(BURDA_STAGES):
        boundary += length
        if progress * total < boundary:
            return 10.0 ** (-i / 7)
    return 10.0 ** (-(len(BURDA_STAGES) - 1) / 7)


def fit(
    model,
    optimizer,
    x_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    x_eval: np.ndarray | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    config: dict | None = None,
    lr_schedule: Callable[[float], float] | None = None,
    check_model: Callable[[], str | None] | None = None,
    batch_transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    run_id: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Train ``model`` with ``optimizer`` for ``epochs`` passes over ``x_train``.

    Parameters
    ----------
    x_train : ndarray, (N, D)
        Training examples; shuffled into mini-batches every epoch.
    x_eval : ndarray, (M, D), optional
        Evaluated after every epoch with ``model.evaluate`` (the test set, never trained on).
    checkpoint : path, optional
        Where to write a checkpoint after every epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists. ``config`` (the run's settings) must equal
        the one the checkpoint was written with, else :class:`CheckpointMismatch`; so must a
        damaged checkpoint (:class:`CheckpointError`). ``epochs`` may be more than the
        checkpoint has done (training further), not fewer.
    lr_schedule : callable, optional
        ``progress -> multiplier`` of the optimizer's initial learning rate, applied before
        every step with progress = steps done / all steps (for example :func:`cosine_decay`).
        It depends only on the step number, so a resumed run follows the same schedule. A run
        resumed with more ``epochs`` than it started with follows the longer schedule from
        where it is, which is not what a run that long from the start does (it says so).
    check_model : callable, optional
        ``() -> None`` when the model is sound, or a sentence saying what is wrong with it
        (for example that every reconstruction is the same image); called after every
        epoch's evaluation, before its checkpoint is written.
    batch_transform : callable, optional
        ``(batch, rng) -> batch``, applied to every mini-batch before its step with the
        epoch's generator: :func:`npnet.data.binarize` gives dynamic binarisation, a fresh
        draw of every batch. Not applied to ``x_eval``.
    run_id : str, optional
        Written into every checkpoint, so that a reader can tell which run wrote it.
    progress : bool
        Show a progress bar: the epoch's steps and time left (tqdm's), its loss and samples
        per second, and when the whole training will end; the line ``log`` gets after each
        epoch says it too.

    Returns
    -------
    history : dict[str, list[float]]
        ``"train_<name>"`` (mean over the epoch's batches) and ``"test_<name>"`` per epoch,
        plus ``"epoch_seconds"``.

    Raises
    ------
    TrainingDiverged
        After an epoch whose losses or evaluation are not finite, whose ``train_loss`` or
        ``test_loss`` has exploded (more than :data:`EXPLOSION_FACTOR` times the lowest
        earlier epoch's, or in the first epoch the first step's loss), whose parameters are
        not finite, or whose ``check_model`` failed: that epoch's checkpoint is not written.
        A step whose loss is not finite stops training before it is applied.
    """
    epochs = checks.integer(epochs, "epochs")
    batch_size = checks.integer(batch_size, "batch_size", low=1)
    _check_seed(seed)
    x_train = np.asarray(x_train)
    if x_eval is not None:
        x_eval = np.asarray(x_eval)
        _check_finite_data(x_eval, "x_eval")
    if not 1 <= batch_size <= len(x_train):
        raise ValueError(
            f"batch_size must be between 1 and the number of training examples "
            f"({len(x_train)}), got {batch_size}; choose another --batch-size"
        )
    steps_per_epoch = len(x_train) // batch_size  # the last, smaller batch is dropped
    base_lr = optimizer.lr
    config = dict(config or {})
    history: dict[str, list[float]] = {}
    start_epoch = 0
    first_loss = None  # the first step's loss: epoch 1's reference for an explosion
    checkpoint = Path(checkpoint) if checkpoint is not None else None

    if resume and checkpoint is not None and checkpoint.exists():
        start_epoch, history, planned = _load_checkpoint(checkpoint, model, optimizer, config)
        log(f"resumed from {checkpoint} after epoch {start_epoch}")
        if start_epoch > epochs:
            raise CheckpointMismatch(
                f"{checkpoint} has already trained {start_epoch} epochs; epochs={epochs} "
                f"would train none of them. Resume with --epochs {start_epoch} (to use it as "
                "it is) or more (to train further).")
        if lr_schedule is not None and planned not in (None, epochs) and start_epoch < epochs:
            log(f"note: {checkpoint} was trained as a {planned}-epoch run; its learning-rate "
                f"schedule now stretches over {epochs} epochs from epoch {start_epoch + 1} on, "
                f"which is not the same as a {epochs}-epoch run from the start")
    elif resume:
        log(f"no checkpoint at {checkpoint}; starting from scratch")

    # The whole run's time left, from this call's pace so far (its evaluations included).
    run_started, steps_left = time.perf_counter(), (epochs - start_epoch) * steps_per_epoch
    steps_done = 0
    try:
        for epoch in range(start_epoch, epochs):
            rng = np.random.default_rng([seed, epoch])
            # Every step sees a full batch, so the loss's 1/N means the same at every step.
            batches = iterate_minibatches(len(x_train), batch_size, rng, drop_last=True)
            started = time.perf_counter()
            sums: dict[str, float] = {}
            bar = tqdm(
                batches,
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                disable=not progress,
                leave=False,
                dynamic_ncols=True,
            )
            for step, indices in enumerate(bar, start=1):
                if lr_schedule is not None:
                    done = (epoch * steps_per_epoch + step - 1) / (epochs * steps_per_epoch)
                    optimizer.lr = _scheduled_rate(base_lr, lr_schedule, done)
                batch = x_train[indices]
                if batch_transform is not None:
                    batch = batch_transform(batch, rng)
                losses = model.train_step(batch, rng)
                if epoch == 0 and step == 1:
                    first_loss = losses["loss"]
                if not np.isfinite(losses["loss"]):  # before the step: keep the parameters
                    raise FloatingPointError(
                        f"the loss became {losses['loss']} at epoch {epoch + 1}, step {step}, "
                        "and that step was not applied. Either the learning rate is too "
                        "high (try a smaller --lr) or the data holds NaN or inf values"
                    )
                optimizer.step(model.grads)
                steps_done += 1
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                if step % 20 == 0 or step == steps_per_epoch:
                    now = time.perf_counter()
                    rate = step * batch_size / (now - started)
                    left = (now - run_started) / steps_done * (steps_left - steps_done)
                    bar.set_postfix_str(f"loss {sums['loss'] / step:.3f}, {rate:,.0f} "
                                        f"samples/s, training ends in about {_clock(left)}")
            bar.close()
            seconds = time.perf_counter() - started
            record = {f"train_{name}": total / steps_per_epoch for name, total in sums.items()}
            if x_eval is not None:
                evaluated = model.evaluate(x_eval, rng=np.random.default_rng([seed, epoch, 1]))
                record.update({f"test_{name}": value for name, value in evaluated.items()})
            record["epoch_seconds"] = seconds
            left = (time.perf_counter() - run_started) / steps_done * (steps_left - steps_done)
            log(
                f"epoch {epoch + 1}/{epochs}  "
                + "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch_seconds")
                + f"  ({seconds:.1f} s, {steps_per_epoch * batch_size / seconds:,.0f} samples/s"
                + (f"; training ends in about {_clock(left)}" if epoch + 1 < epochs else "")
                + ")"
            )
            problem = (_diverged(record, history, first_loss)
                       or _non_finite_state(model, optimizer)
                       or (check_model() if check_model is not None else None))
            if problem:
                kept = "" if checkpoint is None else (
                    f"; {checkpoint} of epoch {epoch} is kept" if epoch > 0 else
                    "; no checkpoint was written")
                raise TrainingDiverged(
                    f"training went wrong in epoch {epoch + 1}: {problem}. Training stopped"
                    f"{kept}. The learning rate is probably too high: try a smaller --lr")
            for name, value in record.items():
                history.setdefault(name, []).append(float(value))
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, epoch + 1, history, config,
                                 planned=epochs, run_id=run_id)
    except KeyboardInterrupt:
        if checkpoint is not None and checkpoint.exists():
            log(f"\ninterrupted: the checkpoint {checkpoint} is intact; rerun with --resume")
        raise
    finally:
        optimizer.lr = base_lr  # the schedule scales the rate during fit only
    return history


def _scheduled_rate(base_lr: float, lr_schedule: Callable[[float], float], done: float) -> float:
    """The learning rate at the fraction ``done`` of training: ``base_lr`` times the schedule's
    factor, which must be a finite number >= 0 (a negative one would climb the loss)."""
    factor = lr_schedule(done)
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not (
            0 <= factor < math.inf):
        raise ValueError(f"the learning-rate schedule returned {factor!r} at {done:.3f} of "
                         "training; it must return a finite number >= 0 (a factor of --lr)")
    return base_lr * factor


def _clock(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:05``: a time left, as a progress bar shows one."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer >= 0, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")


def _check_finite_data(x: np.ndarray, name: str) -> None:
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values; remove or replace them "
                         "before training")


def _diverged(record: dict, history: dict, first_loss: float | None) -> str | None:
    """What is wrong with an epoch's ``record`` of losses, or None (see ``fit``'s Raises)."""
    for name, value in record.items():
        if not math.isfinite(value):
            return f"{name} is {value}, not finite"
    for name in ("train_loss", "test_loss"):
        earlier, what = history.get(name), "the lowest of an earlier epoch"
        if not earlier:
            earlier, what = ([] if first_loss is None else [first_loss]), "the first step's"
        if name in record and earlier and 0 < min(earlier) < record[name] / EXPLOSION_FACTOR:
            return (f"{name} is {record[name]:.6g}, more than {EXPLOSION_FACTOR:g} times "
                    f"{min(earlier):.6g} ({what}): it has exploded")
    return None


def _non_finite_state(model, optimizer) -> str | None:
    """Which parameter or optimizer state holds NaN or inf, or None."""
    named = [("parameter", model.params), ("optimizer state", optimizer.state_dict())]
    for kind, arrays in named:
        for name, value in arrays.items():
            if not np.all(np.isfinite(value)):
                return f"{kind} {name!r} is not finite"
    return None


def _save_checkpoint(path: Path, model, optimizer, epoch: int, history: dict, config: dict,
                     planned: int, run_id: str | None):
    arrays = {f"params/{name}": value for name, value in model.params.items()}
    arrays.update({f"optim/{name}": value for name, value in optimizer.state_dict().items()})
    meta = {"epoch": epoch, "history": history, "config": config, "epochs": planned,
            "run_id": run_id}
    arrays["meta"] = np.array(json.dumps(meta, default=str))
    save_arrays(path, arrays)


def checkpoint_config(path: str | os.PathLike) -> dict:
    """The settings (``config``) a checkpoint was written with; :class:`CheckpointError` if
    it is not a whole checkpoint."""
    return checkpoint_meta(path)["config"]


def checkpoint_meta(path: str | os.PathLike) -> dict:
    """What a checkpoint says of its run: ``epoch`` (epochs done), ``history``, ``config``,
    and where it has them, ``epochs`` (the run's planned total) and ``run_id``.
    :class:`CheckpointError` if it is not a whole, sound checkpoint."""
    return _read_checkpoint(Path(path))[1]


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint, or :class:`CheckpointError` naming what is wrong."""
    try:
        if path.is_dir():
            raise ValueError("it is a directory, not a file")
        saved = load_arrays(path)
        if "meta" not in saved:
            raise ValueError("it has no 'meta' entry: it is not a checkpoint that npnet wrote")
        try:
            meta = json.loads(str(saved["meta"]))
        except RecursionError:
            raise ValueError("its 'meta' entry is nested too deeply to be npnet's") from None
        if not isinstance(meta, dict) or not {"epoch", "history", "config"} <= meta.keys():
            raise ValueError("its 'meta' entry lacks the epoch, history or settings")
        _check_meta(meta)
        _check_arrays(saved)
    except (OSError, ValueError) as error:  # json's errors are ValueErrors too
        raise CheckpointError(
            f"{path} cannot be resumed ({error}). Delete it to train from the start, or "
            "resume from a copy of it that is whole."
        ) from error
    return saved, meta


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_meta(meta: dict) -> None:
    """A checkpoint's epoch, planned epochs, settings and history are what fit writes."""
    epoch, history = meta["epoch"], meta["history"]
    if not _is_count(epoch):
        raise ValueError(f"its epoch is {epoch!r}, not an integer >= 0")
    if not (meta.get("epochs") is None or _is_count(meta["epochs"])):
        raise ValueError(f"its planned epochs are {meta['epochs']!r}, not an integer >= 0")
    if not isinstance(meta["config"], dict):
        raise ValueError("its settings are not a mapping")
    if not isinstance(meta.get("run_id"), str | None):
        raise ValueError(f"its run_id is {meta['run_id']!r}, not a string")
    if not isinstance(history, dict):
        raise ValueError(f"its history is a {type(history).__name__}, not a mapping of lists")
    for name, values in history.items():
        if not isinstance(values, list) or len(values) != epoch:
            raise ValueError(f"its history of {name!r} is not a list of {epoch} numbers, "
                             f"one per epoch done")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"its history of {name!r} holds values that are not finite "
                             "numbers")


def _check_arrays(saved: dict) -> None:
    """Every parameter and optimizer state is finite numbers; the step count is a count."""
    for name, value in saved.items():
        if name == "meta":
            continue
        if not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"its {name!r} holds {value.dtype} values, not numbers")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"its {name!r} holds NaN or infinite values (a run that "
                             "diverged, or a damaged file)")
    steps = saved.get("optim/steps")
    if steps is None or steps.shape != () or not np.issubdtype(steps.dtype, np.integer) or (
            steps < 0 or steps > MAX_STEPS):
        raise ValueError("its optimizer state has no step count ('optim/steps', an integer "
                         f"from 0 to {MAX_STEPS:,})")


def _load_checkpoint(path: Path, model, optimizer, config: dict) -> tuple[int, dict, int | None]:
    """Load a checkpoint into ``model`` and ``optimizer``, all or nothing; returns the epochs
    done, the history and the planned epochs (None in checkpoints from before they were
    recorded)."""
    saved, meta = _read_checkpoint(path)
    saved_config = json.loads(json.dumps(meta["config"], default=str))
    wanted = json.loads(json.dumps(config, default=str))
    if saved_config != wanted:
        differing = sorted(
            key
            for key in saved_config.keys() | wanted.keys()
            if saved_config.get(key) != wanted.get(key)
        )
        raise CheckpointMismatch(
            f"{path} was written by a run with other settings ({', '.join(differing)} differ: "
            + "; ".join(f"{k}: {saved_config.get(k)!r} -> {wanted.get(k)!r}" for k in differing)
            + "). Resume with the same options, or start afresh in another --out folder."
        )
    params = {k.removeprefix("params/"): v for k, v in saved.items() if k.startswith("params/")}
    state = {k.removeprefix("optim/"): v for k, v in saved.items() if k.startswith("optim/")}
    # assign_params and the optimizer each check everything before they change anything;
    # the copy puts the parameters back if the optimizer then refuses its state.
    before = {name: value.copy() for name, value in model.params.items()}
    try:
        assign_params(model.params, params, source=str(path))
        optimizer.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as error:
        assign_params(model.params, before, source="the parameters before loading")
        message = error.args[0] if isinstance(error, KeyError) else error
        raise CheckpointError(
            f"{path} cannot be resumed ({message}). Delete it to train from the start."
        ) from error
    return meta["epoch"], meta["history"], meta.get("epochs")
