"""dfd.detect: face finding and cropping on real faces, bad input, calibration, thread safety, Grad-CAM,
and the accuracy check of the detect path against the images as they are (default model)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dfd import DEFAULT_RUN, MODELS_DIR, detect, imaging


def _jpeg_bytes(img: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _first(folder, pattern="*.jpg", n=1):
    files = sorted(folder.rglob(pattern))
    return files[:n] if n > 1 else files[0]


@pytest.fixture(scope="module")
def tiny_detector():
    """An untrained tiny CNN at 64 px: enough to test the plumbing (not the accuracy)."""
    import keras

    from dfd import models

    keras.utils.set_random_seed(0)
    return detect.Detector.from_model(models.build_model("tiny", 64), 64, threshold=0.5)


# ---------------------------------------------------------------------------------------------- cropping


def test_face_crop_is_a_square_with_margin_inside_the_image():
    crop = detect.face_crop((400, 300, 100, 100), (1000, 1200, 3))
    x, y, w, h = crop
    assert w == h == round(detect.MARGIN * 100)
    # centred on the box horizontally, lifted a little vertically
    assert abs((x + w / 2) - 450) <= 1
    assert (y + h / 2) < 350
    # near a border: shifted inside, same size
    x, y, w, h = detect.face_crop((5, 5, 100, 100), (1000, 1200, 3))
    assert (x, y) == (0, 0) and w == h == 180


def test_face_crop_of_a_face_that_fills_the_picture_is_the_whole_picture():
    # a training-style crop: the face box is ~0.66 of a 256 px image
    assert detect.face_crop((44, 50, 170, 170), (256, 256, 3)) == (0, 0, 256, 256)


def test_haar_finds_the_face_in_real_dataset_images_and_crops_like_training(faces140k, lfw):
    finder = detect.FaceFinder("haar")
    found = 0
    paths = _first(faces140k / "real-vs-fake" / "test", n=10) + _first(lfw / "Dataset" / "Test", n=10)
    for path in paths:
        img = imaging.load_image(path)
        boxes = finder.find(img)
        if boxes:
            found += 1
            x, y, w, h = boxes[0]
            assert 0.3 * img.shape[1] < w < 0.95 * img.shape[1], (path, boxes[0])
            # these images already are face crops: the crop judged is the whole image
            assert detect.face_crop(boxes[0], img.shape) == (0, 0, img.shape[1], img.shape[0])
    assert found >= 17, f"Haar found faces in only {found} of {len(paths)} face images"


def test_a_face_in_a_larger_picture_is_cropped_around_the_face(faces140k):
    face = imaging.load_image(_first(faces140k / "real-vs-fake" / "test" / "real"))
    canvas = np.full((900, 1200, 3), 120, np.uint8)
    canvas[500:756, 700:956] = face
    boxes = detect.FaceFinder().find(canvas)
    assert boxes, "no face found in a face pasted onto a plain background"
    x, y, w, h = detect.face_crop(boxes[0], canvas.shape)
    assert w == h and w < 600
    # the crop holds the pasted face's centre
    assert x < 828 < x + w and y < 628 < y + h


def test_each_face_of_a_two_face_picture_is_judged_on_its_own(tiny_detector, faces140k, lfw):
    a = imaging.load_image(_first(faces140k / "real-vs-fake" / "test" / "real"))
    b = imaging.load_image(_first(lfw / "Dataset" / "Test" / "Fake"))
    canvas = np.full((700, 1100, 3), 200, np.uint8)
    canvas[200:456, 80:336] = a
    canvas[150:400, 650:900] = b
    r = tiny_detector.analyse(_jpeg_bytes(canvas), name="two.jpg")
    assert r.ok and not r.whole_image and len(r.faces) == 2
    left, right = sorted(r.faces, key=lambda f: f.box[0])
    assert left.box[0] < 336 < right.box[0]
    assert left.crop[0] + left.crop[2] <= 650 and right.crop[0] >= 336  # each crop holds one face only
    # judged on its own: the same as judging that crop alone
    alone = tiny_detector.predict_arrays(imaging.prepare(detect.cut(r.image, right.crop), 64)[None])[0]
    assert right.p_fake == pytest.approx(float(alone), abs=1e-6)


# ---------------------------------------------------------------------------------------------- detector


def test_analyse_reports_bad_files_and_goes_on(tiny_detector, faces140k):
    good = _first(faces140k / "real-vs-fake" / "test" / "fake")
    data = good.read_bytes()
    items = [("good.jpg", data), ("truncated.jpg", data[: len(data) // 3]), ("notes.txt", b"hello, not an image"),
             ("empty.png", b""), ("path.jpg", str(good))]
    results = tiny_detector.analyse_many(items)
    assert [r.name for r in results] == [n for n, _ in items]
    assert results[0].ok and results[-1].ok
    assert results[2].error and "not an image" in results[2].error
    assert results[3].error and "empty" in results[3].error
    assert results[1].error is not None or results[1].ok  # PIL may decode a truncated JPEG partially
    assert results[0].faces[0].p_fake == pytest.approx(results[-1].faces[0].p_fake, abs=1e-6)
    table = detect.results_table(results, 0.5)
    assert list(table.loc[table["file"] == "notes.txt", "verdict"]) == ["error"]
    assert set(table["file"]) == {n for n, _ in items}


def test_no_face_means_whole_image_judged(tiny_detector):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    r = tiny_detector.analyse(_jpeg_bytes(img), name="noise.jpg")
    assert r.ok and r.whole_image and len(r.faces) == 1
    assert r.faces[0].crop == (0, 0, 300, 200)
    assert "whole image" in detect.results_table([r], 0.5)["note"].iloc[0]


def test_predict_arrays_is_the_model_output_and_the_same_as_analyse(tiny_detector, faces140k):
    path = _first(faces140k / "real-vs-fake" / "test" / "real")
    x = imaging.decode(path, 64)[None]
    direct = np.asarray(tiny_detector.model(x, training=False)).reshape(-1)
    assert tiny_detector.predict_arrays(x) == pytest.approx(direct, abs=1e-6)
    r = tiny_detector.analyse(path, find_faces=False)
    assert r.faces[0].p_fake == pytest.approx(float(direct[0]), abs=1e-6)


def test_temperature_and_threshold_are_applied(faces140k):
    import keras

    from dfd import models

    keras.utils.set_random_seed(1)
    model = models.build_model("tiny", 64)
    plain = detect.Detector.from_model(model, 64)
    hot = detect.Detector.from_model(model, 64, temperature=4.0, threshold=0.2)
    x = np.stack([imaging.decode(p, 64) for p in _first(faces140k / "real-vs-fake" / "test", n=8)])
    p, q = plain.predict_arrays(x), hot.predict_arrays(x)
    logit = np.log(p / (1 - p))
    assert q == pytest.approx(1 / (1 + np.exp(-logit / 4.0)), abs=1e-6)
    assert np.all(np.abs(q - 0.5) <= np.abs(p - 0.5) + 1e-9)  # T > 1 pulls towards 0.5
    assert detect.verdict(0.25, hot.threshold) == "fake" and detect.verdict(0.15, hot.threshold) == "real"


def test_threads_sharing_one_detector_get_the_same_answers(tiny_detector, faces140k):
    paths = _first(faces140k / "real-vs-fake" / "test", n=6)
    alone = [tiny_detector.analyse(p).faces[0].p_fake for p in paths]
    out: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            out[k] = [tiny_detector.analyse(p).faces[0].p_fake for p in paths]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert out[k] == pytest.approx(alone, abs=1e-6)


def test_gradcam_heatmap_and_boxes_drawn(tiny_detector, faces140k):
    img = imaging.load_image(_first(faces140k / "real-vs-fake" / "test" / "fake"))
    cam = tiny_detector.heatmap(img)
    assert cam.shape == (64, 64) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    overlay = tiny_detector.heatmap_overlay(img)
    assert overlay.shape == (64, 64, 3) and overlay.dtype == np.uint8
    canvas = np.full((600, 800, 3), 200, np.uint8)
    canvas[100:356, 300:556] = img
    r = tiny_detector.analyse(canvas, name="scene")
    drawn = detect.draw(r, 0.5)
    assert drawn.shape == canvas.shape
    assert not np.array_equal(drawn, canvas)  # something was drawn
    colour = detect.FAKE_COLOUR if r.faces[0].p_fake >= 0.5 else detect.REAL_COLOUR
    assert (drawn.reshape(-1, 3) == colour).all(axis=1).any()


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_heatmap_explains_the_served_verdict_by_default(tiny_detector, faces140k, temperature):
    """With no ``toward``, Grad-CAM explains the verdict the detector serves (calibrated P(fake) at the run's
    threshold), not the raw output at 0.5: here a threshold that puts them on opposite sides."""
    img = imaging.load_image(_first(faces140k / "real-vs-fake" / "test" / "real"))
    raw = float(np.ravel(tiny_detector.model(imaging.prepare(img, 64)[None], training=False))[0])
    served_p = float(detect.Detector.from_model(tiny_detector.model, 64, temperature=temperature)
                     .predict_arrays(imaging.prepare(img, 64))[0])
    threshold = (served_p + 1) / 2 if raw >= 0.5 else served_p / 2  # the served verdict flips the raw one
    det = detect.Detector.from_model(tiny_detector.model, 64, threshold=threshold, temperature=temperature)
    served = det.analyse(img, find_faces=False).faces[0].verdict
    assert served != ("fake" if raw >= 0.5 else "real")
    cam = det.heatmap(img)
    np.testing.assert_allclose(cam, det.heatmap(img, toward=served), atol=1e-6)
    other = "real" if served == "fake" else "fake"
    assert not np.allclose(cam, det.heatmap(img, toward=other), atol=1e-3), "the two classes' maps differ"


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "lite0_hf", "ensemble"])
def test_gradcam_reaches_feature_maps_inside_a_nested_trunk(arch, faces140k):
    """The Lite0 architectures keep their spatial features inside a nested model (the trunk), which Keras does
    not connect to the outer inputs (issue 22): the heatmap still comes from those maps, through a graph that
    gives the model's own output, for a single model and for each member of an ensemble."""
    import keras

    from dfd import models

    keras.utils.set_random_seed(0)
    size = 64 if arch == "efficientnet_lite0" else 128  # lite0_hf: its high-frequency tower works at 64 px
    if arch == "ensemble":
        model = models.ensemble([models.build_model("lite0_hf", size, view=64) for _ in range(2)])
    else:
        model = models.build_model(arch, size, **({"view": 64} if arch == "lite0_hf" else {}))
    det = detect.Detector.from_model(model, size, find_faces=False)
    img = imaging.load_image(_first(faces140k / "real-vs-fake" / "test" / "fake"))
    x = imaging.prepare(img, size)[None]
    explainers = det._explainers()
    assert len(explainers) == (2 if arch == "ensemble" else 1)
    members = models.ensemble_members(model) or [model]
    for (grad_model, head), member in zip(explainers, members, strict=True):
        *maps, pre = grad_model(x, training=False)
        assert all(len(m.shape) == 4 for m in maps) and maps[0].shape[-1] == models.LITE0_FEATURES  # the trunk's
        assert [m.shape[-1] for m in maps[1:]] == ([] if arch == "efficientnet_lite0" else [256])  # + the tower's
        p = 1 / (1 + np.exp(-(np.asarray(pre) @ np.asarray(head.kernel) + np.asarray(head.bias))))
        np.testing.assert_allclose(p, np.asarray(member(x, training=False)), atol=1e-5)
    maps = [det.heatmap(img, toward=t) for t in ("fake", "real")]
    for cam in maps:
        assert cam.shape == (size, size) and np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert any(cam.std() > 0 for cam in maps)
    assert det.heatmap_overlay(img).shape == (size, size, 3)


def test_gradcam_of_lite0_hf_shows_its_high_frequency_tower_too(faces140k):
    """lite0_hf's verdict comes from two pooled branches: the heatmap sums both. With the head's weights on the
    Lite0 trunk's features set to zero, only the high-frequency tower moves the verdict, and the map is still
    drawn from it (a trunk-only Grad-CAM is then empty); with the tower's weights zeroed instead, the map is the
    trunk's alone."""
    import keras

    from dfd import models

    keras.utils.set_random_seed(0)
    img = imaging.load_image(_first(faces140k / "real-vs-fake" / "test" / "fake"))

    def maps_with(zeroed: slice) -> list[np.ndarray]:
        model = models.build_model("lite0_hf", 128, view=64)
        head = model.get_layer("p_fake")
        kernel = head.kernel.numpy()
        kernel[zeroed] = 0.0
        head.kernel.assign(kernel)
        det = detect.Detector.from_model(model, 128, find_faces=False)
        return [det.heatmap(img, toward=t) for t in ("fake", "real")]

    tower_only = maps_with(slice(0, models.LITE0_FEATURES))
    assert any(cam.std() > 0.05 for cam in tower_only), "the tower's evidence is drawn"
    trunk_only = maps_with(slice(models.LITE0_FEATURES, None))
    assert any(cam.std() > 0.05 for cam in trunk_only)
    assert all(np.abs(a - b).mean() > 0.05 for a, b in zip(tower_only, trunk_only, strict=True)), \
        "the two branches draw different maps"


# ---------------------------------------------------------------------------------------------- accuracy check

SAMPLE_PER_CLASS = 100


def _default_run():
    from dfd import runs

    try:
        run = runs.default_run()
    except runs.RunError:
        pytest.skip(f"no default detector in {MODELS_DIR / DEFAULT_RUN} yet")
    if not run.has_model:
        pytest.skip(f"default run {run.path} has no model.keras")
    return run


@pytest.mark.slow
def test_detect_path_accuracy_matches_the_images_as_they_are(faces140k):
    """Face finding + margin crop must not cost more than 2 points of accuracy on the default model's own
    kind of test images (a fixed sample: 100 real + 100 fake from each shared test split it was trained on)."""
    from dfd import data

    run = _default_run()
    det = detect.Detector(run)
    shared = faces140k.parent
    trained_on = set(run.trained_on)
    frames = []
    for name in ("faces-140k-mini", "lfw-faceswap", "real-and-fake-face"):
        if trained_on and name not in trained_on:
            continue
        if (shared / name).exists():
            test = data.index_dataset(shared / name).split("test")
            frames.append(pd.concat([g.sample(min(SAMPLE_PER_CLASS, len(g)), random_state=0)
                                     for _, g in test.groupby("label")]))
    if not frames:
        pytest.skip(f"the default run was trained on {sorted(trained_on)}, none of which is in {shared}")
    frame = pd.concat(frames, ignore_index=True)
    as_is = det.predict_arrays(np.stack([imaging.decode(p, det.image_size) for p in frame["path"]]))
    via_detect = np.array([det.analyse(p).faces[0].p_fake for p in frame["path"]])  # largest face
    y = frame["label"].to_numpy()
    acc_as_is = float(np.mean((as_is >= det.threshold) == y))
    acc_detect = float(np.mean((via_detect >= det.threshold) == y))
    print(f"accuracy as is {acc_as_is:.3f}, through detect {acc_detect:.3f} on {len(frame)} images")
    assert acc_as_is > 0.6, "the default model should beat chance on its own test data"
    assert acc_detect >= acc_as_is - 0.02


def test_trained_on_text_names_the_fakes_a_run_has_seen(tmp_path):
    from dfd import runs

    run_dir = tmp_path / "logo"
    run_dir.mkdir()
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["lfw-faceswap", "modern-faces-128"],
                                                     "exclude_generators": ["sd2.1"]})
    text = detect.trained_on_text(runs.Run(run_dir))
    assert "classic face swaps of LFW photos (lfw-faceswap)" in text
    assert "StyleGAN2 faces from thispersondoesnotexist" in text
    assert text.count("without Stable Diffusion 2.1") == 1
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["lfw-faceswap", "real-and-fake-face"],
                                                     "reals_only": ["real-and-fake-face"]})
    text = detect.trained_on_text(runs.Run(run_dir))
    assert "photoshopped" not in text and "plus only the real photos of real-and-fake-face" in text
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["my-set"]})
    assert "trained on my-set." in detect.trained_on_text(runs.Run(run_dir))
    # a run that learned web-faces-256 names Flux.1-dev and SDXL as seen, and no longer lists them as unseen
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["web-faces-256"]})
    text = detect.trained_on_text(runs.Run(run_dir))
    assert "Flux.1-dev and SDXL portraits (web-faces-256)" in text
    assert "Flux," not in text and "SDXL," not in text and "DALL-E" in text
    runs.write_json_atomic(run_dir / "config.json", {"datasets_in_data": ["web-faces-256"],
                                                     "exclude_generators": ["flux1-dev"]})
    text = detect.trained_on_text(runs.Run(run_dir))
    assert "without Flux.1-dev" in text and "(other GANs, Flux, DALL-E" in text


# ---------------------------------------------------------------------------------------------- inconclusive


def test_verdict_keeps_its_signature_and_says_inconclusive_inside_a_band():
    assert detect.verdict(0.7, 0.6) == "fake" and detect.verdict(0.5, 0.6) == "real"
    band = (0.5, 0.8)
    assert [detect.verdict(p, 0.6, band) for p in (0.49, 0.5, 0.6, 0.79, 0.8)] == \
        ["real", "inconclusive", "inconclusive", "inconclusive", "fake"]
    assert detect.verdict(0.7, 0.6, band=None) == "fake"
    # a verdict a light re-save flips is inconclusive too, and says which re-save
    assert detect.judge(0.9, 0.6, band, {"JPEG q85": 0.95}) == ("fake", "")
    assert detect.judge(0.9, 0.6, band, {"JPEG q85": 0.95, "0.75x resize": 0.4}) == \
        ("inconclusive", "flips when re-saved (0.75x resize)")
    assert detect.judge(0.55, 0.6, band) == ("inconclusive", "near the threshold")
    # another threshold moves the band with it, keeping its width in logits
    moved = detect.band_at(band, 0.6, 0.3)
    lo, hi = (np.log(np.array(moved) / (1 - np.array(moved))) - np.log(0.3 / 0.7))
    assert (lo, hi) == pytest.approx(tuple(np.log(np.array(band) / (1 - np.array(band))) - np.log(0.6 / 0.4)))
    assert detect.band_at(None, 0.6, 0.3) is None and detect.band_at(band, 0.6, 0.6) == band


def test_a_face_near_the_threshold_is_inconclusive_and_checked_after_a_resave(tiny_detector, faces140k):
    path = _first(faces140k / "real-vs-fake" / "test" / "real")
    p = tiny_detector.analyse(path, find_faces=False).faces[0].p_fake
    near = detect.Detector.from_model(tiny_detector.model, 64, threshold=p, band=(p - 0.01, p + 0.01))
    face = near.analyse(path, find_faces=False).faces[0]
    assert face.verdict == "inconclusive" and face.reason.startswith("near the threshold")
    assert set(face.resaved) == {name for name, _ in detect.RESAVES}, "a face near the threshold is re-saved"
    img = imaging.load_image(path)
    jpeg = near.predict_arrays(imaging.prepare(imaging.jpeg_recompress(img, 85), 64)[None])[0]
    assert face.resaved["JPEG q85"] == pytest.approx(float(jpeg), abs=1e-6)
    far_threshold = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 3)))  # 3 logits away: not re-saved, decided
    far = detect.Detector.from_model(tiny_detector.model, 64, threshold=far_threshold, band=(0.0, 0.0))
    face = far.analyse(path, find_faces=False).faces[0]
    assert face.verdict == "real" and face.resaved == {} and face.reason == ""


def test_a_threshold_moved_next_to_a_face_rechecks_it_as_analyse_at_that_threshold_would(tiny_detector, faces140k):
    """The Detect page's slider: a result judged at one threshold, moved to another, is what analyse at the
    new one gives (the faces now near it re-save checked), and moving back keeps the check already made."""
    paths = [_first(faces140k / "real-vs-fake" / "test" / kind) for kind in ("real", "fake")]
    p = tiny_detector.analyse(paths[0], find_faces=False).faces[0].p_fake
    far_threshold = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 3)))  # 3 logits away: not checked there
    far = detect.Detector.from_model(tiny_detector.model, 64, threshold=far_threshold, band=(0.0, 0.0))
    first = [far.analyse(path, find_faces=False) for path in paths]
    assert first[0].faces[0].resaved == {}
    moved = [far.recheck(r, p) for r in first]
    direct = [far.analyse(path, threshold=p, find_faces=False) for path in paths]
    for got, want in zip(moved, direct, strict=True):
        for a, b in zip(got.faces, want.faces, strict=True):
            assert (a.verdict, a.reason, sorted(a.resaved)) == (b.verdict, b.reason, sorted(b.resaved))
            assert a.resaved == pytest.approx(b.resaved, abs=1e-6)
    assert set(moved[0].faces[0].resaved) == {name for name, _ in detect.RESAVES}, "checked at the new threshold"
    back = far.recheck(moved[0], far_threshold)
    assert back.faces[0].resaved == moved[0].faces[0].resaved and back.faces[0].verdict == "real"
    broken = detect.ImageResult(name="x", error="cannot read")
    assert far.recheck(broken, p) is broken


def test_results_table_is_a_record_with_integer_faces_and_what_judged_them(tiny_detector, faces140k):
    from dfd import __version__

    good = _first(faces140k / "real-vs-fake" / "test" / "fake")
    results = tiny_detector.analyse_many([("bad.txt", b"not pixels"), ("good.jpg", str(good))])
    off = tiny_detector.analyse(str(good), name="off.jpg", find_faces=False)
    table = detect.results_table([*results, off], 0.5, (0.4, 0.6), run="tiny", engine="keras")
    assert list(table.columns) == detect.TABLE_COLUMNS
    assert str(table["face"].dtype) == "Int64" and table["face"].isna().sum() == 1
    assert ",1.0," not in table.to_csv(index=False) and "\nbad.txt,," in table.to_csv(index=False)
    assert (table["run"] == "tiny").all() and (table["threshold"] == 0.5).all() and (table["band"] == "0.4000-0.6000").all()
    assert (table["engine"] == "keras").all() and (table["dfd_version"] == __version__).all()
    assert table["note"].iloc[-1] == "face finding off: whole image judged" and not off.looked_for_faces
    shown = detect.table_for_display(table)
    assert shown["face"].iloc[0] == "" and "None" not in shown.to_string() and "<NA>" not in shown.to_string()
    assert shown["p_fake"].iloc[1] == detect.p_text(results[1].faces[0].p_fake)


def test_one_rounding_of_p_fake_everywhere():
    assert detect.p_text(0.01553) == "0.016" and detect.p_text(0.0149) == "0.015" and detect.p_text(None) == ""
    r = detect.ImageResult(name="x", faces=[detect.FaceResult((0, 0, 10, 10), 0.01553, "real", (0, 0, 10, 10))],
                           whole_image=True, image=np.zeros((10, 10, 3), np.uint8))
    table = detect.results_table([r], 0.5)
    assert detect.table_for_display(table)["p_fake"].iloc[0] == "0.016"  # not 0.0155 rounded again to 0.015


def test_a_label_at_the_right_edge_is_drawn_whole_and_the_region_judged_is_outlined():
    import cv2

    img = np.zeros((400, 400, 3), np.uint8)
    face = detect.FaceResult(box=(372, 120, 26, 26), p_fake=0.49, verdict="real", crop=(350, 98, 47, 47))
    r = detect.ImageResult(name="edge", faces=[face], image=img)
    drawn = detect.draw(r, 0.5)
    label = f"1: {detect.p_text(0.49)}"
    (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    filled = (drawn[100:125] == detect.REAL_COLOUR).all(axis=2).any(axis=0)  # columns holding the label's fill
    assert filled.sum() >= tw + 6, "the whole label is on the picture"
    # the region judged (a square larger than the face box) is outlined too
    assert (drawn[98:100, 352:370] == detect.REAL_COLOUR).all(axis=2).any()


def test_the_region_judged_is_said_in_words():
    img = np.zeros((300, 300, 3), np.uint8)
    small_box = detect.FaceResult(box=(120, 60, 60, 40), p_fake=0.2, verdict="real", crop=(0, 0, 300, 300))
    r = detect.ImageResult(name="a", faces=[small_box], image=img)
    text = detect.region_text(r, small_box, 0)
    assert "whole picture judged (300x300 px" in text and "face 1's margin crop" in text
    cropped = detect.FaceResult(box=(100, 100, 40, 40), p_fake=0.2, verdict="real", crop=(84, 80, 72, 72))
    assert detect.region_text(detect.ImageResult("b", faces=[cropped], image=img), cropped, 0) == \
        "region judged: the 72x72 px square at (84, 80) around face 1 (outlined thin)"
    off = detect.ImageResult("c", faces=[small_box], image=img, whole_image=True, looked_for_faces=False)
    assert "face finding was off" in detect.region_text(off, small_box, 0)


def test_trained_on_sentences_name_each_dataset_once_and_tell_reals_only_apart():
    from types import SimpleNamespace

    demo = SimpleNamespace(name="demo-run", trained_on=["demo-v1"], config={})
    assert "trained on demo-v1." in detect.trained_on_text(demo) and "demo-v1 (demo-v1)" not in detect.trained_on_text(demo)
    mixed = SimpleNamespace(name="d", trained_on=["faces-140k-mini", "real-and-fake-face"],
                            config={"reals_only": ["real-and-fake-face"]})
    assert detect.trained_on_short(mixed) == "faces-140k-mini, and only the real photos of real-and-fake-face"
    assert detect.trained_on_short(demo) == "demo-v1"


def test_small_face_note_quotes_the_runs_size_sweep():
    """Which sizes get a note, and the figures in it, come from the run's sizes.csv rows."""
    from dfd import runs

    sizes = runs.get_run("default").sizes()
    acc = sizes[(sizes["group"] == "all") & (sizes["measure"] == "accuracy") & (sizes["domain"] == "in-domain")]
    rate = acc.set_index(["dataset", "size"])["rate"]
    swept = sorted(int(s) for s in acc["size"].unique() if s > 0)
    for side in (60, 96, 97, 128, 150, 192, 193, 256, 300, 512, 513, 1000):
        at = next((s for s in swept if s >= side), None)
        dropped = [] if at is None else [d for d in sorted(acc["dataset"].unique())
                                         if rate[(d, at)] <= rate[(d, 0)] - detect.SMALL_FACE_DROP]
        note = detect.small_face_note(sizes, side)
        assert bool(note) == bool(dropped), (side, note)
        for d in dropped:
            assert f"on {d} from {rate[(d, 0)]:.3f} (native size) to {rate[(d, at)]:.3f}" in note
        if note:
            assert note.startswith(f"Small face ({side} px across): with its test images brought to {at} px")
    assert detect.small_face_note(sizes, 120)  # the default judges face swaps at 128 px much worse (card)
    assert not detect.small_face_note(sizes, 256) and not detect.small_face_note(sizes, 2000)
    assert detect.small_face_note(sizes.iloc[0:0], 50) == ""
