"""Every chapter opens as a Jupyter notebook, and the notebooks run top to bottom.

The notebooks are made from the chapters' Markdown by ``docs/hooks/notebooks.py`` (not
committed): each top-level ```python block becomes a code cell, the rest Markdown. Every
chapter is converted and checked, and every chapter with code is then run in a fresh
Jupyter kernel (nbclient, ipykernel), as a student would with Run All.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHAPTERS = [*sorted(DOCS.glob("[0-9][0-9]-*.md")), *sorted(DOCS.glob("appendix-*.md"))]
SNIPPET = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# Run in a kernel: every chapter with code (a second or two each).
EXECUTED = [c.name for c in CHAPTERS if SNIPPET.search(c.read_text(encoding="utf-8"))]


def load_notebooks_module():
    spec = importlib.util.spec_from_file_location("npnet_docs_notebooks",
                                                  DOCS / "hooks" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


notebooks = load_notebooks_module()


def test_every_chapter_has_a_notebook():
    assert [c.name for c in notebooks.chapters()] == [c.name for c in CHAPTERS]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_becomes_a_notebook(chapter, tmp_path):
    """Valid nbformat 4; one code cell per snippet, in order; math Jupyter renders; the
    figures inside the notebook; links to other chapters go to their notebooks."""
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]'")
    (path,) = notebooks.write_notebooks(tmp_path, [chapter])
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    text = chapter.read_text(encoding="utf-8")
    assert code == [s.rstrip("\n") for s in SNIPPET.findall(text)]
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "```math" not in markdown
    assert markdown.count("$$") == 2 * len(re.findall(r"^[ \t]*```math", text, re.MULTILINE))
    for cell in notebook.cells:
        for name in re.findall(r"\(attachment:([^)]+)\)", cell.source):
            assert name in cell.get("attachments", {}), f"{name} is not attached"
    images = re.findall(r"!\[(?:[^\[\]]|\[[^\]]*\])*\]\((figures/[^)]+\.png)\)", text)
    attached = [n for c in notebook.cells for n in c.get("attachments", {})]
    assert sorted({Path(i).name for i in images}) == sorted(set(attached))
    assert not re.search(r"\]\((?:\d\d-|appendix-)[\w-]+\.md", markdown), "a link to a .md"


def test_relative_links_of_a_notebook_resolve_from_its_folder(tmp_path):
    out = tmp_path / "notebooks"
    for path in notebooks.write_notebooks(out):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            for target in re.findall(r"\]\(([^)\s]+)\)", "".join(cell["source"])):
                file = target.partition("#")[0]
                if not file or "://" in file or file.startswith("attachment:"):
                    continue
                if file.endswith(".ipynb"):
                    assert (out / file).is_file(), f"{path.name}: {target}"
                else:
                    assert (out / file).exists(), f"{path.name}: {target}"


@pytest.mark.parametrize("name", EXECUTED)
def test_chapter_notebook_runs_top_to_bottom(name, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="pip install -e '.[test]'")
    (path,) = notebooks.write_notebooks(tmp_path, [DOCS / name])
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback
    ran = [c for c in notebook.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran)
    errors = [o for c in ran for o in c.outputs if o.output_type == "error"]
    assert not errors
