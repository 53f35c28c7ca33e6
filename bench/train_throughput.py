"""Training throughput and memory: streaming from disk vs in-memory tensors vs the seed recipe.

Run: ``python bench/train_throughput.py [--arch seed_2conv] [--size 128] [--images 320] [--epochs 2]``

Throughput (one process, the same model architecture, rounds interleaved; paired ratios, medians):
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
    rows: list[dict[str, float]] = []

    def timed(fn) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) of ``fn()``."""
        c0, t0 = os.times(), time.perf_counter()
        fn()
        c1 = os.times()
        return time.perf_counter() - t0, (c1.user - c0.user) + (c1.system - c0.system)

    def run_stream() -> dict[str, float]:
        wall, cpu = timed(lambda: models["stream"].fit(stream_ds, epochs=args.epochs, verbose=0))
        return {"stream": wall, "stream_cpu": cpu}

    def run_memory() -> dict[str, float]:
        wall, cpu = timed(lambda: models["memory"].fit(mem_ds, epochs=args.epochs, verbose=0))
        return {"memory": wall, "memory_cpu": cpu}

    def run_seed() -> dict[str, float]:
        box: dict[str, np.ndarray] = {}
        load_wall, load_cpu = timed(lambda: box.update(x=seed_load(paths, args.size)))
        fit_wall, fit_cpu = timed(lambda: models["seed"].fit(box["x"], labels, batch_size=bs, epochs=args.epochs,
                                                             shuffle=True, verbose=0))
        return {"seed": load_wall + fit_wall, "seed_cpu": load_cpu + fit_cpu, "seed_fit": fit_wall,
                "seed_load": load_wall}

    order = [run_stream, run_memory, run_seed]
    images = n * args.epochs
    for r in range(args.rounds):
        row: dict[str, float] = {}
        for step in order[r % 3:] + order[:r % 3]:  # rotate the order so no method always runs first
            row.update(step())
        rows.append(row)
        print(f"  round {r + 1}: stream {images / row['stream']:.1f}, memory {images / row['memory']:.1f}, "
              f"seed {images / row['seed']:.1f} img/s; stream/memory {row['memory'] / row['stream']:.2f}x",
              flush=True)
    table = pd.DataFrame(rows)
    # Other processes share the CPUs, so rates drift between rounds: compare methods within a round
    # (paired ratios, median over rounds), and report CPU seconds per image (insensitive to sharing).
    return {
        "memory": images / table["memory"].median(),
        "stream": images / table["stream"].median(),
        "seed": images / table["seed"].median(),
        "seed_fit_only": images / table["seed_fit"].median(),
        "seed_load_s": float(table["seed_load"].median()),
        "ratio_stream": float((table["memory"] / table["stream"]).median()),
        "ratio_seed": float((table["memory"] / table["seed"]).median()),
        "ratio_seed_fit": float((table["memory"] / table["seed_fit"]).median()),
        "cpu_ms_memory": 1000 * float(table["memory_cpu"].median()) / images,
        "cpu_ms_stream": 1000 * float(table["stream_cpu"].median()) / images,
        "cpu_ms_seed": 1000 * float(table["seed_cpu"].median()) / images,
    }


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
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
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
    print(f"\n{'method':38s} {'img/s':>7s} {'vs compute bound':>17s} {'CPU ms/img':>11s}   "
          "(medians over rounds; ratios paired within a round)")
    print(f"{'(b) in-memory tensors (compute bound)':38s} {best['memory']:7.1f} {1.0:16.2f}x "
          f"{best['cpu_ms_memory']:11.1f}")
    print(f"{'(a) streaming make_dataset from disk':38s} {best['stream']:7.1f} {best['ratio_stream']:16.2f}x "
          f"{best['cpu_ms_stream']:11.1f}")
    print(f"{'(c) seed recipe incl. PIL loading':38s} {best['seed']:7.1f} {best['ratio_seed']:16.2f}x "
          f"{best['cpu_ms_seed']:11.1f}")
    print(f"{'    seed recipe fit only':38s} {best['seed_fit_only']:7.1f} {best['ratio_seed_fit']:16.2f}x"
          f"   (loading took {best['seed_load_s']:.1f} s)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"CPU-time ratios (what the rate ratios converge to when training has the CPUs to itself): "
          f"streaming {best['cpu_ms_memory'] / best['cpu_ms_stream']:.2f}x, "
          f"seed recipe {best['cpu_ms_memory'] / best['cpu_ms_seed']:.2f}x of compute bound")
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
