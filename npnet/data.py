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
4. the user cache, ``mnist/`` in npnet's cache folder: ``$NPNET_CACHE`` if set, else
   ``$XDG_CACHE_HOME/npnet`` (default ``~/.cache/npnet``).

In each, the files may lie flat or in torchvision's ``MNIST/raw/``, each as it is or ``.gz``.
Missing files are downloaded into ``data_dir``, else ``$NPNET_DATA``, else the user cache.

Loading verifies that the files are the originals, so that mixed-up files (train and test
swapped, labels shuffled) cannot pass silently: the counts in each header (60,000 and
10,000) before anything is decompressed, then the MD5 of each file's IDX content (the same
whether the file is ``.gz`` or not). The checksum of a verified file is remembered in
``mnist-checksums.json`` in npnet's cache folder, under its path, size, times and inode, so
a later load hashes nothing until the file changes. ``load_mnist(..., verify=False)`` loads
deliberately modified files. Every problem raises :class:`MNISTError`, naming the file, what
is wrong and how to fix it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import math
import os
import stat
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from npnet.io import atomic_write, write_json

__all__ = [
    "MNISTError", "MNISTNotFoundError", "MNISTDownloadError", "MNIST_FILES", "MNIST_MD5",
    "MNIST_IDX_MD5", "MNIST_COUNTS", "MIRRORS", "read_idx", "find_mnist_dir", "load_mnist",
    "download_mnist", "BINARIZATIONS", "TEST_BINARIZATION_SEED", "binarize",
    "check_binarization",
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
# MD5 of the IDX content of the same files (decompressed): what loading verifies.
MNIST_IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_COUNTS = {"train": 60_000, "test": 10_000}  # images (and labels) in each split

# Tried in order. The first is the copy torchvision uses: the original site often refuses.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

# Where the course hands the data out: data_mnist/ in the folder that holds the repository.
BESIDE_PROJECT_DIR = Path(__file__).resolve().parents[2] / "data_mnist"

NDIM_OF_MAGIC = {2049: 1, 2051: 3}  # labels (N,), images (N, rows, cols)
MAX_HEADER_BYTES = 16  # magic and 3 dimensions
HEAD_READ_BYTES = 1 << 16  # read first: it holds the header, even gzipped
GZIP_OVERHEAD_BYTES = 1 << 16  # gzip's headers, and its blocks stored uncompressed

# Deflate expands data at most 1032-fold (zlib's documentation), so a gzip file of S bytes
# holds at most 1032 S bytes: a header that promises more is refused before decompressing.
MAX_DEFLATE_RATIO = 1032

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


def _not_original(path: Path, problem: str) -> MNISTError:
    return MNISTError(
        f"{path} is not the original MNIST file: {problem}. Put the original file in its "
        "place (delete it and run load_mnist(download=True)), or, if you changed the data on "
        "purpose, load it with verify=False (--no-verify in the experiment scripts)."
    )


def _not_a_file(path: Path) -> str | None:
    """What is at ``path`` instead of a regular file ("missing", "a directory", ...), or None.

    Raises :class:`MNISTError` if a folder on the way may not be looked into.
    """
    try:
        mode = path.stat().st_mode  # follows links, as reading would
    except PermissionError:
        raise MNISTError(
            f"cannot look into {path.parent}: permission denied. Allow it (chmod u+rx "
            f"{path.parent}, and the same for each folder above it) or put the files elsewhere."
        ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link that loops"
        if error.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"unreachable ({error.strerror})"
        if path.is_symlink():
            return f"a broken symbolic link (to {os.readlink(path)})"
        return "missing"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket or device"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, into a read-only uint8 array.

    The shape is the header's: ``(N, rows, cols)`` for images, ``(N,)`` for labels. The array
    shares memory with the file's bytes; ``.copy()`` it to modify it. Raises
    :class:`MNISTNotFoundError` for a missing file and :class:`MNISTError` for a damaged one.
    A gzip file is decompressed only up to the size its header promises.
    """
    return _read_idx(Path(path))[0]


def _read_idx(
    path: Path, check_shape: Callable[[tuple[int, ...]], None] | None = None
) -> tuple[np.ndarray, bytes]:
    """:func:`read_idx`, and the file's IDX bytes (decompressed); ``check_shape(shape)`` sees
    the header's shape before the data are decompressed, and raises to refuse it."""
    what = _not_a_file(path)
    if what == "missing":
        raise MNISTNotFoundError(f"{path} does not exist. {HOW_TO_POINT_AT_FILES}")
    if what is not None:  # a FIFO is never opened: reading it would wait for a writer
        raise MNISTError(f"{path} is {what}, not a regular file. Put the MNIST file there.")
    try:
        with open(path, "rb") as f:
            content = f.read(HEAD_READ_BYTES)  # enough for the header, gzipped or not
            # Compression is recognised by content, not by name: browsers sometimes unpack a
            # .gz and keep the name. An IDX file starts with two zero bytes, never gzip's.
            gz = content[:2] == b"\x1f\x8b"
            head = _gunzip(path, content, MAX_HEADER_BYTES) if gz else content[:MAX_HEADER_BYTES]
            shape, header_bytes = _idx_header(path, head)
            if check_shape is not None:
                check_shape(shape)
            expected = math.prod(shape)
            says = f"the header says {' x '.join(map(str, shape))} = {expected} bytes of data"
            # Nothing more is read than the header promises (a huge file is refused unread).
            size, most = os.fstat(f.fileno()).st_size, header_bytes + expected
            if size > (most + most // 100 + GZIP_OVERHEAD_BYTES if gz else most):
                holds = f"{size} bytes of gzip" if gz else f"{size - header_bytes} bytes"
                raise _damaged(path, f"{says} but the file holds more ({holds}; extra bytes at "
                                     "the end?)")
            content += f.read()
    except PermissionError as error:
        raise MNISTError(f"cannot read {path}: {error}. Allow it: chmod u+r {path}") from None
    except OSError as error:
        raise MNISTError(f"cannot read {path}: {error}") from error
    if gz and header_bytes + expected > MAX_DEFLATE_RATIO * len(content):
        raise _damaged(path, f"{says}, more than {len(content)} bytes of gzip can hold")
    data = _gunzip(path, content, header_bytes + expected + 1) if gz else content
    found = len(data) - header_bytes
    if found < expected:
        raise _damaged(path, f"{says} but the file holds {found} (truncated?)")
    if found > expected:
        raise _damaged(path, f"{says} but the file holds more (extra bytes at the end)")
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape), data


def _idx_header(path: Path, head: bytes) -> tuple[tuple[int, ...], int]:
    """The shape an IDX header describes, and the header's length in bytes."""
    magic = int.from_bytes(head[:4], "big")
    if len(head) < 4 or magic not in NDIM_OF_MAGIC:
        start = head[:4].hex(" ") or "nothing (the file is empty)"
        raise _damaged(
            path, f"it starts with {start}, not with the magic number 00 00 08 01 (2049, "
            "labels) or 00 00 08 03 (2051, images)"
        )
    header_bytes = 4 + 4 * NDIM_OF_MAGIC[magic]
    if len(head) < header_bytes:
        raise _damaged(path, f"the header needs {header_bytes} bytes but the file has {len(head)}")
    shape = tuple(int.from_bytes(head[i : i + 4], "big") for i in range(4, header_bytes, 4))
    return shape, header_bytes


def _gunzip(path: Path, content: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes (or all, if fewer) of what the gzip ``content`` expands to.

    Stopping at ``limit`` keeps a small file that expands to gigabytes (a "gzip bomb") from
    taking more memory than its header promises.
    """
    parts, size = [], 0
    while content and size < limit:  # a gzip file may hold several members, one after another
        member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        try:
            parts.append(member.decompress(content, limit - size))
        except zlib.error as error:  # not deflate, bad CRC, garbage after the last member
            raise _damaged(path, f"the gzip stream cannot be decompressed ({error})") from None
        size += len(parts[-1])
        if not member.eof and size < limit:
            raise _damaged(path, "the gzip stream ends before its end marker (cut short?)")
        content = member.unused_data
    return b"".join(parts)


def _npnet_cache_dir() -> Path:
    if os.environ.get("NPNET_CACHE"):
        return Path(os.environ["NPNET_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "npnet"


def _user_cache_dir() -> Path:
    return _npnet_cache_dir() / "mnist"


def _download_dir(data_dir: str | os.PathLike | None) -> Path:
    """Where missing files are downloaded: data_dir, else $NPNET_DATA, else the user cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("NPNET_DATA") or _user_cache_dir()).expanduser()


def _file_in(directory: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``directory``; the uncompressed one is faster to read."""
    for path in (directory / stem, directory / f"{stem}.gz"):
        if _not_a_file(path) is None:
            return path
    return None


def _missing(directory: Path) -> list[str]:
    """The files ``directory`` lacks, each with what is there instead, if anything."""
    lacking = []
    for stem in FILE_STEMS:
        candidates = (directory / stem, directory / f"{stem}.gz")
        found = {path.name: _not_a_file(path) for path in candidates}
        if None in found.values():
            continue
        odd = [f"{name} is {what}" for name, what in found.items() if what != "missing"]
        lacking.append(f"{stem} ({'; '.join(odd)}, not a regular file)" if odd else stem)
    return lacking


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
    verify: bool = True,
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
    verify : bool
        Check that the files are the original ones (the 60,000 or 10,000 count in the
        header, then the MD5 of the content, remembered per file; see the module docstring).
        False loads deliberately modified files: any count of 28 x 28 images but zero.

    Returns
    -------
    images : float32 ndarray, (N, 784) if ``flatten`` else (N, 28, 28)
        Pixel intensity / 255, so 0 is background and 1 is full ink.
    labels : int64 ndarray, (N,)
        Digits 0..9.

    Raises :class:`MNISTNotFoundError` if the files are nowhere and were not downloaded, and
    :class:`MNISTError` if a file is damaged, is not the original (with ``verify``) or the
    images and labels do not match.
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

    image_stem, label_stem = MNIST_FILES[split]
    image_path, label_path = _file_in(directory, image_stem), _file_in(directory, label_stem)
    images = _read_mnist_file(image_path, image_stem, split, verify)
    labels = _read_mnist_file(label_path, label_stem, split, verify)
    if len(images) != len(labels):
        raise MNISTError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
            "labels; the two files must come from the same split. Replace the wrong one "
            "(or delete both and run load_mnist(download=True))."
        )
    if labels.max() > 9:
        raise _damaged(label_path, f"label {labels.max()} found, MNIST labels are digits 0..9")

    images = images.astype(np.float32)  # uint8 straight to float32: no float64 copy
    images /= 255
    if flatten:
        images = images.reshape(len(images), -1)
    return images, labels.astype(np.int64)


def _read_mnist_file(path: Path, stem: str, split: str, verify: bool) -> np.ndarray:
    """One of the four files, its header checked before its data are decompressed; with
    ``verify``, its count and checksum must be the original's."""
    kind = "images" if stem == MNIST_FILES[split][0] else "labels"
    stamp = _file_stamp(path)  # before reading: a change while reading only misses the cache
    array, idx_bytes = _read_idx(
        path, lambda shape: _check_mnist_shape(path, shape, kind, split, verify)
    )
    if verify:
        md5 = _cached_md5(path, stamp, idx_bytes)
        if md5 != MNIST_IDX_MD5[stem]:
            raise _not_original(
                path, f"its content has MD5 {md5}, the original's is {MNIST_IDX_MD5[stem]} "
                "(edited, shuffled, or from another data set?)"
            )
    return array


def _check_mnist_shape(
    path: Path, shape: tuple[int, ...], kind: str, split: str, verify: bool
) -> None:
    """Refuse a header that cannot be the ``kind`` ("images" or "labels") of ``split``."""
    if kind == "images" and len(shape) != 3:
        raise _damaged(path, "expected an image file (magic 2051), got labels")
    if kind == "labels" and len(shape) != 1:
        raise _damaged(path, "expected a label file (magic 2049), got images")
    if kind == "images" and shape[1:] != (28, 28):
        raise _damaged(path, f"images are {shape[1]} x {shape[2]} pixels, MNIST's are 28 x 28")
    count, original = shape[0], MNIST_COUNTS[split]
    if verify and count != original:
        problem = f"it holds {count} {kind}, MNIST's {split} split has {original}"
        if count in MNIST_COUNTS.values():
            problem += " (are the training and test files swapped?)"
        raise _not_original(path, problem)
    if count == 0:
        raise MNISTError(
            f"{path} holds no {kind}: a split needs at least one image to train or evaluate "
            "on. Replace it with a file that holds some."
        )


def _checksum_cache() -> Path:
    return _npnet_cache_dir() / "mnist-checksums.json"


def _file_stamp(path: Path) -> list[int] | None:
    """What changes whenever the file does, even when it is rewritten with its old mtime or
    another file is renamed over it (the change time and inode change then); None if the
    file cannot be looked at (reading it then says why)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _cached_md5(path: Path, stamp: list[int] | None, idx_bytes: bytes) -> str:
    """MD5 of ``idx_bytes``, the content of ``path``, remembered in the checksum cache.

    The cache maps a file's absolute path to its stamp and MD5; an entry whose stamp is not
    the file's is stale. The cache only saves time: one that cannot be read is ignored, one
    that cannot be written (a read-only folder) is not written.
    """
    key = str(path.absolute())
    try:
        cache = json.loads(_checksum_cache().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # none yet, unreadable, or damaged
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    entry = cache.get(key)
    if stamp and isinstance(entry, dict) and entry.get("stamp") == stamp and "md5" in entry:
        return str(entry["md5"])
    md5 = hashlib.md5(idx_bytes).hexdigest()
    if stamp:
        cache[key] = {"stamp": stamp, "md5": md5}
        with contextlib.suppress(OSError):
            write_json(_checksum_cache(), cache)
    return md5


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
    file is left, and the folders this call created (``dest_dir`` and its missing parents)
    are removed while empty.
    """
    mirrors = MIRRORS if mirrors is None else mirrors
    opener = urllib.request.urlopen if opener is None else opener
    dest_dir = Path(dest_dir).expanduser()
    # The folders this call creates, innermost first: a failed download removes them again.
    created = [d for d in (dest_dir, *dest_dir.parents) if not d.exists()]
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
            for folder in created:  # a failed first download leaves no trace
                if any(folder.iterdir()):
                    break
                folder.rmdir()
            raise MNISTDownloadError(
                f"could not download {name} from any mirror:\n    " + "\n    ".join(failures)
            )
    return dest_dir


# --- Binarised MNIST ------------------------------------------------------------------------

# How the gray pixels become the 0/1 images a Bernoulli likelihood is defined for:
#   none     the gray values in [0, 1] as they are (the assignment's figures)
#   dynamic  a fresh draw for every mini-batch while training (Burda et al., 2015)
#   static   one seeded draw of each split, kept for the whole run
BINARIZATIONS = ("none", "dynamic", "static")
# The seed of the one binarisation of the test set that every likelihood is measured on
# (with "dynamic" and "static" alike), so that numbers of different runs are comparable.
TEST_BINARIZATION_SEED = 20151101  # any fixed number; changing it changes every reported value


def binarize(x: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
    """One Bernoulli draw of binary images from gray ones: pixel = 1 where u <= x,
    u ~ Uniform[0, 1), so that P(pixel = 1) = x (the protocol of Burda et al., 2015).
    u is a multiple of 2^-53, 0 included, so strictly P is x plus at most 2^-53: a black
    pixel turns on once in 10^16 draws.

    Parameters
    ----------
    x : ndarray, (N, D) or any shape, values in [0, 1]
    rng : numpy.random.Generator or int
        A seed gives the same images every call.

    Returns
    -------
    ndarray of x's floating dtype (float32 for integer input), every value 0.0 or 1.0.

    Tested by: tests/test_data.py::test_binarize_draws_pixels_with_probability_x
    """
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"binarize needs real pixel values in [0, 1], got dtype {x.dtype}")
    if x.size and (np.isnan(x).any() or x.min() < 0 or x.max() > 1):
        raise ValueError(
            "binarize needs pixel values in [0, 1] (MNIST as load_mnist gives it: bytes / 255), "
            f"got values from {np.nanmin(x)} to {np.nanmax(x)}"
            + (" and NaN" if np.isnan(x).any() else ""))
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
    u = np.random.default_rng(rng).random(x.shape, dtype=np.float64)
    return (u <= x).astype(dtype)


def check_binarization(name) -> str:
    """``name`` if it is one of :data:`BINARIZATIONS`, else a ValueError that lists them."""
    if name not in BINARIZATIONS:
        raise ValueError(f"unknown binarisation {name!r}; choose one of "
                         + ", ".join(repr(b) for b in BINARIZATIONS))
    return name

