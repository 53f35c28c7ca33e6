"""Background training: one :func:`dfd.train.train` call on a thread, with its progress, for an app to poll.

One job at a time for the whole process (the machine's cores are shared): :func:`start` returns the running
job instead of starting a second one, and :func:`current` is the current (or last) job. Streamlit-free, so the
app, a notebook or a test can drive it alike.

A user's mistake (a bad dataset folder, a config that cannot train) ends the job as "failed" with the one-line
message of :class:`dfd.train.TrainError` or :class:`dfd.data.DatasetError` and no traceback anywhere; only an
unexpected error is logged with its traceback (and a failed run keeps its own ``traceback.txt``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

TRAINING = "training"


@dataclass
class TrainingJob:
    """A training run on a background thread and what it last reported."""

    config: Any
    on_finish: Callable[[], None] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    epoch: float = 0.0
    epochs: int = 1
    phase: str = "starting (indexing the dataset)"
    done: int | None = None
    total: int | None = None
    logs: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "starting"
    error: str | None = None
    run_path: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None

    def progress(self, epoch: float, epochs: int, logs: dict[str, Any] | None = None) -> None:
        """dfd.train's callback (see :func:`dfd.train.train` for the three kinds of call)."""
        logs = logs or {}
        self.epochs = max(1, int(epochs))
        self.status = "running"
        self.epoch = float(epoch)
        if "phase" in logs:
            self.phase = str(logs["phase"])
            self.done = int(logs["done"]) if "done" in logs else None
            self.total = int(logs["total"]) if "total" in logs else None
            return
        self.phase, self.done, self.total = TRAINING, None, None
        self.logs = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k != "batch"}
        if "batch" not in logs:  # the end of an epoch: its history row
            self.history.append({"epoch": int(epoch), **self.logs})

    @property
    def fraction(self) -> float:
        """How far the current phase is, 0..1: counted phases by their count, training by epochs."""
        if self.total:
            return min(max((self.done or 0) / self.total, 0.0), 1.0)
        return min(max(self.epoch / max(self.epochs, 1), 0.0), 1.0)

    def describe(self) -> str:
        """One line for a progress bar: the phase, its count or the epoch, and the latest metrics."""
        if self.phase == TRAINING:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in self.logs.items()
                              if k in ("loss", "accuracy", "val_loss", "val_accuracy", "auc", "val_auc"))
            return f"epoch {self.epoch:.2f} of {self.epochs}" + (f" · {shown}" if shown else "")
        count = f" · {self.done:,} of {self.total:,}" if self.total else ""
        return f"{self.phase}{count} · after epoch {int(self.epoch)} of {self.epochs}"

    def _run(self) -> None:
        from dfd import train
        from dfd.data import DatasetError

        try:
            path = train.train(self.config, progress=self.progress, stop_event=self.stop_event)
            self.run_path = str(path)
            self.status = "stopped" if self.stop_event.is_set() else "complete"
        except (train.TrainError, DatasetError) as exc:  # the user's data or settings: one line, no traceback
            self.status, self.error = "failed", str(exc)
            self.run_path = str(exc.run_path) if getattr(exc, "run_path", None) else None
        except Exception as exc:  # noqa: BLE001 - shown on the page; the app stays up
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("training job failed")
        finally:
            self.finished = time.time()
            if self.on_finish is not None:
                self.on_finish()

    def start(self) -> None:
        self.epochs = int(getattr(self.config, "epochs", 1))
        self.thread = threading.Thread(target=self._run, name="dfd-train", daemon=True)
        self.thread.start()

    @property
    def active(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


_jobs: dict[str, TrainingJob] = {}
_lock = threading.Lock()


def current() -> TrainingJob | None:
    """The process's current (or last) training job."""
    return _jobs.get("current")


def start(config: Any, on_finish: Callable[[], None] | None = None) -> TrainingJob:
    """Start ``config`` in the background unless a job is already running (then return that one)."""
    with _lock:
        job = _jobs.get("current")
        if job is not None and job.active:
            return job
        job = TrainingJob(config=config, on_finish=on_finish)
        _jobs["current"] = job
        job.start()
        return job
