"""Draw the diagrams of the computation that the chapters show: boxes, arrows and formulas.

    python docs/diagrams.py                  # writes docs/figures/diagram_*.png
    python docs/make_figures.py --diagrams-only        # the same, from the figures script

Three pictures, in the style of CS231n's circuits and d2l's computational graphs, forward
values in black from left to right and gradients in colour from right to left:

* ``diagram_sequential.png`` (chapter 2): a ``Sequential`` of Dense, ReLU, Dense, Sigmoid
  and a loss, what each layer caches in ``forward``, and what its ``backward`` fills in
  ``grads`` and returns.
* ``diagram_vae.png`` (chapter 7): encoder, ``Reparameterize`` (with its noise eps as a side
  input), decoder and BCE, the KL term computed from h, and the two paths by which the
  gradient reaches the encoder, meeting at dL/dh.
* ``diagram_dense_shapes.png`` (chapter 2): the three products of ``Dense.backward`` as
  matrix blocks with their shapes, one entry of each result traced to the row and column
  it is made of.

The diagrams are drawn with ``matplotlib.figure.Figure`` and the Agg canvas (no pyplot, no
display), in matplotlib's default style whatever the local matplotlibrc says, and written by
:func:`write_png` from the canvas's pixels: 8-bit gray where a picture has no colour, else a
palette of its 256 most frequent colours (:func:`fewer_colours`), about 30 kB each, with no
timestamp, so the same matplotlib gives the same bytes on every run.
``tests/test_diagrams.py`` redraws them and compares with the committed files, so a diagram
that goes stale fails the test suite; each file records the matplotlib version that drew it.
"""

from __future__ import annotations

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
ORANGE = "#D55E00"  # the KL term's gradient (Okabe-Ito: both accents stay apart for most
#                      colour-blind readers, and the KL path is also dashed)
FONT = 11  # points; at 100 dpi about 15 px per line, readable at GitHub's page width

__all__ = ["make_diagrams", "write_png", "fewer_colours", "png_size", "DIAGRAMS"]


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


DIAGRAMS = {
    "diagram_sequential.png": sequential,
    "diagram_vae.png": vae,
    "diagram_dense_shapes.png": dense_shapes,
}


def render(fig: Figure) -> np.ndarray:
    """The figure's pixels in [0, 1]: (H, W) if gray, else (H, W, 3) of <= 256 colours."""
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    if np.all(rgb == rgb[..., :1]):
        return rgb[..., 0] / 255.0
    return fewer_colours(rgb) / 255.0


def make_diagrams(out_dir: Path | str = FIGURES_DIR) -> list[Path]:
    """Draw every diagram of :data:`DIAGRAMS` into out_dir; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # matplotlib's defaults, not the local matplotlibrc: the same picture everywhere.
    with mpl_style.context("default"):
        for name, draw in DIAGRAMS.items():
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
    """``python docs/diagrams.py [OUT_DIR]``: draw the diagrams (default: docs/figures/)."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else FIGURES_DIR
    for path in make_diagrams(out_dir):
        width, height = png_size(path)
        print(f"{path}: {width} x {height} px, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
