r"""Chapter 10, exercise 3: the bias of log (1/k) sum_i w_i, for log-normal weights.

Let log w ~ N(m, v). The moments of a log-normal (E[e^{aY}] = e^{a m + a^2 v / 2} for
Y ~ N(m, v)):

    E[w]   = e^{m + v/2},     E[w^2] = e^{2m + 2v},
    Var(w) / E[w]^2 = E[w^2] / E[w]^2 - 1 = e^v - 1,

so the second-order formula of the chapter predicts

    E[log mean_k w] - log E[w]  ~  -(e^v - 1) / (2k).

At k = 1 the bias is exact and simple: E[log w] - log E[w] = m - (m + v/2) = -v/2. For small
v, e^v - 1 ~ v and the formula gives -v/2 too; for v = 4 it gives -26.8 instead of -2.

Why the formula needs a much larger k for v = 4: it expands log mean_k w around E[w], so it
holds once the average of k weights is near its mean. But E[w^2] = int e^{2y} N(y; m, v) dy
is carried by the weights near log w = m + 2v, which is 2 sqrt(v) standard deviations above
the mean of log w (and E[w] by those near m + v, sqrt(v) standard deviations up). For
v = 0.25 that is 1 standard deviation: every sample of ten has such weights. For v = 4 it is
4 standard deviations, a probability of 3e-5: until k is in the tens of thousands, a
k-sample average has usually not met the weights that make the variance, it sits below
E[w], and the bias is smaller than the formula says (and the formula overstates it).
An encoder q much narrower than the posterior gives weights of this kind.
"""

import math

import numpy as np

from npnet.vae import log_mean_exp

rng = np.random.default_rng(0)
m = -90.0  # the mean log-weight: the place does not matter, log_mean_exp copes with any
for v in (0.25, 4.0):
    print(f"v = {v}: Var(w) / E[w]^2 = e^v - 1 = {math.expm1(v):.3f}")
    for k in (1, 10, 100, 1000):
        repeats = 2_000_000 // k if k < 1000 else 4000
        estimates = log_mean_exp(m + math.sqrt(v) * rng.standard_normal((repeats, k)), axis=1)
        bias = estimates.mean() - (m + v / 2)
        standard_error = estimates.std() / math.sqrt(repeats)
        predicted = -math.expm1(v) / (2 * k)
        print(f"  k = {k:4d}: bias {bias:+.5f} +- {standard_error:.5f}, "
              f"formula {predicted:+.5f}" + (f", exact {-v / 2:+.3f}" if k == 1 else ""))
        assert bias < 0
        if k == 1:
            assert abs(bias + v / 2) < 5 * standard_error  # exactly -v/2
        elif v == 0.25:  # the formula holds from k = 10 on
            assert abs(bias - predicted) < 5 * standard_error + 0.1 * abs(predicted)
        elif k <= 100:  # v = 4: the formula overstates the bias several times over
            assert predicted < 2 * bias
        else:  # and is still 30% off at k = 1000
            assert predicted < bias
