"""The built-in demo dataset: synthetic faces with a known GAN fingerprint, generated in seconds.

It exists so a fresh machine has something to explore and train on with no download; it says nothing about
real deepfakes. Both classes are procedurally drawn cartoon faces (skin-tone face ellipse, eyes, brows, nose,
mouth, hair, neck and shoulders on varied backgrounds, with random pose, tilt and lighting), drawn the same way:

- **real**: the face rendered at full resolution, plus a little sensor noise;
- **fake**: a face rendered the same way, then passed through a *generator-like* step, as if a GAN had made
  the whole picture: downsampled by 2 and upsampled again by a stride-2 transposed convolution with uneven
  kernel overlap, as GAN decoders do. This leaves the classic checkerboard: a periodic artifact with a period
  of 2 pixels (about 10% in brightness), which shows as peaks at the edge centres (and, weaker, the corners)
  of the centred Fourier spectrum (:func:`dfd.imaging.log_spectrum`), and a slightly softer picture.

Both classes go through the same sensor noise and are saved with the same JPEG quality, so the only difference
is the fingerprint. Train at ``image_size`` equal to (or larger than) the demo ``size``: shrinking the images
averages the 2-pixel checkerboard away.

Everything is seeded: the same ``seed`` and parameters give byte-identical files (with the same OpenCV build,
whose JPEG encoder writes them). The layout is the
"140k Real and Fake Faces" one: ``<dest>/real-vs-fake/{train,valid,test}/{real,fake}/*.jpg``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np

DEMO_VERSION = 1
DEFAULT_N_PER_CLASS = 300
DEFAULT_SIZE = 128
JPEG_QUALITY = 92
SPLIT_FRACTIONS = (("train", 0.70), ("valid", 0.15), ("test", 0.15))
# Transposed-convolution kernel of the "generator": [a, 1, a] with a > 0.5 (0.5 would be exact bilinear
# interpolation). The odd output pixels get 2a times the signal of the even ones: a 2-pixel checkerboard.
GENERATOR_TAP = 0.55
SENSOR_NOISE = 2.0
MANIFEST = "demo.json"

_SKIN_TONES = np.array([  # RGB
    (255, 224, 196), (241, 194, 158), (224, 172, 132), (198, 134, 96), (161, 102, 68), (122, 78, 50), (90, 58, 40),
], dtype=np.float32)
_HAIR_COLOURS = np.array([
    (20, 16, 14), (58, 38, 26), (104, 70, 40), (170, 128, 70), (222, 190, 120), (160, 60, 30), (150, 150, 150),
], dtype=np.float32)
_EYE_COLOURS = np.array([(70, 45, 25), (40, 90, 140), (60, 110, 60), (100, 80, 50), (30, 30, 30)], dtype=np.float32)


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float = 12.0) -> tuple[int, int, int]:
    c = np.clip(colour + rng.normal(0.0, amount, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A varied background: a two-colour gradient in a random direction, plus soft blobs or stripes."""
    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)[..., None]
    img = (c1 * (1 - t) + c2 * t).astype(np.float32)
    kind = rng.integers(0, 3)
    if kind == 1:  # soft blobs (out-of-focus scene)
        for _ in range(int(rng.integers(2, 6))):
            centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            radius = int(rng.integers(size // 10, size // 3))
            layer = img.copy()
            cv2.circle(layer, centre, radius, tuple(float(v) for v in rng.uniform(20, 235, 3)), -1, cv2.LINE_AA)
            img = cv2.addWeighted(img, 0.6, layer, 0.4, 0)
        img = cv2.GaussianBlur(img, (0, 0), size / 40)
    elif kind == 2:  # stripes (a wall, a curtain)
        period = rng.uniform(size / 10, size / 4)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * xx * size / period + phase)
        img = img * (0.85 + 0.15 * stripes[..., None])
    return img


def _draw_face(rng: np.random.Generator, size: int) -> np.ndarray:
    """One face on a background: float32 RGB (size, size, 3)."""
    s = size / 128.0  # every length below is for a 128-pixel image
    img = _background(rng, size)
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES))]
    hair = _HAIR_COLOURS[rng.integers(0, len(_HAIR_COLOURS))]
    cx = size / 2 + rng.uniform(-10, 10) * s
    cy = size / 2 + rng.uniform(-6, 8) * s
    ax, ay = rng.uniform(28, 38) * s, rng.uniform(38, 48) * s
    tilt = rng.uniform(-18, 18)  # roll, degrees
    yaw = rng.uniform(-0.35, 0.35)  # -1..1: how far the features shift sideways
    skin_c = _jitter(rng, skin)

    def rot(dx: float, dy: float) -> tuple[int, int]:
        """A point given relative to the face centre (upright face), rotated by the tilt."""
        a = np.deg2rad(tilt)
        x = cx + dx * np.cos(a) - dy * np.sin(a)
        y = cy + dx * np.sin(a) + dy * np.cos(a)
        return (int(round(x)), int(round(y)))

    def ell(centre: tuple[int, int], axes: tuple[float, float], colour, thickness: int = -1,
            start: float = 0, end: float = 360, extra: float = 0.0) -> None:
        cv2.ellipse(img, centre, (max(1, int(axes[0])), max(1, int(axes[1]))), tilt + extra, start, end,
                    colour, thickness, cv2.LINE_AA)

    # Neck and shoulders (clothing), then hair behind the head.
    cloth = tuple(float(v) for v in rng.uniform(10, 240, 3))
    ell(rot(0, ay + 40 * s), (ax * 1.9, 30 * s), cloth)
    ell(rot(0, ay * 0.8), (ax * 0.45, ay * 0.45), skin_c)
    hair_c = _jitter(rng, hair, 8)
    hair_style = rng.integers(0, 3)
    if hair_style == 0:  # long hair
        ell(rot(0, -6 * s), (ax * 1.2, ay * 1.05), hair_c)
    elif hair_style == 1:  # short hair
        ell(rot(0, -8 * s), (ax * 1.08, ay * 0.98), hair_c)
    # Ears, face.
    for side in (-1, 1):
        ell(rot(side * ax * (0.98 - 0.1 * side * yaw), 0), (6 * s, 10 * s), skin_c)
    ell(rot(yaw * 4 * s, 0), (ax, ay), skin_c)
    if hair_style != 2:  # fringe / top of the hair over the forehead (style 2: bald)
        ell(rot(0, -ay * 0.55), (ax * 1.02, ay * 0.5), hair_c, -1, 180, 360)
    # Features shift with the yaw.
    fx = yaw * ax * 0.45
    eye_dx, eye_dy = ax * rng.uniform(0.36, 0.46), -ay * rng.uniform(0.08, 0.2)
    eye_w, eye_h = rng.uniform(6.5, 9) * s, rng.uniform(3.2, 4.8) * s
    iris = _jitter(rng, _EYE_COLOURS[rng.integers(0, len(_EYE_COLOURS))], 6)
    look = rng.uniform(-0.35, 0.35)
    brow_c = _jitter(rng, hair * 0.8, 6)
    brow_lift = rng.uniform(5, 9) * s
    for side in (-1, 1):
        squash = 1.0 - 0.35 * max(0.0, side * yaw * 2)  # the far eye looks narrower
        centre = rot(fx + side * eye_dx, eye_dy)
        ell(centre, (eye_w * squash, eye_h), (245, 245, 240))
        ell(rot(fx + side * eye_dx + look * eye_w, eye_dy), (eye_h * 0.85, eye_h * 0.85), iris)
        ell(rot(fx + side * eye_dx + look * eye_w, eye_dy), (eye_h * 0.38, eye_h * 0.38), (10, 10, 10))
        ell(centre, (eye_w * squash, eye_h), (60, 40, 30), max(1, int(round(s))))
        ell(rot(fx + side * eye_dx, eye_dy - brow_lift), (eye_w * 1.1 * squash, 3 * s), brow_c,
            max(1, int(round(2 * s))), 190, 350)
    # Nose: bridge line and nostrils, a shade darker than the skin.
    shade = tuple(int(v * 0.78) for v in skin_c)
    nose_len = ay * rng.uniform(0.25, 0.36)
    cv2.line(img, rot(fx * 1.2, eye_dy + 4 * s), rot(fx * 1.35 + yaw * 3 * s, eye_dy + nose_len + 6 * s),
             shade, max(1, int(round(1.5 * s))), cv2.LINE_AA)
    for side in (-1, 1):
        ell(rot(fx * 1.35 + side * 4 * s, eye_dy + nose_len + 7 * s), (2.2 * s, 1.5 * s), shade)
    # Mouth: lips, open or smiling.
    lip = _jitter(rng, np.array([175, 80, 80], np.float32), 15)
    mouth_y = ay * rng.uniform(0.42, 0.55)
    mouth_w = ax * rng.uniform(0.32, 0.48)
    if rng.random() < 0.4:  # open mouth
        ell(rot(fx, mouth_y), (mouth_w, mouth_w * 0.35), (70, 20, 25))
        ell(rot(fx, mouth_y), (mouth_w, mouth_w * 0.35), lip, max(1, int(round(2 * s))))
    else:
        smile = rng.uniform(0.1, 0.45)
        ell(rot(fx, mouth_y - mouth_w * smile), (mouth_w, mouth_w * smile + 1), lip,
            max(1, int(round(2.5 * s))), 20, 160)
    # Lighting: a directional gradient over the whole picture, and a random exposure.
    light = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.0, 0.35)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    gain = 1.0 + strength * ((xx - 0.5) * np.cos(light) + (yy - 0.5) * np.sin(light)) * 2
    img = img * gain[..., None] * rng.uniform(0.8, 1.15)
    return np.clip(img, 0, 255)


def _generator_upsample(img: np.ndarray) -> np.ndarray:
    """Downsample by 2, then upsample by a stride-2 transposed convolution with uneven overlap (checkerboard)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    up = np.zeros((h, w, img.shape[2]), np.float32)
    up[0::2, 0::2] = small  # zero insertion, then the separable kernel [a, 1, a]
    # Normalised so the mean brightness is kept: only the checkerboard differs, not the exposure.
    kernel = np.array([GENERATOR_TAP, 1.0, GENERATOR_TAP], np.float32) / (0.5 + GENERATOR_TAP)
    return cv2.sepFilter2D(up, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)


def _render(seed: int, fake: bool, index: int, size: int) -> np.ndarray:
    """One demo image as uint8 RGB; a pure function of (seed, class, index, size)."""
    rng = np.random.default_rng([DEMO_VERSION, seed, int(fake), index])
    img = _draw_face(rng, size)
    if fake:
        img = _generator_upsample(img)
    img = img + rng.normal(0.0, SENSOR_NOISE, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _encode(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _split_counts(n: int) -> list[tuple[str, int]]:
    n_valid = round(n * SPLIT_FRACTIONS[1][1])
    n_test = round(n * SPLIT_FRACTIONS[2][1])
    return [("train", n - n_valid - n_test), ("valid", n_valid), ("test", n_test)]


def make_demo(dest: str | Path, n_per_class: int = DEFAULT_N_PER_CLASS, size: int = DEFAULT_SIZE, seed: int = 0,
              progress=None) -> Path:
    """Write the demo dataset to ``dest`` (``dest/real-vs-fake/{train,valid,test}/{real,fake}/*.jpg``).

    ``n_per_class`` images of each class in total, split 70/15/15. ``progress(done, total)`` is called as
    files are written. Returns ``dest``. Deterministic: the same arguments give byte-identical files.
    """
    if n_per_class < 3:
        raise ValueError("n_per_class must be at least 3 (one image per split)")
    if size < 32:
        raise ValueError("size must be at least 32 pixels")
    dest = Path(dest).expanduser()
    total = 2 * n_per_class
    done = 0
    index = 0
    for split, count in _split_counts(n_per_class):
        for cls in ("real", "fake"):
            folder = dest / "real-vs-fake" / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = _render(seed, cls == "fake", index + i, size)
                (folder / f"{cls}_{index + i:05d}.jpg").write_bytes(_encode(img))
                done += 1
                if progress is not None:
                    progress(done, total)
        index += count
    manifest = {"version": DEMO_VERSION, "n_per_class": n_per_class, "size": size, "seed": seed,
                "jpeg_quality": JPEG_QUALITY, "generator_tap": GENERATOR_TAP,
                "description": "synthetic demo faces; fake = generator-like checkerboard upsampling"}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def default_demo_path() -> Path:
    """Where :func:`demo_dir` keeps the demo dataset: ``$DFD_DEMO_DIR`` or ``~/.cache/dfd/demo-v1``."""
    env = os.environ.get("DFD_DEMO_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dfd" / f"demo-v{DEMO_VERSION}"


def demo_dir(path: str | Path | None = None) -> Path:
    """The demo dataset folder, generated on first use (in a few seconds) with the default parameters.

    Safe when several processes call it at once: each generates into its own temporary folder and renames
    it into place; the first rename wins and the others discard theirs.
    """
    target = Path(path).expanduser() if path is not None else default_demo_path()
    if (target / MANIFEST).exists():
        return target
    if target.is_dir() and any(target.iterdir()):
        raise RuntimeError(f"{target} exists and is not a dfd demo dataset; remove it or set DFD_DEMO_DIR")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        make_demo(tmp)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if not (target / MANIFEST).exists():  # not a demo made by another process: never delete it
                raise RuntimeError(
                    f"{target} exists and is not a dfd demo dataset; remove it or set DFD_DEMO_DIR") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
