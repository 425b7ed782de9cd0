"""Small fixes to the HTML that Sphinx and its extensions write, applied to every page.

- Each inline script appears once. sphinx-thebe's configuration script (`const THEBE_JS_URL
  = ...`) is registered twice during a build, and the second copy stops with "Identifier
  'THEBE_JS_URL' has already been declared" in the browser console.
- The bibliography's entries are list items. docutils writes `<div role="list">` around
  entries with the deprecated `role="doc-biblioentry"`, which screen readers (and axe-core, as
  a critical violation) read as a list without items.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_duplicate_scripts(scripts: list) -> None:
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = (
            getattr(script, "filename", script) or "",
            tuple(sorted(getattr(script, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def fix_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if isinstance(context.get("script_files"), list):
        _drop_duplicate_scripts(context["script_files"])
    if "body" in context and 'role="doc-biblioentry"' in context["body"]:
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", fix_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
