"""Run store: atomic writes, never overwriting, listing, reading, status."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from dfd import runs


def _make_run(root, name, status="complete", **cfg):
    tmp = runs.new_run_dir(root, name)
    runs.write_json_atomic(tmp / "config.json", {"architecture": "tiny", "image_size": 32, **cfg})
    runs.write_status(tmp, status)
    return runs.finalize_run_dir(tmp, root, name)


def test_never_overwrites_same_name(tmp_path):
    a = _make_run(tmp_path, "exp", seed=1)
    b = _make_run(tmp_path, "exp", seed=2)
    c = _make_run(tmp_path, "exp", seed=3)
    assert [a.name, b.name, c.name] == ["exp", "exp2", "exp3"]
    assert runs.get_run("exp", tmp_path).config["seed"] == 1
    assert runs.get_run("exp2", tmp_path).config["seed"] == 2
    assert not list(tmp_path.glob(".tmp-*"))


def test_finalize_skips_taken_name_even_if_created_meanwhile(tmp_path):
    tmp = runs.new_run_dir(tmp_path, "race")
    runs.write_status(tmp, "complete")
    (tmp_path / "race").mkdir()
    (tmp_path / "race" / "config.json").write_text("{}")
    final = runs.finalize_run_dir(tmp, tmp_path, "race")
    assert final.name == "race2"
    assert (tmp_path / "race" / "config.json").read_text() == "{}"


def test_list_and_get_runs(tmp_path):
    _make_run(tmp_path, "one")
    _make_run(tmp_path, "two", status="interrupted")
    runs.new_run_dir(tmp_path, "in-progress")  # a temporary folder is not a run
    (tmp_path / "not-a-run").mkdir()
    listed = {r.name: r for r in runs.list_runs(tmp_path)}
    assert set(listed) == {"one", "two", "default"}  # the user's runs, then the shipped ones
    assert [r.name for r in runs.list_runs(tmp_path)][-1] == "default" and listed["default"].shipped
    assert listed["two"].status == "interrupted"
    assert listed["one"].threshold == 0.5
    assert listed["one"].temperature == 1.0
    assert runs.get_run(str(tmp_path / "one")).name == "one"
    with pytest.raises(runs.RunError, match="no run 'three'"):
        runs.get_run("three", tmp_path)
    assert [r.name for r in runs.list_runs(tmp_path / "missing")] == ["default"]


def test_run_reads_files(tmp_path):
    path = _make_run(tmp_path, "r")
    pred = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "label": [0, 1], "p_fake": [0.2, 0.9],
                         "split": ["test", "test"], "dataset": ["d", "d"]})
    runs.write_csv_atomic(path / "predictions.csv", pred)
    runs.write_json_atomic(path / "metrics.json", {"test": {"accuracy": 1.0, "roc_auc": float("nan")}})
    runs.write_json_atomic(path / "calibration.json", {"temperature": 1.7, "threshold": 0.42})
    run = runs.get_run("r", tmp_path)
    assert run.predictions()["p_fake"].tolist() == [0.2, 0.9]
    assert run.metrics()["test"]["roc_auc"] is None  # NaN written as null, valid JSON
    assert run.threshold == 0.42 and run.temperature == 1.7
    assert run.history().empty
    assert run.summary()["status"] == "complete" and run.summary()["datasets"] == "d"
    with pytest.raises(runs.RunError, match="no model.keras"):
        runs.load_model(run)


def test_atomic_json_handles_numpy_and_nan(tmp_path):
    import numpy as np

    p = runs.write_json_atomic(tmp_path / "x.json", {"a": np.float32(1.5), "b": np.int64(3), "c": math.inf,
                                                     "d": np.arange(2), "e": tmp_path})
    data = json.loads(p.read_text())
    assert data == {"a": 1.5, "b": 3, "c": None, "d": [0, 1], "e": str(tmp_path)}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_corrupt_json_gives_clear_error(tmp_path):
    path = _make_run(tmp_path, "bad")
    (path / "metrics.json").write_text("{not json")
    with pytest.raises(runs.RunError, match="cannot read"):
        runs.get_run("bad", tmp_path).metrics()


def test_safe_name():
    assert runs.safe_name("my run/1") == "my-run-1"
    assert runs.safe_name("../..") == "run"


def test_recover_stale_temp_folders(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".tmp-killed-{dead_pid}"
    stale.mkdir()
    runs.write_json_atomic(stale / "config.json", {"architecture": "tiny"})
    runs.write_status(stale, "running")
    live = runs.new_run_dir(tmp_path, "live")  # this process: still running, left alone
    runs.write_status(live, "running")
    recovered = runs.recover_stale(tmp_path)
    assert [p.name for p in recovered] == ["killed"]
    assert runs.get_run("killed", tmp_path).status == "interrupted"
    assert live.exists() and str(os.getpid()) in live.name


def test_predictions_follow_a_moved_data_folder(tmp_path, monkeypatch):
    """Runs store absolute image paths; when the data folder has moved (another machine), predictions() finds
    the same files under $DFD_DATA (or ../shared/data beside the repo) instead of reporting them missing."""
    old, new = tmp_path / "gone" / "data", tmp_path / "here" / "data"
    (new / "set" / "real").mkdir(parents=True)
    (new / "set" / "real" / "a.jpg").write_bytes(b"x")
    path = _make_run(tmp_path / "runs", "r", data=str(old))
    pred = pd.DataFrame({"path": [str(old / "set" / "real" / "a.jpg"), "/elsewhere/b.jpg"], "label": [0, 1],
                         "p_fake": [0.2, 0.9], "split": "test", "dataset": "d"})
    runs.write_csv_atomic(path / "predictions.csv", pred)
    run = runs.get_run(path)
    monkeypatch.delenv("DFD_DATA", raising=False)
    assert run.predictions()["path"].tolist() == pred["path"].tolist()  # nowhere to go: unchanged
    monkeypatch.setenv("DFD_DATA", str(new))
    assert run.predictions()["path"].tolist() == [str(new / "set" / "real" / "a.jpg"), "/elsewhere/b.jpg"]


def test_default_predictions_resolve_from_any_working_directory(tmp_path, monkeypatch):
    """The shipped run's predictions.csv (first format: paths relative to the repository) resolves when the
    app or the CLI starts in another folder: every image is found."""
    from conftest import SHARED_DATA, need

    need(SHARED_DATA)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DFD_DATA", raising=False)
    pred = runs.get_run("default").predictions()
    assert len(pred) == len(pd.read_csv(runs.get_run("default").path / "predictions.csv")) > 0
    missing = [p for p in pred["path"] if not os.path.isfile(p)]
    assert not missing, f"{len(missing)} of {len(pred)} images not found, e.g. {missing[:2]}"
    assert all(os.path.isabs(p) for p in pred["path"])


def test_relative_paths_resolve_after_the_data_moves(tmp_path, monkeypatch):
    """New runs store paths relative to their data folder; moved (even to a folder holding several datasets),
    they are found under $DFD_DATA by the dataset's name, from any working directory."""
    old = tmp_path / "gone" / "set"  # trained on one dataset's own folder
    stored = runs.relative_paths([str(old / "real" / "a.jpg"), "/elsewhere/b.jpg"], old)
    assert stored == ["real/a.jpg", "/elsewhere/b.jpg"]
    new = tmp_path / "here"  # now a parent of datasets
    (new / "set" / "real").mkdir(parents=True)
    (new / "set" / "real" / "a.jpg").write_bytes(b"x")
    path = _make_run(tmp_path / "runs", "r", data=str(old))
    runs.write_csv_atomic(path / "predictions.csv", pd.DataFrame({
        "path": stored, "label": [0, 1], "p_fake": [0.2, 0.9], "split": "test", "dataset": ["set", "set"]}))
    monkeypatch.chdir(tmp_path / "runs")
    monkeypatch.delenv("DFD_DATA", raising=False)
    assert runs.get_run(path).predictions()["path"].tolist() == [str(old / "real" / "a.jpg"), "/elsewhere/b.jpg"]
    monkeypatch.setenv("DFD_DATA", str(new))
    assert runs.get_run(path).predictions()["path"].tolist() == [str(new / "set" / "real" / "a.jpg"),
                                                                  "/elsewhere/b.jpg"]
    # and where it never moved: found under the recorded data folder itself
    (old / "real").mkdir(parents=True)
    (old / "real" / "a.jpg").write_bytes(b"y")
    assert runs.get_run(path).predictions()["path"].iloc[0] == str(old / "real" / "a.jpg")
