"""Batch scoring on Ray Data: ``python -m dfd predict FOLDER_OR_MANIFEST --engine ray``.

Owns the Ray side of ``predict``: starting Ray in this process or joining a cluster (:func:`start`), and
:func:`score`, which runs the two stages of :meth:`dfd.detect.Detector.analyse` over a list of files::

    files ──► CPU tasks (map_batches with a function): dfd.detect.cpu_stage: decode, orient, find faces,
              crop, resize ──► pickled dfd.detect.Prepared (no picture kept)
          ──► model actors (map_batches with a class, ``actors`` of them): each loads the run once, in
              __init__, as a dfd.detect.Detector (TFLite/LiteRT or Keras, as the single process serves it);
              Detector.model_stage: P(fake), re-save check, verdicts ──► pickled dfd.detect.ImageResult
          ──► put back in the files' order: the same results, so dfd.detect.results_table writes the same CSV

A worker that dies is replaced: CPU tasks are retried (``max_retries``), model actors restarted
(``max_restarts=-1``) and their lost batches retried (``max_task_retries``); each file's result is kept
exactly once. A bad image is not a failure here either: its result carries the error, as in one process.

Ray is imported only inside these functions, so the app and the core CLI never need it; without it,
:class:`ScaleError` says to ``pip install ".[scale]"``. Paths and the run folder must be readable at the same
paths on every node of a cluster, and dfd installed there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dfd.quiet import fds_to_devnull

INSTALL_HINT = 'pip install ".[scale]"'
DEFAULT_ACTORS = 2
BATCH_SIZE = 8
"""Images per Ray Data batch, in both stages."""
TASK_RETRIES = 3
"""Times a CPU task is tried again when its worker dies (a bad image never raises: it is a result)."""
ACTOR_TASK_RETRIES = -1
"""Times a model actor's batch is tried again when the actor dies (-1: until it is judged; the actor is
restarted every time, ``max_restarts=-1``)."""
CONNECT_TIMEOUT_S = 5.0


class ScaleError(Exception):
    """Ray is missing or the cluster cannot be reached (the message is one line)."""


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ScaleError(f"--engine ray needs Ray Data, which is not installed: {INSTALL_HINT}") from exc
    return ray


def _reachable(address: str) -> None:
    """Fail fast (``ray.init`` waits minutes) when nothing listens at a host:port ``address``."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ScaleError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the head node's GCS port)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ScaleError(f"no Ray cluster at {address} ({exc.strerror or exc}): start one with `ray start --head` "
                         "on the head node, or leave out --address to run Ray on this machine") from exc


def start(address: str | None = None, quiet: bool = True) -> bool:
    """Start Ray in this process (``address`` None: every core of this machine, no dashboard, no usage report)
    or join the cluster at ``address`` (HOST:PORT or "auto"). ``quiet``: Ray's own log lines (C++ and Python)
    are kept off the console but for fatal ones. Returns whether this call connected (the caller then calls
    :func:`stop`); False when Ray was already running in this process."""
    ray = _ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network report at start
    if quiet:
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logs: dict[str, Any] = {"logging_level": logging.ERROR if quiet else logging.INFO, "log_to_driver": not quiet}
    if address:
        _reachable(address)
        try:
            with fds_to_devnull(2) if quiet else contextlib.nullcontext():
                ray.init(address=address, **logs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ScaleError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())[:300]}") from exc
    else:
        # Ray's C++ core says at start that it read RAY_BACKEND_LOG_LEVEL
        with fds_to_devnull(2) if quiet else contextlib.nullcontext():
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **logs)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def stop() -> None:
    """Leave Ray (shut down the local one :func:`start` started)."""
    import ray

    ray.shutdown()


def _cpus(total: float, actors: int) -> tuple[float, float]:
    """(CPUs each model actor reserves, CPUs each CPU task reserves): one each where the cluster has room for
    every actor and a task besides; on a smaller machine, equal shares, so the actors and one task always fit
    (else the tasks that feed the actors would never be scheduled)."""
    if actors + 1 <= total:
        return 1.0, 1.0
    share = total / (actors + 1)
    return share, share


# ----------------------------------------------------------------------------------------------------------
# The two stages, as Ray Data runs them


_FINDER: list[Any] = []  # one face finder a worker process, made on first use


def _cpu_batch(batch: dict[str, np.ndarray], image_size: int, find_faces: bool) -> dict[str, np.ndarray]:
    """CPU task: :func:`dfd.detect.cpu_stage` for each file of the batch; the picture itself is not shipped."""
    from dfd import detect

    if not _FINDER:
        _FINDER.append(detect.FaceFinder())
    out = []
    for path, name in zip(batch["path"], batch["name"], strict=True):
        prepared = detect.cpu_stage(str(path), _FINDER[0], image_size, name=str(name), find_faces=find_faces)
        prepared.image = None
        out.append(pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL))
    return {"index": batch["index"], "prepared": np.array(out, dtype=object)}


class _ModelStage:
    """Model actor: the run loaded once, as :class:`dfd.detect.Detector`; :meth:`Detector.model_stage` a batch."""

    def __init__(self, run: str, threshold: float) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from dfd import detect

        self.detector = detect.Detector(run)
        self.threshold = threshold

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(self.detector.model_stage(pickle.loads(p), self.threshold),
                                protocol=pickle.HIGHEST_PROTOCOL) for p in batch["prepared"]]
        return {"index": batch["index"], "result": np.array(results, dtype=object),
                "engine": np.array([self.detector.engine] * len(results))}


def score(files: Sequence[str | Path], run: Any, *, threshold: float | None = None, find_faces: bool = True,
          actors: int = DEFAULT_ACTORS, names: Sequence[str] | None = None,
          progress: Callable[[int, int], None] | None = None) -> tuple[list[Any], str]:
    """(one :class:`dfd.detect.ImageResult` per file, in the order of ``files``; the engine that judged them:
    "tflite" or "keras"), the same as ``Detector(run).analyse`` gives in one process, through Ray Data (started
    with :func:`start` if it is not running). ``names``: the file name each result carries (default:
    ``str(file)``); ``threshold`` None: the run's. ``progress(done, total)`` is called as results arrive."""
    from dfd import runs

    if actors < 1:
        raise ValueError(f"actors must be at least 1, not {actors}")
    if not files:
        return [], ""
    run = runs.get_run(run)
    size = run.config.get("image_size")
    if not size:  # an old run that did not record it: the model's input says it
        size = runs.load_model(run).input_shape[1]
    threshold = run.threshold if threshold is None else float(threshold)
    ray = _ray()
    if not ray.is_initialized():
        start()
    actor_cpus, task_cpus = _cpus(float(ray.cluster_resources().get("CPU", 1)), actors)
    names = [str(f) for f in files] if names is None else [str(n) for n in names]
    items = [{"index": i, "path": str(Path(f).expanduser().absolute()), "name": n}
             for i, (f, n) in enumerate(zip(files, names, strict=True))]
    blocks = -(-len(items) // BATCH_SIZE)
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    with warnings.catch_warnings():
        # Ray 2.60 takes the retry settings only as ray_remote_args, which it says 2.64 will remove (its
        # defaults are the same: retried tasks, restarted actors); they are spelled out here to be sure.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(_cpu_batch, fn_kwargs={"image_size": int(size), "find_faces": bool(find_faces)},
                            batch_size=BATCH_SIZE, num_cpus=task_cpus, max_retries=TASK_RETRIES)
        ds = ds.map_batches(_ModelStage, batch_size=BATCH_SIZE, num_cpus=actor_cpus,
                            fn_constructor_kwargs={"run": str(run.path.absolute()), "threshold": threshold},
                            compute=ray.data.ActorPoolStrategy(size=min(actors, blocks)),
                            max_restarts=-1, max_task_retries=ACTOR_TASK_RETRIES)
    results: list[Any] = [None] * len(items)
    engines: set[str] = set()
    done = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i, blob, engine in zip(batch["index"], batch["result"], batch["engine"], strict=True):
            if results[int(i)] is not None:
                raise RuntimeError(f"Ray Data returned {names[int(i)]} twice")
            results[int(i)] = pickle.loads(blob)
            engines.add(str(engine))
            done += 1
        if progress is not None:
            progress(done, len(results))
    lost = [names[i] for i, r in enumerate(results) if r is None]
    if lost:
        raise RuntimeError(f"Ray Data returned no result for {len(lost)} file(s), e.g. {lost[0]}")
    return results, "/".join(sorted(engines))
