"""End to end in a real browser: `streamlit run` on a free port, Chromium (Playwright) drops a real face image
on the Detect page's file input and reads the verdict."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, faces140k) -> Path:
    """The shipped models/ if it has the default detector, else a tiny real run trained here."""
    from dfd import DEFAULT_RUN, MODELS_DIR, train

    if (MODELS_DIR / DEFAULT_RUN / "model.keras").exists():
        return MODELS_DIR
    root = tmp_path_factory.mktemp("browser-runs")
    train.train(train.TrainConfig(data=str(faces140k), architecture="tiny", image_size=64, epochs=1, limit=120,
                                  runs_dir=str(root), name="default", patience=0))
    return root


@contextmanager
def _serving(runs_dir: Path, **env: str):
    """`streamlit run` of the app on a free port with DFD_RUNS_DIR=``runs_dir`` (and ``env``): yields its URL once
    it answers, and stops it afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env={**os.environ, "DFD_RUNS_DIR": str(runs_dir), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(runs_dir):
    with _serving(runs_dir) as url:
        yield url


@contextmanager
def _detect_page(browser, server: str, height: int = 1600, **kw):
    """A new page on ``server``'s Detect page, its heading drawn; afterwards (if the body passed) no exception box
    and no error in the page's JavaScript, and the page is closed either way."""
    page = browser.new_page(viewport={"width": 1300, "height": height}, **kw)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{server}/detect")
        page.get_by_role("heading", name="Detect").wait_for(timeout=60_000)
        yield page
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not errors, errors
    finally:
        page.close()


def _drop(page, *paths: Path) -> None:
    """Files given to the Detect page's uploader as a drop gives them."""
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(p) for p in paths])


VERDICT = re.compile(r"(Face \d+|Whole image): (FAKE|REAL|INCONCLUSIVE) · P\(fake\) = [01]\.\d{3}")


def _p_fake(text: str) -> float:
    return float(re.search(r"P\(fake\) = ([01]\.\d{3})", text).group(1))


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_drop_a_real_face_on_the_detect_page_and_read_the_verdict(server, browser, faces140k):
    face = sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[0]
    with _detect_page(browser, server) as page:
        _drop(page, face)
        verdict = page.get_by_text(re.compile(r"(Face 1|Whole image): (FAKE|REAL) · P\(fake\) = [01]\.\d{3}"))
        verdict.first.wait_for(timeout=120_000)
        assert 0.0 <= _p_fake(verdict.first.inner_text()) <= 1.0
        assert page.get_by_text(face.name).count() >= 1  # the results table lists the file


def test_gradcam_heatmap_of_a_dropped_face_appears_on_the_detect_page(server, browser, faces140k):
    """Issue 22: with the default run, turning on "Grad-CAM heatmaps" after dropping a face shows the heatmap
    image beside the crop, and no error box (a fake verdict is drawn as one; nothing else may be)."""
    face = sorted((faces140k / "real-vs-fake" / "test" / "fake").glob("*.jpg"))[1]
    with _detect_page(browser, server) as page:
        _drop(page, face)
        page.get_by_text(VERDICT).first.wait_for(timeout=120_000)
        page.get_by_text("Grad-CAM heatmaps", exact=True).click()
        heatmap = page.locator('[data-testid="stImage"]').filter(
            has=page.get_by_text(re.compile(r"Grad-CAM: evidence for '(fake|real)'")))
        failed = page.get_by_text(re.compile(r"could not show its result|No Grad-CAM heatmap"))
        heatmap.first.or_(failed.first).wait_for(timeout=180_000)  # whichever comes: fail fast, saying why
        assert failed.count() == 0, failed.all_inner_texts()
        img = heatmap.first.locator("img")
        img.wait_for(timeout=30_000)
        page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(),
                               timeout=30_000)
        boxes = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert all(VERDICT.search(text) for text in boxes), boxes  # only a fake verdict's own box
        assert page.get_by_text("No Grad-CAM heatmap").count() == 0


def test_three_sessions_detecting_at_once_agree_with_the_detector(server, browser, runs_dir, faces140k):
    """Three browser sessions drop a face on the Detect page at the same moment: the server judges them at once
    with its one shared detector, and each page shows the P(fake) the detector gives alone."""
    from dfd import DEFAULT_RUN, detect, runs

    face = sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0]
    expected = detect.Detector(runs.get_run(DEFAULT_RUN, runs_dir)).analyse(face).faces[0].p_fake
    contexts = [browser.new_context(viewport={"width": 1300, "height": 1600}) for _ in range(3)]
    try:
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.goto(f"{server}/detect")
        for page in pages:
            page.get_by_role("heading", name="Detect").wait_for(timeout=60_000)
        for page in pages:  # one after the other without waiting: the three scripts run together
            _drop(page, face)
        shown = []
        for page in pages:
            verdict = page.get_by_text(re.compile(r"(Face 1|Whole image): (FAKE|REAL) · P\(fake\) = [01]\.\d{3}"))
            verdict.first.wait_for(timeout=120_000)
            shown.append(_p_fake(verdict.first.inner_text()))
            assert page.locator('[data-testid="stException"]').count() == 0
        assert shown == pytest.approx([expected] * 3, abs=6e-4), (shown, expected)  # pages show 3 decimals
    finally:
        for c in contexts:
            c.close()


def test_the_run_picker_keeps_the_run_the_page_uses_after_trainings(tmp_path, browser, faces140k):
    """Two trainings from the Training page add runs; the sidebar's picker keeps showing the run the page uses,
    a click elsewhere does not switch it, and choosing a run moves the page."""
    from dfd import train

    runs_dir = tmp_path / "runs"
    train.train(train.TrainConfig(data=str(faces140k), architecture="tiny", image_size=64, epochs=1, limit=40,
                                  runs_dir=str(runs_dir), name="first", patience=0))
    with _serving(runs_dir, DFD_MODELS_DIR=str(tmp_path / "no-shipped")) as url:  # the shipped runs hidden
        page = browser.new_page(viewport={"width": 1300, "height": 2600})
        try:
            page.goto(f"{url}/training")
            page.get_by_role("heading", name="Training", exact=True).wait_for(timeout=60_000)
            picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"] input')

            def page_run() -> str:
                caption = page.get_by_text(re.compile(r"^Run \S+ · status")).first
                caption.wait_for(timeout=30_000)
                return caption.inner_text().split()[1]

            assert picker.input_value() == page_run() == "first"
            page.get_by_text("Folder path").click()
            page.get_by_role("textbox", name="Dataset folder").fill(str(faces140k))
            page.keyboard.press("Enter")
            for name in ("second", "third"):
                page.get_by_role("combobox", name="Architecture").click()
                page.get_by_role("option", name="tiny", exact=True).click()
                page.get_by_role("spinbutton", name="Epochs").fill("1")
                page.get_by_role("spinbutton", name="Max images per split (0 = all)").fill("40")
                page.get_by_role("textbox", name="Run name (optional)").fill(name)
                page.get_by_role("button", name="Start training").click()
                page.get_by_text(re.compile(f"Training complete in .* run {name}")).wait_for(timeout=600_000)
                page.wait_for_timeout(1500)
                assert picker.input_value() == page_run() == "first", name
            page.get_by_text("Horizontal flip").click()  # any other widget: the run stays
            page.wait_for_timeout(2000)
            assert picker.input_value() == page_run() == "first"
            picker.click()
            page.get_by_role("option", name="second", exact=True).click()
            page.wait_for_timeout(2000)
            assert picker.input_value() == page_run() == "second"
            page.reload()
            page.get_by_role("heading", name="Training", exact=True).wait_for(timeout=60_000)
            page.wait_for_timeout(2000)
            assert picker.input_value() == page_run()
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            page.close()


def _track_line(page, track: int):
    return page.get_by_text(re.compile(rf"^Face {track}: (FAKE|REAL|INCONCLUSIVE) · median P\(fake\) = [01]\.\d{{3}}"))


def test_drop_a_clip_on_the_detect_page_and_read_its_two_track_verdicts(server, browser, runs_dir, faces140k,
                                                                        tmp_path):
    """A clip of a fake face then a real one (the faces-140k-mini test images the default is surest of, written
    with OpenCV's mp4v): the page shows a track for each with its verdict, and the P(fake) chart."""
    from dfd import DEFAULT_RUN, detect, runs, video
    from tests.video_clips import fake_then_real, surest_pair, write_clip

    fake, real, *_ = surest_pair(faces140k)
    clip = write_clip(tmp_path / "fake-then-real.mp4", fake_then_real(fake, real))
    detector = detect.Detector(runs.get_run(DEFAULT_RUN, runs_dir))
    expected = video.analyse_clip(detector, clip)
    assert [t.verdict_at(detector.threshold, detector.band_at()) for t in expected.tracks] == ["fake", "real"]
    with _detect_page(browser, server, height=2000) as page:
        _drop(page, clip)
        shown = []
        for track in (1, 2):
            line = _track_line(page, track).first
            line.wait_for(timeout=180_000)
            shown.append(line.inner_text())
        assert shown[0].startswith("Face 1: FAKE") and shown[1].startswith("Face 2: REAL"), shown
        for text, t in zip(shown, expected.tracks, strict=True):
            assert f"median P(fake) = {detect.p_text(t.median_p_fake)}" in text, (text, t.median_p_fake)
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=30_000)  # Plotly draws a moment later
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 1


def test_stop_a_long_clip_on_the_detect_page_and_keep_what_was_judged(server, browser, faces140k, tmp_path):
    """Stop while a two-minute clip is read: the page stops its job and shows the frames judged so far."""
    from tests.video_clips import Segment, surest_pair, write_clip

    fake, *_ = surest_pair(faces140k)
    clip = write_clip(tmp_path / "long.mp4", [Segment(fake, 120.0, (0.3, 0.5), (0.7, 0.5), (0.6, 0.7))], fps=10.0)
    with _detect_page(browser, server, height=2000) as page:
        _drop(page, clip)
        page.get_by_text(re.compile(r"Reading and judging the clip: frames read \d+ of 1200")).first.wait_for(
            timeout=120_000)
        page.get_by_role("button", name="Stop").click()
        note = page.get_by_text(re.compile(r"stopped after (\d+) of 120 sampled frames")).first
        note.wait_for(timeout=60_000)
        judged = int(re.search(r"stopped after (\d+) of", note.inner_text()).group(1))
        assert 0 < judged < 120
        _track_line(page, 1).first.wait_for(timeout=30_000)  # the frames judged before the stop, as a track
        assert _track_line(page, 1).count() == 1


def test_detect_with_face_finding_off_and_download_the_csv(server, browser, faces140k, tmp_path):
    """Issue 23 in the browser: with "Find faces" off the page says face finding was off (not "no face found"),
    and the CSV a user downloads names the run, the threshold the verdicts follow, the engine and dfd's
    version, with integer face numbers."""
    import pandas as pd

    from dfd import __version__
    from dfd.runs import get_run

    face = sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0]
    with _detect_page(browser, server, accept_downloads=True) as page:
        page.get_by_text("Find faces").first.click()  # the toggle's label: off
        _drop(page, face)
        page.get_by_text(VERDICT).first.wait_for(timeout=120_000)
        body = page.locator("body").inner_text()
        assert "face finding" in body.lower() and "no face found" not in body.lower()
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name=re.compile("Download results")).click()
        path = tmp_path / "results.csv"
        download.value.save_as(path)
    table = pd.read_csv(path)
    run = get_run("default")
    assert {"run", "threshold", "engine", "dfd_version", "face", "p_fake", "verdict"} <= set(table.columns)
    assert table["run"].tolist() == ["default"] and table["dfd_version"].tolist() == [__version__]
    assert table["threshold"].iloc[0] == pytest.approx(run.threshold, abs=1e-3)
    assert table["face"].tolist() == [1] and str(table["face"].dtype).startswith("int")
    assert "face finding off" in table["note"].iloc[0]
