"""Binder, the launch buttons and the Pages workflow: what can be checked without a network."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def pins(path: Path) -> dict[str, Requirement]:
    """The requirements of a requirements file, by normalized name (options and -e skipped)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def pinned_version(requirement: Requirement) -> Version:
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", requirement
    return Version(specifier.version)


def test_python_version_is_what_the_pins_need():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    assert "Python 3.11 or newer" in (ROOT / "README.md").read_text()


def test_binder_installs_what_the_package_needs_at_the_book_s_versions():
    binder, book = pins(BINDER / "requirements.txt"), pins(ROOT / "requirements.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {canonicalize_name(Requirement(dep).name) for dep in project["dependencies"]}
    assert needed <= set(binder), needed - set(binder)
    for name, requirement in binder.items():
        version = pinned_version(requirement)
        if name in book:
            assert version.public == pinned_version(book[name]).public, name
    assert pinned_version(binder["torch"]).local == "cpu"  # Binder has no GPU
    assert "download.pytorch.org/whl/cpu" in (BINDER / "requirements.txt").read_text()
    assert "jupyterlab-myst" in binder and "jupyterlab-myst" in book


def test_binder_scripts_are_valid_shell_and_executable():
    for name in ("postBuild", "start"):
        script = BINDER / name
        assert os.access(script, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(script)], check=True)
    post_build = (BINDER / "postBuild").read_text()
    assert re.search(r"pip install --no-deps \.$", post_build, re.M)
    assert 'python -m aevb_utils fetch "$HOME/.aevb-data"' in post_build


def test_binder_sessions_default_to_the_smoke_budget_and_the_fetched_data(tmp_path):
    def session(**env: str) -> dict[str, str]:
        out = subprocess.run(
            [str(BINDER / "start"), "env"], capture_output=True, text=True, check=True,
            env={"HOME": str(tmp_path), "PATH": os.environ["PATH"], **env},
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    default = session()
    assert default["AEVB_SMOKE"] == "1" and default["AEVB_OFFLINE"] == "1"
    assert default["AEVB_DATA_DIR"] == f"{tmp_path}/.aevb-data"  # where postBuild fetched
    assert session(AEVB_SMOKE="0")["AEVB_SMOKE"] == "0"


def test_launch_buttons_open_the_branch_the_workflow_publishes():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    branch = config["repository"]["branch"]
    assert branch == "student"
    assert config["repository"]["url"] == ""  # the one-line switch, off until the address is set
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    publish = workflow["jobs"]["student-branch"]["steps"][-1]["run"]
    assert f"git checkout -B {branch}" in publish and f"origin {branch}" in publish
    assert "-d notebooks/" in publish


def test_pages_workflow_gate_and_concurrency():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    deploy = workflow["jobs"]["deploy"]
    assert deploy["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    assert "pull_request" in workflow["concurrency"]["cancel-in-progress"]
    steps = [step.get("run", step.get("uses", "")) for step in workflow["jobs"]["build"]["steps"]]
    gate = steps.index(".ci/check-site _build/html")
    upload = next(i for i, step in enumerate(steps) if "upload-pages-artifact" in step)
    assert gate < upload
    assert "tools/check_downloads.py" in (ROOT / ".ci" / "check-site").read_text()
    assert ".ci/check-site" in (ROOT / ".ci" / "run").read_text()
    assert "actionlint" in (ROOT / ".ci" / "run").read_text()
