"""Convolutions: npnet's Conv2D and ConvTranspose2D against PyTorch's, layer by layer and in
the conv DAE and conv VAE, and where npnet's time goes.

    python benchmarks/bench_conv.py                 # about 3 minutes
    python benchmarks/bench_conv.py --quick         # a rough look, under a minute
    python benchmarks/bench_conv.py --threads 1     # BLAS and PyTorch with one thread
    python benchmarks/bench_conv.py --help

Run it from a virtual environment that has ``torch`` (never an npnet dependency); without it,
the npnet columns only. It prints four tables, in Markdown:

1. **Layers.** Forward + backward (dL/dx, dL/dW, dL/db) of the experiments' four
   convolutions at batch 128, float32: Conv2D 28x28x1 -> 14x14x32 and 14x14x32 -> 7x7x64,
   ConvTranspose2D 7x7x64 -> 14x14x32 and 14x14x32 -> 28x28x1 (kernel 3, stride 2, padding
   1, output_padding 1), in ms per forward + backward. npnet's core layers (NHWC,
   ``npnet/conv.py``: im2col + matmul, col2im), the fast path's layers when
   ``npnet.fast.enable`` swaps the layer's class (``npnet/fast/conv.py``; enable lets a
   model's first layer skip dL/dx, but here every variant computes all three gradients),
   and PyTorch's ``F.conv2d`` / ``F.conv_transpose2d`` with autograd (input, weight and
   bias all requiring grad), in NCHW and in the channels_last memory format, with the same
   weights (PyTorch's weight is ``W.transpose(3, 2, 0, 1)`` for both layers), the same input
   and the same dL/dy.
2. **Models.** Samples/s of a whole training step (forward, backward, Adam) of
   ``DenoisingAutoencoder(arch="conv", rng=0)`` and ``VAE(arch="conv", rng=0)``, batch 128:
   the core (``model.train_step(x, rng)`` then ``optimizer.step(model.grads)``), the fast
   path (``trainer = npnet.fast.enable(model, optimizer, blas_threads=N)``, then
   ``trainer.train_step``; its first convolution skips dL/dx, which PyTorch does not compute
   either, since the images do not require grad), and the same architecture in PyTorch
   (``nn.Conv2d``, ``nn.ConvTranspose2d(..., output_padding=1)``, ``nn.Linear``; the same
   loss; ``torch.optim.Adam``, lr 1e-3), NCHW and channels_last.
3. **Layers of the conv DAE step**: every layer's forward and backward, the noise, the
   loss and Adam, in ms, median over steps, for the core and the fast path.
4. **Copies or products**: the core's convolutions (not the fast path's) taken apart: the
   padding, im2col, col2im, the crop and the bias (copies and elementwise passes) against
   the three matrix products, each timed alone on the layer's shapes, beside the layer's
   own forward + backward.

**The same computation.** Before timing, the script copies npnet's initial weights into the
PyTorch models and checks that one forward pass gives the same loss (to 1e-4 relative) and
the same gradients (to 1e-3 relative, in norm): the DAE on the same corrupted batch, the VAE
with the same eps. npnet flattens feature maps in NHWC order (row, column, channel) and
PyTorch in NCHW order (channel, row, column), so the Dense layers next to a Flatten or a
Reshape get their rows (or columns) permuted to match; the computation is the same. PyTorch
does not clip logvar to [-30, 20] as npnet does (the clip is inactive in training). Each
layer's output and gradients are checked against PyTorch's too. The fast path's first step
is checked against the core's (the same loss, bit for bit, is the fast path's contract).

**Timing**, as in ``bench_train.py`` and ``bench_threads.py``: numbers of one machine and one
moment. NumPy's BLAS (threadpoolctl) and PyTorch (``torch.set_num_threads``) get the same
thread count, ``--threads`` (default: the cores this process may use). Everything is timed in
``--repeats`` repeats; each repeat runs one block of every variant, in an order that rotates
from repeat to repeat, each block after a pause for OpenBLAS's threads to stop spinning.
Times are medians over repeats, [min-max] the range over repeats. A shared machine's speed
drifts within seconds, so every ratio is computed within a repeat, from blocks a second
apart, and the median of those per-repeat ratios is printed. Speed ratios are npnet's speed
over PyTorch's (PyTorch's ms over npnet's; above 1: npnet is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from collections import defaultdict

import numpy as np
from bench_train import (
    BLAS_SPIN_S,
    import_torch,
    load_report,
    machine_report,
    markdown,
    median_range,
)

import npnet.autoencoder
from npnet.autoencoder import DenoisingAutoencoder
from npnet.conv import Conv2D, ConvTranspose2D, _crop, _pad, col2im, im2col
from npnet.layers import Sequential
from npnet.losses import bce_with_logits, mse_loss
from npnet.optim import Adam
from npnet.vae import VAE

BATCH = 128
IMAGE_PIXELS = 784
# (label, kind, in channels, out channels, input side); kernel 3, stride 2, padding 1 and,
# for the transposed ones, output_padding 1: the conv DAE's and the conv VAE's layers.
SHAPES = [
    ("Conv2D (N,28,28,1) -> (N,14,14,32)", "conv", 1, 32, 28),
    ("Conv2D (N,14,14,32) -> (N,7,7,64)", "conv", 32, 64, 14),
    ("ConvTranspose2D (N,7,7,64) -> (N,14,14,32)", "convT", 64, 32, 7),
    ("ConvTranspose2D (N,14,14,32) -> (N,28,28,1)", "convT", 32, 1, 14),
]
KERNEL, STRIDE, PADDING, OUTPUT_PADDING = 3, 2, 1, 1
FEATURES = (7, 7, 64)  # the maps between the convolutions and the Dense layers
CORE, FAST, TORCH, TORCH_CL = "npnet core", "npnet fast", "PyTorch NCHW", "PyTorch channels_last"


# --------------------------------------------------------------------------------------------
# Timing: blocks of every variant per repeat, in rotating order


def calibrate(run, warmup_s: float, block_s: float) -> int:
    """Warm ``run`` up for about ``warmup_s`` seconds; how many calls last ``block_s``."""
    run()
    calls, spent = 0, 0.0
    while spent < warmup_s or calls < 2:
        started = time.perf_counter()
        run()
        spent += time.perf_counter() - started
        calls += 1
    return max(1, round(block_s / (spent / calls)))


def measure(runners: dict, repeats: int, block_s: float, warmup_s: float,
            pause_s: float = BLAS_SPIN_S) -> dict[str, list[float]]:
    """Seconds per call of every runner (a function of no argument), one value per repeat."""
    calls = {key: calibrate(run, warmup_s, block_s) for key, run in runners.items()}
    seconds: dict[str, list[float]] = {key: [] for key in runners}
    keys = list(runners)
    for repeat in range(repeats):
        shift = repeat % len(keys)
        for key in keys[shift:] + keys[:shift]:
            time.sleep(pause_s)  # the last block's BLAS threads stop spinning
            run, n = runners[key], calls[key]
            started = time.perf_counter()
            for _ in range(n):
                run()
            seconds[key].append((time.perf_counter() - started) / n)
    return seconds


def per_repeat_ratio(numerators: list[float], denominators: list[float]) -> list[float]:
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def short(key: str) -> str:
    """A variant's name in a ratio's header: "core", "fast", "PyTorch NCHW", ..."""
    return key.removeprefix("npnet ")


# --------------------------------------------------------------------------------------------
# npnet's layers, their fast-path version, and PyTorch's


def npnet_layer(kind: str, c_in: int, c_out: int):
    if kind == "conv":
        return Conv2D(c_in, c_out, KERNEL, STRIDE, PADDING, rng=0)
    return ConvTranspose2D(c_in, c_out, KERNEL, STRIDE, PADDING, OUTPUT_PADDING, rng=0)


def fast_layer(kind: str, c_in: int, c_out: int):
    """The layer as ``npnet.fast.enable`` leaves it, or None when enable keeps the core class.

    enable lets the layer that sees the data skip dL/dx (``input_grad = False``); here the
    layer computes it again, as the core's and PyTorch's do in this table."""
    import npnet.fast

    layer = npnet_layer(kind, c_in, c_out)
    core_class = type(layer)
    model = Sequential(layer)
    npnet.fast.enable(model, Adam(model.params), blas_threads=None, log=lambda _: None)
    if type(layer) is core_class:
        return None
    if hasattr(layer, "input_grad"):
        layer.input_grad = True
    return layer


def torch_weight(W: np.ndarray):
    """PyTorch's weight for npnet's W: (F, C, kh, kw) for Conv2D(C, F)'s (kh, kw, C, F), and
    (F, C, kh, kw) for ConvTranspose2D(F, C)'s (kh, kw, C, F): the same transpose."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1)))


def torch_layer_step(kind: str, layer, x: np.ndarray, dout: np.ndarray, channels_last: bool):
    """A function of no argument: PyTorch's forward + backward of the layer ``layer`` (its
    weights), on NHWC x and dout given as NCHW tensors; it returns (y, dx, dW, db)."""
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    dt = torch.from_numpy(dout).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    w = torch_weight(layer.params["W"]).contiguous(memory_format=fmt)
    b = torch.from_numpy(layer.params["b"].copy())
    for tensor in (xt, w, b):
        tensor.requires_grad_(True)

    def step():
        xt.grad = w.grad = b.grad = None
        if kind == "conv":
            y = F.conv2d(xt, w, b, stride=STRIDE, padding=PADDING)
        else:
            y = F.conv_transpose2d(xt, w, b, stride=STRIDE, padding=PADDING,
                                   output_padding=OUTPUT_PADDING)
        y.backward(dt)
        return y, xt.grad, w.grad, b.grad

    return step


def relative_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_layer(kind, layer, x, dout, torch_step) -> float:
    """The largest relative error of npnet's y, dL/dx, dL/dW, dL/db against PyTorch's."""
    y = layer.forward(x)
    dx = layer.backward(dout)
    yt, dxt, dwt, dbt = (t.detach().numpy() for t in torch_step())
    errors = [relative_error(y, yt.transpose(0, 2, 3, 1)),
              relative_error(layer.grads["W"], dwt.transpose(2, 3, 1, 0)),
              relative_error(layer.grads["b"], dbt)]
    if dx is not None:
        errors.append(relative_error(dx, dxt.transpose(0, 2, 3, 1)))
    return max(errors)


def bench_layers(args, with_torch: bool, log) -> list[dict]:
    """Table 1: every conv shape, all variants in alternating blocks."""
    rows = []
    for label, kind, c_in, c_out, side in SHAPES:
        layer = npnet_layer(kind, c_in, c_out)
        out_side = layer.output_shape(side, side)[0]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, side, side, c_in), dtype=np.float32)
        dout = rng.standard_normal((BATCH, out_side, out_side, c_out), dtype=np.float32)

        def npnet_step(layer=layer, x=x, dout=dout):
            layer.forward(x)
            return layer.backward(dout)

        runners = {CORE: npnet_step}
        fast = fast_layer(kind, c_in, c_out)
        row = {"label": label, "fast_class": type(fast).__name__ if fast else None}
        if fast is not None:
            for key in ("W", "b"):
                fast.params[key][...] = layer.params[key]

            def fast_step(layer=fast, x=x, dout=dout):
                layer.forward(x)
                return layer.backward(dout)

            runners[FAST] = fast_step
            fast_dx = fast_step()
            if fast_dx is None:
                log(f"  note: {type(fast).__name__}.backward returned None (no dL/dx) for {label}")
        if with_torch:
            runners[TORCH] = torch_layer_step(kind, layer, x, dout, channels_last=False)
            runners[TORCH_CL] = torch_layer_step(kind, layer, x, dout, channels_last=True)
            row["check"] = {key: check_layer(kind, candidate, x, dout, runners[TORCH])
                            for key, candidate in ((CORE, layer), (FAST, fast))
                            if candidate is not None}
            row["check"]["channels_last"] = check_layer(kind, layer, x, dout, runners[TORCH_CL])
            log(f"  {label}: largest relative error of y, dx, dW, db against PyTorch: "
                + ", ".join(f"{key} {err:.1e}" for key, err in row["check"].items()))
        row["seconds"] = measure(runners, args.repeats, args.layer_block, args.warmup)
        rows.append(row)
    return rows


def layer_table(rows: list[dict], with_torch: bool) -> str:
    keys = [k for k in (CORE, FAST, TORCH, TORCH_CL) if k in rows[0]["seconds"]]
    headers = ["layer, batch 128 (fwd + bwd)"] + [f"{k} ms" for k in keys]
    pairs = []
    if with_torch:
        pairs = [(n, d) for n in (CORE, FAST) if n in keys for d in (TORCH, TORCH_CL)]
        pairs.append((TORCH_CL, TORCH))
        headers += [f"{short(n)} / {short(d)}" for n, d in pairs]
    if FAST in keys:
        pairs.append((FAST, CORE))
        headers.append("fast / core")
    table = []
    for row in rows:
        s = row["seconds"]
        cells = [row["label"]] + [median_range(s[k], 1e3) for k in keys]
        # speed ratio: the other's time over this one's
        cells += [median_range(per_repeat_ratio(s[d], s[n])) for n, d in pairs]
        table.append(cells)
    return markdown(headers, table)


# --------------------------------------------------------------------------------------------
# Whole models: npnet and the same network in PyTorch


def npnet_model(name: str):
    model = (DenoisingAutoencoder(arch="conv", rng=0) if name == "dae"
             else VAE(arch="conv", rng=0))
    return model, Adam(model.params, lr=1e-3)


def torch_model(name: str, channels_last: bool = False):
    """(encoder, decoder, loss of (x, noise)) of the conv DAE or conv VAE in PyTorch, NCHW.

    The noise is the DAE's standard normal draw (N, 784) or the VAE's eps (N, 20); None
    draws it."""
    import torch
    from torch import nn

    code = 16 if name == "dae" else 2 * 20
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, KERNEL, STRIDE, PADDING), nn.ReLU(),
        nn.Conv2d(32, 64, KERNEL, STRIDE, PADDING), nn.ReLU(),
        nn.Flatten(), nn.Linear(math.prod(FEATURES), code),
    )
    decoder = nn.Sequential(
        nn.Linear(16 if name == "dae" else 20, math.prod(FEATURES)), nn.ReLU(),
        nn.Unflatten(1, (FEATURES[2], FEATURES[0], FEATURES[1])),
        nn.ConvTranspose2d(64, 32, KERNEL, STRIDE, PADDING, output_padding=OUTPUT_PADDING),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 1, KERNEL, STRIDE, PADDING, output_padding=OUTPUT_PADDING),
        nn.Flatten(),
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        encoder.to(memory_format=fmt)
        decoder.to(memory_format=fmt)

    def images(x):
        return x.view(-1, 1, 28, 28).contiguous(memory_format=fmt)

    if name == "dae":
        def loss_of(x, noise=None):
            noise = torch.randn_like(x) if noise is None else noise
            noisy = (x + 0.3 * noise).clamp_(0.0, 1.0)
            out = torch.sigmoid(decoder(encoder(images(noisy))))
            return nn.functional.mse_loss(out, x, reduction="sum") / x.shape[0]
    else:
        def loss_of(x, noise=None):
            mu, logvar = encoder(images(x)).chunk(2, dim=1)
            noise = torch.randn_like(mu) if noise is None else noise
            z = mu + torch.exp(0.5 * logvar) * noise
            recon = nn.functional.binary_cross_entropy_with_logits(
                decoder(z), x, reduction="sum") / x.shape[0]
            kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp()) / x.shape[0]
            return recon + kl

    return encoder, decoder, loss_of


def torch_params_from(model, encoder, decoder) -> list:
    """Copy npnet ``model``'s weights into the PyTorch encoder and decoder; returns, for every
    layer with weights, (npnet layer, PyTorch module, a function that maps PyTorch's gradient
    of (weight, bias) back to npnet's (W, b))."""
    import torch

    h, w, c = FEATURES
    pairs = []
    npnet_layers = [layer for layer in [*model.encoder.layers, *model.decoder.layers]
                    if layer.params]
    torch_layers = [m for m in [*encoder, *decoder] if list(m.parameters())]
    encoder_layers = {id(layer) for layer in model.encoder.layers}
    for layer, module in zip(npnet_layers, torch_layers, strict=True):
        W, b = layer.params["W"], layer.params["b"]
        if isinstance(layer, Conv2D | ConvTranspose2D):
            weight, bias = W.transpose(3, 2, 0, 1), b

            def back(gw, gb):
                return gw.transpose(2, 3, 1, 0), gb
        elif id(layer) in encoder_layers:  # Dense after Flatten: rows (h, w, c) -> (c, h, w)
            out = W.shape[1]
            weight = W.reshape(h, w, c, out).transpose(3, 2, 0, 1).reshape(out, -1)
            bias = b

            def back(gw, gb, out=out):
                return gw.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(-1, out), gb
        else:  # Dense before Reshape((7, 7, 64)): columns (h, w, c) -> (c, h, w)
            d_in = W.shape[0]
            weight = W.reshape(d_in, h, w, c).transpose(3, 1, 2, 0).reshape(-1, d_in)
            bias = b.reshape(h, w, c).transpose(2, 0, 1).ravel()

            def back(gw, gb, d_in=d_in):
                return (gw.reshape(c, h, w, d_in).transpose(3, 1, 2, 0).reshape(d_in, -1),
                        gb.reshape(c, h, w).transpose(1, 2, 0).ravel())
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            module.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
        pairs.append((layer, module, back))
    return pairs


def check_model(name: str, log) -> dict:
    """npnet's loss and gradients against the PyTorch twin's, same weights, same noise."""
    import torch

    model, _ = npnet_model(name)
    encoder, decoder, loss_of = torch_model(name)
    pairs = torch_params_from(model, encoder, decoder)
    data = np.random.default_rng(1)
    x = data.random((BATCH, IMAGE_PIXELS), dtype=np.float32)
    if name == "dae":
        noise = data.standard_normal(x.shape, dtype=np.float32)
        noisy = np.clip(x + 0.3 * noise, 0, 1)
        loss, grad = mse_loss(model.forward(noisy), x)
    else:
        noise = data.standard_normal((BATCH, 20), dtype=np.float32)
        recon, grad = bce_with_logits(model.forward(x, training=True, eps=noise), x)
        loss = recon + model.beta * model.sampler.kl
    model.backward(grad)
    loss_t = loss_of(torch.from_numpy(x), torch.from_numpy(noise))
    loss_t.backward()
    loss_error = abs(loss - loss_t.item()) / abs(loss_t.item())
    grad_error = 0.0
    for layer, module, back in pairs:
        gw, gb = back(module.weight.grad.numpy(), module.bias.grad.numpy())
        grad_error = max(grad_error, relative_error(layer.grads["W"], gw),
                         relative_error(layer.grads["b"], gb))
    log(f"  conv {name.upper()}: loss npnet {loss:.6f}, PyTorch {loss_t.item():.6f}, relative "
        f"difference {loss_error:.1e}; largest relative difference of a gradient (W or b of "
        f"a layer, in norm) {grad_error:.1e}")
    if loss_error > 1e-4 or grad_error > 1e-3:
        log(f"  WARNING: the conv {name.upper()} twins differ by more than 1e-4 (loss) or "
            "1e-3 (gradients)")
    return {"loss": loss, "torch_loss": loss_t.item(), "loss_error": loss_error,
            "grad_error": grad_error}


def npnet_steppers(name: str, threads: int, log) -> dict:
    """The core's step and the fast path's step, and whether their first losses agree."""
    import npnet.fast

    x = np.random.default_rng(1).random((BATCH, IMAGE_PIXELS), dtype=np.float32)
    core, core_opt = npnet_model(name)
    fast_model, fast_opt = npnet_model(name)
    trainer = npnet.fast.enable(fast_model, fast_opt, blas_threads=threads,
                                log=lambda _: None)
    core_rng, fast_rng = np.random.default_rng(2), np.random.default_rng(2)
    first_core = core.train_step(x, core_rng)["loss"]
    first_fast = trainer.train_step(x, fast_rng)["loss"]
    core_opt.step(core.grads)
    fast_opt.step(trainer.grads)
    classes = sorted({type(layer).__name__ for layer in npnet.fast._layers(fast_model)
                      if layer.params})
    log(f"  conv {name.upper()}: fast path layers {', '.join(classes)}; first loss core "
        f"{first_core!r}, fast path {first_fast!r}"
        + (" (the same bits)" if first_core == first_fast else " (NOT the same bits)"))

    def core_step():
        core.train_step(x, core_rng)
        core_opt.step(core.grads)

    def fast_step():
        trainer.train_step(x, fast_rng)
        fast_opt.step(trainer.grads)

    return {CORE: core_step, FAST: fast_step, "same_bits": first_core == first_fast,
            "fast_classes": classes}


def torch_stepper(name: str, channels_last: bool):
    import torch

    model, _ = npnet_model(name)
    encoder, decoder, loss_of = torch_model(name, channels_last)
    torch_params_from(model, encoder, decoder)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    x = torch.from_numpy(np.random.default_rng(1).random((BATCH, IMAGE_PIXELS),
                                                         dtype=np.float32))

    def step():
        optimizer.zero_grad()
        loss_of(x).backward()
        optimizer.step()

    return step


def bench_models(args, with_torch: bool, log) -> list[dict]:
    rows = []
    for name in ("dae", "vae"):
        steppers = npnet_steppers(name, args.threads, log)
        runners = {CORE: steppers[CORE], FAST: steppers[FAST]}
        if with_torch:
            runners[TORCH] = torch_stepper(name, channels_last=False)
            runners[TORCH_CL] = torch_stepper(name, channels_last=True)
        seconds = measure(runners, args.repeats, args.model_block, args.warmup)
        rows.append({"model": name, "seconds": seconds, "same_bits": steppers["same_bits"],
                     "fast_classes": steppers["fast_classes"]})
    return rows


def model_table(rows: list[dict], with_torch: bool) -> str:
    keys = [k for k in (CORE, FAST, TORCH, TORCH_CL) if k in rows[0]["seconds"]]
    headers = ["step (Adam), batch 128"] + [f"{k} samples/s" for k in keys]
    pairs = [(FAST, CORE)]
    if with_torch:
        pairs = [(n, d) for n in (CORE, FAST) for d in (TORCH, TORCH_CL)] + [(FAST, CORE)]
    headers += [f"{short(n)} / {short(d)}" for n, d in pairs]
    table = []
    for row in rows:
        s = row["seconds"]
        label = {"dae": "conv DAE", "vae": "conv VAE"}[row["model"]]
        cells = [label] + [
            f"{BATCH / statistics.median(s[k]):,.0f} [{BATCH / max(s[k]):,.0f}-"
            f"{BATCH / min(s[k]):,.0f}]" for k in keys]
        cells += [median_range(per_repeat_ratio(s[d], s[n])) for n, d in pairs]
        table.append(cells)
    return markdown(headers, table)


# --------------------------------------------------------------------------------------------
# Where the time goes: the conv DAE's layers, and the copies against the products


@contextlib.contextmanager
def instrumented(model, optimizer, times: dict, prefix: str):
    """Time every layer's forward and backward, the noise, the loss and Adam, in place."""

    def timed(function, key):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            times[key].append(time.perf_counter() - started)
            return result
        return wrapper

    patched = []
    for layer in [*model.encoder.layers, *model.decoder.layers]:
        # the fast path's classes (FastDense, ...) on the core class's row
        label = f"{layer.name} {type(layer).__name__.removeprefix('Fast')}"
        for method in ("forward", "backward"):
            setattr(layer, method, timed(getattr(layer, method), (prefix, label, method)))
            patched.append((layer, method))
    model.corrupt = timed(model.corrupt, (prefix, "noise (corrupt)", "total"))
    optimizer.step = timed(optimizer.step, (prefix, "Adam step", "total"))
    patched += [(model, "corrupt"), (optimizer, "step")]
    loss = npnet.autoencoder.mse_loss
    npnet.autoencoder.mse_loss = timed(loss, (prefix, "loss (MSE) and its gradient", "total"))
    try:
        yield
    finally:
        npnet.autoencoder.mse_loss = loss
        for obj, method in patched:
            delattr(obj, method)


def breakdown(args, log) -> dict:
    """Table 3: the conv DAE step, core and fast path, timed part by part."""
    import npnet.fast

    x = np.random.default_rng(1).random((BATCH, IMAGE_PIXELS), dtype=np.float32)
    variants = {}
    core, core_opt = npnet_model("dae")
    variants[CORE] = (core, core, core_opt)
    fast_model, fast_opt = npnet_model("dae")
    trainer = npnet.fast.enable(fast_model, fast_opt, blas_threads=args.threads,
                                log=lambda _: None)
    variants[FAST] = (fast_model, trainer, fast_opt)
    times: dict = defaultdict(list)
    steps: dict = defaultdict(list)
    rng = np.random.default_rng(2)
    for _, trainer_, opt in variants.values():  # warm-up
        for _ in range(2):
            trainer_.train_step(x, rng)
            opt.step(trainer_.grads)
    for round_ in range(args.breakdown_rounds):
        for key, (model, trainer_, opt) in (list(variants.items()) if round_ % 2 == 0
                                            else list(variants.items())[::-1]):
            time.sleep(BLAS_SPIN_S)
            with instrumented(model, opt, times, key):
                for _ in range(args.breakdown_steps):
                    started = time.perf_counter()
                    trainer_.train_step(x, rng)
                    opt.step(trainer_.grads)
                    steps[key].append(time.perf_counter() - started)
    return {"times": times, "steps": steps}


def breakdown_table(result: dict) -> str:
    times, steps = result["times"], result["steps"]
    keys = list(steps)
    labels = list(dict.fromkeys(label for (_, label, _) in times))
    step_ms = {key: 1e3 * statistics.median(steps[key]) for key in keys}
    headers = ["part of the conv DAE step, batch 128"]
    for key in keys:
        headers += [f"{key} forward ms", f"{key} backward ms", f"{key} total ms (share)"]
    rows = []
    totals = {key: 0.0 for key in keys}
    for label in labels:
        cells = [label]
        for key in keys:
            ms = {m: 1e3 * statistics.median(times[(key, label, m)])
                  for m in ("forward", "backward", "total") if times.get((key, label, m))}
            total = sum(ms.values())
            totals[key] += total
            cells += [f"{ms['forward']:.2f}" if "forward" in ms else "",
                      f"{ms['backward']:.2f}" if "backward" in ms else "",
                      f"{total:.2f} ({100 * total / step_ms[key]:.1f}%)"]
        rows.append(cells)
    rest = ["the rest (Python, untimed work)"]
    step = ["median step"]
    for key in keys:
        other = step_ms[key] - totals[key]
        rest += ["", "", f"{other:.2f} ({100 * other / step_ms[key]:.1f}%)"]
        step += ["", "", f"{step_ms[key]:.2f} ({BATCH / step_ms[key] * 1e3:,.0f} samples/s)"]
    rows += [rest, step]
    return markdown(headers, rows)


def conv_parts(kind: str, c_in: int, c_out: int, side: int) -> dict:
    """The core layer's forward + backward taken apart (as npnet/conv.py computes it): each
    part a function of no argument on the layer's shapes, by group: "copy" (padding, im2col,
    col2im, crop, bias), "matmul" (the three products); and "layer", the whole thing."""
    layer = npnet_layer(kind, c_in, c_out)
    W, b = layer.params["W"], layer.params["b"]
    k, s, p = KERNEL, STRIDE, PADDING
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, side, side, c_in), dtype=np.float32)
    ho = layer.output_shape(side, side)[0]
    dout = rng.standard_normal((BATCH, ho, ho, c_out), dtype=np.float32)
    Wm = W.reshape(-1, W.shape[-1])  # (K, F): K = kh kw C of the Conv2D side
    parts: dict = {}
    if kind == "conv":
        # forward: pad, im2col, cols @ W + b; backward: cols^T d, sum d, d W^T, col2im, crop
        xp = _pad(x, p)
        cols = im2col(xp, k, s).reshape(-1, Wm.shape[0])
        d = dout.reshape(-1, c_out)
        prod = cols @ Wm
        dcols = (d @ Wm.T).reshape(BATCH, ho, ho, k, k, c_in)
        parts[("copy", "pad (forward)")] = lambda: _pad(x, p)
        parts[("copy", "im2col (forward)")] = lambda: im2col(xp, k, s)
        parts[("matmul", "cols @ W (forward)")] = lambda: cols @ Wm
        parts[("copy", "+ b (forward)")] = lambda: prod + b
        parts[("matmul", "cols^T @ dout (dW)")] = lambda: cols.T @ d
        parts[("copy", "sum of dout (db)")] = lambda: d.sum(axis=0)
        parts[("matmul", "dout @ W^T (dcols)")] = lambda: d @ Wm.T
        parts[("copy", "col2im (backward)")] = lambda: col2im(dcols, xp.shape[1:3], s)
        flops = 3 * 2 * cols.shape[0] * cols.shape[1] * c_out
    else:
        # ConvTranspose2D(F, C), W (kh, kw, C, F): forward u W^T, col2im, crop + b;
        # backward: pad dout, im2col, dcols^T u, sum dout, dcols W
        u = x.reshape(-1, c_in)
        hp = ho + 2 * p
        cols = (u @ Wm.T).reshape(BATCH, side, side, k, k, c_out)
        yp = col2im(cols, (hp, hp), s)
        dp = _pad(dout, p)
        dcols = im2col(dp, k, s).reshape(u.shape[0], -1)
        parts[("matmul", "u @ W^T (forward)")] = lambda: u @ Wm.T
        parts[("copy", "col2im (forward)")] = lambda: col2im(cols, (hp, hp), s)
        parts[("copy", "crop + b (forward)")] = lambda: _crop(yp, p) + b
        parts[("copy", "pad (backward)")] = lambda: _pad(dout, p)
        parts[("copy", "im2col (backward)")] = lambda: im2col(dp, k, s)
        parts[("matmul", "dcols^T @ u (dW)")] = lambda: dcols.T @ u
        parts[("copy", "sum of dout (db)")] = lambda: dout.sum(axis=(0, 1, 2))
        parts[("matmul", "dcols @ W (du)")] = lambda: dcols @ Wm
        flops = 3 * 2 * u.shape[0] * c_in * Wm.shape[0]

    def whole():
        layer.forward(x)
        layer.backward(dout)

    parts[("layer", "the layer's forward + backward")] = whole
    return {"parts": parts, "flops": flops}


def copies_and_products(args, log) -> list[dict]:
    rows = []
    for label, kind, c_in, c_out, side in SHAPES:
        taken = conv_parts(kind, c_in, c_out, side)
        seconds = measure(taken["parts"], args.parts_repeats, args.parts_block, args.warmup / 4,
                          pause_s=0.02)
        rows.append({"label": label, "seconds": seconds, "flops": taken["flops"]})
    return rows


def parts_table(rows: list[dict]) -> tuple[str, str]:
    """A summary table per layer and the detail of every part."""
    summary, detail = [], []
    for row in rows:
        med = {key: 1e3 * statistics.median(v) for key, v in row["seconds"].items()}
        copy = sum(v for (group, _), v in med.items() if group == "copy")
        matmul = sum(v for (group, _), v in med.items() if group == "matmul")
        whole = med[("layer", "the layer's forward + backward")]
        summary.append([row["label"], f"{copy:.2f}", f"{matmul:.2f}",
                        f"{row['flops'] / matmul / 1e6:.0f}", f"{copy + matmul:.2f}",
                        f"{whole:.2f}", f"{100 * copy / (copy + matmul):.0f}%"])
        for (group, part), v in med.items():
            if group != "layer":
                detail.append([row["label"], part, group, f"{v:.3f}",
                               f"{100 * v / (copy + matmul):.0f}%"])
    return (
        markdown(["core layer, batch 128", "copies and elementwise ms", "3 matmuls ms",
                  "matmul GFLOP/s", "sum of the parts ms", "whole layer fwd + bwd ms",
                  "copies' share of the parts"], summary),
        markdown(["core layer", "part", "kind", "ms", "share of the parts"], detail),
    )


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    from npnet.fast.parallel import available_cores

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--threads", type=int, default=available_cores(),
                        help="BLAS threads for npnet (threadpoolctl; blas_threads= for the "
                        "fast path) and torch.set_num_threads for PyTorch")
    parser.add_argument("--repeats", type=int, default=7,
                        help="repeats of the layer and model blocks")
    parser.add_argument("--layer-block", type=float, default=0.25,
                        help="seconds per block of layer forward + backward passes")
    parser.add_argument("--model-block", type=float, default=1.0,
                        help="seconds per block of training steps")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds of warm-up per variant (which calibrates its block)")
    parser.add_argument("--breakdown-rounds", type=int, default=4,
                        help="rounds of blocks (core, fast path) in the step breakdown")
    parser.add_argument("--breakdown-steps", type=int, default=8,
                        help="steps per block in the step breakdown")
    parser.add_argument("--parts-repeats", type=int, default=5,
                        help="repeats of the copies-or-products blocks")
    parser.add_argument("--parts-block", type=float, default=0.08,
                        help="seconds per block of one part")
    parser.add_argument("--quick", action="store_true",
                        help="2 repeats of short blocks everywhere (a rough look)")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip PyTorch even if it is importable")
    parser.add_argument("--only", nargs="+", choices=["layers", "models", "breakdown", "parts"],
                        default=["layers", "models", "breakdown", "parts"],
                        help="which tables to measure")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.layer_block, args.model_block, args.warmup = 2, 0.08, 0.25, 0.15
        args.breakdown_rounds, args.breakdown_steps = 2, 2
        args.parts_repeats, args.parts_block = 2, 0.03
    if min(args.threads, args.repeats, args.breakdown_rounds, args.breakdown_steps,
           args.parts_repeats) < 1:
        parser.error("--threads, --repeats, --breakdown-* and --parts-repeats must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)

    def log(text: str = "") -> None:
        print(text, flush=True)

    from threadpoolctl import threadpool_limits

    torch = import_torch(not args.no_torch, log)
    with_torch = torch is not None
    # The same count for NumPy's BLAS (all BLAS libraries loaded) and PyTorch's threads.
    limits = threadpool_limits(limits=args.threads, user_api="blas")
    if with_torch:
        torch.set_num_threads(args.threads)
    log(machine_report(torch, f", oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}"
                       if with_torch else ""))
    log(load_report("at the start"))
    from npnet.fast.memory import keep_freed_memory

    keep_freed_memory()  # as npnet.fast.enable does; process-wide, so for every variant
    log(f"repeats {args.repeats}; blocks of {args.layer_block:g} s (layers), "
        f"{args.model_block:g} s (models), in rotating order, {BLAS_SPIN_S:g} s pause before "
        "each; times: median [min-max] over repeats; ratios: median [min-max] of the "
        "per-repeat ratios of speed (PyTorch's ms over npnet's: above 1, npnet is faster)\n")

    if with_torch:
        log("checks: the PyTorch twins compute what npnet computes (same weights, same noise)")
        for name in ("dae", "vae"):
            check_model(name, log)
    if "layers" in args.only:
        log("\n## Layers: forward + backward (dL/dx, dL/dW, dL/db), batch 128, float32\n")
        rows = bench_layers(args, with_torch, log)
        fast_classes = {row["fast_class"] for row in rows}
        log("fast path's conv layer classes: "
            + (", ".join(sorted(c for c in fast_classes if c)) or
               "none (npnet.fast.enable keeps the core's Conv2D and ConvTranspose2D)"))
        log()
        log(layer_table(rows, with_torch))
    if "models" in args.only:
        log("\n## Models: training steps (forward, backward, Adam), batch 128\n")
        rows = bench_models(args, with_torch, log)
        log()
        log(model_table(rows, with_torch))
    if "breakdown" in args.only:
        log(f"\n## Where the conv DAE step's time goes ({args.breakdown_rounds} rounds of "
            f"{args.breakdown_steps} steps per variant; medians over steps)\n")
        log(breakdown_table(breakdown(args, log)))
    if "parts" in args.only:
        log("\n## The core's convolutions: copies and elementwise passes against the matrix "
            "products (each part timed alone; medians)\n")
        summary, detail = parts_table(copies_and_products(args, log))
        log(summary)
        log()
        log(detail)
    log("\n" + load_report("at the end"))
    limits.restore_original_limits()


if __name__ == "__main__":
    main()
