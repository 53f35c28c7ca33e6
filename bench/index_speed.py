"""Indexing speed: dfd.data.index_dataset vs a bare os.scandir walk of the same 140,000-file tree.

Builds a "140k Real and Fake Faces" tree of empty .jpg files in a temporary folder (train 50k/50k, valid
10k/10k, test 10k/10k, as the public dataset), then, in this one process, times ``index_dataset`` and a plain
recursive ``os.scandir`` walk that only collects the file paths, alternating, a few repeats each, and prints
the median times and their ratio. Indexing never decodes images, so the walk is the floor; the aim is to stay
within 2x of it.

    python bench/index_speed.py [--repeats 5] [--files 140000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dfd.data import index_dataset  # noqa: E402

SPLITS = {"train": 50_000, "valid": 10_000, "test": 10_000}  # per class, as in the public 140k dataset


def make_tree(root: Path, total: int) -> int:
    """Empty files in the 140k layout, ``total`` in all (split proportions of the public dataset)."""
    scale = total / (2 * sum(SPLITS.values()))
    n = 0
    for split, per_class in SPLITS.items():
        for cls in ("real", "fake"):
            folder = root / "real-vs-fake" / split / cls
            folder.mkdir(parents=True)
            for i in range(round(per_class * scale)):
                # Names like the public dataset's (10 random-looking characters).
                fd = os.open(folder / f"{i:05d}{cls[0].upper()}{split[:2].upper()}X7Q.jpg", os.O_CREAT | os.O_WRONLY)
                os.close(fd)
                n += 1
    return n


def walk(root: str) -> list[str]:
    """The floor: every file path below ``root`` with a bare os.scandir walk."""
    out: list[str] = []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir():
                    stack.append(entry.path)
                else:
                    out.append(entry.path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--files", type=int, default=140_000)
    parser.add_argument("--keep", help="build the tree here and keep it (default: a temporary folder, removed)")
    args = parser.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dfd-index-bench-"))
    try:
        t0 = time.perf_counter()
        if not (base / "real-vs-fake").exists():
            n = make_tree(base, args.files)
            print(f"built {n} empty files in {time.perf_counter() - t0:.1f} s at {base}")
        walk(str(base))  # warm the directory cache for both contenders
        index_dataset(base)
        # Wall time, and CPU time of this process (user + system), which other load on the machine disturbs less.
        wall: dict[str, list[float]] = {"index_dataset": [], "os.scandir walk": []}
        cpu: dict[str, list[float]] = {"index_dataset": [], "os.scandir walk": []}
        for _ in range(args.repeats):
            for name, fn in (("os.scandir walk", lambda: walk(str(base))), ("index_dataset", lambda: index_dataset(base))):
                t, c = time.perf_counter(), time.process_time()
                result = fn()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
                if name == "os.scandir walk":
                    files = result
                else:
                    index = result
        assert len(index.frame) == len(files), (len(index.frame), len(files))
        print(f"{len(files)} files, {args.repeats} alternating repeats each; median (min) in ms:")
        for name in wall:
            print(f"  {name:<16} wall {statistics.median(wall[name]) * 1000:7.1f} ({min(wall[name]) * 1000:6.1f})"
                  f"   cpu {statistics.median(cpu[name]) * 1000:7.1f} ({min(cpu[name]) * 1000:6.1f})")
        for label, table in (("wall", wall), ("cpu", cpu)):
            ratio = statistics.median(table["index_dataset"]) / statistics.median(table["os.scandir walk"])
            print(f"ratio index_dataset / walk ({label} time): {ratio:.2f}x (aim: <= 2x)")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
