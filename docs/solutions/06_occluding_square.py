"""Chapter 6, exercise 3: a new corruption, a random black square over each image.

Contract (the one npnet.autoencoder's corruptions keep, and
tests/test_autoencoder.py::test_corruption_range_dtype_seed_and_input_untouched checks):

    occluding_square(x, level, rng) -> x~        x, x~ : (N, D), D = H * H, pixels in [0, 1]

* x~ is a new array, x is left untouched;
* x~ has x's dtype and stays in [0, 1];
* all randomness comes from the generator ``rng``: the same seed gives the same squares;
* ``level`` is in [0, 1], like the other probabilities, here the fraction of the image's
  area that is covered: the side is s = round(sqrt(level) * H) pixels; level = 0 gives a copy.

Each image gets its own square, its top-left corner (r_0, c_0) uniform over the
(H - s + 1)^2 positions at which the square fits inside the frame, so every occluded image
loses exactly s^2 pixels of its area:

    x~_n[r, c] = 0    if r_0n <= r < r_0n + s  and  c_0n <= c < c_0n + s
               = x_n[r, c]    otherwise.

Unlike masking noise, which removes isolated pixels that the neighbours give back, a square
removes a whole region of the digit: the denoiser has to fill it in from what a digit of
that shape usually has there.

It plugs into the DAE by subclassing: DenoisingAutoencoder.train_step calls self.corrupt,
so overriding that one method changes the training corruption and nothing else.
"""

import math

import numpy as np

from npnet.autoencoder import DenoisingAutoencoder
from npnet.losses import mse_loss


def occluding_square(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """x~ (N, D): x with a black square covering about ``level`` of each image's area."""
    x = np.asarray(x)
    n, d = x.shape
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(f"occluding_square needs square images, D = H * H; got D = {d}")
    if not 0 <= level <= 1:
        raise ValueError(f"level is the covered fraction of the area, in [0, 1]; got {level}")
    s = round(math.sqrt(level) * side)
    r0 = rng.integers(0, side - s + 1, size=n)[:, None]  # (N, 1) top rows
    c0 = rng.integers(0, side - s + 1, size=n)[:, None]  # (N, 1) left columns
    grid = np.arange(side)[None, :]  # (1, H)
    rows = (grid >= r0) & (grid < r0 + s)  # (N, H)
    cols = (grid >= c0) & (grid < c0 + s)  # (N, H)
    covered = rows[:, :, None] & cols[:, None, :]  # (N, H, H)
    return x * ~covered.reshape(n, d)  # a new array of x's dtype (bool keeps float32 float32)


class OccludedDAE(DenoisingAutoencoder):
    """A DenoisingAutoencoder trained to fill in a square of ``occlusion`` of the area."""

    def __init__(self, *args, occlusion: float = 0.25, **kwargs):
        super().__init__(*args, **kwargs)
        self.occlusion = float(occlusion)

    def corrupt(self, x, rng):
        return occluding_square(x, self.occlusion, np.random.default_rng(rng))


# --- The contract, as tests/test_autoencoder.py checks it for the library's corruptions.
rng = np.random.default_rng(0)
x = rng.random((200, 784), dtype=np.float32)
before = x.copy()
a = occluding_square(x, 0.25, np.random.default_rng(1))
b = occluding_square(x, 0.25, np.random.default_rng(1))
np.testing.assert_array_equal(a, b)  # same seed, same squares
assert not np.array_equal(a, occluding_square(x, 0.25, np.random.default_rng(2)))
assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
np.testing.assert_array_equal(x, before)  # input untouched
zero = occluding_square(x, 0.0, np.random.default_rng(1))
np.testing.assert_array_equal(zero, x)  # level 0: a copy ...
assert zero is not x and not np.shares_memory(zero, x)  # ... not x itself

# --- Its own properties: one square of side 14 (a quarter of 28 x 28) per image.
changed = (a != x).reshape(-1, 28, 28)  # x > 0 almost surely, so changed = covered
assert np.all(changed.sum(axis=(1, 2)) == 14 * 14)
for image in changed[:20]:
    r, c = np.nonzero(image)
    assert r.max() - r.min() == 13 and c.max() - c.min() == 13  # a square, inside the frame
assert np.all(a[a != x] == 0)
whole = occluding_square(x, 1.0, np.random.default_rng(3))
assert np.all(whole == 0)  # level 1 covers everything

# --- Plugged into the DAE: train_step corrupts with the square, scores on the clean batch.
model = OccludedDAE(784, hidden=(32,), code=4, occlusion=0.25, rng=0, dtype=np.float64)
batch = x[:16].astype(np.float64)
loss = model.train_step(batch, rng=5)["loss"]
occluded = occluding_square(batch, 0.25, np.random.default_rng(5))
expected, _ = mse_loss(model.forward(occluded), batch)
np.testing.assert_allclose(loss, expected, rtol=1e-12)
print(f"occluded {changed.sum(axis=(1, 2))[0]} of 784 pixels per image; "
      f"one OccludedDAE step, loss {loss:.3f} (squared error per image)")
