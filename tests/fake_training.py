"""A stand-in for :func:`dfd.train.train` in a training job's process (tests set it as ``dfd.jobs.TARGET``; the
process is spawned, so it is imported by name): reports one phase, waits until the file named by
``$DFD_FAKE_RELEASE`` exists, then writes a run folder ``<runs_dir>/<name>`` with status ``$DFD_FAKE_STATUS``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def train(config: Any, *, progress: Any = None, stop_event: Any = None, strategy: Any = None) -> Path:
    from dfd import runs

    progress(0, config.epochs, {"phase": "indexing the dataset", "stage": "preparing"})
    release, deadline = Path(os.environ["DFD_FAKE_RELEASE"]), time.time() + 120
    while not release.exists() and time.time() < deadline:
        time.sleep(0.05)
    path = Path(config.runs_dir) / config.name
    path.mkdir(parents=True)
    runs.write_json_atomic(path / "config.json", {"architecture": config.architecture, "image_size": 64})
    runs.write_status(path, os.environ["DFD_FAKE_STATUS"])
    return path
