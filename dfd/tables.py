"""Tables of runs for people to read: the run table, the evaluations table and the config diff.

One function builds each table for every caller (the Compare page, ``python -m dfd runs``), so the app and
the command line show the same numbers. Accuracy and F1 are always at each run's **served threshold**
(calibration.json's threshold after its temperature, else 0.5: :attr:`dfd.runs.Run.threshold`), computed
from the predictions (never metrics.json, which is at 0.5), and each table carries that threshold in a
``threshold`` column. Datasets are named by their index name (e.g. ``faces-140k-mini``). Missing numbers are
NaN and missing text is ``"-"`` (:data:`MISSING`), never ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dfd import runs as store
from dfd.evaluate import apply_temperature, metrics

MISSING = "-"
RUN_COLUMNS = ["run", "kind", "status", "model", "params", "datasets", "image size", "epochs", "early stopping",
               "threshold", "val acc", "val AUC", "test data", "test images", "test acc", "test AUC", "test F1",
               "train time (s)", "started"]
EVAL_COLUMNS = ["run", "evaluated on", "split", "source", "images", "threshold", "accuracy", "ROC AUC"]
THRESHOLD_NOTE = ("Accuracy and F1 at each run's served threshold (the threshold column: calibration.json's, "
                  "after its temperature, else 0.5), computed from its predictions.")
# config.json keys that say when or where a run was made, not how: left out of the diff.
IGNORED_CONFIG_KEYS = ("started", "ended", "pid", "host", "train_seconds", "bad_file_paths", "error", "runs_dir",
                       "fit_seconds", "train_images_per_second", "copied", "copied_from", "status")


def served(run: store.Run, pred: pd.DataFrame) -> pd.DataFrame:
    """``pred`` with P(fake) as the run serves it (after its temperature)."""
    if pred.empty or run.temperature == 1.0:
        return pred
    return pred.assign(p_fake=apply_temperature(pd.to_numeric(pred["p_fake"], errors="coerce").to_numpy(),
                                                run.temperature))


def served_metrics(run: store.Run, pred: pd.DataFrame) -> dict[str, Any]:
    """:func:`dfd.evaluate.metrics` of ``pred`` as the run serves it: temperature, then its threshold."""
    return metrics(served(run, pred), run.threshold)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return MISSING
    text = str(value).strip()
    return text or MISSING


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out if np.isfinite(out) else float("nan")


def early_stopping(config: dict[str, Any]) -> str:
    """The monitored metric and its best value together, e.g. "val_auc 0.9761 (epoch 14)", or "-"."""
    monitor, score = config.get("monitor"), config.get("best_score")
    if not monitor or score is None:
        return MISSING
    epoch = config.get("best_epoch")
    return f"{monitor} {float(score):.4f}" + (f" (epoch {epoch})" if epoch is not None else "")


def _datasets(pred: pd.DataFrame) -> list[str]:
    return sorted({str(d) for d in pred["dataset"].dropna() if str(d).strip()}) if "dataset" in pred else []


def test_sets(runs: Sequence[store.Run]) -> dict[str, str]:
    """The test set each run was scored on, as a label to group runs by: its test split's datasets and number of
    images (e.g. "demo-v1 (90 images)"). Runs scored on different images get different labels even where
    those agree (", set 2"); a run without test predictions gets "no test predictions". Images are told apart by
    dataset, file name and label (paths are stored relative to differing data folders)."""
    labels: dict[str, str] = {}
    seen: dict[str, list[frozenset]] = {}
    for run in runs:
        pred = run.predictions(resolve=False)
        test = pred[pred["split"].astype(str) == "test"] if len(pred) and "split" in pred else pred.iloc[0:0]
        if test.empty:
            labels[run.name] = "no test predictions"
            continue
        n = len(test)
        label = f"{' + '.join(_datasets(test)) or MISSING} ({n:,} image{'' if n == 1 else 's'})"
        names = test["path"].astype(str).str.replace("\\", "/").str.rsplit("/", n=1).str[-1]
        key = frozenset(zip(test.get("dataset", pd.Series("", index=test.index)).astype(str), names,
                            test["label"].astype(int), strict=True))
        keys = seen.setdefault(label, [])
        if key not in keys:
            keys.append(key)
        k = keys.index(key)
        labels[run.name] = label if k == 0 else f"{label}, set {k + 1}"
    return labels


def run_row(run: store.Run) -> dict[str, Any]:
    """One row of :func:`runs_table`."""
    cfg = run.config
    pred = run.predictions(resolve=False)
    split = pred["split"].astype(str) if "split" in pred else pd.Series(dtype=str)
    val = served_metrics(run, pred[split == "val"]) if len(pred) else {}
    test = served_metrics(run, pred[split == "test"]) if len(pred) else {}
    epochs = cfg.get("epochs_run")
    if epochs is None:
        members = cfg.get("members")
        epochs = None if members else (len(run.history()) or None)
    return {
        "run": run.name, "kind": "shipped" if run.shipped else "user", "status": run.status,
        "model": run.model_label, "params": _num(cfg.get("params")),
        "datasets": _text(" + ".join(run.trained_on)), "image size": _num(cfg.get("image_size")),
        "epochs": _num(epochs), "early stopping": early_stopping(cfg), "threshold": run.threshold,
        "val acc": _num(val.get("accuracy")), "val AUC": _num(val.get("roc_auc")),
        "test data": _text(" + ".join(_datasets(pred[split == "test"])) if len(pred) else None),
        "test images": _num(test.get("n")) if test.get("n") else float("nan"),
        "test acc": _num(test.get("accuracy")), "test AUC": _num(test.get("roc_auc")),
        "test F1": _num(test.get("f1")), "train time (s)": _num(cfg.get("train_seconds")),
        "started": _text(cfg.get("started")),
    }


def runs_table(runs: Sequence[store.Run]) -> pd.DataFrame:
    """One row a run, for the Compare page and ``python -m dfd runs``: kind (shipped or user), status, model,
    datasets it was trained on, early stopping (monitor and best score), the served threshold, and val and
    test accuracy / ROC AUC / F1 at that threshold from predictions.csv (see :data:`THRESHOLD_NOTE`)."""
    return pd.DataFrame([run_row(r) for r in runs], columns=RUN_COLUMNS)


def _eval_rows(run: store.Run, pred: pd.DataFrame, split: str, source: str) -> list[dict[str, Any]]:
    rows = []
    if pred.empty:
        return rows
    part = pred[pred["split"].astype(str) == split] if split != "all" and "split" in pred else pred
    by = part.groupby(part["dataset"].fillna(MISSING).astype(str)) if "dataset" in part else [(MISSING, part)]
    for dataset, sub in by:
        m = served_metrics(run, sub)
        if m["n"]:
            rows.append({"run": run.name, "evaluated on": _text(dataset), "split": split, "source": source,
                         "images": m["n"], "threshold": run.threshold, "accuracy": _num(m["accuracy"]),
                         "ROC AUC": _num(m["roc_auc"])})
    return rows


def evals_table(runs: Sequence[store.Run]) -> pd.DataFrame:
    """Accuracy and ROC AUC of each run on each dataset of its own test split (source "own test split":
    the run's predictions.csv) and of every evaluation on other data (source "evaluation <tag>": the run's
    own evals/ folders or its records under ``_evals/``), all at the run's served threshold."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        rows += _eval_rows(run, run.predictions(resolve=False), "test", "own test split")
        for record in run.records("evaluate"):
            split = str(record.info.get("split") or "test")
            source = f"evaluation {record.path.name}" + (" (run folder)" if record.own else "")
            rows += _eval_rows(run, record.csv("predictions.csv", store.PREDICTION_COLUMNS), split, source)
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


EVIDENCE_COLUMNS = ["run", "kind", "source", "where", "made"]


def evidence_table(runs: Sequence[store.Run]) -> pd.DataFrame:
    """Every piece of evidence of each run, by kind (evaluate, robustness, cross-dataset): the run's own files
    (source "run folder") and its evaluation records (source: the record's tag), with where they are and when
    they were made."""
    rows = []
    for run in runs:
        for kind in store.RECORD_KINDS:
            for record in run.records(kind):
                rows.append({"run": run.name, "kind": kind, "source": record.name, "where": str(record.path),
                             "made": _text(record.info.get("created"))})
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(runs: Sequence[store.Run]) -> pd.DataFrame:
    """The config.json settings whose values differ between ``runs`` (rows: setting; columns: run names).

    Like is compared with like: the early-stopping score is shown with its metric ("val_auc 0.9761 (epoch 14)"
    against "val_loss 0.3120 (epoch 9)"), never as two bare numbers; a setting a run lacks is "-"."""
    flat = {}
    for r in runs:
        cfg = {k: v for k, v in r.config.items() if k not in ("monitor", "best_score", "best_epoch")}
        flat[r.name] = {**_flat(cfg), "early stopping": early_stopping(r.config)}
    keys = sorted(set().union(*flat.values())) if flat else []
    rows = {}
    for k in keys:
        if k.split(".")[0] in IGNORED_CONFIG_KEYS:
            continue
        values = [flat[n].get(k) for n in flat]
        if len({repr(v) for v in values}) > 1:
            rows[k] = [_text(v) for v in values]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(flat))
