"""Chapter 4, exercise 5: the whole curve of a ReLU check across the kink, and its odds.

Part 1. ReLU at x = c h, with step h. For |c| < 1 the two evaluations straddle the kink::

    numeric = (max(0, x + h) - max(0, x - h)) / (2h) = ((c + 1) h - 0) / (2h) = (c + 1) / 2

and numeric = 1 for c >= 1, 0 for c <= -1. The backward says 1 for c > 0 and 0 for c <= 0
(npnet takes the derivative at 0 as 0). For one entry the relative error is scale-free,
so the random dout drops out::

    0 < c < 1:   |1 - (c+1)/2| / (1 + (c+1)/2) = (1 - c) / (3 + c)   (1/3 just above 0)
    -1 < c <= 0: |0 - (c+1)/2| / (0 + (c+1)/2) = 1                   ("unrelated")
    |c| >= 1:    0 up to rounding

Just below the kink a correct ReLU reports the error of a gradient of the wrong sign.

Part 2. How often does that happen by chance? Check a ReLU on x ~ N(0, 1) of shape
(64, 512), E = 32768 entries. One entry lies within h of 0 with probability
2 h phi(0) = 2e-5 * 0.3989 = 7.98e-6, so the expected count is E * 7.98e-6 = 0.26 and the
chance of at least one is 1 - exp(-0.26) = 0.23: about one check in four fails correct
code. That is why the tests push inputs KINK_MARGIN = 1e-3 away from 0.

Run from anywhere: ``python docs/solutions/04_kink_curve.py``.
"""

import math

import numpy as np

from npnet.gradcheck import check_layer
from npnet.layers import ReLU

h = 1e-5


def predicted_error(c):
    if c >= 1 or c <= -1:
        return 0.0
    if c > 0:
        return (1 - c) / (3 + c)
    return 1.0


for c in (-1.5, -0.5, -0.01, 0.01, 0.5, 0.99, 1.5):
    measured = check_layer(ReLU(), np.array([[c * h]]), rng=0)["x"]
    print(f"x = {c:5.2f} h: relative error {measured:.3f}, predicted {predicted_error(c):.3f}")
    assert abs(measured - predicted_error(c)) < 1e-6

# Part 2: the odds, predicted and counted over 1000 random batches.
per_entry = 2 * h * math.exp(0) / math.sqrt(2 * math.pi)
entries = 64 * 512
predicted_odds = 1 - math.exp(-entries * per_entry)
draws = np.random.default_rng(0).standard_normal((1000, entries), dtype=np.float32)
counted_odds = float(np.mean(np.any(np.abs(draws) < h, axis=1)))
print(f"a batch of (64, 512) has an entry within h of 0: predicted {predicted_odds:.3f}, "
      f"counted {counted_odds:.3f}")
assert abs(predicted_odds - 0.23) < 0.01
assert abs(counted_odds - predicted_odds) < 0.04  # 4 standard errors of 1000 draws
