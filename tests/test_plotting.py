"""Plotting: the signed-gray scale in numbers, then the figures agree with it, then the files."""

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.backends.backend_agg import FigureCanvasAgg

from npnet.plotting import (
    image_grid_figure,
    latent_scatter_figure,
    manifold_figure,
    mark_smoke_test,
    residual_pca_titles,
    save_figure,
    signed_gray,
    signed_gray_limits,
    signed_images_figure,
    tile_images,
    training_curves_figure,
    wrap_evenly,
)

# A 0/0 in the scale, or matplotlib complaining about a layout, fails the test.
pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::UserWarning"),
]

# The gray colormap is a 256-entry lookup table: rendering quantises to steps of 1/255.
LUT_STEP = 1 / 255

image_stacks = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5)),
    elements=st.one_of(st.just(0.0), st.floats(-1e3, 1e3)),
)


# ------------------------------------------------------------------- signed-gray scale


@given(images=image_stacks, shared=st.booleans())
def test_limits_are_the_largest_absolute_values(images, shared):
    limits = signed_gray_limits(images, shared=shared)
    assert limits.shape == (images.shape[0],)
    assert np.all(limits > 0)
    per_image = np.abs(images).max(axis=(1, 2))
    expected = np.full_like(per_image, per_image.max()) if shared else per_image
    np.testing.assert_array_equal(limits, np.where(expected > 0, expected, 1.0))


@given(images=image_stacks, shared=st.booleans())
def test_zero_is_mid_gray_and_the_extremes_are_black_or_white(images, shared):
    limits = signed_gray_limits(images, shared=shared)
    gray = signed_gray(images, limits)
    assert gray.shape == images.shape
    assert np.all((gray >= 0) & (gray <= 1))
    assert np.all(gray[images == 0] == 0.5)
    # Every image reaches an end of its scale exactly at +-limit ...
    for image, g, m in zip(images, gray, limits, strict=True):
        assert np.all(g[image == m] == 1.0)
        assert np.all(g[image == -m] == 0.0)
    # ... and with a shared scale, only the image holding the overall extreme reaches it.
    if shared:
        overall = np.abs(images).max()
        reaches_an_end = np.any((gray == 0) | (gray == 1), axis=(1, 2))
        holds_the_extreme = np.any(np.abs(images) == overall, axis=(1, 2)) & (overall > 0)
        np.testing.assert_array_equal(reaches_an_end, holds_the_extreme)


@given(images=image_stacks)
def test_gray_is_linear_in_the_value(images):
    m = signed_gray_limits(images, shared=True)[0]
    gray = signed_gray(images, m)
    # Divide by m first: 0.5 * 5e-324 underflows to 0, 5e-324 / 5e-324 does not.
    np.testing.assert_allclose(gray, 0.5 + (images / m) / 2, atol=1e-15)
    # Doubling the scale halves every distance from mid gray.
    np.testing.assert_allclose(signed_gray(images, 2 * m) - 0.5, (gray - 0.5) / 2, atol=1e-15)


def test_constant_zero_image_is_mid_gray_without_dividing_by_zero():
    zeros = np.zeros((2, 4, 4))
    for shared in (True, False):
        limits = signed_gray_limits(zeros, shared=shared)
        np.testing.assert_array_equal(limits, [1.0, 1.0])
        np.testing.assert_array_equal(signed_gray(zeros, limits), 0.5)
    mixed = np.stack([np.zeros((2, 2)), np.full((2, 2), -3.0)])
    np.testing.assert_array_equal(signed_gray_limits(mixed, shared=False), [1.0, 3.0])
    np.testing.assert_array_equal(signed_gray_limits(mixed, shared=True), [3.0, 3.0])


def test_values_beyond_the_limit_are_clipped_and_bad_limits_refused():
    np.testing.assert_array_equal(signed_gray(np.array([-5.0, 5.0]), 1.0), [0.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        signed_gray(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="3 limits"):
        signed_gray(np.zeros((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        signed_gray_limits(np.full((1, 2, 2), np.nan))


def test_residual_pca_titles():
    assert residual_pca_titles([0.1234, 0.05]) == [
        "mean residual",
        "PC 1 (12.3% var)",
        "PC 2 (5.0% var)",
    ]


# ------------------------------------------------- the figures use exactly that scale


def signed_stack():
    """Six 28 x 28 images of different ranges, one of them zero everywhere."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((6, 784)) * np.array([0.1, 1.0, 2.0, 0.5, 0.0, 3.0])[:, None]
    return images


@pytest.mark.parametrize("shared", [True, False])
def test_signed_figure_images_use_the_signed_gray_scale(shared):
    images = signed_stack()
    titles = residual_pca_titles(np.full(5, 0.1))
    fig = signed_images_figure(images, titles, shared=shared)
    shown = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(shown) == 6
    limits = signed_gray_limits(images, shared=shared)
    for im, image, m, title in zip(shown, images, limits, titles, strict=True):
        data = np.asarray(im.get_array())
        np.testing.assert_array_equal(data, image.reshape(28, 28))
        assert im.cmap.name == "gray"
        assert (im.norm.vmin, im.norm.vmax) == (-m, m)
        assert im.norm(0.0) == 0.5
        rgba = im.to_rgba(data)
        np.testing.assert_allclose(rgba[..., 0], signed_gray(data, m), atol=LUT_STEP)
        np.testing.assert_array_equal(rgba[..., 0], rgba[..., 2])  # gray: R = G = B
        assert im.axes.get_title() == title
    colorbars = [ax for ax in fig.axes if not ax.images]
    n_colorbars = sum(1 for ax in colorbars if ax.get_label() == "<colorbar>")
    assert n_colorbars == (1 if shared else 6)


def pixels_at_centres(fig, axes):
    """The rendered RGB (0-255) at the centre of each of ``axes``, read from the Agg canvas."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    buffer = np.asarray(canvas.buffer_rgba())
    pixels = []
    for ax in axes:
        box = ax.get_window_extent()
        column = int((box.x0 + box.x1) / 2)
        row = buffer.shape[0] - int((box.y0 + box.y1) / 2)  # display y runs upwards
        pixels.append(buffer[row, column, :3])
    return np.array(pixels)


@pytest.mark.parametrize("shared", [True, False])
def test_rendered_pixels_are_mid_gray_at_zero_and_white_at_the_limit(shared):
    # Constant images: 0, +2, -2, +1. The limit is 2 (shared) or each image's own value.
    values = np.array([0.0, 2.0, -2.0, 1.0])
    images = np.ones((4, 8, 8)) * values[:, None, None]
    fig = signed_images_figure(images, shared=shared, n_cols=4)
    axes = [ax for ax in fig.axes if ax.images]
    rendered = pixels_at_centres(fig, axes)
    assert np.all(rendered == rendered[:, :1])  # gray
    mid = round(0.5 * 255)
    expected = [mid, 255, 0, round(0.75 * 255) if shared else 255]
    np.testing.assert_allclose(rendered[:, 0], expected, atol=1)


def test_image_grid_is_pixel_gray_from_black_to_white():
    images = np.random.default_rng(1).random((3, 4, 784))
    fig = image_grid_figure(
        images, row_labels=["clean", "noisy", "denoised"], column_titles=list("abcd")
    )
    (ax,) = fig.axes
    (im,) = ax.images
    assert im.cmap.name == "gray"
    assert (im.norm.vmin, im.norm.vmax) == (0.0, 1.0)
    np.testing.assert_array_equal(im.get_array(), tile_images(images))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["clean", "noisy", "denoised"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    # Row labels sit at the centres of the rows of cells (28 pixels + 2 of gutter).
    np.testing.assert_allclose(ax.get_yticks(), [13.5, 43.5, 73.5])


def test_tile_images_places_each_cell_and_fills_the_gutters():
    images = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    tiled = tile_images(images, pad=1, pad_value=-1.0)
    assert tiled.shape == (2 * 2 + 1, 3 * 2 + 2)
    for r in range(2):
        for c in range(3):
            np.testing.assert_array_equal(tiled[3 * r : 3 * r + 2, 3 * c : 3 * c + 2], images[r, c])
    assert np.all(tiled[2, :] == -1.0) and np.all(tiled[:, [2, 5]] == -1.0)
    np.testing.assert_array_equal(
        tile_images(images.reshape(2, 3, 4), pad=1, pad_value=-1.0), tiled
    )


def test_bad_shapes_and_label_counts_are_refused():
    with pytest.raises(ValueError, match="square number"):
        signed_images_figure(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="2 images but 3 titles"):
        signed_images_figure(np.zeros((2, 784)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="3 rows but 2 row labels"):
        image_grid_figure(np.zeros((3, 2, 784)), row_labels=["a", "b"])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        latent_scatter_figure(np.zeros((5, 3)), np.zeros(5))


def test_training_curves_draw_one_line_per_key_against_epochs():
    history = {"train": [3.0, 2.0, 1.5], "test": [3.5, 2.5]}
    fig = training_curves_figure(history, title="loss", ylabel="L", logy=True)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["train", "test"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[1].get_ydata(), [3.5, 2.5])
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize("epochs", [1, 2, 3, 12, 20, 30, 240])
def test_training_curves_tick_whole_epochs_only(epochs):
    fig = training_curves_figure({"loss": np.linspace(2.0, 1.0, epochs)})
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    low, high = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if low <= t <= high]
    assert shown and all(t == int(t) for t in shown), shown
    assert low <= 1 <= high and low <= epochs <= high


@given(words=st.lists(st.text("abcdefghij", min_size=1, max_size=12), min_size=1,
                      max_size=60), width=st.integers(20, 120))
def test_wrap_evenly_needs_no_more_lines_than_textwrap_and_leaves_no_word_alone(words, width):
    import textwrap

    text = " ".join(words)
    lines = wrap_evenly(text, width).split("\n")
    assert " ".join(lines).split() == words  # a wrap of text: words intact, in order
    assert all(line == line.strip() and "  " not in line for line in lines)
    assert len(lines) == len(textwrap.wrap(text, width))
    assert all(len(line) <= width for line in lines)
    if len(lines) > 1 and len(words[-1]) + len(words[-2]) + 1 <= width:
        assert " " in lines[-1]  # the last word has company


def test_the_interpolation_caption_ends_with_more_than_a_word():
    """The caption of vae_interp.py's figures, at their width, used to end in a line of one
    word."""
    caption = ("Columns 1 and 9: real test images. Columns 2-8: decoded from "
               "z = (1 - tau) mu_A + tau mu_B, tau = i/8 (Bernoulli means).")
    fig = image_grid_figure(np.zeros((10, 9, 784)), caption=caption)
    (text,) = fig.texts
    lines = text.get_text().split("\n")
    assert len(lines) == 2 and min(map(len, lines)) > 20


def test_a_smoke_test_note_is_drawn_above_the_figure_and_recorded_in_the_png(tmp_path):
    import PIL.Image

    note = "SMOKE TEST (--quick): 1 epoch on 2,000 images, not a trained model"
    plain = assert_png(save_figure(training_curves_figure({"loss": [2.0, 1.0]}, "t"),
                                   tmp_path / "plain.png", run_id="r"))
    marked_fig = mark_smoke_test(training_curves_figure({"loss": [2.0, 1.0]}, "t"), note)
    marked = assert_png(save_figure(marked_fig, tmp_path / "marked.png", run_id="r"))
    assert marked.shape[0] > plain.shape[0]  # the note is inside the saved image, on top
    assert not np.array_equal(marked[: marked.shape[0] - plain.shape[0]], np.ones_like(
        marked[: marked.shape[0] - plain.shape[0]]))  # and drawn there, not blank
    with PIL.Image.open(tmp_path / "marked.png") as image:
        assert image.text == {"npnet run": "r", "npnet note": note, **{
            k: v for k, v in image.text.items() if k not in ("npnet run", "npnet note")}}
    with PIL.Image.open(tmp_path / "plain.png") as image:
        assert "npnet note" not in image.text


def test_latent_scatter_has_one_group_per_label():
    rng = np.random.default_rng(2)
    fig = latent_scatter_figure(rng.standard_normal((100, 2)), rng.integers(0, 4, 100))
    assert len(fig.axes[0].collections) == 4


def test_manifold_centres_each_image_on_its_code():
    fig = manifold_figure(np.zeros((3, 5, 784)), extent=(-1.0, 1.0, -2.0, 2.0))
    (im,) = fig.axes[0].images
    # 5 columns over [-1, 1]: step 0.5, so the image spans [-1.25, 1.25]; rows step 2.
    np.testing.assert_allclose(im.get_extent(), (-1.25, 1.25, -3.0, 3.0))


# ------------------------------------------------------------------------------- files


def assert_png(path, max_bytes=300_000):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert min(pixels.shape[:2]) > 100
    assert path.stat().st_size < max_bytes
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []  # atomic_write renamed its temporary file
    return pixels


def test_every_figure_saves_as_a_png(tmp_path):
    rng = np.random.default_rng(3)
    signed = signed_stack()
    titles = residual_pca_titles(np.full(5, 0.02))
    caption = "PCs are unit vectors; the mean residual is in pixel units."
    figures = {
        "a.png": signed_images_figure(signed, titles, True, "(a)", caption),
        "b.png": signed_images_figure(signed, titles, False, "(b)", caption),
        "pairs.png": image_grid_figure(
            rng.random((10, 9, 784)) ** 4,
            row_labels=[f"{d} -> {d}" for d in range(10)],
            title="same digit",
            caption="Columns 1 and 9 are real test images, 2-8 decoded.",
        ),
        "curves.png": training_curves_figure({"train": [1.0, 0.5]}, "loss", "L"),
        "latent.png": latent_scatter_figure(
            rng.standard_normal((300, 2)), rng.integers(0, 10, 300)
        ),
        "manifold.png": manifold_figure(rng.random((4, 4, 784)), (-2, 2, -2, 2)),
    }
    for name, figure in figures.items():
        assert save_figure(figure, tmp_path / name) == tmp_path / name
        assert_png(tmp_path / name)


def test_caption_and_suptitle_make_the_figure_taller(tmp_path):
    images = signed_stack()
    plain = assert_png(save_figure(signed_images_figure(images), tmp_path / "plain.png"))
    annotated = assert_png(
        save_figure(
            signed_images_figure(images, suptitle="title", caption="a caption"),
            tmp_path / "annotated.png",
        )
    )
    assert annotated.shape[0] > plain.shape[0]


def test_save_figure_refuses_unknown_formats(tmp_path):
    fig = training_curves_figure({"loss": [1.0]})
    with pytest.raises(ValueError, match="png"):
        save_figure(fig, tmp_path / "curves.jpg")
    assert list(tmp_path.iterdir()) == []


def test_plotting_never_imports_pyplot():
    code = "import sys, npnet.plotting; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
