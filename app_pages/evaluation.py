"""Evaluation of one run: metrics and confusion matrix at a threshold, ROC/PR, reliability, robustness, errors.

Each section says where its numbers come from: the predictions chosen at the top (the run's own val/test
predictions, or a later evaluation on other data) or the robustness and cross-dataset files it shows.
"""

from __future__ import annotations

import os

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app_pages import _shared

st.title("Evaluation")
run = _shared.require_run()
if run is None:
    st.stop()
from dfd import evaluate, views  # noqa: E402 - scikit-learn loads in ~1 s: only once there is a run to evaluate

own_pred = run.predictions()
sources = {f"Run's own predictions ({views.named(views.datasets_in(own_pred))})": None}
for tag_ in run.evals():
    sources[f"Evaluated on {views.named(views.datasets_in(run.eval_predictions(tag_)), tag_)} ({tag_})"] = tag_
if st.session_state.get("ev_source_next") in sources:  # set by "Evaluate" below, before the widget exists
    st.session_state["ev_source"] = st.session_state.pop("ev_source_next")
c1, c2, c3 = st.columns([2, 1, 1])
source = c1.selectbox("Predictions", list(sources), key="ev_source",
                      help="A run's own val/test predictions (its predictions.csv), or an evaluation on other "
                           "data (`python -m dfd evaluate <run> <folder>`), kept as a record in the user runs "
                           "folder's _evals/.")
tag = sources[source]

with st.expander("Evaluate this run on the dataset chosen in the sidebar (cross-dataset check)",
                 icon=":material/swap_horiz:"):
    root, err = _shared.dataset_root()
    if root is None:
        st.caption(err)
    else:
        st.caption(f"{_shared.dataset_label()}: predicts its test split with this run's model and keeps the result "
                   f"as a new record in `{run.records_dir}` (the run itself is not changed). Detectors usually do "
                   "much worse on data unlike their training data.")
        limit = st.number_input("Max images (0 = the whole test split)", 0, 100_000, 400, step=100, key="ev_limit")
        if st.button("Evaluate", icon=":material/play_arrow:", key="ev_run"):
            bar = st.progress(0.0, text="Loading the model...")
            try:
                out = evaluate.evaluate_run(run, root, "test", limit=int(limit) or None,
                                            progress=lambda done, total: bar.progress(
                                                done / max(total, 1),
                                                text=f"{done:,} of {views.plural(total, 'image')}"))
            except (ValueError, RuntimeError, OSError) as exc:
                st.error(f"Evaluation failed: {exc}")
            else:
                done = views.named(views.datasets_in(run.eval_predictions(out.name)), out.name)
                st.session_state["ev_source_next"] = f"Evaluated on {done} ({out.name})"
                st.rerun()

pred = own_pred if tag is None else run.eval_predictions(tag)
if tag is None:
    st.caption(f"Metrics, curves and misclassified images below: the run's own predictions.csv (its val and test "
               f"splits, {views.named(views.datasets_in(pred))}), written when it was trained, in `{run.path}`"
               + (" (a shipped run: read-only)." if run.shipped else "."))
else:
    source = run.eval_metrics(tag).get("source") or {}
    st.caption(f"Metrics, curves and misclassified images below: a later evaluation of this run on "
               f"{views.named(views.datasets_in(pred), tag)} ({source.get('split', '?')} split, "
               f"`{source.get('data', '?')}`), from {run.eval_record(tag).label}. The robustness and "
               "cross-dataset sections further down come from their own files, not from this evaluation.")
if pred.empty:
    st.info(f"Run **{run.name}** has no predictions to evaluate (status: {run.status}). A run writes them "
            "when training ends; an interrupted run may have none.")
    st.stop()
splits = [s for s in ("test", "val", "train", "all") if s in set(pred["split"].astype(str))]
split = c2.selectbox("Split", splits, key="ev_split")
domains = {d: evaluate.domain_of(run, d) for d in views.datasets_in(pred)}
choices = views.dataset_choices(domains)
if st.session_state.get("ev_dataset") not in choices:
    st.session_state.pop("ev_dataset", None)
dataset = c3.selectbox("Dataset", list(choices), key="ev_dataset",
                       help="The run's learned datasets are pooled; a dataset it learned only the real photos of, "
                            "or never learned, is judged by itself.") if len(choices) > 1 else next(iter(choices), None)
in_split = pred[pred["split"].astype(str) == split]
part = in_split[in_split["dataset"].astype(str).isin(choices[dataset])] if dataset is not None else in_split
apart = {d: k for d, k in domains.items() if dataset is not None and d not in choices[dataset]}

calibrated = False
if run.temperature != 1.0:
    calibrated = st.toggle(f"Calibrated probabilities (temperature {run.temperature:.2f} from calibration.json)",
                           True, key="ev_calibrated")
if calibrated:
    part = part.assign(p_fake=evaluate.apply_temperature(part["p_fake"].to_numpy(), run.temperature))
    in_split = in_split.assign(p_fake=evaluate.apply_temperature(in_split["p_fake"].to_numpy(), run.temperature))
default_thr = run.threshold if (calibrated or run.temperature == 1.0) else 0.5
threshold = st.slider("Threshold on P(fake)", 0.0, 1.0, float(default_thr), 0.01,
                      key=f"ev_threshold_{run.name}_{calibrated}",
                      help=f"The run's threshold is {run.threshold:.2f}. Images with P(fake) ≥ threshold are "
                           "called fake.")
m = evaluate.metrics(part, threshold)


def fmt(v: float | None) -> str:
    return views.MISSING if v is None else f"{v:.3f}"


cols = st.columns(6)
for col, (label, key) in zip(cols, [("Accuracy", "accuracy"), ("Precision", "precision"), ("Recall", "recall"),
                                    ("F1", "f1"), ("ROC AUC", "roc_auc"), ("ECE", "ece")], strict=True):
    col.metric(label, fmt(m.get(key)))
st.caption(f"{views.plural(m['n'], 'image')} ({m['n_real']:,} real, {m['n_fake']:,} fake"
           + (f", of {dataset if len(choices[dataset]) == 1 else views.named(choices[dataset])}"
              if dataset is not None else "") + ")"
           + (f"; {m['n_unreadable']} unreadable left out" if m["n_unreadable"] else "")
           + ". Fake is the positive class; precision and recall are for 'fake'.")
if apart and dataset == next(iter(choices)):  # the headline (the learned pool): the others apart, labelled
    st.markdown(f"**Not pooled above** ({split} split, threshold {threshold:.2f}): datasets this run did not "
                "learn, or learned only the real photos of; it was never taught their fakes, so they are judged "
                "apart, each by itself")
    st.dataframe(views.for_display(views.apart_table(in_split, apart, threshold)), hide_index=True, key="ev_apart")
rates = evaluate.generator_rates(part, threshold)
if len(rates):
    st.markdown(f"**Per generator and real source** (threshold {threshold:.2f}): recall on each generator's "
                "fakes, and the false-alarm rate on the dataset's reals (\"real\") and on each source of reals")
    st.dataframe(rates.drop(columns="split").rename(columns={"group": "generator / reals / source",
                                                             "caught": "called fake"}),
                 hide_index=True, column_config={"rate": st.column_config.NumberColumn(format="%.3f")})

# ---------------------------------------------------------------------------------------------- confusion
cm = m["confusion"]
normalised = views.normalise_confusion(cm)
a, b = st.columns(2)
for col, z, title, fmt_s in [(a, cm, "Confusion matrix (counts)", ".0f"),
                             (b, normalised, "Normalised by true class", ".2f")]:
    fig = go.Figure(go.Heatmap(z=z, x=["predicted real", "predicted fake"], y=["true real", "true fake"],
                               colorscale="Blues", showscale=False, text=z, texttemplate=f"%{{text:{fmt_s}}}",
                               textfont=dict(size=18)))
    fig.update_layout(title=title, height=330, margin=dict(t=40, b=10), yaxis=dict(autorange="reversed"))
    col.plotly_chart(fig, key=f"cm_{title}")

# ---------------------------------------------------------------------------------------------- curves
roc, prc, rel = evaluate.roc(part), evaluate.pr(part), evaluate.reliability(part)
a, b, c = st.columns(3)
if len(roc):
    fig = px.line(roc, x="fpr", y="tpr", title=f"ROC (AUC {fmt(m.get('roc_auc'))})",
                  labels={"fpr": "false positive rate", "tpr": "true positive rate"})
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line=dict(dash="dot", color="grey"))
    fpr_at, tpr_at = views.roc_point(cm)
    if fpr_at is not None and tpr_at is not None:
        fig.add_trace(go.Scatter(x=[fpr_at], y=[tpr_at], mode="markers", marker=dict(size=11, color="#c2185b"),
                                 name=f"threshold {threshold:.2f}"))
    fig.update_layout(height=340, margin=dict(t=40, b=10), showlegend=False)
    a.plotly_chart(fig, key="roc")
    fig = px.line(prc, x="recall", y="precision", title=f"Precision-recall (AP {fmt(m.get('average_precision'))})")
    fig.update_layout(height=340, margin=dict(t=40, b=10), yaxis_range=[0, 1.02])
    b.plotly_chart(fig, key="pr")
else:
    a.info("ROC and PR curves need both classes in the selection.")
if len(rel):
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="perfect"),
        go.Scatter(x=rel["mean_p_fake"], y=rel["frac_fake"], mode="lines+markers", name="model",
                   text=[views.plural(int(c), "image") for c in rel["count"]],
                   hovertemplate="mean P(fake) %{x:.2f}<br>fraction fake %{y:.2f}<br>%{text}"),
    ])
    fig.update_layout(title=f"Reliability (ECE {fmt(m.get('ece'))})", height=340, margin=dict(t=40, b=10),
                      xaxis_title="mean P(fake) in bin", yaxis_title="fraction fake", showlegend=False)
    c.plotly_chart(fig, key="reliability")

# ---------------------------------------------------------------------------------------------- inconclusive
st.subheader("Inconclusive: decided share against accuracy")
served_scale = calibrated or run.temperature == 1.0
band = evaluate.band_at(run.band, run.threshold, threshold) if served_scale else None
curve = evaluate.risk_coverage(in_split, threshold)
if curve.empty:
    st.caption("No predictions to draw the trade-off from.")
else:
    fig = px.line(curve, x="coverage", y="accuracy", color="dataset", hover_data=["decided", "n"],
                  labels={"coverage": "share of images decided", "accuracy": "accuracy on the decided images"})
    outcome = evaluate.band_outcome(in_split, threshold, band)
    if band is not None:
        fig.add_trace(go.Scatter(x=outcome["decided"].tolist(), y=outcome["accuracy_decided"].tolist(), mode="markers",
                                 marker=dict(size=12, symbol="diamond", color="black"), name="the run's band",
                                 text=outcome["dataset"], hovertemplate="%{text}: %{x:.3f} decided, "
                                 "accuracy %{y:.3f}<extra>the run's band</extra>"))
    fig.update_layout(height=360, margin=dict(t=20, b=10))
    fig.update_xaxes(autorange="reversed")
    st.plotly_chart(fig, key="risk_coverage")
    if band is not None:
        st.caption(f"Each line ({split} split, threshold {threshold:.2f}): the images farthest from the threshold "
                   f"decided first, the rest inconclusive. Diamonds: the run's band, P(fake) "
                   f"{band[0]:.3f} to {band[1]:.3f} inconclusive ({run.band_source}; rule: {evaluate.BAND_RULE}). "
                   "The Detect page also calls a face inconclusive when a light re-save flips its verdict, which "
                   "these predictions (one P(fake) an image) cannot show.")
    else:
        st.caption(f"Each line ({split} split, threshold {threshold:.2f}): the images farthest from the threshold "
                   "decided first, the rest inconclusive. "
                   + ("This run has no inconclusive band (uncalibrated, or no band raised its validation accuracy)."
                      if served_scale else "The run's band is on calibrated probabilities: turn them on above."))
    st.dataframe(views.for_display(outcome.rename(columns={
        "decided": "share decided", "accuracy": f"accuracy (all, at {threshold:.2f})",
        "accuracy_decided": "accuracy (decided)", "gain": "gain"})), hide_index=True, key="ev_band")

# ---------------------------------------------------------------------------------------------- robustness
st.subheader("Robustness")
rob, found = _shared.record_table(run, "robustness", "robustness.csv", "Robustness from", "rob_source",
                                  run.robustness)
if rob.empty:
    st.caption("No robustness sweep for this run. Make one with "
               f"`python -m dfd robustness {run.name} <folder>` (JPEG, blur and noise sweeps).")
else:
    info = found[-1].info
    st.caption(f"From {found[-1].label}"
               + (f" ({views.named(info.get('datasets') or [])}, {info.get('split', '?')} split, "
                  f"{views.plural(info['n_images'], 'image') if 'n_images' in info else '? images'})"
                  if info.get("datasets") else "")
               + ": the datasets the run was trained on, pooled, at its served threshold "
               "(robustness_by_dataset.csv there has each dataset)"
               + ("; not from the evaluation chosen at the top." if tag is not None else "."))
    metric = st.segmented_control("Metric", ["accuracy", "roc_auc"], default="accuracy", key="rob_metric") \
        or "accuracy"
    clean = rob[rob["perturbation"] == "none"]
    a_cols = st.columns(max(1, rob[rob["perturbation"] != "none"]["perturbation"].nunique()))
    for col, (kind, group) in zip(a_cols, rob[rob["perturbation"] != "none"].groupby("perturbation"),
                                  strict=False):
        group = group.sort_values("level", ascending=(kind != "jpeg"))
        fig = px.line(group, x="level", y=metric, markers=True, title=kind)
        if len(clean):
            fig.add_hline(y=float(clean[metric].iloc[0]), line_dash="dot", annotation_text="clean")
        fig.update_layout(height=280, margin=dict(t=40, b=10), yaxis_range=[0, 1.02])
        if kind == "jpeg":
            fig.update_xaxes(autorange="reversed", title="JPEG quality (lower = stronger)")
        else:
            fig.update_xaxes(title={"blur": "blur sigma (px)", "noise": "noise std (0..255)"}.get(kind, "level"))
        col.plotly_chart(fig, key=f"rob_{kind}")
    st.dataframe(views.for_display(rob), hide_index=True, key="rob_table")

# ---------------------------------------------------------------------------------------------- face sizes
st.subheader("Face size")
sizes, found = _shared.record_table(run, "sizes", "sizes.csv", "Size sweep from", "sizes_source", run.sizes)
if sizes.empty:
    st.caption("No size sweep for this run. Make one with "
               f"`python -m dfd sizes {run.name} <folder>` (each test face at 96 to 512 px).")
else:
    st.caption(f"From {found[-1].label if found else 'the run folder (sizes.csv)'}: each test image brought to each "
               "source size (area down, bicubic up, saved once as JPEG q90), then judged as served, at the run's "
               "threshold. A detector that learned one size of face may lose its fakes at another.")
    curves = views.size_curves(sizes)
    measure = st.segmented_control("Measure", list(curves), default=next(iter(curves)), key="sizes_measure") \
        or next(iter(curves))
    data = curves[measure]
    fig = px.line(data, x="px", y="rate", color="line", markers=True, hover_data=["n"],
                  labels={"px": "source size (px)", "rate": measure, "line": ""})
    fig.update_layout(height=340, margin=dict(t=20, b=10), yaxis_range=[0, 1.02])
    fig.update_xaxes(type="log", tickvals=sorted(data["px"].unique()))
    st.plotly_chart(fig, key="sizes_chart")
    st.caption("The table has every figure, native size (0) included.")
    st.dataframe(views.for_display(sizes), hide_index=True, key="sizes_table")

# ---------------------------------------------------------------------------------------------- across datasets
st.subheader("Across datasets")
cross, found = _shared.record_table(run, "cross-dataset", "cross_dataset.csv", "Cross-dataset table from",
                                    "cross_source", run.cross_dataset)
if cross.empty:
    st.caption("No cross-dataset table for this run. Make one with `python -m dfd cross-dataset "
               f"{run.name} <runs trained on other datasets> --data <folder>`.")
else:
    st.caption(f"From {found[-1].label}"
               + (", not from the evaluation chosen at the top." if tag is not None else "."))
    mine, others = views.split_cross_dataset(cross, {r.name for r in _shared.list_runs()} | {run.name})
    if len(mine):
        st.dataframe(views.cross_dataset_grid(mine), key="cross_table")
    st.caption("Test accuracy / ROC AUC of detectors trained on some datasets and scored on each; (in) marks "
               "the datasets a detector was trained on. Detectors travel badly: expect near 0.5 out of domain.")
    if len(others):
        n_others = others["run"].nunique()
        with st.expander(f"{views.plural(n_others, 'more detector')} in this table, not among your runs",
                         expanded=not len(mine)):
            st.caption(f"Scored when the table was made (for a shipped run: the runs compared when it was chosen); "
                       f"they are not in the run picker. What each is comes from {run.name}'s runs_compared.csv "
                       "where it lists the run, else from the table itself.")
            st.dataframe(views.described_runs(others, run.runs_compared()), key="cross_others")

# ---------------------------------------------------------------------------------------------- errors
st.subheader("Misclassified images")
wrong = views.misclassified(part, threshold)
if wrong.empty:
    st.success("No misclassified images at this threshold.")
else:
    present = wrong[[os.path.exists(p) for p in wrong["path"]]]
    st.caption(f"{len(wrong):,} misclassified at threshold {threshold:.2f}, most confident first"
               + (f"; {len(wrong) - len(present):,} of them are not on this machine and are listed only"
                  if len(present) < len(wrong) else "") + ".")
    per_page = 12
    pages = max(1, -(-len(present) // per_page))
    page = st.number_input(f"Page (of {pages})", 1, pages, key="ev_err_page") if pages > 1 else 1
    grid = st.columns(6)
    for i, row in enumerate(present.iloc[(page - 1) * per_page: page * per_page].itertuples()):
        thumb = _shared.thumbnail(row.path, 160)
        truth = "fake" if int(row.label) == 1 else "real"
        with grid[i % 6]:
            if isinstance(thumb, str):
                st.error(thumb)
            else:
                st.image(thumb, width="stretch",
                         caption=f"{os.path.basename(row.path)} · true {truth} · P(fake) {row.p_fake:.2f}")
    with st.expander("All misclassified images (table)"):
        st.dataframe(views.for_display(wrong[["path", "label", "p_fake", "dataset"]]), hide_index=True,
                     key="ev_wrong_table")
