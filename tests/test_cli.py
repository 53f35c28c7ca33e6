"""``python -m dfd`` end to end, in subprocesses: demo, index on the real data, a tiny training run, runs,
evaluate, predict (a real face and a broken file), robustness, export, and one-line errors on bad input."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from dfd import cli

REPO = Path(__file__).resolve().parent.parent


def dfd(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m dfd ARGS`` from the repo; stdout and stderr captured as text."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dfd", *map(str, args)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"dfd {command}: error: "), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


# ------------------------------------------------------------------------------------------ help


def test_help_explains_every_command_and_option() -> None:
    proc = dfd("--help")
    assert proc.returncode == 0
    for command in ("demo", "index", "train", "evaluate", "predict", "runs", "robustness", "sizes", "export",
                    "ensemble", "calibrate"):
        assert command in proc.stdout
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sub_parser in sub.choices.items():
        for action in sub_parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    train_help = sub.choices["train"].format_help()
    from dfd.train import TrainConfig

    for f in fields(TrainConfig):  # every TrainConfig field is an option
        assert "--" + f.name.replace("_", "-") in train_help, f.name
    assert "srm_cnn" in train_help and "tiny" in train_help, "the architectures are listed"


def test_no_command_and_bad_option_values() -> None:
    proc = dfd()
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = dfd("train", "--epochs", "many")
    assert proc.returncode == 2 and "invalid int value" in proc.stderr
    proc = dfd("train", "--augment", "{flip: yes")
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr


# ------------------------------------------------------------------------------------------ demo and index


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("cli") / "demo"
    proc = dfd("demo", "--dest", dest, "--n-per-class", 40, "--size", 64)
    assert proc.returncode == 0, proc.stderr
    assert f"demo dataset written to {dest}" in proc.stdout
    assert "train    28    28" in proc.stdout
    return dest


def test_demo(demo_data: Path, tmp_path: Path) -> None:
    assert len(list((demo_data / "real-vs-fake").rglob("*.jpg"))) == 80
    one_line_error(dfd("demo", "--dest", demo_data), "demo", "already exists")
    one_line_error(dfd("demo", "--size", 64, env={"DFD_DEMO_DIR": str(tmp_path / "cache")}), "demo", "--dest")
    # The cached default, generated on first use at $DFD_DEMO_DIR.
    proc = dfd("demo", env={"DFD_DEMO_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0 and f"written to {tmp_path / 'cache'}" in proc.stdout
    proc = dfd("demo", env={"DFD_DEMO_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0 and "already at" in proc.stdout


def _count_row(out: str, split: str) -> list[int]:
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == [split])
    return [int(v) for v in row[1:4]]


def test_index_real_data(faces140k: Path, lfw: Path, rff: Path) -> None:
    proc = dfd("index", faces140k)
    assert proc.returncode == 0, proc.stderr
    assert "layout: split" in proc.stdout
    assert _count_row(proc.stdout, "train") == [650, 650, 1300]
    assert _count_row(proc.stdout, "test") == [150, 150, 300]
    assert "skipped (not image files; add --check to decode every image): 0" in proc.stdout
    proc = dfd("index", lfw)
    assert _count_row(proc.stdout, "val") == [250, 250, 500]
    proc = dfd("index", rff, "--val-frac", "0.1", "--test-frac", "0.2")
    assert proc.returncode == 0 and "layout: rff" in proc.stdout
    assert _count_row(proc.stdout, "test") == [216, 192, 408]
    proc = dfd("index", faces140k.parent)
    from dfd.data import index_dataset

    total = sum(len(index_dataset(p).frame) for p in sorted(faces140k.parent.iterdir()) if p.is_dir())
    assert "per dataset" in proc.stdout and "lfw-faceswap" in proc.stdout and f"images: {total} " in proc.stdout


def test_index_reports_skipped_and_unreadable(faces140k: Path, tmp_path: Path) -> None:
    good = sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:3]
    for cls in ("real", "fake"):
        (tmp_path / cls).mkdir()
        for f in good:
            (tmp_path / cls / f.name).write_bytes(f.read_bytes())
    (tmp_path / "fake" / "cut.jpg").write_bytes(good[0].read_bytes()[:2000])
    (tmp_path / "real" / "notes.txt").write_text("hello")
    proc = dfd("index", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipped (not image files; add --check to decode every image): 1" in proc.stdout
    assert "notes.txt: not an image file" in proc.stdout
    assert "images: 7 " in proc.stdout
    proc = dfd("index", tmp_path, "--check")
    assert "skipped (not image files): 1" in proc.stdout
    # the unreadable file is listed, and not counted
    assert "images: 6 readable (1 unreadable, not counted)" in proc.stdout
    assert "unreadable (not counted above): 1" in proc.stdout
    assert f"{tmp_path / 'fake' / 'cut.jpg'}: image is corrupt or truncated" in proc.stdout
    firsts = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    counted = sum(_count_row(proc.stdout, s)[2] for s in ("train", "val", "test") if s in firsts)
    assert counted == 6, proc.stdout


def test_index_errors(tmp_path: Path) -> None:
    one_line_error(dfd("index", tmp_path / "nowhere"), "index", "not found", str(tmp_path / "nowhere"))
    one_line_error(dfd("index", tmp_path), "index", "no dataset found", "supported layouts")


# ------------------------------------------------------------------------------------------ train .. export


@pytest.fixture(scope="module")
def trained(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    runs_dir = tmp_path_factory.mktemp("runs")
    proc = dfd("train", "--data", demo_data, "--architecture", "tiny", "--image-size", 64, "--epochs", 2,
               "--batch-size", 16, "--limit", 40, "--runs-dir", runs_dir, "--name", "cli-tiny",
               "--augment", '{"flip": true, "jpeg_p": 0.5}', "--no-class-weight", "--notes", "from the CLI test")
    assert proc.returncode == 0, proc.stderr
    run_path = Path(proc.stdout.strip().splitlines()[-1])
    return runs_dir, run_path, proc.stderr


@pytest.mark.slow
def test_train_prints_the_run_folder(trained: tuple[Path, Path, str]) -> None:
    runs_dir, run_path, stderr = trained
    assert "epoch 1/2: " in stderr and "epoch 2/2: " in stderr and "val_loss" in stderr, "progress in logs"
    lines = stderr.splitlines()
    for phase in ("building the model...", "first batch (building the training graph)...",
                  "predicting the val split...", "predicting the test split...", "calibrating on the val predictions..."):
        assert phase in lines, (phase, lines)  # the long phases are named in logs too, once each
    last_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch 2/2: "))
    assert lines.index("predicting the test split...") > last_epoch
    assert "Traceback" not in stderr and "oneDNN" not in stderr, "no TensorFlow start-up chatter"
    assert run_path == runs_dir / "cli-tiny"
    assert (run_path / "model.keras").is_file() and (run_path / "predictions.csv").is_file()
    from dfd import runs

    run = runs.get_run(run_path)
    assert run.status == "complete"
    cfg = run.config
    assert (cfg["architecture"], cfg["image_size"], cfg["epochs"], cfg["limit"]) == ("tiny", 64, 2, 40)
    assert cfg["augment"] == {"flip": True, "jpeg_p": 0.5}
    assert not cfg["class_weight"], "--no-class-weight: no class weights were used"
    assert cfg["notes"] == "from the CLI test"
    assert len(run.history()) == 2


@pytest.mark.slow
def test_runs_lists_the_run(trained: tuple[Path, Path, str]) -> None:
    runs_dir, _, _ = trained
    proc = dfd("runs", "--runs-dir", runs_dir)
    assert proc.returncode == 0
    assert "cli-tiny" in proc.stdout and "complete" in proc.stdout and "tiny" in proc.stdout
    assert "served threshold" in proc.stdout
    proc = dfd("runs", "--runs-dir", runs_dir, "--csv", "-")
    table = pd.read_csv(io.StringIO(proc.stdout))
    assert table.loc[0, "run"] == "cli-tiny" and 0 <= table.loc[0, "test acc"] <= 1
    assert table.set_index("run").loc["default", "kind"] == "shipped"  # listed beside the user's runs
    proc = dfd("runs", "--runs-dir", runs_dir / "empty", "--csv", "-")
    assert proc.returncode == 0 and pd.read_csv(io.StringIO(proc.stdout))["run"].tolist() == ["default"]


@pytest.mark.slow
def test_evaluate(trained: tuple[Path, Path, str], demo_data: Path) -> None:
    runs_dir, run_path, _ = trained
    proc = dfd("evaluate", "cli-tiny", demo_data, "--split", "val", "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip().splitlines()[-1])
    assert folder == runs_dir / "_evals" / "cli-tiny" / "evaluate" / "demo-val"
    assert "val: n 12  accuracy" in proc.stdout
    listed = dfd("runs", "--evals", "--runs-dir", runs_dir, "--csv", "-")
    evals = pd.read_csv(io.StringIO(listed.stdout))
    assert "evaluation demo-val" in set(evals[evals["run"] == "cli-tiny"]["source"])
    assert (folder / "metrics.json").is_file()
    pred = pd.read_csv(folder / "predictions.csv")
    assert len(pred) == 12 and pred["p_fake"].between(0, 1).all()
    one_line_error(dfd("evaluate", "no-such-run", demo_data, "--runs-dir", runs_dir), "evaluate",
                   "no run 'no-such-run'", "cli-tiny")
    one_line_error(dfd("evaluate", "cli-tiny", demo_data / "missing", "--runs-dir", runs_dir), "evaluate",
                   "not found")


@pytest.mark.slow
def test_predict_real_face_and_broken_file(trained: tuple[Path, Path, str], faces140k: Path, tmp_path: Path) -> None:
    runs_dir, run_path, _ = trained
    face = sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[0]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(face.read_bytes()[:1500])
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    folder = tmp_path / "album"  # a folder argument is searched recursively, by extension
    (folder / "sub").mkdir(parents=True)
    for i, f in enumerate(sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:4]):
        (folder / ("sub" if i % 2 else "") / f.name).write_bytes(f.read_bytes())
    (folder / "readme.txt").write_text("skipped: not an image extension")
    out_csv = tmp_path / "out.csv"
    proc = dfd("predict", face, broken, text, folder, "--run", "cli-tiny", "--runs-dir", runs_dir,
               "--csv", out_csv)
    assert proc.returncode == 0, proc.stderr
    from dfd import runs

    threshold = runs.get_run(run_path).threshold  # fitted on val when training ended
    assert (run_path / "calibration.json").is_file()
    assert re.search(r"^7 image\(s\), \d+ judged region\(s\): \d+ fake, \d+ inconclusive at threshold "
                     + re.escape(f"{threshold:.3f}") + r" \(run cli-tiny, (no inconclusive band|inconclusive band "
                     r"[\d.]+-[\d.]+)\); 2 unreadable; 1 file\(s\) passed over \(listed on stderr\)$",
                     proc.stdout, re.M), proc.stdout
    assert f"passed over {folder / 'readme.txt'}: not an image extension" in proc.stderr
    table = pd.read_csv(out_csv)
    from dfd import __version__, detect

    assert list(table.columns) == detect.TABLE_COLUMNS
    assert (table["run"] == "cli-tiny").all() and (table["dfd_version"] == __version__).all()
    assert (table["threshold"] - threshold).abs().max() < 1e-9 and table["engine"].isin(["keras", "tflite"]).all()
    assert table["file"].nunique() == 7 and not table["file"].str.endswith(".txt").any()
    import csv

    faces = [row["face"] for row in csv.DictReader(out_csv.open())]
    assert faces.count("") == 2 and all(f.isdigit() for f in faces if f), "face numbers stay integers beside errors"
    ok = table[table["file"] == str(face)]
    assert len(ok) >= 1 and ok["p_fake"].between(0, 1).all()
    assert ok["verdict"].isin(["fake", "real", "inconclusive"]).all()
    bad = table.set_index("file").loc[[str(broken), str(text)]]
    assert (bad["verdict"] == "error").all()
    assert "truncated" in bad.loc[str(broken), "note"] and "not an image" in bad.loc[str(text), "note"]
    for line in proc.stdout.splitlines():  # the table view: the error row carries its reason
        if line.strip().startswith(str(text)):
            assert "error" in line and "not an image" in line
    # The CLI and the app agree: both are dfd.detect.Detector.
    from dfd import detect

    result = detect.Detector(run_path).analyse(face)
    assert ok["p_fake"].tolist() == pytest.approx([f.p_fake for f in result.faces], abs=1e-6)
    # CSV to stdout, whole-image mode and a threshold, then bad input.
    proc = dfd("predict", face, "--run", run_path, "--whole-image", "--threshold", "0.99", "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(io.StringIO(proc.stdout)).iloc[0]
    assert row["note"] == "face finding off: whole image judged" and row["region"] == "x0,y0,w256,h256"
    assert row["verdict"] in ("inconclusive", "fake" if row["p_fake"] >= 0.99 else "real")
    one_line_error(dfd("predict", tmp_path / "gone.jpg", "--run", run_path), "predict", "not found")
    one_line_error(dfd("predict", face, "--run", "nope", "--runs-dir", runs_dir), "predict", "no run 'nope'")


def test_predict_names_every_file_it_passes_over(faces140k: Path, tmp_path: Path) -> None:
    """A folder: the images are judged (a GIF too: its first frame, as the app's uploader does), and every
    other file is named on stderr with the reason it was passed over."""
    from PIL import Image

    face = sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[0]
    folder = tmp_path / "album"
    (folder / ".cache").mkdir(parents=True)
    (folder / "face.jpg").write_bytes(face.read_bytes())
    Image.open(face).save(folder / "face.gif")
    (folder / "noext").write_bytes(face.read_bytes())
    (folder / ".hidden.jpg").write_bytes(face.read_bytes())
    (folder / "notes.txt").write_text("hello")
    (folder / ".cache" / "inner.jpg").write_bytes(face.read_bytes())
    proc = dfd("predict", folder, "--whole-image", "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(io.StringIO(proc.stdout))
    assert sorted(table["file"]) == [str(folder / "face.gif"), str(folder / "face.jpg")]
    assert table["verdict"].isin(["fake", "real"]).all() and table["p_fake"].between(0, 1).all()
    for name, reason in (("noext", "no file extension"), (".hidden.jpg", "hidden file"),
                         ("notes.txt", "not an image extension"), (".cache/inner.jpg", "in a hidden folder")):
        assert f"passed over {folder / name}: {reason}" in proc.stderr, (name, proc.stderr)
    others = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("passed over ")]
    assert others == [], "nothing else on stderr: no TensorFlow or LiteRT log lines (cuInit, XNNPACK)"
    from dfd import imaging

    assert ".gif" in imaging.IMAGE_EXTENSIONS and "GIF" in imaging.IMAGE_TYPES_TEXT
    assert "imaging.IMAGE_TYPES_TEXT" in (REPO / "app_pages" / "detect.py").read_text(), \
        "the uploader names the same types"


@pytest.mark.slow
def test_robustness(trained: tuple[Path, Path, str], demo_data: Path) -> None:
    runs_dir, run_path, _ = trained
    proc = dfd("robustness", "cli-tiny", demo_data, "--limit", 8, "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip().splitlines()[-1])
    assert folder == runs_dir / "_evals" / "cli-tiny" / "robustness" / "demo-test"
    table = pd.read_csv(folder / "robustness.csv")
    assert set(table["perturbation"]) == {"none", "jpeg", "blur", "noise"}
    assert (table["n"] == 8).all()
    assert (pd.read_csv(folder / "robustness_by_dataset.csv")["n"] == 8).all()
    assert "jpeg" in proc.stdout and "per dataset" in proc.stdout
    assert not (run_path / "robustness.csv").exists()


@pytest.mark.slow
def test_ensemble_and_calibrate(trained: tuple[Path, Path, str], demo_data: Path, faces140k: Path) -> None:
    runs_dir, run_path, _ = trained
    proc = dfd("train", "--data", demo_data, "--architecture", "tiny", "--image-size", 64, "--epochs", 2,
               "--batch-size", 16, "--limit", 40, "--seed", 1, "--runs-dir", runs_dir, "--name", "cli-tiny-s1")
    assert proc.returncode == 0, proc.stderr
    proc = dfd("ensemble", "cli-tiny", "cli-tiny-s1", "--name", "cli-ens", "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    ens = Path(proc.stdout.strip().splitlines()[-1])
    assert ens == runs_dir / "cli-ens" and "members: 2" in proc.stdout
    from dfd import runs

    run = runs.get_run(ens)
    assert run.status == "complete" and (ens / "calibration.json").is_file()
    assert len(run.predictions()) == len(runs.get_run(run_path).predictions())
    face = sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[0]
    proc = dfd("predict", face, "--run", "cli-ens", "--runs-dir", runs_dir, "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(io.StringIO(proc.stdout))["p_fake"].between(0, 1).all()
    (ens / "calibration.json").unlink()
    proc = dfd("calibrate", "cli-ens", "--runs-dir", runs_dir)
    assert proc.returncode == 0 and "temperature" in proc.stdout and (ens / "calibration.json").is_file()
    one_line_error(dfd("ensemble", "cli-tiny", "--runs-dir", runs_dir), "ensemble", "two different runs")
    one_line_error(dfd("ensemble", "cli-tiny", "nope", "--runs-dir", runs_dir), "ensemble", "no run 'nope'")


@pytest.mark.slow
def test_export_float_and_int8(trained: tuple[Path, Path, str], tmp_path: Path) -> None:
    runs_dir, run_path, _ = trained
    proc = dfd("export", "cli-tiny", "--out", tmp_path, "--n-representative", 16, "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    for kind, name in (("float32", "model_float32.tflite"), ("int8", "model_int8.tflite")):
        assert (tmp_path / name).stat().st_size > 1000
        assert f"{kind}: {tmp_path / name}" in proc.stdout
    info = json.loads((tmp_path / "export.json").read_text())
    assert info["int8"]["representative_images"] == 16
    assert info["int8"]["float_layers"] == [], "tiny has none of the layers int8 keeps float: quantised whole"
    proc = dfd("export", "cli-tiny", "--kind", "float", "--runs-dir", runs_dir)  # default: a new folder
    assert proc.returncode == 0, proc.stderr
    assert (runs_dir / "_exports" / "cli-tiny" / "model_float32.tflite").is_file()
    assert not (run_path / "model_float32.tflite").exists()
    one_line_error(dfd("export", "default", "--out", REPO / "models" / "default"), "export", "never write")
    assert "Saved artifact" not in proc.stdout, "the converter's chatter is kept off stdout"
    one_line_error(dfd("export", "nope", "--runs-dir", runs_dir), "export", "no run 'nope'")


def test_train_errors(tmp_path: Path, demo_data: Path) -> None:
    one_line_error(dfd("train", "--data", tmp_path / "nothing", "--runs-dir", tmp_path), "train", "not found")
    one_line_error(dfd("train", "--data", demo_data, "--architecture", "resnet9000", "--runs-dir", tmp_path),
                   "train", "unknown architecture", "srm_cnn")
    assert not any(tmp_path.iterdir()), "no run folder is made for bad input"


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_kill_keeps_an_interrupted_run(demo_data: Path, tmp_path: Path, signum: str) -> None:
    """Ctrl-C (SIGINT) or kill (SIGTERM) during training: the run folder is kept and marked interrupted,
    exit code 130, no traceback."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dfd", "train", "--data", str(demo_data), "--architecture", "tiny",
                             "--image-size", "64", "--epochs", "200", "--batch-size", "8", "--patience", "0",
                             "--runs-dir", str(tmp_path), "--name", "stopped"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    for line in proc.stderr:  # wait for the first finished epoch, then press Ctrl-C
        if line.startswith("epoch 1/200"):
            break
        assert time.monotonic() < deadline, "no epoch finished in time"
    proc.send_signal(getattr(signal, signum))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    run_path = Path(out.strip().splitlines()[-1])
    assert run_path == tmp_path / "stopped"
    from dfd import runs

    run = runs.get_run(run_path)
    assert run.status == "interrupted"
    assert 1 <= len(run.history()) < 200


def test_runs_keeps_a_killed_run_as_interrupted(tmp_path: Path) -> None:
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True, check=True).stdout)
    stale = tmp_path / f".tmp-killed-{dead_pid}"
    stale.mkdir()
    (stale / "config.json").write_text('{"architecture": "tiny"}')
    (stale / "status.json").write_text('{"status": "running"}')
    proc = dfd("runs", "--runs-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "kept killed" in proc.stderr and "killed" in proc.stdout and "interrupted" in proc.stdout
    assert not stale.exists() and (tmp_path / "killed" / "status.json").is_file()


@pytest.mark.slow
def test_ctrl_c_in_predict_keeps_what_was_judged_in_the_csv(lfw: Path, tmp_path: Path) -> None:
    """Ctrl-C part-way through a folder: exit 130, one line, no traceback, and the CSV holds every image judged
    so far (a terminal on stderr, so the progress bar shows how far it got)."""
    import fcntl
    import pty
    import signal
    import struct
    import termios
    import threading
    import time

    folder = lfw / "Dataset" / "Train"
    images = sorted(folder.rglob("*.jpg"))
    assert len(images) >= 2000
    out_csv = tmp_path / "partial.csv"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a terminal 160 columns wide
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dfd", "predict", str(folder), "--csv", str(out_csv)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=slave, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal has it
    os.close(slave)
    chunks: list[bytes] = []

    def read_terminal() -> None:  # always drained, so the process never blocks writing to it
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # closed once the process has exited
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not re.search(rb"predict:\s+\d+%.*?\b([2-9]\d|\d{3,})/\d+", b"".join(chunks[-20:])):  # >= 20 judged
        assert time.monotonic() < deadline and proc.poll() is None, b"".join(chunks)[-500:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    reader.join(timeout=10)
    os.close(master)
    seen = b"".join(chunks)
    err = seen.decode(errors="replace")
    assert proc.returncode == 130, (out, err[-800:])
    assert "Traceback" not in err
    done = re.search(r"interrupted after (\d+) of (\d+) image\(s\); \S*partial\.csv holds the \1 judged", err)
    assert done, err[-800:]
    assert int(done.group(1)) >= 20 and int(done.group(2)) == len(images) > int(done.group(1))
    table = pd.read_csv(out_csv)
    assert table["file"].nunique() == int(done.group(1)), table.head()
    assert table["p_fake"].dropna().between(0, 1).all() and set(table["verdict"]) <= {"fake", "real", "inconclusive"}


def test_predict_notes_a_small_face_in_the_csv(tmp_path: Path) -> None:
    """A face judged from a small crop: the CSV's note quotes the run's size sweep (dfd.detect.small_face_note);
    the same face large gets no such note."""
    import cv2
    from conftest import SHARED_DATA, need

    from dfd import detect, runs

    web = need(SHARED_DATA / "web-faces-256")
    src = cv2.imread(str(sorted((web / "real-vs-fake" / "test" / "real").rglob("*.jpg"))[0]))
    cv2.imwrite(str(tmp_path / "small.jpg"), cv2.resize(src, (90, 90), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(tmp_path / "large.jpg"), cv2.resize(src, (600, 600), interpolation=cv2.INTER_CUBIC))
    proc = dfd("predict", tmp_path / "small.jpg", tmp_path / "large.jpg", "--csv", tmp_path / "out.csv")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "out.csv", keep_default_na=False).set_index("file")
    small, large = table.loc[str(tmp_path / "small.jpg"), "note"], table.loc[str(tmp_path / "large.jpg"), "note"]
    side = int(re.search(r"Small face \((\d+) px across\)", small).group(1))
    assert side <= 90 and detect.small_face_note(runs.get_run("default").sizes(), side) in small
    assert "Small face" not in large
