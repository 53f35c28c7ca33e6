"""Training across processes and hosts: who this process is in a ``tf.distribute`` cluster, and where it backs up.

``python -m dfd train --strategy multiworker`` runs the same command on every host, each with its own
``TF_CONFIG`` (the standard variable, also what Kubernetes' TFJob and Vertex AI set)::

    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

:func:`worker_from_env` reads it (without TensorFlow); the chief (``task.type`` "chief", else worker 0 when the
cluster has no chief) is the one process that writes the run folder. Every worker backs its training state up
at each epoch's end (Keras ``BackupAndRestore``) into :func:`backup_dir`, outside ``runs/`` and ``models/``: a
worker that is killed, and the others that fail with it, resume from the last completed epoch when they are
started again with the same command.
"""

from __future__ import annotations

import json
import os
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATEGIES = ("auto", "mirrored", "multiworker")
"""``--strategy`` values: ``auto`` (all GPUs of this host when it has several, else one device), ``mirrored``
(all GPUs of this host, else all its logical CPUs), ``multiworker`` (one replica per process of the cluster
``TF_CONFIG`` describes)."""

BACKUP_ENV = "DFD_BACKUP_DIR"


class DistributedError(ValueError):
    """A cluster description that cannot be used (missing or malformed ``TF_CONFIG``)."""


@dataclass(frozen=True)
class Worker:
    """This process's place in the cluster."""

    task_type: str
    index: int
    tasks: int          # processes taking part in training (chief and workers)
    is_chief: bool

    @property
    def label(self) -> str:
        return f"{self.task_type}-{self.index}"


def worker_from_env(env: dict[str, str] | None = None) -> Worker:
    """This process's :class:`Worker` from ``TF_CONFIG``; :class:`DistributedError` with what to set if absent
    or malformed."""
    env = os.environ if env is None else env
    text = env.get("TF_CONFIG", "")
    if not text.strip():
        raise DistributedError(
            "--strategy multiworker needs TF_CONFIG on every worker, e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
            "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}' (index 1 on "
            "the second host); see the README, 'Training on several machines'")
    try:
        conf = json.loads(text)
        cluster, task = conf["cluster"], conf["task"]
        task_type, index = str(task["type"]), int(task["index"])
        members = {str(k): list(v) for k, v in cluster.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DistributedError(f"TF_CONFIG is not a cluster description ({exc!r}): {text[:200]}") from exc
    if task_type not in members or not 0 <= index < len(members[task_type]):
        raise DistributedError(f"TF_CONFIG's task {task_type}:{index} is not in its cluster {members}")
    if task_type not in ("chief", "worker"):
        raise DistributedError(f"TF_CONFIG task type {task_type!r}: only 'chief' and 'worker' tasks train")
    tasks = len(members.get("chief", [])) + len(members.get("worker", []))
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and not members.get("chief"))
    return Worker(task_type, index, tasks, is_chief)


def tf_config(addresses: list[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of workers at ``addresses`` (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": int(index)}})


def backup_dir(name: str, worker: Worker, root: str | Path | None = None) -> Path:
    """Where ``worker`` backs up run ``name``: ``<root>/<name>/<task>-<index>``; ``root`` defaults to
    ``$DFD_BACKUP_DIR``, else ``<temp dir>/dfd-backup`` (never under ``runs/`` or ``models/``). Give every host
    a folder of its own that outlives the process (a local disk, not a shared one)."""
    base = Path(root or os.environ.get(BACKUP_ENV) or Path(tempfile.gettempdir()) / "dfd-backup").expanduser()
    return base / name / worker.label


def make_multiworker_strategy() -> Any:
    """``tf.distribute.MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (checked first). Must run before any
    other TensorFlow operation of the process."""
    worker_from_env()
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def fit_multiworker(model: Any, strategy: Any) -> None:
    """Let Keras 3 ``fit`` a ``model`` under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

    Two steps of Keras' ``fit`` assume one worker, and this model gets both right (nothing else changes):

    - before training, Keras builds the model on a first batch averaged across replicas with
      ``strategy.reduce``, which fails for per-worker batches ("Attempt to convert a value (PerReplica...) to
      a Tensor"): only that batch's shapes matter, so the model builds on this worker's own first batch;
    - after each step, Keras averages the loss and metrics across workers along axis 0, which scalars do not
      have ("Invalid reduction dimension 0"): the steps return them as 1-element vectors, so the average is
      taken over workers and every worker sees the same numbers (and so makes the same early-stopping and
      checkpoint decisions).
    """
    import tensorflow as tf
    from keras import tree

    def local(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def as_vectors(step: Any) -> Any:
        def wrapped(data: Any) -> Any:
            return tree.map_structure(lambda v: tf.reshape(v, [-1]) if v.shape.rank == 0 else v, step(data))
        return wrapped

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)
