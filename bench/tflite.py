"""Keras vs TensorFlow Lite (float32, int8) for one run, side by side on the same test images.

    python bench/tflite.py [RUN] [--per-dataset 200] [--data ../shared/data] [--repeat 30]

Exports the run (dfd.export.export, into a temporary folder, never the run folder), then for each engine prints the
file size, the single-image latency (median of --repeat calls on one 1-image batch, after warm-up; Keras
through a tf.function, as the app serves it) and accuracy / ROC AUC / mean |P - P_keras| on up to
--per-dataset test images of every dataset in the data folder, with ratios to Keras. Verdicts are the served
ones: P(fake) after the run's temperature, at its threshold. ``--record DIR`` also writes the figures to
DIR/tflite.json (the model card's TensorFlow Lite table: ``python -m dfd card``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dfd import imaging  # noqa: E402
from dfd.data import index_dataset  # noqa: E402
from dfd.evaluate import apply_temperature, predictor  # noqa: E402
from dfd.export import export, tflite_predictor  # noqa: E402
from dfd.runs import get_run, load_model, write_json_atomic  # noqa: E402


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default="default")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    ap.add_argument("--per-dataset", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--record", metavar="DIR", help="write the figures to DIR/tflite.json")
    args = ap.parse_args()


    run = get_run(args.run)
    model = load_model(run)
    size = int(model.inputs[0].shape[1])
    index = index_dataset(args.data)
    test = index.split("test")
    sample = pd.concat([g.sample(n=min(len(g), args.per_dataset // 2), random_state=0)
                        for _, g in test.groupby(["dataset", "label"])], ignore_index=True)
    images = np.stack([imaging.decode(p, size) for p in sample["path"]])
    labels = sample["label"].to_numpy()
    datasets = sample["dataset"].to_numpy()

    out_dir = Path(tempfile.mkdtemp(prefix="dfd-tflite-"))  # never into the run folder
    t0 = time.perf_counter()
    files = export(run, out_dir, data_root=args.data)
    print(f"exported in {time.perf_counter() - t0:.0f} s to {out_dir}")

    serve = predictor(model, size, tta=run.tta)  # what the app and CLI serve

    def keras_predict(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([serve(batch[i:i + 32]) for i in range(0, len(batch), 32)])

    engines = {"keras": (keras_predict, run.model_path.stat().st_size)}
    for kind in ("float32", "int8"):
        engines[f"tflite_{kind}"] = (tflite_predictor(files[kind]), files[kind].stat().st_size)

    one = images[:1]
    results = {}
    for name, (predict, nbytes) in engines.items():
        for _ in range(3):
            predict(one)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            predict(one)
            times.append(time.perf_counter() - t)
        probs = apply_temperature(predict(images), run.temperature)
        results[name] = {"bytes": nbytes, "ms": statistics.median(times) * 1000, "p": probs}

    ref = results["keras"]
    thr = run.threshold
    print(f"\nrun {run.name}: {len(images)} test images ({', '.join(sorted(set(datasets)))}), {size} px, "
          f"served threshold {thr:.3f}")
    header = f"{'engine':16} {'size KB':>8} {'x keras':>7} {'ms/img':>7} {'x keras':>7} {'acc':>6} {'auc':>6} " \
             f"{'|dP| mean':>9} {'flips':>5}"
    print(header)
    rows = []
    for name, r in results.items():
        acc = float(((r["p"] >= thr) == labels).mean())
        dp = float(np.abs(r["p"] - ref["p"]).mean())
        flips = int(((r["p"] >= thr) != (ref["p"] >= thr)).sum())
        rows.append({"engine": name, "kb": r["bytes"] / 1024, "ms": r["ms"], "accuracy": acc,
                     "roc_auc": _auc(labels, r["p"]), "changed": flips, "n": len(labels)})
        print(f"{name:16} {r['bytes'] / 1024:8.0f} {r['bytes'] / ref['bytes']:7.2f} {r['ms']:7.1f} "
              f"{r['ms'] / ref['ms']:7.2f} {acc:6.3f} {_auc(labels, r['p']):6.3f} {dp:9.4f} {flips:5d}")
    print("\nper dataset accuracy:")
    for d in sorted(set(datasets)):
        m = datasets == d
        cells = "  ".join(f"{name} {float(((r['p'][m] >= thr) == labels[m]).mean()):.3f}" for name, r in results.items())
        print(f"  {d:20} n={int(m.sum()):3d}  {cells}")
    if args.record:
        target = write_json_atomic(Path(args.record) / "tflite.json",
                                   {"run": run.name, "images": len(labels), "datasets": sorted(set(datasets)),
                                    "threshold": thr, "repeat": args.repeat, "engines": rows})
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
