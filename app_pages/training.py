"""Training: curves of the selected run and of several runs overlaid; start and stop a training run."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from app_pages import _shared
from dfd import models, train

st.title("Training")


def curves(history: pd.DataFrame, metric: str, title: str, key: str) -> None:
    """Train vs validation curve of ``metric`` (a history.csv frame), or a note if it is absent."""
    cols = [c for c in (metric, f"val_{metric}") if c in history.columns]
    if history.empty or not cols:
        st.caption(f"No {metric} recorded.")
        return
    long = history.melt(id_vars="epoch", value_vars=cols, var_name="series", value_name="value")
    long["series"] = long["series"].map(lambda c: "validation" if c.startswith("val_") else "train")
    fig = px.line(long, x="epoch", y="value", color="series", markers=True, title=title, labels={"value": metric})
    fig.update_layout(height=320, margin=dict(t=40, b=10), legend_title_text="")
    fig.update_xaxes(dtick=1)
    st.plotly_chart(fig, key=key)


# ---------------------------------------------------------------------------------------------- live job
job = _shared.training_job()


@st.fragment(run_every=1.0 if job is not None and job.active else None)
def live() -> None:
    """Progress of the background training job, refreshed every second without rerunning the page."""
    job = _shared.training_job()
    if job is None:
        return
    if not job.active and st.session_state.get("train_seen") != id(job):
        st.session_state["train_seen"] = id(job)
        st.rerun()  # the whole page: the new run appears in the sidebar and curves, and polling stops
    cfg = job.config
    with st.container(border=True):
        if job.active:
            st.markdown(f"**Training `{cfg.name or cfg.architecture}`** · {cfg.architecture} · "
                        f"{cfg.image_size or models.DEFAULT_SIZES[cfg.architecture]} px · data `{cfg.data}`")
            done = min(job.epoch / max(job.epochs, 1), 1.0)
            logs = ", ".join(f"{k} {v:.3f}" for k, v in job.logs.items()
                             if k in ("loss", "accuracy", "val_loss", "val_accuracy", "auc", "val_auc"))
            st.progress(done, text=f"epoch {job.epoch:.2f} of {job.epochs} · {logs or 'starting...'} · "
                                   f"{(pd.Timestamp.now().timestamp() - job.started):.0f} s")
            if st.button("Stop training", icon=":material/stop_circle:", key="train_stop",
                         disabled=job.stop_event.is_set()):
                job.stop_event.set()
            if job.stop_event.is_set():
                st.caption("Stopping after the current batch; the run is kept as 'interrupted'.")
            if job.history:
                hist = pd.DataFrame(job.history)
                a, b = st.columns(2)
                with a:
                    curves(hist, "loss", "Loss (live)", "live_loss")
                with b:
                    curves(hist, "accuracy", "Accuracy (live)", "live_acc")
        elif job.status == "failed":
            st.error(f"Training failed: {job.error}")
        else:
            took = (job.finished or job.started) - job.started
            name = job.run_path.rsplit("/", 1)[-1] if job.run_path else "?"
            msg = st.success if job.status == "complete" else st.warning
            msg(f"Training {job.status} in {took:.0f} s: run **{name}** (`{job.run_path}`). "
                "Pick it in the sidebar to see its curves and evaluation.")


live()

# ---------------------------------------------------------------------------------------------- curves
runs = _shared.list_runs()
run = _shared.current_run()
st.subheader("Curves of the selected run")
if run is None:
    st.info("No run yet: start one below (on the built-in demo a few epochs take a few minutes on a laptop CPU).")
else:
    hist = run.history()
    st.caption(f"Run **{run.name}** · status {run.status} · {run.model_label} · "
               f"{run.config.get('image_size', '?')} px · {len(hist)} epochs recorded")
    members = run.member_histories()
    if members:
        st.caption(f"An ensemble: P(fake) is the mean of {', '.join(members)}, each trained on its own; "
                   "their curves:")
    for i, (label, h) in enumerate(members.items() if members else [("", hist)]):
        if label:
            st.markdown(f"**{label}**")
        a, b = st.columns(2)
        with a:
            curves(h, "loss", "Loss", f"run_loss{i}")
        with b:
            curves(h, "accuracy", "Accuracy", f"run_acc{i}")

if len(runs) > 1:
    st.subheader("Several runs overlaid")
    names = [r.name for r in runs]
    picked = st.multiselect("Runs", names, default=names[: min(3, len(names))], key="train_overlay")
    metric = st.segmented_control("Metric", ["val_accuracy", "val_loss", "accuracy", "loss"],
                                  default="val_accuracy", key="train_overlay_metric") or "val_accuracy"
    frames = []
    by_name = {r.name: r for r in runs}
    for name in picked:
        h = by_name[name].history()
        if metric in h.columns:
            frames.append(h[["epoch", metric]].assign(run=name))
    if frames:
        fig = px.line(pd.concat(frames), x="epoch", y=metric, color="run", markers=True)
        fig.update_layout(height=360, margin=dict(t=20, b=10))
        fig.update_xaxes(dtick=1)
        st.plotly_chart(fig, key="overlay_chart")
    elif picked:
        st.caption(f"None of the picked runs recorded {metric}.")

# ---------------------------------------------------------------------------------------------- start
st.subheader("Start a training run")
root, err = _shared.dataset_root()
if root is None:
    st.info(err)
    st.stop()
busy = job is not None and job.active
arch_names = list(models.ARCHITECTURES)
with st.form("train_form"):
    st.caption(f"Dataset: {_shared.dataset_label()} (change it in the sidebar). The run is written to "
               f"`{_shared.runs_root()}`; the app stays usable while it trains.")
    c1, c2, c3 = st.columns(3)
    arch = c1.selectbox("Architecture", arch_names,
                        index=arch_names.index("small_cnn") if "small_cnn" in arch_names else 0,
                        help="\n\n".join(f"**{k}**: {v}" for k, v in models.ARCHITECTURES.items()), key="tf_arch")
    epochs = c2.number_input("Epochs", 1, 200, 5, key="tf_epochs")
    size = c3.selectbox("Image size (px)", [64, 96, 128, 160, 192, 224, 256], index=2, key="tf_size",
                        help="Train at (or above) the size of the images; the demo is 128 px.")
    c1, c2, c3 = st.columns(3)
    batch = c1.selectbox("Batch size", [8, 16, 32, 64], index=2, key="tf_batch")
    lr = c2.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3], value=1e-3, key="tf_lr")
    limit = c3.number_input("Max images per split (0 = all)", 0, 100_000, 0, step=100, key="tf_limit")
    st.markdown("**Augmentations** (training split only)")
    c1, c2, c3, c4 = st.columns(4)
    flip = c1.checkbox("Horizontal flip", True, key="tf_flip")
    rotate = c2.slider("Rotate ± degrees", 0, 30, 0, key="tf_rot")
    zoom = c3.slider("Zoom ±", 0.0, 0.3, 0.0, 0.05, key="tf_zoom")
    jpeg = c4.slider("JPEG re-compression p", 0.0, 1.0, 0.0, 0.1, key="tf_jpeg",
                     help="Re-compress at a random quality 50-95: keeps a model from leaning on compression.")
    c1, c2, c3 = st.columns(3)
    blur = c1.slider("Gaussian blur p", 0.0, 1.0, 0.0, 0.1, key="tf_blur")
    noise = c2.slider("Gaussian noise p", 0.0, 1.0, 0.0, 0.1, key="tf_noise")
    balance = c3.checkbox("Balance datasets", False, key="tf_balance",
                          help="When the folder holds several datasets, repeat the smaller ones' training images "
                               "so that each dataset weighs the same in an epoch.")
    name = st.text_input("Run name (optional)", key="tf_name", placeholder=arch,
                         help="Never overwrites: an existing name gets 2, 3... appended.")
    submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:",
                                      disabled=busy)
if busy:
    st.caption("A training run is in progress (one at a time: the machine's cores are shared).")
if submitted and not busy:
    config = train.TrainConfig(
        data=str(root), architecture=arch, image_size=int(size), epochs=int(epochs), batch_size=int(batch),
        learning_rate=float(lr), limit=int(limit) or None, name=(name or "").strip() or None,
        runs_dir=str(_shared.runs_root()), balance_datasets=bool(balance),
        augment={"flip": flip, "rotate_deg": float(rotate), "zoom": float(zoom), "jpeg_p": float(jpeg),
                 "blur_p": float(blur), "noise_p": float(noise)},
    )
    _shared.start_training(config)
    st.rerun()
