"""A small Sphinx extension for the book's teaching kit (registered in `_config.yml`).

While the book builds it

- writes the student notebooks (`student_notebooks.py`) and zips them; the `{student-notebooks}`
  role links the zip;
- executes every student notebook at the smoke budget (`AEVB_SMOKE=1`; as many at once as the
  chapters, `parallel_notebooks`) with jupyter-cache in `_build/.smoke_cache`, so a notebook runs
  again only when its code changes; a notebook that fails is a build warning (an error under
  `-W`);
- offers each chapter's *executed* notebook (its outputs from the execution cache) as a
  download: an "executed .ipynb" entry in the page's download menu;
- fills the `{chapter-times}` directive with a table of the chapters' measured running times;
- turns the Binder and Colab launch buttons on only when `repository.url` is set;
- once every chapter has run, rewrites the zip and the executed downloads as plain-Jupyter
  notebooks (`plain_notebooks.py`): glued values in the text, no MyST, an install cell first.
"""

from __future__ import annotations

import os
import platform
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nbformat
from docutils import nodes
from jupyter_cache import get_cache
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.addnodes import download_reference
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

# The command-line tools in tools/ do the work; this extension runs them during the build.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from parallel_execution import run_notebooks, stale_notebooks, worker_count  # noqa: E402
from plain_notebooks import (  # noqa: E402
    BuildContext,
    PlainNotebookError,
    build_context,
    plain_for_build,
)
from student_notebooks import (  # noqa: E402
    SolutionLeakError,
    UnrecognizedSolutionError,
    write_student_notebooks,
)

logger = logging.getLogger(__name__)

STUDENT_ZIP = "aevb-student-notebooks.zip"
SMOKE_TIMEOUT_S = 600
HAS_TIMES_KEY = "has_chapter_times"

STUDENT_README = """\
# AEVB, Annotated: student notebooks

The chapters of the book with the solutions removed and no outputs, written for plain Jupyter,
JupyterLab or Colab: the numbers the text quotes are those of the book's build, and the first
cell of each notebook installs the book's small package, `aevb_utils`, when it is missing (it
does nothing where it is installed, e.g. after `pip install -r requirements.txt` in a clone).

Data are downloaded on first use. For a lab without internet, run
`python -m aevb_utils fetch DATA` once on a machine with internet, copy the folder DATA to each
machine and set `AEVB_DATA_DIR=/path/to/DATA AEVB_OFFLINE=1` before starting Jupyter.
`AEVB_SMOKE=1` runs every chapter with a tiny training budget.
"""


def _build_dir(app: Sphinx) -> Path:
    return Path(app.outdir).parent


def _student_dir(app: Sphinx) -> Path:
    return _build_dir(app) / "teaching" / "student-notebooks"


def _chapter_notebooks(app: Sphinx) -> list[Path]:
    return sorted((Path(app.srcdir) / "notebooks").glob("*.ipynb"))


# --- launch buttons: a one-line switch -------------------------------------------------------


def launch_buttons_follow_repository(app: Sphinx, config: Any) -> None:
    """Without `repository.url` the theme cannot build launch links: switch them off."""
    options = config.html_theme_options
    if not options.get("repository_url"):
        options["launch_buttons"] = {}


# --- student notebooks and their smoke-budget running times ------------------------------------


def write_student_zip(app: Sphinx, plain: BuildContext | None = None) -> None:
    """Write the student notebooks and `_build/teaching/aevb-student-notebooks.zip` (given the
    build's context, the zip holds their plain-Jupyter copies)."""
    folder = _student_dir(app)
    for old in folder.glob("*.ipynb"):
        old.unlink()
    written = []
    for chapter in _chapter_notebooks(app):
        try:
            written += write_student_notebooks(folder, [chapter])
        except (SolutionLeakError, UnrecognizedSolutionError) as error:  # an error under -W
            logger.warning(f"[teaching] no student notebook for {chapter.name}: {error}")
    with zipfile.ZipFile(folder.parent / STUDENT_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("aevb-student-notebooks/README.md", STUDENT_README)
        for path in written:
            notebook = nbformat.read(path, as_version=4)
            if plain:
                notebook = plain_for_build(app, notebook, f"notebooks/{path.stem}", True, plain)
            archive.writestr(f"aevb-student-notebooks/{path.name}", nbformat.writes(notebook))
    logger.info(f"[teaching] {len(written)} student notebooks in {folder.parent / STUDENT_ZIP}")


def run_student_notebooks_at_smoke_budget(app: Sphinx) -> None:
    """Execute the student notebooks with AEVB_SMOKE=1 (cached) and record their times."""
    app.env.teaching_smoke_seconds = {}  # type: ignore[attr-defined]
    if not app.config.teaching_smoke_times:
        return
    # in the source's _build/, whatever --path-output says: the student edition shares it
    cache_path = str(Path(app.srcdir) / "_build" / ".smoke_cache")
    cache = get_cache(cache_path)
    paths = sorted(_student_dir(app).glob("*.ipynb"))
    for record in cache.list_project_records():
        if not Path(record.uri).exists():
            cache.remove_nb_from_project(record.uri)
    stale = stale_notebooks(cache_path, paths)
    if stale:
        failed = run_notebooks(
            stale, cache_path, workers=worker_count(app, len(stale)), timeout=SMOKE_TIMEOUT_S,
            environment={"AEVB_SMOKE": "1"},
        )
        for path, traceback in failed.items():
            logger.warning(
                f"[teaching] the student notebook {path.name} fails at the smoke budget:\n"
                f"{traceback[-2000:]}"
            )
    for path in paths:
        try:
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            continue
        app.env.teaching_smoke_seconds[path.stem] = record.data.get("execution_seconds")


# --- executed notebooks as downloads ---------------------------------------------------------


def _executed_notebook(app: Sphinx, docname: str) -> Path:
    return _build_dir(app) / "teaching" / "executed" / f"{docname}.ipynb"


def _with_outputs(app: Sphinx, docname: str) -> nbformat.NotebookNode | None:
    """The chapter with the outputs of this build, from the execution cache.

    (myst-nb's own copy in `_build/jupyter_execute` lacks the outputs when they came from the
    cache, so the cache is asked directly; other execution modes write outputs there.)
    """
    notebook = nbformat.read(app.env.doc2path(docname), as_version=4)
    cache_path = app.env.mystnb_config.execution_cache_path
    if cache_path and Path(cache_path).exists():
        try:
            return get_cache(str(cache_path)).merge_match_into_notebook(notebook)[1]
        except KeyError:
            pass
    written = _build_dir(app) / "jupyter_execute" / f"{docname}.ipynb"
    return nbformat.read(written, as_version=4) if written.exists() else None


def register_executed_notebook(app: Sphinx, doctree: nodes.document) -> None:
    """Write the executed chapter and ask Sphinx to copy it to `_downloads/`."""
    env = app.env
    if not str(env.doc2path(env.docname)).endswith(".ipynb"):
        return
    if getattr(app.config, "student_edition", False):
        return  # the student edition hands out the student notebooks only (student_edition.py)
    notebook = _with_outputs(app, env.docname)
    code_cells = [cell for cell in (notebook.cells if notebook else []) if cell.cell_type == "code"]
    if not any(cell.get("outputs") for cell in code_cells):
        logger.warning("[teaching] no executed notebook with outputs", location=env.docname)
        return
    executed = _executed_notebook(app, env.docname)
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed)
    env.dlfiles.add_file(env.docname, os.path.relpath(executed, app.srcdir))


def write_plain_downloads(app: Sphinx, builder: Any) -> None:
    """Every chapter has run and Sphinx has numbered everything (`write-started`): the zip and
    the executed downloads become plain-Jupyter copies."""
    env = app.env
    try:
        context = build_context(app, lambda page: _with_outputs(app, page))
        write_student_zip(app, plain=context)
        for docname in sorted(env.found_docs):
            notebook = _with_outputs(app, docname) if docname.startswith("notebooks/") else None
            if notebook is not None and _executed_notebook(app, docname).exists():
                plain = plain_for_build(app, notebook, docname, False, context)
                nbformat.write(plain, _executed_notebook(app, docname))
    except PlainNotebookError as error:
        logger.warning(f"[teaching] no plain-Jupyter downloads: {error}")


def add_executed_download_button(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """Put "executed .ipynb" first in the theme's download menu of a chapter page."""
    executed = os.path.relpath(_executed_notebook(app, pagename), app.srcdir)
    if executed not in app.env.dlfiles:
        return
    url = f"{context['pathto']('_downloads', 1)}/{app.env.dlfiles[executed][1]}"
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"].insert(
                0,
                {
                    "type": "link",
                    "url": url,
                    "text": "executed .ipynb",
                    "tooltip": "Download the notebook with the outputs of this build",
                    "icon": "fas fa-code",
                    "label": "download-executed-notebook-button",
                },
            )
    context["executed_notebook_url"] = url


# --- the {student-notebooks} role and the {chapter-times} directive ----------------------------


class StudentNotebooksRole(SphinxRole):
    """`{student-notebooks}` is a download link to the zip of student notebooks."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        path = _build_dir(self.env.app) / "teaching" / STUDENT_ZIP
        target = "/" + os.path.relpath(path, self.env.srcdir)
        node = download_reference(self.rawtext, reftarget=target)
        node += nodes.literal(self.rawtext, self.text or STUDENT_ZIP, classes=["download"])
        return [node], []


class ChapterTimesNode(nodes.General, nodes.Element):
    """Placeholder for the table of running times, filled once every chapter has run."""


class ChapterTimesDirective(SphinxDirective):
    """`{chapter-times}`: each chapter's running time in this build and at the smoke budget."""

    def run(self) -> list[nodes.Node]:
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, HAS_TIMES_KEY, True)
        return [ChapterTimesNode()]


def pages_with_times(app: Sphinx, env: Any) -> list[str]:
    """Rewrite the pages with a times table in every build: chapter times may have changed."""
    return [
        docname
        for docname, data in NbMetadataCollector.get_doc_data(env).items()
        if data.get(HAS_TIMES_KEY)
    ]


def build_machine() -> str:
    """The processor, its logical CPUs and the versions the times were measured with."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()}, "
            f"Python {platform.python_version()}, torch {version('torch')}")


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


class ChapterTimesTransform(SphinxPostTransform):
    default_priority = 8

    def run(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(ChapterTimesNode)):
            node.replace_self(self.table())

    def table(self) -> nodes.table:
        env = self.env
        smoke_build = os.environ.get("AEVB_SMOKE", "0").lower() in ("1", "true", "yes")
        headers = [
            "chapter",
            "this build ({} budget), s".format("smoke" if smoke_build else "full"),
            "student notebook, smoke budget, s",
        ]
        smoke = getattr(env, "teaching_smoke_seconds", {})
        rows = []
        for docname in sorted(env.found_docs):
            if not docname.startswith("notebooks/"):
                continue
            exec_data = NbMetadataCollector.get_exec_data(env, docname) or {}
            title = nodes.reference(
                "",
                env.titles[docname].astext(),
                internal=True,
                refuri=self.app.builder.get_relative_uri(env.docname, docname),
            )
            rows.append(
                [
                    title,
                    nodes.Text(_seconds(exec_data.get("runtime"))),
                    nodes.Text(_seconds(smoke.get(docname.split("/")[-1]))),
                ]
            )
        # Sphinx numbers titled tables; a node made after parsing needs its own id.
        table = nodes.table(classes=["chapter-times"], ids=["chapter-running-times"])
        table += nodes.title("", f"Measured on the machine that built this page: {build_machine()}")
        group = nodes.tgroup(cols=len(headers))
        table += group
        group += [nodes.colspec(colwidth=1) for _ in headers]
        head = nodes.thead()
        body = nodes.tbody()
        group += [head, body]
        for cells, parent in [(headers, head)] + [(row, body) for row in rows]:
            row_node = nodes.row()
            for cell in cells:
                entry = nodes.entry()
                entry += nodes.paragraph("", "", cell if isinstance(cell, nodes.Node)
                                         else nodes.Text(cell))
                row_node += entry
            parent += row_node
        return table


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("teaching_smoke_times", True, "env")
    app.connect("config-inited", launch_buttons_follow_repository)
    app.connect("builder-inited", write_student_zip)
    app.connect("builder-inited", run_student_notebooks_at_smoke_budget, priority=600)
    app.connect("doctree-read", register_executed_notebook)
    app.connect("html-page-context", add_executed_download_button, priority=600)
    app.connect("env-updated", pages_with_times)
    app.connect("write-started", write_plain_downloads)
    app.add_role("student-notebooks", StudentNotebooksRole())
    app.add_node(ChapterTimesNode)
    app.add_directive("chapter-times", ChapterTimesDirective)
    app.add_post_transform(ChapterTimesTransform)
    return {"version": "0.1", "parallel_read_safe": False, "parallel_write_safe": True}
