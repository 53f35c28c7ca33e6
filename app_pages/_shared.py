"""Streamlit glue shared by the entry point and the pages: the sidebar choices and cached wrappers around dfd.

The only module of the app that caches. Nothing here imports TensorFlow at import time: the detector (and so
TensorFlow) is loaded the first time a page asks for it, once per run, and shared by every session.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import streamlit as st

from dfd import DEFAULT_RUN

DEMO, FOLDER, ENV = "Built-in demo", "Folder path", "$DFD_DATA_DIR"


# ----------------------------------------------------------------------------------------------------------
# Where things are


def runs_root() -> Path:
    """The user runs folder the app writes (``$DFD_RUNS_DIR``, else ``runs/``); shipped runs are read from
    ``models/`` beside it (dfd.runs)."""
    from dfd import runs

    return runs.user_dir()


def shipped_root() -> Path:
    from dfd import runs

    return runs.shipped_dir()


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# ----------------------------------------------------------------------------------------------------------
# Sidebar (drawn by the entry point on every page)


def sidebar() -> None:
    """The shared sidebar: which dataset and which run. Choices live in session state (keys below)."""
    with st.sidebar:
        st.subheader("Dataset")
        options = [DEMO, FOLDER] + ([ENV] if os.environ.get("DFD_DATA_DIR") else [])
        st.radio("Dataset", options, key="data_source", label_visibility="collapsed",
                 help="The built-in demo is generated on first use (synthetic faces, seconds). "
                      "A folder may hold any supported layout (140k, Deepfake-and-Real, Real-and-Fake, "
                      "a real/ + fake/ pair or a CSV manifest).")
        if st.session_state.get("data_source") == FOLDER:
            st.text_input("Dataset folder", key="data_folder", placeholder="/path/to/dataset")
        elif st.session_state.get("data_source") == ENV:
            st.caption(f"`{os.environ.get('DFD_DATA_DIR')}`")
        st.subheader("Run")
        runs = list_runs()
        names = [r.name for r in runs]
        if names:
            # The widget's own index always points at the run in use: the run chosen before (kept in
            # session state by the widget) if it still exists, else the shipped default, else the newest.
            # Nothing writes the widget's key: a value written there before the widget exists is not what a
            # freshly drawn picker shows (it shows the option at ``index``), so the page and the picker
            # could disagree until the next click switched the page silently.
            chosen = st.session_state.get("run_name")
            if chosen not in names:
                chosen = DEFAULT_RUN if DEFAULT_RUN in names else names[0]
            status = {r.name: r.status for r in runs}
            shipped = {r.name for r in runs if r.shipped}
            st.selectbox("Run", names, index=names.index(chosen), key="run_name", label_visibility="collapsed",
                         format_func=lambda n: (n + (" (shipped)" if n in shipped else "")
                                                + ("" if status.get(n) == "complete" else f" ({status.get(n)})")),
                         help=f"Your runs in {runs_root()}, then the shipped runs in {shipped_root()} (read-only). "
                              f"'{DEFAULT_RUN}' is the shipped detector.")
        else:
            st.caption(f"No trained run in `{runs_root()}` yet: start one on the Training page "
                       "or with `python -m dfd train`.")


def dataset_root() -> tuple[Path | None, str | None]:
    """(folder, None) for the chosen dataset, or (None, reason it is not available)."""
    source = st.session_state.get("data_source", DEMO)
    if source == FOLDER:
        text = (st.session_state.get("data_folder") or "").strip()
        if not text:
            return None, "Type a dataset folder in the sidebar (or choose the built-in demo)."
        return Path(text).expanduser(), None
    if source == ENV:
        env = os.environ.get("DFD_DATA_DIR")
        if env:
            return Path(env).expanduser(), None
    return demo_root()


@st.cache_resource(show_spinner="Generating the built-in demo dataset (first start only, a few seconds)...")
def _demo_root() -> tuple[str | None, str | None]:
    try:
        from dfd import demo
    except ImportError as exc:
        return None, f"the built-in demo is not available in this version ({exc})"
    try:
        return str(demo.demo_dir()), None
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"could not create the built-in demo dataset: {exc}"


def demo_root() -> tuple[Path | None, str | None]:
    path, err = _demo_root()
    if path is not None and not Path(path).exists():  # removed since: make it again
        _demo_root.clear()
        path, err = _demo_root()
    return (Path(path) if path else None), err


@st.cache_resource(show_spinner="Indexing the dataset...", max_entries=8, ttl=600)
def _index(root: str, mtime: int) -> Any:
    from dfd import data

    return data.index_dataset(root)


def dataset_index() -> Any:
    """The chosen dataset's :class:`dfd.data.DatasetIndex`, or None after showing why there is none."""
    from dfd import data

    root, err = dataset_root()
    if root is None:
        st.info(err)
        return None
    try:
        return _index(str(root), _mtime(root))
    except data.DatasetError as exc:
        st.error(f"Cannot use this dataset: {exc}")
        return None


def sample_test_images(n: int = 4) -> list[tuple[str, str, str]]:
    """(path, true class, dataset) of ``n`` random test images of the chosen dataset, half real and half fake."""
    import numpy as np

    index = dataset_index()
    if index is None:
        return []
    test = index.frame[index.frame["split"] == "test"]
    if test.empty:
        test = index.frame
    rng = np.random.default_rng()
    picked = []
    for label, name in ((0, "real"), (1, "fake")):
        pool = test[test["label"] == label]
        rows = rng.choice(len(pool), min(len(pool), n // 2), replace=False)
        picked += [(str(pool["path"].iloc[i]), name, str(pool["dataset"].iloc[i])) for i in rows]
    return picked


def read_samples(samples: list[tuple[str, str, str]]) -> list[tuple[str, bytes]]:
    """(display name with the true class, file bytes) for dataset samples; unreadable files give empty bytes."""
    out = []
    for path, truth, *_ in samples:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        out.append((f"{Path(path).name} (true: {truth})", data))
    return out


def dataset_label() -> str:
    root, _ = dataset_root()
    source = st.session_state.get("data_source", DEMO)
    return f"{source}: `{root}`" if root else source


# ----------------------------------------------------------------------------------------------------------
# Runs


@st.cache_resource(ttl=30, max_entries=4, show_spinner=False)
def _list_runs(root: str, mtime: int, shipped: str, shipped_mtime: int) -> list[Any]:
    try:
        from dfd import runs
    except ImportError:
        return []
    try:
        runs.recover_stale(Path(root))  # runs whose training process was killed show up as interrupted
        return list(runs.list_runs(Path(root)))
    except (OSError, ValueError):
        return []


def list_runs() -> list[Any]:
    """The user's runs, newest first, then the shipped ones (cached until a run folder is added, removed or
    renamed)."""
    root, shipped = runs_root(), shipped_root()
    return _list_runs(str(root), _mtime(root), str(shipped), _mtime(shipped))


def refresh_runs() -> None:
    _list_runs.clear()


def current_run() -> Any:
    """The run chosen in the sidebar (the one its picker shows), or None."""
    runs = {r.name: r for r in list_runs()}
    name = st.session_state.get("run_name")
    return runs.get(name) if name else None


def require_run() -> Any:
    """The chosen run, or None after explaining how to get one."""
    run = current_run()
    if run is None:
        st.info(f"No trained run yet (looked in `{runs_root()}`). Train one on the **Training** page, "
                "or from a shell: `python -m dfd train --data <folder>`. The shipped detector lives in "
                f"`models/{DEFAULT_RUN}/`.")
    return run


SERVED_FILES = ("model.keras", "calibration.json", "config.json")
"""The run files that change the P(fake) a run serves: weights, temperature and threshold, input size and
mirror averaging. The cached detector (and every cached verdict) is keyed by all of them."""


def run_key(run: Any) -> tuple[Any, ...]:
    """(run folder, (mtime, size) of each of :data:`SERVED_FILES`): changes whenever served P(fake) can."""
    from dfd import runs

    return (str(run.path), *(runs.file_stamp(Path(run.path) / name) for name in SERVED_FILES))


# ----------------------------------------------------------------------------------------------------------
# Cached heavy things


@st.cache_resource(show_spinner="Loading the detector (TensorFlow, first use only)...", max_entries=3)
def _detector(run_path: str, *stamps: tuple[int, int]) -> Any:
    from dfd import detect, runs

    return detect.Detector(runs.get_run(run_path))


def detector(run: Any) -> Any:
    """The shared :class:`dfd.detect.Detector` for ``run`` (one per model file, thread-safe)."""
    return _detector(*run_key(run))


_warming: set[tuple[Any, ...]] = set()
_warming_lock = threading.Lock()


def warm_detector(run: Any) -> None:
    """Start loading ``run``'s detector on a background thread (once), so the first verdict is quick.

    A later :func:`detector` call for the same run waits for this load instead of starting another.
    """
    key = run_key(run)
    with _warming_lock:
        if key in _warming:
            return
        _warming.add(key)

    def load() -> None:
        try:
            _detector(*key)
        except Exception:  # noqa: BLE001 - the page's own detector() call reports the error
            with _warming_lock:
                _warming.discard(key)

    threading.Thread(target=load, name="dfd-warm-detector", daemon=True).start()


@st.cache_data(show_spinner=False, max_entries=2000)
def thumbnail(path: str, size: int = 160, mtime: int = 0) -> Any:
    from dfd import explore

    return explore.thumbnail(path, size)


@st.cache_data(show_spinner="Reading image headers...", max_entries=16)
def size_summary(root: str, fingerprint: str, _frame: Any) -> Any:
    from dfd import explore

    return explore.size_summary(_frame)


@st.cache_data(show_spinner="Reading JPEG quantisation tables...", max_entries=16)
def quant_steps(root: str, fingerprint: str, _frame: Any, n: int = 200) -> Any:
    from dfd import explore

    return explore.quant_steps(_frame, n)


@st.cache_data(show_spinner="Computing mean spectra...", max_entries=16)
def mean_spectra(root: str, fingerprint: str, _frame: Any, n: int = 64) -> Any:
    from dfd import explore

    return explore.mean_spectra(_frame, n)


@st.cache_data(show_spinner="Decoding every file to find unreadable ones...", max_entries=16)
def unreadable(root: str, fingerprint: str, _paths: list[str]) -> list[tuple[str, str]]:
    from dfd import data

    return data.find_unreadable(_paths)


# ----------------------------------------------------------------------------------------------------------
# Background training (dfd.jobs: one job at a time for the whole app: the machine's cores are shared)


def training_job() -> Any:
    """The app's current (or last) :class:`dfd.jobs.TrainingJob`, whichever session started it."""
    from dfd import jobs

    return jobs.current()


def session_token() -> str:
    """This browser session's own token (made on first use): the owner of the trainings it starts."""
    if "session_token" not in st.session_state:
        import uuid

        st.session_state["session_token"] = uuid.uuid4().hex
    return st.session_state["session_token"]


def own_job(job: Any) -> bool:
    """Whether this session started ``job`` (its progress, result and Stop button are this session's)."""
    return job is not None and job.owner == session_token()


def start_training(config: Any) -> Any:
    """Start ``config`` in the background for this session unless a job is already running (then return that
    one, whoever started it)."""
    from dfd import jobs

    return jobs.start(config, on_finish=refresh_runs, owner=session_token())


def record_table(run: Any, kind: str, csv_name: str, label: str, key: str,
                 own: Any) -> tuple[Any, list[Any]]:
    """(table, [record]) of the run's newest ``kind`` evaluation record (a picker when it has several), or
    (``own()``, []): the run's own file when it has no such record."""
    found = run.records(kind)
    if not found:
        return own(), []
    pick = len(found) - 1
    if len(found) > 1:
        pick = st.selectbox(label, range(len(found)), index=pick, key=key, format_func=lambda i: found[i].name)
    return found[pick].csv(csv_name), [found[pick]]
