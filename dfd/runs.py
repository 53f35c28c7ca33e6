"""The run store: one folder a training run, read by every page and command, written atomically.

A run folder ``models/<name>/`` holds ``config.json`` (everything to reproduce the run), ``status.json``
(``{"status": "complete"|"interrupted"|"failed", ...}``), ``history.csv`` (one row an epoch), ``model.keras``,
``predictions.csv`` (path,label,p_fake,split,dataset for every evaluated image), ``metrics.json``, and
optionally ``calibration.json`` (temperature, threshold), ``robustness.csv``, ``bad_files.csv`` and
``evals/<tag>/{predictions.csv,metrics.json}`` (the run evaluated on other data).

Writing: a run is built in ``<root>/.tmp-<name>-<pid>/`` and renamed into place when it ends (complete,
interrupted or failed alike); a name already taken becomes ``name2``, ``name3``... so nothing is ever
overwritten. Single files are written to a temporary sibling and ``os.replace``-d. No TensorFlow at import.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dfd import DEFAULT_RUN, MODELS_DIR, SHARED_DATA

if TYPE_CHECKING:
    import keras

COMPLETE, INTERRUPTED, FAILED, RUNNING = "complete", "interrupted", "failed", "running"
PREDICTION_COLUMNS = ["path", "label", "p_fake", "split", "dataset", "generator"]
TMP_PREFIX = ".tmp-"
_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


class RunError(ValueError):
    """A run that does not exist or cannot be read, with a message fit to show a user."""


# ----------------------------------------------------------------------------------------------------------
# Atomic file writing


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """JSON with NaN/inf as null, numpy scalars and paths converted; written atomically."""
    return write_text_atomic(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_csv_atomic(path: str | Path, frame: pd.DataFrame) -> Path:
    return write_text_atomic(path, frame.to_csv(index=False))


def read_json(path: str | Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from exc


# ----------------------------------------------------------------------------------------------------------
# Naming and placing run folders


def safe_name(name: str) -> str:
    """A folder-safe run name: letters, digits, '.', '_', '-' (others become '-'); never empty or hidden."""
    cleaned = _NAME_OK.sub("-", str(name).strip()).strip(".-") or "run"
    return cleaned


def unique_name(root: str | Path, name: str) -> str:
    """``name`` if ``root/name`` is free, else ``name2``, ``name3``, ... (never an existing folder)."""
    root = Path(root)
    base = safe_name(name)
    if not (root / base).exists():
        return base
    i = 2
    while (root / f"{base}{i}").exists():
        i += 1
    return f"{base}{i}"


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create and return the temporary folder ``root/.tmp-<name>-<pid>[-k]`` a run is written into."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = root / f"{TMP_PREFIX}{safe_name(name)}-{os.getpid()}"
    path, k = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def finalize_run_dir(tmp: str | Path, root: str | Path, name: str) -> Path:
    """Rename the temporary run folder to ``root/<unique name>`` and return the final path.

    The folder always holds files, and renaming onto an existing non-empty folder fails, so a run that
    races for the same name moves on to the next free one instead of replacing it.
    """
    tmp, root = Path(tmp), Path(root)
    if not any(tmp.iterdir()):
        (tmp / ".keep").touch()
    for _ in range(1000):
        target = root / unique_name(root, name)
        try:
            os.rename(tmp, target)
            return target
        except OSError:
            if not target.exists():
                raise
    raise RunError(f"could not find a free run name for {name!r} in {root}")


def write_status(run_dir: str | Path, status: str, **extra: Any) -> Path:
    return write_json_atomic(Path(run_dir) / "status.json", {"status": status, **extra})


_TMP_RE = re.compile(rf"^{re.escape(TMP_PREFIX)}(?P<name>.+)-(?P<pid>\d+)(?:-\d+)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(root: str | Path = MODELS_DIR) -> list[Path]:
    """Keep the runs whose process died without closing them (killed, power cut): rename each stale
    ``.tmp-<name>-<pid>`` folder (its process no longer running) to a run marked "interrupted".
    Returns the recovered run folders. Never touches the folders of live processes.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    recovered = []
    for path in sorted(root.iterdir()):
        m = _TMP_RE.match(path.name)
        if not path.is_dir() or not m or _pid_alive(int(m["pid"])):
            continue
        info = read_json(path / "status.json", None) or {}
        if info.get("status") in (None, RUNNING):
            write_status(path, INTERRUPTED, error="the training process ended without closing the run",
                         started=info.get("started"), has_model=(path / "model.keras").exists())
        recovered.append(finalize_run_dir(path, root, m["name"]))
    return recovered


# ----------------------------------------------------------------------------------------------------------
# Reading runs


@dataclass
class Run:
    """One run folder. Reading is lazy; missing optional files give empty results, not errors."""

    path: Path
    _config: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = read_json(self.path / "config.json", {}) or {}
        return self._config

    @property
    def status_info(self) -> dict[str, Any]:
        info = read_json(self.path / "status.json", None)
        if info is None:
            # A folder someone copied in by hand: complete if it has a model.
            return {"status": COMPLETE if self.model_path.exists() else "unknown"}
        return info

    @property
    def status(self) -> str:
        return str(self.status_info.get("status", "unknown"))

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def has_model(self) -> bool:
        return self.model_path.is_file()

    @property
    def architecture(self) -> str | None:
        return self.config.get("architecture")

    @property
    def model_label(self) -> str:
        """The architecture as shown to users: "lowres_cnn", or "ensemble of 2 lowres_cnn" for an ensemble."""
        members = self.config.get("members") or []
        if not members:
            return self.architecture or "?"
        archs = sorted({str(m.get("architecture") or "?") for m in members})
        return f"ensemble of {len(members)} {' + '.join(archs)}"

    @property
    def image_size(self) -> int:
        size = self.config.get("image_size")
        if not size:
            raise RunError(f"run {self.name!r} has no image_size in config.json")
        return int(size)

    def history(self) -> pd.DataFrame:
        return _read_csv(self.path / "history.csv")

    def member_histories(self) -> dict[str, pd.DataFrame]:
        """An ensemble's members' history.csv (kept in ``members/<name>/``), by member name; {} otherwise."""
        names = [str(m.get("name")) for m in self.config.get("members") or []]
        return {n: _read_csv(self.path / "members" / n / "history.csv") for n in names}

    def predictions(self) -> pd.DataFrame:
        """predictions.csv; image paths re-rooted if the data folder has moved (see :meth:`relocate`)."""
        pred = _read_csv(self.path / "predictions.csv", PREDICTION_COLUMNS)
        if len(pred):
            pred["path"] = self.relocate(pred["path"].astype(str).tolist())
        return pred

    def relocate(self, paths: list[str]) -> list[str]:
        """The run's stored image paths, re-rooted when they do not exist: a path under the training data
        folder (config.json ``data``) moves to the same place under $DFD_DATA or ../shared/data beside the
        repository, if the file is there. Paths are returned unchanged otherwise."""
        root = self.config.get("data")
        if not paths or not root or Path(paths[0]).exists():
            return paths
        root = os.path.normpath(root)
        candidates = [Path(os.environ["DFD_DATA"])] if os.environ.get("DFD_DATA") else []
        candidates.append(SHARED_DATA)
        rel = [os.path.relpath(p, root) if os.path.normpath(p).startswith(root + os.sep) else None for p in paths]
        first = next((r for r in rel if r is not None), None)
        for base in candidates:
            if first is not None and (base / first).exists():
                return [str(base / r) if r is not None else p for p, r in zip(paths, rel, strict=True)]
        return paths

    def metrics(self) -> dict[str, Any]:
        return read_json(self.path / "metrics.json", {}) or {}

    def calibration(self) -> dict[str, Any]:
        return read_json(self.path / "calibration.json", {}) or {}

    @property
    def threshold(self) -> float:
        """Decision threshold on (calibrated) P(fake): from calibration.json, else 0.5."""
        value = self.calibration().get("threshold")
        return float(value) if value is not None else 0.5

    @property
    def temperature(self) -> float:
        """Temperature for p = sigmoid(logit(p) / T): from calibration.json, else 1.0."""
        value = self.calibration().get("temperature")
        return float(value) if value else 1.0

    @property
    def tta(self) -> bool:
        """Whether P(fake) averages the image and its mirror image (config.json ``tta``; False if absent)."""
        return bool(self.config.get("tta"))

    def robustness(self) -> pd.DataFrame:
        return _read_csv(self.path / "robustness.csv")

    @property
    def trained_on(self) -> list[str]:
        """The datasets the run was trained on: as recorded in config.json (``datasets_in_data``, else the
        ``datasets`` filter), else those in its own predictions."""
        chosen = self.config.get("datasets_in_data") or self.config.get("datasets")
        if chosen:
            return sorted(chosen)
        pred = self.predictions()
        return sorted(pred["dataset"].dropna().astype(str).unique()) if len(pred) else []

    def cross_dataset(self) -> pd.DataFrame:
        """cross_dataset.csv (dfd.evaluate.cross_dataset): runs x datasets, in- and out-of-domain."""
        return _read_csv(self.path / "cross_dataset.csv")

    def bad_files(self) -> pd.DataFrame:
        return _read_csv(self.path / "bad_files.csv", ["path", "reason"])

    def evals(self) -> list[str]:
        """Tags of the evaluations stored under evals/ (oldest first)."""
        folder = self.path / "evals"
        if not folder.is_dir():
            return []
        tags = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [p.name for p in sorted(tags, key=lambda p: p.stat().st_mtime)]

    def eval_predictions(self, tag: str) -> pd.DataFrame:
        return _read_csv(self.path / "evals" / tag / "predictions.csv", PREDICTION_COLUMNS)

    def eval_metrics(self, tag: str) -> dict[str, Any]:
        return read_json(self.path / "evals" / tag / "metrics.json", {}) or {}

    def summary(self) -> dict[str, Any]:
        """One row for a runs table: name, status, architecture, size, epochs, test metrics, time."""
        cfg, met = self.config, self.metrics()
        test = met.get("test", met)
        return {
            "name": self.name,
            "status": self.status,
            "architecture": cfg.get("architecture"),
            "image_size": cfg.get("image_size"),
            "dataset": Path(str(cfg.get("data", ""))).name or None,
            "epochs_run": cfg.get("epochs_run"),
            "accuracy": test.get("accuracy") if isinstance(test, dict) else None,
            "roc_auc": test.get("roc_auc") if isinstance(test, dict) else None,
            "f1": test.get("f1") if isinstance(test, dict) else None,
            "params": cfg.get("params"),
            "train_seconds": cfg.get("train_seconds"),
            "started": cfg.get("started"),
        }


def _read_csv(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        return pd.DataFrame(columns=columns or [])
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns or [])
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from exc


def _is_run_dir(path: Path) -> bool:
    return (path.is_dir() and not path.name.startswith((".", "_"))
            and any((path / f).exists() for f in ("config.json", "status.json", "model.keras", "predictions.csv")))


def list_runs(root: str | Path = MODELS_DIR) -> list[Run]:
    """Every run folder in ``root`` (temporary folders of runs in progress excluded), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if _is_run_dir(p)]
    return sorted(runs, key=lambda r: (r.path.stat().st_mtime, r.name), reverse=True)


def get_run(name_or_path: str | Path | Run, root: str | Path = MODELS_DIR) -> Run:
    """The run called ``name_or_path`` in ``root``, or at that path. Raises :class:`RunError` if absent."""
    if isinstance(name_or_path, Run):
        return name_or_path
    text = str(name_or_path)
    candidates = [Path(root) / text]
    if os.sep in text or "/" in text or Path(text).is_absolute():
        candidates.insert(0, Path(text).expanduser())
    for path in candidates:
        if _is_run_dir(path):
            return Run(path)
    names = ", ".join(r.name for r in list_runs(root)) or "none"
    raise RunError(f"no run {text!r} in {root} (runs: {names})")


def default_run(root: str | Path = MODELS_DIR) -> Run:
    """The shipped detector (``models/default``)."""
    return get_run(DEFAULT_RUN, root)


def load_model(run: Run | str | Path, root: str | Path = MODELS_DIR) -> keras.Model:
    """Load the run's ``model.keras`` with ``safe_mode=True`` (dfd's custom layers registered first)."""
    run = get_run(run, root)
    if not run.has_model:
        raise RunError(f"run {run.name!r} has no model.keras (status: {run.status})")
    import keras

    from dfd import models

    try:
        return keras.saving.load_model(run.model_path, custom_objects=models.custom_objects(), compile=False,
                                       safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
        raise RunError(f"cannot load the model of run {run.name!r}: {type(exc).__name__}: {exc}") from exc


def delete_run(run: Run | str | Path, root: str | Path = MODELS_DIR) -> None:
    """Remove a run folder (used by the app's "delete run" button; never called implicitly)."""
    run = get_run(run, root)
    shutil.rmtree(run.path)
