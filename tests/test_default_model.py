"""The shipped detector (models/default): loads, clears its accuracy floors on real test images, serves the same
P(fake) everywhere, and its model card is its own files.

Every test image of each dataset the default was trained on is scored here (about 1,700 images, half a minute):
the same images as its recorded predictions.csv, so the floors below are checked on the served verdicts
(mirror-averaged, calibrated P(fake) at the run's threshold), not on a sample. Skipped, with the reason, where
../shared/data is absent.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import LFW, REPO, SHARED_DATA, need

from dfd import DEFAULT_RUN, MODELS_DIR

RUN_DIR = MODELS_DIR / DEFAULT_RUN
# Floors on the full test splits, at the served threshold. Issue 21's bars are faces-140k-mini 0.90,
# lfw-faceswap 0.96, modern-faces-128 0.94 with recall 0.93 on each of its generators, web-faces-256 0.93 with
# recall 0.90 on flux1-dev and sdxl and false alarms <= 0.05 on each of its real sources, and false alarms <= 0.06
# on every test split's reals. The shipped run (wf-ms, models/README.md) meets the web-faces-256, lfw-faceswap and
# false-alarm bars, held here at the bars; it does not meet faces-140k-mini (0.840), modern-faces-128 (0.923) and
# StyleGAN2 recall (0.848): those are held at what it reaches (a point under), so it cannot slip further unseen.
# The nearest test images to the threshold are about 0.001 from it.
ACCURACY_FLOORS = {"faces-140k-mini": 0.83, "lfw-faceswap": 0.96, "modern-faces-128": 0.915, "web-faces-256": 0.93}
RECALL_FLOORS = {("modern-faces-128", "stylegan2"): 0.84, ("modern-faces-128", "sd2.1"): 0.93,
                 ("web-faces-256", "flux1-dev"): 0.90, ("web-faces-256", "sdxl"): 0.90}
FALSE_ALARM_CEILINGS = {"faces-140k-mini": 0.06, "lfw-faceswap": 0.06, "modern-faces-128": 0.06,
                        "real-and-fake-face": 0.06, "web-faces-256": 0.06}
SOURCE_FALSE_ALARM_CEILINGS = {("web-faces-256", s): 0.05 for s in ("pixabay", "video-frames", "utkface")}
# The size sweep's bars: accuracy at 128 and 384 px within 4 points of native on every dataset, recall per
# generator at 128 px within 5 points of native. Met on the full test splits but for lfw-faceswap at 128 px
# (0.794 against 0.970 native: a swap's blending traces do not survive 128 px), held at what it reaches.
SIZE_ACCURACY_DROP = {128: 0.04, 384: 0.04}
SIZE_ACCURACY_DROP_EXCEPTIONS = {("lfw-faceswap", 128): 0.19}
SIZE_RECALL_DROP = {128: 0.05}


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


@pytest.fixture(scope="module")
def scored(run, model) -> pd.DataFrame:
    """Every test image of the default's datasets scored now: raw and served P(fake)."""
    from dfd.data import index_dataset
    from dfd.evaluate import apply_temperature, predict_frame, predictor

    test = index_dataset(need(SHARED_DATA)).split("test")
    test = test[test["dataset"].isin(run.trained_on)]
    pred, errors = predict_frame(predictor(model, run.image_size, tta=run.tta), test, run.image_size, 64)
    assert not errors
    return pred.assign(served=apply_temperature(pred["p_fake"].to_numpy(), run.temperature))


def test_run_folder_is_complete_and_small(run):
    for name in ("config.json", "model.keras", "predictions.csv", "metrics.json", "status.json",
                 "calibration.json", "robustness.csv", "robustness_by_dataset.csv", "cross_dataset.csv", "sizes.csv",
                 "tflite.json", "runs_compared.csv", "model_float32.tflite", "export.json"):
        assert (RUN_DIR / name).is_file(), f"models/default/{name} is missing"
    history = run.history()
    assert len(history) and {"loss", "val_loss", "val_auc"} <= set(history.columns)
    assert run.status == "complete"
    assert run.config["pretrained"] and run.architecture == "lite0_hf"
    assert (RUN_DIR / "model.keras").stat().st_size <= 25 * 2**20
    assert 0.0 < run.threshold < 1.0
    assert run.config["train_seconds"] <= 2.5 * 3600, "the default's whole recipe must train in 2 h 30 min here"
    assert not run.config.get("teacher"), "one run is the whole recipe (no teachers to train first)"
    assert not list(RUN_DIR.rglob("*.jpg")) and not list(RUN_DIR.rglob("*.png")), "no images in a run folder"


def test_model_interface(model, run):
    size = run.image_size
    assert tuple(model.input_shape[1:]) == (size, size, 3)
    out = np.asarray(model(np.zeros((2, size, size, 3), np.float32), training=False))
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))


def test_recorded_predictions_are_this_models(scored, run):
    """predictions.csv was written by this model: every test image re-scored gives the same P(fake). The recorded
    paths are resolved against the ../shared/data these tests score (by default they resolve to the folder the
    run was trained on, which a clone elsewhere need not share)."""
    import os

    from dfd.runs import resolve_paths

    own = run.predictions(resolve=False).query("split == 'test'")
    own.index = [os.path.realpath(p) for p in resolve_paths(own["path"].tolist(), SHARED_DATA, own["dataset"].tolist())]
    own = own["p_fake"]
    now = scored.set_index(scored["path"].map(os.path.realpath))["p_fake"]
    unmatched = sorted(set(own.index) ^ set(now.index))
    assert len(own) == len(now) and not unmatched, f"{len(unmatched)} images differ, e.g. {unmatched[:3]}"
    np.testing.assert_allclose(now.loc[own.index].to_numpy(), own.to_numpy(), atol=2e-3)


@pytest.mark.parametrize("dataset", sorted(ACCURACY_FLOORS))
def test_accuracy_on_each_test_split(dataset, scored, run):
    part = scored[scored["dataset"] == dataset]
    assert len(part) >= 300
    acc = float(((part["served"] >= run.threshold) == part["label"]).mean())
    assert acc >= ACCURACY_FLOORS[dataset], f"{dataset}: served accuracy {acc:.3f} < {ACCURACY_FLOORS[dataset]}"


def test_recall_per_generator_and_false_alarms_on_reals(scored, run):
    from dfd.evaluate import generator_rates

    rates = generator_rates(scored.assign(p_fake=scored["served"]), run.threshold)
    got = {(r.dataset, r.group): r.rate for r in rates.itertuples()}
    for key, floor in RECALL_FLOORS.items():
        assert got[key] >= floor, f"recall on {key}: {got[key]:.3f} < {floor}"
    for key, ceiling in SOURCE_FALSE_ALARM_CEILINGS.items():
        assert got[key] <= ceiling, f"false alarms on {key} reals: {got[key]:.3f}"
    for dataset, ceiling in FALSE_ALARM_CEILINGS.items():
        part = scored[(scored["dataset"] == dataset) & (scored["label"] == 0)]
        rate = float((part["served"] >= run.threshold).mean())
        assert len(part) >= 150 and rate <= ceiling, f"false alarms on {dataset} reals: {rate:.3f}"


@pytest.fixture(scope="module")
def sweep(run, model, scored) -> pd.DataFrame:
    """Every test image brought to 128 and 384 px (area down, bicubic up, JPEG q90) and judged as served, beside
    its native verdict: the rows of a size sweep (dfd.evaluate.size_rows)."""
    from dfd import imaging
    from dfd.evaluate import apply_temperature, predict_frame, predictor, size_rows

    predict = predictor(model, run.image_size, tta=run.tta)
    rows = size_rows(scored.assign(p_fake=scored["served"]), run.threshold, 0)
    for px in sorted({*SIZE_ACCURACY_DROP, *SIZE_RECALL_DROP}):
        pred, errors = predict_frame(predict, scored, run.image_size, 64,
                                     source_transform=lambda img, px=px: imaging.at_size(img, px))
        assert not errors
        rows += size_rows(pred.assign(p_fake=apply_temperature(pred["p_fake"].to_numpy(), run.temperature)),
                          run.threshold, px)
    return pd.DataFrame(rows)


def test_verdicts_hold_across_face_sizes(sweep):
    rate = sweep.set_index(["dataset", "group", "measure", "size"])["rate"]
    accuracy = rate.xs(("all", "accuracy"), level=("group", "measure")).unstack("size")
    assert len(accuracy) == 5
    for dataset, row in accuracy.iterrows():
        for px, allowed in SIZE_ACCURACY_DROP.items():
            allowed = SIZE_ACCURACY_DROP_EXCEPTIONS.get((dataset, px), allowed)
            assert row[0] - row[px] <= allowed, f"{dataset} at {px} px: {row[px]:.3f} against {row[0]:.3f} native"
    recall = sweep[(sweep["measure"] == "recall") & ~sweep["group"].isin(["fakes"])]
    recall = recall.set_index(["dataset", "group", "size"])["rate"].unstack("size")
    assert len(recall) == 4, recall  # SD 2.1, StyleGAN2, Flux.1-dev, SDXL
    for key, row in recall.iterrows():
        for px, allowed in SIZE_RECALL_DROP.items():
            assert row[0] - row[px] <= allowed, f"{key} recall at {px} px: {row[px]:.3f} against {row[0]:.3f}"


def test_shipped_size_sweep_is_every_test_image(run, sweep):
    """sizes.csv (the card's table and the Evaluation page's chart) covers the full test splits, and its native,
    128 and 384 px rows are the verdicts scored now."""
    shipped = run.sizes()
    now = sweep.set_index(["size", "dataset", "group", "measure"])
    kept = shipped[shipped["size"].isin(now.index.get_level_values("size").unique())]
    kept = kept.set_index(["size", "dataset", "group", "measure"])
    assert len(kept) == len(now)
    assert (kept["n"] == now.loc[kept.index, "n"]).all(), "sizes.csv counts every test image"
    np.testing.assert_allclose(kept["rate"].astype(float), now.loc[kept.index, "rate"].astype(float), atol=0.005)


def test_detector_and_cli_predict_agree(run):
    """The app's Detector and ``python -m dfd predict`` give the same P(fake) for the same image."""
    from dfd.data import index_dataset
    from dfd.detect import Detector

    test = index_dataset(need(LFW)).split("test")
    paths = [test[test["label"] == k]["path"].iloc[0] for k in (0, 1)]
    detector = Detector(DEFAULT_RUN)
    app = [detector.analyse(p).faces[0].p_fake for p in paths]
    out = subprocess.run([sys.executable, "-m", "dfd", "predict", *paths, "--csv", "-"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = pd.read_csv(io.StringIO(out.stdout))
    cli = [float(table[table["file"] == p]["p_fake"].iloc[0]) for p in paths]  # face 1 of each file
    np.testing.assert_allclose(cli, app, atol=2e-4)  # the CLI rounds to 4 decimals


def test_default_is_served_through_its_own_tflite_export(scored, run):
    """The shipped float32 TFLite file is this model.keras (export.json's SHA-256), so the app serves it, and it
    gives the Keras model's served P(fake) on real test images of every dataset."""
    from dfd.detect import Detector
    from dfd.imaging import decode

    detector = Detector(DEFAULT_RUN)
    assert detector.engine == "tflite"
    sample = scored.groupby("dataset", group_keys=False).apply(lambda g: g.sample(8, random_state=0))
    x = np.stack([decode(p, run.image_size) for p in sample["path"]])
    np.testing.assert_allclose(detector.predict_arrays(x), sample["served"].to_numpy(), atol=1e-5)


def test_one_detector_shared_by_threads_gives_each_call_its_own_answer(run):
    """The app shares one Detector (TFLite interpreter, face finders) between sessions: calls from four threads
    at once give exactly what each image gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    from dfd.data import index_dataset
    from dfd.detect import Detector

    test = index_dataset(need(LFW)).split("test")
    paths = list(test.groupby("label").head(3)["path"])
    detector = Detector(DEFAULT_RUN)
    assert detector.engine == "tflite"
    alone = [detector.analyse(p).faces[0].p_fake for p in paths]
    assert len(set(np.round(alone, 6))) == len(alone), "the images must differ for the test to mean anything"
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: detector.analyse(p).faces[0].p_fake, paths * 4))
    assert together == pytest.approx(alone * 4, abs=1e-9)


def test_gradcam_on_the_default_explains_real_test_faces_and_a_failure_leaves_it_whole(run, faces140k, monkeypatch):
    """Issue 22: Grad-CAM on the shipped default (lite0_hf: its spatial features sit inside the nested Lite0
    trunk). On real test faces the map has the input size, values 0..1, finite and not flat, it comes from a
    graph that gives the model's own P(fake), and a fake face's map toward "fake" is not its map toward "real".
    A build that fails (forced here) raises one clear line on every call and leaves the shared detector able to
    build on the next call, not half-built."""
    from dfd import detect, models
    from dfd.data import index_dataset
    from dfd.imaging import prepare

    test = index_dataset(faces140k).split("test")
    paths = [test[test["label"] == k]["path"].iloc[0] for k in (1, 0)]
    detector = detect.Detector(DEFAULT_RUN)
    results = [detector.analyse(p) for p in paths]
    crops = [detect.cut(r.image, r.faces[0].crop) for r in results]

    def broken(model):
        raise ValueError("forced failure\nsecond line of a long Keras message")

    monkeypatch.setattr(models, "pooled_maps", broken)
    for _ in range(2):  # every call says so, none falls through to OpenCV on an empty map
        with pytest.raises(detect.HeatmapUnavailable, match="forced failure") as failed:
            detector.heatmap_overlay(crops[0])
        assert "\n" not in str(failed.value) and DEFAULT_RUN in str(failed.value)
    monkeypatch.undo()

    size = run.image_size
    (grad_model, head), = detector._explainers()
    *maps, pre = grad_model(prepare(crops[0], size)[None], training=False)
    assert [m.shape[1:] for m in maps] == [(8, 8, 1280), (8, 8, 256)], "the trunk's and the tower's spatial maps"
    p = 1 / (1 + np.exp(-(np.asarray(pre) @ np.asarray(head.kernel) + np.asarray(head.bias))))
    np.testing.assert_allclose(p, np.asarray(detector.model(prepare(crops[0], size)[None], training=False)),
                               atol=1e-5)
    for crop in crops:
        for toward in ("fake", "real"):
            cam = detector.heatmap(crop, toward=toward)
            assert cam.shape == (size, size) and cam.dtype == np.float32
            assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() == pytest.approx(1)
            assert cam.std() > 0.05, f"a flat map toward {toward}"
    assert results[0].faces[0].p_fake >= detector.threshold, "the fake test face is judged fake"
    to_fake, to_real = (detector.heatmap(crops[0], toward=t) for t in ("fake", "real"))
    assert np.abs(to_fake - to_real).mean() > 0.1
    assert np.corrcoef(to_fake.ravel(), to_real.ravel())[0, 1] < 0.5
    np.testing.assert_allclose(detector.heatmap(crops[0]), to_fake, atol=1e-6)  # the served verdict: fake
    overlay = detector.heatmap_overlay(crops[0])
    assert overlay.shape == (size, size, 3) and overlay.dtype == np.uint8


def test_cross_dataset_table_shows_how_far_detectors_travel(run):
    """cross_dataset.csv: the default on every test split it was trained on (its own recorded predictions at its
    threshold, so the table is not stale), and runs trained without Flux.1-dev and without SDXL scored on the
    generator each never saw."""
    from dfd.evaluate import apply_temperature, metrics

    table = pd.read_csv(RUN_DIR / "cross_dataset.csv")
    mine = table[table["run"].isin([run.name, run.config["name"]])].set_index("dataset")  # made before shipping
    pred = run.predictions().query("split == 'test'")
    for dataset in run.trained_on:
        part = pred[pred["dataset"] == dataset]
        m = metrics(part.assign(p_fake=apply_temperature(part["p_fake"].to_numpy(), run.temperature)), run.threshold)
        reals_only = dataset in (run.config.get("reals_only") or [])
        assert mine.loc[dataset, "domain"] == ("reals only" if reals_only else "in-domain")
        assert mine.loc[dataset, "n"] == m["n"]
        assert mine.loc[dataset, "accuracy"] == pytest.approx(m["accuracy"], abs=2e-3)
        assert mine.loc[dataset, "roc_auc"] == pytest.approx(m["roc_auc"], abs=2e-3)
    unseen = table[table["domain"] == "unseen generator"].set_index("dataset")
    assert set(unseen.index) == {"web-faces-256 / flux1-dev", "web-faces-256 / sdxl"}
    assert set(unseen["run"]) == {"logo-flux", "logo-sdxl"}
    # What the card says of them: a minority caught at the served threshold, yet ranked well above the reals.
    assert (unseen["recall"] < 0.5).all() and (unseen["roc_auc"] >= 0.9).all(), unseen
    assert (table["domain"] == "out-of-domain").any(), "no row shows a model on data it never saw"


def test_runs_compared_row_of_the_default_is_its_own_files(run):
    """runs_compared.csv holds every candidate; the shipped run's row is what ``card --compare`` computes from
    its files now (validation figures it was chosen on, test figures), and it had the best validation
    accuracy at the served threshold of the candidates trained on the same data (so scored on the same
    validation images)."""
    from dfd import card

    table = pd.read_csv(RUN_DIR / "runs_compared.csv", dtype=str)
    now = card.compare([run]).astype(str).iloc[0]
    mine = table[table["run"] == run.config["name"]]
    assert len(mine) == 1 and len(table) >= 2
    expected = now.drop("run").reindex(mine.columns.drop("run")).fillna("-").to_dict()
    assert mine.iloc[0].drop("run").to_dict() == expected
    for key, value in run.config.get("arch_kwargs", {}).items():  # e.g. "view 256": what sets it apart
        assert f"{key} {value}" in mine.iloc[0]["architecture"]
    # the candidates: the same data, none left out (a dataset weighting is the same data, seen more often)
    same_data = table[table["trained on"].str.startswith(mine.iloc[0]["trained on"])
                      & ~table["trained on"].str.contains("(without", regex=False)]
    assert len(same_data) >= 2
    assert float(mine.iloc[0]["val acc"]) == max(same_data["val acc"].astype(float))


def test_card_says_why_the_default_was_kept_over_the_other_candidate(run):
    """The card's sentence on the two candidates quotes runs_compared.csv."""
    text = " ".join((REPO / "models" / "README.md").read_text().split())
    table = pd.read_csv(RUN_DIR / "runs_compared.csv", dtype=str).set_index("run")
    me, other = table.loc[run.config["name"]], table.loc["dw-f25-l15"]
    assert "faces-140k-mini x2.5, lfw-faceswap x1.5 an epoch" in other["trained on"]
    assert (f"higher pooled validation accuracy at its served threshold ({me['val acc']} against "
            f"{other['val acc']}; validation ROC AUC {me['val ROC AUC']} both)") in text
    assert me["val ROC AUC"] == other["val ROC AUC"] and float(me["val acc"]) > float(other["val acc"])
    assert (f"moves faces-140k-mini from {me['faces-140k-mini acc']} to {other['faces-140k-mini acc']} but "
            f"lfw-faceswap from {me['lfw-faceswap acc']} to {other['lfw-faceswap acc']}") in text
    bars = {"faces-140k-mini acc": 0.90, "modern-faces-128 acc": 0.94, "stylegan2 recall": 0.93}
    assert not any(float(other[k]) >= b for k, b in bars.items())  # "clears none of the bars wf-ms misses"
    assert "five epochs instead of six" in text and other["epochs"] == "5" and me["epochs"] == "6"


def test_model_card_is_the_runs_own_files(run):
    """Every table of models/README.md equals what dfd.card makes from the run's files, cell by cell."""
    from dfd import card

    problems = card.check((REPO / "models" / "README.md").read_text(), run)
    assert not problems, "\n".join(problems)


def test_card_check_finds_a_stale_cell_and_fill_remakes_it(run, tmp_path):
    """A card whose table quotes an old figure fails the check, naming the section; ``card --fill`` prints the
    card with that table remade from the run's files and every other line as it was."""
    from dfd import card

    text = (REPO / "models" / "README.md").read_text()
    body = card.MARK.search(text[text.index("<!-- dfd-card:datasets -->"):])["body"]
    row = next(line for line in body.splitlines() if line.startswith("| faces-140k-mini"))
    cells = row.split("|")
    cells[3] = " 0.999 "  # the accuracy cell, as if quoted from another run
    stale_row = "|".join(cells)
    assert stale_row != row
    stale = text.replace(row, stale_row, 1)
    problems = card.check(stale, run)
    assert len(problems) == 1 and "'datasets'" in problems[0]
    path = tmp_path / "card.md"
    path.write_text(stale)
    out = subprocess.run([sys.executable, "-m", "dfd", "card", "default", "--fill", str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == text


def test_card_sentences_quote_the_runs_files(run):
    """What the card's prose says of the run is its files: the run's name and minutes, which bars are met."""
    text = " ".join((REPO / "models" / "README.md").read_text().split())
    minutes = round(run.config["train_seconds"] / 60)
    assert f"as run `{run.config['name']}`, in one run of {minutes} min: the whole recipe" in text
    table = pd.read_csv(RUN_DIR / "runs_compared.csv").set_index("run")
    row = pd.to_numeric(table.loc[run.config["name"]], errors="coerce")
    met = {"lfw-faceswap": row["lfw-faceswap acc"] >= 0.96, "web-faces-256": row["web-faces-256 acc"] >= 0.93,
           "faces-140k-mini": row["faces-140k-mini acc"] >= 0.90, "modern-faces-128": row["modern-faces-128 acc"] >= 0.94,
           "StyleGAN2": row["stylegan2 recall"] >= 0.93}
    assert met == {"lfw-faceswap": True, "web-faces-256": True, "faces-140k-mini": False, "modern-faces-128": False,
                   "StyleGAN2": False}, met
    assert "**Not met**: faces-140k-mini (>= 0.90), modern-faces-128 (>= 0.94) and its StyleGAN2 recall" in text
    assert min(row["flux1-dev recall"], row["sdxl recall"]) >= 0.90
    assert max(row[f"{s} false alarms"] for s in ("pixabay", "video-frames", "utkface")) <= 0.05
    assert max(row[c] for c in table.columns if c.endswith("false alarms")) <= 0.06
    sizes = run.sizes().set_index(["dataset", "group", "measure", "size"])["rate"]
    lfw = sizes.loc[("lfw-faceswap", "all", "accuracy")]
    assert f"**Not met**: lfw-faceswap at 128 px ({lfw[128]:.3f} against {lfw[0]:.3f} native)" in text


def test_card_data_table_counts_the_images_the_run_learned_from(run):
    """The card's Data table (hand-written prose cells) gives, per dataset, the real / fake counts of train, val
    and test and the SD 2.1 fakes among them: those of the split the run's own config makes of ../shared/data."""
    import re

    from dfd.train import TrainConfig, _checked, settings_of

    # (its teachers, if any, are not needed to make the split, and are not shipped)
    cfg = TrainConfig.from_dict({**settings_of(run.config), "data": str(need(SHARED_DATA)), "teacher": None})
    frame = _checked(cfg)[3]
    text = (REPO / "models" / "README.md").read_text()
    table = text[text.index("## Data"):]
    table = table[table.index("| dataset |"):table.index("\n\n", table.index("| dataset |"))]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in table.splitlines()[2:])}
    assert set(rows) == set(run.trained_on)
    for dataset, cells in rows.items():
        part = frame[frame["dataset"] == dataset]
        for cell, split in zip(cells[3:6], ("train", "val", "test"), strict=True):
            rows_ = part[part["split"] == split]
            counts = f"{(rows_['label'] == 0).sum()} / {(rows_['label'] == 1).sum()}"
            assert cell.startswith(counts), (dataset, split, cell, counts)
            sd = re.search(r"\((\d+) (?:of them )?SD 2\.1\)", cell)
            if sd or (rows_["generator"] == "sd2.1").any():
                assert sd and int(sd.group(1)) == (rows_["generator"] == "sd2.1").sum(), (dataset, split, cell)


def test_int8_export_is_within_one_point_of_keras(run):
    """Issue 11's bar, on the figures bench/tflite.py recorded (tflite.json), and the card's sentence on them."""
    engines = {e["engine"]: e for e in json.loads((run.path / "tflite.json").read_text())["engines"]}
    keras, int8 = engines["keras"], engines["tflite_int8"]
    assert keras["n"] == int8["n"] >= 800
    assert abs(int8["accuracy"] - keras["accuracy"]) <= 0.01
    right = f"{round(int8['accuracy'] * int8['n'])} and {round(keras['accuracy'] * keras['n'])} of these {keras['n']}"
    text = (REPO / "models" / "README.md").read_text()
    assert f"({int8['accuracy']:.3f} vs {keras['accuracy']:.3f} for Keras: {right}" in " ".join(text.split())
