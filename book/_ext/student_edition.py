"""Two editions from one source: `AEVB_EDITION=student` builds the book without its solutions.

The default (`AEVB_EDITION` unset or `full`) is the full book. The student edition

- drops every `{solution}` block (plain and gated) and every code cell tagged `solution` from
  the pages, before sphinx-exercise registers them, so no page, search entry or link shows one;
- replaces the notebooks of the page's download menu (`_sources/`) by the student notebooks
  (`tools/student_notebooks.py`: no solution, no output) and offers no executed notebook;
- reuses the full build's execution cache (`_build/.jupyter_cache`, or the smoke build's), so
  it is a Sphinx pass over the cached outputs, not a second execution. Build it into its own
  folder: `AEVB_EDITION=student jupyter-book build . --path-output _build/student`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

from aevb_utils.runtime import is_smoke

logger = logging.getLogger(__name__)

EDITION_VARIABLE = "AEVB_EDITION"
EDITIONS = ("full", "student")
SOLUTION_CELL_CLASS = "tag_solution"  # myst-nb's class for a code cell tagged `solution`


def edition() -> str:
    """The edition this build makes, from `AEVB_EDITION` (default: full)."""
    value = os.environ.get(EDITION_VARIABLE, "").strip().lower() or "full"
    if value not in EDITIONS:
        raise ValueError(
            f"{EDITION_VARIABLE}={value!r} is not an edition of the book: use one of "
            f"{', '.join(EDITIONS)} (or leave it unset for the full book)"
        )
    return value


def is_student_edition() -> bool:
    return edition() == "student"


def share_the_execution_cache(app: Sphinx, config: Any) -> None:
    """The student edition reads the outputs the full build cached, wherever it writes."""
    config.student_edition = is_student_edition()  # read by the teaching extension
    if not config.student_edition:
        return
    cache = ".jupyter_cache_smoke" if is_smoke() else ".jupyter_cache"
    config.nb_execution_cache_path = str(Path(app.srcdir) / "_build" / cache)
    config.html_title = f"{config.project} (student edition)"
    logger.info(f"[edition] student edition, outputs from {config.nb_execution_cache_path}")


def is_solution(node: nodes.Node) -> bool:
    if isinstance(node, (solution_node, solution_start_node, solution_end_node)):
        return True
    return isinstance(node, nodes.container) and SOLUTION_CELL_CLASS in node.get("classes", [])


def remove_solutions(app: Sphinx, doctree: nodes.document) -> None:
    """Drop the solutions of a page (before sphinx-exercise records them)."""
    if not is_student_edition():
        return
    for node in list(doctree.findall(is_solution)):
        node.parent.remove(node)


def hand_out_student_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """The download menu's `.ipynb` of a chapter becomes its student notebook."""
    if exception is not None or not is_student_edition() or app.builder.format != "html":
        return
    from student_notebooks import write_student_notebooks  # tools/, on the path of `teaching`

    sources = Path(app.outdir) / "_sources" / "notebooks"
    if not sources.is_dir():
        return
    chapters = sorted((Path(app.srcdir) / "notebooks").glob("*.ipynb"))
    folder = Path(app.outdir).parent / "student-sources"
    shutil.rmtree(folder, ignore_errors=True)
    for chapter in chapters:
        try:
            written = write_student_notebooks(folder, [chapter])
        except ValueError as error:  # a leak or an unknown solution form: hand out nothing
            (sources / chapter.name).unlink(missing_ok=True)
            logger.warning(f"[edition] {chapter.name} is not offered for download: {error}")
            continue
        if (sources / chapter.name).exists():  # a chapter of the table of contents
            shutil.copyfile(written[0], sources / chapter.name)
    logger.info(f"[edition] {len(chapters)} student notebooks in {sources}")


def setup(app: Sphinx) -> dict[str, Any]:
    edition()  # a misspelt edition fails the build at once, with the editions it knows
    app.add_config_value("student_edition", False, "env")
    app.connect("config-inited", share_the_execution_cache, priority=900)
    app.connect("doctree-read", remove_solutions, priority=100)
    app.connect("build-finished", hand_out_student_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
