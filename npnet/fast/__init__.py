"""npnet's opt-in fast path: the core's numbers, bit for bit, in less time.

The core (:mod:`npnet.layers`, :mod:`npnet.optim`, ...) is written as its formulas and is
the definition of what npnet computes. This package makes training faster without changing
a single bit of it (``tests/test_fast.py``), and the core never imports it
(``tests/test_layout.py``). One
call turns it on, after the model and its optimizer are built and before training::

    model = VAE(rng=0)
    optimizer = Adam(model.params)
    trainer = npnet.fast.enable(model, optimizer)
    fit(trainer, optimizer, x_train, ...)

What :func:`enable` does, each part proven equal to the core by a test in
``tests/test_fast.py``:

* every :class:`~npnet.layers.Dense` becomes a :class:`~npnet.fast.layers.FastDense`: the
  same products, computed into arrays that live as long as the layer;
* every :class:`~npnet.conv.Conv2D` and :class:`~npnet.conv.ConvTranspose2D` becomes a
  :class:`~npnet.fast.conv.FastConv2D` or :class:`~npnet.fast.conv.FastConvTranspose2D`:
  the same products, with the copies around them (padding, im2col, col2im) done by compiled
  loops where numba is installed and into buffers kept between steps
  (``tests/test_fast_conv.py``);
* the model's first layer with parameters skips dL/d(data), which training never uses (so
  ``model.backward`` then returns None); the Reshape or Flatten layers in front of it, as
  in a convolutional model's ``Reshape((28, 28, 1))``, pass that None on;
* parameters, gradients and optimizer state are placed in memory so that the loops which
  read them side by side do not trip over each other (:mod:`npnet.fast.placement`);
* :class:`~npnet.optim.Adam` becomes :class:`~npnet.fast.optim.FastAdam`, its update one
  compiled loop per parameter where numba is installed, and :class:`~npnet.optim.SGD`
  becomes :class:`~npnet.fast.optim.FastSGD` (placed state, same update);
* glibc keeps freed memory for the next step (:mod:`npnet.fast.memory`).

It returns what to train: a :class:`~npnet.fast.threads.BlasThreads` that runs the model
with the number of BLAS threads that is fastest on this machine now (``blas_threads="auto"``,
the default; ``"adapt"`` keeps choosing during the run, an integer fixes the count, None
leaves the BLAS as it is and returns the model itself). The thread count changes no formula,
but OpenBLAS rounds its sums in another order with another count, so a run is reproduced bit
for bit with the same count (:mod:`npnet.fast.threads`).

``threads=K > 1`` instead returns a :class:`~npnet.fast.parallel.DataParallel` that trains each
batch in K shards on K threads. That one is not the same computation: the shards draw other
noise and sum in another order (its docstring says what is equal and what is not).

The objects are changed in place (each layer's and the optimizer's class is swapped for its
fast subclass, which adds no state of its own), so a checkpoint written with the fast path
loads into a model without it and the other way round.
"""

from __future__ import annotations

from .. import checks
from ..conv import Conv2D, ConvTranspose2D, Flatten, Reshape
from ..layers import Dense, Layer, Sequential
from ..optim import SGD, Adam
from .conv import FastConv2D, FastConvTranspose2D, FastFlatten, FastReshape
from .layers import FastDense
from .memory import keep_freed_memory
from .optim import FastAdam, FastSGD, numba_available
from .parallel import DataParallel
from .placement import aligned_zeros, zeros_alongside
from .threads import BlasThreads

__all__ = ["enable", "FastDense", "FastConv2D", "FastConvTranspose2D", "FastAdam", "FastSGD",
           "DataParallel", "BlasThreads", "numba_available"]

FAST_OPTIMIZERS = {Adam: FastAdam, SGD: FastSGD}
# Layers with parameters, and their fast subclasses (exact types: a subclass of Dense keeps
# its own backward).
FAST_LAYERS = {Dense: FastDense, Conv2D: FastConv2D, ConvTranspose2D: FastConvTranspose2D}
# Layers without parameters that may stand in front of the first one with parameters and
# pass a skipped gradient (None) on.
PASS_NONE = {Reshape: FastReshape, Flatten: FastFlatten}


def enable(model, optimizer, threads: int = 1, blas_threads: str | int | None = "auto",
           log=print):
    """Switch ``model`` and ``optimizer`` to the fast path, in place; returns what to train.

    Parameters
    ----------
    model
        An npnet model: a :class:`~npnet.layers.Sequential`, or an object whose attributes
        hold its layers (``encoder``, ``decoder``, ... as the autoencoders do).
    optimizer : npnet.optim.Optimizer
        Built on ``model.params``; its state, if it has stepped already, is kept.
    threads : int
        K > 1 returns ``DataParallel(model, K)``, which gives each shard its share of the
        cores' BLAS threads (``blas_threads`` must then be ``"auto"`` or None).
    blas_threads : "auto", "adapt", int or None
        With ``threads=1``: how many BLAS threads to train with (:mod:`npnet.fast.threads`);
        None returns ``model`` itself, its BLAS untouched.
    log : callable
        Where :class:`BlasThreads` says which count it chose.

    Returns
    -------
    What to pass to :func:`npnet.train.fit`: a :class:`BlasThreads` around the model, the model
    itself (``blas_threads=None``), or a :class:`DataParallel` (``threads > 1``).

    Tested by: tests/test_fast.py::test_enabled_training_gives_the_core_bits,
    tests/test_fast_conv.py::test_enabled_conv_training_gives_the_core_bits
    """
    threads = checks.integer(threads, "threads", low=1)
    if threads > 1 and blas_threads not in ("auto", None):
        raise ValueError(
            f"enable(threads={threads}) gives every shard its share of the BLAS threads; "
            f"blas_threads={blas_threads!r} applies to one thread only: leave it 'auto'"
        )
    # Built first, so that a bad blas_threads is refused before anything is changed.
    trainer = model if threads > 1 or blas_threads is None else BlasThreads(
        model, blas_threads, log=log)
    params = model.params
    if optimizer.params.keys() != params.keys() or any(
        optimizer.params[name] is not array for name, array in params.items()
    ):
        raise ValueError(
            "enable(model, optimizer): the optimizer was not built on this model's "
            "parameters; build it with Optimizer(model.params) first"
        )
    for layer in _layers(model):
        fast_layer = FAST_LAYERS.get(type(layer))
        if fast_layer is not None:
            layer.__class__ = fast_layer
            _place(layer)
    *front, first = _leading_layers(model)
    if isinstance(first, tuple(FAST_LAYERS.values())) and all(
        type(layer) in PASS_NONE for layer in front
    ):
        for layer in front:
            layer.__class__ = PASS_NONE[type(layer)]
        first.input_grad = False

    fast_class = FAST_OPTIMIZERS.get(type(optimizer))
    if fast_class is not None:
        optimizer.__class__ = fast_class
    optimizer.params = dict(model.params)  # the placed arrays
    old_state, optimizer.state = optimizer.state, {}
    for name, slots in old_state.items():
        for slot, value in slots.items():
            optimizer._state_of(name)[slot][...] = value

    keep_freed_memory()
    return DataParallel(model, threads) if threads > 1 else trainer


def _place(layer: Layer) -> None:
    """Copy the layer's parameters into placed arrays, with placed gradients beside them."""
    for key, value in list(layer.params.items()):
        placed = aligned_zeros(value.shape, value.dtype)
        placed[...] = value
        layer.params[key] = placed
        layer.grads[key] = zeros_alongside(placed, stream=1)


def _layers(model):
    """Every layer inside ``model``, depth first."""
    if isinstance(model, Sequential):
        for layer in model.layers:
            yield from _layers(layer)
    elif isinstance(model, Layer):
        yield model
    else:
        for value in vars(model).values():
            if isinstance(value, Layer):
                yield from _layers(value)


def _leading_layers(model) -> list:
    """The layers from the one that sees the data (the start of ``model``, or of its
    ``encoder``) to the first one with parameters, both included; ``[model]`` for a model
    that is neither a layer nor has an ``encoder``."""
    if not isinstance(model, Layer) and isinstance(getattr(model, "encoder", None), Layer):
        model = model.encoder
    if not isinstance(model, Layer):
        return [model]
    leading = []
    for layer in _layers(model):
        leading.append(layer)
        if layer.params:
            break
    return leading
