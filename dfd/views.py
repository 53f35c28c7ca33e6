"""The pure tables and numbers behind the Evaluation page's views (no plotting, no Streamlit).

From a predictions table (path,label,p_fake,split,dataset) and a run's files: the confusion matrix normalised
by true class, the ROC point at a threshold, the misclassified images most confident first, the
cross-dataset grid, the names of the datasets an evaluation covers, and tables made fit to show (missing
values as "n/a", never "None" or "nan").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

MISSING = "n/a"


def normalise_confusion(confusion: Any) -> np.ndarray:
    """The 2x2 confusion matrix [[tn, fp], [fn, tp]] with each row (true class) divided by its total; a class
    with no images keeps a row of zeros."""
    cm = np.asarray(confusion, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def roc_point(confusion: Any) -> tuple[float | None, float | None]:
    """(false positive rate, true positive rate) of the verdicts counted in ``confusion``: where a threshold
    sits on the ROC curve. A rate whose class has no images is None."""
    cm = np.asarray(confusion, dtype=float)
    real, fake = cm[0].sum(), cm[1].sum()
    return (float(cm[0, 1] / real) if real else None, float(cm[1, 1] / fake) if fake else None)


def misclassified(pred: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The images judged wrongly at ``threshold`` (P(fake) >= threshold is "fake"), most confident first, with
    ``confidence`` = |P(fake) - threshold|. Unreadable images (no P(fake)) are neither right nor wrong."""
    if pred is None or pred.empty:
        return pd.DataFrame(columns=[*getattr(pred, "columns", []), "confidence"])
    p = pd.to_numeric(pred["p_fake"], errors="coerce")
    valid = pred[np.isfinite(p)].assign(p_fake=p[np.isfinite(p)])
    wrong = valid[(valid["p_fake"] >= threshold).astype(int) != valid["label"].astype(int)]
    wrong = wrong.assign(confidence=(wrong["p_fake"] - threshold).abs())
    return wrong.sort_values("confidence", ascending=False, kind="stable")


def _num(value: Any, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return MISSING
    return f"{v:.{digits}f}" if np.isfinite(v) else MISSING


def cross_dataset_grid(cross: pd.DataFrame, by_run: bool = False) -> pd.DataFrame:
    """cross_dataset.csv as a grid: one row a detector (what it was trained on; its run name too where two
    runs were trained alike; with ``by_run`` its run name only), one column a dataset, each cell
    "accuracy / ROC AUC" with "(in)" where the detector was trained on that dataset and "n/a" for a metric
    that is undefined or a pair not scored."""
    if cross is None or cross.empty:
        return pd.DataFrame()
    label = cross["trained_on"].fillna(MISSING).astype(str)
    if by_run:
        label = cross["run"].astype(str)
    elif cross.assign(t=label).groupby("t")["run"].nunique().max() > 1:  # two runs trained alike: tell them apart
        label = cross["run"].astype(str) + ": " + label
    cells = [f"{_num(a)} / {_num(u)}" + (" (in)" if d == "in-domain" else "")
             for a, u, d in zip(cross["accuracy"], cross["roc_auc"], cross["domain"], strict=True)]
    grid = pd.DataFrame({"trained on": label, "dataset": cross["dataset"].astype(str), "cell": cells})
    grid = grid.pivot_table(index="trained on", columns="dataset", values="cell", aggfunc="first")
    grid.columns.name = None
    return grid.fillna(MISSING)


LEARNED = "in-domain"
DOMAIN_WORDS = {"in-domain": "learned", "reals only": "reals only: its fakes never learned",
                "out-of-domain": "out of domain: never learned"}
"""How a run knows a dataset (:func:`dfd.evaluate.domain_of`), in words for a label."""


def dataset_choices(domains: dict[str, str]) -> dict[str, list[str]]:
    """The Evaluation page's dataset choices for predictions on the datasets ``domains`` names (dataset -> how
    the run knows it, :func:`dfd.evaluate.domain_of`): {label: datasets}. First, the datasets the run learned,
    pooled (the headline: a run is not judged on fakes it was never taught; when it learned none, all of them);
    then each dataset by itself, learned ones first, the others labelled with how the run knows them."""
    order = {LEARNED: 0, "reals only": 1}
    names = sorted(domains, key=lambda d: (order.get(domains[d], 2), d))
    learned = [d for d in names if domains[d] == LEARNED]
    choices: dict[str, list[str]] = {}
    if len(learned) > 1:
        choices[f"learned datasets, pooled ({named(learned)})"] = learned
    elif not learned and len(names) > 1:
        choices["all, pooled (none learned by this run)"] = names
    for d in names:
        choices[d if domains[d] == LEARNED else f"{d} ({DOMAIN_WORDS.get(domains[d], domains[d])})"] = [d]
    return choices


def apart_table(pred: pd.DataFrame, domains: dict[str, str], threshold: float) -> pd.DataFrame:
    """The datasets of ``pred`` left out of the learned pool (reals only, out of domain), one row each: how the
    run knows it, images, accuracy, recall (fakes called fake) and false alarms (reals called fake) at
    ``threshold``."""
    from dfd.evaluate import metrics, outcome_row

    rows = []
    for dataset, kind in sorted(domains.items()):
        if kind == LEARNED:
            continue
        part = pred[pred["dataset"].astype(str) == dataset]
        if len(part):
            o = outcome_row(metrics(part, threshold))
            rows.append({"dataset": dataset, "the run learned": DOMAIN_WORDS.get(kind, kind), "images": o["n"],
                         "accuracy": o["accuracy"], "ROC AUC": o["roc_auc"], "recall (fakes)": o["recall"],
                         "false alarms (reals)": o["false_alarm"]})
    return pd.DataFrame(rows, columns=["dataset", "the run learned", "images", "accuracy", "ROC AUC",
                                       "recall (fakes)", "false alarms (reals)"])


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and the noun that goes with it: "1 run", "2 runs", "1,204 images" (``many``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def split_cross_dataset(cross: pd.DataFrame, openable: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of runs in ``openable``, rows of the other runs) of a cross-dataset table: a table made for a
    shipped run names runs the user cannot open (those compared when it was chosen)."""
    if cross is None or cross.empty:
        return pd.DataFrame(), pd.DataFrame()
    known = cross["run"].astype(str).isin(set(openable))
    return cross[known], cross[~known]


def described_runs(cross: pd.DataFrame, compared: pd.DataFrame) -> pd.DataFrame:
    """The grid of :func:`cross_dataset_grid` by run for runs a user cannot open, with a first column saying
    what each is: from ``compared`` (a runs_compared.csv: architecture, training data, epochs) where it lists
    the run, else what the cross-dataset table itself records (its training data)."""
    grid = cross_dataset_grid(cross, by_run=True)
    if grid.empty:
        return grid
    rows = {} if compared is None or compared.empty or "run" not in compared else \
        {str(r["run"]): r for _, r in compared.iterrows()}
    first = cross.drop_duplicates("run")
    trained = dict(zip(first["run"].astype(str), first["trained_on"].fillna(MISSING).astype(str), strict=True))

    def what(name: str) -> str:
        row = rows.get(name)
        if row is None:
            return f"trained on {trained.get(name, MISSING)} (not in runs_compared.csv)"
        parts = [str(row.get("architecture", MISSING)), f"trained on {row.get('trained on', trained.get(name))}"]
        if pd.notna(row.get("epochs")) and str(row.get("epochs")).strip() not in ("", "-"):
            parts.append(plural(int(row["epochs"]), "epoch") if str(row["epochs"]).isdigit() else
                         f"{row['epochs']} epochs")
        return "; ".join(parts)

    grid.insert(0, "what it is", [what(str(n)) for n in grid.index])
    grid.index.name = "run"
    return grid


def datasets_in(pred: pd.DataFrame) -> list[str]:
    """The dataset names in a predictions table (sorted; unnamed rows left out)."""
    if pred is None or "dataset" not in getattr(pred, "columns", []):
        return []
    return sorted({str(d) for d in pred["dataset"].dropna() if str(d).strip()})


def named(datasets: Iterable[str], fallback: str = "unnamed data") -> str:
    """``a + b`` for a list of dataset names, ``fallback`` for none."""
    names = [str(d) for d in datasets if d]
    return " + ".join(names) if names else fallback


def for_display(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A copy to show: floats rounded to ``digits`` as text, and every missing value (None, NaN) as "n/a"."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_float_dtype(values):
            out[col] = [_num(v, digits) for v in values]
        else:
            out[col] = [MISSING if v is None or (np.ndim(v) == 0 and pd.isna(v)) else v
                        for v in values.astype(object)]
    return out


def size_curves(sizes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """sizes.csv (dfd.evaluate.size_sweep) as lines to draw over source size, by measure: accuracy per dataset,
    recall per generator (a dataset's fakes where they name none), false alarms per real source (a dataset's
    reals where they name none). Each frame: px, rate, n, line; native size (0) left out."""
    if sizes is None or sizes.empty:
        return {}
    t = sizes[sizes["size"].astype(int) > 0].assign(px=lambda f: f["size"].astype(int))
    named = t[~t["group"].isin(["all", "fakes", "reals"])]
    has_gen = set(named.loc[named["measure"] == "recall", "dataset"])
    has_src = set(named.loc[named["measure"] == "false alarm", "dataset"])
    acc = t[t["group"] == "all"].assign(line=lambda f: f["dataset"])
    rec = t[(t["measure"] == "recall") & ~((t["group"] == "fakes") & t["dataset"].isin(has_gen))]
    fa = t[(t["measure"] == "false alarm") & ~((t["group"] == "reals") & t["dataset"].isin(has_src))]
    out = {}
    for label, part in (("accuracy", acc), ("recall per generator", rec), ("false alarms per real source", fa)):
        part = part.assign(line=[d if g in ("all", "fakes", "reals") else f"{d} / {g}"
                                 for d, g in zip(part["dataset"], part["group"], strict=True)])
        if len(part):
            out[label] = part[["px", "rate", "n", "line"]].dropna(subset=["rate"]).reset_index(drop=True)
    return out
