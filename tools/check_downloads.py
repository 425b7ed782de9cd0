"""Check the downloads of a built site: the student zip and every chapter's executed notebook.

    .venv/bin/python tools/check_downloads.py [_build/html]

Fails (exit code 1, one line per problem) unless

- the instructor's page links the zip of student notebooks, and the zip holds one notebook per
  chapter notebook (`notebooks/*.ipynb`), without outputs and without `{solution` blocks;
- every chapter page links its executed notebook in `_downloads/`, and that notebook has outputs;
- every notebook of the zip and every executed notebook reads in plain Jupyter: no MyST left
  (`{glue`, directives, roles) and a first cell that installs `aevb_utils` when it is missing;
- the instructor's table of running times has a row with measured times for every chapter page.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import nbformat
from plain_notebooks import INSTALL_TAG, left_over_myst

ROOT = Path(__file__).resolve().parents[1]


def linked_downloads(page: Path) -> list[Path]:
    """The files under `_downloads/` that an HTML page links to."""
    html = page.read_text(encoding="utf-8")
    return [
        (page.parent / href).resolve()
        for href in re.findall(r'href="([^"#]*_downloads/[^"#]+)"', html)
    ]


def not_plain(notebook: nbformat.NotebookNode, name: str) -> list[str]:
    """What keeps a downloaded notebook from reading well in plain Jupyter."""
    problems = []
    if not notebook.cells or INSTALL_TAG not in notebook.cells[0].metadata.get("tags", []):
        problems.append(f"{name} does not start with the cell that installs aevb_utils")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and (left := left_over_myst(cell.source)):
            problems.append(f"{name}, cell {index}: {', '.join(left)} left")
    return problems


def check_student_zip(site: Path, chapters: list[Path]) -> list[str]:
    page = site / "book" / "instructor.html"
    if not page.exists():
        return [f"missing page {page}"]
    zips = [path for path in linked_downloads(page) if path.suffix == ".zip"]
    if not zips or not zips[0].exists():
        return [f"{page} links no existing student zip ({zips})"]
    problems = []
    with zipfile.ZipFile(zips[0]) as archive:
        names = {Path(name).name for name in archive.namelist() if name.endswith(".ipynb")}
        if names != {path.name for path in chapters}:
            problems.append(f"student zip holds {sorted(names)}, chapters are "
                            f"{sorted(path.name for path in chapters)}")
        for name in archive.namelist():
            if not name.endswith(".ipynb"):
                continue
            notebook = nbformat.reads(archive.read(name).decode("utf-8"), as_version=4)
            if any(cell.get("outputs") for cell in notebook.cells):
                problems.append(f"student notebook {name} has outputs")
            if any("{solution" in cell.source for cell in notebook.cells):
                problems.append(f"student notebook {name} contains a solution")
            problems += not_plain(notebook, f"student notebook {name}")
    return problems


def check_executed_notebooks(site: Path) -> list[str]:
    problems = []
    pages = sorted((site / "notebooks").glob("*.html"))
    if not pages:
        return [f"no chapter pages in {site / 'notebooks'}"]
    for page in pages:
        executed = [path for path in linked_downloads(page) if path.name == f"{page.stem}.ipynb"]
        if not executed or not executed[0].exists():
            problems.append(f"{page} links no executed notebook {page.stem}.ipynb")
            continue
        notebook = nbformat.read(executed[0], as_version=4)
        if not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"):
            problems.append(f"{executed[0]} (linked from {page.name}) has no outputs")
        problems += not_plain(notebook, f"{executed[0]} (linked from {page.name})")
    return problems


def check_times_table(site: Path) -> list[str]:
    page = site / "book" / "instructor.html"
    if not page.exists():
        return []
    html = page.read_text(encoding="utf-8")
    table = re.search(r'<table[^>]*chapter-times.*?</table>', html, re.S)
    if not table:
        return [f"{page} has no table of running times"]
    problems = []
    for chapter in sorted((site / "notebooks").glob("*.html")):
        pattern = rf"<tr[^>]*>(?:(?!</tr>).)*{re.escape(chapter.name)}.*?</tr>"
        row = re.search(pattern, table.group(0), re.S)
        if not row:
            problems.append(f"no running time for {chapter.name}")
        elif "–" in row.group(0):
            problems.append(f"a running time of {chapter.name} is missing")
    return problems


def main(argv: list[str]) -> int:
    site = Path(argv[0]) if argv else ROOT / "_build" / "html"
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    problems = (check_student_zip(site, chapters) + check_executed_notebooks(site)
                + check_times_table(site))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"downloads OK: student zip with {len(chapters)} notebooks, executed notebooks on "
              f"{len(list((site / 'notebooks').glob('*.html')))} chapter pages, running times")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
