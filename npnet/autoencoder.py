r"""A denoising autoencoder built from npnet layers.

Training minimises, over mini-batches of clean images x_i and their corruptions x~_i,

.. math::  L = \frac{1}{N} \sum_i \lVert x_i - \mathrm{dec}(\mathrm{enc}(\tilde x_i)) \rVert^2

(:func:`npnet.losses.mse_loss`): the input is corrupted, the target is clean, so the network
must learn what a digit looks like rather than copy pixels.

Default shape (the course asks for at least three layers each way, code under ~20)::

    encoder  784 -> 512 -> 128 -> 16        Dense, ReLU, Dense, ReLU, Dense (linear code)
    decoder   16 -> 128 -> 512 -> 784       Dense, ReLU, Dense, ReLU, Dense, Sigmoid

The sigmoid keeps reconstructions in [0, 1], the range of the pixels.
"""

from __future__ import annotations

import numpy as np

from .analysis import squared_error_per_image
from .corruption import corrupt
from .layers import Sequential, in_batches, mlp
from .losses import mse_loss

__all__ = ["EncoderDecoder", "DenoisingAutoencoder"]


class EncoderDecoder:
    """What every npnet autoencoder has: an ``encoder`` and a ``decoder`` (Sequential).

    Their parameters and gradients, merged under the layers' own names (``"encoder.0.W"``,
    ``"decoder.2.b"``, ...), are what optimizers, checkpoints and parameter files use.
    """

    encoder: Sequential
    decoder: Sequential

    @property
    def params(self) -> dict[str, np.ndarray]:
        """All parameters, the same arrays the layers hold (updated in place)."""
        return {**self.encoder.params, **self.decoder.params}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dL/d(param) from the last backward pass, under the keys of :attr:`params`."""
        return {**self.encoder.grads, **self.decoder.grads}


class DenoisingAutoencoder(EncoderDecoder):
    """Encoder and decoder MLPs trained to undo a corruption of their input.

    Parameters
    ----------
    input_dim : int
        D, pixels per image (784 for MNIST).
    hidden : tuple of int
        Encoder hidden widths, outermost first; the decoder mirrors them.
    code : int
        Width of the code (bottleneck).
    noise, noise_level : str, float
        Corruption applied during training (:func:`npnet.corruption.corrupt`).
    rng : numpy.random.Generator or int or None
        Initial weights.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        All parameters, under ``"encoder.<i>.<W|b>"`` and ``"decoder.<i>.<W|b>"``.
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden: tuple[int, ...] = (512, 128),
        code: int = 16,
        activation: str = "relu",
        noise: str = "gaussian",
        noise_level: float = 0.3,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ):
        rng = np.random.default_rng(rng)
        widths = [int(input_dim), *map(int, hidden), int(code)]
        self.encoder = mlp(widths, activation, None, rng=rng, dtype=dtype, name="encoder")
        self.decoder = mlp(
            widths[::-1], activation, "sigmoid", rng=rng, dtype=dtype, name="decoder"
        )
        corrupt(np.zeros((1, 1), dtype=dtype), noise, noise_level, 0)  # validate early
        self.noise, self.noise_level = noise, float(noise_level)
        self.input_dim, self.code_dim, self.dtype = widths[0], widths[-1], np.dtype(dtype)

    def corrupt(self, x: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
        """x~ for a batch x (N, D), with this model's corruption."""
        return corrupt(x, self.noise, self.noise_level, rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Reconstruction dec(enc(x)), (N, D) -> (N, D); keeps caches for ``backward``."""
        return self.decoder.forward(self.encoder.forward(x))

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dL/d(input) from dL/d(reconstruction); fills ``grads``.

        ``input_grad=False`` skips dL/d(input) (returns None): training needs only ``grads``.
        """
        return self.encoder.backward(self.decoder.backward(dout), input_grad=input_grad)

    def train_step(self, x: np.ndarray, rng: np.random.Generator | int | None) -> dict:
        """Forward and backward on one clean batch x (N, D); fills ``grads``, updates nothing.

        Returns ``{"loss": L}`` with L the squared error per image on the corrupted batch.
        """
        reconstruction = self.forward(self.corrupt(x, rng))
        loss, dreconstruction = mse_loss(reconstruction, x)
        self.backward(dreconstruction, input_grad=False)
        return {"loss": loss}

    def reconstruct(self, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """dec(enc(x)) for a whole dataset (N, D), in batches (no caches are kept)."""
        return in_batches(self.forward, np.asarray(x, dtype=self.dtype), batch_size)

    def encode(self, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """Codes enc(x), (N, D) -> (N, code)."""
        return in_batches(self.encoder.forward, np.asarray(x, dtype=self.dtype), batch_size)

    def evaluate(self, x: np.ndarray, rng: np.random.Generator | int | None = 0) -> dict:
        """Squared error per image on a dataset: ``loss`` (corrupted input, seeded noise, the
        training objective) and ``mse_clean`` (clean input)."""
        x = np.asarray(x, dtype=self.dtype)
        noisy = self.corrupt(x, rng)
        return {
            "loss": squared_error_per_image(x, self.reconstruct(noisy)),
            "mse_clean": squared_error_per_image(x, self.reconstruct(x)),
        }

