"""Background training: one :func:`dfd.train.train` call in a process of its own, with its progress, for an
app to poll.

The training runs in a separate (spawned) Python process, watched by a thread of the caller's: TensorFlow's
import and graph building hold the interpreter lock for seconds at a time, which in the app's own process froze
every page of every session (the elapsed counter stood still). Progress comes back over a queue; Stop is an
event the process checks between batches.

One job at a time for the whole process (the machine's cores are shared): :func:`start` returns the running
job instead of starting a second one, and :func:`current` is the current (or last) job. Streamlit-free, so the
app, a notebook or a test can drive it alike.

A user's mistake (a bad dataset folder, a config that cannot train) ends the job as "failed" with the one-line
message of :class:`dfd.train.TrainError` or :class:`dfd.data.DatasetError` and no traceback anywhere; only an
unexpected error is logged with its traceback (and a failed run keeps its own ``traceback.txt``).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

TRAINING = "training"
EPOCH_DONE = "epoch done"
# The stages of dfd.train's phases (its progress protocol): before the first epoch, in an epoch, after the last.
PREPARING, IN_EPOCH, FINISHING = "preparing", "epoch", "finishing"


@dataclass
class TrainingJob:
    """A training run on a background thread and what it last reported.

    ``owner`` is whoever started it (an app session's token): a page shows the job's progress, result and Stop
    button to its owner only; others learn at most that a training is running and the run it will write."""

    config: Any
    on_finish: Callable[[], None] | None = None
    owner: str | None = None
    target: Callable[..., Any] | None = None  # what the process runs: dfd.train.train (a test's stand-in)
    stop_event: threading.Event = field(default_factory=threading.Event)
    epoch: float = 0.0
    epochs: int = 1
    phase: str = "starting"
    stage: str = PREPARING
    done: int | None = None
    total: int | None = None
    unit: str = ""
    logs: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "starting"
    error: str | None = None
    run_path: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None
    pid: int | None = None  # the training process's

    def progress(self, epoch: float, epochs: int, logs: dict[str, Any] | None = None) -> None:
        """dfd.train's callback (see :func:`dfd.train.train` for the three kinds of call)."""
        logs = logs or {}
        self.epochs = max(1, int(epochs))
        self.status = "running"
        self.epoch = float(epoch)
        if "phase" in logs:
            self.phase = str(logs["phase"])
            self.stage = str(logs.get("stage") or (PREPARING if epoch == 0 else FINISHING))
            self.done = int(logs["done"]) if "done" in logs else None
            self.total = int(logs["total"]) if "total" in logs else None
            self.unit = str(logs.get("unit") or "")
            return
        self.stage, self.done, self.total, self.unit = IN_EPOCH, None, None, ""
        self.logs = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k != "batch"}
        if "batch" in logs:
            self.phase = TRAINING
        else:  # the end of an epoch: its history row
            self.phase = EPOCH_DONE
            self.history.append({"epoch": int(epoch), **self.logs})

    @property
    def epoch_number(self) -> int:
        """The epoch the job is in or has just finished, counted from 1 as a person counts (0 before the first)."""
        if self.stage == PREPARING:
            return 0
        if self.phase == EPOCH_DONE or self.stage == FINISHING:
            return min(int(self.epoch), self.epochs)
        return min(int(self.epoch) + 1, self.epochs)

    @property
    def fraction(self) -> float:
        """How far along, 0..1: through an epoch, the epochs done (training and validation alike, so the bar
        never goes back); before and after the epochs, the current phase's count."""
        if self.stage == IN_EPOCH:
            return min(max(self.epoch / max(self.epochs, 1), 0.0), 1.0)
        if self.total:
            return min(max((self.done or 0) / self.total, 0.0), 1.0)
        return 1.0 if self.stage == FINISHING else 0.0

    def describe(self) -> str:
        """One line for a progress bar: the epoch as a person counts it (epoch 1 of 3: training, then
        validation), the phase and how far it is, and the latest metrics."""
        count = f" · {self.done:,} of {self.total:,}" + (f" {self.unit}" if self.unit else "") if self.total else ""
        shown = ", ".join(f"{k} {v:.3f}" for k, v in self.logs.items()
                          if k in ("loss", "accuracy", "val_loss", "val_accuracy", "auc", "val_auc"))
        metrics = f" · {shown}" if shown else ""
        if self.stage == PREPARING:
            return f"{self.phase}{count}"
        if self.stage == FINISHING:
            return (f"training done ({self.epoch_number} of {self.epochs} epoch{'s' if self.epochs != 1 else ''}) · "
                    f"{self.phase}{count}")
        epoch = f"epoch {self.epoch_number} of {self.epochs}"
        if self.phase == TRAINING:
            return f"{epoch} · training {self.epoch - int(self.epoch):.0%}{metrics}"
        if self.phase == EPOCH_DONE:
            return f"{epoch} done{metrics}"
        return f"{epoch} · {self.phase}{count}"

    @property
    def epochs_done(self) -> int:
        """Whole epochs completed (and recorded in history.csv)."""
        return len(self.history)

    def _run(self) -> None:
        """Watch the training process: relay its progress, forward Stop, and record how it ended."""
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: never a fork of a threaded app
        events, stop = ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=_train_in_process, args=(self.target, self.config, events, stop),
                           name="dfd-train", daemon=True)
        ended: tuple[Any, ...] | None = None
        try:
            proc.start()
            self.pid = proc.pid
            while ended is None:
                if self.stop_event.is_set():
                    stop.set()
                try:
                    message = events.get(timeout=0.2)
                except queue.Empty:
                    if proc.is_alive():
                        continue
                    try:  # the process has ended: what it sent last may still be in the pipe
                        message = events.get(timeout=1.0)
                    except queue.Empty:
                        ended = ("failed", f"the training process ended unexpectedly (exit code {proc.exitcode})",
                                 None, None)
                        break
                if message[0] == "progress":
                    self.progress(*message[1:])
                else:
                    ended = message
            proc.join(timeout=30)
        except Exception as exc:  # noqa: BLE001 - shown on the page; the app stays up
            ended = ("failed", f"{type(exc).__name__}: {exc}", None, traceback.format_exc())
        try:
            if ended[0] == "done":
                from dfd import runs

                self.run_path = ended[1]
                self.status = runs.Run(ended[1]).status  # the run's own word (complete, interrupted)
            else:  # a user's mistake has no traceback: one line; an unexpected error is logged with its own
                self.status, self.error, self.run_path = "failed", ended[1], ended[2]
                if ended[3]:
                    log.error("training job failed:\n%s", ended[3])
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


def _train_in_process(target: Callable[..., Any] | None, config: Any, events: Any, stop: Any) -> None:
    """The training process: ``target`` (default :func:`dfd.train.train`) with its progress and its ending
    ("done", run folder) or ("failed", message, run folder or None, traceback or None) sent over ``events``."""
    from dfd import train
    from dfd.data import DatasetError

    def progress(epoch: float, epochs: int, logs: dict[str, Any] | None = None) -> None:
        events.put(("progress", float(epoch), int(epochs), dict(logs or {})))

    try:
        path = (target or train.train)(config, progress=progress, stop_event=stop)
        events.put(("done", str(path)))
    except (train.TrainError, DatasetError) as exc:  # the user's data or settings: one line, no traceback
        run_path = getattr(exc, "run_path", None)
        events.put(("failed", str(exc), str(run_path) if run_path else None, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the app, which stays up
        events.put(("failed", f"{type(exc).__name__}: {exc}", None, traceback.format_exc()))


_jobs: dict[str, TrainingJob] = {}
_lock = threading.Lock()


def current() -> TrainingJob | None:
    """The process's current (or last) training job."""
    return _jobs.get("current")


TARGET: Callable[..., Any] | None = None
"""What a job's process runs (None: :func:`dfd.train.train`); a test may set a stand-in (importable by name,
since the process is spawned)."""


def start(config: Any, on_finish: Callable[[], None] | None = None, owner: str | None = None) -> TrainingJob:
    """Start ``config`` in the background for ``owner`` unless a job is already running (then return that one,
    whoever owns it)."""
    with _lock:
        job = _jobs.get("current")
        if job is not None and job.active:
            return job
        job = TrainingJob(config=config, on_finish=on_finish, owner=owner, target=TARGET)
        _jobs["current"] = job
        job.start()
        return job
