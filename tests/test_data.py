"""dfd.data on the real datasets of ../shared/data (every layout, exact counts from its README) and on
broken or unrecognised folders built in tmp_path from copies of a few real images."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfd import data
from dfd.data import FAKE, REAL, DatasetError


def _counts(index: data.DatasetIndex) -> dict[str, tuple[int, int]]:
    table = index.counts()
    return {split: (int(table.loc[split, "real"]), int(table.loc[split, "fake"])) for split in table.index}


def _check_frame(index: data.DatasetIndex) -> None:
    frame = index.frame
    assert list(frame.columns) == data.COLUMNS
    assert frame["label"].isin([REAL, FAKE]).all()
    assert frame["split"].isin(data.SPLITS).all()
    assert frame["path"].map(os.path.isabs).all()
    assert frame["path"].is_unique
    assert frame["path"].map(os.path.isfile).all()


def _real_images(folder: Path, n: int) -> list[Path]:
    return sorted(folder.glob("*.jpg"))[:n]


# --------------------------------------------------------------------------------- the real layouts


@pytest.mark.parametrize("sub", ["", "real-vs-fake"])
def test_140k_layout(faces140k: Path, sub: str) -> None:
    index = data.index_dataset(faces140k / sub if sub else faces140k)
    assert index.layout == "split"
    assert _counts(index) == {"train": (650, 650), "val": (150, 150), "test": (150, 150)}
    _check_frame(index)
    assert set(index.frame["class_name"]) == {"real", "fake"}
    fakes = index.frame[index.frame["label"] == FAKE]
    assert fakes["path"].str.contains(f"{os.sep}fake{os.sep}").all(), "fake = 1 comes from the fake folder"
    assert index.skipped == []
    assert len(index.split("val")) == 300 and index.split("val").index[0] == 0


def test_deepfake_and_real_images_layout_capitalised(lfw: Path) -> None:
    index = data.index_dataset(lfw)
    assert index.layout == "split"
    assert _counts(index) == {"train": (1500, 1500), "val": (250, 250), "test": (250, 250)}
    _check_frame(index)
    assert set(index.frame["class_name"]) == {"Real", "Fake"}
    reals = index.frame[index.frame["label"] == REAL]
    assert reals["path"].str.contains(f"{os.sep}Real{os.sep}").all()
    val = index.split("val")
    assert val["path"].str.contains(f"{os.sep}Validation{os.sep}").all()
    # Pointing at the Dataset folder itself or at its parent gives the same index (and fingerprint).
    assert data.index_dataset(lfw / "Dataset").fingerprint() == index.fingerprint()


def test_real_and_fake_face_detection_layout(rff: Path) -> None:
    index = data.index_dataset(rff)
    assert index.layout == "rff"
    _check_frame(index)
    frame = index.frame
    assert (frame["label"] == REAL).sum() == 1081 and (frame["label"] == FAKE).sum() == 960
    # No split in the data: a stratified one, 15 % val and 15 % test of each class.
    assert _counts(index) == {"train": (757, 672), "val": (162, 144), "test": (162, 144)}
    sizes = _counts(data.index_dataset(rff, val_frac=0.1, test_frac=0.2))
    assert sizes == {"train": (757, 672), "val": (108, 96), "test": (216, 192)}
    assert "test" not in _counts(data.index_dataset(rff, val_frac=0.2, test_frac=0.0))
    # Deterministic: the same call gives the same split; another seed gives another split.
    again = data.index_dataset(rff)
    assert again.frame.equals(frame)
    other = data.index_dataset(rff, seed=1)
    assert not other.frame.set_index("path")["split"].equals(frame.set_index("path")["split"])
    assert _counts(other) == _counts(index)


def test_stable_split_ignores_listing_order(rff: Path) -> None:
    frame = data.index_dataset(rff).frame
    names = [os.path.basename(p) for p in frame["path"]]
    labels = frame["label"].tolist()
    base = dict(zip(names, data.stable_split(names, labels, 0.15, 0.15), strict=True))
    order = list(range(len(names)))
    random.Random(7).shuffle(order)
    shuffled = data.stable_split([names[i] for i in order], [labels[i] for i in order], 0.15, 0.15)
    assert {names[i]: s for i, s in zip(order, shuffled, strict=True)} == base
    # Adding files moves only a few existing ones (a hash order, not an index order).
    extra = [f"new_{i}.jpg" for i in range(20)]
    grown = data.stable_split(names + extra, labels + [0] * 20, 0.15, 0.15)
    moved = sum(base[n] != s for n, s in zip(names, grown[: len(names)], strict=True))
    assert moved < 0.05 * len(names)
    with pytest.raises(ValueError):
        data.stable_split(names, labels, 0.6, 0.5)


def test_whole_shared_folder_indexes_all_five(faces140k: Path, lfw: Path, rff: Path, modern: Path,
                                              web: Path) -> None:
    index = data.index_dataset(faces140k.parent)
    assert index.layout == "mixed"
    per_set = index.frame["dataset"].value_counts().to_dict()
    assert per_set == {"faces-140k-mini": 1900, "lfw-faceswap": 4000, "real-and-fake-face": 2041,
                       "modern-faces-128": 6000, "web-faces-256": 3198}
    assert _counts(index)["train"] == (650 + 1500 + 757 + 2000 + 827, 650 + 1500 + 672 + 2800 + 1378)


def test_web_faces_fakes_name_their_generator_and_reals_their_source(web: Path) -> None:
    frame = data.index_dataset(web).frame
    fakes, reals = frame[frame["label"] == 1], frame[frame["label"] == 0]
    assert fakes["generator"].value_counts().to_dict() == {"sdxl": 787 + 159 + 177, "flux1-dev": 591 + 130 + 140}
    assert (fakes["source"] == "").all() and (reals["generator"] == "").all()
    assert set(reals["source"]) == {"pixabay", "video-frames", "utkface"}
    # each real's source is the sub-folder it sits in
    assert all(Path(p).parent.name == s for p, s in zip(reals["path"], reals["source"], strict=True))
    assert reals.groupby("split")["source"].value_counts()["test"].to_dict() == {
        "utkface": 82, "pixabay": 58, "video-frames": 44}


def test_generator_column_from_file_names_and_sub_folders(modern: Path, faces140k: Path, tmp_path: Path) -> None:
    frame = data.index_dataset(modern).frame
    fakes, reals = frame[frame["label"] == 1], frame[frame["label"] == 0]
    assert (reals["generator"] == "").all()
    names = fakes["path"].map(lambda p: Path(p).name)
    assert (fakes.loc[names.str.startswith("sd21_"), "generator"] == "sd2.1").all()
    assert (fakes.loc[names.str.startswith(("fd_", "fcv_")), "generator"] == "stylegan2").all()
    assert fakes["generator"].value_counts().to_dict() == {"stylegan2": 2757, "sd2.1": 643}
    # a fake in fake/<generator>/ is named by the sub-folder; a dataset that says nothing gets ""
    src = next((faces140k / "real-vs-fake" / "train" / "fake").glob("*.jpg"))
    for rel in ("real/a.jpg", "fake/b.jpg", "fake/Flux/c.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, tmp_path / rel)
    got = dict(zip(data.index_dataset(tmp_path).frame["path"].map(lambda p: Path(p).name),
                   data.index_dataset(tmp_path).frame["generator"], strict=True))
    assert got == {"a.jpg": "", "b.jpg": "", "c.jpg": "flux"}
    # a real in real/<source>/ is named by its sub-folder in the source column
    (tmp_path / "real" / "Pixabay").mkdir()
    shutil.copy(src, tmp_path / "real" / "Pixabay" / "d.jpg")
    frame = data.index_dataset(tmp_path).frame
    got = dict(zip(frame["path"].map(lambda p: Path(p).name), frame["source"], strict=True))
    assert got == {"a.jpg": "", "b.jpg": "", "c.jpg": "", "d.jpg": "pixabay"}


def test_fingerprint(faces140k: Path, tmp_path: Path) -> None:
    a = data.index_dataset(faces140k)
    assert a.fingerprint() == data.index_dataset(faces140k).fingerprint()
    assert len(a.fingerprint()) == 16
    pair = _make_pair(faces140k, tmp_path / "pair", "real", "fake", 6)
    before = data.index_dataset(pair).fingerprint()
    shutil.copy(next((pair / "fake").glob("*.jpg")), pair / "fake" / "extra.jpg")
    assert data.index_dataset(pair).fingerprint() != before


# ------------------------------------------------------------------------------ layouts built in tmp


def _make_pair(faces140k: Path, root: Path, real_name: str, fake_name: str, n: int) -> Path:
    src = faces140k / "real-vs-fake" / "train"
    for name, cls in ((real_name, "real"), (fake_name, "fake")):
        (root / name).mkdir(parents=True)
        for f in _real_images(src / cls, n):
            shutil.copy(f, root / name / f.name)
    return root


@pytest.mark.parametrize(("real_name", "fake_name"), [("real", "fake"), ("Real", "FAKE"), ("REAL", "Fake")])
def test_plain_pair_any_case(faces140k: Path, tmp_path: Path, real_name: str, fake_name: str) -> None:
    root = _make_pair(faces140k, tmp_path / "mine", real_name, fake_name, 20)
    index = data.index_dataset(root)
    assert index.layout == "pair"
    _check_frame(index)
    assert (index.frame["label"] == REAL).sum() == 20 and (index.frame["label"] == FAKE).sum() == 20
    assert _counts(index) == {"train": (14, 14), "val": (3, 3), "test": (3, 3)}
    assert set(index.frame["class_name"]) == {real_name, fake_name}
    # Found from a parent folder too.
    assert data.index_dataset(tmp_path).frame["path"].tolist() == index.frame["path"].tolist()


def test_pair_via_symlinks(faces140k: Path, tmp_path: Path) -> None:
    src = faces140k / "real-vs-fake" / "valid"
    root = tmp_path / "linked"
    root.mkdir()
    (root / "real").symlink_to(src / "real", target_is_directory=True)
    (root / "fake").symlink_to(src / "fake", target_is_directory=True)
    index = data.index_dataset(root)
    assert index.layout == "pair"
    assert (index.frame["label"] == FAKE).sum() == 150 and (index.frame["label"] == REAL).sum() == 150


def test_csv_manifest(faces140k: Path, tmp_path: Path) -> None:
    test_dir = faces140k / "real-vs-fake" / "test"
    reals, fakes = _real_images(test_dir / "real", 10), _real_images(test_dir / "fake", 10)
    rows = [(str(p), "real", "train") for p in reals[:6]] + [(str(p), "1", "train") for p in fakes[:6]]
    rows += [(str(p), "0", "valid") for p in reals[6:]] + [(str(p), "fake", "test") for p in fakes[6:]]
    rows += [("notes.txt", "fake", "train"), (str(reals[0]), "maybe", "train")]
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(manifest, index=False)
    for target in (manifest, tmp_path):  # the file, or a folder holding one CSV
        index = data.index_dataset(target)
        assert index.layout == "csv"
        assert _counts(index) == {"train": (6, 6), "val": (4, 0), "test": (0, 4)}
        reasons = dict(index.skipped)
        assert "by extension" in reasons[str(tmp_path / "notes.txt")]
        assert "maybe" in reasons[str(reals[0])]
    # Relative paths and no split column: paths resolve next to the CSV, a stable split is made.
    sub = tmp_path / "rel"
    (sub / "imgs").mkdir(parents=True)
    rel_rows = []
    for p in reals + fakes:
        shutil.copy(p, sub / "imgs" / p.name)
        rel_rows.append((f"imgs/{p.name}", "fake" if p in fakes else "real"))
    pd.DataFrame(rel_rows, columns=["Path", "Label"]).to_csv(sub / "labels.csv", index=False)
    index = data.index_dataset(sub / "labels.csv")
    _check_frame(index)
    assert _counts(index) == {"train": (6, 6), "val": (2, 2), "test": (2, 2)}  # round(1.5) == 2


def test_csv_manifest_numeric_labels_with_gaps(faces140k: Path, tmp_path: Path) -> None:
    files = _real_images(faces140k / "real-vs-fake" / "test" / "real", 4)
    # An empty label makes pandas read the column as floats (1.0, 0.0, NaN).
    lines = ["path,label"] + [f"{f},{i % 2}" for i, f in enumerate(files)] + [f"{files[0]},"]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    index = data.index_dataset(tmp_path / "m.csv")
    assert sorted(index.frame["label"].tolist()) == [0, 0, 1, 1]
    assert len(index.skipped) == 1 and "neither fake/1 nor real/0" in index.skipped[0][1]


def test_csv_manifest_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,kind\na.jpg,fake\n")
    with pytest.raises(DatasetError, match="path,label"):
        data.index_dataset(bad)


# -------------------------------------------------------------------------------- broken and missing


def _broken_dataset(faces140k: Path, root: Path) -> dict[str, Path]:
    """A pair dataset with good copies, a truncated JPEG, a corrupt JPEG, an empty one and non-image files."""
    _make_pair(faces140k, root, "real", "fake", 8)
    good = next((root / "real").glob("*.jpg"))
    bad = {
        "truncated": root / "real" / "truncated.jpg",
        "corrupt": root / "fake" / "corrupt.jpg",
        "empty": root / "fake" / "empty.jpeg",
        "text": root / "real" / "readme.txt",
        "thumbs": root / "fake" / "Thumbs.db",
    }
    bad["truncated"].write_bytes(good.read_bytes()[:2500])
    bad["corrupt"].write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not an image")
    bad["thumbs"].write_bytes(b"\x00" * 64)
    (root / "fake" / ".DS_Store").write_bytes(b"\x00")
    return bad


def test_index_skips_non_images_and_reports_unreadable(faces140k: Path, tmp_path: Path) -> None:
    bad = _broken_dataset(faces140k, tmp_path / "broken")
    index = data.index_dataset(tmp_path / "broken")
    skipped = dict(index.skipped)
    assert set(skipped) == {str(bad["text"]), str(bad["thumbs"])}, "hidden files are ignored silently"
    paths = index.frame["path"].tolist()
    assert len(paths) == 16 + 3, "image extensions are indexed without decoding (fast)"
    unreadable = dict(data.find_unreadable(paths))
    assert set(unreadable) == {str(bad["truncated"]), str(bad["corrupt"]), str(bad["empty"])}
    assert "empty" in unreadable[str(bad["empty"])]
    assert all("\n" not in reason for reason in unreadable.values())


def test_predict_paths_reports_and_skips_bad_files(faces140k: Path, tmp_path: Path) -> None:
    bad = _broken_dataset(faces140k, tmp_path / "broken")
    paths = data.index_dataset(tmp_path / "broken").frame["path"].tolist()
    paths.append(str(tmp_path / "missing.jpg"))
    seen_batches: list[tuple] = []
    calls: list[tuple[int, int]] = []

    def brightness(batch: np.ndarray) -> np.ndarray:
        seen_batches.append(batch.shape)
        assert batch.dtype == np.float32 and batch.max() > 1
        return batch.mean(axis=(1, 2, 3)) / 255.0

    probs, errors = data.predict_paths(brightness, paths, 32, batch_size=4,
                                       progress=lambda done, total: calls.append((done, total)))
    expected_bad = {str(bad["truncated"]), str(bad["corrupt"]), str(bad["empty"]), str(tmp_path / "missing.jpg")}
    assert set(errors) == expected_bad
    ok = [p not in expected_bad for p in paths]
    assert np.isnan(probs[~np.array(ok)]).all()
    assert np.isfinite(probs[np.array(ok)]).all() and (probs[np.array(ok)] > 0).all()
    assert all(shape[1:] == (32, 32, 3) and shape[0] <= 4 for shape in seen_batches)
    assert calls[-1] == (len(paths), len(paths))
    # The transform hook is applied: a black image has brightness 0.
    black, _ = data.predict_paths(lambda b: b.mean(axis=(1, 2, 3)), [p for p, k in zip(paths, ok, strict=True) if k][:3], 16,
                                  transform=lambda img: img * 0)
    assert (black == 0).all()


def test_make_dataset_streams_and_skips_bad_files(faces140k: Path, tmp_path: Path) -> None:
    bad = _broken_dataset(faces140k, tmp_path / "broken")
    frame = data.index_dataset(tmp_path / "broken").frame
    bad_files: list[tuple[str, str]] = []
    ds = data.make_dataset(frame, 48, batch_size=5, bad_files=bad_files)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    x, y = np.concatenate(images), np.concatenate(labels)
    assert x.shape == (16, 48, 48, 3) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 1
    assert sorted(y.tolist()) == [0.0] * 8 + [1.0] * 8
    assert {p for p, _ in bad_files} == {str(bad["truncated"]), str(bad["corrupt"]), str(bad["empty"])}


def test_make_dataset_real_data_labels_and_augment(faces140k: Path) -> None:
    frame = data.index_dataset(faces140k).split("val").iloc[[0, 1, 150, 151]].reset_index(drop=True)
    plain = np.concatenate([x.numpy() for x, _ in data.make_dataset(frame, 64, batch_size=4)])
    labels = np.concatenate([y.numpy() for _, y in data.make_dataset(frame, 64, batch_size=4)])
    assert labels.tolist() == frame["label"].astype(float).tolist(), "no shuffle: index order"
    aug = data.Augment(flip=True, rotate_deg=10, zoom=0.1, blur_p=1, noise_p=1, jpeg_p=1)
    augmented = np.concatenate([x.numpy() for x, _ in data.make_dataset(frame, 64, batch_size=4, augment=aug)])
    assert augmented.shape == plain.shape
    assert np.abs(augmented - plain).mean() > 2, "augmentation changes the images"
    shuffled = data.make_dataset(frame, 64, batch_size=4, shuffle=True, repeat=True, seed=3)
    assert next(iter(shuffled))[0].shape == (4, 64, 64, 3)


def test_augment_from_dict_and_apply(faces140k: Path) -> None:
    from dfd import imaging

    aug = data.Augment.from_dict({"flip": False, "jpeg_p": 1.0, "jpeg_quality": [20, 20], "unknown": 3})
    assert aug.jpeg_quality == (20, 20) and not aug.flip
    assert data.Augment.from_dict(None).flip is False
    img = imaging.resize(imaging.load_image(_real_images(faces140k / "real-vs-fake" / "test" / "fake", 1)[0]), 64)
    out = aug.apply(img, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, imaging.jpeg_recompress(img, 20))
    flip = data.Augment(flip=True)
    flips = [np.array_equal(flip.apply(img, np.random.default_rng(s)), img[:, ::-1]) for s in range(20)]
    assert 3 < sum(flips) < 17, "flips about half the images"


def test_random_erasing_sets_one_rectangle_to_the_mean_colour(faces140k: Path) -> None:
    from dfd import imaging

    img = imaging.resize(imaging.load_image(_real_images(faces140k / "real-vs-fake" / "test" / "real", 1)[0]), 128)
    aug = data.Augment.from_dict({"flip": False, "erase_p": 1.0, "erase_area": [0.1, 0.1]})
    out = aug.apply(img, np.random.default_rng(5))
    changed = np.argwhere((out != img).any(axis=-1))
    assert len(changed), "erase_p 1: a rectangle is erased"
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    box = out[y0:y1 + 1, x0:x1 + 1]
    assert 0.07 < box.shape[0] * box.shape[1] / (128 * 128) < 0.13, "about the asked area"
    assert (box == box[0, 0]).all(), "one flat colour"
    assert np.abs(box[0, 0].astype(int) - img.reshape(-1, 3).mean(axis=0)).max() <= 1, "the image's mean colour"
    outside = np.ones(img.shape[:2], bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert np.array_equal(out[outside], img[outside]), "the rest untouched"
    never = data.Augment.from_dict({"flip": False, "erase_p": 0.0})
    assert np.array_equal(never.apply(img, np.random.default_rng(5)), img)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        data.index_dataset(tmp_path / "does-not-exist")


def test_empty_folder_lists_supported_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        data.index_dataset(tmp_path)
    message = str(info.value)
    for layout in ("real", "fake", "training_real", "CSV", "valid"):
        assert layout in message
    assert "\n" not in message


def test_unrecognised_folder(faces140k: Path, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    for f in _real_images(faces140k / "real-vs-fake" / "test" / "real", 3):
        shutil.copy(f, root / "cats" / f.name)
    with pytest.raises(DatasetError, match="supported layouts"):
        data.index_dataset(root)
    with pytest.raises(DatasetError, match="not a dataset folder"):
        data.index_dataset(next((root / "cats").iterdir()))


def test_layout_with_no_images(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images found"):
        data.index_dataset(tmp_path)


def test_listing_rules(faces140k: Path, tmp_path: Path) -> None:
    """Any extension case, nested folders, hidden files ignored, sorted whatever the directory order."""
    src = _real_images(faces140k / "real-vs-fake" / "test" / "real", 1)[0]
    root = tmp_path / "set"
    names = {"real": ["b.JPG", "a.jpg", "c.Png", "sub/d.jpeg", "._a.jpg", ".hidden.jpg", "notes.md"],
             "fake": ["z.jpg", "y.jpg", "x.jpg"]}
    for cls, files in names.items():
        for name in files:
            (root / cls / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / cls / name)
    index = data.index_dataset(root)
    rel = [os.path.relpath(p, root) for p in index.frame["path"]]
    assert sorted(r for r in rel if r.startswith("real")) == ["real/a.jpg", "real/b.JPG", "real/c.Png", "real/sub/d.jpeg"]
    fakes = [r for r in rel if r.startswith("fake")]
    assert sorted(fakes) == ["fake/x.jpg", "fake/y.jpg", "fake/z.jpg"]
    for cls in ("real", "fake"):
        listed = [p for p in index.frame["path"] if f"{os.sep}{cls}{os.sep}" in p]
        assert listed == sorted(listed), "sorted within a class, whatever order the file system lists"
    assert [os.path.relpath(p, root) for p, _ in index.skipped] == ["real/notes.md"]


def test_fast_listing_agrees_with_plain_listing(faces140k: Path, rff: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The Arrow fast path (pandas 3) and the plain Python listing give the same index, row for row."""
    pair = _make_pair(faces140k, tmp_path / "pair", "real", "fake", 5)
    (pair / "fake" / ".DS_Store").write_bytes(b"\0")
    (pair / "real" / "x.PNG").write_bytes((pair / "real").joinpath(next(iter(os.listdir(pair / "real")))).read_bytes())
    roots = [faces140k, rff, pair]
    fast = [data.index_dataset(r) for r in roots]
    monkeypatch.setattr(data, "_ARROW", False)
    plain = [data.index_dataset(r) for r in roots]
    for a, b in zip(fast, plain, strict=True):
        pd.testing.assert_frame_equal(a.frame, b.frame)
        assert a.skipped == b.skipped


def test_mixup_mixes_images_and_labels_alike(tmp_path: Path) -> None:
    """Black reals and white fakes: after mixup every image's brightness must equal its (soft) label."""
    from PIL import Image

    rows = []
    for i in range(32):
        label = i % 2
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (16, 16), (255 * label,) * 3).save(path)
        rows.append({"path": str(path), "label": label})
    frame = pd.DataFrame(rows)
    plain = data.make_dataset(frame, 16, 32, augment=data.Augment(flip=False))
    mixed = data.make_dataset(frame, 16, 32, augment=data.Augment.from_dict({"flip": False, "mixup": 0.4}), seed=3)
    _, y0 = next(iter(plain))
    x, y = next(iter(mixed))
    x, y = np.asarray(x), np.asarray(y)
    assert sorted(np.asarray(y0).tolist()) == [0.0] * 16 + [1.0] * 16
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)) / 255, y, atol=1e-4)
    assert ((y > 0.05) & (y < 0.95)).sum() >= 4, y
    assert abs(y.mean() - 0.5) < 0.25
