"""Chapter 4, exercise 3: the best step h depends on |f|, not on the derivative.

The chapter's error model for the central difference of f at x::

    error(h) ~ (h^2 / 6) |f'''| + eps |f| / h,      smallest at h* = (3 eps |f| / |f'''|)^(1/3)

Take f_c(x) = c + sin(x) at x = 1. Adding the constant c changes neither f' = cos(1) nor
f''' = -cos(1), but it changes |f|, and with it the rounding term:

* c = 0:    |f| = sin(1) = 0.84, h* = (3 * 2.2e-16 * 0.84 / 0.54)^(1/3) = 1.0e-5;
* c = 1e6:  |f| = 1e6,           h* = (3 * 2.2e-16 * 1e6 / 0.54)^(1/3)  = 1.1e-3,
  and at the default h = 1e-5 the rounding term is up to 2.2e-16 * 1e6 / 1e-5 = 2.2e-5
  (typically a tenth of that), next to f' = 0.54: a correct derivative fails a 1e-6
  tolerance.

A loss is such a c + (something small): a sum over many pixels or examples whose gradient
with respect to one weight is tiny next to the loss itself. That is the case hypothesis
found for npnet (three layers of width 1), and why the default went from 1e-6 up to 1e-5.

Run from anywhere: ``python docs/solutions/04_best_step_size.py``.
"""

import numpy as np

from npnet.gradcheck import numerical_gradient

EPS = np.finfo(np.float64).eps  # 2.2e-16
steps = 10.0 ** np.linspace(-9, -1, 81)  # 10 steps per decade
# One rounding error depends on luck: at a single x the measured error jumps up and down
# with h by a factor of 10 or more. Averaging over 400 points near x = 1 shows the curve
# the error model describes (as a root mean square: rounding errors are random in sign).
points = np.random.default_rng(0).uniform(0.9, 1.1, 400)


def central_difference(offset, x, h):
    """What numerical_gradient computes for one entry, for many x at once."""
    return ((offset + np.sin(x + h)) - (offset + np.sin(x - h))) / (2 * h)


def rms_error(offset, h):
    return float(np.sqrt(np.mean((central_difference(offset, points, h) - np.cos(points)) ** 2)))


def predicted_best_h(offset):
    return (3 * EPS * abs(offset + np.sin(1.0)) / abs(np.cos(1.0))) ** (1 / 3)


# The vectorised formula is the library's, to the last bit.
x = np.array([1.0])
for offset in (0.0, 1e6):
    library = numerical_gradient(lambda offset=offset: float(offset + np.sin(x[0])), x, h=1e-4)
    assert library[0] == central_difference(offset, 1.0, 1e-4)

for offset in (0.0, 1e6):
    errors = np.array([rms_error(offset, h) for h in steps])
    best, predicted = steps[np.argmin(errors)], predicted_best_h(offset)
    print(f"c = {offset:.0e}: best h measured {best:.1e}, predicted {predicted:.1e}; "
          f"error there {errors.min():.1e}, at h = 1e-5 {rms_error(offset, 1e-5):.1e}")
    # The model counts the worst rounding, eps |f|; the typical one is a few times smaller,
    # which moves the minimum down by the cube root of that: within a factor 3.
    assert predicted / 3 < best < predicted * 3
    # Above the best h the error is truncation, and falls as h^2: 100 times per decade.
    ratio = rms_error(offset, 1e-1) / rms_error(offset, 1e-2)
    assert 90 < ratio < 110, ratio

# The offset moves the best step up by (1e6 / 0.84)^(1/3), about 100 times.
assert 50 < predicted_best_h(1e6) / predicted_best_h(0.0) < 200
# With c = 1e6 the default h = 1e-5 fails the tests' tolerance on a correct derivative
# (cos(1) = 0.54), while h near h* passes it.
assert rms_error(1e6, 1e-5) / np.cos(1.0) > 1e-6
assert rms_error(1e6, predicted_best_h(1e6)) / np.cos(1.0) < 1e-6
