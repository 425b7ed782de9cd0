"""Student notebooks (tools/student_notebooks.py): exercises kept, solutions gone, runnable."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from student_notebooks import (  # noqa: E402
    SolutionLeakError,
    UnrecognizedSolutionError,
    count_exercises,
    find_leaks,
    main,
    student_notebook,
)

CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def notebook_of(*cells: tuple[str, str] | nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook from (kind, source) pairs, kind "md" or "code", or ready-made cells."""
    made = []
    for cell in cells:
        if isinstance(cell, tuple):
            kind, source = cell
            cell = (nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell)(
                source
            )
        made.append(cell)
    return nbformat.v4.new_notebook(cells=made)


EXERCISE = ":::{exercise}\n:label: ex-a\nCompute the answer.\n:::\n"


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> dict[str, Path]:
    """The command as documented, run once on each chapter (so that a chapter that fails, say
    with a leak, fails its own tests only)."""
    outdir = tmp_path_factory.mktemp("student")
    return {path.name: outdir / path.name for path in CHAPTERS
            if main([str(outdir), str(path)]) == 0}


def student_copy(students: dict[str, Path], chapter: Path) -> nbformat.NotebookNode:
    assert chapter.name in students, (
        f"tools/student_notebooks.py refused {chapter.name}: run it with --check for the reason"
    )
    return nbformat.read(students[chapter.name], as_version=4)


# A {solution} block fenced with colons, found independently of the tool's Markdown parser.
SOLUTION_BLOCK = re.compile(r"^(:{3,})\{solution\}.*?\n(.*?)^\1\s*$", re.S | re.M)


def solution_bodies(notebook: nbformat.NotebookNode) -> list[str]:
    """The non-trivial lines of the {solution} blocks that appear nowhere else in the chapter."""
    bodies, elsewhere = [], []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            bodies += [
                line.strip()
                for block in SOLUTION_BLOCK.findall(cell.source)
                for line in block[1].splitlines()
                if len(line.strip()) > 25
            ]
            elsewhere.append(SOLUTION_BLOCK.sub("", cell.source))
        elif "solution" not in cell.metadata.get("tags", []):
            elsewhere.append(cell.source)
    outside = "\n".join(elsewhere)
    return [line for line in bodies if line not in outside]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_exercises_kept_and_solutions_gone(students, chapter):
    original = nbformat.read(chapter, as_version=4)
    student = student_copy(students, chapter)
    assert count_exercises(student) == count_exercises(original) >= 3
    text = "\n".join(cell.source for cell in student.cells)
    assert "{solution" not in text
    bodies = solution_bodies(original)
    assert bodies, "every chapter has solutions to remove"
    leaked = [line for line in bodies if line in text]
    assert not leaked, f"solution text left in the student notebook: {leaked[:3]}"
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in student.cells
        if cell.cell_type == "code"
    )
    nbformat.validate(student)


# Executing every student notebook at the smoke budget is the book build's job (the teaching
# extension runs them to time them, and a failure there is a warning, so `-W` fails the build):
# here it would run each chapter a second time beside nbval's run of the full chapter.


def test_removes_colon_and_backtick_fences_with_nested_blocks():
    source = (
        EXERCISE
        + "\n::::{solution} ex-a\n:class: dropdown\n```python\nsecret_code()\n```\n"
        + ":::{hint}\nsecret hint\n:::\n::::\n\nbetween\n\n"
        + "```{solution} ex-a\nsecret backtick\n```\n"
    )
    result = student_notebook(notebook_of(("md", source)))
    text = result.notebook.cells[0].source
    assert "secret" not in text
    assert "Compute the answer." in text and "between" in text
    assert (result.exercises, result.solutions_removed) == (1, 2)


def test_removes_gated_solution_across_cells_and_tagged_cells():
    tagged = nbformat.v4.new_code_cell("hidden_value = 42", metadata={"tags": ["solution"]})
    result = student_notebook(
        notebook_of(
            ("md", EXERCISE + "\n:::{solution-start} ex-a\n:::\nsecret start\n"),
            ("code", "secret_code()"),
            ("md", "secret end\n:::{solution-end}\n:::\nafter"),
            tagged,
            ("code", "print('kept')"),
        )
    )
    sources = [cell.source for cell in result.notebook.cells]
    assert not any("secret" in source or "hidden_value" in source for source in sources)
    assert sources[-2:] == ["after\n", "print('kept')"]
    assert result.solutions_removed == 2


@pytest.mark.parametrize(
    "source",
    [
        EXERCISE + "\n:::{admonition} Solution\n:class: solution\n42\n:::\n",
        EXERCISE + "\n**Solution.** It is 42.\n",
        EXERCISE + "\n## Solutions\n\n42\n",
        EXERCISE + "\n::::{exercise}\n:::{solution}\nnested in an exercise\n:::\n::::\n",
    ],
    ids=["admonition", "bold", "heading", "nested"],
)
def test_unrecognized_solution_form_fails_loudly(source):
    with pytest.raises(UnrecognizedSolutionError):
        student_notebook(notebook_of(("md", source)))


def test_unrecognized_solution_marker_in_code_fails_loudly():
    with pytest.raises(UnrecognizedSolutionError, match="nbgrader"):
        student_notebook(notebook_of(("code", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION")))
    hidden = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["hide-solution"]})
    with pytest.raises(UnrecognizedSolutionError, match="tag"):
        student_notebook(notebook_of(hidden))


def test_unclosed_gated_solution_fails_loudly():
    with pytest.raises(UnrecognizedSolutionError, match="never closed"):
        student_notebook(notebook_of(("md", ":::{solution-start} ex-a\n:::\nsecret")))


# --- exercises that ask for code, and the answers the build computes --------------------------

# An exercise asks for code when a sentence or clause of it starts with one of these verbs.
CODE_VERBS = re.compile(
    r"(?:^|[.?!),:;]\s+|\(\w\)\s+|\bthen\s+)(run|retrain|train|write|measure|modify|add|"
    r"replace|take|compute|evaluate|plot|generate|loop|split|use|fit|estimate|implement|check)\b",
    re.I,
)
EXERCISE_BLOCK = re.compile(r"^(:{3,})\{exercise\}.*?\n:label: (\S+)\n(.*?)^\1\s*$", re.S | re.M)
# Chapters whose every code exercise has a build-computed answer; the others are reported.
COMPLETE_CHAPTERS = {
    "01_em", "02_approximate_em", "03_amortized_inference", "04_reparameterization",
    "05_factor_analysis", "06_vae", "07_cvae", "08_gmvae", "09_vrnn",
}


def code_exercises(notebook: nbformat.NotebookNode) -> dict[str, bool]:
    """Each exercise that asks for code, and whether a hidden solution cell computes and
    asserts its answer (a cell tagged `solution` that names the exercise and asserts)."""
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    solution_cells = [
        c.source for c in notebook.cells
        if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])
    ]
    return {
        label: any(
            re.search(rf"{re.escape(label)}(?![\w-])", cell) and "assert" in cell
            for cell in solution_cells
        )
        for _, label, statement in EXERCISE_BLOCK.findall(markdown)
        if CODE_VERBS.search(" ".join(statement.split()))
    }


def test_code_exercises_have_answers_computed_by_the_build(capsys):
    counts, missing = {}, {}
    for chapter in CHAPTERS:
        found = code_exercises(nbformat.read(chapter, as_version=4))
        counts[chapter.stem] = (sum(found.values()), len(found))
        missing[chapter.stem] = sorted(label for label, done in found.items() if not done)
    with capsys.disabled():
        total = [sum(done for done, _ in counts.values()), sum(n for _, n in counts.values())]
        print(f"\ncode exercises with a build-computed answer: {total[0]} of {total[1]}")
        for stem, (done, n) in counts.items():
            gaps = f"; missing {missing[stem]}" if missing[stem] else ""
            print(f"  {stem}: {done} of {n}{gaps}")
    assert total[1] >= 20, "the classification of code exercises found too few"
    for stem in COMPLETE_CHAPTERS:
        assert not missing[stem], f"{stem}: code exercises without an answer: {missing[stem]}"


def test_solution_cells_are_hidden():
    for chapter in CHAPTERS:
        for cell in nbformat.read(chapter, as_version=4).cells:
            if "solution" in cell.metadata.get("tags", []):
                tags = cell.metadata["tags"]
                assert "hide-input" in tags, f"{chapter.name}: a visible solution cell"


# --- the lesson plan on the instructor's page -------------------------------------------------

INSTRUCTOR = ROOT / "book" / "instructor.md"
PLAN_ROW = re.compile(
    r"^\| \{ref\}`(ex-[\w-]+) <\1>` \| (\d+) \| (class|lab|homework) \| (\d+) \| (★{1,3}) "
    r"\| (O\d) \|$",
    re.M,
)


def test_lesson_plan_sets_every_exercise_once_within_the_time():
    text = INSTRUCTOR.read_text(encoding="utf-8")
    rows = PLAN_ROW.findall(text)
    labels = [row[0] for row in rows]
    in_chapters = {
        label
        for chapter in CHAPTERS
        for label in re.findall(r":label: (ex-[\w-]+)", "\n".join(
            c.source for c in nbformat.read(chapter, as_version=4).cells))
    }
    assert len(labels) == len(set(labels)), "an exercise is set twice"
    assert set(labels) == in_chapters, (
        f"not in the plan: {sorted(in_chapters - set(labels))}; "
        f"not in a chapter: {sorted(set(labels) - in_chapters)}"
    )
    minutes: dict[tuple[str, str], int] = {}
    for _, lesson, when, mins, _, _ in rows:
        minutes[(lesson, when)] = minutes.get((lesson, when), 0) + int(mins)
    for (lesson, when), total in minutes.items():
        limit = {"class": 20, "lab": 45}.get(when)
        assert limit is None or total <= limit, f"lesson {lesson}: {total} minutes of {when} work"
    outcomes = set(re.findall(r"^- \*\*(O\d)\*\*", text, re.M))
    assert outcomes and outcomes == {row[5] for row in rows}, "an outcome without an exercise"
    vae_lesson = next(lesson for label, lesson, *_ in rows if label == "ex-vae-rate")
    estimators = next(lesson for label, lesson, *_ in rows if label == "ex-reparam-vae-estimators")
    assert int(estimators) >= int(vae_lesson), "the VAE estimators exercise needs the VAE"


# --- the leak check ---------------------------------------------------------------------------

CITING = EXERCISE + "\n:::{solution} ex-a\nIt is {glue:text}`answer:.2f`.\n:::\n"


def solution_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["solution", "hide-input"]})


def test_a_kept_cell_that_glues_a_cited_value_is_a_leak():
    leaky = notebook_of(("code", 'glue("answer", 42, display=False)'), ("md", CITING))
    assert [leak.kind for leak in find_leaks(leaky)] == ["glue"]
    with pytest.raises(SolutionLeakError, match="answer"):
        student_notebook(leaky)
    fixed = notebook_of(("md", CITING), solution_cell('glue("answer", 42, display=False)'))
    assert find_leaks(fixed) == []


def test_an_fstring_glue_in_a_kept_cell_is_a_leak_unless_a_solution_glues_the_name():
    kept = ("code", 'for key in keys:\n    glue(f"ans{key}", 1, display=False)')
    assert len(find_leaks(notebook_of(kept, ("md", CITING)))) == 1
    owned = solution_cell('glue("answer", 42, display=False)')
    assert find_leaks(notebook_of(kept, ("md", CITING), owned)) == []


def test_a_value_the_exercise_states_is_a_given_not_a_leak():
    given = (":::{exercise}\n:label: ex-a\nWith {glue:text}`answer` samples, compute it.\n:::\n"
             ":::{solution} ex-a\nWith {glue:text}`answer` samples it is 3.\n:::\n")
    kept = ("code", 'glue("answer", 10, display=False)')
    assert find_leaks(notebook_of(kept, ("md", given))) == []


def test_a_kept_cell_that_repeats_a_solutions_code_is_a_leak():
    code = "variance_ratio = meanfield_variance / post_cov_true.diagonal()\nprint(variance_ratio)"
    solution = EXERCISE + "\n:::{solution} ex-a\n```python\n" + code + "\n```\n:::\n"
    leaks = find_leaks(notebook_of(("code", code), ("md", solution)))
    assert [leak.kind for leak in leaks] == ["code"]
    assert find_leaks(notebook_of(("code", "print(1)"), ("md", solution))) == []


def test_check_reports_the_leaks_of_the_chapters(capsys):
    status = main(["--check", str(CHAPTERS[0])])
    assert status == 0 and "0 leak(s) found" in capsys.readouterr().out


def test_edition_check_counts_inline_code_outside_solutions_as_shown(tmp_path):
    # Code that a kept paragraph quotes inline is on the student page too; only what the
    # solutions alone say is secret.
    from check_student_edition import split_ngrams

    code = "GaussianTable(num_points, latent_dim, full_covariance=False)"
    chapter = notebook_of(("md", f"The table (`{code}` in `new_model`) is diagonal."),
                          solution_cell(f"model = {code}"))
    path = tmp_path / "chapter.ipynb"
    nbformat.write(chapter, path)
    solution, shown = split_ngrams(path)
    run = ("model", "gaussiantable", "num", "points", "latent", "dim", "full", "covariance")
    assert run in solution
    assert run[1:] + ("false",) in shown
    assert run[1:] + ("false",) not in solution - shown


def test_every_figure_cell_describes_its_image():
    # A reader with a screen reader gets the figure's alt text (the browser test checks the
    # built pages; this finds the cell before a build).
    missing = [
        f"{chapter.stem}, cell {i}"
        for chapter in CHAPTERS
        for i, cell in enumerate(nbformat.read(chapter, as_version=4).cells)
        if cell.cell_type == "code" and re.search(r"plt\.show\(\)|au\.image_grid\(", cell.source)
        and not cell.metadata.get("mystnb", {}).get("image", {}).get("alt")
    ]
    assert not missing, f"figure cells without mystnb.image.alt: {missing}"
