"""Test clips made from real face photos: each face moves and changes size on a plain background, written with
OpenCV's VideoWriter (mp4v: the MPEG-4 Part 2 encoder the opencv-python wheel ships). Used by the video tests and
bench/video_throughput.py; clips go to a temporary folder, never into the repo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dfd import MODELS_DIR, imaging

BACKGROUND = (128, 128, 128)


@dataclass(frozen=True)
class Segment:
    """``seconds`` of one face (RGB): its centre moves from ``start`` to ``end`` (fractions of the frame) and its
    side goes from ``side[0]`` to ``side[1]`` (fraction of the frame height)."""

    face: np.ndarray
    seconds: float
    start: tuple[float, float] = (0.35, 0.5)
    end: tuple[float, float] = (0.65, 0.5)
    side: tuple[float, float] = (0.55, 0.75)


def frames(segments: Sequence[Segment], size: tuple[int, int] = (640, 360), fps: float = 15.0):
    """The clip's frames (RGB uint8), one at a time."""
    w, h = size
    for seg in segments:
        n = max(1, round(seg.seconds * fps))
        for i in range(n):
            a = i / max(1, n - 1)
            side = int(round(h * (seg.side[0] + a * (seg.side[1] - seg.side[0]))))
            cx = w * (seg.start[0] + a * (seg.end[0] - seg.start[0]))
            cy = h * (seg.start[1] + a * (seg.end[1] - seg.start[1]))
            canvas = np.empty((h, w, 3), np.uint8)
            canvas[:] = BACKGROUND
            face = cv2.resize(seg.face, (side, side), interpolation=cv2.INTER_AREA if side < seg.face.shape[0]
                              else cv2.INTER_LINEAR)
            x0 = int(round(min(max(cx - side / 2, 0), w - side)))
            y0 = int(round(min(max(cy - side / 2, 0), h - side)))
            canvas[y0:y0 + side, x0:x0 + side] = face
            yield canvas


def write_clip(path: Path, segments: Sequence[Segment], size: tuple[int, int] = (640, 360), fps: float = 15.0,
               fourcc: str = "mp4v") -> Path:
    """Write the clip to ``path``; return it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} to {path}")
    try:
        for rgb in frames(segments, size, fps):
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def surest_pair(faces140k: Path, dataset: str = "web-faces-256") -> tuple[np.ndarray, np.ndarray, float, float]:
    """(fake, real, their recorded P(fake)): the ``dataset`` test fake the shipped default is surest of and
    the test real it is surest of, by its recorded predictions.csv (``faces140k``'s parent holds the data)."""
    preds = pd.read_csv(MODELS_DIR / "default" / "predictions.csv")
    test = preds[(preds["split"] == "test") & (preds["dataset"] == dataset)]
    fake = test[test["label"] == 1].nlargest(1, "p_fake").iloc[0]
    real = test[test["label"] == 0].nsmallest(1, "p_fake").iloc[0]
    root = faces140k.parent
    return (imaging.load_image(root / fake["path"]), imaging.load_image(root / real["path"]),
            float(fake["p_fake"]), float(real["p_fake"]))


def fake_then_real(fake: np.ndarray, real: np.ndarray, seconds: float = 3.0,
                   same_place: bool = False) -> list[Segment]:
    """``seconds`` of the fake face moving right and growing, then as long of the real one: apart (no overlap),
    or with ``same_place`` coming in where the fake one left (only their looks tell them apart)."""
    if same_place:
        return [Segment(fake, seconds, (0.35, 0.45), (0.5, 0.5), (0.55, 0.75)),
                Segment(real, seconds, (0.5, 0.5), (0.6, 0.45), (0.75, 0.6))]
    return [Segment(fake, seconds, (0.25, 0.45), (0.35, 0.55), (0.55, 0.75)),
            Segment(real, seconds, (0.7, 0.5), (0.75, 0.45), (0.7, 0.55))]
