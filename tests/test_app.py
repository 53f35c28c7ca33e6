"""The Streamlit app through streamlit.testing.v1.AppTest: every page from the entry point, with and without
runs; sliders; detection of real, broken and non-image uploads; several sessions detecting at once;
training started and stopped from the page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA, need
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
    from dfd.evaluate import default_tag

    tag = default_tag([p.name for p in faces140k.parent.iterdir() if p.is_dir()], "test")
    csv = tmp_path / "_evals" / "on-faces" / "cross-dataset" / tag / "cross_dataset.csv"
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
    assert table["verdict"].iloc[0] in ("fake", "real", "inconclusive")
    assert 0 <= float(table["p_fake"].iloc[0]) <= 1  # shown as text, rounded once (detect.p_text)


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
    assert rows["face.jpg"].verdict in ("fake", "real", "inconclusive") and 0 <= float(rows["face.jpg"].p_fake) <= 1
    assert rows["broken.jpg"].verdict == "error" and "corrupt" in rows["broken.jpg"].note
    assert rows["notes.txt"].verdict == "error" and "not an image" in rows["notes.txt"].note
    verdicts = [s.value for s in at.success] + [e.value for e in at.error]
    assert any("P(fake)" in v for v in verdicts)
    assert any("notes.txt" in e.value for e in at.error)
    # the threshold slider re-labels without re-running the model
    next(s for s in at.slider if s.key.startswith("det_threshold_tiny-test")).set_value(0.0).run()
    assert at.dataframe[0].value.set_index("file").loc[unique, "verdict"] == "fake"
    at.toggle(key="det_cam").set_value(True).run()
    assert not at.exception
    assert any("Grad-CAM" in c for el in at.get("image") for c in el.captions)


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


def _fake_training(monkeypatch, release: Path, status: str) -> None:
    """Trainings started from now run tests/fake_training.py's stand-in (what the page shows of a job needs no
    real model): it waits for the file ``release``, then writes a run with ``status``."""
    import fake_training

    from dfd import jobs

    monkeypatch.setattr(jobs, "TARGET", fake_training.train)
    monkeypatch.setenv("DFD_FAKE_RELEASE", str(release))
    monkeypatch.setenv("DFD_FAKE_STATUS", status)


def test_a_training_is_shown_to_the_session_that_started_it_only(tmp_path, monkeypatch):
    """Session A starts a training: A sees its progress, Stop and result; session B sees only that a training
    runs and the run it will write, and no banner once it ends; a session opened later sees nothing of it. A
    stopped run's banner says "interrupted", the word the run picker shows."""
    from app_pages import _shared

    runs_dir = tmp_path / "runs"
    release = tmp_path / "release"
    _fake_training(monkeypatch, release, "complete")
    mine = _open(_app(runs_dir, monkeypatch), "training")
    other = _open(_app(runs_dir, monkeypatch), "training")
    mine.text_input(key="tf_name").input("walk")
    mine.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not mine.exception
    job = _shared.training_job()
    assert job.active and job.config.name == "walk"

    other.run()
    notes = [i.value for i in other.info if "another session" in i.value]
    assert len(notes) == 1 and "**walk**" in notes[0], [i.value for i in other.info]
    assert not other.get("progress") and not [b for b in other.button if b.key == "train_stop"]
    mine.run()
    assert mine.get("progress") and mine.button(key="train_stop") is not None
    assert not [i.value for i in mine.info if "another session" in i.value]

    release.touch()
    job.thread.join(timeout=60)
    for at in (mine, other):
        at.run()
        at.run()
        assert not at.exception
    assert any("Training complete" in s.value and "walk" in s.value for s in mine.success)
    assert not [m.value for m in [*other.success, *other.warning, *other.info] if "walk" in m.value]
    later = _open(_app(runs_dir, monkeypatch), "training")
    assert not [m.value for m in [*later.success, *later.warning, *later.info] if "walk" in m.value]

    _fake_training(monkeypatch, release, "interrupted")
    mine.text_input(key="tf_name").input("halt")
    mine.button(key="FormSubmitter:train_form-Start training").click().run()
    _shared.training_job().thread.join(timeout=60)
    mine.run()
    mine.run()
    banner = [w.value for w in mine.warning if "halt" in w.value]
    assert len(banner) == 1 and banner[0].startswith("Training interrupted") and "stopped" not in banner[0]
    assert "halt (interrupted)" in mine.sidebar.selectbox(key="run_name").options


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
    _open(at, "compare")  # the shared curve helper draws an ensemble's members' curves here too
    at.multiselect(key="cmp_runs").set_value(["pair", "m0"]).run()
    traces = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert traces == {"pair/m0", "pair/m1", "m0"}, traces
    _open(at, "detect")
    assert any("ensemble of 2 tiny" in c.value for c in at.caption)
    table = _detect(at, [("face.jpg", face_bytes, "image/jpeg")])
    from dfd.detect import Detector

    assert list(table["file"]) == ["face.jpg"] and table["verdict"].iloc[0] in ("fake", "real", "inconclusive")
    expected = Detector(tmp_path / "pair").analyse(face_bytes).faces[0].p_fake
    assert float(table["p_fake"].iloc[0]) == pytest.approx(expected, abs=1e-3), "the page judges with the ensemble"


# ---------------------------------------------------------------------------------------------- the user's place


def _shown(picker) -> str:
    """The option a browser draws for a selectbox: the value the server pushes (set_value), else the option at
    the widget's own index (what a freshly drawn picker shows)."""
    return picker.proto.raw_value if picker.proto.set_value else picker.options[picker.proto.default]


def _page_run(at: AppTest) -> str:
    """The run the Training page uses, from its caption 'Run **<name>** · ...'."""
    import re

    found = [m.group(1) for c in at.caption for m in [re.match(r"Run \*\*(.+?)\*\*", c.value)] if m]
    assert found, [c.value for c in at.caption]
    return found[0]


def _train_on_page(at: AppTest, name: str) -> None:
    from app_pages import _shared

    at.selectbox(key="tf_arch").set_value("tiny")
    at.number_input(key="tf_epochs").set_value(1)
    at.selectbox(key="tf_size").set_value(64)
    at.number_input(key="tf_limit").set_value(40)
    at.text_input(key="tf_name").input(name)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception, [e.message for e in at.exception]
    job = _shared.training_job()
    assert job is not None and job.config.name == name
    job.thread.join(timeout=600)
    assert job.status == "complete", job.error
    at.run()  # the live panel sees the job end and reruns the page
    at.run()
    assert not at.exception


@pytest.mark.slow
def test_the_run_picker_shows_the_run_the_page_uses_across_trainings(trained_runs, tmp_path, monkeypatch,
                                                                      faces140k):
    """After trainings add runs, the sidebar's picker still shows the run the page uses (not the newest), and
    other widgets do not switch the run."""
    import shutil

    runs_dir = tmp_path / "runs"
    shutil.copytree(trained_runs / "tiny-test", runs_dir / "first")
    at = _app(runs_dir, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(faces140k)).run()
    _open(at, "training")
    picker = at.sidebar.selectbox(key="run_name")
    used = _page_run(at)
    assert _shown(picker) == picker.value == used
    for name in ("second", "third"):
        _train_on_page(at, name)
        picker = at.sidebar.selectbox(key="run_name")
        assert {"second", name} <= set(picker.options)
        assert _shown(picker) == picker.value == _page_run(at) == used, (name, picker.options)
    at.checkbox(key="tf_flip").uncheck().run()  # another widget: the run stays
    picker = at.sidebar.selectbox(key="run_name")
    assert _shown(picker) == picker.value == _page_run(at) == used
    picker.set_value("second").run()  # choosing a run moves both
    picker = at.sidebar.selectbox(key="run_name")
    assert _shown(picker) == picker.value == _page_run(at) == "second"
    _open(at, "detect")
    picker = at.sidebar.selectbox(key="run_name")
    assert _shown(picker) == picker.value == "second"
    assert any(c.value.startswith("Run **second**") for c in at.caption)


def test_detect_page_serves_a_recalibrated_run_afresh(tmp_path, monkeypatch, face_bytes, faces140k):
    """`python -m dfd calibrate` on the chosen run: the Detect page's P(fake) and threshold follow at once."""
    from synthetic_faces import make_faces

    from dfd import runs, train
    from dfd.detect import Detector

    runs_dir = tmp_path / "runs"
    data = make_faces(tmp_path / "data", faces140k / "real-vs-fake" / "train" / "real",
                      {"train": 60, "valid": 20, "test": 20}, amp=5)
    train.train(train.TrainConfig(data=str(data), architecture="tiny", image_size=48, epochs=3, batch_size=16,
                                  learning_rate=1e-2, warmup_epochs=0.5, patience=0, runs_dir=str(runs_dir),
                                  name="tiny-test"))  # learns (a checkerboard trace), so calibration means something
    run = runs.get_run(runs_dir / "tiny-test")
    at = _open(_app(runs_dir, monkeypatch), "detect")
    before = float(_detect(at, [("face.jpg", face_bytes, "image/jpeg")])["p_fake"].iloc[0])
    old_t, old_thr = run.temperature, run.threshold
    proc = subprocess.run([sys.executable, "-m", "dfd", "calibrate", "tiny-test", "--split", "test", "--runs-dir",
                           str(runs_dir)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    run = runs.get_run(runs_dir / "tiny-test")
    assert run.temperature != pytest.approx(old_t, abs=1e-3), "calibrating on test gives another temperature"
    at.run()
    assert not at.exception
    after = float(at.dataframe[0].value["p_fake"].iloc[0])
    fresh = Detector(run).analyse(face_bytes).faces[0].p_fake
    assert after == pytest.approx(fresh, abs=5e-4) and after != pytest.approx(before, abs=5e-4)  # shown to 3 decimals
    sliders = [s for s in at.slider if s.key.startswith("det_threshold_")]
    assert len(sliders) == 1 and sliders[0].value == pytest.approx(run.threshold, abs=0.01)
    assert run.threshold != pytest.approx(old_thr, abs=1e-9) or sliders[0].value == pytest.approx(old_thr)


def test_detect_page_warns_when_the_run_was_not_trained_on_the_data(trained_runs, monkeypatch, faces140k):
    """tiny-test was trained on faces-140k-mini: samples from the built-in demo get a warning naming both,
    samples from faces-140k-mini do not."""
    at = _open(_app(trained_runs, monkeypatch), "detect")
    at.button(key="det_try").click().run()
    assert not at.exception
    warned = [w.value for w in at.warning if "not trained on" in w.value]
    assert len(warned) == 1 and "demo-v1" in warned[0] and "faces-140k-mini" in warned[0], warned
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(faces140k)).run()
    at.button(key="det_try").click().run()
    assert not at.exception
    assert at.dataframe[0].value["file"].str.contains(r"\(true: (?:real|fake)\)").all()
    assert not [w.value for w in at.warning if "not trained on" in w.value]


# ---------------------------------------------------------------------------------------------- bad input


def _shipped_records(runs_dir: Path) -> Path:
    """The shipped default's records (config.json, status.json, history.csv: read at run time, so a new default
    is picked up), copied into a runs folder as a run named 'default'. Never writes to models/."""
    from dfd import DEFAULT_RUN, MODELS_DIR

    src = MODELS_DIR / DEFAULT_RUN
    if not (src / "config.json").exists():
        pytest.skip(f"no shipped default in {src}")
    dest = runs_dir / DEFAULT_RUN
    dest.mkdir(parents=True)
    for name in ("config.json", "status.json", "history.csv"):
        if (src / name).exists():
            (dest / name).write_bytes((src / name).read_bytes())
    return dest


def test_training_page_checks_the_folder_before_start_in_one_line(tmp_path, monkeypatch, capfd):
    """A folder that is not a dataset is one line before Start (and Start is off); settings that cannot train
    on the data in hand (the shipped default's datasets on the built-in demo) are one line at Start. No job
    starts, no folder is made, no traceback on the page or in the server's log."""
    from app_pages import _shared

    before = _shared.training_job()
    runs_dir = tmp_path / "runs"
    _shipped_records(runs_dir)
    at = _app(runs_dir, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(tmp_path / "nowhere")).run()
    _open(at, "training")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "not found" in errors[0] and "\n" not in errors[0], errors
    assert at.button(key="FormSubmitter:train_form-Start training").disabled
    at.sidebar.radio(key="data_source").set_value("Built-in demo").run()
    assert not at.error
    preset = next(o for o in at.selectbox(key="tf_preset").options if o.startswith("Settings of default"))
    at.selectbox(key="tf_preset").set_value(preset).run()
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    # (the default names datasets or reals-only datasets the demo does not have: one line says which)
    assert len(errors) == 1 and errors[0].startswith("Cannot start: "), errors
    assert "real-and-fake-face" in errors[0] or "none of the datasets" in errors[0]
    assert "demo-v1" in errors[0] and "\n" not in errors[0]
    assert _shared.training_job() is before, "nothing started"
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert [p.name for p in runs_dir.iterdir()] == ["default"], "no run folder made"


def test_end_users_never_see_tracebacks():
    import tomllib

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("none", "type")


def test_evaluation_page_names_datasets_says_where_each_section_comes_from_and_never_shows_none(
        trained_runs, tmp_path, monkeypatch, faces140k):
    """A run with its own robustness and cross-dataset files (made on one image each: metrics undefined) and a
    later evaluation on lfw-faceswap from the shared folder (tag 'lfw-faceswap-test', by its dataset, not the
    folder's name 'data'): the sources name their
    datasets, each section says whose file it shows, and no table shows 'None' or 'nan'."""
    import shutil

    from dfd import evaluate, runs

    runs_dir = tmp_path / "runs"  # the run's own files only (other tests may have evaluated the shared one)
    shutil.copytree(trained_runs / "tiny-test", runs_dir / "tiny-test", ignore=shutil.ignore_patterns("evals"))
    run = runs.get_run(runs_dir / "tiny-test")
    evaluate.robustness(run, faces140k, limit=1, sweep=evaluate.ROBUSTNESS_SWEEP[:3])
    evaluate.cross_dataset([run], faces140k.parent, limit=1)
    tag = evaluate.evaluate_run(run, faces140k.parent, dataset="lfw-faceswap", limit=20).name
    assert tag == "lfw-faceswap-test"
    at = _open(_app(runs_dir, monkeypatch), "evaluation")
    options = at.selectbox(key="ev_source").options
    assert options == ["Run's own predictions (faces-140k-mini)", "Evaluated on lfw-faceswap (lfw-faceswap-test)"], options

    def captions() -> str:
        return " | ".join(c.value for c in at.caption)

    def no_missing_shown() -> None:
        for frame in at.dataframe:
            text = frame.value.reset_index().astype(str).to_numpy().ravel().tolist()
            assert not {"None", "nan", "NaN", "<NA>"} & set(" ".join(text).replace("/", " ").split()), text

    text = captions()
    assert "the run's own predictions.csv (its val and test splits, faces-140k-mini)" in text
    assert "(faces-140k-mini, test split, 1 image): the datasets the run was trained on" in text
    assert "not from the evaluation chosen at the top" not in text
    no_missing_shown()
    at.selectbox(key="ev_source").set_value(options[1]).run()
    assert not at.exception
    text = captions()
    assert "a later evaluation of this run on lfw-faceswap (test split" in text
    assert "from evaluation record" in text and "lfw-faceswap-test" in text
    assert text.count("not from the evaluation chosen at the top") == 2, text  # robustness and cross-dataset
    assert "(faces-140k-mini, test split, 1 image)" in text
    assert "20 images" in text
    no_missing_shown()


@pytest.mark.slow
def test_the_shipped_default_preset_reproduces_its_config(tmp_path, monkeypatch):
    """'Settings of default' loads every setting of models/default/config.json (read now, whatever the default
    is): the form's fields, and the rest shown read-only and applied. Started with the two overrides the form
    offers (1 epoch, a few images), the new run's config.json equals the default's on every other setting."""
    from dataclasses import fields

    from dfd import train

    runs_dir = tmp_path / "runs"
    shipped = json.loads((_shipped_records(runs_dir) / "config.json").read_text())
    data = Path(shipped["data"]) if Path(shipped.get("data", "")).is_dir() else SHARED_DATA
    if not data.is_dir():
        pytest.skip(f"the default's training data is not here ({shipped.get('data')})")
    at = _app(runs_dir, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(data)).run()
    _open(at, "training")
    preset = next(o for o in at.selectbox(key="tf_preset").options if o.startswith("Settings of default"))
    at.selectbox(key="tf_preset").set_value(preset).run()
    assert not at.exception
    assert at.selectbox(key="tf_arch").value == shipped["architecture"]
    assert at.selectbox(key="tf_size").value == shipped["image_size"]
    assert at.number_input(key="tf_epochs").value == shipped["epochs"]
    assert at.checkbox(key="tf_balance").value == shipped["balance_datasets"]
    assert at.checkbox(key="tf_pretrained").value == shipped["pretrained"]
    if shipped.get("teacher"):  # the default was distilled: the form says it trains one run of the recipe
        assert any(f"distilled from {len(shipped['teacher'])} runs" in i.value for i in at.info)
    shown = json.loads(at.json[0].value)
    for key in ("arch_kwargs", "weight_decay", "tta", "seed", "monitor", "patience", "datasets"):
        assert shown[key] == shipped[key], key  # the settings the form cannot edit: shown, read-only
    at.number_input(key="tf_epochs").set_value(1)
    at.number_input(key="tf_limit").set_value(12)
    at.text_input(key="tf_name").input("repro")
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from app_pages import _shared

    job = _shared.training_job()
    job.thread.join(timeout=1800)
    assert job.status == "complete", job.error
    new = json.loads((runs_dir / "repro" / "config.json").read_text())
    distilled = ("teacher", "distill_weight", "distill_temperature")  # teachers are trained first, on the CLI
    compared = [f.name for f in fields(train.TrainConfig)
                if f.name in shipped and f.name not in ("name", "runs_dir", "data", "epochs", "limit", *distilled)]
    assert len(compared) >= 20
    for key in compared:
        if key == "class_weight":  # recorded as the weights used; the setting is on in both
            assert bool(new[key]) and bool(shipped[key])
        else:
            assert new[key] == shipped[key], (key, new[key], shipped[key])
    assert (new["epochs"], new["limit"]) == (1, 12) and not new.get("teacher")
    assert new["datasets_in_data"] == shipped["datasets_in_data"]


# ---------------------------------------------------------------------------------------------- issue 23


def _made_run(runs_dir: Path, name: str, config: dict, rows: list[tuple], history: int = 2,
              files: dict[str, str] | None = None) -> Path:
    """A complete run folder written by hand: config.json, status.json, history.csv of ``history`` epochs and
    predictions.csv of ``rows`` (dataset, split, label, p_fake); plus ``files`` (name -> text). Pages read these
    files only (no model needed)."""
    import pandas as pd

    from dfd import runs

    path = runs_dir / name
    path.mkdir(parents=True)
    runs.write_json_atomic(path / "config.json", {"architecture": "tiny", "image_size": 64, **config})
    runs.write_status(path, runs.COMPLETE)
    pd.DataFrame({"epoch": range(1, history + 1), "loss": [0.6] * history, "val_loss": [0.7] * history,
                  "accuracy": [0.7] * history, "val_accuracy": [0.6] * history}).to_csv(path / "history.csv",
                                                                                       index=False)
    pred = pd.DataFrame([{"path": f"{d}/{s}/{i}.jpg", "label": y, "p_fake": p, "split": s, "dataset": d,
                          "generator": "", "source": ""} for i, (d, s, y, p) in enumerate(rows)])
    pred.to_csv(path / "predictions.csv", index=False)
    for file, text in (files or {}).items():
        (path / file).write_text(text)
    return path


def _frame_with(at: AppTest, column: str):
    """The first table on the page with ``column`` (AppTest does not keep a dataframe's key), else None."""
    return next((d.value for d in at.dataframe if column in getattr(d.value, "columns", [])), None)


def _two_sets(p_other_fake: float = 0.02) -> list[tuple]:
    """learned-set: one fake missed (P(fake) 0.3), the rest right; other-set: reals right, fakes called real
    (P(fake) ``p_other_fake``)."""
    rows = []
    for split in ("val", "test"):
        rows += [("learned-set", split, 0, 0.1)] * 6 + [("learned-set", split, 1, 0.9)] * 5
        rows += [("learned-set", split, 1, 0.3)]
        rows += [("other-set", split, 0, 0.1)] * 5 + [("other-set", split, 1, p_other_fake)] * 5
    return rows


def test_evaluation_headline_pools_only_the_datasets_the_run_learned(tmp_path, monkeypatch):
    """A run that learned only other-set's real photos (reals_only) is not judged on other-set's fakes in its
    headline: the default choice pools the learned datasets (dfd.evaluate.domain_of), other-set is shown apart
    and labelled, and its fakes are not among the misclassified images."""
    from dfd import evaluate, runs, tables

    runs_dir = tmp_path / "runs"
    _made_run(runs_dir, "knows-reals", {"datasets_in_data": ["learned-set", "other-set"],
                                        "reals_only": ["other-set"]}, _two_sets())
    run = runs.get_run(runs_dir / "knows-reals")
    at = _open(_app(runs_dir, monkeypatch), "evaluation")
    pred = run.predictions()
    test = pred[pred["split"] == "test"]
    learned = [d for d in sorted(test["dataset"].unique()) if evaluate.domain_of(run, d) == "in-domain"]
    assert learned == ["learned-set"]
    expected = tables.served_metrics(run, test[test["dataset"].isin(learned)])["accuracy"]
    pooled_all = tables.served_metrics(run, test)["accuracy"]
    assert expected != pytest.approx(pooled_all)  # the test can tell the two apart
    chosen = at.selectbox(key="ev_dataset")
    assert chosen.value.startswith("learned-set") and "other-set (reals only" in " ".join(chosen.options)
    assert {m.label: m.value for m in at.metric}["Accuracy"] == f"{expected:.3f}"
    apart = _frame_with(at, "the run learned")
    assert list(apart["dataset"]) == ["other-set"] and apart["the run learned"].iloc[0].startswith("reals only")
    wrong = _frame_with(at, "p_fake")
    assert list(wrong["dataset"]) == ["learned-set"], "the misclassified images are the pooled ones"
    chosen.set_value(next(o for o in chosen.options if o.startswith("other-set"))).run()  # judged by itself
    other = test[test["dataset"] == "other-set"]
    assert {m.label: m.value for m in at.metric}["Accuracy"] == f"{tables.served_metrics(run, other)['accuracy']:.3f}"


def test_evaluation_headline_of_the_shipped_default_pools_what_it_learned(tmp_path, monkeypatch):
    """The same on the shipped default, whatever it is: the headline accuracy is that of the datasets it learned
    (from its own config and predictions), and every other dataset of its predictions is shown apart."""
    from dfd import DEFAULT_RUN, evaluate, runs, tables

    try:
        run = runs.get_run(DEFAULT_RUN)
    except runs.RunError:
        pytest.skip("no shipped default")
    at = _open(_app(tmp_path / "runs", monkeypatch, shipped=True), "evaluation")
    test = run.predictions()
    test = test[test["split"] == "test"]
    domains = {d: evaluate.domain_of(run, d) for d in sorted(test["dataset"].dropna().unique())}
    learned = [d for d, k in domains.items() if k == "in-domain"]
    expected = tables.served_metrics(run, test[test["dataset"].isin(learned)])["accuracy"]
    assert {m.label: m.value for m in at.metric}["Accuracy"] == f"{expected:.3f}"
    others = sorted(d for d, k in domains.items() if k != "in-domain")
    if others:
        assert sorted(_frame_with(at, "the run learned")["dataset"]) == others


def test_across_datasets_shows_runs_the_user_can_open_and_says_what_the_others_are(tmp_path, monkeypatch):
    """A cross-dataset table names runs beside the chosen one: those in the run picker are in the grid; the
    others (not openable) are apart, each said what it is from the run's runs_compared.csv, or from the table."""
    import pandas as pd

    runs_dir = tmp_path / "runs"
    rows = [(run, trained, d, "in-domain" if d in trained else "out-of-domain", 10, 0.8, 0.9, 0.8, 0.2)
            for run, trained in (("judged", "learned-set"), ("neighbour", "other-set"),
                                 ("ghost-a", "learned-set + other-set"), ("ghost-b", "other-set"))
            for d in ("learned-set", "other-set")]
    cross = pd.DataFrame(rows, columns=["run", "trained_on", "dataset", "domain", "n", "accuracy", "roc_auc",
                                        "recall", "false_alarm"]).to_csv(index=False)
    compared = "run,architecture,trained on,epochs\nghost-a,tiny (a ghost),learned-set + other-set,7\n"
    _made_run(runs_dir, "neighbour", {"datasets_in_data": ["other-set"]}, _two_sets())
    _made_run(runs_dir, "judged", {"datasets_in_data": ["learned-set"]}, _two_sets(),
              files={"cross_dataset.csv": cross, "runs_compared.csv": compared})
    at = _app(runs_dir, monkeypatch)
    at.sidebar.selectbox(key="run_name").set_value("judged").run()
    _open(at, "evaluation")
    picker = set(at.sidebar.selectbox(key="run_name").options)
    grid = _frame_with(at, "learned-set")
    assert sorted(grid.index) == ["learned-set", "other-set"], grid  # judged and neighbour, by training data
    others = _frame_with(at, "what it is")
    assert sorted(others.index) == ["ghost-a", "ghost-b"] and not set(others.index) & picker
    assert others.loc["ghost-a", "what it is"] == "tiny (a ghost); trained on learned-set + other-set; 7 epochs"
    assert others.loc["ghost-b", "what it is"] == "trained on other-set (not in runs_compared.csv)"
    assert any("2 more detectors in this table, not among your runs" in e.label for e in at.expander)


def test_across_datasets_of_the_shipped_default_explains_every_run(tmp_path, monkeypatch):
    """Every run of the default's cross-dataset table is either one the user can open (in the grid) or said
    what it is (apart), whatever the default is."""
    from dfd import DEFAULT_RUN, runs

    try:
        run = runs.get_run(DEFAULT_RUN)
    except runs.RunError:
        pytest.skip("no shipped default")
    cross = run.cross_dataset()
    if cross.empty:
        pytest.skip("the default has no cross-dataset table")
    at = _open(_app(tmp_path / "runs", monkeypatch, shipped=True), "evaluation")
    openable = {o.removesuffix(" (shipped)") for o in at.sidebar.selectbox(key="run_name").options}
    others = _frame_with(at, "what it is")
    apart = set() if others is None else set(others.index)
    assert apart == set(cross["run"].astype(str)) - openable
    assert others is None or others["what it is"].str.len().gt(0).all()


def test_compare_test_metrics_are_grouped_by_the_test_set_each_run_was_scored_on(tmp_path, monkeypatch):
    """A run tested on the synthetic demo beside a run tested on real data: the chart puts them in separate
    panels, each titled by its test set, and the page says the sets differ; runs on the same images share one."""
    from dfd import runs, tables

    runs_dir = tmp_path / "runs"
    demo = [("demo-v1", s, y, p) for s in ("val", "test") for y, p in ((0, 0.2), (1, 0.8), (1, 0.3))]
    _made_run(runs_dir, "on-demo", {}, demo)
    _made_run(runs_dir, "on-real", {}, _two_sets())
    _made_run(runs_dir, "on-real-too", {}, _two_sets(0.7))
    at = _open(_app(runs_dir, monkeypatch), "compare")
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["on-demo", "test data"] == "demo-v1"
    assert table.loc["on-real", "test data"] == "learned-set + other-set"
    at.multiselect(key="cmp_runs").set_value(["on-demo", "on-real", "on-real-too"]).run()
    assert not at.exception
    expected = tables.test_sets([runs.get_run(runs_dir / n) for n in ("on-demo", "on-real", "on-real-too")])
    assert expected["on-real"] == expected["on-real-too"] != expected["on-demo"]
    spec = json.loads(next(c for c in at.get("plotly_chart") if "tested on" in c.proto.spec).proto.spec)
    titles = sorted(a["text"] for a in spec["layout"]["annotations"])
    assert titles == sorted(f"tested on {expected[n]}" for n in ("on-demo", "on-real")), titles
    panels = {t["name"]: t["xaxis"] for t in spec["data"]}
    assert panels["on-real"] == panels["on-real-too"] != panels["on-demo"], panels
    assert any("2 different test sets" in c.value for c in at.caption)


def test_counts_are_pluralised_and_a_one_epoch_run_is_said_to_be_a_single_point(tmp_path, monkeypatch):
    """"1 run", "1 epoch", never "1 runs"; a one-epoch history is drawn as a point with a note saying why."""
    import re

    runs_dir = tmp_path / "runs"
    _made_run(runs_dir, "single", {"datasets_in_data": ["learned-set"]}, _two_sets(), history=1)
    at = _app(runs_dir, monkeypatch)
    plural_one = re.compile(r"\b1 (runs|images|epochs|files|datasets|detectors|batches|members)\b")
    for page in ("training", "evaluation", "compare"):
        _open(at, page)
        shown = [e.value for kind in ("caption", "markdown", "info", "success", "warning") for e in at.get(kind)]
        assert not [t for t in shown if plural_one.search(str(t))], (page, shown)
        if page == "training":
            assert any("1 epoch recorded" in str(t) for t in shown)
            notes = [c.value for c in at.caption if "single point" in c.value]
            assert notes and notes[0].startswith("One epoch recorded"), shown
        if page == "compare":
            assert any(str(t).startswith("1 run: yours") for t in shown), shown


def test_explorer_draws_real_and_fake_alike_in_every_chart_and_the_spectra_panels_alike(tmp_path, monkeypatch, lfw):
    """One order and one pair of colours for real and fake (the Counts and the JPEG charts), from one place;
    the three spectrum panels drawn the same way (a colour scale beside one narrowed it)."""
    from app_pages import _charts

    at = _app(tmp_path, monkeypatch)
    at.sidebar.radio(key="data_source").set_value("Folder path").run()
    at.sidebar.text_input(key="data_folder").input(str(lfw)).run()

    def classes(chart) -> list[tuple[str, str]]:
        return [(t["name"], t["marker"]["color"]) for t in json.loads(chart.proto.spec)["data"]]

    expected = [(c, _charts.CLASS_COLORS[c]) for c in _charts.CLASS_ORDER]
    assert classes(at.get("plotly_chart")[0]) == expected  # Counts
    at.session_state["explorer_tab"] = "Sizes, JPEG & unreadable files"
    at.run()
    assert classes(at.get("plotly_chart")[0]) == expected  # JPEG quantisation step
    at.session_state["explorer_tab"] = "Frequency spectra"
    at.run()
    assert not at.exception
    layouts = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    assert len(layouts) == 3

    def drawn(layout: dict) -> tuple:
        bar = layout.get("coloraxis", {}).get("colorbar", {})
        return (layout.get("height"), json.dumps(layout.get("margin"), sort_keys=True),
                layout.get("coloraxis", {}).get("showscale"), bar.get("orientation"), bar.get("y"))

    assert len({drawn(lay) for lay in layouts}) == 1, [drawn(lay) for lay in layouts]


# ---------------------------------------------------------------------------------------------- Detect (issue 23)


def test_detect_page_says_face_finding_was_off_and_shows_one_p_fake(trained_runs, monkeypatch, face_bytes):
    """'Find faces' off: the page says so (not "no face found"), and so do the table and the CSV note; P(fake)
    reads the same in the table and in the verdict line; an error row's face is blank, not None."""
    at = _open(_app(trained_runs, monkeypatch), "detect")
    at.toggle(key="det_faces").set_value(False).run()
    table = _detect(at, [("face.jpg", face_bytes, "image/jpeg"), ("broken.jpg", face_bytes[:300], "image/jpeg")])
    assert any("Face finding is off" in i.value for i in at.info), [i.value for i in at.info]
    assert not any("No face found" in w.value for w in at.warning)
    row = table.set_index("file").loc["face.jpg"]
    assert row["note"] == "face finding off: whole image judged"
    alerts = [a.value for a in (*at.success, *at.error, *at.warning) if "P(fake) =" in a.value]
    assert len(alerts) == 1 and f"P(fake) = {row['p_fake']} (" in alerts[0], (row["p_fake"], alerts)
    bad = table.set_index("file").loc["broken.jpg"]
    assert bad["face"] == "" and "None" not in table.to_string()


def test_detect_page_lists_every_unreadable_file_above_the_inspector(trained_runs, monkeypatch, face_bytes):
    at = _open(_app(trained_runs, monkeypatch), "detect")
    files = [(f"face{i}.jpg", face_bytes, "image/jpeg") for i in range(6)] + [("notes.jpg", b"no pixels", "image/jpeg")]
    _detect(at, files)
    assert at.selectbox(key="det_pick").value == 0, "the inspector shows the first file"
    listed = [e.value for e in at.error if "could not be judged" in e.value]
    assert len(listed) == 1 and "notes.jpg" in listed[0] and "not an image" in listed[0], [e.value for e in at.error]


def test_detect_page_drops_its_hint_once_samples_are_shown(trained_runs, monkeypatch):
    at = _open(_app(trained_runs, monkeypatch), "detect")
    assert any("Drop images above" in i.value for i in at.info)
    at.button(key="det_try").click().run()
    assert not at.exception
    assert len(at.dataframe) == 1, "the samples were judged"
    assert not any("Drop images above" in i.value for i in at.info), [i.value for i in at.info]


def test_detect_summary_says_which_datasets_gave_only_their_real_photos(trained_runs, tmp_path, monkeypatch):
    import shutil

    runs_dir = tmp_path / "runs"
    shutil.copytree(trained_runs / "tiny-test", runs_dir / "mixed")
    config = json.loads((runs_dir / "mixed" / "config.json").read_text())
    config.update(datasets_in_data=["faces-140k-mini", "real-and-fake-face"], reals_only=["real-and-fake-face"])
    (runs_dir / "mixed" / "config.json").write_text(json.dumps(config))
    at = _open(_app(runs_dir, monkeypatch), "detect")
    captions = [c.value for c in at.caption]
    assert any("trained on faces-140k-mini, and only the real photos of real-and-fake-face ·" in c
               for c in captions), captions
    assert not any("faces-140k-mini + real-and-fake-face" in c for c in captions)


def test_detect_page_reports_an_unexpected_failure_per_item_and_keeps_the_rest(trained_runs, monkeypatch,
                                                                              face_bytes):
    from dfd import detect

    analyse = detect.Detector.analyse

    def flaky(self, source, name=None, **kw):
        if name == "odd.jpg":
            raise MemoryError("out of memory in a stand-in")
        return analyse(self, source, name=name, **kw)

    monkeypatch.setattr(detect.Detector, "analyse", flaky)
    monkeypatch.setattr(detect, "draw", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("cannot draw")))
    at = _open(_app(trained_runs, monkeypatch), "detect")
    table = _detect(at, [("face.jpg", face_bytes, "image/jpeg"), ("odd.jpg", face_bytes + b"x", "image/jpeg")])
    rows = table.set_index("file")
    assert rows.loc["face.jpg", "verdict"] != "error"
    assert rows.loc["odd.jpg", "verdict"] == "error" and "MemoryError: out of memory" in rows.loc["odd.jpg", "note"]
    errors = [e.value for e in at.error]
    assert any("face.jpg" in e and "could not show its result (RuntimeError: cannot draw)" in e for e in errors), errors
    assert at.get("download_button"), "the rest of the page is there"


def test_evaluation_draws_the_decided_share_against_accuracy_with_the_runs_band(tmp_path, monkeypatch):
    from dfd import evaluate, runs

    runs_dir = tmp_path / "runs"
    path = _made_run(runs_dir, "banded", {"datasets_in_data": ["learned-set", "other-set"]}, _two_sets(0.45))
    runs.write_json_atomic(path / "calibration.json", {"temperature": 1.0, "threshold": 0.5, "fitted_on": "val",
                                                       "band_lo": 0.25, "band_hi": 0.5})
    at = _open(_app(runs_dir, monkeypatch), "evaluation")
    charts = [{t.get("name"): t for t in json.loads(c.proto.spec)["data"]} for c in at.get("plotly_chart")]
    traces = next(c for c in charts if "the run's band" in c)
    assert {"learned-set", "other-set", "the run's band"} <= set(traces)
    outcome = evaluate.band_outcome(runs.get_run(path).predictions().query("split == 'test'"), 0.5, (0.25, 0.5))
    assert traces["the run's band"]["x"] == pytest.approx(list(outcome["decided"]))
    table = _frame_with(at, "share decided")
    assert list(table["dataset"]) == ["learned-set", "other-set"]
    learned = table.set_index("dataset").loc["learned-set"]
    assert learned["share decided"] == f"{11 / 12:.3f}" and learned["accuracy (decided)"] == "1.000"
    assert any("Diamonds: the run's band, P(fake) 0.250 to 0.500 inconclusive (calibration.json" in c.value
               for c in at.caption)


def test_detect_page_flags_a_small_face_with_the_runs_own_size_sweep(tmp_path, monkeypatch):
    """A face judged from a small crop gets the shipped default's size-sweep figures for that size (sizes.csv);
    the same face large gets none."""
    import cv2

    from dfd import detect, runs

    web = need(SHARED_DATA / "web-faces-256")
    src = cv2.imread(str(sorted((web / "real-vs-fake" / "test" / "fake").rglob("*.jpg"))[0]))
    small = cv2.imencode(".jpg", cv2.resize(src, (100, 100), interpolation=cv2.INTER_AREA))[1].tobytes()
    large = cv2.imencode(".jpg", cv2.resize(src, (640, 640), interpolation=cv2.INTER_CUBIC))[1].tobytes()
    at = _app(tmp_path / "runs", monkeypatch, shipped=True)
    at.sidebar.selectbox(key="run_name").set_value("default").run()
    at = _open(at, "detect")
    table = _detect(at, [("small.jpg", small, "image/jpeg"), ("large.jpg", large, "image/jpeg")])
    assert set(table["file"]) == {"small.jpg", "large.jpg"}
    notes = [i.value for i in at.info if i.value.startswith("Small face")]
    assert len(notes) == 1, [i.value for i in at.info]
    side = int(re.search(r"Small face \((\d+) px across\)", notes[0]).group(1))
    assert side <= 100
    assert notes[0] == detect.small_face_note(runs.get_run("default").sizes(), side)
    assert "on lfw-faceswap from " in notes[0]  # the one dataset the default judges much worse at this size
    rows = table.set_index("file")["note"]
    assert notes[0] in rows["small.jpg"] and "Small face" not in rows["large.jpg"]  # the table says it too
