"""Evaluation: metrics against hand-checked examples, curves, calibration, evaluating and stress-testing a run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_faces import make_faces

from dfd import evaluate, runs

# y:    0    0    1    1    1
# p:   .1   .6   .4   .8   .9      at 0.5 -> tn 1, fp 1, fn 1, tp 2
HAND = pd.DataFrame({"path": list("abcde"), "label": [0, 0, 1, 1, 1], "p_fake": [0.1, 0.6, 0.4, 0.8, 0.9],
                     "split": "test", "dataset": "d"})


def test_metrics_hand_checked():
    m = evaluate.metrics(HAND)
    assert m["confusion"] == [[1, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(5 / 6)  # 5 of the 6 (fake, real) pairs ranked right
    assert m["ece"] == pytest.approx((0.1 + 0.6 + 0.6 + 0.2 + 0.1) / 5)
    assert m["n"] == 5 and m["n_fake"] == 3


def test_metrics_at_other_threshold_and_unreadable_rows():
    m = evaluate.metrics(HAND, threshold=0.35)
    assert m["confusion"] == [[1, 1], [0, 3]] and m["accuracy"] == pytest.approx(0.8)
    with_nan = pd.concat([HAND, pd.DataFrame({"path": ["x"], "label": [1], "p_fake": [np.nan]})])
    m2 = evaluate.metrics(with_nan)
    assert m2["n"] == 5 and m2["n_unreadable"] == 1 and m2["accuracy"] == pytest.approx(0.6)


def test_metrics_degenerate_cases_are_none_not_errors():
    one_class = HAND[HAND["label"] == 1]
    m = evaluate.metrics(one_class)
    assert m["roc_auc"] is None and m["accuracy"] == pytest.approx(2 / 3)
    empty = evaluate.metrics(HAND.iloc[0:0])
    assert empty["n"] == 0 and empty["accuracy"] is None
    assert evaluate.roc(one_class).empty
    json.dumps(m, allow_nan=False)  # metrics.json stays valid JSON


def test_curves():
    r = evaluate.roc(HAND)
    assert r.iloc[0][["fpr", "tpr"]].tolist() == [0, 0] and r.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]
    assert np.trapezoid(r["tpr"], r["fpr"]) == pytest.approx(5 / 6)
    p = evaluate.pr(HAND)
    assert {"precision", "recall", "threshold"} <= set(p.columns)
    assert p["recall"].max() == 1.0 and len(p) == len(p.dropna())


def test_reliability_bins():
    table = evaluate.reliability(HAND, bins=5)
    assert table["count"].tolist() == [1, 0, 1, 1, 2]
    assert table.loc[4, "mean_p_fake"] == pytest.approx(0.85) and table.loc[4, "frac_fake"] == 1.0
    assert np.isnan(table.loc[1, "mean_p_fake"])


def test_metrics_report_by_split_and_dataset():
    both = pd.concat([HAND, HAND.assign(split="val", dataset="e"), HAND.assign(dataset="f")])
    rep = evaluate.metrics_report(both)
    assert rep["val"]["n"] == 5 and rep["test"]["n"] == 10
    assert set(rep["by_dataset"]["test"]) == {"d", "f"}


def test_apply_temperature():
    assert evaluate.apply_temperature(0.5, 3.0) == pytest.approx(0.5)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert evaluate.apply_temperature(sig(2.0), 2.0) == pytest.approx(sig(1.0))
    out = evaluate.apply_temperature(np.array([0.9, np.nan]), 1.0)
    assert out[0] == pytest.approx(0.9) and np.isnan(out[1])


def test_fit_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    p_over = 1 / (1 + np.exp(-2.5 * z))  # a model 2.5x too confident
    assert evaluate.fit_temperature(y, p_over) == pytest.approx(2.5, rel=0.06)


def test_best_threshold():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.9])
    t = evaluate.best_threshold(y, p)
    assert 0.3 < t <= 0.35 and np.mean((p >= t) == y) == 1.0


def test_best_threshold_with_a_false_alarm_cap():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.6, 0.8, 0.9])
    free = evaluate.best_threshold(y, p)
    assert np.mean(p[y == 0] >= free) == 0.25  # best accuracy calls one real fake
    capped = evaluate.best_threshold(y, p, max_false_alarm=0.0)
    assert np.mean(p[y == 0] >= capped) == 0.0 and capped > 0.7


def test_generator_rates_recall_per_generator_and_false_alarms():
    d = "../shared/data/modern-faces-128/real-vs-fake/test"
    pred = pd.DataFrame({
        "path": [f"{d}/real/rd_1.jpg", f"{d}/real/rd_2.jpg", f"{d}/fake/fd_1.jpg", f"{d}/fake/fcv_2.jpg",
                 f"{d}/fake/sd21_3.jpg", f"{d}/fake/sd21_4.jpg", "x/lfw/Fake/a.jpg", "x/lfw/Real/b.jpg"],
        "label": [0, 0, 1, 1, 1, 1, 1, 0], "p_fake": [0.9, 0.1, 0.8, 0.2, 0.7, 0.6, 0.9, 0.1],
        "split": "test", "dataset": ["modern"] * 6 + ["lfw"] * 2})
    rates = evaluate.generator_rates(pred, threshold=0.65)
    got = {(r.group, r.kind): (r.n, r.rate) for r in rates.itertuples()}
    assert got == {("real", "false alarm"): (2, 0.5), ("stylegan2", "recall"): (2, 0.5), ("sd2.1", "recall"): (2, 0.5)}
    assert set(rates["dataset"]) == {"modern"}  # lfw's fakes do not name a generator
    report = evaluate.metrics_report(pred, 0.65)
    assert len(report["by_generator"]) == 3


def test_calibrate_writes_calibration_json(tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    z = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-4 * z))  # the true log-odds are 2z: 2x over-confident
    pred = pd.DataFrame({"path": [f"{i}.jpg" for i in range(n)], "label": y, "p_fake": p,
                         "split": np.where(np.arange(n) < 200, "val", "test"), "dataset": "d"})
    tmp = runs.new_run_dir(tmp_path, "cal")
    runs.write_csv_atomic(tmp / "predictions.csv", pred)
    runs.write_json_atomic(tmp / "config.json", {"image_size": 32})
    path = runs.finalize_run_dir(tmp, tmp_path, "cal")
    result = evaluate.calibrate(path)
    assert 1.5 < result["temperature"] < 2.6
    assert result["ece_after"] < result["ece_before"]
    assert runs.get_run(path).temperature == pytest.approx(result["temperature"])
    assert runs.get_run(path).threshold == pytest.approx(result["threshold"])


def test_calibrate_without_val_gives_clear_error(tmp_path):
    tmp = runs.new_run_dir(tmp_path, "noval")
    runs.write_csv_atomic(tmp / "predictions.csv", HAND)
    path = runs.finalize_run_dir(tmp, tmp_path, "noval")
    with pytest.raises(evaluate.EvaluationError, match="no usable 'val'"):
        evaluate.calibrate(path)


def test_perturbations_change_images_deterministically():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert evaluate.perturbation("none", 0) is None
    for kind, level in (("jpeg", 50), ("blur", 1.0), ("noise", 5)):
        f = evaluate.perturbation(kind, level)
        out = f(img)
        assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
        np.testing.assert_array_equal(out, f(img))
    with pytest.raises(evaluate.EvaluationError):
        evaluate.perturbation("sepia", 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, faces140k) -> tuple[Path, Path]:
    from dfd.train import TrainConfig, train

    base = tmp_path_factory.mktemp("eval")
    data = make_faces(base / "data", faces140k / "real-vs-fake" / "train" / "real",
                      {"train": 50, "valid": 16, "test": 16})
    path = train(TrainConfig(data=str(data), architecture="tiny", image_size=48, epochs=5, batch_size=16,
                             learning_rate=1e-2, warmup_epochs=0.5, patience=0, runs_dir=str(base / "runs"),
                             name="ev"))
    return path, data


@pytest.mark.slow
def test_evaluate_run_writes_same_format(trained):
    path, data = trained
    before = sorted(p.name for p in path.iterdir())
    out = evaluate.evaluate_run(path, data, "test")
    assert out == path.parent / "_evals" / "ev" / "evaluate" / "data-test"  # a record beside the run
    assert sorted(p.name for p in path.iterdir()) == before, "the run folder is not touched"
    stored = pd.read_csv(out / "predictions.csv")
    assert not stored["path"].str.startswith("/").any(), "paths relative to the data folder"
    pred = runs.get_run(path).eval_predictions("data-test")
    assert list(pred.columns) == runs.PREDICTION_COLUMNS and len(pred) == 32
    assert json.loads((out / "record.json").read_text())["data"] == str(data.resolve())
    own = runs.get_run(path).predictions()
    own_test = own[own["split"] == "test"].set_index("path")["p_fake"]
    np.testing.assert_allclose(pred.set_index("path").loc[own_test.index, "p_fake"], own_test, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.75
    again = evaluate.evaluate_run(path, data, "test")
    assert again.name == "data-test2"  # never overwritten
    assert runs.get_run(path).evals() == ["data-test", "data-test2"]


@pytest.mark.slow
def test_robustness_sweep(trained):
    path, data = trained
    folder = evaluate.robustness(path, data, "test", limit=20)
    assert folder == path.parent / "_evals" / "ev" / "robustness" / "data-test"
    table = pd.read_csv(folder / "robustness.csv")
    assert list(table.columns) == ["perturbation", "level", "accuracy", "roc_auc", "recall", "false_alarm", "n"]
    assert len(table) == 12 and set(table["perturbation"]) == {"none", "jpeg", "blur", "noise"}
    assert (table["n"] == 20).all()
    clean = table[table["perturbation"] == "none"].iloc[0]
    assert clean["accuracy"] >= 0.75
    # a 2 px blur wipes out the checkerboard trace the model relies on: accuracy must drop towards chance
    blur2 = table[(table["perturbation"] == "blur") & (table["level"] == 2.0)].iloc[0]
    assert blur2["accuracy"] < clean["accuracy"]
    by_dataset = pd.read_csv(folder / "robustness_by_dataset.csv")  # one dataset here: the same numbers
    pd.testing.assert_frame_equal(by_dataset[table.columns], table)
    assert set(by_dataset["domain"]) == {"in-domain"}
    assert not (path / "robustness.csv").exists()
    assert runs.get_run(path).robustness().shape == (12, 7)


def test_tta_predictor_is_the_mean_over_the_mirror_image(faces140k):
    import keras

    from dfd import imaging, models

    keras.utils.set_random_seed(3)
    model = models.build_model("tiny", 64)
    paths = sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[:6]
    x = np.stack([imaging.decode(p, 64) for p in paths])
    mirror = np.ascontiguousarray(x[:, :, ::-1])
    plain, tta = evaluate.predictor(model, 64), evaluate.predictor(model, 64, tta=True)
    np.testing.assert_allclose(tta(x), (plain(x) + plain(mirror)) / 2, atol=1e-6)
    np.testing.assert_allclose(tta(x), tta(mirror), atol=1e-6)  # mirror-invariant by construction
    assert np.abs(plain(x) - plain(mirror)).max() > 1e-4  # ... which the plain model is not


@pytest.mark.slow
def test_a_tta_run_serves_mirror_averaged_p_fake_everywhere(trained, tmp_path):
    """A run trained with tta: its predictions.csv, evaluate_run, the Detector and the TFLite export all give
    the mirror-averaged P(fake)."""
    from dfd import detect, export, imaging
    from dfd.train import TrainConfig, train

    _, data = trained
    path = train(TrainConfig(data=str(data), architecture="tiny", image_size=48, epochs=2, batch_size=16,
                             learning_rate=1e-2, warmup_epochs=0.5, patience=0, runs_dir=str(tmp_path),
                             name="tta", tta=True))
    run = runs.get_run(path)
    assert run.tta and json.loads((path / "config.json").read_text())["tta"] is True
    test = run.predictions().query("split == 'test'")
    x = np.stack([imaging.decode(p, 48) for p in test["path"]])
    model = runs.load_model(run)
    plain = evaluate.predictor(model, 48)
    expected = (plain(x) + plain(np.ascontiguousarray(x[:, :, ::-1]))) / 2
    np.testing.assert_allclose(test["p_fake"], expected, atol=1e-5)
    assert np.abs(test["p_fake"].to_numpy() - plain(x)).max() > 1e-5
    scored = runs.Record("evaluate", evaluate.evaluate_run(path, data, "test"), False).predictions().set_index("path")
    np.testing.assert_allclose(scored.loc[test["path"], "p_fake"], expected, atol=1e-5)
    detector = detect.Detector(path)
    assert detector.tta
    np.testing.assert_allclose(detector.calibrate(expected), detector.predict_arrays(x), atol=1e-5)
    files = export.export(run, tmp_path / "tflite", kinds=("float",))
    np.testing.assert_allclose(export.tflite_predictor(files["float32"])(x), expected, atol=1e-4)
    assert detector.engine == "keras"  # an export elsewhere is not the run's own


def test_a_run_with_its_own_matching_export_is_served_through_it(trained, tmp_path):
    """The Detector serves a run through the float32 TFLite export in its folder (the same P(fake)), and
    falls back to the Keras model when that export was made from another model.keras."""
    from dfd import detect, export, imaging

    path, _ = trained
    run_dir = tmp_path / "run"
    shutil.copytree(path, run_dir)
    run = runs.get_run(run_dir)
    test = run.predictions().query("split == 'test'")
    x = np.stack([imaging.decode(p, run.config["image_size"]) for p in test["path"]])
    keras_detector = detect.Detector(run_dir)
    assert keras_detector.engine == "keras"
    expected = keras_detector.predict_arrays(x)

    export.export(run, run_dir, kinds=("float",))
    served = detect.Detector(run_dir)
    assert served.engine == "tflite"
    np.testing.assert_allclose(served.predict_arrays(x), expected, atol=1e-5)
    assert [r.faces[0].p_fake for r in map(served.analyse, test["path"][:3])] == pytest.approx(
        [r.faces[0].p_fake for r in map(keras_detector.analyse, test["path"][:3])], abs=1e-5)

    info = json.loads((run_dir / "export.json").read_text())
    runs.write_json_atomic(run_dir / "export.json", {**info, "keras_sha256": "0" * 64})
    assert detect.Detector(run_dir).engine == "keras"


def test_cross_dataset_rows_per_generator_mark_the_one_left_out(tmp_path):
    run_dir = tmp_path / "logo"
    run_dir.mkdir()
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["modern"], "exclude_generators": ["sd2.1"]})
    pred = pd.DataFrame({"path": list("abcdef"), "label": [0, 0, 1, 1, 1, 1],
                         "p_fake": [0.1, 0.2, 0.9, 0.8, 0.3, 0.7],
                         "generator": ["", "", "stylegan2", "stylegan2", "sd2.1", "sd2.1"]})
    rows = {r["dataset"]: r for r in evaluate._generator_rows(runs.Run(run_dir), pred, "modern")}
    assert rows["modern / stylegan2"]["domain"] == "in-domain" and rows["modern / stylegan2"]["accuracy"] == 1.0
    assert rows["modern / sd2.1"]["domain"] == "unseen generator" and rows["modern / sd2.1"]["accuracy"] == 0.75
    assert rows["modern / sd2.1"]["n"] == 4
    assert rows["modern / sd2.1"]["recall"] == 0.5 and rows["modern / sd2.1"]["false_alarm"] == 0.0
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["lfw"], "exclude_generators": ["sd2.1"]})
    other = evaluate._generator_rows(runs.Run(run_dir), pred, "modern")
    assert {r["domain"] for r in other} == {"out-of-domain"}
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["lfw", "modern"], "reals_only": ["modern"]})
    reals = evaluate._generator_rows(runs.Run(run_dir), pred, "modern")
    assert {r["domain"] for r in reals} == {"reals only"}, "its generators' fakes were never learned"


def test_domain_of_a_dataset_learned_for_its_reals_only(tmp_path):
    run_dir = tmp_path / "rr"
    run_dir.mkdir()
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["lfw", "rff"], "reals_only": ["rff"]})
    run = runs.Run(run_dir)
    assert [evaluate.domain_of(run, d) for d in ("lfw", "rff", "other")] == ["in-domain", "reals only",
                                                                            "out-of-domain"]


def test_generator_rates_false_alarms_per_real_source():
    d = "data/web/real-vs-fake/test"
    pred = pd.DataFrame({
        "path": [f"{d}/real/pixabay/1.jpg", f"{d}/real/pixabay/2.jpg", f"{d}/real/utkface/3.jpg",
                 f"{d}/real/utkface/4.jpg", f"{d}/fake/flux1-dev/5.jpg", f"{d}/fake/sdxl/6.jpg"],
        "label": [0, 0, 0, 0, 1, 1], "p_fake": [0.1, 0.2, 0.9, 0.8, 0.9, 0.3], "split": "test",
        "dataset": "web", "class_name": ["real"] * 4 + ["fake"] * 2})
    rates = evaluate.generator_rates(pred, threshold=0.5)
    got = {(r.group, r.kind): (r.n, r.rate) for r in rates.itertuples()}
    assert got == {("real", "false alarm"): (4, 0.5), ("pixabay", "false alarm"): (2, 0.0),
                   ("utkface", "false alarm"): (2, 1.0), ("flux1-dev", "recall"): (1, 1.0),
                   ("sdxl", "recall"): (1, 0.0)}
    assert list(rates["group"]) == ["real", "pixabay", "utkface", "flux1-dev", "sdxl"]  # reals, sources, generators


def test_best_threshold_caps_false_alarms_in_every_group_not_only_the_pool():
    # 20 reals of source a (none above 0.6), 4 of source b (two at 0.7): pooled false alarms at 0.65 are
    # 2/24 = 0.083 <= 0.1, but source b's are 0.5. Only a threshold above 0.7 respects the cap in b.
    y = np.array([0] * 24 + [1] * 10)
    p = np.concatenate([np.linspace(0.05, 0.55, 20), [0.1, 0.2, 0.7, 0.7], np.linspace(0.66, 0.99, 10)])
    source = np.array(["a"] * 20 + ["b"] * 4 + [""] * 10, dtype=object)
    pooled = evaluate.best_threshold(y, p, max_false_alarm=0.1)
    assert np.mean(p[source == "b"] >= pooled) == 0.5
    grouped = evaluate.best_threshold(y, p, max_false_alarm=0.1, groups=[source])
    assert np.mean(p[source == "b"] >= grouped) <= 0.1 and grouped > 0.7


def test_calibration_caps_false_alarms_per_dataset_and_source(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        rows.append({"path": f"d/real/a/{i}.jpg", "label": 0, "p_fake": rng.uniform(0, 0.4), "split": "val",
                     "dataset": "web", "source": "a"})
    for i in range(10):  # one source whose reals look fake: 3 of 10 above 0.6
        rows.append({"path": f"d/real/b/{i}.jpg", "label": 0, "p_fake": 0.65 if i < 3 else 0.2, "split": "val",
                     "dataset": "web", "source": "b"})
    for i in range(50):
        rows.append({"path": f"d/fake/{i}.jpg", "label": 1, "p_fake": rng.uniform(0.5, 1.0), "split": "val",
                     "dataset": "web", "source": ""})
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    pd.DataFrame(rows).to_csv(run_dir / "predictions.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps({"name": "r", "max_false_alarm": 0.1}))
    (run_dir / "status.json").write_text(json.dumps({"status": "complete"}))
    cal = evaluate.calibrate(run_dir)
    assert cal["false_alarm_by_group"]["web/b"] <= 0.1
    assert set(cal["false_alarm_by_group"]) == {"web", "web/a", "web/b"}


@pytest.mark.slow
def test_size_sweep_judges_each_image_at_each_source_size(trained):
    path, data = trained
    folder = evaluate.size_sweep(path, data, "test", sizes=(16, 48, 96))
    assert folder == path.parent / "_evals" / "ev" / "sizes" / "data-test"
    table = pd.read_csv(folder / "sizes.csv")
    assert list(table.columns) == evaluate.SIZES_COLUMNS
    acc = table[table["measure"] == "accuracy"].set_index("size")["rate"]
    assert list(acc.index) == [0, 16, 48, 96] and (table["n"][table["group"] == "all"] == 32).all()
    own = runs.get_run(path).predictions()
    own = own[own["split"] == "test"]
    served = evaluate.metrics(own.assign(p_fake=evaluate.apply_temperature(own["p_fake"].to_numpy(),
                                                                           runs.get_run(path).temperature)),
                              runs.get_run(path).threshold)["accuracy"]
    assert acc[0] == pytest.approx(served)  # native: the run's own recorded verdicts
    # the tiny model reads a checkerboard trace that a 16 px source wipes out: accuracy falls toward chance
    assert acc[0] >= 0.75 and acc[16] < acc[0] - 0.15
    assert not (path / "sizes.csv").exists()
    assert runs.get_run(path).sizes().equals(table)


# ---------------------------------------------------------------------------------------------- inconclusive band


def _near_threshold_errors(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores whose mistakes sit near 0.5: a band there raises accuracy, a band far from it cannot."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = np.where(y == 1, 2.5, -2.5) + rng.normal(0, 1.6, n)
    return y, 1 / (1 + np.exp(-z)), np.where(np.arange(n) % 2, "a", "b")


def test_fit_band_reaches_the_target_with_the_fewest_images_and_caps_each_group():
    y, p, groups = _near_threshold_errors()
    base = np.mean((p >= 0.5) == y)
    lo, hi = evaluate.fit_band(y, p, 0.5, groups, target=base + 0.02, max_share=0.2)
    assert lo < 0.5 < hi
    kept = (p < lo) | (p >= hi)
    assert np.mean((p[kept] >= 0.5) == y[kept]) >= base + 0.02
    for g in ("a", "b"):
        assert np.mean(~kept[groups == g]) <= 0.2
    # the fewest images: a band one image narrower on either side misses the target
    narrower = [(np.nextafter(lo, 1), hi), (lo, np.nextafter(hi, 0))]
    for a, b in narrower:
        k = (p < a) | (p >= b)
        if k.sum() > kept.sum():
            assert np.mean((p[k] >= 0.5) == y[k]) < base + 0.02
    # out of reach within the cap: the best band within it, never more than the cap per group
    lo, hi = evaluate.fit_band(y, p, 0.5, groups, target=0.9999, max_share=0.03)
    kept = (p < lo) | (p >= hi)
    assert np.mean(~kept) > 0 and all(np.mean(~kept[groups == g]) <= 0.03 for g in ("a", "b"))
    assert np.mean((p[kept] >= 0.5) == y[kept]) > base


def test_fit_band_gives_no_band_where_none_helps():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # every verdict right
    assert evaluate.fit_band(y, p, 0.5) == (0.5, 0.5)
    assert evaluate.fit_band(np.array([], int), np.array([]), 0.4) == (0.4, 0.4)


def test_band_outcome_and_risk_coverage():
    pred = pd.DataFrame({"label": [0, 0, 1, 1, 0, 1], "p_fake": [0.1, 0.55, 0.45, 0.9, 0.2, 0.8],
                         "dataset": ["a", "a", "a", "a", "b", "b"]})
    out = evaluate.band_outcome(pred, 0.5, (0.4, 0.6)).set_index("dataset")
    assert out.loc["a", "decided"] == 0.5 and out.loc["a", "accuracy"] == 0.5
    assert out.loc["a", "accuracy_decided"] == 1.0 and out.loc["a", "gain"] == 0.5
    assert out.loc["b", "decided"] == 1.0 and out.loc["b", "gain"] == 0.0
    assert evaluate.band_outcome(pred, 0.5, None)["decided"].eq(1.0).all()
    curve = evaluate.risk_coverage(pred, 0.5)
    a = curve[curve["dataset"] == "a"]
    # the images farthest from the threshold are decided first: right ones, then the two near it, wrong
    assert list(a["coverage"]) == [0.25, 0.5, 0.75, 1.0] and list(a["accuracy"]) == [1.0, 1.0, 2 / 3, 0.5]


def test_calibrate_writes_the_band_and_a_run_calibrated_before_bands_gets_the_same_one(tmp_path):
    y, p, groups = _near_threshold_errors(800, seed=3)
    pred = pd.DataFrame({"path": [f"{i}.jpg" for i in range(len(y))], "label": y, "p_fake": p,
                         "split": np.where(np.arange(len(y)) < 500, "val", "test"), "dataset": groups})
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    pred.to_csv(run_dir / "predictions.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps({"name": "r"}))
    run = runs.Run(run_dir)
    assert run.band is None and run.band_source is None  # not calibrated: served with no band
    cal = evaluate.calibrate(run_dir)
    assert cal["band_lo"] < cal["threshold"] < cal["band_hi"] and cal["band_rule"] == evaluate.BAND_RULE
    assert 0.94 <= cal["band_decided"] < 1 and cal["band_accuracy_decided"] > cal["accuracy_at_threshold"]
    assert 0 < cal["test_band_decided"] < 1
    assert run.band == (cal["band_lo"], cal["band_hi"]) and run.band_source == "calibration.json"
    # the same calibration without band fields (written before bands existed): the same band, fitted on load
    old = {k: v for k, v in json.loads((run_dir / "calibration.json").read_text()).items() if "band" not in k}
    (run_dir / "calibration.json").write_text(json.dumps(old))
    assert run.band == pytest.approx((cal["band_lo"], cal["band_hi"]))
    assert "predates bands" in run.band_source


def _default_test_predictions() -> tuple[runs.Run, pd.DataFrame]:
    from dfd import DEFAULT_RUN, MODELS_DIR

    run = runs.Run(MODELS_DIR / DEFAULT_RUN)
    if not (run.path / "predictions.csv").is_file():
        pytest.skip("no shipped default")
    pred = run.predictions(resolve=False)
    pred = pred[pred["split"] == "test"]
    return run, pred.assign(p_fake=evaluate.apply_temperature(pred["p_fake"].to_numpy(), run.temperature))


def test_the_shipped_default_band_leaves_nine_in_ten_of_every_test_set_decided():
    """The default's band (fitted on its val predictions when loaded, or from its calibration.json), on its own
    test predictions (read, never written): at least 90% of each dataset's test images get a verdict."""
    run, pred = _default_test_predictions()
    assert run.band is not None, "the shipped default serves an inconclusive band"
    out = evaluate.band_outcome(pred, run.threshold, run.band)
    assert (out["decided"] >= 0.90).all(), out.to_string()
    assert (out["decided"] < 1).any(), "the band decides something"


@pytest.mark.xfail(strict=True, reason="measured on the shipped default (wf-ms): its val-fitted band [0.586, 0.778) "
                   "raises test accuracy on the decided images by +4.93 points on faces-140k-mini, +2.28 on "
                   "modern-faces-128, but only +0.16 on lfw-faceswap, +0.59 on web-faces-256 and 0 on "
                   "real-and-fake-face (its fakes never learned: called real far from the threshold)")
def test_the_shipped_default_band_raises_accuracy_on_the_decided_images_by_a_point():
    run, pred = _default_test_predictions()
    out = evaluate.band_outcome(pred, run.threshold, run.band)
    assert (out["gain"] >= 0.01).all(), out.to_string()
