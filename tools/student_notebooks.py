"""Write the student copies of the chapter notebooks: every solution removed, outputs cleared.

    .venv/bin/python tools/student_notebooks.py OUTDIR [NOTEBOOK ...]

writes `OUTDIR/NAME.ipynb` for every chapter notebook (default: `notebooks/*.ipynb`). Every
exercise statement is kept. The solution forms recognized (and removed) are

- a `{solution}` directive in a Markdown cell, fenced with colons (`:::{solution} label`) or
  backticks (```` ```{solution} label ````), with anything nested inside it;
- a gated solution, `{solution-start}` ... `{solution-end}` (sphinx-exercise), which may span
  cells: the cells and lines in between are removed;
- a code cell tagged `solution` (the code that computes an answer a solution states).

Anything else that looks like a solution (a `{solution` left after removal, a `:class:` or cell
tag naming a solution, a heading or bold line starting with "Solution", nbgrader's
`BEGIN SOLUTION` markers) is an error: the script fails rather than leak an answer. Markdown is
parsed with markdown-it-py and its colon-fence plugin, the parser MyST itself uses.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.colon_fence import colon_fence_plugin
from nbconvert.preprocessors import ClearOutputPreprocessor

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_TAG = "solution"
EXERCISE_DIRECTIVES = ("exercise", "exercise-start")

# Traces of a solution in a form this script does not know how to remove.
LEAK_PATTERNS = {
    "a {solution...} directive or role": re.compile(r"\{\s*solution", re.IGNORECASE),
    "a :class: naming a solution": re.compile(r"^\s*:class:.*solution", re.IGNORECASE | re.M),
    "a heading or bold line starting with 'Solution'": re.compile(
        r"^\s*(#+|\*\*|__)\s*solutions?\b", re.IGNORECASE | re.M
    ),
    "an nbgrader solution marker": re.compile(r"(BEGIN|END) SOLUTION"),
}

_markdown = MarkdownIt("commonmark").use(colon_fence_plugin)


class UnrecognizedSolutionError(ValueError):
    """A cell still looks like it contains a solution after the known forms were removed."""


@dataclass
class StudentNotebook:
    """A student copy and what was done to make it."""

    notebook: nbformat.NotebookNode
    exercises: int  # exercise directives in the chapter (all kept)
    solutions_removed: int  # solution directives, gated solutions and tagged cells


def _directive_name(token: Token) -> str | None:
    """`solution` for a fence opened with ```` ```{solution} label ```` or `:::{solution}`."""
    if token.type not in ("fence", "colon_fence"):
        return None
    match = re.match(r"\{([\w-]+)\}", token.info.strip())
    return match.group(1) if match else None


def count_exercises(notebook: nbformat.NotebookNode) -> int:
    """Number of `{exercise}` (and gated `{exercise-start}`) directives in the Markdown cells."""
    return sum(
        _directive_name(token) in EXERCISE_DIRECTIVES
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for token in _markdown.parse(cell.source)
    )


def _strip_markdown(source: str, in_gated: bool) -> tuple[str, int, bool]:
    """Remove the solution blocks of one Markdown cell.

    `in_gated` says whether a `{solution-start}` of an earlier cell is still open. Returns the
    new source, the number of solutions removed and whether a gated solution is still open.
    """
    lines = source.splitlines(keepends=True)
    drop = [False] * len(lines)
    removed = 0
    gate_start = 0 if in_gated else None
    for token in _markdown.parse(source):
        name = _directive_name(token)
        start, end = token.map or (0, 0)
        if name == "solution":
            drop[start:end] = [True] * (end - start)
            removed += 1
        elif name == "solution-start":
            if gate_start is not None:
                raise UnrecognizedSolutionError("{solution-start} inside an open gated solution")
            gate_start = start
        elif name == "solution-end":
            if gate_start is None:
                raise UnrecognizedSolutionError("{solution-end} without {solution-start}")
            drop[gate_start:end] = [True] * (end - gate_start)
            gate_start = None
            removed += 1
    if gate_start is not None:  # the gated solution goes on in the next cells
        drop[gate_start:] = [True] * (len(lines) - gate_start)
    kept = "".join(line for line, dropped in zip(lines, drop, strict=True) if not dropped)
    return re.sub(r"\n{3,}", "\n\n", kept).strip() + "\n", removed, gate_start is not None


def _check_no_leak(cell: nbformat.NotebookNode, where: str) -> None:
    """Fail loudly if a kept cell still looks like (part of) a solution."""
    tags = [tag for tag in cell.metadata.get("tags", []) if "solution" in tag.lower()]
    if tags:
        raise UnrecognizedSolutionError(f"{where}: unknown solution tag(s) {tags}")
    for what, pattern in LEAK_PATTERNS.items():
        match = pattern.search(cell.source)
        if match:
            line = cell.source[: match.start()].count("\n") + 1
            raise UnrecognizedSolutionError(
                f"{where}, line {line}: {what} is left after removing the known solution forms "
                f"(fenced {{solution}}, {{solution-start}}/{{solution-end}}, cells tagged "
                f"'{SOLUTION_TAG}'): {match.group(0)!r}"
            )


def student_notebook(notebook: nbformat.NotebookNode, name: str = "notebook") -> StudentNotebook:
    """A copy of `notebook` without solutions and without outputs."""
    # a deep copy, with the cell ids that nbformat 4.5 requires added where an editor left none
    student = nbformat.from_dict(nbformat.validator.normalize(notebook)[1])
    cells = []
    removed = 0
    in_gated = False
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index}"
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            cell.source, count, in_gated = _strip_markdown(cell.source, in_gated)
            removed += count
            if not cell.source.strip():
                continue  # the cell was all solution
        elif in_gated:
            continue  # a code cell inside a gated solution
        _check_no_leak(cell, where)
        cells.append(cell)
    if in_gated:
        raise UnrecognizedSolutionError(f"{name}: {{solution-start}} is never closed")
    student.cells = cells
    student, _ = ClearOutputPreprocessor().preprocess(student, {})
    nbformat.validate(student)
    return StudentNotebook(student, count_exercises(notebook), removed)


def write_student_notebooks(outdir: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """Write the student copy of each notebook (default: every chapter) into `outdir`."""
    notebooks = notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        result = student_notebook(nbformat.read(path, as_version=4), path.name)
        if result.solutions_removed < result.exercises:
            print(f"note: {path.name} has {result.exercises} exercises but only "
                  f"{result.solutions_removed} solutions", file=sys.stderr)
        target = outdir / path.name
        nbformat.write(result.notebook, target)
        written.append(target)
        print(f"{target}: {result.exercises} exercises kept, "
              f"{result.solutions_removed} solution blocks or cells removed")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="folder for the student notebooks")
    parser.add_argument("notebooks", type=Path, nargs="*", help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)
    try:
        write_student_notebooks(args.outdir, args.notebooks or None)
    except UnrecognizedSolutionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
