r"""A denoising autoencoder built from npnet layers, and the corruptions it learns to undo.

Training minimises, over mini-batches of clean images x_i and their corruptions x~_i,

.. math::  L = \frac{1}{N} \sum_i \lVert x_i - \mathrm{dec}(\mathrm{enc}(\tilde x_i)) \rVert^2

(:func:`npnet.losses.mse_loss`): the input is corrupted, the target is clean, so the network
must learn what a digit looks like rather than copy pixels.

Default shape (the course asks for at least three layers each way, code under ~20)::

    encoder  784 -> 512 -> 128 -> 16        Dense, ReLU, Dense, ReLU, Dense (linear code)
    decoder   16 -> 128 -> 512 -> 784       Dense, ReLU, Dense, ReLU, Dense, Sigmoid

The sigmoid keeps reconstructions in [0, 1], the range of the pixels.

The corruptions (:func:`corrupt`) keep pixels in [0, 1] and the input's dtype, draw their
randomness from the ``numpy.random.Generator`` they are given (same seed, same noise), and
leave ``x`` untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import checks
from .conv import conv_decoder, conv_encoder
from .layers import Sequential, mlp
from .losses import mse_loss, squared_error_per_image

__all__ = ["CORRUPTIONS", "ARCHITECTURES", "corrupt", "in_batches", "encoder_and_decoder",
           "EncoderDecoder", "DenoisingAutoencoder"]

ARCHITECTURES = ("dense", "conv")


def gaussian_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """x~ = clip(x + level * n, 0, 1), n ~ N(0, I): ``level`` is the noise's standard deviation."""
    return np.clip(x + level * rng.standard_normal(x.shape, dtype=x.dtype), 0, 1)


def masking_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each pixel independently set to 0 with probability ``level`` (Vincent et al., 2008)."""
    keep = rng.random(x.shape) >= level
    return x * keep


def salt_and_pepper(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each pixel independently, with probability ``level``, set to 0 or 1 (half each)."""
    u = rng.random(x.shape)
    noisy = x.copy()
    noisy[u < level / 2] = 0
    noisy[(u >= level / 2) & (u < level)] = 1
    return noisy


CORRUPTIONS = {
    "gaussian": gaussian_noise,
    "masking": masking_noise,
    "salt_and_pepper": salt_and_pepper,
}


def corrupt(
    x: np.ndarray, kind: str, level: float, rng: np.random.Generator | int | None
) -> np.ndarray:
    """Corrupt a batch of images (N, D) with pixels in [0, 1]; returns a new (N, D) array.

    Parameters
    ----------
    kind : {"gaussian", "masking", "salt_and_pepper"}
    level : float
        Noise standard deviation (gaussian) or the probability that a pixel is hit (the
        others). ``level = 0`` returns a copy of ``x``.

    Tested by: tests/test_autoencoder.py::test_corruption_rates,
    tests/test_autoencoder.py::test_corruption_range_dtype_seed_and_input_untouched
    """
    checks.one_of(kind, CORRUPTIONS, "corruption")
    x = checks.pixels(x, "corrupt")
    if kind == "gaussian":
        level = checks.non_negative(level, "noise level for 'gaussian' (a standard deviation)")
    else:
        level = checks.probability(level, f"noise level for {kind!r}")
    return CORRUPTIONS[kind](x, level, checks.generator(rng))


def in_batches(function: Callable, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """``function`` applied to a large array (N, ...) in slices of ``batch_size`` rows.

    Evaluating 10,000 images at once would hold every layer's (10000, width) activations;
    slices bound that memory. The results are concatenated along the first axis.

    Tested by: tests/test_autoencoder.py::test_in_batches_equals_one_batch
    """
    batch_size = checks.integer(batch_size, "batch_size", low=1)
    if len(x) == 0:
        raise ValueError("got an empty array: there is nothing to evaluate")
    return np.concatenate([function(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def encoder_and_decoder(
    arch: str,
    input_dim: int,
    hidden: tuple[int, ...] | None,
    encoder_out: int,
    decoder_in: int,
    activation: str = "relu",
    output_activation: str | None = None,
    channels: tuple[int, ...] = (32, 64),
    default_hidden: tuple[int, ...] = (),
    rng: np.random.Generator | int | None = None,
    dtype=np.float32,
) -> tuple[Sequential, Sequential]:
    """The encoder and decoder (Sequential) of an autoencoder, dense or convolutional.

    ``arch="dense"``: :func:`npnet.layers.mlp` chains, widths
    ``[input_dim, *hidden, encoder_out]`` and ``[decoder_in, *reversed(hidden), input_dim]``
    (``hidden=None`` means ``default_hidden``).
    ``arch="conv"``: :func:`npnet.conv.conv_encoder` and :func:`npnet.conv.conv_decoder` with
    ``channels`` (3 x 3 kernels, stride 2) and Dense layers of widths ``hidden`` between the
    feature maps and the code (``hidden=None`` means none). Both draw the encoder's weights
    from ``rng`` first, then the decoder's.

    Tested by: tests/test_conv.py::test_conv_autoencoder_shapes_and_gradients,
    tests/test_autoencoder.py::test_dae_loss_gradients
    """
    checks.one_of(arch, ARCHITECTURES, "architecture")
    rng = checks.generator(rng)
    if arch == "dense":
        widths = checks.widths(default_hidden if hidden is None else hidden, "hidden")
        encoder = mlp([input_dim, *widths, encoder_out], activation, None, rng=rng,
                      dtype=dtype, name="encoder")
        decoder = mlp([decoder_in, *reversed(widths), input_dim], activation,
                      output_activation, rng=rng, dtype=dtype, name="decoder")
        return encoder, decoder
    hidden = () if hidden is None else hidden
    encoder = conv_encoder(input_dim, channels, hidden, encoder_out, activation, rng=rng,
                           dtype=dtype, name="encoder")
    decoder = conv_decoder(decoder_in, channels, hidden, input_dim, activation,
                           output_activation, rng=rng, dtype=dtype, name="decoder")
    return encoder, decoder


class EncoderDecoder:
    """What every npnet autoencoder has: an ``encoder`` and a ``decoder`` (Sequential).

    Their parameters and gradients, merged under the layers' own names (``"encoder.0.W"``,
    ``"decoder.2.b"``, ...), are what optimizers, checkpoints and parameter files use.

    Tested by: tests/test_vae.py::test_params_and_grads_are_the_layers_arrays,
    tests/test_autoencoder.py::test_dae_refuses_what_is_not_pixels_in_0_1,
    tests/test_vae.py::test_vae_refuses_what_is_not_pixels_in_0_1
    """

    encoder: Sequential
    decoder: Sequential

    def _check_pixels(self, x: np.ndarray, method: str) -> np.ndarray:
        """x as an array of floating-point pixels in [0, 1], or a clear error naming the
        method (:func:`npnet.checks.pixels`)."""
        return checks.pixels(x, f"{type(self).__name__}.{method}")

    @property
    def params(self) -> dict[str, np.ndarray]:
        """All parameters, the same arrays the layers hold (updated in place)."""
        return {**self.encoder.params, **self.decoder.params}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dL/d(param) from the last backward pass, under the keys of :attr:`params`."""
        return {**self.encoder.grads, **self.decoder.grads}


class DenoisingAutoencoder(EncoderDecoder):
    """Encoder and decoder trained to undo a corruption of their input.

    Parameters
    ----------
    input_dim : int
        D, pixels per image (784 for MNIST).
    hidden : tuple of int, optional
        Encoder hidden Dense widths, outermost first; the decoder mirrors them. Default
        (512, 128) for ``arch="dense"``, none for ``arch="conv"``.
    code : int
        Width of the code (bottleneck).
    arch : {"dense", "conv"}
        Dense layers only (module docstring), or convolutions first
        (:func:`encoder_and_decoder`): 784 -> 14x14x32 -> 7x7x64 -> 16 and back.
    channels : tuple of int
        The convolutions' output channels, encoder order (``arch="conv"`` only).
    noise, noise_level : str, float
        Corruption applied during training (:func:`corrupt`).
    rng : numpy.random.Generator or int or None
        Initial weights.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        All parameters, under ``"encoder.<i>.<W|b>"`` and ``"decoder.<i>.<W|b>"``.

    Tested by: tests/test_autoencoder.py::test_dae_loss_gradients,
    tests/test_train.py::test_loss_goes_down_and_history_has_every_epoch,
    tests/test_autoencoder.py::test_dae_widths_must_be_integers
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden: tuple[int, ...] | None = None,
        code: int = 16,
        activation: str = "relu",
        noise: str = "gaussian",
        noise_level: float = 0.3,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
        arch: str = "dense",
        channels: tuple[int, ...] = (32, 64),
    ):
        self.input_dim = checks.width(input_dim, "input_dim")
        self.code_dim = checks.width(code, "code")
        self.encoder, self.decoder = encoder_and_decoder(
            arch, self.input_dim, hidden, self.code_dim, self.code_dim, activation, "sigmoid",
            channels, default_hidden=(512, 128), rng=rng, dtype=dtype)
        corrupt(np.zeros((1, 1), dtype=dtype), noise, noise_level, 0)  # validate early
        self.noise, self.noise_level = noise, float(noise_level)
        self.arch, self.dtype = arch, np.dtype(dtype)

    def corrupt(self, x: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
        """x~ for a batch x (N, D), with this model's corruption."""
        return corrupt(x, self.noise, self.noise_level, rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Reconstruction dec(enc(x)), (N, D) -> (N, D); keeps caches for ``backward``."""
        return self.decoder.forward(self.encoder.forward(x))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dL/d(input) (N, D) from dL/d(reconstruction) (N, D); fills ``grads``."""
        return self.encoder.backward(self.decoder.backward(dout))

    def train_step(self, x: np.ndarray, rng: np.random.Generator | int | None) -> dict:
        """Forward and backward on one clean batch x (N, D); fills ``grads``, updates nothing.

        Returns ``{"loss": L}`` with L the squared error per image on the corrupted batch.
        """
        x = self._check_pixels(x, "train_step")
        reconstruction = self.forward(self.corrupt(x, rng))
        loss, dreconstruction = mse_loss(reconstruction, x)
        self.backward(dreconstruction)
        return {"loss": loss}

    def reconstruct(self, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """dec(enc(x)) for a whole dataset (N, D), in batches (no caches are kept)."""
        x = self._check_pixels(x, "reconstruct")
        return in_batches(self.forward, x, batch_size)  # the layers cast x

    def encode(self, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """Codes enc(x), (N, D) -> (N, code)."""
        return in_batches(self.encoder.forward, self._check_pixels(x, "encode"), batch_size)

    def evaluate(self, x: np.ndarray, rng: np.random.Generator | int | None = 0) -> dict:
        """Squared error per image on a dataset: ``loss`` (corrupted input, seeded noise, the
        training objective) and ``mse_clean`` (clean input)."""
        x = np.asarray(self._check_pixels(x, "evaluate"), dtype=self.dtype)
        noisy = self.corrupt(x, rng)
        return {
            "loss": squared_error_per_image(x, self.reconstruct(noisy)),
            "mse_clean": squared_error_per_image(x, self.reconstruct(x)),
        }

