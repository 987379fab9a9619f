#!/usr/bin/env python
"""A hostile tally against both experiment scripts and the library (issue 18).

Issue 18 ("Nothing silently wrong, nothing lost") lists what a hostile run found: runs that
diverged and reported success, checkpoints overwritten or damaged, mixed-up MNIST files that
loaded silently, and raw tracebacks. This script reruns cases of each kind and sorts every
outcome into one of four kinds:

raw traceback
    A script printed ``Traceback (most recent call last)``; a library call raised an
    exception of a type npnet does not document (an AttributeError, a numba error, ...), one
    raised from inside NumPy or another package rather than by npnet itself, or one whose
    message is NumPy's or Python's own ("output array is read-only") or does not say what is
    wrong. A script that ends non-zero with no ``error:`` line is counted here too.
silent wrong
    A script exited 0, or a call returned, where the case is known to be wrong (a diverged
    run, swapped data, a damaged checkpoint); a resumed run whose numbers or model differ
    from a straight run's; a run that hung (no answer within its time limit); a bad model
    left behind.
lost file
    A file that existed before (a good model.npz, checkpoint.npz, metrics.json, a file of
    the user's) changed or vanished when it should not have.
handled
    A clear error (a script: non-zero exit with a one-line ``error: ...`` or argparse's usage
    error, no traceback; the library: ValueError, TypeError, KeyError or their subclasses,
    MNISTError, CheckpointError, TrainingDiverged, FloatingPointError, raised by npnet, whose
    message names the problem; where a probe says so, also FileNotFoundError or
    IsADirectoryError raised by npnet naming the path), or a correct result where the case
    is valid.

Groups (``--only``): ``data`` (MNIST files swapped, shuffled, cut short, a gzip bomb, odd
things named like a data file, splits too small), ``cli`` (options, used output folders,
damaged checkpoints, Ctrl-C), ``api`` (library calls, in this process) and ``resume`` (runs
killed with SIGKILL or SIGINT at a seeded random moment, then ``--resume``: every number
of metrics.json but the wall times, and every array of model.npz, must equal a straight
run's bit for bit; the ``environment`` that metrics.json records describes the process that
wrote it, so a difference there is printed as a note, not counted). Cases marked
``[extra]`` go beyond the issue's list; ``-v`` prints what each handled case answered.

    python tools/hostile.py --data-dir ../shared/data/mnist      # everything, 5-8 minutes
    python tools/hostile.py --only api                             # one group
    python tools/hostile.py -k ckpt                                # cases whose name has "ckpt"
    python tools/hostile.py --list                                 # the cases, nothing run

The data folder is ``--data-dir``, else ``$NPNET_DATA``. Every scratch file lives in one
temporary folder, removed at the end; every subprocess gets ``NPNET_CACHE`` in it, so the
user's cache is not touched. Exit status 0 only when no case ended in a raw traceback, a
silent wrong result or a lost file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
GROUPS = ("data", "cli", "api", "resume")
KINDS = ("raw", "silent", "lost", "handled")
TITLES = {"raw": "raw tracebacks", "silent": "silent wrong", "lost": "lost files",
          "handled": "handled", "skipped": "skipped"}
LABELS = {"raw": "RAW TRACEBACK", "silent": "SILENT WRONG", "lost": "LOST FILE",
          "handled": "handled", "skipped": "skipped", "harness": "HARNESS ERROR"}
DAE, VAE = "dae_mnist.py", "vae_interp.py"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
RUN_FILES = ("checkpoint.npz", "model.npz", "metrics.json")
TRACEBACK = "Traceback (most recent call last)"
MAX_BOMB_RSS_MB = 400  # the issue measured 3.2 GB; a refused load of one file needs ~150 MB
QUICK = ["--quick", "--blas-threads", "1", "--no-progress"]
STRAIGHT_EPOCHS = 3  # the straight runs that resumed runs (and damaged copies) start from


# --- outcomes and cases ----------------------------------------------------------------------


@dataclass
class Result:
    kind: str  # one of KINDS, or "skipped"
    reason: str = ""
    repro: str = ""


@dataclass
class Case:
    group: str
    name: str
    what: str
    run: Callable[[Context], Result]


CASES: list[Case] = []


def case(group: str, name: str, what: str):
    """Register a case function ``(ctx) -> Result``."""

    def register(function):
        CASES.append(Case(group, name, what, function))
        return function

    return register


def worst(problems: list[tuple[str, str]], repro: str, note: str = "") -> Result:
    """One Result from (kind, reason) problems: the worst kind first, every reason kept."""
    if not problems:
        return Result("handled", note, repro)
    order = {"raw": 0, "lost": 1, "silent": 2}
    problems = sorted(problems, key=lambda problem: order[problem[0]])
    return Result(problems[0][0], "; ".join(reason for _, reason in problems), repro)


# --- the context: scratch folders, data, the straight runs ---------------------------------


class Context:
    def __init__(self, tmp: Path, data: Path):
        self.tmp, self.data = tmp, data
        self.cache = tmp / "cache"
        self.env = {**os.environ, "NPNET_CACHE": str(self.cache), "NPNET_DATA": str(data),
                    "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
        self._count = 0
        self._straight: dict[str, tuple[Path, float]] = {}
        self._arrays: dict[str, np.ndarray] | None = None

    def folder(self, name: str) -> Path:
        """A new empty folder under the scratch folder."""
        self._count += 1
        path = self.tmp / "cases" / f"{self._count:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def show(self, text: str) -> str:
        return text.replace(str(self.tmp), "$TMP")

    def arrays(self) -> dict[str, np.ndarray]:
        """The four real MNIST arrays (uint8), read once."""
        if self._arrays is None:
            from npnet.data import read_idx

            self._arrays = {key: read_idx(self.data / name) for key, name in FILES.items()}
        return self._arrays

    def straight(self, script: str) -> tuple[Path, float]:
        """The folder of a finished straight run (``--quick --epochs 3 --blas-threads 1``,
        seed 0) and its wall time; made once. Never modified: cases copy it."""
        if script not in self._straight:
            out = self.tmp / "straight" / script[:3]
            proc = run_script(self, script, straight_args(out))
            problem = finished(proc)
            if problem is not None:
                raise FixtureFailed(f"the straight run failed ({problem.reason}): "
                                    f"{proc.repro(self)}")
            self._straight[script] = (out, proc.seconds)
        return self._straight[script]

    def copy_run(self, script: str, name: str) -> Path:
        """A copy of the straight run's folder, to damage or to resume."""
        out = self.folder(name) / "out"
        shutil.copytree(self.straight(script)[0], out)
        return out


class FixtureFailed(Exception):
    """A straight run that cases build on did not finish."""


def straight_args(out: Path, epochs: int = STRAIGHT_EPOCHS, *extra) -> list:
    return ["--quick", "--epochs", epochs, "--blas-threads", "1", "--no-progress", "--seed", 0,
            "--out", out, *extra]


# --- running a script --------------------------------------------------------------------------


@dataclass
class Proc:
    cmd: list[str]
    cache: Path
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    limit: float
    maxrss_mb: float | None = None
    signalled_at: float | None = None

    def repro(self, ctx: Context) -> str:
        python, script, *args = self.cmd
        command = shlex.join([python, str(Path(script).relative_to(ROOT)), *args])
        return ctx.show(f"cd {ROOT} && NPNET_CACHE={self.cache} {command}")


RSS_WRAPPER = """\
import json, resource, subprocess, sys
cmd, out, err, env, timeout = json.loads(sys.argv[1])
with open(out, "w") as o, open(err, "w") as e:
    try:
        rc, late = subprocess.run(cmd, stdout=o, stderr=e, env=env, timeout=timeout).returncode, 0
    except subprocess.TimeoutExpired:
        rc, late = None, 1
print(json.dumps([rc, late, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))
"""


def run_script(ctx: Context, script: str, args: list, *, timeout: float = 180,
               cwd: Path | None = None, cache: Path | None = None,
               interrupt: tuple[int, float | Callable[[float], bool]] | None = None,
               measure_rss: bool = False) -> Proc:
    """Run ``experiments/<script> args`` as a user does; stdout and stderr go to files.

    ``interrupt = (signal, when)``: send the signal when ``when`` seconds have passed, or as
    soon as ``when(elapsed)`` is true (polled every 5 ms). ``measure_rss``: run it through a
    wrapper process whose RUSAGE_CHILDREN gives its peak memory.
    """
    cmd = [sys.executable, str(EXPERIMENTS / script), *map(str, args)]
    env = dict(ctx.env)
    cache = cache or ctx.cache
    env["NPNET_CACHE"] = str(cache)
    cwd = cwd or ctx.folder("cwd")
    logs = ctx.folder("logs")
    out_path, err_path = logs / "stdout", logs / "stderr"
    start = time.monotonic()
    timed_out, signalled_at, maxrss = False, None, None
    if measure_rss:
        payload = json.dumps([cmd, str(out_path), str(err_path), env, timeout])
        wrapper = subprocess.run([sys.executable, "-c", RSS_WRAPPER, payload], cwd=cwd,
                                 capture_output=True, text=True, timeout=timeout + 30)
        rc, late, maxrss_kb = json.loads(wrapper.stdout)
        timed_out, maxrss = bool(late), maxrss_kb / 1024
    else:
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
            try:
                if interrupt is not None:
                    sig, when = interrupt
                    while proc.poll() is None and time.monotonic() - start < timeout:
                        elapsed = time.monotonic() - start
                        if when(elapsed) if callable(when) else elapsed >= when:
                            proc.send_signal(sig)
                            signalled_at = elapsed
                            break
                        time.sleep(0.005)
                proc.wait(timeout=max(0.1, timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            rc = None if timed_out else proc.returncode
    return Proc(cmd, cache, rc, out_path.read_text(errors="replace"),
                err_path.read_text(errors="replace"), time.monotonic() - start, timed_out,
                timeout, maxrss, signalled_at)


def traceback_line(text: str) -> str | None:
    """The exception line of a traceback in ``text``, or None if there is none."""
    if TRACEBACK not in text:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ignored = [line for line in lines if line.startswith("Exception ignored in")]
    where = f" ({ignored[0][:90]}, printed as unraisable)" if ignored else ""
    return f"Traceback ... {lines[-1][:160]}{where}"


def error_line(text: str) -> str | None:
    """The first ``error: ...`` line (ours or argparse's ``prog: error: ...``)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("error:") or re.match(r"^\S+: error: ", line):
            return line[:200]
    return None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(nothing)"


def refused(proc: Proc, ctx: Context, *mentions: str, before_training: bool = False,
            problems: list | None = None) -> Result:
    """A run that must end in a clear error (one naming ``mentions``, any of them)."""
    problems = list(problems or [])
    repro = proc.repro(ctx)
    note = ""
    if proc.timed_out:
        problems.append(("silent", f"no answer within {proc.limit:.0f} s (hung)"))
    elif (tb := traceback_line(proc.stderr)) is not None:
        problems.append(("raw", tb))
    elif proc.rc == 0:
        problems.append(("silent", f"exit 0 where it must refuse: {last_line(proc.stdout)}"))
    elif (line := error_line(proc.stderr)) is None:
        problems.append(("raw", f"exit {proc.rc} without an 'error:' line: "
                                f"{last_line(proc.stderr)}"))
    else:
        text = proc.stderr.lower()
        if mentions and not any(word.lower() in text for word in mentions):
            problems.append(("raw", f"refused, but the error does not name the problem "
                                    f"(expected one of {list(mentions)}): {line}"))
        note = line
        if before_training and "epoch 1/" in proc.stdout:
            note = f"note: refused only after training: {line}"
    return worst(problems, repro, note)


def finished(proc: Proc) -> Result | None:
    """None if a run that must succeed did; else what went wrong."""
    if proc.timed_out:
        return Result("silent", f"no answer within {proc.limit:.0f} s (hung)")
    if (tb := traceback_line(proc.stderr)) is not None:
        return Result("raw", tb)
    if proc.rc != 0:
        line = error_line(proc.stderr) or last_line(proc.stderr)
        return Result("silent", f"a valid run ended with exit {proc.rc}: {line}")
    return None


# --- files ---------------------------------------------------------------------------------


def state_of(path: Path) -> str | None:
    """What is at ``path``: a file's SHA-256, a folder's listing and contents, or None."""
    if path.is_symlink() and not path.exists():
        return "broken link"
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return "dir:" + ",".join(f"{p.name}={state_of(p)}" for p in sorted(path.iterdir()))
    return None


def snapshot(*paths: Path) -> dict[Path, str | None]:
    return {path: state_of(path) for path in paths}


def changed(before: dict[Path, str | None]) -> list[str]:
    """The paths of a snapshot that changed or vanished since."""
    lost = []
    for path, state in before.items():
        now = state_of(path)
        if now != state:
            lost.append(f"{path.name} {'vanished' if now is None else 'changed'}")
    return lost


def lost_problems(before: dict[Path, str | None]) -> list[tuple[str, str]]:
    lost = changed(before)
    return [("lost", ", ".join(lost))] if lost else []


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez adds no suffix
        np.savez(f, **arrays)


def edit_checkpoint(path: Path, edit: Callable[[dict, dict], None]) -> None:
    """Rewrite a checkpoint with ``edit(arrays, meta)`` applied, as a user's script might."""
    arrays = load_npz(path)
    meta = json.loads(str(arrays["meta"]))
    edit(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    save_npz(path, arrays)


def checkpoint_problem(path: Path) -> str | None:
    """None if there is no checkpoint or a sound one; else what is wrong with it."""
    if not path.exists():
        return None
    try:
        arrays = load_npz(path)
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:  # noqa: BLE001 - any failure to read it is the finding
        return f"the checkpoint left behind cannot be read ({type(error).__name__})"
    for name, value in arrays.items():
        if np.issubdtype(value.dtype, np.number) and not np.all(np.isfinite(value)):
            return f"the checkpoint left behind holds NaN or inf in {name}"
    for name, values in meta.get("history", {}).items():
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return f"the checkpoint left behind has a history of {name} that is not finite"
    return None


def numbers(obj, path: str = "") -> dict[str, float]:
    """Every number in a metrics.json (booleans aside), by its path; wall times left out."""
    found: dict[str, float] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key not in ("wall_seconds", "epoch_seconds"):
                found.update(numbers(value, f"{path}.{key}"))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found.update(numbers(value, f"{path}[{i}]"))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        found[path] = obj
    return found


def same_run(out: Path, reference: Path) -> tuple[list[str], str]:
    """How the run in ``out`` differs from the one in ``reference`` (every number of
    metrics.json but wall times and the environment, every array of model.npz), and a note
    on how the environment recorded in metrics.json differs, if it does."""
    differences = []
    try:
        mine = numbers(json.loads((out / "metrics.json").read_text()))
        theirs = numbers(json.loads((reference / "metrics.json").read_text()))
    except (OSError, ValueError) as error:
        return [f"metrics.json unreadable: {error}"], ""
    # The environment describes the process that wrote the file (which BLAS libraries it
    # had loaded, say), not the results.
    note = ""
    environment = sorted(key for key in mine.keys() ^ theirs.keys()
                         | {k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k]}
                         if key.startswith(".environment"))
    if environment:
        note = (f"note: metrics.json's environment differs from the straight run's "
                f"({environment[0]}: {mine.get(environment[0], 'missing')} vs "
                f"{theirs.get(environment[0], 'missing')})")
    mine = {k: v for k, v in mine.items() if not k.startswith(".environment")}
    theirs = {k: v for k, v in theirs.items() if not k.startswith(".environment")}
    keys = sorted(mine.keys() | theirs.keys())
    differing = [key for key in keys if mine.get(key, "missing") != theirs.get(key, "missing")]
    if differing:
        key = differing[0]
        differences.append(f"{len(differing)} metrics differ (first {key}: "
                           f"{mine.get(key, 'missing')} vs {theirs.get(key, 'missing')})")
    try:
        model, expected = load_npz(out / "model.npz"), load_npz(reference / "model.npz")
    except (OSError, ValueError) as error:
        return [*differences, f"model.npz unreadable: {error}"], note
    bad = [name for name in expected.keys() | model.keys()
           if name not in model or name not in expected
           or model[name].dtype != expected[name].dtype
           or model[name].tobytes() != expected[name].tobytes()]
    if bad:
        differences.append(f"model.npz differs in {len(bad)} arrays ({sorted(bad)[0]}, ...)")
    return differences, note


# --- MNIST files -------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic_ndim: int | None = None) -> bytes:
    """An IDX file of unsigned bytes holding ``array``."""
    ndim = array.ndim if magic_ndim is None else magic_ndim
    header = (0x0800 + ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def gz(content: bytes) -> bytes:
    return gzip.compress(content, compresslevel=1, mtime=0)


def data_folder(ctx: Context, name: str, **changes) -> Path:
    """A data folder: links to the four real files, except where ``changes`` says otherwise
    (per key of FILES: a Path to link to, bytes to write, an array to write as IDX .gz,
    "dir", "fifo", "loop", or None for no file)."""
    folder = ctx.folder(name) / "mnist"
    folder.mkdir()
    for key, file_name in FILES.items():
        target = folder / file_name
        change = changes.get(key, ctx.data / file_name)
        if isinstance(change, Path):
            target.symlink_to(change)
        elif isinstance(change, bytes):
            target.write_bytes(change)
        elif isinstance(change, np.ndarray):
            target.write_bytes(gz(idx_bytes(change)))
        elif change == "dir":
            target.mkdir()
            (target / "README").write_text("a folder named like a data file\n")
        elif change == "fifo":
            os.mkfifo(target)  # never opened here: only npnet, in a subprocess, sees it
        elif change == "loop":
            target.symlink_to(target.name)  # a link to itself
        elif change is not None:
            raise ValueError(f"unknown change {change!r}")
    return folder


def small_data(ctx: Context, name: str, n_train: int, n_test: int, **changes) -> Path:
    """A folder of the first ``n_train`` training and ``n_test`` test images (with
    ``--no-verify`` only), with ``changes`` on top."""
    arrays = ctx.arrays()
    small = {
        "train_images": arrays["train_images"][:n_train],
        "train_labels": arrays["train_labels"][:n_train],
        "test_images": arrays["test_images"][:n_test],
        "test_labels": arrays["test_labels"][:n_test],
    }
    return data_folder(ctx, name, **{**small, **changes})


def gzip_bomb(header: bytes, total: int) -> bytes:
    """Gzip members that expand to ``header`` and zeros, ``total`` bytes in all (~1032:1)."""
    chunk = 16 * 2**20
    first = gzip.compress(header + bytes(chunk - len(header)), compresslevel=9, mtime=0)
    rest = gzip.compress(bytes(chunk), compresslevel=9, mtime=0)
    return first + rest * (total // chunk - 1)


def data_run(ctx: Context, folder: Path, script: str = DAE, *extra, **kwargs) -> Proc:
    out = ctx.folder("out") / "run"
    return run_script(ctx, script, [*QUICK, "--epochs", 1, "--data-dir", folder, "--out", out,
                                    *extra], **kwargs)


# --- data -----------------------------------------------------------------------------------


@case("data", "swapped-train-test", "train and test files swapped (links), DAE")
def _(ctx):
    d = ctx.data
    folder = data_folder(ctx, "swapped", train_images=d / FILES["test_images"],
                         train_labels=d / FILES["test_labels"],
                         test_images=d / FILES["train_images"],
                         test_labels=d / FILES["train_labels"])
    return refused(data_run(ctx, folder), ctx, "swapped")


@case("data", "swapped-test-images-only", "[extra] training images as test images, DAE")
def _(ctx):
    folder = data_folder(ctx, "swapped-images", test_images=ctx.data / FILES["train_images"])
    return refused(data_run(ctx, folder), ctx, "swapped", "not the original")


@case("data", "shuffled-train-labels", "training labels permuted (same size), DAE")
def _(ctx):
    labels = np.random.default_rng(18).permutation(ctx.arrays()["train_labels"])
    folder = data_folder(ctx, "shuffled", train_labels=labels)
    return refused(data_run(ctx, folder), ctx, "not the original", "md5")


@case("data", "shuffled-test-labels", "test labels permuted (wrong 'same digit' pairs), VAE")
def _(ctx):
    labels = np.random.default_rng(18).permutation(ctx.arrays()["test_labels"])
    folder = data_folder(ctx, "shuffled-test", test_labels=labels)
    return refused(data_run(ctx, folder, VAE), ctx, "not the original", "md5")


@case("data", "edited-one-pixel", "[extra] one training pixel changed, DAE")
def _(ctx):
    images = ctx.arrays()["train_images"].copy()
    images[123, 14, 14] ^= 0xFF
    folder = data_folder(ctx, "pixel", train_images=images)
    return refused(data_run(ctx, folder), ctx, "not the original", "md5")


@case("data", "truncated-gz", "test images .gz cut to half its bytes, DAE")
def _(ctx):
    content = (ctx.data / FILES["test_images"]).read_bytes()
    folder = data_folder(ctx, "truncated-gz", test_images=content[: len(content) // 2])
    return refused(data_run(ctx, folder), ctx, "cut short", "truncated", "damaged")


@case("data", "truncated-idx", "uncompressed test images short by 1000 bytes, DAE")
def _(ctx):
    folder = data_folder(ctx, "truncated-idx", test_images=None)
    content = idx_bytes(ctx.arrays()["test_images"])
    (folder / "t10k-images-idx3-ubyte").write_bytes(content[:-1000])
    return refused(data_run(ctx, folder), ctx, "truncated", "damaged")


@case("data", "extra-bytes", "[extra] uncompressed test labels with 7 bytes appended, DAE")
def _(ctx):
    folder = data_folder(ctx, "extra-bytes", test_labels=None)
    content = idx_bytes(ctx.arrays()["test_labels"])
    (folder / "t10k-labels-idx1-ubyte").write_bytes(content + b"garbage")
    return refused(data_run(ctx, folder), ctx, "extra bytes", "damaged")


def bomb_case(ctx: Context, name: str, header: bytes, *extra: str) -> Result:
    folder = data_folder(ctx, name, train_images=gzip_bomb(header, 1536 * 2**20))
    size = (folder / FILES["train_images"]).stat().st_size
    proc = data_run(ctx, folder, DAE, *extra, measure_rss=True, timeout=120)
    problems = []
    if proc.maxrss_mb is not None and proc.maxrss_mb > MAX_BOMB_RSS_MB:
        problems.append(("silent", f"peak memory {proc.maxrss_mb:.0f} MB (limit "
                                   f"{MAX_BOMB_RSS_MB} MB)"))
    result = refused(proc, ctx, "damaged", "not the original", "more than", problems=problems)
    result.repro = (f"make {FILES['train_images']} a {size / 2**20:.1f} MB gzip of "
                    f"{header.hex()} + zeros (1.5 GB expanded); {result.repro}")
    if result.kind == "handled":
        result.reason = f"peak memory {proc.maxrss_mb:.0f} MB; {result.reason}"
    return result


@case("data", "gzip-bomb", "1.5 MB gzip of an IDX header (60,000 images) + 1.5 GB of zeros")
def _(ctx):
    return bomb_case(ctx, "bomb", b"\x00\x00\x08\x03"
                     + b"".join(n.to_bytes(4, "big") for n in (60000, 28, 28)))


@case("data", "gzip-bomb-header", "1.5 MB gzip whose header promises 1,950,000 images")
def _(ctx):
    return bomb_case(ctx, "bomb-header", b"\x00\x00\x08\x03"
                     + b"".join(n.to_bytes(4, "big") for n in (1_950_000, 28, 28)))


@case("data", "gzip-bomb-no-verify", "1.5 MB gzip promising 100,000,000 images, --no-verify")
def _(ctx):
    return bomb_case(ctx, "bomb-no-verify", b"\x00\x00\x08\x03"
                     + b"".join(n.to_bytes(4, "big") for n in (100_000_000, 28, 28)),
                     "--no-verify")


@case("data", "directory-as-file", "a folder named train-images-idx3-ubyte.gz, DAE")
def _(ctx):
    folder = data_folder(ctx, "dir", train_images="dir")
    return refused(data_run(ctx, folder), ctx, "a directory")


@case("data", "symlink-loop", "train-labels-idx1-ubyte.gz a link to itself, DAE")
def _(ctx):
    folder = data_folder(ctx, "loop", train_labels="loop")
    return refused(data_run(ctx, folder), ctx, "loops")


@case("data", "fifo", "a FIFO named t10k-images-idx3-ubyte.gz (60 s limit), DAE")
def _(ctx):
    folder = data_folder(ctx, "fifo", test_images="fifo")
    return refused(data_run(ctx, folder, timeout=60), ctx, "fifo", "named pipe")


@case("data", "unreadable-folder", "the data folder without read/execute permission, DAE")
def _(ctx):
    if os.geteuid() == 0:
        return Result("skipped", "running as root: permissions do not apply")
    folder = data_folder(ctx, "unreadable")
    folder.chmod(0)
    try:
        return refused(data_run(ctx, folder), ctx, "permission")
    finally:
        folder.chmod(0o755)


@case("data", "unreadable-file", "[extra] a data file without read permission, DAE")
def _(ctx):
    if os.geteuid() == 0:
        return Result("skipped", "running as root: permissions do not apply")
    folder = data_folder(ctx, "unreadable-file",
                         test_labels=(ctx.data / FILES["test_labels"]).read_bytes())
    (folder / FILES["test_labels"]).chmod(0)
    return refused(data_run(ctx, folder), ctx, "permission", "cannot read")


@case("data", "empty-test-split", "a test split of 0 images and labels, --no-verify, DAE")
def _(ctx):
    folder = small_data(ctx, "empty-test", 3000, 0)
    return refused(data_run(ctx, folder, DAE, "--no-verify"), ctx, "no images", "holds no")


@case("data", "empty-train-split", "a training split of 0 images, --no-verify, VAE")
def _(ctx):
    folder = small_data(ctx, "empty-train", 0, 500)
    return refused(data_run(ctx, folder, VAE, "--no-verify"), ctx, "no images", "holds no")


@case("data", "empty-split-verified", "a test split of 0 images, verified, DAE")
def _(ctx):
    folder = small_data(ctx, "empty-verified", 3000, 0, train_images=ctx.data
                        / FILES["train_images"], train_labels=ctx.data / FILES["train_labels"])
    return refused(data_run(ctx, folder), ctx, "0 images", "holds no", "not the original")


@case("data", "vae-5-image-test", "a 5-image test set, --no-verify, VAE (before training)")
def _(ctx):
    folder = small_data(ctx, "five", 3000, 5)
    return refused(data_run(ctx, folder, VAE, "--no-verify"), ctx, "pairs",
                   before_training=True)


@case("data", "vae-one-digit-test", "a test set of 300 images of one digit, --no-verify, VAE")
def _(ctx):
    arrays = ctx.arrays()
    ones = np.flatnonzero(arrays["test_labels"] == 1)[:300]
    folder = small_data(ctx, "one-digit", 3000, 0, test_images=arrays["test_images"][ones],
                        test_labels=arrays["test_labels"][ones])
    return refused(data_run(ctx, folder, VAE, "--no-verify"), ctx, "pairs",
                   before_training=True)


@case("data", "dae-5-image-test", "[extra] a 5-image test set, --no-verify, DAE: finishes "
      "or refuses clearly")
def _(ctx):
    folder = small_data(ctx, "dae-five", 3000, 5)
    proc = data_run(ctx, folder, DAE, "--no-verify")
    if proc.rc == 0 and not proc.timed_out and traceback_line(proc.stderr) is None:
        return Result("handled", "finished", proc.repro(ctx))
    return refused(proc, ctx)


@case("data", "fewer-than-a-batch", "100 training images (batch 128), --no-verify, DAE")
def _(ctx):
    folder = small_data(ctx, "tiny-train", 100, 500)
    return refused(data_run(ctx, folder, DAE, "--no-verify"), ctx, "fewer than one batch",
                   "batch", before_training=True)


@case("data", "count-mismatch", "[extra] 3000 training images, 2999 labels, --no-verify, DAE")
def _(ctx):
    folder = small_data(ctx, "mismatch", 3000, 500,
                        train_labels=ctx.arrays()["train_labels"][:2999])
    return refused(data_run(ctx, folder, DAE, "--no-verify"), ctx, "labels")


@case("data", "label-out-of-range", "[extra] a training label 10, --no-verify, DAE")
def _(ctx):
    labels = ctx.arrays()["train_labels"][:3000].copy()
    labels[7] = 10
    folder = small_data(ctx, "label-10", 3000, 500, train_labels=labels)
    return refused(data_run(ctx, folder, DAE, "--no-verify"), ctx, "0..9", "label")


@case("data", "labels-as-images", "[extra] the label file named as the image file, DAE")
def _(ctx):
    folder = data_folder(ctx, "labels-as-images", train_images=ctx.data / FILES["train_labels"])
    return refused(data_run(ctx, folder), ctx, "image file", "magic")


@case("data", "garbage-gz", "[extra] 4 KB of random bytes named like the test labels, DAE")
def _(ctx):
    noise = np.random.default_rng(18).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    folder = data_folder(ctx, "garbage", test_labels=noise)
    return refused(data_run(ctx, folder), ctx, "damaged", "magic")


@case("data", "modified-no-verify", "modified data with --no-verify: trains (VAE, 1 epoch)")
def _(ctx):
    arrays = ctx.arrays()
    images = arrays["train_images"][:3000].copy()
    images[:, :2, :] = 255  # a white bar: deliberately modified
    folder = small_data(ctx, "modified", 3000, 500, train_images=images)
    proc = data_run(ctx, folder, VAE, "--no-verify")
    problem = finished(proc)
    if problem is not None:
        problem.repro = proc.repro(ctx)
        return problem
    if "2000 training images" not in proc.stdout:  # --quick takes the first 2000
        return Result("silent", "did not train on the given images", proc.repro(ctx))
    return Result("handled", "finished", proc.repro(ctx))


@case("data", "idx-fuzz", "[extra] 400 mutated IDX files (.gz and raw) through read_idx, "
      "in process")
def _(ctx):
    from npnet.data import MNISTError, read_idx

    rng = np.random.default_rng(18)
    base = idx_bytes(ctx.arrays()["test_images"][:20])
    folder = ctx.folder("fuzz")
    failures = []
    for i in range(400):
        content = bytearray(base)
        what = rng.integers(4)
        if what == 0:  # flip bytes, header included
            for at in rng.integers(0, min(len(content), 40 if i % 2 else len(content)), 3):
                content[at] = rng.integers(256)
        elif what == 1:
            content = content[: rng.integers(0, len(content))]
        elif what == 2:
            content += bytes(rng.integers(0, 256, rng.integers(1, 50), dtype=np.uint8))
        else:  # another shape in the header
            content[4 + 4 * rng.integers(3) : 8 + 4 * rng.integers(3)] = bytes(
                rng.integers(0, 256, 4, dtype=np.uint8))
        data = gz(bytes(content)) if i % 2 else bytes(content)
        if i % 5 == 4 and len(data) > 30:  # damage the compressed stream itself
            data = data[:20] + bytes([data[20] ^ 0x55]) + data[21:]
        path = folder / f"{i}.idx"
        path.write_bytes(data)
        try:
            read_idx(path)
        except MNISTError:
            pass
        except Exception as error:  # noqa: BLE001 - any other exception is the finding
            failures.append(f"{path.name}: {type(error).__name__}: {error}")
    if failures:
        return Result("raw", f"{len(failures)} foreign exceptions, first {failures[0][:160]}",
                      "tools/hostile.py -k idx-fuzz (seeded mutations of 20 test images)")
    return Result("handled", "400 files: MNISTError or a valid array each")


# --- command line --------------------------------------------------------------------------


def option_case(name: str, script: str, args: list, mentions: tuple[str, ...], what: str):
    """A run with a bad option: refused clearly, nothing written in the current folder."""

    def run(ctx):
        cwd = ctx.folder("cwd")
        out = ctx.folder("out") / "run"
        full = [*QUICK, "--epochs", 1, "--data-dir", ctx.data, "--out", out, *args]
        if "--out" in args:
            full = [*QUICK, "--epochs", 1, "--data-dir", ctx.data, *args]
        proc = run_script(ctx, script, full, cwd=cwd, timeout=120)
        problems = []
        if any(cwd.iterdir()):
            problems.append(("silent", "wrote into the current folder: "
                             + ", ".join(p.name for p in cwd.iterdir())))
        if (out / "model.npz").exists():
            problems.append(("silent", "wrote a model"))
        return refused(proc, ctx, *mentions, problems=problems)

    case("cli", name, what or f"{script[:3]} {shlex.join(map(str, args))}")(run)


OPTION_CASES = [
    ("out-empty", DAE, ["--out", ""], ("empty",), ""),
    ("out-empty-vae", VAE, ["--out", ""], ("empty",), ""),
    ("out-blank", DAE, ["--out", "  "], ("empty",), "[extra] --out of spaces"),
    ("hidden-huge", DAE, ["--hidden", "100000000", "128"], ("memory",), ""),
    ("hidden-huge-vae", VAE, ["--hidden", "100000000"], ("memory",), ""),
    ("code-huge", DAE, ["--code", "100000000"], ("memory",), ""),
    ("latent-huge", VAE, ["--latent", "100000000"], ("memory",), ""),
    ("hidden-zero", DAE, ["--hidden", "0", "128"], ("--hidden",), ""),
    ("hidden-float", VAE, ["--hidden", "32.5"], ("--hidden",), ""),
    ("hidden-one-width", DAE, ["--hidden", "64"], ("--hidden",), "[extra] one --hidden width"),
    ("hidden-none-dense", DAE, ["--hidden"], ("--hidden",), "[conv] --hidden with no widths"),
    ("arch-unknown", VAE, ["--arch", "cnn"], ("--arch",), "[conv] an unknown --arch"),
    ("channels-without-conv", DAE, ["--channels", "8", "16"], ("--channels",),
     "[conv] --channels without --arch conv"),
    ("channels-zero", VAE, ["--arch", "conv", "--channels", "0", "8"], ("--channels",),
     "[conv] a zero channel count"),
    ("channels-one-no-hidden", DAE, ["--arch", "conv", "--channels", "8", "--hidden"],
     ("--channels",), "[conv] too few layers per side"),
    ("channels-huge", VAE, ["--arch", "conv", "--channels", "100000", "100000"], ("memory",),
     "[conv] channels too many for memory"),
    ("binarize-unknown", VAE, ["--binarize", "yes"], ("--binarize",),
     "[likelihood] an unknown --binarize"),
    ("log-likelihood-k-gray", VAE, ["--log-likelihood-k", "100"], ("--binarize",),
     "[likelihood] log p(x) of gray images"),
    ("log-likelihood-k-negative", VAE, ["--binarize", "static", "--log-likelihood-k", "-5"],
     ("--log-likelihood-k",), "[likelihood] a negative k"),
    ("seed-negative", DAE, ["--seed", "-1"], ("--seed",), ""),
    ("seed-float", DAE, ["--seed", "1.5"], ("--seed",), ""),
    ("seed-word", VAE, ["--seed", "abc"], ("--seed",), ""),
    ("seed-empty", VAE, ["--seed", ""], ("--seed",), ""),
    ("threads-zero", DAE, ["--threads", "0"], ("--threads",), ""),
    ("threads-negative", VAE, ["--threads", "-2"], ("--threads",), ""),
    ("threads-word", DAE, ["--threads", "two"], ("--threads",), ""),
    ("threads-over-batch", DAE, ["--threads", "500"], ("--threads",), ""),
    ("threads-no-fast", VAE, ["--threads", "2", "--no-fast"], ("--threads",), ""),
    ("blas-threads-zero", DAE, ["--blas-threads", "0"], ("--blas-threads",), ""),
    ("blas-threads-negative", VAE, ["--blas-threads", "-1"], ("--blas-threads",), ""),
    ("blas-threads-float", DAE, ["--blas-threads", "1.5"], ("--blas-threads",), ""),
    ("blas-threads-word", VAE, ["--blas-threads", "many"], ("--blas-threads",), ""),
    ("blas-threads-empty", DAE, ["--blas-threads", ""], ("--blas-threads",), ""),
    ("lr-zero", DAE, ["--lr", "0"], ("--lr",), "[extra]"),
    ("lr-nan", VAE, ["--lr", "nan"], ("--lr",), "[extra]"),
    ("lr-negative", DAE, ["--lr", "-1"], ("--lr",), "[extra]"),
    ("epochs-zero", VAE, ["--epochs", "0"], ("--epochs",), "[extra]"),
    ("batch-size-zero", DAE, ["--batch-size", "0"], ("--batch-size",), "[extra]"),
    ("batch-size-over-data", VAE, ["--batch-size", "5000"], ("--batch-size",), "[extra]"),
    ("noise-level-nan", DAE, ["--noise-level", "nan"], ("--noise-level",), "[extra]"),
    ("beta-negative", VAE, ["--beta", "-1"], ("--beta",), "[extra]"),
    ("beta-inf", VAE, ["--beta", "inf"], ("--beta",), "[extra]"),
    ("momentum-one", DAE, ["--optimizer", "sgd", "--momentum", "1"], ("--momentum",), "[extra]"),
]
for _spec in OPTION_CASES:
    option_case(*_spec)


def diverged_case(ctx: Context, script: str, *args) -> Result:
    """A run that must diverge: non-zero, a clear error, no model or metrics, a sound
    checkpoint (of a good epoch) or none."""
    out = ctx.folder("out") / "run"
    proc = run_script(ctx, script, [*QUICK, "--data-dir", ctx.data, "--out", out, *args])
    problems = []
    for name in ("model.npz", "metrics.json"):
        if (out / name).exists():
            problems.append(("silent", f"the diverged run left {name}"))
    if (problem := checkpoint_problem(out / "checkpoint.npz")) is not None:
        problems.append(("silent", problem))
    if out.exists() and any(out.glob("*.png")):
        problems.append(("silent", "the diverged run drew figures"))
    return refused(proc, ctx, "went wrong", "diverge", "not finite", "exploded",
                   problems=problems)


@case("cli", "dae-lr-10", "DAE --epochs 3 --lr 10: fails, keeps no bad model")
def _(ctx):
    return diverged_case(ctx, DAE, "--epochs", 3, "--lr", 10)


@case("cli", "dae-sgd-lr-1000", "DAE --epochs 3 --optimizer sgd --lr 1000")
def _(ctx):
    return diverged_case(ctx, DAE, "--epochs", 3, "--optimizer", "sgd", "--lr", 1000)


@case("cli", "vae-lr-10", "VAE --epochs 3 --lr 10")
def _(ctx):
    return diverged_case(ctx, VAE, "--epochs", 3, "--lr", 10)


def used_out_case(ctx: Context, script: str, name: str, args: list, *mentions: str,
                  prepare: Callable[[Path], None] | None = None,
                  keep: tuple[str, ...] = RUN_FILES, measure: bool = False) -> Result:
    """Rerun into a copy of a finished straight run: must be refused clearly, and the run's
    files (``keep``) stay exactly as they were (after ``prepare`` damaged them). ``measure``:
    and without taking more than 2 GB of memory."""
    out = ctx.copy_run(script, name)
    if prepare is not None:
        prepare(out)
    before = snapshot(*(out / file_name for file_name in keep))
    epochs, *args = args if args and isinstance(args[0], int) else [STRAIGHT_EPOCHS, *args]
    proc = run_script(ctx, script, straight_args(out, epochs, *args), measure_rss=measure)
    problems = lost_problems(before)
    if measure and proc.maxrss_mb is not None and proc.maxrss_mb > 2048:
        problems.append(("silent", f"took {proc.maxrss_mb:.0f} MB of memory to refuse it"))
    result = refused(proc, ctx, *mentions, problems=problems)
    if prepare is not None:
        result.repro = f"(copy of a finished run, {prepare.__doc__}) {result.repro}"
    return result


@case("cli", "epochs-3-then-5", "DAE --epochs 5 into a finished --epochs 3 run, no --resume")
def _(ctx):
    return used_out_case(ctx, DAE, "3-then-5", [5], "--resume", "--overwrite")


@case("cli", "used-out-vae", "VAE rerun into a finished run with other options, no --resume")
def _(ctx):
    return used_out_case(ctx, VAE, "used-vae", ["--lr", "0.002"], "--resume", "--overwrite")


@case("cli", "resume-fewer-epochs", "DAE --resume --epochs 2 on a finished 3-epoch run")
def _(ctx):
    return used_out_case(ctx, DAE, "fewer", [2, "--resume"], "epochs")


@case("cli", "resume-other-settings", "[extra] DAE --resume with another --lr")
def _(ctx):
    return used_out_case(ctx, DAE, "other-lr", ["--resume", "--lr", "0.002"], "lr")


@case("cli", "resume-more-epochs", "VAE --resume --epochs 4 on a finished 3-epoch run: trains "
      "further and says the schedule differs")
def _(ctx):
    out = ctx.copy_run(VAE, "more")
    proc = run_script(ctx, VAE, straight_args(out, 4, "--resume"))
    problem = finished(proc)
    if problem is not None:
        problem.repro = proc.repro(ctx)
        return problem
    history = json.loads((out / "metrics.json").read_text())["history"]["test_loss"]
    if len(history) != 4:
        return Result("silent", f"history has {len(history)} epochs, not 4", proc.repro(ctx))
    if "note:" not in proc.stdout + proc.stderr:
        return Result("silent", "no word that the schedule differs from a 4-epoch run",
                      proc.repro(ctx))
    return Result("handled", "trained further, with a note")


def nan_weight(arrays, meta):
    """its first weight set to NaN"""
    arrays["params/encoder.0.W"][0, 0] = np.nan


def nan_adam_state(arrays, meta):
    """NaN in Adam's v of the first bias"""
    arrays["optim/v/encoder.0.b"][3] = np.nan


def epoch_minus_3(arrays, meta):
    """its epoch set to -3"""
    meta["epoch"] = -3


def epoch_two(arrays, meta):
    """its epoch set to "two" """
    meta["epoch"] = "two"


def history_list(arrays, meta):
    """its history made a list"""
    meta["history"] = list(meta["history"].values())


def history_short(arrays, meta):
    """each history list cut to 2 of its 3 epochs"""
    meta["history"] = {name: values[:2] for name, values in meta["history"].items()}


def history_nan(arrays, meta):
    """a test loss of NaN in its history"""
    meta["history"]["test_loss"][-1] = float("nan")


def optim_shape(arrays, meta):
    """Adam's m of the first bias given shape (3,)"""
    arrays["optim/m/encoder.0.b"] = np.zeros(3, np.float32)


def missing_steps(arrays, meta):
    """'optim/steps' deleted"""
    del arrays["optim/steps"]


def string_weights(arrays, meta):
    """the first bias as strings"""
    arrays["params/encoder.0.b"] = arrays["params/encoder.0.b"].astype(str)


def missing_weight(arrays, meta):
    """the last decoder weight deleted"""
    last = sorted(name for name in arrays if name.startswith("params/decoder"))[-1]
    del arrays[last]


def no_meta(arrays, meta):
    """its meta entry deleted (after the edit)"""


EDITS = [
    ("ckpt-nan-weight-dae", DAE, nan_weight, ("nan",)),
    ("ckpt-nan-weight-vae", VAE, nan_weight, ("nan",)),
    ("ckpt-nan-adam-state", DAE, nan_adam_state, ("nan",)),
    ("ckpt-epoch-minus-3", DAE, epoch_minus_3, ("epoch",)),
    ("ckpt-epoch-two", VAE, epoch_two, ("epoch",)),
    ("ckpt-history-list", DAE, history_list, ("history",)),
    ("ckpt-history-short", VAE, history_short, ("history",)),
    ("ckpt-history-nan", DAE, history_nan, ("history", "finite")),
    ("ckpt-optim-shape", DAE, optim_shape, ("shape",)),
    ("ckpt-missing-steps", VAE, missing_steps, ("steps",)),
    ("ckpt-string-weights", DAE, string_weights, ("not numbers", "holds")),
    ("ckpt-missing-weight", VAE, missing_weight, ("missing", "decoder")),
]


def edited_checkpoint_case(name: str, script: str, edit, mentions: tuple[str, ...]):
    def prepare(out: Path) -> None:
        edit_checkpoint(out / "checkpoint.npz", edit)

    prepare.__doc__ = f"checkpoint.npz rewritten with {edit.__doc__.strip()}"

    def run(ctx):
        return used_out_case(ctx, script, name, ["--resume"], "checkpoint", *mentions,
                             prepare=prepare)

    case("cli", name, f"{script[:3]} --resume on a finished run whose checkpoint has "
         f"{edit.__doc__.strip()}")(run)


for _spec in EDITS:
    edited_checkpoint_case(*_spec)


def truncated_checkpoint(out: Path) -> None:
    """checkpoint.npz cut to half its bytes"""
    path = out / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def text_checkpoint(out: Path) -> None:
    """checkpoint.npz replaced by a line of text"""
    (out / "checkpoint.npz").write_text("not a checkpoint\n")


def npy_checkpoint(out: Path) -> None:
    """checkpoint.npz replaced by a .npy file of one array"""
    with open(out / "checkpoint.npz", "wb") as f:
        np.save(f, np.zeros(3))


@case("cli", "ckpt-truncated", "[extra] DAE --resume with checkpoint.npz cut in half")
def _(ctx):
    return used_out_case(ctx, DAE, "ckpt-truncated", ["--resume"], "checkpoint",
                         prepare=truncated_checkpoint)


@case("cli", "ckpt-text", "[extra] VAE --resume with checkpoint.npz a text file")
def _(ctx):
    return used_out_case(ctx, VAE, "ckpt-text", ["--resume"], "checkpoint",
                         prepare=text_checkpoint)


@case("cli", "ckpt-npy", "[extra] DAE --resume with checkpoint.npz a .npy file")
def _(ctx):
    return used_out_case(ctx, DAE, "ckpt-npy", ["--resume"], "checkpoint",
                         prepare=npy_checkpoint)


@case("cli", "ckpt-of-the-vae", "[extra] DAE --resume with the VAE's checkpoint")
def _(ctx):
    def vae_checkpoint(out: Path) -> None:
        """checkpoint.npz replaced by the VAE's"""
        shutil.copyfile(ctx.straight(VAE)[0] / "checkpoint.npz", out / "checkpoint.npz")

    return used_out_case(ctx, DAE, "ckpt-vae", ["--resume"], "checkpoint",
                         prepare=vae_checkpoint)


def checkpoint_folder(out: Path) -> None:
    """checkpoint.npz replaced by a folder holding a file"""
    (out / "checkpoint.npz").unlink()
    (out / "checkpoint.npz").mkdir()
    (out / "checkpoint.npz" / "notes.txt").write_text("the user's notes\n")


@case("cli", "ckpt-directory-resume", "DAE --resume where checkpoint.npz is a folder")
def _(ctx):
    return used_out_case(ctx, DAE, "ckpt-dir", ["--resume"], "checkpoint.npz",
                         prepare=checkpoint_folder)


@case("cli", "ckpt-directory-overwrite", "VAE --overwrite where checkpoint.npz is a folder")
def _(ctx):
    return used_out_case(ctx, VAE, "ckpt-dir-over", ["--overwrite"], "checkpoint.npz",
                         prepare=checkpoint_folder)


@case("cli", "out-is-a-file", "--out naming a file of the user's")
def _(ctx):
    notes = ctx.folder("out-file") / "notes.txt"
    notes.write_text("the user's notes\n")
    before = snapshot(notes)
    proc = run_script(ctx, VAE, [*QUICK, "--data-dir", ctx.data, "--out", notes])
    return refused(proc, ctx, "file", problems=lost_problems(before))


@case("cli", "leftover-temporaries", "a folder with .checkpoint.npz.*.tmp leftovers and user "
      "files: the next run removes the leftovers only (VAE, 1 epoch)")
def _(ctx):
    out = ctx.folder("leftovers") / "out"
    out.mkdir()
    # npnet's own temporaries: .NAME.npnet-, 8 random characters, .tmp (only they may go)
    leftovers = [out / ".checkpoint.npz.npnet-k3j_x9a2.tmp", out / ".model.npz.npnet-ab12cd34.tmp",
                 out / ".metrics.json.npnet-zz99yy88.tmp"]
    for path in leftovers:
        path.write_bytes(os.urandom(4096))
    mine = [out / "notes.txt", out / "data.tmp", out / ".hidden.tmp", out / "checkpoint.tmp"]
    for path in mine:
        path.write_text("the user's\n")
    before = snapshot(*mine)
    proc = run_script(ctx, VAE, [*QUICK, "--epochs", 1, "--data-dir", ctx.data, "--out", out])
    repro = f"(temporaries and user files put in --out first) {proc.repro(ctx)}"
    problem = finished(proc)
    problems = lost_problems(before)
    if problem is not None:
        problems.append((problem.kind, problem.reason))
    left = [path.name for path in leftovers if path.exists()]
    if left:
        problems.append(("silent", f"left {', '.join(left)}"))
    return worst(problems, repro, "leftovers removed, user files kept")


@case("cli", "overwrite-keeps-user-files", "VAE --overwrite on a finished run with a user file "
      "beside it")
def _(ctx):
    out = ctx.copy_run(VAE, "overwrite")
    notes, figure = out / "notes.txt", out / "my_figure.png"
    notes.write_text("the user's notes\n")
    figure.write_bytes(b"not really a png")
    before = snapshot(notes, figure)
    proc = run_script(ctx, VAE, straight_args(out, 1, "--overwrite"))
    problems = lost_problems(before)
    if (problem := finished(proc)) is not None:
        problems.append((problem.kind, problem.reason))
    return worst(problems, f"(user files put beside a finished run) {proc.repro(ctx)}")


def interrupted_case(ctx: Context, name: str, script: str, when, *extra) -> Result:
    """SIGINT at ``when`` (seconds, or ``when(out, cache)`` becoming true): one line and
    exit 130, no traceback (exit 0 if the run finished first)."""
    cache = ctx.folder("cache")
    out = ctx.folder(name) / "out"
    moment = (lambda _elapsed: when(out, cache)) if callable(when) else when
    proc = run_script(ctx, script, [*QUICK, "--epochs", 1, "--out", out, *extra], cache=cache,
                      interrupt=(signal.SIGINT, moment))
    condition = f"as soon as {when.__doc__}, here " if callable(when) else ""
    repro = f"(SIGINT {condition}at {proc.signalled_at or 0:.2f} s) {proc.repro(ctx)}"
    if proc.timed_out:
        return Result("silent", "no answer after SIGINT", repro)
    if (tb := traceback_line(proc.stderr)) is not None:
        went_on = "; the run went on and exited 0" if proc.rc == 0 else ""
        return Result("raw", f"SIGINT at {proc.signalled_at:.2f} s: {tb}{went_on}", repro)
    if proc.signalled_at is None or proc.rc == 0:
        return Result("handled", "note: the run finished before the signal", repro)
    if proc.rc != 130 or "interrupted" not in proc.stderr:
        return Result("raw", f"exit {proc.rc} after SIGINT: {last_line(proc.stderr)}", repro)
    return Result("handled", f"exit 130, one line, after SIGINT at {proc.signalled_at:.2f} s",
                  repro)


@case("cli", "sigint-startup", "[extra] Ctrl-C 0.3 s after start (Python importing), VAE")
def _(ctx):
    return interrupted_case(ctx, "sigint-startup", VAE, 0.3, "--data-dir", ctx.data)


@case("cli", "sigint-data-load", "Ctrl-C while the data loads (as soon as the first file is "
      "verified), VAE")
def _(ctx):
    folder = data_folder(ctx, "sigint-load")  # links no checksum cache knows yet

    def first_file_verified(out: Path, cache: Path) -> bool:
        """$NPNET_CACHE/mnist-checksums.json exists (the first file is verified)"""
        return (cache / "mnist-checksums.json").exists()

    return interrupted_case(ctx, "sigint-load", VAE, first_file_verified, "--data-dir", folder)


@case("cli", "sigint-figures", "Ctrl-C while the figures are drawn: 5 runs, each interrupted "
      "as soon as its 1st, 2nd, ... 5th .png exists, VAE")
def _(ctx):
    results = []
    for drawn in range(1, 6):
        def figures_drawn(out: Path, cache: Path, drawn=drawn) -> bool:
            return out.is_dir() and len(list(out.glob("*.png"))) >= drawn

        figures_drawn.__doc__ = f"--out holds {drawn} .png files"
        results.append(interrupted_case(ctx, f"sigint-figures-{drawn}", VAE, figures_drawn,
                                        "--data-dir", ctx.data))
    failed = [result for result in results if result.kind != "handled"]
    if failed:
        failed[0].reason = f"{len(failed)} of 5 runs: {failed[0].reason}"
        return failed[0]
    return Result("handled", "; ".join(result.reason for result in results))


# --- resume -------------------------------------------------------------------------------------


def resumed_case(ctx: Context, name: str, script: str, kills: list[tuple[int, object]]) -> Result:
    """Run as the straight run did into a fresh folder, interrupt it (each of ``kills``:
    (signal, moment or condition), each followed by a rerun with --resume), then --resume
    to the end: metrics and model must equal the straight run's, no temporaries left."""
    reference, _seconds = ctx.straight(script)
    out = ctx.folder(name) / "out"
    args = straight_args(out)
    problems: list[tuple[str, str]] = []
    steps = []
    for i, (sig, when) in enumerate(kills):
        moment = (lambda _elapsed, when=when: when(out)) if callable(when) else when
        proc = run_script(ctx, script, args + (["--resume"] if i else []),
                          interrupt=(sig, moment))
        phase = last_line(proc.stdout)
        at = f"{proc.signalled_at:.2f} s" if proc.signalled_at is not None else "never"
        temporaries = len(list(out.glob(".*.tmp"))) if out.is_dir() else 0
        condition = f"as soon as {when.__doc__}, here " if callable(when) else ""
        steps.append(f"{signal.Signals(sig).name} {condition}at {at} ({phase[:40]!r}"
                     + (f", {temporaries} temporaries left" if temporaries else "") + ")")
        if proc.timed_out:
            problems.append(("silent", f"no answer after {signal.Signals(sig).name}"))
        if (tb := traceback_line(proc.stderr)) is not None:
            problems.append(("raw", f"after {signal.Signals(sig).name}: {tb}"))
        elif sig == signal.SIGINT and proc.rc not in (0, 130):
            problems.append(("raw", f"exit {proc.rc} after SIGINT: {last_line(proc.stderr)}"))
    final = run_script(ctx, script, args + ["--resume"])
    note = ""
    if (problem := finished(final)) is not None:
        problems.append((problem.kind, f"--resume: {problem.reason}"))
    else:
        differences, note = same_run(out, reference)
        problems += [("silent", difference) for difference in differences]
    left = [path.name for path in out.glob(".*.tmp")]
    if left:
        problems.append(("silent", f"temporaries left: {', '.join(left)}"))
    repro = (f"run the command below without --resume, {'; rerun with --resume, '.join(steps)}"
             f"; then: {final.repro(ctx)}; compare with the same command without --resume "
             "in another --out")
    parts = [*steps, "resumed bit for bit"] + ([note] if note else [])
    return worst(problems, repro, "; ".join(parts))


def random_moment(name: str, low: float, high: float):
    """A seeded moment in [low, high] of the straight run's wall time, chosen when run."""

    def moment(ctx: Context, script: str) -> float:
        seconds = ctx.straight(script)[1]
        return random.Random(f"issue-18-{name}").uniform(low, high) * seconds

    return moment


def resume_case(name: str, script: str, plan: list[tuple[int, float, float]], what: str):
    def run(ctx):
        kills = [(sig, random_moment(f"{name}-{i}", low, high)(ctx, script))
                 for i, (sig, low, high) in enumerate(plan)]
        return resumed_case(ctx, name, script, kills)

    case("resume", name, what)(run)


# SIGINT moments start at 35% of the run: the first second is Python importing, which
# cli/sigint-startup covers on its own.
resume_case("dae-sigkill", DAE, [(signal.SIGKILL, 0.05, 0.95)],
            "DAE killed (SIGKILL) at a random moment, then --resume")
resume_case("dae-sigint", DAE, [(signal.SIGINT, 0.35, 0.95)],
            "DAE interrupted (SIGINT) at a random moment, then --resume")
resume_case("vae-sigkill", VAE, [(signal.SIGKILL, 0.05, 0.95)],
            "VAE killed (SIGKILL) at a random moment, then --resume")
resume_case("vae-sigint", VAE, [(signal.SIGINT, 0.35, 0.95)],
            "VAE interrupted (SIGINT) at a random moment, then --resume")
resume_case("vae-killed-twice", VAE, [(signal.SIGKILL, 0.1, 0.35), (signal.SIGINT, 0.35, 0.6)],
            "VAE killed, resumed and interrupted again, then --resume")


def first_checkpoint(out: Path) -> bool:
    """checkpoint.npz exists"""
    return (out / "checkpoint.npz").exists()


@case("resume", "dae-sigkill-after-epoch-1", "DAE killed as soon as its first checkpoint "
      "exists (mid-training), then --resume")
def _(ctx):
    return resumed_case(ctx, "dae-after-1", DAE, [(signal.SIGKILL, first_checkpoint)])


@case("resume", "vae-sigint-after-epoch-1", "VAE interrupted as soon as its first checkpoint "
      "exists (mid-training), then --resume")
def _(ctx):
    return resumed_case(ctx, "vae-after-1", VAE, [(signal.SIGINT, first_checkpoint)])


@case("resume", "dae-sigkill-in-save", "DAE killed while a checkpoint is being written "
      "(a .checkpoint.npz.*.tmp exists), then --resume")
def _(ctx):
    def saving(out: Path) -> bool:
        """a .checkpoint.npz.*.tmp exists"""
        return out.is_dir() and any(out.glob(".checkpoint.npz.*.tmp"))

    return resumed_case(ctx, "dae-in-save", DAE, [(signal.SIGKILL, saving)])


# --- issue 30: files lost or replaced, raw tracebacks through the scripts -----------------------


@case("cli", "lookalike-temporaries", "a user's .notes.abcdefgh.tmp and .bashrc.12345678.tmp "
      "in --out, then a DAE run: they stay")
def _(ctx):
    out = ctx.folder("lookalike") / "out"
    out.mkdir()
    mine = [out / ".notes.abcdefgh.tmp", out / ".bashrc.12345678.tmp"]
    for path in mine:
        path.write_text("mine")
    proc = run_script(ctx, DAE, straight_args(out, 1))
    if (problem := finished(proc)) is not None:
        problem.repro = proc.repro(ctx)
        return problem
    gone = [path.name for path in mine if not path.exists()]
    if gone:
        return Result("lost", f"deleted the user's {', '.join(gone)}", proc.repro(ctx))
    return Result("handled", "the look-alike files stayed")


@case("cli", "two-runs-at-once", "two DAE runs started into one --out half a second apart: "
      "the second is refused, the first finishes")
def _(ctx):
    out = ctx.folder("two-runs") / "out"
    env = {**ctx.env, "NPNET_CACHE": str(ctx.cache)}
    first = subprocess.Popen([sys.executable, str(EXPERIMENTS / DAE),
                              *map(str, straight_args(out, 2))], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = run_script(ctx, DAE, straight_args(out, 2))
    first_out, first_err = first.communicate(timeout=300)
    problems = []
    if first.returncode != 0:
        problems.append(("lost", f"the first run ended with exit {first.returncode}: "
                                 f"{last_line(first_err)}"))
    if second.rc == 0:
        problems.append(("lost", "both runs wrote into one --out"))
    return refused(second, ctx, "in use", "already holds", problems=problems)


@case("cli", "overwrite-then-diverge", "--overwrite a finished DAE run with --lr 10, which "
      "diverges: the earlier run stays")
def _(ctx):
    out = ctx.copy_run(DAE, "overwrite-diverge")
    before = snapshot(*(out / name for name in RUN_FILES), *out.glob("*.png"))
    proc = run_script(ctx, DAE, straight_args(out, STRAIGHT_EPOCHS, "--overwrite", "--lr", 10))
    return refused(proc, ctx, "went wrong", "collapsed", problems=lost_problems(before))


@case("cli", "folder-named-examples-png", "a folder examples.png/ in --out, then a DAE run: "
      "refused before training")
def _(ctx):
    out = ctx.folder("folder-png") / "out"
    (out / "examples.png").mkdir(parents=True)
    proc = run_script(ctx, DAE, straight_args(out, 1))
    return refused(proc, ctx, "examples.png", before_training=True)


@case("cli", "iwae-k-ten-million", "vae_likelihood.py --objective iwae --k 10000000")
def _(ctx):
    out = ctx.folder("iwae-k") / "out"
    proc = run_script(ctx, "vae_likelihood.py",
                      straight_args(out, 1, "--objective", "iwae", "--k", 10_000_000))
    return refused(proc, ctx, "--k", "memory", before_training=True)


@case("cli", "threads-as-large-as-the-batch", "DAE --threads 2000 --batch-size 2000 (a copy "
      "of the model per thread)")
def _(ctx):
    out = ctx.folder("threads") / "out"
    proc = run_script(ctx, DAE, straight_args(out, 1, "--threads", 2000, "--batch-size", 2000))
    return refused(proc, ctx, "--threads", before_training=True)


@case("data", "no-verify-two-test-images", "--no-verify with 2 test images, DAE: refused "
      "before training")
def _(ctx):
    folder = small_data(ctx, "two-test", 2000, 2)
    proc = data_run(ctx, folder, DAE, "--no-verify")
    return refused(proc, ctx, "test set", before_training=True)


@case("data", "file-40-gib", "a 40 GiB (sparse) t10k-images file whose header says 10,000 "
      "images")
def _(ctx):
    folder = data_folder(ctx, "huge", test_images=None)
    path = folder / FILES["test_images"].removesuffix(".gz")
    path.write_bytes(idx_bytes(ctx.arrays()["test_images"]))
    with open(path, "r+b") as f:
        f.truncate(40 << 30)
    proc = data_run(ctx, folder, DAE, measure_rss=True)
    problems = []
    if proc.maxrss_mb is not None and proc.maxrss_mb > 4096:
        problems.append(("silent", f"read it into memory ({proc.maxrss_mb:.0f} MB)"))
    return refused(proc, ctx, "header says", problems=problems)


@case("data", "download-into-nested-data-dir", "--data-dir a/b/c that does not exist, no "
      "network: the folders it created are removed")
def _(ctx):
    top = ctx.folder("nested")
    proc = run_script(ctx, DAE, [*QUICK, "--data-dir", top / "a" / "b" / "c", "--out",
                                 ctx.folder("nested-out") / "run"], cache=ctx.folder("cache2"))
    problems = []
    if (top / "a").exists():
        left = sorted(str(path.relative_to(top)) for path in top.rglob("*"))
        problems.append(("silent", f"left {left}"))
    return refused(proc, ctx, "--data-dir", "mnist", problems=problems)


@case("resume", "dae-sigint-in-save", "DAE interrupted with Ctrl-C (SIGINT) while a checkpoint "
      "is being written, then --resume")
def _(ctx):
    def saving(out: Path) -> bool:
        """a .checkpoint.npz.*.tmp exists"""
        return out.is_dir() and any(out.glob(".checkpoint.npz.*.tmp"))

    return resumed_case(ctx, "dae-sigint-in-save", DAE, [(signal.SIGINT, saving)])


def npy_header_huge(arrays, meta):
    """a member whose .npy header promises a (10^5, 10^5) array in 8 bytes"""


def deflate_bomb(arrays, meta):
    """a deflated member that expands to 1 GiB"""


def damaged_zip_case(ctx: Context, name: str, damage) -> Result:
    """A checkpoint with one more member, written by hand: refused before NumPy allocates."""
    import zipfile

    def prepare(out: Path) -> None:
        path = out / "checkpoint.npz"
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("extra.npy", "w", force_zip64=True) as f:
                if damage is npy_header_huge:
                    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
                    header["shape"] = (10**5, 10**5)
                    np.lib.format.write_array_header_1_0(f, header)
                    f.write(b"\0" * 8)
                else:
                    np.lib.format.write_array(f, np.zeros(2**27))  # 1 GiB, 1 MB deflated

    prepare.__doc__ = damage.__doc__
    return used_out_case(ctx, DAE, name, ["--resume"], "cannot be resumed", prepare=prepare,
                         measure=True)


@case("resume", "checkpoint-npy-header-huge", "DAE --resume from a checkpoint with a member "
      "whose header promises 80 GB")
def _(ctx):
    return damaged_zip_case(ctx, "npy-huge", npy_header_huge)


@case("resume", "checkpoint-deflate-bomb", "DAE --resume from a checkpoint with a deflated "
      "member that expands to 1 GiB")
def _(ctx):
    return damaged_zip_case(ctx, "deflate-bomb", deflate_bomb)


def meta_nested(arrays, meta):
    """its meta nested 100,000 levels deep"""
    arrays["meta"] = np.array("[" * 100_000 + "]" * 100_000)


def run_id_number(arrays, meta):
    """its run_id a number"""
    meta["run_id"] = 12345


def steps_two_to_64(arrays, meta):
    """its step count 2**64 - 1"""
    arrays["optim/steps"] = np.array(2**64 - 1, dtype=np.uint64)


@case("resume", "checkpoint-meta-nested", "DAE --resume from a checkpoint whose meta is nested "
      "100,000 levels deep")
def _(ctx):
    return damaged_meta_case(ctx, "meta-nested", meta_nested)


@case("resume", "checkpoint-run-id-number", "DAE --resume from a checkpoint whose run_id is "
      "a number")
def _(ctx):
    return damaged_meta_case(ctx, "run-id", run_id_number)


@case("resume", "checkpoint-steps-2-64", "DAE --resume from a checkpoint with 2**64 - 1 steps")
def _(ctx):
    return damaged_meta_case(ctx, "steps", steps_two_to_64)


def damaged_meta_case(ctx: Context, name: str, edit: Callable[[dict, dict], None]) -> Result:
    def prepare(out: Path) -> None:
        arrays = load_npz(out / "checkpoint.npz")
        meta = json.loads(str(arrays["meta"]))
        edit(arrays, meta)
        if edit is not meta_nested:
            arrays["meta"] = np.array(json.dumps(meta))
        save_npz(out / "checkpoint.npz", arrays)

    prepare.__doc__ = edit.__doc__
    return used_out_case(ctx, DAE, name, ["--resume"], "cannot be resumed", prepare=prepare)


# --- library ----------------------------------------------------------------------------------

PREAMBLE = """\
import numpy as np
from npnet import *
from npnet.fast import enable, FastAdam
from npnet.gradcheck import check_gradients, check_layer
from npnet.io import load_params, save_params
from npnet.train import fit
x = np.random.default_rng(0).random((64, 16), dtype=np.float32)
def dae(): return DenoisingAutoencoder(16, (8,), 2, rng=0)
def vae(): return VAE(16, (8,), 2, rng=0)
"""


def documented_errors() -> tuple[type, ...]:
    from npnet.data import MNISTError
    from npnet.train import CheckpointError, TrainingDiverged

    return (ValueError, TypeError, KeyError, MNISTError, CheckpointError, TrainingDiverged,
            FloatingPointError)


# Messages that are NumPy's or Python's own, not npnet's: a user learns nothing from them.
FOREIGN = re.compile(
    r"output array is read-only|assignment destination is read-only|could not be broadcast|"
    r"not supported between instances|unsupported operand type|invalid literal for|"
    r"could not convert|object has no attribute|is not subscriptable|is not iterable|"
    r"unable to allocate|ufunc|setting an array element with a sequence|out of bounds|"
    r"division by zero|cannot cast|no implementation of function|nopython|"
    r"cannot reshape array|must be real number, not|object cannot be interpreted",
    re.IGNORECASE,
)


@dataclass
class Probe:
    name: str
    code: str  # run after PREAMBLE with ``tmp`` a scratch folder; its last line is the call
    mentions: tuple[str, ...] = ()  # the error must name one of these (when it must refuse)
    accept: str | None = None  # an expression over ``result``: true if a valid call is right
    after: str | None = None  # an expression: a problem (str) after the call, or None
    after_kind: str = "silent"
    types: tuple[type, ...] = ()  # exception types allowed beside the documented ones
    extra: bool = False


def run_probe(ctx: Context, probe: Probe) -> Result:
    import npnet

    package = str(Path(npnet.__file__).parent)
    tmp = ctx.folder(f"api-{probe.name}")
    *setup, call = probe.code.strip().splitlines()
    namespace: dict = {"tmp": tmp, "__name__": "probe", "resume_problem": resume_problem,
                       "poison": poison, "folder_problem": folder_problem}
    repro = ("after the API preamble (printed at the end): "
             + "; ".join(line.strip() for line in probe.code.strip().splitlines())
             + (f"; then check {probe.after}" if probe.after else ""))
    # A probe that does not compile is a bug of this script: raised, not classified.
    prepared = compile(PREAMBLE + "\n".join(setup), "<probe>", "exec")
    called = compile(call, "<probe>", "eval")
    problems: list[tuple[str, str]] = []
    note = "returned a correct result"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(prepared, namespace)
            namespace["result"] = eval(called, namespace)
        except BaseException as error:  # noqa: BLE001 - classifying it is the point
            if isinstance(error, KeyboardInterrupt):
                raise
            frames = traceback.extract_tb(error.__traceback__)
            origin = frames[-1].filename if frames else "?"
            message = f"{type(error).__name__}: {error}"
            note = message[:200]
            if probe.accept is not None:
                problems.append(("raw", f"a valid call raised {message[:160]}"))
            elif not isinstance(error, documented_errors() + probe.types):
                problems.append(("raw", f"{message[:160]} (from {Path(origin).name})"))
            elif not origin.startswith(package):
                problems.append(("raw", f"{message[:120]} (raised inside {origin})"))
            elif FOREIGN.search(str(error)):
                problems.append(("raw", f"NumPy's or Python's own message: {message[:140]}"))
            elif probe.mentions and not any(m.lower() in str(error).lower()
                                            for m in probe.mentions):
                problems.append(("raw", f"the message does not name the problem (expected "
                                        f"one of {list(probe.mentions)}): {message[:120]}"))
        else:
            if probe.accept is None:
                shown = repr(namespace["result"]).replace("\n", " ")[:80]
                notes = [str(w.message)[:60] for w in caught]
                problems.append(("silent", f"returned {shown} instead of refusing"
                                 + (f" (warned: {notes[0]})" if notes else "")))
            elif not eval(probe.accept, namespace):
                problems.append(("silent", f"returned a wrong result: {probe.accept} is false"))
    if probe.after is not None:
        try:
            problem = eval(probe.after, namespace)
        except Exception as error:  # noqa: BLE001
            problem = f"the check after the call failed: {type(error).__name__}: {error}"
        if problem:
            problems.append((probe.after_kind, problem))
    return worst(problems, repro, note)


PROBES = [
    Probe("layer-twice", "d = Dense(4, 4, rng=0)\nSequential(d, ReLU(), d)",
          ("twice", "once", "more than one", "again", "same")),
    Probe("activation-twice", "r = ReLU()\nSequential(Dense(4, 4), r, Dense(4, 4), r)",
          ("twice", "once", "more than one", "again", "same"), extra=True),
    Probe("sequential-twice", "s = Sequential(Dense(4, 4))\nSequential(s, s)",
          ("twice", "once", "more than one", "again", "same"), extra=True),
    Probe("mlp-string", 'mlp("784")', ("string", "sequence", "widths")),
    Probe("mlp-one-width", "mlp([784])", ("two widths", "at least"), extra=True),
    Probe("dense-int32", "Dense(3, 3, dtype=np.int32)", ("dtype", "float")),
    Probe("dense-2.7", "Dense(2.7, 3)", ("integer",)),
    Probe("dae-hidden-32.5", "DenoisingAutoencoder(784, (32.5,), 16)", ("integer",)),
    Probe("vae-hidden-32.5", "VAE(784, (32.5,), 20)", ("integer",)),
    Probe("dense-none", "Dense(None, 3)", ("integer",)),
    Probe("dense-abc", 'Dense("abc", 3)', ("integer",)),
    Probe("dense-nan", 'Dense(float("nan"), 3)', ("integer",)),
    Probe("dense-zero", "Dense(3, 0)", ("integer", ">= 1"), extra=True),
    Probe("dense-true", "Dense(True, 3)", ("integer",), extra=True),
    Probe("dense-numpy-int", "Dense(np.int64(3), np.int32(4))",
          accept="result.params['W'].shape == (3, 4)", extra=True),
    Probe("adam-weight-decay-negative", "Adam(dae().params, weight_decay=-1)",
          ("weight_decay",)),
    Probe("adam-lr-inf", 'Adam(dae().params, lr=float("inf"))', ("lr",)),
    Probe("adam-eps-nan", 'Adam(dae().params, eps=float("nan"))', ("eps",)),
    Probe("adam-lr-string", 'Adam(dae().params, lr="0.1")', ("lr",)),
    Probe("adam-beta1-one", "Adam(dae().params, beta1=1.0)", ("beta1",), extra=True),
    Probe("sgd-weight-decay-nan", 'SGD(dae().params, weight_decay=float("nan"))',
          ("weight_decay",)),
    Probe("sgd-lr-zero", "SGD(dae().params, lr=0)", ("lr",), extra=True),
    Probe("sgd-momentum-one", "SGD(dae().params, momentum=1.0)", ("momentum",), extra=True),
    Probe("adam-lr-numpy-float", "Adam(dae().params, lr=np.float32(1e-3))",
          accept="abs(result.lr - 1e-3) < 1e-9", extra=True),
    Probe("adam-float16", 'Adam({"w": np.zeros(3, np.float16)})', ("float16",)),
    Probe("fast-adam-float16", 'FastAdam({"w": np.zeros(3, np.float16)})', ("float16",)),
    Probe("enable-float16-model",
          "m = Sequential(Dense(4, 4, dtype=np.float16))\nenable(m, Adam(m.params), "
          "blas_threads=None)", ("float16",)),
    Probe("adam-read-only",
          'w = np.zeros(3, np.float32)\nw.flags.writeable = False\nAdam({"w": w})',
          ("read-only",)),
    Probe("fast-adam-read-only",
          'w = np.zeros(3, np.float32)\nw.flags.writeable = False\nFastAdam({"w": w})',
          ("read-only",)),
    Probe("enable-read-only-model",
          "m = dae()\nfor p in m.params.values(): p.flags.writeable = False\n"
          "enable(m, Adam(m.params), blas_threads=None)", ("read-only",)),
    Probe("fast-adam-step-after-read-only",
          "m = dae()\nopt = Adam(m.params)\nt = enable(m, opt, blas_threads=None)\n"
          "m.train_step(x, 0)\nfor p in m.params.values(): p.flags.writeable = False\n"
          "opt.step(m.grads)", ("read-only",), extra=True),
    Probe("adam-step-after-read-only",
          "m = dae()\nopt = Adam(m.params)\nm.train_step(x, 0)\n"
          "for p in m.params.values(): p.flags.writeable = False\nopt.step(m.grads)",
          ("read-only",), extra=True),
    Probe("dae-step-0-255", "dae().train_step(x * 255, 0)", ("[0, 1]", "255")),
    Probe("dae-step-uint8", "dae().train_step((x * 255).astype(np.uint8), 0)",
          ("uint8", "integer", "floating")),
    Probe("dae-evaluate-0-255", "dae().evaluate(x * 255)", ("[0, 1]", "255"), extra=True),
    Probe("vae-step-0-255", "vae().train_step(x * 255, 0)", ("[0, 1]", "255")),
    Probe("dae-step-complex", "dae().train_step(x.astype(np.complex64) + 0.1j, 0)",
          ("complex", "real", "floating")),
    Probe("vae-step-complex", "vae().train_step(x.astype(np.complex64), 0)",
          ("complex", "real", "floating")),
    Probe("dense-forward-complex", "Dense(16, 3).forward(x + 1j)", ("complex", "real")),
    Probe("reparameterize-complex", "Reparameterize().forward(np.ones((2, 4)) * 1j)",
          ("complex", "real"), extra=True),
    Probe("fit-seed-minus-1", "m = dae()\nfit(m, Adam(m.params), x, epochs=1, batch_size=16, "
          "seed=-1, progress=False, log=lambda s: None)", ("seed",)),
    Probe("fit-seed-none", "m = dae()\nfit(m, Adam(m.params), x, epochs=1, batch_size=16, "
          "seed=None, progress=False, log=lambda s: None)", ("seed",)),
    Probe("fit-seed-1.5", "m = dae()\nfit(m, Adam(m.params), x, epochs=1, batch_size=16, "
          "seed=1.5, progress=False, log=lambda s: None)", ("seed",)),
    Probe("fit-seed-string", "m = dae()\nfit(m, Adam(m.params), x, epochs=1, batch_size=16, "
          "seed='0', progress=False, log=lambda s: None)", ("seed",), extra=True),
    Probe("fit-nan-eval",
          "m = dae()\nbad = x.copy(); bad[3, 5] = np.nan\n"
          "fit(m, Adam(m.params), x, x_eval=bad, epochs=2, batch_size=16, seed=0, "
          "checkpoint=tmp / 'ck.npz', progress=False, log=lambda s: None)",
          ("nan", "x_eval"),
          after="'a checkpoint was written' if (tmp / 'ck.npz').exists() else None"),
    Probe("fit-nan-train",
          "m = dae()\nbad = x.copy(); bad[3, 5] = np.nan\n"
          "fit(m, Adam(m.params), bad, epochs=1, batch_size=16, seed=0, "
          "checkpoint=tmp / 'ck.npz', progress=False, log=lambda s: None)",
          ("nan",), extra=True,
          after="'a checkpoint was written' if (tmp / 'ck.npz').exists() else None"),
    Probe("fit-blow-up-on-last-step",
          "class Blow(SGD):\n"
          "    def step(self, grads):\n"
          "        scale = 1e38 if self.steps == 7 else 1.0\n"
          "        super().step({k: g * np.float32(scale) for k, g in grads.items()})\n"
          "m = dae()\n"
          "fit(m, Blow(m.params, lr=0.01), x, x_eval=x, epochs=3, batch_size=16, seed=0, "
          "checkpoint=tmp / 'ck.npz', progress=False, log=lambda s: None)",
          ("went wrong", "not finite", "nan", "inf"),
          after="resume_problem(tmp / 'ck.npz', 1)"),
    Probe("fit-resume-nan-checkpoint",
          "m = dae()\nfit(m, Adam(m.params), x, epochs=1, batch_size=16, seed=0, "
          "checkpoint=tmp / 'ck.npz', progress=False, log=lambda s: None)\n"
          "poison(tmp / 'ck.npz')\nm2 = dae(); before = {k: v.copy() for k, v in "
          "m2.params.items()}\n"
          "fit(m2, Adam(m2.params), x, epochs=2, batch_size=16, seed=0, "
          "checkpoint=tmp / 'ck.npz', resume=True, progress=False, log=lambda s: None)",
          ("nan", "checkpoint"),
          after="'the model changed' if any(not np.array_equal(before[k], v) "
                "for k, v in m2.params.items()) else None", after_kind="lost"),
    Probe("fit-batch-over-data", "m = dae()\nfit(m, Adam(m.params), x, epochs=1, "
          "batch_size=65, seed=0, progress=False, log=lambda s: None)", ("batch",), extra=True),
    Probe("step-list-gradients",
          "m = dae()\nopt = Adam(m.params)\nm.train_step(x, 0)\n"
          "opt.step({k: g.tolist() for k, g in m.grads.items()})", ("list", "array")),
    Probe("list-parameters", 'Adam({"w": [1.0, 2.0]})', ("list", "array")),
    Probe("parameters-not-a-dict", "Adam([np.zeros(3, np.float32)])", ("dict",), extra=True),
    Probe("integer-parameters", 'SGD({"w": np.zeros(3, np.int64)})', ("int", "float"),
          extra=True),
    Probe("step-missing-gradient",
          "m = dae()\nopt = Adam(m.params)\nm.train_step(x, 0)\n"
          "g = dict(m.grads)\ng.pop('decoder.0.W')\nopt.step(g)", ("decoder.0.W", "missing"),
          extra=True),
    Probe("step-gradient-shape",
          "m = dae()\nopt = Adam(m.params)\nm.train_step(x, 0)\n"
          "g = dict(m.grads)\ng['decoder.0.b'] = g['decoder.0.b'][:1]\nopt.step(g)",
          ("shape",), extra=True),
    Probe("load-params-npy",
          "m = dae(); before = {k: v.copy() for k, v in m.params.items()}\n"
          "np.save(tmp / 'w.npy', np.zeros(3))\nload_params(tmp / 'w.npy', m.params)",
          (".npy", "one array"),
          after="'the model changed' if any(not np.array_equal(before[k], v) "
                "for k, v in m.params.items()) else None", after_kind="lost"),
    Probe("load-params-missing", "load_params(tmp / 'nothing.npz', dae().params)",
          ("nothing.npz",), types=(FileNotFoundError,), extra=True),
    Probe("load-params-other-model",
          "save_params(tmp / 'v.npz', vae().params)\nm = dae(); before = {k: v.copy() for k, v "
          "in m.params.items()}\nload_params(tmp / 'v.npz', m.params)", ("fit", "shape"),
          after="'the model changed' if any(not np.array_equal(before[k], v) "
                "for k, v in m.params.items()) else None", after_kind="lost", extra=True),
    Probe("load-params-nan",
          "m = dae(); p = {k: v.copy() for k, v in m.params.items()}\n"
          "p['encoder.0.W'][0, 0] = np.nan; save_params(tmp / 'n.npz', p)\n"
          "load_params(tmp / 'n.npz', m.params)", ("nan",),
          after="'NaN loaded' if np.isnan(m.params['encoder.0.W']).any() else None",
          extra=True),
    Probe("save-params-to-directory",
          "(tmp / 'keep.txt').write_text('mine')\nsave_params(tmp, dae().params)",
          ("directory",), types=(IsADirectoryError,),
          after="folder_problem(tmp, {'keep.txt'})", after_kind="lost"),
    Probe("check-gradients-missing-key",
          "a = np.ones(3); b = np.ones(2)\n"
          "check_gradients(lambda: (float(a.sum() + b.sum()), {'a': np.ones(3)}), "
          "{'a': a, 'b': b})", ("'b'", "no gradient")),
    Probe("check-layer-fast-layer",
          "m = Sequential(Dense(3, 2, dtype=np.float64))\n"
          "enable(m, SGD(m.params), blas_threads=None)\ncheck_layer(m, np.ones((2, 3)))",
          ("none", "fast"), extra=True),
    Probe("vae-beta-string", 'VAE(16, (8,), 2, beta="1")', ("beta",), extra=True),
    Probe("dae-noise-level-string", 'DenoisingAutoencoder(16, (8,), 2, noise_level="0.3")',
          ("noise",), extra=True),
    Probe("dae-noise-unknown", 'DenoisingAutoencoder(16, (8,), 2, noise="pink")',
          ("pink", "corruption"), extra=True),
    Probe("load-mnist-split", 'load_mnist("validation")', ("split",), extra=True),
    Probe("enable-blas-threads-zero", "m = dae()\nenable(m, Adam(m.params), blas_threads=0)",
          ("blas_threads", "thread"), extra=True),
    Probe("enable-other-optimizer", "enable(dae(), Adam(dae().params), blas_threads=None)",
          ("optimizer",), extra=True),
    Probe("log-likelihood-k-zero", "vae().log_likelihood((x > 0.5) * 1.0, k=0)",
          ("k must be",), extra=True),
    Probe("log-likelihood-k-float", "vae().log_likelihood((x > 0.5) * 1.0, k=2.5)",
          ("k must be",), extra=True),
    Probe("log-likelihood-gray", "vae().log_likelihood(x, k=10)", ("binary", "binarize"),
          extra=True),
    Probe("log-likelihood-fast-gray", "from npnet.fast.likelihood import log_likelihood\n"
          "log_likelihood(vae(), x, k=10)", ("binary", "binarize"), extra=True),
    Probe("log-likelihood-nan-image", "b = (x > 0.5) * 1.0; b[0, 0] = np.nan\n"
          "vae().log_likelihood(b, k=10)", ("[0, 1]", "nan", "binary"), extra=True),
    Probe("iwae-k-zero", 'VAE(16, (8,), 2, objective="iwae", k=0)', ("k must be",),
          extra=True),
    Probe("iwae-k-with-elbo", 'VAE(16, (8,), 2, objective="elbo", k=5)', ("iwae",),
          extra=True),
    Probe("iwae-unknown-objective", 'VAE(16, (8,), 2, objective="iwea")', ("objective",),
          extra=True),
    Probe("iwae-gray-targets", 'VAE(16, (8,), 2, objective="iwae", k=3).train_step(x, 0)',
          ("binary", "binarize"), extra=True),
    Probe("binarize-255", "from npnet.data import binarize\nbinarize(x * 255, 0)",
          ("[0, 1]",), extra=True),
    Probe("binarization-unknown", "from npnet.data import check_binarization\n"
          'check_binarization("dynamc")', ("dynamic", "binarisation"), extra=True),
    Probe("output-bias-no-images", "vae().init_output_bias(x[:0])", ("shape", "n >= 1"),
          extra=True),
    Probe("output-bias-one-image", "vae().init_output_bias(x[0])", ("shape", "(n, 16)"),
          extra=True),
    Probe("output-bias-other-width", "vae().init_output_bias(x[:, :8])", ("shape", "(n, 16)"),
          extra=True),
    Probe("active-units-nan", "from npnet.analysis import active_units\n"
          "c = x.copy(); c[3, 2] = np.nan\nactive_units(c)", ("nan",), extra=True),
    # Issue 30, "silently wrong in the library": each refused clearly, or computed right.
    Probe("squared-error-uint8", "from npnet.losses import squared_error_per_image\n"
          "squared_error_per_image(np.zeros((1, 2), np.uint8), np.ones((1, 2), np.uint8))",
          accept="result == 2.0", extra=True),
    Probe("vae-evaluate-batch-negative", "vae().evaluate(x, batch_size=-1)", ("batch_size",),
          extra=True),
    Probe("dae-reconstruct-batch-float", "dae().reconstruct(x, batch_size=2.5)",
          ("batch_size",), extra=True),
    Probe("vae-encode-batch-zero", "vae().encode(x, batch_size=0)", ("batch_size",),
          extra=True),
    Probe("in-batches-negative", "from npnet.autoencoder import in_batches\n"
          "in_batches(lambda a: a, x, -5)", ("batch_size",), extra=True),
    Probe("dense-rng-negative", "Dense(3, 3, rng=-1)", ("rng",), extra=True),
    Probe("dense-rng-string", 'Dense(3, 3, rng="0")', ("rng",), extra=True),
    Probe("log-likelihood-rng-float", "vae().log_likelihood((x > 0.5) * 1.0, k=3, rng=1.5)",
          ("rng",), extra=True),
    Probe("load-state-negative-steps", "a = Adam(dae().params)\ns = a.state_dict()\n"
          "s['steps'] = np.array(-3)\na.load_state_dict(s)", ("steps",), extra=True),
    Probe("load-state-fractional-steps", "a = Adam(dae().params)\ns = a.state_dict()\n"
          "s['steps'] = np.array(2.5)\na.load_state_dict(s)", ("steps",), extra=True),
    Probe("load-state-nan", "m = dae()\na = Adam(m.params)\nm.train_step(x, 0)\n"
          "a.step(m.grads)\ns = a.state_dict()\nk = sorted(s)[0]\ns[k] = s[k] * np.nan\n"
          "a.load_state_dict(s)", ("finite",), extra=True),
    Probe("load-state-float16-overflow",
          "m = Sequential(Dense(4, 4, dtype=np.float16))\na = SGD(m.params, momentum=0.9)\n"
          "a.load_state_dict({'steps': np.array(1), 'velocity/0.W': np.full((4, 4), 1e6, "
          "np.float32)})", ("finite", "float16"), extra=True),
    Probe("output-bias-clip-zero", "vae().init_output_bias(x, clip=0)", ("clip",),
          extra=True),
    Probe("output-bias-clip-negative", "vae().init_output_bias(x, clip=-1)", ("clip",),
          extra=True),
    Probe("output-bias-clip-inverted", "vae().init_output_bias(x, clip=0.6)", ("clip",),
          extra=True),
    Probe("output-bias-clip-nan", 'vae().init_output_bias(x, clip=float("nan"))', ("clip",),
          extra=True),
    Probe("log-mean-exp-all-minus-inf", "from npnet.vae import log_mean_exp\n"
          "log_mean_exp(np.full(3, -np.inf))", accept="result == -np.inf", extra=True),
    Probe("log-mean-exp-inf", "from npnet.vae import log_mean_exp\n"
          "log_mean_exp(np.array([np.inf, 0.0]))", accept="result == np.inf", extra=True),
    Probe("bce-inf-logits", "bce_with_logits(np.array([[np.inf, 0.0]]), "
          "np.array([[1.0, 1.0]]))", accept="abs(result[0] - np.log(2)) < 1e-12", extra=True),
    Probe("enable-threads-zero", "m = dae()\nenable(m, Adam(m.params), threads=0)",
          ("threads",), extra=True),
    Probe("enable-threads-negative", "m = dae()\nenable(m, Adam(m.params), threads=-1)",
          ("threads",), extra=True),
    Probe("enable-threads-nan", 'm = dae()\nenable(m, Adam(m.params), threads=float("nan"))',
          ("threads",), extra=True),
    Probe("enable-threads-float", "m = dae()\nenable(m, Adam(m.params), threads=2.5)",
          ("threads",), extra=True),
    Probe("enable-threads-million", "m = dae()\nenable(m, Adam(m.params), threads=10**6)",
          ("threads",), extra=True),
    Probe("dense-in-two-sequentials", "d = Dense(4, 4)\nSequential(d, name='encoder')\n"
          "Sequential(d, name='decoder')", ("already",), extra=True),
    Probe("vae-encode-255", "vae().encode(x * 255)", ("[0, 1]",), extra=True),
    Probe("vae-float16", "VAE(16, (8,), 2, rng=0, dtype=np.float16).train_step(x, 0)",
          ("float16",), extra=True),
    Probe("numba-no-cache-folder", "from numba.core import caching\n"
          "from npnet.fast.optim import adam_kernel\n"
          "saved = caching.CacheImpl._locator_classes\n"
          "caching.CacheImpl._locator_classes = []  # a read-only installation and home\n"
          "(adam_kernel.__wrapped__(), setattr(caching.CacheImpl, '_locator_classes', saved))",
          accept="result[0] is not None", extra=True),
]


def resume_problem(path: Path, epoch: int) -> str | None:
    """After a blow-up: the checkpoint kept must be epoch ``epoch``'s, sound and resumable."""
    from npnet import DenoisingAutoencoder
    from npnet.optim import Adam
    from npnet.train import checkpoint_meta, fit

    if (problem := checkpoint_problem(path)) is not None:
        return problem
    if not path.exists():
        return "no checkpoint of the last good epoch was kept"
    if checkpoint_meta(path)["epoch"] != epoch:
        return f"the checkpoint kept is of epoch {checkpoint_meta(path)['epoch']}, not {epoch}"
    model = DenoisingAutoencoder(16, (8,), 2, rng=0)
    x = np.random.default_rng(0).random((64, 16), dtype=np.float32)
    try:
        fit(model, Adam(model.params), x, epochs=epoch, batch_size=16, seed=0,
            checkpoint=path, resume=True, progress=False, log=lambda s: None)
    except Exception as error:  # noqa: BLE001
        return f"the checkpoint kept cannot be resumed: {type(error).__name__}: {error}"
    return None


def poison(path: Path) -> None:
    """Set a weight of a checkpoint to NaN."""
    edit_checkpoint(path, lambda arrays, meta: arrays["params/encoder.0.W"].__setitem__(
        (0, 0), np.nan))


def folder_problem(folder: Path, expected: set[str]) -> str | None:
    names = {path.name for path in folder.iterdir()}
    if names != expected:
        return f"the folder now holds {sorted(names)}, expected {sorted(expected)}"
    return None


def probe_case(probe: Probe) -> None:
    def run(ctx):
        return run_probe(ctx, probe)

    code = "; ".join(line.strip() for line in probe.code.strip().splitlines())
    code = code if len(code) <= 90 else code[:87] + "..."
    case("api", probe.name, ("[extra] " if probe.extra else "") + code)(run)


for _probe in PROBES:
    probe_case(_probe)


# --- main -------------------------------------------------------------------------------------


def table(rows: dict[str, dict[str, int]]) -> str:
    columns = [*KINDS, "skipped"]
    width = max(len(TITLES[c]) for c in columns)
    lines = ["group   " + "  ".join(f"{TITLES[c]:>{width}}" for c in columns)]
    for group, counts in rows.items():
        lines.append(f"{group:<8}" + "  ".join(f"{counts.get(c, 0):>{width}}"
                                               for c in columns))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-dir", default=os.environ.get("NPNET_DATA"),
                        help="folder with the four MNIST .gz files (default: $NPNET_DATA)")
    parser.add_argument("--only", choices=GROUPS, help="run one group")
    parser.add_argument("-k", dest="pattern",
                        help="run the cases whose name matches this (a regular expression)")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print what each handled case answered")
    args = parser.parse_args(argv)
    chosen = [c for c in sorted(CASES, key=lambda c: GROUPS.index(c.group))
              if args.only in (None, c.group)
              and (args.pattern is None or re.search(args.pattern, c.name))]
    if args.list:
        for c in chosen:
            print(f"{c.group:<7} {c.name:<32} {c.what}")
        print(f"{len(chosen)} cases")
        return 0
    if not args.data_dir:
        parser.error("give --data-dir (the folder with the four MNIST .gz files) or set "
                     "NPNET_DATA")
    data = Path(args.data_dir).expanduser().resolve()
    missing = [name for name in FILES.values() if not (data / name).is_file()]
    if missing:
        parser.error(f"--data-dir {data} lacks {', '.join(missing)}")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # children need SIGINT

    started = time.monotonic()
    tally: dict[str, dict[str, int]] = {}
    failures: list[tuple[Case, Result]] = []
    harness_errors = 0
    with tempfile.TemporaryDirectory(prefix="npnet-hostile-") as scratch:
        tmp = Path(scratch)
        os.environ["NPNET_CACHE"] = str(tmp / "cache")  # for the in-process probes too
        ctx = Context(tmp, data)
        print(f"{len(chosen)} cases; data {data}; scratch {tmp}", flush=True)
        for c in chosen:
            began = time.monotonic()
            try:
                result = c.run(ctx)
            except FixtureFailed as error:
                result = Result("raw", str(error))
            except Exception:  # noqa: BLE001 - a bug of this script, not of npnet
                result = Result("harness", traceback.format_exc(limit=4).strip()[-300:])
            seconds = time.monotonic() - began
            line = f"{c.group:<7} {c.name:<32} {LABELS[result.kind]:<13} {seconds:5.1f} s"
            if result.reason and (args.verbose or result.kind not in ("handled", "skipped")
                                  or result.reason.startswith("note")):
                line += "  " + " ".join(ctx.show(result.reason).split())
            print(line, flush=True)
            if result.kind == "harness":
                harness_errors += 1
                continue
            if result.kind in ("raw", "silent", "lost"):
                failures.append((c, result))
                print(f"{'':8}repro: {ctx.show(result.repro)}", flush=True)
            tally.setdefault(c.group, {})
            tally[c.group][result.kind] = tally[c.group].get(result.kind, 0) + 1
        # Leave the scratch folder removable: the unreadable-folder case restores its mode.

    total: dict[str, int] = {}
    for counts in tally.values():
        for kind, count in counts.items():
            total[kind] = total.get(kind, 0) + count
    tally["total"] = total
    print()
    print(table(tally))
    if harness_errors:
        print(f"{harness_errors} cases could not run (errors of this script, listed above)")
    if failures:
        print("\nnot handled:")
        for c, result in failures:
            print(f"  {c.group}/{c.name}: {LABELS[result.kind]}")
        if any(c.group == "api" for c, _ in failures):
            print("\nthe API preamble (with tmp = pathlib.Path(tempfile.mkdtemp())):")
            print("    " + PREAMBLE.strip().replace("\n", "\n    "))
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    bad = sum(total.get(kind, 0) for kind in ("raw", "silent", "lost"))
    return 1 if bad or harness_errors else 0


if __name__ == "__main__":
    sys.exit(main())
