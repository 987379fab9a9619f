"""MNIST as NumPy arrays: IDX files, where to find them, downloading them.

MNIST comes as four IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/):

=========================  ====================================
file                       contents
=========================  ====================================
train-images-idx3-ubyte    60,000 images, 28 x 28 unsigned bytes
train-labels-idx1-ubyte    60,000 labels, digits 0..9
t10k-images-idx3-ubyte     10,000 images
t10k-labels-idx1-ubyte     10,000 labels
=========================  ====================================

each usually gzip-compressed (``.gz``). An IDX file is a big-endian header followed by the
raw bytes of the array::

    magic   4 bytes  0x00 0x00 <type> <ndim>   type 0x08 = unsigned byte
    dims    4 bytes per dimension, big-endian unsigned int
    data    prod(dims) bytes, C order

so ``magic`` is 2049 (0x0801) for a label file (1 dimension) and 2051 (0x0803) for an image
file (3 dimensions). Reading one is a header check plus a single ``np.frombuffer``; no loop
over pixels. Both splits load in a fraction of a second.

Where the files are looked for (first match wins, see :func:`find_mnist_dir`):

1. the ``data_dir`` argument (when given, nothing else is searched),
2. the directory in the ``NPNET_DATA`` environment variable,
3. the user cache, ``$XDG_CACHE_HOME/npnet/mnist`` (default ``~/.cache/npnet/mnist``).

Every problem with the files (missing, truncated, wrong format, failed download) raises
:class:`MNISTError` with a message that names the file, what is wrong, and how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from npnet.io import atomic_write

__all__ = [
    "MNISTError",
    "MNISTNotFoundError",
    "MNISTDownloadError",
    "MNIST_FILES",
    "MNIST_MD5",
    "MIRRORS",
    "read_idx",
    "write_idx",
    "find_mnist_dir",
    "load_mnist",
    "download_mnist",
]

# The (images, labels) file of each split, without the ".gz" a file may carry.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FILE_STEMS = (*MNIST_FILES["train"], *MNIST_FILES["test"])

# MD5 of the published .gz files: the same table torchvision checks against.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# Tried in order. The first is the copy torchvision uses, because the original site now
# often refuses downloads.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

IMAGE_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions (N, rows, cols)
LABEL_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension (N,)
NDIM_OF_MAGIC = {LABEL_MAGIC: 1, IMAGE_MAGIC: 3}
IMAGE_SIDE = 28
GZIP_SIGNATURE = b"\x1f\x8b"

HOW_TO_POINT_AT_FILES = (
    "If you already have the files, point npnet at their folder: "
    "load_mnist(..., data_dir='/path/to/mnist'), the --data-dir option of the experiment "
    "scripts, or the environment variable NPNET_DATA=/path/to/mnist."
)


class MNISTError(Exception):
    """An MNIST file is missing, damaged or not an MNIST file, or could not be downloaded."""


class MNISTNotFoundError(MNISTError, FileNotFoundError):
    """The MNIST files are in none of the searched directories (and were not downloaded)."""


class MNISTDownloadError(MNISTError):
    """No mirror delivered a file whose MD5 matches the published checksum."""


# ---------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------


def _damaged(path: Path, problem: str) -> MNISTError:
    """The error for a file that exists but cannot be an MNIST IDX file."""
    return MNISTError(
        f"{path} is damaged or not an MNIST IDX file: {problem}. "
        "Delete it and run load_mnist(download=True) to fetch a fresh copy, or replace it "
        "with an intact copy of the original file."
    )


def _read_file_bytes(path: Path) -> bytes:
    """The file's contents, decompressed if they start with the gzip signature.

    Compression is recognised by content, not by the name: servers and browsers sometimes
    unpack a ``.gz`` on the fly and keep the name. An IDX file starts with two zero bytes,
    so it cannot be mistaken for gzip.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MNISTNotFoundError(f"{path} does not exist. {HOW_TO_POINT_AT_FILES}") from None
    except OSError as error:
        raise MNISTError(f"cannot read {path}: {error}") from error
    if data[:2] != GZIP_SIGNATURE:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
        # EOFError: stream cut short (interrupted download); BadGzipFile (an OSError) and
        # zlib.error: bytes that are not a valid deflate stream or fail the CRC check.
        raise _damaged(path, f"the gzip stream cannot be decompressed ({error})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST IDX file (gzip-compressed or not) into a uint8 array.

    Parameters
    ----------
    path : str or path-like
        An image file (magic 2051) or a label file (magic 2049).

    Returns
    -------
    array : uint8 ndarray, read-only
        ``(N, rows, cols)`` for an image file, ``(N,)`` for a label file: the shape written in
        the header. It shares memory with the decompressed bytes, hence read-only; take
        ``.copy()`` to modify it.

    Raises
    ------
    MNISTNotFoundError
        The file does not exist.
    MNISTError
        Anything else: unreadable or truncated gzip stream, a magic number that is neither
        2049 nor 2051, a header cut short, or a payload longer or shorter than the
        dimensions in the header say.
    """
    path = Path(path)
    data = _read_file_bytes(path)
    if len(data) < 4:
        raise _damaged(path, f"it holds {len(data)} bytes, fewer than the 4-byte magic number")
    magic = int(np.frombuffer(data, dtype=">u4", count=1)[0])
    if magic not in NDIM_OF_MAGIC:
        raise _damaged(
            path,
            f"magic number {magic} (0x{magic:08x}) is neither {LABEL_MAGIC} (labels) nor "
            f"{IMAGE_MAGIC} (images)",
        )
    ndim = NDIM_OF_MAGIC[magic]
    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        raise _damaged(path, f"the header needs {header_bytes} bytes but the file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape)
    found = len(data) - header_bytes
    if found != expected:
        shape_text = " x ".join(map(str, shape))
        cause = "truncated?" if found < expected else "extra bytes at the end"
        raise _damaged(
            path,
            f"the header says {shape_text} = {expected} bytes of data but the file holds "
            f"{found} ({cause})",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    The inverse of :func:`read_idx`. The file is written atomically (see
    :func:`npnet.io.atomic_write`).

    Parameters
    ----------
    path : str or path-like
    array : uint8 ndarray, shape (N,) (labels) or (N, rows, cols) (images)
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(
            f"write_idx writes uint8 arrays (MNIST stores bytes), got dtype {array.dtype}; "
            "convert first, e.g. np.round(images * 255).astype(np.uint8)"
        )
    magic = {1: LABEL_MAGIC, 3: IMAGE_MAGIC}.get(array.ndim)
    if magic is None:
        raise ValueError(
            f"write_idx writes labels (N,) or images (N, rows, cols), got shape {array.shape}"
        )
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)  # mtime=0: the same array gives the same bytes
    with atomic_write(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------------------


def _user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/npnet/mnist``, or ``~/.cache/npnet/mnist`` when it is unset."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "npnet" / "mnist"


def _search_dirs(data_dir: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """The directories to search, in order, each with where it came from."""
    if data_dir is not None:
        # An explicit choice is not second-guessed: a typo should be an error, not a
        # silent fall-back to some other copy.
        return [(Path(data_dir).expanduser(), "data_dir argument")]
    dirs = []
    if os.environ.get("NPNET_DATA"):
        dirs.append((Path(os.environ["NPNET_DATA"]).expanduser(), "NPNET_DATA"))
    dirs.append((_user_cache_dir(), "user cache"))
    return dirs


def _file_in(directory: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``directory``; the uncompressed one is faster to read."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _missing_stems(directory: Path) -> list[str]:
    return [stem for stem in FILE_STEMS if _file_in(directory, stem) is None]


def _layouts(base: Path) -> tuple[Path, Path]:
    """A flat folder of the four files, or torchvision's ``<base>/MNIST/raw/``."""
    return base, base / "MNIST" / "raw"


def _search_report(searched: list[tuple[Path, str]]) -> str:
    """One line per searched directory saying what it lacks."""
    lines = []
    for base, origin in searched:
        if not base.is_dir():
            lines.append(f"  {base}  ({origin}): no such directory")
            continue
        best = min(_layouts(base), key=lambda d: len(_missing_stems(d)))
        missing = _missing_stems(best)
        where = "" if best == base else f" (in {best.relative_to(base)})"
        lines.append(f"  {base}  ({origin}): missing {', '.join(missing)}{where}")
    return "\n".join(lines)


def _not_found_message(searched: list[tuple[Path, str]], about_download: str = "") -> str:
    """What was needed, where it was looked for, (why it was not downloaded,) how to fix it."""
    note = ""
    if searched[0][1] == "data_dir argument":
        note = " (NPNET_DATA and the user cache are not searched when data_dir is given)"
    return (
        "MNIST files not found. npnet needs these four files, each either as it is or "
        "gzip-compressed with .gz added to the name:\n  " + ", ".join(FILE_STEMS) + "\n"
        f"Searched{note}, each directory itself and its torchvision layout MNIST/raw/:\n"
        + _search_report(searched)
        + "\n"
        + (about_download + "\n" if about_download else "")
        + HOW_TO_POINT_AT_FILES
    )


def find_mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory that holds the four MNIST files.

    Search order: ``data_dir`` if given (and then nothing else), else ``$NPNET_DATA`` if
    set, then the user cache ``$XDG_CACHE_HOME/npnet/mnist`` (``~/.cache/npnet/mnist``).
    In each, the files may lie directly in it or in torchvision's ``MNIST/raw/`` below it,
    and each file may be ``.gz`` or uncompressed.

    Returns
    -------
    directory : Path
        The folder containing the files (``<dir>`` or ``<dir>/MNIST/raw``).

    Raises
    ------
    MNISTNotFoundError
        No searched directory has all four files; the message lists what each one lacks.
    """
    searched = _search_dirs(data_dir)
    for base, _origin in searched:
        for directory in _layouts(base):
            if not _missing_stems(directory):
                return directory
    raise MNISTNotFoundError(_not_found_message(searched))


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _check_pair(images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path):
    """Raise MNISTError unless the two arrays are a matching MNIST images/labels pair."""
    if images.ndim != 3:
        raise _damaged(image_path, f"expected an image file (magic {IMAGE_MAGIC}), got labels")
    if labels.ndim != 1:
        raise _damaged(label_path, f"expected a label file (magic {LABEL_MAGIC}), got images")
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise _damaged(
            image_path,
            f"images are {images.shape[1]} x {images.shape[2]} pixels, MNIST's are "
            f"{IMAGE_SIDE} x {IMAGE_SIDE}",
        )
    if len(images) != len(labels):
        raise MNISTError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
            "labels; the two files must come from the same split. Replace the wrong one "
            "(or delete both and run load_mnist(download=True))."
        )
    if len(labels) and labels.max() > 9:
        raise _damaged(label_path, f"label {labels.max()} found, MNIST labels are digits 0..9")


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    flatten: bool = True,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one MNIST split as float32 images in [0, 1] and int64 labels.

    Parameters
    ----------
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    data_dir : str or path-like, optional
        Folder with the files. Default: search ``$NPNET_DATA``, then the user cache (see
        :func:`find_mnist_dir`).
    flatten : bool
        Images as rows of 784 pixels (True) or as 28 x 28 grids (False).
    download : bool
        If the files are nowhere, download them (into ``data_dir`` if given, else into
        ``$NPNET_DATA`` if set, else into the user cache).

    Returns
    -------
    images : float32 ndarray, (N, 784) if ``flatten`` else (N, 28, 28)
        Pixel intensity / 255, so 0 is background and 1 is full ink.
    labels : int64 ndarray, (N,)
        Digits 0..9.

    Raises
    ------
    MNISTNotFoundError
        The files were not found and downloading was off or failed.
    MNISTError
        A file is damaged, or image and label counts disagree.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        directory = find_mnist_dir(data_dir)
    except MNISTNotFoundError:
        searched = _search_dirs(data_dir)
        destination = searched[0][0]
        if not download:
            about_download = (
                f"Downloading is off; load_mnist(..., download=True) would fetch them into "
                f"{destination}."
            )
            raise MNISTNotFoundError(_not_found_message(searched, about_download)) from None
        try:
            directory = download_mnist(destination)
        except MNISTError as download_failure:
            about_download = (
                f"Downloading them into {destination} failed too:\n  {download_failure}"
            )
            raise MNISTNotFoundError(
                _not_found_message(searched, about_download)
            ) from download_failure

    image_stem, label_stem = MNIST_FILES[split]
    image_path, label_path = _file_in(directory, image_stem), _file_in(directory, label_stem)
    raw_images, raw_labels = read_idx(image_path), read_idx(label_path)
    _check_pair(raw_images, raw_labels, image_path, label_path)

    # One pass from uint8 straight into float32: no float64 copy of 47 million pixels.
    images = np.empty(raw_images.shape, dtype=np.float32)
    np.divide(raw_images, np.float32(255), out=images)
    if flatten:
        images = images.reshape(len(images), IMAGE_SIDE * IMAGE_SIDE)
    return images, raw_labels.astype(np.int64)


# ---------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------


def _fetch_verified(
    url: str, target: Path, md5: str, opener: Callable, timeout: float, progress: bool
) -> None:
    """Stream ``url`` into a temporary file beside ``target``; keep it only if MD5 matches.

    ``atomic_write`` removes the temporary file when the block raises, so a wrong checksum
    or a broken connection leaves nothing behind.
    """
    from tqdm.auto import tqdm  # only downloading needs it; loading works without

    digest = hashlib.md5()
    with opener(url, timeout=timeout) as response, atomic_write(target, "wb") as f:
        size = getattr(response, "headers", {}).get("Content-Length")
        with tqdm(
            total=int(size) if size else None,
            unit="B",
            unit_scale=True,
            desc=target.name,
            disable=not progress,
        ) as bar:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise MNISTDownloadError(
                f"{url} has MD5 {digest.hexdigest()}, expected {md5}; the file was discarded"
            )


def download_mnist(
    dest_dir: str | os.PathLike,
    mirrors: Sequence[str] | None = None,
    opener: Callable | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the MNIST files that ``dest_dir`` lacks, each verified by its MD5.

    Each file is streamed into a temporary file in ``dest_dir`` and renamed into place only
    once its checksum matches; on a mismatch or a broken connection the next mirror is
    tried. Files already in ``dest_dir`` (``.gz`` or uncompressed) are kept as they are.

    Parameters
    ----------
    dest_dir : str or path-like
        Created if missing. The files land directly in it (flat layout).
    mirrors : sequence of str, optional
        Base URLs ending in "/", tried in order. Default :data:`MIRRORS`.
    opener : callable, optional
        ``opener(url, timeout=seconds)`` returning a readable response usable in a
        ``with`` block. Default ``urllib.request.urlopen``.
    checksums : mapping of str to str, optional
        File name (``"train-images-idx3-ubyte.gz"``, ...) to expected MD5 hex digest; these
        are the files downloaded. Default :data:`MNIST_MD5`.
    timeout : float
        Seconds to wait for a server before giving up on it.
    progress : bool
        Show a tqdm progress bar per file.

    Returns
    -------
    dest_dir : Path

    Raises
    ------
    MNISTDownloadError
        Some file could not be fetched with the right checksum from any mirror. Files
        verified before the failure stay in ``dest_dir``; no partial file is left.
    """
    # Resolved at call time, so tests can swap the module-level tables.
    mirrors = MIRRORS if mirrors is None else mirrors
    opener = urllib.request.urlopen if opener is None else opener
    checksums = MNIST_MD5 if checksums is None else checksums
    dest_dir = Path(dest_dir).expanduser()
    created_dest_dir = not dest_dir.exists()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MNISTDownloadError(f"cannot create {dest_dir}: {error}") from error

    for name, md5 in checksums.items():
        if _file_in(dest_dir, name.removesuffix(".gz")) is not None:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror + name
            try:
                _fetch_verified(url, dest_dir / name, md5, opener, timeout, progress)
                break
            except MNISTDownloadError as error:
                failures.append(str(error))
            except (OSError, http.client.HTTPException, ValueError) as error:
                # URLError, HTTPError, timeouts and refused connections are OSErrors;
                # IncompleteRead is an HTTPException; a malformed URL is a ValueError.
                failures.append(f"{url}: {error}")
        else:
            if created_dest_dir and not any(dest_dir.iterdir()):
                dest_dir.rmdir()  # a failed first download leaves no trace
            raise MNISTDownloadError(
                f"could not download {name} from any mirror:\n    " + "\n    ".join(failures)
            )
    return dest_dir
