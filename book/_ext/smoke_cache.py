"""Keep the outputs of a smoke-budget build apart from those of the full build.

jupyter-cache knows a notebook by its code only, and `AEVB_SMOKE=1` changes budgets, not code: a
smoke build would otherwise leave outputs that a later full build reuses as if they were the
book's. Under `AEVB_SMOKE=1` the build caches its executions in `_build/.jupyter_cache_smoke`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

from aevb_utils.runtime import is_smoke

SMOKE_CACHE = ".jupyter_cache_smoke"


def cache_smoke_builds_apart(app: Sphinx, config: Any) -> None:
    if is_smoke() and not config.nb_execution_cache_path:
        config.nb_execution_cache_path = str(Path(app.outdir).parent / SMOKE_CACHE)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", cache_smoke_builds_apart)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
