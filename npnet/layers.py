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

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from . import checks

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
    "dense_stack",
    "init_for",
    "initial_weights",
    "layer_width",
    "layer_widths",
]


# The checked widths, under the names the layers have always offered them (npnet.checks).
layer_width, layer_widths = checks.width, checks.widths


def initial_weights(shape: tuple, fan_in: float, fan_out: float, init: str, rng,
                    dtype) -> np.ndarray:
    r"""Random weights of ``shape``, scaled so that activations neither grow nor shrink
    from layer to layer:

    * ``"he"`` (Kaiming) normal, std = sqrt(2 / fan_in): keeps the variance of activations
      through ReLU layers, which zero half their inputs;
    * ``"glorot"`` (Xavier) uniform, limit sqrt(6 / (fan_in + fan_out)): suits layers
      followed by tanh, sigmoid or nothing.

    fan_in is the number of terms in each output's sum (D_in for a Dense layer), fan_out the
    number of outputs each input reaches. Drawn from ``rng`` in float64, then cast.

    Tested by: tests/test_layers.py::test_dense_initialisation_scale,
    tests/test_conv.py::test_conv_initialisation_scale
    """
    rng = checks.generator(rng)
    if checks.one_of(init, ("he", "glorot"), "init") == "he":
        weights = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    else:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weights = rng.uniform(-limit, limit, shape)
    return weights.astype(dtype)


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

    # A layer without parameters has none: an empty mapping that cannot be filled by mistake.
    params: Mapping[str, np.ndarray] = MappingProxyType({})
    grads: Mapping[str, np.ndarray] = MappingProxyType({})
    container: Layer | None = None  # the Sequential that holds it, which named it

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__
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
        """x as a NumPy array of real numbers, or a clear error (:func:`checks.real_array`)."""
        return checks.real_array(x, self.describe())

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
        He (Kaiming) normal, std = sqrt(2 / D_in), or Glorot (Xavier) uniform, limit
        sqrt(6 / (D_in + D_out)) (:func:`initial_weights`). The bias starts at zero.
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
        d_in = self.in_features = checks.width(in_features, "Dense in_features")
        d_out = self.out_features = checks.width(out_features, "Dense out_features")
        self.dtype = checks.floating_dtype(dtype, "a Dense layer")
        W = initial_weights((d_in, d_out), d_in, d_out, init, rng, self.dtype)
        self.params = {"W": W, "b": np.zeros(d_out, self.dtype)}
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
        self.alpha = checks.fraction(alpha, "LeakyReLU alpha")

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

    Each layer object may appear once, in one Sequential: a layer keeps one cache and one
    name, so at two places its backward would use the later forward's cache, and its
    parameters would have one key for two places.

    Tested by: tests/test_layers.py::test_three_layer_sequential_gradients,
    tests/test_layers.py::test_sequential_parameter_names_and_sharing,
    tests/test_layers.py::test_a_layer_used_twice_is_refused,
    tests/test_layers.py::test_a_layer_in_another_sequential_is_refused
    """

    def __init__(self, *layers: Layer, name: str | None = None):
        super().__init__()
        self.name = name or ""
        if len(layers) == 1 and isinstance(layers[0], list | tuple):
            layers = tuple(layers[0])
        checks.distinct_layers(layers, Layer)
        for i, layer in enumerate(layers):
            layer.name = f"{self.name}.{i}" if self.name else str(i)
            layer.container = self
        self.layers = list(layers)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every layer's parameters, ``{"<layer name>.<key>": array}`` (the same arrays)."""
        return {f"{layer.name}.{k}": v for layer in self.layers for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Every layer's gradients, under the same keys as :attr:`params`."""
        return {f"{layer.name}.{k}": v for layer in self.layers for k, v in layer.grads.items()}

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


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def init_for(follows: str | None) -> str:
    """The initialisation of a layer followed by the activation ``follows`` (None: nothing):
    He for ReLU-like activations, which zero half their inputs; Glorot otherwise.

    Tested by: tests/test_layers.py::test_mlp_initialises_by_the_activation_that_follows
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

    Tested by: tests/test_layers.py::test_mlp_initialises_by_the_activation_that_follows,
    tests/test_layers.py::test_widths_may_be_numpy_integers_but_not_a_string,
    tests/test_vae.py::test_params_and_grads_are_the_layers_arrays
    """
    return Sequential(*dense_stack(widths, activation, output_activation, rng, dtype), name=name)


def dense_stack(widths, activation: str = "relu", output_activation: str | None = None,
                rng: np.random.Generator | int | None = None, dtype=np.float32) -> list[Layer]:
    """The layers of :func:`mlp`, as a list, to be placed in a Sequential (a convolutional
    encoder puts them after its feature maps).

    Tested by: tests/test_layers.py::test_mlp_initialises_by_the_activation_that_follows,
    tests/test_conv.py::test_conv_autoencoder_shapes_and_gradients
    """
    widths = checks.widths(widths, "mlp widths")
    if len(widths) < 2:
        raise ValueError(f"mlp needs at least two widths (in, out), got {widths}")
    checks.one_of(activation, ACTIVATIONS, "activation")
    checks.one_of(output_activation, [*ACTIVATIONS, None], "output activation")
    rng = checks.generator(rng)
    layers: list[Layer] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        last = i == len(widths) - 2
        follows = output_activation if last else activation
        layers.append(Dense(d_in, d_out, init=init_for(follows), rng=rng, dtype=dtype))
        if follows is not None:
            layers.append(ACTIVATIONS[follows]())
    return layers
