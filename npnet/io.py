"""Files that survive interruption: atomic writes, ``.npz`` parameter files, JSON metrics.

Every file npnet writes goes through :func:`atomic_write`: the bytes are written to a
temporary file in the same directory, flushed to disk, and only then renamed over the
target. ``os.replace`` is atomic on POSIX and Windows, so a reader (or a user pressing
Ctrl-C mid-save) sees either the old complete file or the new complete file, never half
of one. Only a process killed outright (SIGKILL, a power cut) leaves its temporary file,
``.<name>.npnet-<8 random characters>.tmp``; :func:`remove_stale_temporaries` clears those,
and nothing else. Reading an ``.npz`` file reads no more than its headers, and the caller,
allow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import numpy as np

__all__ = [
    "atomic_write",
    "save_arrays",
    "load_arrays",
    "save_params",
    "load_params",
    "assign_params",
    "write_json",
    "read_json",
    "remove_stale_temporaries",
]

# The name of atomic_write's temporary files: ".<name>.npnet-" and mkstemp's 8 characters.
_TEMPORARY_MARK = "npnet-"
_TEMPORARY = re.compile(r"\..+\.npnet-[a-z0-9_]{8}\.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing; on success rename it to ``path``.

    If the block raises (including ``KeyboardInterrupt``), the temporary file is removed
    and ``path`` is left exactly as it was.

    Examples
    --------
    >>> with atomic_write("out.bin") as f:   # doctest: +SKIP
    ...     f.write(b"all or nothing")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports mode 'w' or 'wb', got {mode!r}")
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a directory; give the path of a file to write "
                                f"(for example {target / 'model.npz'})")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{_TEMPORARY_MARK}", suffix=".tmp",
                                    dir=target.parent)
    try:
        # mkstemp makes the file private (0600). Give it the mode of the file it replaces,
        # or that of a new file (0666 less the umask), so others read it as they would any.
        if hasattr(os, "fchmod"):  # POSIX (Windows has no such modes)
            os.fchmod(fd, _mode_for(target))
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _mode_for(target: Path) -> int:
    """The permission bits a new version of ``target`` gets (see :func:`atomic_write`)."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)  # the only way to read it is to set it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write named arrays (or nested lists of numbers) to an uncompressed ``.npz`` file,
    atomically.

    Object arrays are refused, so the file can always be read back with
    ``allow_pickle=False`` (no code execution when loading someone else's file).
    """
    converted = {}
    for name, value in arrays.items():
        try:
            converted[name] = np.asarray(value)
        except ValueError:  # a ragged list
            converted[name] = np.asarray(None)
        if converted[name].dtype == object:
            raise TypeError(f"{name!r} is not an array of numbers (or a list of rows of "
                             "equal length); npnet files hold numbers only")
    with _interrupts_deferred(), atomic_write(path, "wb") as f:
        np.savez(f, **converted)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C held back until the block is done, then delivered as it would have been.

    An interrupt inside zipfile (which ``np.savez`` writes with) can leave its writing handle
    open, and the ZipFile's close then raises a ValueError of its own in place of the
    KeyboardInterrupt. A save takes a moment; the interrupt waits for it. Signal handlers
    belong to the main thread, so elsewhere nothing is deferred.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, received[0])
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def load_arrays(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file written by :func:`save_arrays` (no pickle).

    Before anything is decompressed, each member's ``.npy`` header is read: an array larger
    than its member, or members larger than ``max_bytes`` in all (what the caller expects,
    with room to spare), are refused, so that a damaged or hostile file cannot make NumPy
    allocate gigabytes.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a parameter file (.npz)")
    if not path.is_file():
        raise FileNotFoundError(f"no parameter file at {path}")
    with open(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":  # np.load would return the one array, not a dict
            raise ValueError(f"{path} holds one array (a .npy file), not named arrays; "
                             "save parameters with npnet.io.save_params (a .npz file)")
    try:
        _check_npz_sizes(path, max_bytes)
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"cannot read {path}: it is not a complete .npz file of arrays ({error}); "
            "it may be damaged, or not one that npnet wrote"
        ) from error


# The .npy header readers by format version (np.savez writes 1.0, or 2.0 for long headers).
READ_HEADER = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}


def _check_npz_sizes(path: Path, max_bytes: int | None) -> None:
    """A ValueError unless every member of the ``.npz`` file ``path`` holds at least the bytes
    its ``.npy`` header promises, and all of them together at most ``max_bytes`` (by default
    16 times the file's size, and a MiB: a small file that deflates to gigabytes is refused)."""
    if max_bytes is None:  # npnet writes uncompressed: allow some compression, not a bomb
        max_bytes = 16 * path.stat().st_size + (1 << 20)
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        total = sum(member.file_size for member in members)
        if total > max_bytes:
            raise ValueError(f"its arrays hold {total} bytes, more than the {max_bytes} "
                             "expected")
        for member in members:
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version not in READ_HEADER:
                    raise ValueError(f"{member.filename} is a .npy file of version {version}")
                shape, _, dtype = READ_HEADER[version](f)
            promised = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if promised > member.file_size:
                raise ValueError(f"{member.filename} promises {promised} bytes in "
                                 f"{member.file_size}")


def save_params(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> None:
    """Save a model's parameters (``model.params``) to an ``.npz`` file, atomically."""
    save_arrays(path, params)


def load_params(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> None:
    """Copy the arrays saved in ``path`` into ``params`` (``model.params``), in place."""
    expected = sum(np.asarray(value).size for value in params.values()) * 8  # float64 at most
    assign_params(params, load_arrays(path, max_bytes=2 * expected + (1 << 20)),
                  source=str(path))


def assign_params(
    params: Mapping[str, np.ndarray], saved: Mapping[str, np.ndarray], source: str
) -> None:
    """Copy ``saved[name]`` into ``params[name]`` for every parameter, in place.

    Every parameter must be in ``saved`` with the same shape, as finite numbers; nothing is
    copied unless all of them are, so a failed load leaves the model as it was. ``source``
    names where ``saved`` came from, for the error message.
    """
    for name, value in params.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"parameter {name!r} is a {type(value).__name__}, not a NumPy "
                            "array to load into; pass model.params")
    missing = sorted(params.keys() - saved.keys())
    unexpected = sorted(saved.keys() - params.keys())
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit this model: parameters missing from the file: {missing}, "
            f"in the file but not in the model: {unexpected}. Was it saved from a model "
            "with other layer sizes?"
        )
    for name, value in params.items():
        if np.shape(saved[name]) != value.shape:
            raise ValueError(
                f"{source} does not fit this model: parameter {name!r} has shape "
                f"{np.shape(saved[name])} in the file but {value.shape} in the model. Was it "
                "saved from a model with other layer sizes?"
            )
        kind = np.asarray(saved[name]).dtype
        if not (np.issubdtype(kind, np.number) and not np.issubdtype(kind, np.complexfloating)):
            raise ValueError(f"{source}: parameter {name!r} holds {kind} values, not numbers")
        if not np.all(np.isfinite(saved[name])):
            raise ValueError(f"{source}: parameter {name!r} holds NaN or infinite values "
                             "(saved from a run that diverged, or damaged)")
    for name, value in params.items():
        value[...] = saved[name]


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically. NumPy scalars and arrays are converted."""

    def default(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot write {type(value).__name__} to JSON")

    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, default=default)
        f.write("\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file written by :func:`write_json`.

    A file nested too deeply for Python's parser is a ValueError, as any other bad JSON."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except RecursionError:
            raise ValueError(f"{path} is nested too deeply to be a file npnet wrote") from None


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` left in ``folder`` when its
    process was killed mid-save; returns their paths. Nothing else is touched.

    Call it only where no other process is saving into ``folder`` (an experiment script
    calls it as a run starts in its --out folder).
    """
    removed = []
    for path in sorted(Path(folder).iterdir()):
        if _TEMPORARY.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
