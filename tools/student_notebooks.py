"""Write the student copies of the chapter notebooks: every solution removed, outputs cleared.

    .venv/bin/python tools/student_notebooks.py OUTDIR [NOTEBOOK ...]
    .venv/bin/python tools/student_notebooks.py --check [NOTEBOOK ...]

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

It also fails when a kept cell gives an answer away (`find_leaks`):

- a kept code cell glues a value that a solution cites with `{glue:text}` (or `{glue}`), unless
  the exercise statement itself cites it (then it is a given of the exercise, not its answer);
- a kept code cell has a line of a solution's code (a line of 30 characters or more, compared
  with spaces normalized; comments and blank lines are ignored).

`--check` reports the leaks of every chapter without writing anything.
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


class SolutionLeakError(ValueError):
    """A cell that the student copy keeps computes or shows what a solution states."""


@dataclass(frozen=True)
class Leak:
    """One way a kept cell gives a solution away."""

    notebook: str
    cell: int  # index of the kept cell in the chapter notebook
    kind: str  # "glue" or "code"
    detail: str

    def __str__(self) -> str:
        return f"{self.notebook}, cell {self.cell}: {self.detail}"


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
    kept, _, removed, still_open = _split_markdown(source, in_gated)
    return kept, removed, still_open


def _split_markdown(source: str, in_gated: bool) -> tuple[str, str, int, bool]:
    """`_strip_markdown`, also returning the removed (solution) text."""
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
    solution = "".join(line for line, dropped in zip(lines, drop, strict=True) if dropped)
    kept = re.sub(r"\n{3,}", "\n\n", kept).strip() + "\n"
    return kept, solution, removed, gate_start is not None


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
    """A copy of `notebook` without solutions and without outputs.

    Raises `SolutionLeakError` if a kept cell gives a solution away (`find_leaks`).
    """
    leaks = find_leaks(notebook, name)
    if leaks:
        raise SolutionLeakError(
            f"{len(leaks)} kept cell(s) give a solution away; move the computation into a cell "
            "tagged 'solution', or cite the value in the exercise statement if it is a given:\n"
            + "\n".join(f"  {leak}" for leak in leaks)
        )
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


# `{glue:text}`name:format`, `{glue}`name``: the name a role cites.
GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`:]+)")
# glue("name", ...) or glue(f"prefix_{key}", ...) in code.
GLUE_CALL = re.compile(r"\bglue\(\s*(f?)([\"'])(.+?)\2")
MIN_CODE_LINE = 30  # shorter lines (`with torch.no_grad():`) are shared by unrelated code


def _glued_names(code: str) -> list[re.Pattern]:
    """Patterns of the names glued by `code` (an f-string's fields match any text)."""
    patterns = []
    for match in GLUE_CALL.finditer(code):
        is_fstring, _, name = match.groups()
        parts = re.split(r"\{[^}]*\}", name) if is_fstring else [name]
        patterns.append(re.compile(".+".join(re.escape(part) for part in parts) + "$"))
    return patterns


def _code_lines(code: str) -> set[str]:
    """The long lines of `code`, spaces normalized, comments and blank lines dropped."""
    lines = set()
    for line in code.splitlines():
        line = " ".join(line.split("#")[0].split()) if not line.lstrip().startswith("#") else ""
        if len(line) >= MIN_CODE_LINE:
            lines.add(line)
    return lines


def _exercise_text(source: str) -> str:
    """The text of the exercise directives of a Markdown cell."""
    lines = source.splitlines(keepends=True)
    return "".join(
        "".join(lines[slice(*token.map)])
        for token in _markdown.parse(source)
        if _directive_name(token) in EXERCISE_DIRECTIVES and token.map
    )


def _fenced_code(markdown: str) -> list[str]:
    """The code blocks (fences that are not directives) of a Markdown text, also those nested
    in directives."""
    blocks = []
    for token in _markdown.parse(markdown):
        if token.type == "fence" and not token.info.strip().startswith("{"):
            blocks.append(token.content)
        elif token.type in ("fence", "colon_fence"):  # a directive: look inside
            blocks += _fenced_code(token.content)
    return blocks


def find_leaks(notebook: nbformat.NotebookNode, name: str = "notebook") -> list[Leak]:
    """Kept cells that compute or show what a solution states (see the module's docstring)."""
    solution_text, solution_code, exercise_text = [], [], []
    kept_code: list[tuple[int, str]] = []
    in_gated = False
    for index, cell in enumerate(notebook.cells):
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            solution_text.append(cell.source)
            solution_code.append(cell.source)
        elif cell.cell_type == "markdown":
            exercise_text.append(_exercise_text(cell.source))
            _, solution, _, in_gated = _split_markdown(cell.source, in_gated)
            solution_text.append(solution)
            solution_code += _fenced_code(solution)
        elif in_gated:
            solution_text.append(cell.source)
            solution_code.append(cell.source)
        else:
            kept_code.append((index, cell.source))
    givens = set(GLUE_ROLE.findall("\n".join(exercise_text)))
    cited = set(GLUE_ROLE.findall("\n".join(solution_text))) - givens
    # a name that a solution cell glues by its full name is that cell's; an f-string glue in a
    # kept cell (`f"{prefix}_{key}"`) stands for the names no solution glues
    glued_by_solutions = {
        match.group(3) for code in solution_code for match in GLUE_CALL.finditer(code)
        if not match.group(1)
    }
    leaks = []
    for index, code in kept_code:
        for match, pattern in zip(GLUE_CALL.finditer(code), _glued_names(code), strict=True):
            is_fstring = bool(match.group(1))
            leaks += [
                Leak(name, index, "glue", f"glues `{glued}`, which a solution cites")
                for glued in sorted(cited)
                if pattern.match(glued) and not (is_fstring and glued in glued_by_solutions)
            ]
        lines = _code_lines(code)
        for unit in solution_code:
            shared = _code_lines(unit) & lines
            if shared and len(shared) >= len(_code_lines(unit)) / 2:
                leaks.append(
                    Leak(name, index, "code", f"repeats {len(shared)} of the "
                         f"{len(_code_lines(unit))} lines of a solution's code, e.g. "
                         f"{sorted(shared)[0]!r}")
                )
    return leaks


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


def report_leaks(notebooks: list[Path] | None = None) -> int:
    """Print the leaks of each notebook (default: every chapter); 1 if there is any."""
    leaks = [
        leak
        for path in notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
        for leak in find_leaks(nbformat.read(path, as_version=4), path.name)
    ]
    for leak in leaks:
        print(f"leak: {leak}")
    print(f"{len(leaks)} leak(s) found")
    return 1 if leaks else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing: report the leaks of the notebooks given (no OUTDIR)")
    parser.add_argument("outdir", type=Path, nargs="?", help="folder for the student notebooks")
    parser.add_argument("notebooks", type=Path, nargs="*", help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)
    if args.check:
        paths = [args.outdir, *args.notebooks] if args.outdir else None
        return report_leaks(paths)
    if args.outdir is None:
        parser.error("name the folder for the student notebooks (or use --check)")
    try:
        write_student_notebooks(args.outdir, args.notebooks or None)
    except (UnrecognizedSolutionError, SolutionLeakError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
