"""Argument checks: what the core refuses, and the message that says how to fix it.

The layers, losses, optimizers, the VAE and the convolutions check their arguments here, in a
line each, so that their own modules read as the formulas they implement. Each function
returns the checked value (an ``int`` for a NumPy integer, an array for a list) or raises an
error that names the argument, what it got and what it needs. NumPy would accept most of
these mistakes and compute something else: ``int(2.7)`` is 2, the widths ``"784"`` are 7, 8
and 4, 0-255 pixels train a DAE to an error 65,025 times too large, a (1, D) gradient
broadcasts over a (N, D) parameter. ``TypeError`` is for a value of the wrong kind,
``ValueError`` for one out of range or of the wrong shape, ``KeyError`` for a missing name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = [
    "integer", "generator", "width", "widths", "number", "positive", "non_negative", "fraction",
    "probability", "one_of", "floating_dtype", "real_array", "shape", "pixels", "binary",
    "prediction_and_target", "probabilities", "distinct_layers", "parameters", "gradients",
    "not_float16", "optimizer_state", "kernel_stride_padding", "images",
    "square_side", "mean_and_logvar", "objective",
]


def integer(value, what: str, low: int = 0) -> int:
    """``value`` as an ``int`` >= ``low``; 2.0, 2.7, "2" and True are refused.

    Tested by: tests/test_checks.py::test_integers_refuse_what_is_not_one
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an integer >= {low}, got {value!r} of type "
                        f"{type(value).__name__}")
    if value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value}")
    return int(value)


def generator(rng, what: str = "rng") -> np.random.Generator:
    """``rng`` as a NumPy Generator: a Generator, a seed (an integer >= 0, or a sequence of
    them), or None (a fresh, unseeded one).

    Tested by: tests/test_checks.py::test_a_random_generator_or_seed_is_checked
    """
    if isinstance(rng, np.random.Generator):
        return rng
    seeds = list(rng) if isinstance(rng, list | tuple) else [rng]
    if rng is not None and not isinstance(rng, np.random.SeedSequence | np.random.BitGenerator):
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
                kind = isinstance(seed, int | np.integer) and not isinstance(seed, bool)
                raise (ValueError if kind else TypeError)(
                    f"{what} must be a numpy.random.Generator, a seed (an integer >= 0) or "
                    f"None, got {rng!r}")
    return np.random.default_rng(rng)


def width(value, what: str = "width") -> int:
    """``value`` as the width of a layer (a number of units): an integer >= 1.

    Tested by: tests/test_layers.py::test_widths_are_integers_of_at_least_one
    """
    return integer(value, what, low=1)


def widths(values, what: str = "widths") -> list[int]:
    """A sequence of layer widths, each checked by :func:`width`. A string is refused:
    ``mlp("784")`` would read it as the widths 7, 8 and 4.

    Tested by: tests/test_layers.py::test_widths_may_be_numpy_integers_but_not_a_string
    """
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"{what} must be a sequence of integer widths, such as (512, 128), got {values!r}")
    return [width(value, f"{what}[{i}]") for i, value in enumerate(values)]


def number(value, what: str) -> float:
    """``value`` as a float: "0.1" read from a config file is not a number.

    Tested by: tests/test_optim.py::test_every_hyperparameter_is_checked
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {value!r} of type {type(value).__name__}")
    return float(value)


def positive(value, what: str) -> float:
    """A finite number > 0 (a learning rate, Adam's eps).

    Tested by: tests/test_optim.py::test_every_hyperparameter_is_checked
    """
    if not 0 < number(value, what) < math.inf:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def non_negative(value, what: str) -> float:
    """A finite number >= 0 (a weight decay, the KL weight beta).

    Tested by: tests/test_optim.py::test_every_hyperparameter_is_checked,
    tests/test_vae.py::test_beta_must_be_a_finite_number_at_least_zero
    """
    if not 0 <= number(value, what) < math.inf:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def fraction(value, what: str) -> float:
    """A number in [0, 1): a momentum or one of Adam's betas (how much of the past each step
    keeps), LeakyReLU's slope.

    Tested by: tests/test_optim.py::test_every_hyperparameter_is_checked,
    tests/test_checks.py::test_leaky_relu_slope_is_a_fraction
    """
    if not 0 <= number(value, what) < 1:
        raise ValueError(f"{what} must be in [0, 1), got {value!r}")
    return float(value)


def probability(value, what: str) -> float:
    """A number in [0, 1].

    Tested by: tests/test_autoencoder.py::test_corruption_bad_arguments
    """
    if not 0 <= number(value, what) <= 1:
        raise ValueError(f"{what} must be a probability in [0, 1], got {value!r}")
    return float(value)


def one_of(value, choices: Iterable, what: str):
    """``value`` if it is one of ``choices`` (a name: an activation, an objective, ...).

    Tested by: tests/test_vae.py::test_bad_objectives_are_refused,
    tests/test_conv.py::test_conv_layers_refuse_bad_hyperparameters
    """
    choices = list(choices)
    if isinstance(value, str | type(None)) and value in choices:
        return value
    raise ValueError(f"unknown {what} {value!r}; choose one of " + ", ".join(map(repr, choices)))


def floating_dtype(dtype, what: str) -> np.dtype:
    """``dtype`` if it is a floating-point type: weights of an integer type would round to 0
    (He's scale is below 1), and the gradients are derived for real numbers.

    Tested by: tests/test_layers.py::test_dense_refuses_a_dtype_that_is_not_floating
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{what} computes in floating point: dtype must be float32 (to train) "
                        f"or float64 (for gradient checks), got {dtype}")
    return dtype


def real_array(x, who: str) -> np.ndarray:
    """x as a NumPy array of real numbers (bool, integer or floating point), or a clear error:
    a cast to float would keep only the real part of complex numbers (NumPy merely warns).

    Tested by: tests/test_layers.py::test_input_that_is_not_real_numbers_is_refused
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{who} takes real numbers (a float array), got an array of {x.dtype}")
    return x


def shape(x: np.ndarray, expected: tuple, what: str) -> np.ndarray:
    """x if its shape is ``expected``; ``what`` names it and what the shape means.

    Tested by: tests/test_vae.py::test_wrong_eps_or_dz_shape_is_a_clear_error,
    tests/test_vae.py::test_iwae_eps_of_the_wrong_shape_is_refused
    """
    if x.shape != tuple(expected):
        raise ValueError(f"{what} {tuple(expected)}, got {x.shape}")
    return x


def pixels(x, who: str) -> np.ndarray:
    """x as an array if it holds floating-point pixels in [0, 1], as npnet.data.load_mnist
    gives them (0-255 pixels would train a DAE to an error 65,025 times too large).

    Tested by: tests/test_autoencoder.py::test_dae_refuses_what_is_not_pixels_in_0_1,
    tests/test_vae.py::test_vae_refuses_what_is_not_pixels_in_0_1
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{who} needs floating-point pixels in [0, 1], got an array of "
                        f"{x.dtype}; convert 0-255 integer pixels with x / 255 "
                        "(npnet.data.load_mnist does)")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not (0.0 <= low and high <= 1.0):
        raise ValueError(f"{who}: pixels must be in [0, 1], got values from {low} to {high}; "
                         "scale 0-255 pixels by 1/255 (npnet.data.load_mnist does)")
    return x


def binary(x, who: str) -> np.ndarray:
    """x if every value is 0 or 1: a Bernoulli likelihood p(x|z) is a probability only for
    binary x (on gray values the cross-entropy is a fine loss, but no log-likelihood).

    Tested by: tests/test_vae.py::test_likelihoods_refuse_gray_images
    """
    x = np.asarray(x)
    is_binary = (x == 0) | (x == 1)
    if not is_binary.all():
        raise ValueError(
            f"{who} needs binary images (every pixel 0 or 1): a Bernoulli likelihood is not "
            f"defined for a value such as {x[~is_binary].ravel()[0]}. Binarise them first: "
            "npnet.data.binarize(x, rng) in code, --binarize dynamic or static on the "
            "command line")
    return x


def prediction_and_target(prediction, target, who: str) -> tuple[np.ndarray, np.ndarray]:
    """A loss's arguments: a non-empty float batch (N, D), a target of its shape (cast).

    Tested by: tests/test_losses.py::test_losses_reject_mismatched_shapes,
    tests/test_losses.py::test_integer_predictions_are_a_clear_error
    """
    prediction = np.asarray(prediction)
    if not np.issubdtype(prediction.dtype, np.floating):
        raise TypeError(f"{who}: predictions must be floating point, got dtype "
                        f"{prediction.dtype}; convert them with .astype(np.float32)")
    target = np.asarray(target, dtype=prediction.dtype)
    if prediction.shape != target.shape:
        raise ValueError(f"{who}: prediction has shape {prediction.shape} but target has shape "
                         f"{target.shape}; they must match, one row per example")
    if prediction.ndim != 2 or prediction.shape[0] == 0:
        raise ValueError(f"{who}: expected a non-empty batch of shape (N, D), got "
                         f"{prediction.shape}")
    return prediction, target


def probabilities(target: np.ndarray, who: str) -> np.ndarray:
    """BCE's targets, probabilities in [0, 1]: outside, its value means nothing (it can go
    negative), which raw 0-255 pixels would cause without a word.

    Tested by: tests/test_losses.py::test_bce_targets_outside_0_1_are_a_clear_error
    """
    low, high = float(target.min()), float(target.max())
    if not (0.0 <= low and high <= 1.0):
        raise ValueError(f"{who}: targets must be in [0, 1], got values from {low} to {high}; "
                         "scale 0-255 pixels by 1/255 (npnet.data.load_mnist does)")
    return target


def distinct_layers(layers, layer_type: type) -> None:
    """A Sequential's layers: instances of ``layer_type``, none twice, none in another
    Sequential: a layer keeps one cache, and one name, which its Sequential gives it.

    Tested by: tests/test_layers.py::test_a_layer_in_another_sequential_is_refused
    """
    if not layers:
        raise ValueError("Sequential needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, layer_type):
            raise TypeError(f"Sequential takes npnet layers; item {i} is {type(layer).__name__}")
        if any(other is layer for other in layers[:i]):
            raise ValueError(
                f"{layer.describe()} appears twice in this Sequential; a layer keeps one cache "
                "and one set of gradients, so build a new layer for each place it is used")
        if layer.container is not None:
            raise ValueError(f"{layer.describe()} is already in the Sequential "
                             f"{layer.container.name!r}, which named it: build a new layer")


def parameters(params) -> dict[str, np.ndarray]:
    """An optimizer's parameters, as a dict: writeable float arrays, updated in place.

    Tested by: tests/test_optim.py::test_read_only_parameters_are_refused,
    tests/test_optim.py::test_lists_and_integer_arrays_are_refused_as_parameters_or_gradients
    """
    if not isinstance(params, Mapping):
        raise TypeError("the optimizer takes a dict of parameter arrays: pass model.params, "
                        f"got a {type(params).__name__}")
    if not params:
        raise ValueError("the optimizer got no parameters; pass model.params")
    for name, param in params.items():
        if not isinstance(param, np.ndarray):
            raise TypeError(f"parameter {name!r} is a {type(param).__name__}: pass the NumPy "
                            "arrays of model.params, which the optimizer updates in place")
        if not np.issubdtype(param.dtype, np.floating):
            raise TypeError(f"parameter {name!r} is an array of {param.dtype}: parameters must "
                            "be floating point, or an update would be rounded away")
        if not param.flags.writeable:
            raise ValueError(f"parameter {name!r} is read-only, but the optimizer updates it in "
                             "place; pass writeable arrays (np.array(p) makes a writeable copy)")
    return dict(params)


def gradients(grads, params: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """The gradients an optimizer step takes: real arrays under the parameters' keys, each of
    its parameter's shape (NumPy would broadcast a (1, D) gradient over a (N, D) parameter),
    while every parameter is still writeable. Checked before any parameter changes.

    Tested by: tests/test_optim.py::test_a_gradient_of_another_shape_is_refused_before_any_update,
    tests/test_optim.py::test_lists_and_integer_arrays_are_refused_as_parameters_or_gradients
    """
    if not isinstance(grads, Mapping):
        raise TypeError("step takes a dict of gradient arrays: pass model.grads, got a "
                        f"{type(grads).__name__}")
    if grads.keys() != params.keys():
        missing, extra = sorted(params.keys() - grads.keys()), sorted(grads.keys() - params.keys())
        raise KeyError(f"gradients do not match the optimizer's parameters (missing: {missing}, "
                       f"unexpected: {extra}); pass model.grads of the optimizer's model")
    for name, param in params.items():
        grad = grads[name]
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"gradient {name!r} is a {type(grad).__name__}: pass model.grads, "
                            "whose gradients are NumPy arrays")
        if grad.dtype.kind not in "biuf":  # bool, integer, floating point
            raise TypeError(f"gradient {name!r} is an array of {grad.dtype}: gradients must be "
                            "real numbers (a cast would drop an imaginary part)")
        if not param.flags.writeable:
            raise ValueError(f"parameter {name!r} has become read-only, but the optimizer "
                             "updates it in place (param.flags.writeable = True)")
        if grad.shape != param.shape:
            raise ValueError(f"gradient {name!r} has shape {grad.shape}, but the parameter has "
                             f"shape {param.shape}; pass model.grads of the optimizer's model")
    return grads


def not_float16(params: Mapping[str, np.ndarray]) -> None:
    """No float16 parameter: Adam's eps = 1e-8 rounds to 0 there, and so do small squared
    gradients, so a step would divide by 0.

    Tested by: tests/test_optim.py::test_adam_refuses_float16_parameters
    """
    for name, param in params.items():
        if param.dtype == np.float16:
            raise TypeError(f"parameter {name!r} is float16, too narrow for Adam (eps = 1e-8 "
                            "rounds to 0); train in float32 (or use SGD)")


def optimizer_state(flat: Mapping, params: Mapping[str, np.ndarray], slots: tuple[str, ...],
                    optimizer: str) -> tuple[int, list[tuple[str, str, np.ndarray]]]:
    """What ``Optimizer.state_dict`` returned, checked before anything is loaded: the step
    count, and ``(slot, parameter name, array)`` for each state array, finite, of its
    parameter's shape.

    Tested by: tests/test_optim.py::test_state_dict_round_trip_continues_identically,
    tests/test_checks.py::test_optimizer_state_is_checked_before_it_is_loaded
    """
    if "steps" not in flat:
        raise KeyError("optimizer state has no 'steps' entry; pass what state_dict() returned")
    loaded = []
    for key, value in flat.items():
        if key == "steps":
            continue
        slot, _, name = key.partition("/")
        if name not in params:
            raise KeyError(f"optimizer state for unknown parameter {name!r}")
        if slot not in slots:
            raise KeyError(f"optimizer state {key!r}: {optimizer} keeps {list(slots)}, not "
                           f"{slot!r}; was it saved by another optimizer?")
        value = np.asarray(value)
        if value.shape != params[name].shape:
            raise ValueError(f"optimizer state {key!r} has shape {value.shape}, parameter "
                             f"{name!r} has {params[name].shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # checked as it will be stored
            finite = value.dtype.kind in "biuf" and np.isfinite(value.astype(params[name].dtype))
        if not np.all(finite):
            raise ValueError(f"optimizer state {key!r} is not finite in the parameter's dtype "
                             f"{params[name].dtype} (NaN, inf, or too large): a damaged file?")
        loaded.append((slot, name, value))
    steps = np.asarray(flat["steps"])
    steps = integer(steps.item() if steps.ndim == 0 else steps, "optimizer state 'steps'")
    return steps, loaded


def kernel_stride_padding(kernel_size, stride, padding, who: str) -> tuple[int, int, int]:
    """A convolution's kernel side and stride (>= 1), and zero padding, below the kernel.

    Tested by: tests/test_conv.py::test_conv_layers_refuse_bad_hyperparameters
    """
    kernel_size = integer(kernel_size, f"{who} kernel_size", low=1)
    stride = integer(stride, f"{who} stride", low=1)
    padding = integer(padding, f"{who} padding")
    if padding >= kernel_size:
        raise ValueError(f"{who} padding {padding} is not smaller than kernel_size "
                         f"{kernel_size}: some patches would hold padding zeros only")
    return kernel_size, stride, padding


def images(x: np.ndarray, channels: int, who: str) -> np.ndarray:
    """x if it is a non-empty batch of images (N, H, W, channels), channels last.

    Tested by: tests/test_conv.py::test_conv2d_refuses_wrong_channels_and_small_images
    """
    if x.ndim != 4 or x.shape[3] != channels:
        hint = (" (a batch of flat images needs a Reshape((H, W, C)) layer first)"
                if x.ndim == 2 else "")
        raise ValueError(f"{who} expects images of shape (N, H, W, {channels}), channels last, "
                         f"got {x.shape}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch, shape {x.shape}")
    return x


def square_side(pixels, what: str) -> int:
    """The side of the square image a convolutional model reads a row as (28 for 784).

    Tested by: tests/test_conv.py::test_conv_models_refuse_images_that_are_not_square
    """
    pixels = width(pixels, what)
    side = math.isqrt(pixels)
    if side * side != pixels:
        raise ValueError(f"a convolutional model reads each row of {pixels} pixels as a square "
                         f"image, but {pixels} is not a square number (MNIST's 784 is 28 x 28)")
    return side


def mean_and_logvar(h: np.ndarray, who: str) -> np.ndarray:
    """h if it is a non-empty batch (N, 2J), mu and logvar side by side.

    Tested by: tests/test_vae.py::test_odd_width_is_a_clear_error
    """
    if h.ndim != 2 or h.shape[1] % 2 or h.shape[1] == 0:
        raise ValueError(f"{who} expects h of shape (N, 2J), mu and logvar side by side, so an "
                         f"even, positive number of columns; got {h.shape}")
    if h.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch, shape {h.shape}")
    return h


def objective(name: str, choices, k, beta) -> tuple[str, int]:
    """A VAE's objective and its importance samples k: 1 for the ELBO, k >= 1 for the IWAE.

    Tested by: tests/test_vae.py::test_bad_objectives_are_refused
    """
    one_of(name, choices, "objective")
    k = integer(k, "the number of importance samples k", low=1)
    if name == "elbo" and k != 1:
        raise ValueError(f"objective='elbo' takes one sample per image, got k={k}; for k "
                         "samples use objective='iwae'")
    if name == "iwae" and beta != 1:
        raise ValueError(f"objective='iwae' is a bound on log p(x), which has no KL weight: "
                         f"beta must be 1, got {beta}")
    return name, k
