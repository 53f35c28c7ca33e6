"""Charts shared by the pages: training curves (the Training page and the Compare page draw them alike), and
the one order and pair of colours of real and fake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

CLASS_ORDER = ["real", "fake"]
CLASS_COLORS = {"real": "#2e7d32", "fake": "#c62828"}
"""One order and one pair of colours for real and fake in every chart (use :func:`by_class`)."""


def by_class(column: str = "class") -> dict[str, Any]:
    """Plotly Express arguments that draw ``column`` (values "real" / "fake") in :data:`CLASS_ORDER` and
    :data:`CLASS_COLORS`."""
    return {"color_discrete_map": CLASS_COLORS, "category_orders": {column: CLASS_ORDER}}


def histories(run: Any) -> dict[str, pd.DataFrame]:
    """A run's history.csv by label: ``{run name: history}``, or for an ensemble (no history of its own)
    each member's as ``{"run/member": history}``."""
    members = run.member_histories()
    if members:
        return {f"{run.name}/{name}": h for name, h in members.items()}
    return {run.name: run.history()}


def curves(by_label: Mapping[str, pd.DataFrame], metrics: Sequence[str], *, key: str, title: str | None = None,
           height: int = 320) -> bool:
    """One line a (history, metric) over epochs, from history.csv frames by label. Several histories are
    told apart by colour (and train/validation by dash); one history's metrics by colour. Returns False
    (after a caption saying so) when none of them recorded any of ``metrics``."""
    frames = []
    for label, h in by_label.items():
        cols = [m for m in metrics if m in h.columns]
        if h.empty or "epoch" not in h.columns or not cols:
            continue
        long = h.melt(id_vars="epoch", value_vars=cols, var_name="metric", value_name="value")
        frames.append(long.assign(run=label))
    if not frames:
        st.caption(f"No {' or '.join(metrics)} recorded.")
        return False
    data = pd.concat(frames, ignore_index=True)
    data["series"] = data["metric"].map(lambda c: "validation" if c.startswith("val_") else "train")
    several = data["run"].nunique() > 1
    one_metric = data["metric"].str.removeprefix("val_").nunique() == 1
    colour = "run" if several else ("series" if one_metric else "metric")
    dash = "series" if several and data["series"].nunique() > 1 else None
    label = metrics[0].removeprefix("val_") if one_metric else "value"
    fig = px.line(data, x="epoch", y="value", color=colour, line_dash=dash, markers=True, title=title,
                  labels={"value": label})
    fig.update_layout(height=height, margin=dict(t=40 if title else 20, b=10), legend_title_text="")
    fig.update_xaxes(dtick=1)
    st.plotly_chart(fig, key=key)
    singles = [str(r) for r, g in data.groupby("run", sort=False) if g["epoch"].nunique() == 1]
    if singles:  # a one-epoch history is a dot, not a curve: say why
        who = "One epoch recorded" if not several else f"{', '.join(singles)}: one epoch recorded"
        st.caption(f"{who}, so each metric is a single point, not a curve (a curve needs two epochs or more).")
    return True
