"""Layers with a hand-written forward and backward pass.

The contract every layer keeps (after CS231n's ``layers.py``):

* ``forward(x)`` computes the output and keeps, in ``self.cache``, exactly what the
  backward pass will need.
* ``backward(dout)`` takes the upstream gradient dL/d(output), with the output's shape,
  fills ``self.grads`` (same keys and shapes as ``self.params``) and returns dL/dx.
  It never changes a parameter: applying gradients is the optimizer's job
  (:mod:`npnet.optim`), which is what makes gradient checks possible.

Notation (the same as ``docs/``): a batch of N examples is a matrix ``x`` of shape
(N, D_in), one example per row. ``dout`` is the gradient of the scalar loss L with
respect to the layer's output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .placement import aligned_zeros, zeros_alongside

__all__ = [
    "sigmoid",
    "Layer",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Sequential",
    "ACTIVATIONS",
    "mlp",
    "in_batches",
]


class Layer(ABC):
    """Base class: a differentiable function of a batch, with optional parameters.

    Attributes
    ----------
    name : str
        Where the layer sits in its model (for example ``"encoder.0"``); error messages
        and parameter keys use it.
    params : dict[str, ndarray]
        Trainable arrays, updated in place by an optimizer.
    grads : dict[str, ndarray]
        dL/d(param) from the last ``backward``, under the same keys as ``params``.
    cache : object or None
        What ``forward`` kept for ``backward``; None until ``forward`` has run.
    """

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None

    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layer's output for a batch x (N, D_in); keeps in ``cache`` what backward needs."""

    @abstractmethod
    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dL/dx (N, D_in) from dout = dL/d(output); fills ``grads``, changes no parameter."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _cached(self, dout: np.ndarray):
        """The forward cache, checked against ``dout``; a clear error if forward never ran."""
        if self.cache is None:
            raise RuntimeError(
                f"{self.describe()}: backward() was called before forward(); run forward() on "
                "the batch first, so the layer has the values its gradient depends on"
            )
        return self.cache

    def _check_dout(self, dout: np.ndarray, expected_shape: tuple) -> np.ndarray:
        dout = np.asarray(dout)
        if dout.shape != expected_shape:
            raise ValueError(
                f"{self.describe()}: backward() got dout of shape {dout.shape}, but the last "
                f"forward() produced an output of shape {expected_shape}; dout must match it"
            )
        return dout

    def describe(self) -> str:
        """How error messages name this layer, e.g. ``Dense layer 'encoder.0' (784 -> 512)``."""
        return f"{type(self).__name__} layer {self.name!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Dense(Layer):
    r"""Fully connected (affine) layer.

    Forward, for a batch ``x`` of shape (N, D_in)::

        y = x W + b            W : (D_in, D_out),  b : (D_out,),  y : (N, D_out)

    Backward, given ``dout`` = dL/dy of shape (N, D_out). Row n of y depends on row n of x
    only, while W and b are shared by all N rows, so their gradients sum over the batch::

        dL/dW = x^T dout       (D_in, N) @ (N, D_out) -> (D_in, D_out)
        dL/db = sum_n dout_n   (D_out,)
        dL/dx = dout W^T       (N, D_out) @ (D_out, D_in) -> (N, D_in)

    Parameters
    ----------
    in_features, out_features : int
        D_in and D_out.
    init : {"he", "glorot"}
        He (Kaiming) normal, std = sqrt(2 / D_in), keeps the variance of activations
        constant through ReLU layers; Glorot (Xavier) uniform, limit sqrt(6 / (D_in + D_out)),
        suits layers followed by tanh, sigmoid or nothing. The bias starts at zero.
    rng : numpy.random.Generator or int or None
        Source of the initial weights (a seed gives the same weights every time).
    dtype : numpy dtype
        float32 for training, float64 for gradient checks. Inputs are cast to it.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init: str = "he",
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
        name: str | None = None,
    ):
        super().__init__(name)
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(
                f"Dense needs positive widths, got in_features={in_features}, "
                f"out_features={out_features}"
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(rng)
        if init == "he":
            W = rng.standard_normal((self.in_features, self.out_features)) * np.sqrt(
                2.0 / self.in_features
            )
        elif init == "glorot":
            limit = np.sqrt(6.0 / (self.in_features + self.out_features))
            W = rng.uniform(-limit, limit, (self.in_features, self.out_features))
        else:
            raise ValueError(f"unknown init {init!r}; use 'he' or 'glorot'")
        # The arrays live as long as the layer, and Adam streams each parameter with its
        # gradient and two moments in one loop: npnet.placement spreads such arrays apart
        # in memory (and onto huge pages), which makes that loop faster.
        self.params = {
            "W": aligned_zeros(W.shape, self.dtype),
            "b": aligned_zeros(self.out_features, self.dtype),
        }
        self.params["W"][...] = W
        self.grads = {key: zeros_alongside(value, stream=1) for key, value in self.params.items()}

    def describe(self) -> str:
        return f"Dense layer {self.name!r} ({self.in_features} -> {self.out_features})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self.describe()} expects input of shape (N, {self.in_features}), "
                f"got {x.shape}"
            )
        self.cache = x
        y = x @ self.params["W"]
        y += self.params["b"]  # in place: no second (N, D_out) temporary
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Fill ``grads`` from dout (N, D_out); return dL/dx (N, D_in).

        ``input_grad=False`` skips dL/dx and returns None. Training never needs the
        gradient with respect to the data (the first layer's input), and that product,
        ``dout W^T``, is a third of the layer's backward arithmetic.
        """
        x = self._cached(dout)
        dout = self._check_dout(dout, (x.shape[0], self.out_features)).astype(
            self.dtype, copy=False
        )
        np.matmul(x.T, dout, out=self.grads["W"])
        np.sum(dout, axis=0, out=self.grads["b"])
        if not input_grad:
            return None
        return dout @ self.params["W"].T

    def __repr__(self) -> str:
        return f"Dense({self.in_features} -> {self.out_features}, name={self.name!r})"


class ReLU(Layer):
    r"""Rectified linear unit, elementwise.

    Forward: ``y = max(0, x)``.  Backward: ``dL/dx = dout * [x > 0]``
    (the derivative at exactly 0 is taken as 0; gradient checks keep inputs away from it).
    Shapes: x, y, dout, dx all (N, D).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.cache = x > 0
        return np.maximum(x, 0, dtype=x.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        positive = self._cached(dout)
        dout = self._check_dout(dout, positive.shape)
        return dout * positive


class LeakyReLU(Layer):
    r"""Leaky ReLU, elementwise, with slope ``alpha`` for negative inputs.

    Forward: ``y = x if x > 0 else alpha * x``.
    Backward: ``dL/dx = dout * (1 if x > 0 else alpha)``. Shapes: all (N, D).
    """

    def __init__(self, alpha: float = 0.01, name: str | None = None):
        super().__init__(name)
        if not 0 <= alpha < 1:
            raise ValueError(f"LeakyReLU alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        slope = np.where(x > 0, 1.0, self.alpha).astype(x.dtype)
        self.cache = slope
        return x * slope

    def backward(self, dout: np.ndarray) -> np.ndarray:
        slope = self._cached(dout)
        dout = self._check_dout(dout, slope.shape)
        return dout * slope


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    r"""The logistic function ``1 / (1 + exp(-x))``, elementwise, finite for every x.

    Written naively, ``exp(-x)`` overflows for x < -710 (float64) or x < -89 (float32).
    This uses the identity

    .. math::  \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{1 + \tanh(x / 2)}{2},

    (multiply the numerator and denominator of the left side by e^{x/2}): tanh is bounded by
    1, so nothing overflows, and NumPy evaluates it with vector instructions, several times
    faster than ``scipy.special.expit``. The absolute error is that of the dtype (about
    6e-8 in float32), so outputs below it round to exactly 0 (or 1).

    ``out``, if given, receives the result (it may be ``x`` itself).
    """
    x = np.asarray(x)
    out = np.multiply(x, 0.5, out=out)  # Python floats: float32 stays float32
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


class Sigmoid(Layer):
    r"""Logistic sigmoid, elementwise, numerically stable for large |x|.

    Forward: ``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2`` by
    :func:`sigmoid`, which cannot overflow.

    Backward: ``dy/dx = y (1 - y)``, so ``dL/dx = dout * y * (1 - y)``; only the output
    is cached. Shapes: all (N, D).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = sigmoid(x)
        self.cache = y
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y = self._cached(dout)
        dout = self._check_dout(dout, y.shape)
        dx = np.subtract(1, y)  # one new array, then in place: no temporaries
        dx *= y
        dx *= dout
        return dx


class Tanh(Layer):
    r"""Hyperbolic tangent, elementwise.

    Forward: ``y = tanh(x)``.  Backward: ``dL/dx = dout * (1 - y^2)``. Shapes: all (N, D).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(np.asarray(x))
        self.cache = y
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y = self._cached(dout)
        dout = self._check_dout(dout, y.shape)
        return dout * (1 - y * y)


class Sequential(Layer):
    r"""Layers applied one after another: ``y = f_K(... f_2(f_1(x)))``.

    Backward is the chain rule read right to left: each layer turns dL/d(its output)
    into dL/d(its input), which is the previous layer's dL/d(output)::

        d_K = dout;  d_{k-1} = f_k.backward(d_k);  dL/dx = d_0

    Parameters are exposed under ``"<layer name>.<key>"``; a layer's name is
    ``"<container name>.<position>"`` (for example ``"encoder.0.W"``), or just the
    position when the container has no name.
    """

    def __init__(self, *layers: Layer, name: str | None = None):
        super().__init__()
        self.name = name or ""
        if len(layers) == 1 and isinstance(layers[0], list | tuple):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential takes npnet layers; item {i} is {type(layer).__name__}"
                )
            layer.name = f"{self.name}.{i}" if self.name else str(i)
        self.layers = list(layers)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every layer's parameters, ``{"<layer name>.<key>": array}`` (the same arrays)."""
        return {f"{layer.name}.{k}": v for layer in self.layers for k, v in layer.params.items()}

    @params.setter
    def params(self, value):
        if value:  # Layer.__init__ assigns {}; a container's parameters live in its layers
            raise AttributeError("set parameters on the layers of a Sequential, not on it")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Every layer's gradients, under the same keys as :attr:`params`."""
        return {f"{layer.name}.{k}": v for layer in self.layers for k, v in layer.grads.items()}

    @grads.setter
    def grads(self, value):
        if value:
            raise AttributeError("gradients live in the layers of a Sequential")

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Fill every layer's ``grads`` from dout; return dL/dx.

        With ``input_grad=False`` (training, where x is the data and nobody needs dL/dx)
        the first layer computes its parameter gradients only, and None is returned.
        """
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        first = self.layers[0]
        if isinstance(first, Dense | Sequential):
            return first.backward(dout, input_grad=input_grad)
        dx = first.backward(dout)  # a layer without weights computes dL/dx and nothing else
        return dx if input_grad else None

    def describe(self) -> str:
        return f"Sequential {self.name!r}" if self.name else "Sequential"

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Sequential(\n{inner}\n)"


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def mlp(
    widths: tuple[int, ...] | list[int],
    activation: str = "relu",
    output_activation: str | None = None,
    rng: np.random.Generator | int | None = None,
    dtype=np.float32,
    name: str | None = None,
) -> Sequential:
    """A multi-layer perceptron: Dense layers of the given widths with activations between.

    ``mlp([784, 512, 128, 16])`` is ``Dense(784, 512), ReLU, Dense(512, 128), ReLU,
    Dense(128, 16)``: the last Dense is followed by ``output_activation`` (None = linear).
    Dense layers followed by ReLU-like activations get He initialisation, the others Glorot.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"mlp needs at least two positive widths (in, out), got {widths}")
    for label in (activation, output_activation):
        if label is not None and label not in ACTIVATIONS:
            raise ValueError(f"unknown activation {label!r}; choose from {sorted(ACTIVATIONS)}")
    rng = np.random.default_rng(rng)
    layers: list[Layer] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        last = i == len(widths) - 2
        follows = output_activation if last else activation
        init = "he" if follows in ("relu", "leaky_relu") else "glorot"
        layers.append(Dense(d_in, d_out, init=init, rng=rng, dtype=dtype))
        if follows is not None:
            layers.append(ACTIVATIONS[follows]())
    return Sequential(*layers, name=name)


def in_batches(function, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """``function`` applied to a large array (N, ...) in slices of ``batch_size`` rows.

    Evaluating 10,000 images at once would hold every layer's (10000, width) activations;
    slices bound that memory. The results are concatenated along the first axis.
    """
    if len(x) == 0:
        raise ValueError("got an empty array: there is nothing to evaluate")
    return np.concatenate([function(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
