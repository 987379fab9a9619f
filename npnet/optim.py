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

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam"]


def _number(name: str, value) -> float:
    """``value`` as a float, or a clear error: "0.1" read from a config file is not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} of type {type(value).__name__}")
    return float(value)


def _positive(name: str, value) -> float:
    """A finite number > 0 (a learning rate, Adam's eps), or a clear error."""
    number = _number(name, value)
    if not 0 < number < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _non_negative(name: str, value) -> float:
    """A finite number >= 0 (a weight decay), or a clear error."""
    number = _number(name, value)
    if not 0 <= number < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _decay_rate(name: str, value) -> float:
    """A number in [0, 1) (momentum, Adam's betas): how much of the past each step keeps."""
    number = _number(name, value)
    if not 0 <= number < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return number


def _check_not_float16(params: Mapping[str, np.ndarray]) -> None:
    """Adam's terms do not fit in float16 (see :class:`Adam`): a clear error, not NaN weights."""
    for name, param in params.items():
        if param.dtype == np.float16:
            raise TypeError(
                f"parameter {name!r} is float16, too narrow for Adam: eps = 1e-8 rounds to 0, "
                "and so do small squared gradients, so a step would divide by 0; train in "
                "float32 (or use SGD)"
            )


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
        self._check_params(params)
        self.params = dict(params)
        self.lr = _positive("lr", lr)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    @staticmethod
    def _check_params(params: Mapping[str, np.ndarray]) -> None:
        """Parameters are arrays the update can change in place: floating point, writeable."""
        if not isinstance(params, Mapping):
            raise TypeError(
                "the optimizer takes a dict of parameter arrays: pass model.params, got a "
                f"{type(params).__name__}"
            )
        if not params:
            raise ValueError("the optimizer got no parameters; pass model.params")
        for name, param in params.items():
            if not isinstance(param, np.ndarray):
                raise TypeError(
                    f"parameter {name!r} is a {type(param).__name__}: pass the NumPy arrays "
                    "of model.params, which the optimizer updates in place"
                )
            if not np.issubdtype(param.dtype, np.floating):
                raise TypeError(
                    f"parameter {name!r} is an array of {param.dtype}: parameters must be "
                    "floating point (float32, or float64), or an update would be rounded away"
                )
            if not param.flags.writeable:
                raise ValueError(
                    f"parameter {name!r} is read-only, but the optimizer updates it in place; "
                    "pass writeable arrays (np.array(p) makes a writeable copy)"
                )

    def _check_grads(self, grads: Mapping[str, np.ndarray]) -> None:
        if not isinstance(grads, Mapping):
            raise TypeError(
                "step takes a dict of gradient arrays: pass model.grads, got a "
                f"{type(grads).__name__}"
            )
        if grads.keys() != self.params.keys():
            missing = sorted(self.params.keys() - grads.keys())
            extra = sorted(grads.keys() - self.params.keys())
            raise KeyError(
                f"gradients do not match the optimizer's parameters (missing: {missing}, "
                f"unexpected: {extra}); pass model.grads of the model the optimizer was "
                "built on"
            )
        for name, param in self.params.items():
            grad = grads[name]
            if not isinstance(grad, np.ndarray):
                raise TypeError(
                    f"gradient {name!r} is a {type(grad).__name__}: pass model.grads, whose "
                    "gradients are NumPy arrays"
                )
            if grad.dtype.kind not in "biuf":  # bool, integer, floating point
                raise TypeError(
                    f"gradient {name!r} is an array of {grad.dtype}: gradients must be real "
                    "numbers (a cast would drop an imaginary part)"
                )
            if not param.flags.writeable:  # made read-only since: refuse before any update
                raise ValueError(
                    f"parameter {name!r} has become read-only, but the optimizer updates it in "
                    "place; make it writeable again (param.flags.writeable = True)"
                )
            # The compiled update walks the flat arrays by the parameter's size: a smaller
            # gradient would be read past its end, and NumPy would broadcast a (1, D) one.
            if grad.shape != param.shape:
                raise ValueError(
                    f"gradient {name!r} has shape {grad.shape}, but the parameter "
                    f"has shape {param.shape}; pass model.grads of the model the optimizer "
                    "was built on"
                )

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update to every parameter, in place."""
        self._check_grads(grads)
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
        if "steps" not in flat:
            raise KeyError(
                "optimizer state has no 'steps' entry; pass what state_dict() returned"
            )
        loaded: list[tuple[str, str, np.ndarray]] = []
        for key, value in flat.items():
            if key == "steps":
                continue
            slot, _, name = key.partition("/")
            if name not in self.params:
                raise KeyError(f"optimizer state for unknown parameter {name!r}")
            if slot not in self.state_slots:
                raise KeyError(
                    f"optimizer state {key!r}: {type(self).__name__} keeps "
                    f"{list(self.state_slots)}, not {slot!r}; was it saved by another optimizer?"
                )
            value = np.asarray(value)
            if value.shape != self.params[name].shape:
                raise ValueError(
                    f"optimizer state {key!r} has shape {value.shape}, parameter "
                    f"{name!r} has {self.params[name].shape}"
                )
            loaded.append((slot, name, value))
        self.steps = int(flat["steps"])
        self.state = {}
        for slot, name, value in loaded:
            self._state_of(name)[slot][...] = value  # cast to the parameter's dtype


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    With gradient g, parameter w, velocity v (starting at 0), momentum mu, rate lr and
    weight decay lambda (PyTorch's convention, so results compare one to one)::

        g <- g + lambda w                      (L2 weight decay)
        v <- mu v + g
        w <- w - lr * v                        (classical momentum)
        w <- w - lr * (g + mu v)               (Nesterov: look one step ahead)

    With mu = 0 this is plain SGD, ``w <- w - lr g``.

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
        self.momentum = _decay_rate("momentum", momentum)
        if nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _non_negative("weight_decay", weight_decay)

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

    With gradient g at step t (counting from 1), first and second moment estimates m, v
    (starting at 0)::

        g <- g + lambda w                                   (L2 weight decay)
        m <- beta1 m + (1 - beta1) g                        (moving mean of g)
        v <- beta2 v + (1 - beta2) g^2                      (moving mean of g^2)
        m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)     (bias correction)
        w <- w - lr * m_hat / (sqrt(v_hat) + eps)

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
        self.beta1, self.beta2 = _decay_rate("beta1", beta1), _decay_rate("beta2", beta2)
        self.eps = _positive("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        _check_not_float16(self.params)

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
