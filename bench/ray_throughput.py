"""Images per second: one process (``Detector.analyse``, as ``predict`` runs) vs Ray Data with 1 and 2 model actors
(``predict --engine ray``, dfd.scale), side by side on the same images, in one process.

    python bench/ray_throughput.py [--run default] [--per-dataset 40] [--data ../shared/data]

The images: --per-dataset spread over the files of each shared dataset (200 by default, as tests/test_scale.py
takes them). Ray is started once, as ``predict --engine ray`` starts it (every core, no dashboard). Two rates
each: end to end (wall clock of the whole call: for Ray, actors loading the run included, what one ``predict``
costs) and steady (images a second between the first and the last result: what a long batch approaches). Every
Ray result is checked against the single-process one (P(fake) within 1e-5). Ratios are against the single
process; the load average is printed, as other work on the machine moves every figure.
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

DATASETS = ("faces-140k-mini", "lfw-faceswap", "modern-faces-128", "real-and-fake-face", "web-faces-256")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="default")
    ap.add_argument("--per-dataset", type=int, default=40)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()

    import numpy as np

    from dfd import cli, detect, imaging, scale

    files: list[Path] = []
    for name in DATASETS:
        found = sorted(p for p in (Path(args.data) / name).rglob("*") if p.suffix.lower() in imaging.IMAGE_EXTENSIONS)
        files += [found[i] for i in np.linspace(0, len(found) - 1, min(args.per_dataset, len(found))).astype(int)]
    if not files:
        sys.exit(f"no images under {args.data} (set --data)")
    cores = os.cpu_count() or 1
    print(f"{len(files)} images ({args.per_dataset} from each of {len(DATASETS)} datasets), run {args.run}, "
          f"{cores} cores, load average before: {os.getloadavg()[0]:.1f}")

    rates: dict[str, tuple[float, float]] = {}  # name -> (end to end, steady) images a second

    t0 = time.perf_counter()  # importing TensorFlow counts, as it does for every Ray actor
    cli._import_tensorflow_quietly()  # (its start-up lines kept off the figures)
    det = detect.Detector(args.run)
    for f in files[:5]:  # warm-up (not timed below)
        det.analyse(f)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    local = [det.analyse(f, name=str(f)) for f in files]
    took = time.perf_counter() - t0
    rates["one process"] = (len(files) / (took + load_s), len(files) / took)

    scale.start()
    try:
        for actors in (1, 2):
            stamps: list[tuple[float, int]] = []
            t0 = time.perf_counter()
            results, _ = scale.score(files, args.run, actors=actors,
                                     progress=lambda done, _, s=stamps: s.append((time.perf_counter(), done)))
            took = time.perf_counter() - t0
            (t_first, n_first), (t_last, n_last) = stamps[0], stamps[-1]
            steady = (n_last - n_first) / (t_last - t_first) if t_last > t_first else float("nan")
            rates[f"ray, {actors} actor{'s' if actors > 1 else ''}"] = (len(files) / took, steady)
            got = [f.p_fake for r in results for f in r.faces]
            want = [f.p_fake for r in local for f in r.faces]
            assert len(got) == len(want) and np.allclose(got, want, rtol=0, atol=1e-5), "Ray results differ"
    finally:
        scale.stop()

    base_e2e, base_steady = rates["one process"]
    print(f"\nengine: {det.engine}; one process imports TensorFlow and loads the run in {load_s:.1f} s (counted in its end-to-end rate)")
    print(f"{'':<16}{'end to end img/s':>18}{'ratio':>7}{'steady img/s':>14}{'ratio':>7}")
    for name, (e2e, steady) in rates.items():
        print(f"{name:<16}{e2e:>18.1f}{e2e / base_e2e:>7.2f}{steady:>14.1f}{steady / base_steady:>7.2f}")
    best_name = max((k for k in rates if k.startswith("ray")), key=lambda k: rates[k][1])
    best = rates[best_name][1]
    print(f"\nOn this {cores}-core machine (load average now {os.getloadavg()[0]:.1f}), once its actors are up, "
          f"Ray ({best_name}) judges {best:.0f} images a second, {best / cores:.0f} per core, {best / base_steady:.2f}x "
          "the single process, which already runs the model on every core (TFLite threads): Ray adds the decoding "
          "and face finding of the next images beside the model, not more cores. Expect about that many images a "
          "second per core a cluster gives the pool; starting the actors (each loads the run) takes seconds, so "
          "for a few hundred images on one machine one process is as fast or faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
