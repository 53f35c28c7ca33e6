"""``pip install .`` gives the library and a ``dfd`` command that works from any folder.

The install is real but cheap: the package's files are copied to a temporary folder and installed with
``pip install --no-deps --no-build-isolation --target`` (no download, no dependencies: they are the ones
already installed), then the installed ``bin/dfd`` runs ``--help`` from another folder.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _meta() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_pyproject_declares_the_dependencies_and_the_dfd_command():
    meta = _meta()
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert meta["project"]["dependencies"] == requirements, "pyproject.toml and requirements.txt disagree"
    dev = [re.sub(r"\s+#.*$", "", line).strip() for line in (REPO / "requirements-dev.txt").read_text().splitlines()]
    for extra, needs in meta["project"].get("optional-dependencies", {}).items():
        missing = [n for n in needs if n not in dev]
        assert not missing, f"requirements-dev.txt lacks the {extra!r} extra's {missing}: its tests would not run in CI"
    assert meta["project"]["optional-dependencies"]["scale"] == ["ray[data]==2.60.*"]
    assert meta["project"]["scripts"] == {"dfd": "dfd.cli:main"}
    module, name = meta["project"]["scripts"]["dfd"].split(":")
    assert callable(getattr(importlib.import_module(module), name))
    assert meta["tool"]["setuptools"]["packages"] == ["dfd"], "only the library is installed"
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"


def test_python_m_dfd_help_runs_from_any_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dfd", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m dfd")


@pytest.mark.slow
def test_pip_install_gives_a_dfd_command(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "dfd", src / "dfd", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, src / name)
    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "dfd"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([str(site / "bin" / "dfd"), "--help"], cwd=elsewhere, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(site)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: dfd ") and "cross-dataset" in proc.stdout
