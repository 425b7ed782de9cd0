"""Run the chapters that need executing side by side, before Sphinx reads them.

With `execute_notebooks: cache`, myst-nb executes each stale notebook while Sphinx reads it, one
after another. The chapters' networks are small: one thread runs them about as fast as two, so a
chapter keeps about one core busy. This extension runs up to one stale notebook per core at once
(`parallel_notebooks` in `_config.yml`), gives each kernel its share of the cores through
OMP_NUM_THREADS, and puts the results into the jupyter-cache where myst-nb then finds them. A
notebook that fails is a build warning (an error under `-W`); myst-nb then runs it again itself
and shows the error on its page.

`run_notebooks` is also used by `teaching.py` for the student notebooks at the smoke budget.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from aevb_utils.runtime import usable_cores

logger = logging.getLogger(__name__)


def _execute(path: str, timeout: int | None, allow_errors: bool, environment: dict[str, str]):
    """In a worker process: execute one notebook in its own folder, as myst-nb would."""
    os.environ.update(environment)  # the kernel started below inherits it
    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(
        notebook, cwd=str(Path(path).parent), timeout=timeout, allow_errors=allow_errors,
        meta_override=True,
    )
    return notebook, result.time, result.exc_string if result.err else None


def stale_notebooks(cache_path: str, paths: Iterable[Path]) -> list[Path]:
    """The notebooks whose code has no executed match in the cache."""
    cache = get_cache(cache_path)
    stale = []
    for path in paths:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            stale.append(path)
    return stale


def run_notebooks(
    paths: list[Path], cache_path: str, *, workers: int, timeout: int | None,
    allow_errors: bool = False, environment: dict[str, str] | None = None,
) -> dict[Path, str]:
    """Execute `paths` (in this order, `workers` at a time) into the jupyter-cache at
    `cache_path`. Returns the traceback of each notebook that failed."""
    threads = str(max(1, usable_cores() // workers))
    environment = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **(environment or {})}
    cache = get_cache(cache_path)
    failed = {}
    # "spawn": a fresh interpreter per worker, not a fork of Sphinx and its threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_execute, str(path), timeout, allow_errors, environment): path
            for path in paths
        }
        for future in as_completed(futures):
            path = futures[future]
            notebook, seconds, traceback = future.result()
            if traceback is not None:
                failed[path] = traceback
                continue
            record = cache.add_nb_to_project(str(path))
            cache.cache_notebook_bundle(
                CacheBundleIn(notebook, record.uri, data={"execution_seconds": seconds}),
                check_validity=False, overwrite=True,
            )
            logger.info(f"[parallel] {path.name}: executed in {seconds:.0f} s, {threads} thread(s)")
    return failed


def _order(paths: list[Path], srcdir: Path, first: list[str]) -> list[Path]:
    """The notebooks named in `first` (the longest) start first; the short ones fill the gaps."""
    rank = {str((srcdir / name).with_suffix(".ipynb")): i for i, name in enumerate(first)}
    return sorted(paths, key=lambda path: rank.get(str(path), len(rank)))


def worker_count(app: Sphinx, notebooks: int) -> int:
    """Notebooks run at once: `parallel_notebooks` (0: one per core), at most `notebooks`."""
    return min(app.config.parallel_notebooks or usable_cores(), notebooks)


def execute_stale_chapters(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> None:
    config = env.mystnb_config
    if config.execution_mode != "cache" or not config.execution_cache_path:
        return
    paths = [Path(env.doc2path(name)) for name in docnames]
    paths = [path for path in paths if path.suffix == ".ipynb"]
    stale = stale_notebooks(str(config.execution_cache_path), paths)
    workers = worker_count(app, len(stale))
    if workers < 2:
        return  # nothing to gain: myst-nb executes it as it reads it
    logger.info(f"[parallel] executing {len(stale)} notebooks, {workers} at a time")
    stale = _order(stale, Path(app.srcdir), app.config.parallel_notebooks_first)
    failed = run_notebooks(
        stale, str(config.execution_cache_path), workers=workers,
        timeout=config.execution_timeout, allow_errors=config.execution_allow_errors,
    )
    for path, traceback in failed.items():
        logger.warning(f"[parallel] {path.name} failed:\n{traceback[-3000:]}")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("parallel_notebooks", 0, "env")  # at most this many at once; 0: per core
    app.add_config_value("parallel_notebooks_first", [], "env")
    app.connect("env-before-read-docs", execute_stale_chapters)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
