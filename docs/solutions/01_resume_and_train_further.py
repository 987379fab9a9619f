"""Chapter 1, exercise 4: interrupt a run, resume it, and train a finished run further.

What npnet/train.py's fit does that makes a resume exact:

* epoch e draws every random number (the shuffle, the corruption noise) from
  numpy.random.default_rng([seed, e]): it does not depend on what earlier epochs drew;
* the checkpoint, written after every epoch, holds the parameters, the optimizer's state
  (Adam's m, v and step count) and the history;
* the learning-rate multiplier of step i (counted from 0) is cosine_decay(i / (epochs *
  steps_per_epoch)): it depends on the step number and on the run's total number of epochs.

So a run stopped in epoch 3 and resumed with the same options replays epoch 3 from the
checkpoint of epoch 2 and ends bit for bit where an uninterrupted run ends. A run of 2 epochs
resumed with --epochs 4 is another matter: its first two epochs decayed the rate to 0 over 2
epochs, not over 4, so under the cosine schedule it ends elsewhere. Under a constant rate
(``--lr-schedule constant``, ``lr_schedule=None`` here) nothing depends on the total number of
epochs, and training further is the same as training longer from the start.

Run from anywhere: ``python docs/solutions/01_resume_and_train_further.py``.
"""

import tempfile
from pathlib import Path

import numpy as np

from npnet.autoencoder import DenoisingAutoencoder
from npnet.optim import Adam
from npnet.train import cosine_decay, fit

X = np.random.default_rng(0).random((96, 12)) ** 3  # 96 "images" of 12 pixels
BATCH = 16  # 6 steps per epoch


class InterruptedModel(DenoisingAutoencoder):
    """Raises KeyboardInterrupt, as Ctrl-C would, at its ``stop_at``-th training step."""

    stop_at = None

    def train_step(self, x, rng):
        self.steps_taken = getattr(self, "steps_taken", 0) + 1
        if self.steps_taken == self.stop_at:
            raise KeyboardInterrupt
        return super().train_step(x, rng)


class RecordingAdam(Adam):
    """Adam that keeps the learning rate of every step it takes, in ``rates``."""

    def step(self, grads):
        self.rates = [*getattr(self, "rates", []), self.lr]
        super().step(grads)


def train(epochs, schedule, checkpoint=None, resume=False, stop_at=None):
    """A fresh model and optimizer (what a new process starts with), trained by fit.
    Returns the model, the history and the learning rates of the steps this call took."""
    model = InterruptedModel(12, hidden=(8, 6), code=3, noise_level=0.1, rng=0)
    model.stop_at = stop_at
    optimizer = RecordingAdam(model.params, lr=1e-2)
    history = fit(model, optimizer, X, x_eval=X[:32], epochs=epochs, batch_size=BATCH, seed=0,
                  checkpoint=checkpoint, resume=resume, config={"schedule": str(schedule)},
                  lr_schedule=schedule, progress=False, log=lambda line: None)
    return model, history, np.array(getattr(optimizer, "rates", [])) / 1e-2


def same_params(a, b):
    return all(np.array_equal(a.params[name], b.params[name]) for name in a.params)


def same_history(a, b):
    """Every number of two histories, except the wall time (which no seed fixes)."""
    return {k: v for k, v in a.items() if k != "epoch_seconds"} == {
        k: v for k, v in b.items() if k != "epoch_seconds"}


with tempfile.TemporaryDirectory() as folder:
    folder = Path(folder)

    # CHECK 1: Ctrl-C in the middle of epoch 3 (step 15 of 24), then a resume with the same
    # options: the same parameters and history as a run that went straight through.
    straight, straight_history, straight_rates = train(4, cosine_decay)
    np.testing.assert_allclose(straight_rates, [cosine_decay(i / 24) for i in range(24)])
    try:
        train(4, cosine_decay, folder / "a.npz", stop_at=2 * 6 + 3)
        raise AssertionError("the run was not interrupted")
    except KeyboardInterrupt:
        print("interrupted in epoch 3; the checkpoint holds epoch 2")
    resumed, resumed_history, _ = train(4, cosine_decay, folder / "a.npz", resume=True)
    assert same_params(resumed, straight) and same_history(resumed_history, straight_history)
    print("interrupted + resumed = straight through, bit for bit")

    # CHECK 2: a finished 2-epoch run trained further to 4 epochs, under the cosine schedule:
    # not the 4-epoch run. Its rate fell to 0 by the end of epoch 2 and jumps back to 0.5.
    _, _, first_rates = train(2, cosine_decay, folder / "b.npz")
    further, further_history, later_rates = train(4, cosine_decay, folder / "b.npz",
                                                  resume=True)
    rates = np.concatenate([first_rates, later_rates])  # the 24 steps of the two calls
    print("lr multiplier per step, 2 epochs + 2 more:", np.round(rates, 2))
    print("lr multiplier per step, 4 epochs:         ", np.round(straight_rates, 2))
    np.testing.assert_allclose(rates[:12], [cosine_decay(i / 12) for i in range(12)])
    np.testing.assert_allclose(rates[12:], straight_rates[12:])  # from 0.017 back up to 0.5
    assert not same_params(further, straight)
    assert further_history["train_loss"][:2] != straight_history["train_loss"][:2]
    print("trained further under cosine != trained 4 epochs from the start")

    # CHECK 3: the same under a constant rate: training further is training longer.
    constant, _, _ = train(4, None)
    train(2, None, folder / "c.npz")
    further_constant, _, _ = train(4, None, folder / "c.npz", resume=True)
    assert same_params(further_constant, constant)
    print("under a constant rate, 2 epochs + 2 more = 4 epochs, bit for bit")
