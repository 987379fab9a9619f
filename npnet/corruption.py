"""Input corruption for denoising autoencoders: x -> x~, the target stays the clean x.

All three keep pixels in [0, 1] and the input's dtype, draw their randomness from the
``numpy.random.Generator`` they are given (same seed, same noise), and leave ``x`` untouched.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CORRUPTIONS", "corrupt"]


def standard_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    r"""float32 samples of N(0, 1) by the Box-Muller transform (Box & Muller, 1958).

    For u1, u2 independent and uniform on (0, 1],

    .. math::  r = \sqrt{-2 \ln u_1}, \quad z_1 = r \cos(2 \pi u_2), \quad
               z_2 = r \sin(2 \pi u_2)

    are two independent standard normal samples. Why not ``rng.standard_normal``: its
    (scalar, branching) ziggurat sampler takes most of a DAE training step's non-matmul
    time, while uniforms plus NumPy's vectorised log, sqrt, cos and sin cost about a third
    of it. The uniforms have 24-bit resolution, so |z| <= 5.8: tails beyond 5.8 sigma (a
    probability of 7e-9) are never drawn, which no corruption can notice.
    """
    size = math.prod(shape)
    half = (size + 1) // 2
    # One array holds u1 | u2 and is overwritten, in place, by z1 | z2.
    z = rng.random(2 * half, dtype=np.float32)
    radius, angle = z[:half], z[half:]  # views: writing them writes z
    np.subtract(1.0, radius, out=radius)  # [0, 1) -> (0, 1]: log never sees 0
    np.log(radius, out=radius)
    radius *= -2.0
    np.sqrt(radius, out=radius)
    angle *= 2 * math.pi
    cosine = np.cos(angle)  # the only other array, half the size
    np.sin(angle, out=angle)
    angle *= radius  # z2 = r sin(2 pi u2)
    radius *= cosine  # z1 = r cos(2 pi u2)
    return z[:size].reshape(shape)


def gaussian_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """x~ = clip(x + level * n, 0, 1), n ~ N(0, I): ``level`` is the noise's standard deviation."""
    noisy = standard_normal(x.shape, rng).astype(x.dtype, copy=False)
    noisy *= level
    noisy += x
    return np.clip(noisy, 0.0, 1.0, out=noisy)


def masking_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each pixel independently set to 0 with probability ``level`` (Vincent et al., 2008)."""
    keep = rng.random(x.shape, dtype=np.float32) >= level
    return x * keep


def salt_and_pepper(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each pixel independently, with probability ``level``, set to 0 or 1 (half each)."""
    u = rng.random(x.shape, dtype=np.float32)
    noisy = x.copy()
    noisy[u < level / 2] = 0.0
    noisy[(u >= level / 2) & (u < level)] = 1.0
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
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(CORRUPTIONS)}")
    if not level >= 0 or (kind != "gaussian" and level > 1):
        raise ValueError(
            f"noise level for {kind!r} must be "
            + ("a standard deviation >= 0" if kind == "gaussian" else "a probability in [0, 1]")
            + f", got {level}"
        )
    return CORRUPTIONS[kind](np.asarray(x), float(level), np.random.default_rng(rng))
