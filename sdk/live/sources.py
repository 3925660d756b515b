"""Capture: frames from a camera index, the Pi camera, a video file or a stream URL.

:func:`open_source` opens any of them as a :class:`FrameSource` (``read()`` -> the next BGR
frame, ``close()``), with one-line errors for missing cameras and silent URLs, for
:func:`anyedge.live.run_live`. :func:`frames` is the plain generator for a script that wants
every frame and no scheduling.

picamera2 only imports on a Pi with the system libcamera (``apt install python3-picamera2``;
``pip install 'anyedge[camera]'`` inside a venv made with ``--system-site-packages``). Everything
else (USB webcams, Jetson CSI cameras exposed as V4L2, video files, RTSP URLs) goes through
``cv2.VideoCapture``. Frames are always BGR ``uint8`` ``(H, W, 3)``, as OpenCV delivers them.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputError

__all__ = ["FrameSource", "open_source", "frames"]

log = logging.getLogger(__name__)


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
    from ..inputs import regular_file

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


# -- a plain generator ----------------------------------------------------------------------
def _picamera_frames(size: tuple[int, int], limit: int | None) -> Iterator[np.ndarray]:
    from picamera2 import Picamera2  # type: ignore[import-not-found]

    cam = Picamera2()
    # libcamera's "RGB888" is laid out B, G, R in memory: already OpenCV's BGR
    cam.configure(cam.create_preview_configuration(main={"format": "RGB888", "size": size}))
    cam.start()
    try:
        n = 0
        while limit is None or n < limit:
            yield np.ascontiguousarray(cam.capture_array()[:, :, :3])
            n += 1
    finally:
        cam.stop()
        cam.close()


def frames(source: int | str = 0, *, size: tuple[int, int] = (640, 480),
           limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield BGR frames from a camera index, ``"picamera"``, a video file or a stream URL.

    Args:
        source: camera index (``0``), ``"picamera"`` for the Pi camera, or a path/URL.
        size: requested ``(width, height)`` for cameras.
        limit: stop after this many frames (``None``: until the source ends).

    Raises:
        InputError: the source cannot be opened.
    """
    if source == "picamera":
        try:
            yield from _picamera_frames(size, limit)
            return
        except ImportError as e:
            raise InputError("the Pi camera needs picamera2 (apt install python3-picamera2 on "
                             "Raspberry Pi OS); use a camera index for USB/V4L2 cameras") from e
    import cv2

    cap = cv2.VideoCapture(int(source) if isinstance(source, int) or str(source).isdigit() else str(source))
    if not cap.isOpened():
        raise InputError(f"camera/video source {source!r} could not be opened")
    if isinstance(source, int) or str(source).isdigit():
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    try:
        n = 0
        while limit is None or n < limit:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame
            n += 1
    finally:
        cap.release()
