"""dfd.video on real faces: clips written here with OpenCV (a fake face for 3 s, then a real one, moving and
changing size on a plain background) judged through the library, the CLI and the Detect page (AppTest); the
codecs OpenCV writes read back; bad clips (truncated, not a video, unknown codec, no face, too long) each get
one line while the batch goes on; progress and stop; uploads never left on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from dfd import detect, imaging, video
from tests.video_clips import Segment, fake_then_real, surest_pair, write_clip

REPO = Path(__file__).resolve().parent.parent
SECONDS = 3.0
FPS = 15.0


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def pair(faces140k: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(fake, real, recorded P(fake)s): the faces-140k-mini test images the shipped default is surest of."""
    return surest_pair(faces140k)


@pytest.fixture(scope="module")
def detector() -> detect.Detector:
    return detect.Detector("default")


def _two_faces(pair, same_place: bool = False) -> list[Segment]:
    return fake_then_real(pair[0], pair[1], SECONDS, same_place)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, pair) -> Path:
    """640x360, 15 frames/s, mp4v: 3 s of the fake face moving right and growing, then 3 s of the real one."""
    return write_clip(tmp_path_factory.mktemp("clips") / "two.mp4", _two_faces(pair), fps=FPS)


@pytest.fixture(scope="module")
def judged(detector, clip) -> video.ClipResult:
    return video.analyse_clip(detector, clip)


def _frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, bgr = cap.read()
            assert ok
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


# ------------------------------------------------------------------------------------------------ sampling


def test_frames_are_sampled_evenly_two_a_second_and_at_most_max_samples():
    assert video.sample_plan(90, 15.0) == [3, 11, 18, 26, 33, 41, 48, 56, 63, 71, 78, 86]  # 6 s: 12, mid-slice
    ten_minutes = video.sample_plan(18000, 30.0)
    assert len(ten_minutes) == video.MAX_SAMPLES == 120
    assert ten_minutes[0] == 75 and set(np.diff(ten_minutes)) == {150}  # one every 5 s
    assert len(video.sample_plan(18000, 30.0, rate=1.0, max_samples=1000)) == 600  # 1 a second, under the cap
    assert video.sample_plan(5, 25.0) == [2]  # a fifth of a second: one frame
    assert video.sample_plan(0, 25.0) == []  # no frames (a clip whose header has no length is counted first)


@pytest.mark.parametrize(("fourcc", "ext", "codec"), [("mp4v", ".mp4", "MPEG-4 Part 2"), ("mp4v", ".mov", "MPEG-4 Part 2"),
                                                      ("mp4v", ".mkv", "MPEG-4 Part 2"), ("MJPG", ".avi", "Motion JPEG"),
                                                      ("XVID", ".avi", "MPEG-4 Part 2"), ("VP80", ".webm", "VP8")])
def test_clips_opencv_writes_here_read_back(tmp_path, faces140k, fourcc, ext, codec):
    """Each codec OpenCV's VideoWriter has here: the header is read, the sampled frames come at their times, in
    RGB (a red patch stays red), as the clip's bytes in memory as from its path."""
    face = imaging.load_image(sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0]).copy()
    face[:40, :40] = (255, 0, 0)
    path = write_clip(tmp_path / f"c{ext}", [Segment(face, 2.0)], size=(320, 180), fps=10.0, fourcc=fourcc)
    for source in (path, path.read_bytes()):
        with video.Clip(source) as c:
            assert (c.info.fps, c.info.frame_count, c.info.width, c.info.height) == (10.0, 20, 320, 180)
            assert c.info.codec == codec and c.info.duration == pytest.approx(2.0)
            frames = list(c.frames())
        assert [f.index for f in frames] == [2, 7, 12, 17]
        assert [f.time for f in frames] == pytest.approx([0.2, 0.7, 1.2, 1.7], abs=1e-6)
        assert frames[0].image.shape == (180, 320, 3)
        red = [f.image[(f.image[..., 0] > 200) & (f.image[..., 1] < 60) & (f.image[..., 2] < 60)] for f in frames]
        assert all(len(r) > 20 for r in red), "the red patch is red: frames are RGB"


def test_a_webm_without_a_length_in_its_header_is_counted_then_sampled(tmp_path, faces140k):
    """As a browser's MediaRecorder writes WebM: no Duration element, so OpenCV reports no frame count. The frames
    are counted first; the clip is then sampled as if its header had said."""
    face = imaging.load_image(sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0])
    data = write_clip(tmp_path / "c.webm", [Segment(face, 2.0)], size=(320, 180), fps=10.0, fourcc="VP80").read_bytes()
    at = data.find(b"\x44\x89")  # the Segment's Duration element: ID, size, value
    size = 3 + (data[at + 2] & 0x7F)
    live = data[:at] + bytes([0xEC, 0x80 | (size - 2)]) + bytes(size - 2) + data[at + size:]  # made a Void element
    (tmp_path / "live.webm").write_bytes(live)
    cap = cv2.VideoCapture(str(tmp_path / "live.webm"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) <= 0, "OpenCV sees no length"
    cap.release()
    for source in (tmp_path / "live.webm", live):
        with video.Clip(source) as c:
            assert c.counted and (c.info.frame_count, c.info.duration) == (20, 2.0)
            assert [f.index for f in c.frames()] == [2, 7, 12, 17]
    with pytest.raises(video.VideoError, match="clip is over 1.0 s long"):
        video.Clip(live, max_seconds=1.0)


# ------------------------------------------------------------------------------------------------ tracks


def test_a_fake_then_a_real_face_are_two_tracks_with_the_right_verdicts(detector, judged, pair, clip):
    *_, fake_p, real_p = pair
    threshold, band = detector.threshold, detector.band_at()
    assert fake_p > threshold + 0.2 and real_p < threshold - 0.2, "the default is sure of both as still images"
    r = judged
    assert r.ok and r.error is None and not r.notes and not r.stopped
    assert (r.sampled, r.with_faces, r.frames_read) == (12, 12, 87)  # 6 s at 2 a second; decoded up to frame 86
    assert len(r.tracks) == 2
    fake, real = r.tracks
    assert (len(fake.faces), len(real.faces)) == (6, 6)
    assert fake.end < SECONDS <= real.start and real.end < 2 * SECONDS
    assert fake.times == pytest.approx([0.2, 0.733, 1.2, 1.733, 2.2, 2.733], abs=1e-3)
    assert fake.verdict_at(threshold, band) == "fake" and real.verdict_at(threshold, band) == "real"
    assert fake.median_p_fake > threshold and fake.share_over(threshold) >= 5 / 6
    assert real.median_p_fake < threshold and real.share_over(threshold) == 0.0
    # the face moved and grew: the boxes say so
    assert fake.faces[-1].box[0] > fake.faces[0].box[0] and fake.faces[-1].box[2] > fake.faces[0].box[2]
    # one serving path: the strongest frame, read again with OpenCV and judged as an image's crop is
    top = fake.strongest_face
    rgb = _frame(clip, top.frame)
    again = detector.predict_arrays(imaging.prepare(detect.cut(rgb, top.crop), detector.image_size))[0]
    assert again == pytest.approx(top.p_fake, abs=1e-5)
    assert top.p_fake == max(fake.p_fakes)
    assert np.array_equal(fake.strongest, imaging.resize(detect.cut(rgb, top.crop), detector.image_size))
    assert fake.thumbnail.shape == (video.THUMB_SIDE, video.THUMB_SIDE, 3)
    x, y, w, h = top.crop
    assert w == h and x >= 0 and y >= 0 and x + w <= 640 and y + h <= 360, "a square crop inside the frame"
    overlay = detector.heatmap_overlay(fake.strongest, toward="fake")  # Grad-CAM on demand
    assert overlay.shape == (detector.image_size, detector.image_size, 3) and overlay.dtype == np.uint8
    # the tables
    table = video.tracks_table([r], threshold, band, run=detector.name)
    assert list(table.columns) == video.TRACK_COLUMNS
    assert table["verdict"].tolist() == ["fake", "real"] and table["frames"].tolist() == [6, 6]
    assert table["median_p_fake"].iloc[0] == pytest.approx(fake.median_p_fake, abs=1e-4)
    frames = video.frames_table([r], threshold, band)
    assert len(frames) == 12 and frames["track"].tolist() == [1] * 6 + [2] * 6
    assert frames["time_s"].is_monotonic_increasing


def test_a_cut_to_another_face_in_the_same_place_starts_a_new_track(detector, pair, tmp_path):
    """Box overlap alone would join them (the real face comes in where the fake one was); their looks do not."""
    fake, real, *_ = pair
    finder = detector.finder
    looks = [video.signature(detect.cut(img, finder.find(img)[0])) for img in (fake, real)]
    assert video.similarity(*looks) < video.MIN_SIMILARITY
    path = write_clip(tmp_path / "cut.mp4", _two_faces(pair, same_place=True), fps=FPS)
    r = video.analyse_clip(detector, path)
    assert r.ok and [len(t.faces) for t in r.tracks] == [6, 6]
    assert [t.verdict_at(detector.threshold) for t in r.tracks] == ["fake", "real"]
    joined = video.analyse_clip(detector, path, min_similarity=0.0)  # by place only: one track
    assert [len(t.faces) for t in joined.tracks] == [12]


def test_face_finding_off_judges_each_sampled_frame_whole_as_one_track(detector, clip):
    r = video.analyse_clip(detector, clip, find_faces=False, rate=1.0)
    assert r.ok and len(r.tracks) == 1 and r.tracks[0].whole_frame and len(r.tracks[0].faces) == 6
    assert r.tracks[0].faces[0].crop == (0, 0, 640, 360)


# ------------------------------------------------------------------------------------------------ progress, stop


def test_progress_counts_frames_read_and_judged_and_a_stop_keeps_what_was_judged(detector, clip):
    seen: list[video.ClipProgress] = []
    r = video.analyse_clip(detector, clip, progress=seen.append)
    assert r.ok and seen
    assert [p.frames_read for p in seen] == sorted(p.frames_read for p in seen)
    assert [p.judged for p in seen] == sorted(p.judged for p in seen)
    assert (seen[-1].frames_read, seen[-1].frame_count, seen[-1].judged, seen[-1].to_judge) == (87, 90, 12, 12)

    stop = threading.Event()

    def halt(p: video.ClipProgress) -> None:
        if p.judged >= 3:
            stop.set()

    r = video.analyse_clip(detector, clip, progress=halt, stop=stop)
    assert r.ok and r.stopped and r.sampled == 3 and [len(t.faces) for t in r.tracks] == [3]
    assert r.notes and r.notes[0].startswith("stopped after 3 of 12 sampled frames")
    r = video.analyse_clip(detector, clip, stop=lambda: True)  # a callable works too
    assert r.ok and r.stopped and r.sampled == 0 and not r.tracks


def test_a_clip_job_runs_in_the_background(detector, clip):
    job = video.ClipJob(detector, clip.read_bytes(), "two.mp4")
    assert job.wait(300) and job.done
    assert job.result.ok and [t.verdict_at(detector.threshold) for t in job.result.tracks] == ["fake", "real"]
    assert job.progress is not None and job.progress.judged == 12


# ------------------------------------------------------------------------------------------------ bad input


def _bad_clips(clip: Path, tmp_path: Path, faces140k: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its one line says)."""
    data = clip.read_bytes()
    out: dict[str, tuple[Path, str]] = {}
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    out["cut.mp4"] = (tmp_path / "cut.mp4", "truncated or corrupt MP4/MOV file")
    (tmp_path / "notes.mp4").write_text("these are not frames")
    out["notes.mp4"] = (tmp_path / "notes.mp4", "not a video file")
    (tmp_path / "empty.webm").write_bytes(b"")
    out["empty.webm"] = (tmp_path / "empty.webm", "file is empty")
    face = imaging.load_image(sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0])
    xvid = write_clip(tmp_path / "x.avi", [Segment(face, 1.0)], size=(320, 180), fps=10.0, fourcc="XVID").read_bytes()
    assert xvid.count(b"XVID") == 2
    (tmp_path / "odd.avi").write_bytes(xvid.replace(b"XVID", b"ZZZZ"))
    out["odd.avi"] = (tmp_path / "odd.avi", "unsupported video codec 'ZZZZ'")
    plain = np.full((180, 320, 3), 128, np.uint8)
    plain[60:120, 100:200] = (90, 160, 200)  # a box, no face
    out["noface.mp4"] = (write_clip(tmp_path / "noface.mp4", [Segment(plain, 2.0, side=(0.9, 0.95))],
                                    size=(320, 180), fps=10.0), "no face found in any of the 4 sampled frames")
    return out


def test_bad_clips_get_one_line_each_and_the_batch_goes_on(detector, clip, pair, tmp_path, faces140k):
    bad = _bad_clips(clip, tmp_path, faces140k)
    items = [(name, path) for name, (path, _) in bad.items()] + [("two.mp4", clip)]
    results = video.analyse_many(detector, items)
    by_name = {r.name: r for r in results}
    for name, (_, says) in bad.items():
        r = by_name[name]
        assert not r.ok and not r.tracks, name
        assert says in r.error and "\n" not in r.error and "Traceback" not in r.error, (name, r.error)
    assert by_name["two.mp4"].ok and len(by_name["two.mp4"].tracks) == 2
    # too long for the limit, and cut short after its header (judged on what is there, with a note)
    r = video.analyse_clip(detector, clip, max_seconds=5.0)
    assert r.error == "clip is 6.0 s long; clips over 5.0 s are refused (cut it, or raise the limit)"
    avi = write_clip(tmp_path / "mj.avi", [Segment(pair[0], 4.0, side=(0.8, 0.9))], size=(320, 180), fps=10.0,
                     fourcc="MJPG")
    data = avi.read_bytes()
    r = video.analyse_clip(detector, data[: int(len(data) * 0.6)], "mj.avi")
    assert r.ok and r.tracks and 0 < r.sampled < 8
    assert r.notes and "the file ends after" in r.notes[0] and "of the 4.0 s its header says" in r.notes[0]
    table = video.tracks_table(results, detector.threshold)
    assert (table.loc[table["file"].isin(list(bad)), "verdict"] == "error").all()


def test_uploads_stay_in_memory_or_in_a_temporary_file_that_is_removed(detector, clip, tmp_path, monkeypatch,
                                                                        faces140k):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    data = clip.read_bytes()
    seen: list[list[str]] = []
    in_memory = video.analyse_clip(detector, data, "two.mp4", progress=lambda p: seen.append(os.listdir(scratch)))
    assert in_memory.ok and not any(seen), "read from memory: nothing written"
    seen.clear()
    on_disk = video.analyse_clip(detector, data, "two.mp4", in_memory=False,
                                 progress=lambda p: seen.append(os.listdir(scratch)))
    assert on_disk.ok and all(len(s) == 1 and s[0].startswith("dfd-clip-") for s in seen)
    assert os.listdir(scratch) == [], "removed when done"
    assert [t.p_fakes for t in on_disk.tracks] == [t.p_fakes for t in in_memory.tracks]
    odd = _bad_clips(clip, tmp_path, faces140k)["odd.avi"][0].read_bytes()
    r = video.analyse_clip(detector, odd, "odd.avi", in_memory=False)
    assert not r.ok and "unsupported video codec" in r.error
    assert os.listdir(scratch) == [], "removed after a failure too"


# ------------------------------------------------------------------------------------------------ CLI


def _dfd(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "dfd", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_predict_writes_a_row_per_track_and_one_line_per_bad_clip(detector, clip, judged, tmp_path, faces140k):
    bad = _bad_clips(clip, tmp_path, faces140k)
    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "two.mkv").write_bytes(clip.read_bytes())  # an MP4 named .mkv: its bytes say what it is
    face = sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0]
    (folder / "face.jpg").write_bytes(face.read_bytes())
    (folder / "readme.txt").write_text("passed over")
    out, frames = tmp_path / "tracks.csv", tmp_path / "frames.csv"
    proc = _dfd("predict", clip, bad["cut.mp4"][0], bad["notes.mp4"][0], folder, "--csv", out, "--frames-csv", frames)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("cut.mp4", "notes.mp4"):
        lines = [x for x in proc.stderr.splitlines() if x.startswith(f"could not judge {bad[name][0]}: ")]
        assert len(lines) == 1 and bad[name][1] in lines[0], proc.stderr
    assert f"passed over {folder / 'readme.txt'}" in proc.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == video.TRACK_COLUMNS
    mine = table[table["file"] == str(clip)]
    assert mine["track"].tolist() == [1, 2] and mine["verdict"].tolist() == ["fake", "real"]
    assert mine["frames"].tolist() == [6, 6] and (mine["run"] == "default").all()
    assert mine["threshold"].iloc[0] == pytest.approx(detector.threshold)
    assert mine["median_p_fake"].tolist() == pytest.approx([t.median_p_fake for t in judged.tracks], abs=1e-4)
    assert mine["first_s"].tolist() == pytest.approx([t.start for t in judged.tracks], abs=1e-3)
    assert mine["share_over"].tolist() == pytest.approx([t.share_over(detector.threshold) for t in judged.tracks])
    assert table[table["file"] == str(folder / "two.mkv")]["verdict"].tolist() == ["fake", "real"]
    errors = table.set_index("file").loc[[str(bad["cut.mp4"][0]), str(bad["notes.mp4"][0])]]
    assert (errors["verdict"] == "error").all() and errors["note"].str.len().gt(10).all()
    image = table[table["file"] == str(folder / "face.jpg")]
    assert image["kind"].tolist() == ["image"] and image["frames"].tolist() == [1]
    per_frame = pd.read_csv(frames)
    assert list(per_frame.columns) == video.FRAME_COLUMNS
    assert len(per_frame[per_frame["file"] == str(clip)]) == 12
    assert "4 clip(s), 4 face track(s): 2 fake, 2 real" in proc.stdout
    assert "2 could not be judged" in proc.stdout
    # images alone: the image table as before, no track columns
    proc = _dfd("predict", folder / "face.jpg", "--csv", "-")
    assert proc.returncode == 0 and "track" not in proc.stdout.splitlines()[0]
    one = _dfd("predict", folder / "face.jpg", "--frames-csv", tmp_path / "f.csv")
    assert one.returncode == 1 and one.stderr.strip().splitlines()[-1].endswith("no video clip among the files given")


# ------------------------------------------------------------------------------------------------ the page


def test_the_detect_page_judges_a_clip_and_shows_its_tracks(clip, detector, judged, tmp_path, monkeypatch):
    import json

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DFD_RUNS_DIR", str(tmp_path / "runs"))  # no user runs: the shipped default is used
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=600).run()
    at.switch_page("app_pages/detect.py").run()
    assert not at.exception, [e.message for e in at.exception]
    uploader = at.file_uploader(key="det_files")
    assert "MP4" in uploader.label and "WebM" in uploader.label
    uploader.set_value([("two.mp4", clip.read_bytes(), "video/mp4"), ("notes.mp4", b"not frames", "video/mp4")])
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("notes.mp4" in e and "not a video file" in e for e in errors), errors
    fake, real = judged.tracks
    thr = detector.threshold
    assert any(e.startswith(f"**Face 1: FAKE** · median P(fake) = {detect.p_text(fake.median_p_fake)}")
               for e in errors), errors
    assert any(s.value.startswith(f"**Face 2: REAL** · median P(fake) = {detect.p_text(real.median_p_fake)}")
               and f"0% of 6 frames at or over {thr:.2f}" in s.value for s in at.success)
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["face 1", "face 2"]
    assert spec["data"][0]["y"] == pytest.approx(fake.p_fakes)
    assert any(s.get("y0") == pytest.approx(thr) and s.get("y1") == pytest.approx(thr)
               for s in spec["layout"]["shapes"]), "the threshold drawn across"
    at.toggle(key="det_cam").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    captions = [c for el in at.get("image") for c in el.captions]
    assert any(c == "Grad-CAM: evidence for 'fake'" for c in captions), captions
    assert any(c.startswith("highest P(fake) ") for c in captions), captions


def test_a_track_of_small_faces_carries_the_runs_size_note(detector, pair, tmp_path):
    """A face small in the frame, crossing it (more than half its width between samples): one track, whose note
    quotes the run's size sweep at that size (as an image's does)."""
    segment = Segment(pair[1], 3.0, side=(0.16, 0.16))  # a face about 55 px wide in a 360-px frame
    result = video.analyse_clip(detector, write_clip(tmp_path / "small.mp4", [segment], fps=FPS))
    assert len(result.tracks) == 1
    track = result.tracks[0]
    sizes = detector.run.sizes()
    note = detect.small_face_note(sizes, track.side)
    assert track.side <= 128 and note.startswith(f"Small face ({track.side} px across)")
    table = video.tracks_table([result], detector.threshold, detector.band_at(), run=detector.name, sizes=sizes)
    assert note in table["note"].iloc[0]
    assert video.tracks_table([result], detector.threshold, run=detector.name)["note"].iloc[0] == ""  # no sizes
