"""The run store: where runs and their evaluation records live, how they are read, written and named.

Two folders hold runs, and a run name means the same run everywhere (the app's Run picker, ``python -m dfd``):

- **Shipped runs**: ``models/`` in the repository (``$DFD_MODELS_DIR`` moves it), e.g. ``models/default``,
  the detector the app serves. **Read-only to every dfd command and page**: :func:`check_writable` refuses
  any write below it, and every writer here calls it.
- **User runs**: ``runs/`` in the repository, git-ignored (``$DFD_RUNS_DIR`` moves it; an installed package
  without a repository uses ``~/.local/share/dfd/runs``). ``train``, ``ensemble``, ``calibrate`` of a shipped
  run, ``evaluate``, ``robustness``, ``cross-dataset`` and ``export`` write here, and nowhere else.

Names: :func:`list_runs` lists the user runs (newest first) and then the shipped ones. A name resolves to
the shipped run of that name if there is one, else to the user run: shadowing is made impossible for runs
dfd creates (a new run never takes a shipped run's name: ``default`` becomes ``default2``), and a user folder
with a shipped run's name made by hand is hidden and reported by :func:`shadowed_runs`. A run can always be
given as a folder path instead of a name.

A run folder ``<name>/`` holds ``config.json`` (everything to reproduce the run), ``status.json``
(``{"status": "complete"|"interrupted"|"failed", ...}``), ``history.csv`` (one row an epoch), ``model.keras``,
``predictions.csv`` (path,label,p_fake,split,dataset for every evaluated image), ``metrics.json`` (at 0.5,
from predictions.csv), ``bad_files.csv`` and ``calibration.json`` (temperature, threshold: the served
threshold; ``band_lo``, ``band_hi``: the inconclusive band, :attr:`Run.band`). A shipped run may also hold its own evidence files, copied in when it was shipped:
``robustness.csv``, ``robustness_by_dataset.csv``, ``robustness.json`` (from ``python -m dfd robustness``)
``cross_dataset.csv`` (from ``python -m dfd cross-dataset``) and ``sizes.csv`` (from ``python -m dfd sizes``).
:data:`EVIDENCE_FILES` names every file a command writes.

Evaluation records: evaluating a run never changes its folder. Each ``evaluate``, ``robustness``,
``cross-dataset`` or ``sizes`` of run ``<run>`` (shipped or not) is a new folder ::

    <user runs>/_evals/<run>/<kind>/<tag>/     kind: evaluate | robustness | cross-dataset | sizes
        record.json                            what made it: kind, run, data, split, limit, threshold, when
        predictions.csv, metrics.json, errors.csv            (evaluate)
        robustness.csv, robustness_by_dataset.csv, robustness.json   (robustness)
        cross_dataset.csv                                    (cross-dataset)
        sizes.csv                                            (sizes)

``<tag>`` defaults to ``<datasets>-<split>`` (:func:`dfd.evaluate.default_tag`) and is never reused (``tag2``,
``tag3``...). Exports go to ``<user runs>/_exports/<run>/`` unless ``--out`` says otherwise. :meth:`Run.records` lists a run's evidence
of one kind: its own files (``Record.own``: in the run folder) first, then the records, oldest first, so a
page or command can say which is which. ``_evals`` and ``_exports`` are never runs (names starting with
"_" are not run names).

Image paths in predictions.csv are stored relative to the data folder the run (or evaluation) was made
on (``config.json`` ``data``, ``record.json`` ``data``), so they resolve from any working directory and
after the data moves: :func:`resolve_paths` looks under that folder, then ``$DFD_DATA``, then
``../shared/data`` beside the repository (also by the dataset's name), and understands the older formats
(absolute paths, paths relative to the repository).

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dfd import DEFAULT_RUN, MODELS_DIR, REPO_ROOT, SHARED_DATA

if TYPE_CHECKING:
    import keras

COMPLETE, INTERRUPTED, FAILED, RUNNING = "complete", "interrupted", "failed", "running"
PREDICTION_COLUMNS = ["path", "label", "p_fake", "split", "dataset", "generator", "source"]
TMP_PREFIX = ".tmp-"
EVALS_DIR, EXPORTS_DIR = "_evals", "_exports"
RECORD_KINDS = ("evaluate", "robustness", "cross-dataset", "sizes")
# Every file a dfd command writes into a run folder or an evaluation record, by the command that writes it.
EVIDENCE_FILES: dict[str, tuple[str, ...]] = {
    "train": ("config.json", "status.json", "history.csv", "model.keras", "predictions.csv", "metrics.json",
              "bad_files.csv", "calibration.json"),
    "ensemble": ("config.json", "status.json", "model.keras", "predictions.csv", "metrics.json", "bad_files.csv",
                 "calibration.json"),
    "calibrate": ("calibration.json",),
    "evaluate": ("record.json", "predictions.csv", "metrics.json", "errors.csv"),
    "robustness": ("record.json", "robustness.csv", "robustness_by_dataset.csv", "robustness.json"),
    "cross-dataset": ("record.json", "cross_dataset.csv"),
    "sizes": ("record.json", "sizes.csv"),
    "export": ("model_float32.tflite", "model_int8.tflite", "export.json"),
    "card --compare RUN... --csv runs_compared.csv": ("runs_compared.csv",),
    "bench/tflite.py RUN --record DIR": ("tflite.json",),
}
# The evidence a shipped run may carry in its own folder (copied from a record when the run was shipped).
OWN_EVIDENCE = {"robustness": "robustness.csv", "cross-dataset": "cross_dataset.csv", "sizes": "sizes.csv"}
_NAME_OK = re.compile(r"[^A-Za-z0-9._+-]+")


class RunError(ValueError):
    """A run that does not exist or cannot be read, with a message fit to show a user."""


# ----------------------------------------------------------------------------------------------------------
# Where runs live


def shipped_dir() -> Path:
    """The shipped runs' folder (read-only): ``$DFD_MODELS_DIR``, else the repository's ``models/``."""
    env = os.environ.get("DFD_MODELS_DIR")
    return Path(env).expanduser() if env else MODELS_DIR


def user_dir() -> Path:
    """The user's runs folder: ``$DFD_RUNS_DIR``, else ``runs/`` in the repository (git-ignored), else (an
    installed package, no repository) ``$XDG_DATA_HOME/dfd/runs`` (``~/.local/share/dfd/runs``)."""
    env = os.environ.get("DFD_RUNS_DIR")
    if env:
        return Path(env).expanduser()
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "runs"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "dfd" / "runs"


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is the shipped runs' folder or inside it."""
    target, shipped = _resolved(path), _resolved(shipped_dir())
    for a, b in ((target, shipped), (target.resolve(), shipped.resolve())):
        if a == b or b in a.parents:
            return True
    return False


def check_writable(path: str | Path) -> Path:
    """``path``, or :class:`RunError` if it lies in the shipped runs' folder, which no dfd command writes."""
    if is_shipped(path):
        raise RunError(f"{path} is in the shipped runs folder {shipped_dir()}, which dfd commands never write; "
                       f"new runs and evaluation records go to {user_dir()} (set $DFD_RUNS_DIR or --runs-dir "
                       "to choose another folder)")
    return Path(path)


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
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Refuses (:class:`RunError`) a path in the shipped runs' folder."""
    path = check_writable(path)
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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------------------
# Image paths in predictions.csv


def _data_base(data_root: str | Path) -> Path:
    """The folder image paths are stored relative to: the data folder, or the folder of a CSV manifest."""
    base = _resolved(data_root)
    return base.parent if base.suffix.lower() == ".csv" or base.is_file() else base


def split_seed_of(config: dict[str, Any]) -> int:
    """Seed of the split of datasets without their own that a run's config.json records (``split_seed``; runs
    recorded before it existed split by their ``seed``)."""
    return int(config.get("split_seed", config.get("seed") or 0))


def relative_paths(paths: Sequence[str], data_root: str | Path | None) -> list[str]:
    """Image paths as stored in predictions.csv: relative to ``data_root`` (POSIX separators) where they lie
    below it, absolute otherwise."""
    if not data_root:
        return [str(p) for p in paths]
    base = str(_data_base(data_root))
    out = []
    for p in paths:
        full = os.path.abspath(str(p))
        out.append(Path(os.path.relpath(full, base)).as_posix() if full.startswith(base + os.sep) else str(p))
    return out


def _tails(path: str, root: Path | None, dataset: str | None) -> list[str]:
    """Ways to re-root a stored path that was not found: relative to the old data folder, and from the
    dataset's own folder (named like the dataset) down."""
    if os.path.isabs(path):
        fulls = [path]
    else:  # relative to the data folder (now), or to the repository (the first format)
        fulls = ([str(root / path)] if root else []) + [os.path.normpath(REPO_ROOT / path)]
    tails: list[str] = []
    for full in fulls:
        if root is not None and full.startswith(str(root) + os.sep):
            tails.append(os.path.relpath(full, root))
        parts = Path(full).parts
        if dataset and dataset in parts[:-1]:
            i = len(parts) - 1 - parts[::-1].index(dataset)
            tails.append(str(Path(*parts[i:])))
    return list(dict.fromkeys(tails))


def resolve_paths(paths: Sequence[str], data_root: str | Path | None = None,
                  datasets: Sequence[Any] | None = None) -> list[str]:
    """Absolute paths for image paths stored in a predictions.csv, found from any working directory.

    A relative path is looked up under ``data_root`` (the folder the predictions were made on), then
    ``$DFD_DATA``, then ``../shared/data`` beside the repository, then (the first format) relative to the
    repository. A path that does not exist there (the data moved) is re-rooted under ``$DFD_DATA`` and
    ``../shared/data``: relative to the old data folder, or from the folder named like its dataset down.
    A path found nowhere comes back as its first candidate (absolute), so messages show a useful path.
    """
    root = _data_base(data_root) if data_root else None
    elsewhere = ([_resolved(os.environ["DFD_DATA"])] if os.environ.get("DFD_DATA") else []) + [SHARED_DATA]
    bases = ([root] if root else []) + elsewhere
    names = list(datasets) if datasets is not None else [None] * len(paths)
    out: list[str] = []
    for p, ds in zip(paths, names, strict=True):
        p = str(p)
        first = [Path(p)] if os.path.isabs(p) else [b / p for b in bases] + [REPO_ROOT / p]
        found = next((c for c in first if c.exists()), None)
        if found is None:
            tails = _tails(p, root, ds if isinstance(ds, str) and ds else None)
            found = next((c for c in (b / t for t in tails for b in elsewhere) if c.exists()), None)
        out.append(os.path.normpath(found if found is not None else first[0]))
    return out


# ----------------------------------------------------------------------------------------------------------
# Naming and placing run folders


def safe_name(name: str) -> str:
    """A folder-safe run name: letters, digits, '.', '_', '-', '+' (others become '-'); never empty, hidden or
    starting with '_' (reserved for the store's own folders)."""
    cleaned = _NAME_OK.sub("-", str(name).strip()).strip(".-").lstrip("_") or "run"
    return cleaned


def _taken(root: Path, name: str, run: bool) -> bool:
    if (root / name).exists():
        return True
    if not run:
        return False
    # A run name is unique across both folders, and never inherits another (deleted) run's records.
    return _is_run_dir(shipped_dir() / name) or (root / EVALS_DIR / name).exists()


def unique_name(root: str | Path, name: str, *, run: bool = True) -> str:
    """``name`` if free, else ``name2``, ``name3``, ... Free: no folder ``root/name``; for a run (``run``) also
    no shipped run of that name and no evaluation records left under that name."""
    root = Path(root)
    base = safe_name(name)
    if not _taken(root, base, run):
        return base
    i = 2
    while _taken(root, f"{base}{i}", run):
        i += 1
    return f"{base}{i}"


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create and return the temporary folder ``root/.tmp-<name>-<pid>[-k]`` a run is written into."""
    root = check_writable(root)
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


def finalize_run_dir(tmp: str | Path, root: str | Path, name: str, *, run: bool = True) -> Path:
    """Rename the temporary run folder to ``root/<unique name>`` and return the final path.

    The folder always holds files, and renaming onto an existing non-empty folder fails, so a run that
    races for the same name moves on to the next free one instead of replacing it. ``run=False`` for an
    evaluation record (its tag need not differ from run names).
    """
    tmp, root = Path(tmp), check_writable(root)
    if not any(tmp.iterdir()):
        (tmp / ".keep").touch()
    for _ in range(1000):
        target = root / unique_name(root, name, run=run)
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


def recover_stale(root: str | Path | None = None) -> list[Path]:
    """Keep the runs whose process died without closing them (killed, power cut): rename each stale
    ``.tmp-<name>-<pid>`` folder (its process no longer running) to a run marked "interrupted".
    Returns the recovered run folders. Never touches the folders of live processes, nor shipped runs.
    """
    root = Path(root) if root is not None else user_dir()
    if not root.is_dir() or is_shipped(root):
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
# Evaluation records


@dataclass
class Record:
    """One piece of a run's evidence: its own files (``own``: in the run folder, e.g. a shipped run's
    robustness.csv) or an evaluation record (a folder under ``<user runs>/_evals/<run>/<kind>/``)."""

    kind: str
    path: Path
    own: bool

    @property
    def name(self) -> str:
        """"run folder" for the run's own files, else the record's tag."""
        return "run folder" if self.own else self.path.name

    @property
    def info(self) -> dict[str, Any]:
        """record.json (for the run's own files: robustness.json's or metrics.json's source, if any)."""
        info = read_json(self.path / "record.json", None)
        if info is None and self.kind == "robustness":
            info = read_json(self.path / "robustness.json", None)
        if info is None and self.kind == "evaluate":
            info = (read_json(self.path / "metrics.json", {}) or {}).get("source")
        return info if isinstance(info, dict) else {}

    @property
    def label(self) -> str:
        """Where the numbers come from, for a page or a command to print."""
        if self.own:
            return f"the run's own file in {self.path}"
        info = self.info
        made = f", made {info['created']}" if info.get("created") else ""
        return f"evaluation record {self.path}{made}"

    def csv(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return _read_csv(self.path / name, columns)

    def predictions(self) -> pd.DataFrame:
        """An evaluate record's predictions.csv, its image paths resolved (see :func:`resolve_paths`)."""
        pred = self.csv("predictions.csv", PREDICTION_COLUMNS)
        if len(pred):
            data = self.info.get("data")
            pred["path"] = resolve_paths(pred["path"].astype(str).tolist(), data,
                                         pred["dataset"].tolist() if "dataset" in pred else None)
        return pred


# ----------------------------------------------------------------------------------------------------------
# Reading runs


@dataclass
class Run:
    """One run folder. Reading is lazy; missing optional files give empty results, not errors.

    ``records_root`` is the user runs folder whose ``_evals/`` holds this run's evaluation records
    (default: the folder holding the run, or :func:`user_dir` for a shipped run)."""

    path: Path
    _config: dict[str, Any] | None = field(default=None, repr=False)
    records_root: Path | None = field(default=None, repr=False)
    _band_cache: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def shipped(self) -> bool:
        """A shipped run (in ``models/``): read-only; its evaluations go to the user runs folder."""
        return is_shipped(self.path)

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

    def predictions(self, resolve: bool = True) -> pd.DataFrame:
        """predictions.csv with absolute image paths, found from any working directory and after the data
        moved (:func:`resolve_paths` against config.json's ``data``); ``resolve=False``: paths as stored."""
        pred = _read_csv(self.path / "predictions.csv", PREDICTION_COLUMNS)
        if len(pred) and resolve:
            pred["path"] = self.relocate(pred["path"].astype(str).tolist(),
                                         pred["dataset"].tolist() if "dataset" in pred else None)
        return pred

    def relocate(self, paths: list[str], datasets: Sequence[str] | None = None) -> list[str]:
        """The run's stored image paths as absolute paths that exist where possible (:func:`resolve_paths`
        against the run's training data folder, config.json ``data``)."""
        return resolve_paths(paths, self.config.get("data"), datasets)

    def metrics(self) -> dict[str, Any]:
        return read_json(self.path / "metrics.json", {}) or {}

    def calibration(self) -> dict[str, Any]:
        return read_json(self.path / "calibration.json", {}) or {}

    @property
    def threshold(self) -> float:
        """The served decision threshold on (calibrated) P(fake): from calibration.json, else 0.5."""
        value = self.calibration().get("threshold")
        return float(value) if value is not None else 0.5

    @property
    def band(self) -> tuple[float, float] | None:
        """The inconclusive band [lo, hi) on served P(fake) (:func:`dfd.evaluate.fit_band`): calibration.json's
        ``band_lo``/``band_hi``; for a run calibrated before bands existed (calibration.json without them, e.g.
        the shipped default), fitted the same way on its own predictions.csv when read (nothing is written);
        None for a run with no calibration or no band."""
        return self._band()[0]

    @property
    def band_source(self) -> str | None:
        """Where :attr:`band` comes from, in words; None without a band."""
        return self._band()[1]

    def _band(self) -> tuple[tuple[float, float] | None, str | None]:
        stamp = tuple(file_stamp(self.path / f) for f in ("calibration.json", "predictions.csv"))
        if self._band_cache is not None and self._band_cache[0] == stamp:
            return self._band_cache[1]
        cal = self.calibration()
        found: tuple[tuple[float, float] | None, str | None] = (None, None)
        if cal.get("band_lo") is not None and cal.get("band_hi") is not None:
            lo, hi = float(cal["band_lo"]), float(cal["band_hi"])
            if lo < hi:
                found = ((lo, hi), "calibration.json")
        elif cal:
            from dfd import evaluate

            band = evaluate.run_band(self)
            if band is not None:
                found = (band, f"fitted on the run's {cal.get('fitted_on') or 'val'} predictions when loaded "
                               "(its calibration.json predates bands)")
        self._band_cache = (stamp, found)
        return found

    @property
    def temperature(self) -> float:
        """Temperature for p = sigmoid(logit(p) / T): from calibration.json, else 1.0."""
        value = self.calibration().get("temperature")
        return float(value) if value else 1.0

    @property
    def tta(self) -> bool:
        """Whether P(fake) averages the image and its mirror image (config.json ``tta``; False if absent)."""
        return bool(self.config.get("tta"))

    @property
    def split_seed(self) -> int:
        """Seed of the split of datasets without their own (:func:`split_seed_of`)."""
        return split_seed_of(self.config)

    @property
    def trained_on(self) -> list[str]:
        """The datasets the run was trained on: as recorded in config.json (``datasets_in_data``, else the
        ``datasets`` filter), else those in its own predictions."""
        chosen = self.config.get("datasets_in_data") or self.config.get("datasets")
        if chosen:
            return sorted(chosen)
        pred = _read_csv(self.path / "predictions.csv", PREDICTION_COLUMNS)
        return sorted(pred["dataset"].dropna().astype(str).unique()) if len(pred) else []

    def bad_files(self) -> pd.DataFrame:
        return _read_csv(self.path / "bad_files.csv", ["path", "reason"])

    # -- evidence: the run's own files and the evaluation records --------------------------------------

    @property
    def records_dir(self) -> Path:
        """``<user runs>/_evals/<run name>``: where evaluations of this run are recorded."""
        root = self.records_root or (user_dir() if self.shipped else self.path.parent)
        return Path(root) / EVALS_DIR / self.name

    def records(self, kind: str) -> list[Record]:
        """The run's evidence of ``kind`` (evaluate, robustness, cross-dataset): its own files first (a
        shipped run's robustness.csv / cross_dataset.csv, or the evals/<tag>/ folders of runs made before
        records existed), then its evaluation records, oldest first."""
        if kind not in RECORD_KINDS:
            raise RunError(f"unknown evidence kind {kind!r}; one of {', '.join(RECORD_KINDS)}")
        own: list[Record] = []
        if kind in OWN_EVIDENCE and (self.path / OWN_EVIDENCE[kind]).is_file():
            own.append(Record(kind, self.path, True))
        if kind == "evaluate":
            own += [Record(kind, p, True) for p in _subfolders(self.path / "evals")]
        return own + [Record(kind, p, False) for p in _subfolders(self.records_dir / kind)]

    def robustness(self) -> pd.DataFrame:
        """The newest robustness table (a record if there is one, else the run's own robustness.csv)."""
        found = self.records("robustness")
        return found[-1].csv("robustness.csv") if found else pd.DataFrame()

    def sizes(self) -> pd.DataFrame:
        """The newest size sweep (dfd.evaluate.size_sweep; a record if there is one, else the run's sizes.csv)."""
        found = self.records("sizes")
        return found[-1].csv("sizes.csv") if found else pd.DataFrame()

    def cross_dataset(self) -> pd.DataFrame:
        """The newest cross-dataset table (dfd.evaluate.cross_dataset): runs x datasets, in/out of domain."""
        found = self.records("cross-dataset")
        return found[-1].csv("cross_dataset.csv") if found else pd.DataFrame()

    def runs_compared(self) -> pd.DataFrame:
        """runs_compared.csv: the runs compared when this one was chosen (``python -m dfd card --compare``)."""
        return _read_csv(self.path / "runs_compared.csv")

    def evals(self) -> list[str]:
        """Tags of the run's evaluations on other data (records of kind "evaluate"), oldest first."""
        return [r.path.name for r in self.records("evaluate")]

    def _eval(self, tag: str) -> Record:
        found = [r for r in self.records("evaluate") if r.path.name == tag]
        if not found:
            raise RunError(f"run {self.name!r} has no evaluation {tag!r} (has: {', '.join(self.evals()) or 'none'})")
        return found[-1]

    def eval_record(self, tag: str) -> Record:
        return self._eval(tag)

    def eval_predictions(self, tag: str) -> pd.DataFrame:
        return self._eval(tag).predictions()

    def eval_metrics(self, tag: str) -> dict[str, Any]:
        return read_json(self._eval(tag).path / "metrics.json", {}) or {}

    def summary(self) -> dict[str, Any]:
        """Key facts of the run from config.json (metrics: see :func:`dfd.tables.runs_table`)."""
        cfg = self.config
        return {
            "name": self.name,
            "status": self.status,
            "shipped": self.shipped,
            "architecture": cfg.get("architecture"),
            "image_size": cfg.get("image_size"),
            "datasets": " + ".join(self.trained_on) or None,
            "epochs_run": cfg.get("epochs_run"),
            "params": cfg.get("params"),
            "train_seconds": cfg.get("train_seconds"),
            "started": cfg.get("started"),
        }


def file_stamp(path: Path) -> tuple[int, int]:
    """(mtime in ns, size) of a file, (0, -1) when it is missing: changes whenever the file is rewritten."""
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return 0, -1


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def new_record_dir(run: Run, kind: str) -> Path:
    """A temporary folder for a new evaluation record of ``run`` (finish it with :func:`finalize_record`)."""
    if kind not in RECORD_KINDS:
        raise RunError(f"unknown record kind {kind!r}")
    return new_run_dir(run.records_dir / kind, kind)


def finalize_record(tmp: Path, run: Run, kind: str, tag: str, info: dict[str, Any]) -> Path:
    """Write record.json (``info`` plus kind, run, when) into ``tmp`` and rename it to a new, never reused
    ``<user runs>/_evals/<run>/<kind>/<tag>`` folder; returns that folder."""
    write_json_atomic(tmp / "record.json", {"kind": kind, "run": run.name, "run_path": str(run.path),
                                            "shipped_run": run.shipped, "created": now(), **info})
    return finalize_run_dir(tmp, run.records_dir / kind, tag, run=False)


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


def _runs_in(root: Path, records_root: Path) -> list[Run]:
    if not root.is_dir():
        return []
    runs = [Run(p, records_root=records_root) for p in root.iterdir() if _is_run_dir(p)]
    return sorted(runs, key=lambda r: (r.path.stat().st_mtime, r.name), reverse=True)


def list_runs(root: str | Path | None = None) -> list[Run]:
    """Every run: the user runs in ``root`` (default :func:`user_dir`), newest first, then the shipped runs
    (:func:`shipped_dir`). A user run with a shipped run's name is left out (see :func:`shadowed_runs`);
    temporary folders of runs in progress are never runs."""
    user = Path(root) if root is not None else user_dir()
    shipped = _runs_in(shipped_dir(), user)
    if _resolved(user) == _resolved(shipped_dir()):
        return shipped
    names = {r.name for r in shipped}
    return [r for r in _runs_in(user, user) if r.name not in names] + shipped


def shadowed_runs(root: str | Path | None = None) -> list[Path]:
    """User run folders hidden by a shipped run of the same name (only made by hand: dfd never names a run
    like a shipped one). Reach them by their folder path, or rename them."""
    user = Path(root) if root is not None else user_dir()
    if _resolved(user) == _resolved(shipped_dir()):
        return []
    return [user / r.name for r in _runs_in(shipped_dir(), user) if _is_run_dir(user / r.name)]


def get_run(name_or_path: str | Path | Run, root: str | Path | None = None) -> Run:
    """The run called ``name_or_path`` (the shipped run of that name, else the user run in ``root``, default
    :func:`user_dir`), or the run folder at that path. Raises :class:`RunError` if absent."""
    if isinstance(name_or_path, Run):
        return name_or_path
    user = Path(root) if root is not None else user_dir()
    text = str(name_or_path)
    candidates = [shipped_dir() / text, user / text]
    by_path = os.sep in text or "/" in text or Path(text).is_absolute()
    if by_path:
        candidates = [Path(text).expanduser()]
    for path in candidates:
        if _is_run_dir(path):
            # records of a run given by its path go beside it (a shipped run's: to the user runs folder)
            return Run(path, records_root=None if by_path and root is None else user)
    names = ", ".join(r.name for r in list_runs(user)) or "none"
    raise RunError(f"no run {text!r} in {user} or {shipped_dir()} (runs: {names})")


def default_run() -> Run:
    """The shipped detector (``models/default``)."""
    return get_run(DEFAULT_RUN)


def load_model(run: Run | str | Path, root: str | Path | None = None) -> keras.Model:
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


# Files a run's copy leaves out: evidence measured on the original (at its calibration), and exports.
_NOT_COPIED = ("robustness.csv", "robustness_by_dataset.csv", "robustness.json", "cross_dataset.csv", "sizes.csv",
               "evals", "tflite.json", "runs_compared.csv",
               "model_float32.tflite", "model_int8.tflite", "export.json")


def copy_run(run: Run, name: str, root: str | Path | None = None,
             config: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Start a user run that is a copy of ``run`` (model, config, history, predictions; not its evidence):
    returns (temporary folder, user runs folder). ``config`` entries are added to the copy's config.json.
    Finish it with :func:`finalize_run_dir`. Used to calibrate a shipped run without touching it."""
    root = Path(root) if root is not None else user_dir()
    tmp = new_run_dir(root, name)
    for item in run.path.iterdir():
        if item.name in _NOT_COPIED or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
        else:
            shutil.copy2(item, tmp / item.name)
    record = {**run.config, **(config or {}), "copied_from": str(run.path), "copied": now()}
    write_json_atomic(tmp / "config.json", record)
    return tmp, root


def delete_run(run: Run | str | Path, root: str | Path | None = None) -> None:
    """Remove a user run folder and its evaluation records (the app's "delete run" button; never called
    implicitly). Shipped runs are refused."""
    run = get_run(run, root)
    check_writable(run.path)
    shutil.rmtree(run.path)
    shutil.rmtree(run.records_dir, ignore_errors=True)
