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
Ctrl-C at any moment leaves the last complete checkpoint in place.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .io import assign_params, load_arrays, save_arrays

__all__ = ["fit", "iterate_minibatches", "cosine_decay", "checkpoint_config", "CheckpointError",
           "CheckpointMismatch"]


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed: it is damaged, or it is not a checkpoint."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint was written by a run with other settings than the one resuming it."""


def iterate_minibatches(
    n: int, batch_size: int, rng: np.random.Generator | int | None, drop_last: bool = True
) -> list[np.ndarray]:
    """One epoch's mini-batches: index arrays into N examples, in a seeded random order.

    Every example appears in at most one batch. Each batch has ``batch_size`` indices; the
    last N mod batch_size examples of the shuffled order are left out when ``drop_last``
    (then every step's loss averages over the same number of examples), else they form a
    smaller last batch. Use a batch as ``x[indices]``.
    """
    if not 1 <= batch_size:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.random.default_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[start : start + batch_size] for start in range(0, stop, batch_size)]


def cosine_decay(progress: float) -> float:
    """Learning-rate multiplier ``(1 + cos(pi * progress)) / 2``: 1 at the start, 0 at the end.

    Large steps early explore, small steps late settle into a minimum (Loshchilov & Hutter,
    *SGDR*, 2017, without restarts). ``progress`` is the fraction of training done, in [0, 1].
    """
    return 0.5 * (1.0 + math.cos(math.pi * progress))


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
        the one the checkpoint was written with, else :class:`CheckpointMismatch`.
    lr_schedule : callable, optional
        ``progress -> multiplier`` of the optimizer's initial learning rate, applied before
        every step with progress = steps done / all steps (for example :func:`cosine_decay`).
        It depends only on the step number, so a resumed run follows the same schedule.
    progress : bool
        Show a progress bar (epoch, loss, samples per second).

    Returns
    -------
    history : dict[str, list[float]]
        ``"train_<name>"`` (mean over the epoch's batches) and ``"test_<name>"`` per epoch,
        plus ``"epoch_seconds"``.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    x_train = np.asarray(x_train)
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
    checkpoint = Path(checkpoint) if checkpoint is not None else None

    if resume and checkpoint is not None and checkpoint.exists():
        start_epoch, history = _load_checkpoint(checkpoint, model, optimizer, config)
        log(f"resumed from {checkpoint} after epoch {start_epoch}")
    elif resume:
        log(f"no checkpoint at {checkpoint}; starting from scratch")

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
                    optimizer.lr = base_lr * lr_schedule(done)
                losses = model.train_step(x_train[indices], rng)
                if not np.isfinite(losses["loss"]):  # before the step: keep the parameters
                    raise FloatingPointError(
                        f"the loss became {losses['loss']} at epoch {epoch + 1}, step {step}, "
                        "and that step was not applied. Either the learning rate is too "
                        "high (try a smaller --lr) or the data holds NaN or inf values"
                    )
                optimizer.step(model.grads)
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                if step % 20 == 0 or step == steps_per_epoch:
                    rate = step * batch_size / (time.perf_counter() - started)
                    bar.set_postfix(loss=f"{sums['loss'] / step:.3f}", samples_s=f"{rate:,.0f}")
            bar.close()
            seconds = time.perf_counter() - started
            record = {f"train_{name}": total / steps_per_epoch for name, total in sums.items()}
            if x_eval is not None:
                evaluated = model.evaluate(x_eval, rng=np.random.default_rng([seed, epoch, 1]))
                record.update({f"test_{name}": value for name, value in evaluated.items()})
            record["epoch_seconds"] = seconds
            for name, value in record.items():
                history.setdefault(name, []).append(float(value))
            log(
                f"epoch {epoch + 1}/{epochs}  "
                + "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch_seconds")
                + f"  ({seconds:.1f} s, {steps_per_epoch * batch_size / seconds:,.0f} samples/s)"
            )
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, epoch + 1, history, config)
    except KeyboardInterrupt:
        if checkpoint is not None and checkpoint.exists():
            log(f"\ninterrupted: the checkpoint {checkpoint} is intact; rerun with --resume")
        raise
    finally:
        optimizer.lr = base_lr  # the schedule scales the rate during fit only
    return history


def _save_checkpoint(path: Path, model, optimizer, epoch: int, history: dict, config: dict):
    arrays = {f"params/{name}": value for name, value in model.params.items()}
    arrays.update({f"optim/{name}": value for name, value in optimizer.state_dict().items()})
    meta = {"epoch": epoch, "history": history, "config": config}
    arrays["meta"] = np.array(json.dumps(meta, default=str))
    save_arrays(path, arrays)


def checkpoint_config(path: str | os.PathLike) -> dict:
    """The settings (``config``) a checkpoint was written with; :class:`CheckpointError` if
    it is not a whole checkpoint."""
    config = _read_checkpoint(Path(path))[1]["config"]
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} cannot be resumed: its settings are not a mapping. "
                              "Delete it to train from the start.")
    return config


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint, or :class:`CheckpointError` naming what is wrong."""
    try:
        saved = load_arrays(path)
        if "meta" not in saved:
            raise ValueError("it has no 'meta' entry: it is not a checkpoint that npnet wrote")
        meta = json.loads(str(saved["meta"]))
        if not isinstance(meta, dict) or not {"epoch", "history", "config"} <= meta.keys():
            raise ValueError("its 'meta' entry lacks the epoch, history or settings")
    except ValueError as error:  # json's errors are ValueErrors too
        raise CheckpointError(
            f"{path} cannot be resumed ({error}). Delete it to train from the start, or "
            "resume from a copy of it that is whole."
        ) from error
    return saved, meta


def _load_checkpoint(path: Path, model, optimizer, config: dict) -> tuple[int, dict]:
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
    assign_params(model.params, params, source=str(path))
    optimizer.load_state_dict(
        {k.removeprefix("optim/"): v for k, v in saved.items() if k.startswith("optim/")}
    )
    return int(meta["epoch"]), meta["history"]
