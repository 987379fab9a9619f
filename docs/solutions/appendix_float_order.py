"""Appendix, exercise 2: (a + b) + c and a + (b + c) in float32, and a sum in two orders.

float32 has a 24-bit significand: between 1 and 2 its numbers are spaced 2^-23 apart, so
1 + 2^-24 lies exactly halfway between 1 and the next number, 1 + 2^-23. IEEE rounds a tie
to the even significand, here 1. Take a = 1, b = c = 2^-24::

    (a + b) + c = (1 + 2^-24 -> 1) + 2^-24 -> 1
    a + (b + c) = 1 + 2^-23                  = 1 + 2^-23    (b + c is exact)

Each operation is correctly rounded; the two orders round different intermediate results.
Nothing exotic is needed: random triples of ordinary numbers disagree often (counted
below). A long sum, then, depends on the order of its terms: NumPy's ``np.sum`` adds in
pairs (pairwise summation), ``np.cumsum`` strictly left to right, and their results
differ, as the whole-batch x^T dout differs from the sum of two shard products in
DataParallel.

Run from anywhere: ``python docs/solutions/appendix_float_order.py``.
"""

import math

import numpy as np

a, b, c = np.float32(1.0), np.float32(2.0**-24), np.float32(2.0**-24)
left, right = (a + b) + c, a + (b + c)
print(f"(a + b) + c = {left!r}, a + (b + c) = {right!r}")
assert left == np.float32(1.0) and right == np.float32(1.0 + 2.0**-23)
assert left != right

# How often do random triples in [0, 1) disagree?
rng = np.random.default_rng(0)
u, v, w = rng.random((3, 100_000), dtype=np.float32)
disagree = float(np.mean((u + v) + w != u + (v + w)))
print(f"random float32 triples in [0, 1): the two orders differ for {disagree:.0%}")
assert disagree > 0.05

# A long sum in two orders, against the exact sum (math.fsum: float64, correctly rounded,
# and float32 terms are exact in float64).
terms = rng.random(100_000, dtype=np.float32)
exact = math.fsum(terms.astype(np.float64))
pairwise, left_to_right = float(np.sum(terms)), float(np.cumsum(terms)[-1])
print(f"sum of 1e5 float32 terms: pairwise {pairwise:.2f}, left to right {left_to_right:.2f}, "
      f"exact {exact:.2f}")
assert pairwise != left_to_right
assert abs(pairwise - exact) < abs(left_to_right - exact)  # pairs round less

# The shard effect: x^T dout over the whole batch, and over two shards added afterwards.
x = rng.random((1000, 8), dtype=np.float32)
dout = rng.standard_normal((1000, 5), dtype=np.float32)
whole = x.T @ dout
sharded = x[:600].T @ dout[:600] + x[600:].T @ dout[600:]
relative = np.abs(sharded - whole).max() / np.abs(whole).max()
print(f"x^T dout, whole batch vs two shards: {np.mean(sharded != whole):.0%} of the entries "
      f"differ, by at most {relative:.1e} of the largest")
assert np.any(sharded != whole) and relative < 1e-5
