"""Dataset summaries for the explorer: samples, sizes and formats, JPEG quantisation, mean spectra.

Pure functions of a :class:`dfd.data.DatasetIndex` frame (columns path, label, split, class_name, dataset);
no TensorFlow, no Streamlit. Sampling is seeded, so the same arguments give the same images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dfd import imaging

CLASS_NAMES = {0: "real", 1: "fake"}


def class_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table: dataset, split, class, images (one row per non-empty combination)."""
    if frame.empty:
        return pd.DataFrame(columns=["dataset", "split", "class", "images"])
    table = (frame.assign(**{"class": frame["label"].map(CLASS_NAMES)})
             .groupby(["dataset", "split", "class"], observed=True).size().rename("images").reset_index())
    order = {"train": 0, "val": 1, "test": 2}
    return table.sort_values(["dataset", "split", "class"], key=lambda s: s.map(order) if s.name == "split" else s,
                             ignore_index=True)


def counts_table(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`class_counts` as a wide table: rows (dataset, split) in train/val/test order, real, fake, total."""
    table = counts.pivot_table(index=["dataset", "split"], columns="class", values="images", fill_value=0)
    table = table.reindex(columns=[c for c in ("real", "fake") if c in table.columns])
    order = {"train": 0, "val": 1, "test": 2}
    table = table.sort_index(key=lambda idx: idx.map(order) if idx.name == "split" else idx)
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table


def select(frame: pd.DataFrame, split: str | None = None, label: int | None = None,
           dataset: str | None = None) -> pd.DataFrame:
    """Rows of ``frame`` for one split / class / dataset (None: all)."""
    mask = np.ones(len(frame), dtype=bool)
    if split is not None:
        mask &= (frame["split"] == split).to_numpy()
    if label is not None:
        mask &= (frame["label"] == label).to_numpy()
    if dataset is not None:
        mask &= (frame["dataset"] == dataset).to_numpy()
    return frame[mask].reset_index(drop=True)


def page_of(frame: pd.DataFrame, page: int, per_page: int, seed: int = 0) -> list[str]:
    """Paths on page ``page`` (0-based) of ``frame`` in a seeded random order (a new seed reshuffles)."""
    order = np.random.default_rng(seed).permutation(len(frame))
    start = max(0, page) * per_page
    return frame["path"].to_numpy()[order[start:start + per_page]].tolist()


def n_pages(n: int, per_page: int) -> int:
    return max(1, -(-n // per_page))


def sample(frame: pd.DataFrame, n: int, seed: int = 0, by: str = "label") -> pd.DataFrame:
    """Up to ``n`` random rows per value of ``by`` (seeded)."""
    parts = [g.sample(min(n, len(g)), random_state=seed) for _, g in frame.groupby(by, observed=True)]
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]


def size_summary(frame: pd.DataFrame, n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Per dataset and class over a sample of ``n`` files per class: formats, modes, sizes (headers only)."""
    rows = []
    for (dataset, label), group in sample(frame, n, seed, by=["dataset", "label"]).groupby(["dataset", "label"]):
        infos = pd.DataFrame([imaging.image_info(p) for p in group["path"]])
        ok = infos.dropna(subset=["width"])
        sizes = (ok["width"].astype(int).astype(str) + "x" + ok["height"].astype(int).astype(str)).value_counts()
        rows.append({
            "dataset": dataset, "class": CLASS_NAMES[int(label)], "files sampled": len(group),
            "formats": ", ".join(f"{k} ({v})" for k, v in ok["format"].value_counts().items()),
            "modes": ", ".join(f"{k} ({v})" for k, v in ok["mode"].value_counts().items()),
            "most common size": f"{sizes.index[0]} ({sizes.iloc[0]})" if len(sizes) else "",
            "distinct sizes": len(sizes),
            "width min-max": f"{int(ok['width'].min())}-{int(ok['width'].max())}" if len(ok) else "",
            "height min-max": f"{int(ok['height'].min())}-{int(ok['height'].max())}" if len(ok) else "",
        })
    return pd.DataFrame(rows)


def quant_steps(frame: pd.DataFrame, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """JPEG luminance quantisation step per file for a sample of ``n`` per dataset and class.

    Columns dataset, class, path, quant_step (NaN for non-JPEG files). Higher = stronger compression.
    A gap between the classes is a shortcut a model can learn instead of the manipulation.
    """
    picked = sample(frame, n, seed, by=["dataset", "label"])
    steps = [imaging.jpeg_quant_step(p) for p in picked["path"]]
    return pd.DataFrame({
        "dataset": picked["dataset"].to_numpy(), "class": picked["label"].map(CLASS_NAMES).to_numpy(),
        "path": picked["path"].to_numpy(), "quant_step": np.array([np.nan if s is None else s for s in steps]),
    })


def quant_summary(steps: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and class: mean, median, min, max quantisation step and the share of non-JPEG files."""
    if steps.empty:
        return pd.DataFrame(columns=["dataset", "class", "files", "mean step", "median step", "min", "max", "not JPEG"])
    grouped = steps.groupby(["dataset", "class"])["quant_step"]
    return pd.DataFrame({
        "files": grouped.size(), "mean step": grouped.mean().round(1), "median step": grouped.median().round(1),
        "min": grouped.min().round(1), "max": grouped.max().round(1),
        "not JPEG": grouped.apply(lambda s: int(s.isna().sum())),
    }).reset_index()


def mean_spectra(frame: pd.DataFrame, n: int = 64, size: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean centred log-magnitude spectrum of each class over ``n`` sampled images ({"real": ..., "fake": ...}).

    Unreadable files are left out of the mean.
    """
    out: dict[str, np.ndarray] = {}
    for label, group in sample(frame, n, seed).groupby("label"):
        specs = []
        for p in group["path"]:
            try:
                specs.append(imaging.log_spectrum(imaging.load_image(p), size))
            except imaging.ImageError:
                continue
        if specs:
            out[CLASS_NAMES[int(label)]] = np.mean(specs, axis=0)
    return out


def thumbnail(path: str, size: int = 160) -> np.ndarray | str:
    """A thumbnail of ``path`` at most ``size`` px on its longer side, or the reason it cannot be read."""
    import cv2

    try:
        img = imaging.load_image(path)
    except imaging.ImageError as exc:
        return str(exc)
    h, w = img.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return img


def compression_gaps(summary: pd.DataFrame, min_gap: float = 2.0) -> list[str]:
    """One sentence per dataset whose classes differ in mean JPEG quantisation step by ``min_gap`` or more."""
    out = []
    for dataset, group in summary.groupby("dataset"):
        means = dict(zip(group["class"], group["mean step"], strict=True))
        if "real" in means and "fake" in means and abs(means["real"] - means["fake"]) >= min_gap:
            lower = "fake" if means["fake"] < means["real"] else "real"
            out.append(f"{dataset}: mean quantisation step real {means['real']:.1f} vs fake {means['fake']:.1f}: "
                       f"the {lower} images were saved at a higher JPEG quality. A model can score well by telling "
                       f"compression levels apart instead of manipulations (train with random JPEG re-compression).")
    return out
