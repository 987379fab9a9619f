"""Chapter 5, exercise 4: AdamW, Adam with decoupled weight decay, as a subclass of Adam.

Adam with ``weight_decay`` (npnet's Adam, like Kingma & Ba's) adds the L2 term to the
gradient, g <- g + lambda w, so the decay goes through m and v and is divided by
sqrt(v_hat) like everything else. AdamW (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", 2019) keeps it out of the moments and applies it to the weights directly,
at every step t, with the gradient g left as it is::

    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)
    w <- w - lr * (m_hat / (sqrt(v_hat) + eps) + lambda w)

written here, as PyTorch writes it, in two in-place steps: w <- w (1 - lr lambda), then the
Adam step, which does not read w, so the order changes nothing. Because fit sets
``optimizer.lr`` before every step, the decay lr * lambda follows the cosine schedule, as
the paper's schedule multiplier eta_t scales both terms.

How the two differ. Adam-L2's decay is normalised away: the step is lr * (g + lambda w) /
sqrt(v_hat), so a weight with large gradients is barely decayed (lambda w is small next to
g) and a weight with no gradient at all moves by lr * sign(w) on its first step, the full
Adam step, however small lambda is. AdamW shrinks every weight by the same fraction,
lr * lambda per step, whatever its gradients. Plain SGD cannot tell them apart:
w - lr (g + lambda w) = w (1 - lr lambda) - lr g is both. Only a rule that does more to the
gradient than scale it by lr (Adam's division by sqrt(v_hat), momentum's accumulation)
separates the two decays.

Run from anywhere: ``python docs/solutions/05_adamw.py``.
"""

import numpy as np

from npnet.optim import SGD, Adam


class AdamW(Adam):
    """Adam with decoupled weight decay: w <- w (1 - lr lambda), then the Adam step."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
        # The parent's weight_decay is the L2 kind: keep it off, hold ours apart.
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0.0)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.decoupled_weight_decay = float(weight_decay)

    def _update(self, name, param, grad):
        if self.decoupled_weight_decay:
            param *= 1 - self.lr * self.decoupled_weight_decay
        super()._update(name, param, grad)


lr, decay, b1, b2, eps = 1e-2, 0.1, 0.9, 0.999, 1e-8
rng = np.random.default_rng(0)
w0 = rng.standard_normal(5)
grads = [rng.standard_normal(5) for _ in range(3)]

# 1. Three steps against the rule computed by hand, with Python floats, entry by entry.
w = w0.copy()
adamw = AdamW({"w": w}, lr=lr, weight_decay=decay)
for g in grads:
    adamw.step({"w": g})
for i in range(5):
    wi, m, v = float(w0[i]), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        gi = float(g[i])
        m = b1 * m + (1 - b1) * gi
        v = b2 * v + (1 - b2) * gi * gi
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        wi = wi - lr * (m_hat / (v_hat**0.5 + eps) + decay * wi)
    np.testing.assert_allclose(w[i], wi, rtol=1e-12)
print("three AdamW steps match the rule by hand")

# 2. With no decay, AdamW is Adam, to the last bit.
w_adam, w_adamw = w0.copy(), w0.copy()
adam, adamw = Adam({"w": w_adam}, lr=lr), AdamW({"w": w_adamw}, lr=lr, weight_decay=0.0)
for g in grads:
    adam.step({"w": g})
    adamw.step({"w": g})
np.testing.assert_array_equal(w_adamw, w_adam)

# 3. A weight with no gradient: Adam-L2 moves it by the full lr, AdamW by lr * lambda * w.
w_l2, w_decoupled = np.array([1.0]), np.array([1.0])
Adam({"w": w_l2}, lr=lr, weight_decay=decay).step({"w": np.zeros(1)})
AdamW({"w": w_decoupled}, lr=lr, weight_decay=decay).step({"w": np.zeros(1)})
print(f"no gradient, w = 1: Adam-L2 moves it by {1 - w_l2[0]:.2e}, "
      f"AdamW by {1 - w_decoupled[0]:.2e}")
np.testing.assert_allclose(1 - w_l2[0], lr, rtol=1e-6)  # lambda / (lambda + eps) ~ 1
np.testing.assert_allclose(1 - w_decoupled[0], lr * decay, rtol=1e-12)
# After a hundred steps without a gradient: AdamW shrinks w by exactly (1 - lr lambda)^100.
# Adam-L2's steps shrink as w does (its gradient is lambda w), but m_hat / sqrt(v_hat) stays
# of order 1 while v remembers the larger early values, so it moves w by up to lr a step.
adam_l2 = Adam({"w": w_l2}, lr=lr, weight_decay=decay)
adam_w = AdamW({"w": w_decoupled}, lr=lr, weight_decay=decay)
for _ in range(99):
    adam_l2.step({"w": np.zeros(1)})
    adam_w.step({"w": np.zeros(1)})
print(f"after 100 steps: Adam-L2 w = {w_l2[0]:.4f}, AdamW w = {w_decoupled[0]:.6f}")
np.testing.assert_allclose(w_decoupled[0], (1 - lr * decay) ** 100, rtol=1e-12)
assert 1 - w_l2[0] > 5 * (1 - w_decoupled[0])  # here the L2 decay pulls far harder

# 4. A weight with a large, steady gradient: Adam-L2's decay vanishes in the normalisation
# (the step is lr * sign(g + lambda w) = lr, with or without decay); AdamW's does not.
g_big = np.array([10.0])
moved = {}
for label, make in (("Adam", lambda p: Adam(p, lr=lr)),
                    ("Adam-L2", lambda p: Adam(p, lr=lr, weight_decay=decay)),
                    ("AdamW", lambda p: AdamW(p, lr=lr, weight_decay=decay))):
    w = np.array([1.0])
    optimizer = make({"w": w})
    for _ in range(3):
        optimizer.step({"w": g_big})
    moved[label] = 1 - w[0]
print("a steady gradient of 10, three steps:", {k: f"{v:.6f}" for k, v in moved.items()})
np.testing.assert_allclose(moved["Adam-L2"], moved["Adam"], rtol=1e-4)
assert moved["AdamW"] - moved["Adam"] > 0.9 * 3 * lr * decay  # about 3 lr lambda w more

# 5. For plain SGD the L2 decay is the decoupled one.
w_sgd = w0.copy()
SGD({"w": w_sgd}, lr=lr, weight_decay=decay).step({"w": grads[0]})
np.testing.assert_allclose(w_sgd, w0 * (1 - lr * decay) - lr * grads[0], rtol=1e-12)

# The optimizer's state is Adam's (m, v, steps): checkpoints round-trip unchanged.
assert sorted(adamw.state_dict()) == ["m/w", "steps", "v/w"]
