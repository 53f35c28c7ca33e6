"""Nothing a user runs touches the shipped runs, and every file of a run folder has a producer.

The commands are run as a user runs them (``python -m dfd ...`` with no ``--runs-dir``, from another
folder) on a copy of the package laid out as in the repository: ``<repo>/dfd``, and in ``<repo>/models/`` a
shipped-like run (a real tiny run with the shipped default's evidence files beside it). Afterwards
``<repo>/models/`` must be byte-identical, and everything written must be under ``<repo>/runs/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, SHARED_DATA, need

from dfd import DEFAULT_RUN, MODELS_DIR

DEFAULT_DIR = MODELS_DIR / DEFAULT_RUN


def tree_hash(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below ``folder`` (and the folders, so a new empty one shows)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def run_dfd(repo: Path, cwd: Path, *args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DFD_RUNS_DIR", "DFD_MODELS_DIR", "DFD_DATA")}
    full = {**clean, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "dfd", *map(str, args)], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, faces140k: Path) -> Path:
    """<tmp>/repo: a copy of the package and a shipped-like run ``models/shipped``."""
    from dfd import train

    root = tmp_path_factory.mktemp("store")
    repo = root / "repo"
    shutil.copytree(REPO / "dfd", repo / "dfd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    made = train.train(train.TrainConfig(data=str(faces140k), architecture="tiny", image_size=32, epochs=1, limit=24,
                                         runs_dir=str(root / "made"), name="shipped", patience=0))
    (repo / "models").mkdir()
    shipped = repo / "models" / "shipped"
    shutil.move(str(made), shipped)
    for f in DEFAULT_DIR.iterdir():  # the evidence files a shipped run carries (robustness, cross-dataset, ...)
        if f.is_file() and not (shipped / f.name).exists():
            shutil.copy2(f, shipped / f.name)
    return repo


@pytest.mark.slow
def test_commands_never_write_the_shipped_runs_and_every_run_file_has_a_producer(sandbox: Path, faces140k: Path):
    repo, cwd = sandbox, sandbox.parent
    data = need(SHARED_DATA)
    before = tree_hash(repo / "models")
    run_dfd(repo, cwd, "train", "--data", faces140k, "--architecture", "tiny", "--image-size", 32, "--epochs", 1,
            "--limit", 24, "--patience", 0, "--name", "shipped")  # a shipped run's name is never taken
    run_dfd(repo, cwd, "ensemble", "shipped", "shipped2", "--name", "ens")
    cal = run_dfd(repo, cwd, "calibrate", "shipped")
    ev = run_dfd(repo, cwd, "evaluate", "shipped", faces140k, "--limit", 8)
    rob = run_dfd(repo, cwd, "robustness", "shipped", data, "--limit", 4)
    rob2 = run_dfd(repo, cwd, "robustness", "shipped", data, "--limit", 4)
    cross = run_dfd(repo, cwd, "cross-dataset", "shipped", "shipped2", "--data", data, "--limit", 4)
    sizes = run_dfd(repo, cwd, "sizes", "shipped", data, "--limit", 2, "--sizes", 96, 384)
    exp = run_dfd(repo, cwd, "export", "shipped", "--kind", "float")
    listing = run_dfd(repo, cwd, "runs", "--csv", "-")
    run_dfd(repo, cwd, "card", "--compare", "shipped", "shipped2", "--csv", cwd / "runs_compared.csv")
    refused = subprocess.run([sys.executable, "-m", "dfd", "card", "--compare", "shipped", "--csv",
                              str(repo / "models" / "shipped" / "runs_compared.csv")], cwd=cwd, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(repo)}, timeout=300)
    assert refused.returncode == 1 and "never write" in refused.stderr
    assert tree_hash(repo / "models") == before, "a command wrote into models/"

    runs_dir = repo / "runs"
    assert {p.name for p in runs_dir.iterdir()} == {"shipped2", "ens", "shipped-calibrated", "_evals", "_exports"}
    assert (runs_dir / "shipped-calibrated" / "calibration.json").is_file()
    assert cal.stdout.strip().splitlines()[-1] == str(runs_dir / "shipped-calibrated" / "calibration.json")
    records = runs_dir / "_evals" / "shipped"
    assert Path(ev.stdout.strip().splitlines()[-1]) == records / "evaluate" / "faces-140k-mini-test"
    # an evaluation is a new record, never an overwrite; named by the datasets it scored, not the folder
    from dfd.evaluate import default_tag

    tag = default_tag([p.name for p in data.iterdir() if p.is_dir()], "test")
    assert tag.startswith("faces-140k-mini+lfw-faceswap+") and tag.endswith("-test")
    assert Path(rob.stdout.strip().splitlines()[-1]) == records / "robustness" / tag
    assert Path(rob2.stdout.strip().splitlines()[-1]) == records / "robustness" / f"{tag}2"
    assert Path(cross.stdout.strip().splitlines()[-1]) == records / "cross-dataset" / tag / "cross_dataset.csv"
    assert str(runs_dir / "_exports" / "shipped") in exp.stdout
    from dfd import runs

    assert Path(sizes.stdout.strip().splitlines()[-1]).parent == records / "sizes"
    assert all(col in sizes.stdout for col in ("native", "96 px", "384 px", "accuracy"))
    for kind in ("evaluate", "robustness", "cross-dataset", "sizes"):  # the documented file list is what is written
        for folder in (records / kind).iterdir():
            assert {f.name for f in folder.iterdir()} == set(runs.EVIDENCE_FILES[kind]), folder
    by_dataset = pd.read_csv(records / "robustness" / tag / "robustness_by_dataset.csv")
    assert set(by_dataset["dataset"]) == {p.name for p in data.iterdir() if p.is_dir()}
    assert (by_dataset["n"] == 4).all()
    pooled = pd.read_csv(records / "robustness" / tag / "robustness.csv")
    assert (pooled["n"] == 4).all(), "pooled over the datasets the run was trained on (faces-140k-mini only)"
    table = pd.read_csv(__import__("io").StringIO(listing.stdout))
    assert table.set_index("run")["kind"].to_dict() == {"shipped2": "user", "ens": "user",
                                                        "shipped-calibrated": "user", "shipped": "shipped"}

    # Every file of a shipped run folder is written by a command of the repo: those run above, and the
    # TFLite benchmark (bench/tflite.py --record, minutes of work: its documented output is taken here).
    written = {p.name for p in runs_dir.rglob("*") if p.is_file()} | {"runs_compared.csv"}
    written |= set(runs.EVIDENCE_FILES["bench/tflite.py RUN --record DIR"])
    shipped_files = {p.name for p in DEFAULT_DIR.iterdir() if p.is_file()}
    assert shipped_files <= written, f"no command writes {sorted(shipped_files - written)}"
    assert shipped_files <= set().union(*runs.EVIDENCE_FILES.values())

    # The new runs store image paths relative to their data folder: they resolve from anywhere.
    stored = pd.read_csv(runs_dir / "shipped2" / "predictions.csv")["path"]
    assert not stored.str.startswith(("/", "..")).any(), stored.head()
    assert json.loads((runs_dir / "shipped2" / "config.json").read_text())["data"] == str(faces140k.resolve())


def test_writes_into_the_shipped_folder_are_refused(tmp_path, monkeypatch):
    from dfd import runs

    monkeypatch.setenv("DFD_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("DFD_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "models" / "default").mkdir(parents=True)
    (tmp_path / "models" / "default" / "config.json").write_text('{"image_size": 32}')
    for write in (lambda: runs.write_json_atomic(tmp_path / "models" / "default" / "calibration.json", {}),
                  lambda: runs.new_run_dir(tmp_path / "models", "x"),
                  lambda: runs.delete_run("default")):
        with pytest.raises(runs.RunError, match="never write"):
            write()
    assert [p.name for p in (tmp_path / "models" / "default").iterdir()] == ["config.json"]
    # a new user run never takes a shipped run's name, so a name always means one run
    assert runs.unique_name(tmp_path / "runs", "default") == "default2"
    # a folder made by hand with a shipped run's name is hidden, and reported
    (tmp_path / "runs" / "default").mkdir(parents=True)
    (tmp_path / "runs" / "default" / "config.json").write_text('{"image_size": 64}')
    assert runs.get_run("default").shipped and runs.get_run("default").image_size == 32
    assert [r.name for r in runs.list_runs()] == ["default"]
    assert runs.shadowed_runs() == [tmp_path / "runs" / "default"]
    assert runs.get_run(str(tmp_path / "runs" / "default")).image_size == 64


@pytest.mark.slow
def test_robustness_of_the_real_default_leaves_it_untouched(tmp_path):
    """The README's own example, ``python -m dfd robustness default ../shared/data``, on the real shipped run."""
    data = need(SHARED_DATA)
    before = tree_hash(DEFAULT_DIR)
    proc = run_dfd(REPO, tmp_path, "robustness", "default", data, "--limit", 2,
                   env={"DFD_RUNS_DIR": str(tmp_path / "runs")})
    assert tree_hash(DEFAULT_DIR) == before
    record = Path(proc.stdout.strip().splitlines()[-1])
    from dfd.evaluate import default_tag

    tag = default_tag([p.name for p in data.iterdir() if p.is_dir()], "test")
    assert record == tmp_path / "runs" / "_evals" / "default" / "robustness" / tag
    from dfd import runs

    run = runs.get_run("default", tmp_path / "runs")
    found = run.records("robustness")
    assert [(r.own, r.path) for r in found] == [(True, DEFAULT_DIR), (False, record)], "own file, then the record"
    assert "the run's own file" in found[0].label and "evaluation record" in found[1].label
    listing = run_dfd(REPO, tmp_path, "runs", "--evals", env={"DFD_RUNS_DIR": str(tmp_path / "runs")}).stdout
    rows = [line.split() for line in listing.split("Evidence of each run")[1].splitlines()[1:]]
    assert ["default", "robustness", "run", "folder", str(DEFAULT_DIR), "-"] in rows
    assert ["default", "robustness", tag, str(record)] == next(r for r in rows if tag in r)[:4]
