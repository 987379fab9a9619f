"""Every worked solution of the docs' exercises runs, and checks its own answer.

The solutions live in ``docs/solutions/``, out of the chapters so they do not spoil them. Each
is a plain script a student can run (``python docs/solutions/02_scale_layer.py``); it ends in
assertions (a gradient check below its tolerance, a number that matches), so a solution that
stops working fails this test, as a stale snippet fails ``tests/test_docs.py``.
"""

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "docs" / "solutions").glob("[0-9a-z]*.py"))
CHAPTERS = sorted((ROOT / "docs").glob("[0-9][0-9]-*.md")) + sorted(
    (ROOT / "docs").glob("appendix-*.md")
)


def test_there_are_solutions():
    assert len(SOLUTIONS) >= 8, [s.name for s in SOLUTIONS]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_solution_runs_and_checks_itself(solution, tmp_path, monkeypatch, capsys):
    source = solution.read_text(encoding="utf-8")
    assert re.search(r"^\s*(assert |np\.testing\.assert)", source, re.MULTILINE), (
        f"{solution.name} checks nothing: end it with assertions on its answer"
    )
    monkeypatch.chdir(tmp_path)  # anything it writes lands in a scratch folder
    runpy.run_path(str(solution), run_name="__main__")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_every_solution_belongs_to_an_exercise(solution):
    linked = [c.name for c in CHAPTERS if f"solutions/{solution.name}" in c.read_text("utf-8")]
    assert linked, f"no chapter links docs/solutions/{solution.name} from an exercise"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_ends_with_three_to_six_exercises(chapter):
    text = chapter.read_text(encoding="utf-8")
    assert "\n## Exercises\n" in text, f"{chapter.name} has no '## Exercises' section"
    section = text.split("\n## Exercises\n", 1)[1]
    assert "\n## " not in section, f"{chapter.name}: the exercises must be its last section"
    exercises = re.findall(r"^\d+\. ", section, re.MULTILINE)
    assert 3 <= len(exercises) <= 6, f"{chapter.name} has {len(exercises)} exercises"
