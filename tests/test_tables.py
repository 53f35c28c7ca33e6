"""dfd.tables: one run table for the Compare page and ``python -m dfd runs``, at each run's served threshold."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from dfd import evaluate, runs, tables


def _run(root, name, *, calibration=None, p_fake=(0.2, 0.45, 0.55, 0.9), **cfg):
    tmp = runs.new_run_dir(root, name)
    runs.write_json_atomic(tmp / "config.json", {"architecture": "tiny", "image_size": 32, **cfg})
    runs.write_status(tmp, "complete")
    pred = pd.DataFrame({"path": [f"{d}/x{i}.jpg" for i, d in enumerate("aabb")], "label": [0, 0, 1, 1],
                         "p_fake": list(p_fake), "split": "test", "dataset": ["set-a", "set-a", "set-b", "set-b"]})
    runs.write_csv_atomic(tmp / "predictions.csv", pd.concat([pred, pred.assign(split="val")]))
    runs.write_json_atomic(tmp / "metrics.json", evaluate.metrics_report(pred))
    if calibration:
        runs.write_json_atomic(tmp / "calibration.json", calibration)
    return runs.get_run(runs.finalize_run_dir(tmp, root, name))


def test_runs_table_is_at_the_served_threshold(tmp_path):
    plain = _run(tmp_path, "plain", monitor="val_loss", best_score=0.31, best_epoch=2)
    # at 0.5 all four are right; at its served threshold 0.6 (after temperature 2) the 0.55 fake is missed
    cal = _run(tmp_path, "cal", calibration={"temperature": 2.0, "threshold": 0.6}, monitor="val_auc",
               best_score=0.97, best_epoch=5)
    assert cal.metrics()["test"]["accuracy"] == 1.0  # metrics.json: at 0.5
    table = tables.runs_table([plain, cal]).set_index("run")
    assert list(table.reset_index().columns) == tables.RUN_COLUMNS
    assert table.loc["plain", "threshold"] == 0.5 and table.loc["cal", "threshold"] == 0.6
    assert table.loc["plain", "test acc"] == 1.0
    served = evaluate.apply_temperature(np.array([0.2, 0.45, 0.55, 0.9]), 2.0)
    assert table.loc["cal", "test acc"] == pytest.approx(np.mean((served >= 0.6) == np.array([0, 0, 1, 1])))
    assert table.loc["cal", "test acc"] == 0.75
    assert table.loc["cal", "test AUC"] == 1.0 and table.loc["cal", "test images"] == 4
    assert table.loc["cal", "early stopping"] == "val_auc 0.9700 (epoch 5)"
    assert table.loc["cal", "datasets"] == "set-a + set-b"  # named, not the data folder's name
    assert table.loc["cal", "kind"] == "user"
    # missing values: blank numbers, "-" text, never None
    bare = runs.Run(runs.finalize_run_dir(runs.new_run_dir(tmp_path, "bare"), tmp_path, "bare"))
    row = tables.runs_table([bare]).iloc[0]
    assert row["early stopping"] == "-" and row["datasets"] == "-" and row["started"] == "-"
    assert np.isnan(row["test acc"]) and np.isnan(row["params"])
    assert not any(v is None for v in row.to_numpy())


def test_evals_table_names_datasets_and_sources(tmp_path):
    cal = _run(tmp_path, "cal", calibration={"temperature": 2.0, "threshold": 0.6})
    folder = runs.new_record_dir(cal, "evaluate")
    pred = pd.DataFrame({"path": ["o/1.jpg", "o/2.jpg"], "label": [0, 1], "p_fake": [0.1, 0.58], "split": "test",
                         "dataset": "other-set"})
    runs.write_csv_atomic(folder / "predictions.csv", pred)
    runs.finalize_record(folder, cal, "evaluate", "other-test", {"split": "test", "data": str(tmp_path)})
    table = tables.evals_table([cal])
    assert list(table.columns) == tables.EVAL_COLUMNS
    assert table["evaluated on"].tolist() == ["set-a", "set-b", "other-set"]
    assert table["source"].tolist() == ["own test split", "own test split", "evaluation other-test"]
    assert (table["threshold"] == 0.6).all()
    # 0.58 after temperature 2 is below 0.6: the fake is missed at the served threshold
    assert table.set_index("evaluated on").loc["other-set", "accuracy"] == 0.5


def test_config_diff_compares_like_with_like(tmp_path):
    a = _run(tmp_path, "a", monitor="val_auc", best_score=0.97, best_epoch=5, seed=1, data="/d/data")
    b = _run(tmp_path, "b", monitor="val_loss", best_score=0.31, best_epoch=9, seed=2, data="/d/data", notes="x")
    diff = tables.config_diff([a, b])
    assert "best_score" not in diff.index and "monitor" not in diff.index
    assert diff.loc["early stopping"].tolist() == ["val_auc 0.9700 (epoch 5)", "val_loss 0.3100 (epoch 9)"]
    assert diff.loc["seed"].tolist() == ["1", "2"]
    assert diff.loc["notes"].tolist() == ["-", "x"]
    assert "data" not in diff.index  # equal values are not a difference


def test_the_pages_and_the_cli_use_the_same_table(tmp_path):
    """``python -m dfd runs --csv -`` is dfd.tables.runs_table of the same runs (the shipped default included),
    and the app's glue no longer builds tables of its own."""
    _run(tmp_path, "cal", calibration={"temperature": 2.0, "threshold": 0.6})
    proc = subprocess.run([sys.executable, "-m", "dfd", "runs", "--runs-dir", str(tmp_path), "--csv", "-"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    cli_table = pd.read_csv(io.StringIO(proc.stdout), keep_default_na=False, na_values=[""])
    expected = tables.runs_table(runs.list_runs(tmp_path))
    assert list(cli_table.columns) == tables.RUN_COLUMNS
    assert cli_table["run"].tolist() == expected["run"].tolist() and "default" in expected["run"].tolist()
    pd.testing.assert_series_equal(cli_table["test acc"], expected["test acc"], check_dtype=False)
    shared = (REPO / "app_pages" / "_shared.py").read_text()
    assert "def runs_table" not in shared and "def evals_table" not in shared and "def config_diff" not in shared
