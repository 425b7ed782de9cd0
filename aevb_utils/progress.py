"""Where `fit` draws its progress bar: one line updated in place in a Jupyter kernel (so the
executed notebook and the built book keep only its final state), standard output elsewhere."""

from __future__ import annotations

import sys
from typing import TextIO


class LiveLine:
    """A file for tqdm that shows its bar as one line of a notebook output, updated in place.

    tqdm redraws with carriage returns, which an executed notebook stores as one line per
    redraw; an updated display keeps only the latest line, in Jupyter and in the built book.
    """

    encoding = "utf-8"  # tqdm then draws its bar with block characters, not with "#"

    def __init__(self) -> None:
        from IPython.display import Pretty, display

        self._pretty = Pretty
        self._handle = display(Pretty(""), display_id=True)

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self._handle.update(self._pretty(line))

    def flush(self) -> None:
        pass


def progress_stream() -> LiveLine | TextIO:
    """A live line in a Jupyter kernel, else standard output."""
    try:
        from IPython import get_ipython
    except ImportError:
        return sys.stdout
    shell = get_ipython()
    return LiveLine() if shell is not None and hasattr(shell, "kernel") else sys.stdout
