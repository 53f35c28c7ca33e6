"""Training throughput and memory: streaming from disk vs in-memory tensors vs the seed recipe.

Run: ``python bench/train_throughput.py [--arch seed_2conv] [--size 128] [--images 320] [--epochs 2]``

Throughput (one process, the same model architecture, rounds interleaved, best round reported):
  (a) streaming: ``dfd.data.make_dataset`` from disk (parallel decode, prefetch) into ``model.fit``;
  (b) compute bound: the same images already decoded in memory, fed as tensors (``from_tensor_slices``);
  (c) seed recipe: load every image with PIL into one numpy array first, then ``model.fit(x, y)``;
      its rate counts the loading time (what a user waits for), and the fit-only rate is shown too.
Memory (each measurement in a fresh subprocess, so peaks do not mask each other): peak RSS growth
(RSS sampled every 10 ms, peak minus the level before the epoch) of one epoch of streaming vs the seed recipe at two dataset sizes.
Uses real faces from ../shared/data (faces-140k-mini, plus lfw-faceswap for the larger size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("DFD_SHARED_DATA", REPO.parent / "shared" / "data"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def train_frame(n: int) -> pd.DataFrame:
    """``n`` train-split images (class-balanced) from the shared real face sets."""
    from dfd.data import index_dataset

    frames = []
    for name in ("faces-140k-mini", "lfw-faceswap"):
        if (SHARED / name).exists():
            frames.append(index_dataset(SHARED / name).split("train"))
    if not frames:
        sys.exit(f"no shared data at {SHARED}")
    frame = pd.concat(frames, ignore_index=True)
    if len(frame) < n:
        sys.exit(f"only {len(frame)} train images available, {n} asked")
    per = [part.head(n // 2) for _, part in frame.groupby("label")]
    return pd.concat(per).sample(frac=1.0, random_state=0).reset_index(drop=True)


def seed_load(paths: list[str], size: int) -> np.ndarray:
    """The seed projects' loader: PIL open, RGB, resize, np.array, all into one array."""
    from PIL import Image

    images = []
    for p in paths:
        with Image.open(p) as img:
            images.append(np.array(img.convert("RGB").resize((size, size))))
    return np.array(images, dtype=np.float32)


def compiled(arch: str, size: int):
    import keras

    from dfd import models

    keras.utils.set_random_seed(0)
    model = models.build_model(arch, size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def throughput(args: argparse.Namespace) -> dict[str, float]:
    import tensorflow as tf

    from dfd import imaging
    from dfd.data import make_dataset

    frame = train_frame(args.images)
    paths, labels = frame["path"].tolist(), frame["label"].to_numpy(np.float32)
    n, bs = len(paths), args.batch_size
    x_mem = np.stack([imaging.decode(p, args.size) for p in paths])
    mem_ds = tf.data.Dataset.from_tensor_slices((x_mem, labels)).shuffle(n, seed=0).batch(bs).prefetch(2)
    stream_ds = make_dataset(frame, args.size, bs, shuffle=True, seed=0)

    models = {k: compiled(args.arch, args.size) for k in ("stream", "memory", "seed")}
    for m in models.values():  # warm-up: trace and compile each model's train step once
        m.fit(mem_ds.take(2), epochs=1, verbose=0)
    best: dict[str, float] = {"stream": 0.0, "memory": 0.0, "seed": 0.0, "seed_fit_only": 0.0, "seed_load_s": 0.0}
    def run_stream() -> None:
        t = time.perf_counter()
        models["stream"].fit(stream_ds, epochs=args.epochs, verbose=0)
        best["stream"] = max(best["stream"], n * args.epochs / (time.perf_counter() - t))

    def run_memory() -> None:
        t = time.perf_counter()
        models["memory"].fit(mem_ds, epochs=args.epochs, verbose=0)
        best["memory"] = max(best["memory"], n * args.epochs / (time.perf_counter() - t))

    def run_seed() -> None:
        t = time.perf_counter()
        x_seed = seed_load(paths, args.size)
        load_s = time.perf_counter() - t
        t_fit = time.perf_counter()
        models["seed"].fit(x_seed, labels, batch_size=bs, epochs=args.epochs, shuffle=True, verbose=0)
        fit_s = time.perf_counter() - t_fit
        if n * args.epochs / (load_s + fit_s) > best["seed"]:
            best["seed"], best["seed_load_s"] = n * args.epochs / (load_s + fit_s), load_s
        best["seed_fit_only"] = max(best["seed_fit_only"], n * args.epochs / fit_s)

    order = [run_stream, run_memory, run_seed]
    for r in range(args.rounds):
        for step in order[r % 3:] + order[:r % 3]:  # rotate the order so no method always runs first
            step()
        print(f"  round {r + 1}: stream {best['stream']:.1f}, memory {best['memory']:.1f}, "
              f"seed {best['seed']:.1f} img/s (best so far)", flush=True)
    return best


class PeakRSS:
    """Samples this process's resident set size every 10 ms; ``peak_mb`` is the growth over the start."""

    def __init__(self) -> None:
        self.base = self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.current())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def memory_phase(method: str, n: int, size: int, arch: str, bs: int) -> None:
    """Subprocess body: peak RSS growth of one training epoch by ``method`` on ``n`` images."""
    import tensorflow as tf

    from dfd.data import make_dataset

    frame = train_frame(n)
    model = compiled(arch, size)
    warm = tf.data.Dataset.from_tensor_slices((np.zeros((bs, size, size, 3), np.float32),
                                               np.zeros(bs, np.float32))).batch(bs)
    model.fit(warm, epochs=1, verbose=0)  # TF runtime and traced step allocated before the baseline
    t = time.perf_counter()
    with PeakRSS() as rss:
        if method == "stream":
            model.fit(make_dataset(frame, size, bs, shuffle=True, seed=0), epochs=1, verbose=0)
        else:
            x = seed_load(frame["path"].tolist(), size)
            model.fit(x, frame["label"].to_numpy(np.float32), batch_size=bs, epochs=1, verbose=0)
    print(json.dumps({"peak_growth_mb": rss.peak_mb, "seconds": time.perf_counter() - t,
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def memory(args: argparse.Namespace) -> list[dict]:
    rows = []
    for n in args.mem_sizes:
        for method in ("stream", "seed"):
            cmd = [sys.executable, __file__, "--memory-phase", method, "--images", str(n), "--size", str(args.size),
                   "--arch", args.mem_arch, "--batch-size", str(args.batch_size)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                print(out.stderr[-2000:])
                raise SystemExit(f"memory phase {method} {n} failed")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"images": n, "method": method, **result})
            print(f"  {method:6s} {n:5d} images: peak RSS +{result['peak_growth_mb']:.0f} MB "
                  f"({result['seconds']:.1f} s)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="seed_2conv", help="architecture for the throughput comparison")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--mem-arch", default="tiny", help="architecture for the memory runs (data dominates)")
    ap.add_argument("--mem-sizes", type=int, nargs=2, default=[800, 3200])
    ap.add_argument("--memory-phase", choices=["stream", "seed"], help=argparse.SUPPRESS)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if args.memory_phase:
        memory_phase(args.memory_phase, args.images, args.size, args.arch, args.batch_size)
        return

    print(f"throughput: {args.arch} at {args.size} px, {args.images} images x {args.epochs} epochs, "
          f"batch {args.batch_size}, {args.rounds} interleaved rounds, {os.cpu_count()} CPUs")
    best = throughput(args)
    mem = best["memory"]
    print(f"\n{'method':38s} {'img/s':>8s} {'vs compute bound':>17s}")
    print(f"{'(b) in-memory tensors (compute bound)':38s} {mem:8.1f} {1.0:16.2f}x")
    print(f"{'(a) streaming make_dataset from disk':38s} {best['stream']:8.1f} {best['stream'] / mem:16.2f}x")
    print(f"{'(c) seed recipe incl. PIL loading':38s} {best['seed']:8.1f} {best['seed'] / mem:16.2f}x")
    print(f"{'    seed recipe fit only':38s} {best['seed_fit_only']:8.1f} {best['seed_fit_only'] / mem:16.2f}x"
          f"   (loading took {best['seed_load_s']:.1f} s)")
    if not args.skip_memory:
        print(f"\nmemory: peak RSS growth of one epoch ({args.mem_arch} at {args.size} px), fresh process each")
        rows = memory(args)
        table = pd.DataFrame(rows).pivot(index="images", columns="method", values="peak_growth_mb")
        print("\n" + table.round(0).to_string())
        small, large = args.mem_sizes
        for method in ("stream", "seed"):
            print(f"{method}: {large} vs {small} images -> peak growth x{table.loc[large, method] / max(table.loc[small, method], 1):.1f}")


if __name__ == "__main__":
    main()
