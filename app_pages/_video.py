"""The Detect page's video clips: each clip judged on a thread of its own (dfd.video.ClipJob) with a progress bar
and a Stop button, then per face track a line of P(fake) over time, its median, share over the threshold,
verdict, thumbnail and the frame with the highest P(fake) (Grad-CAM on demand). Layout only: the frames,
tracks and numbers come from dfd.video."""

from __future__ import annotations

import hashlib
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dfd import detect, video

MAX_TRACKS_SHOWN = 8
KEEP_RESULTS = 10


def is_clip(name: str, data: bytes) -> bool:
    """Whether an upload is a video clip: by its extension, or its first bytes."""
    return video.is_video_name(name) or video.container_of(data[:16]) is not None


def show(clips: list[tuple[str, bytes]], detector: Any, run_key: Any, threshold: float, band: Any, *,
         find_faces: bool, show_cam: bool) -> list[Any]:
    """Judge (once per run, clip and face setting) and show each clip; returns the clips' results."""
    results: dict = st.session_state.setdefault("vid_results", {})
    jobs: dict = st.session_state.setdefault("vid_jobs", {})
    idents = [(run_key, hashlib.sha1(data).hexdigest(), find_faces, name) for name, data in clips]
    for ident in [i for i in jobs if i not in idents]:  # a clip removed, or judged again another way: stop it
        jobs.pop(ident).stop()
    run = getattr(detector, "run", None)
    sizes = run.sizes() if run is not None else None  # the run's size sweep: which face sizes it judges less well
    done = []
    for ident, (name, data) in zip(idents, clips, strict=True):
        digest = ident[1]
        st.divider()
        st.subheader(name, anchor=False)
        if ident not in results:
            job = jobs.get(ident)
            if job is None:
                job = jobs[ident] = video.ClipJob(detector, data, name, find_faces=find_faces)
            _follow(job, digest)
            results[ident] = job.result
            jobs.pop(ident, None)
            while len(results) > KEEP_RESULTS:  # the session's memory stays bounded (oldest out)
                results.pop(next(iter(results)))
        result = results[ident]
        _result(result, ident, detector, threshold, band, show_cam, sizes)
        done.append(result)
    if done:
        table = video.tracks_table(done, threshold, band, run=getattr(detector, "name", ""), sizes=sizes)
        st.download_button("Download the clips' face tracks (CSV)", table.to_csv(index=False).encode(),
                           "dfd_video_tracks.csv", "text/csv", icon=":material/download:", key="vid_csv",
                           help="One row per face track: first and last time, frames, median P(fake), share over "
                                "the threshold, verdict, run, threshold.")
    return done


def _follow(job: video.ClipJob, digest: str) -> None:
    """A progress bar and a Stop button until ``job`` is done. A click on Stop reruns the page, which stops the
    job: it ends at its next frame, keeping what it judged."""
    bar = st.progress(0.0, text="Opening the clip...")
    slot = st.empty()  # the button goes with the bar when the job is done
    if slot.button("Stop", key=f"vid_stop_{digest}", icon=":material/stop_circle:",
                   help="Stop reading this clip: the frames judged so far are kept and shown."):
        job.stop()
    while not job.wait(0.25):
        p = job.progress
        if p is not None:
            bar.progress(p.fraction, text=f"Reading and judging the clip: {p.text()}")
    bar.empty()
    slot.empty()


def _result(result: video.ClipResult, ident: Any, detector: Any, threshold: float, band: Any, show_cam: bool,
            sizes: Any) -> None:
    if result.error is not None:
        st.error(f"**{result.name}**: {result.error}", icon=":material/videocam_off:")
        return
    info = result.info
    st.caption(f"{info.describe() if info else ''} · {result.sampled} sampled frames judged "
               f"({result.with_faces} with a face) in {result.seconds:.1f} s · "
               f"{len(result.tracks)} face track{'s' if len(result.tracks) != 1 else ''}")
    for note in result.notes:
        st.warning(note, icon=":material/warning:")
    tracks = sorted(result.tracks, key=lambda t: len(t.faces), reverse=True)[:MAX_TRACKS_SHOWN]
    st.plotly_chart(_chart(result, tracks, threshold, band), key=f"vid_chart_{ident[1]}")
    if len(result.tracks) > len(tracks):
        st.caption(f"The {len(tracks)} longest of {len(result.tracks)} tracks are shown; the CSV holds them all.")
    cams: dict = st.session_state.setdefault("vid_cams", {})
    for t in sorted(tracks, key=lambda t: t.id):
        v = t.verdict_at(threshold, band)
        strongest = t.strongest_face
        text = (f"**{t.label().capitalize()}: {v.upper()}** · median P(fake) = {detect.p_text(t.median_p_fake)} · "
                f"{t.share_over(threshold):.0%} of {len(t.faces)} frames at or over {threshold:.2f} · "
                f"{t.start:.1f}-{t.end:.1f} s")
        thumb, words, crop = st.columns([1, 4, 2 if show_cam else 1], vertical_alignment="center")
        if t.thumbnail is not None:
            thumb.image(t.thumbnail, width=96)
        with words:
            if v == "fake":
                st.error(text)
            elif v == "real":
                st.success(text)
            else:
                st.warning(text, icon=":material/help:")
            small = detect.small_face_note(sizes, t.side)
            if small:
                st.info(small, icon=":material/zoom_out:")
        if t.strongest is None:
            continue
        caption = f"highest P(fake) {detect.p_text(strongest.p_fake)} at {strongest.time:.1f} s"
        if show_cam:
            toward = "fake" if strongest.p_fake >= threshold else "real"
            key = (ident, t.id, toward)
            if key not in cams:
                cams[key] = detector.heatmap_overlay(t.strongest, toward=toward)
                while len(cams) > 50:
                    cams.pop(next(iter(cams)))
            a, b = crop.columns(2)
            a.image(t.strongest, caption=caption, width="stretch")
            b.image(cams[key], caption=f"Grad-CAM: evidence for '{toward}'", width="stretch")
        else:
            crop.image(t.strongest, caption=caption, width=128)


def _chart(result: video.ClipResult, tracks: list[video.Track], threshold: float, band: Any) -> go.Figure:
    """P(fake) over time, one line per track, the threshold (and the band, if any) drawn across."""
    fig = go.Figure()
    for t in sorted(tracks, key=lambda t: t.id):
        fig.add_trace(go.Scatter(x=t.times, y=t.p_fakes, mode="lines+markers", name=t.label(),
                                 hovertemplate="%{x:.2f} s: P(fake) %{y:.3f}<extra>" + t.label() + "</extra>"))
    if band is not None and band[0] < band[1]:
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#e69100", opacity=0.12, line_width=0,
                      annotation_text="inconclusive", annotation_position="top left")
    fig.add_hline(y=threshold, line_dash="dash", line_color="#555",
                  annotation_text=f"threshold {threshold:.2f}", annotation_position="bottom right")
    end = result.info.duration if result.info and result.info.duration else max((t.end for t in tracks), default=1)
    fig.update_layout(height=300, margin=dict(t=20, b=10), legend_title_text="",
                      xaxis_title="time in the clip (s)", yaxis_title="P(fake)")
    fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(range=[0, max(end, 0.1)])
    return fig
