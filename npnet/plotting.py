"""Figures for the experiments, from arrays. The only npnet module that imports matplotlib.

Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no
display, no global figure registry, nothing to close, and the same code runs headless.
Each figure has a builder that returns the ``Figure`` (``*_figure``), and
:func:`save_figure` writes any of them through :func:`npnet.io.atomic_write`, so an
interrupted run never leaves half a PNG.

Two kinds of gray
-----------------
* **Pixel images** (digits, reconstructions, decoded samples) have values in [0, 1]:
  ``cmap="gray", vmin=0, vmax=1``, black background as in MNIST. Values outside are shown
  as black or white (matplotlib clips them).
* **Signed images** (residuals, principal components) have values of either sign. The
  *signed gray* scale maps ``[-m, m]`` linearly onto black..white, so that zero is exactly
  mid gray, negative is darker and positive is lighter::

      gray(v) = 0.5 + 0.5 * v / m

  This is what ``imshow(v, cmap="gray", vmin=-m, vmax=m)`` does; :func:`signed_gray`
  writes it out so the tests can check the figures against it.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from npnet.io import atomic_write

__all__ = [
    "signed_gray_limits",
    "signed_gray",
    "residual_pca_titles",
    "tile_images",
    "save_figure",
    "mark_smoke_test",
    "signed_images_figure",
    "image_grid_figure",
    "training_curves_figure",
    "latent_scatter_figure",
    "manifold_figure",
]

DPI = 100
PANEL_INCHES = 2.4  # one signed image with its title (and colorbar)
CELL_INCHES = 0.8  # one cell of a pixel-image grid
CAPTION_FONTSIZE = 9
SAVE_FORMATS = ("png", "pdf", "svg")


# ------------------------------------------------------------------- signed-gray scale


def signed_gray_limits(images: np.ndarray, shared: bool = True) -> np.ndarray:
    """The symmetric limit ``m`` of each image's signed-gray scale ``[-m, m]``: shape (n,).

    Parameters
    ----------
    images : ndarray, (n, ...)
        A stack of n images of any shape, e.g. (n, 28, 28) or (n, 784). Finite values.
    shared : bool
        True: one limit for all, ``m = max |value|`` over the whole stack, repeated n
        times (figure (a): one scale, one colorbar). False: each image's own
        ``max |value|`` (figure (b): a scale per image).

    Returns
    -------
    limits : ndarray of float64, (n,)
        All positive. An image (or, with ``shared``, a stack) that is zero everywhere gets
        ``m = 1``: any positive limit draws it entirely mid gray, and 1 avoids a 0/0.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(
            f"signed_gray_limits: expected a non-empty stack of images (n, ...), got shape "
            f"{images.shape}"
        )
    if not np.all(np.isfinite(images)):
        raise ValueError("signed_gray_limits: images contain NaN or infinite values")
    per_image = np.abs(images.reshape(images.shape[0], -1)).max(axis=1)
    limits = np.full_like(per_image, per_image.max()) if shared else per_image
    return np.where(limits > 0, limits, 1.0)


def signed_gray(image: np.ndarray, limit: float | np.ndarray) -> np.ndarray:
    """Gray level in [0, 1] of signed values: ``0.5 + 0.5 * value / limit``, clipped.

    0 maps to exactly 0.5 (mid gray), ``+limit`` to 1.0 (white), ``-limit`` to 0.0
    (black); values beyond the limit are clipped, as ``imshow`` does.

    Parameters
    ----------
    image : ndarray, any shape; or (n, ...) with one limit per image
    limit : float > 0, or ndarray (n,) of limits for a stack of n images (as returned
        by :func:`signed_gray_limits`)

    Returns
    -------
    gray : ndarray of float64, the shape of ``image``
    """
    image = np.asarray(image, dtype=np.float64)
    limit = np.asarray(limit, dtype=np.float64)
    if limit.ndim == 1:
        if image.ndim < 1 or image.shape[0] != limit.shape[0]:
            raise ValueError(
                f"signed_gray: {limit.shape[0]} limits need a stack of as many images, got "
                f"shape {image.shape}"
            )
        limit = limit.reshape(-1, *([1] * (image.ndim - 1)))
    elif limit.ndim != 0:
        raise ValueError(f"signed_gray: limit must be a number or (n,), got {limit.shape}")
    if not np.all(limit > 0):
        raise ValueError(f"signed_gray: limits must be positive, got {limit.ravel()}")
    # value / limit first: exactly +-1 at +-limit, so the ends map to exactly 0 and 1.
    return np.clip(0.5 + 0.5 * (image / limit), 0.0, 1.0)


def residual_pca_titles(explained_variance_ratio: Sequence[float]) -> list[str]:
    """Titles for the residual figure: ``["mean residual", "PC 1 (12.3% var)", ...]``."""
    return ["mean residual"] + [
        f"PC {k} ({100 * float(r):.1f}% var)"
        for k, r in enumerate(explained_variance_ratio, start=1)
    ]


# ------------------------------------------------------------------------------ helpers


def _square_images(images: np.ndarray, leading: int, what: str) -> np.ndarray:
    """(..., D) with D a perfect square -> (..., s, s); (..., H, W) unchanged."""
    images = np.asarray(images)
    if images.ndim == leading + 1:
        side = math.isqrt(images.shape[-1])
        if side * side != images.shape[-1]:
            raise ValueError(
                f"{what}: flat images need a square number of pixels (784 = 28 x 28), got "
                f"{images.shape[-1]} in shape {images.shape}"
            )
        return images.reshape(*images.shape[:-1], side, side)
    if images.ndim == leading + 2:
        return images
    layout = {1: "n", 2: "R, C"}[leading]
    raise ValueError(
        f"{what}: expected images of shape ({layout}, H, W) or ({layout}, H*W), got {images.shape}"
    )


def tile_images(images: np.ndarray, pad: int = 2, pad_value: float = 0.5) -> np.ndarray:
    """Tile an (R, C, H, W) or (R, C, H*W) grid into one (R*H + (R-1)*pad, C*W + (C-1)*pad) image.

    Cell (r, c) occupies rows ``r*(H+pad) : r*(H+pad)+H`` and the matching columns; the
    ``pad``-pixel gutters between cells hold ``pad_value`` (mid gray by default, visible
    against both the black background and the white strokes of a digit).
    """
    images = _square_images(images, 2, "tile_images").astype(np.float64, copy=False)
    rows, cols, h, w = images.shape
    tiled = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), float(pad_value))
    for r in range(rows):
        for c in range(cols):
            top, left = r * (h + pad), c * (w + pad)
            tiled[top : top + h, left : left + w] = images[r, c]
    return tiled


def wrap_evenly(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters, as few as ``textwrap`` needs, but
    of even lengths: no last line holding a single word where two fit.

    Among the wraps with that many lines (greedy from the first word, and greedy from the
    last, at every narrower width), the one whose last line is not alone and whose lines
    differ least in length."""
    count = len(textwrap.wrap(text, width))
    candidates = []
    for narrower in range(width, 0, -1):
        forward = textwrap.wrap(text, narrower)
        backward = [" ".join(line.split()[::-1]) for line in
                    textwrap.wrap(" ".join(text.split()[::-1]), narrower)][::-1]
        candidates += [lines for lines in (forward, backward) if len(lines) == count]
    if not candidates:
        return "\n".join(textwrap.wrap(text, width))
    return "\n".join(min(candidates, key=lambda lines: (
        len(lines) > 1 and " " not in lines[-1],  # a lone last word: last resort
        max(map(len, lines)) - min(map(len, lines)))))


def _add_caption(fig: Figure, caption: str | None) -> None:
    """Caption under the figure, wrapped evenly to its width (``bbox_inches="tight"`` keeps
    it)."""
    if caption:
        chars_per_line = max(40, int(fig.get_figwidth() * 14))
        fig.text(
            0.5,
            0.0,
            wrap_evenly(caption, chars_per_line),
            ha="center",
            va="top",
            fontsize=CAPTION_FONTSIZE,
        )


SMOKE_TEST_ID = "npnet-smoke-test"  # the gid of mark_smoke_test's text


def mark_smoke_test(fig: Figure, note: str) -> Figure:
    """Write ``note`` (that the figure comes from a smoke test, not a trained model) above
    the figure, in red; :func:`save_figure` also records it in a PNG's text "npnet note"."""
    fig.text(0.5, 1.0, wrap_evenly(note, max(40, int(fig.get_figwidth() * 12))),
             ha="center", va="bottom", color="firebrick", fontsize=10, fontweight="bold",
             gid=SMOKE_TEST_ID)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, run_id: str | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format of its suffix (PNG by default).
    ``run_id`` is written into a PNG as the text entry "npnet run", so that a figure says
    which run drew it, and the note of :func:`mark_smoke_test` as "npnet note"."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in SAVE_FORMATS:
        raise ValueError(f"save_figure: cannot write {path.name!r}; use one of {SAVE_FORMATS}")
    metadata = None
    if fmt == "png":
        notes = [" ".join(text.get_text().split()) for text in fig.texts
                 if text.get_gid() == SMOKE_TEST_ID]
        metadata = ({"npnet run": run_id} if run_id is not None else {}) | (
            {"npnet note": " ".join(notes)} if notes else {}) or None
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=DPI, bbox_inches="tight", metadata=metadata)
    return path


# ----------------------------------------------------------------------- signed images


def signed_images_figure(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    shared: bool = True,
    suptitle: str | None = None,
    caption: str | None = None,
    n_cols: int = 3,
) -> Figure:
    """Signed images in signed gray (zero = mid gray), in a grid of ``n_cols`` columns.

    Parameters
    ----------
    images : ndarray, (n, H, W) or (n, H*W)
    titles : n strings, optional
    shared : bool
        True: one scale ``[-m, m]`` for all images, m = the largest |value| of all of
        them, and one colorbar. False: each image on its own ``[-m_i, m_i]`` with its own
        colorbar. See :func:`signed_gray_limits`.
    """
    images = _square_images(images, 1, "signed_images_figure").astype(np.float64)
    n = images.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"signed_images_figure: {n} images but {len(titles)} titles")
    limits = signed_gray_limits(images, shared=shared)
    n_cols = min(n, n_cols)
    n_rows = math.ceil(n / n_cols)
    width = n_cols * PANEL_INCHES + (0.8 if shared else 0.6 * n_cols)
    fig = Figure(figsize=(width, n_rows * PANEL_INCHES), dpi=DPI, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    # One Normalize object for all images when shared: the colorbar is then true of all.
    shared_norm = Normalize(vmin=-limits[0], vmax=limits[0])
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        norm = shared_norm if shared else Normalize(vmin=-limits[i], vmax=limits[i])
        im = ax.imshow(images[i], cmap="gray", norm=norm, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
        if not shared:
            _signed_colorbar(fig, im, ax, limits[i])
    if shared:
        _signed_colorbar(fig, axes[0].images[0], list(axes), limits[0])
    if suptitle:
        fig.suptitle(suptitle)
    _add_caption(fig, caption)
    return fig


def _signed_colorbar(fig: Figure, im, ax, limit: float) -> None:
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_ticks([-limit, 0.0, limit], labels=[f"{-limit:.3g}", "0", f"{limit:.3g}"])
    bar.ax.tick_params(labelsize=8)


# ------------------------------------------------------------------ pixel image grids


def image_grid_figure(
    images: np.ndarray,
    row_labels: Sequence[str] | None = None,
    column_titles: Sequence[str] | None = None,
    title: str | None = None,
    caption: str | None = None,
) -> Figure:
    """A grid of pixel images in [0, 1] (gray, vmin=0, vmax=1), one axes, no ticks.

    Parameters
    ----------
    images : ndarray, (R, C, H, W) or (R, C, H*W)
        ``images[r, c]`` is drawn in row r, column c.
    row_labels : R strings, optional, left of each row (e.g. ``"3 -> 5"``)
    column_titles : C strings, optional, above each column
    """
    images = _square_images(images, 2, "image_grid_figure")
    rows, cols = images.shape[:2]
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"image_grid_figure: {rows} rows but {len(row_labels)} row labels")
    if column_titles is not None and len(column_titles) != cols:
        raise ValueError(
            f"image_grid_figure: {cols} columns but {len(column_titles)} column titles"
        )
    pad = 2
    fig = Figure(
        figsize=(cols * CELL_INCHES + 0.8, rows * CELL_INCHES + 0.4),
        dpi=DPI,
        layout="constrained",
    )
    ax = fig.add_subplot()
    ax.imshow(
        tile_images(images, pad=pad), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    h, w = images.shape[2:]
    # Labels are tick labels at the cell centres, with the tick marks themselves hidden.
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if row_labels is not None:
        ax.set_yticks([r * (h + pad) + (h - 1) / 2 for r in range(rows)], labels=row_labels)
    else:
        ax.set_yticks([])
    if column_titles is not None:
        ax.xaxis.tick_top()
        ax.set_xticks([c * (w + pad) + (w - 1) / 2 for c in range(cols)], labels=column_titles)
    else:
        ax.set_xticks([])
    if title:
        ax.set_title(title)
    _add_caption(fig, caption)
    return fig


# --------------------------------------------------------------------- training curves


def training_curves_figure(
    history: Mapping[str, Sequence[float]],
    title: str | None = None,
    ylabel: str | None = None,
    logy: bool = False,
) -> Figure:
    """One line per key of ``history`` (e.g. ``{"train": [...], "test": [...]}``).

    Value i of a list is drawn at epoch i + 1. Lists may differ in length.
    """
    if not history:
        raise ValueError("training_curves_figure: history is empty")
    fig = Figure(figsize=(6.0, 4.0), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for name, values in history.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"training_curves_figure: {name!r} is not a list of numbers")
        epochs = np.arange(1, values.size + 1)
        ax.plot(epochs, values, marker="o" if values.size <= 30 else None, ms=3, label=name)
    ax.set_xlabel("epoch")
    # Whole epochs only (1, 2, 5 or 10 apart), even for a run of one epoch.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    if ylabel:
        ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


# -------------------------------------------------------------- 2-D latent space (VAE)


def latent_scatter_figure(
    codes: np.ndarray, labels: np.ndarray, title: str | None = None
) -> Figure:
    """Scatter of 2-D latent codes (N, 2), coloured by label (N,), one legend entry each."""
    codes = np.asarray(codes, dtype=np.float64)
    labels = np.asarray(labels)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"latent_scatter_figure: expected codes (N, 2), got {codes.shape}")
    if labels.shape != codes.shape[:1]:
        raise ValueError(
            f"latent_scatter_figure: {codes.shape[0]} codes but labels of shape {labels.shape}"
        )
    fig = Figure(figsize=(6.0, 5.0), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for i, label in enumerate(np.unique(labels)):
        chosen = labels == label
        ax.scatter(
            codes[chosen, 0],
            codes[chosen, 1],
            s=3,
            alpha=0.5,
            color=f"C{i % 10}",
            label=str(label),
            linewidths=0,
        )
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        ax.set_title(title)
    return fig


def manifold_figure(
    images: np.ndarray,
    extent: tuple[float, float, float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Images decoded from a regular grid of 2-D codes, tiled edge to edge.

    Parameters
    ----------
    images : ndarray, (R, C, H, W) or (R, C, H*W), pixel values in [0, 1]
        As laid out by :func:`npnet.analysis.latent_grid`: row 0 at the top.
    extent : (z1_min, z1_max, z2_min, z2_max), optional
        The codes of the outermost grid points (the ``extent`` given to ``latent_grid``).
        The axes then show z1 and z2, with each image centred on its code.
    """
    images = _square_images(images, 2, "manifold_figure")
    rows, cols = images.shape[:2]
    fig = Figure(figsize=(7.0, 7.0 * rows / cols + 0.3), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    axes_extent = None
    if extent is not None:
        z1_min, z1_max, z2_min, z2_max = (float(v) for v in extent)
        # Grid points are cell centres: widen by half a step so the ticks read true.
        half1 = (z1_max - z1_min) / (cols - 1) / 2 if cols > 1 else 0.5
        half2 = (z2_max - z2_min) / (rows - 1) / 2 if rows > 1 else 0.5
        axes_extent = (z1_min - half1, z1_max + half1, z2_min - half2, z2_max + half2)
    ax.imshow(
        tile_images(images, pad=0),
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=axes_extent,
    )
    if extent is None:
        ax.set_axis_off()
    else:
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return fig
