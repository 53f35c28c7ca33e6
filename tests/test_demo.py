"""dfd.demo: the built-in demo dataset is deterministic, in the 140k layout, carries its fingerprint (and only
that), is safe to create from two processes at once, and a small CNN learns it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dfd import data, demo, imaging

REPO = Path(__file__).resolve().parent.parent


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def _images(root: Path, split: str, cls: str) -> list[np.ndarray]:
    return [imaging.load_image(p) for p in sorted((root / "real-vs-fake" / split / cls).glob("*.jpg"))]


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.make_demo(tmp_path_factory.mktemp("demo") / "d", n_per_class=40, size=64, seed=0)


def test_layout_and_counts(small_demo: Path) -> None:
    for split in ("train", "valid", "test"):
        for cls in ("real", "fake"):
            assert (small_demo / "real-vs-fake" / split / cls).is_dir()
    index = data.index_dataset(small_demo)
    assert index.layout == "split"
    table = index.counts()
    assert table.loc["train", "real"] == table.loc["train", "fake"] == 28
    assert table.loc["val", "total"] == table.loc["test", "total"] == 12
    assert index.skipped == []
    img = imaging.load_image(index.frame["path"][0])
    assert img.shape == (64, 64, 3)


def test_deterministic_same_bytes(small_demo: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    again = demo.make_demo(tmp_path / "again", n_per_class=40, size=64, seed=0)
    assert time.perf_counter() - t0 < 10, "generated in seconds"
    first = _digest(small_demo)
    assert len(first) == 80
    assert _digest(again) == first, "same seed, same bytes"
    other = _digest(demo.make_demo(tmp_path / "other", n_per_class=40, size=64, seed=1))
    assert set(other) == set(first)
    assert sum(other[k] != first[k] for k in first) == len(first), "another seed, other images"


def test_images_vary(small_demo: Path) -> None:
    reals = np.stack(_images(small_demo, "train", "real")).astype(np.float32)
    # Backgrounds, skin tones, poses and lighting differ: images are far from each other and from their mean.
    assert reals.std(axis=0).mean() > 25
    pairs = [np.abs(reals[i] - reals[i + 1]).mean() for i in range(len(reals) - 1)]
    assert min(pairs) > 10


def test_fingerprint_is_the_only_difference(small_demo: Path) -> None:
    reals, fakes = _images(small_demo, "train", "real"), _images(small_demo, "train", "fake")
    # Same JPEG quality in both classes: compression is no shortcut.
    steps = {imaging.jpeg_quant_step(p) for p in (small_demo / "real-vs-fake").rglob("*.jpg")}
    assert len(steps) == 1
    # The checkerboard shows at the Nyquist frequencies (edge centres of the centred spectrum) of (nearly)
    # every fake and of no real.
    def nyquist(img: np.ndarray) -> float:
        spec = imaging.log_spectrum(img, size=img.shape[0])
        c = img.shape[0] // 2
        return float((spec[c, 0] + spec[0, c]) / 2 - np.median(spec))

    real_peaks, fake_peaks = [nyquist(i) for i in reals], [nyquist(i) for i in fakes]
    threshold = max(real_peaks)
    assert np.mean([p > threshold for p in fake_peaks]) > 0.9, (np.median(real_peaks), np.median(fake_peaks))
    # The generator step keeps the brightness (no exposure shortcut).
    rng = np.random.default_rng(0)
    img = rng.uniform(30, 220, (64, 64, 3)).astype(np.float32)
    img = np.asarray(imaging.gaussian_blur(img, 2.0))
    generated = demo._generator_upsample(img)
    assert generated.shape == img.shape
    assert abs(float(generated.mean()) - float(img.mean())) < 1.0
    assert abs(float(np.mean(reals)) - float(np.mean(fakes))) < 15


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        demo.make_demo(tmp_path / "x", n_per_class=2)
    with pytest.raises(ValueError):
        demo.make_demo(tmp_path / "x", size=8)


def test_demo_dir_concurrent_first_use(tmp_path: Path) -> None:
    """Two processes asking for the demo at once: both get the same complete folder, no temp folders left."""
    target = tmp_path / "cache" / "demo-v1"
    env = {**os.environ, "DFD_DEMO_DIR": str(target), "PYTHONPATH": str(REPO)}
    code = "from dfd import demo; print(demo.demo_dir())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert {out.strip() for out, _ in outs} == {str(target)}
    assert (target / demo.MANIFEST).exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo-v1"]
    index = data.index_dataset(target)
    assert len(index.frame) == 2 * demo.DEFAULT_N_PER_CLASS
    # Later calls return at once, without regenerating.
    before = (target / demo.MANIFEST).stat().st_mtime_ns
    os.environ["DFD_DEMO_DIR"] = str(target)
    try:
        assert demo.demo_dir() == target
    finally:
        del os.environ["DFD_DEMO_DIR"]
    assert (target / demo.MANIFEST).stat().st_mtime_ns == before
    assert demo.demo_dir(target) == target


def test_demo_dir_refuses_foreign_folder(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="not a dfd demo"):
        demo.demo_dir(target)
    assert (target / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"], "no temp folder left behind"


@pytest.mark.slow
def test_a_small_cnn_learns_the_demo(tmp_path: Path) -> None:
    """The fingerprint is learnable: a small CNN trained for a few epochs is far above chance on held-out images."""
    from dfd import runs, train

    root = demo.make_demo(tmp_path / "data", n_per_class=120, size=64, seed=0)
    config = train.TrainConfig(data=str(root), architecture="seed_2conv", image_size=64, epochs=5, batch_size=16,
                               learning_rate=1e-3, patience=0, seed=0, augment={"flip": True},
                               runs_dir=str(tmp_path / "runs"), name="demo-learn")
    run = runs.get_run(train.train(config))
    assert run.status == "complete"
    history = run.history()
    assert history["accuracy"].iloc[0] < 0.7, "the first epoch starts at chance: the model had to learn"
    assert history["val_accuracy"].max() >= 0.85, history.to_string()
    assert run.metrics()["test"]["accuracy"] >= 0.8, run.metrics()["test"]
