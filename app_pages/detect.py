"""Detect: drop images, get P(fake) and a verdict per face, boxes, Grad-CAM on demand, a CSV for a batch."""

from __future__ import annotations

import hashlib

import streamlit as st

from app_pages import _shared, _video
from dfd import detect, imaging, video, views

st.title("Detect")
st.caption("P(fake) is a model's estimate for the kinds of fakes it was trained on, not proof: detectors do much "
           "worse on other generators and datasets, and after heavy compression or resizing.")
with st.expander("What this can and cannot tell you", icon=":material/info:"):
    for line in detect.CAVEATS:
        st.markdown(f"- {line}")

run = _shared.require_run()
if run is None:
    st.stop()
if not run.has_model:
    st.error(f"Run **{run.name}** has no model file (status: {run.status}). Choose another run in the sidebar.")
    st.stop()
st.caption(detect.trained_on_text(run))

_shared.warm_detector(run)  # load TensorFlow and the model in the background while files are chosen
c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
band_help = ("" if run.band is None else
             f" Inside the run's band {detect.p_text(run.band[0])} to {detect.p_text(run.band[1])} (fitted on its "
             "validation images) a face is inconclusive; the band moves with the threshold.")
threshold = c1.slider("Decision threshold on P(fake)", 0.0, 1.0, float(run.threshold), 0.01,
                      key=f"det_threshold_{run.name}_{run.threshold:.4f}",  # a recalibrated run starts afresh
                      help=f"Default {run.threshold:.2f}: the run's own threshold "
                           "(from calibration.json if the run was calibrated, else 0.5)." + band_help)
find_faces = c2.toggle("Find faces", True, key="det_faces",
                       help="Judge each face found (cropped with a margin, as the training images are). "
                            "Off: judge the whole image.")
show_cam = c3.toggle("Grad-CAM heatmaps", False, key="det_cam",
                     help="Where in each face crop the evidence for the verdict lies (slower).")

files = st.file_uploader(f"Drop one or more images ({imaging.IMAGE_TYPES_TEXT}) or video clips "
                         f"({video.VIDEO_TYPES_TEXT})", accept_multiple_files=True,
                         key="det_files",
                         help="Processed in memory and never written to disk. Other files are reported, "
                              "not judged.")
st.caption(f"Run **{run.name}** · {run.model_label} · {run.config.get('image_size', '?')} px input"
           f"{' · mirror-averaged' if run.tta else ''} · trained on {detect.trained_on_short(run)} · change the run "
           "in the sidebar. Uploads stay in memory and are never saved.")
clips: list[tuple[str, bytes]] = []
if files:
    items = [(f.name, f.getvalue()) for f in files]
    clips = [(name, data) for name, data in items if _video.is_clip(name, data)]
    items = [(name, data) for name, data in items if not _video.is_clip(name, data)]
else:
    hint = st.empty()  # filled below only while there is nothing to show
    if st.button("Try 4 test images from the dataset", icon=":material/casino:", key="det_try"):
        st.session_state["det_samples"] = _shared.sample_test_images(4)
    samples = st.session_state.get("det_samples") or []
    items = _shared.read_samples(samples)
    if not items:
        hint.info("Drop images above to judge them (a face photo, or files from a dataset's test split), or try "
                  "samples from the dataset chosen in the sidebar.")
        st.stop()
    st.caption("Samples from the dataset's test split; their true class is in the name.")
    warning = detect.domain_warning(run.name, run.trained_on, [s[2] for s in samples if len(s) > 2])
    if warning:
        st.warning(warning, icon=":material/warning:")

try:
    detector = _shared.detector(run)
except Exception as exc:  # noqa: BLE001 - one line on what failed, not a traceback
    st.error(f"Could not load run **{run.name}**'s detector: {type(exc).__name__}: {exc}", icon=":material/error:")
    st.stop()
if clips:  # video clips first (dfd.video), then any images beside them
    _video.show(clips, detector, _shared.run_key(run), threshold, detector.band_at(threshold),
                find_faces=find_faces, show_cam=show_cam)
    if not items:
        st.stop()
    st.divider()
key = _shared.run_key(run)
cache: dict = st.session_state.setdefault("det_cache", {})
idents = [(key, hashlib.sha1(data).hexdigest(), find_faces, name) for name, data in items]
todo = [(ident, name, data) for ident, (name, data) in zip(idents, items, strict=True) if ident not in cache]
if todo:
    bar = st.progress(0.0, text=f"Judging {len(todo)} image(s)...")
    for i, (ident, name, data) in enumerate(todo):
        try:
            cache[ident] = detector.analyse(data, name=name, find_faces=find_faces)
        except Exception as exc:  # noqa: BLE001 - this file's row says what failed; the others go on
            cache[ident] = detect.ImageResult(name=name, error=f"could not be judged: {type(exc).__name__}: {exc}",
                                              looked_for_faces=find_faces)
        bar.progress((i + 1) / len(todo), text=f"Judged {i + 1} of {len(todo)}")
    bar.empty()
    while len(cache) > 100:  # keep the session's memory bounded (oldest out)
        cache.pop(next(iter(cache)))
for ident in idents:  # the re-save check at the slider's threshold too (faces near it are checked once)
    cache[ident] = detector.recheck(cache[ident], threshold)
results = [cache[ident] for ident in idents]
cams: dict = st.session_state.setdefault("det_cams", {})

band = detector.band_at(threshold)
sizes = run.sizes()  # the run's size sweep: which face sizes it judges less well
table = detect.results_table(results, threshold, band, run=run.name, engine=detector.engine, sizes=sizes)
n_err = sum(r.error is not None for r in results)
judged = table[table["verdict"] != "error"]
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Images", len(results))
m2.metric("Faces judged", sum(len(r.faces) for r in results if r.error is None and not r.whole_image))
m3.metric("Judged fake", int((judged["verdict"] == "fake").sum()))
m4.metric("Inconclusive", int((judged["verdict"] == detect.INCONCLUSIVE).sum()),
          help="P(fake) inside the run's band around the threshold, or a verdict a light re-save (JPEG q85, "
               "0.75x) flips." if band is not None else "Only verdicts a light re-save (JPEG q85, 0.75x) flips: "
               "this run has no band around its threshold.")
m5.metric("Unreadable", n_err)
st.dataframe(detect.table_for_display(table), hide_index=True, key="det_table", column_config={
    "p_fake": st.column_config.TextColumn("P(fake)"),
    "why": st.column_config.TextColumn("why inconclusive"),
    "note": st.column_config.TextColumn("note", width="large"),
})
st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "dfd_detections.csv",
                   "text/csv", icon=":material/download:", key="det_csv",
                   help="Every row with the run, threshold, band, engine and dfd version that judged it.")

shown = list(range(len(results)))
if len(results) > 6:
    broken = [r for r in results if r.error is not None]
    if broken:
        st.error(f"{views.plural(len(broken), 'file')} could not be judged:\n"
                 + "\n".join(f"- **{r.name}**: {r.error}" for r in broken), icon=":material/broken_image:")
    names = [f"{i + 1}. {r.name}" for i, r in enumerate(results)]
    shown = [st.selectbox("Image to inspect", shown, format_func=names.__getitem__, key="det_pick")]
for j in shown:
    r = results[j]
    st.divider()
    if r.error is not None:
        st.error(f"**{r.name}**: {r.error}", icon=":material/broken_image:")
        continue
    try:
        left, right = st.columns([3, 2])
        left.image(detect.draw(r, threshold, band=band), caption=r.name, width="stretch")
        with right:
            if r.whole_image and not r.looked_for_faces:
                st.info("Face finding is off: the whole image was judged (less reliable than a face crop).",
                        icon=":material/face:")
            elif r.whole_image:
                st.warning("No face found: the whole image was judged (less reliable than a face crop).",
                           icon=":material/face:")
            for i, face in enumerate(r.faces):
                v, why = detect.judge(face.p_fake, threshold, band, face.resaved)
                label = f"Face {i + 1}" if not r.whole_image else "Whole image"
                text = (f"**{label}: {v.upper()}** · P(fake) = {detect.p_text(face.p_fake)} "
                        f"(threshold {threshold:.2f})")
                if v == detect.INCONCLUSIVE:
                    st.warning(f"{text}: {why}", icon=":material/help:")
                else:
                    (st.error if v == "fake" else st.success)(text)
                crop = detect.cut(r.image, face.crop)
                what = detect.region_text(r, face, i)
                small = detect.small_face_note(sizes, face.side)
                if small:
                    st.info(small, icon=":material/zoom_out:")
                toward = detect.verdict(face.p_fake, threshold)  # an inconclusive face: its plain verdict
                if show_cam and (idents[j], i, toward) not in cams:
                    try:
                        cams[(idents[j], i, toward)] = detector.heatmap_overlay(crop, toward=toward)
                    except Exception as exc:  # noqa: BLE001 - one line; the verdicts and the rest of the page stay
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        st.warning(f"No Grad-CAM heatmap for {label.lower()}: {first}", icon=":material/layers_clear:")
                if show_cam and (idents[j], i, toward) in cams:
                    a, b = st.columns(2)
                    a.image(imaging.resize(crop, detector.image_size), caption=what, width="stretch")
                    b.image(cams[(idents[j], i, toward)], caption=f"Grad-CAM: evidence for '{toward}'",
                            width="stretch")
                elif r.whole_image:
                    st.caption(what)
                else:
                    st.image(crop, caption=what, width=160)
    except Exception as exc:  # noqa: BLE001 - one line on what failed; the rest of the page stays
        st.error(f"**{r.name}**: could not show its result ({type(exc).__name__}: {exc})", icon=":material/error:")
