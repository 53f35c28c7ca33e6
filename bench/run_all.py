"""Run every benchmark in bench/ one after another and print what each measured.

    python bench/run_all.py [name ...]

Each benchmark measures its contenders side by side in one process and prints ratios against the baseline its
issue names; this script only runs them in turn (each in its own process, so one's TensorFlow state does not
colour another's figures).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ORDER = ["index_speed", "train_throughput", "detect_latency", "face_finder", "app_startup", "tflite",
         "inconclusive", "video_throughput", "ray_throughput"]


def main(names: list[str]) -> int:
    failed = []
    for name in names or ORDER:
        print(f"\n=== bench/{name}.py", flush=True)
        if subprocess.call([sys.executable, str(BENCH / f"{name}.py")]) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
