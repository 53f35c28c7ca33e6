"""The model card's figures, made from a run's own files.

A model card (``models/README.md``) quotes its tables between markers::

    <!-- dfd-card:datasets -->
    | dataset | ... |
    <!-- /dfd-card:datasets -->

:func:`sections` renders every table from the run folder (predictions.csv, calibration.json, robustness.csv,
robustness_by_dataset.csv, cross_dataset.csv, sizes.csv, tflite.json, runs_compared.csv); ``python -m dfd card RUN``
prints them, ``python -m dfd card RUN --fill CARD`` prints the card with its tables remade, and
``python -m dfd card RUN --check CARD`` (and the tests) compare a card with them cell by cell, so a card cannot
drift from its run. Served figures are at the run's own threshold on calibrated P(fake),
as the app and the CLI serve them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dfd import evaluate, runs

MARK = re.compile(r"<!-- dfd-card:(?P<name>[a-z_]+) -->\n(?P<body>.*?)<!-- /dfd-card:(?P=name) -->", re.S)
GENERATOR_NAMES = {"stylegan2": "StyleGAN2 (thispersondoesnotexist)", "sd2.1": "Stable Diffusion 2.1",
                   "flux1-dev": "Flux.1-dev", "sdxl": "SDXL (RealVisXL)"}


def _group_name(group: str, kind: str) -> str:
    """A generator_rates group as the card names it: "reals", "reals: <source>" or the generator's name."""
    if group == "real":
        return "reals"
    return f"reals: {group}" if kind == "false alarm" else GENERATOR_NAMES.get(group, group)


def _f3(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{float(v):.3f}"


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(nothing in this run's files)_\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def served(run: runs.Run, split: str = "test") -> pd.DataFrame:
    """The run's recorded predictions of ``split`` with P(fake) after its temperature (as served)."""
    pred = run.predictions()
    pred = pred[pred["split"] == split]
    return pred.assign(p_fake=evaluate.apply_temperature(pred["p_fake"].to_numpy(), run.temperature))


def datasets_table(run: runs.Run, split: str = "test") -> pd.DataFrame:
    """Per dataset: images, accuracy, recall on fakes, false alarms on reals (served threshold), ROC AUC."""
    pred, rows = served(run, split), []
    for dataset, part in pred.groupby("dataset", sort=True):
        m = evaluate.metrics(part, run.threshold)
        o = evaluate.outcome_row(m)
        rows.append({"dataset": dataset, "images (real / fake)": f"{m['n']} ({m['n_real']} / {m['n_fake']})",
                     "accuracy": _f3(o["accuracy"]), "recall (fakes caught)": _f3(o["recall"]),
                     "false alarms (reals called fake)": _f3(o["false_alarm"]), "ROC AUC": _f3(o["roc_auc"])})
    return pd.DataFrame(rows)


def generators_table(run: runs.Run, split: str = "test") -> pd.DataFrame:
    """Per dataset whose fakes name their generator or whose reals name their source: recall per generator,
    false alarms on its reals and on each real source's."""
    rates = evaluate.generator_rates(served(run, split), run.threshold)
    return pd.DataFrame({
        "dataset": rates["dataset"],
        "images": [_group_name(g, k) for g, k in zip(rates["group"], rates["kind"], strict=True)],
        "measure": rates["kind"], "rate": rates["rate"].map(_f3),
        "called fake / n": [f"{c} / {n}" for c, n in zip(rates["caught"], rates["n"], strict=True)]})


def calibration_table(run: runs.Run) -> pd.DataFrame:
    c = run.calibration()
    keys = [("temperature", "temperature"), ("threshold", "served threshold"),
            ("max_false_alarm", "false-alarm cap on val"), ("false_alarm_at_threshold", "val false alarms"),
            ("accuracy_at_threshold", "val accuracy"), ("ece_before", "val ECE before"),
            ("ece_after", "val ECE after"), ("test_ece_before", "test ECE before"),
            ("test_ece_after", "test ECE after"), ("test_accuracy_at_threshold", "test accuracy")]
    return pd.DataFrame([{"": label, "value": _f3(c.get(key))} for key, label in keys if key in c])


def _csv_table(path: Path, numeric: tuple[str, ...], dtype: Any = None) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=dtype, keep_default_na=dtype is None) if path.exists() else pd.DataFrame()
    if "level" in frame:
        frame["level"] = frame["level"].map(lambda v: f"{float(v):g}")
    for col in numeric:
        if col in frame:
            frame[col] = frame[col].map(_f3)
    return frame.fillna("-")


def robustness_table(run: runs.Run) -> pd.DataFrame:
    return _csv_table(run.path / "robustness.csv", ("accuracy", "roc_auc", "recall", "false_alarm"))


def robustness_by_dataset_table(run: runs.Run) -> pd.DataFrame:
    return _csv_table(run.path / "robustness_by_dataset.csv", ("accuracy", "roc_auc", "recall", "false_alarm"))


def cross_dataset_table(run: runs.Run) -> pd.DataFrame:
    return _csv_table(run.path / "cross_dataset.csv", ("accuracy", "roc_auc", "recall", "false_alarm"))


def sizes_table(run: runs.Run) -> pd.DataFrame:
    """sizes.csv (``python -m dfd sizes``): each measure at native size and at each source size, a column each."""
    path = run.path / "sizes.csv"
    return sizes_wide(pd.read_csv(path)) if path.exists() else pd.DataFrame()


def sizes_wide(table: pd.DataFrame) -> pd.DataFrame:
    """A sizes.csv table with one column a size (native first), rates at three decimals."""
    table = table.copy()
    table["size"] = table["size"].map(lambda v: "native" if int(v) == 0 else f"{int(v)} px")
    table["images"] = [g if g in ("all", "fakes", "reals") else _group_name(g, k)
                       for g, k in zip(table["group"], table["measure"], strict=True)]
    wide = table.pivot_table(index=["dataset", "images", "measure"], columns="size", values="rate", sort=False)
    order = ["native", *sorted((c for c in wide.columns if c != "native"), key=lambda c: int(c.split()[0]))]
    return wide[order].reset_index().rename_axis(columns=None).map(lambda v: v if isinstance(v, str) else _f3(v))


def tflite_table(run: runs.Run) -> pd.DataFrame:
    """The TensorFlow Lite figures that ``bench/tflite.py --record`` measured (tflite.json)."""
    info = runs.read_json(run.path / "tflite.json", {}) or {}
    rows = []
    for row in info.get("engines", []):
        rows.append({"engine": row["engine"], "file (KB)": f"{row['kb']:,.0f}", "ms / image": f"{row['ms']:.1f}",
                     "accuracy": _f3(row["accuracy"]), "ROC AUC": _f3(row["roc_auc"]),
                     "verdicts changed vs Keras": f"{row['changed']} / {row['n']}"})
    return pd.DataFrame(rows)


def runs_compared_table(run: runs.Run) -> pd.DataFrame:
    """runs_compared.csv: every run tried for this detector (``python -m dfd card --compare RUN... --csv F``)."""
    return _csv_table(run.path / "runs_compared.csv", (), dtype=str)


def compare(run_refs: list[runs.Run | str | Path], split: str = "test") -> pd.DataFrame:
    """One row per run: what it is (architecture with ImageNet weights and its arguments, input px, parameters,
    training data, minutes), its pooled validation accuracy and ROC AUC at its served threshold (what runs are
    chosen on), and its served test figures (accuracy per dataset, recall per generator, false alarms on each
    dataset's reals). What ``runs_compared.csv`` holds."""
    rows = []
    for ref in run_refs:
        run = runs.get_run(ref)
        cfg = run.config
        trained = " + ".join(cfg.get("datasets_in_data") or [])
        if cfg.get("exclude_generators"):
            trained += f" (without {', '.join(cfg['exclude_generators'])})"
        if cfg.get("reals_only"):
            trained += f" ({', '.join(cfg['reals_only'])}: reals only)"
        if cfg.get("dataset_weights"):
            trained += f" ({', '.join(f'{k} x{v:g}' for k, v in cfg['dataset_weights'].items())} an epoch)"
        notes = (["ImageNet"] if cfg.get("pretrained") else []) + [
            f"{k} {v}" for k, v in (cfg.get("arch_kwargs") or {}).items()]
        if cfg.get("teacher_runs"):
            n = len(cfg["teacher_runs"])
            notes.append(f"distilled from {n} run{'s' if n != 1 else ''}")
        if (cfg.get("workers") or 1) > 1:
            notes.append(f"{cfg['workers']} workers")
        row: dict[str, Any] = {
            "run": run.name, "architecture": run.model_label + (f" ({', '.join(notes)})" if notes else ""),
            "input px": cfg.get("image_size"), "params (M)": f"{(cfg.get('params') or 0) / 1e6:.2f}",
            "trained on": trained, "epochs": cfg.get("epochs_run"),
            "train min": f"{(cfg.get('train_seconds') or 0) / 60:.0f}"}
        val = served(run, "val")  # what a run is chosen on: all its validation splits pooled
        if len(val):
            o = evaluate.outcome_row(evaluate.metrics(val, run.threshold))
            row["val acc"], row["val ROC AUC"] = _f3(o["accuracy"]), _f3(o["roc_auc"])
        pred = served(run, split)
        for dataset, part in pred.groupby("dataset", sort=True):
            o = evaluate.outcome_row(evaluate.metrics(part, run.threshold))
            row[f"{dataset} acc"] = _f3(o["accuracy"])
            row[f"{dataset} false alarms"] = _f3(o["false_alarm"])
        for r in evaluate.generator_rates(pred, run.threshold).itertuples():
            if r.group != "real":
                row[f"{r.group} {'false alarms' if r.kind == 'false alarm' else 'recall'}"] = _f3(r.rate)
        rows.append(row)
    return pd.DataFrame(rows).fillna("-")


SECTIONS: dict[str, Callable[[runs.Run], pd.DataFrame]] = {
    "datasets": datasets_table, "generators": generators_table, "calibration": calibration_table,
    "robustness": robustness_table, "robustness_by_dataset": robustness_by_dataset_table,
    "cross_dataset": cross_dataset_table, "sizes": sizes_table, "tflite": tflite_table, "runs_compared": runs_compared_table,
}


def sections(run: runs.Run | str | Path) -> dict[str, str]:
    """Every card table of the run, as markdown, by section name."""
    run = runs.get_run(run)
    return {name: _markdown(make(run)) for name, make in SECTIONS.items()}


def render(run: runs.Run | str | Path) -> str:
    """All sections wrapped in their markers, ready to paste into a card."""
    return "\n".join(f"<!-- dfd-card:{n} -->\n{body}<!-- /dfd-card:{n} -->\n" for n, body in sections(run).items())


def fill(card_text: str, run: runs.Run | str | Path) -> str:
    """``card_text`` with the body of every marked section remade from the run's files (the prose around the
    markers is kept; a section the card lacks is not added: :func:`check` reports it)."""
    made = sections(run)
    return MARK.sub(lambda m: m.group(0) if m["name"] not in made else
                    f"<!-- dfd-card:{m['name']} -->\n{made[m['name']]}<!-- /dfd-card:{m['name']} -->", card_text)


def check(card_text: str, run: runs.Run | str | Path) -> list[str]:
    """What in ``card_text`` differs from the run's files: one line per differing or missing section."""
    expected = sections(run)
    found = {m["name"]: m["body"] for m in MARK.finditer(card_text)}
    problems = [f"section {n!r} is missing from the card" for n in expected if n not in found]
    problems += [f"section {n!r} is not a section dfd makes" for n in found if n not in expected]
    for name in expected.keys() & found.keys():
        want, got = expected[name].splitlines(), found[name].splitlines()
        if want != got:
            diff = next((f"line {i + 1}: card {g!r}, files {w!r}" for i, (w, g) in enumerate(zip(want, got, strict=False))
                         if w != g), f"card has {len(got)} lines, files give {len(want)}")
            problems.append(f"section {name!r} differs from the run's files ({diff})")
    return problems
