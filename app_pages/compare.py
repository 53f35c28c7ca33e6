"""Compare runs: a table of every run; overlay curves, compare metrics and configs of the ones picked."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from app_pages import _charts, _shared
from dfd import tables, views

st.title("Compare runs")
runs = _shared.list_runs()
if not runs:
    _shared.require_run()
    st.stop()

table = tables.runs_table(runs)
st.dataframe(table, hide_index=True, key="runs_table", placeholder=tables.MISSING, column_config={
    "params": st.column_config.NumberColumn(format="compact"),
    **{c: st.column_config.NumberColumn(format="%.3f") for c in
       ("threshold", "val acc", "val AUC", "test acc", "test AUC", "test F1")},
    **{c: st.column_config.NumberColumn(format="%d") for c in ("image size", "epochs", "test images")},
    "train time (s)": st.column_config.NumberColumn(format="%.0f"),
})
st.caption(f"{views.plural(len(runs), 'run')}: yours in `{_shared.runs_root()}` (newest first), then the shipped ones in "
           f"`{_shared.shipped_root()}`. {tables.THRESHOLD_NOTE}")

names = [r.name for r in runs]
picked = st.multiselect("Runs to compare", names, default=names[: min(3, len(names))], key="cmp_runs")
if len(picked) < 1:
    st.info("Pick one or more runs.")
    st.stop()
chosen = [r for r in runs if r.name in picked]

st.subheader("Curves")
metric = st.segmented_control("Curve", ["val_accuracy", "val_loss", "accuracy", "loss", "val_auc"],
                              default="val_accuracy", key="cmp_curve") or "val_accuracy"
_charts.curves({k: v for r in chosen for k, v in _charts.histories(r).items()}, [metric], key="cmp_curves",
               height=360)

st.subheader("Test metrics")
tested_on = tables.test_sets(chosen)
bars = table[table["run"].isin(picked)].melt(id_vars="run", value_vars=["test acc", "test AUC", "test F1",
                                                                       "val acc"],
                                             var_name="metric", value_name="value").dropna()
bars["tested on"] = bars["run"].map(tested_on)
test_sets = sorted(bars["tested on"].unique())
if len(test_sets) > 1:
    st.caption(f"The picked runs were tested on {len(test_sets)} different test sets, so their numbers do not "
               "compare across sets: one panel a test set (its datasets and images; val acc on the same datasets' "
               "validation split). Accuracy and F1 at each run's served threshold; ROC AUC does not depend on a "
               "threshold.")
else:
    st.caption("Accuracy and F1 at each run's served threshold; ROC AUC does not depend on a threshold."
               + (f" Every picked run was tested on the same images: {test_sets[0]}." if test_sets else ""))
if bars.empty:
    st.caption("The picked runs have no test metrics (interrupted before evaluation?).")
else:
    fig = px.bar(bars, x="metric", y="value", color="run", barmode="group", text_auto=".3f",
                 facet_col="tested on" if len(test_sets) > 1 else None, facet_col_wrap=2,
                 category_orders={"tested on": test_sets})
    fig.for_each_annotation(lambda a: a.update(text="tested on " + a.text.split("=", 1)[-1]))
    fig.update_layout(height=360 * (1 + (len(test_sets) - 1) // 2), margin=dict(t=40, b=10))
    fig.update_yaxes(range=[0, 1.05])
    st.plotly_chart(fig, key="cmp_bars")

st.subheader("Across datasets")
cross = tables.evals_table(chosen)
if cross.empty or (cross["source"] == "own test split").all():
    st.caption("No evaluation on other data yet: use *Evaluate this run on the dataset chosen in the sidebar* "
               "on the Evaluation page, or `python -m dfd evaluate <run> <folder>`.")
if not cross.empty:
    st.caption("Accuracy at each run's served threshold, on each dataset of its own test split and of every "
               "evaluation (the source column says which).")
    shown = cross.assign(bar=cross["evaluated on"] + " · " + cross["source"])
    fig = px.bar(shown, x="bar", y="accuracy", color="run", barmode="group", text_auto=".2f",
                 hover_data=["images", "ROC AUC", "threshold"], labels={"bar": "evaluated on · source"})
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    fig.update_layout(height=340, margin=dict(t=20, b=10), yaxis_range=[0, 1.05])
    st.plotly_chart(fig, key="cmp_cross")
    st.dataframe(cross, hide_index=True, key="cmp_cross_table", placeholder=tables.MISSING)

st.subheader("Config differences")
if len(chosen) < 2:
    st.caption("Pick at least two runs to see how their configurations differ.")
else:
    diff = tables.config_diff(chosen)
    if diff.empty:
        st.caption("The picked runs have identical configurations.")
    else:
        st.dataframe(diff, key="cmp_diff", height=min(36 * (len(diff) + 1) + 4, 700))
