"""MNIST data layer: reading IDX files, damaged files, where files are found, downloads.

Everything except the last test runs on tiny fake IDX files encoded here from the format
description; downloads go to a local HTTP server on 127.0.0.1, never to the real network.
"""

import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import threading
import tracemalloc
from functools import cache, partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npnet import data
from npnet.data import (
    MNIST_FILES,
    MNISTError,
    MNISTNotFoundError,
    download_mnist,
    find_mnist_dir,
    load_mnist,
    read_idx,
)

FILE_STEMS = [*MNIST_FILES["train"], *MNIST_FILES["test"]]

# Hypothesis reuses one tmp_path across examples; each example overwrites its own file.
reuses_tmp_path = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
# Damaged files must fail fast: a tiny file that takes a second to reject is a hang.
fails_fast = settings(
    max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ---------------------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------------------


def idx_arrays():
    """Small uint8 arrays of shape (N,) (labels) or (N, rows, cols) (images), N >= 1."""
    n, side = st.integers(1, 6), st.integers(1, 5)
    shapes = st.one_of(st.tuples(n), st.tuples(n, side, side))
    return shapes.flatmap(lambda shape: arrays(np.uint8, shape))


def idx_bytes(array, gz):
    """An IDX file's bytes, encoded here from the format description, not by npnet.

    Magic 0x00000801 / 0x00000803 (unsigned bytes, 1 or 3 dimensions), each dimension as a
    big-endian uint32, then the array's bytes in C order.
    """
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    content = header + array.tobytes()
    return gzip.compress(content) if gz else content


def write_idx(path, array):
    """Write ``array`` as an IDX file, gzip-compressed if the name ends in .gz."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(idx_bytes(array, gz=str(path).endswith(".gz")))


def write_fake_mnist(directory, n_train=6, n_test=4, gz=True, seed=0):
    """Write the four MNIST files with random 28 x 28 images; return the arrays by stem."""
    rng = np.random.default_rng(seed)
    contents = {}
    for split, n in (("train", n_train), ("test", n_test)):
        image_stem, label_stem = MNIST_FILES[split]
        contents[image_stem] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        contents[label_stem] = rng.integers(0, 10, size=n, dtype=np.uint8)
    directory = Path(directory)
    for stem, array in contents.items():
        write_idx(directory / (stem + ".gz" if gz else stem), array)
    return contents


def pretend_originals(monkeypatch, contents):
    """Make npnet take the arrays of ``contents`` (by stem) for the original MNIST files:
    their checksums and counts replace the real ones, so verification runs on tiny files."""
    checksums = {
        stem: hashlib.md5(idx_bytes(array, gz=False)).hexdigest()
        for stem, array in contents.items()
    }
    monkeypatch.setattr(data, "MNIST_IDX_MD5", checksums)
    counts = {split: len(contents[stems[0]]) for split, stems in MNIST_FILES.items()}
    monkeypatch.setattr(data, "MNIST_COUNTS", counts)


@pytest.fixture(autouse=True)
def private_npnet_cache(tmp_path, monkeypatch):
    """Each test gets its own npnet cache (NPNET_CACHE): the machine's is never read or written."""
    monkeypatch.setenv("NPNET_CACHE", str(tmp_path / "npnet-cache"))
    return tmp_path / "npnet-cache"


@pytest.fixture
def fake_originals(tmp_path, monkeypatch):
    """A folder with tiny fake MNIST files (6 training, 4 test images) that npnet takes for
    the originals (see pretend_originals); returns (folder, contents by stem)."""
    folder = tmp_path / "mnist"
    contents = write_fake_mnist(folder, n_train=6, n_test=4)
    pretend_originals(monkeypatch, contents)
    return folder, contents


@pytest.fixture
def no_mnist_anywhere(tmp_path, monkeypatch):
    """An environment where no MNIST can be found: empty home, empty cache, no NPNET_DATA,
    no NPNET_CACHE, and data_mnist/ beside the project moved to tmp_path/data_mnist (which
    does not exist).

    Returns the user cache directory npnet will use (it does not exist yet).
    """
    monkeypatch.delenv("NPNET_DATA", raising=False)
    monkeypatch.delenv("NPNET_CACHE", raising=False)
    monkeypatch.setattr(data, "BESIDE_PROJECT_DIR", tmp_path / "data_mnist")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "npnet" / "mnist"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving fake gzip MNIST files.

    Sets ``npnet.data.MNIST_MD5`` to the MD5 table of the served .gz files, makes npnet take
    them for the originals (pretend_originals) and yields (base_url, contents): the mirror's
    URL ending in "/" and the arrays served, by stem.
    """
    served = tmp_path / "served"
    contents = write_fake_mnist(served, gz=True, seed=1)
    checksums = {
        stem + ".gz": hashlib.md5((served / (stem + ".gz")).read_bytes()).hexdigest()
        for stem in FILE_STEMS
    }
    monkeypatch.setattr(data, "MNIST_MD5", checksums)
    pretend_originals(monkeypatch, contents)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(QuietHandler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", contents
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------
# IDX files: reading and damage
# ---------------------------------------------------------------------------------------


@reuses_tmp_path
@given(array=idx_arrays(), gz=st.booleans())
def test_read_idx_reads_what_the_format_describes(tmp_path, array, gz):
    path = tmp_path / ("idx.gz" if gz else "idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_compression_is_recognised_by_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "really-gzip").write_bytes(idx_bytes(labels, gz=True))  # gzip, no .gz
    (tmp_path / "looks-gzip.gz").write_bytes(idx_bytes(labels, gz=False))  # raw, named .gz
    np.testing.assert_array_equal(read_idx(tmp_path / "really-gzip"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks-gzip.gz"), labels)


@reuses_tmp_path
@given(array=idx_arrays(), cut=st.floats(0, 1))
def test_a_gzip_file_of_several_members_reads_whole(tmp_path, array, cut):
    """gzip allows members one after another (``cat a.gz b.gz``): they read as one stream."""
    raw = idx_bytes(array, gz=False)
    at = int(cut * len(raw))
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(raw[:at]) + gzip.compress(raw[at:]))
    np.testing.assert_array_equal(read_idx(path), array)


@fails_fast
@given(array=idx_arrays(), gz=st.booleans(), data_=st.data())
def test_truncated_file_raises_mnist_error(tmp_path, array, gz, data_):
    whole = idx_bytes(array, gz)
    cut = data_.draw(st.integers(0, len(whole) - 1), label="cut")
    path = tmp_path / "truncated"
    path.write_bytes(whole[:cut])
    with pytest.raises(MNISTError, match="damaged"):
        read_idx(path)


@fails_fast
@given(
    array=idx_arrays(),
    gz=st.booleans(),
    # Neither IDX magic number nor the gzip signature 1f 8b (that would be a gzip error).
    magic=st.integers(0, 2**32 - 1).filter(lambda m: m not in (2049, 2051) and m >> 16 != 0x1F8B),
)
def test_wrong_magic_number_raises_mnist_error(tmp_path, array, gz, magic):
    raw = bytearray(idx_bytes(array, gz=False))
    raw[:4] = magic.to_bytes(4, "big")
    path = tmp_path / "wrong-magic"
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    with pytest.raises(MNISTError, match="magic number"):
        read_idx(path)


@fails_fast
@given(array=idx_arrays(), gz=st.booleans(), new_size=st.integers(0, 2**32 - 1), data_=st.data())
def test_wrong_dimension_raises_mnist_error(tmp_path, array, gz, new_size, data_):
    axis = data_.draw(st.integers(0, array.ndim - 1), label="axis")
    wrong_shape = list(array.shape)
    wrong_shape[axis] = new_size
    assume(np.prod(wrong_shape, dtype=object) != array.size)
    raw = bytearray(idx_bytes(array, gz=False))
    raw[4 + 4 * axis : 8 + 4 * axis] = new_size.to_bytes(4, "big")
    path = tmp_path / "wrong-dims"
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    with pytest.raises(MNISTError, match="header says"):
        read_idx(path)


def spliced_garbage(array, gz, garbage, at, replace):
    """A valid IDX file with ``garbage`` written over (or inserted) at fraction ``at``."""
    whole = idx_bytes(array, gz)
    start = int(at * len(whole))
    end = start + len(garbage) if replace else start
    return whole[:start] + garbage + whole[end:]


garbage_files = st.one_of(
    st.binary(max_size=200),  # not an IDX file at all
    st.builds(
        spliced_garbage,
        idx_arrays(),
        st.booleans(),
        st.binary(min_size=1, max_size=16),
        st.floats(0, 1),
        st.booleans(),
    ),
    st.builds(lambda b: gzip.compress(b), st.binary(max_size=200)),  # gzip of garbage
)


@fails_fast
@given(content=garbage_files)
def test_garbage_gives_an_array_or_mnist_error_nothing_else(tmp_path, content):
    """Garbage may happen to be a valid IDX file; if not, the only error is MNISTError."""
    path = tmp_path / "garbage"
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except MNISTError:
        return
    assert array.dtype == np.uint8 and array.ndim in (1, 3)


@fails_fast
@given(
    damaged_stem=st.sampled_from(FILE_STEMS),
    content=st.one_of(garbage_files, st.builds(bytes, st.just(b""))),
    split=st.sampled_from(["train", "test"]),
    verify=st.booleans(),
)
def test_load_mnist_with_a_damaged_file_raises_only_mnist_error(
    tmp_path, monkeypatch, damaged_stem, content, split, verify
):
    folder = tmp_path / "mnist"
    pretend_originals(monkeypatch, write_fake_mnist(folder, gz=True))  # intact, then damaged
    (folder / (damaged_stem + ".gz")).write_bytes(content)
    try:
        images, labels = load_mnist(split, data_dir=folder, download=False, verify=verify)
    except MNISTError:
        return
    # Garbage that happens to form a valid file (or damage to the other split's files)
    # must still give consistent arrays.
    assert images.shape[1:] == (784,) and len(images) == len(labels)
    assert labels.min() >= 0 and labels.max() <= 9


# A gzip bomb: a small .gz file that expands far beyond what its IDX header promises.
BOMB_ZERO_MEMBERS = 20  # gzip members of 10 MiB of zeros each: 200 MiB from ~200 kB


@cache
def gzip_bomb(shape):
    """A gzip file whose IDX header says ``shape`` but whose stream expands to 200 MiB more."""
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    zeros = gzip.compress(bytes(10 << 20), compresslevel=9)
    return gzip.compress(header) + zeros * BOMB_ZERO_MEMBERS


def peak_memory_of(call):
    """The peak of memory Python allocated while ``call()`` ran, in bytes."""
    tracemalloc.start()
    try:
        call()
    except MNISTError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(
    "shape, budget",
    [((4, 28, 28), 10e6), ((2**32 - 1, 28, 28), 10e6), ((60_000, 28, 28), 2.5 * 47.04e6)],
    ids=["small", "huge", "mnist"],
)
def test_gzip_bomb_is_refused_without_growing_memory(tmp_path, shape, budget):
    """The header is read first: a size no gzip file of this length can hold is refused at
    once, and a plausible one bounds decompression (one byte more shows the excess). The
    budget: the file, and twice what the header promises (zlib joins its output blocks)."""
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip_bomb(shape))
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(MNISTError, match="header says"):
        read_idx(bomb)
    assert peak_memory_of(lambda: read_idx(bomb)) < budget  # 420 MB before the fix


def test_gzip_bomb_in_the_data_folder_is_refused_by_load_mnist(fake_originals):
    folder, _ = fake_originals
    bomb = folder / "t10k-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip_bomb((4, 28, 28)))
    for verify in (True, False):
        with pytest.raises(MNISTError, match=f"{bomb}.*header says .* holds more"):
            load_mnist("test", data_dir=folder, download=False, verify=verify)
    load = partial(load_mnist, "test", data_dir=folder, download=False)
    assert peak_memory_of(load) < 10_000_000


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_a_file_far_larger_than_its_header_is_refused_unread(tmp_path, gz):
    """A 40 GiB (sparse) file whose header promises 4 images is refused from its size,
    before anything past the header is read."""
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28), np.uint8), gz))
    with open(path, "r+b") as f:
        f.truncate(40 << 30)
    with pytest.raises(MNISTError, match="header says 4 x 28 x 28 = 3136 bytes .* holds more"):
        read_idx(path)
    assert peak_memory_of(lambda: read_idx(path)) < 1_000_000


def test_missing_file_is_mnist_not_found_error(tmp_path):
    with pytest.raises(MNISTNotFoundError, match="does not exist") as caught:
        read_idx(tmp_path / "nothing-here.gz")
    assert isinstance(caught.value, FileNotFoundError)


# ---------------------------------------------------------------------------------------
# load_mnist on fake files
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_scales_to_float32_unit_range(tmp_path, gz):
    contents = write_fake_mnist(tmp_path, n_train=5, n_test=3, gz=gz)
    images, labels = load_mnist("train", data_dir=tmp_path, download=False, verify=False)
    assert images.shape == (5, 784) and images.dtype == np.float32
    assert labels.shape == (5,) and labels.dtype == np.int64
    np.testing.assert_array_equal(
        images, (contents["train-images-idx3-ubyte"] / 255.0).astype(np.float32).reshape(5, 784)
    )
    np.testing.assert_array_equal(labels, contents["train-labels-idx1-ubyte"])

    grids, _ = load_mnist("test", data_dir=tmp_path, flatten=False, download=False, verify=False)
    assert grids.shape == (3, 28, 28) and grids.dtype == np.float32
    assert grids.min() >= 0.0 and grids.max() <= 1.0


def test_unknown_split_is_value_error(tmp_path):
    write_fake_mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", data_dir=tmp_path, download=False)


def test_image_and_label_count_mismatch_raises(tmp_path):
    write_fake_mnist(tmp_path, n_train=6)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(MNISTError, match="6 images but .* 7 labels"):
        load_mnist("train", data_dir=tmp_path, download=False, verify=False)


def test_swapped_image_and_label_files_raise(tmp_path):
    contents = write_fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", contents["t10k-labels-idx1-ubyte"])
    with pytest.raises(MNISTError, match="expected an image file"):
        load_mnist("test", data_dir=tmp_path, download=False, verify=False)


def test_images_that_are_not_28_by_28_raise(tmp_path):
    write_fake_mnist(tmp_path, n_test=4)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((4, 14, 14), dtype=np.uint8))
    with pytest.raises(MNISTError, match="14 x 14"):
        load_mnist("test", data_dir=tmp_path, download=False, verify=False)


def test_labels_outside_0_to_9_raise(tmp_path):
    write_fake_mnist(tmp_path, n_test=4)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 10, 3], dtype=np.uint8))
    with pytest.raises(MNISTError, match="label 10"):
        load_mnist("test", data_dir=tmp_path, download=False, verify=False)


# ---------------------------------------------------------------------------------------
# Verifying the four files: counts and checksums of the originals, cached per file
# ---------------------------------------------------------------------------------------


def test_files_taken_for_the_originals_load_verified(fake_originals, private_npnet_cache):
    folder, contents = fake_originals
    images, labels = load_mnist("train", data_dir=folder, download=False)
    assert images.shape == (6, 784)
    np.testing.assert_array_equal(labels, contents["train-labels-idx1-ubyte"])
    assert (private_npnet_cache / "mnist-checksums.json").is_file()


def test_train_and_test_swapped_is_refused(fake_originals):
    folder, _ = fake_originals
    for stem in FILE_STEMS:  # train-* <-> t10k-*
        (folder / f"{stem}.gz").rename(folder / f"{stem}.gz.old")
    for train_stem, test_stem in zip(MNIST_FILES["train"], MNIST_FILES["test"], strict=True):
        (folder / f"{train_stem}.gz.old").rename(folder / f"{test_stem}.gz")
        (folder / f"{test_stem}.gz.old").rename(folder / f"{train_stem}.gz")
    with pytest.raises(MNISTError) as caught:
        load_mnist("train", data_dir=folder, download=False)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'train-images-idx3-ubyte.gz'} is not the original")
    assert "holds 4 images, MNIST's train split has 6" in message
    assert "training and test files swapped?" in message
    assert "verify=False" in message and "download=True" in message
    images, _ = load_mnist("train", data_dir=folder, download=False, verify=False)
    assert len(images) == 4  # deliberately modified data still loads when asked


@pytest.mark.parametrize("stem", FILE_STEMS)
def test_changed_content_of_the_right_size_is_refused(fake_originals, stem):
    """Shuffled labels, edited pixels: the counts are right, the checksum is not."""
    folder, contents = fake_originals
    changed = contents[stem].copy()
    changed.flat[0] ^= 1
    write_idx(folder / f"{stem}.gz", changed)
    split = "train" if stem.startswith("train") else "test"
    with pytest.raises(MNISTError) as caught:
        load_mnist(split, data_dir=folder, download=False)
    message = str(caught.value)
    assert message.startswith(f"{folder / stem}.gz is not the original MNIST file")
    assert f"the original's is {data.MNIST_IDX_MD5[stem]}" in message and "verify=False" in message
    load_mnist(split, data_dir=folder, download=False, verify=False)


def test_the_checksum_of_an_uncompressed_file_is_that_of_its_content(fake_originals):
    folder, contents = fake_originals
    for stem in MNIST_FILES["test"]:
        (folder / f"{stem}.gz").unlink()
        write_idx(folder / stem, contents[stem])  # as torchvision leaves them: unpacked
    _, labels = load_mnist("test", data_dir=folder, download=False)
    np.testing.assert_array_equal(labels, contents["t10k-labels-idx1-ubyte"])


def test_a_verified_file_is_not_hashed_again_until_it_changes(fake_originals, monkeypatch):
    folder, contents = fake_originals
    load_mnist("test", data_dir=folder, download=False)

    def no_hashing(*args):
        raise AssertionError("hashed a file whose checksum is cached")

    with monkeypatch.context() as patched:
        patched.setattr(data.hashlib, "md5", no_hashing)
        load_mnist("test", data_dir=folder, download=False)

    # Rewritten in place with the same size, even with its old modification time put back:
    # the change is still seen.
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    before = labels.stat()
    write_idx(labels, contents["t10k-labels-idx1-ubyte"][::-1].copy())
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert labels.stat().st_size == before.st_size
    with pytest.raises(MNISTError, match="t10k-labels-idx1-ubyte.gz is not the original"):
        load_mnist("test", data_dir=folder, download=False)


@pytest.mark.parametrize("cache_trouble", ["unwritable", "damaged", "wrong shape"])
def test_a_cache_that_cannot_be_used_never_fails_a_load(
    fake_originals, private_npnet_cache, cache_trouble
):
    folder, _ = fake_originals
    cache_file = private_npnet_cache / "mnist-checksums.json"
    if cache_trouble == "unwritable":  # a file where the cache folder should be
        private_npnet_cache.parent.mkdir(parents=True, exist_ok=True)
        private_npnet_cache.write_text("not a folder")
    else:
        private_npnet_cache.mkdir(parents=True)
        cache_file.write_text('{"cut short' if cache_trouble == "damaged" else '[1, {"a": 2}]')
    for _ in range(2):
        images, _ = load_mnist("test", data_dir=folder, download=False)
        assert images.shape == (4, 784)


def test_npnet_cache_holds_the_downloaded_files_too(tmp_path, no_mnist_anywhere, monkeypatch):
    monkeypatch.setenv("NPNET_CACHE", str(tmp_path / "elsewhere"))
    write_fake_mnist(tmp_path / "elsewhere" / "mnist")
    assert find_mnist_dir() == tmp_path / "elsewhere" / "mnist"


@pytest.mark.parametrize("n_test", [5, 1])
def test_valid_files_of_another_size_load_only_without_verify(tmp_path, n_test):
    write_fake_mnist(tmp_path, n_test=n_test)
    with pytest.raises(MNISTError, match=f"holds {n_test} images, MNIST's test split has 10000"):
        load_mnist("test", data_dir=tmp_path, download=False)
    images, labels = load_mnist("test", data_dir=tmp_path, download=False, verify=False)
    assert images.shape == (n_test, 784) and labels.shape == (n_test,)


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_split_is_an_error_even_without_verify(tmp_path, split):
    write_fake_mnist(tmp_path, **{f"n_{split}": 0})
    image_file = tmp_path / f"{MNIST_FILES[split][0]}.gz"
    with pytest.raises(MNISTError, match=f"{image_file} holds no images"):
        load_mnist(split, data_dir=tmp_path, download=False, verify=False)


# ---------------------------------------------------------------------------------------
# Where the files are found
# ---------------------------------------------------------------------------------------


def test_explicit_dir_beats_env_and_cache(tmp_path, no_mnist_anywhere, monkeypatch):
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    for folder in (explicit, env, no_mnist_anywhere):
        write_fake_mnist(folder)
    monkeypatch.setenv("NPNET_DATA", str(env))
    assert find_mnist_dir(explicit) == explicit
    assert find_mnist_dir() == env


def test_env_beats_cache_and_cache_is_last(tmp_path, no_mnist_anywhere, monkeypatch):
    write_fake_mnist(no_mnist_anywhere)
    assert find_mnist_dir() == no_mnist_anywhere
    # NPNET_DATA set but empty: searching goes on to the cache.
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "empty"))
    assert find_mnist_dir() == no_mnist_anywhere


def test_cache_defaults_to_home_dot_cache_without_xdg(tmp_path, no_mnist_anywhere, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    home_cache = tmp_path / "home" / ".cache" / "npnet" / "mnist"
    write_fake_mnist(home_cache)
    assert find_mnist_dir() == home_cache


def test_explicit_dir_without_files_is_an_error_even_if_env_has_them(
    tmp_path, no_mnist_anywhere, monkeypatch
):
    write_fake_mnist(tmp_path / "env")
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "env"))
    with pytest.raises(MNISTNotFoundError, match="not searched when data_dir is given"):
        find_mnist_dir(tmp_path / "typo")


@pytest.mark.parametrize("gz", [True, False])
def test_torchvision_layout_is_found(tmp_path, no_mnist_anywhere, gz):
    contents = write_fake_mnist(tmp_path / "root" / "MNIST" / "raw", gz=gz)
    assert find_mnist_dir(tmp_path / "root") == tmp_path / "root" / "MNIST" / "raw"
    _, labels = load_mnist("test", data_dir=tmp_path / "root", download=False, verify=False)
    np.testing.assert_array_equal(labels, contents["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("layout", [".", "MNIST/raw"])
def test_data_mnist_beside_the_project_comes_after_env_and_before_cache(
    tmp_path, no_mnist_anywhere, monkeypatch, layout
):
    beside = data.BESIDE_PROJECT_DIR  # tmp_path / "data_mnist", see no_mnist_anywhere
    write_fake_mnist(no_mnist_anywhere)
    write_fake_mnist(beside / layout, gz=False)
    assert find_mnist_dir() == beside / layout
    write_fake_mnist(tmp_path / "env")
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "env"))
    assert find_mnist_dir() == tmp_path / "env"


def test_data_mnist_is_the_folder_beside_the_repository():
    repository = Path(__file__).resolve().parents[1]
    if Path(data.__file__).resolve().parents[1] != repository:
        pytest.skip("npnet is not imported from this checkout")
    assert data.BESIDE_PROJECT_DIR == repository.parent / "data_mnist"


def test_not_found_message_lists_files_dirs_and_how_to_fix(
    tmp_path, no_mnist_anywhere, monkeypatch
):
    env = tmp_path / "env"
    env.mkdir()
    write_idx(env / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), dtype=np.uint8))
    monkeypatch.setenv("NPNET_DATA", str(env))
    with pytest.raises(MNISTNotFoundError) as caught:
        load_mnist("train", download=False)
    message = str(caught.value)
    for stem in FILE_STEMS:
        assert stem in message
    assert f"{env}  (NPNET_DATA): missing train-labels-idx1-ubyte," in message
    assert "train-images-idx3-ubyte," not in message.split("(NPNET_DATA)")[1].splitlines()[0]
    assert f"{tmp_path / 'data_mnist'}  (beside the project): no such directory" in message
    assert f"{no_mnist_anywhere}  (user cache): no such directory" in message
    assert f"download=True) downloads them into {env}." in message
    for hint in ("data_dir=", "--data-dir", "NPNET_DATA="):
        assert hint in message
    assert message.splitlines()[-1].startswith("If you already have the files")


# ---------------------------------------------------------------------------------------
# Something other than a file, and folders that cannot be read
# ---------------------------------------------------------------------------------------


def make_odd_thing(path, kind):
    """Put a ``kind`` of non-file at ``path``; return the words npnet should use for it."""
    if kind == "directory":
        path.mkdir()
        return "is a directory"
    if kind == "loop":
        path.symlink_to(path.name)  # a link to itself
        return "is a symbolic link that loops"
    if kind == "broken link":
        path.symlink_to("nowhere")
        return "is a broken symbolic link (to nowhere)"
    os.mkfifo(path)
    return "is a FIFO (named pipe)"


@pytest.mark.parametrize("kind", ["directory", "loop", "broken link", "fifo"])
def test_something_other_than_a_file_is_named_not_called_missing(tmp_path, kind):
    write_fake_mnist(tmp_path, gz=True)
    odd = tmp_path / "train-images-idx3-ubyte.gz"
    odd.unlink()
    words = make_odd_thing(odd, kind)
    with pytest.raises(MNISTNotFoundError) as caught:
        find_mnist_dir(tmp_path)
    assert f"missing train-images-idx3-ubyte (train-images-idx3-ubyte.gz {words}" in str(
        caught.value
    )
    # read_idx says the same, and opens no FIFO (that would wait for a writer forever).
    with pytest.raises(MNISTError, match=re.escape(f"{odd} {words}, not a regular file")):
        read_idx(odd)


def permissions_are_enforced(folder):
    """False where the user (root, for one) reads a folder whose permissions forbid it."""
    try:
        os.listdir(folder)
    except PermissionError:
        return True
    return False


@pytest.mark.parametrize("closed", ["data folder", "the folder above"])
def test_a_folder_without_permission_is_a_clear_error(tmp_path, closed):
    folder = tmp_path / "above" / "mnist"
    write_fake_mnist(folder)
    locked = folder if closed == "data folder" else folder.parent
    locked.chmod(0)
    try:
        if not permissions_are_enforced(locked):
            pytest.skip("permissions are not enforced for this user (root?)")
        with pytest.raises(MNISTError, match=f"permission denied.*chmod u\\+rx {locked}"):
            load_mnist("test", data_dir=folder, download=False, verify=False)
    finally:
        locked.chmod(0o755)


def test_a_file_without_permission_is_a_clear_error(tmp_path):
    write_fake_mnist(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.chmod(0)
    try:
        if os.access(labels, os.R_OK):
            pytest.skip("permissions are not enforced for this user (root?)")
        with pytest.raises(MNISTError, match=f"cannot read {labels}.*chmod u\\+r"):
            load_mnist("test", data_dir=tmp_path, download=False, verify=False)
    finally:
        labels.chmod(0o644)


# ---------------------------------------------------------------------------------------
# Downloading (local server only)
# ---------------------------------------------------------------------------------------


def test_download_puts_verified_files_in_place(tmp_path, mirror):
    url, contents = mirror
    dest = tmp_path / "cache"
    assert download_mnist(dest, mirrors=[url], progress=False) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(data.MNIST_MD5)
    images, labels = load_mnist("train", data_dir=dest, download=False)
    np.testing.assert_array_equal(labels, contents["train-labels-idx1-ubyte"])


def test_download_falls_back_to_the_next_mirror(tmp_path, mirror):
    url, _ = mirror
    dest = tmp_path / "cache"
    download_mnist(dest, mirrors=[url + "gone/", url], progress=False)
    assert sorted(p.name for p in dest.iterdir()) == sorted(data.MNIST_MD5)


def test_a_failed_download_removes_the_folders_it_created(tmp_path, mirror):
    """Into a --data-dir three levels deep that did not exist: nothing is left, while a
    folder that existed before stays."""
    url, _ = mirror
    existing = tmp_path / "home"
    existing.mkdir()
    with pytest.raises(data.MNISTDownloadError, match="could not download"):
        download_mnist(existing / "new" / "deeper" / "mnist", mirrors=[url + "gone/"],
                       progress=False)
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_wrong_checksum_is_rejected_and_leaves_nothing(tmp_path, mirror, monkeypatch):
    url, _ = mirror
    monkeypatch.setitem(data.MNIST_MD5, "train-images-idx3-ubyte.gz", "0" * 32)
    dest = tmp_path / "cache"
    dest.mkdir()
    with pytest.raises(MNISTError, match="expected 0{32}; the file was discarded"):
        download_mnist(dest, mirrors=[url], progress=False)
    assert list(dest.iterdir()) == []  # neither the bad file nor a temporary file


def test_bad_file_later_in_the_list_keeps_only_verified_files(tmp_path, mirror, monkeypatch):
    url, _ = mirror
    monkeypatch.setitem(data.MNIST_MD5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    dest = tmp_path / "cache"
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte.gz"):
        download_mnist(dest, mirrors=[url], progress=False)
    assert sorted(p.name for p in dest.iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]


def test_connection_cut_short_leaves_nothing(tmp_path):
    class CutShort(io.BytesIO):
        """A response that delivers one chunk, then loses the connection."""

        def read(self, size=-1):
            if self.tell():
                raise http.client.IncompleteRead(b"")
            return super().read(size)

    def opener(url, timeout):
        return CutShort(b"\x1f\x8b" + bytes(100_000))

    dest = tmp_path / "cache"
    dest.mkdir()
    with pytest.raises(MNISTError, match="IncompleteRead"):
        download_mnist(dest, mirrors=["http://unused/"], opener=opener, progress=False)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("into", ["data_dir", "NPNET_DATA", "user cache"])
def test_load_mnist_downloads_into_data_dir_else_env_else_cache(
    tmp_path, mirror, no_mnist_anywhere, monkeypatch, into
):
    url, contents = mirror
    monkeypatch.setattr(data, "MIRRORS", (url,))
    data.BESIDE_PROJECT_DIR.mkdir()  # there but empty: downloads never go there
    dest = {"data_dir": tmp_path / "mine", "NPNET_DATA": tmp_path / "env"}.get(
        into, no_mnist_anywhere
    )
    if into == "NPNET_DATA":
        monkeypatch.setenv("NPNET_DATA", str(dest))
    images, labels = load_mnist("test", data_dir=dest if into == "data_dir" else None)
    assert images.shape == (4, 784)
    np.testing.assert_array_equal(labels, contents["t10k-labels-idx1-ubyte"])
    assert sorted(p.name for p in dest.iterdir()) == sorted(data.MNIST_MD5)
    assert list(data.BESIDE_PROJECT_DIR.iterdir()) == []


def test_failed_download_says_what_was_searched_and_tried(mirror, no_mnist_anywhere, monkeypatch):
    url, _ = mirror
    monkeypatch.setattr(data, "MIRRORS", (url + "gone/",))
    with pytest.raises(MNISTNotFoundError) as caught:
        load_mnist("train")
    message = str(caught.value)
    assert f"Downloading them into {no_mnist_anywhere} failed" in message and "404" in message
    for stem in FILE_STEMS:
        assert stem in message
    assert not no_mnist_anywhere.exists()  # the cache folder made for the download is gone


# ---------------------------------------------------------------------------------------
# The real files
# ---------------------------------------------------------------------------------------

TRAIN_DIGIT_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_DIGIT_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.slow
@pytest.mark.parametrize(
    "split, n, digit_counts",
    [("train", 60_000, TRAIN_DIGIT_COUNTS), ("test", 10_000, TEST_DIGIT_COUNTS)],
)
def test_real_mnist(split, n, digit_counts):
    folder = os.environ.get("NPNET_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("set NPNET_DATA to a folder with the four MNIST files to check the real data")
    images, labels = load_mnist(split, data_dir=folder, download=False)
    assert images.shape == (n, 784) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels, minlength=10).tolist() == digit_counts


def real_mnist_folder():
    folder = os.environ.get("NPNET_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("set NPNET_DATA to a folder with the four MNIST files to check the real data")
    return find_mnist_dir(folder)


@pytest.mark.slow
def test_real_mnist_files_mixed_up_are_refused(tmp_path):
    real = real_mnist_folder()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for train_stem, test_stem in zip(MNIST_FILES["train"], MNIST_FILES["test"], strict=True):
        (mixed / f"{train_stem}.gz").symlink_to(data._file_in(real, test_stem))  # test as train
        (mixed / f"{test_stem}.gz").symlink_to(data._file_in(real, test_stem))
    with pytest.raises(MNISTError, match="holds 10000 images, MNIST's train split has 60000"):
        load_mnist("train", data_dir=mixed, download=False)

    (mixed / "t10k-labels-idx1-ubyte.gz").unlink()
    labels = read_idx(data._file_in(real, "t10k-labels-idx1-ubyte"))
    shuffled = np.random.default_rng(0).permutation(labels)
    write_idx(mixed / "t10k-labels-idx1-ubyte", shuffled)
    with pytest.raises(MNISTError, match="t10k-labels-idx1-ubyte is not the original"):
        load_mnist("test", data_dir=mixed, download=False)


@pytest.mark.slow
def test_real_mnist_checksums_are_cached(monkeypatch, private_npnet_cache):
    real = real_mnist_folder()
    load_mnist("test", data_dir=real, download=False)
    cached = json.loads((private_npnet_cache / "mnist-checksums.json").read_text())
    assert sorted(v["md5"] for v in cached.values()) == sorted(
        data.MNIST_IDX_MD5[stem] for stem in MNIST_FILES["test"]
    )
    monkeypatch.setattr(data.hashlib, "md5", None)  # hashing again would fail
    load_mnist("test", data_dir=real, download=False)


# --- binarisation ---------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_binarize_draws_pixels_with_probability_x(p, seed):
    """Every pixel becomes 0 or 1, 1 with probability x (within 5 standard errors over 20,000
    pixels); the same seed gives the same images; x = 0 stays 0 and x = 1 stays 1."""
    x = np.full((100, 200), p, dtype=np.float32)
    b = data.binarize(x, seed)
    assert b.dtype == np.float32 and b.shape == x.shape
    assert set(np.unique(b)) <= {0.0, 1.0}
    standard_error = max(np.sqrt(p * (1 - p) / b.size), 1e-12)
    assert abs(b.mean() - p) <= 5 * standard_error + 1e-6
    np.testing.assert_array_equal(b, data.binarize(x, seed))
    assert data.binarize(np.zeros(5), seed).sum() == 0
    assert data.binarize(np.ones(5), seed).sum() == 5


def test_binarize_refuses_values_outside_0_1():
    for bad, match in [(np.array([0.5, 255.0]), r"in \[0, 1\].*from 0.5 to 255"),
                       (np.array([0.5, np.nan]), "and NaN"),
                       (np.array(["a"]), "real pixel values")]:
        with pytest.raises((ValueError, TypeError), match=match):
            data.binarize(bad, 0)


def test_unknown_binarisation_names_the_choices():
    assert data.check_binarization("dynamic") == "dynamic"
    with pytest.raises(ValueError, match="unknown binarisation 'dynamc'; choose one of "
                       "'none', 'dynamic', 'static'"):
        data.check_binarization("dynamc")
