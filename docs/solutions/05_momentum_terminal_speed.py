"""Chapter 5, exercise 2: momentum on a constant gradient, and its terminal speed.

SGD with momentum gamma, rate eta, velocity u_0 = 0, and the same gradient g at every step::

    u_t = gamma u_{t-1} + g = g (1 + gamma + ... + gamma^(t-1)) = g (1 - gamma^t) / (1 - gamma)

so the step eta u_t grows from eta g (t = 1) towards eta g / (1 - gamma): with gamma = 0.9, ten
times plain SGD's step. Plain SGD with rate eta / (1 - gamma) has the same terminal speed.
The step is within 1 % of it once gamma^t <= 0.01, t >= ln(0.01) / ln(0.9) = 43.7: at step 44.

The position after T steps, from w_0 = 0, sums the steps::

    theta_T = -eta sum_{t=1..T} u_t = -(eta g / (1 - gamma)) (T - gamma (1 - gamma^T) / (1 - gamma))

the terminal speed times T, less a lag of gamma / (1 - gamma) = 9 steps' worth of it, the
distance lost while speeding up.

Nesterov steps by eta (g + gamma u_t) = eta g (1 + gamma (1 - gamma^t) / (1 - gamma))
= eta g (1 - gamma^(t+1)) / (1 - gamma): the classical step t + 1, one step early. Same terminal
speed, a lag of gamma^2 / (1 - gamma) = 8.1 steps, within 1 % from step 43.

Run from anywhere: ``python docs/solutions/05_momentum_terminal_speed.py``.
"""

import math

import numpy as np

from npnet.optim import SGD

eta, gamma, g, T = 0.01, 0.9, 2.0, 100
t = np.arange(1, T + 1)
classical_steps = eta * g * (1 - gamma**t) / (1 - gamma)
nesterov_steps = eta * g * (1 - gamma ** (t + 1)) / (1 - gamma)

for nesterov, predicted in ((False, classical_steps), (True, nesterov_steps)):
    w = np.zeros(1)
    sgd = SGD({"w": w}, lr=eta, momentum=gamma, nesterov=nesterov)
    steps = []
    for _ in range(T):
        before = w[0]
        sgd.step({"w": np.array([g])})
        steps.append(before - w[0])
    np.testing.assert_allclose(steps, predicted, rtol=1e-12)
    lag = gamma ** (2 if nesterov else 1) / (1 - gamma)
    position = -(eta * g / (1 - gamma)) * (T - lag * (1 - gamma**T))
    np.testing.assert_allclose(w[0], position, rtol=1e-12)
    within_1_percent = int(np.argmax(np.array(steps) >= 0.99 * eta * g / (1 - gamma))) + 1
    print(f"nesterov={nesterov!s:5s}: first step {steps[0]:.4f}, step 10 {steps[9]:.4f}, "
          f"step {T} {steps[-1]:.4f} (limit {eta * g / (1 - gamma):.4f}); within 1 % from step "
          f"{within_1_percent}; w_{T} = {w[0]:.4f}")
    assert within_1_percent == (43 if nesterov else math.ceil(math.log(0.01) / math.log(gamma)))

# Plain SGD at eta / (1 - gamma) has the terminal speed from the first step.
w = np.zeros(1)
SGD({"w": w}, lr=eta / (1 - gamma)).step({"w": np.array([g])})
np.testing.assert_allclose(-w[0], eta * g / (1 - gamma), rtol=1e-12)
print(f"plain SGD at lr {eta / (1 - gamma):.2f}: step {-w[0]:.4f} at once")
