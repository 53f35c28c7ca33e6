"""The Streamlit app through streamlit.testing.v1.AppTest: every page from the entry point, with and without
runs; sliders; detection of real, broken and non-image uploads; several sessions detecting at once;
training started and stopped from the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
ENTRY = str(REPO / "streamlit_app.py")
PAGES = ["explorer", "training", "evaluation", "compare", "detect"]
TIMEOUT = 180


def _app(runs_dir: Path, monkeypatch, shipped: bool = False) -> AppTest:
    """The app on the user runs folder ``runs_dir``; the shipped runs (models/) hidden unless ``shipped``."""
    monkeypatch.setenv("DFD_RUNS_DIR", str(runs_dir))
    if not shipped:
        monkeypatch.setenv("DFD_MODELS_DIR", str(runs_dir.parent / "no-shipped-runs"))
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, faces140k) -> Path:
    """A runs folder with one real (tiny, 1-epoch) run on faces-140k-mini, made by dfd.train."""
    from dfd import train

    root = tmp_path_factory.mktemp("runs")
    train.train(train.TrainConfig(data=str(faces140k), architecture="tiny", image_size=64, epochs=2, limit=160,
                                  runs_dir=str(root), name="tiny-test", patience=0))
    return root


@pytest.fixture(scope="module")
def face_bytes(faces140k) -> bytes:
    return sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[0].read_bytes()


# ---------------------------------------------------------------------------------------------- entry point


def test_entry_point_and_explorer_render_without_tensorflow(tmp_path):
    """The first page renders from a fresh start without importing TensorFlow (a clean interpreter)."""
    code = (
        "import sys, time\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({ENTRY!r}, default_timeout={TIMEOUT}).run()\n"
        "assert not at.exception, at.exception\n"
        "print(repr([t.value for t in at.title]), 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    env = {**os.environ, "DFD_RUNS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "['Data explorer'] False False"


def test_pages_other_than_detect_never_import_tensorflow(trained_runs):
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({ENTRY!r}, default_timeout={TIMEOUT}).run()\n"
        "for page in ['training', 'evaluation', 'compare', 'explorer']:\n"
        "    at.switch_page(f'app_pages/{page}.py').run()\n"
        "    assert not at.exception, (page, at.exception)\n"
        "    assert 'tensorflow' not in sys.modules, page\n"
        "print('ok', len(at.get('plotly_chart')))\n"
    )
    env = {**os.environ, "DFD_RUNS_DIR": str(trained_runs)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("ok")


def test_every_page_opens_with_no_run_and_says_what_to_do(tmp_path, monkeypatch):
    at = _app(tmp_path / "no-runs", monkeypatch)
    assert at.sidebar.radio(key="data_source").value == "Built-in demo"
    assert any("No trained run" in c.value for c in at.sidebar.caption)
    for page in PAGES:
        _open(at, page)
        if page in ("evaluation", "compare", "detect"):
            assert any("No trained run yet" in i.value for i in at.info), page
    _open(at, "training")
    assert at.button(key="FormSubmitter:train_form-Start training") is not None


def test_explorer_tabs_and_blur_sliders(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    assert at.get("plotly_chart"), "class counts chart missing"
    assert at.dataframe, "class counts table missing"
    at.session_state["explorer_tab"] = "Gallery"
    at.run()
    assert not at.exception
    images_before = len(at.get("image"))
    assert images_before >= 1
    at.button(key="gal_shuffle").click().run()
    assert not at.exception and at.session_state["gal_seed"] == 1

    at.session_state["explorer_tab"] = "Blur & noise preview"
    at.run()
    at.slider(key="blur_sigma").set_value(2.5).run()
    at.slider(key="noise_sigma").set_value(20.0).run()
    at.slider(key="blur_ksize").set_value(9).run()
    assert not at.exception
    captions = " ".join(c for el in at.get("image") for c in el.captions)
    assert "k=9" in captions and "σ=2.5" in captions and "noise σ=20" in captions

    at.session_state["explorer_tab"] = "Sizes, JPEG & unreadable files"
    at.run()
    assert not at.exception
    assert any(d.value.shape[0] >= 2 for d in at.dataframe)  # per-class quantisation summary

    at.session_state["explorer_tab"] = "Frequency spectra"
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 3


def test_explorer_on_a_real_dataset_folder_shows_the_compression_shortcut(tmp_path, monkeypatch, lfw):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(lfw)).run()
    assert not at.exception
    at.session_state["explorer_tab"] = "Sizes, JPEG & unreadable files"
    at.run()
    assert not at.exception
    assert any("Compression shortcut" in w.value for w in at.warning)


def test_dataset_from_the_environment(tmp_path, monkeypatch, faces140k):
    monkeypatch.setenv("DFD_DATA_DIR", str(faces140k))
    at = _app(tmp_path, monkeypatch)
    radio = at.sidebar.radio(key="data_source")
    assert radio.value == "Built-in demo" and "$DFD_DATA_DIR" in radio.options
    radio.set_value("$DFD_DATA_DIR").run()
    assert not at.exception
    assert "1,900 images" in at.caption[0].value and "faces-140k-mini" in at.caption[0].value


def test_a_bad_dataset_folder_gets_a_clear_message(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert any("not found" in e.value for e in at.error)


# ---------------------------------------------------------------------------------------------- with a run


def test_every_page_with_a_run(trained_runs, monkeypatch):
    at = _app(trained_runs, monkeypatch)
    assert at.sidebar.selectbox(key="run_name").value == "tiny-test"
    _open(at, "training")
    assert len(at.get("plotly_chart")) >= 2  # loss and accuracy curves
    _open(at, "evaluation")
    labels = {m.label: m.value for m in at.metric}
    assert {"Accuracy", "Precision", "Recall", "F1", "ROC AUC"} <= set(labels)
    at.slider(key="ev_threshold_tiny-test_True").set_value(0.0).run()  # calibrated when training ended
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Recall"] == "1.000"  # everything called fake
    assert len(at.get("plotly_chart")) >= 5  # 2 confusion matrices, ROC, PR, reliability
    # cross-dataset: evaluate on the sidebar's dataset (the built-in demo), then it is the source shown
    at.number_input(key="ev_limit").set_value(40).run()
    at.button(key="ev_run").click().run()
    assert not at.exception, [e.value for e in at.error]
    assert at.selectbox(key="ev_source").value.startswith("Evaluated on demo")
    assert "40 images" in " ".join(c.value for c in at.caption)
    _open(at, "compare")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["tiny-test"] and table["model"].iloc[0] == "tiny"
    assert table["datasets"].iloc[0] == "faces-140k-mini"  # named, not "data"
    cross = at.dataframe[1].value
    assert len(cross) == 2 and cross["evaluated on"].iloc[1].startswith("demo")
    assert cross["source"].tolist()[0] == "own test split" and cross["source"].iloc[1].startswith("evaluation demo")
    _open(at, "detect")
    assert at.file_uploader(key="det_files") is not None
    at.button(key="det_try").click().run()  # samples from the dataset in the sidebar (the built-in demo)
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) >= 4 and table["verdict"].isin(["fake", "real"]).all()
    assert table["file"].str.contains(r"\(true: (?:real|fake)\)").all()


@pytest.mark.slow
def test_cross_dataset_table_from_the_cli_on_the_evaluation_page(tmp_path, monkeypatch, faces140k, lfw):
    """Two runs trained on different real datasets, scored on all three by `python -m dfd cross-dataset`:
    cross_dataset.csv marks in- and out-of-domain, and the Evaluation page shows it."""
    import pandas as pd

    from dfd import train

    for name, dataset in (("on-faces", "faces-140k-mini"), ("on-lfw", "lfw-faceswap")):
        train.train(train.TrainConfig(data=str(faces140k.parent), datasets=[dataset], architecture="tiny",
                                      image_size=64, epochs=1, limit=40, runs_dir=str(tmp_path), name=name,
                                      patience=0))
    proc = subprocess.run([sys.executable, "-m", "dfd", "cross-dataset", "on-faces", "on-lfw", "--data",
                           str(faces140k.parent), "--limit", "12", "--runs-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    csv = tmp_path / "_evals" / "on-faces" / "cross-dataset" / "data-test" / "cross_dataset.csv"
    assert proc.stdout.strip().splitlines()[-1] == str(csv)
    table = pd.read_csv(csv)
    n_datasets = len([p for p in faces140k.parent.iterdir() if p.is_dir()])
    whole = table[~table["dataset"].str.contains(" / ")]  # not the rows per generator
    assert len(whole) == 2 * n_datasets and (whole["n"] == 12).all() and table["accuracy"].between(0, 1).all()
    inside = table[table["domain"] == "in-domain"].set_index("run")["dataset"].to_dict()
    assert inside == {"on-faces": "faces-140k-mini", "on-lfw": "lfw-faceswap"}
    assert set(table[table["run"] == "on-lfw"]["trained_on"]) == {"lfw-faceswap"}
    # robustness on a folder of several datasets scores only those the run was trained on
    from dfd import evaluate

    folder = evaluate.robustness(tmp_path / "on-lfw", faces140k.parent, limit=10)
    assert (pd.read_csv(folder / "robustness.csv")["n"] == 10).all()
    assert json.loads((folder / "robustness.json").read_text())["datasets"] == ["lfw-faceswap"]
    at = _app(tmp_path, monkeypatch)
    at.sidebar.selectbox(key="run_name").set_value("on-faces").run()
    _open(at, "evaluation")
    grid = next(d.value for d in at.dataframe if "faces-140k-mini" in getattr(d.value, "columns", []))
    assert list(grid.index) == ["faces-140k-mini", "lfw-faceswap"]
    assert grid.loc["faces-140k-mini", "faces-140k-mini"].endswith("(in)")
    assert not grid.loc["faces-140k-mini", "lfw-faceswap"].endswith("(in)")


def test_the_run_picker_lists_the_users_runs_and_the_shipped_ones(trained_runs, monkeypatch):
    """Shipped runs (models/) are listed beside the user's runs and marked; the Compare table says which is which
    and is at each run's served threshold; the Evaluation page says where its numbers come from."""
    from dfd import DEFAULT_RUN, runs

    at = _app(trained_runs, monkeypatch, shipped=True)
    picker = at.sidebar.selectbox(key="run_name")
    assert picker.options[:1] == ["tiny-test"] and f"{DEFAULT_RUN} (shipped)" in picker.options
    assert picker.value == DEFAULT_RUN
    _open(at, "compare")
    table = at.dataframe[0].value.set_index("run")
    assert table.loc[DEFAULT_RUN, "kind"] == "shipped" and table.loc["tiny-test", "kind"] == "user"
    assert table.loc[DEFAULT_RUN, "threshold"] == runs.get_run(DEFAULT_RUN).threshold
    assert any("served threshold" in c.value for c in at.caption)
    _open(at, "evaluation")
    captions = " ".join(c.value for c in at.caption)
    assert "a shipped run: read-only" in captions and "the run's own file" in captions


def test_a_gif_upload_is_judged_like_the_cli_does(trained_runs, monkeypatch, face_bytes):
    """The uploader and ``python -m dfd predict`` agree: a GIF is an image (its first frame)."""
    import io

    from PIL import Image

    at = _open(_app(trained_runs, monkeypatch), "detect")
    assert "GIF" in at.file_uploader(key="det_files").label
    gif = io.BytesIO()
    Image.open(io.BytesIO(face_bytes)).save(gif, format="GIF")
    table = _detect(at, [("face.gif", gif.getvalue(), "image/gif")])
    assert table["verdict"].iloc[0] in ("fake", "real") and 0 <= table["p_fake"].iloc[0] <= 1


def test_a_killed_training_run_shows_up_as_interrupted(tmp_path, monkeypatch):
    """A run folder left behind by a killed training process (.tmp-<name>-<dead pid>) is kept and listed."""
    from dfd import runs

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = tmp_path / f".tmp-killed-{int(dead.stdout)}"
    stale.mkdir()
    runs.write_json_atomic(stale / "config.json", {"architecture": "tiny", "image_size": 64})
    runs.write_status(stale, "running")
    at = _open(_app(tmp_path, monkeypatch), "compare")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["killed"] and list(table["status"]) == ["interrupted"]
    assert (tmp_path / "killed").is_dir() and not stale.exists()


def _detect(at: AppTest, files: list[tuple[str, bytes, str]]):
    at.file_uploader(key="det_files").set_value(files)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at.dataframe[0].value


def test_detect_page_judges_a_real_face_and_reports_bad_files(trained_runs, monkeypatch, face_bytes):
    at = _open(_app(trained_runs, monkeypatch), "detect")
    from dfd import runs

    trained_on = runs.get_run("tiny-test", trained_runs).trained_on
    assert trained_on and any(f"trained on {' + '.join(trained_on)}" in c.value for c in at.caption)
    unique = f"upload-{os.getpid()}-{time.time_ns()}.jpg"
    table = _detect(at, [(unique, face_bytes, "image/jpeg"),
                         ("broken.jpg", face_bytes[:400], "image/jpeg"),
                         ("notes.txt", b"these are not pixels", "text/plain")])
    # uploads are judged in memory: nothing is written under the uploaded name
    import tempfile

    for folder in (REPO, Path(tempfile.gettempdir()), Path.home() / ".streamlit", Path.cwd()):
        if folder.exists():
            assert not list(folder.rglob(unique)), f"{unique} written under {folder}"
    table["file"] = table["file"].replace(unique, "face.jpg")
    rows = {r.file: r for r in table.itertuples()}
    assert set(rows) == {"face.jpg", "broken.jpg", "notes.txt"}
    assert rows["face.jpg"].verdict in ("fake", "real") and 0 <= rows["face.jpg"].p_fake <= 1
    assert rows["broken.jpg"].verdict == "error" and "corrupt" in rows["broken.jpg"].note
    assert rows["notes.txt"].verdict == "error" and "not an image" in rows["notes.txt"].note
    verdicts = [s.value for s in at.success] + [e.value for e in at.error]
    assert any("P(fake)" in v for v in verdicts)
    assert any("notes.txt" in e.value for e in at.error)
    # the threshold slider re-labels without re-running the model
    at.slider(key="det_threshold_tiny-test").set_value(0.0).run()
    assert at.dataframe[0].value.set_index("file").loc[unique, "verdict"] == "fake"
    at.toggle(key="det_cam").set_value(True).run()
    assert not at.exception
    assert any("Grad-CAM" in c for el in at.get("image") for c in el.captions)


def test_sessions_detecting_at_once_agree_with_one_session_alone(trained_runs, monkeypatch, faces140k):
    monkeypatch.setenv("DFD_RUNS_DIR", str(trained_runs))
    monkeypatch.setenv("DFD_MODELS_DIR", str(trained_runs.parent / "no-shipped-runs"))
    paths = sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:3]
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in paths]

    def session() -> dict[str, float]:
        at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT).run()
        at.switch_page("app_pages/detect.py").run()
        table = _detect(at, files)
        return dict(zip(table["file"], table["p_fake"], strict=True))

    alone = session()
    results: list[dict[str, float]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(session())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 3
    for r in results:
        assert r == pytest.approx(alone, abs=1e-6)


@pytest.mark.slow
def test_training_started_and_stopped_from_the_page(tmp_path, monkeypatch, faces140k):
    runs_dir = tmp_path / "runs"
    at = _app(runs_dir, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(faces140k)).run()
    _open(at, "training")
    at.selectbox(key="tf_arch").set_value("tiny")
    at.number_input(key="tf_epochs").set_value(50)
    at.selectbox(key="tf_size").set_value(64)
    at.text_input(key="tf_name").input("stopped-run")
    at.checkbox(key="tf_balance").check()
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception
    from app_pages import _shared

    job = _shared.training_job()
    assert job is not None
    deadline = time.time() + 240
    while job.epoch < 0.05 and job.active and time.time() < deadline:  # wait for the first batches
        time.sleep(0.5)
    at.run()
    assert any(p.value is not None for p in at.get("progress")), "no live progress bar"
    at.button(key="train_stop").click().run()
    job.thread.join(timeout=240)
    assert not job.active
    at.run()
    at.run()
    assert not at.exception
    status = json.loads((runs_dir / "stopped-run" / "status.json").read_text())
    assert status["status"] == "interrupted"
    config = json.loads((runs_dir / "stopped-run" / "config.json").read_text())
    assert config["balance_datasets"] is True
    # the flag reached the training code (one dataset here, so nothing was repeated)
    assert config["balanced_train_images"] == sum(config["split_counts"]["train"].values())
    assert at.sidebar.selectbox(key="run_name").value == "stopped-run"


def test_an_ensemble_run_on_the_training_and_detect_pages(tmp_path, monkeypatch, faces140k, face_bytes):
    """An ensemble (python -m dfd ensemble) has no history of its own: the Training page shows each member's
    curves, and the Detect page names it and judges with it."""
    from dfd import train

    cfg = dict(data=str(faces140k), architecture="tiny", image_size=64, epochs=1, runs_dir=str(tmp_path),
               patience=0)
    members = [train.train(train.TrainConfig(**cfg, name=f"m{seed}", seed=seed)) for seed in (0, 1)]
    train.ensemble(members, name="pair", runs_dir=tmp_path)
    at = _app(tmp_path, monkeypatch)
    at.sidebar.selectbox(key="run_name").set_value("pair").run()
    _open(at, "training")
    assert any("An ensemble: P(fake) is the mean of m0, m1" in c.value for c in at.caption)
    assert [m.value for m in at.markdown if m.value in ("**m0**", "**m1**")] == ["**m0**", "**m1**"]
    assert len(at.get("plotly_chart")) >= 4, "loss and accuracy curves for each member"
    _open(at, "detect")
    assert any("ensemble of 2 tiny" in c.value for c in at.caption)
    table = _detect(at, [("face.jpg", face_bytes, "image/jpeg")])
    from dfd.detect import Detector

    assert list(table["file"]) == ["face.jpg"] and table["verdict"].iloc[0] in ("fake", "real")
    expected = Detector(tmp_path / "pair").analyse(face_bytes).faces[0].p_fake
    assert float(table["p_fake"].iloc[0]) == pytest.approx(expected, abs=1e-3), "the page judges with the ensemble"
