"""Datasets: find the layout of a folder, build the index (path, label, split), and stream it with tf.data.

Supported layouts (folder names matched case-insensitively), found at the folder given or below it:

- ``split``: ``{train,valid|val|validation,test}/{real,fake}/`` as in "140k Real and Fake Faces"
  (``real-vs-fake/...``) and "Deepfake and Real Images" (``Dataset/{Train,Validation,Test}/{Real,Fake}``);
- ``rff``: ``{training_real,training_fake}/`` as in "Real and Fake Face Detection" (no split);
- ``pair``: a plain ``real/`` + ``fake/`` pair (no split);
- ``csv``: a CSV manifest with columns ``path,label[,split]`` (a ``.csv`` file, or the only one in the folder).

Where several datasets sit below one folder, all are indexed and the ``dataset`` column tells them apart.
Labels are explicit: fake = 1, real = 0. Layouts without a split get a stratified split that is a function
of the file names only (stable whatever the listing order). Indexing never decodes an image; unreadable
files are found when decoded (:func:`find_unreadable`, and the tf.data pipeline skips and reports them).
TensorFlow is imported only by the pipeline functions.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dfd import imaging

if TYPE_CHECKING:
    import tensorflow as tf

SPLITS = ("train", "val", "test")
FAKE, REAL = 1, 0
_SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
_CLASS_NAMES = {"real": REAL, "fake": FAKE, "training_real": REAL, "training_fake": FAKE}
_PAIR_CLASSES = {"real": REAL, "fake": FAKE}
_RFF_CLASSES = {"training_real": REAL, "training_fake": FAKE}
_MAX_DEPTH = 3
COLUMNS = ["path", "label", "split", "class_name", "dataset", "generator", "source"]
# Fakes whose file names say their generator (modern-faces-128: thispersondoesnotexist StyleGAN2 faces are
# fd_*/fcv_*, Stable Diffusion 2.1 faces sd21_*). A fake in a sub-folder of its class folder
# (fake/<generator>/x.jpg) is named by that sub-folder. Reals and fakes of unknown origin: "".
GENERATOR_PREFIXES = {"fd_": "stylegan2", "fcv_": "stylegan2", "sd21_": "sd2.1"}

SUPPORTED_LAYOUTS = (
    "supported layouts: '<split>/{real,fake}/' with splits train, valid|val|validation, test "
    "(140k Real and Fake Faces, Deepfake and Real Images); 'training_real/' + 'training_fake/' "
    "(Real and Fake Face Detection); a plain 'real/' + 'fake/' pair; or a CSV manifest 'path,label[,split]'"
)


class DatasetError(ValueError):
    """A folder that is missing, empty or in no supported layout (the message lists the layouts)."""


@dataclass
class DatasetIndex:
    """The index of one dataset folder: a table with one row per image file, plus what was skipped."""

    root: Path
    layout: str
    frame: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # the folder (or CSV) of each dataset found below root

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    def counts(self) -> pd.DataFrame:
        """Images per split and class: rows train/val/test, columns real/fake/total."""
        table = pd.crosstab(self.frame["split"], self.frame["label"].map({REAL: "real", FAKE: "fake"}))
        table = table.reindex(index=[s for s in SPLITS if s in table.index], columns=["real", "fake"], fill_value=0)
        table["total"] = table.sum(axis=1)
        return table

    def fingerprint(self) -> str:
        """A hash of (relative path, label, split) of every row: equal fingerprints, equal data index.

        Paths are taken relative to the parent of each dataset's own folder, so the fingerprint does not
        depend on which parent folder the index was made from.
        """
        digest = hashlib.sha256()
        bases = sorted({str(f.parent if f.is_dir() else f.parent.parent) for f in self.folders} or {str(self.root)},
                       key=len, reverse=True)

        def relative(p: str) -> str:
            base = next((b for b in bases if p.startswith(b + os.sep)), str(self.root))
            return os.path.relpath(p, base)

        rel = sorted(
            f"{relative(p)}|{lab}|{sp}"
            for p, lab, sp in zip(self.frame["path"], self.frame["label"], self.frame["split"], strict=True)
        )
        digest.update("\n".join(rel).encode())
        return digest.hexdigest()[:16]


def _subdirs(path: Path) -> dict[str, Path]:
    try:
        with os.scandir(path) as it:
            return {e.name.lower(): Path(e.path) for e in it if e.is_dir(follow_symlinks=True)}
    except OSError:
        return {}


# Extensions in the cases people's files have, for a fast first test; other cases fall back to .lower().
_EXT_FAST = tuple(imaging.IMAGE_EXTENSIONS) + tuple(ext.upper() for ext in imaging.IMAGE_EXTENSIONS)


def _all_images(prefix: str, names: list[str]) -> list[str] | None:
    """``prefix + name`` for every name if all names end with the same image extension, else None.

    The common case (a class folder of one kind of file) done with C-level string operations: one join,
    two counts and one split instead of a Python loop over 50,000 names.
    """
    if not names:
        return []
    ext = os.path.splitext(names[0])[1]
    if ext not in _EXT_FAST:
        return None
    joined = "\n".join(names)
    if joined.count("\n") != len(names) - 1 or (joined + "\n").count(ext + "\n") != len(names):
        return None  # a newline inside a name, or not every name has the extension
    return (prefix + ("\n" + prefix).join(names)).split("\n")


def _list_images(folder: Path, skipped: list[tuple[str, str]]) -> list[str]:
    """Image files below ``folder`` (recursively), by extension, sorted; other files are recorded as skipped.

    Fast path for big folders (a class folder of the 140k dataset holds 50,000 files): ``os.listdir``, a sort,
    and string operations in C (:func:`_all_images`), no ``stat``; only names without an image extension are
    checked for being folders (bench/index_speed.py measures this against a bare ``os.scandir`` walk). Names starting with "." (``.DS_Store``, macOS ``._x.jpg`` forks) are ignored.
    """
    found: list[str] = []
    stack = [str(folder)]
    visited = 0
    while stack:
        current = stack.pop()
        visited += 1
        try:
            names = os.listdir(current)
        except OSError as exc:
            skipped.append((current, f"cannot list folder: {exc.strerror or exc}"))
            continue
        names.sort()
        # Hidden names form one block of the sorted list ("." sorts just before "/", never in a name).
        lo, hi = bisect.bisect_left(names, "."), bisect.bisect_left(names, "/")
        if lo < hi:
            del names[lo:hi]
        prefix = os.path.join(current, "")
        images = _all_images(prefix, names)
        if images is None:
            images = [prefix + n for n in names if n.endswith(_EXT_FAST)]
        if len(images) < len(names):
            for name in names:
                if name.endswith(_EXT_FAST):
                    continue
                path = prefix + name
                if name.lower().endswith(imaging.IMAGE_EXTENSIONS):
                    images.append(path)
                elif os.path.isdir(path):
                    stack.append(path)
                else:
                    skipped.append((path, "not an image file (by extension)"))
            images.sort()
        found += images
    if visited > 1:
        found.sort()
    return found


_ARROW: Any = None  # (pyarrow, pyarrow.compute) when pandas keeps strings in Arrow; False when not; None: unknown


def _arrow() -> Any:
    """(pyarrow, pyarrow.compute) if pandas' default string columns are Arrow-backed (pandas 3), else None."""
    global _ARROW
    if _ARROW is None:
        try:
            import pyarrow as pa
            import pyarrow.compute as pc

            _ARROW = (pa, pc) if pa.array(["a"]).to_pandas().dtype == pd.Series(["a"]).dtype else False
        except (ImportError, AttributeError, TypeError):
            _ARROW = False
    return _ARROW or None


def _list_class_folder(folder: Path, skipped: list[tuple[str, str]]) -> Any:
    """The sorted image paths of one class folder: an Arrow string array when possible, else a list.

    The Arrow path (the common case: one flat folder of files with one image extension, nothing hidden) sorts,
    checks and prefixes the names in C++ without making a Python string per path; anything else (subfolders,
    other files, hidden files, no pyarrow) goes through :func:`_list_images`, which reports what it skips.
    """
    arrow = _arrow()
    if arrow is not None:
        pa, pc = arrow
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        ext = os.path.splitext(names[0])[1] if names else ""
        if ext in _EXT_FAST:
            arr = pa.array(names, pa.string())
            if pc.all(pc.ends_with(arr, ext)).as_py() and not pc.any(pc.starts_with(arr, ".")).as_py():
                arr = arr.take(pc.sort_indices(arr))
                return pc.binary_join_element_wise(os.path.join(str(folder), ""), arr, "")
    return _list_images(folder, skipped)


def _path_column(chunks: list[Any]) -> pd.Series:
    """One string column from per-folder lists or Arrow arrays, with pandas' default string dtype."""
    arrow = _arrow()
    if arrow is not None and chunks and any(not isinstance(c, list) for c in chunks):
        pa, _ = arrow
        arrays = [c if not isinstance(c, list) else pa.array(c, pa.string()) for c in chunks]
        return pa.concat_arrays(arrays).to_pandas()
    return pd.Series([p for chunk in chunks for p in chunk], dtype=object if not chunks else None)


def _detect(path: Path) -> str | None:
    subs = _subdirs(path)
    split_dirs = {name: p for name, p in subs.items() if name in _SPLIT_NAMES}
    if split_dirs and any(set(_subdirs(p)) & set(_PAIR_CLASSES) for p in split_dirs.values()):
        return "split"
    if set(_RFF_CLASSES) <= set(subs):
        return "rff"
    if set(_PAIR_CLASSES) <= set(subs):
        return "pair"
    return None


def find_datasets(root: str | Path) -> list[tuple[Path, str]]:
    """Every (folder, layout) at or below ``root`` (to a depth of 3), outermost match first."""
    root = Path(root).expanduser()
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return [(root, "csv")]
        raise DatasetError(f"{root} is a file, not a dataset folder; {SUPPORTED_LAYOUTS}")
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    found: list[tuple[Path, str]] = []
    level = [root]
    for _ in range(_MAX_DEPTH + 1):
        nxt: list[Path] = []
        for folder in level:
            layout = _detect(folder)
            if layout:
                found.append((folder, layout))
            else:
                nxt.extend(sorted(_subdirs(folder).values()))
        level = nxt
    if not found:
        csvs = sorted(p for p in root.glob("*.csv"))
        if len(csvs) == 1:
            return [(csvs[0], "csv")]
    return found


def stable_split(names: Iterable[str], labels: Iterable[int], val_frac: float, test_frac: float,
                 seed: int = 0) -> list[str]:
    """Stratified train/val/test assignment that depends only on the names (not their order).

    Within each class the files are ordered by a hash of ``seed`` and their name; the first
    ``round(test_frac * n)`` go to test, the next ``round(val_frac * n)`` to val, the rest to train.
    """
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError("val_frac and test_frac must be in [0, 1) and sum to less than 1")
    names, labels = list(names), list(labels)
    out = ["train"] * len(names)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        key = hashlib.md5(f"{seed}:{name}".encode()).hexdigest()
        by_class.setdefault(label, []).append((key, i))
    for members in by_class.values():
        members.sort()
        n = len(members)
        n_test, n_val = round(test_frac * n), round(val_frac * n)
        for rank, (_, i) in enumerate(members):
            out[i] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def _index_one(folder: Path, layout: str, val_frac: float, test_frac: float, seed: int,
               skipped: list[tuple[str, str]]) -> pd.DataFrame:
    parts: list[tuple[Any, int, str | None, str]] = []  # (paths, label, split, class folder name)
    if layout == "split":
        for split_name, split_dir in sorted(_subdirs(folder).items()):
            if split_name not in _SPLIT_NAMES:
                continue
            for class_name, class_dir in sorted(_subdirs(split_dir).items()):
                if class_name not in _PAIR_CLASSES:
                    skipped.append((str(class_dir), "folder is neither real nor fake"))
                    continue
                parts.append((_list_class_folder(class_dir, skipped), _PAIR_CLASSES[class_name],
                              _SPLIT_NAMES[split_name], class_dir.name))
    elif layout in ("rff", "pair"):
        classes = _RFF_CLASSES if layout == "rff" else _PAIR_CLASSES
        subs = _subdirs(folder)
        for class_name, label in classes.items():
            class_dir = subs[class_name]
            parts.append((_list_class_folder(class_dir, skipped), label, None, class_dir.name))
    elif layout == "csv":
        return _index_csv(folder, val_frac, test_frac, seed, skipped)
    # Column-wise construction (fast for 140k rows): one column of paths; the per-folder columns are a take()
    # of a few values by folder number, done in C.
    sizes = [len(paths) for paths, _, _, _ in parts]
    folder_no = np.repeat(np.arange(len(parts)), sizes)

    def per_folder(values: list[Any]) -> pd.Series:
        return pd.Series(values).take(folder_no).reset_index(drop=True)

    frame = pd.DataFrame({
        "path": _path_column([paths for paths, _, _, _ in parts]),
        "label": np.repeat(np.array([lab for _, lab, _, _ in parts], dtype=np.int64), sizes),
        "split": per_folder([sp for _, _, sp, _ in parts]),
        "class_name": per_folder([cn for _, _, _, cn in parts]),
    }, columns=["path", "label", "split", "class_name"])
    if layout in ("rff", "pair") and len(frame):
        frame["split"] = stable_split([os.path.basename(p) for p in frame["path"]], frame["label"],
                                      val_frac, test_frac, seed)
    return frame


def _index_csv(csv_path: Path, val_frac: float, test_frac: float, seed: int,
               skipped: list[tuple[str, str]]) -> pd.DataFrame:
    try:
        table = pd.read_csv(csv_path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"cannot read CSV manifest {csv_path}: {exc}") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    if not {"path", "label"} <= set(table.columns):
        raise DatasetError(f"CSV manifest {csv_path} needs columns path,label[,split]; it has {list(table.columns)}")
    rows = []
    for rec in table.itertuples(index=False):
        raw = str(rec.path)
        path = Path(raw) if os.path.isabs(raw) else csv_path.parent / raw
        label_text = str(rec.label).strip().lower()
        label = _CLASS_NAMES.get(label_text, {"1": FAKE, "0": REAL, "1.0": FAKE, "0.0": REAL}.get(label_text))
        if label is None:
            skipped.append((str(path), f"label {rec.label!r} is neither fake/1 nor real/0"))
            continue
        if not path.suffix.lower().endswith(imaging.IMAGE_EXTENSIONS):
            skipped.append((str(path), "not an image file (by extension)"))
            continue
        split = _SPLIT_NAMES.get(str(getattr(rec, "split", "")).strip().lower())
        rows.append((str(path), label, split, label_text))
    frame = pd.DataFrame(rows, columns=["path", "label", "split", "class_name"])
    missing = frame["split"].isna()
    if missing.any():
        frame.loc[missing, "split"] = stable_split(
            [os.path.basename(p) for p in frame.loc[missing, "path"]], frame.loc[missing, "label"],
            val_frac, test_frac, seed)
    return frame


def index_dataset(root: str | Path, *, val_frac: float = 0.15, test_frac: float = 0.15,
                  seed: int = 0) -> DatasetIndex:
    """Index the dataset(s) at ``root``. ``val_frac``/``test_frac`` apply only where the data has no split."""
    root = Path(root).expanduser()
    found = find_datasets(root)
    if not found:
        raise DatasetError(f"no dataset found in {root}; {SUPPORTED_LAYOUTS}")
    skipped: list[tuple[str, str]] = []
    frames = []
    for folder, layout in found:
        frame = _index_one(folder, layout, val_frac, test_frac, seed, skipped)
        if len(found) > 1:
            frame["dataset"] = os.path.relpath(folder, root).split(os.sep)[0]
        else:
            frame["dataset"] = root.name if root.is_dir() else root.stem
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["generator"] = generators(frame)
    frame["source"] = sources(frame)
    frame = frame[COLUMNS]
    if frame.empty:
        raise DatasetError(f"no images found in {root} (layout: {', '.join(sorted({lay for _, lay in found}))}); "
                           f"{SUPPORTED_LAYOUTS}")
    frame["label"] = frame["label"].astype(np.int64)
    layout = found[0][1] if len({lay for _, lay in found}) == 1 else "mixed"
    return DatasetIndex(root=root if root.is_dir() else root.parent, layout=layout, frame=frame, skipped=skipped,
                        folders=[folder for folder, _ in found])


def _class_subfolder(frame: pd.DataFrame, label: int) -> pd.Series:
    """For rows of ``label`` stored as ``<class folder>/<sub-folder>/<file>``: the sub-folder, lower case."""
    parts = frame["path"].astype(str).str.rsplit(os.sep, n=3)
    parents, grand = parts.str[-2].fillna(""), parts.str[-3].fillna("")
    out = pd.Series("", index=frame.index, dtype=object)
    if "class_name" in frame:
        sub = (frame["label"].to_numpy() == label) & (grand == frame["class_name"].astype(str)).to_numpy()
        out[sub] = parents[sub].str.lower()
    return out


def generators(frame: pd.DataFrame) -> pd.Series:
    """The generator of each fake row as its file name or sub-folder says (:data:`GENERATOR_PREFIXES`, or
    ``<class folder>/<generator>/<file>``); "" for reals and for fakes that do not say."""
    out = _class_subfolder(frame, FAKE)
    names = frame["path"].astype(str).str.rsplit(os.sep, n=1).str[-1]
    fake = frame["label"].to_numpy() == FAKE
    for prefix, name in GENERATOR_PREFIXES.items():
        out[fake & names.str.startswith(prefix).to_numpy()] = name
    return out


def sources(frame: pd.DataFrame) -> pd.Series:
    """The source of each real row as its sub-folder says (``<class folder>/<source>/<file>``, e.g.
    web-faces-256's ``real/utkface/``); "" for fakes and for reals that do not say."""
    return _class_subfolder(frame, REAL)


def find_unreadable(paths: Iterable[str]) -> list[tuple[str, str]]:
    """Fully decode each file; return (path, reason) for those that are not readable images."""
    bad = []
    for p in paths:
        try:
            imaging.load_image(p)
        except imaging.ImageError as exc:
            bad.append((p, str(exc)))
    return bad


# ----------------------------------------------------------------------------------------------------------
# tf.data pipelines


@dataclass
class Augment:
    """Training-time augmentations; each probability is per image. Used only for the train split."""

    flip: bool = True
    rotate_deg: float = 0.0          # random rotation in [-rotate_deg, rotate_deg]
    zoom: float = 0.0                # random zoom in [1 - zoom, 1 + zoom]
    rescale_p: float = 0.0           # probability of a web resize: down by a factor in rescale_range, back up
    rescale_range: tuple[float, float] = (0.5, 0.9)
    blur_p: float = 0.0              # probability of Gaussian blur, sigma uniform in blur_sigma
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_p: float = 0.0             # probability of Gaussian noise, sigma uniform in noise_sigma
    noise_sigma: tuple[float, float] = (1.0, 8.0)
    jpeg_p: float = 0.0              # probability of JPEG re-compression, quality uniform in jpeg_quality
    jpeg_quality: tuple[int, int] = (50, 95)
    mixup: float = 0.0               # > 0: mix each batch with itself shuffled, weight ~ Beta(mixup, mixup)
    erase_p: float = 0.0             # probability of random erasing: one rectangle set to the image's mean colour
    erase_area: tuple[float, float] = (0.02, 0.15)  # its area as a fraction of the image (aspect 0.3-3.3)
    resample_p: float = 0.0          # probability of a source-size change: the image brought to a side drawn
    resample_px: tuple[int, int] = (96, 512)  # log-uniformly from resample_px, then back to the model's size
    sharpen_p: float = 0.0           # probability of an unsharp mask (amount uniform in sharpen_amount)
    sharpen_amount: tuple[float, float] = (0.3, 1.2)
    webp_p: float = 0.0              # probability of WebP re-compression, quality uniform in webp_quality
    webp_quality: tuple[int, int] = (60, 95)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Augment:
        if d is None:
            return cls(flip=False)
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        if self.resample_p and rng.random() < self.resample_p:
            lo, hi = np.log(self.resample_px[0]), np.log(self.resample_px[1])
            side = int(round(float(np.exp(rng.uniform(lo, hi)))))
            img = imaging.resample(img, side, int(rng.integers(len(imaging.UPSCALERS))))
        if self.sharpen_p and rng.random() < self.sharpen_p:
            img = imaging.sharpen(img, float(rng.uniform(*self.sharpen_amount)))
        if self.webp_p and rng.random() < self.webp_p:
            img = imaging.webp_recompress(img, int(rng.integers(self.webp_quality[0], self.webp_quality[1] + 1)))
        if self.rescale_p and rng.random() < self.rescale_p:
            img = imaging.rescale(img, float(rng.uniform(*self.rescale_range)))
        if self.jpeg_p and rng.random() < self.jpeg_p:
            img = imaging.jpeg_recompress(img, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
        if self.blur_p and rng.random() < self.blur_p:
            img = imaging.gaussian_blur(img, float(rng.uniform(*self.blur_sigma)))
        if self.noise_p and rng.random() < self.noise_p:
            img = imaging.gaussian_noise(img, float(rng.uniform(*self.noise_sigma)), rng)
        if self.flip and rng.random() < 0.5:
            img = img[:, ::-1]
        if self.rotate_deg or self.zoom:
            h, w = img.shape[:2]
            angle = float(rng.uniform(-self.rotate_deg, self.rotate_deg))
            scale = float(rng.uniform(1 - self.zoom, 1 + self.zoom))
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        if self.erase_p and rng.random() < self.erase_p:
            img = _erase(img, rng, self.erase_area)
        return np.ascontiguousarray(img)


def _erase(img: np.ndarray, rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    """Random erasing (Zhong et al. 2020): one rectangle of the image set to its mean colour, so the model
    cannot rest on any single region."""
    h, w = img.shape[:2]
    target = float(rng.uniform(*area)) * h * w
    aspect = float(np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3))))
    eh = int(min(h, max(1, round(np.sqrt(target * aspect)))))
    ew = int(min(w, max(1, round(np.sqrt(target / aspect)))))
    y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
    img = np.array(img, copy=True)
    img[y:y + eh, x:x + ew] = img.reshape(-1, img.shape[-1]).mean(axis=0).astype(img.dtype)
    return img


def _loader(image_size: int, augment: Augment | None, seed: int,
            bad: list[tuple[str, str]] | None) -> Callable[[bytes], tuple[np.ndarray, bool]]:
    rng = np.random.default_rng(seed)
    transform = None if augment is None else (lambda img: augment.apply(img, rng))

    def load(path: bytes) -> tuple[np.ndarray, bool]:
        p = path.decode()
        try:
            return imaging.decode(p, image_size, transform), True
        except imaging.ImageError as exc:
            if bad is not None:
                bad.append((p, str(exc)))
            return np.zeros((image_size, image_size, 3), np.float32), False

    return load


def _readable(*element: Any) -> Any:
    """An element of :func:`make_dataset`'s stream whose image decoded (its last field, ``ok``)."""
    return element[-1]


def _without_ok(*element: Any) -> tuple[Any, ...]:
    return element[:-1]


def make_dataset(frame: pd.DataFrame, image_size: int, batch_size: int = 32, *, shuffle: bool = False,
                 augment: Augment | None = None, seed: int = 0, repeat: bool = False,
                 bad_files: list[tuple[str, str]] | None = None,
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Stream ``(image, label)`` batches from disk: parallel decode, skip unreadable files, prefetch.

    Images are float32 in 0..255 (the model rescales). Unreadable files are dropped and appended to
    ``bad_files`` as (path, reason). A ``weight`` column in ``frame`` makes the elements ``(image, label,
    weight)``. ``shard=(n, i)`` keeps every n-th file from the i-th of the (seeded) shuffled file list, before
    decoding: n workers with the same ``seed`` read disjoint parts of each epoch (their augmentations differ).
    """
    import tensorflow as tf

    paths = frame["path"].astype(str).to_numpy()
    labels = frame["label"].to_numpy(np.float32)
    weighted = "weight" in frame
    n_shards, shard_index = shard or (1, 0)
    load = _loader(image_size, augment, seed + 7919 * shard_index, bad_files)

    def tf_load(path, label, *weight):
        img, ok = tf.numpy_function(load, [path], [tf.float32, tf.bool], stateful=augment is not None)
        img.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return (img, label, *weight, ok)

    columns = (paths, labels, frame["weight"].to_numpy(np.float32)) if weighted else (paths, labels)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if n_shards > 1:
        ds = ds.shard(n_shards, shard_index)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(tf_load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    ds = ds.filter(_readable).map(_without_ok).batch(batch_size)
    if augment is not None and augment.mixup > 0:
        mix = _mixer(float(augment.mixup), seed + shard_index)

        def mix_weighted(images: Any, labels: Any, weights: Any) -> tuple[Any, Any, Any]:
            return (*mix(images, labels), weights)

        ds = ds.map(mix_weighted if weighted else mix)
    return ds.prefetch(tf.data.AUTOTUNE)


def _mixer(alpha: float, seed: int) -> Callable[[Any, Any], tuple[Any, Any]]:
    """Batch mixup (Zhang et al. 2018): each image and label mixed with another of the batch,
    ``lam * a + (1 - lam) * b`` with ``lam ~ Beta(alpha, alpha)`` per image (soft labels). Mixing whole
    images keeps every pixel's traces in place, only weaker; a regulariser for small data."""
    import tensorflow as tf

    gen = tf.random.Generator.from_seed(seed)

    def mix(images: Any, labels: Any) -> tuple[Any, Any]:
        n = tf.shape(images)[0]
        seeds = gen.make_seeds(2)
        a = tf.random.stateless_gamma([n], seeds[:, 0], alpha=alpha)
        b = tf.random.stateless_gamma([n], seeds[:, 1], alpha=alpha)
        lam = a / tf.maximum(a + b, 1e-12)
        order = tf.argsort(gen.uniform([n]))
        mixed = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * tf.gather(images, order)
        return mixed, lam * labels + (1 - lam) * tf.gather(labels, order)

    return mix


def predict_paths(predict_batch: Callable[[np.ndarray], np.ndarray], paths: list[str], image_size: int,
                  batch_size: int = 32, transform: Callable[[np.ndarray], np.ndarray] | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  source_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, dict[str, str]]:
    """P(fake) for each path (NaN where unreadable) and {path: reason} for the unreadable ones.

    ``transform`` (uint8 RGB -> uint8 RGB, e.g. a perturbation) is applied after resizing, before the model;
    ``source_transform`` to the decoded image before resizing (e.g. the image at another source size).
    Decoding runs on a thread pool (PIL and OpenCV release the GIL) while the model works.
    """
    from concurrent.futures import ThreadPoolExecutor

    def load(p: str) -> np.ndarray | str:
        try:
            img = imaging.load_image(p)
            if source_transform is not None:
                img = source_transform(img)
            return imaging.prepare(img, image_size, transform)
        except imaging.ImageError as exc:
            return str(exc)

    probs = np.full(len(paths), np.nan, dtype=np.float64)
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        loaded = pool.map(load, paths)
        batch_idx: list[int] = []
        batch: list[np.ndarray] = []

        def flush() -> None:
            if batch:
                probs[batch_idx] = np.asarray(predict_batch(np.stack(batch))).reshape(-1)
                batch.clear()
                batch_idx.clear()

        for i, item in enumerate(loaded):
            if isinstance(item, str):
                errors[paths[i]] = item
            else:
                batch.append(item)
                batch_idx.append(i)
                if len(batch) == batch_size:
                    flush()
            if progress and (i + 1) % batch_size == 0:
                progress(i + 1, len(paths))
        flush()
        if progress:
            progress(len(paths), len(paths))
    return probs, errors
