"""Training runs for real: learning, run folder contents, interruption, never overwriting, bad files, strategy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA, need
from synthetic_faces import make_faces

from dfd import runs
from dfd.train import TrainConfig, TrainError, ensemble, train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def faces(tmp_path_factory, faces140k) -> Path:
    src = faces140k / "real-vs-fake" / "train" / "real"
    return make_faces(tmp_path_factory.mktemp("synth") / "data", src, {"train": 60, "valid": 20, "test": 20})


def _cfg(data: Path, runs_dir: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), architecture="tiny", image_size=48, epochs=6, batch_size=16, learning_rate=1e-2,
                warmup_epochs=0.5, patience=0, seed=0, runs_dir=str(runs_dir), augment={"flip": True})
    return TrainConfig(**{**base, **kw})


def test_training_learns_and_writes_run(faces, tmp_path):
    seen = []
    path = train(_cfg(faces, tmp_path, name="learn"), progress=lambda e, n, logs: seen.append((e, n, logs)))
    assert path == tmp_path / "learn"
    assert runs.get_run(path).status == "complete"
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] >= 0.75, metrics["val"]
    assert metrics["test"]["accuracy"] >= 0.75, metrics["test"]
    assert metrics["test"]["roc_auc"] >= 0.8
    cfg = json.loads((path / "config.json").read_text())
    for key in ("data_fingerprint", "split_counts", "seed", "architecture", "params", "image_size", "augment",
                "epochs", "learning_rate", "batch_size", "versions", "train_seconds", "started", "ended", "limit"):
        assert key in cfg, key
    assert cfg["split_counts"]["train"] == {"real": 60, "fake": 60}
    assert set(cfg["versions"]) >= {"tensorflow", "keras", "numpy", "python"}
    hist = pd.read_csv(path / "history.csv")
    assert list(hist["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "lr"} <= set(hist.columns)
    assert hist["lr"].iloc[0] < hist["lr"].iloc[1] or hist["lr"].iloc[-1] < hist["lr"].max()  # warm-up / decay
    stored = pd.read_csv(path / "predictions.csv")
    assert list(stored.columns) == ["path", "label", "p_fake", "split", "dataset", "generator", "source"]
    assert not stored["path"].str.startswith("/").any(), "stored relative to the data folder"
    pred = runs.get_run(path).predictions()  # resolved to absolute paths
    assert sorted(pred["split"].unique()) == ["test", "val"] and len(pred) == 80
    assert [e for e, _, logs in seen if "phase" not in logs and "batch" not in logs] == [1, 2, 3, 4, 5, 6]
    # The saved best model reproduces the stored predictions.
    import numpy as np

    from dfd import imaging

    model = runs.load_model(path)
    some = pred.head(8)
    x = np.stack([imaging.decode(p, 48) for p in some["path"]])
    np.testing.assert_allclose(np.asarray(model(x, training=False)).ravel(), some["p_fake"], atol=1e-5)


def test_same_name_never_overwritten_and_limit(faces, tmp_path):
    a = train(_cfg(faces, tmp_path, name="dup", epochs=1, limit=20))
    b = train(_cfg(faces, tmp_path, name="dup", epochs=1, limit=20))
    assert (a.name, b.name) == ("dup", "dup2")
    counts = json.loads((b / "config.json").read_text())["split_counts"]
    assert counts["train"] == {"real": 10, "fake": 10}
    assert not list(tmp_path.glob(".tmp-*"))


def test_stop_event_keeps_run_as_interrupted(faces, tmp_path):
    stop = threading.Event()

    def progress(epoch, epochs, logs):
        if epoch >= 1:
            stop.set()

    path = train(_cfg(faces, tmp_path, name="stopped", epochs=5), progress=progress, stop_event=stop)
    run = runs.get_run(path)
    assert run.status == "interrupted"
    assert len(run.history()) == 1
    assert run.has_model
    assert not (path / "predictions.csv").exists()


@pytest.mark.parametrize("stop_at, completed", [(0.0, 0), (1.0, 1)])
def test_a_run_stopped_mid_epoch_records_only_the_epochs_it_completed(faces, tmp_path, stop_at, completed):
    """Stopped a fraction into an epoch (at its first batch report): that epoch is not in history.csv,
    epochs_run or the checkpoint."""
    stop = threading.Event()
    stopped_at = []

    def progress(epoch, epochs, logs):
        if "batch" in logs and epoch >= stop_at and not stop.is_set():
            stopped_at.append(epoch)
            stop.set()

    path = train(_cfg(faces, tmp_path, name="cut", epochs=4, batch_size=8), progress=progress, stop_event=stop)
    assert stopped_at and stopped_at[0] % 1 < 0.9, "stopped within an epoch, not at its end"
    run = runs.get_run(path)
    assert run.status == "interrupted"
    assert len(run.history()) == completed
    assert run.config["epochs_run"] == completed and run.status_info["epochs_run"] == completed
    assert run.has_model == (completed > 0), "no model is saved from an epoch cut short"


def test_training_reports_progress_in_every_phase(faces, tmp_path):
    """Building, the first batch, validation, predicting each split and calibrating are reported, with counts
    where there is something to count; the history rows are the only calls without 'phase' or 'batch'."""
    seen = []
    path = train(_cfg(faces, tmp_path, name="phases", epochs=2), progress=lambda e, n, logs: seen.append((e, logs)))
    phases = [logs["phase"] for _, logs in seen if "phase" in logs]
    assert phases[:3] == ["indexing the dataset", "loading TensorFlow", "building the model"]
    assert phases[3].startswith("first batch")
    assert "validation" in phases and phases[-1].startswith("calibrating")
    val = [logs for _, logs in seen if logs.get("phase") == "validation"]
    assert all(0 <= v["done"] <= v["total"] for v in val) and val[0]["total"] == 3  # 40 val images / 16
    for split, n in (("val", 40), ("test", 40)):
        counts = [logs for _, logs in seen if logs.get("phase") == f"predicting the {split} split"]
        assert counts[0]["done"] == 0 and counts[-1]["done"] == counts[-1]["total"] == n, (split, counts)
    rows = [e for e, logs in seen if "phase" not in logs and "batch" not in logs]
    assert rows == [1, 2]
    assert runs.get_run(path).status == "complete"


def test_robustness_reports_progress_per_image(faces, tmp_path):
    from dfd import evaluate

    path = train(_cfg(faces, tmp_path, name="rob", epochs=1))
    calls = []
    folder = evaluate.robustness(path, faces, limit=10, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    conditions = len(evaluate.ROBUSTNESS_SWEEP)
    assert len(pd.read_csv(folder / "robustness.csv")) == conditions
    assert calls[-1] == (10 * conditions, 10 * conditions)
    assert len(calls) >= 3 * conditions, "a count every batch of images, not one a condition"
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_keyboard_interrupt_keeps_run(faces, tmp_path):
    def progress(epoch, epochs, logs):
        if epoch == 1:
            raise KeyboardInterrupt

    path = train(_cfg(faces, tmp_path, name="ctrlc", epochs=5), progress=progress)
    run = runs.get_run(path)
    assert run.status == "interrupted"
    status = json.loads((path / "status.json").read_text())
    assert status["error"].startswith("interrupted") and status["epochs_run"] == 1
    assert len(run.history()) == 1 and run.has_model


def test_failure_keeps_run_as_failed(faces, tmp_path):
    with pytest.raises(TrainError, match="training failed") as info:
        train(_cfg(faces, tmp_path, name="boom", epochs=1, arch_kwargs={"no_such_option": 1}))
    run = runs.get_run(info.value.run_path)
    assert run.status == "failed" and "no_such_option" in run.status_info["error"]


def test_bad_config_fails_before_making_a_folder(faces, tmp_path):
    with pytest.raises(TrainError, match="unknown architecture"):
        train(_cfg(faces, tmp_path, architecture="nope"))
    with pytest.raises(TrainError, match="unknown training option"):
        TrainConfig.from_dict({"data": "x", "epochz": 3})
    assert list(tmp_path.iterdir()) == []


def test_corrupt_training_image_is_skipped_and_recorded(faces, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(faces, data)
    bad = data / "train" / "fake" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    path = train(_cfg(data, tmp_path / "runs", name="bad", epochs=2))
    assert runs.get_run(path).status == "complete"
    listed = pd.read_csv(path / "bad_files.csv")
    assert str(bad) in set(listed["path"])
    assert json.loads((path / "config.json").read_text())["bad_files"] == 1


def test_mirrored_strategy_two_logical_cpus(faces, tmp_path):
    code = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from dfd.train import TrainConfig, train
        cfg = TrainConfig(data={str(faces)!r}, architecture="tiny", image_size=48, epochs=2, batch_size=16,
                          learning_rate=1e-2, runs_dir={str(tmp_path)!r}, name="mirrored", strategy="mirrored",
                          limit=40)
        path = train(cfg)
        print(json.dumps({{"path": str(path)}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    path = Path(json.loads(out.stdout.strip().splitlines()[-1])["path"])
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["replicas"] == 2 and cfg["strategy_class"] == "MirroredStrategy"
    assert runs.get_run(path).status == "complete"
    assert len(pd.read_csv(path / "predictions.csv")) == 80


def test_recompute_batchnorm_sets_exact_average():
    import keras
    import numpy as np
    import tensorflow as tf

    from dfd import models
    from dfd.train import recompute_batchnorm

    model = models.build_model("tiny", 16)
    x = np.random.default_rng(0).uniform(0, 255, (24, 16, 16, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(24, np.float32))).batch(8)
    assert recompute_batchnorm(model, ds, 10) == 3
    conv = keras.Model(model.input, model.get_layer("b1_conv").output)
    per_batch = [np.asarray(conv(x[i:i + 8])).mean(axis=(0, 1, 2)) for i in (0, 8, 16)]
    bn = model.get_layer("b1_bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), np.mean(per_batch, axis=0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.9  # restored


def test_ensemble_of_two_seeds_averages_learns_and_explains(faces, tmp_path):
    import numpy as np

    from dfd import imaging
    from dfd.detect import Detector

    a = train(_cfg(faces, tmp_path, name="seed0", seed=0))
    b = train(_cfg(faces, tmp_path, name="seed1", seed=1))
    assert (a / "calibration.json").is_file(), "training calibrates on val when it ends"
    counted = []
    path = ensemble([a, b], name="ens", runs_dir=tmp_path, progress=lambda d, t: counted.append((d, t)))
    assert counted[-1] == (80, 80), "the ensemble's predictions are counted image by image"
    run = runs.get_run(path)
    assert run.status == "complete" and run.architecture == "ensemble"
    assert run.model_label == "ensemble of 2 tiny" and runs.get_run(a).model_label == "tiny"
    assert [m["name"] for m in run.config["members"]] == ["seed0", "seed1"]
    assert [m["seed"] for m in run.config["members"]] == [0, 1]
    assert run.config["split_counts"] == runs.get_run(a).config["split_counts"]
    for member in (a, b):  # the members' records travel with the ensemble
        kept = path / "members" / member.name
        assert (kept / "history.csv").read_text() == (member / "history.csv").read_text()
        assert json.loads((kept / "config.json").read_text())["seed"] == runs.get_run(member).config["seed"]
    # Its P(fake) is the mean of the members', on exactly their val and test images.
    merged = run.predictions().merge(runs.get_run(a).predictions(), on=["path", "split"]).merge(
        runs.get_run(b).predictions(), on=["path", "split"])
    assert len(merged) == len(run.predictions()) == 80
    np.testing.assert_allclose(merged["p_fake_x"], (merged["p_fake_y"] + merged["p_fake"]) / 2, atol=1e-5)
    metrics = run.metrics()
    assert metrics["test"]["accuracy"] >= 0.75 and metrics["test"]["roc_auc"] >= 0.8, metrics["test"]
    assert run.temperature > 0 and (path / "calibration.json").is_file()
    # The saved ensemble serves and explains like any run: one model file, a Grad-CAM map from its members.
    detector = Detector(path, find_faces=False)
    img = imaging.decode(merged["path"].iloc[0], 48)
    p_members = [float(np.ravel(runs.load_model(r)(img[None], training=False))[0]) for r in (a, b)]
    assert detector.calibrate(np.array([np.mean(p_members)]))[0] == pytest.approx(
        float(detector.predict_arrays(img)[0]), abs=1e-5)
    cam = detector.heatmap(img)
    assert cam.shape == (48, 48) and cam.max() == pytest.approx(1.0) and cam.min() >= 0
    # ... the mean of the members' own maps toward the ensemble's served verdict, each member with an equal say
    toward = "fake" if float(detector.predict_arrays(img)[0]) >= detector.threshold else "real"
    alone = [Detector.from_model(runs.load_model(r), 48, find_faces=False).heatmap(img, toward=toward) for r in (a, b)]
    expected = np.mean(alone, axis=0)
    np.testing.assert_allclose(cam, expected / expected.max(), atol=1e-4)
    assert not np.allclose(alone[0], alone[1], atol=1e-2), "the members' maps differ, so the mean means something"


def test_ensemble_refuses_members_that_do_not_match(faces, tmp_path):
    a = train(_cfg(faces, tmp_path, name="small", epochs=1))
    other_size = train(_cfg(faces, tmp_path, name="big", epochs=1, image_size=64))
    other_split = train(_cfg(faces, tmp_path, name="fewer", epochs=1, limit=20))
    with pytest.raises(TrainError, match="differ in image_size"):
        ensemble([a, other_size], runs_dir=tmp_path)
    with pytest.raises(TrainError, match="different val/test images"):
        ensemble([a, other_split], runs_dir=tmp_path)
    with pytest.raises(TrainError, match="two different runs"):
        ensemble([a, a], runs_dir=tmp_path)
    import shutil

    broken = tmp_path / "broken"  # same val/test predictions as `small`, but its model file is damaged
    shutil.copytree(a, broken)
    (broken / "model.keras").write_bytes(b"not a keras archive")
    with pytest.raises(runs.RunError, match="cannot load the model of run 'broken'"):
        ensemble([a, broken], runs_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "broken", "fewer", "small"], "no folder made"


def test_distilled_student_learns_from_its_teachers_soft_targets(faces, tmp_path, monkeypatch):
    """--teacher: the student trains toward (1 - w) * label + w * the teachers' mean P(fake) on the train images;
    teachers that were not validated and tested on the student's val/test images are refused."""
    import numpy as np

    from dfd import evaluate
    from dfd.train import _checked, teacher_targets

    a = train(_cfg(faces, tmp_path, name="teach0", seed=0))
    b = train(_cfg(faces, tmp_path, name="teach1", seed=1))
    cfg = _cfg(faces, tmp_path, name="student", seed=2, teacher=["teach0", str(b)], distill_weight=0.5,
               distill_temperature=2.0)
    train_df = _checked(cfg)[4]
    soft = teacher_targets([runs.get_run(a), runs.get_run(b)], train_df)  # T = 1: the plain mean
    direct = [evaluate.predict_frame(evaluate.predictor(runs.load_model(r)), train_df, 48)[0]["p_fake"]
              for r in (a, b)]
    np.testing.assert_allclose(soft, np.mean(direct, axis=0), atol=1e-5)
    softer = teacher_targets([runs.get_run(a), runs.get_run(b)], train_df, temperature=3.0)
    np.testing.assert_allclose(softer, evaluate.apply_temperature(soft, 3.0), atol=1e-6)
    assert np.abs(softer - 0.5).max() < np.abs(soft - 0.5).max()
    assert soft.std() > 0.05 and ((soft >= 0.5) == train_df["label"]).mean() >= 0.75, "teachers that learned"

    from dfd import data

    fed = []  # the labels the training split is streamed with (the real make_dataset still runs)
    real_make_dataset = data.make_dataset

    def recording(frame, *args, **kw):
        if kw.get("shuffle"):
            fed.append(frame.set_index("path")["label"])
        return real_make_dataset(frame, *args, **kw)

    monkeypatch.setattr(data, "make_dataset", recording)
    path = train(cfg)
    monkeypatch.undo()
    run = runs.get_run(path)
    assert run.status == "complete"
    targets = 0.5 * train_df["label"].to_numpy() + 0.5 * evaluate.apply_temperature(soft, 2.0)
    np.testing.assert_allclose(fed[0].reindex(train_df["path"]).to_numpy(), targets, atol=1e-5)
    assert [t["name"] for t in run.config["teacher_runs"]] == ["teach0", "teach1"]
    assert run.config["teacher_agreement"] == round(float(((soft >= 0.5) == train_df["label"]).mean()), 4)
    assert run.config["distill_temperature"] == 2.0
    from dfd import card

    assert card.compare([run])["architecture"].iloc[0] == "tiny (distilled from 2 runs)"
    metrics = run.metrics()
    assert metrics["val"]["accuracy"] >= 0.75 and metrics["test"]["roc_auc"] >= 0.8, metrics
    assert run.history()["auc"].iloc[-1] >= 0.8, "training ROC AUC against the majority labels"

    fewer = train(_cfg(faces, tmp_path, name="fewer", epochs=1, limit=20))
    with pytest.raises(TrainError, match="not validated or tested on .* it may have trained on them"):
        train(_cfg(faces, tmp_path, name="bad", teacher=[str(fewer)]))
    with pytest.raises(TrainError, match="distill_weight must be in 0..1"):
        train(_cfg(faces, tmp_path, name="bad", teacher=["teach0"], distill_weight=1.5))
    with pytest.raises(TrainError, match="distill_temperature must be positive"):
        train(_cfg(faces, tmp_path, name="bad", teacher=["teach0"], distill_temperature=0))
    with pytest.raises(TrainError, match="teacher: .*nobody"):
        train(_cfg(faces, tmp_path, name="bad", teacher=["nobody"]))
    assert not (tmp_path / "bad").exists()


def test_mixup_training_learns_and_reports_hard_label_accuracy(faces, tmp_path):
    path = train(_cfg(faces, tmp_path, name="mix", epochs=8, augment={"flip": True, "mixup": 0.2}))
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.75 and metrics["test"]["roc_auc"] >= 0.8, metrics["test"]
    hist = pd.read_csv(path / "history.csv")
    # accuracy on soft labels would be ~0 (no mixed label equals 0 or 1); against majority labels it learns
    assert hist["accuracy"].between(0, 1).all() and hist["accuracy"].iloc[-1] >= 0.7, hist["accuracy"].tolist()


def test_balance_datasets_repeats_the_smaller_dataset_up_to_the_larger():
    from dfd.train import balance_datasets

    frame = pd.DataFrame({"path": [f"a{i}" for i in range(7)] + [f"b{i}" for i in range(3)],
                          "dataset": ["big"] * 7 + ["small"] * 3, "label": [0, 1] * 5})
    out = balance_datasets(frame, seed=0)
    assert out["dataset"].value_counts().to_dict() == {"big": 7, "small": 7}
    small = out.loc[out["dataset"] == "small", "path"].value_counts()
    # two whole copies of the 3 small rows, then 1 more drawn without replacement: counts 3, 2, 2
    assert sorted(small.tolist()) == [2, 2, 3] and set(small.index) == {"b0", "b1", "b2"}
    assert out.loc[out["dataset"] == "big", "path"].tolist() == frame["path"][:7].tolist()
    assert balance_datasets(frame, seed=0).equals(out)  # deterministic for a seed
    assert balance_datasets(frame[frame["dataset"] == "big"], seed=0).equals(frame[frame["dataset"] == "big"])


def test_weight_datasets_repeats_a_named_dataset_by_its_weight():
    from dfd.train import weight_datasets

    frame = pd.DataFrame({"path": [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(6)],
                          "dataset": ["a"] * 4 + ["b"] * 6, "label": [0, 1] * 5})
    out = weight_datasets(frame, {"b": 2.5}, seed=0)
    assert out["dataset"].value_counts().to_dict() == {"a": 4, "b": 15}  # a once; b twice and half once more
    b = out.loc[out["dataset"] == "b", "path"].value_counts()
    assert sorted(b.tolist()) == [2, 2, 2, 3, 3, 3] and set(b.index) == set(frame["path"][4:])
    assert out.loc[out["dataset"] == "a", "path"].tolist() == frame["path"][:4].tolist()
    assert weight_datasets(frame, {"b": 2.5}, seed=0).equals(out)  # deterministic for a seed
    assert weight_datasets(frame, {"a": 0.5}, seed=0)["dataset"].value_counts().to_dict() == {"a": 2, "b": 6}
    assert weight_datasets(frame, None).equals(frame)


@pytest.mark.parametrize("weights, message", [({"nope": 2}, "nope not among the training data"),
                                               ({"faces-140k-mini": 0}, "positive numbers (not for faces-140k-mini)"),
                                               ({"faces-140k-mini": "2"}, "positive numbers")])
def test_bad_dataset_weights_are_refused_before_training(weights, message):
    from dfd.train import preflight

    cfg = TrainConfig(data=str(need(SHARED_DATA)), architecture="small_cnn", dataset_weights=weights,
                      limit=20)
    with pytest.raises(TrainError, match=re.escape(message)):
        preflight(cfg)


def test_backbone_learns_at_its_own_rate():
    """backbone_lr_scale reaches the optimizer: at 0 the pretrained trunk stays as loaded while the new layers
    learn; at 1 the trunk moves too."""
    import numpy as np

    from dfd import models
    from dfd.train import optimizer

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.array([0, 1] * 4, "float32")
    moved = {}
    for scale in (0.0, 1.0):
        model = models.build_model("efficientnet_lite0", 32, pretrained=True)
        trunk_before = model.get_layer(models.BACKBONE).get_layer("head_conv").get_weights()[0].copy()
        head_before = model.get_layer("p_fake").get_weights()[0].copy()
        model.compile(optimizer=optimizer(TrainConfig(backbone_lr_scale=scale), 1e-2, model),
                      loss="binary_crossentropy")
        model.train_on_batch(x, y)
        trunk_after = model.get_layer(models.BACKBONE).get_layer("head_conv").get_weights()[0]
        assert not np.array_equal(model.get_layer("p_fake").get_weights()[0], head_before)
        moved[scale] = float(np.abs(trunk_after - trunk_before).max())
    assert moved[0.0] == 0.0 and moved[1.0] > 1e-4


def test_pretrained_needs_an_architecture_with_weights(faces, tmp_path):
    with pytest.raises(TrainError, match="no pretrained weights"):
        train(_cfg(faces, tmp_path, pretrained=True))
    assert not any(tmp_path.iterdir())


def test_excluded_generator_is_left_out_of_train_and_val_and_scored_on_test(modern, tmp_path):
    with pytest.raises(TrainError, match="not in"):
        train(_cfg(modern, tmp_path, exclude_generators=["flux"]))
    path = train(_cfg(modern, tmp_path, name="logo", exclude_generators=["sd2.1"], epochs=1, image_size=32,
                      batch_size=64))
    cfg = json.loads((path / "config.json").read_text())
    pred = pd.read_csv(path / "predictions.csv")
    names = pred["path"].map(lambda p: Path(p).name)
    assert not names[pred["split"] == "val"].str.startswith("sd21_").any()
    assert names[pred["split"] == "test"].str.startswith("sd21_").any()
    assert (pred.loc[names.str.startswith("sd21_"), "generator"] == "sd2.1").all()
    # train and val lost exactly the SD 2.1 fakes (521 and 66); test keeps all 300 fakes
    assert cfg["split_counts"]["train"] == {"real": 2000, "fake": 2800 - 521}
    assert cfg["split_counts"]["val"] == {"real": 300, "fake": 300 - 66}
    assert cfg["split_counts"]["test"] == {"real": 300, "fake": 300}


def test_reals_only_keeps_a_datasets_real_photos_in_train_and_val_and_all_of_its_test():
    from dfd.train import _checked

    need(SHARED_DATA / "real-and-fake-face")
    base = dict(data=str(SHARED_DATA), architecture="tiny", datasets=["faces-140k-mini", "real-and-fake-face"])
    with pytest.raises(TrainError, match="reals-only dataset.*lfw-faceswap"):
        _checked(TrainConfig(**base, reals_only=["lfw-faceswap"]))
    _, _, _, whole, whole_train, whole_val = _checked(TrainConfig(**base))
    _, _, _, frame, train_df, val_df = _checked(TrainConfig(**base, reals_only=["real-and-fake-face"]))
    for part, before in ((train_df, whole_train), (val_df, whole_val)):
        rff, rff_before = part[part["dataset"] == "real-and-fake-face"], before[before["dataset"] == "real-and-fake-face"]
        assert (rff["label"] == 0).all() and len(rff) == (rff_before["label"] == 0).sum() > 100
        other = part[part["dataset"] != "real-and-fake-face"]
        assert len(other) == (before["dataset"] != "real-and-fake-face").sum()
    test, test_before = frame[frame["split"] == "test"], whole[whole["split"] == "test"]
    assert len(test) == len(test_before) and (test.loc[test["dataset"] == "real-and-fake-face", "label"] == 1).any()


def test_runs_of_different_seeds_share_the_split_of_data_without_one(tmp_path):
    """--seed changes weights and shuffling, not which real-and-fake-face images are val and test: runs of
    several seeds are compared on the same val images, and can be ensembled. --split-seed changes the split."""
    from dfd.runs import Run
    from dfd.train import _checked

    need(SHARED_DATA / "real-and-fake-face")
    base = dict(data=str(SHARED_DATA), architecture="tiny", datasets=["real-and-fake-face"])

    def held_out(**kw):
        frame = _checked(TrainConfig(**base, **kw))[3]
        return set(frame.loc[frame["split"] != "train", "path"])

    assert held_out(seed=0) == held_out(seed=1) == held_out(seed=1, split_seed=0)
    assert held_out(split_seed=1) != held_out(seed=0)
    # Runs recorded before split_seed existed split by their seed; the export's int8 images follow the record.
    from dfd.train import settings_of

    for config, expected in (({"seed": 3}, 3), ({"seed": 3, "split_seed": 0}, 0), ({}, 0)):
        (tmp_path / "config.json").write_text(json.dumps(config))
        assert Run(tmp_path).split_seed == expected
        assert TrainConfig.from_dict(settings_of(config)).split_seed == expected


def test_balance_classes_evens_each_dataset_on_its_own():
    from dfd.train import balance_classes

    frame = pd.DataFrame({"path": [f"m{i}" for i in range(7)] + [f"l{i}" for i in range(4)],
                          "label": [0, 0, 1, 1, 1, 1, 1] + [0, 0, 0, 1],
                          "dataset": ["modern"] * 7 + ["lfw"] * 4})
    out = balance_classes(frame, seed=0)
    counts = out.groupby(["dataset", "label"]).size().to_dict()
    assert counts == {("modern", 0): 5, ("modern", 1): 5, ("lfw", 0): 3, ("lfw", 1): 3}
    assert set(out["path"]) == set(frame["path"])  # nothing lost, only repeated
    assert (out[out["dataset"] == "modern"]["path"].value_counts() <= 3).all()  # 2 reals -> 5: 2 copies + 1
    pd.testing.assert_frame_equal(out, balance_classes(frame, seed=0))
