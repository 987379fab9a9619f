"""Chapter 5, exercise 3: the average multiplier of the cosine schedule is 1/2 + 1/(2T).

fit sets the rate of step t (counting from 0) of a run of T steps to
eta_0 * c(t / T), c(r) = (1 + cos(pi r)) / 2. The mean multiplier::

    (1/T) sum_{t=0}^{T-1} (1 + cos(pi t / T)) / 2 = 1/2 + (1 / (2T)) sum_{t=0}^{T-1} cos(pi t / T)

The cosines pair off: cos(pi (T - t) / T) = -cos(pi t / T), so sum_{t=0}^{T} cos(pi t/T) = 0,
and the sum up to T - 1 leaves out only the t = T term, cos(pi) = -1: it is exactly 1.
Hence::

    mean multiplier = 1/2 + 1/(2T),        sum of the multipliers = (T + 1) / 2.

The continuous average, the integral of c over [0, 1], is 1/2; the 1/(2T) is because the
run starts at c(0) = 1 and stops before c(1) = 0. So a cosine run at eta_0 takes steps whose
rates add up to those of a constant run at eta_0 / 2, plus half a step. For Adam, whose
step is about eta in parameter units while a gradient keeps its sign, that bounds how far
a weight can travel: about eta_0 (T + 1) / 2. Half the steps (p < 1/2) have a rate above
eta_0 / 2; the last has c((T - 1)/T) = (1 - cos(pi / T)) / 2 ~ pi^2 / (4 T^2).

Run from anywhere: ``python docs/solutions/05_cosine_average.py``.
"""

import math

import numpy as np

from npnet.train import cosine_decay

for T in (1, 2, 3, 10, 937, 9370):  # 937 = 60000 // 64, one MNIST epoch at batch 64
    multipliers = np.array([cosine_decay(t / T) for t in range(T)])
    mean = multipliers.mean()
    print(f"T = {T:5d}: mean multiplier {mean:.6f}, 1/2 + 1/(2T) = {0.5 + 0.5 / T:.6f}, "
          f"last {multipliers[-1]:.2e}")
    np.testing.assert_allclose(mean, 0.5 + 0.5 / T, rtol=1e-12)
    np.testing.assert_allclose(multipliers.sum(), (T + 1) / 2, rtol=1e-12)
    np.testing.assert_allclose(multipliers[-1], (1 - math.cos(math.pi / T)) / 2, rtol=1e-9)
    assert np.sum(multipliers > 0.5) == math.ceil(T / 2)  # t < T/2: half the steps

np.testing.assert_allclose(cosine_decay(1 - 1 / 9370), math.pi**2 / (4 * 9370**2), rtol=1e-6)
