"""The architecture holds: three groups of modules, imports that run one way, a light
``import npnet``, and every formula of the core naming the test that proves it.

* The teaching core imports NumPy, the standard library and other core modules only:
  never the fast path, never the plumbing (data, io, train, analysis, plotting, cli).
* The fast path imports the core (and numba, threadpoolctl), never the plumbing.
* ``import npnet`` imports neither matplotlib nor numba nor threadpoolctl.
* Each public class and function of a core module has a ``Tested by:`` line, and every
  ``Tested by:`` reference anywhere in npnet names a test that exists.
"""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import defined_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "npnet"
CORE = ["checks", "layers", "patches", "conv", "losses", "optim", "autoencoder",
        "reparameterize", "vae", "importance", "gradcheck"]
PLUMBING = ["data", "io", "train", "analysis", "plotting", "cli", "workbook"]
FAST = sorted(p.stem for p in (PACKAGE / "fast").glob("*.py"))


def test_every_module_is_in_exactly_one_group():
    top_level = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert sorted(CORE + PLUMBING) == top_level
    assert (PACKAGE / "fast" / "__init__.py").is_file()


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                names.update(f"{module}.{a.name}" if not node.module else module
                             for a in node.names)
            else:
                names.add(node.module)
    return names


def third_party_and_npnet(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}}


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_numpy_and_itself_only(module):
    imported = third_party_and_npnet(imports_of(PACKAGE / f"{module}.py"))
    allowed = {"numpy"} | {f"npnet.{name}" for name in CORE}
    assert imported <= allowed, f"npnet/{module}.py imports {sorted(imported - allowed)}"


@pytest.mark.parametrize("module", FAST)
def test_the_fast_path_imports_the_core_never_the_plumbing(module):
    imported = third_party_and_npnet(imports_of(PACKAGE / "fast" / f"{module}.py"))
    plumbing = {f"npnet.{name}" for name in PLUMBING}
    assert not imported & plumbing, f"npnet/fast/{module}.py imports {imported & plumbing}"
    outside = {n for n in imported if not n.startswith("npnet")}
    assert outside <= {"numpy", "numba", "threadpoolctl"}, outside


def test_the_import_check_can_fail(tmp_path):
    """A core file that imported the fast path, relatively or not, would be caught."""
    fake = tmp_path / "layers.py"
    fake.write_text("from .fast.optim import FastAdam\nimport npnet.cli\nimport scipy\n")
    assert imports_of(fake, package="npnet") == {"npnet.fast.optim", "npnet.cli", "scipy"}


def test_import_npnet_stays_light():
    code = (
        "import sys, npnet, npnet.fast\n"
        "heavy = {'matplotlib', 'numba', 'threadpoolctl', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


TESTED_BY = re.compile(r"Tested by:((?:\s*tests/[\w/]+\.py::\w+,?)+)")


def references_in(doc: str) -> list[str]:
    return [ref.strip() for block in TESTED_BY.findall(doc or "") for ref in block.split(",")]


@pytest.mark.parametrize("module", CORE)
def test_every_formula_of_the_core_names_its_test(module):
    imported = importlib.import_module(f"npnet.{module}")
    missing = []
    for name in imported.__all__:
        obj = getattr(imported, name)
        if callable(obj) and not references_in(obj.__doc__):
            missing.append(name)
    assert not missing, f"npnet/{module}.py: no 'Tested by:' line in {missing}"


def test_every_tested_by_reference_exists():
    references = [
        ref
        for path in sorted(PACKAGE.rglob("*.py"))
        for ref in references_in(path.read_text(encoding="utf-8"))
    ]
    assert len(references) > 30
    broken = []
    for ref in references:
        file, name = ref.split("::")
        if not (ROOT / file).is_file() or name not in defined_names(ROOT / file):
            broken.append(ref)
    assert not broken, f"'Tested by:' names tests that do not exist: {broken}"


# A student reads a core module in one sitting, and a formula within a screen.
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 30


def code_lines(function: ast.FunctionDef, lines: list[str]) -> int:
    """Lines of a function's body that hold code: not its docstring, blanks or comments."""
    body = function.body
    has_docstring = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                     and isinstance(body[0].value.value, str))
    first = body[0].end_lineno + 1 if has_docstring else body[0].lineno
    return sum(1 for line in lines[first - 1 : function.end_lineno]
               if line.strip() and not line.strip().startswith("#"))


def longest_functions(path: Path) -> list[tuple[str, int]]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    return sorted(((node.name, code_lines(node, lines)) for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)),
                  key=lambda item: -item[1])


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_reads_in_one_sitting(module):
    path = PACKAGE / f"{module}.py"
    length = len(path.read_text(encoding="utf-8").splitlines())
    assert length <= MAX_MODULE_LINES, f"npnet/{module}.py has {length} lines"
    too_long = [(name, n) for name, n in longest_functions(path) if n > MAX_FUNCTION_LINES]
    assert not too_long, f"npnet/{module}.py: functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_the_length_check_can_fail(tmp_path):
    fake = tmp_path / "long.py"
    fake.write_text('def f():\n    """Doc.\n\n    More."""\n    # why\n' + "    x = 1\n" * 31)
    assert longest_functions(fake) == [("f", 31)]


# What the fast path guarantees is said in npnet/fast/ and the appendix, not in the core.
FAST_PATH_WORDS = re.compile(r"\bbits?\b|bit for bit|compiled|\bthreads?\b|processor|\bBLAS\b|"
                             r"numba", re.IGNORECASE)


@pytest.mark.parametrize("module", CORE)
def test_the_core_owes_nothing_to_the_fast_path(module):
    """No docstring or comment of the core speaks of bits, compiled loops, threads or the
    processor's caches (its error messages may tell a user what to do about npnet.fast)."""
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    docs = [ast.get_docstring(node) or "" for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)]
    comments = [line.split("#", 1)[1] for line in source.splitlines() if "#" in line
                and not line.strip().startswith(("'", '"', "f'", 'f"'))]
    found = [text for text in docs + comments if FAST_PATH_WORDS.search(text)]
    assert not found, f"npnet/{module}.py: {[FAST_PATH_WORDS.search(t)[0] for t in found]}"
