"""The package alone runs a chapter: a fresh virtual environment with only `aevb_utils`
installed (and what it depends on) executes a student notebook, as plain Jupyter or Colab would.

It installs from the package index (torch, numpy, ...: minutes), so it runs only when
`AEVB_FRESH_ENV=1`; CI runs it as a step of its own (.ci/run). The installed versions are those
pinned in requirements.txt (as constraints), so it tests the book's set of packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from plain_notebooks import book_from_notebooks, plain_notebook  # noqa: E402
from student_notebooks import student_notebook  # noqa: E402
from test_plain_notebooks import AnyValue  # noqa: E402

CHAPTER = ROOT / "notebooks" / "01_em.ipynb"

pytestmark = pytest.mark.skipif(
    os.environ.get("AEVB_FRESH_ENV") != "1",
    reason="installs from the package index (minutes); CI runs it with AEVB_FRESH_ENV=1",
)

CHECK_CELL = """\
import importlib.util, sys
import aevb_utils
assert importlib.util.find_spec("myst_nb") is None, "myst-nb is installed"
assert aevb_utils.__file__.startswith(sys.prefix), aevb_utils.__file__
print("aevb_utils from", sys.prefix)
"""


def constraints(path: Path) -> Path:
    """requirements.txt's pins without the editable install of the package itself."""
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    path.write_text("\n".join(pins) + "\n")
    return path


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Iterator[Path]:
    """A virtual environment (no system or parent packages) with the package installed from a
    copy of its sources."""
    base = tmp_path_factory.mktemp("fresh")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "aevb_utils", source / "aevb_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        # --no-compile: byte-compiling PyTorch's thousands of modules is most of an install's time
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", "-c",
         str(constraints(base / "constraints.txt")), str(source)],
        check=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    print(f"fresh environment: created and installed in {time.perf_counter() - start:.0f} s")
    yield venv
    shutil.rmtree(base, ignore_errors=True)  # a gigabyte, mostly PyTorch


def test_only_the_package_runs_a_student_notebook(fresh_venv, tmp_path, monkeypatch):
    python = fresh_venv / "bin" / "python"
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout
    assert "aevb-utils==" in listed and "myst-nb" not in listed and "jupyter-book" not in listed
    usage = subprocess.run([str(python), "-m", "aevb_utils"], capture_output=True, text=True)
    assert usage.returncode == 2 and "fetch DIR" in usage.stderr

    # the student notebook as the zip holds it: the install cell first, plain Markdown
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    notebook = plain_notebook(
        student_notebook(nbformat.read(CHAPTER, as_version=4), CHAPTER.name).notebook,
        glue=AnyValue(), book=book_from_notebooks(chapters), page="notebooks/01_em",
        source=CHAPTER, budget="smoke", package=None, student=True,
    )
    notebook.cells.insert(1, nbformat.v4.new_code_cell(CHECK_CELL))

    kernels = tmp_path / "kernels"
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(kernels),
                    "--name", "aevb-fresh"], check=True, capture_output=True)
    monkeypatch.setenv("JUPYTER_PATH", str(kernels / "share" / "jupyter"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("AEVB_SMOKE", "1")
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="aevb-fresh",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"fresh environment: {CHAPTER.name} (student, smoke budget) ran in "
          f"{time.perf_counter() - start:.0f} s")
    outputs = "".join(output.get("text", "") for output in notebook.cells[1].outputs)
    assert f"aevb_utils from {fresh_venv}" in outputs
    assert not [cell for cell in notebook.cells if cell.cell_type == "code"
                for output in cell.outputs if output.output_type == "error"]
