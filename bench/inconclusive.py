"""What "inconclusive" costs and buys on the shipped default's own test images, served as the Detect page and
``python -m dfd predict`` serve them (``Detector.analyse``: face finding, crop, the run's band, the re-save check).

    python bench/inconclusive.py [--run default] [--split test] [--limit N]

Per dataset of the split (the run's predictions.csv lists the images; they are read, never written), three ways:
the band alone; the band plus the re-save check as served (faces within ``RESAVE_WINDOW`` logits of the threshold
or inside the band, judged again after JPEG q85 and a 0.75x resize); the band plus the re-save check of every
face. For each: the share of images decided (the largest face's verdict) and the accuracy on them against the
accuracy of every verdict at the threshold, in points. Then the time per image with and without the served
check, and the share of faces checked. Needs the shared data (../shared/data or $DFD_DATA).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="default")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=0, help="at most this many images per dataset (0: all)")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from dfd import detect, imaging, runs

    run = runs.get_run(args.run)
    det = detect.Detector(run)
    pred = run.predictions()
    pred = pred[(pred["split"] == args.split) & pred["path"].map(os.path.exists)]
    if args.limit:
        pred = pred.groupby("dataset").head(args.limit)
    if pred.empty:
        sys.exit(f"no {args.split} images of run {run.name} found on this machine")
    thr, band = det.threshold, det.band
    print(f"run {run.name}: threshold {thr:.4f}, band {band} ({run.band_source}), engine {det.engine}, "
          f"re-save window {detect.RESAVE_WINDOW} logit, {len(pred)} {args.split} images")

    rows, served_s, plain_s, checked, faces = [], [], [], 0, 0
    for path, label, dataset in zip(pred["path"], pred["label"], pred["dataset"], strict=True):
        img = imaging.load_image(path)
        t0 = time.perf_counter()
        r = det.analyse(img, name=path)
        served_s.append(time.perf_counter() - t0)
        if not r.ok:
            continue
        t0 = time.perf_counter()
        boxes, crops = det.regions(img)
        probs = det.predict_arrays(np.stack([imaging.prepare(detect.cut(img, c), det.image_size) for c in crops]))
        plain_s.append(time.perf_counter() - t0)
        faces += len(r.faces)
        checked += sum(bool(f.resaved) for f in r.faces)
        face = r.faces[0]
        every = det.resaved_p([detect.cut(img, face.crop)], np.array([face.p_fake]), thr, (0.0, 1.0))[0]
        rows.append({"dataset": dataset, "label": int(label), "p": face.p_fake,
                     "plain": detect.verdict(face.p_fake, thr),
                     "band": detect.verdict(face.p_fake, thr, band),
                     "served": face.verdict,
                     "always": detect.judge(face.p_fake, thr, band, every)[0]})
        del boxes, probs
    table = pd.DataFrame(rows)
    truth = np.where(table["label"] == 1, "fake", "real")
    print(f"\n{'dataset':<20} {'n':>5}  {'accuracy':>8}   " + "   ".join(f"{k:>22}" for k in
                                                                     ("band: decided / gain", "+ served re-save",
                                                                      "+ re-save of every face")))
    for dataset, part in table.groupby("dataset"):
        right = (part["plain"] == truth[part.index]).to_numpy()
        cells = []
        for way in ("band", "served", "always"):
            kept = (part[way] != detect.INCONCLUSIVE).to_numpy()
            gain = 100 * (right[kept].mean() - right.mean()) if kept.any() else float("nan")
            cells.append(f"{kept.mean():>8.3f} / {gain:+6.2f} pt")
        print(f"{dataset:<20} {len(part):>5}  {right.mean():>8.3f}   " + "   ".join(f"{c:>22}" for c in cells))
    ms = lambda xs: 1000 * float(np.median(xs))  # noqa: E731
    print(f"\nfaces checked after a re-save (served): {checked} of {faces} ({checked / max(faces, 1):.1%})")
    print(f"median time per image: served {ms(served_s):.1f} ms (face finding, model, re-save check where due); "
          f"face finding and model only {ms(plain_s):.1f} ms; ratio {ms(served_s) / ms(plain_s):.2f}")


if __name__ == "__main__":
    main()
