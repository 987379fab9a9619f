"""Draw the diagrams and computed pictures that the chapters show, from npnet's own functions.

    python docs/diagrams.py                  # writes docs/figures/diagram_*.png
    python docs/make_figures.py --diagrams-only        # the same, from the figures script

Diagrams of the computation, in the style of CS231n's circuits and d2l's computational
graphs, forward values in black from left to right and gradients in colour from right to
left:

* ``diagram_sequential.png`` (chapter 2): a ``Sequential`` of Dense, ReLU, Dense, Sigmoid
  and a loss, what each layer caches in ``forward``, and what its ``backward`` fills in
  ``grads`` and returns.
* ``diagram_vae.png`` (chapter 7): encoder, ``Reparameterize`` (with its noise eps as a side
  input), decoder and BCE, the KL term computed from h, and the two paths by which the
  gradient reaches the encoder, meeting at dL/dh.
* ``diagram_dense_shapes.png`` (chapter 2): the three products of ``Dense.backward`` as
  matrix blocks with their shapes, one entry of each result traced to the row and column
  it is made of.

Pictures whose every number npnet computes (each drawn number or line carries a gid, by
which ``tests/test_diagrams.py`` reads back what was drawn and compares it with npnet):

* ``diagram_activations.png`` (chapter 3): sigmoid, tanh, ReLU and leaky ReLU and their
  derivatives, from the layers' ``forward`` and ``backward``.
* ``diagram_optimizer_paths.png`` (chapter 5): the paths of npnet's SGD, momentum, Nesterov
  and Adam on an elongated quadratic valley.
* ``diagram_im2col.png``, ``diagram_conv_sliding.png``, ``diagram_col2im.png``,
  ``diagram_conv_transpose.png`` (chapter 9): im2col's patches as rows, one kernel at every
  position, col2im's 1/2/4 overlap counts, the transposed convolution painting patches and
  its checkerboard; from ``npnet.patches`` and ``npnet.conv``.
* ``diagram_importance_samples.png``, ``diagram_importance_bias.png``,
  ``diagram_importance_weights.png`` (chapter 10): a VAE with a 2-D latent, trained for a
  few seconds on 500 binarised MNIST digits (so these three need the MNIST files, found as
  ``npnet.data.load_mnist`` finds them); for two binarised test digits the prior, q(z|x) and
  the true posterior by a grid over z, with importance samples; the estimate of log p(x)
  against k beside the grid's value and the chapter's 1/k law; the normalised weights.

The pictures are drawn with ``matplotlib.figure.Figure`` and the Agg canvas (no pyplot, no
display), in matplotlib's default style whatever the local matplotlibrc says, and written by
:func:`write_png` from the canvas's pixels: 8-bit gray where a picture has no colour, else a
palette of its 256 most frequent colours (:func:`fewer_colours`), 15 to 55 kB each, with no
timestamp, so the same matplotlib gives the same bytes on every run (chapter 10's numbers are
computed under one BLAS thread, so that they too are the same on every run).
``tests/test_diagrams.py`` redraws them and compares with the committed files, so a diagram
that goes stale fails the test suite; each file records the matplotlib version that drew it.
"""

from __future__ import annotations

import functools
import struct
import sys
import zlib
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import patches
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURES_DIR = Path(__file__).resolve().parent / "figures"
DPI = 100  # one unit of the drawing coordinates below is one pixel

INK = "#222222"  # forward values, boxes, text
GRAY = "#888888"  # secondary lines and notes
FILL = "#f0f0f0"  # box fill
BLUE = "#0072B2"  # gradients (through z, in the VAE)
GREEN = "#009E73"  # Okabe-Ito too: the third and fourth patches of chapter 9's diagrams
PURPLE = "#A23E85"  # Okabe-Ito's reddish purple (#CC79A7), darker, for text
ORANGE = "#D55E00"  # the KL term's gradient (Okabe-Ito: both accents stay apart for most
#                      colour-blind readers, and the KL path is also dashed)
FONT = 11  # points; at 100 dpi about 15 px per line, readable at GitHub's page width

__all__ = ["make_diagrams", "write_png", "fewer_colours", "png_size", "DIAGRAMS", "DATA_DIAGRAMS"]


def write_png(path: Path, pixels: np.ndarray, text: dict[str, str] | None = None) -> None:
    """Write an (H, W) gray or (H, W, 3) RGB array of values in [0, 1] as an 8-bit PNG.

    A PNG is a signature and chunks (length, type, data, CRC-32); IHDR gives the size and the
    colour type, tEXt chunks a keyword and a value each, IDAT the zlib-compressed rows, each
    prefixed by its filter type. Gray is colour type 0. An RGB image of at most 256 colours
    (a diagram: a few inks, antialiased against white) is written as colour type 3, a
    palette (PLTE) and one byte per pixel, its index; any other as type 2, three bytes per
    pixel. Filter 1 ("Sub") stores each byte minus the same channel of the pixel to its left,
    which compresses flat backgrounds well; indices are stored as they are (filter 0).
    """
    pixels = np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    height, width = pixels.shape[:2]
    palette = b""
    if pixels.ndim == 2:
        colour_type, channels, row_filter = 0, 1, 1
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        keys, indices = np.unique(colour_keys(pixels), return_inverse=True)
        if len(keys) <= 256:
            colour_type, channels, row_filter = 3, 1, 0
            palette = keys_to_colours(keys).tobytes()
            pixels = indices.reshape(height, width).astype(np.uint8)
        else:
            colour_type, channels, row_filter = 2, 3, 1
    else:
        raise ValueError(f"write_png takes (H, W) gray or (H, W, 3) RGB, got {pixels.shape}")
    flat = pixels.reshape(height, width * channels)
    if row_filter == 1:
        left = np.zeros_like(flat)
        left[:, channels:] = flat[:, :-channels]
        flat = flat - left  # uint8 wraps mod 256
    rows = np.hstack([np.full((height, 1), row_filter, np.uint8), flat])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)  # no interlace
    texts = b"".join(chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
                     for key, value in (text or {}).items())
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + texts
                           + (chunk(b"PLTE", palette) if palette else b"")
                           + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
                           + chunk(b"IEND", b""))


def colour_keys(rgb: np.ndarray) -> np.ndarray:
    """Each pixel of an (..., 3) uint8 image as one integer 0xRRGGBB, flattened (a 1-D
    np.unique over these is much faster than over rows of three)."""
    rgb = rgb.reshape(-1, 3).astype(np.uint32)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def keys_to_colours(keys: np.ndarray) -> np.ndarray:
    """The (K, 3) uint8 colours of K keys made by :func:`colour_keys`."""
    return np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1).astype(np.uint8)


def fewer_colours(rgb: np.ndarray, count: int = 256) -> np.ndarray:
    """An (H, W, 3) uint8 image with at most ``count`` colours: the most frequent ones kept,
    each other one replaced by the nearest of them (the rare shades where antialiased edges
    of two inks meet), so that :func:`write_png` can store it as a palette image."""
    keys, indices, counts = np.unique(colour_keys(rgb), return_inverse=True,
                                      return_counts=True)
    if len(keys) <= count:
        return rgb
    colours = keys_to_colours(keys)
    kept = colours[np.argsort(-counts, kind="stable")[:count]].astype(np.int32)
    distance = ((colours[:, None, :].astype(np.int32) - kept[None]) ** 2).sum(axis=2)
    return kept[distance.argmin(axis=1)].astype(np.uint8)[indices.ravel()].reshape(rgb.shape)


def software() -> str:
    """What each diagram records as its tEXt "Software": the drawing depends on it."""
    return f"docs/diagrams.py, matplotlib {matplotlib.__version__}"


# ----------------------------------------------------------------------------------------
# Drawing helpers. Every diagram is one Axes over the whole figure, in pixel coordinates
# with y pointing down (like an image), so positions below read as pixels from the top left.


def canvas(width: int, height: int):
    """A white Figure of width x height pixels and its one Axes, in pixel coordinates."""
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    return fig, ax


def box(ax, cx, cy, w, h, lines, *, size=FONT):
    """A rounded gray box centred at (cx, cy), with lines of text centred in it."""
    ax.add_patch(patches.FancyBboxPatch(
        (cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=6",
        facecolor=FILL, edgecolor=INK, linewidth=1.2))
    ax.text(cx, cy, "\n".join(lines), ha="center", va="center", fontsize=size, color=INK,
            linespacing=1.5)


def arrow(ax, points, color=INK, *, dashed=False, width=1.5):
    """A polyline through points (x, y), with an arrow head at the last point."""
    xs, ys = zip(*points, strict=True)
    style = (0, (5, 3)) if dashed else "-"
    if len(points) > 2:
        ax.plot(xs[:-1], ys[:-1], color=color, linewidth=width, linestyle=style,
                solid_capstyle="butt")
    ax.add_patch(patches.FancyArrowPatch(
        points[-2], points[-1], arrowstyle="-|>", mutation_scale=14,
        color=color, linewidth=width, linestyle=style, shrinkA=0, shrinkB=0,
        joinstyle="miter", capstyle="butt"))


def label(ax, x, y, text, *, color=INK, size=FONT, ha="center", va="center", **kwargs):
    """Text at (x, y), centred unless told otherwise; mathtext ($...$) allowed."""
    ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=color, **kwargs)


def legend(ax, x, y, entries, size=FONT - 1):
    """Short sample arrows with their meaning, left to right from (x, y); entries are
    (colour, dashed, text). Each starts after the text before it, measured in pixels."""
    renderer = ax.figure.canvas.get_renderer()
    for color, dashed, text in entries:
        arrow(ax, [(x, y), (x + 34, y)], color, dashed=dashed)
        drawn = ax.text(x + 42, y, text, ha="left", va="center", fontsize=size, color=INK)
        x = drawn.get_window_extent(renderer).x1 + 22  # display pixels = drawing units


# ----------------------------------------------------------------------------------------
# The diagrams.


def sequential() -> Figure:
    """x -> Dense -> ReLU -> Dense -> Sigmoid -> loss: caches, grads and returned gradients."""
    fig, ax = canvas(900, 445)
    label(ax, 450, 20, "A Sequential: forward left to right, backward right to left",
          size=FONT + 2, weight="bold")

    cy, bw, bh = 95, 132, 56  # the row of layers: centre line, box width and height
    fy, by = cy - 13, cy + 13  # the forward arrows run above the middle, backward below
    centres = [150, 328, 506, 684]
    names = [("Dense $(W_1, b_1)$", "$y_1 = x W_1 + b_1$"), ("ReLU", r"$y_2 = \max(0, y_1)$"),
             ("Dense $(W_2, b_2)$", "$y_3 = y_2 W_2 + b_2$"), ("Sigmoid", r"$y_4 = \sigma(y_3)$")]
    for cx, lines in zip(centres, names, strict=True):
        box(ax, cx, cy, bw, bh, lines)
    loss_cx, loss_w = 843, 94
    box(ax, loss_cx, cy, loss_w, bh, ["loss", "$L(y_4, x)$"])
    label(ax, 22, cy, "$x$", size=FONT + 3)

    # Arrows between consecutive nodes: value names above, gradient names below.
    lefts = [36, *[c + bw / 2 for c in centres]]
    rights = [c - bw / 2 for c in centres] + [loss_cx - loss_w / 2]
    values = ["$x$", "$y_1$", "$y_2$", "$y_3$", "$y_4$"]
    grads = [r"$\partial L/\partial x$", r"$\partial L/\partial y_1$",
             r"$\partial L/\partial y_2$", r"$\partial L/\partial y_3$",
             r"$\partial L/\partial y_4$"]
    for x0, x1, value, grad in zip(lefts, rights, values, grads, strict=True):
        arrow(ax, [(x0 + 2, fy), (x1 - 2, fy)], INK)
        arrow(ax, [(x1 - 2, by), (x0 + 2, by)], BLUE)
        mid = (x0 + x1) / 2
        label(ax, mid, fy - 11, value, size=FONT)
        label(ax, mid, by + 14, grad, color=BLUE, size=FONT - 1)

    # Under each layer, its contract in its own names: input x, output y, dout = dL/dy.
    cache_y = cy + bh / 2 + 44
    label(ax, 22, cache_y, "cache:", color=GRAY, ha="left", size=FONT - 1, style="italic")
    label(ax, 22, cache_y + 36, "backward(dout) fills grads and returns the dout of the "
          "layer to its left:", color=GRAY, ha="left", size=FONT - 1, style="italic")
    dense = (["$x$"],
             [r'grads["W"] $= x^\top\,$dout', r'grads["b"] $= \Sigma_n\,$dout$_n$',
              r"return dout $W^\top$"])
    cards = [dense,
             ([r"mask $x > 0$"], [r"return dout $\odot\, [x > 0]$"]),
             dense,
             (["$y$"], [r"return dout $\odot\, y\,(1-y)$"])]
    for cx, (cache, backward) in zip(centres, cards, strict=True):
        ax.plot([cx, cx], [cy + bh / 2, cache_y - 10], color=GRAY, linewidth=0.8,
                linestyle=(0, (2, 2)))
        label(ax, cx, cache_y, "\n".join(cache), size=FONT)
        label(ax, cx, cache_y + 56, "\n".join(backward), color=BLUE, size=FONT - 1, va="top",
              linespacing=1.6)
    ax.plot([loss_cx, loss_cx], [cy + bh / 2, cache_y - 10], color=GRAY, linewidth=0.8,
            linestyle=(0, (2, 2)))
    label(ax, loss_cx, cache_y, "(a function)", color=GRAY, size=FONT - 1)
    label(ax, loss_cx, cache_y + 56, "returns $L$\nand " + r"$\partial L/\partial y$",
          color=BLUE, size=FONT - 1, va="top", linespacing=1.6)

    notes = [
        "Each card speaks in the layer's own names: x its input, y its output, "
        r"dout $= \partial L/\partial y$ from the right",
        "(so ReLU's x is $y_1$, the second Dense's x is $y_2$). "
        "Sequential.backward is the loop",
    ]
    label(ax, 22, 330, "\n".join(notes), ha="left", va="top", size=FONT - 1,
          linespacing=1.6)
    label(ax, 40, 386, "for layer in reversed(self.layers): dout = layer.backward(dout)",
          ha="left", va="center", size=FONT - 1, family="monospace")
    label(ax, 560, 386, r"(its last dout is $\partial L/\partial x$)", ha="left",
          va="center", size=FONT - 1)
    legend(ax, 22, 425, [(INK, False, "forward: a value, its name above"),
                         (BLUE, False, "backward: the gradient of L, its name below")])
    return fig


def vae() -> Figure:
    """The VAE: encoder, Reparameterize with eps, decoder, BCE, KL; two gradient paths."""
    fig, ax = canvas(900, 520)
    label(ax, 450, 20, "The VAE: two paths of the gradient into the encoder",
          size=FONT + 2, weight="bold")

    cy, bh = 130, 56
    fy, by = cy - 13, cy + 13
    enc_cx, enc_w = 118, 104
    rep_cx, rep_w = 540, 150
    dec_cx, dec_w = 706, 90
    bce_cx, bce_w = 838, 104
    kl_cx, kl_y, kl_w, kl_h = 300, 238, 200, 52
    merge = (300, 352)  # where the two gradients meet: dL/dh

    box(ax, enc_cx, cy, enc_w, bh, ["encoder", "(Sequential)"])
    box(ax, rep_cx, cy, rep_w, bh, ["Reparameterize", r"$z = \mu + \sigma \odot \varepsilon$"])
    box(ax, dec_cx, cy, dec_w, bh, ["decoder", "logits $a$"])
    box(ax, bce_cx, cy, bce_w, bh, ["BCE$(a, x)$", "$= R$"])
    box(ax, kl_cx, kl_y, kl_w, kl_h, [r"KL$_n(\mu, \mathrm{logvar})$",
                                      r"$= \frac{1}{2}\,\Sigma_j\,(\mu^2 + \sigma^2 - 1"
                                      r" - \mathrm{logvar})$"], size=FONT - 1)
    label(ax, 20, cy, "$x$", size=FONT + 3)

    # Forward: x -> encoder -> h -> Reparameterize -> z -> decoder -> a -> BCE; h -> KL.
    arrow(ax, [(34, fy), (enc_cx - enc_w / 2 - 2, fy)])
    h_end = rep_cx - rep_w / 2 - 2
    arrow(ax, [(enc_cx + enc_w / 2 + 2, fy), (h_end, fy)])
    h_mid = (enc_cx + enc_w / 2 + kl_cx) / 2  # h's name above its arrow, its shape below
    label(ax, h_mid, fy - 14, r"$h = [\mu, \mathrm{logvar}]$")
    label(ax, h_mid, fy + 14, "$(N, 2J)$", color=GRAY, size=FONT - 1)
    arrow(ax, [(kl_cx, fy), (kl_cx, kl_y - kl_h / 2 - 2)])
    ax.plot([kl_cx], [fy], "o", color=INK, markersize=4)
    for x0, x1, name in ((rep_cx + rep_w / 2, dec_cx - dec_w / 2, "$z$"),
                         (dec_cx + dec_w / 2, bce_cx - bce_w / 2, "$a$")):
        arrow(ax, [(x0 + 2, fy), (x1 - 2, fy)])
        label(ax, (x0 + x1) / 2, fy - 12, name)
    # x is also the target of the BCE: a line over the top.
    arrow(ax, [(20, cy - 14), (20, 48), (bce_cx, 48), (bce_cx, cy - bh / 2 - 2)], GRAY,
          width=1.2)
    label(ax, bce_cx - 8, 60, "$x$ is also the target", color=GRAY, size=FONT - 1,
          ha="right")
    # eps: a side input, drawn in forward, a constant of the backward pass.
    arrow(ax, [(rep_cx - 30, 66), (rep_cx - 30, cy - bh / 2 - 2)], GRAY, dashed=True,
          width=1.2)
    label(ax, rep_cx - 38, 72, r"$\varepsilon \sim \mathcal{N}(0, I)$, kept in the cache:"
          "\na constant of the backward pass", ha="right", va="center", color=GRAY,
          size=FONT - 1, linespacing=1.4)

    # Backward through z (blue): BCE -> decoder -> Reparameterize -> merge.
    for x0, x1, name in ((bce_cx - bce_w / 2, dec_cx + dec_w / 2, "da"),
                         (dec_cx - dec_w / 2, rep_cx + rep_w / 2, "dz")):
        arrow(ax, [(x0 - 2, by), (x1 + 2, by)], BLUE)
        label(ax, (x0 + x1) / 2, by + 14, name, color=BLUE, size=FONT - 1)
    label(ax, bce_cx + 4, cy + bh / 2 + 8, "da $= \\partial L/\\partial a$\n"
          r"$= (\sigma(a) - x)\,/\,N$", color=BLUE, size=FONT - 1, va="top",
          linespacing=1.5)
    arrow(ax, [(rep_cx, cy + bh / 2 + 2), (rep_cx, merge[1]), (merge[0] + 12, merge[1])], BLUE)
    label(ax, rep_cx + 10, 222, "through $z$:\n"
          r"$\partial L/\partial \mu$ += dz" "\n"
          r"$\partial L/\partial\,\mathrm{logvar}$ += dz $\odot\, \sigma \odot \varepsilon\,/\,2$",
          color=BLUE, ha="left", va="center", size=FONT - 1, linespacing=1.6)

    # Backward from the KL term (orange, dashed): KL -> merge.
    arrow(ax, [(kl_cx, kl_y + kl_h / 2 + 2), (merge[0], merge[1] - 12)], ORANGE, dashed=True)
    label(ax, kl_cx + 14, 305, r"from KL, with $\partial L/\partial\,$KL$_n = \beta/N$:" "\n"
          r"$\partial L/\partial \mu$ += $(\beta/N)\, \mu$" "\n"
          r"$\partial L/\partial\,\mathrm{logvar}$ += $(\beta/N)(\sigma^2 - 1)/2$",
          color=ORANGE, ha="left", va="center", size=FONT - 1, linespacing=1.6)

    # The merge: the two contributions add, then dL/dh goes into the encoder's backward.
    ax.add_patch(patches.Circle(merge, 11, facecolor="white", edgecolor=INK, linewidth=1.4))
    label(ax, merge[0], merge[1] - 1, "+", size=FONT + 3, weight="bold")
    arrow(ax, [(merge[0] - 12, merge[1]), (enc_cx, merge[1]), (enc_cx, cy + bh / 2 + 2)], INK,
          width=2.0)
    label(ax, 132, merge[1] + 12, r"$\partial L/\partial h = "
          r"[\partial L/\partial \mu,\ \partial L/\partial\,\mathrm{logvar}]$   $(N, 2J)$",
          ha="left", va="top", size=FONT - 1)
    label(ax, enc_cx - 8, 250, "encoder\nbackward", ha="right", va="center", size=FONT - 1,
          color=GRAY, style="italic", linespacing=1.3)

    label(ax, 20, 420, "The loss is  $L = R + \\beta \\cdot \\frac{1}{N}\\,\\Sigma_n$KL$_n$: "
          "Reparameterize computes KL$_n$ too, and its backward adds both contributions.",
          ha="left", va="center", size=FONT - 1)
    legend(ax, 20, 466, [(INK, False, "forward"),
                         (BLUE, False, "gradient through $z$ (reconstruction)"),
                         (ORANGE, True, "gradient from the KL term")])
    label(ax, 20, 498, "Both meet at $\\partial L/\\partial h$ (the thick line), "
          "which the encoder's Dense layers take as their dout.", ha="left", va="center",
          size=FONT - 1)
    return fig


def dense_shapes() -> Figure:
    """The three products of Dense.backward as blocks of cells, with their shapes."""
    fig, ax = canvas(900, 550)
    label(ax, 450, 20, "Dense.backward: three products, and the dimension each one sums",
          size=FONT + 2, weight="bold")
    u = 18  # pixels per matrix entry; the example has N = 4, D_in = 6, D_out = 3
    n, d_in, d_out = 4, 6, 3
    text_x = 520  # where the explanations start

    def block(x, y, rows, cols, name, row_dim, col_dim, *, rows_hi=(), cols_hi=(), cell=None,
              fill="white", summed=""):
        """A rows x cols grid, top left at (x, y): highlighted rows, columns or one cell; the
        summed dimension ("rows" or "cols") labelled in colour. Returns its right edge."""
        ax.add_patch(patches.Rectangle((x, y), cols * u, rows * u, facecolor=fill,
                                       edgecolor="none"))
        for r in rows_hi:
            ax.add_patch(patches.Rectangle((x, y + r * u), cols * u, u, facecolor="#b3d4e8",
                                           edgecolor="none"))
        for c in cols_hi:
            ax.add_patch(patches.Rectangle((x + c * u, y), u, rows * u, facecolor="#b3d4e8",
                                           edgecolor="none"))
        if cell is not None:
            ax.add_patch(patches.Rectangle((x + cell[1] * u, y + cell[0] * u), u, u,
                                           facecolor=BLUE, edgecolor="none"))
        for r in range(1, rows):
            ax.plot([x, x + cols * u], [y + r * u] * 2, color="#c8c8c8", linewidth=0.8)
        for c in range(1, cols):
            ax.plot([x + c * u] * 2, [y, y + rows * u], color="#c8c8c8", linewidth=0.8)
        ax.add_patch(patches.Rectangle((x, y), cols * u, rows * u, facecolor="none",
                                       edgecolor=INK, linewidth=1.3))
        label(ax, x + cols * u / 2, y - 12, col_dim, size=FONT - 1,
              color=BLUE if summed == "cols" else GRAY)
        label(ax, x - 6, y + rows * u / 2, row_dim, size=FONT - 1, ha="right",
              color=BLUE if summed == "rows" else GRAY)
        label(ax, x + cols * u / 2, y + rows * u + 16, name, size=FONT)
        return x + cols * u

    def operator(x, y, text):
        if text == "dot":  # the matrix product; mathtext's \cdot is too small to see here
            ax.plot([x], [y], "o", color=INK, markersize=5)
        else:
            label(ax, x, y, text, size=FONT + 6)

    def explain(y, lines):
        label(ax, text_x, y, lines[0], ha="left", va="top", size=FONT + 1)
        label(ax, text_x, y + 26, "\n".join(lines[1:]), ha="left", va="top", size=FONT - 1,
              linespacing=1.7)

    # 1. dW = x^T dout: (D_in, N) @ (N, D_out); entry (i, j) sums over the batch n.
    y1 = 74
    mid = y1 + d_in * u / 2
    x = block(70, y1, d_in, n, r"$x^\top$", "$D_{in}$", "$N$", rows_hi=[1], summed="cols")
    operator(x + 30, mid, "dot")
    x = block(x + 66, y1, n, d_out, "dout", "$N$", "$D_{out}$", cols_hi=[2], summed="rows")
    operator(x + 30, mid, "$=$")
    block(x + 76, y1, d_in, d_out, r"$\partial L/\partial W$", "$D_{in}$", "$D_{out}$",
          cell=(1, 2), fill=FILL)
    explain(y1 - 4, [r"$\partial L/\partial W = x^\top\, \mathrm{dout}$",
                     r"$(D_{in}, N) \cdot (N, D_{out}) \to (D_{in}, D_{out})$",
                     r"entry $(i, j) = \Sigma_n\, x_{ni}\, \mathrm{dout}_{nj}$: "
                     "the batch $N$ is summed,",
                     "every example adds to the gradient of the shared $W$"])

    # 2. db = sum over the batch of dout: (N, D_out) -> (D_out,).
    y2 = 240
    x = block(70, y2, n, d_out, "dout", "$N$", "$D_{out}$", cols_hi=[2], summed="rows")
    arrow(ax, [(x + 16, y2 + n * u / 2), (x + 96, y2 + n * u / 2)], INK)
    label(ax, x + 56, y2 + n * u / 2 - 14, r"$\Sigma_n$", size=FONT, color=BLUE)
    block(x + 116, y2 + (n - 1) * u / 2, 1, d_out, r"$\partial L/\partial b$", "",
          "$D_{out}$", cell=(0, 2), fill=FILL)
    explain(y2 - 4, [r"$\partial L/\partial b = \Sigma_n\, \mathrm{dout}_{n,:}$",
                     r"$(N, D_{out}) \to (D_{out},)$:  dout.sum(axis=0)",
                     "$b$ is added to every row: its gradient sums them"])

    # 3. dx = dout W^T: (N, D_out) @ (D_out, D_in); row n of dx uses row n of dout only.
    y3 = 380
    mid = y3 + max(n, d_out) * u / 2
    x = block(70, y3, n, d_out, "dout", "$N$", "$D_{out}$", rows_hi=[3], summed="cols")
    operator(x + 30, mid, "dot")
    x = block(x + 80, y3, d_out, d_in, r"$W^\top$", "$D_{out}$", "$D_{in}$", cols_hi=[4],
              summed="rows")
    operator(x + 30, mid, "$=$")
    block(x + 76, y3, n, d_in, r"$\partial L/\partial x$", "$N$", "$D_{in}$", cell=(3, 4),
          fill=FILL)
    explain(y3 - 4, [r"$\partial L/\partial x = \mathrm{dout}\, W^\top$",
                     r"$(N, D_{out}) \cdot (D_{out}, D_{in}) \to (N, D_{in})$",
                     "the sum is over $D_{out}$, not the batch: row $n$",
                     r"of $\partial L/\partial x$ comes from row $n$ of dout only"])

    label(ax, 70, 515, "Light blue: the row and the column whose products make the dark "
          "entry. Blue label: the dimension summed over.\n"
          "The example has $N = 4$ examples, $D_{in} = 6$ and $D_{out} = 3$.",
          size=FONT - 1, color=GRAY, ha="left", linespacing=1.6)
    return fig


# ----------------------------------------------------------------------------------------
# Chapter 9: the bookkeeping of a convolution, drawn from npnet.patches and npnet.conv. Every
# number in these four diagrams is computed by npnet's own functions; each text that shows
# one carries a gid (such as "cols 2 7") by which tests/test_diagrams.py reads it back.

PATCH_COLOURS = [BLUE, ORANGE, GREEN, PURPLE]  # patch (0, 0), (0, 1), (1, 0), (1, 1)
PATCH_TINTS = ["#cce3f0", "#f6d5c3", "#c7eadf", "#f2dbe8"]  # the same, light, as fills


def cells(ax, x0, y0, values, u, *, fills=None, gid=None, size=FONT - 1, color=INK,
          fmt="{:g}", edge="#b0b0b0"):
    """A grid of cells, top left at (x0, y0), u pixels a side, one number per cell.

    ``values`` is a 2-D array (None or NaN entries are left blank), ``fills`` an array of
    the same shape of colours (or None for white). Each number's text gets the gid
    "<gid> <row> <col>". Returns (right edge, bottom edge)."""
    values = np.asarray(values, dtype=object)
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            fill = "white" if fills is None or fills[r][c] is None else fills[r][c]
            ax.add_patch(patches.Rectangle((x0 + c * u, y0 + r * u), u, u, facecolor=fill,
                                           edgecolor=edge, linewidth=0.8))
            value = values[r, c]
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            ax.text(x0 + (c + 0.5) * u, y0 + (r + 0.5) * u, fmt.format(value), ha="center",
                    va="center", fontsize=size, color=color,
                    gid=None if gid is None else f"{gid} {r} {c}")
    ax.add_patch(patches.Rectangle((x0, y0), cols * u, rows * u, facecolor="none",
                                   edgecolor=INK, linewidth=1.2))
    return x0 + cols * u, y0 + rows * u


def outline(ax, x0, y0, u, row, col, size, color, inset=0.0, width=2.2):
    """The outline of a size x size block of cells whose top-left cell is (row, col)."""
    ax.add_patch(patches.Rectangle((x0 + col * u + inset, y0 + row * u + inset),
                                   size * u - 2 * inset, size * u - 2 * inset,
                                   facecolor="none", edgecolor=color, linewidth=width))


def drawn_numbers(fig: Figure, gid: str) -> np.ndarray:
    """The numbers a diagram shows under ``gid``, read back from its texts, as a 2-D array
    (NaN where a cell shows none): what tests compare with npnet's own results."""
    found = {}
    for text in fig.findobj(lambda artist: hasattr(artist, "get_gid")):
        name = text.get_gid()
        if name and name.rsplit(" ", 2)[0] == gid:
            row, col = (int(v) for v in name.rsplit(" ", 2)[1:])
            found[row, col] = float(text.get_text().replace("\N{MINUS SIGN}", "-"))
    if not found:
        raise KeyError(f"the figure shows no numbers under {gid!r}")
    rows, cols = (max(key[i] for key in found) + 1 for i in (0, 1))
    out = np.full((rows, cols), np.nan)
    for (row, col), value in found.items():
        out[row, col] = value
    return out


def im2col_example() -> tuple[np.ndarray, np.ndarray]:
    """The im2col diagram's numbers: a 4 x 4 image whose pixels hold their own index
    (x[0, r, c, 0] = 4 r + c), and npnet's im2col of it with kappa = 3, s = 1 as an (M, P)
    = (4, 9) matrix."""
    from npnet.patches import im2col

    image = np.arange(16.0).reshape(1, 4, 4, 1)
    return image, im2col(image, 3, 1).reshape(4, 9)


def im2col_diagram() -> Figure:
    """A 4 x 4 image, its four 3 x 3 patches, and the rows of cols they become."""
    fig, ax = canvas(900, 420)
    label(ax, 450, 20, "im2col: each patch the kernel covers becomes one row of cols",
          size=FONT + 2, weight="bold")
    image, cols = im2col_example()
    u = 40
    x0, y0 = 40, 90
    cells(ax, x0, y0, image[0, :, :, 0], u, gid="x", size=FONT + 1)
    for index, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        outline(ax, x0, y0, u, r, c, 3, PATCH_COLOURS[index], inset=3 + 3 * index, width=2)
    label(ax, x0 + 2 * u, y0 - 20, "image $x$: $4 \\times 4$, $C = 1$", size=FONT)
    label(ax, x0 + 2 * u, y0 + 4 * u + 20, "each pixel shows its index", size=FONT - 1,
          color=GRAY)

    # The four patches, each as the 3 x 3 block the kernel covers, in its colour.
    v = 24
    px, py = 262, 80
    for index, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        bx, by = px + (index % 2) * 96, py + (index // 2) * 118
        block = image[0, r : r + 3, c : c + 3, 0]
        tint = [[PATCH_TINTS[index]] * 3] * 3
        cells(ax, bx, by + 16, block, v, fills=tint, size=FONT - 2)
        label(ax, bx + 1.5 * v, by + 4, f"patch $({r}, {c})$", size=FONT - 1,
              color=PATCH_COLOURS[index])
    arrow(ax, [(px + 176, 190), (px + 206, 190)], INK)

    # The matrix: one row per patch, one column per offset (i, j) within the kernel.
    mx, my = 530, 110
    w = 36
    tints = [[PATCH_TINTS[row]] * 9 for row in range(4)]
    cells(ax, mx, my, cols, w, fills=tints, gid="cols", size=FONT)
    for col in range(9):
        label(ax, mx + (col + 0.5) * w, my - 12, f"{col // 3},{col % 3}", size=FONT - 2,
              color=GRAY)
    label(ax, mx + 4.5 * w, my - 34, "column $(i, j)$: the offset within the kernel",
          size=FONT - 1, color=GRAY)
    for row, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        label(ax, mx - 8, my + (row + 0.5) * w, f"$({r}, {c})$", ha="right", size=FONT - 1,
              color=PATCH_COLOURS[row])
    label(ax, mx + 4.5 * w, my + 4 * w + 20,
          r"cols: $(M, P) = (4, 9)$, $M = N H_o W_o$ rows, $P = \kappa\,\kappa\, C$ columns",
          size=FONT)

    label(ax, 40, 335, r"$\mathrm{cols}_{(n, r, c),\,(i, j, d)} = "
          r"x^p_{n,\; rs + i,\; cs + j,\; d}$, here with $\kappa = 3$, $s = 1$, $p = 0$, "
          r"so $H_o = W_o = 2$: row $(r, c)$ is patch $(r, c)$.", ha="left", size=FONT)
    label(ax, 40, 372, "Pixels 5, 6, 9 and 10 are in all four patches, so they appear in "
          "four rows; a corner pixel is in one.\nThen $y = \\mathrm{cols}\\, W + b$: "
          "a Dense layer applied to each row.", ha="left", size=FONT - 1, color=GRAY,
          linespacing=1.6)
    return fig


def sliding_example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sliding diagram's numbers: a 5 x 5 image of a diagonal stroke, a 3 x 3 kernel
    (Sobel's, which responds to a left-to-right rise), and npnet's Conv2D of the two with
    kappa = 3, s = 2, p = 0, bias 0: the 2 x 2 output."""
    from npnet.conv import Conv2D

    image = np.array([[0, 0, 0, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0], [1, 1, 0, 0, 0],
                      [1, 0, 0, 0, 0]], dtype=np.float64)
    kernel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    conv = Conv2D(1, 1, kernel_size=3, stride=2, padding=0, dtype=np.float64)
    conv.params["W"][:, :, 0, 0] = kernel
    return image, kernel, conv.forward(image[None, :, :, None])[0, :, :, 0]


def weight_colour(weight: float) -> str:
    """The fill of a kernel cell: orange for a positive weight, blue for a negative one."""
    if weight > 0:
        return "#f6d5c3" if weight < 2 else "#eeb08f"
    if weight < 0:
        return "#cce3f0" if weight > -2 else "#99c7e0"
    return "white"


def sliding_diagram() -> Figure:
    """One 3 x 3 kernel laid on a 5 x 5 image at its four positions (stride 2)."""
    fig, ax = canvas(900, 400)
    label(ax, 450, 20, "A convolution slides one kernel over the image: the same weights "
          "at every position", size=FONT + 2, weight="bold")
    image, kernel, out = sliding_example()
    tints = [[weight_colour(w) for w in row] for row in kernel]
    u = 30
    cells(ax, 30, 100, kernel, u, fills=tints, gid="W", size=FONT)
    label(ax, 30 + 1.5 * u, 80, "kernel $W$, $3 \\times 3$", size=FONT)
    label(ax, 30 + 1.5 * u, 100 + 3 * u + 18, "orange $> 0$, blue $< 0$", size=FONT - 2,
          color=GRAY)

    v = 24
    for index, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        bx, by = 170 + index * 150, 100
        fills = [[None] * 5 for _ in range(5)]
        for i in range(3):
            for j in range(3):
                fills[2 * r + i][2 * c + j] = tints[i][j]
        cells(ax, bx, by, image, v, fills=fills, size=FONT - 1)
        outline(ax, bx, by, v, 2 * r, 2 * c, 3, INK, width=2.2)
        label(ax, bx + 2.5 * v, by - 16, f"$(r, c) = ({r}, {c})$", size=FONT - 1)
        label(ax, bx + 2.5 * v, by + 5 * v + 18, f"$y_{{{r}{c}}}$ = {out[r, c]:g}",
              size=FONT)
    label(ax, 170 + 1.5 * 150 + 60, 62, "the image $x$ ($5 \\times 5$, a diagonal stroke), "
          "the kernel laid at rows $rs$, columns $cs$, $s = 2$", size=FONT - 1, color=GRAY)

    ox, oy = 790, 110
    cells(ax, ox, oy, out, 40, gid="y", size=FONT + 1)
    label(ax, ox + 40, oy - 30, "output $y$", size=FONT)
    label(ax, ox + 40, oy + 80 + 18, "$2 \\times 2$", size=FONT - 1, color=GRAY)

    notes = [
        r"Each output is $\Sigma_{i,j}\, x_{rs + i,\, cs + j}\, W_{ij}$: the same nine "
        "weights, in the same pattern, at all four positions.",
        "With $s = 2 < \\kappa = 3$ neighbouring positions share a row or a column of "
        "pixels (row and column 2).",
        r"In the backward pass $\partial L / \partial W = \mathrm{cols}^\top G$ sums over "
        "all four positions: to the kernel, positions are more examples.",
    ]
    label(ax, 30, 300, "\n".join(notes), ha="left", va="top", size=FONT - 1,
          linespacing=1.7)
    return fig


def col2im_example() -> tuple[np.ndarray, np.ndarray]:
    """The col2im diagram's numbers: nine 3 x 3 patches of ones (kappa = 3, s = 2, Ho = Wo = 3,
    the chapter's example) and npnet's col2im of them onto the 7 x 7 padded image: how many
    patches each pixel is in."""
    from npnet.patches import col2im

    ones = np.ones((1, 3, 3, 3, 3, 1))
    return ones, col2im(ones, (7, 7), 2)[0, :, :, 0]


COUNT_FILLS = {1: "#f4f4f4", 2: "#c9dff0", 4: "#7fb3d9"}


def col2im_diagram() -> Figure:
    """col2im of nine patches of ones: each pixel receives one term per patch it is in."""
    fig, ax = canvas(900, 430)
    label(ax, 450, 20, "col2im adds every patch back where im2col took it from",
          size=FONT + 2, weight="bold")
    ones, counts = col2im_example()
    v = 18
    x0, y0 = 40, 92
    for r in range(3):
        for c in range(3):
            index = [(0, 0), (0, 1), (1, 0), (1, 1)].index((r, c)) if r < 2 and c < 2 else None
            fill = PATCH_TINTS[index] if index is not None else "#eeeeee"
            cells(ax, x0 + c * (3 * v + 12), y0 + r * (3 * v + 12), ones[0, r, c, :, :, 0], v,
                  fills=[[fill] * 3] * 3, size=FONT - 3)
    label(ax, x0 - 10, y0 - 14, "9 patches of ones, $\\kappa = 3$:\nthe 9 rows of a "
          "$(9, 9)$ matrix", size=FONT - 1, ha="left", va="bottom", linespacing=1.4)
    label(ax, x0 - 10, y0 + 3 * (3 * v + 12) + 8,
          r"patch $(r, c)$ goes back to" "\n" r"rows $2r..2r{+}2$, columns $2c..2c{+}2$",
          size=FONT - 1, color=GRAY, va="top", ha="left", linespacing=1.5)
    arrow(ax, [(270, 180), (340, 180)], INK)
    label(ax, 305, 164, "add", size=FONT - 1)

    u = 38
    gx, gy = 345, 62
    fills = [[COUNT_FILLS[int(n)] for n in row] for row in counts]
    cells(ax, gx, gy, counts, u, fills=fills, gid="counts", size=FONT + 1)
    for index, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        outline(ax, gx, gy, u, 2 * r, 2 * c, 3, PATCH_COLOURS[index], inset=3 + 2.5 * index,
                width=2)
    label(ax, gx + 3.5 * u, gy + 7 * u + 8, "the $7 \\times 7$ padded image:\nhow many "
          "patches each pixel is in", size=FONT - 1, va="top", linespacing=1.4)

    tx = 660
    label(ax, tx, 78, "col2im(ones, (7, 7), 2)", ha="left", size=FONT - 1,
          family="monospace")
    lines = ["1: in one patch", "2: where two neighbouring", "    patches overlap",
             "4: where two such rows", "    and columns cross"]
    for index, (count, text) in enumerate([(1, lines[0]), (2, lines[1] + "\n" + lines[2]),
                                           (4, lines[3] + "\n" + lines[4])]):
        y = 130 + index * 58
        ax.add_patch(patches.Rectangle((tx, y - 12), 24, 24, facecolor=COUNT_FILLS[count],
                                       edgecolor="#b0b0b0"))
        label(ax, tx + 36, y, text, ha="left", size=FONT - 1, linespacing=1.3)
    label(ax, tx, 300, "The four coloured outlines are the\npatches $(0, 0)$, $(0, 1)$, "
          "$(1, 0)$, $(1, 1)$:\nall four contain pixel $(2, 2)$.", ha="left", va="top",
          size=FONT - 1, linespacing=1.5)
    label(ax, 30, 400, "In the backward pass the patches hold $G W^\\top$, not ones, and each "
          "pixel's gradient is the sum of its 1, 2 or 4 terms:\ncol2im is the adjoint of "
          "im2col, which copied the pixel into that many rows.", ha="left", size=FONT - 1,
          linespacing=1.5)
    return fig


def transpose_example() -> dict[str, np.ndarray]:
    """The transposed-convolution diagram's numbers, from npnet's ConvTranspose2D with all
    weights 1 and kappa = 3, s = 2: a 2 x 2 input y = [[1, 2], [3, 4]] (the chapter's
    y, the output of the convolution whose adjoint this is) painted with p = 0
    (a 5 x 5 output), and the chapter's 4 x 4 input of ones painted with p = 1 and
    output_padding 1 (8 x 8)."""
    from npnet.conv import ConvTranspose2D

    small = np.array([[1.0, 2.0], [3.0, 4.0]])
    paint = ConvTranspose2D(1, 1, kernel_size=3, stride=2, padding=0, dtype=np.float64)
    paint.params["W"][:] = 1.0
    painted = paint.forward(small[None, :, :, None])[0, :, :, 0]
    board = ConvTranspose2D(1, 1, kernel_size=3, stride=2, padding=1, output_padding=1,
                            dtype=np.float64)
    board.params["W"][:] = 1.0
    checker = board.forward(np.ones((1, 4, 4, 1)))[0, :, :, 0]
    return {"y": small, "painted": painted, "checkerboard": checker}


def transpose_diagram() -> Figure:
    """ConvTranspose2D as painting: one weighted kernel per input pixel, overlaps added."""
    fig, ax = canvas(900, 560)
    label(ax, 450, 20, "The transposed convolution paints one kernel per input pixel",
          size=FONT + 2, weight="bold")
    numbers = transpose_example()
    small, painted = numbers["y"], numbers["painted"]
    v = 20
    y0 = 92
    cells(ax, 30, y0 + 30, small, 30, fills=[[PATCH_TINTS[0], PATCH_TINTS[1]],
                                             [PATCH_TINTS[2], PATCH_TINTS[3]]],
          gid="y", size=FONT + 1)
    label(ax, 60, y0 + 10, "input $y$, $2 \\times 2$", size=FONT - 1)
    for index, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        bx = 130 + index * 128
        layer = np.full((5, 5), np.nan)
        layer[2 * r : 2 * r + 3, 2 * c : 2 * c + 3] = small[r, c]
        fills = [[PATCH_TINTS[index] if not np.isnan(value) else None for value in row]
                 for row in layer]
        cells(ax, bx, y0, layer, v, fills=fills, size=FONT - 2)
        label(ax, bx + 2.5 * v, y0 - 14, f"$y_{{{r}{c}}} \\cdot W$ at $({2 * r}, {2 * c})$",
              size=FONT - 1)
        label(ax, bx + 5 * v + 14, y0 + 2.5 * v, "+" if index < 3 else "=", size=FONT + 4)
    fills = [[COUNT_FILLS.get(1) for _ in range(5)] for _ in range(5)]
    cells(ax, 660, y0, painted, v + 4, fills=fills, gid="painted", size=FONT - 1)
    label(ax, 660 + 2.5 * (v + 4), y0 - 14, "output, $5 \\times 5$", size=FONT - 1)
    label(ax, 30, 230, r"ConvTranspose2D(1, 1, 3, stride=2, padding=0), $W$ all ones: "
          r"each input pixel $y_{rc}$ paints $y_{rc} W$", ha="left", size=FONT - 1)
    label(ax, 30, 254, r"at rows $2r..2r{+}2$, columns $2c..2c{+}2$; where patches overlap "
          "they add (1 + 2 = 3, 1 + 3 = 4, 1 + 2 + 3 + 4 = 10).", ha="left", size=FONT - 1)

    checker = numbers["checkerboard"]
    u = 28
    bx, by = 30, 300
    fills = [[COUNT_FILLS[int(n)] for n in row] for row in checker]
    cells(ax, bx, by, checker, u, fills=fills, gid="checkerboard", size=FONT - 1)
    tx = bx + 8 * u + 40
    label(ax, tx, by + 10, "Checkerboard: a $4 \\times 4$ input of ones, $\\kappa = 3$, $s = 2$, "
          "$p = 1$, output_padding 1,", ha="left", va="top", size=FONT)
    label(ax, tx, by + 34, "the chapter's painter: every weight 1, an $8 \\times 8$ output.",
          ha="left", va="top", size=FONT)
    notes = [
        "Since $\\kappa = 3$ is not a multiple of $s = 2$, the painted patches",
        "overlap unevenly: every other row and column receives two patches,",
        "and where two such lines cross, four. A uniform input gives",
        "a checkerboard of 1, 2 and 4 that a decoder must learn",
        "weights to even out.",
    ]
    label(ax, tx, by + 74, "\n".join(notes), ha="left", va="top", size=FONT - 1,
          linespacing=1.6, color=INK)
    for index, count in enumerate((1, 2, 4)):
        y = by + 210 + 0 * index
        x = tx + index * 110
        ax.add_patch(patches.Rectangle((x, y - 10), 20, 20, facecolor=COUNT_FILLS[count],
                                       edgecolor="#b0b0b0"))
        label(ax, x + 28, y, f"{count} patch" + ("es" if count > 1 else ""), ha="left",
              size=FONT - 1)
    return fig


# ----------------------------------------------------------------------------------------
# Chapters 3 and 5: curves and paths computed by npnet's own layers and optimizers, drawn on
# ordinary axes. Each computed line carries a gid, so tests read back what was drawn.

LEAKY_ALPHA = 0.1  # chapter 3's snippet uses LeakyReLU(0.1); 0.01 would not show


def plot_figure(width: int, height: int) -> Figure:
    """A white Figure of width x height pixels, for figures with ordinary axes."""
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def activation_curves(x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each activation of chapter 3, (f(x), f'(x)) at the points x (1-D), computed by
    npnet's layers: ``forward`` on x as one row, then ``backward`` of a dout of ones, which
    returns 1 * f'(x) (the diagonal Jacobian)."""
    from npnet.layers import LeakyReLU, ReLU, Sigmoid, Tanh

    curves = {}
    for name, layer in (("sigmoid", Sigmoid()), ("tanh", Tanh()), ("ReLU", ReLU()),
                        ("leaky ReLU", LeakyReLU(LEAKY_ALPHA))):
        row = np.asarray(x, dtype=np.float64)[None, :]
        y = layer.forward(row)
        dy = layer.backward(np.ones_like(row))
        curves[name] = (y[0], dy[0])
    return curves


def activations_figure(points: int = 801) -> Figure:
    """sigmoid, tanh, ReLU and leaky ReLU and their derivatives, one panel each."""
    fig = plot_figure(900, 300)
    x = np.linspace(-4, 4, points)
    curves = activation_curves(x)
    axes = fig.subplots(1, 4, sharey=True)
    formulas = {"sigmoid": r"$f' = \sigma(1 - \sigma)$, at most $1/4$",
                "tanh": r"$f' = 1 - \tanh^2$, at most 1",
                "ReLU": r"$f' = [x > 0]$",
                "leaky ReLU": rf"$f' = 1$ or $\alpha = {LEAKY_ALPHA:g}$"}
    for ax, (name, (y, dy)) in zip(axes, curves.items(), strict=True):
        ax.axhline(0, color="#cccccc", linewidth=0.8)
        ax.axvline(0, color="#cccccc", linewidth=0.8)
        ax.plot(x, y, color=INK, linewidth=2, label="$f(x)$", gid=f"{name} f")
        ax.plot(x, dy, color=BLUE, linewidth=2, linestyle=(0, (4, 2)), label="$f'(x)$",
                gid=f"{name} df")
        ax.set_title(name + (rf", $\alpha = {LEAKY_ALPHA:g}$" if name == "leaky ReLU" else ""),
                     fontsize=FONT)
        ax.set_xlim(-4, 4)
        ax.set_ylim(-1.15, 2.1)
        ax.set_xticks([-3, 0, 3])
        ax.tick_params(labelsize=FONT - 2)
        ax.set_xlabel("$x$", fontsize=FONT - 1, labelpad=1)
        ax.text(0.04, 0.96, formulas[name], transform=ax.transAxes, ha="left", va="top",
                fontsize=FONT - 2, color=BLUE)
    axes[0].legend(loc="lower right", fontsize=FONT - 2, frameon=False)
    fig.subplots_adjust(left=0.045, right=0.99, top=0.89, bottom=0.16, wspace=0.1)
    return fig


# Chapter 4: the error of a gradient check against its step h, in float64 and float32.
STEP_SIZES = np.logspace(-12, -1, 23)  # 10^-12 ... 10^-1, half a decade apart


def checked_layer(dtype=np.float64):
    """A small Dense-Tanh-Dense chain in ``dtype`` (the same weights either way), an input
    batch x and an upstream gradient dout (seeded), as chapter 4 checks them."""
    from npnet.layers import Dense, Sequential, Tanh

    rng = np.random.default_rng(4)
    layer = Sequential(Dense(5, 4, init="glorot", rng=1, dtype=np.float64), Tanh(),
                       Dense(4, 3, init="glorot", rng=2, dtype=np.float64))
    for value in layer.params.values():
        value += 0.3 * rng.standard_normal(value.shape)  # biases away from 0, too
    x, dout = rng.standard_normal((3, 5)), rng.standard_normal((3, 3))
    if dtype != np.float64:
        typed = Sequential(Dense(5, 4, dtype=dtype), Tanh(), Dense(4, 3, dtype=dtype))
        for name, value in layer.params.items():
            typed.params[name][...] = value
        layer = typed
    return layer, x.astype(dtype), dout.astype(dtype)


def step_size_errors(hs, dtype=np.float64) -> np.ndarray:
    """The relative error of the central difference of F = sum(layer(x) * dout) with respect
    to x, for each step h, against the float64 backward pass. In float64 it is
    npnet.gradcheck's own check; in float32 the same differences, computed in float32."""
    from npnet.gradcheck import numerical_gradient, relative_error

    reference, x64, dout64 = checked_layer(np.float64)
    reference.forward(x64)
    analytic = reference.backward(dout64)
    layer, x, dout = checked_layer(dtype)
    errors = []
    for h in hs:
        if dtype == np.float64:
            numeric = numerical_gradient(
                lambda: float(np.sum(layer.forward(x) * dout)), x, h)
        else:  # numerical_gradient refuses float32 (chapter 4 says why): by hand
            numeric = np.zeros(x.shape)
            for i in np.ndindex(x.shape):
                plus, minus = x.copy(), x.copy()
                plus[i] += dtype(h)
                minus[i] -= dtype(h)
                difference = (np.sum(layer.forward(plus) * dout, dtype=dtype)
                              - np.sum(layer.forward(minus) * dout, dtype=dtype))
                numeric[i] = difference / (dtype(2) * dtype(h))
        errors.append(relative_error(analytic, numeric))
    return np.array(errors)


def step_size_figure(hs=STEP_SIZES) -> Figure:
    """Chapter 4: truncation falls as h^2, rounding grows as 1/h; float32 bottoms out far
    higher, which is why checks run in float64."""
    fig = plot_figure(620, 360)
    ax = fig.add_subplot(1, 1, 1)
    for dtype, color, name in ((np.float64, INK, "float64"), (np.float32, BLUE, "float32")):
        ax.loglog(hs, step_size_errors(hs, dtype), "o-", color=color, markersize=3,
                  linewidth=1.6, label=name, gid=name)
    ax.axvline(1e-5, color="#999999", linewidth=1, linestyle=(0, (4, 2)))
    ax.text(1.3e-5, 1e-12, "npnet's $h = 10^{-5}$", fontsize=FONT - 2, color="#666666")
    ax.text(2e-12, 2e-4, r"rounding: $\approx \varepsilon_{\mathrm{mach}}|F|/h$",
            fontsize=FONT - 2)
    ax.text(2.5e-4, 1e-10, r"truncation: $\approx h^2$", fontsize=FONT - 2)
    ax.set_xlabel("step $h$", fontsize=FONT - 1)
    ax.set_ylabel("relative error of the check", fontsize=FONT - 1)
    ax.set_title("A correct backward pass, checked with steps $h$ from $10^{-12}$ to "
                 "$10^{-1}$", fontsize=FONT)
    ax.set_ylim(1e-13, 3)
    ax.tick_params(labelsize=FONT - 2)
    ax.legend(loc="upper right", fontsize=FONT - 2, frameon=False)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.14)
    return fig


# Chapter 5: an elongated quadratic valley, f(theta) = (c1 theta_1^2 + c2 theta_2^2) / 2,
# 120 times steeper across than along, and the chapter's hyperparameters.
VALLEY = (0.1, 12.0)  # the curvatures c1 (along the valley) and c2 (across it)
VALLEY_START = (-4.5, 1.2)
VALLEY_STEPS = 60
LEARNING_RATE = 0.1  # eta, for all four; gamma = 0.9 and Adam's defaults, as in chapter 5
OPTIMIZERS = {
    "SGD": ("SGD", {"lr": LEARNING_RATE}),
    "momentum": ("SGD", {"lr": LEARNING_RATE, "momentum": 0.9}),
    "Nesterov": ("SGD", {"lr": LEARNING_RATE, "momentum": 0.9, "nesterov": True}),
    "Adam": ("Adam", {"lr": LEARNING_RATE}),
}


def valley(theta: np.ndarray) -> tuple[float, np.ndarray]:
    """f(theta) and its gradient (c1 theta_1, c2 theta_2) for the valley."""
    c = np.asarray(VALLEY)
    return 0.5 * float(np.sum(c * theta**2)), c * theta


def optimizer_path(name: str, steps: int = VALLEY_STEPS,
                   start: tuple[float, float] = VALLEY_START) -> np.ndarray:
    """The points theta_0 .. theta_steps (steps + 1, 2) that npnet's own optimizer ``name``
    (a key of :data:`OPTIMIZERS`) visits on the valley: each step computes the gradient at
    the current theta and calls ``opt.step``, which updates theta in place."""
    from npnet import optim

    kind, options = OPTIMIZERS[name]
    theta = np.array(start, dtype=np.float64)
    opt = getattr(optim, kind)({"theta": theta}, **options)
    path = [theta.copy()]
    for _ in range(steps):
        opt.step({"theta": valley(theta)[1]})
        path.append(theta.copy())
    return np.array(path)


def optimizer_figure(steps: int = VALLEY_STEPS) -> Figure:
    """The paths of SGD, momentum, Nesterov and Adam on the valley, one panel each."""
    fig = plot_figure(900, 470)
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    g1, g2 = np.meshgrid(np.linspace(-5, 2.5, 301), np.linspace(-1.6, 1.6, 161))
    f = 0.5 * (VALLEY[0] * g1**2 + VALLEY[1] * g2**2)
    notes = {"SGD": r"$\theta \leftarrow \theta - \eta g$",
             "momentum": r"$u \leftarrow \gamma u + g$, $\theta \leftarrow \theta - \eta u$",
             "Nesterov": r"$\theta \leftarrow \theta - \eta (g + \gamma u)$",
             "Adam": r"$\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$"}
    hyper = {"SGD": rf"$\eta = {LEARNING_RATE:g}$",
             "momentum": rf"$\eta = {LEARNING_RATE:g}$, $\gamma = 0.9$",
             "Nesterov": rf"$\eta = {LEARNING_RATE:g}$, $\gamma = 0.9$",
             "Adam": rf"$\eta = {LEARNING_RATE:g}$, $\beta_1 = 0.9$, $\beta_2 = 0.999$"}
    for ax, name in zip(axes.ravel(), OPTIMIZERS, strict=True):
        ax.contour(g1, g2, f, levels=[0.02, 0.1, 0.25, 0.5, 1, 2, 4, 8], colors="#bbbbbb",
                   linewidths=0.8)
        path = optimizer_path(name, steps)
        ax.plot(path[:, 0], path[:, 1], "-o", color=ORANGE if name == "Adam" else BLUE,
                markersize=3, linewidth=1.2, gid=f"path {name}")
        ax.plot([0], [0], "+", color=INK, markersize=10, markeredgewidth=1.5)
        ax.plot([path[0, 0]], [path[0, 1]], "s", color=INK, markersize=5)
        value = valley(path[-1])[0]
        ax.set_title(f"{name}: {hyper[name]};  $f$ after {steps} steps: {value:.2g}",
                     fontsize=FONT - 1)
        ax.text(0.99, 0.04, notes[name], transform=ax.transAxes, ha="right", va="bottom",
                fontsize=FONT - 2, color=GRAY,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        ax.set_xlim(-5, 2.5)
        ax.set_ylim(-1.6, 1.6)
        ax.tick_params(labelsize=FONT - 3)
    for ax in axes[1]:
        ax.set_xlabel(r"$\theta_1$ (along the valley)", fontsize=FONT - 1)
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\theta_2$ (across)", fontsize=FONT - 1)
    fig.subplots_adjust(left=0.07, right=0.99, top=0.94, bottom=0.1, wspace=0.05,
                        hspace=0.22)
    return fig


# ----------------------------------------------------------------------------------------
# Chapter 10: importance sampling on a VAE whose latent space can be drawn. A VAE with J = 2
# is trained briefly on a few hundred binarised MNIST digits; for a binarised test digit its
# true posterior p(z|x) and log p(x) are then computed on a grid over z, which is exact up to
# the grid's spacing, and set against npnet.importance's estimates.

LIKELIHOOD_SETUP = {
    "train_images": 500,  # the first 500 MNIST training digits, binarised with seed 0
    "hidden": (64,),  # 784-64-4 encoder, 2-64-784 decoder, tanh, float64
    "steps": 600,  # of Adam, lr 3e-3, batches of 50: 60 epochs, a few seconds
    "batch_size": 50,
    "lr": 3e-3,
    "seed": 0,
    "test_images": (0, 19),  # test digit 0 (a 7: q is off the posterior and too narrow)
    #                          and test digit 19 (a 4: q close to it)
    "k_max": 5000,  # the chapter's k
    "seeds": 8,  # independent runs of the estimate, each of k_max samples
}
LOG_2PI = float(np.log(2 * np.pi))


def binarised_mnist(train_images: int, test_indices) -> tuple[np.ndarray, np.ndarray]:
    """The first ``train_images`` MNIST training digits binarised with seed 0, and the test
    digits at ``test_indices`` as every run of chapter 10 sees them: the test set binarised
    with TEST_BINARIZATION_SEED (the draw is row by row, so the first rows are those of the
    whole set's draw)."""
    from npnet.data import TEST_BINARIZATION_SEED, binarize, load_mnist

    x_train = binarize(load_mnist("train")[0][:train_images].astype(np.float64), 0)
    last = max(test_indices) + 1
    x_test = binarize(load_mnist("test")[0][:last].astype(np.float64), TEST_BINARIZATION_SEED)
    return x_train, x_test[list(test_indices)]


def train_latent_2d(x_train: np.ndarray, *, hidden=(64,), steps=600, batch_size=50, lr=3e-3,
                    seed=0):
    """A float64 VAE with a 2-D latent (tanh, the decoder's output bias at the logit of the
    mean image) trained on binary images with npnet's ELBO step and Adam: ``steps`` steps on
    batches drawn without replacement from a generator seeded by ``seed``."""
    from npnet.optim import Adam
    from npnet.vae import VAE

    model = VAE(x_train.shape[1], hidden=tuple(hidden), latent=2, activation="tanh",
                rng=seed, dtype=np.float64)
    model.init_output_bias(x_train)
    opt = Adam(model.params, lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = x_train[rng.choice(len(x_train), batch_size, replace=False)]
        model.train_step(batch, rng=rng)
        opt.step(model.grads)
    return model


def log_joint(model, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x, z) = log p(x|z) + log p(z) for one binary image x (1, D) and codes z (M, J):
    minus the Bernoulli cross-entropy of the decoder's logits, and the standard normal."""
    from npnet.losses import bce_with_logits_per_example

    logits = model.decoder.forward(z)
    log_px_z = -bce_with_logits_per_example(logits, np.repeat(x, len(z), axis=0))
    return log_px_z - 0.5 * np.sum(z**2 + LOG_2PI, axis=1)


def encoder_gaussian(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation (J,) of q(z|x) for one image x (1, D), with logvar
    clipped as the sampler and npnet.importance clip it."""
    mu, logvar, _ = model.sampler.split(model.encoder.forward(x))
    return mu[0], np.exp(0.5 * logvar[0])


def log_q(model, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log q(z|x) for one image x (1, D) and codes z (M, J): the encoder's diagonal Gaussian."""
    mu, sigma = encoder_gaussian(model, x)
    return -0.5 * np.sum(((z - mu) / sigma) ** 2 + LOG_2PI + 2 * np.log(sigma), axis=1)


def code_grid(lo, hi, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """An n x n grid of codes over the box [lo_1, hi_1] x [lo_2, hi_2]: the 1-D axes, the
    (n * n, 2) codes (row-major, z_2 slow) and the area of one cell."""
    a1, a2 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    z = np.stack(np.meshgrid(a1, a2), axis=-1).reshape(-1, 2)
    return (a1, a2), z, float((a1[1] - a1[0]) * (a2[1] - a2[0]))


def posterior_on_grid(model, x: np.ndarray, n: int = 121, coarse: int = 61,
                      reach: float = 4.5) -> dict:
    """The true posterior p(z|x) = p(x, z) / p(x) and log p(x) = log of the integral of
    p(x, z) over z, by sums over grids, for a model with J = 2 and one image x (1, D).

    A coarse n x n grid over [-reach, reach]^2 finds where p(x, z) is within e^-30 of its
    largest value; a fine grid covers that region and q's mean +- 6 standard deviations,
    with a margin. On the fine grid, log p(x) = log sum_z p(x, z) dA (a Riemann sum, exact
    to many digits for a smooth integrand that vanishes at the edges), and the relative
    variance of the importance weights under q, Var(w) / E[w]^2 = (integral of
    p(x, z)^2 / q(z|x)) / p(x)^2 - 1, which sets the bias of chapter 10's estimate."""
    from npnet.importance import log_mean_exp

    _, z, _ = code_grid((-reach, -reach), (reach, reach), coarse)
    lj = log_joint(model, x, z)
    near = z[lj > lj.max() - 30]
    mu, sigma = encoder_gaussian(model, x)
    lo = np.minimum(near.min(axis=0), mu - 6 * sigma)
    hi = np.maximum(near.max(axis=0), mu + 6 * sigma)
    margin = 0.15 * (hi - lo)
    axes, z, area = code_grid(lo - margin, hi + margin, n)
    lj = log_joint(model, x, z)
    log_px = float(log_mean_exp(lj) + np.log(len(z) * area))
    lq = log_q(model, x, z)
    log_second = float(log_mean_exp(2 * lj - lq) + np.log(len(z) * area))
    return {"axes": axes, "z": z, "log_joint": lj.reshape(n, n), "log_q": lq.reshape(n, n),
            "log_px": log_px, "relative_variance": float(np.expm1(log_second - 2 * log_px)),
            "mu": mu, "sigma": sigma}


def estimates_against_k(model, x: np.ndarray, ks, seeds: int, k_max: int) -> dict:
    """npnet's estimate log (1/k) sum_i w_i of log p(x) for one image x (1, D), for each k of
    ``ks``: ``seeds`` runs, run s drawing k_max log-weights with
    ``npnet.importance.log_weights`` (its noise from a generator seeded by s) and estimating
    with the first k of them (so each run is one curve); and the mean estimate of every k
    over all the disjoint groups of k weights that the seeds * k_max weights make (the
    expectation, more precisely than a mean of the curves)."""
    from npnet.importance import log_mean_exp, log_weights

    shape = (1, k_max, model.latent_dim)  # run s draws its noise from the seed s
    eps = np.stack([np.random.default_rng(seed).standard_normal(shape) for seed in range(seeds)])
    log_w = np.stack([log_weights(model, x, k_max, eps=e)[0] for e in eps])
    curves = np.array([[log_mean_exp(run[:k]) for k in ks] for run in log_w])
    pooled = log_w.ravel()
    mean = np.array([log_mean_exp(pooled[: len(pooled) // k * k].reshape(-1, k), axis=1).mean()
                     for k in ks])
    return {"ks": np.asarray(ks), "curves": curves, "mean": mean, "log_w": log_w,
            "eps": eps[:, 0]}


def normalised_weights(log_w: np.ndarray) -> np.ndarray:
    """w~_i = w_i / sum_j w_j from log-weights (k,), the softmax that weights the IWAE
    gradient: npnet.importance's own (the one iwae_step uses)."""
    from npnet.importance import _log_mean_exp_and_weights

    return _log_mean_exp_and_weights(np.asarray(log_w, np.float64)[None, :], axis=1)[1][0]


@functools.lru_cache(maxsize=1)
def likelihood_study() -> dict:
    """Everything the three pictures of chapter 10 show, computed once per process under one
    BLAS thread (the same numbers on every run): the trained model, the two test digits of
    ``LIKELIHOOD_SETUP``, their grids, and their estimates against k."""
    from threadpoolctl import threadpool_limits

    setup = LIKELIHOOD_SETUP
    with threadpool_limits(1):
        x_train, x_test = binarised_mnist(setup["train_images"], setup["test_images"])
        model = train_latent_2d(x_train, hidden=setup["hidden"], steps=setup["steps"],
                                batch_size=setup["batch_size"], lr=setup["lr"],
                                seed=setup["seed"])
        images = [x_test[i : i + 1] for i in range(len(x_test))]
        grids = [posterior_on_grid(model, image) for image in images]
        ks = np.unique(np.round(np.logspace(0, np.log10(setup["k_max"]), 41)).astype(int))
        estimates = [estimates_against_k(model, image, ks, setup["seeds"], setup["k_max"])
                     for image in images]
        train_mu = model.encode(x_train)[0]
    return {"model": model, "images": images, "grids": grids, "estimates": estimates,
            "train_mu": train_mu}


def hdr_levels(log_density: np.ndarray, masses=(0.99, 0.86, 0.39)) -> list[float]:
    """Levels of a density on a grid (log values, any constant) whose upper sets hold the
    given fractions of its mass, largest mass first (increasing levels, as contour wants):
    for a 2-D Gaussian, the 3, 2 and 1 standard-deviation ellipses."""
    values = np.sort(np.exp(log_density - log_density.max()).ravel())[::-1]
    cumulative = np.cumsum(values) / values.sum()
    return [float(values[np.searchsorted(cumulative, m)]) for m in masses]


def show_digit(fig: Figure, rect, image: np.ndarray, title: str) -> None:
    """A binary 28 x 28 digit in an inset axes at rect (figure fractions), black on white."""
    ax = fig.add_axes(rect)
    ax.imshow(1 - image.reshape(28, 28), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=FONT - 2, pad=2)


def importance_samples_figure(study: dict | None = None, samples: int = 100) -> Figure:
    """Prior, q(z|x) and the true posterior of one test digit, with importance samples from q
    sized by their normalised weights."""
    from matplotlib.lines import Line2D

    study = likelihood_study() if study is None else study
    image, grid, est = study["images"][0], study["grids"][0], study["estimates"][0]
    fig = plot_figure(900, 470)
    left = fig.add_axes((0.055, 0.1, 0.36, 0.75))
    right = fig.add_axes((0.5, 0.1, 0.48, 0.75))
    (a1, a2), lj, lq = grid["axes"], grid["log_joint"], grid["log_q"]
    post_levels, q_levels = hdr_levels(lj), hdr_levels(lq)
    post = np.exp(lj - lj.max())

    # The zoom: the posterior's 99% region and q's 3.5 sd box, with a margin.
    inside = grid["z"][post.ravel() >= post_levels[0]]
    lo = np.minimum(inside.min(axis=0), grid["mu"] - 3.5 * grid["sigma"])
    hi = np.maximum(inside.max(axis=0), grid["mu"] + 3.5 * grid["sigma"])
    centre, half = (lo + hi) / 2, 0.62 * np.max(hi - lo)
    box_lo, box_hi = centre - half, centre + half

    # Left: the whole latent plane, the prior's 1, 2, 3 sd circles, the training codes.
    angle = np.linspace(0, 2 * np.pi, 200)
    for radius in (1, 2, 3):
        left.plot(radius * np.cos(angle), radius * np.sin(angle), color=GRAY, linewidth=1,
                  linestyle=(0, (3, 2)))
    mu_train = study["train_mu"]
    left.plot(mu_train[:, 0], mu_train[:, 1], ".", color="#b8b8b8", markersize=2.5)
    left.contour(a1, a2, post, levels=post_levels, colors=BLUE, linewidths=1)
    left.add_patch(patches.Rectangle(box_lo, *(box_hi - box_lo), facecolor="none",
                                     edgecolor=INK, linewidth=1))
    left.set_xlim(-4, 4)
    left.set_ylim(-4, 4)
    left.set_aspect("equal")
    left.set_title("the whole latent plane: $p(z)$ (gray circles: 1, 2, 3 sd),\n"
                   "encoder means of the 500 training digits (dots)", fontsize=FONT - 1)
    left.set_xlabel("$z_1$", fontsize=FONT - 1)
    left.set_ylabel("$z_2$", fontsize=FONT - 1)
    left.tick_params(labelsize=FONT - 3)

    # Right: zoomed, the posterior filled, q dashed, the samples sized by their weights.
    right.contourf(a1, a2, post, levels=[*post_levels, 1.01],
                   colors=["#e3eef7", "#c0d9ec", "#8dbbdd"])
    right.contour(a1, a2, post, levels=post_levels, colors=BLUE, linewidths=1)
    right.contour(a1, a2, lq, levels=q_levels, colors=ORANGE, linewidths=1.4,
                  linestyles="dashed", zorder=4)
    log_w = est["log_w"][0][:samples]
    w_tilde = normalised_weights(log_w)
    z = grid["mu"] + grid["sigma"] * est["eps"][0, :samples]  # the codes of those weights
    right.scatter(z[:, 0], z[:, 1], s=1200 * w_tilde + 3, facecolor=INK, edgecolor="white",
                  linewidth=0.5, alpha=0.75, zorder=3, gid="samples")
    right.set_xlim(box_lo[0], box_hi[0])
    right.set_ylim(box_lo[1], box_hi[1])
    right.set_aspect("equal")
    right.set_title("the box, zoomed: the lines hold 39%, 86%, 99% of each",
                    fontsize=FONT - 1)
    right.set_xlabel("$z_1$", fontsize=FONT - 1)
    right.tick_params(labelsize=FONT - 3)
    handles = [Line2D([], [], color=BLUE, linewidth=3,
                      label=r"true posterior $p(z \mid x)$, by the grid"),
               Line2D([], [], color=ORANGE, linestyle="dashed",
                      label=r"the encoder's $q(z \mid x)$"),
               Line2D([], [], color=INK, marker="o", linestyle="none", alpha=0.75,
                      label=rf"{samples} samples $z_i \sim q$, area $\propto \tilde w_i$")]
    right.legend(handles=handles, loc="upper left", fontsize=FONT - 2, framealpha=0.95)
    show_digit(fig, (0.06, 0.66, 0.08, 0.15), image, "")
    fig.text(0.5, 0.965, f"Importance sampling for test digit {LIKELIHOOD_SETUP['test_images'][0]}"
             ", with a VAE of two latent dimensions", ha="center", va="center",
             fontsize=FONT + 1, weight="bold")
    return fig


def bias_figure(study: dict | None = None) -> Figure:
    """The estimate of log p(x) against k for two test digits: runs, their expectation, the
    1/k law of the chapter, and the true value by the grid."""
    study = likelihood_study() if study is None else study
    fig = plot_figure(900, 470)
    order = (1, 0)  # the digit whose q fits first: the law holds there
    titles = {1: "$q$ covers its posterior", 0: "$q$ misses part of its posterior"}
    for panel, index in enumerate(order):
        grid, est = study["grids"][index], study["estimates"][index]
        ks, log_px = est["ks"], grid["log_px"]
        ax = fig.add_axes((0.09 + 0.49 * panel, 0.11, 0.405, 0.64))
        for run, curve in enumerate(est["curves"]):
            ax.plot(ks, curve, color="#a8a8a8", linewidth=0.8, gid=f"run {index} {run}",
                    label=f"{len(est['curves'])} runs, each with its first $k$ samples"
                    if run == 0 else None)
        ax.plot(ks, est["mean"], color=INK, linewidth=2.2, gid=f"mean {index}",
                label=r"$\mathcal{L}_k$: the mean estimate over many runs")
        law = log_px - grid["relative_variance"] / (2 * ks)
        ax.plot(ks, law, color=ORANGE, linewidth=1.6, linestyle=(0, (5, 3)),
                gid=f"law {index}",
                label=r"$\log p(x) - \mathrm{Var}(w) / (2k\, \mathbb{E}[w]^2)$")
        ax.axhline(log_px, color=BLUE, linewidth=1.6, gid=f"log p(x) {index}",
                   label=r"$\log p(x)$, by the grid")
        ax.set_xscale("log")
        ax.set_xlim(1, ks[-1])
        span = log_px - est["mean"][0]
        ax.set_ylim(log_px - 1.45 * span, log_px + 0.35 * span)
        ax.set_xlabel("$k$, importance samples", fontsize=FONT - 1)
        ax.tick_params(labelsize=FONT - 2)
        ax.grid(True, which="major", color="#eeeeee")
        relvar = grid["relative_variance"]
        # Where q misses part of the posterior the variance is in effect infinite: the
        # grid's number then depends on the grid, and only its size is worth printing.
        relvar_text = (f"= {relvar:.1f}" if relvar < 1e4
                       else f"> 10^{{{int(np.floor(np.log10(relvar)))}}}")
        ax.set_title(f"test digit {LIKELIHOOD_SETUP['test_images'][index]}: "
                     f"{titles[index]}\n"
                     f"$\\mathrm{{Var}}(w)/\\mathbb{{E}}[w]^2 {relvar_text}$ (grid)",
                     fontsize=FONT - 1)
        ax.text(0.97, 0.05, f"$\\log p(x) = {log_px:.2f}$\nbias at $k = 1$: "
                f"{log_px - est['mean'][0]:.2f}\nbias at $k = {ks[-1]}$: "
                f"{log_px - est['mean'][-1]:.3f}", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=FONT - 2, linespacing=1.4,
                bbox={"facecolor": "white", "edgecolor": "#cccccc", "pad": 3})
        show_digit(fig, (0.09 + 0.49 * panel + 0.005, 0.11 + 0.64 - 0.15, 0.065, 0.14),
                   study["images"][index], "")
        if panel == 0:
            ax.set_ylabel(r"estimate of $\log p(x)$, nats", fontsize=FONT - 1)
            fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.995), ncol=2,
                       fontsize=FONT - 2, frameon=False)
    return fig


def weights_figure(study: dict | None = None) -> Figure:
    """Histograms of the normalised weights of k_max samples for the two test digits."""
    study = likelihood_study() if study is None else study
    k = LIKELIHOOD_SETUP["k_max"]
    fig = plot_figure(900, 380)
    titles = {1: "$q$ covers its posterior", 0: "$q$ misses part of it"}
    for panel, index in enumerate((1, 0)):
        ax = fig.add_axes((0.07 + 0.5 * panel, 0.14, 0.28, 0.68))
        w_tilde = normalised_weights(study["estimates"][index]["log_w"][0])
        share = np.log10(np.maximum(k * w_tilde, 10**-4.5))  # the smallest in the first bin
        bins = np.linspace(-4.5, 3, 61)
        counts, _, _ = ax.hist(share, bins=bins, color=BLUE if panel == 0 else ORANGE,
                               gid=f"histogram {index}")
        ax.axvline(0, color=INK, linewidth=1.2, linestyle=(0, (4, 2)))
        ax.text(0.1, counts.max() * 1.03, r"$\tilde w_i = 1/k$", ha="left", va="bottom",
                fontsize=FONT - 2)
        top = np.sort(w_tilde)[::-1]
        ax.set_title(f"test digit {LIKELIHOOD_SETUP['test_images'][index]}: "
                     f"{titles[index]}", fontsize=FONT)
        ax.set_xlabel(r"$\log_{10}(k\, \tilde w_i)$; below 0: less than the average $1/k$",
                      fontsize=FONT - 2)
        ax.set_ylabel(f"samples, of $k = {k}$", fontsize=FONT - 1)
        ax.set_xlim(-4.5, 3)
        ax.set_ylim(0, counts.max() * 1.18)
        ax.tick_params(labelsize=FONT - 2)
        fig.text(0.365 + 0.5 * panel, 0.82,
                 f"effective\nsamples,\n$1 / \\Sigma_i \\tilde w_i^2$: {1 / np.sum(w_tilde**2):.0f}"
                 f"\n\nlargest $\\tilde w_i$:\n{top[0]:.3f}\n\nthe 10 largest:\n"
                 f"{top[:10].sum():.0%} of the sum", ha="left", va="top", fontsize=FONT - 2,
                 linespacing=1.35, gid=f"summary {index}")
        show_digit(fig, (0.365 + 0.5 * panel, 0.14, 0.07, 0.16), study["images"][index], "")
    fig.text(0.5, 0.965, f"The normalised weights $\\tilde w_i = w_i / \\Sigma_j w_j$ of "
             f"$k = {k}$ samples from $q(z \\mid x)$, for two test digits", ha="center",
             va="center", fontsize=FONT + 1, weight="bold")
    return fig


DIAGRAMS = {
    "diagram_sequential.png": sequential,
    "diagram_vae.png": vae,
    "diagram_dense_shapes.png": dense_shapes,
    "diagram_activations.png": activations_figure,
    "diagram_step_size.png": step_size_figure,
    "diagram_optimizer_paths.png": optimizer_figure,
    "diagram_im2col.png": im2col_diagram,
    "diagram_conv_sliding.png": sliding_diagram,
    "diagram_col2im.png": col2im_diagram,
    "diagram_conv_transpose.png": transpose_diagram,
    "diagram_importance_samples.png": importance_samples_figure,
    "diagram_importance_bias.png": bias_figure,
    "diagram_importance_weights.png": weights_figure,
}


def render(fig: Figure) -> np.ndarray:
    """The figure's pixels in [0, 1]: (H, W) if gray, else (H, W, 3) of <= 256 colours."""
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    if np.all(rgb == rgb[..., :1]):
        return rgb[..., 0] / 255.0
    return fewer_colours(rgb) / 255.0


# The pictures that need the MNIST files (chapter 10's); the others need nothing but npnet.
DATA_DIAGRAMS = ("diagram_importance_samples.png", "diagram_importance_bias.png",
                 "diagram_importance_weights.png")


def make_diagrams(out_dir: Path | str = FIGURES_DIR, names=None) -> list[Path]:
    """Draw every diagram of :data:`DIAGRAMS` (or those of ``names``) into out_dir; returns
    the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # matplotlib's defaults, not the local matplotlibrc: the same picture everywhere.
    with mpl_style.context("default"):
        for name, draw in DIAGRAMS.items():
            if names is not None and name not in names:
                continue
            path = out_dir / name
            write_png(path, render(draw()), text={"Software": software()})
            written.append(path)
    return written


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file in pixels, read from its IHDR chunk."""
    data = Path(path).read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def main(argv=None) -> None:
    """``python docs/diagrams.py [OUT_DIR]``: draw every diagram (default: docs/figures/)."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else FIGURES_DIR
    for path in make_diagrams(out_dir):
        width, height = png_size(path)
        print(f"{path}: {width} x {height} px, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
