"""Training: ``train(config) -> run folder``.

Streams images from disk with :func:`dfd.data.make_dataset` (parallel decode, augmentation, prefetch),
builds the architecture from :mod:`dfd.models` (inside a ``tf.distribute`` strategy's scope when one is
given), fits with class weights, warm-up + cosine learning rate, early stopping and a best checkpoint
(``model.keras``, best weights restored), then predicts the val and test splits with
:func:`dfd.data.predict_paths` and writes the run folder described in :mod:`dfd.runs`.

The run is written to ``<runs_dir>/.tmp-<name>-<pid>/`` (``runs_dir`` defaults to the user runs folder,
:func:`dfd.runs.user_dir`; the shipped ``models/`` is refused) and renamed when it ends, never over another run
(``name``, ``name2``, ...). A run stopped by ``stop_event``, Ctrl-C (KeyboardInterrupt) or an error is kept
too, with ``status.json`` saying "interrupted" or "failed" and whatever history and checkpoint exist.
``train`` returns the run folder for complete and interrupted runs; on failure it raises
:class:`TrainError` whose ``run_path`` is the kept folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dfd import runs

Progress = Callable[[float, int, dict[str, Any]], None]


class TrainError(RuntimeError):
    """Training could not run or failed; ``run_path`` is the kept (failed) run folder, if one was made."""

    def __init__(self, message: str, run_path: Path | None = None) -> None:
        super().__init__(message)
        self.run_path = run_path


@dataclass
class TrainConfig:
    """Everything a training run needs. ``to_dict``/``from_dict`` round-trip through JSON."""

    data: str = ""
    architecture: str = "srm_cnn"
    image_size: int | None = None           # None: the architecture's default size
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_epochs: float = 1.0              # linear warm-up from 0, then cosine decay to lr * min_lr_ratio
    lr_schedule: str = "cosine"             # "cosine" or "constant"
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0               # > 0: AdamW
    seed: int = 0                           # weights, shuffling, augmentation
    split_seed: int = 0                     # split of datasets without one (apart from seed: seeds share val/test)
    augment: dict[str, Any] | None = field(default_factory=lambda: {"flip": True})
    class_weight: bool = True
    balance_datasets: bool = False          # oversample smaller datasets so each is seen equally per epoch
    balance_classes: bool = False           # within each dataset, oversample the smaller class to the larger
    dataset_weights: dict[str, float] | None = None  # after balancing: each named dataset's rows repeated w times
    patience: int = 3                       # epochs without improvement before early stopping; 0: never
    monitor: str = "val_loss"               # val_loss (min) or val_auc / val_accuracy (max)
    val_frac: float = 0.15                  # only for datasets without a split
    test_frac: float = 0.15
    name: str | None = None                 # run folder name (default: the architecture)
    runs_dir: str = ""                      # "": the user runs folder (dfd.runs.user_dir: runs/ or $DFD_RUNS_DIR)
    limit: int | None = None                # max images per split (stratified), for quick runs and tests
    datasets: list[str] | None = None       # keep only these values of the index's dataset column
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None             # None/"auto", "mirrored" or "multiworker" (dfd.distributed.STRATEGIES)
    backup_dir: str | None = None           # multiworker: where each worker backs up (dfd.distributed.backup_dir)
    bn_batches: int = 50                    # recompute batch-norm statistics over this many batches (0: off)
    predict_splits: list[str] = field(default_factory=lambda: ["val", "test"])
    tta: bool = False                       # serve P(fake) averaged over the image and its mirror image
    pretrained: bool = False                # ImageNet weights for the architecture's backbone (installed package)
    backbone_lr_scale: float = 1.0          # the pretrained backbone learns at learning_rate * this
    exclude_generators: list[str] | None = None  # drop these generators' fakes from train and val (test keeps them)
    reals_only: list[str] | None = None     # of these datasets keep only the reals in train and val (test keeps all)
    max_false_alarm: float | None = None    # served threshold: best on val with at most this false-alarm rate
    teacher: list[str] | None = None        # distil: learn toward these runs' mean P(fake) (same data and split)
    distill_weight: float = 0.5             # train target = (1 - w) * label + w * the teachers' P(fake)
    distill_temperature: float = 1.0        # the teachers' mean P(fake) softened: sigmoid(logit(p) / T)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in d.items() if k in known})


NOT_SETTINGS = ("data", "runs_dir", "name", "backup_dir", "strategy")
"""TrainConfig fields that say where a run read and wrote, what it was called and on which machines it ran
(a multi-worker run's preset trains on this machine), not how it trained."""


def settings_of(record: dict[str, Any]) -> dict[str, Any]:
    """The training settings a run's config.json records, ready for :meth:`TrainConfig.from_dict`: every
    TrainConfig field it holds except :data:`NOT_SETTINGS`; the record-only keys (data fingerprint, split
    counts, timings, versions...) are left out. A setting the record replaced by its outcome goes back to the
    setting (``class_weight`` holds the weights used; the setting is True). A run recorded before ``split_seed``
    existed split its data by its ``seed``."""
    defaults = TrainConfig()
    out: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if f.name in NOT_SETTINGS or f.name not in record:
            continue
        value = record[f.name]
        if isinstance(getattr(defaults, f.name), bool) and not isinstance(value, bool):
            value = bool(value)
        out[f.name] = value
    if "split_seed" not in record and "seed" in record:
        out["split_seed"] = runs.split_seed_of(record)
    return out


def library_versions() -> dict[str, str]:
    import keras
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__}


PREPARING, IN_EPOCH, FINISHING = "preparing", "epoch", "finishing"
"""The stages a phase belongs to (a phase's "stage" in :func:`train`'s progress): before the first epoch,
inside an epoch (its first batch, validation), after the last epoch (predicting, calibrating)."""


def _phase(progress: Progress | None, epoch: float, epochs: int, phase: str, done: int | None = None,
           total: int | None = None, *, stage: str = PREPARING, unit: str = "") -> None:
    """Report a phase other than training batches (see :func:`train`)."""
    if progress is not None:
        logs: dict[str, Any] = {"phase": phase, "stage": stage}
        if total is not None:
            logs.update(done=int(done or 0), total=int(total))
            if unit:
                logs["unit"] = unit
        progress(float(epoch), int(epochs), logs)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def limit_split(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most ``limit`` rows per split, keeping each split's class proportions (deterministic)."""
    from dfd.evaluate import _stratified_limit

    if not limit:
        return frame.reset_index(drop=True)
    parts = [_stratified_limit(part, limit, seed) for _, part in frame.groupby("split", sort=False)]
    return pd.concat(parts, ignore_index=True)


def make_strategy(spec: Any) -> Any:
    """A ``tf.distribute.Strategy`` from a strategy object or one of :data:`dfd.distributed.STRATEGIES`
    (None and "default" mean "auto")."""
    import tensorflow as tf

    from dfd import distributed

    if isinstance(spec, tf.distribute.Strategy):
        return spec
    if spec == "multiworker":
        return distributed.make_multiworker_strategy()
    if spec in (None, "default", "auto"):
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else tf.distribute.get_strategy()
    if spec == "mirrored":
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise TrainError(f"unknown strategy {spec!r}; use one of {', '.join(distributed.STRATEGIES)} "
                     "(or pass a tf.distribute.Strategy)")


def _learning_rate(cfg: TrainConfig, steps_per_epoch: int) -> Any:
    import keras

    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule != "cosine":
        raise TrainError(f"unknown lr_schedule {cfg.lr_schedule!r}; use 'cosine' or 'constant'")
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else cfg.learning_rate, decay_steps=max(1, total - warmup),
        alpha=cfg.min_lr_ratio, warmup_target=cfg.learning_rate if warmup else None, warmup_steps=warmup)


def optimizer(cfg: TrainConfig, learning_rate: Any, model: Any) -> Any:
    """Adam (AdamW with weight decay) whose step is ``backbone_lr_scale`` times smaller for the variables of
    the model's pretrained backbone (the nested model :data:`dfd.models.BACKBONE`): fine-tuning keeps ImageNet
    features while the new layers learn at the full rate."""
    import keras

    from dfd.models import BACKBONE

    base = keras.optimizers.AdamW if cfg.weight_decay else keras.optimizers.Adam
    kwargs = {"weight_decay": cfg.weight_decay} if cfg.weight_decay else {}
    names = {layer.name for layer in model.layers}
    if cfg.backbone_lr_scale == 1.0 or BACKBONE not in names:
        return base(learning_rate=learning_rate, **kwargs)
    scale = float(cfg.backbone_lr_scale)
    slow: set[int] = set()
    for v in model.get_layer(BACKBONE).trainable_variables:
        slow.update({id(v), id(getattr(v, "value", v))})

    class BackboneScaled(base):  # type: ignore[misc, valid-type]
        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> Any:
            if id(variable) in slow:
                learning_rate = learning_rate * scale
            return super().update_step(gradient, variable, learning_rate)

    return BackboneScaled(learning_rate=learning_rate, **kwargs)


def _callback_class() -> type:
    import keras

    class RunCallback(keras.callbacks.Callback):
        """Writes history.csv after each completed epoch, reports progress of training and validation, honours
        stop_event between batches (and skips the validation of an epoch cut short)."""

        def __init__(self, run_dir: Path, epochs: int, steps: int, progress: Progress | None,
                     stop_event: threading.Event | None, bn_data: Any = None, bn_batches: int = 0,
                     val_steps: int = 0, backup: Path | None = None) -> None:
            super().__init__()
            self.backup = backup  # multi-worker: history.csv is also kept beside the backup, for a resume
            self.bn_data, self.bn_batches = bn_data, bn_batches
            self.run_dir, self.epochs, self.steps = run_dir, epochs, max(1, steps)
            self.val_steps = max(1, val_steps)
            self.progress, self.stop_event = progress, stop_event
            self.rows: list[dict[str, Any]] = []
            self.stopped = False
            self.partial = False  # the current epoch was stopped before its last batch
            self._epoch = 0
            self._frac = 0.0
            self._t_epoch = time.perf_counter()
            self._t_report = 0.0
            self._images = 0

        def _lr(self) -> float:
            opt = self.model.optimizer
            try:
                return float(keras.ops.convert_to_numpy(opt.learning_rate))
            except Exception:  # noqa: BLE001 - reporting only
                return float("nan")

        def _report(self, logs: dict[str, Any], force: bool = False) -> None:
            if self.progress is not None and (force or time.perf_counter() - self._t_report > 0.5):
                self._t_report = time.perf_counter()
                self.progress(self._epoch + self._frac, self.epochs, logs)

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._report({"phase": "first batch (building the training graph)", "stage": IN_EPOCH}, force=True)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch, self._frac, self.partial = epoch, 0.0, False
            self._t_epoch = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.stop_event is not None and self.stop_event.is_set():
                self.stopped = True
                self.partial = batch + 1 < self.steps
                self.model.stop_training = True
            self._frac = min((batch + 1) / self.steps, 0.999)
            self._report({k: float(v) for k, v in (logs or {}).items() if np.isscalar(v)} | {"batch": batch + 1},
                         force=batch == 0)  # each epoch's first batch is always reported

        def on_test_begin(self, logs: dict | None = None) -> None:
            if self.stopped:
                return
            # Validation inside fit: give it batch-norm statistics that match the current weights.
            if self.bn_data is not None and self.bn_batches > 0:
                what = "batch-norm statistics for validation (the current weights' activations)"
                self._report({"phase": what, "stage": IN_EPOCH, "done": 0, "total": self.bn_batches,
                              "unit": "batches"}, force=True)
                recompute_batchnorm(self.model, self.bn_data, self.bn_batches, progress=lambda done, total: (
                    self._report({"phase": what, "stage": IN_EPOCH, "done": done, "total": total,
                                  "unit": "batches"})))
            self._report({"phase": "validation", "stage": IN_EPOCH, "done": 0, "total": self.val_steps,
                          "unit": "batches"}, force=True)

        def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.stopped:  # stopped: no validation of an epoch that is not recorded
                self.model.stop_evaluating = True

        def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.stopped:
                self.model.stop_evaluating = True
                return
            self._report({"phase": "validation", "stage": IN_EPOCH, "done": min(batch + 1, self.val_steps),
                          "total": self.val_steps, "unit": "batches"})

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.stop_event is not None and self.stop_event.is_set():
                self.stopped = True
                self.model.stop_training = True
            if self.partial:  # cut short: not an epoch, so not recorded (nor checkpointed: WholeEpochs)
                return
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if np.isscalar(v)},
                   "lr": self._lr(), "seconds": round(time.perf_counter() - self._t_epoch, 3)}
            self.rows.append(row)
            runs.write_csv_atomic(self.run_dir / "history.csv", pd.DataFrame(self.rows))
            if self.backup is not None and self.backup.is_dir():
                runs.write_csv_atomic(self.backup / "history.csv", pd.DataFrame(self.rows))
            self._epoch, self._frac = epoch + 1, 0.0
            if self.progress is not None:
                self.progress(epoch + 1, self.epochs, row)

    def whole_epochs_only(base: type) -> type:
        class WholeEpochs(base):  # type: ignore[misc, valid-type]
            """``base`` (checkpoint, early stopping) that ignores an epoch cut short by a stop."""

            def __init__(self, run_callback: RunCallback, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.run_callback = run_callback

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                if not self.run_callback.partial:
                    super().on_epoch_end(epoch, logs)

        WholeEpochs.__name__ = base.__name__
        return WholeEpochs

    RunCallback.Checkpoint = whole_epochs_only(keras.callbacks.ModelCheckpoint)
    RunCallback.EarlyStopping = whole_epochs_only(keras.callbacks.EarlyStopping)
    return RunCallback


def recompute_batchnorm(model: Any, dataset: Any, batches: int,
                        progress: Callable[[int, int], None] | None = None) -> int:
    """Set every BatchNormalization layer's moving mean/variance to the average over ``batches`` batches.

    During training the moving statistics trail the weights (few steps an epoch on small data, a high
    learning rate): validation then sees mis-normalised activations and scores near chance while the
    ranking (AUC) is fine. A forward pass in training mode with momentum (k-1)/k at batch k makes them the
    exact average for the final weights ("precise BN"). Weights are not changed. Returns batches used.
    ``progress(done, total)`` is called after each batch (total: ``batches``, or fewer when the dataset is
    known to be shorter; the last call has done == total).
    """
    import keras

    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    total = int(batches)
    with contextlib.suppress(Exception):  # a dataset of unknown length (-2) or a plain iterable: batches
        known = int(dataset.cardinality())
        if known >= 0:
            total = min(total, known)
    saved = [layer.momentum for layer in layers]
    used = 0
    try:
        for x, _ in dataset.take(batches):
            used += 1
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(x, training=True)
            if progress is not None:
                progress(used, max(total, used))
        if progress is not None and used < total:  # the dataset ended early: say it is done
            progress(used, used)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return used


def _hard_label_accuracy(y_true: Any, y_pred: Any) -> Any:
    import keras

    hard = keras.ops.reshape(keras.ops.cast(keras.ops.round(y_true), "float32"), (-1,))
    guess = keras.ops.reshape(keras.ops.cast(y_pred > 0.5, "float32"), (-1,))
    return keras.ops.cast(keras.ops.equal(hard, guess), "float32")


def _accuracy_metric(soft_labels: bool) -> Any:
    """Training accuracy; with soft labels (mixup, distillation), against each image's majority label."""
    import keras

    if soft_labels:
        return keras.metrics.MeanMetricWrapper(_hard_label_accuracy, name="accuracy")
    return keras.metrics.BinaryAccuracy(name="accuracy")


def _auc_metric(soft_labels: bool) -> Any:
    """Training ROC AUC; with soft labels, against each image's majority label (Keras' AUC takes any label
    above 0 as positive: distillation's targets, never exactly 0, would leave it no negatives)."""
    import keras

    if not soft_labels:
        return keras.metrics.AUC(name="auc")

    class HardLabelAUC(keras.metrics.AUC):
        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            return super().update_state(keras.ops.round(y_true), y_pred, sample_weight)

    return HardLabelAUC(name="auc")


def balance_datasets(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``frame`` with each dataset's rows repeated up to the largest dataset's count (whole copies, then a
    seeded sample without replacement for the rest), so that every dataset weighs the same in an epoch.
    A frame with one dataset, or without a dataset column, comes back unchanged."""
    if "dataset" not in frame or frame["dataset"].nunique() < 2:
        return frame
    target = int(frame["dataset"].value_counts().max())
    rng = np.random.default_rng(seed)
    parts = []
    for _, group in frame.groupby("dataset", sort=True):
        whole, rest = divmod(target, len(group))
        parts += [group] * whole + [group.iloc[np.sort(rng.choice(len(group), rest, replace=False))]]
    return pd.concat(parts, ignore_index=True)


def weight_datasets(frame: pd.DataFrame, weights: dict[str, float] | None, seed: int = 0) -> pd.DataFrame:
    """``frame`` with each dataset named in ``weights`` repeated w times (whole copies, then a seeded sample
    without replacement for the fraction: 2.5 is two copies and half of the rows once more); other datasets
    once. Gives a dataset that is hard, or small, more steps an epoch without the others losing any."""
    if not weights or "dataset" not in frame:
        return frame
    rng = np.random.default_rng(seed)
    parts = []
    for name, group in frame.groupby("dataset", sort=True):
        whole, frac = divmod(float(weights.get(str(name), 1.0)), 1.0)
        rest = int(round(frac * len(group)))
        parts += [group] * int(whole) + [group.iloc[np.sort(rng.choice(len(group), rest, replace=False))]]
    return pd.concat(parts, ignore_index=True)


def balance_classes(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``frame`` with, within each dataset, the smaller class's rows repeated up to the larger class's count
    (whole copies, then a seeded sample without replacement). Global class weights cannot do this when datasets
    lean different ways (modern-faces-128 is 58% fake): there the model learns "this kind of image is fake",
    which shows up as false alarms on that dataset's reals."""
    key = frame["dataset"] if "dataset" in frame else pd.Series("", index=frame.index)
    rng = np.random.default_rng(seed)
    parts = []
    for _, group in frame.groupby(key, sort=True):
        target = int(group["label"].value_counts().max())
        for _, cls in group.groupby("label", sort=True):
            whole, rest = divmod(target, len(cls))
            parts += [cls] * whole + [cls.iloc[np.sort(rng.choice(len(cls), rest, replace=False))]]
    return pd.concat(parts, ignore_index=True)


def _class_weights(labels: np.ndarray) -> dict[int, float]:
    n, n_fake = len(labels), int(labels.sum())
    n_real = n - n_fake
    return {0: n / (2.0 * n_real), 1: n / (2.0 * n_fake)}


def preflight(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    """Check a training configuration and its data without TensorFlow and without making a folder.

    Returns the config; raises :class:`TrainError` or :class:`dfd.data.DatasetError` with a one-line
    message fit to show a user (unknown architecture, bad numbers, a missing or unusable dataset folder,
    a ``datasets`` filter that matches nothing, a train split without both classes, no validation images).
    """
    return _checked(config)[0]


def _checked(config: TrainConfig | dict[str, Any]) -> tuple[TrainConfig, int, Any, pd.DataFrame, pd.DataFrame,
                                                              pd.DataFrame]:
    """(config, image size, index, frame, train rows, val rows) after every check of :func:`preflight`."""
    from dfd import distributed, models
    from dfd.data import index_dataset

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    if cfg.architecture not in models.ARCHITECTURES:
        raise TrainError(f"unknown architecture {cfg.architecture!r}; choose one of: "
                         f"{', '.join(sorted(models.ARCHITECTURES))}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.learning_rate <= 0:
        raise TrainError("epochs and batch_size must be at least 1 and learning_rate positive")
    if not cfg.data:
        raise TrainError("no dataset folder given (config.data)")
    if cfg.pretrained and cfg.architecture not in models.PRETRAINED_ARCHITECTURES:
        raise TrainError(f"architecture {cfg.architecture!r} has no pretrained weights; those that do: "
                         f"{', '.join(sorted(models.PRETRAINED_ARCHITECTURES))}")
    if not 0 <= cfg.backbone_lr_scale <= 1:
        raise TrainError(f"backbone_lr_scale must be in 0..1 (got {cfg.backbone_lr_scale})")
    if not 0 <= cfg.distill_weight <= 1:
        raise TrainError(f"distill_weight must be in 0..1 (got {cfg.distill_weight})")
    if not cfg.distill_temperature > 0:
        raise TrainError(f"distill_temperature must be positive (got {cfg.distill_temperature})")
    if not (cfg.strategy is None or cfg.strategy == "default" or cfg.strategy in distributed.STRATEGIES):
        raise TrainError(f"unknown strategy {cfg.strategy!r}; use one of {', '.join(distributed.STRATEGIES)}")
    if cfg.strategy == "multiworker":
        try:
            distributed.worker_from_env()
        except distributed.DistributedError as exc:
            raise TrainError(str(exc)) from exc
        if cfg.teacher:
            raise TrainError("--teacher is not available with --strategy multiworker: distil on one machine")
    image_size = int(cfg.image_size or models.DEFAULT_SIZES[cfg.architecture])

    index = index_dataset(cfg.data, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.split_seed)
    frame = index.frame
    if cfg.datasets:
        frame = frame[frame["dataset"].isin(cfg.datasets)]
        if frame.empty:
            raise TrainError(f"none of the datasets {', '.join(cfg.datasets)} are in {cfg.data} "
                             f"(it has: {', '.join(sorted(index.frame['dataset'].unique()))})")
    if cfg.exclude_generators:
        unknown = sorted(set(cfg.exclude_generators) - set(frame["generator"]))
        if unknown:
            raise TrainError(f"generator(s) {', '.join(unknown)} not in {cfg.data} (it has: "
                             f"{', '.join(sorted(g for g in frame['generator'].unique() if g)) or 'none named'})")
        frame = frame[~(frame["generator"].isin(cfg.exclude_generators) & frame["split"].isin(["train", "val"]))]
    if cfg.reals_only:
        unknown = sorted(set(cfg.reals_only) - set(frame["dataset"]))
        if unknown:
            raise TrainError(f"reals-only dataset(s) {', '.join(unknown)} not among the training data (it has: "
                             f"{', '.join(sorted(frame['dataset'].unique()))})")
        frame = frame[~(frame["dataset"].isin(cfg.reals_only) & (frame["label"] == 1)
                        & frame["split"].isin(["train", "val"]))]
    if cfg.dataset_weights:
        unknown = sorted(set(cfg.dataset_weights) - set(frame["dataset"]))
        if unknown:
            raise TrainError(f"dataset_weights names dataset(s) {', '.join(unknown)} not among the training data "
                             f"(it has: {', '.join(sorted(frame['dataset'].unique()))})")
        bad = [k for k, w in cfg.dataset_weights.items() if isinstance(w, bool) or not isinstance(w, (int, float))
               or not w > 0]
        if bad:
            raise TrainError(f"dataset_weights must be positive numbers (not for {', '.join(bad)})")
    frame = limit_split(frame, cfg.limit, cfg.seed)
    train_df = frame[frame["split"] == "train"].reset_index(drop=True)
    val_df = frame[frame["split"] == "val"].reset_index(drop=True)
    if cfg.teacher:
        teachers(cfg, frame)
    if train_df["label"].nunique() < 2:
        raise TrainError(f"the train split of {cfg.data} needs both real and fake images "
                         f"(has {len(train_df)} images, labels {sorted(train_df['label'].unique())})")
    if val_df.empty:
        raise TrainError(f"no validation images in {cfg.data}; a val split is needed for early stopping")
    return cfg, image_size, index, frame, train_df, val_df


def _require_complete(run: runs.Run, role: str) -> None:
    if run.status != runs.COMPLETE or not run.has_model:
        raise TrainError(f"run {run.name!r} is {run.status}{'' if run.has_model else ' with no model'}: "
                         f"only complete runs can {role}")


def teachers(cfg: TrainConfig, frame: pd.DataFrame) -> list[runs.Run]:
    """The complete runs ``cfg.teacher`` names, each checked to have been validated and tested on every val and
    test image of ``frame``: so none of them trained on an image the student is selected or scored on."""
    held_out = frame[frame["split"].isin(["val", "test"])]
    wanted = set(zip(held_out["split"], held_out["path"].astype(str).map(os.path.abspath), strict=True))
    found = []
    for ref in cfg.teacher or []:
        try:
            run = runs.get_run(ref, cfg.runs_dir or None)
        except runs.RunError as exc:
            raise TrainError(f"teacher: {exc}") from exc
        _require_complete(run, "teach")
        pred = run.predictions()
        seen = set(zip(pred.get("split", []), map(os.path.abspath, pred.get("path", [])), strict=True))
        missing = len(wanted - seen)
        if missing:
            raise TrainError(f"teacher run {run.name!r} was not validated or tested on {missing} of this run's "
                             f"{len(wanted)} val/test images (other data or split): it may have trained on them")
        found.append(run)
    return found


def teacher_targets(teachers_: list[runs.Run], frame: pd.DataFrame, batch_size: int = 64,
                    progress: Callable[[int, int], None] | None = None, temperature: float = 1.0) -> np.ndarray:
    """The teachers' mean P(fake) (each as it serves: its input size and mirror averaging, before its own
    calibration) for every row of ``frame``, softened by ``temperature`` (sigmoid(logit(p) / T): teachers are
    sure of the images they trained on, so T > 1 keeps which ones they found harder); NaN where a teacher
    could not read the image."""
    from dfd import evaluate

    unique = frame.drop_duplicates("path")
    total, done = len(unique) * len(teachers_), 0
    probs = []
    for run in teachers_:
        def step(n: int, _total: int, base: int = done) -> None:
            if progress:
                progress(base + n, total)

        pred, _ = evaluate.predict_frame(evaluate.predictor(runs.load_model(run), tta=run.tta), unique,
                                         run.image_size, batch_size, progress=step)
        probs.append(pred["p_fake"].to_numpy(np.float64))
        done += len(unique)
    mean = pd.Series(evaluate.apply_temperature(np.mean(probs, axis=0), temperature),
                     index=unique["path"].astype(str).to_numpy())
    return mean.reindex(frame["path"].astype(str)).to_numpy()


def train(config: TrainConfig | dict[str, Any], *, progress: Progress | None = None,
          stop_event: threading.Event | None = None, strategy: Any = None) -> Path | None:
    """Train one model and write its run folder; return the folder (complete or interrupted).

    ``progress(epoch, epochs, logs)`` reports every phase:

    - after each epoch: ``epoch`` an int (epochs completed), ``logs`` the history row (no "batch", no "phase");
    - about twice a second while training: ``epoch`` a float with the fraction done, ``logs`` the running
      batch metrics with "batch";
    - every other phase (building the model, the first batch, validation, batch-norm statistics, predicting
      each split, calibrating): ``logs`` has "phase" (words to show), "stage" (:data:`PREPARING` before the
      first epoch, :data:`IN_EPOCH` inside the epoch ``floor(epoch) + 1``, :data:`FINISHING` after the
      last) and, where it counts something, "done", "total" and "unit" (batches, images).

    Setting ``stop_event`` stops after the current batch; the run is kept as "interrupted" with only the
    epochs it completed. ``strategy`` (a ``tf.distribute.Strategy`` or a name of
    :data:`dfd.distributed.STRATEGIES`) overrides ``config.strategy``.

    With "multiworker" every process of the cluster ``TF_CONFIG`` describes calls ``train`` with the same
    config; each reads its shard of the file list and backs its state up at every epoch's end
    (:func:`dfd.distributed.backup_dir`); only the chief writes a run folder and returns it, the others
    return None. A worker started again after a failure resumes from its backup. Bad configuration or data raises :class:`TrainError` (or
    :class:`dfd.data.DatasetError`) before any folder is made (see :func:`preflight`); a failure during
    training raises :class:`TrainError` after the folder is kept as "failed".
    """
    epochs = config.epochs if isinstance(config, TrainConfig) else dict(config).get("epochs", TrainConfig.epochs)
    _phase(progress, 0, epochs, "indexing the dataset")
    cfg, image_size, index, frame, train_df, val_df = _checked(config)
    name = runs.safe_name(cfg.name or cfg.architecture)
    backup, workers = None, None
    if (strategy if strategy is not None else cfg.strategy) == "multiworker":
        from dfd import distributed

        worker = distributed.worker_from_env()
        _phase(progress, 0, epochs, f"joining the cluster as {worker.label} of {worker.tasks}")
        strategy = make_strategy("multiworker")  # before any other TensorFlow operation of this process
        backup = distributed.backup_dir(name, worker, cfg.backup_dir)
        workers = worker.tasks
        if not worker.is_chief:
            _train_worker(cfg, image_size, train_df, val_df, frame, backup, progress, stop_event, strategy)
            return None

    root = Path(cfg.runs_dir).expanduser() if cfg.runs_dir else runs.user_dir()
    runs.check_writable(root)
    run_dir = runs.new_run_dir(root, name)
    started, t0 = _now(), time.perf_counter()
    counts = frame.groupby(["split", "label"]).size().unstack(fill_value=0).rename(columns={0: "real", 1: "fake"})
    record: dict[str, Any] = {
        **cfg.to_dict(),
        "runs_dir": str(root),
        "data": str(Path(cfg.data).expanduser().resolve()),
        "image_size": image_size,
        "layout": index.layout,
        "data_fingerprint": index.fingerprint(),
        "split_counts": {s: {k: int(v) for k, v in row.items()} for s, row in counts.iterrows()},
        "datasets_in_data": sorted(frame["dataset"].unique().tolist()),
        "index_skipped": len(index.skipped),
        "started": started,
        "pid": os.getpid(),
        "host": platform.node(),
    }
    if workers:
        record["workers"] = workers
    bad_files: list[tuple[str, str]] = []

    def work() -> str:
        runs.write_json_atomic(run_dir / "config.json", record)
        runs.write_status(run_dir, runs.RUNNING, started=started)
        _phase(progress, 0, cfg.epochs, "loading TensorFlow")
        record["versions"] = library_versions()
        status, summary = _fit_and_predict(cfg, image_size, train_df, val_df, frame, run_dir, record, bad_files,
                                           progress, stop_event, strategy, backup=backup)
        record.update(summary)
        return status

    def calibrating() -> None:
        _phase(progress, record.get("epochs_run") or 0, cfg.epochs, "calibrating on the val predictions",
               stage=FINISHING)

    return _keep_run("training", work, run_dir, root, name, record, bad_files, started, t0, calibrating)


def _train_worker(cfg: TrainConfig, image_size: int, train_df: pd.DataFrame, val_df: pd.DataFrame,
                  frame: pd.DataFrame, backup: Path, progress: Progress | None,
                  stop_event: threading.Event | None, strategy: Any) -> None:
    """A non-chief worker's share of a multi-worker run: the same fit (its checkpoints go to a temporary
    folder, deleted at the end: only the chief writes the run)."""
    scratch = Path(tempfile.mkdtemp(prefix="dfd-worker-"))
    try:
        _fit_and_predict(cfg, image_size, train_df, val_df, frame, scratch, {}, [], progress, stop_event,
                         strategy, backup=backup, chief=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _keep_run(what: str, work: Callable[[], str], run_dir: Path, root: Path, name: str, record: dict[str, Any],
              bad_files: list[tuple[str, str]], started: str, t0: float,
              before_calibration: Callable[[], None] | None = None) -> Path:
    """Run ``work`` (returns the run's status) so that the run folder is kept whatever happens: closed as
    complete, interrupted (Ctrl-C) or failed (then :class:`TrainError`), and calibrated when complete."""
    status, error = runs.FAILED, None
    try:
        status = work()
    except KeyboardInterrupt:
        status, error = runs.INTERRUPTED, "interrupted (KeyboardInterrupt)"
    except Exception as exc:  # noqa: BLE001 - the run is kept and the error re-raised as TrainError
        status, error = runs.FAILED, f"{type(exc).__name__}: {exc}"
        (run_dir / "traceback.txt").write_text(traceback.format_exc())
    finally:
        final = _close_run(run_dir, root, name, record, status, error, bad_files, started, t0)
    if status == runs.FAILED:
        raise TrainError(f"{what} failed: {error} (run kept at {final})", final)
    if status == runs.COMPLETE:
        if before_calibration is not None:
            before_calibration()
        _calibrate(final)
    return final


def _calibrate(run_dir: Path) -> None:
    """Fit the new run's temperature, threshold and inconclusive band on its val predictions (calibration.json,
    :func:`dfd.evaluate.calibrate`), when it has val predictions of both classes; a run without them keeps
    threshold 0.5 and no band."""
    from dfd import evaluate

    with contextlib.suppress(evaluate.EvaluationError):
        evaluate.calibrate(runs.Run(run_dir))


def _close_run(run_dir: Path, root: Path, name: str, record: dict[str, Any], status: str, error: str | None,
               bad_files: list[tuple[str, str]], started: str, t0: float) -> Path:
    """Write bad_files.csv, the final config.json and status.json, and rename the folder into place."""
    ended = _now()
    seen: dict[str, str] = {}
    for path, reason in bad_files:
        seen.setdefault(path, reason)
    bad = pd.DataFrame(sorted(seen.items()), columns=["path", "reason"])
    runs.write_csv_atomic(run_dir / "bad_files.csv", bad)
    record.update(ended=ended, train_seconds=round(time.perf_counter() - t0, 2), status=status,
                  bad_files=len(bad), bad_file_paths=bad["path"].tolist()[:100])
    if error:
        record["error"] = error
    if "epochs_run" not in record and (run_dir / "history.csv").exists():
        record["epochs_run"] = len(pd.read_csv(run_dir / "history.csv"))
    runs.write_json_atomic(run_dir / "config.json", record)
    runs.write_status(run_dir, status, started=started, ended=ended, error=error,
                      has_model=(run_dir / "model.keras").exists(), epochs_run=record.get("epochs_run"))
    return runs.finalize_run_dir(run_dir, root, name)


def _fit_and_predict(cfg: TrainConfig, image_size: int, train_df: pd.DataFrame, val_df: pd.DataFrame,
                     frame: pd.DataFrame, run_dir: Path, record: dict[str, Any], bad_files: list[tuple[str, str]],
                     progress: Progress | None, stop_event: threading.Event | None,
                     strategy: Any, *, backup: Path | None = None,
                     chief: bool = True) -> tuple[str, dict[str, Any]]:
    import keras
    import tensorflow as tf

    from dfd import evaluate, models
    from dfd.data import Augment, make_dataset

    strat = make_strategy(strategy if strategy is not None else cfg.strategy)  # first: multiworker needs it so
    multi = isinstance(strat, tf.distribute.MultiWorkerMirroredStrategy)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.teacher:
        taught = teachers(cfg, frame)
        _phase(progress, 0, cfg.epochs, "the teachers' P(fake) on the train images")
        soft = teacher_targets(taught, train_df, progress=lambda done, total: _phase(
            progress, 0, cfg.epochs, "the teachers' P(fake) on the train images", done, total, unit="images"),
            temperature=cfg.distill_temperature)
        ok = ~np.isnan(soft)
        record.update(teacher_runs=[{"name": t.name, "path": str(t.path), "seed": t.config.get("seed")}
                                    for t in taught],
                      teacher_agreement=round(float(np.mean((soft[ok] >= 0.5) == train_df["label"].to_numpy()[ok])), 4))
        train_df = train_df.assign(target=np.where(ok, (1 - cfg.distill_weight) * train_df["label"]
                                                   + cfg.distill_weight * np.nan_to_num(soft), train_df["label"]))
    if cfg.balance_classes:
        train_df = balance_classes(train_df, cfg.seed)
    if cfg.balance_datasets:
        train_df = balance_datasets(train_df, cfg.seed)
    train_df = weight_datasets(train_df, cfg.dataset_weights, cfg.seed)
    if cfg.balance_classes or cfg.balance_datasets or cfg.dataset_weights:
        record["balanced_train_images"] = len(train_df)
    replicas = int(strat.num_replicas_in_sync)
    steps = math.ceil(len(train_df) / cfg.batch_size)
    augment = Augment.from_dict(cfg.augment) if cfg.augment is not None else None
    fit_df = train_df.assign(label=train_df["target"]) if "target" in train_df else train_df
    class_weight = _class_weights(train_df["label"].to_numpy()) if cfg.class_weight else None
    fit_kw: dict[str, Any] = {"class_weight": class_weight}
    if multi:
        # Every worker takes every k-th file of the same seeded shuffle of the file list (data sharding
        # before decoding, so no worker decodes another's images) in batches of batch_size / replicas: the
        # global batch is batch_size, as on one machine. Repeated, with a fixed number of steps, so that no
        # worker runs out of batches before the others (an unreadable file is skipped, not waited for).
        steps = max(1, len(train_df) // cfg.batch_size)
        fit_kw = {"steps_per_epoch": steps, "validation_steps": max(1, len(val_df) // cfg.batch_size)}
        weighted = fit_df.assign(weight=fit_df["label"].round().map(class_weight)) if class_weight else fit_df

        def sharded(frame_: pd.DataFrame, shuffle: bool, aug: Any) -> Any:
            def shard(ctx: Any) -> Any:
                return make_dataset(frame_, image_size, ctx.get_per_replica_batch_size(cfg.batch_size),
                                    shuffle=shuffle, augment=aug, seed=cfg.seed, repeat=True, bad_files=bad_files,
                                    shard=(ctx.num_input_pipelines, ctx.input_pipeline_id))
            return strat.distribute_datasets_from_function(shard)

        train_ds, val_ds = sharded(weighted, True, augment), sharded(val_df, False, None)
    else:
        train_ds = make_dataset(fit_df, image_size, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed,
                                bad_files=bad_files)
        val_ds = make_dataset(val_df, image_size, cfg.batch_size, shuffle=False, bad_files=bad_files)

    _phase(progress, 0, cfg.epochs, "building the model")
    with strat.scope():
        extra = {"pretrained": True} if cfg.pretrained else {}
        model = models.build_model(cfg.architecture, image_size, **cfg.arch_kwargs, **extra)
        opt = optimizer(cfg, _learning_rate(cfg, steps), model)
        soft = bool(augment and augment.mixup) or bool(cfg.teacher)  # soft training labels
        model.compile(optimizer=opt, loss=keras.losses.BinaryCrossentropy(),
                      metrics=[_accuracy_metric(soft), _auc_metric(soft)])
    if multi:
        from dfd import distributed

        distributed.fit_multiworker(model, strat)
    record.update(params=int(model.count_params()), replicas=replicas, strategy_class=type(strat).__name__,
                  steps_per_epoch=steps, monitor=cfg.monitor)
    runs.write_json_atomic(run_dir / "config.json", record)

    mode = "min" if cfg.monitor.endswith("loss") else "max"
    # Per-epoch batch-norm re-estimation before validation (not under a distribution strategy, where the
    # eager forward pass would run outside the replicas; the final re-estimation below still applies).
    per_epoch_bn = min(cfg.bn_batches, 20) if not tf.distribute.has_strategy() and replicas == 1 else 0
    bn_ds = make_dataset(train_df, image_size, cfg.batch_size, shuffle=True, seed=cfg.seed + 1)
    callback_class = _callback_class()
    callback = callback_class(run_dir, cfg.epochs, steps, progress, stop_event, bn_ds, per_epoch_bn,
                              math.ceil(len(val_df) / cfg.batch_size), backup=backup)
    checkpoint = run_dir / "model.keras"
    cbs: list[Any] = [  # RunCallback last: progress sees the epoch after the checkpoint is written
        callback_class.Checkpoint(callback, str(checkpoint), monitor=cfg.monitor, mode=mode, save_best_only=True),
        callback_class.EarlyStopping(callback, monitor=cfg.monitor, mode=mode, restore_best_weights=True,
                                     patience=cfg.patience if cfg.patience > 0 else cfg.epochs + 1),
        callback,
    ]
    resumed = None
    if backup is not None:
        # Fault tolerance: the weights, optimizer state and epoch at each epoch's end (kept after the fit:
        # removed below only when training completes), restored by the next start of the same command.
        cbs.insert(0, keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False))
        resumed = _resume_history(backup, callback)
        if resumed is not None:
            record["resumed_from_epoch"] = resumed
            _phase(progress, resumed, cfg.epochs, f"resuming from the backup of epoch {resumed}")
    fit_t0 = time.perf_counter()
    with warnings.catch_warnings():
        # The streamed dataset has unknown length (unreadable files are dropped), which Keras reports
        # as "ran out of data" at each epoch end: expected here, not a problem.
        warnings.filterwarnings("ignore", message=".*ran out of data.*")
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=cbs, verbose=0, **fit_kw)
        except tf.errors.OpError as exc:
            if not multi:
                raise
            done = len(callback.rows)
            raise TrainError(f"lost contact with another worker during epoch {done + 1} ({type(exc).__name__}): "
                             "start every worker again with the same command; training resumes from the "
                             f"backup of epoch {done} in {backup}") from exc
    fit_seconds = time.perf_counter() - fit_t0
    hist = pd.DataFrame(callback.rows)
    summary: dict[str, Any] = {"epochs_run": len(hist), "fit_seconds": round(fit_seconds, 2),
                               "class_weight": class_weight}
    if multi:
        summary["worker_backup"] = str(backup)
    if backup is not None and not callback.stopped:  # complete: nothing to resume
        shutil.rmtree(backup, ignore_errors=True)
        with contextlib.suppress(OSError):
            backup.parent.rmdir()  # the run's folder of backups, once the last worker's is gone
    if not chief:
        return (runs.INTERRUPTED if callback.stopped else runs.COMPLETE), summary
    if len(hist) and cfg.monitor in hist:
        best = hist[cfg.monitor].idxmin() if mode == "min" else hist[cfg.monitor].idxmax()
        summary.update(best_epoch=int(hist.loc[best, "epoch"]), best_score=float(hist.loc[best, cfg.monitor]))
        n_seen = int(len(train_df)) * len(hist)
        summary["train_images_per_second"] = round(n_seen / max(hist["seconds"].sum(), 1e-9), 1)
    if callback.stopped:
        return runs.INTERRUPTED, summary
    if not checkpoint.exists():  # e.g. the monitored metric was never finite: keep the final weights
        model.save(checkpoint)
    # The served model: the best checkpoint, loaded outside any strategy and without optimizer state
    # (smaller file), with batch-norm statistics recomputed for its final weights.
    done_epochs = len(hist)
    _phase(progress, done_epochs, cfg.epochs, "loading the best checkpoint", stage=FINISHING)
    model = keras.saving.load_model(checkpoint, custom_objects=models.custom_objects(), compile=False,
                                    safe_mode=True)
    if cfg.bn_batches > 0:
        # The best checkpoint's batch-norm layers hold running averages from training; a forward pass over
        # training batches replaces them by the exact averages for these weights (see recompute_batchnorm).
        what = "batch-norm statistics of the final model (a pass over training batches)"
        bn_total = min(cfg.bn_batches, steps)
        _phase(progress, done_epochs, cfg.epochs, what, 0, bn_total, stage=FINISHING, unit="batches")
        summary["bn_recomputed_batches"] = recompute_batchnorm(
            model, bn_ds, cfg.bn_batches, progress=lambda done, total: _phase(
                progress, done_epochs, cfg.epochs, what, done, total, stage=FINISHING, unit="batches"))
    model.save(checkpoint)

    # Predict with the best weights (EarlyStopping restored them; the checkpoint holds the same model).
    predict = evaluate.predictor(model, tta=cfg.tta)
    preds, pred_errors = [], {}
    for split in cfg.predict_splits:
        part = frame[frame["split"] == split]
        if part.empty:
            continue
        what = f"predicting the {split} split"
        _phase(progress, done_epochs, cfg.epochs, what, 0, len(part), stage=FINISHING, unit="images")
        pred, errors = evaluate.predict_frame(
            predict, part, image_size, max(cfg.batch_size, 64),
            progress=lambda done, total, what=what: _phase(progress, done_epochs, cfg.epochs, what, done, total,
                                                           stage=FINISHING, unit="images"))
        preds.append(pred)
        pred_errors.update(errors)
        if stop_event is not None and stop_event.is_set():
            return runs.INTERRUPTED, summary
    bad_files.extend(pred_errors.items())
    if preds:
        pred_df = pd.concat(preds, ignore_index=True)
        stored = pred_df.assign(path=runs.relative_paths(pred_df["path"].tolist(), record["data"]))
        runs.write_csv_atomic(run_dir / "predictions.csv", stored)
        runs.write_json_atomic(run_dir / "metrics.json", evaluate.metrics_report(pred_df))
    return runs.COMPLETE, summary


def _resume_history(backup: Path, callback: Any) -> int | None:
    """The epoch a backup restores (None without one); the history rows recorded up to it go back into
    ``callback`` so that the run's history.csv holds every epoch, those before the restart included."""
    meta = backup / "training_metadata.json"
    if not meta.is_file():
        return None
    try:
        epoch = int(json.loads(meta.read_text())["epoch"])
    except (ValueError, KeyError, TypeError):
        return None
    rows = backup / "history.csv"
    if rows.is_file():
        prior = pd.read_csv(rows)
        callback.rows = prior[prior["epoch"] <= epoch].to_dict("records")
    callback._epoch = epoch
    return epoch


def ensemble(members: list[Any], *, name: str = "ensemble", runs_dir: str | Path | None = None,
             batch_size: int = 64, notes: str = "", progress: Callable[[int, int], None] | None = None) -> Path:
    """Average complete runs into one run (a deep ensemble: P(fake) is the mean of the members').

    The members must share their input size, test-time averaging and their val/test images (the same data
    and split: otherwise an image one member was evaluated on could be one another member trained on).
    The new run's ``model.keras`` holds every member (:func:`dfd.models.ensemble`); it predicts the members'
    val and test images again and is calibrated on val, like a trained run; ``progress(done, total)``
    counts the images predicted. No history of its own (nothing
    is trained): each member's config, history and metrics are kept in ``members/<name>/``.
    """
    from dfd import evaluate, models

    chosen = [runs.get_run(m, runs_dir) for m in members]
    if len({r.path.resolve() for r in chosen}) < max(2, len(chosen)):
        raise TrainError("an ensemble needs at least two different runs (each given once)")
    for run in chosen:
        _require_complete(run, "be ensembled")
    first = chosen[0]
    for key, value in (("image_size", lambda r: r.image_size), ("tta", lambda r: r.tta)):
        seen = {r.name: value(r) for r in chosen}
        if len(set(seen.values())) > 1:
            raise TrainError(f"ensemble members differ in {key}: {seen}")

    def held_out(run: runs.Run) -> pd.DataFrame:
        pred = run.predictions()
        return pred[pred["split"].isin(["val", "test"])].sort_values(["split", "path"]).reset_index(drop=True)

    frame = held_out(first)
    if frame.empty:
        raise TrainError(f"run {first.name!r} has no val/test predictions to evaluate the ensemble on")
    for run in chosen[1:]:
        other = held_out(run)
        if not frame[["path", "split"]].equals(other[["path", "split"]]):
            raise TrainError(f"runs {first.name!r} and {run.name!r} were evaluated on different val/test "
                             "images (different data or split): their ensemble could be scored on images a "
                             "member trained on")

    root = Path(runs_dir).expanduser() if runs_dir else runs.user_dir()
    runs.check_writable(root)
    model = models.ensemble([runs.load_model(r) for r in chosen])  # before any folder is made: may fail
    run_name = runs.safe_name(name)
    run_dir = runs.new_run_dir(root, run_name)
    started, t0 = _now(), time.perf_counter()
    cfg = first.config
    record: dict[str, Any] = {
        "architecture": "ensemble",
        "members": [{"name": r.name, "architecture": r.architecture, "seed": r.config.get("seed"),
                     "params": r.config.get("params"), "train_seconds": r.config.get("train_seconds"),
                     "best_epoch": r.config.get("best_epoch"), "arch_kwargs": r.config.get("arch_kwargs"),
                     "notes": r.config.get("notes")} for r in chosen],
        **{k: cfg.get(k) for k in ("data", "image_size", "datasets", "datasets_in_data", "layout",
                                   "data_fingerprint", "split_counts", "val_frac", "test_frac", "tta")},
        "params": int(model.count_params()),
        "train_seconds_members": round(sum(float(r.config.get("train_seconds") or 0) for r in chosen), 2),
        "notes": notes or f"mean P(fake) of {', '.join(r.name for r in chosen)}",
        "started": started, "pid": os.getpid(), "host": platform.node(), "versions": library_versions(),
    }
    bad: list[tuple[str, str]] = []

    def work() -> str:
        runs.write_json_atomic(run_dir / "config.json", record)
        runs.write_status(run_dir, runs.RUNNING, started=started)
        model.save(run_dir / "model.keras")
        for run in chosen:  # the members' records (not their weights, which model.keras holds)
            for file in ("config.json", "history.csv", "metrics.json", "calibration.json"):
                if (run.path / file).is_file():
                    (run_dir / "members" / run.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run.path / file, run_dir / "members" / run.name / file)
        pred, errors = evaluate.predict_frame(evaluate.predictor(model, tta=first.tta), frame, first.image_size,
                                              batch_size, progress=progress)
        bad.extend(errors.items())
        runs.write_csv_atomic(run_dir / "predictions.csv",
                              pred.assign(path=runs.relative_paths(pred["path"].tolist(), cfg.get("data"))))
        runs.write_json_atomic(run_dir / "metrics.json", evaluate.metrics_report(pred))
        return runs.COMPLETE

    return _keep_run("ensemble", work, run_dir, root, run_name, record, bad, started, t0)
