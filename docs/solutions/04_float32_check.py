"""Chapter 4, exercise 4: what float32 does to a gradient check, at every step h.

Check the tanh layer, f(x) = sum(tanh(x) * dout), once in float64 and once with every
array in float32, as training holds them. The error model of the chapter, with float32's
eps = 1.2e-7 in place of 2.2e-16::

    error(h) ~ (h^2 / 6) |f'''| + eps |f| / h,   h* = (3 eps |f| / |f'''|)^(1/3)

For |f| ~ |f'''| this gives h* ~ (3.6e-7)^(1/3) ~ 7e-3, and at h* an error of about
eps^(2/3) ~ 2e-5 of |f|: no step at all brings a float32 check under the tests' 1e-6. At the
default h = 1e-5 the rounding term is eps |f| / h ~ 1e-2 |f|: correct code fails by far.

One more float32 effect: x + h is itself rounded to float32 (for x in [1, 2) to a multiple
of 1.2e-7, an error of up to 0.6 % of h = 1e-5). The difference below divides by the step
that was actually taken, (x + h) - (x - h) as stored, so this does not add to the error;
dividing by 2h would add up to that much.

Run from anywhere: ``python docs/solutions/04_float32_check.py``.
"""

import numpy as np

from npnet.gradcheck import check_layer, relative_error
from npnet.layers import Tanh

rng = np.random.default_rng(0)
x64 = rng.uniform(-2, 2, size=(4, 5))
dout64 = rng.standard_normal((4, 5))
x32, dout32 = x64.astype(np.float32), dout64.astype(np.float32)


def numeric_gradient_float32(h):
    """Central differences with every value float32: f, x and the step."""
    layer = Tanh()
    x = x32.copy()
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + np.float32(h)
        above, f_plus = x[i], np.sum(layer.forward(x) * dout32)  # a float32 sum
        x[i] = original - np.float32(h)
        below, f_minus = x[i], np.sum(layer.forward(x) * dout32)
        x[i] = original
        grad[i] = (f_plus - f_minus) / (above - below)
    return grad


layer = Tanh()
layer.forward(x32)
analytic32 = layer.backward(dout32)  # the float32 backward: accurate to about 1e-7
assert analytic32.dtype == np.float32

steps = 10.0 ** np.linspace(-6, -0.5, 23)
errors = np.array([relative_error(analytic32, numeric_gradient_float32(h)) for h in steps])
for h, error in zip(steps[::2], errors[::2], strict=True):
    print(f"float32, h = {h:.1e}: relative error {error:.1e}")
best = steps[np.argmin(errors)]
error_at_default = relative_error(analytic32, numeric_gradient_float32(1e-5))
error64 = check_layer(Tanh(), x64, rng=1)["x"]
print(f"float32: best h {best:.1e} (error {errors.min():.1e}); at h = 1e-5 {error_at_default:.1e}")
print(f"float64 at h = 1e-5: {error64:.1e}")

assert error_at_default > 1e-3          # correct code, and the check "fails"
assert errors.min() > 1e-6              # no h passes the tests' tolerance in float32
assert 1e-3 < best < 1e-1               # near the predicted 7e-3, far above 1e-5
assert error64 < 1e-9                   # the same layer, the same check, in float64
