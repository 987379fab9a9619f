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
from collections.abc import Iterable

import numpy as np

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
    "init_for",
    "layer_width",
    "layer_widths",
]


def layer_width(value, what: str = "width") -> int:
    """``value`` as the width of a layer, an integer >= 1 (Python's or NumPy's), or a clear
    error. ``int()`` would make 2.7 a 2, "3" a 3 and True a 1, without a word.

    Tested by: tests/test_layers.py::test_widths_are_integers_of_at_least_one
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{what} must be an integer >= 1 (a number of units), got {value!r} of type "
            f"{type(value).__name__}"
        )
    if value < 1:
        raise ValueError(f"{what} must be an integer >= 1 (a number of units), got {value}")
    return int(value)


def layer_widths(values, what: str = "widths") -> list[int]:
    """A sequence of layer widths, each checked by :func:`layer_width`. A string is refused:
    ``mlp("784")`` would read it as the widths 7, 8 and 4.

    Tested by: tests/test_layers.py::test_widths_may_be_numpy_integers_but_not_a_string
    """
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"{what} must be a sequence of integer widths, such as (512, 128), got {values!r}"
        )
    return [layer_width(value, f"{what}[{i}]") for i, value in enumerate(values)]


def _floating_dtype(dtype) -> np.dtype:
    """``dtype``, if it is a floating-point type: weights of an integer type would round to
    0 (He's scale is below 1), and the gradients here are derived for real numbers."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"Dense layers compute in floating point: dtype must be float32 (to train) or "
            f"float64 (for gradient checks), got {dtype}"
        )
    return dtype


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

    Tested by: tests/test_layers.py::test_backward_before_forward_is_a_clear_error,
    tests/test_layers.py::test_backward_does_not_change_parameters,
    tests/test_layers.py::test_input_that_is_not_real_numbers_is_refused
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

    def _real_input(self, x: np.ndarray) -> np.ndarray:
        """x as a NumPy array of real numbers, or a clear error: a cast to float would keep
        only the real part of complex numbers (NumPy merely warns)."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":  # bool, signed and unsigned integer, floating point
            raise TypeError(
                f"{self.describe()} takes real numbers (a float array), got an array of "
                f"{x.dtype}"
            )
        return x

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

    Tested by: tests/test_layers.py::test_dense_gradients,
    tests/test_layers.py::test_dense_initialisation_scale,
    tests/test_layers.py::test_dense_refuses_a_dtype_that_is_not_floating
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
        self.in_features = layer_width(in_features, "Dense in_features")
        self.out_features = layer_width(out_features, "Dense out_features")
        self.dtype = _floating_dtype(dtype)
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
        self.params = {"W": W.astype(self.dtype), "b": np.zeros(self.out_features, self.dtype)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def describe(self) -> str:
        return f"Dense layer {self.name!r} ({self.in_features} -> {self.out_features})"

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        """x as an (N, D_in) array of the layer's dtype, or a clear error."""
        x = np.asarray(self._real_input(x), dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self.describe()} expects input of shape (N, {self.in_features}), "
                f"got {x.shape}"
            )
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = x W + b, (N, D_in) -> (N, D_out); caches x."""
        x = self._check_input(x)
        self.cache = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from dout = dL/dy (N, D_out); return dL/dx (N, D_in)."""
        x = self._cached(dout)
        dout = self._check_dout(dout, (x.shape[0], self.out_features))
        dout = dout.astype(self.dtype, copy=False)
        self.grads["W"] = x.T @ dout  # (D_in, N) @ (N, D_out)
        self.grads["b"] = dout.sum(axis=0)  # (D_out,)
        return dout @ self.params["W"].T  # (N, D_out) @ (D_out, D_in)

    def __repr__(self) -> str:
        return f"Dense({self.in_features} -> {self.out_features}, name={self.name!r})"


class ReLU(Layer):
    r"""Rectified linear unit, elementwise.

    Forward: ``y = max(0, x)``.  Backward: ``dL/dx = dout * [x > 0]``
    (the derivative at exactly 0 is taken as 0; gradient checks keep inputs away from it).
    Shapes: x, y, dout, dx all (N, D).

    Tested by: tests/test_layers.py::test_relu_gradients
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._real_input(x)
        self.cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        positive = self._cached(dout)
        dout = self._check_dout(dout, positive.shape)
        return dout * positive


class LeakyReLU(Layer):
    r"""Leaky ReLU, elementwise, with slope ``alpha`` for negative inputs.

    Forward: ``y = x if x > 0 else alpha * x``.
    Backward: ``dL/dx = dout * (1 if x > 0 else alpha)``. Shapes: all (N, D).

    Tested by: tests/test_layers.py::test_leaky_relu_gradients
    """

    def __init__(self, alpha: float = 0.01, name: str | None = None):
        super().__init__(name)
        if not 0 <= alpha < 1:
            raise ValueError(f"LeakyReLU alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._real_input(x)
        slope = np.where(x > 0, 1.0, self.alpha).astype(x.dtype)
        self.cache = slope
        return x * slope

    def backward(self, dout: np.ndarray) -> np.ndarray:
        slope = self._cached(dout)
        dout = self._check_dout(dout, slope.shape)
        return dout * slope


def sigmoid(x: np.ndarray) -> np.ndarray:
    r"""The logistic function ``1 / (1 + exp(-x))``, elementwise, finite for every x.

    Written naively, ``exp(-x)`` overflows for x < -710 (float64) or x < -89 (float32).
    This uses the identity

    .. math::  \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{1 + \tanh(x / 2)}{2}

    (multiply the numerator and denominator of the left side by e^{x/2}): tanh is bounded by
    1, so nothing overflows. The absolute error is that of the dtype (about 6e-8 in float32),
    so outputs below it round to exactly 0 (or 1). npnet's one sigmoid: the layer below, the
    BCE gradient and the VAE's decoded images all use it.

    Tested by: tests/test_layers.py::test_sigmoid_is_stable_at_extremes
    """
    x = np.asarray(x)
    return (1 + np.tanh(x / 2)) / 2  # Python numbers: a float32 x stays float32


class Sigmoid(Layer):
    r"""Logistic sigmoid, elementwise, numerically stable for large |x|.

    Forward: ``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2`` by
    :func:`sigmoid`, which cannot overflow.

    Backward: ``dy/dx = y (1 - y)``, so ``dL/dx = dout * y (1 - y)``; only the output
    is cached. Shapes: all (N, D).

    Tested by: tests/test_layers.py::test_sigmoid_gradients
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = sigmoid(self._real_input(x))
        self.cache = y
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y = self._cached(dout)
        dout = self._check_dout(dout, y.shape)
        return dout * (y * (1 - y))


class Tanh(Layer):
    r"""Hyperbolic tangent, elementwise.

    Forward: ``y = tanh(x)``.  Backward: ``dL/dx = dout * (1 - y^2)``. Shapes: all (N, D).

    Tested by: tests/test_layers.py::test_tanh_gradients
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(self._real_input(x))
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

    Each layer object may appear once: a layer keeps one cache and one name, so at two
    places its backward would use the later forward's cache, and its parameters would have
    one key for two places.

    Tested by: tests/test_layers.py::test_three_layer_sequential_gradients,
    tests/test_layers.py::test_sequential_parameter_names_and_sharing,
    tests/test_layers.py::test_a_layer_used_twice_is_refused
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
        _check_each_layer_once(layers)
        for i, layer in enumerate(layers):
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

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Fill every layer's ``grads`` from dout; return dL/dx (last layer first)."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def describe(self) -> str:
        return f"Sequential {self.name!r}" if self.name else "Sequential"

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Sequential(\n{inner}\n)"


def _check_each_layer_once(layers) -> None:
    """A clear error if one layer object appears twice, here or in a nested Sequential."""
    seen: set[int] = set()

    def visit(layer: Layer) -> None:
        if id(layer) in seen:
            raise ValueError(
                f"{layer.describe()} appears twice in this Sequential; a layer keeps one cache "
                "and one set of gradients, so build a new layer for each place it is used"
            )
        seen.add(id(layer))
        if isinstance(layer, Sequential):
            for inner in layer.layers:
                visit(inner)

    for layer in layers:
        visit(layer)


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def init_for(follows: str | None) -> str:
    """The initialisation of a layer followed by the activation ``follows`` (None: nothing):
    He for ReLU-like activations, which zero half their inputs; Glorot otherwise.

    Tested by: tests/test_layers.py::test_dense_initialisation_scale
    """
    return "he" if follows in ("relu", "leaky_relu") else "glorot"


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

    Tested by: tests/test_vae.py::test_params_and_grads_are_the_layers_arrays,
    tests/test_layers.py::test_widths_may_be_numpy_integers_but_not_a_string
    """
    widths = layer_widths(widths, "mlp widths")
    if len(widths) < 2:
        raise ValueError(f"mlp needs at least two widths (in, out), got {widths}")
    for label in (activation, output_activation):
        if label is not None and label not in ACTIVATIONS:
            raise ValueError(f"unknown activation {label!r}; choose from {sorted(ACTIVATIONS)}")
    rng = np.random.default_rng(rng)
    layers: list[Layer] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        last = i == len(widths) - 2
        follows = output_activation if last else activation
        layers.append(Dense(d_in, d_out, init=init_for(follows), rng=rng, dtype=dtype))
        if follows is not None:
            layers.append(ACTIVATIONS[follows]())
    return Sequential(*layers, name=name)
