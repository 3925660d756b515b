"""Live streams: a capture thread feeds a tiny queue that drops stale frames, so latency stays flat.

    src = open_source("0")                         # camera index, file, URL or "picamera"
    summary = run_live(src, det.detect, on_frame=print)

When inference is slower than the camera, a frame that waits in the queue while a newer one
arrives is dropped (and counted) instead of queued: the detector always works on the newest
frame, and the capture-to-result latency is one inference plus at most one frame interval,
however long the stream runs. A video file is paced at its own frame rate so it behaves like a
camera (``every_frame=True`` processes every frame instead, dropping none).

``anyedge run`` (:func:`add_parsers`) is the command-line face of this module.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import math
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cli_args import positive_float, positive_int, size_arg, unit_float
from .errors import InputError

__all__ = ["FrameSource", "open_source", "DropQueue", "LiveSummary", "run_live", "add_parsers"]

log = logging.getLogger(__name__)


# -- sources --------------------------------------------------------------------------------
class FrameSource:
    """Frames from one source. ``fps`` is the source's nominal rate (``None`` when unknown)."""

    name: str = ""
    fps: float | None = None
    is_file: bool = False
    ended: str = "end of source"  # why read() returned None: "end of source", or that the source stalled

    def read(self) -> np.ndarray | None:
        """The next BGR ``(H, W, 3)`` uint8 frame, or ``None`` when the source has ended."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class _CvSource(FrameSource):
    def __init__(self, cap: Any, name: str, is_file: bool) -> None:
        import cv2

        self._cap = cap
        self.name = name
        self.is_file = is_file
        self._frames = 0
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else None

    def read(self) -> np.ndarray | None:
        import cv2

        ok, frame = self._cap.read()
        if ok:
            self._frames += 1
            return frame
        if not self.is_file:  # a camera or stream that stops sending did not end: it stalled
            total = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
            declared = total > 0 and math.isfinite(total)
            if not (declared and self._frames >= total):
                self.ended = (f"stalled: no frame came after frame {self._frames}"
                              + (f" of the {int(total)} the stream declares" if declared else ""))
        return None

    def close(self) -> None:
        self._cap.release()


class _PiCameraSource(FrameSource):
    def __init__(self, size: tuple[int, int]) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise InputError("the Pi camera needs picamera2 (apt install python3-picamera2 on Raspberry Pi OS, "
                             "in a venv made with --system-site-packages); use a camera index for USB/V4L2 "
                             "cameras") from None
        self.name = "picamera"
        try:
            self._cam = Picamera2()
            # libcamera's "RGB888" is laid out B, G, R in memory: already OpenCV's BGR
            self._cam.configure(self._cam.create_video_configuration(main={"format": "RGB888", "size": size}))
            self._cam.start()
        except Exception as e:  # noqa: BLE001 - libcamera raises assorted types
            raise InputError(f"the Pi camera could not be started: {e}") from None
        self.fps = None

    def read(self) -> np.ndarray | None:
        return np.ascontiguousarray(self._cam.capture_array()[:, :, :3])

    def close(self) -> None:
        self._cam.stop()
        self._cam.close()


_MAX_CAMERA_INDEX = 1023  # OpenCV reads larger numbers as a back-end choice plus an index


def _is_url(source: str) -> bool:
    return "://" in source


def _open_cv(source: str, size: tuple[int, int], timeout_s: float) -> FrameSource:
    import cv2

    if source.isdigit():
        index = int(source)
        if index > _MAX_CAMERA_INDEX:
            raise InputError(f"camera index {source} cannot exist (expected 0-{_MAX_CAMERA_INDEX}, e.g. 0 for "
                             "/dev/video0); give a camera index, a video file, a stream URL or 'picamera'")
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            here = sorted(str(p) for p in Path("/dev").glob("video*")) if sys.platform.startswith("linux") else []
            seen = f"video devices here: {', '.join(here)}" if here else "no /dev/video* device exists here"
            raise InputError(f"camera {index} could not be opened ({seen}); give another index, a video file, "
                             "a stream URL or 'picamera'")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # drivers that honour it keep no backlog of their own
        return _CvSource(cap, f"camera {index}", is_file=False)
    if _is_url(source):
        ms = int(timeout_s * 1000)
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if not cap.isOpened():
            cap.release()
            raise InputError(f"stream {source} did not answer within {timeout_s:g} s or is not a video stream")
        return _CvSource(cap, source, is_file=False)
    path = Path(source)
    if not path.exists():
        raise InputError(f"source {source!r}: no such file; expected a video file, a camera index (0), "
                         "a stream URL (rtsp://, http://) or 'picamera'")
    from .inputs import regular_file

    cap = cv2.VideoCapture(str(regular_file(path, "video file")))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"{path}: not a readable video")
    return _CvSource(cap, str(path), is_file=True)


def open_source(source: str | int, *, size: tuple[int, int] = (640, 480), timeout_s: float = 10.0) -> FrameSource:
    """Open a camera index, ``"picamera"``, a video file or a stream URL.

    Opening runs in a helper thread and gives up after ``timeout_s`` seconds, so a stream that
    never answers is an error rather than a hang.

    Args:
        source: ``0`` (or ``"0"``), ``"picamera"``, a file path, or a URL (``rtsp://``, ``http://``).
        size: requested ``(width, height)`` for cameras.
        timeout_s: how long to wait for the source to open.

    Raises:
        InputError: the source does not exist, cannot be opened, or did not answer in time.
    """
    source = str(source)
    if source == "picamera":
        return _PiCameraSource(size)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["src"] = _open_cv(source, size, timeout_s)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            box["err"] = e

    with _CapturedStderr(enabled=not log.isEnabledFor(logging.INFO)) as noise:
        t = threading.Thread(target=target, name="anyedge-open", daemon=True)
        t.start()
        t.join(timeout_s + 5.0)  # FFmpeg gives up after timeout_s itself; this catches back ends that hang
    if t.is_alive():
        raise InputError(f"source {source} did not answer within {timeout_s:g} s")
    if "err" in box:
        err = box["err"]
        why = noise.last_line()
        if isinstance(err, InputError) and why:
            raise InputError(f"{err} ({why})") from None
        raise err
    return box["src"]


class _CapturedStderr:
    """Holds what C libraries (OpenCV's V4L2/FFmpeg back ends) print on fd 2 while a source opens.

    Their warnings are not failures; when opening does fail, the last line (e.g. FFmpeg's
    "Connection refused") is added to anyedge's one-line error. ``-v`` lets them through.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.text = ""

    def __enter__(self) -> "_CapturedStderr":
        if self.enabled:
            import tempfile

            sys.stderr.flush()
            self._file = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._file.seek(0)
            self.text = self._file.read().decode(errors="replace")
            self._file.close()

    def last_line(self) -> str:
        for line in reversed(self.text.splitlines()):
            line = line.strip()
            if line and "WARN" not in line and "libavdevice" not in line and "Immediate exit" not in line:
                return line.split("] ", 1)[-1] if line.startswith("[") else line
        return ""


# -- the queue ------------------------------------------------------------------------------
class DropQueue:
    """A bounded queue whose :meth:`put` drops the oldest item when full (counted in ``dropped``).

    With ``block=True`` a full queue makes :meth:`put` wait instead (every item is kept).
    """

    def __init__(self, size: int = 1) -> None:
        if size < 1:
            raise InputError(f"queue size must be at least 1, got {size}")
        self.size = size
        self.dropped = 0
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any, *, block: bool = False, stop: threading.Event | None = None) -> None:
        with self._cond:
            while block and len(self._items) >= self.size and not self._closed:
                if stop is not None and stop.is_set():
                    return
                self._cond.wait(0.1)
            if len(self._items) >= self.size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float) -> Any:
        """The oldest item; ``None`` on timeout or when closed and empty."""
        with self._cond:
            end = time.monotonic() + timeout
            while not self._items and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed_and_empty(self) -> bool:
        with self._cond:
            return self._closed and not self._items


# -- the loop -------------------------------------------------------------------------------
@dataclass
class LiveSummary:
    """What a live run did. Latencies are capture-to-result, in milliseconds."""

    source: str
    captured: int = 0
    processed: int = 0
    dropped: int = 0
    seconds: float = 0.0
    stopped_by: str = "end of source"
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    infer_ms: list[float] = field(default_factory=list, repr=False)
    source_fps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        half = len(self.latencies_ms) // 2

        def med(v: list[float]) -> float | None:
            return round(statistics.median(v), 2) if v else None

        return {
            "type": "summary", "source": self.source, "source_fps": self.source_fps,
            "captured": self.captured, "processed": self.processed, "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.processed / self.seconds, 2) if self.seconds > 0 else None,
            "latency_ms": {"median": med(lat), "p90": round(lat[int(0.9 * (len(lat) - 1))], 2) if lat else None,
                           "max": round(lat[-1], 2) if lat else None,
                           "first_half_median": med(self.latencies_ms[:half]),
                           "second_half_median": med(self.latencies_ms[half:])},
            "infer_ms_median": med(self.infer_ms),
            "stopped_by": self.stopped_by,
        }


def run_live(
    source: FrameSource,
    process: Callable[[np.ndarray], Any],
    *,
    queue_size: int = 1,
    every_frame: bool = False,
    pace: bool | None = None,
    max_frames: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[int, np.ndarray, Any, float, float], None] | None = None,
    on_second: Callable[[dict[str, Any]], None] | None = None,
) -> LiveSummary:
    """Run ``process`` on the newest frame of ``source`` until it ends or ``stop`` is set.

    Args:
        source: from :func:`open_source`.
        process: called on each processed frame (e.g. ``detector.detect``); its result is passed on.
        queue_size: frames held between capture and processing (1 or 2); older ones are dropped.
        every_frame: never drop: the capture waits for processing (offline use of a file).
        pace: read a file at its own frame rate, like a camera (default: True for files unless
            ``every_frame``).
        max_frames: stop after this many processed frames.
        duration_s: stop after this many seconds.
        stop: set it (e.g. from a signal handler) to stop cleanly.
        on_frame: ``(index, frame, result, latency_ms, infer_ms)`` after each processed frame;
            ``index`` is the frame's capture number.
        on_second: a stats dict (``fps``, ``latency_ms``, ``dropped``...) about once a second.

    Returns:
        The run's :class:`LiveSummary`.
    """
    stop = stop or threading.Event()
    pace = (source.is_file and not every_frame) if pace is None else pace
    queue = DropQueue(queue_size)
    summary = LiveSummary(source=source.name, source_fps=source.fps)
    errors: list[BaseException] = []

    def capture() -> None:
        period = 1.0 / (source.fps or 30.0)
        t0 = time.monotonic()
        i = 0
        try:
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    break
                if pace:
                    wait = t0 + i * period - time.monotonic()
                    if wait > 0:
                        stop.wait(wait)
                summary.captured = i + 1
                queue.put((i, time.monotonic(), frame), block=every_frame, stop=stop)
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            queue.close()

    thread = threading.Thread(target=capture, name="anyedge-capture", daemon=True)
    t_start = time.monotonic()
    thread.start()
    window_t, window_lat, window_n, window_dropped = t_start, [], 0, 0
    try:
        while True:
            if stop.is_set():
                summary.stopped_by = "signal"
                break
            if duration_s is not None and time.monotonic() - t_start >= duration_s:
                summary.stopped_by = "duration"
                break
            item = queue.get(timeout=0.1)
            if item is None:
                if queue.closed_and_empty:
                    summary.stopped_by = source.ended
                    break
                continue
            index, captured_at, frame = item
            t = time.monotonic()
            result = process(frame)
            done = time.monotonic()
            latency, infer = (done - captured_at) * 1e3, (done - t) * 1e3
            summary.processed += 1
            summary.latencies_ms.append(latency)
            summary.infer_ms.append(infer)
            window_lat.append(latency)
            window_n += 1
            if on_frame is not None:
                on_frame(index, frame, result, latency, infer)
            if max_frames is not None and summary.processed >= max_frames:
                summary.stopped_by = "frames"
                break
            if on_second is not None and done - window_t >= 1.0:
                on_second({"type": "stats", "t": round(done - t_start, 3),
                           "fps": round(window_n / (done - window_t), 2),
                           "latency_ms": round(statistics.fmean(window_lat), 2),
                           "latency_max_ms": round(max(window_lat), 2),
                           "dropped": queue.dropped, "dropped_last_second": queue.dropped - window_dropped,
                           "processed": summary.processed})
                window_t, window_lat, window_n, window_dropped = done, [], 0, queue.dropped
    finally:
        stop.set()
        thread.join(timeout=2.0)
        summary.seconds = time.monotonic() - t_start
        summary.dropped = queue.dropped
        source.close()
    if errors and not isinstance(errors[0], (KeyboardInterrupt, SystemExit)):
        raise InputError(f"{source.name}: reading frames failed: {errors[0]}")
    return summary


# -- anyedge run ----------------------------------------------------------------------------
def _gallery_labeller(gallery: str, args: argparse.Namespace) -> Callable[[np.ndarray, Any], list[str]]:
    """Names for the detected faces of a frame, from face recognition's gallery."""
    from .recognition.pipeline import live_labeller

    if not Path(gallery).exists():
        raise InputError(f"--gallery {gallery}: no such gallery")
    return live_labeller(gallery, detector_model=args.model)  # type: ignore[return-value]



def _status_line(stats: dict[str, Any]) -> str:
    return (f"{stats['fps']:6.1f} fps | latency {stats['latency_ms']:7.1f} ms (max {stats['latency_max_ms']:.0f}) "
            f"| dropped {stats['dropped']} | processed {stats['processed']}")


def _cmd_run(args: argparse.Namespace) -> int:
    from .ops.draw import draw_faces
    from .tasks.face_detector import FaceDetector
    from .outputs import output_file
    from .video import AtomicVideoWriter

    if args.queue not in (1, 2):
        raise InputError(f"--queue must be 1 or 2, got {args.queue}")
    writer = AtomicVideoWriter(args.out, 25.0) if args.out else None  # validates the name up front
    out_folder = output_file(writer.path, inputs=[args.source])[0] if writer is not None else None
    labeller = _gallery_labeller(args.gallery, args) if args.gallery else None
    opts: dict[str, Any] = {"channels": "BGR", "threads": args.threads}
    if args.score is not None:
        opts["score_threshold"] = args.score
    stop = threading.Event()
    tty = sys.stderr.isatty()
    with FaceDetector.create(args.model, engine=args.engine, **opts) as det:
        src = open_source(args.source, size=args.size, timeout_s=args.timeout)
        if writer is not None and src.fps:
            writer.fps = src.fps

        def on_frame(index: int, frame: np.ndarray, faces: Any, latency: float, infer: float) -> None:
            names = labeller(frame, faces) if labeller is not None else None
            if args.json:
                rec = {"type": "frame", "frame": index, "latency_ms": round(latency, 2), "infer_ms": round(infer, 2),
                       "faces": faces.to_list()}
                if names is not None:
                    rec["names"] = list(names)
                print(json.dumps(rec), flush=True)
            if writer is not None:
                writer.write(draw_faces(frame, faces))

        def on_second(stats: dict[str, Any]) -> None:
            if args.json:
                print(json.dumps(stats), flush=True)
            elif tty:
                print("\r" + _status_line(stats), end="", file=sys.stderr, flush=True)
            else:
                print(_status_line(stats), file=sys.stderr, flush=True)

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            summary = run_live(src, det.detect, queue_size=args.queue, every_frame=args.every_frame,
                               max_frames=args.frames, duration_s=args.duration, stop=stop,
                               on_frame=on_frame, on_second=on_second)
            if summary.captured == 0 and summary.stopped_by not in ("signal", "duration"):
                why = "" if summary.stopped_by == "end of source" else f" ({summary.stopped_by})"
                raise InputError(f"{src.name}: no frame could be read{why}; expected a video file, camera or "
                                 "stream that delivers frames")
            if writer is not None and out_folder is not None and writer.frames:
                out_folder.record(writer.commit())
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            if writer is not None:
                writer.discard()
    doc = summary.to_dict()
    if writer is not None and writer.frames:
        doc["out"] = str(writer.path)
    if args.json:
        print(json.dumps(doc), flush=True)
    else:
        if tty:
            print(file=sys.stderr)
        lat = doc["latency_ms"]
        print(f"{doc['source']}: {doc['processed']} frames processed of {doc['captured']} captured, "
              f"{doc['dropped']} dropped, {doc['fps']} fps over {doc['seconds']} s ({doc['stopped_by']}); "
              f"latency median {lat['median']} ms, p90 {lat['p90']} ms, max {lat['max']} ms; "
              f"inference median {doc['infer_ms_median']} ms" + (f"; wrote {doc['out']}" if "out" in doc else ""))
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``anyedge run`` to the main parser's subcommands."""
    from .signing_cli import add_trust_argument

    p = sub.add_parser(
        "run", help="detect faces on a live stream (camera, file, URL, picamera) dropping stale frames",
        description="Detect faces on a live stream. A capture thread keeps only the newest 1-2 frames, so "
                    "when inference is slower than the source, stale frames are dropped and latency stays "
                    "flat. Prints per-second FPS, latency and dropped frames; Ctrl-C or SIGTERM stops "
                    "cleanly with a summary (exit 0).",
        epilog="examples:\n  anyedge run --source 0 --model blazeface-short\n"
               "  anyedge run --source clip.mp4 --model scrfd-500m --out annotated.mp4 --json\n"
               "  anyedge run --source rtsp://camera.local/stream --model yunet --duration 60\n"
               "  anyedge run --source picamera --model blazeface-short --threads 4")
    p.add_argument("--source", required=True,
                   help="camera index (0), video file, stream URL (rtsp://, http://) or 'picamera' (required)")
    p.add_argument("--model", default="blazeface-short",
                   help="any face detector: registry name, bundle or model file (default: %(default)s)")
    p.add_argument("--engine", default=None, help="engine to run it on (default: the model's own)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for the engine (default: the engine's)")
    p.add_argument("--score", type=unit_float, default=None, help="score threshold in [0, 1] (default: the model's)")
    p.add_argument("--out", default=None,
                   help="write the processed frames, annotated, to this video file (.mp4/.avi; never the source "
                        "or a file anyedge did not write; default: none)")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: one per frame, a stats line per second, a summary at the end "
                        "(default: a live status line on stderr and a summary on stdout)")
    p.add_argument("--gallery", default=None,
                   help="face gallery for names on the faces (anyedge gallery enroll fills one; default: none)")
    p.add_argument("--queue", type=int, default=1, help="frames held between capture and inference, 1 or 2 "
                                                        "(default: %(default)s)")
    p.add_argument("--every-frame", action="store_true",
                   help="process every frame of a file, dropping none (default: files are paced at their "
                        "frame rate like a camera)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="stop after N processed frames (default: no limit)")
    p.add_argument("--duration", type=positive_float, default=None, help="stop after S seconds (default: no limit)")
    p.add_argument("--size", type=size_arg, default=(640, 480),
                   help="camera capture WIDTHxHEIGHT (default: 640x480)")
    p.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds to wait for a source to open (default: %(default)s)")
    add_trust_argument(p)
    p.set_defaults(func=_cmd_run)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
