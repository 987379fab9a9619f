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
from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

from .kernels import adam_kernel, numba_available
from .placement import zeros_alongside

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer(ABC):
    """Base class: holds references to the parameter arrays and per-parameter state."""

    # The names of the arrays each parameter's state holds, e.g. ("m", "v").
    state_slots: tuple[str, ...] = ()

    def __init__(self, params: Mapping[str, np.ndarray], lr: float):
        if not params:
            raise ValueError("the optimizer got no parameters; pass model.params")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got lr={lr}")
        self.params = dict(params)
        self.lr = float(lr)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def _check_grads(self, grads: Mapping[str, np.ndarray]) -> None:
        if grads.keys() != self.params.keys():
            missing = sorted(self.params.keys() - grads.keys())
            extra = sorted(grads.keys() - self.params.keys())
            raise KeyError(
                f"gradients do not match the optimizer's parameters (missing: {missing}, "
                f"unexpected: {extra}); pass model.grads of the model the optimizer was "
                "built on"
            )
        for name, param in self.params.items():
            # The compiled update walks the flat arrays by the parameter's size: a smaller
            # gradient would be read past its end, and NumPy would broadcast a (1, D) one.
            if np.shape(grads[name]) != param.shape:
                raise ValueError(
                    f"gradient {name!r} has shape {np.shape(grads[name])}, but the parameter "
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
        """The state of parameter ``name``, created as zeros on first use.

        The update reads each state array in the same loop as the parameter and its
        gradient (streams 0 and 1), so the arrays are placed as streams 2, 3, ... beside
        the parameter (:func:`npnet.placement.zeros_alongside`).
        """
        if name not in self.state:  # (not setdefault: its default would be built every step)
            param = self.params[name]
            self.state[name] = {
                slot: zeros_alongside(param, stream=2 + i)
                for i, slot in enumerate(self.state_slots)
            }
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
            self._state_of(name)[slot][...] = value  # into the placed arrays, cast on copy


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    With gradient g, parameter w, velocity v (starting at 0), momentum mu, rate lr and
    weight decay lambda (PyTorch's convention, so results compare one to one)::

        g <- g + lambda w                      (L2 weight decay)
        v <- mu v + g
        w <- w - lr * v                        (classical momentum)
        w <- w - lr * (g + mu v)               (Nesterov: look one step ahead)

    With mu = 0 this is plain SGD, ``w <- w - lr g``.
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
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum == 0:
            param -= self.lr * grad
            return
        velocity = self._state_of(name)["velocity"]
        velocity *= self.momentum
        velocity += grad
        if self.nesterov:
            param -= self.lr * (grad + self.momentum * velocity)
        else:
            param -= self.lr * velocity


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015, Algorithm 1), with optional L2 weight decay.

    With gradient g at step t (counting from 1), first and second moment estimates m, v
    (starting at 0)::

        g <- g + lambda w
        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)     (bias correction)
        w <- w - lr * m_hat / (sqrt(v_hat) + eps)

    ``fused`` chooses how the rule runs: as NumPy passes, one per operation (False), or as
    one compiled loop per parameter (True, needs numba: :mod:`npnet.kernels`), which gives
    the same numbers about twice as fast. None (the default) fuses when numba is installed.
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
        fused: bool | None = None,
    ):
        super().__init__(params, lr)
        if fused and not numba_available():
            raise ImportError(
                "Adam(fused=True) needs numba, which is not installed; install it with "
                "pip install 'npnet[fast]' (or pip install numba), or pass fused=False"
            )
        self.fused = numba_available() if fused is None else bool(fused)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{label} must be in [0, 1), got {beta}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)
        self._scratch = np.empty(0)

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        state = self._state_of(name)
        m, v = state["m"], state["v"]
        t = self.steps
        # Fold both bias corrections into the step size (as the paper's end of section 2
        # suggests): lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), with eps scaled to match,
        # so no m_hat or v_hat array is ever allocated.
        correction2 = math.sqrt(1 - self.beta2**t)  # a Python float: keeps float32 float32
        step_size = self.lr * correction2 / (1 - self.beta1**t)
        eps = self.eps * correction2
        grad = grad.astype(param.dtype, copy=False)
        if self.fused and all(a.flags.c_contiguous for a in (param, grad, m, v)):
            # The whole rule below in one compiled loop (npnet.kernels), on flat views of
            # the arrays, with the scalars in the parameters' dtype: the same numbers.
            to_dtype = param.dtype.type
            scalars = (self.beta1, 1 - self.beta1, self.beta2, 1 - self.beta2, step_size, eps)
            flat = (array.reshape(-1) for array in (param, grad, m, v))
            adam_kernel()(*flat, *map(to_dtype, scalars))
            return
        # Every line below writes into m, v, param or a scratch array (not part of the
        # state): an expression like m + (1 - beta1) * grad would allocate a new array of
        # the parameter's size for each operation, on every step. One scratch buffer, as
        # large as the largest parameter, serves all of them in turn (fewer bytes to keep
        # in the CPU's caches than one per parameter).
        if self._scratch.size < param.size or self._scratch.dtype != param.dtype:
            largest = max(p.size for p in self.params.values())
            self._scratch = np.empty(largest, dtype=param.dtype)
        scratch = self._scratch[: param.size].reshape(param.shape)
        m *= self.beta1  # m <- beta1 m + (1 - beta1) g
        np.multiply(grad, 1 - self.beta1, out=scratch)
        m += scratch
        v *= self.beta2  # v <- beta2 v + (1 - beta2) g^2
        np.square(grad, out=scratch)
        scratch *= 1 - self.beta2
        v += scratch
        np.sqrt(v, out=scratch)  # w <- w - lr_t m / (sqrt(v) + eps_t)
        scratch += eps
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        param -= scratch
