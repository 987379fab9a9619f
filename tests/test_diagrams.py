"""The diagrams of the computation in docs/figures/ are drawn by docs/diagrams.py, and current.

* ``make_diagrams`` writes every diagram as a valid PNG of a size a GitHub page shows whole
  (at most 900 px wide) and a few tens of kB, the same bytes on every run.
* The committed ``docs/figures/diagram_*.png`` have the pixels the script draws now, so a
  diagram that goes stale (a changed formula, a moved box) fails here until
  ``python docs/diagrams.py`` is run again. Each file records the matplotlib version that
  drew it; with another version text may fall on other pixels, so the comparison is skipped.
* ``write_png``, which also writes make_figures' gray figures, round-trips gray, palette and
  RGB images, and ``docs/make_figures.py --diagrams-only`` draws the diagrams and nothing else.
"""

import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load_diagrams():
    """docs/diagrams.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_diagrams", DOCS / "diagrams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


diagrams = load_diagrams()
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


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> list[Path]:
    return diagrams.make_diagrams(tmp_path_factory.mktemp("diagrams"))


def test_make_diagrams_writes_every_diagram_as_a_small_png(drawn):
    assert [path.name for path in drawn] == NAMES
    assert len(NAMES) >= 3 and all(name.startswith("diagram_") for name in NAMES)
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


def test_drawing_twice_gives_the_same_bytes(drawn, tmp_path):
    again = diagrams.make_diagrams(tmp_path)
    for first, second in zip(drawn, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


@pytest.mark.parametrize("name", NAMES)
def test_committed_diagram_is_the_one_the_script_draws(name, drawn):
    committed = DOCS / "figures" / name
    assert committed.is_file(), f"docs/figures/{name} is missing: run python docs/diagrams.py"
    made_with = png_text(committed).get("Software")
    if made_with != diagrams.software():
        pytest.skip(f"docs/figures/{name} was drawn by {made_with!r}, this is "
                    f"{diagrams.software()!r}: text may land on other pixels")
    fresh = mpimg.imread(DOCS / "figures" / name)
    now = mpimg.imread(drawn[NAMES.index(name)])
    assert fresh.shape == now.shape and np.array_equal(fresh, now), (
        f"docs/figures/{name} is stale: docs/diagrams.py now draws something else; "
        "run python docs/diagrams.py and commit the result")


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


def test_make_figures_diagrams_only_draws_the_diagrams_and_nothing_else(drawn, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(DOCS / "make_figures.py"), "--diagrams-only",
         "--figures-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(NAMES)
    for path in drawn:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()
