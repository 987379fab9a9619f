"""The student workbook: a copy of npnet with the gradients left out, graded by npnet's tests.

::

    python -m npnet.workbook make DIR                 # a copy with every piece left out
    python -m npnet.workbook make DIR --chapter 2     # only chapter 2's pieces left out
    python -m npnet.workbook make DIR --only Dense.backward --only Adam._update
    python -m npnet.workbook grade                    # in the copy: a table, piece by piece
    python -m npnet.workbook list                     # the pieces, their chapters and tests

**Making the copy** (:func:`make_workbook`). The copy is the whole project (npnet/, tests/,
experiments/, docs/, setup.py, ...), installable with ``pip install -e DIR``, in which the
body of each *piece* (a backward pass, a loss gradient, an optimizer update: :data:`PIECES`)
is replaced by a stub that raises ``NotImplementedError`` and says what to compute. The
docstring, with the formula and the shapes, stays. The stubs are cut by reading the syntax
tree of the real code (:func:`cut_stubs`): the core carries no marker for them. In the copy,
the experiments train without the fast path (``--no-fast`` is the default there), since
the fast path computes the products of Dense, the convolutions and Adam itself and would
train on npnet's code instead of the student's.

**Grading** (:func:`grade`). Every piece belongs to a class or function whose docstring
names the tests that prove it ("Tested by: tests/...::test_name"). ``grade`` runs those
tests on the copy's code, with few hypothesis examples, and prints one line per piece:
passed, FAILED, not yet written (its stub still raises), or "needs" another piece that is
not yet written. For a failure it names the test, says which gradient is wrong where it
can, and shows the lines of the formula in the docstring and the chapter that derives it.

This module is plumbing: the core never imports it.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Piece", "PIECES", "CHAPTERS", "make_workbook", "grade", "cut_stubs",
           "find_definition", "left_out", "fill_in", "is_stub", "tested_by", "locate", "main"]

# The project that this module belongs to: npnet's clone, or a student copy.
ROOT = Path(__file__).resolve().parents[1]

# What a copy holds: the project, without caches, build files or results.
PROJECT_FILES = ["README.md", "setup.py", "pyproject.toml", ".gitignore", "npnet", "tests",
                 "experiments", "docs", "benchmarks", "tools"]
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".hypothesis",
                                    ".pytest_cache", ".ruff_cache", "results")

# The copy records which pieces it left out here (the grader reads it).
RECORD = "workbook.json"

CHAPTERS = {
    2: "docs/02-dense-backprop.md",
    3: "docs/03-activations-and-losses.md",
    4: "docs/04-gradient-checking.md",
    5: "docs/05-optimizers.md",
    6: "docs/06-denoising-and-residuals.md",
    7: "docs/07-vae.md",
    8: "docs/08-latent-interpolation.md",
    9: "docs/09-convolutions.md",
    10: "docs/10-likelihoods.md",
}

# Chapters whose formulas are read, not written: why (the error of --chapter says it).
NOTHING_TO_WRITE = {
    4: "gradient checking is what grades your pieces, so it stays as it is",
    6: "the denoising autoencoder is built from the pieces of chapters 2, 3 and 5",
    8: "latent interpolation uses a trained VAE (chapter 7) and no new gradient",
}


# A layer's backward keeps the lines that read its cache and check dout (the layer contract,
# not the formula): the copy keeps the body up to the call of this method.
CHECKED = "_check_dout"


@dataclass(frozen=True)
class Piece:
    """One thing a student derives and writes: a method or function of the core.

    ``name`` is its Python name (``"Dense.backward"``, ``"kl_divergence"``); the docstring
    of its owner (the class, or the function itself) holds the formula and the
    "Tested by" lines that grade it. ``todo`` is what the stub asks for. ``keep_through``
    names a variable or a function: the body is kept up to the first statement that assigns
    or calls it (a loss's value, a layer's checks of dout), and only the rest is left out.
    """

    name: str
    chapter: int
    section: str
    todo: str
    keep_through: str | None = None

    @property
    def owner(self) -> str:
        """The class or function whose docstring holds the formula and the tests."""
        return self.name.split(".")[0]

    @property
    def where_derived(self) -> str:
        """``chapter 2, "Backward" (docs/02-dense-backprop.md)``."""
        return f'chapter {self.chapter}, "{self.section}" ({CHAPTERS[self.chapter]})'


PIECES = [
    Piece("Dense.backward", 2, "Backward",
          "x (N, D_in) is the input that forward kept and dout (N, D_out) is checked; fill "
          "self.grads['W'] (D_in, D_out) and self.grads['b'] (D_out,) and return dL/dx "
          "(N, D_in)", keep_through=CHECKED),
    Piece("Sequential.backward", 2, "Stacking layers: the chain rule read right to left",
          "pass dout through every layer's backward, last layer first, and return dL/dx"),
    Piece("ReLU.backward", 3, "ReLU and LeakyReLU",
          "positive (N, D) is the mask x > 0 that forward kept; return dL/dx (N, D)",
          keep_through=CHECKED),
    Piece("LeakyReLU.backward", 3, "ReLU and LeakyReLU",
          "slope (N, D), 1 or alpha at each input, is what forward kept; return dL/dx (N, D)",
          keep_through=CHECKED),
    Piece("Sigmoid.backward", 3, "Sigmoid, and its stable form",
          "y (N, D) is the output that forward kept; return dL/dx (N, D)", keep_through=CHECKED),
    Piece("Tanh.backward", 3, "Tanh",
          "y (N, D) is the output that forward kept; return dL/dx (N, D)", keep_through=CHECKED),
    Piece("mse_loss", 3, "Mean squared error, as the assignment defines it",
          "the value is computed above as `loss`; return loss and dL/dprediction (N, D)",
          keep_through="loss"),
    Piece("bce_with_logits", 3, "Binary cross-entropy on logits",
          "the value is computed above as `loss`; return loss and dL/dlogits (N, D)",
          keep_through="loss"),
    Piece("SGD._update", 5, "SGD, momentum, Nesterov",
          "update param in place from grad: weight decay, then plain SGD, momentum or "
          "Nesterov (the velocity is self._state_of(name)['velocity'], kept between steps)"),
    Piece("Adam._update", 5, "Adam",
          "update param in place from grad: weight decay, the moments m and v "
          "(self._state_of(name)['m'] and ['v'], kept between steps), their bias correction "
          "at step t = self.steps, then the step"),
    Piece("kl_divergence", 7, "The KL term, in closed form",
          "return KL_n (N,) between q = N(mu, exp(logvar)) and the prior N(0, I), for mu and "
          "logvar (N, J)"),
    Piece("kl_divergence_backward", 7, "Its gradients",
          "return dL/dmu and dL/dlogvar, (N, J) each, from dkl = dL/dKL_n, (N,) or one number"),
    Piece("Reparameterize.backward", 7, "The Reparameterize layer's backward pass",
          "mu, logvar, sigma, eps and clipped are what forward kept (eps is None in evaluation "
          "mode); return dL/dh = [dL/dmu, dL/dlogvar] (N, 2J) with the KL term's gradient "
          "(weight self.beta, mean over the batch) added, and 0 for logvar where it was "
          "clipped", keep_through=CHECKED),
    Piece("Conv2D.backward", 9, "Backward: the Dense layer's gradients, then col2im",
          "cols are the patches of the padded x that forward kept, one row per output pixel; "
          "fill self.grads['W'] (kh, kw, C, F) and self.grads['b'] (F,) and return dL/dx "
          "(N, H, W, C)", keep_through=CHECKED),
    Piece("ConvTranspose2D.backward", 9, "The transposed convolution",
          "u (N, Hi, Wi, F) is the input that forward kept; fill self.grads['W'] "
          "(kh, kw, C, F) and self.grads['b'] (C,) and return dL/du (N, Hi, Wi, F)",
          keep_through=CHECKED),
    Piece("iwae_step", 10, "Its gradient",
          "the forward pass above gave `loss`; fill model.grads through "
          "model.decoder.backward(dL/dlogits) and model.encoder.backward([dL/dmu, dL/dlogvar]) "
          "and return {'loss': loss}", keep_through="loss"),
]
BY_NAME = {piece.name: piece for piece in PIECES}

NOT_WRITTEN = re.compile(r"^([\w.]+) is not yet written")


# ------------------------------------------------------------------ cutting the stubs


def find_definition(tree: ast.Module, name: str) -> ast.FunctionDef | ast.ClassDef:
    """The ``def`` or ``class`` node of ``name`` ("Dense.backward") at the top of ``tree``,
    or a LookupError that says what is missing."""
    nodes, found = tree.body, None
    for part in name.split("."):
        found = next((node for node in nodes if isinstance(node, ast.FunctionDef | ast.ClassDef)
                      and node.name == part), None)
        if found is None:
            raise LookupError(f"no definition of {name!r} ({part!r} is missing)")
        nodes = found.body
    return found


def _docstring_node(node: ast.AST) -> ast.Expr | None:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        return first
    return None


def _kept_statements(function: ast.FunctionDef, piece: Piece) -> list[ast.stmt]:
    """The statements of the body that the copy keeps: the docstring, and with
    ``keep_through`` everything up to the first statement that assigns or calls that name."""
    body = function.body
    kept = 1 if _docstring_node(function) else 0
    if piece.keep_through is None:
        return body[:kept]
    for i, statement in enumerate(body):
        if _assigns_or_calls(statement, piece.keep_through):
            return body[: i + 1]
    raise LookupError(f"{piece.name} neither assigns nor calls {piece.keep_through!r}, which "
                      "the copy keeps the body up to")


def _assigns_or_calls(statement: ast.stmt, name: str) -> bool:
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name) \
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == name:
            return True
    return False


def stub_lines(piece: Piece, indent: str) -> list[str]:
    """The code that replaces a piece's body: where the formulas are, and the raise."""
    message = f"{piece.name} is not yet written: {piece.todo}"
    chunks = textwrap.wrap(message, width=96 - len(indent) - 6, drop_whitespace=False)
    literals = ['"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks]
    return [
        f"{indent}# Your code here. The formulas: the docstring of {piece.owner}; derived in",
        f'{indent}# chapter {piece.chapter}, "{piece.section}" ({CHAPTERS[piece.chapter]}).',
        f"{indent}raise NotImplementedError(",
        *(f"{indent}    {literal}" for literal in literals[:-1]),
        f"{indent}    {literals[-1]})",
    ]


def _left_out_lines(function: ast.FunctionDef, piece: Piece) -> tuple[int, int]:
    """The first and last line (1-based) of the part of the body that the stub replaces."""
    kept = _kept_statements(function, piece)
    return (kept[-1].end_lineno + 1 if kept else function.body[0].lineno), function.end_lineno


def cut_stubs(source: str, pieces: list[Piece]) -> str:
    """``source`` with the body of every piece replaced by its stub (docstring kept)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    cuts = []
    for piece in pieces:
        function = find_definition(tree, piece.name)
        if not isinstance(function, ast.FunctionDef):
            raise LookupError(f"{piece.name} is not a function")
        first, last = _left_out_lines(function, piece)
        indent = " " * function.body[0].col_offset
        cuts.append((first, last, stub_lines(piece, indent)))
    for first, last, stub in sorted(cuts, reverse=True):  # the last first: lines stay valid
        lines[first - 1 : last] = stub
    return "\n".join(lines) + "\n"


def left_out(source: str, piece: Piece) -> str:
    """The code that the stub of ``piece`` replaces in ``source``: what the student writes
    (a teacher's solution, when ``source`` is npnet's)."""
    first, last = _left_out_lines(find_definition(ast.parse(source), piece.name), piece)
    return "\n".join(source.splitlines()[first - 1 : last]) + "\n"


def fill_in(source: str, piece: Piece, code: str) -> str:
    """``source`` with the part of the piece's body that a stub replaces (the stub, or what
    was written there) replaced by ``code``, indented to the body."""
    function = find_definition(ast.parse(source), piece.name)
    first, last = _left_out_lines(function, piece)
    lines = source.splitlines()
    indent = " " * function.body[0].col_offset
    lines[first - 1 : last] = textwrap.indent(textwrap.dedent(code), indent).splitlines()
    return "\n".join(lines) + "\n"


def is_stub(source: str, piece: Piece) -> bool:
    """True while the piece's body still raises the stub's "... is not yet written"."""
    function = find_definition(ast.parse(source), piece.name)
    return f'"{piece.name} is not yet written' in ast.get_source_segment(source, function)


def tested_by(source: str, piece: Piece) -> list[str]:
    """The tests that the docstring of the piece's owner names ("Tested by: ...")."""
    doc = ast.get_docstring(find_definition(ast.parse(source), piece.owner)) or ""
    match = re.search(r"Tested by:((?:\s*tests/[\w/]+\.py::\w+,?)+)", doc)
    if not match:
        raise LookupError(f"the docstring of {piece.owner} names no test "
                          "('Tested by: ...')")
    return [ref.strip() for ref in match.group(1).split(",") if ref.strip()]


def locate(pieces: list[Piece], root: Path = ROOT) -> dict[str, str]:
    """The file of each piece, relative to ``root``: ``{"Dense.backward": "npnet/layers.py"}``.

    A piece is where its owner (class or function) is defined at the top of a module of
    npnet/, so that moving it to another core module moves the piece along.
    """
    defined: dict[str, list[str]] = {}
    for path in sorted((root / "npnet").glob("*.py")):
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.setdefault(node.name, []).append(f"npnet/{path.name}")
    paths = {}
    for piece in pieces:
        places = defined.get(piece.owner, [])
        if len(places) != 1:
            raise LookupError(f"{piece.name}: {piece.owner} is defined in "
                              f"{' and '.join(places) or 'no module of npnet/'}")
        paths[piece.name] = places[0]
    return paths


# ------------------------------------------------------------------ making the copy


def choose_pieces(chapters: list[int] | None = None, names: list[str] | None = None
                  ) -> list[Piece]:
    """The pieces of the given chapters and names, in the order of :data:`PIECES`; all of
    them if neither is given. Unknown chapters and names are a ValueError that lists the
    known ones."""
    chapters, names = list(chapters or []), list(names or [])
    for chapter in chapters:
        if chapter in NOTHING_TO_WRITE:
            raise ValueError(f"chapter {chapter} has no piece to write: "
                             f"{NOTHING_TO_WRITE[chapter]}; chapters with pieces: "
                             f"{_chapters_with_pieces()}")
        if chapter not in CHAPTERS:
            raise ValueError(f"there is no chapter {chapter}; chapters with pieces: "
                             f"{_chapters_with_pieces()}")
    for name in names:
        if name not in BY_NAME:
            close = difflib.get_close_matches(name, BY_NAME, n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ValueError(f"there is no piece {name!r}{hint}; the pieces: "
                             f"{', '.join(BY_NAME)}")
    if not chapters and not names:
        return list(PIECES)
    return [p for p in PIECES if p.chapter in chapters or p.name in names]


def _chapters_with_pieces() -> str:
    return ", ".join(str(c) for c in sorted({p.chapter for p in PIECES}))


def _train_on_the_core(cli_source: str) -> str:
    """npnet/cli.py with ``--no-fast`` on by default, so that the copy's experiments train on
    the student's code: the fast path computes Dense's, the convolutions' and Adam's products
    with its own code."""
    for node in ast.walk(ast.parse(cli_source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument" and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--no-fast"):
            lines = cli_source.splitlines(keepends=True)
            flag = node.args[0]
            line = lines[flag.end_lineno - 1]
            lines[flag.end_lineno - 1] = (line[: flag.end_col_offset] + ", default=True"
                                          + line[flag.end_col_offset :])
            return "".join(lines)
    raise LookupError("npnet/cli.py has no --no-fast option to make the default, so the "
                      "copy's experiments would train through the fast path, not the "
                      "student's code")


def _readme_header(pieces: list[Piece], paths: dict[str, str]) -> str:
    rows = "\n".join(f"| {p.chapter} | `{p.name}` | `{paths[p.name]}` |" for p in pieces)
    return f"""# npnet: the student workbook

This is a copy of [npnet](docs/README.md) made by `python -m npnet.workbook make`. The
{len(pieces)} pieces below are left for you to write: each one's body raises
`NotImplementedError` and says what to compute, and the docstring above it (or its class's)
gives the formula with the shapes. The chapter derives it.

| chapter | piece | file |
| --- | --- | --- |
{rows}

```bash
pip install -e ".[test]"            # this copy, in your virtual environment
python -m npnet.workbook grade      # one line per piece: passed, FAILED, not yet written
python -m npnet.workbook grade --chapter 2     # or --only Dense.backward
python experiments/dae_mnist.py --quick        # trains on your code (no fast path here)
```

Work in chapter order: a piece whose tests use another piece that is not yet written is
reported as "needs" that piece. How grading works: [docs/workbook.md](docs/workbook.md).
In this copy the experiments train on your code alone: `--no-fast` is their default, since
the fast path (`npnet/fast/`) would compute Dense's, the convolutions' and Adam's products
with its own code.

---

"""


def make_workbook(dest: str | os.PathLike, pieces: list[Piece] | None = None,
                  force: bool = False, source: str | os.PathLike = ROOT) -> Path:
    """Write the student copy of the project at ``source`` into ``dest``; returns its path.

    ``pieces`` (default: all of :data:`PIECES`) are left out. ``dest`` must not exist, or be
    an empty folder; with ``force`` it may hold other files, but none of the copy's files
    (nothing of the user's is ever replaced or deleted). The copy is written into a
    temporary folder beside ``dest`` and moved into place when complete.
    """
    pieces = list(PIECES if pieces is None else pieces)
    source, dest = Path(source).resolve(), Path(dest).expanduser().resolve()
    if not (source / "tests").is_dir() or not (source / "docs").is_dir():
        raise FileNotFoundError(f"{source} has no tests/ and docs/ beside npnet/: the workbook "
                                "is made from a clone of npnet, not from an installed package")
    names = [name for name in PROJECT_FILES if (source / name).exists()]
    for name in names:
        if dest == source / name or (source / name) in dest.parents:
            raise ValueError(f"{dest} is inside the project's {name}, which it copies")
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a folder")
    existing = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
    if existing and not force:
        raise FileExistsError(f"{dest} is not empty ({len(existing)} entries): choose a new "
                              "folder, or give --force to add the copy beside what is there")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _write_copy(source, staging, names, pieces)
        _move_into(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours; empty once moved
    return dest


def _write_copy(source: Path, staging: Path, names: list[str], pieces: list[Piece]) -> None:
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, staging / name, ignore=NOT_COPIED)
        else:
            shutil.copy2(source / name, staging / name)
    paths = locate(pieces, source)
    for path in sorted(set(paths.values())):
        text = (source / path).read_text(encoding="utf-8")
        here = [p for p in pieces if paths[p.name] == path]
        try:
            (staging / path).write_text(cut_stubs(text, here), encoding="utf-8")
        except LookupError as error:
            raise LookupError(f"{path}: {error}") from None
    cli = staging / "npnet" / "cli.py"
    cli.write_text(_train_on_the_core(cli.read_text(encoding="utf-8")), encoding="utf-8")
    readme = staging / "README.md"
    readme.write_text(_readme_header(pieces, paths) + readme.read_text(encoding="utf-8"),
                      encoding="utf-8")
    record = {"made_from": str(source), "pieces": [p.name for p in pieces]}
    (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _move_into(staging: Path, dest: Path) -> None:
    """Move the finished copy to ``dest``: the whole folder when ``dest`` is absent or empty,
    else entry by entry, after checking that none of them is there already."""
    if not dest.exists() or not any(dest.iterdir()):
        os.replace(staging, dest)  # an empty folder is replaced as a whole
        staging.mkdir()  # for the caller's cleanup
        return
    clashes = [p.name for p in staging.iterdir() if (dest / p.name).exists()]
    if clashes:
        raise FileExistsError(f"{dest} already has {', '.join(sorted(clashes))}: the copy "
                              "never replaces a file; choose a new folder")
    for entry in sorted(staging.iterdir()):
        os.rename(entry, dest / entry.name)


# ------------------------------------------------------------------ grading


@dataclass
class TestResult:
    """One test's outcome: "passed", "failed" or "skipped"; for a failure, its exception
    and pytest's ExceptionInfo (with the traceback). ``nodeid`` is pytest's
    ("tests/test_optim.py::test_adam_by_hand[Adam]"), ``ref`` the docstrings' (no "[...]")."""

    nodeid: str
    outcome: str = "passed"
    error: BaseException | None = None
    excinfo: object = None

    @property
    def ref(self) -> str:
        return self.nodeid.split("[")[0]


class _Collector:
    """A pytest plugin that keeps each test's outcome and exception, and prints nothing."""

    def __init__(self):
        self.results: dict[str, TestResult] = {}  # by pytest's node id
        self.collect_errors: list[str] = []

    def pytest_configure(self, config):
        from hypothesis import Phase, settings

        # Few examples, the same ones every run, and the first failing one reported as it
        # was drawn (shrinking it to the smallest one takes seconds to minutes per failure).
        settings.register_profile("npnet-workbook", max_examples=10, deadline=None,
                                  derandomize=True, database=None, print_blob=False,
                                  report_multiple_bugs=False,
                                  phases=(Phase.explicit, Phase.generate))
        settings.load_profile("npnet-workbook")

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext.strip()}")

    def pytest_runtest_makereport(self, item, call):
        result = self.results.setdefault(item.nodeid, TestResult(item.nodeid))
        if call.excinfo is None or result.outcome == "failed":
            return
        import pytest

        if call.excinfo.errisinstance(pytest.skip.Exception):
            result.outcome = "skipped"
        else:
            result.outcome, result.error = "failed", call.excinfo.value
            result.excinfo = call.excinfo


def run_tests(root: Path, refs: list[str]) -> _Collector:
    """Run the tests ``refs`` ("tests/test_x.py::test_y") of the project at ``root`` in this
    process, quietly; returns what the collector saw."""
    import pytest

    collector = _Collector()
    args = [str(root / ref) for ref in refs]
    args += ["--rootdir", str(root), "-p", "no:terminal", "-p", "no:cacheprovider",
             "-o", "addopts=", "-W", "ignore"]
    pytest.main(args, plugins=[collector])
    return collector


def _missing_tests(root: Path, refs: list[str]) -> list[str]:
    missing = []
    for ref in refs:
        file, name = ref.split("::")
        path = root / file
        if not path.is_file() or not re.search(rf"^def {name}\(", path.read_text("utf-8"), re.M):
            missing.append(ref)
    return missing


@dataclass
class Grade:
    """A piece's result. ``status``: "passed"; "not yet written" (its stub is still there);
    "FAILED"; or "needs" (its tests stopped in other pieces' stubs, listed in ``needs``)."""

    piece: Piece
    path: str
    results: list[TestResult]
    status: str
    needs: list[str] | None = None

    @property
    def failures(self) -> list[TestResult]:
        """The failed tests that are no stub's NotImplementedError: real mistakes."""
        return [r for r in self.results if r.outcome == "failed" and _unwritten(r) is None]


def _unwritten(result: TestResult) -> str | None:
    """The piece whose stub stopped this test, if one did."""
    if not isinstance(result.error, NotImplementedError):
        return None
    match = NOT_WRITTEN.match(str(result.error))
    return match[1] if match else None


def grade_piece(piece: Piece, path: str, stub: bool, results: list[TestResult]) -> Grade:
    """The grade of one piece from whether its stub is still there and its tests' results."""
    if stub:
        return Grade(piece, path, results, "not yet written")
    grade = Grade(piece, path, results, "passed")
    needs = sorted({name for r in results if (name := _unwritten(r)) is not None})
    if grade.failures:
        grade.status = "FAILED"
    elif needs:
        grade.status, grade.needs = "needs", needs
    return grade


def handed_out(root: Path) -> list[Piece]:
    """The pieces that the copy at ``root`` left out, from its workbook.json (all pieces in
    a project that is no copy)."""
    record = root / RECORD
    if not record.is_file():
        return list(PIECES)
    names = json.loads(record.read_text("utf-8"))["pieces"]
    return [BY_NAME[name] for name in names if name in BY_NAME]


def grade(pieces: list[Piece] | None = None, root: Path = ROOT, out=print,
          show_tests: bool = False) -> list[Grade]:
    """Run each piece's tests on the code at ``root`` and print the table; returns the grades.

    ``pieces`` defaults to those the copy left out (its workbook.json), or all of
    :data:`PIECES` in a project that is no copy. ``show_tests`` adds every test's result.
    """
    if pieces is None:
        pieces = handed_out(root)
    paths = locate(pieces, root)
    sources = {name: (root / path).read_text("utf-8") for name, path in paths.items()}
    tests = {p.name: tested_by(sources[p.name], p) for p in pieces}
    refs = list(dict.fromkeys(ref for p in pieces for ref in tests[p.name]))
    missing = _missing_tests(root, refs)
    if missing:
        raise LookupError(f"docstrings name tests that do not exist: {', '.join(missing)}")
    out(f"npnet workbook: grading the code in {root / 'npnet'}: {len(pieces)} pieces, "
        f"graded by {len(refs)} tests")
    collector = run_tests(root, refs)
    for error in collector.collect_errors:
        out(f"\nA test file could not be loaded, so its tests did not run:\n{error}")
    grades = []
    for piece in pieces:
        results = [r for r in collector.results.values() if r.ref in tests[piece.name]]
        for ref in set(tests[piece.name]) - {r.ref for r in results}:  # its file did not load
            results.append(TestResult(ref, "failed", RuntimeError("the test did not run: its "
                                                                  "file could not be loaded")))
        stub = is_stub(sources[piece.name], piece)
        grades.append(grade_piece(piece, paths[piece.name], stub, results))
    print_table(grades, sources, root, out, show_tests)
    return grades


def print_table(grades: list[Grade], sources: dict[str, str], root: Path, out=print,
                show_tests: bool = False) -> None:
    """The table of grades, then what each failure is and where its formula is."""
    width = max(len(g.piece.name) for g in grades)
    out(f"\n{'chapter':<9}{'piece':<{width + 2}}result")
    for g in grades:
        result = f"needs {', '.join(g.needs)} first" if g.status == "needs" else g.status
        out(f"{g.piece.chapter:<9}{g.piece.name:<{width + 2}}{result}")
        for r in g.results if show_tests else []:
            why = f": {type(r.error).__name__}: {_first_line(r.error)}" if r.error else ""
            if _unwritten(r):
                why = f": stopped in {_unwritten(r)}, not yet written"
            out(f"{'':<9}{r.outcome:<8}{r.nodeid}{why}"[:150])
    for g in grades:
        if g.status == "FAILED":
            _print_failure(g, sources[g.piece.name], root, out)
    passed = sum(g.status == "passed" for g in grades)
    out(f"\n{passed} of {len(grades)} pieces pass.")
    todo = next((g for g in grades if g.status != "passed"), None)
    if todo is not None:
        out(f"Next: {todo.piece.name} ({todo.path}), {todo.piece.where_derived}.")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


def _print_failure(g: Grade, source: str, root: Path, out) -> None:
    out(f"\n{g.piece.name} FAILED (derived in {g.piece.where_derived})")
    wrong = []
    for result in g.failures:
        out(f"  test: {result.nodeid}")
        gradients, sentence = _wrong_gradients(result)
        wrong += gradients
        if sentence:
            out(f"    {sentence}")
        else:
            out(f"    {type(result.error).__name__}: {_first_line(result.error)}")
            where = None if isinstance(result.error, AssertionError) else \
                _where_raised(root, result)
            if where:
                out(f"    raised at {where}")
        notes = [line.strip() for note in getattr(result.error, "__notes__", [])
                 for line in note.splitlines()]
        if notes and notes[0].startswith("Falsifying"):
            out(f"    {' '.join(notes)[:400]}")
    lines = formula_lines(source, g.piece, wrong)
    if lines:
        out(f"  the formula, in the docstring of {g.piece.owner}:")
        for number, line in lines:
            out(f"    {g.path}:{number}: {line}")


def _wrong_gradients(result: TestResult) -> tuple[list[str], str | None]:
    """Which gradients a failed gradient check found wrong, and a sentence about them.

    A check's assertion shows its relative errors, ``{'x': 1e-11, 'W': 0.8, ...}``. A
    gradient of the wrong shape stops ``check_gradients`` while it compares the array in its
    variable ``name``, which the traceback keeps.
    """
    message = str(result.error)
    shapes = re.search(r"cannot compare gradients of shapes (\(.*?\)) and (\(.*?\))", message)
    if shapes and result.excinfo is not None:
        name = next((entry.locals.get("name") for entry in reversed(result.excinfo.traceback)
                     if entry.name == "check_gradients"), None)
        if name is not None:
            return [name], f"dL/d{name} has shape {shapes[1]}, but {name} has shape {shapes[2]}"
    if not isinstance(result.error, AssertionError):
        return [], None
    errors = {key: float(value) for key, value in re.findall(
        r"'([^']+)': (?:np\.float64\()?([-+0-9.eE]+|nan|inf)", message.split("\n")[0])}
    wrong = [key for key, value in errors.items() if not value < 1e-6]
    if not wrong:
        return [], None
    said = ", ".join(f"dL/d{key} (relative error {errors[key]:.2g})" for key in wrong)
    right = [key for key in errors if key not in wrong]
    return wrong, f"wrong: {said}" + (f"; right: {', '.join(right)}" if right else "")


def formula_lines(source: str, piece: Piece, gradients: list[str]) -> list[tuple[int, str]]:
    """(line number, line) of the owner's docstring to show beside a failure: the lines
    that give dL/d(each wrong gradient), else the formula blocks (the lines indented after
    a ``::``)."""
    doc = _docstring_node(find_definition(ast.parse(source), piece.owner))
    if doc is None:
        return []
    lines = source.splitlines()
    numbered = list(enumerate(lines[doc.lineno - 1 : doc.end_lineno], start=doc.lineno))
    chosen = [(n, line.strip()) for n, line in numbered
              if any(re.search(rf"dL/d{re.escape(g)}(?![A-Za-z0-9])", line) for g in gradients)]
    if chosen:
        return chosen
    in_block, block_indent = False, 0
    for n, line in numbered:
        indent = len(line) - len(line.lstrip())
        if in_block and line.strip() and indent <= block_indent:
            in_block = False
        if in_block and line.strip():
            chosen.append((n, line.strip()))
        if line.rstrip().endswith("::"):
            in_block, block_indent = True, indent
    return chosen[:12]


def _where_raised(root: Path, result: TestResult) -> str | None:
    """``npnet/layers.py:214: <the line>``, for an error raised in the project's code."""
    if result.excinfo is None:
        return None
    for entry in reversed(result.excinfo.traceback):
        path = Path(str(entry.path))
        if path.is_relative_to(root / "npnet") and path.name != "gradcheck.py":
            return f"{path.relative_to(root)}:{entry.lineno + 1}: {str(entry.statement).strip()}"
    return None


# ------------------------------------------------------------------ the command


def list_pieces(out=print) -> None:
    """Every piece, its chapter, its file and the tests that grade it."""
    paths = locate(PIECES)
    for piece in PIECES:
        source = (ROOT / paths[piece.name]).read_text("utf-8")
        out(f"{piece.chapter:>2}  {piece.name:<26}{paths[piece.name]:<26}"
            f"{', '.join(t.split('::')[1] for t in tested_by(source, piece))}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m npnet.workbook",
        description="The student workbook: a copy of npnet in which the backward passes, the "
        "loss gradients and the optimizer updates are left for the student to write (their "
        "docstrings with the formulas stay), graded by npnet's own gradient checks. "
        "See docs/workbook.md.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    make = commands.add_parser(
        "make", help="write the student copy into DIR",
        description="Write a complete, installable copy of the project into DIR, with the "
        "chosen pieces (default: all) left out. DIR must be new or empty; --force adds the "
        "copy to a folder with other files, but never replaces one.")
    make.add_argument("dir", metavar="DIR", help="the folder of the copy")
    make.add_argument("--force", action="store_true",
                      help="write into DIR even if it holds other files (none is replaced)")
    check = commands.add_parser(
        "grade", help="run each piece's tests on this copy's code and print a table",
        description="Run the tests named in each piece's 'Tested by' lines on this "
        "project's code (the copy's pieces, from workbook.json) and print one line per "
        "piece: passed, FAILED, not yet written, or needs another piece first.")
    check.add_argument("--tests", action="store_true",
                       help="also list every test of every piece, with its result")
    for sub in (make, check):
        sub.add_argument("--chapter", type=int, action="append", metavar="N",
                         help="the pieces of chapter N (2-10; repeat for more)")
        sub.add_argument("--only", action="append", metavar="NAME",
                         help="the piece NAME, e.g. Dense.backward (repeat for more; "
                         "`list` shows them)")
    commands.add_parser("list", help="the pieces, their chapters, files and tests")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line, ``python -m npnet.workbook make|grade|list``; returns the exit
    status (0 when every graded piece passes)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        list_pieces()
        return 0
    try:
        chosen = choose_pieces(args.chapter, args.only)
        if args.command == "grade":
            if not (args.chapter or args.only):
                chosen = handed_out(ROOT)  # those the copy left out
            grades = grade(chosen, show_tests=args.tests)
            return 0 if all(g.status == "passed" for g in grades) else 1
        dest = make_workbook(args.dir, chosen, force=args.force)
    except (ValueError, LookupError, OSError) as error:
        parser.error(str(error))
    print(f"wrote the student copy to {dest}: {len(chosen)} pieces to write "
          f"({', '.join(p.name for p in chosen)})")
    print(f"next: cd {dest} && pip install -e '.[test]' && python -m npnet.workbook grade")
    return 0


if __name__ == "__main__":
    sys.exit(main())
