"""Video: sampled frames judged a second end to end vs decoding alone, and peak memory for a short clip vs one
4x longer, side by side in one process.

    python bench/video_throughput.py [--run models/default] [--seconds 20] [--size 1920x1080] [--fps 25]
                                     [--repeats 3] [--data ../shared/data] [--clip CLIP]

Clips: a real face (faces-140k-mini test) moving and growing on a plain background, written here with OpenCV's
mp4v encoder (the wheel has no H.264 encoder), ``--seconds`` long and 4x as long, to a temporary folder.

Speed, on the short clip, the contenders interleaved (each round runs both, so both see the same machine load):

- decoding alone: ``dfd.video.Clip(path).frames()``: every frame decoded (``grab``), the sampled ones converted
  to RGB, nothing judged;
- end to end: ``dfd.video.analyse_clip(detector, path)``: the same plus face finding (BlazeFace), the square
  crops, one model call a frame and the tracks.

Both are reported as sampled frames a second (and decoded frames a second); the ratio is what judging costs.
The synthetic clip (a plain background, mp4v) decodes much faster than camera footage: ``--clip`` times a clip
of your own (say a phone's H.264) the same way, beside the synthetic one.

Memory, for the short and the long clip (the long one decodes 4x the frames and judges up to 3x as many, as
many as ``MAX_SAMPLES`` allows): the peak of Python and NumPy allocations during ``analyse_clip`` (tracemalloc,
which sees the frames OpenCV hands over as NumPy arrays) in this process, and in a fresh process that judges just
that clip the resident set size before it and its peak while the clip is judged (Linux: the peak, VmHWM, is reset
through /proc/self/clear_refs once the detector is loaded; elsewhere ``resource.getrusage``'s peak, which includes
loading TensorFlow). Flat numbers mean frames are streamed, not held.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _detector(run: str):
    from dfd import detect, runs

    return detect.Detector(runs.get_run(run))


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _child(run: str, clip: str) -> None:
    """Judge one clip in this fresh process; print the frames judged, RSS before and peak RSS while judging (MB)."""
    from dfd import video

    det = _detector(run)
    before = _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        reset = True
    except OSError:
        reset = False
    r = video.analyse_clip(det, clip)
    peak = _status_mb("VmHWM") if reset else None
    peak = peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{r.sampled} {r.frames_read} {before:.1f} {peak:.1f}")


def _face(data: Path):
    import numpy as np

    from dfd import imaging

    faces = sorted((data / "faces-140k-mini" / "real-vs-fake" / "test" / "real").glob("*.jpg"))
    if faces:
        return imaging.load_image(faces[0]), f"real face {faces[0].name}"
    rng = np.random.default_rng(0)  # no shared data: a textured square (no face found: decode and finder only)
    return rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), "noise square (no shared data)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=str(REPO / "models" / "default"))
    ap.add_argument("--seconds", type=float, default=20.0, help="the short clip's length (the long one is 4x)")
    ap.add_argument("--size", default="1920x1080", help="frame size WxH")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the speed comparison")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--clip", help="also time this clip (decoding alone vs end to end)")
    ap.add_argument("--child", nargs=2, metavar=("RUN", "CLIP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return

    from dfd import video
    from tests.video_clips import Segment, write_clip

    w, h = (int(v) for v in args.size.lower().split("x"))
    face, what = _face(Path(args.data))
    tmp = Path(tempfile.mkdtemp(prefix="dfd-bench-video-"))
    clips = {}
    for label, seconds in (("short", args.seconds), ("long", 4 * args.seconds)):
        t0 = time.perf_counter()
        clips[label] = write_clip(tmp / f"{label}.mp4", [Segment(face, seconds, (0.3, 0.5), (0.7, 0.5), (0.3, 0.45))],
                                  size=(w, h), fps=args.fps)
        print(f"wrote the {label} clip: {seconds:.0f} s, {w}x{h}, {args.fps:g} frames/s, mp4v, "
              f"{clips[label].stat().st_size / 2**20:.1f} MB ({time.perf_counter() - t0:.0f} s to write)", flush=True)

    det = _detector(args.run)
    print(f"detector: run {det.name} ({det.image_size} px, served by {det.engine}); {what}; {os.cpu_count()} CPU "
          f"cores; sampling {video.SAMPLE_RATE:g} a second, at most {video.MAX_SAMPLES}")

    def decode_only(path: Path) -> tuple[int, int]:
        with video.Clip(path) as c:
            n = sum(1 for _ in c.frames())
            return n, c.frames_read

    video.analyse_clip(det, clips["short"])  # warm-up: the finder's interpreters, the model's first call
    timed = [("the synthetic short clip", clips["short"])] + ([(f"{Path(args.clip).name}", Path(args.clip))]
                                                             if args.clip else [])
    for label, path in timed:
        with video.Clip(path) as c:
            info = c.info.describe()
        t_dec, t_e2e = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sampled, decoded = decode_only(path)
            t_dec.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = video.analyse_clip(det, path)
            t_e2e.append(time.perf_counter() - t0)
            assert r.sampled == sampled, (r.error, r.sampled, sampled)  # a clip with no face: finder, no model
        dec, e2e = statistics.median(t_dec), statistics.median(t_e2e)
        print(f"\nspeed, {label} ({info}; {decoded} frames decoded, {sampled} sampled; median of {args.repeats} "
              "interleaved rounds)")
        print(f"{'':<34}{'seconds':>9}{'sampled/s':>11}{'decoded/s':>11}")
        print(f"{'decoding alone (Clip.frames)':<34}{dec:>9.2f}{sampled / dec:>11.1f}{decoded / dec:>11.0f}")
        print(f"{'end to end (analyse_clip)':<34}{e2e:>9.2f}{sampled / e2e:>11.1f}{decoded / e2e:>11.0f}")
        print(f"judging costs {(e2e - dec) / sampled * 1000:.0f} ms a sampled frame ({r.with_faces} of them with a "
              f"face); end to end takes {e2e / dec:.1f}x decoding alone")

    print("\nmemory (the long clip: 4x the decoded frames)")
    print(f"{'clip':<8}{'frames':>8}{'sampled':>9}{'tracemalloc peak MB':>21}{'child RSS before MB':>21}"
          f"{'child RSS peak MB':>19}")
    for label, path in clips.items():
        tracemalloc.start()
        r = video.analyse_clip(det, path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out = subprocess.run([sys.executable, __file__, "--child", args.run, str(path)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
        sampled, frames, before, rss = out.stdout.split()[-4:]
        print(f"{label:<8}{r.frames_read:>8}{r.sampled:>9}{peak / 2**20:>21.1f}{float(before):>21.0f}"
              f"{float(rss):>19.0f}")
    one_frame = w * h * 3 / 2**20
    print(f"(one {w}x{h} RGB frame is {one_frame:.1f} MB; holding the long clip's frames would take "
          f"{one_frame * 4 * args.seconds * args.fps / 1024:.1f} GB)")
    for path in clips.values():
        path.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
