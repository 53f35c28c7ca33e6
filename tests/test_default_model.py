"""The shipped detector (models/default): loads, is accurate on real test images, serves the same P(fake) everywhere.

Accuracy is checked on a fixed sample of each dataset's own test split (stable: the split is a function of the
file names; the sample is seeded), against floors set a sample margin below the figures in models/README.md.
Skipped, with the reason, where ../shared/data is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FACES_140K, LFW, REPO, RFF, need

from dfd import DEFAULT_RUN, MODELS_DIR

N_PER_DATASET = 60  # 30 real + 30 fake
# Floors for the fixed 60-image samples, on the verdicts the app serves (mirror-averaged, calibrated P(fake) at
# the run's threshold): the sample's accuracy less a margin of a few images. The shipped model reaches the
# lfw-faceswap target (>= 0.95; full test split 0.970 at its threshold, this sample 1.000), so its floor is the
# target itself. It does NOT reach the faces-140k-mini target (>= 0.85; full test split 0.810, this sample
# 0.833; models/README.md), so that floor guards what it does reach. real-and-fake-face is not here: the
# default is not trained on it (it is at chance there, as cross_dataset.csv shows and
# test_cross_dataset_table_covers_every_dataset checks).
FLOORS = {"faces-140k-mini": 0.80, "lfw-faceswap": 0.95}
FOLDERS = {"faces-140k-mini": FACES_140K, "lfw-faceswap": LFW, "real-and-fake-face": RFF}
RUN_DIR = MODELS_DIR / DEFAULT_RUN


@pytest.fixture(scope="module")
def run():
    from dfd.runs import get_run

    if not (RUN_DIR / "model.keras").exists():
        pytest.fail(f"the default detector is missing: {RUN_DIR / 'model.keras'}")
    return get_run(DEFAULT_RUN)


@pytest.fixture(scope="module")
def model(run):
    from dfd.runs import load_model

    return load_model(run)


def _sample(folder: Path, n: int = N_PER_DATASET, seed: int = 0):
    from dfd.data import index_dataset

    test = index_dataset(need(folder)).split("test")
    import pandas as pd

    return pd.concat([g.sample(n=min(len(g), n // 2), random_state=seed) for _, g in test.groupby("label")],
                     ignore_index=True)


def test_run_folder_is_complete_and_small(run):
    for name in ("config.json", "model.keras", "predictions.csv", "metrics.json", "status.json",
                 "calibration.json", "robustness.csv", "robustness_by_dataset.csv", "cross_dataset.csv"):
        assert (RUN_DIR / name).is_file(), f"models/default/{name} is missing"
    members = run.member_histories()  # an ensemble keeps each member's training history instead of its own
    histories = list(members.values()) if members else [run.history()]
    assert histories and all(len(h) and {"loss", "val_loss", "val_auc"} <= set(h.columns) for h in histories)
    assert run.status == "complete"
    assert (RUN_DIR / "model.keras").stat().st_size <= 10 * 2**20
    assert 0.0 < run.threshold < 1.0
    assert not list(RUN_DIR.rglob("*.jpg")) and not list(RUN_DIR.rglob("*.png")), "no images in a run folder"


def test_model_interface(model, run):
    size = run.image_size
    assert tuple(model.input_shape[1:]) == (size, size, 3)
    out = np.asarray(model(np.zeros((2, size, size, 3), np.float32), training=False))
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("dataset", sorted(FLOORS))
def test_accuracy_on_real_test_images(dataset, model, run):
    from dfd.data import predict_paths
    from dfd.evaluate import apply_temperature, predictor

    sample = _sample(FOLDERS[dataset])
    probs, errors = predict_paths(predictor(model, run.image_size, tta=run.tta), sample["path"].tolist(),
                                  run.image_size, batch_size=30)
    assert not errors
    acc = float(((apply_temperature(probs, run.temperature) >= run.threshold) == sample["label"].to_numpy()).mean())
    assert acc >= FLOORS[dataset], f"{dataset}: accuracy {acc:.3f} on {len(sample)} test images < {FLOORS[dataset]}"


def test_recorded_predictions_match_the_model(model, run):
    """predictions.csv in the run was written by this model: re-scoring a few rows gives the same P(fake)."""
    from dfd.data import predict_paths

    pred = run.predictions()
    pred = pred[pred["path"].map(lambda p: Path(p).exists())]
    if pred.empty:
        from conftest import SHARED_DATA

        if SHARED_DATA.exists():  # the images are here: predictions.csv must find them, from any folder
            pytest.fail(f"none of the images in predictions.csv is found, though {SHARED_DATA} exists")
        pytest.skip("none of the images in predictions.csv is present on this machine")
    rows = pred.sample(n=min(12, len(pred)), random_state=0)
    from dfd.evaluate import predictor

    probs, _ = predict_paths(predictor(model, run.image_size, tta=run.tta), rows["path"].tolist(), run.image_size)
    np.testing.assert_allclose(probs, rows["p_fake"].to_numpy(), atol=2e-3)


def test_detector_and_cli_predict_agree(run):
    """The app's Detector and ``python -m dfd predict`` give the same P(fake) for the same image."""
    from dfd.detect import Detector

    sample = _sample(LFW, n=2)
    paths = sample["path"].tolist()
    detector = Detector(DEFAULT_RUN)
    app = [detector.analyse(p).faces[0].p_fake for p in paths]
    out = subprocess.run([sys.executable, "-m", "dfd", "predict", *paths, "--csv", "-"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(out.stdout))
    cli = [float(table[table["file"] == p]["p_fake"].iloc[0]) for p in paths]  # face 1 of each file
    np.testing.assert_allclose(cli, app, atol=2e-4)  # the CLI rounds to 4 decimals


def test_cross_dataset_table_covers_every_dataset(run):
    """cross_dataset.csv: the default scored on all three test splits (in-domain where it was trained), and
    every dataset also scored by a model that never saw it (trained on the other two)."""
    import pandas as pd

    table = pd.read_csv(RUN_DIR / "cross_dataset.csv")
    mine = table[table["run"] == run.name].set_index("dataset")
    assert set(mine.index) == set(FOLDERS)
    trained = set(run.config["datasets"] or FOLDERS)
    assert {d for d in mine.index if mine.loc[d, "domain"] == "in-domain"} == trained
    for dataset in FOLDERS:
        out = table[(table["dataset"] == dataset) & (table["domain"] == "out-of-domain")]
        assert len(out), f"no model trained without {dataset} scored it"
    # the default's own rows are its recorded test predictions at its calibrated threshold (same model,
    # same images, same mirror-averaging), so the table is not stale
    from dfd.evaluate import apply_temperature, metrics

    pred = run.predictions().query("split == 'test'")
    for dataset in trained:
        part = pred[pred["dataset"] == dataset]
        part = part.assign(p_fake=apply_temperature(part["p_fake"].to_numpy(), run.temperature))
        m = metrics(part, run.threshold)
        assert mine.loc[dataset, "n"] == m["n"]
        assert mine.loc[dataset, "accuracy"] == pytest.approx(m["accuracy"], abs=2e-3)
        assert mine.loc[dataset, "roc_auc"] == pytest.approx(m["roc_auc"], abs=2e-3)


def test_model_card_reports_the_default(run):
    """models/README.md quotes the committed run's own test accuracy for every dataset."""
    card = (REPO / "models" / "README.md").read_text()
    by_dataset = json.loads((RUN_DIR / "metrics.json").read_text())["by_dataset"]["test"]
    for dataset, m in by_dataset.items():
        assert f"{m['accuracy']:.3f}" in card, f"models/README.md does not quote {dataset} test accuracy"
