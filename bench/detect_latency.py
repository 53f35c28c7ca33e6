"""Per-image latency of dfd's detect path vs the seed recipe, with the same model, side by side.

    python bench/detect_latency.py [--run models/default] [--n 40] [--data ../shared/data]

dfd path: ``Detector.analyse(path)``: PIL decode (EXIF, RGB), face finding (BlazeFace), margin crop, resize, one
model call (the run's own float32 TFLite export when it has a matching one, else a compiled ``tf.function``),
calibration. Also timed stage by stage (decode, faces, model).
Seed recipe (what the seed projects serve): ``cv2.imread`` + ``cv2.resize`` + ``model.predict(x[None])``,
one image at a time. Both on the same images (256 px JPEG faces from faces-140k-mini test) and the same
model; the median and 90th percentile per image are printed with their ratios.
If the run has no model (before the default detector exists), an untrained model of the default
architecture is used: latency does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _stats(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.9 * len(ms)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=str(REPO / "models" / "default"))
    ap.add_argument("--n", type=int, default=40, help="images (each timed once per method, after warm-up)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--arch", default="srm_cnn", help="architecture for the stand-in model if the run is absent")
    args = ap.parse_args()

    import cv2
    import numpy as np

    from dfd import detect, imaging, models, runs

    folder = Path(args.data) / "faces-140k-mini" / "real-vs-fake" / "test"
    paths = sorted(folder.rglob("*.jpg"))
    if not paths:
        sys.exit(f"no test images under {folder} (set --data)")
    rng = np.random.default_rng(0)
    paths = [paths[i] for i in rng.permutation(len(paths))[: args.n]]

    try:
        det = detect.Detector(runs.get_run(args.run))
        model_desc = f"run {det.name} ({det.run.architecture}, {det.image_size} px, served by {det.engine})"
    except runs.RunError as exc:
        print(f"note: {exc}; timing an untrained {args.arch} instead (latency does not depend on weights)")
        model = models.build_model(args.arch)
        det = detect.Detector.from_model(model, name=args.arch)
        model_desc = f"untrained {args.arch} ({det.image_size} px)"
    model, size = det.model, det.image_size

    def seed(path: Path) -> float:
        img = cv2.imread(str(path))
        img = cv2.resize(img, (size, size))
        return float(model.predict(img[None].astype(np.float32), verbose=0)[0, 0])

    # warm-up: first calls trace/compile
    for p in paths[:3]:
        det.analyse(p)
        seed(p)

    t_dfd, t_seed, t_decode, t_faces, t_model, n_faces = [], [], [], [], [], 0
    for p in paths:  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        r = det.analyse(p)
        t_dfd.append(time.perf_counter() - t0)
        n_faces += 0 if r.whole_image else len(r.faces)
        t0 = time.perf_counter()
        seed(p)
        t_seed.append(time.perf_counter() - t0)
        # stage by stage
        t0 = time.perf_counter()
        img = imaging.load_image(p)
        t1 = time.perf_counter()
        boxes, crops = det.regions(img)
        t2 = time.perf_counter()
        det.predict_arrays(np.stack([imaging.prepare(detect.cut(img, c), size) for c in crops]))
        t3 = time.perf_counter()
        t_decode.append(t1 - t0)
        t_faces.append(t2 - t1)
        t_model.append(t3 - t2)

    med_d, p90_d = _stats(t_dfd)
    med_s, p90_s = _stats(t_seed)
    print(f"model: {model_desc}; {len(paths)} images (256 px JPEG faces), faces found in {n_faces}; "
          f"{os.cpu_count()} CPU cores")
    print(f"{'per image':<44}{'median ms':>10}{'p90 ms':>10}")
    print(f"{'seed: cv2.imread + resize + model.predict':<44}{med_s:>10.1f}{p90_s:>10.1f}")
    print(f"{'dfd: Detector.analyse (decode+faces+model)':<44}{med_d:>10.1f}{p90_d:>10.1f}")
    for label, ts in [("  decode (PIL, EXIF, RGB)", t_decode), ("  face finding (BlazeFace) + crop", t_faces),
                      (f"  resize + model call ({det.engine})", t_model)]:
        m, p90 = _stats(ts)
        print(f"{label:<44}{m:>10.1f}{p90:>10.1f}")
    print(f"ratio seed / dfd (median): {med_s / med_d:.2f}x faster (aim >= 3x); "
          f"dfd per 256-px face: {med_d:.1f} ms (aim <= 40 ms)")


if __name__ == "__main__":
    main()
