"""`glue`: hand a computed value to the book's prose, with or without myst-nb.

In the book build, myst-nb's `glue` stores the value so that `{glue:text}` roles in the Markdown
insert it. Where myst-nb is not installed (plain Jupyter, Colab) the notebook still runs: the value
is displayed when asked for, and otherwise kept only in the notebook's own variables.
"""

from __future__ import annotations

from typing import Any

try:
    from myst_nb import glue as _myst_glue
except ImportError:  # pragma: no cover - exercised by the fresh-environment test
    _myst_glue = None


def glue(name: str, variable: Any, display: bool = True) -> None:
    """Store `variable` under `name` for the prose (myst-nb); without myst-nb, display it."""
    if _myst_glue is not None:
        _myst_glue(name, variable, display=display)
    elif display:
        from IPython.display import display as show

        show(variable)
