"""Calibration frames from a video file or a live source: sample, drop near-duplicates, save.

A user converting for a board rarely has a folder of photos like the ones the model will see;
they have the camera. :func:`sample_frames` turns any source ``anyedge run --source`` takes into
a folder of distinct frames, which the converter then splits like a folder of photos (two in
three calibrate, every third is held back for the fidelity gate).

- A video file: ``frames`` positions spread evenly over its length (the middle of ``frames``
  equal stretches), reached by seeking.
- A live source (camera index, ``picamera``, stream URL): a frame every ``every_s`` seconds of
  the source's own time (frames read / its frame rate; the wall clock when it reports none),
  until ``frames`` are sampled or the source ends.
- Near-duplicates: each sampled frame is shrunk to a ``THUMB`` x ``THUMB`` grey thumbnail; a
  frame whose mean absolute difference to a frame already kept is below ``min_change`` grey
  levels (of 255) is dropped and counted. A still scene differs by sensor noise and compression
  (well under 1 level at that size); a different scene by tens of levels.

What is recorded (:meth:`SampledFrames.record`) never holds a URL's user name, password, query
or fragment (:func:`public_name`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from anyedge.errors import AnyEdgeError, CalibrationError

from .calibration import IMAGE_SUFFIXES, progress

__all__ = ["FrameSampling", "SampledFrames", "THUMB", "MIN_FRAMES", "source_kind", "public_name",
           "sample_frames", "near_duplicate_distance"]

log = logging.getLogger(__name__)

THUMB = 32  # side of the grey thumbnail near-duplicates are measured on
MIN_FRAMES = 3  # two to calibrate, one to hold back
_SEEK_GAP = 16  # closer positions are reached by decoding forward, farther ones by seeking


@dataclass(frozen=True)
class FrameSampling:
    """How frames are taken from a video file or a live source.

    Attributes:
        frames: how many frames to sample (a video shorter than that gives each of its frames once).
        every_s: live sources: seconds of the source's time between samples.
        min_change: a frame is kept only if its thumbnail differs from every kept one by at least
            this mean absolute grey level (0-255); ``0`` keeps every sampled frame.
        timeout_s: live sources: how long to wait for the source to open.
    """

    frames: int = 120
    every_s: float = 0.5
    min_change: float = 2.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise CalibrationError(f"frames must be a positive whole number, got {self.frames!r}")
        for name, low in (("every_s", 0.0), ("timeout_s", 0.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= low:
                raise CalibrationError(f"{name} must be a finite number > 0, got {v!r}")
        v = self.min_change
        if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 255.0:
            raise CalibrationError(f"min_change must be a number in [0, 255], got {v!r}")


@dataclass(frozen=True)
class SampledFrames:
    """The frames kept from one source, saved as images, in sampling order.

    Attributes:
        kind: ``"video"``, ``"camera"``, ``"picamera"`` or ``"stream"``.
        source: the source as it may be recorded (:func:`public_name`).
        files: the kept frames, saved as PNG.
        sampled: frames sampled before near-duplicates were dropped.
        duplicates: frames dropped as near-duplicates of a kept one.
        sampling: the settings used.
        length: a video's frame count (``None`` for a live source).
        ended: why sampling stopped before ``sampling.frames`` (``None`` when it did not).
    """

    kind: str
    source: str
    files: tuple[Path, ...]
    sampled: int
    duplicates: int
    sampling: FrameSampling
    length: int | None = None
    ended: str | None = None

    def record(self) -> dict[str, Any]:
        """The manifest's account of where calibration came from."""
        rec: dict[str, Any] = {"kind": self.kind, "source": self.source, "frames_requested": self.sampling.frames,
                               "sampled": self.sampled, "duplicates_dropped": self.duplicates,
                               "kept": len(self.files),
                               "dedup": {"measure": f"mean absolute difference of {THUMB}x{THUMB} grey thumbnails "
                                                    "(0-255) to every kept frame",
                                         "min_change": self.sampling.min_change}}
        if self.kind == "video":
            rec["video_frames"] = self.length
        else:
            rec["every_s"] = self.sampling.every_s
        if self.ended:
            rec["ended"] = self.ended
        return rec

    def summary(self) -> str:
        """One line: what was sampled from where."""
        where = f"every {self.sampling.every_s:g} s" if self.kind != "video" else f"of {self.length} frames"
        return (f"{self.kind} {self.source}: {self.sampled} frames sampled ({where}), {self.duplicates} dropped as "
                f"near-duplicates, {len(self.files)} kept")


def _text(source: str | int | os.PathLike[str]) -> str:
    return str(source) if isinstance(source, int) else os.fspath(source)


def source_kind(source: str | int | os.PathLike[str]) -> str:
    """``"folder"``, ``"video"``, ``"camera"``, ``"picamera"`` or ``"stream"``, spelled as ``anyedge run --source``.

    Raises:
        CalibrationError: a path that does not exist, or a single image.
    """
    s = _text(source)
    if s == "picamera":
        return "picamera"
    if s.isdigit():
        return "camera"
    if "://" in s:
        return "stream"
    p = Path(s)
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise CalibrationError(f"calibration source {s} does not exist (pass --calib with a folder of real images, "
                               "a video file, a camera index, 'picamera' or a stream URL)")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        raise CalibrationError(f"calibration source {s} is a single image; pass the folder it is in, or a video")
    return "video"


def public_name(source: str | int | os.PathLike[str]) -> str:
    """``source`` as it may be written down: a URL without user name, password, query and fragment."""
    s = _text(source)
    if "://" not in s:
        return s
    try:
        u = urlsplit(s)
        host = u.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if u.port is not None:
            host += f":{u.port}"
    except ValueError:  # an unparsable URL: keep only its scheme
        return s.split("://", 1)[0] + "://..."
    return urlunsplit((u.scheme, host, u.path, "", ""))


def near_duplicate_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of thumbnail ``a`` ``(t, t)`` to each of ``b`` ``(n, t, t)``, in grey levels."""
    return np.abs(b.astype(np.int16) - a.astype(np.int16)).mean(axis=(1, 2))


def _thumb(frame: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _positions(length: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``length`` frames: the middle of ``n`` equal stretches."""
    if length <= n:
        return list(range(length))
    return [int((i + 0.5) * length / n) for i in range(n)]


def _video_length(cap: Any, path: str) -> int:
    import cv2

    total = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if total and math.isfinite(total) and total > 0:
        return int(total)
    n = 0  # the container does not say: count by decoding through once
    while cap.grab():
        n += 1
    cap.release()
    if not cap.open(path):
        raise CalibrationError(f"{path}: could not be reopened after counting its frames")
    return n


def _video_frames(path: Path, n: int, state: dict[str, Any]) -> Iterator[np.ndarray]:
    import cv2

    from anyedge.inputs import regular_file

    try:
        name = str(regular_file(path, "video file"))
    except AnyEdgeError as e:
        raise CalibrationError(f"calibration {e}") from None
    cap = cv2.VideoCapture(name)
    try:
        if not cap.isOpened():
            raise CalibrationError(f"calibration source {path} is not a readable video (nor a folder of images)")
        length = state["length"] = _video_length(cap, name)
        at = 0  # index of the frame the next read returns
        for pos in _positions(length, n):
            if 0 <= pos - at <= _SEEK_GAP:
                for _ in range(pos - at):
                    cap.grab()
            else:
                cap.set(cv2.CAP_PROP_POS_FRAMES, pos)
            ok, frame = cap.read()
            if not ok:
                state["ended"] = f"frame {pos} of the {length} the video declares could not be read"
                return
            at = pos + 1
            yield frame
    finally:
        cap.release()


def _live_frames(source: str, sampling: FrameSampling, state: dict[str, Any]) -> Iterator[np.ndarray]:
    from anyedge.errors import InputError
    from anyedge.live.sources import open_source

    try:
        src = open_source(source, timeout_s=sampling.timeout_s)
    except InputError as e:
        raise InputError(str(e).replace(source, public_name(source))) from None
    try:
        start = time.monotonic()
        due, read, given = 0.0, 0, 0
        while given < sampling.frames:
            frame = src.read()
            if frame is None:
                state["ended"] = src.ended
                return
            t = read / src.fps if src.fps else time.monotonic() - start
            read += 1
            if t + 1e-9 < due:
                continue
            while due <= t + 1e-9:
                due += sampling.every_s
            given += 1
            yield frame
    finally:
        src.close()


def sample_frames(source: str | int | os.PathLike[str], out: Path, sampling: FrameSampling | None = None,
                  show: bool = True) -> SampledFrames:
    """Sample frames from a video file or live source into ``out`` (PNG), near-duplicates dropped.

    Args:
        source: a video file, a camera index, ``"picamera"`` or a stream URL.
        out: folder to write the kept frames to (created).
        sampling: how many frames, how far apart, and the near-duplicate threshold.
        show: show progress on stderr.

    Raises:
        CalibrationError: not a readable video, or fewer than ``MIN_FRAMES`` distinct frames.
        InputError: a live source that cannot be opened.
    """
    import cv2

    sampling = sampling or FrameSampling()
    kind = source_kind(source)
    if kind == "folder":
        raise CalibrationError(f"{source} is a folder of images: it is used as it is, not sampled")
    name = public_name(source)
    state: dict[str, Any] = {"length": None, "ended": None}
    frames = (_video_frames(Path(source), sampling.frames, state) if kind == "video"
              else _live_frames(_text(source), sampling, state))
    out.mkdir(parents=True, exist_ok=True)
    kept: list[np.ndarray] = []
    files: list[Path] = []
    sampled = 0
    for frame in progress(frames, desc=f"sampling {kind} frames", total=sampling.frames, enabled=show):
        sampled += 1
        thumb = _thumb(frame)
        if kept and float(near_duplicate_distance(thumb, np.stack(kept)).min()) < sampling.min_change:
            continue
        f = out / f"frame-{len(files):05d}.png"
        if not cv2.imwrite(str(f), frame, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise CalibrationError(f"could not write the sampled frame {f}")
        kept.append(thumb)
        files.append(f)
    got = SampledFrames(kind, name, tuple(files), sampled, sampled - len(files), sampling, state["length"],
                        state["ended"])
    log.info("calibration %s", got.summary())
    if len(files) < MIN_FRAMES:
        why = f"; {state['ended']}" if state["ended"] else ""
        more = ("use a longer clip or one where the scene changes" if kind == "video"
                else "sample longer (--calib-frames, --calib-every) while the scene changes")
        raise CalibrationError(
            f"{kind} {name} gave {len(files)} distinct frame(s) ({sampled} sampled, {sampled - len(files)} dropped as "
            f"near-duplicates{why}); calibration needs at least {MIN_FRAMES} (two in three calibrate, every third "
            f"is held back): {more}, or lower --calib-dedup")
    return got
