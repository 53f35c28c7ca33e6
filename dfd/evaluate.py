"""Evaluation from predictions: metrics, curves, calibration, evaluating runs on other data, robustness.

Everything here starts from a predictions table (columns path,label,p_fake,split,dataset; one row an image;
``p_fake`` NaN where the image was unreadable) as written in a run's ``predictions.csv``. Metrics come from
scikit-learn. :func:`evaluate_run` and :func:`robustness` load the run's model (TensorFlow is imported
then, not at module import) and predict through :func:`dfd.data.predict_paths`, the same decode path the
training, the CLI and the app use.

Calibration: :func:`calibrate` fits a temperature ``T`` on the val predictions (minimising log loss) and a
threshold on the calibrated val probabilities; detection applies ``p = sigmoid(logit(p) / T)``
(:func:`apply_temperature`) and calls "fake" when ``p >= threshold``. That threshold is the run's served
threshold (:attr:`dfd.runs.Run.threshold`), used by every table here that says "accuracy" at a threshold.

Inconclusive band: :func:`fit_band` fits, on the same val predictions, a band [lo, hi) around the threshold
whose images are served as "inconclusive" instead of a verdict (rule: :data:`BAND_RULE`); calibration.json keeps
it as ``band_lo``, ``band_hi``. :func:`band_outcome` says what a band does to each dataset (share decided,
accuracy on the decided ones) and :func:`risk_coverage` draws the whole trade-off.

Nothing here writes into a run's folder except :func:`calibrate` of a user run: :func:`evaluate_run`,
:func:`robustness` and :func:`cross_dataset` each write a new evaluation record of the run
(``<user runs>/_evals/<run>/<kind>/<tag>/``, see :mod:`dfd.runs`) and return its folder; a shipped run is
calibrated into a copy in the user runs folder.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from dfd import imaging, runs

EPS = 1e-7
ROBUSTNESS_SWEEP: tuple[tuple[str, float], ...] = (
    ("none", 0),
    ("jpeg", 95), ("jpeg", 90), ("jpeg", 75), ("jpeg", 70), ("jpeg", 50),
    ("blur", 0.5), ("blur", 1.0), ("blur", 2.0),
    ("noise", 2), ("noise", 5), ("noise", 10),
)


class EvaluationError(ValueError):
    """Nothing to evaluate (no predictions, no such split), with a message fit to show a user."""


# ----------------------------------------------------------------------------------------------------------
# Metrics from a predictions table


def _valid(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if pred is None or len(pred) == 0 or not {"label", "p_fake"} <= set(pred.columns):
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    p = pd.to_numeric(pred["p_fake"], errors="coerce").to_numpy(np.float64)
    y = pd.to_numeric(pred["label"], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(p) & np.isfinite(y)
    return y[ok].astype(np.int64), np.clip(p[ok], 0.0, 1.0)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: sum over equal-width bins of (bin share) * |mean P(fake) - fraction fake|."""
    if len(y) == 0:
        return float("nan")
    table = _reliability(y, p, bins)
    return float((table["count"] / len(y) * (table["mean_p_fake"] - table["frac_fake"]).abs()).sum())


def metrics(pred: pd.DataFrame, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC, confusion [[tn, fp], [fn, tp]], n, ECE at ``threshold``.

    Rows whose P(fake) is NaN (unreadable images) are left out and counted in ``n_unreadable``.
    Metrics that are undefined (AUC with one class, precision with no predicted fakes) are None.
    """
    y, p = _valid(pred)
    n_bad = int(len(pred) - len(y)) if pred is not None else 0
    out: dict[str, Any] = {"n": int(len(y)), "n_unreadable": n_bad, "threshold": float(threshold),
                           "n_fake": int(y.sum()), "n_real": int(len(y) - y.sum())}
    if len(y) == 0:
        out.update(accuracy=None, precision=None, recall=None, f1=None, roc_auc=None, average_precision=None,
                   confusion=[[0, 0], [0, 0]], ece=None, log_loss=None, brier=None)
        return out
    yhat = (p >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    cm = skm.confusion_matrix(y, yhat, labels=[0, 1])
    out.update(
        accuracy=float(skm.accuracy_score(y, yhat)),
        balanced_accuracy=float(skm.balanced_accuracy_score(y, yhat)) if both else None,
        precision=float(skm.precision_score(y, yhat, zero_division=np.nan)) if yhat.any() else None,
        recall=float(skm.recall_score(y, yhat, zero_division=np.nan)) if y.any() else None,
        f1=float(skm.f1_score(y, yhat, zero_division=np.nan)) if (y.any() or yhat.any()) else None,
        roc_auc=float(skm.roc_auc_score(y, p)) if both else None,
        average_precision=float(skm.average_precision_score(y, p)) if both else None,
        confusion=cm.astype(int).tolist(),
        ece=expected_calibration_error(y, p),
        log_loss=float(skm.log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        brier=float(skm.brier_score_loss(y, p)),
    )
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}


def generator_rates(pred: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per split and dataset, for every dataset whose fakes name their generator or whose reals name their
    source: the recall on each generator's fakes, the false-alarm rate on all its reals ("real") and on each
    real source's, at ``threshold``. Columns split, dataset, group ("real", a generator or a real source),
    kind ("false alarm" or "recall"), n, rate, caught (fakes called fake or reals called fake). Generator and
    source come from the predictions' ``generator`` and ``source`` columns, else from the paths
    (:func:`dfd.data.generators`, :func:`dfd.data.sources`)."""
    from dfd.data import generators, sources

    columns = ["split", "dataset", "group", "kind", "n", "rate", "caught"]
    y, p = _valid(pred)
    if not len(y):
        return pd.DataFrame(columns=columns)
    ok = pred.loc[np.isfinite(pd.to_numeric(pred["p_fake"], errors="coerce").to_numpy(np.float64))]
    ok = ok.reset_index(drop=True)
    gen = ok["generator"].fillna("").astype(str) if "generator" in ok else generators(ok)
    src = ok["source"].fillna("").astype(str) if "source" in ok else sources(ok)
    table = pd.DataFrame({"split": ok.get("split", "all"), "dataset": ok.get("dataset", ""),
                          "group": np.where(y == 0, "real", gen.to_numpy()), "source": src.to_numpy(),
                          "called_fake": p >= threshold})
    named = ((table["group"] != "real") & (table["group"] != "")) | (table["source"] != "")
    keep = named.groupby([table["split"], table["dataset"]]).transform("any").astype(bool)
    table = table[keep & (table["group"] != "")]
    if table.empty:
        return pd.DataFrame(columns=columns)
    by_source = table[(table["group"] == "real") & (table["source"] != "")].assign(group=lambda t: t["source"])
    parts = []
    for part, kind in ((table, None), (by_source, "false alarm")):
        if part.empty:
            continue
        out = part.groupby(["split", "dataset", "group"], sort=True)["called_fake"].agg(["size", "sum"]).reset_index()
        out.columns = ["split", "dataset", "group", "n", "caught"]
        out["kind"] = kind or np.where(out["group"] == "real", "false alarm", "recall")
        parts.append(out)
    out = pd.concat(parts, ignore_index=True)
    # Per dataset: its reals, then each real source, then each generator.
    out["order"] = np.where(out["group"] == "real", 0, np.where(out["kind"] == "false alarm", 1, 2))
    out = out.sort_values(["split", "dataset", "order", "group"], kind="stable")
    out["rate"] = out["caught"] / out["n"]
    return out[columns].reset_index(drop=True)


def metrics_report(pred: pd.DataFrame, threshold: float = 0.5) -> dict[str, Any]:
    """The content of metrics.json: metrics per split (and per dataset within a split where several), and
    where a dataset's fakes name their generator, recall per generator and the false-alarm rate on reals."""
    report: dict[str, Any] = {"threshold": float(threshold)}
    if "split" not in pred.columns:
        report["all"] = metrics(pred, threshold)
        return report
    for split, part in pred.groupby("split", sort=False):
        report[str(split)] = metrics(part, threshold)
        if "dataset" in part.columns and part["dataset"].nunique() > 1:
            report.setdefault("by_dataset", {})[str(split)] = {
                str(ds): metrics(sub, threshold) for ds, sub in part.groupby("dataset")}
    rates = generator_rates(pred, threshold)
    if len(rates):
        report["by_generator"] = rates.to_dict(orient="records")
    return report


def roc(pred: pd.DataFrame) -> pd.DataFrame:
    """ROC curve: columns fpr, tpr, threshold (empty when only one class is present)."""
    y, p = _valid(pred)
    if len(np.unique(y)) < 2:
        return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
    fpr, tpr, thr = skm.roc_curve(y, p)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thr, 1.0)})


def pr(pred: pd.DataFrame) -> pd.DataFrame:
    """Precision-recall curve (fake = positive): columns precision, recall, threshold."""
    y, p = _valid(pred)
    if len(np.unique(y)) < 2:
        return pd.DataFrame(columns=["precision", "recall", "threshold"])
    prec, rec, thr = skm.precision_recall_curve(y, p)
    return pd.DataFrame({"precision": prec, "recall": rec, "threshold": np.append(thr, 1.0)})


def _reliability(y: np.ndarray, p: np.ndarray, bins: int) -> pd.DataFrame:
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)  # [k/bins, (k+1)/bins); 1.0 in the last bin
    rows = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        rows.append({"bin_lo": edges[b], "bin_hi": edges[b + 1], "count": n,
                     "mean_p_fake": float(p[sel].mean()) if n else np.nan,
                     "frac_fake": float(y[sel].mean()) if n else np.nan})
    table = pd.DataFrame(rows)
    return table


def reliability(pred: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: equal-width bins of P(fake) with count, mean P(fake), fraction fake."""
    y, p = _valid(pred)
    return _reliability(y, p, bins)


def confusion_at(pred: pd.DataFrame, threshold: float) -> np.ndarray:
    """2x2 confusion matrix [[tn, fp], [fn, tp]] at ``threshold``."""
    y, p = _valid(pred)
    return skm.confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])


# ----------------------------------------------------------------------------------------------------------
# Temperature scaling


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p: Any, temperature: float) -> Any:
    """``sigmoid(logit(p) / T)``; T > 1 softens over-confident probabilities. Scalars stay scalars."""
    t = float(temperature) if temperature else 1.0
    scalar = np.ndim(p) == 0
    arr = np.asarray(p, np.float64)
    out = np.full(arr.shape, np.nan)
    ok = np.isfinite(arr)
    out[ok] = 1.0 / (1.0 + np.exp(-_logit(arr[ok]) / t))
    return float(out) if scalar else out


def fit_temperature(y: np.ndarray, p: np.ndarray) -> float:
    """The temperature minimising the log loss of ``apply_temperature(p, T)`` against ``y`` (T in 0.05..20)."""
    from scipy.optimize import minimize_scalar

    z = _logit(p)
    y = np.asarray(y, np.float64)

    def nll(log_t: float) -> float:
        q = np.clip(1.0 / (1.0 + np.exp(-z / np.exp(log_t))), EPS, 1 - EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def best_threshold(y: np.ndarray, p: np.ndarray, max_false_alarm: float | None = None,
                   groups: list[np.ndarray] | None = None) -> float:
    """The threshold maximising accuracy (ties: the one nearest 0.5), midway between neighbouring scores.
    With ``max_false_alarm``, only thresholds that call at most that fraction of the reals fake are
    considered (a false alarm costs a real person; the tool should not cry "fake" at ordinary photos): of all
    the reals, and with ``groups`` (label arrays, a label per row; "" for none) of each group's reals too, e.g.
    each dataset's and each real source's (:func:`false_alarm_groups`). When no threshold meets every cap,
    those with the least excess over the caps are taken."""
    if len(y) == 0 or len(np.unique(y)) < 2:
        return 0.5
    y, p = np.asarray(y), np.asarray(p)
    s = np.unique(p)
    candidates = np.concatenate([[0.5], (s[:-1] + s[1:]) / 2, [s[0] - EPS, s[-1] + EPS]])
    candidates = np.clip(candidates, 0.0, 1.0)
    if max_false_alarm is not None:
        pools = [p[y == 0]]
        for labels in groups or []:
            g = np.asarray(labels, dtype=object).astype(str)
            pools += [p[(y == 0) & (g == name)] for name in sorted(set(g[y == 0]) - {""})]
        excess = np.zeros(len(candidates))
        for reals in pools:
            if len(reals):
                reals = np.sort(reals)
                rate = 1.0 - np.searchsorted(reals, candidates, side="left") / len(reals)
                excess = np.maximum(excess, rate - max_false_alarm)
        candidates = candidates[excess <= max(float(excess.min()), 0.0) + 1e-12]
    acc = np.array([np.mean((p >= t) == y) for t in candidates])
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


BAND_TARGET = 0.97
"""The val accuracy the inconclusive band aims for on the images it leaves decided."""
BAND_MAX_SHARE = 0.06
"""The most of any one dataset's val images the band may hold (so at least 94% of each is decided, leaving
room for test images lying a little nearer the threshold than val's: the aim is 90% decided on every test set)."""
BAND_RULE = ("the band [lo, hi) around the threshold holding the fewest val images such that val accuracy on the "
             f"images outside it is at least {BAND_TARGET:g}, holding at most {BAND_MAX_SHARE:.0%} of any dataset's "
             f"val images; where {BAND_TARGET:g} is out of reach within that, the band within it with the highest "
             "val accuracy outside it; no band where none raises it")


def fit_band(y: np.ndarray, p: np.ndarray, threshold: float, groups: np.ndarray | None = None,
             target: float = BAND_TARGET, max_share: float = BAND_MAX_SHARE,
             max_candidates: int = 400) -> tuple[float, float]:
    """The inconclusive band [lo, hi) around ``threshold`` (lo <= threshold <= hi) on P(fake) ``p`` (calibrated,
    as served) with labels ``y``, by :data:`BAND_RULE`: P(fake) below lo is called real, at or above hi fake,
    in between inconclusive. ``groups`` (a label per row, e.g. the dataset) caps the share each group may lose;
    without it the pool is one group. Returns (threshold, threshold) (no band) when no band raises accuracy.

    Edges are midway between neighbouring val scores (at most ``max_candidates`` a side), so the band is the
    same for any scores between the same val images.
    """
    thr = float(threshold)
    y, p = np.asarray(y, np.int64), np.asarray(p, np.float64)
    if len(y) == 0 or max_share <= 0:
        return thr, thr
    g = np.full(len(y), "", dtype=object) if groups is None else np.asarray(groups, dtype=object).astype(str)
    limit = int(np.floor(max_share * len(y)))  # no group may lose more than max_share: nor may the pool

    def edges(side: np.ndarray, beyond: float) -> np.ndarray:
        """The threshold, then the edges taking in the 1, 2, ... nearest of ``side`` (distinct scores, nearest
        the threshold first): midway to the next score, or ``beyond`` after the last."""
        k = np.arange(1, min(len(side), limit) + 1)
        if len(k) > max_candidates:
            k = np.unique(np.linspace(1, k[-1], max_candidates).round().astype(int))
        nxt = np.append(side, beyond)[k]
        return np.concatenate([[thr], np.where(k < len(side), (side[k - 1] + nxt) / 2, beyond)])

    lows = edges(np.unique(p[p < thr])[::-1], 0.0)
    highs = edges(np.unique(p[p >= thr]), np.nextafter(1.0, 2.0))
    wrong = (p >= thr) != (y == 1)
    inside, wrong_inside, caps_ok = 0, 0, np.ones((len(lows), len(highs)), bool)
    for name in np.unique(g):
        sel = g == name
        qs, qe = np.sort(p[sel]), np.sort(p[sel & wrong])
        n_in = np.searchsorted(qs, highs, "left")[None, :] - np.searchsorted(qs, lows, "left")[:, None]
        caps_ok &= n_in <= max_share * sel.sum()
        inside = inside + n_in
        wrong_inside = wrong_inside + (np.searchsorted(qe, highs, "left")[None, :]
                                       - np.searchsorted(qe, lows, "left")[:, None])
    decided = len(y) - inside
    acc = np.where(decided > 0, 1.0 - (wrong.sum() - wrong_inside) / np.maximum(decided, 1), 0.0)
    acc = np.where(caps_ok, acc, -1.0)
    reached = acc >= target
    if reached.any():
        cost = np.where(reached, inside, np.iinfo(np.int64).max)
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
    else:
        best = acc >= acc.max() - 1e-12
        cost = np.where(best, inside, np.iinfo(np.int64).max)
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
    if acc[i, j] <= acc[0, 0] + 1e-12:
        return thr, thr
    return float(lows[i]), float(highs[j])


def band_at(band: tuple[float, float] | None, band_threshold: float,
            threshold: float) -> tuple[float, float] | None:
    """``band`` (fitted around ``band_threshold``) moved to ``threshold``: its edges keep their distance from the
    threshold in logits (a band on the served P(fake) at another threshold). None stays None."""
    if band is None or threshold == band_threshold:
        return band
    shift = _logit(np.array([threshold]))[0] - _logit(np.array([band_threshold]))[0]
    lo, hi = (float(1.0 / (1.0 + np.exp(-(_logit(np.array([v]))[0] + shift)))) for v in band)
    return min(lo, float(threshold)), max(hi, float(threshold))


def band_outcome(pred: pd.DataFrame, threshold: float, band: tuple[float, float] | None,
                 by: str = "dataset") -> pd.DataFrame:
    """What an inconclusive ``band`` does to each ``by`` group of a predictions table (P(fake) as served):
    columns ``by``, n, decided (share outside the band), accuracy (all, at ``threshold``), accuracy_decided,
    gain (accuracy_decided - accuracy). No band: everything decided."""
    columns = [by, "n", "decided", "accuracy", "accuracy_decided", "gain"]
    rows = []
    for name, part in pred.groupby(by, sort=True) if by in pred else [("all", pred)]:
        y, p = _valid(part)
        if not len(y):
            continue
        keep = np.ones(len(p), bool) if band is None else (p < band[0]) | (p >= band[1])
        right = (p >= threshold) == (y == 1)
        acc_d = float(right[keep].mean()) if keep.any() else None
        rows.append({by: str(name), "n": int(len(y)), "decided": float(keep.mean()), "accuracy": float(right.mean()),
                     "accuracy_decided": acc_d, "gain": None if acc_d is None else acc_d - float(right.mean())})
    return pd.DataFrame(rows, columns=columns)


def risk_coverage(pred: pd.DataFrame, threshold: float, by: str = "dataset", points: int = 200) -> pd.DataFrame:
    """Risk-coverage curves per ``by`` group (P(fake) as served): images decided farthest from ``threshold``
    (in logit) first, so each point is a band around the threshold: columns ``by``, coverage (share decided),
    accuracy (on the decided ones), decided (count), n. At most ``points`` points a group."""
    columns = [by, "coverage", "accuracy", "decided", "n"]
    parts = []
    for name, part in pred.groupby(by, sort=True) if by in pred else [("all", pred)]:
        y, p = _valid(part)
        if not len(y):
            continue
        order = np.argsort(-np.abs(_logit(p) - _logit(np.array([threshold]))[0]), kind="stable")
        right = ((p >= threshold) == (y == 1))[order]
        k = np.arange(1, len(y) + 1)
        pick = np.unique(np.linspace(0, len(y) - 1, min(points, len(y))).round().astype(int))
        parts.append(pd.DataFrame({by: str(name), "coverage": k[pick] / len(y),
                                   "accuracy": np.cumsum(right)[pick] / k[pick], "decided": k[pick],
                                   "n": len(y)}))
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def band_fields(y: np.ndarray, q: np.ndarray, threshold: float, groups: np.ndarray | None = None,
                prefix: str = "") -> dict[str, Any]:
    """The band fitted on (y, q) and what it does there: calibration.json's band fields."""
    lo, hi = fit_band(y, q, threshold, groups)
    keep = (q < lo) | (q >= hi)
    right = (q >= threshold) == (y == 1)
    return {f"{prefix}band_lo": lo, f"{prefix}band_hi": hi, f"{prefix}band_rule": BAND_RULE,
            f"{prefix}band_decided": float(keep.mean()) if len(q) else None,
            f"{prefix}band_accuracy_decided": float(right[keep].mean()) if keep.any() else None}


def run_band(run: runs.Run) -> tuple[float, float] | None:
    """The band a run calibrated before bands existed would have had: fitted by :func:`fit_band` on its
    predictions.csv's calibration split (calibration.json ``fitted_on``, else val) at its temperature and
    threshold, exactly as :func:`calibrate` fits it. None when the run has no calibration or no such
    predictions of both classes, or no band raises accuracy. Nothing is written."""
    cal = run.calibration()
    if not cal or cal.get("threshold") is None:
        return None
    pred = run.predictions(resolve=False)
    split = str(cal.get("fitted_on") or "val")
    part = pred[pred["split"] == split] if "split" in pred.columns else pred.iloc[0:0]
    y, p = _valid(part)
    if len(y) < 2 or len(np.unique(y)) < 2:
        return None
    valid = (np.isfinite(pd.to_numeric(part["p_fake"], errors="coerce").to_numpy(np.float64))
             & np.isfinite(pd.to_numeric(part["label"], errors="coerce").to_numpy(np.float64)))
    groups = part["dataset"].fillna("").astype(str).to_numpy()[valid] if "dataset" in part else None
    lo, hi = fit_band(y, apply_temperature(p, run.temperature), run.threshold, groups)
    return (lo, hi) if lo < hi else None


def false_alarm_groups(pred: pd.DataFrame) -> list[np.ndarray]:
    """The groups of reals the served threshold's false-alarm cap holds for, besides the pool: each
    dataset's reals and each real source's (``dataset/source``), as label arrays for :func:`best_threshold`."""
    dataset = pred["dataset"].fillna("").astype(str).to_numpy() if "dataset" in pred else np.full(len(pred), "")
    if "source" in pred:
        source = pred["source"].fillna("").astype(str).to_numpy()
    else:
        from dfd.data import sources

        source = sources(pred).to_numpy().astype(str)
    return [dataset, np.where(source != "", np.char.add(np.char.add(dataset.astype(str), "/"), source), "")]


def calibrate(run: runs.Run | str | Path, split: str = "val", max_false_alarm: float | None = None, *,
              runs_dir: str | Path | None = None, name: str | None = None) -> dict[str, Any]:
    """Fit temperature, threshold and the inconclusive band (:func:`fit_band`, each dataset's images a group) on
    the run's ``split`` predictions and write calibration.json. ``max_false_alarm`` (default: the run's config,
    as trained) caps the false-alarm rate on ``split``.

    A user run is calibrated in place. A shipped run is never written: a calibrated copy of it is made in
    the user runs folder (``runs_dir``, default :func:`dfd.runs.user_dir`) as ``name`` (default
    ``<run>-calibrated``). Returns the calibration, with ``run_path`` the run that now serves it.
    """
    run = runs.get_run(run, runs_dir)
    if max_false_alarm is None:
        max_false_alarm = run.config.get("max_false_alarm")
    pred = run.predictions()
    part = pred[pred["split"] == split] if "split" in pred.columns else pred.iloc[0:0]
    y, p = _valid(part)
    if len(y) < 2 or len(np.unique(y)) < 2:
        raise EvaluationError(f"run {run.name!r} has no usable {split!r} predictions with both classes to "
                              "calibrate on")
    t = fit_temperature(y, p)
    q = apply_temperature(p, t)
    valid = (np.isfinite(pd.to_numeric(part["p_fake"], errors="coerce").to_numpy(np.float64))
             & np.isfinite(pd.to_numeric(part["label"], errors="coerce").to_numpy(np.float64)))
    groups = [g[valid] for g in false_alarm_groups(part)]
    thr = best_threshold(y, q, max_false_alarm, groups)
    by_group = {str(name): float(np.mean(q[(y == 0) & (g == name)] >= thr))
                for g in groups for name in sorted(set(g[y == 0].astype(str)) - {""})}
    result: dict[str, Any] = {
        "temperature": t, "threshold": thr, "fitted_on": split, "n": int(len(y)),
        "max_false_alarm": max_false_alarm, "false_alarm_at_threshold": float(np.mean(q[y == 0] >= thr)),
        "false_alarm_by_group": by_group,
        "ece_before": expected_calibration_error(y, p), "ece_after": expected_calibration_error(y, q),
        "accuracy_at_threshold": float(np.mean((q >= thr) == y)),
        **band_fields(y, q, thr, groups[0]),
    }
    test = pred[pred["split"] == "test"] if "split" in pred.columns else pred.iloc[0:0]
    ty, tp = _valid(test)
    if len(ty):
        tq = apply_temperature(tp, t)
        kept = (tq < result["band_lo"]) | (tq >= result["band_hi"])
        result.update(test_ece_before=expected_calibration_error(ty, tp),
                      test_ece_after=expected_calibration_error(ty, tq),
                      test_accuracy_at_threshold=float(np.mean((tq >= thr) == ty)),
                      test_band_decided=float(kept.mean()),
                      test_band_accuracy_decided=float(np.mean((tq >= thr)[kept] == ty[kept])) if kept.any() else None)
    if not run.shipped:
        runs.write_json_atomic(run.path / "calibration.json", result)
        return {**result, "run_path": str(run.path)}
    new_name = name or f"{run.name}-calibrated"
    tmp, root = runs.copy_run(run, new_name, runs_dir or run.records_root, {
        "name": new_name, "notes": f"{run.name} (shipped) recalibrated on its {split} predictions"})
    try:
        runs.write_json_atomic(tmp / "calibration.json", result)
        final = runs.finalize_run_dir(tmp, root, new_name)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**result, "run_path": str(final)}


# ----------------------------------------------------------------------------------------------------------
# Evaluating a run on data


def _stratified_limit(frame: pd.DataFrame, limit: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``limit`` rows, keeping the class proportions; deterministic for a seed."""
    if not limit or len(frame) <= limit:
        return frame.reset_index(drop=True)
    parts = []
    for _, part in frame.groupby("label"):
        k = max(1, round(limit * len(part) / len(frame)))
        parts.append(part.sample(n=min(k, len(part)), random_state=seed))
    return pd.concat(parts).sort_index().head(limit).reset_index(drop=True)


def _select(data_root: str | Path, split: str, limit: int | None, seed: int = 0,
            dataset: str | None = None) -> pd.DataFrame:
    from dfd.data import index_dataset

    index = index_dataset(data_root, seed=seed)
    frame = index.frame
    if dataset:
        frame = frame[frame["dataset"] == dataset]
    if split != "all":
        frame = frame[frame["split"] == split]
    if frame.empty:
        raise EvaluationError(f"no {split!r} images in {data_root}" + (f" (dataset {dataset!r})" if dataset else ""))
    return _stratified_limit(frame, limit, seed)


def _source(run: runs.Run, data_root: str | Path, split: str, limit: int | None, **extra: Any) -> dict[str, Any]:
    """What an evaluation record was made from (its record.json)."""
    return {"data": str(Path(data_root).expanduser().resolve()), "split": split, "limit": limit,
            "threshold": run.threshold, "temperature": run.temperature, "tta": run.tta, **extra}


def default_tag(datasets: Iterable[str], split: str) -> str:
    """An evaluation record's default tag: the datasets it scored and the split, e.g.
    ``faces-140k-mini+lfw-faceswap-test`` (not the data folder's name: "data-test" says nothing); very many
    datasets are shortened to the first and a count."""
    names = sorted({str(d) for d in datasets if str(d).strip()}) or ["data"]
    joined = "+".join(names)
    if len(joined) > 120:
        joined = f"{names[0]}+{len(names) - 1}-more"
    return f"{joined}-{split}"


def _record(run: runs.Run, kind: str, tag: str, info: dict[str, Any], write: Callable[[Path], None]) -> Path:
    """A new evaluation record of ``run`` (dfd.runs: ``<user runs>/_evals/<run>/<kind>/<tag>``), written by
    ``write(folder)`` into a temporary folder and renamed into place; nothing of the run is touched."""
    tmp = runs.new_record_dir(run, kind)
    try:
        write(tmp)
        return runs.finalize_record(tmp, run, kind, tag, info)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise


def predictor(model: Any, image_size: int | None = None, tta: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A fast batch predictor (a compiled tf.function, not ``model.predict``): float32 batch -> P(fake).

    With ``image_size`` the input signature is fixed, so the function is traced once for every batch size.
    With ``tta`` P(fake) is the mean of the model's outputs on each image and its left-right mirror
    (:func:`dfd.models.mirror_averaged`).
    """
    import tensorflow as tf

    signature = None if image_size is None else [tf.TensorSpec((None, image_size, image_size, 3), tf.float32)]

    if tta:
        from dfd.models import mirror_averaged

        model = mirror_averaged(model)

    @tf.function(reduce_retracing=True, input_signature=signature)
    def call(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False)

    def predict(batch: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(batch, tf.float32)).numpy().reshape(-1)

    return predict


def predict_frame(predict: Callable[[np.ndarray], np.ndarray], frame: pd.DataFrame, image_size: int,
                  batch_size: int = 64, transform: Callable[[np.ndarray], np.ndarray] | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  source_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                  ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Predictions table (path,label,p_fake,split,dataset,generator,source) for the rows of an index frame."""
    from dfd.data import predict_paths

    paths = frame["path"].astype(str).tolist()
    probs, errors = predict_paths(predict, paths, image_size, batch_size, transform=transform, progress=progress,
                                  source_transform=source_transform)
    out = pd.DataFrame({"path": paths, "label": frame["label"].astype(int).to_numpy(), "p_fake": probs,
                        "split": frame["split"].to_numpy() if "split" in frame else "all",
                        "dataset": frame["dataset"].to_numpy() if "dataset" in frame else "",
                        "generator": frame["generator"].to_numpy() if "generator" in frame else "",
                        "source": frame["source"].to_numpy() if "source" in frame else ""})
    return out, errors


def evaluate_run(run: runs.Run | str | Path, data_root: str | Path, split: str = "test", *,
                 tag: str | None = None, limit: int | None = None, dataset: str | None = None,
                 batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> Path:
    """Predict ``split`` (or "all") of the data at ``data_root`` with the run's model.

    Writes a new evaluation record (``<user runs>/_evals/<run>/evaluate/<tag>/``, see :mod:`dfd.runs`):
    ``predictions.csv`` (raw P(fake); paths relative to ``data_root``), ``metrics.json`` (same format as
    the run's own, at 0.5, plus "calibrated": at the run's served threshold after its temperature),
    ``errors.csv`` (unreadable files) and ``record.json``. ``tag`` defaults to the datasets and split (:func:`default_tag`);
    a tag is never reused (tag2, tag3, ...). Returns the record folder.
    """
    run = runs.get_run(run)
    frame = _select(data_root, split, limit, dataset=dataset)
    model = runs.load_model(run)
    pred, errors = predict_frame(predictor(model, tta=run.tta), frame, run.image_size, batch_size,
                                 progress=progress)
    report = metrics_report(pred)
    if run.temperature != 1.0 or run.threshold != 0.5:
        calibrated = pred.assign(p_fake=apply_temperature(pred["p_fake"].to_numpy(), run.temperature))
        report["calibrated"] = metrics_report(calibrated, run.threshold)
    info = _source(run, data_root, split, limit, dataset=dataset)
    report["source"] = {**info, "run": run.name}

    def write(folder: Path) -> None:
        stored = pred.assign(path=runs.relative_paths(pred["path"].tolist(), info["data"]))
        runs.write_csv_atomic(folder / "predictions.csv", stored)
        runs.write_json_atomic(folder / "metrics.json", report)
        runs.write_csv_atomic(folder / "errors.csv", pd.DataFrame(sorted(errors.items()), columns=["path", "reason"]))

    return _record(run, "evaluate", tag or default_tag(frame["dataset"], split), info, write)


def perturbation(kind: str, level: float) -> Callable[[np.ndarray], np.ndarray] | None:
    """The image transform for a robustness condition (uint8 RGB -> uint8 RGB); None for "none".

    Noise is seeded per image (from its pixels), so a sweep is reproducible whatever the thread order.
    """
    if kind == "none":
        return None
    if kind == "jpeg":
        return lambda img: imaging.jpeg_recompress(img, int(level))
    if kind == "blur":
        return lambda img: imaging.gaussian_blur(img, float(level))
    if kind == "noise":
        return lambda img: imaging.gaussian_noise(img, float(level), zlib.crc32(img.tobytes()[:65536]))
    raise EvaluationError(f"unknown perturbation {kind!r}; use none, jpeg, blur or noise")


ROBUSTNESS_COLUMNS = ["perturbation", "level", "accuracy", "roc_auc", "recall", "false_alarm", "n"]


def outcome_row(m: dict[str, Any]) -> dict[str, Any]:
    """From :func:`metrics`: accuracy, ROC AUC, recall on fakes, false-alarm rate on reals (None without
    reals) and n: the row of robustness, cross-dataset and model-card tables."""
    (tn, fp), _ = m["confusion"]
    return {"accuracy": m["accuracy"], "roc_auc": m["roc_auc"], "recall": m["recall"],
            "false_alarm": fp / (tn + fp) if tn + fp else None, "n": m["n"]}


def robustness(run: runs.Run | str | Path, data_root: str | Path, split: str = "test", limit: int | None = None,
               *, sweep: tuple[tuple[str, float], ...] = ROBUSTNESS_SWEEP, batch_size: int = 64,
               tag: str | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Accuracy and ROC AUC under JPEG re-compression, blur and noise, at the run's served threshold (after
    its temperature). Writes a new evaluation record (``<user runs>/_evals/<run>/robustness/<tag>/``) and
    returns its folder:

    - ``robustness_by_dataset.csv``: one row per dataset in ``data_root`` and condition (columns dataset,
      domain, perturbation, level, accuracy, roc_auc, recall, false_alarm, n), every dataset, in or out of
      the run's domain;
    - ``robustness.csv``: the same conditions pooled over the datasets the run was trained on, fakes and reals
      (all of them if none is there): robustness is about the fakes a detector knows, cross_dataset covers the
      others;
    - ``robustness.json``: where, how many, threshold and temperature, and the pooled rows.

    ``limit`` is at most that many images per dataset (stratified). ``progress(done, total)`` counts images.
    """
    run = runs.get_run(run)
    frame = _select(data_root, split, None)
    parts = {str(d): _stratified_limit(g, limit) for d, g in frame.groupby("dataset")}
    own = [d for d in parts if domain_of(run, d) == "in-domain"] or list(parts)
    predict = predictor(runs.load_model(run), run.image_size, tta=run.tta)
    total, done = len(sweep) * sum(len(p) for p in parts.values()), 0
    per_dataset, pooled = [], []
    for kind, level in sweep:
        scored = []
        for dataset, part in parts.items():
            counted = None if progress is None else (lambda d, _t, base=done: progress(base + d, total))
            pred, _ = predict_frame(predict, part, run.image_size, batch_size, transform=perturbation(kind, level),
                                    progress=counted)  # counted image by image, not a dataset at a time
            pred["p_fake"] = apply_temperature(pred["p_fake"].to_numpy(), run.temperature)
            m = metrics(pred, run.threshold)
            per_dataset.append({"dataset": dataset, "domain": domain_of(run, dataset),
                                "perturbation": kind, "level": level, **outcome_row(m)})
            if dataset in own:
                scored.append(pred)
            done += len(part)
            if progress:
                progress(done, total)
        m = metrics(pd.concat(scored, ignore_index=True), run.threshold)
        pooled.append({"perturbation": kind, "level": level, **outcome_row(m)})
    table = pd.DataFrame(pooled, columns=ROBUSTNESS_COLUMNS)
    by_dataset = pd.DataFrame(per_dataset, columns=["dataset", "domain", *ROBUSTNESS_COLUMNS])
    info = _source(run, data_root, split, limit, datasets=own, n_images=int(sum(len(parts[d]) for d in own)))

    def write(folder: Path) -> None:
        runs.write_csv_atomic(folder / "robustness.csv", table)
        runs.write_csv_atomic(folder / "robustness_by_dataset.csv", by_dataset)
        runs.write_json_atomic(folder / "robustness.json", {**info, "rows": table.to_dict(orient="records")})

    return _record(run, "robustness", tag or default_tag(parts, split), info, write)


SIZE_SWEEP: tuple[int, ...] = imaging.SIZE_SWEEP
SIZES_COLUMNS = ["size", "dataset", "domain", "group", "measure", "n", "rate"]


def size_rows(pred: pd.DataFrame, threshold: float, size: int) -> list[dict[str, Any]]:
    """Rows of a size sweep for one size (0: native) from served predictions: per dataset its accuracy, recall on
    its fakes and false alarms on its reals, then recall per generator and false alarms per real source."""
    rows = []
    for dataset, part in pred.groupby("dataset", sort=True):
        o = outcome_row(metrics(part, threshold))
        n_real, n_fake = int((part["label"] == 0).sum()), int((part["label"] == 1).sum())
        rows += [{"size": size, "dataset": dataset, "group": "all", "measure": "accuracy", "n": o["n"],
                  "rate": o["accuracy"]},
                 {"size": size, "dataset": dataset, "group": "fakes", "measure": "recall", "n": n_fake,
                  "rate": o["recall"] if n_fake else None},
                 {"size": size, "dataset": dataset, "group": "reals", "measure": "false alarm", "n": n_real,
                  "rate": o["false_alarm"]}]
    rates = generator_rates(pred, threshold)
    for r in rates[rates["group"] != "real"].itertuples(index=False):
        rows.append({"size": size, "dataset": r.dataset, "group": r.group, "measure": r.kind, "n": int(r.n),
                     "rate": float(r.rate)})
    return rows


def size_sweep(run: runs.Run | str | Path, data_root: str | Path, split: str = "test", limit: int | None = None,
               *, sizes: tuple[int, ...] = SIZE_SWEEP, batch_size: int = 64, tag: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> Path:
    """The verdicts at other source sizes: each image of ``split`` judged as it is ("native", size 0) and
    brought to each of ``sizes`` px (area down, bicubic up, saved once as JPEG q90:
    :func:`dfd.imaging.at_size`), then through the served path (the model's resize, temperature, threshold).
    Writes a new evaluation record (``<user runs>/_evals/<run>/sizes/<tag>/``) with ``sizes.csv``
    (:data:`SIZES_COLUMNS`: per size and dataset, accuracy, recall and false alarms; recall per generator
    and false alarms per real source) and returns its folder. ``limit`` is per dataset (stratified)."""
    run = runs.get_run(run)
    frame = _select(data_root, split, None)
    frame = pd.concat([_stratified_limit(g, limit) for _, g in frame.groupby("dataset")], ignore_index=True)
    predict = predictor(runs.load_model(run), run.image_size, tta=run.tta)
    n = len(frame)
    total, rows = n * (len(sizes) + 1), []
    for i, size in enumerate((0, *sizes)):
        counted = None if progress is None else (lambda d, _t, base=i * n: progress(base + d, total))
        moved = None if size == 0 else (lambda img, px=size: imaging.at_size(img, px))
        pred, _ = predict_frame(predict, frame, run.image_size, batch_size, progress=counted,
                                source_transform=moved)
        pred["p_fake"] = apply_temperature(pred["p_fake"].to_numpy(), run.temperature)
        rows += size_rows(pred, run.threshold, size)
    table = pd.DataFrame(rows)
    table.insert(2, "domain", [domain_of(run, d) for d in table["dataset"]])
    info = _source(run, data_root, split, limit, sizes=list(sizes), n_images=len(frame))

    def write(folder: Path) -> None:
        runs.write_csv_atomic(folder / "sizes.csv", table[SIZES_COLUMNS])

    return _record(run, "sizes", tag or default_tag(frame["dataset"], split), info, write)


CROSS_COLUMNS = ["run", "trained_on", "dataset", "domain", "n", "accuracy", "roc_auc", "recall", "false_alarm"]


def domain_of(run: runs.Run, dataset: str) -> str:
    """How a run knows a dataset: "in-domain" (trained on it), "reals only" (trained on its real photos, not
    its fakes: ``reals_only``) or "out-of-domain"."""
    if dataset in (run.config.get("reals_only") or []):
        return "reals only"
    return "in-domain" if dataset in run.trained_on else "out-of-domain"


def _generator_rows(run: runs.Run, pred: pd.DataFrame, dataset: str) -> list[dict[str, Any]]:
    """Where a dataset's fakes name their generator: one row per generator (its fakes and the dataset's reals),
    marked as :func:`domain_of` marks the dataset, or "unseen generator" when the run was trained without it."""
    gens = pred["generator"].fillna("").astype(str)
    left_out = set(run.config.get("exclude_generators") or [])
    known = domain_of(run, dataset)
    rows = []
    for gen in sorted(set(gens[pred["label"] == 1]) - {""}):
        m = metrics(pred[(pred["label"] == 0) | (gens == gen)], run.threshold)
        domain = "unseen generator" if known == "in-domain" and gen in left_out else known
        rows.append({"run": run.name, "trained_on": " + ".join(run.trained_on), "dataset": f"{dataset} / {gen}",
                     "domain": domain, **outcome_row(m)})
    return rows


def cross_dataset(run_refs: list[runs.Run | str | Path], data_root: str | Path, split: str = "test",
                  limit: int | None = None, *, into: runs.Run | str | Path | None = None, batch_size: int = 64,
                  tag: str | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """How far detectors travel: each run scores each dataset's ``split`` at ``data_root``, marked in-domain
    (the run was trained on that dataset), reals only (on its real photos only) or out-of-domain. Accuracy at each run's served threshold.

    Datasets whose fakes name their generator also get a row per generator ("<dataset> / <generator>": that
    generator's fakes with the dataset's reals), marked "unseen generator" for a run trained without it.
    Columns: run, trained_on, dataset, domain, n, accuracy, roc_auc, recall (fakes called fake), false_alarm
    (reals called fake). Written as ``cross_dataset.csv`` in a
    new evaluation record of the run ``into`` (default: the first run), ``<user runs>/_evals/<into>/
    cross-dataset/<tag>/``, where the Evaluation page shows it; returns the record folder.
    """
    chosen = [runs.get_run(r) for r in run_refs]
    if not chosen:
        raise EvaluationError("cross_dataset needs at least one run")
    target = runs.get_run(into) if into is not None else chosen[0]
    frame = _select(data_root, split, None)
    parts = {d: _stratified_limit(g, limit) for d, g in frame.groupby("dataset")}
    rows, done = [], 0
    for run in chosen:
        seen = run.trained_on
        predict = predictor(runs.load_model(run), run.image_size, tta=run.tta)
        for dataset, part in parts.items():
            pred, _ = predict_frame(predict, part, run.image_size, batch_size)
            pred["p_fake"] = apply_temperature(pred["p_fake"].to_numpy(), run.temperature)
            m = metrics(pred, run.threshold)
            rows.append({"run": run.name, "trained_on": " + ".join(seen), "dataset": dataset,
                         "domain": domain_of(run, dataset), **outcome_row(m)})
            rows += _generator_rows(run, pred, dataset)
            done += 1
            if progress:
                progress(done, len(chosen) * len(parts))
    table = pd.DataFrame(rows, columns=CROSS_COLUMNS)
    info = _source(target, data_root, split, limit, runs=[r.name for r in chosen],
                   thresholds={r.name: r.threshold for r in chosen})
    return _record(target, "cross-dataset", tag or default_tag(parts, split), info,
                   lambda folder: runs.write_csv_atomic(folder / "cross_dataset.csv", table))
