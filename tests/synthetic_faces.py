"""Test data for the engine tests: real face photos with and without a generator-like trace.

"real" = a face from ../shared/data resized to ``size`` px; "fake" = another face with a 2x2 checkerboard
(amplitude ``amp``) added, the periodic trace transposed-convolution upsampling leaves in GAN images.
A tiny CNN learns the difference within a few epochs, so a training test can assert real learning.
Written in the 140k split layout to a temporary folder (never into the repo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dfd import imaging


def checkerboard(img: np.ndarray, amp: float) -> np.ndarray:
    h, w = img.shape[:2]
    pattern = np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0, amp, -amp)
    return np.clip(img.astype(np.float32) + pattern[..., None], 0, 255).astype(np.uint8)


def make_faces(dest: Path, source: Path, counts: dict[str, int], size: int = 48, amp: float = 14.0) -> Path:
    """Write ``counts[split]`` images per class for splits train/valid/test under ``dest``; return ``dest``."""
    files = sorted(p for p in source.rglob("*.jpg"))
    need = 2 * sum(counts.values())
    if len(files) < need:
        raise RuntimeError(f"need {need} source images in {source}, found {len(files)}")
    it = iter(files[:need])
    for split, n in counts.items():
        for cls in ("real", "fake"):
            folder = dest / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = imaging.resize(imaging.load_image(next(it)), size)
                if cls == "fake":
                    img = checkerboard(img, amp)
                Image.fromarray(img).save(folder / f"{cls}_{i:04d}.png")
    return dest
