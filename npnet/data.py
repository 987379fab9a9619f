"""MNIST as NumPy arrays: reading IDX files, finding them, downloading them.

MNIST is four IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/), usually
gzip-compressed (``.gz``): ``train-images-idx3-ubyte`` (60,000 images of 28 x 28 bytes) with
``train-labels-idx1-ubyte`` (their digits, 0..9), and ``t10k-images-idx3-ubyte`` with
``t10k-labels-idx1-ubyte`` (10,000 test images and labels). An IDX file is a big-endian
header followed by the raw bytes of the array::

    magic   4 bytes  0x00 0x00 <type> <ndim>   type 0x08 = unsigned byte
    dims    4 bytes per dimension, big-endian unsigned int
    data    prod(dims) bytes, C order

so ``magic`` is 2049 (0x0801) for a label file (1 dimension) and 2051 (0x0803) for an image
file (3 dimensions). Reading one is a header check plus a single ``np.frombuffer``; no loop
over pixels.

Where the files are looked for, first match wins (see :func:`find_mnist_dir`):

1. the ``data_dir`` argument (when given, nothing else is searched),
2. the directory in the environment variable ``NPNET_DATA``,
3. ``data_mnist/`` beside the project (next to the repository), where the course hands it out,
4. the user cache, ``$XDG_CACHE_HOME/npnet/mnist`` (default ``~/.cache/npnet/mnist``).

In each, the files may lie flat or in torchvision's ``MNIST/raw/``, each as it is or ``.gz``.
Missing files are downloaded into ``data_dir``, else ``$NPNET_DATA``, else the user cache.
Every problem raises :class:`MNISTError`, naming the file, what is wrong and how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from npnet.io import atomic_write

__all__ = [
    "MNISTError", "MNISTNotFoundError", "MNISTDownloadError", "MNIST_FILES", "MNIST_MD5",
    "MIRRORS", "read_idx", "find_mnist_dir", "load_mnist", "download_mnist",
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

# Tried in order. The first is the copy torchvision uses: the original site often refuses.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

# Where the course hands the data out: data_mnist/ in the folder that holds the repository.
BESIDE_PROJECT_DIR = Path(__file__).resolve().parents[2] / "data_mnist"

NDIM_OF_MAGIC = {2049: 1, 2051: 3}  # labels (N,), images (N, rows, cols)

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


def _damaged(path: Path, problem: str) -> MNISTError:
    return MNISTError(
        f"{path} is damaged or not an MNIST IDX file: {problem}. "
        "Delete it and run load_mnist(download=True) to fetch a fresh copy, or replace it "
        "with an intact copy of the original file."
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, into a read-only uint8 array.

    The shape is the header's: ``(N, rows, cols)`` for images, ``(N,)`` for labels. The array
    shares memory with the file's bytes; ``.copy()`` it to modify it. Raises
    :class:`MNISTNotFoundError` for a missing file and :class:`MNISTError` for a damaged one.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MNISTNotFoundError(f"{path} does not exist. {HOW_TO_POINT_AT_FILES}") from None
    except OSError as error:
        raise MNISTError(f"cannot read {path}: {error}") from error
    # Compression is recognised by content, not by name: browsers sometimes unpack a .gz and
    # keep the name. An IDX file starts with two zero bytes, so it never looks like gzip.
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:  # cut short, not deflate, bad CRC
            raise _damaged(path, f"the gzip stream cannot be decompressed ({error})") from None
    magic = int.from_bytes(data[:4], "big")
    if len(data) < 4 or magic not in NDIM_OF_MAGIC:
        start = data[:4].hex(" ") or "nothing (the file is empty)"
        raise _damaged(
            path, f"it starts with {start}, not with the magic number 00 00 08 01 (2049, "
            "labels) or 00 00 08 03 (2051, images)"
        )
    header_bytes = 4 + 4 * NDIM_OF_MAGIC[magic]
    if len(data) < header_bytes:
        raise _damaged(path, f"the header needs {header_bytes} bytes but the file has {len(data)}")
    shape = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(4, header_bytes, 4))
    expected, found = math.prod(shape), len(data) - header_bytes
    if found != expected:
        dims = " x ".join(map(str, shape))
        cause = "truncated?" if found < expected else "extra bytes at the end"
        problem = f"the header says {dims} = {expected} bytes of data but the file holds {found}"
        raise _damaged(path, f"{problem} ({cause})")
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def _user_cache_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "npnet" / "mnist"


def _download_dir(data_dir: str | os.PathLike | None) -> Path:
    """Where missing files are downloaded: data_dir, else $NPNET_DATA, else the user cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("NPNET_DATA") or _user_cache_dir()).expanduser()


def _file_in(directory: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``directory``; the uncompressed one is faster to read."""
    for path in (directory / stem, directory / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _missing(directory: Path) -> list[str]:
    return [stem for stem in FILE_STEMS if _file_in(directory, stem) is None]


def find_mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the four MNIST files: a searched one or its ``MNIST/raw``.

    Search order: ``data_dir`` if given (and then nothing else), else ``$NPNET_DATA`` if set,
    ``data_mnist/`` beside the project, the user cache (see the module docstring). Raises
    :class:`MNISTNotFoundError`, listing what each searched directory lacks, if none has all.
    """
    if data_dir is not None:  # an explicit choice: a typo is an error, not a silent fall-back
        searched = [(Path(data_dir).expanduser(), "data_dir argument")]
    else:
        searched = [(BESIDE_PROJECT_DIR, "beside the project"), (_user_cache_dir(), "user cache")]
        if os.environ.get("NPNET_DATA"):
            searched.insert(0, (Path(os.environ["NPNET_DATA"]).expanduser(), "NPNET_DATA"))
    for base, _origin in searched:
        for directory in (base, base / "MNIST" / "raw"):
            if not _missing(directory):
                return directory

    note = ""
    if data_dir is not None:
        note = " (the other places are not searched when data_dir is given)"
    lines = [
        "MNIST files not found. npnet needs these four files, each either as it is or "
        "gzip-compressed with .gz added to the name:\n  " + ", ".join(FILE_STEMS),
        f"Searched{note}, each directory itself and its torchvision layout MNIST/raw/:",
    ]
    for base, origin in searched:
        if not base.is_dir():
            lines.append(f"  {base}  ({origin}): no such directory")
            continue
        best = min((base, base / "MNIST" / "raw"), key=lambda d: len(_missing(d)))
        where = "" if best == base else " (in MNIST/raw)"
        lines.append(f"  {base}  ({origin}): missing {', '.join(_missing(best))}{where}")
    lines.append(
        f"load_mnist(..., download=True) downloads them into {_download_dir(data_dir)}."
    )
    raise MNISTNotFoundError("\n".join([*lines, HOW_TO_POINT_AT_FILES]))


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
        Folder with the files; default: search as :func:`find_mnist_dir` does.
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

    Raises :class:`MNISTNotFoundError` if the files are nowhere and were not downloaded, and
    :class:`MNISTError` if a file is damaged or the images and labels do not match.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        directory = find_mnist_dir(data_dir)
    except MNISTNotFoundError as not_found:
        if not download:
            raise
        try:
            directory = download_mnist(_download_dir(data_dir))
        except MNISTError as failure:
            message = f"{not_found}\nDownloading them into {_download_dir(data_dir)} failed:"
            raise MNISTNotFoundError(f"{message}\n  {failure}") from failure

    image_path, label_path = (_file_in(directory, stem) for stem in MNIST_FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3:
        raise _damaged(image_path, "expected an image file (magic 2051), got labels")
    if labels.ndim != 1:
        raise _damaged(label_path, "expected a label file (magic 2049), got images")
    if images.shape[1:] != (28, 28):
        rows, cols = images.shape[1:]
        raise _damaged(image_path, f"images are {rows} x {cols} pixels, MNIST's are 28 x 28")
    if len(images) != len(labels):
        raise MNISTError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
            "labels; the two files must come from the same split. Replace the wrong one "
            "(or delete both and run load_mnist(download=True))."
        )
    if len(labels) and labels.max() > 9:
        raise _damaged(label_path, f"label {labels.max()} found, MNIST labels are digits 0..9")

    images = images.astype(np.float32)  # uint8 straight to float32: no float64 copy
    images /= 255
    if flatten:
        images = images.reshape(len(images), -1)
    return images, labels.astype(np.int64)


def _fetch(url: str, target: Path, md5: str, opener: Callable, progress: bool) -> None:
    """Stream ``url`` into ``target``, kept only if its MD5 matches (else nothing is left)."""
    from tqdm.auto import tqdm  # only downloading needs it

    digest = hashlib.md5()
    with opener(url, timeout=30) as response, atomic_write(target, "wb") as f:
        size = getattr(response, "headers", {}).get("Content-Length")
        total = int(size) if size else None
        bar = tqdm(total=total, desc=target.name, unit="B", unit_scale=True, disable=not progress)
        with bar:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != md5:  # raising inside atomic_write deletes the temporary file
            raise MNISTDownloadError(
                f"{url} has MD5 {digest.hexdigest()}, expected {md5}; the file was discarded"
            )


def download_mnist(
    dest_dir: str | os.PathLike,
    mirrors: Sequence[str] | None = None,
    opener: Callable | None = None,
    progress: bool = True,
) -> Path:
    """Download the MNIST files ``dest_dir`` lacks into it (flat), each verified by its MD5.

    Each file is streamed into a temporary file (:func:`npnet.io.atomic_write`) and renamed
    into place only once its checksum matches; on a mismatch or a broken connection the next
    of ``mirrors`` (default :data:`MIRRORS`, base URLs ending in "/") is tried; the files and
    their checksums are those of :data:`MNIST_MD5`. ``opener(url, timeout=seconds)`` returns a
    readable response usable in a ``with`` block (default ``urllib.request.urlopen``);
    ``progress`` shows a tqdm bar per file. Files already there, ``.gz`` or not, are kept.

    Returns ``dest_dir`` as a Path. Raises :class:`MNISTDownloadError` if a file could not be
    fetched with the right checksum from any mirror: files verified before stay, no partial
    file is left, and a ``dest_dir`` this call created and left empty is removed.
    """
    mirrors = MIRRORS if mirrors is None else mirrors
    opener = urllib.request.urlopen if opener is None else opener
    dest_dir = Path(dest_dir).expanduser()
    created_dest_dir = not dest_dir.exists()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MNISTDownloadError(f"cannot create {dest_dir}: {error}") from error

    for name, md5 in MNIST_MD5.items():
        if _file_in(dest_dir, name.removesuffix(".gz")) is not None:
            continue
        failures = []
        for url in [mirror + name for mirror in mirrors]:
            try:
                _fetch(url, dest_dir / name, md5, opener, progress)
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
