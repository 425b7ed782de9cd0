"""The build's side-by-side execution of stale notebooks (book/_ext/parallel_execution.py)."""

import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from parallel_execution import _order, run_notebooks, stale_notebooks  # noqa: E402


def write_notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_stale_notebooks_run_side_by_side_into_the_cache(tmp_path):
    cache_path = str(tmp_path / "cache")
    paths = [write_notebook(tmp_path / f"nb{i}.ipynb", "import os",
                            f"print({i}, os.environ['OMP_NUM_THREADS'], os.environ['EXTRA'])")
             for i in range(2)]
    assert stale_notebooks(cache_path, paths) == paths
    failed = run_notebooks(paths, cache_path, workers=2, timeout=60, environment={"EXTRA": "x"})
    assert failed == {}
    assert stale_notebooks(cache_path, paths) == []  # myst-nb will find them in the cache
    cache = get_cache(cache_path)
    for i, path in enumerate(paths):
        record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
        assert record.data["execution_seconds"] > 0
        executed = cache.get_cache_bundle(record.pk).nb
        output = executed.cells[1].outputs[0]["text"].split()
        assert output[0] == str(i) and output[2] == "x"
        assert int(output[1]) >= 1  # each kernel is told its share of the cores


def test_a_failing_notebook_is_reported_and_not_cached(tmp_path):
    cache_path = str(tmp_path / "cache")
    good = write_notebook(tmp_path / "good.ipynb", "1 + 1")
    bad = write_notebook(tmp_path / "bad.ipynb", "raise ValueError('broken chapter')")
    failed = run_notebooks([good, bad], cache_path, workers=2, timeout=60)
    assert list(failed) == [bad] and "broken chapter" in failed[bad]
    assert stale_notebooks(cache_path, [good, bad]) == [bad]


def test_the_named_notebooks_start_first(tmp_path):
    paths = [tmp_path / "notebooks" / f"{name}.ipynb" for name in ("01_a", "02_b", "03_c", "04_d")]
    first = ["notebooks/04_d", "notebooks/02_b"]
    assert [p.stem for p in _order(paths, tmp_path, first)] == ["04_d", "02_b", "01_a", "03_c"]
