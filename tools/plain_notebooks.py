"""Chapter notebooks that read well in plain Jupyter, Colab and Binder (no MyST renderer).

    .venv/bin/python tools/plain_notebooks.py OUTDIR EXECUTED.ipynb [...] [--student]
        [--budget full|smoke] [--book-url URL] [--package SPEC]

The book's Markdown is MyST: glued numbers (`{glue:text}`), exercise and algorithm boxes,
labelled equations and cross-references, which plain Jupyter shows raw. A plain notebook has

- a first cell that installs the book's package `aevb_utils` when it is missing (and does nothing
  when it is there), then a note on the budget its numbers were computed at;
- every glued value written into the text, taken from an executed notebook (the build's
  execution cache);
- exercises as headed blocks ("Exercise 3"), solutions folded in `<details>` (or removed, in the
  student edition), algorithm boxes as headed numbered lists, an included source file as code;
- equation numbers as `\\tag`s, and `{eq}`, `{numref}`, `{ref}`, `{cite}` as text, linked to the
  online book when its address is known.

Anything MyST left over (a directive or role this module does not know) is an error, so that a
new construct in a chapter cannot slip into the notebooks raw. The book's build (the teaching
extension) writes the downloadable executed notebooks and the student zip with this module.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from myst_nb.core.variables import format_plain_text

ROOT = Path(__file__).resolve().parents[1]
GLUE_PREFIX = "application/papermill.record/"  # myst-nb's prefix for glue(..., display=False)
INSTALL_TAG = "install-aevb-utils"
BUDGET_TAG = "plain-notebook-note"

# A fenced directive: ```{name} args / :::{name} args, up to the same fence; nested fences of
# another length are part of its body.
DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>[^\n]*)\n"
    r"(?P<body>.*?)^(?P=fence)[ \t]*$\n?",
    re.S | re.M,
)
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>[^\n]*)\n?", re.M)
ROLE = re.compile(r"\{(?P<name>[\w:-]+)\}`(?P<text>[^`]*)`")
LABELLED_MATH = re.compile(
    r"\$\$(?P<math>(?:(?!\$\$).)+)\$\$[ \t]*\((?P<label>[\w-]+)\)", re.S
)
TARGET = re.compile(r"^\((?P<label>[\w-]+)\)=[ \t]*\n", re.M)
LEFT_OVER = {
    "a {glue...} role": re.compile(r"\{glue"),
    "a MyST directive": re.compile(r"^\s*(:{3,}|`{3,})\{", re.M),
    "a MyST role": re.compile(r"\{[\w:-]+\}`"),
    "a MyST target": re.compile(r"^\([\w-]+\)=\s*$", re.M),
}

INSTALL_CELL = '''\
# Installs the book's package `aevb_utils` (and what it needs) when this Python lacks it, as in
# Colab or a fresh Jupyter; where it is installed, this cell does nothing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("aevb_utils") is None:
    PACKAGE = {package!r}
    if PACKAGE is None:
        raise ModuleNotFoundError(
            "This notebook needs the book's package aevb_utils: in a clone of the book's "
            "repository run `pip install -r requirements.txt` (or `pip install .`)."
        )
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", PACKAGE])
    importlib.invalidate_caches()
'''


class PlainNotebookError(ValueError):
    """A chapter holds MyST this module cannot turn into plain Markdown, or a glued value is
    missing."""


# --- what the text refers to: glued values, labels, numbers, citations ----------------------------


Glue = Mapping[str, Mapping[str, dict]]  # page ("notebooks/01_em") -> name -> MIME bundle


def glued_values(executed: nbformat.NotebookNode) -> dict[str, dict]:
    """The values an executed notebook glued, by name: each a MIME bundle."""
    values = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record:
                prefix = record.get("mime_prefix", "")
                values[record["name"]] = {
                    key.removeprefix(prefix).removeprefix(GLUE_PREFIX): value
                    for key, value in output.get("data", {}).items()
                }
    return values


@dataclass
class Target:
    """Something the text can refer to: a chapter, an exercise, an algorithm or an equation."""

    page: str  # e.g. "notebooks/01_em" (the page of the online book)
    text: str  # "Exercise 3", "(12)", or a chapter's title
    anchor: str = ""  # the HTML id in the online book ("" for a chapter)


@dataclass
class Book:
    """Labels, numbers and citations of the whole book, and its online address (if known)."""

    targets: dict[str, Target] = field(default_factory=dict)
    citations: dict[str, str] = field(default_factory=dict)  # key -> "Author et al. 2014"
    macros: dict[str, str] = field(default_factory=dict)  # the book's LaTeX macros (\\E, \\KL)
    url: str = ""  # the online book, e.g. https://owner.github.io/repo

    def link(self, text: str, target: Target, here: str) -> str:
        """`text`, linked to the online book when the target is on another page."""
        if not self.url or target.page == here:
            return text
        anchor = f"#{target.anchor}" if target.anchor else ""
        return f"[{text}]({self.url.rstrip('/')}/{target.page}.html{anchor})"


NUMBERED = {"exercise": "Exercise", "prf:algorithm": "Algorithm"}


def book_from_notebooks(chapters: list[Path], root: Path = ROOT, url: str = "") -> Book:
    """The book's labels, numbered as the book numbers them ("Exercise 2.3", equation (2.5): the
    chapter's place in `chapters`, then the count within the chapter; the build uses Sphinx's own
    numbers), and its bibliography (book/references.bib)."""
    book = Book(url=url, citations=citations(root / "book" / "references.bib"),
                macros=book_macros(root / "_config.yml"))
    for chapter, path in enumerate(chapters, start=1):
        page = path.relative_to(root).with_suffix("").as_posix()
        notebook = nbformat.read(path, as_version=4)
        counters = {"equation": 0, **{kind: 0 for kind in NUMBERED}}
        for cell in notebook.cells:
            if cell.cell_type != "markdown":
                continue
            for match in TARGET.finditer(cell.source):
                heading = cell.source[match.end():].split("\n", 1)[0].lstrip("# ").strip()
                book.targets[match["label"]] = Target(page, heading)
            events = [(m.start(), "equation", m["label"]) for m in
                      LABELLED_MATH.finditer(cell.source)]
            for match in DIRECTIVE.finditer(cell.source):
                label = _options(match["body"])[0].get("label")
                if match["name"] in NUMBERED and label:
                    events.append((match.start(), match["name"], label))
            for _, kind, label in sorted(events):
                counters[kind] += 1
                number = f"{chapter}.{counters[kind]}"
                if kind == "equation":
                    book.targets[label] = Target(page, f"({number})", f"equation-{label}")
                else:
                    book.targets[label] = Target(page, f"{NUMBERED[kind]} {number}", label)
    return book


def book_macros(config: Path) -> dict[str, str]:
    """The LaTeX macros the book defines for MathJax (`_config.yml`), by name."""
    import yaml

    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    return settings["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]


def citations(bibfile: Path) -> dict[str, str]:
    """Author-year text of every entry of a BibTeX file ("Kingma and Welling 2014")."""
    from pybtex.database import parse_file

    texts = {}
    for key, entry in parse_file(str(bibfile)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(person.last_names).replace("{", "").replace("}", "")
                 for person in people]
        who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2
               else f"{names[0]} et al." if names else entry.fields.get("title", key))
        texts[key] = f"{who} {entry.fields.get('year', '')}".strip()
    return texts


# --- Markdown -------------------------------------------------------------------------------------


def _options(body: str) -> tuple[dict[str, str], str]:
    """A directive's `:key: value` lines (at its start) and the rest of its body."""
    options = {}
    while match := OPTION.match(body):
        options[match["key"]] = match["value"].strip()
        body = body[match.end():]
    return options, body.strip("\n")


def _included_code(argument: str, options: dict[str, str], source: Path) -> str:
    """The code a `{literalinclude}` shows: a whole file, or one function of it."""
    path = (source.parent / argument).resolve()
    text = path.read_text(encoding="utf-8")
    if "pyobject" in options:
        for node in ast.parse(text).body:
            if getattr(node, "name", None) == options["pyobject"]:
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                text = "\n".join(text.splitlines()[start - 1 : node.end_lineno])
                break
        else:
            raise PlainNotebookError(f"{path} has no top-level {options['pyobject']!r}")
    return f"```{options.get('language', 'python')}\n{text.rstrip()}\n```"


class Converter:
    """Turns the MyST of one chapter's Markdown cells into plain Markdown."""

    def __init__(self, book: Book, page: str, source: Path, glue: Glue, student: bool):
        self.book, self.page, self.source, self.glue, self.student = (
            book, page, source, glue, student
        )

    def target(self, label: str) -> Target:
        if label not in self.book.targets:
            raise PlainNotebookError(f"{self.page}: unknown label {label!r}")
        return self.book.targets[label]

    def directive(self, match: re.Match) -> str:
        name, argument = match["name"], match["arg"].strip()
        options, body = _options(match["body"])
        body = self.markdown(body)  # nested directives and roles
        if name == "exercise":
            title = self.target(options["label"]).text if "label" in options else "Exercise"
            return f"#### {title}" + (f": {argument}" if argument else "") + f"\n\n{body}\n"
        if name == "solution":
            if self.student:
                raise PlainNotebookError(f"{self.page}: a solution in a student notebook")
            of = self.target(argument).text if argument else "the exercise"
            return (f"<details>\n<summary>Solution to {of}</summary>\n\n{body}\n\n</details>\n")
        if name == "prf:algorithm":
            title = self.target(options["label"]).text if "label" in options else "Algorithm"
            return f"#### {title}" + (f": {argument}" if argument else "") + f"\n\n{body}\n"
        if name == "literalinclude":
            return _included_code(argument, options, self.source) + "\n"
        raise PlainNotebookError(f"{self.page}: no plain form for the directive {{{name}}}")

    def role(self, match: re.Match) -> str:
        name, text = match["name"], match["text"]
        if name == "glue:text" or name == "glue":
            doc, _, key = text.rpartition("::")  # `other.ipynb::key:format` glues from another page
            key, _, spec = key.partition(":")
            page = self.page if not doc else f"{Path(self.page).parent / Path(doc).stem}"
            values = self.glue.get(page, {})
            if key not in values or "text/plain" not in values[key]:
                raise PlainNotebookError(f"{self.page}: no glued value {key!r} of {page}")
            return format_plain_text(values[key]["text/plain"], spec)
        explicit = re.fullmatch(r"(?P<title>.*?)\s*<(?P<label>[\w-]+)>", text, re.S)
        label = explicit["label"] if explicit else text
        if name == "cite":
            keys = [key.strip() for key in text.split(",")]
            missing = [key for key in keys if key not in self.book.citations]
            if missing:
                raise PlainNotebookError(f"{self.page}: unknown citation(s) {missing}")
            return "(" + "; ".join(self.book.citations[key] for key in keys) + ")"
        if name in ("eq", "numref", "ref"):
            target = self.target(label)
            shown = target.text
            if explicit and name == "numref":
                shown = explicit["title"].replace("%s", target.text.split()[-1])
            elif explicit:
                shown = explicit["title"]
            return self.book.link(shown, target, self.page)
        raise PlainNotebookError(f"{self.page}: no plain form for the role {{{name}}}")

    def equation(self, match: re.Match) -> str:
        number = self.target(match["label"]).text.strip("()")
        return f"$${match['math'].rstrip()}\n\\tag{{{number}}}\n$$"

    def markdown(self, source: str) -> str:
        source = TARGET.sub("", source)
        source = DIRECTIVE.sub(self.directive, source)
        source = LABELLED_MATH.sub(self.equation, source)
        return ROLE.sub(self.role, source)


def left_over_myst(text: str) -> list[str]:
    """What MyST is left in `text` (empty when plain Jupyter can show all of it)."""
    return [what for what, pattern in LEFT_OVER.items() if pattern.search(text)]


def budget_note(budget: str, book: Book) -> str:
    """The note at the top: the budget of the numbers in the text; it also defines the book's
    LaTeX macros for the notebook's MathJax (the definitions show nothing)."""
    macros = " ".join(f"\\newcommand{{\\{name}}}{{{body}}}" for name, body in book.macros.items())
    where = f"the [online book]({book.url})" if book.url else "the online book"
    smoke = budget == "smoke"
    return (
        f"> **About the numbers in the text.** They were computed when {where} was built, at the "
        f"{'tiny smoke' if smoke else 'full'} training budget "
        f"(`AEVB_SMOKE={'1' if smoke else '0'}`), and written into this notebook. Running it "
        f"yourself recomputes every output; with `AEVB_SMOKE=1` (a tiny budget, for a quick run) "
        f"your outputs differ from the numbers in the text."
        + (f"\n\n${macros}$" if macros else "")
    )


def plain_notebook(
    notebook: nbformat.NotebookNode,
    *,
    glue: Glue,
    book: Book,
    page: str,
    source: Path,
    budget: str,
    package: str | None,
    student: bool = False,
) -> nbformat.NotebookNode:
    """A copy of a chapter `notebook` (a student copy, or one with outputs) in plain Markdown,
    with the install cell and the budget note first. `glue` holds the glued values of every
    executed page, by page: a chapter may quote another's (`{glue:text}` of `other.ipynb::key`)."""
    plain = nbformat.from_dict(nbformat.validator.normalize(notebook)[1])
    converter = Converter(book, page, source, glue, student)
    for index, cell in enumerate(plain.cells):
        if cell.cell_type != "markdown":
            continue
        cell.source = converter.markdown(cell.source)
        left = left_over_myst(cell.source)
        if left:
            raise PlainNotebookError(f"{page}, cell {index}: {', '.join(left)} is left")
    install = nbformat.v4.new_code_cell(INSTALL_CELL.format(package=package))
    install.metadata["tags"] = [INSTALL_TAG]
    note = nbformat.v4.new_markdown_cell(budget_note(budget, book))
    note.metadata["tags"] = [BUDGET_TAG]
    plain.cells = [install, note] + [
        cell for cell in plain.cells if INSTALL_TAG not in cell.metadata.get("tags", [])
        and BUDGET_TAG not in cell.metadata.get("tags", [])
    ]
    nbformat.validate(plain)
    return plain


def package_spec(repository_url: str, branch: str = "main") -> str | None:
    """What pip installs the book's package from: the repository, when its address is known."""
    return f"git+{repository_url.rstrip('/')}@{branch}" if repository_url else None


# --- in the book's build (called by the teaching extension) -------------------------------------


def online_book_url(theme_options: Mapping, baseurl: str = "") -> str:
    """The published book: `html_baseurl`, else GitHub Pages of a github.com repository."""
    if baseurl:
        return baseurl.rstrip("/")
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)/?",
                         theme_options.get("repository_url") or "")
    return f"https://{match[1].lower()}.github.io/{match[2]}" if match else ""


def _number_in_build(env, target: Target) -> str | None:
    """The number Sphinx gave a labelled equation, exercise or algorithm, where it kept one."""
    for numbers in getattr(env, "toc_fignumbers", {}).get(target.page, {}).values():
        if target.anchor in numbers:
            return ".".join(str(n) for n in numbers[target.anchor])
    return None


@dataclass
class BuildContext:
    """What every plain copy of one build shares: the book's labels and numbers, the glued values
    of every chapter, the budget and what the install cell installs."""

    book: Book
    glue: dict[str, dict[str, dict]]
    budget: str
    package: str | None


def build_context(app, executed: Callable[[str], nbformat.NotebookNode | None]) -> BuildContext:
    """The context of the book's build: the numbers Sphinx gave, the glued values of this build
    (`executed` gives a page's notebook with its outputs), the address of the online book."""
    from aevb_utils.runtime import is_smoke

    options = app.config.html_theme_options
    chapters = [Path(app.env.doc2path(name)) for name in sorted(app.env.found_docs)
                if name.startswith("notebooks/")]
    book = book_from_notebooks(chapters, Path(app.srcdir),
                               online_book_url(options, app.config.html_baseurl))
    for target in book.targets.values():
        number = _number_in_build(app.env, target) if target.anchor else None
        if number:
            kind = "" if target.text.startswith("(") else target.text.split()[0]
            target.text = f"{kind} {number}" if kind else f"({number})"
    glue = {}
    for path in chapters:
        page = path.relative_to(app.srcdir).with_suffix("").as_posix()
        with_outputs = executed(page)
        glue[page] = glued_values(with_outputs) if with_outputs else {}
    package = package_spec(options.get("repository_url") or "",
                           options.get("repository_branch") or "main")
    return BuildContext(book, glue, "smoke" if is_smoke() else "full", package)


def plain_for_build(app, notebook: nbformat.NotebookNode, docname: str, student: bool,
                    context: BuildContext) -> nbformat.NotebookNode:
    """The plain copy of a chapter (or of its student copy) in the book's build."""
    return plain_notebook(
        notebook, glue=context.glue, book=context.book, page=docname,
        source=Path(app.env.doc2path(docname)), budget=context.budget, student=student,
        package=context.package,
    )


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("executed", type=Path, nargs="+",
                        help="executed chapter notebooks (their glued values are used)")
    parser.add_argument("--student", action="store_true",
                        help="the student edition: solutions removed, outputs cleared")
    parser.add_argument("--budget", choices=["full", "smoke"], default="full",
                        help="the budget the executed notebooks ran at")
    parser.add_argument("--book-url", default="", help="the online book, for links")
    parser.add_argument("--package", default=None,
                        help="what the install cell pip-installs (e.g. git+https://...)")
    args = parser.parse_args(argv)
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    book = book_from_notebooks(chapters, url=args.book_url)
    args.outdir.mkdir(parents=True, exist_ok=True)
    executed_notebooks = {path: nbformat.read(path, as_version=4) for path in args.executed}
    glue = {f"notebooks/{path.stem}": glued_values(executed)
            for path, executed in executed_notebooks.items()}
    try:
        for path, executed in executed_notebooks.items():
            notebook = executed
            if args.student:
                sys.path.insert(0, str(ROOT / "tools"))
                from student_notebooks import student_notebook

                notebook = student_notebook(executed, path.name).notebook
            source = ROOT / "notebooks" / path.name
            plain = plain_notebook(
                notebook, glue=glue, book=book,
                page=f"notebooks/{path.stem}", source=source, budget=args.budget,
                package=args.package, student=args.student,
            )
            nbformat.write(plain, args.outdir / path.name)
            print(args.outdir / path.name)
    except PlainNotebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
