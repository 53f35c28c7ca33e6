"""dfd.imaging on every image mode users upload, on broken files, and the perturbations.

The images are made in tmp_path from a real face of ../shared/data with PIL, so each mode is what a real file
of that kind looks like.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dfd import imaging
from dfd.imaging import ImageError


@pytest.fixture(scope="module")
def face_path(faces140k: Path) -> Path:
    return sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def face(face_path: Path) -> np.ndarray:
    """A real face as uint8 RGB, cropped to a non-square 200 x 160 (H x W) so orientation errors show."""
    with Image.open(face_path) as img:
        return np.asarray(img.convert("RGB"))[20:220, 40:200].copy()


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def _check(arr: np.ndarray, shape: tuple[int, int]) -> None:
    assert arr.dtype == np.uint8
    assert arr.shape == (*shape, 3)


# ---------------------------------------------------------------------------------------------- modes


def test_jpeg_from_path_bytes_and_file(face_path: Path) -> None:
    from_path = imaging.load_image(face_path)
    _check(from_path, (256, 256))
    raw = face_path.read_bytes()
    assert np.array_equal(imaging.load_image(raw), from_path)
    assert np.array_equal(imaging.load_image(str(face_path)), from_path)
    fh = io.BytesIO(raw)
    assert np.array_equal(imaging.load_image(fh), from_path)
    assert fh.tell() == 0, "a file object is rewound so it can be read again (e.g. by an upload widget)"


def test_png_rgba_composited_on_white(face: np.ndarray, tmp_path: Path) -> None:
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[:, :80, 3] = 0  # left half fully transparent
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png")
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert (out[:, :80] == 255).all(), "transparent pixels are white, as a viewer shows them"
    assert np.array_equal(out[:, 80:], face[:, 80:]), "opaque pixels unchanged"


def test_png_palette(face: np.ndarray, tmp_path: Path) -> None:
    pal = Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    path = _save(pal, tmp_path / "palette.png")
    with Image.open(path) as check:
        assert check.mode == "P"
        expected = np.asarray(check.convert("RGB"))
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert np.array_equal(out, expected)
    assert _mad(out, face) < 8, "64 colours stay close to the photo"


def test_png_palette_with_transparency(face: np.ndarray, tmp_path: Path) -> None:
    pal = Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    index = pal.getpixel((0, 0))
    path = _save(pal, tmp_path / "palette_t.png", transparency=index)
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert (out[0, 0] == 255).all(), "the transparent palette entry is composited on white"


def test_png_16bit_greyscale(face: np.ndarray, tmp_path: Path) -> None:
    grey8 = np.asarray(Image.fromarray(face).convert("L"))
    grey16 = grey8.astype(np.uint16) * 257  # full 16-bit range
    path = _save(Image.fromarray(grey16), tmp_path / "grey16.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I"), check.mode
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert np.abs(out[..., 0].astype(int) - grey8).max() <= 1, "16-bit values are scaled to 8 bits, not clipped"


def test_greyscale_jpeg(face: np.ndarray, tmp_path: Path) -> None:
    path = _save(Image.fromarray(face).convert("L"), tmp_path / "grey.jpg", quality=95)
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert np.array_equal(out[..., 0], out[..., 2])
    assert _mad(out[..., 0], np.asarray(Image.fromarray(face).convert("L"))) < 3


@pytest.mark.parametrize(("fmt", "kw", "exact"), [
    ("webp", {"lossless": True}, True),
    ("webp", {"quality": 80}, False),
    ("bmp", {}, True),
    ("tiff", {}, True),
])
def test_other_formats(face: np.ndarray, tmp_path: Path, fmt: str, kw: dict, exact: bool) -> None:
    path = _save(Image.fromarray(face), tmp_path / f"face.{fmt}", **kw)
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    if exact:
        assert np.array_equal(out, face)
    else:
        assert 0 < _mad(out, face) < 6


def test_cmyk_jpeg(face: np.ndarray, tmp_path: Path) -> None:
    path = _save(Image.fromarray(face).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert _mad(out, face) < 6, "CMYK is converted to the right colours, not inverted or swapped"


@pytest.mark.parametrize(("orientation", "rotate"), [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_applied(face: np.ndarray, tmp_path: Path, orientation: int, rotate: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(Image.fromarray(face), tmp_path / f"rot{orientation}.jpg", quality=95, exif=exif)
    with Image.open(path) as raw_img:
        raw = np.asarray(raw_img.convert("RGB"))  # stored pixels, orientation not applied
    out = imaging.load_image(path)
    expected = np.rot90(raw, k=rotate)  # 6: the viewer turns it 90 degrees clockwise; 8: anticlockwise
    assert out.shape == expected.shape
    assert np.array_equal(out, expected)
    if orientation != 3:
        assert out.shape[:2] == face.shape[1::-1], "portrait becomes landscape"


def test_animated_gif_first_frame(face: np.ndarray, tmp_path: Path) -> None:
    frames = [Image.fromarray(face), Image.fromarray(255 - face)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    out = imaging.load_image(path)
    _check(out, face.shape[:2])
    assert _mad(out, face) < 20 < _mad(out, 255 - face)


# ---------------------------------------------------------------------------------------- bad input


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims to be width x height: a decompression bomb's header."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [50_000, 9_600])  # 2,500 MP (PIL refuses) and 92 MP (PIL only warns)
def test_decompression_bomb_is_refused(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    assert path.stat().st_size < 2000
    with pytest.raises(ImageError, match=r"too large|refused"):
        imaging.load_image(path)


def test_absurd_size_limit(face_path: Path) -> None:
    with pytest.raises(ImageError, match="256x256.*refused"):
        imaging.load_image(face_path, max_pixels=10_000)


def test_oversized_file_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff" * 5000)
    monkeypatch.setattr(imaging, "MAX_BYTES", 1000)
    with pytest.raises(ImageError, match="refused"):
        imaging.load_image(path)


def test_truncated_jpeg(face_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.jpg"
    data = face_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated|corrupt"):
        imaging.load_image(path)


def test_corrupt_jpeg_body(face_path: Path, tmp_path: Path) -> None:
    data = bytearray(face_path.read_bytes())
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data[:200]) + bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)))
    with pytest.raises(ImageError):
        imaging.load_image(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        imaging.load_image(path)
    with pytest.raises(ImageError, match="empty"):
        imaging.load_image(b"")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageError, match="not an image"):
        imaging.load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        imaging.load_image(tmp_path / "nope.jpg")


def test_error_messages_are_one_line(tmp_path: Path, face_path: Path) -> None:
    (tmp_path / "t.jpg").write_bytes(face_path.read_bytes()[:3000])
    (tmp_path / "b.png").write_bytes(_png_header_only(50_000, 50_000))
    for name in ("t.jpg", "b.png"):
        with pytest.raises(ImageError) as info:
            imaging.load_image(tmp_path / name)
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- resize and prepare


def test_prepare_and_decode(face: np.ndarray, face_path: Path) -> None:
    x = imaging.prepare(face, 64)
    assert x.dtype == np.float32 and x.shape == (64, 64, 3)
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 1, "models take 0..255, not 0..1"
    y = imaging.decode(face_path, 96)
    assert y.shape == (96, 96, 3) and y.dtype == np.float32
    assert np.array_equal(imaging.resize(face, 160).shape, (160, 160, 3))
    up = imaging.resize(face, 300)
    assert up.shape == (300, 300, 3) and up.dtype == np.uint8
    same = np.zeros((32, 32, 3), np.uint8)
    assert imaging.resize(same, 32) is same


def test_header_info_and_quant_step(face_path: Path, tmp_path: Path, face: np.ndarray) -> None:
    info = imaging.image_info(face_path)
    assert info == {"width": 256, "height": 256, "format": "JPEG", "mode": "RGB"}
    low = _save(Image.fromarray(face), tmp_path / "q30.jpg", quality=30)
    high = _save(Image.fromarray(face), tmp_path / "q95.jpg", quality=95)
    assert imaging.jpeg_quant_step(low) > 3 * imaging.jpeg_quant_step(high)
    png = _save(Image.fromarray(face), tmp_path / "x.png")
    assert imaging.jpeg_quant_step(png) is None
    (tmp_path / "bad.jpg").write_text("nope")
    assert imaging.image_info(tmp_path / "bad.jpg")["error"]
    assert imaging.jpeg_quant_step(tmp_path / "bad.jpg") is None


def test_lfw_compression_shortcut_is_measurable(lfw: Path) -> None:
    """The data README: lfw-faceswap fakes were saved at a higher quality (step ~5) than the reals (~11)."""
    steps = {}
    for cls in ("Real", "Fake"):
        files = sorted((lfw / "Dataset" / "Test" / cls).glob("*.jpg"))[:20]
        steps[cls] = float(np.mean([imaging.jpeg_quant_step(f) for f in files]))
    assert steps["Real"] > 1.5 * steps["Fake"], steps


# ------------------------------------------------------------------------------------ perturbations


def _high_freq(img: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_gaussian_blur(face: np.ndarray) -> None:
    out = imaging.gaussian_blur(face, 2.0)
    _check(out, face.shape[:2])
    assert _high_freq(out) < 0.2 * _high_freq(face), "sigma 2 removes most fine detail"
    assert abs(float(out.mean()) - float(face.mean())) < 1.5, "blur keeps the brightness"
    mild = imaging.gaussian_blur(face, 0.5)
    assert _high_freq(out) < _high_freq(mild) < _high_freq(face), "stronger blur, less detail"
    assert imaging.gaussian_blur(face, 0) is face
    even = imaging.gaussian_blur(face, 1.0, ksize=4)  # rounded up to 5
    _check(even, face.shape[:2])
    assert _mad(even, face) > 0.5


def test_gaussian_noise(face: np.ndarray) -> None:
    out = imaging.gaussian_noise(face, 6.0, seed=1)
    _check(out, face.shape[:2])
    diff = out.astype(np.float64) - face
    assert abs(diff.mean()) < 0.3, "zero-mean"
    assert 5.4 < diff.std() < 6.3, f"noise std {diff.std():.2f} should be close to sigma 6"
    assert np.array_equal(out, imaging.gaussian_noise(face, 6.0, seed=1)), "seeded: reproducible"
    assert not np.array_equal(out, imaging.gaussian_noise(face, 6.0, seed=2))
    rng = np.random.default_rng(0)
    assert imaging.gaussian_noise(face, 6.0, rng).shape == face.shape
    assert imaging.gaussian_noise(face, 0) is face


def test_jpeg_recompress(face: np.ndarray) -> None:
    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        mse = float(np.mean((a.astype(np.float64) - b) ** 2))
        return 10 * np.log10(255**2 / max(mse, 1e-12))

    q95, q50, q10 = (imaging.jpeg_recompress(face, q) for q in (95, 50, 10))
    for out in (q95, q50, q10):
        _check(out, face.shape[:2])
    assert psnr(q95, face) > 38
    assert psnr(q95, face) > psnr(q50, face) > psnr(q10, face)
    assert psnr(q10, face) < 33, "quality 10 visibly degrades"
    assert abs(float(q10.mean()) - float(face.mean())) < 2, "channels are not swapped or shifted"
    assert _mad(q95[..., 0], face[..., 0]) < 2, "RGB order kept (OpenCV is BGR inside)"


def test_difference_and_spectrum(face: np.ndarray) -> None:
    noisy = imaging.gaussian_noise(face, 4.0, seed=0)
    d = imaging.difference(face, noisy, gain=4.0)
    _check(d, face.shape[:2])
    assert 8 < d.mean() < 20  # about 4 * E|N(0, 4)| = 12.8
    assert imaging.difference(face, face).max() == 0
    spec = imaging.log_spectrum(face, size=128)
    assert spec.shape == (128, 128) and spec.dtype == np.float32
    # A 2-pixel checkerboard puts its energy in the corner (Nyquist) of the centred spectrum.
    board = np.indices((128, 128)).sum(axis=0) % 2 * 40 + 100
    checker = np.repeat(board[..., None], 3, axis=2).astype(np.uint8)
    assert imaging.log_spectrum(checker, size=128)[0, 0] > imaging.log_spectrum(face, size=128)[0, 0] + 3


# ---------------------------------------------------------------------------------------------- one path


def test_decode_is_the_one_load_resize_transform_float32_path(faces140k: Path) -> None:
    """decode(path, size, transform) = load, resize, transform the resized uint8 image, float32; and it is
    exactly what evaluation and robustness (dfd.data.predict_paths) feed the model."""
    from dfd.data import predict_paths

    paths = [str(p) for p in sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[:5]]

    def blur(img: np.ndarray) -> np.ndarray:
        assert img.dtype == np.uint8 and img.shape == (40, 40, 3), "the transform sees the resized uint8 image"
        return imaging.gaussian_blur(img, 1.5)

    one = imaging.decode(paths[0], 40, blur)
    by_hand = imaging.resize(imaging.load_image(paths[0]), 40)
    assert one.dtype == np.float32 and one.shape == (40, 40, 3)
    np.testing.assert_array_equal(one, imaging.gaussian_blur(by_hand, 1.5).astype(np.float32))
    assert not np.array_equal(one, imaging.decode(paths[0], 40)), "the transform was applied"
    fed: list[np.ndarray] = []

    def model(batch: np.ndarray) -> np.ndarray:
        fed.append(batch)
        return np.zeros(len(batch))

    predict_paths(model, paths, 40, batch_size=2, transform=blur)
    np.testing.assert_array_equal(np.concatenate(fed), np.stack([imaging.decode(p, 40, blur) for p in paths]))


def test_resample_and_at_size_bring_an_image_to_another_source_size():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for side, upscaler in ((16, 0), (32, 1), (200, 2)):
        out = imaging.resample(img, side, upscaler)
        assert out.shape == img.shape and out.dtype == np.uint8
    small = imaging.resample(img, 16)
    assert np.abs(small.astype(int) - img).mean() > 20  # noise does not survive 16 px
    smooth = cv2.GaussianBlur(img, (0, 0), 3)
    assert np.abs(imaging.resample(smooth, 256).astype(int) - smooth).mean() < 2  # up and back keeps a smooth image
    assert imaging.at_size(img, 96).shape == (96, 96, 3) and imaging.at_size(img, 24).shape == (24, 24, 3)


def test_sharpen_and_webp_change_an_image_a_little():
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 2)
    sharp = imaging.sharpen(img, 1.0)
    assert sharp.shape == img.shape and sharp.std() > img.std()
    assert imaging.sharpen(img, 0) is img
    webp = imaging.webp_recompress(img, 60)
    assert webp.shape == img.shape and 0 < np.abs(webp.astype(int) - img).mean() < 10
