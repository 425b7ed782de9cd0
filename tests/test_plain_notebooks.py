"""Plain-Jupyter notebooks (tools/plain_notebooks.py): no MyST left, glued values written in,
an install cell that is idempotent, on the real chapters."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from myst_nb.core.variables import format_plain_text
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from plain_notebooks import (  # noqa: E402
    INSTALL_TAG,
    BuildContext,
    PlainNotebookError,
    book_from_notebooks,
    build_context,
    glued_values,
    left_over_myst,
    main,
    online_book_url,
    package_spec,
    plain_for_build,
    plain_notebook,
)
from student_notebooks import student_notebook  # noqa: E402

CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FAST_CHAPTER = ROOT / "notebooks" / "01_em.ipynb"
BOOK_URL = "https://owner.github.io/aevb"


@pytest.fixture(scope="module")
def book():
    return book_from_notebooks(CHAPTERS, url=BOOK_URL)


GLUED = re.compile(r"\{glue:text\}`([\w-]+)(?::([^`]*))?`")


@pytest.fixture(scope="module")
def executed_fast_chapter() -> nbformat.NotebookNode:
    """Chapter 1 with outputs as the build's cache holds them: its code cells and one more that
    glues, with myst-nb's `glue` (what `au.glue` calls in the build), a distinct number for every
    name its text uses (executing the whole chapter would double the time its nbval test takes)."""
    notebook = nbformat.read(FAST_CHAPTER, as_version=4)
    names = sorted(set(GLUED.findall(markdown_of(notebook))))
    lines = ["from myst_nb import glue"] + [
        f"glue({name!r}, {1000 + index}.125, display={index % 2 == 0})"  # both output forms
        for index, (name, _) in enumerate(names)
    ]
    executed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("\n".join(lines))])
    NotebookClient(executed, timeout=120, kernel_name="python3").execute()
    notebook.cells.append(executed.cells[0])
    return notebook


class AnyValue(defaultdict):
    """Glue for chapters not executed here: every page has every name, with a number."""

    def __init__(self, depth: int = 2):
        super().__init__(lambda: AnyValue(1) if depth == 2 else {"text/plain": "0.25"})

    def __contains__(self, key):
        return True

    def get(self, key, default=None):
        return self[key]


def markdown_of(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def convert(path: Path, book, glue, student: bool = False, package=None):
    notebook = nbformat.read(path, as_version=4)
    if student:
        notebook = student_notebook(notebook, path.name).notebook
    return plain_notebook(notebook, glue=glue, book=book, page=f"notebooks/{path.stem}",
                          source=path, budget="smoke", package=package, student=student)


def test_glued_values_of_an_executed_chapter_are_written_into_the_text(
    executed_fast_chapter, book
):
    glue = {"notebooks/01_em": glued_values(executed_fast_chapter)}
    source = markdown_of(nbformat.read(FAST_CHAPTER, as_version=4))
    uses = sorted(set(GLUED.findall(source)))
    assert uses and {name for name, _ in uses} == set(glue["notebooks/01_em"])
    for student in (True, False):  # the full edition (with solutions) is checked below
        plain = convert(FAST_CHAPTER, book, glue, student=student)
        text = markdown_of(plain)
        assert left_over_myst(text) == []
        for forbidden in ("{glue", ":::{", "{eq}", "{numref}", "{ref}", "{cite}"):
            assert forbidden not in text
    # each role is replaced by its own value, formatted as the book formats it
    for name, spec in uses:
        value = format_plain_text(glue["notebooks/01_em"][name]["text/plain"], spec)
        assert value in text, (name, spec, value)
    first = next(name for name, spec in uses if spec == "")
    sentence = next(line for line in source.splitlines() if f"`{first}`" in line)
    assert sentence.replace(f"{{glue:text}}`{first}`", glue["notebooks/01_em"][first][
        "text/plain"]).split("{")[0] in text
    assert "`AEVB_SMOKE=1`" in plain.cells[1].source and "tiny smoke" in plain.cells[1].source
    assert "\\newcommand{\\KL}" in plain.cells[1].source  # the book's macros, for MathJax


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
@pytest.mark.parametrize("student", [False, True], ids=["full", "student"])
def test_every_chapter_converts_to_plain_markdown(chapter, student, book):
    plain = convert(chapter, book, AnyValue(), student=student)
    text = markdown_of(plain)
    assert left_over_myst(text) == []
    for forbidden in ("{glue", ":::{", "```{", "{eq}", "{numref}", "{ref}", "{cite}", ")=\n"):
        assert forbidden not in text, forbidden
    source = markdown_of(nbformat.read(chapter, as_version=4))
    exercises = len(re.findall(r"^:::\{exercise\}", source, re.M))
    number = CHAPTERS.index(chapter) + 1
    assert len(re.findall(rf"^#### Exercise {number}\.\d+", text, re.M)) == exercises
    solutions = len(re.findall(rf"<summary>Solution to Exercise {number}\.\d+</summary>", text))
    assert solutions == (0 if student else len(re.findall(r"\{solution\}", source)))
    assert text.count("\\tag{") == len(re.findall(r"\$\$ \([\w-]+\)", source))
    # the code is untouched
    code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"]  # noqa: E731
    original = nbformat.read(chapter, as_version=4)
    if student:
        original = student_notebook(original, chapter.name).notebook
    assert code(plain)[1:] == code(original)


def test_numbers_and_links_follow_the_book(book):
    assert book.targets["chap-em"].text == "Latent variable models and the EM algorithm"
    for chapter, path in enumerate(CHAPTERS, start=1):  # as the book numbers them: "2.3"
        numbers = [t.text.split()[1] for t in book.targets.values()
                   if t.text.startswith("Exercise") and t.page == f"notebooks/{path.stem}"]
        assert numbers == [f"{chapter}.{n}" for n in range(1, len(numbers) + 1)]
    assert book.targets["eq-em-evidence"].text.startswith("(1.")
    plain = convert(ROOT / "notebooks" / "02_approximate_em.ipynb", book, AnyValue())
    text = markdown_of(plain)
    assert f"]({BOOK_URL}/notebooks/01_em.html)" in text  # {ref}`chap-em`
    assert "(Dempster et al. 1977)" in markdown_of(convert(FAST_CHAPTER, book, AnyValue()))
    assert "def fit(" in text  # the literalinclude, as code


def test_unknown_myst_is_an_error(book):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(":::{margin}\nA note.\n:::\n")
    ])
    with pytest.raises(PlainNotebookError, match=r"\{margin\}"):
        plain_notebook(notebook, glue={}, book=book, page="x", source=FAST_CHAPTER,
                       budget="full", package=None)
    notebook.cells[0].source = "A {glue:text}`missing:.2f` value."
    with pytest.raises(PlainNotebookError, match="no glued value 'missing' of x"):
        plain_notebook(notebook, glue={}, book=book, page="x", source=FAST_CHAPTER,
                       budget="full", package=None)


def test_the_install_cell_comes_first_once_and_is_idempotent(book, tmp_path):
    spec = package_spec("https://github.com/owner/aevb")
    assert spec == "git+https://github.com/owner/aevb@main"
    plain = convert(FAST_CHAPTER, book, AnyValue(), student=True, package=spec)
    again = plain_notebook(plain, glue=AnyValue(), book=book, page="notebooks/01_em",
                           source=FAST_CHAPTER, budget="smoke", package=spec, student=True)
    for notebook in (plain, again):
        tagged = [c for c in notebook.cells if INSTALL_TAG in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and notebook.cells[0] is tagged[0]
    assert len(again.cells) == len(plain.cells)
    # run twice where the package is installed: nothing is installed, nothing fails
    cell = plain.cells[0].source
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", cell], capture_output=True, text=True,
                                cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "pip" not in result.stdout + result.stderr
    # where it is missing (no site-packages) and no address is known, it says how to install it
    plain_none = convert(FAST_CHAPTER, book, AnyValue(), student=True, package=None)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", plain_none.cells[0].source], capture_output=True,
        text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode != 0
    assert "pip install -r requirements.txt" in result.stderr


def test_the_command_line(executed_fast_chapter, tmp_path):
    executed = tmp_path / "01_em.ipynb"
    notebook = copy.deepcopy(executed_fast_chapter)
    # The fixture's extra cell glues every name, solutions' too: as a kept cell it would be a
    # leak that the student copy refuses, so it stands where such glue belongs, in a solution.
    notebook.cells[-1].metadata["tags"] = ["solution", "hide-input"]
    nbformat.write(notebook, executed)
    assert main([str(tmp_path / "out"), str(executed), "--student", "--budget", "smoke"]) == 0
    written = nbformat.read(tmp_path / "out" / "01_em.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in written.cells if cell.cell_type == "code")
    assert "{solution" not in markdown_of(written) and "{glue" not in markdown_of(written)


def fake_sphinx(url: str = "", fignumbers: dict | None = None) -> SimpleNamespace:
    """The parts of a Sphinx application the build's plain copies read."""
    docs = {f"notebooks/{path.stem}" for path in CHAPTERS}
    env = SimpleNamespace(found_docs=docs | {"book/preface"},
                          doc2path=lambda name: ROOT / f"{name}.ipynb",
                          toc_fignumbers=fignumbers or {})
    config = SimpleNamespace(html_theme_options={"repository_url": url,
                                                 "repository_branch": "student"},
                             html_baseurl="")
    return SimpleNamespace(config=config, env=env, srcdir=str(ROOT))


def test_the_build_context_uses_sphinx_s_numbers_and_the_repository():
    assert online_book_url({"repository_url": "https://github.com/Owner/aevb-book"}) == (
        "https://owner.github.io/aevb-book")
    assert online_book_url({"repository_url": ""}, "https://book.example.org/") == (
        "https://book.example.org")
    assert online_book_url({"repository_url": "https://gitlab.com/o/r"}) == ""
    fignumbers = {"notebooks/01_em": {"exercise": {"ex-em-elbo-forms": (7,)},
                                      "displaymath": {"equation-eq-em-evidence": (11,)}}}
    app = fake_sphinx("https://github.com/owner/aevb", fignumbers)
    context = build_context(app, lambda page: None)
    assert context.book.targets["ex-em-elbo-forms"].text == "Exercise 7"
    assert context.book.targets["eq-em-evidence"].text == "(11)"
    assert context.package == "git+https://github.com/owner/aevb@student"
    assert context.book.url == "https://owner.github.io/aevb"
    plain = plain_for_build(app, nbformat.read(FAST_CHAPTER, as_version=4), "notebooks/01_em",
                            False, BuildContext(context.book, AnyValue(), "full", None))
    text = markdown_of(plain)
    assert "#### Exercise 7" in text and "(11)" in text and "full training budget" in text
