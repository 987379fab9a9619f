"""Appendix, exercise 3: why a fused multiply-add would change Adam's bits.

NumPy computes a * b + c in two operations, each rounded: fl(fl(a * b) + c). A fused
multiply-add (FMA) rounds once: fl(a * b + c), with a * b kept exact. Python's
``fractions.Fraction`` does exact arithmetic on the values floats hold, so the exactly
rounded result can be computed and compared.

A float64 triple: a = 1 + 2^-30, b = 1 - 2^-30, c = -1. Then a * b = 1 - 2^-60 exactly.
Just below 1, float64 numbers are 2^-53 apart, so fl(a * b) = 1 and the two-step result is
1 - 1 = 0; the FMA keeps the 2^-60 and returns -2^-60 = -8.7e-19. Not a last-bit
difference here: zero against a number.

In Adam's first line, m <- beta1 * m + (1 - beta1) * g in float32, a compiler allowed to
contract (numba's ``fastmath``) could compute fl(beta1 * m + fl((1 - beta1) * g)). Counted
below over random m and g: a sizeable fraction of the updates would change in the last
bit, and those changes feed every later step. That is why ``adam_kernel`` does not ask
for fastmath, and why the tests compare bits and not a tolerance.

Run from anywhere: ``python docs/solutions/appendix_fused_multiply_add.py``.
"""

from fractions import Fraction

import numpy as np

# float64: Python's float(Fraction) rounds exactly (to nearest, ties to even).
a, b, c = 1 + 2.0**-30, 1 - 2.0**-30, -1.0
two_roundings = a * b + c
fused = float(Fraction(a) * Fraction(b) + Fraction(c))
print(f"float64: a * b + c = {two_roundings!r} in two roundings, {fused!r} fused")
assert two_roundings == 0.0 and fused == -(2.0**-60)


def round_to_float32(q):
    """The float32 nearest the exact rational q, ties to the even significand."""
    guess = np.float32(float(q))  # within one float32 step of the answer
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess,
                  np.nextafter(guess, np.float32(np.inf))]
    distances = [abs(Fraction(float(f)) - q) for f in candidates]
    best = min(distances)
    ties = [f for f, d in zip(candidates, distances, strict=True) if d == best]
    return min(ties, key=lambda f: int(f.view(np.int32)) & 1)  # an even significand wins


# float32, Adam's moment update with the scalars FastAdam passes (the parameters' dtype).
beta1 = np.float32(0.9)
one_minus_beta1 = np.float32(1 - 0.9)
rng = np.random.default_rng(0)
m = rng.standard_normal(20_000).astype(np.float32) * np.float32(0.1)
g = rng.standard_normal(20_000).astype(np.float32)

numpy_way = beta1 * m + one_minus_beta1 * g  # each product rounded, then the sum
second_product = one_minus_beta1 * g
contracted = np.array([round_to_float32(Fraction(float(beta1)) * Fraction(float(mi))
                                        + Fraction(float(pi)))
                       for mi, pi in zip(m, second_product, strict=True)], dtype=np.float32)
# The helper agrees with NumPy where NumPy itself rounds once: the sum of two float32.
check = [round_to_float32(Fraction(float(p)) + Fraction(float(q)))
         for p, q in zip(beta1 * m[:2000], second_product[:2000], strict=True)]
np.testing.assert_array_equal(np.array(check, dtype=np.float32), numpy_way[:2000])

changed = float(np.mean(contracted != numpy_way))
ulps = np.abs(contracted.view(np.int32).astype(np.int64) - numpy_way.view(np.int32))
differs = contracted != numpy_way
assert changed > 0.01  # before the median below, which needs some changed results
print(f"float32 m update: contraction changes {changed:.1%} of the results, most by "
      f"{int(np.median(ulps[differs]))} unit in the last place, up to {ulps.max()} units where "
      "the two terms nearly cancel (the rounding of beta1 * m is then large next to the result)")
assert np.median(ulps[differs]) == 1
