"""Chapter 5, exercise 2: momentum on a constant gradient, and its terminal speed.

SGD with momentum mu, rate eta, velocity v_0 = 0, and the same gradient g at every step::

    v_t = mu v_{t-1} + g = g (1 + mu + ... + mu^(t-1)) = g (1 - mu^t) / (1 - mu)

so the step eta v_t grows from eta g (t = 1) towards eta g / (1 - mu): with mu = 0.9, ten
times plain SGD's step. Plain SGD with rate eta / (1 - mu) has the same terminal speed.
The step is within 1 % of it once mu^t <= 0.01, t >= ln(0.01) / ln(0.9) = 43.7: at step 44.

The position after T steps, from w_0 = 0, sums the steps::

    w_T = -eta sum_{t=1..T} v_t = -(eta g / (1 - mu)) (T - mu (1 - mu^T) / (1 - mu))

the terminal speed times T, less a lag of mu / (1 - mu) = 9 steps' worth of it, the
distance lost while speeding up.

Nesterov steps by eta (g + mu v_t) = eta g (1 + mu (1 - mu^t) / (1 - mu))
= eta g (1 - mu^(t+1)) / (1 - mu): the classical step t + 1, one step early. Same terminal
speed, a lag of mu^2 / (1 - mu) = 8.1 steps, within 1 % from step 43.

Run from anywhere: ``python docs/solutions/05_momentum_terminal_speed.py``.
"""

import math

import numpy as np

from npnet.optim import SGD

eta, mu, g, T = 0.01, 0.9, 2.0, 100
t = np.arange(1, T + 1)
classical_steps = eta * g * (1 - mu**t) / (1 - mu)
nesterov_steps = eta * g * (1 - mu ** (t + 1)) / (1 - mu)

for nesterov, predicted in ((False, classical_steps), (True, nesterov_steps)):
    w = np.zeros(1)
    sgd = SGD({"w": w}, lr=eta, momentum=mu, nesterov=nesterov)
    steps = []
    for _ in range(T):
        before = w[0]
        sgd.step({"w": np.array([g])})
        steps.append(before - w[0])
    np.testing.assert_allclose(steps, predicted, rtol=1e-12)
    lag = mu ** (2 if nesterov else 1) / (1 - mu)
    position = -(eta * g / (1 - mu)) * (T - lag * (1 - mu**T))
    np.testing.assert_allclose(w[0], position, rtol=1e-12)
    within_1_percent = int(np.argmax(np.array(steps) >= 0.99 * eta * g / (1 - mu))) + 1
    print(f"nesterov={nesterov!s:5s}: first step {steps[0]:.4f}, step 10 {steps[9]:.4f}, "
          f"step {T} {steps[-1]:.4f} (limit {eta * g / (1 - mu):.4f}); within 1 % from step "
          f"{within_1_percent}; w_{T} = {w[0]:.4f}")
    assert within_1_percent == (43 if nesterov else math.ceil(math.log(0.01) / math.log(mu)))

# Plain SGD at eta / (1 - mu) has the terminal speed from the first step.
w = np.zeros(1)
SGD({"w": w}, lr=eta / (1 - mu)).step({"w": np.array([g])})
np.testing.assert_allclose(-w[0], eta * g / (1 - mu), rtol=1e-12)
print(f"plain SGD at lr {eta / (1 - mu):.2f}: step {-w[0]:.4f} at once")
