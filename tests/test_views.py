"""dfd.views: the Evaluation page's tables and numbers, checked against hand-counted cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dfd import evaluate, views


def _pred(rows):
    return pd.DataFrame(rows, columns=["path", "label", "p_fake", "split", "dataset"])


PRED = _pred([
    ("r1.jpg", 0, 0.10, "test", "a"), ("r2.jpg", 0, 0.55, "test", "a"), ("r3.jpg", 0, 0.95, "test", "b"),
    ("f1.jpg", 1, 0.90, "test", "a"), ("f2.jpg", 1, 0.45, "test", "b"), ("f3.jpg", 1, 0.70, "test", "b"),
    ("f4.jpg", 1, float("nan"), "test", "b"),  # unreadable
])


def test_confusion_normalised_by_true_class():
    cm = evaluate.metrics(PRED, 0.5)["confusion"]
    assert cm == [[1, 2], [1, 2]]
    np.testing.assert_allclose(views.normalise_confusion(cm), [[1 / 3, 2 / 3], [1 / 3, 2 / 3]])
    np.testing.assert_allclose(views.normalise_confusion([[0, 0], [1, 3]]), [[0, 0], [0.25, 0.75]])


def test_roc_point_at_the_threshold_lies_on_the_roc_curve():
    for threshold in (0.5, 0.6, 0.92):
        fpr, tpr = views.roc_point(evaluate.metrics(PRED, threshold)["confusion"])
        y, p = PRED.dropna()["label"], PRED.dropna()["p_fake"]
        assert fpr == pytest.approx(((p >= threshold) & (y == 0)).sum() / 3)
        assert tpr == pytest.approx(((p >= threshold) & (y == 1)).sum() / 3)
        curve = evaluate.roc(PRED)
        assert ((curve["fpr"] - fpr).abs() + (curve["tpr"] - tpr).abs()).min() < 1e-9
    assert views.roc_point([[0, 0], [1, 3]]) == (None, 0.75), "no real images: no false positive rate"


def test_misclassified_most_confident_first_and_unreadable_left_out():
    wrong = views.misclassified(PRED, 0.5)
    assert list(wrong["path"]) == ["r3.jpg", "r2.jpg", "f2.jpg"]
    assert list(wrong["confidence"]) == pytest.approx([0.45, 0.05, 0.05])
    assert views.misclassified(PRED, 0.0)["path"].tolist() == ["r3.jpg", "r2.jpg", "r1.jpg"]
    assert views.misclassified(PRED.iloc[0:0], 0.5).empty


def test_cross_dataset_grid_marks_in_domain_and_shows_missing_as_na():
    cross = pd.DataFrame([
        {"run": "x", "trained_on": "a", "dataset": "a", "domain": "in-domain", "n": 10, "accuracy": 0.9,
         "roc_auc": 0.95},
        {"run": "x", "trained_on": "a", "dataset": "b", "domain": "out-of-domain", "n": 10, "accuracy": 0.5,
         "roc_auc": None},
        {"run": "y", "trained_on": "b", "dataset": "b", "domain": "in-domain", "n": 10, "accuracy": 0.8,
         "roc_auc": 0.85},
    ])
    grid = views.cross_dataset_grid(cross)
    assert list(grid.index) == ["a", "b"] and list(grid.columns) == ["a", "b"]
    assert grid.loc["a", "a"] == "0.900 / 0.950 (in)"
    assert grid.loc["a", "b"] == "0.500 / n/a"
    assert grid.loc["b", "a"] == "n/a", "a pair never scored"
    twins = pd.concat([cross, cross.assign(run="z")[cross["run"] == "x"]])
    assert set(views.cross_dataset_grid(twins).index) == {"x: a", "z: a", "y: b"}


def test_dataset_names_and_display_tables_never_say_none():
    assert views.datasets_in(PRED) == ["a", "b"]
    assert views.named(views.datasets_in(PRED)) == "a + b"
    assert views.named([]) == "unnamed data"
    shown = views.for_display(PRED.assign(note=[None, "x", None, "y", None, "z", None]))
    text = shown.astype(str).to_numpy().ravel().tolist()
    assert "None" not in text and "nan" not in text and text.count("n/a") == 5
    assert shown.loc[0, "p_fake"] == "0.100"
