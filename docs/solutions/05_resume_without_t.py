"""Chapter 5, exercise 5: a resume that restores Adam's m and v but counts t from 1 again.

After T steps, m and v are no longer biased: their weights sum to 1 - beta^T, near 1 for
beta1 = 0.9 and, once T is in the thousands, for beta2 = 0.999 too. The update m and v go
through does not read t, so a resume with t reset computes the same m and v; only the
corrections differ. At the k-th step after the resume the right run divides by
1 - beta^(T+k), the wrong one by 1 - beta^k, so (eps aside) the wrong step is the right one
times::

    ratio(k) = sqrt((1 - beta2^k) / (1 - beta2^(T+k))) * (1 - beta1^(T+k)) / (1 - beta1^k)

For T large: ratio(1) = sqrt(0.001) / 0.1 = 0.32, falling to about 0.15 near k = 12 (m's
correction fades after some ten steps, v's after some thousand), and back to 0.5 only after
about 290 steps and 0.9 after about 1660. The steps come out too *small*, not too large: the
corrections multiply m by up to 10 and v by up to 1000, and the square root of 1000 is 32.

Losing the whole state is the other case: m = v = 0 again, and the first step has the full
size lr whatever the gradients, while a settled run on noisy gradients, |m_hat| << sqrt(v_hat),
steps much less: then the first steps after the resume are too large.

Run from anywhere: ``python docs/solutions/05_resume_without_t.py``.
"""

import numpy as np

from npnet.optim import Adam

b1, b2, lr, T, K = 0.9, 0.999, 1e-3, 5000, 2000
rng = np.random.default_rng(0)
gradients = 0.3 + rng.standard_normal((T + K, 4))  # a noisy gradient with a steady mean


def run_and_resume(mode):
    """T steps, a checkpoint, a resume that keeps all / all but t / nothing, K more steps."""
    w = np.zeros(4)
    adam = Adam({"w": w}, lr=lr, beta1=b1, beta2=b2)
    for g in gradients[:T]:
        adam.step({"w": g})
    state = adam.state_dict()
    if mode == "without t":
        state["steps"] = np.array(0)
    resumed = Adam({"w": w}, lr=lr, beta1=b1, beta2=b2)
    if mode != "fresh":
        resumed.load_state_dict(state)
    steps = []
    for g in gradients[T:]:
        before = w.copy()
        resumed.step({"w": g})
        steps.append(np.abs(w - before))
    return np.array(steps)


right, wrong_t, fresh = (run_and_resume(mode) for mode in ("exact", "without t", "fresh"))
k = np.arange(1, K + 1)[:, None]
predicted = np.sqrt((1 - b2**k) / (1 - b2 ** (T + k))) * (1 - b1 ** (T + k)) / (1 - b1**k)
np.testing.assert_allclose(wrong_t / right, np.broadcast_to(predicted, right.shape), rtol=1e-5)

ratio = predicted[:, 0]
smallest = int(np.argmin(ratio)) + 1
half, most = (int(np.argmax(ratio >= level)) + 1 for level in (0.5, 0.9))
print(f"t reset: step 1 after the resume is {ratio[0]:.3f} of the right one, the smallest is "
      f"{ratio.min():.3f} at step {smallest}; back to 0.5 at step {half}, to 0.9 at step {most}")
assert abs(ratio[0] - 0.316) < 3e-3 and 0.15 < ratio.min() < 0.16 and 10 <= smallest <= 14
assert 280 <= half <= 300 and 1600 <= most <= 1700

# Losing everything: the first step is lr in every entry, several times the settled step.
print(f"fresh state: first step {fresh[0].mean():.1e}, the right step {right[0].mean():.1e}")
np.testing.assert_allclose(fresh[0], lr, rtol=1e-6)
assert fresh[0].mean() > 2 * right[0].mean()  # on average over the weights
