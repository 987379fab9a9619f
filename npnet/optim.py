"""Optimizers: update parameters in place from their gradients. They never compute gradients.

An optimizer is built on a model's parameter dictionary and stepped with the matching
gradient dictionary after each backward pass::

    opt = SGD(model.params, lr=0.1, momentum=0.9)
    loss, dout = mse_loss(model.forward(x), x)
    model.backward(dout)
    opt.step(model.grads)

Keys tie each gradient to its parameter, and each optimizer keeps its per-parameter state
(velocities, moments) under the same keys, so ``state_dict`` can be checkpointed and
restored exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

from . import checks

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer(ABC):
    """Base class: holds references to the parameter arrays and per-parameter state.

    Tested by: tests/test_optim.py::test_state_dict_round_trip_continues_identically,
    tests/test_optim.py::test_a_gradient_of_another_shape_is_refused_before_any_update,
    tests/test_optim.py::test_every_hyperparameter_is_checked,
    tests/test_optim.py::test_read_only_parameters_are_refused,
    tests/test_optim.py::test_lists_and_integer_arrays_are_refused_as_parameters_or_gradients
    """

    # The names of the arrays each parameter's state holds, e.g. ("m", "v").
    state_slots: tuple[str, ...] = ()

    def __init__(self, params: Mapping[str, np.ndarray], lr: float):
        self.params = checks.parameters(params)
        self.lr = checks.positive(lr, "lr")
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update to every parameter, in place."""
        checks.gradients(grads, self.params)  # all of them, before any parameter changes
        self.steps += 1
        for name, param in self.params.items():
            self._update(name, param, grads[name])

    @abstractmethod
    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        """Update ``param`` in place from ``grad`` (the rule that defines the optimizer)."""

    def _state_of(self, name: str) -> dict[str, np.ndarray]:
        """The state of parameter ``name`` (one array per slot), created as zeros on first use."""
        if name not in self.state:
            self.state[name] = {slot: np.zeros_like(self.params[name]) for slot in self.state_slots}
        return self.state[name]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{"<slot>/<param name>": array, "steps": array}``, ready for an .npz file."""
        flat = {"steps": np.array(self.steps)}
        for name, slots in self.state.items():
            for slot, value in slots.items():
                flat[f"{slot}/{name}"] = value
        return flat

    def load_state_dict(self, flat: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned (the inverse, checked).

        Everything is checked before anything is changed: on an error the optimizer keeps
        the state it had.
        """
        steps, loaded = checks.optimizer_state(flat, self.params, self.state_slots,
                                               type(self).__name__)
        self.steps = steps
        self.state = {}
        for slot, name, value in loaded:
            self._state_of(name)[slot][...] = value  # cast to the parameter's dtype


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    With gradient g, parameter theta, velocity u (starting at 0), momentum gamma, rate lr
    (eta in the docs) and weight decay lambda (PyTorch's convention, so results compare one
    to one)::

        g     <- g + lambda theta                    (L2 weight decay)
        u     <- gamma u + g
        theta <- theta - lr * u                      (classical momentum)
        theta <- theta - lr * (g + gamma u)          (Nesterov: look one step ahead)

    With gamma = 0 this is plain SGD, ``theta <- theta - lr g``.

    Tested by: tests/test_optim.py::test_sgd_momentum_by_hand,
    tests/test_optim.py::test_sgd_nesterov_by_hand
    """

    state_slots = ("velocity",)

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.momentum = checks.fraction(momentum, "momentum")
        if nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = checks.non_negative(weight_decay, "weight_decay")

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum == 0:
            param -= self.lr * grad
            return
        velocity = self._state_of(name)["velocity"]
        velocity[...] = self.momentum * velocity + grad
        if self.nesterov:
            param -= self.lr * (grad + self.momentum * velocity)
        else:
            param -= self.lr * velocity


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015, Algorithm 1), with optional L2 weight decay.

    With gradient g of a parameter theta at step t (counting from 1), moments m, v
    (starting at 0)::

        g <- g + lambda theta                               (L2 weight decay)
        m <- beta1 m + (1 - beta1) g                        (moving mean of g)
        v <- beta2 v + (1 - beta2) g^2                      (moving mean of g^2)
        m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)     (bias correction)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    m and v start at 0, so early on they are biased towards 0: after t steps of a constant
    gradient g, m = (1 - beta1^t) g. Dividing by 1 - beta1^t (and 1 - beta2^t) removes that
    bias, which is why the first step moves every weight by lr (or almost: eps).

    Parameters must be float32 or float64: in float16, eps = 1e-8 rounds to 0, and so does
    (1 - beta2) g^2 for |g| below about 0.005, so the update would divide by zero.

    Tested by: tests/test_optim.py::test_adam_by_hand,
    tests/test_optim.py::test_adam_first_step_moves_by_lr,
    tests/test_optim.py::test_adam_refuses_float16_parameters
    """

    state_slots = ("m", "v")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.beta1, self.beta2 = checks.fraction(beta1, "beta1"), checks.fraction(beta2, "beta2")
        self.eps = checks.positive(eps, "eps")
        self.weight_decay = checks.non_negative(weight_decay, "weight_decay")
        checks.not_float16(self.params)

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        state = self._state_of(name)
        m, v, t = state["m"], state["v"], self.steps
        beta1, beta2 = self.beta1, self.beta2  # Python floats: float32 arrays stay float32
        m[...] = beta1 * m + (1 - beta1) * grad
        v[...] = beta2 * v + (1 - beta2) * grad**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        param -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
