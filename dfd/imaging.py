"""Images in, model-ready arrays out: the one preprocessing path of dfd.

Training, evaluation, the CLI and the app all call :func:`load_image` (decode, EXIF orientation, RGB) and
:func:`prepare` (resize to the model's square input, float32 in 0..255; the models rescale themselves), or
both at once with :func:`decode`.
Perturbations used by the explorer preview, training augmentation and robustness evaluation live here too:
:func:`gaussian_blur`, :func:`gaussian_noise` and :func:`jpeg_recompress`. Everything works on ``uint8``
RGB arrays of shape (H, W, 3).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse images larger than this many pixels (a 12,000 x 12,000 photo is 144 MP): decompression bombs
# and absurd sizes get a clear error instead of eating the machine's memory.
MAX_PIXELS = 100_000_000
# Files larger than this are refused before decoding.
MAX_BYTES = 64 * 1024 * 1024
# The image files dfd judges, indexes and accepts for upload. GIF (and animated WebP): the first frame.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# The same, as users read it.
IMAGE_TYPES_TEXT = "JPEG, PNG, WebP, BMP, TIFF, GIF (first frame)"

Source = str | Path | bytes | bytearray | BinaryIO


class ImageError(ValueError):
    """An input that is not a readable image, with a message fit to show a user."""


def _read_bytes(source: Source) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if size > MAX_BYTES:
            raise ImageError(f"file is {size / 2**20:.0f} MB; images over {MAX_BYTES // 2**20} MB are refused")
        data = path.read_bytes()
    else:
        data = source.read(MAX_BYTES + 1)
        if hasattr(source, "seek"):
            source.seek(0)
    if len(data) > MAX_BYTES:
        raise ImageError(f"file is over {MAX_BYTES // 2**20} MB; such images are refused")
    if not data:
        raise ImageError("file is empty")
    return data


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (RGBA, LA, P, L, I;16, I, F, CMYK, YCbCr) to 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 257.0
        elif arr.size and arr.max() > 255:  # 32-bit integer or float data: stretch to 0..255
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / max(hi - lo, 1e-9))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite transparent pixels on white, as a viewer shows them.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(source: Source, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (path, bytes or file object) to a ``uint8`` RGB array, EXIF-oriented.

    Raises :class:`ImageError` with a one-line reason for anything that is not a readable image:
    empty, truncated, corrupt, unsupported, too large.
    """
    data = _read_bytes(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"image is {width}x{height} ({width * height / 1e6:.0f} MP); "
                        f"images over {max_pixels / 1e6:.0f} MP are refused"
                    )
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)  # animated GIF/WebP: judge the first frame
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = _to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not an image file (or a format that is not supported)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"image is corrupt or truncated ({exc})") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageError(f"unexpected decoded shape {arr.shape}")
    return arr


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a ``uint8`` RGB array to ``size`` x ``size`` (area when shrinking, bilinear when growing)."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


Transform = Callable[[np.ndarray], np.ndarray]
"""A ``uint8`` RGB -> ``uint8`` RGB image transform (an augmentation, a robustness perturbation)."""


def prepare(img: np.ndarray, size: int, transform: Transform | None = None) -> np.ndarray:
    """The model input for one RGB image: :func:`resize` to ``size``, then ``transform`` (if any) on the
    resized ``uint8`` image, then ``float32`` (size, size, 3) with values 0..255."""
    img = resize(img, size)
    if transform is not None:
        img = transform(img)
    return img.astype(np.float32)


def decode(source: Source, size: int, transform: Transform | None = None) -> np.ndarray:
    """:func:`load_image` then :func:`prepare`: path or bytes straight to model input. The one
    load-resize-float32 path of training, evaluation, robustness, export, the CLI and the app."""
    return prepare(load_image(source), size, transform)


def _odd(k: int) -> int:
    k = max(1, int(k))
    return k if k % 2 else k + 1


def gaussian_blur(img: np.ndarray, sigma: float, ksize: int = 0) -> np.ndarray:
    """Gaussian blur. ``ksize`` 0 derives the kernel from ``sigma``; an even ``ksize`` is rounded up to odd."""
    if sigma <= 0 and ksize <= 1:
        return img
    k = _odd(ksize) if ksize else 0
    return cv2.GaussianBlur(img, (k, k), sigmaX=max(float(sigma), 0.0))


def rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """What a web page does to an upload: shrink by ``factor`` (area) and bring it back to its size (bilinear)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# Interpolations a web pipeline may enlarge an image with (shrinking is always by area).
UPSCALERS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


def resample(img: np.ndarray, side: int, upscaler: int = 1) -> np.ndarray:
    """The image as if its source had been ``side`` px: brought to ``side`` (area down, ``UPSCALERS[upscaler]``
    up) and back to its own size through :func:`resize`, the serving path's resize (size augmentation)."""
    h, w = img.shape[:2]
    side = max(8, int(side))
    inter = cv2.INTER_AREA if side < min(h, w) else UPSCALERS[upscaler % len(UPSCALERS)]
    moved = cv2.resize(img, (side, side), interpolation=inter)
    return resize(moved, h) if h == w else cv2.resize(moved, (w, h), interpolation=cv2.INTER_LINEAR)


SIZE_SWEEP = (96, 128, 192, 256, 384, 512)
"""The source sizes (px) of the size sweep (``python -m dfd sizes``): a face as the web leaves it."""


def at_size(img: np.ndarray, side: int, quality: int = 90) -> np.ndarray:
    """The image brought to ``side`` x ``side`` (area down, bicubic up) and saved once as JPEG at ``quality``:
    how the size sweep presents each test image at another source size."""
    h, w = img.shape[:2]
    inter = cv2.INTER_AREA if side < min(h, w) else cv2.INTER_CUBIC
    return jpeg_recompress(cv2.resize(img, (side, side), interpolation=inter), quality)


def sharpen(img: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask, as photo sites and phones sharpen: ``img + amount * (img - blur(img))``."""
    if amount <= 0:
        return img
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    return cv2.addWeighted(img, 1.0 + amount, blurred, -amount, 0)


def webp_recompress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as WebP at ``quality`` (1..100) and decode again."""
    ok, buf = cv2.imencode(".webp", img[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    if not ok:
        raise ImageError("WebP encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def gaussian_noise(img: np.ndarray, sigma: float, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Add zero-mean Gaussian noise with standard deviation ``sigma`` (on the 0..255 scale)."""
    if sigma <= 0:
        return img
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg_recompress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1..100) and decode again."""
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def difference(a: np.ndarray, b: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """Absolute difference of two images, amplified by ``gain`` so small changes are visible."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float32) * gain
    return np.clip(diff, 0, 255).astype(np.uint8)


def log_spectrum(img: np.ndarray, size: int = 256) -> np.ndarray:
    """Centred log-magnitude Fourier spectrum of the greyscale image (where GAN upsampling leaves peaks)."""
    grey = cv2.cvtColor(resize(img, size), cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey -= grey.mean()
    spec = np.fft.fftshift(np.fft.fft2(grey))
    return np.log1p(np.abs(spec)).astype(np.float32)


def image_info(path: str | Path) -> dict:
    """Width, height, format and mode read from the header only (no full decode)."""
    try:
        with Image.open(path) as img:
            return {"width": img.size[0], "height": img.size[1], "format": img.format, "mode": img.mode}
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return {"width": None, "height": None, "format": None, "mode": None, "error": str(exc)}


def jpeg_quant_step(path: str | Path) -> float | None:
    """Mean luminance quantisation step of a JPEG file (higher = stronger compression); None if not JPEG."""
    try:
        with Image.open(path) as img:
            tables = getattr(img, "quantization", None)
            if not tables:
                return None
            return float(np.mean(list(tables[0])))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
