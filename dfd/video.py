"""Video: frames sampled from a clip (streamed, memory bounded), faces linked into tracks, P(fake) over time.

The path of a clip (the CLI ``predict`` and the app's Detect page both call :func:`analyse_clip`)::

    file path or bytes ──► container check (MP4/MOV, WebM/MKV, AVI) ──► OpenCV's FFmpeg decoder, frame by frame
        ──► every k-th frame kept (about SAMPLE_RATE a second, at most MAX_SAMPLES, evenly over the clip)
        ──► RGB ──► the detector's face finder ──► each face: imaging.prepare(cut(frame, square crop))
        ──► Detector.predict_arrays (the one serving path) ──► faces linked into tracks by box overlap

What is sampled. A clip of D seconds gets n = min(max_samples, ceil(D x rate)) frames, one at the middle of
each of n equal slices of the clip (2 a second by default, so a 10 s clip gives 20 and a 10 minute one 120,
one every 5 s). Frames are decoded in order and only the sampled ones are converted and judged: one frame is
held at a time, so memory does not grow with the clip's length (bench/video_throughput.py measures it). A
clip is refused over ``max_seconds`` (10 minutes) or ``imaging.MAX_PIXELS`` a frame.

Tracks. Each sampled frame's faces are matched to the open tracks by the IoU of their face boxes, each grown
``LINK_GROW`` times about its centre (at least ``min_iou``, greedy, best overlap first); a track may miss up
to ``max_gap`` sampled frames (a face turned away or hidden for a moment) and go on. A face in the same place
that does not look like the track's last one (:func:`similarity` of the face boxes under ``min_similarity``:
colour histogram and coarse layout) starts a track of its own, so a cut to another person in the same place is
mostly not joined to the first. Measured on 319 test faces of four shared datasets, each face's box as the
finder draws it: the same face after a rotation of up to 12 degrees, a shift of 6% and a scale of 15%,
brightness +-15%, JPEG q40-90 and resampling from 80 px scored 0.5 or more in 318 cases (one at 0.34), while
268 of 318 pairs of different faces (84%; 73-90% a dataset) scored under 0.5. Links are not identities:
look-alike faces (same hair, skin and pose) cut or swapped into the same place can still join a track. Per
track: P(fake) per sampled frame with its time, the median P(fake), the share of its frames at or over the
threshold, a verdict (:func:`dfd.detect.verdict` of the median at the detector's threshold), a thumbnail and
the crop with the highest P(fake), as the model saw it (so :meth:`dfd.detect.Detector.heatmap_overlay`
explains that frame). Each face is cut as :func:`dfd.detect.face_crop` cuts it (``margin`` times the box,
square), but never widened to the whole frame: a video frame (16:9 mostly) is not a face crop, and judging it
whole would squash it. A sampled frame with no face found adds nothing (a clip with no face at all is reported
as such); with ``find_faces`` False each sampled frame is judged whole, as one track.

Codecs. OpenCV's FFmpeg backend (opencv-python-headless 4.14, FFmpeg 8 libraries) decoded every clip made
for the check: H.264 (8 and 10 bit), HEVC, AV1, VP8, VP9, MPEG-4 Part 2 (mp4v, XVID), Motion JPEG, ProRes,
FFV1, MPEG-2 and Theora, in MP4, MOV, MKV, WebM and AVI, rotation metadata applied (phone clips stand up).
Its VideoWriter can only *encode* mp4v, MJPG, XVID, VP80/VP90 and FFV1 (no H.264 encoder ships in the
wheel): the tests write mp4v. A codec FFmpeg has no decoder for is named in the error.

Bad input never raises out of :func:`analyse_clip`: the result's ``error`` is one line (not a video, truncated
or corrupt, a codec that cannot be decoded, too long, too large, no face found) and a batch goes on. A clip
that ends before its header says (cut short) is judged on what is there, with a ``note``.

Uploads are read from memory through OpenCV's stream reader where it has one (4.14 here; the Python stream is
held by :class:`Clip`, since OpenCV keeps no reference to it and reads freed memory otherwise); an OpenCV
without one gets a temporary file, removed when the clip is done, whatever happens.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import pandas as pd

from dfd import imaging

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
"""The clip files dfd judges (a file given by name is also a clip when its first bytes say so)."""
VIDEO_TYPES_TEXT = "MP4, MOV, WebM, MKV, AVI"
SAMPLE_RATE = 2.0
"""Sampled frames a second of clip (fewer when the clip is long: see ``MAX_SAMPLES``)."""
MAX_SAMPLES = 120
"""At most this many frames are judged a clip, spread evenly over it."""
MAX_SECONDS = 600.0
"""Clips longer than this (10 minutes) are refused."""
MIN_IOU = 0.3
"""A face continues a track when its box overlaps the track's last box by at least this IoU (both grown
:data:`LINK_GROW` times)."""
LINK_GROW = 2.0
"""Boxes are compared grown this many times about their centres: at 2 samples a second a small face can move
more than half its width between samples (a 55-px face crossing a 640-px frame in 3 s: raw IoU 0.26, grown
0.55), and its track would break into one track a frame."""
MAX_GAP = 2
"""A track goes on after missing up to this many sampled frames."""
MIN_SIMILARITY = 0.5
"""...and when its face looks like the track's last one at least this much (:func:`similarity`, 0..1)."""
THUMB_SIDE = 112
AUDIO_CODECS = {"mp4a", "ac-3", "ec-3", "opus", "Opus", "alac", "fLaC", "lpcm", "sowt", "twos", ".mp3", "ulaw",
                "alaw", "samr", "in24", "in32", "fl32", "fl64", "raw ", "ima4", "tmcd", "text", "tx3g", "wvtt",
                "c608", "rtp ", "mett", "mebx"}
DECODED_HERE = "H.264, HEVC, AV1, VP8, VP9, MPEG-4 Part 2, Motion JPEG, ProRes, FFV1, MPEG-2, Theora"


class VideoError(ValueError):
    """A clip that cannot be judged, with a one-line reason fit to show a user."""


Stop = threading.Event | Callable[[], bool] | None
Progress = Callable[["ClipProgress"], None] | None


# ----------------------------------------------------------------------------------------------------------
# What a file is


def is_video_name(name: str | Path) -> bool:
    """Whether a file name has one of :data:`VIDEO_EXTENSIONS`."""
    return Path(str(name)).suffix.lower() in VIDEO_EXTENSIONS


def container_of(head: bytes) -> str | None:
    """The container family the first bytes of a file announce ("MP4/MOV", "WebM/MKV", "AVI"), else None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM/MKV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def looks_like_video(path: str | Path) -> bool:
    """Whether the file at ``path`` starts like a clip (a video extension is not needed)."""
    try:
        with open(path, "rb") as f:
            return container_of(f.read(16)) is not None
    except OSError:
        return False


def _mp4_header(f: BinaryIO, size: int) -> tuple[bool, str | None]:
    """(whether the MP4/MOV index, the moov box, is whole in the file; the video sample entry's fourcc)."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
        header = 8
        if box_size == 1 and len(head) >= 16:
            box_size, header = int.from_bytes(head[8:16], "big"), 16
        elif box_size == 0:
            box_size = size - pos
        if box_size < header:
            return False, None
        if kind == b"moov":
            if pos + box_size > size:
                return False, None
            f.seek(pos)
            moov = f.read(min(box_size, 32 * 2**20))
            codecs = [moov[i + 16:i + 20].decode("latin-1") for i in (m.start() for m in re.finditer(b"stsd", moov))
                      if i + 20 <= len(moov)]
            video = [c for c in codecs if c not in AUDIO_CODECS]
            return True, (video[0] if video else None)
        pos += box_size
    return False, None


def _sniff(f: BinaryIO) -> tuple[str | None, bool, str | None]:
    """(container family, index whole, video codec tag) of an open binary file, read from its headers only."""
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    head = f.read(1 << 20)
    container = container_of(head)
    codec = None
    complete = True
    if container == "MP4/MOV":
        complete, codec = _mp4_header(f, size)
    elif container == "AVI":
        m = re.search(rb"strh.{4}vids(.{4})", head, re.DOTALL)
        codec = m.group(1).decode("latin-1") if m else None
    elif container == "WebM/MKV":
        m = re.search(rb"\x86[\x81-\xbf](V_[A-Za-z0-9/_.\-]+)", head)
        codec = m.group(1).decode("latin-1") if m else None
    f.seek(0)
    return container, complete, codec


# ----------------------------------------------------------------------------------------------------------
# Opening a clip and reading its frames


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says: frames a second, frame count (counted when the header has none), duration,
    size, codec."""

    fps: float
    frame_count: int
    duration: float
    width: int
    height: int
    codec: str
    container: str

    def describe(self) -> str:
        length = fmt_time(self.duration) if self.duration else "unknown length"
        return (f"{length} · {self.width}x{self.height} · {self.fps:.3g} frames/s · "
                f"{self.codec or '?'} in {self.container}")


@dataclass
class Frame:
    """One sampled frame: its number in the clip (from 0), its sample number, time in seconds, RGB pixels."""

    index: int
    sample: int
    time: float
    image: np.ndarray = field(repr=False)


_log_lock = threading.Lock()
_log_depth = [0, 0]  # (callers inside, saved level)


@contextlib.contextmanager
def _opencv_quiet():
    """OpenCV's (and through it FFmpeg's) log lines off while clips are opened and read: a bad clip's reason
    is the one line in the result, not C++ log chatter on stderr. Restored when the last caller leaves."""
    with _log_lock:
        if _log_depth[0] == 0:
            _log_depth[1] = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _log_depth[0] += 1
    try:
        yield
    finally:
        with _log_lock:
            _log_depth[0] -= 1
            if _log_depth[0] == 0:
                cv2.utils.logging.setLogLevel(_log_depth[1])


def fmt_time(seconds: float) -> str:
    """1.5 -> '1.5 s', 754 -> '12 min 34 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec} s" if sec else f"{minutes} min"


class Clip:
    """An open clip (a context manager): header checks done, frames streamed by :meth:`frames`.

    ``source`` is a path, or the clip's bytes (an upload): read in memory through OpenCV's stream reader where
    this OpenCV has it, else from a temporary file removed on :meth:`close`. Raises :class:`VideoError`.
    """

    def __init__(self, source: str | Path | bytes | bytearray, *, max_seconds: float = MAX_SECONDS,
                 in_memory: bool = True) -> None:
        self._tmp: str | None = None
        self._cap: Any = None
        self._stream: io.BytesIO | None = None
        self._path: str | None = None
        self.counted = False
        """Whether the header gave no length and the frames were counted first (one more decoding pass)."""
        try:
            self._open(source, max_seconds, in_memory)
        except BaseException:
            self.close()
            raise

    def _open(self, source: str | Path | bytes | bytearray, max_seconds: float, in_memory: bool) -> None:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
            if not data:
                raise VideoError("file is empty")
            container, complete, codec = _sniff(io.BytesIO(data))
        else:
            path = Path(source)
            try:
                if path.stat().st_size == 0:
                    raise VideoError("file is empty")
                with open(path, "rb") as f:
                    container, complete, codec = _sniff(f)
            except OSError as exc:
                raise VideoError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if container is None:
            raise VideoError("not a video file (it has no MP4/MOV, WebM/MKV or AVI header)")
        if not complete:
            raise VideoError(f"truncated or corrupt {container} file: its index (the moov box) is missing or cut "
                             "short, so no frame can be found (was the file cut, or still being written?)")
        with _opencv_quiet():
            if isinstance(source, (bytes, bytearray)):
                cap = None
                if in_memory:
                    # OpenCV's stream reader keeps no reference to the Python stream: without this one it is
                    # freed while FFmpeg still reads it (a segmentation fault, measured here)
                    self._stream = io.BytesIO(data)
                    with contextlib.suppress(TypeError, cv2.error):
                        cap = cv2.VideoCapture(self._stream, cv2.CAP_FFMPEG, [])
                if cap is None:  # an OpenCV without a stream reader: a temporary file, removed by close()
                    fd, self._tmp = tempfile.mkstemp(prefix="dfd-clip-", suffix=".bin")
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    cap = cv2.VideoCapture(self._tmp, cv2.CAP_FFMPEG)
            else:
                self._path = str(source)
                cap = cv2.VideoCapture(self._path, cv2.CAP_FFMPEG)
        self._cap = cap
        if not cap.isOpened():
            if codec and not _decodable(codec):
                raise VideoError(f"unsupported video codec '{codec}': OpenCV's FFmpeg here has no decoder for it "
                                 f"(it decodes {DECODED_HERE})")
            if container == "MP4/MOV" and codec is None:
                raise VideoError(f"no video stream in this {container} file (audio only?)")
            raise VideoError(f"corrupt {container} file" + (f" ({_codec_name(codec)})" if codec else "")
                             + ": OpenCV's FFmpeg decoder could not open it")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        tag = fourcc.to_bytes(4, "little").decode("latin-1").strip("\x00 ") if fourcc > 0 else ""
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 0.0
        if count <= 0:  # no length in the header (a WebM recorded live, as browsers do): count, then start again
            count = self._count(int(max_seconds * (fps or 25.0)) + 1)
            if count < 0:
                raise VideoError(f"clip is over {fmt_time(max_seconds)} long; longer clips are refused "
                                 "(cut it, or raise the limit)")
        duration = count / fps if fps and count else 0.0
        self.info = ClipInfo(fps=fps, frame_count=count, duration=duration, width=width, height=height,
                             codec=_codec_name(tag or codec), container=container)
        if width <= 0 or height <= 0:
            raise VideoError(f"corrupt {container} file: no frame size in its header")
        if width * height > imaging.MAX_PIXELS:
            raise VideoError(f"frames are {width}x{height}; clips over {imaging.MAX_PIXELS / 1e6:.0f} MP a frame "
                             "are refused")
        if duration > max_seconds:
            raise VideoError(f"clip is {fmt_time(duration)} long; clips over {fmt_time(max_seconds)} are refused "
                             "(cut it, or raise the limit)")

    def _count(self, limit: int) -> int:
        """Frames in the clip, decoded one by one (-1 past ``limit``); the capture is opened again after."""
        n = 0
        with _opencv_quiet():
            while n <= limit and self._cap.grab():
                n += 1
            self._cap.release()
            if self._stream is not None:
                self._stream.seek(0)
                self._cap = cv2.VideoCapture(self._stream, cv2.CAP_FFMPEG, [])
            else:
                self._cap = cv2.VideoCapture(self._tmp or self._path, cv2.CAP_FFMPEG)
        self.counted = True
        return -1 if n > limit else n

    def plan(self, rate: float = SAMPLE_RATE, max_samples: int = MAX_SAMPLES) -> list[int]:
        """The frame numbers to judge: one in the middle of each of n equal slices of the clip."""
        return sample_plan(self.info.frame_count, self.info.fps, rate, max_samples)

    def frames(self, rate: float = SAMPLE_RATE, max_samples: int = MAX_SAMPLES, *, stop: Stop = None,
               on_read: Callable[[int], None] | None = None) -> Iterator[Frame]:
        """The sampled frames (:meth:`plan`) in order, one at a time (RGB). Frames between them are decoded and
        dropped (``grab`` without the colour conversion). ``on_read(frames decoded so far)`` is called as it
        goes; ``stop`` ends the stream early. :attr:`ended_early` says whether the stream ended before the frames
        its header announced. Once per clip: the stream is not rewound."""
        cap, info = self._cap, self.info
        wanted = self.plan(rate, max_samples)
        self.frames_read = 0
        self.ended_early = False
        self.stopped = False
        target = iter(wanted)
        nxt = next(target, None)
        sample = 0
        index = 0
        with _opencv_quiet():
            while nxt is not None:
                if _stopped(stop):
                    self.stopped = True
                    return
                if not cap.grab():
                    self.ended_early = True
                    return
                self.frames_read = index + 1
                if index == nxt:
                    ok, bgr = cap.retrieve()
                    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                    t = msec / 1000.0 if msec and msec > 0 else (index / info.fps if info.fps else float(sample))
                    if ok and bgr is not None:
                        yield Frame(index=index, sample=sample, time=t,
                                    image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3
                                    else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB))
                    sample += 1
                    nxt = next(target, None)
                if on_read is not None and (index % 16 == 0 or nxt is None):
                    on_read(index + 1)
                index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._stream = None  # only after the capture that reads it is released
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sample_plan(frame_count: int, fps: float, rate: float = SAMPLE_RATE, max_samples: int = MAX_SAMPLES) -> list[int]:
    """Frame numbers to judge for a clip of ``frame_count`` frames at ``fps``: n = min(max_samples,
    ceil(seconds x rate)) (at least 1), the middle frame of each of n equal slices, sorted and distinct;
    [] for no frames."""
    if frame_count <= 0:
        return []
    seconds = frame_count / fps if fps > 0 else frame_count / 25.0
    n = max(1, min(int(max_samples), math.ceil(seconds * rate - 1e-9), frame_count))
    return sorted({min(frame_count - 1, int((k + 0.5) * frame_count / n)) for k in range(n)})


def _codec_name(tag: str | None) -> str:
    names = {"avc1": "H.264", "h264": "H.264", "H264": "H.264", "avc3": "H.264", "hvc1": "HEVC", "hev1": "HEVC",
             "hevc": "HEVC", "av01": "AV1", "AV01": "AV1", "vp08": "VP8", "VP80": "VP8", "vp09": "VP9",
             "VP90": "VP9", "mp4v": "MPEG-4 Part 2", "FMP4": "MPEG-4 Part 2", "XVID": "MPEG-4 Part 2",
             "DIVX": "MPEG-4 Part 2", "DX50": "MPEG-4 Part 2", "MJPG": "Motion JPEG", "jpeg": "Motion JPEG",
             "mjpa": "Motion JPEG", "ffv1": "FFV1", "FFV1": "FFV1", "mpg2": "MPEG-2", "theo": "Theora",
             "V_MPEG4/ISO/AVC": "H.264", "V_MPEGH/ISO/HEVC": "HEVC", "V_AV1": "AV1", "V_VP8": "VP8", "V_VP9": "VP9",
             "V_MPEG4/ISO/ASP": "MPEG-4 Part 2", "V_MJPEG": "Motion JPEG", "V_FFV1": "FFV1", "V_THEORA": "Theora",
             "V_MPEG2": "MPEG-2"}
    if not tag:
        return ""
    if tag in names:
        return names[tag]
    if tag.startswith("ap") and len(tag) == 4:
        return "ProRes"
    return tag


def _decodable(tag: str) -> bool:
    name = _codec_name(tag)
    return name in DECODED_HERE


def _stopped(stop: Stop) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass
class FrameFace:
    """One face in one sampled frame: where it is, the crop judged, its P(fake)."""

    sample: int
    frame: int
    time: float
    box: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    p_fake: float


@dataclass
class Track:
    """One face followed across sampled frames (or, with face finding off, the whole frame)."""

    id: int
    faces: list[FrameFace] = field(default_factory=list)
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    strongest: np.ndarray | None = field(default=None, repr=False)
    """The crop of the frame with the highest P(fake), resized to the model's input: what the model saw."""
    whole_frame: bool = False
    _thumb_area: int = field(default=-1, repr=False)

    @property
    def start(self) -> float:
        return self.faces[0].time

    @property
    def end(self) -> float:
        return self.faces[-1].time

    @property
    def times(self) -> list[float]:
        return [f.time for f in self.faces]

    @property
    def p_fakes(self) -> list[float]:
        return [f.p_fake for f in self.faces]

    @property
    def side(self) -> int:
        """The median side (px) of the crops judged: how large the face is in the clip."""
        from dfd.detect import crop_side

        return int(np.median([crop_side(f.crop) for f in self.faces])) if self.faces else 0

    @property
    def median_p_fake(self) -> float:
        return float(statistics.median(self.p_fakes))

    @property
    def strongest_face(self) -> FrameFace:
        return max(self.faces, key=lambda f: f.p_fake)

    def share_over(self, threshold: float) -> float:
        """The share of this track's frames with P(fake) at or over ``threshold``."""
        return float(np.mean([p >= threshold for p in self.p_fakes]))

    def verdict_at(self, threshold: float, band: tuple[float, float] | None = None) -> str:
        """:func:`dfd.detect.verdict` of the median P(fake) at ``threshold`` (and the run's inconclusive
        ``band`` around it, where there is one)."""
        return _verdict(self.median_p_fake, threshold, band)

    def label(self) -> str:
        return "whole frame" if self.whole_frame else f"face {self.id}"


@dataclass
class ClipProgress:
    """Where a clip's analysis is: frames decoded of the clip's frames, sampled frames judged of those planned."""

    frames_read: int
    frame_count: int
    judged: int
    to_judge: int
    seconds: float

    @property
    def fraction(self) -> float:
        if self.frame_count:
            return min(1.0, self.frames_read / self.frame_count)
        return min(1.0, self.judged / self.to_judge) if self.to_judge else 0.0

    def text(self) -> str:
        read = f"{self.frames_read} of {self.frame_count}" if self.frame_count else str(self.frames_read)
        return f"frames read {read} · judged {self.judged} of {self.to_judge or '?'} sampled frames"


@dataclass
class ClipResult:
    """The analysis of one clip. ``error`` is set (and ``tracks`` empty) when it could not be judged;
    ``notes`` say what was judged short of the whole clip (stopped, file ended early)."""

    name: str
    error: str | None = None
    info: ClipInfo | None = None
    tracks: list[Track] = field(default_factory=list)
    sampled: int = 0
    with_faces: int = 0
    frames_read: int = 0
    notes: list[str] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


# ----------------------------------------------------------------------------------------------------------
# Tracking


def signature(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`similarity` compares of a face (RGB pixels of its box): a hue-saturation histogram (16 x 16
    bins, sums to 1) and the 16 x 16 grey layout (zero mean, unit length)."""
    hsv = cv2.cvtColor(face, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 16], [0, 180, 0, 256])
    hist = hist / max(float(hist.sum()), 1e-9)
    grey = cv2.resize(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32).ravel()
    grey -= grey.mean()
    return hist.astype(np.float32), grey / (float(np.linalg.norm(grey)) + 1e-6)


def similarity(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """How alike two face :func:`signature` s are, 0..1: the mean of the histograms' overlap (1 - Bhattacharyya
    distance) and the grey layouts' correlation (below 0 counted as 0)."""
    overlap = 1.0 - float(cv2.compareHist(a[0], b[0], cv2.HISTCMP_BHATTACHARYYA))
    return 0.5 * overlap + 0.5 * max(0.0, float(a[1] @ b[1]))


class _Tracker:
    """Greedy IoU linking of each sampled frame's faces to the open tracks (a gap of ``max_gap`` allowed), a link
    kept only where the faces look alike (``min_similarity``; skipped for whole frames: no signatures)."""

    def __init__(self, min_iou: float = MIN_IOU, max_gap: int = MAX_GAP,
                 min_similarity: float = MIN_SIMILARITY) -> None:
        self.min_iou = float(min_iou)
        self.max_gap = int(max_gap)
        self.min_similarity = float(min_similarity)
        self.tracks: list[Track] = []
        self._last: dict[int, tuple[tuple[int, int, int, int], int, Any]] = {}  # id -> (last box, sample, signature)

    def add(self, sample: int, boxes: Sequence[tuple[int, int, int, int]],
            signatures: Sequence[Any] | None = None) -> list[Track]:
        """The track of each box (new tracks for the unmatched), in ``boxes`` order."""
        from dfd.detect import _iou

        sigs = list(signatures) if signatures is not None else [None] * len(boxes)
        live = [(tid, box, sig) for tid, (box, last, sig) in self._last.items() if sample - last - 1 <= self.max_gap]
        pairs = sorted(((_iou(_grown(tb), _grown(b)), tid, i) for tid, tb, _ in live for i, b in enumerate(boxes)),
                       reverse=True)
        last_sig = {tid: sig for tid, _, sig in live}
        owner: dict[int, int] = {}
        taken: set[int] = set()
        for overlap, tid, i in pairs:
            if overlap < self.min_iou:
                break
            if i in owner or tid in taken:
                continue
            if (sigs[i] is not None and last_sig[tid] is not None
                    and similarity(sigs[i], last_sig[tid]) < self.min_similarity):
                continue
            owner[i] = tid
            taken.add(tid)
        out = []
        for i, box in enumerate(boxes):
            if i not in owner:
                self.tracks.append(Track(id=len(self.tracks) + 1))
                owner[i] = len(self.tracks)
            self._last[owner[i]] = (box, sample, sigs[i])
            out.append(self.tracks[owner[i] - 1])
        return out


def _grown(box: Sequence[int], factor: float = LINK_GROW) -> tuple[float, float, float, float]:
    """``box`` (x, y, w, h) scaled ``factor`` times about its centre."""
    x, y, w, h = (float(v) for v in box)
    return x + w / 2 - w * factor / 2, y + h / 2 - h * factor / 2, w * factor, h * factor


def _inside(box: Sequence[int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``box`` cut to the image (at least 1 x 1)."""
    h, w = shape[:2]
    x0, y0 = min(max(int(box[0]), 0), w - 1), min(max(int(box[1]), 0), h - 1)
    x1, y1 = min(max(int(box[0] + box[2]), x0 + 1), w), min(max(int(box[1] + box[3]), y0 + 1), h)
    return x0, y0, x1 - x0, y1 - y0


def _thumbnail(crop: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    return imaging.resize(crop, side)


# ----------------------------------------------------------------------------------------------------------
# Analysis


def analyse_clip(detector: Any, source: str | Path | bytes | bytearray, name: str | None = None, *,
                 rate: float = SAMPLE_RATE, max_samples: int = MAX_SAMPLES, max_seconds: float = MAX_SECONDS,
                 find_faces: bool | None = None, min_iou: float = MIN_IOU, max_gap: int = MAX_GAP,
                 min_similarity: float = MIN_SIMILARITY, progress: Progress = None, stop: Stop = None,
                 in_memory: bool = True) -> ClipResult:
    """Judge one clip (a path, or its bytes) with ``detector`` (a :class:`dfd.detect.Detector`). Never raises
    for a bad clip: the result's ``error`` says why it could not be judged.

    ``progress(ClipProgress)`` is called as frames are read and judged; ``stop`` (a ``threading.Event`` or a
    callable) ends the analysis early, keeping what was judged (``stopped`` and a note say so).
    ``find_faces`` False judges each sampled frame whole (None: the detector's setting).
    """
    t0 = time.perf_counter()
    if name is None:
        name = Path(source).name if isinstance(source, (str, Path)) else "clip"
    result = ClipResult(name=name)
    try:
        with Clip(source, max_seconds=max_seconds, in_memory=in_memory) as clip:
            result.info = clip.info
            _judge(detector, clip, result, rate, max_samples, find_faces, _Tracker(min_iou, max_gap, min_similarity),
                   progress, stop, t0)
    except VideoError as exc:
        result.error = str(exc)
        result.tracks = []
    except Exception as exc:  # noqa: BLE001 - one clip's failure is reported in its row; the batch goes on
        result.error = f"analysis failed: {type(exc).__name__}: {exc}"
        result.tracks = []
    result.seconds = time.perf_counter() - t0
    return result


def _judge(detector: Any, clip: Clip, result: ClipResult, rate: float, max_samples: int,
           find_faces: bool | None, tracker: _Tracker, progress: Progress, stop: Stop, t0: float) -> None:
    from dfd.detect import cut, face_crop

    find = detector.find_faces if find_faces is None else bool(find_faces)
    info = clip.info
    to_judge = len(clip.plan(rate, max_samples))

    def report(frames_read: int) -> None:
        if progress is not None:
            progress(ClipProgress(frames_read, info.frame_count, result.sampled, to_judge,
                                  time.perf_counter() - t0))

    for frame in clip.frames(rate, max_samples, stop=stop, on_read=report):
        img = frame.image
        if find:  # always a square crop around the face: a frame (16:9) is never a face crop to judge whole
            boxes = list(detector.finder.find(img))
            crops = [face_crop(b, img.shape, detector.margin, whole_if=math.inf) for b in boxes]
        else:
            boxes, crops = [], [(0, 0, img.shape[1], img.shape[0])]
        result.sampled += 1
        if not boxes and find:
            report(frame.index + 1)
            continue
        whole = not boxes
        if whole:
            boxes = crops
        cuts = [imaging.resize(cut(img, c), detector.image_size) for c in crops]
        probs = detector.predict_arrays(np.stack([c.astype(np.float32) for c in cuts]))
        result.with_faces += 1
        sigs = None if whole else [signature(cut(img, _inside(b, img.shape))) for b in boxes]
        for track, box, crop, served, p in zip(tracker.add(frame.sample, boxes, sigs), boxes, crops, cuts, probs,
                                               strict=True):
            track.whole_frame = whole
            face = FrameFace(sample=frame.sample, frame=frame.index, time=round(frame.time, 3),
                             box=tuple(int(v) for v in box), crop=tuple(int(v) for v in crop), p_fake=float(p))
            if not track.faces or face.p_fake > track.strongest_face.p_fake:
                track.strongest = served
            track.faces.append(face)
            area = box[2] * box[3]
            if area > track._thumb_area:
                track.thumbnail, track._thumb_area = _thumbnail(cut(img, crop)), area
        report(frame.index + 1)
    result.frames_read = clip.frames_read
    result.tracks = [t for t in tracker.tracks if t.faces]
    if clip.stopped:
        result.stopped = True
        done = f"{fmt_time(result.tracks and max(t.end for t in result.tracks) or 0.0)}"
        result.notes.append(f"stopped after {result.sampled} of {to_judge} sampled frames (judged up to {done})")
    if clip.counted:
        result.notes.append("no length in the clip's header (a stream recording?): its frames were counted first, "
                            "one more pass over the file")
    if clip.ended_early:
        seen = clip.frames_read / info.fps if info.fps else 0.0
        result.notes.append(f"the file ends after {fmt_time(seen)} of the {fmt_time(info.duration)} its header "
                            "says (cut short?): judged what is there")
    if result.sampled == 0 and not clip.stopped:
        raise VideoError(f"no frame could be decoded ({info.codec or 'unknown codec'} in {info.container}): "
                         "the file is truncated or corrupt")
    if not result.tracks and not clip.stopped:
        raise VideoError(f"no face found in any of the {result.sampled} sampled frames")


def analyse_many(detector: Any, sources: Iterable[tuple[str, Any]], **kwargs: Any) -> list[ClipResult]:
    """:func:`analyse_clip` for each (name, source); every clip gets a result, errors included."""
    return [analyse_clip(detector, src, name=name, **kwargs) for name, src in sources]


# ----------------------------------------------------------------------------------------------------------
# Tables


def _verdict(p_fake: float, threshold: float, band: tuple[float, float] | None = None) -> str:
    from dfd.detect import verdict

    return verdict(p_fake, threshold) if band is None else verdict(p_fake, threshold, band)


TRACK_COLUMNS = ["file", "track", "first_s", "last_s", "frames", "median_p_fake", "share_over", "verdict", "note",
                 "kind", "run", "threshold", "band"]
FRAME_COLUMNS = ["file", "track", "sample", "frame", "time_s", "p_fake", "verdict", "box", "crop"]


def tracks_table(results: Sequence[ClipResult], threshold: float, band: tuple[float, float] | None = None, *,
                 run: str = "", images: Sequence[Any] = (), sizes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per face track (or per clip that could not be judged): file, track, first and last time (s),
    sampled frames, median P(fake), share of its frames at or over ``threshold``, verdict, note, kind ("clip"),
    and what judged it: run, threshold, band ("lo-hi", "" for none).

    ``images`` (:class:`dfd.detect.ImageResult`, judged in the same batch) are rows too, each face a track of
    one frame (kind "image", no times), so one table holds a batch of clips and images. With the run's ``sizes``
    sweep, a track of small faces (its median crop side) gets :func:`dfd.detect.small_face_note` in its note."""
    from dfd.detect import small_face_note as small

    common = {"run": run, "threshold": float(threshold), "band": "" if band is None else f"{band[0]:.4f}-{band[1]:.4f}"}
    rows = []
    for r in results:
        note = "; ".join(r.notes)
        if r.error is not None:
            rows.append({"file": r.name, "track": None, "first_s": None, "last_s": None, "frames": 0,
                         "median_p_fake": None, "share_over": None, "verdict": "error", "note": r.error,
                         "kind": "clip", **common})
            continue
        for t in r.tracks:
            rows.append({"file": r.name, "track": t.id, "first_s": round(t.start, 3), "last_s": round(t.end, 3),
                         "frames": len(t.faces), "median_p_fake": round(t.median_p_fake, 4),
                         "share_over": round(t.share_over(threshold), 4), "verdict": t.verdict_at(threshold, band),
                         "note": "; ".join(x for x in ("whole frames judged" if t.whole_frame else "", note,
                                                       small(sizes, t.side)) if x),
                         "kind": "clip", **common})
    for r in images:
        if r.error is not None:
            rows.append({"file": r.name, "track": None, "first_s": None, "last_s": None, "frames": 0,
                         "median_p_fake": None, "share_over": None, "verdict": "error", "note": r.error,
                         "kind": "image", **common})
            continue
        for i, f in enumerate(r.faces):
            rows.append({"file": r.name, "track": i + 1, "first_s": None, "last_s": None, "frames": 1,
                         "median_p_fake": round(f.p_fake, 4), "share_over": float(f.p_fake >= threshold),
                         "verdict": f.verdict_at(threshold) if band is None else f.verdict_at(threshold, band),
                         "note": "; ".join(x for x in ("no face found: whole image judged" if r.whole_image else "",
                                                       small(sizes, f.side)) if x), "kind": "image",
                         **common})
    table = pd.DataFrame(rows, columns=TRACK_COLUMNS)
    table["track"] = table["track"].astype("Int64")
    return table


def frames_table(results: Sequence[ClipResult], threshold: float,
                 band: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per sampled frame and face: file, track, sample, frame number, time (s), P(fake), the verdict
    of that frame alone, the face box and the crop judged (x, y, w, h in frame pixels)."""
    rows = []
    for r in results:
        for t in r.tracks:
            for f in t.faces:
                rows.append({"file": r.name, "track": t.id, "sample": f.sample, "frame": f.frame,
                             "time_s": f.time, "p_fake": round(f.p_fake, 4),
                             "verdict": _verdict(f.p_fake, threshold, band),
                             "box": "x{},y{},w{},h{}".format(*f.box), "crop": "x{},y{},w{},h{}".format(*f.crop)})
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    return frame.sort_values(["file", "time_s", "track"], kind="stable").reset_index(drop=True) if rows else frame


def curves(result: ClipResult) -> pd.DataFrame:
    """P(fake) over time, long form (track, time_s, p_fake): one line per track for a chart."""
    rows = [{"track": t.label(), "time_s": f.time, "p_fake": f.p_fake} for t in result.tracks for f in t.faces]
    return pd.DataFrame(rows, columns=["track", "time_s", "p_fake"])


# ----------------------------------------------------------------------------------------------------------
# In the background (the app: a progress bar and a Stop button while a long clip is judged)


class ClipJob:
    """:func:`analyse_clip` on a thread of its own: :attr:`progress` as it goes, :meth:`stop`, :attr:`result`
    when :attr:`done`. The clip's bytes are dropped when the analysis ends."""

    def __init__(self, detector: Any, data: bytes, name: str, **kwargs: Any) -> None:
        self.name = name
        self.progress: ClipProgress | None = None
        self.result: ClipResult | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(detector, data, kwargs), name=f"dfd-clip-{name}",
                                        daemon=True)
        self._thread.start()

    def _run(self, detector: Any, data: bytes, kwargs: dict) -> None:
        def note(p: ClipProgress) -> None:
            self.progress = p

        try:
            self.result = analyse_clip(detector, data, self.name, progress=note, stop=self._stop, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the page shows it; the thread must always finish
            self.result = ClipResult(name=self.name, error=f"analysis failed: {type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
