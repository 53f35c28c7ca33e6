"""Data explorer: class counts, a sample gallery, the blur/noise preview, sizes and JPEG quality, spectra."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import streamlit as st

from app_pages import _charts, _shared
from dfd import explore, imaging, views

st.title("Data explorer")
index = _shared.dataset_index()
if index is None:
    st.stop()
frame = index.frame
root, fp = str(index.root), index.fingerprint()
st.caption(f"{_shared.dataset_label()} · layout `{index.layout}` · {views.plural(len(frame), 'image')}"
           + (f" · {views.plural(len(index.skipped), 'file')} skipped while indexing" if index.skipped else ""))

if st.session_state.get("data_source", _shared.DEMO) == _shared.DEMO:
    st.info("This is the built-in demo: synthetic drawn faces whose fakes carry a GAN-like upsampling "
            "checkerboard, made so every page works on a fresh machine. It says nothing about real deepfakes: "
            "choose a folder of real data in the sidebar (any supported layout).", icon=":material/science:")
datasets = sorted(frame["dataset"].unique())
tab_counts, tab_gallery, tab_blur, tab_files, tab_spectra = st.tabs(
    ["Counts", "Gallery", "Blur & noise preview", "Sizes, JPEG & unreadable files", "Frequency spectra"],
    key="explorer_tab", on_change="rerun")

# ---------------------------------------------------------------------------------------------- counts
if tab_counts.open:
    with tab_counts:
        counts = explore.class_counts(frame)
        style = _charts.by_class()
        fig = px.bar(counts, x="split", y="images", color="class", barmode="group", text="images",
                     facet_col="dataset" if len(datasets) > 1 else None,
                     color_discrete_map=style["color_discrete_map"],
                     category_orders={"split": ["train", "val", "test"], **style["category_orders"]})
        fig.update_layout(height=380, margin=dict(t=40, b=10), legend_title_text="")
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
        st.plotly_chart(fig, key="counts_chart")
        table = explore.counts_table(counts)
        st.dataframe(table, key="counts_table")

# ---------------------------------------------------------------------------------------------- gallery
if tab_gallery.open:
    with tab_gallery:
        c1, c2, c3, c4 = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
        split = c1.selectbox("Split", [s for s in ("train", "val", "test") if (frame["split"] == s).any()],
                             key="gal_split")
        label = c2.selectbox("Class", [0, 1], format_func=explore.CLASS_NAMES.get, key="gal_class", index=1)
        dataset = c3.selectbox("Dataset", datasets, key="gal_dataset") if len(datasets) > 1 else None
        if c4.button("Reshuffle", icon=":material/shuffle:", key="gal_shuffle"):
            st.session_state["gal_seed"] = st.session_state.get("gal_seed", 0) + 1
            st.session_state["gal_page"] = 1
        subset = explore.select(frame, split, label, dataset)
        per_page = 18
        pages = explore.n_pages(len(subset), per_page)
        page = st.number_input(f"Page (of {pages}, {views.plural(len(subset), 'image')})", 1, pages, key="gal_page")
        paths = explore.page_of(subset, int(page) - 1, per_page, seed=st.session_state.get("gal_seed", 0))
        cols = st.columns(6)
        for i, path in enumerate(paths):
            thumb = _shared.thumbnail(path, 160)
            with cols[i % 6]:
                name = path.rsplit("/", 1)[-1]
                if isinstance(thumb, str):
                    st.error(f"{name}: {thumb}")
                else:
                    st.image(thumb, caption=name, width="stretch")

# ---------------------------------------------------------------------------------------------- blur & noise
if tab_blur.open:
    with tab_blur:
        st.caption("What Gaussian blur and noise (training augmentations, robustness tests) do to an image.")
        c1, c2, c3 = st.columns(3)
        ksize = c1.slider("Kernel size (0 = from sigma)", 0, 31, 0, step=1, key="blur_ksize",
                          help="Even sizes are rounded up to the next odd size.")
        sigma = c2.slider("Blur sigma (px)", 0.0, 5.0, 1.0, step=0.1, key="blur_sigma")
        noise = c3.slider("Noise level (std on 0..255)", 0.0, 50.0, 8.0, step=1.0, key="noise_sigma")
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        pool = explore.select(frame, "test" if (frame["split"] == "test").any() else None)
        names = pool["path"].tolist()
        if "blur_image" not in st.session_state or st.session_state["blur_image"] not in names:
            st.session_state["blur_image"] = names[0]
        if c2.button("Random image", icon=":material/casino:", key="blur_random"):
            st.session_state["blur_image"] = names[int(np.random.default_rng().integers(len(names)))]
        path = c1.selectbox("Image", names, key="blur_image", format_func=lambda p: p.rsplit("/", 1)[-1])
        try:
            original = imaging.load_image(path)
        except imaging.ImageError as exc:
            st.error(f"{path}: {exc}")
        else:
            processed = imaging.gaussian_noise(imaging.gaussian_blur(original, sigma, ksize), noise, seed=0)
            a, b, c = st.columns(3)
            a.image(original, caption=f"original {original.shape[1]}x{original.shape[0]}", width="stretch")
            b.image(processed, caption=f"blur k={ksize or 'auto'} σ={sigma:g}, noise σ={noise:g}", width="stretch")
            c.image(imaging.difference(original, processed), caption="difference (x4)", width="stretch")

# ---------------------------------------------------------------------------------------------- files
if tab_files.open:
    with tab_files:
        st.subheader("Image sizes and formats")
        st.caption("From the file headers of up to 300 files per dataset and class.")
        st.dataframe(_shared.size_summary(root, fp, frame), hide_index=True, key="size_table")
        st.subheader("JPEG quantisation step per class")
        st.caption("Mean luminance quantisation step of up to 200 files per dataset and class "
                   "(higher = stronger compression, lower quality).")
        steps = _shared.quant_steps(root, fp, frame)
        summary = explore.quant_summary(steps)
        st.dataframe(summary, hide_index=True, key="quant_table")
        for message in explore.compression_gaps(summary):
            st.warning(f"Compression shortcut: {message}", icon=":material/warning:")
        if summary["mean step"].notna().any():
            fig = px.bar(summary.dropna(subset=["mean step"]), x="dataset", y="mean step", color="class",
                         barmode="group", text="mean step", error_y=summary["max"] - summary["mean step"],
                         error_y_minus=summary["mean step"] - summary["min"], **_charts.by_class())
            fig.update_layout(height=340, margin=dict(t=20, b=10), yaxis_title="mean quantisation step (min-max)",
                              legend_title_text="")
            st.plotly_chart(fig, key="quant_chart")
        st.subheader("Unreadable files")
        if index.skipped:
            st.write(f"{views.plural(len(index.skipped), 'file')} skipped while indexing:")
            st.dataframe([{"path": p, "reason": r} for p, r in index.skipped], hide_index=True, key="skipped")
        paths = frame["path"].tolist()
        auto = len(paths) <= 3000
        if auto or st.button(f"Decode every image ({views.plural(len(paths), 'image')}) to find unreadable ones",
                             key="scan_bad"):
            bad = _shared.unreadable(root, fp, paths)
            if bad:
                st.error(f"{len(bad):,} of {views.plural(len(paths), 'image')} cannot be read; training and "
                         "evaluation skip them.")
                st.dataframe([{"path": p, "reason": r} for p, r in bad], hide_index=True, key="bad_table")
            else:
                st.success(f"Every image decodes ({views.plural(len(paths), 'image')}).")

# ---------------------------------------------------------------------------------------------- spectra
if tab_spectra.open:
    with tab_spectra:
        st.caption("Mean centred log-magnitude Fourier spectrum per class (greyscale, 128 px). GAN upsampling "
                   "leaves a grid of peaks; the difference panel shows where the classes differ on average.")
        n = st.slider("Images per class", 8, 256, 64, step=8, key="spec_n")
        spectra = _shared.mean_spectra(root, fp, frame, n)
        if len(spectra) < 2:
            st.info("Need readable images of both classes to compare spectra.")
        else:
            panels = [("real", spectra["real"]), ("fake", spectra["fake"]),
                      ("fake - real", spectra["fake"] - spectra["real"])]
            for col, (title, z) in zip(st.columns(3), panels, strict=True):
                diff = title == "fake - real"
                lim = float(np.abs(z).max()) if diff else None
                fig = px.imshow(z, color_continuous_scale="RdBu_r" if diff else "Viridis",
                                zmin=-lim if diff else None, zmax=lim if diff else None, aspect="equal",
                                title=title)
                # Every panel has its colour scale, under it: a scale beside one panel only narrowed that panel.
                fig.update_layout(height=400, margin=dict(t=40, b=5, l=5, r=5), coloraxis_showscale=True,
                                  coloraxis_colorbar=dict(orientation="h", y=-0.02, yanchor="top", thickness=10,
                                                          title_text="fake - real" if diff else "log magnitude",
                                                          title_side="bottom"))
                fig.update_xaxes(visible=False)
                fig.update_yaxes(visible=False)
                col.plotly_chart(fig, key=f"spec_{title}")
