"""The diagrams and pictures in docs/figures/ are drawn by docs/diagrams.py, and current.

* ``docs/make_figures.py --diagrams-only`` (in another process) writes every diagram and
  nothing else, each as a valid PNG of a size a GitHub page shows whole (at most 900 px
  wide) and a few tens of kB, the same bytes as ``make_diagrams`` in this process.
* The committed ``docs/figures/diagram_*.png`` have the pixels the script draws now, so a
  diagram that goes stale (a changed formula, a moved box) fails here until
  ``python docs/diagrams.py`` is run again. Each file records the matplotlib version that
  drew it; with another version text may fall on other pixels, so the comparison is skipped.
  Chapter 10's three pictures need the MNIST files: without them they are skipped.
* What the pictures show is what npnet computes: each drawn number and line is read back
  from the figure (by its gid) and compared with npnet's functions and with the
  definitions written out here (a loop for im2col, col2im and the transposed convolution,
  the formulas of the activations and of the optimizers' rules). The grid that gives
  chapter 10's true log p(x) integrates to a distribution (the p(x) of all 2^6 binary
  images of a small model sum to 1), and the importance-sampled estimates approach it.
* ``write_png``, which also writes make_figures' gray figures, round-trips gray, palette and
  RGB images.
"""

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg
from script_helpers import have_mnist, load_script

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


diagrams = load_script(DOCS / "diagrams.py", "docs_diagrams")
NAMES = list(diagrams.DIAGRAMS)


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG file, keyword -> value."""
    data = path.read_bytes()
    texts, at = {}, 8  # after the signature: chunks of length, type, data, CRC
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        at += 12 + length
    return texts


HAVE_MNIST = have_mnist()  # chapter 10's pictures need the MNIST files
DRAWABLE = [name for name in NAMES if HAVE_MNIST or name not in diagrams.DATA_DIAGRAMS]
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="chapter 10's pictures need MNIST: "
                                 "set NPNET_DATA to the folder of its four files")


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> list[Path]:
    """Every diagram, drawn once by the command that regenerates them,
    ``docs/make_figures.py --diagrams-only``, in another process; without the MNIST files
    (which that command needs), those that need none, by ``make_diagrams``."""
    out = tmp_path_factory.mktemp("diagrams")
    if not HAVE_MNIST:
        return diagrams.make_diagrams(out, names=DRAWABLE)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(DOCS / "make_figures.py"), "--diagrams-only",
         "--figures-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.iterdir()) == sorted(NAMES)  # and nothing else
    return [out / name for name in NAMES]


def test_make_diagrams_writes_every_diagram_as_a_small_png(drawn):
    assert [path.name for path in drawn] == DRAWABLE
    assert len(NAMES) >= 12 and all(name.startswith("diagram_") for name in NAMES)
    for path in drawn:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path.name
        width, height = diagrams.png_size(path)
        assert 600 <= width <= 900 and 300 <= height <= 800, (path.name, width, height)
        assert path.stat().st_size < 60_000, f"{path.name}: {path.stat().st_size} bytes"
        pixels = mpimg.imread(path)  # a full decode: chunks, CRCs and zlib stream are valid
        assert pixels.shape[:2] == (height, width)
        gray = pixels if pixels.ndim == 2 else pixels[..., :3].mean(axis=2)
        # Drawn on white, with enough ink to be a diagram rather than an empty canvas.
        assert np.mean(gray == 1.0) > 0.6, path.name
        assert np.mean(gray < 0.5) > 0.01, path.name
        assert png_text(path)["Software"] == diagrams.software()


@pytest.mark.parametrize("name", NAMES)
def test_committed_diagram_is_the_one_the_script_draws(name, drawn):
    committed = DOCS / "figures" / name
    assert committed.is_file(), f"docs/figures/{name} is missing: run python docs/diagrams.py"
    if name not in DRAWABLE:
        pytest.skip(f"{name} needs the MNIST files")
    made_with = png_text(committed).get("Software")
    if made_with != diagrams.software():
        pytest.skip(f"docs/figures/{name} was drawn by {made_with!r}, this is "
                    f"{diagrams.software()!r}: text may land on other pixels")
    fresh = mpimg.imread(committed)
    now = mpimg.imread(drawn[DRAWABLE.index(name)])
    assert fresh.shape == now.shape, f"docs/figures/{name} is stale: it has another size"
    differ = np.mean(np.any(fresh != now, axis=-1) if fresh.ndim == 3 else fresh != now)
    # Chapter 10's pictures show trained and sampled numbers: another BLAS may round a last
    # digit differently and move a line by a pixel. A stale picture differs widely.
    allowed = 0.002 if name in diagrams.DATA_DIAGRAMS else 0.0
    assert differ <= allowed, (
        f"docs/figures/{name} is stale ({differ:.2%} of its pixels differ): docs/diagrams.py "
        "now draws something else; run python docs/diagrams.py and commit the result")


@pytest.mark.parametrize("channels", [None, 3])
def test_write_png_round_trips(tmp_path, channels):
    rng = np.random.default_rng(0)
    shape = (7, 5) if channels is None else (7, 5, channels)
    pixels = rng.integers(0, 256, shape) / 255  # RGB: 35 colours, written as a palette image
    path = tmp_path / "x.png"
    diagrams.write_png(path, pixels, text={"Software": "a test"})
    back = mpimg.imread(path)
    back = back if channels is None else back[..., :3]
    np.testing.assert_array_equal(np.round(back * 255), np.round(pixels * 255))
    assert png_text(path) == {"Software": "a test"}
    assert diagrams.png_size(path) == (5, 7)


def test_write_png_keeps_true_colour_beyond_256_colours(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (40, 30, 3)) / 255  # ~1200 colours
    path = tmp_path / "x.png"
    diagrams.write_png(path, pixels)
    assert path.read_bytes()[25] == 2  # IHDR colour type: RGB
    np.testing.assert_array_equal(np.round(mpimg.imread(path)[..., :3] * 255),
                                  np.round(pixels * 255))


def test_fewer_colours_keeps_the_most_frequent_and_maps_the_rest_to_the_nearest():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:5] = 255  # white, 50 pixels
    rgb[9, 9] = (250, 250, 250)  # a rare near-white
    rgb[9, 8] = (10, 0, 0)  # a rare near-black
    few = diagrams.fewer_colours(rgb, count=2)
    assert len(np.unique(few.reshape(-1, 3), axis=0)) == 2
    assert tuple(few[9, 9]) == (255, 255, 255) and tuple(few[9, 8]) == (0, 0, 0)
    assert diagrams.fewer_colours(few, count=2) is few  # already few enough: unchanged


def test_make_figures_diagrams_only_draws_what_make_diagrams_draws(drawn, tmp_path):
    """The same bytes from make_diagrams in this process as from make_figures in another,
    for a diagram that needs no data (the others are compared with the committed files)."""
    if not HAVE_MNIST:
        pytest.skip("make_figures draws chapter 10's pictures too, which need MNIST")
    (again,) = diagrams.make_diagrams(tmp_path, names=["diagram_im2col.png"])
    assert again.read_bytes() == drawn[NAMES.index("diagram_im2col.png")].read_bytes()


# ----------------------------------------------------------------------------------------
# What the pictures show is what npnet computes: numbers and lines read back from the
# figures, against npnet and against the definitions written out here.


def test_im2col_diagram_shows_npnet_im2col_and_the_definition():
    from npnet.patches import im2col

    fig = diagrams.im2col_diagram()
    image = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(diagrams.drawn_numbers(fig, "x"), image)
    cols = diagrams.drawn_numbers(fig, "cols")
    np.testing.assert_array_equal(cols, im2col(image[None, :, :, None], 3, 1).reshape(4, 9))
    # The definition: row (r, c), column (i, j) holds pixel (r + i, c + j), for s = 1.
    for r in range(2):
        for c in range(2):
            for i in range(3):
                for j in range(3):
                    assert cols[2 * r + c, 3 * i + j] == image[r + i, c + j]


def test_sliding_diagram_shows_one_kernel_and_npnet_conv2d_output():
    fig = diagrams.sliding_diagram()
    image, kernel, out = diagrams.sliding_example()
    np.testing.assert_array_equal(diagrams.drawn_numbers(fig, "W"), kernel)
    shown = diagrams.drawn_numbers(fig, "y")
    np.testing.assert_array_equal(shown, out)
    # The definition with the same nine weights at every position (r s, c s), s = 2.
    loop = [[np.sum(image[2 * r : 2 * r + 3, 2 * c : 2 * c + 3] * kernel) for c in range(2)]
            for r in range(2)]
    np.testing.assert_array_equal(shown, loop)


def test_col2im_diagram_counts_the_patches_each_pixel_is_in():
    fig = diagrams.col2im_diagram()
    counts = diagrams.drawn_numbers(fig, "counts")
    loop = np.zeros((7, 7))
    for r in range(3):  # the nine 3 x 3 patches of a 7 x 7 padded image at stride 2
        for c in range(3):
            loop[2 * r : 2 * r + 3, 2 * c : 2 * c + 3] += 1
    np.testing.assert_array_equal(counts, loop)
    assert set(np.unique(counts)) == {1, 2, 4}  # the chapter's 1, 2 or 4
    np.testing.assert_array_equal(counts, diagrams.col2im_example()[1])


def test_transpose_diagram_paints_one_patch_per_input_pixel():
    fig = diagrams.transpose_diagram()
    y = diagrams.drawn_numbers(fig, "y")  # the input: the chapter's y, as in A^T y
    painted = np.zeros((5, 5))
    for r in range(2):
        for c in range(2):
            painted[2 * r : 2 * r + 3, 2 * c : 2 * c + 3] += y[r, c]  # W all ones
    np.testing.assert_array_equal(diagrams.drawn_numbers(fig, "painted"), painted)
    # The checkerboard: a 4 x 4 input of ones painted on a 9 x 9 canvas, one more row and
    # column for output_padding, then p = 1 cropped from each side.
    canvas = np.zeros((10, 10))
    for r in range(4):
        for c in range(4):
            canvas[2 * r : 2 * r + 3, 2 * c : 2 * c + 3] += 1
    board = diagrams.drawn_numbers(fig, "checkerboard")
    np.testing.assert_array_equal(board, canvas[1:9, 1:9])
    np.testing.assert_array_equal(board, diagrams.transpose_example()["checkerboard"])
    assert set(np.unique(board)) == {1, 2, 4}


def lines_by_gid(fig) -> dict:
    """Every Line2D of a figure that has a gid, gid -> (xdata, ydata)."""
    from matplotlib.lines import Line2D

    return {line.get_gid(): (np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
            for line in fig.findobj(Line2D) if line.get_gid()}


def test_activation_figure_draws_the_layers_values_and_derivatives():
    lines = lines_by_gid(diagrams.activations_figure(points=81))
    x = lines["sigmoid f"][0]
    alpha = diagrams.LEAKY_ALPHA
    sigma, tanh = 1 / (1 + np.exp(-x)), np.tanh(x)
    expected = {
        "sigmoid": (sigma, sigma * (1 - sigma)),
        "tanh": (tanh, 1 - tanh**2),
        "ReLU": (np.maximum(x, 0), (x > 0).astype(float)),
        "leaky ReLU": (np.where(x > 0, x, alpha * x), np.where(x > 0, 1.0, alpha)),
    }
    assert len(lines) == 8
    for name, (f, df) in expected.items():
        np.testing.assert_allclose(lines[f"{name} f"][1], f, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(lines[f"{name} df"][1], df, atol=1e-12, err_msg=name)
        # The drawn derivative is the slope of the drawn curve, away from the kink at 0.
        mid = (x[1:] + x[:-1]) / 2
        slope = np.diff(lines[f"{name} f"][1]) / np.diff(x)
        away = np.abs(mid) > 0.2
        np.testing.assert_allclose(slope[away], np.interp(mid, x, df)[away], atol=0.02)


def by_hand(name: str, steps: int) -> np.ndarray:
    """The optimizers' rules of chapter 5 on the valley, written out with Python floats."""
    c, eta, gamma, b1, b2, eps = diagrams.VALLEY, diagrams.LEARNING_RATE, 0.9, 0.9, 0.999, 1e-8
    path = [list(diagrams.VALLEY_START)]
    for axis in range(2):
        theta, u, m, v = diagrams.VALLEY_START[axis], 0.0, 0.0, 0.0
        for t in range(1, steps + 1):
            g = c[axis] * theta
            if name == "SGD":
                theta -= eta * g
            elif name in ("momentum", "Nesterov"):
                u = gamma * u + g
                theta -= eta * (g + gamma * u if name == "Nesterov" else u)
            else:
                m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
                theta -= eta * (m / (1 - b1**t)) / ((v / (1 - b2**t)) ** 0.5 + eps)
            if axis == 0:
                path.append([theta, 0.0])
            else:
                path[t][1] = theta
    return np.array(path)


def test_optimizer_figure_draws_npnets_own_updates():
    steps = 12
    lines = lines_by_gid(diagrams.optimizer_figure(steps=steps))
    for name in diagrams.OPTIMIZERS:
        path = diagrams.optimizer_path(name, steps)
        np.testing.assert_allclose(path, by_hand(name, steps), rtol=1e-12, atol=1e-14,
                                   err_msg=name)
        np.testing.assert_array_equal(np.column_stack(lines[f"path {name}"]), path)


def test_step_size_figure_draws_npnets_check_and_shows_both_errors():
    """The float64 curve is npnet.gradcheck's own check at each h (numerical_gradient and
    relative_error); it falls as h^2 towards small h until rounding takes over, with its
    best near the chapter's 10^-5; float32's best is five decades worse, and far from it."""
    from npnet.gradcheck import check_layer

    hs = diagrams.STEP_SIZES
    lines = lines_by_gid(diagrams.step_size_figure(hs))
    f64, f32 = lines["float64"][1], lines["float32"][1]
    np.testing.assert_array_equal(lines["float64"][0], hs)
    layer, x, _ = diagrams.checked_layer()
    layer.forward(x)
    # the same kind of check as check_layer's (its own random dout), at the chapter's h
    assert max(check_layer(layer, x, rng=0).values()) < 1e-8
    best64, best32 = hs[np.argmin(f64)], hs[np.argmin(f32)]
    assert 1e-7 <= best64 <= 1e-4 and f64.min() < 1e-9
    assert f32.min() > 1e4 * f64.min() and best32 > 10 * best64
    big = hs > 1e-3  # truncation: h ten times larger, error about a hundred times larger
    np.testing.assert_allclose(np.diff(np.log10(f64[big])) / np.diff(np.log10(hs[big])), 2,
                               atol=0.3)
    assert f64[0] > 1e4 * f64.min()  # rounding at h = 10^-12


def test_momentum_and_adam_do_what_the_chapter_says_on_the_valley():
    final = {name: diagrams.valley(diagrams.optimizer_path(name)[-1])[0]
             for name in diagrams.OPTIMIZERS}
    # With the same eta, plain SGD crawls along the flat floor; the others get far closer.
    assert all(final["SGD"] > 10 * final[name] for name in ("momentum", "Nesterov", "Adam"))
    # Adam's second-moment scaling: its first steps move both coordinates by about eta,
    # though the valley is 120 times steeper across than along.
    first = np.abs(np.diff(diagrams.optimizer_path("Adam", 3), axis=0))
    np.testing.assert_allclose(first[0], diagrams.LEARNING_RATE, rtol=1e-6)
    sgd_first = np.abs(np.diff(diagrams.optimizer_path("SGD", 1), axis=0))[0]
    assert sgd_first[1] > 20 * sgd_first[0]  # SGD's first step: mostly across the valley


# Chapter 10 on a model small enough to integrate over every image: D = 6 pixels.


@pytest.fixture(scope="module")
def small_vae():
    rng = np.random.default_rng(0)
    pattern = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]])
    x = pattern[rng.integers(0, 3, 300)]
    x = np.abs(x - (rng.random(x.shape) < 0.1)).astype(np.float64)  # flip 10% of pixels
    model = diagrams.train_latent_2d(x, hidden=(8,), steps=150, batch_size=30, lr=1e-2)
    return model, x


def test_the_grid_posterior_integrates_to_a_distribution(small_vae):
    import itertools

    model, _ = small_vae
    images = np.array(list(itertools.product([0.0, 1.0], repeat=6)))
    log_px = [diagrams.posterior_on_grid(model, image[None], n=61, coarse=41)["log_px"]
              for image in images]
    assert np.isclose(np.sum(np.exp(log_px)), 1.0, atol=2e-3)  # sum over all 2^6 images


def test_importance_estimates_approach_the_grid_value_as_k_grows(small_vae):
    model, x = small_vae
    image = x[:1]
    grid = diagrams.posterior_on_grid(model, image, n=81, coarse=41)
    finer = diagrams.posterior_on_grid(model, image, n=161, coarse=81)
    assert abs(grid["log_px"] - finer["log_px"]) < 1e-4  # the grid has converged
    ks = [1, 10, 100, 1000]
    study = diagrams.estimates_against_k(model, image, ks, seeds=4, k_max=1000)
    bias = grid["log_px"] - study["mean"]
    assert np.all(bias[:-1] > 0) and np.all(np.diff(bias) < 0)  # below log p(x), rising
    assert abs(bias[-1]) < 0.01 < bias[0]
    # k = 1: the mean log-weight, the ELBO, lies below log p(x) by KL(q || p(z|x)) > 0.
    assert np.isclose(study["mean"][0], study["log_w"].mean())
    # Each run's curve is log-mean-exp of its first k log-weights, npnet's own.
    from npnet.importance import log_mean_exp, log_weights

    eps = np.random.default_rng(2).standard_normal((1, 1000, 2))
    np.testing.assert_array_equal(study["log_w"][2], log_weights(model, image, 1000, eps=eps)[0])
    np.testing.assert_allclose(study["curves"][2], [log_mean_exp(study["log_w"][2][:k])
                                                    for k in ks])
    w = diagrams.normalised_weights(study["log_w"][0])
    np.testing.assert_allclose(w, np.exp(study["log_w"][0]) / np.exp(study["log_w"][0]).sum())


@needs_mnist
def test_chapter_10_pictures_show_the_bias_shrinking_towards_the_grid_value():
    study = diagrams.likelihood_study()  # computed once per process, as for the drawing
    lines = lines_by_gid(diagrams.bias_figure(study))
    for index in (0, 1):
        ks, mean = lines[f"mean {index}"]
        log_px = lines[f"log p(x) {index}"][1][0]
        assert log_px == study["grids"][index]["log_px"]
        bias = log_px - mean
        assert bias[0] > 1 and 0 <= bias[-1] < 0.2  # nats: from the ELBO's gap to nearly 0
        assert np.all(np.diff(bias) < 0.03)  # falling with k, to the noise of the mean
    # Digit 19, where q covers the posterior: the chapter's 1/k law, once k is large.
    ks, mean = lines["mean 1"]
    law = lines["law 1"][1]
    large = ks >= 200
    np.testing.assert_allclose(mean[large], law[large], atol=0.02)
    # The samples drawn in the first picture are the codes of the first log-weights.
    grid, est = study["grids"][0], study["estimates"][0]
    from npnet.importance import log_weights

    z = grid["mu"] + grid["sigma"] * est["eps"][0, :5]
    fig = diagrams.importance_samples_figure(study)
    offsets = [c for c in fig.findobj() if c.get_gid() == "samples"][0].get_offsets()
    np.testing.assert_allclose(offsets[:5], z)
    np.testing.assert_allclose(log_weights(study["model"], study["images"][0], 5,
                                           eps=est["eps"][:1, :5])[0], est["log_w"][0, :5])
