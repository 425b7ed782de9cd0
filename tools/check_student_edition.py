"""Check that no solution reaches a built edition of the book.

    .venv/bin/python tools/check_student_edition.py _build/student/_build/html
    .venv/bin/python tools/check_student_edition.py --expect-solutions _build/html

looks, in every HTML page of the site and every notebook it offers for download, for

- a solution's markup: sphinx-exercise's `solution` admonition, a code cell tagged `solution`;
- a solution's text: any run of eight words of a chapter's solutions (its `{solution}` blocks and
  its cells tagged `solution`) that no chapter shows outside its solutions.

It prints the number of pages checked and the solutions found, and fails if any is found. With
`--expect-solutions` it checks the opposite (the full book must show its solutions), which shows
that the check can find what it looks for.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from student_notebooks import SOLUTION_TAG, _split_markdown  # noqa: E402

NGRAM = 8
MARKUP = re.compile(r'class="[^"]*\b(solution|tag_solution)\b[^"]*"')
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)


def words(text: str) -> list[str]:
    """Lower-case words of prose, math and markup left out."""
    text = MATH.sub(" ", text)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`|`[^`]*`", " ", text)  # roles and inline code
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


def ngrams(text: str) -> set[tuple[str, ...]]:
    found = words(text)
    return {tuple(found[i : i + NGRAM]) for i in range(len(found) - NGRAM + 1)}


def split_ngrams(chapter: Path) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """The eight-word runs of a chapter's solutions, and those of the rest of its text."""
    notebook = nbformat.read(chapter, as_version=4)
    solutions, elsewhere = [], []
    in_gated = False
    for cell in notebook.cells:
        if SOLUTION_TAG in cell.metadata.get("tags", []) or (
            cell.cell_type == "code" and in_gated
        ):
            solutions.append(cell.source)
        elif cell.cell_type == "markdown":
            kept, solution, _, in_gated = _split_markdown(cell.source, in_gated)
            solutions.append(solution)
            elsewhere.append(kept)
        else:
            elsewhere.append(cell.source)
    shown = "\n".join(elsewhere)
    # Inline code outside the solutions is shown on the page too: its words count as public.
    return ngrams("\n".join(solutions)), ngrams(shown) | ngrams(shown.replace("`", " "))


def secret_ngrams(chapters: list[Path]) -> set[tuple[str, ...]]:
    """Runs of solution text that no chapter shows outside its solutions."""
    split = [split_ngrams(chapter) for chapter in chapters]
    return set().union(*(solution for solution, _ in split)) - set().union(
        *(public for _, public in split)
    )


def page_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def find_solutions(site: Path) -> tuple[int, list[str]]:
    """Pages and downloads checked, and a line for each solution found in them."""
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    secret = secret_ngrams(chapters)
    found = []
    pages = sorted(site.rglob("*.html"))
    for page in pages:
        markup = MARKUP.search(page.read_text(encoding="utf-8"))
        if markup:
            found.append(f"{page.relative_to(site)}: solution markup {markup.group(0)!r}")
        leaked = ngrams(page_text(page)) & secret
        if leaked:
            found.append(f"{page.relative_to(site)}: solution text {' '.join(min(leaked))!r}")
    downloads = sorted(site.glob("_sources/**/*.ipynb"))
    downloads += sorted(site.glob("_downloads/**/*.ipynb"))
    for download in downloads:
        notebook = nbformat.read(download, as_version=4)
        tagged = [c for c in notebook.cells if SOLUTION_TAG in c.metadata.get("tags", [])]
        leaked = ngrams("\n".join(c.source for c in notebook.cells)) & secret
        if tagged or leaked:
            found.append(f"{download.relative_to(site)}: {len(tagged)} solution cells, "
                         f"{len(leaked)} runs of solution text")
    return len(pages) + len(downloads), found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built HTML folder")
    parser.add_argument("--expect-solutions", action="store_true",
                        help="fail unless solutions are found (the full book)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        print(f"error: {args.site} holds no built site (no index.html)", file=sys.stderr)
        return 1
    checked, found = find_solutions(args.site)
    pages = len(list(args.site.rglob("*.html")))
    for line in found[:20]:
        print(line)
    print(f"{pages} HTML pages and {checked - pages} notebooks checked: "
          f"{len(found)} with a solution")
    if args.expect_solutions:
        return 0 if found else 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
