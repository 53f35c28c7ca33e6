"""Streamlit glue shared by the entry point and the pages: the sidebar choices and cached wrappers around dfd.

The only module of the app that caches. Nothing here imports TensorFlow at import time: the detector (and so
TensorFlow) is loaded the first time a page asks for it, once per run, and shared by every session.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
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
            if st.session_state.get("run_name") not in names:
                st.session_state["run_name"] = DEFAULT_RUN if DEFAULT_RUN in names else names[0]
            status = {r.name: r.status for r in runs}
            shipped = {r.name for r in runs if r.shipped}
            st.selectbox("Run", names, key="run_name", label_visibility="collapsed",
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


def sample_test_images(n: int = 4) -> list[tuple[str, str]]:
    """(path, true class) of ``n`` random test images of the chosen dataset, half real and half fake."""
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
        pool = test[test["label"] == label]["path"].tolist()
        picked += [(pool[i], name) for i in rng.choice(len(pool), min(len(pool), n // 2), replace=False)]
    return picked


def read_samples(samples: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """(display name with the true class, file bytes) for dataset samples; unreadable files give empty bytes."""
    out = []
    for path, truth in samples:
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
    """The run chosen in the sidebar, or None."""
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


def run_key(run: Any) -> tuple[str, int]:
    model_path = Path(getattr(run, "model_path", Path(run.path) / "model.keras"))
    return str(run.path), _mtime(model_path)


# ----------------------------------------------------------------------------------------------------------
# Cached heavy things


@st.cache_resource(show_spinner="Loading the detector (TensorFlow, first use only)...", max_entries=3)
def _detector(run_path: str, model_mtime: int) -> Any:
    from dfd import detect, runs

    return detect.Detector(runs.get_run(run_path))


def detector(run: Any) -> Any:
    """The shared :class:`dfd.detect.Detector` for ``run`` (one per model file, thread-safe)."""
    return _detector(*run_key(run))


_warming: set[tuple[str, int]] = set()
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
# Background training (one job at a time for the whole app: the machine's cores are shared)


@dataclass
class TrainingJob:
    """A dfd.train.train call on a background thread, with its progress, for the Training page to poll."""

    config: Any
    stop_event: threading.Event = field(default_factory=threading.Event)
    epoch: float = 0.0
    epochs: int = 1
    logs: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    status: str = "starting"
    error: str | None = None
    run_path: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None

    def progress(self, epoch: float, epochs: int, logs: dict | None = None) -> None:
        """dfd.train's callback: a float ``epoch`` during an epoch (running batch logs), an int after one."""
        self.epochs = max(1, int(epochs))
        self.status = "running"
        self.epoch = float(epoch)
        self.logs = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        if isinstance(epoch, int) or float(epoch).is_integer() and "batch" not in self.logs:
            self.history.append({"epoch": int(epoch), **self.logs})

    def _run(self) -> None:
        try:
            from dfd import train

            path = train.train(self.config, progress=self.progress, stop_event=self.stop_event)
            self.run_path = str(path)
            self.status = "stopped" if self.stop_event.is_set() else "complete"
        except Exception as exc:  # noqa: BLE001 - any failure is shown on the page, the app stays up
            self.status = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self.finished = time.time()
            refresh_runs()

    def start(self) -> None:
        self.epochs = int(getattr(self.config, "epochs", 1))
        self.thread = threading.Thread(target=self._run, name="dfd-train", daemon=True)
        self.thread.start()

    @property
    def active(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


@st.cache_resource
def _jobs() -> dict[str, TrainingJob]:
    return {}


def training_job() -> TrainingJob | None:
    """The app's current (or last) training job."""
    return _jobs().get("current")


def start_training(config: Any) -> TrainingJob:
    """Start ``config`` in the background unless a job is already running (then return that one)."""
    jobs = _jobs()
    job = jobs.get("current")
    if job is not None and job.active:
        return job
    job = TrainingJob(config=config)
    jobs["current"] = job
    job.start()
    return job
