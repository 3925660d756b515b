"""Live frames for the detectors: the Raspberry Pi camera through picamera2, else OpenCV.

picamera2 only imports on a Pi with the system libcamera (``apt install python3-picamera2``;
``pip install 'anyedge[camera]'`` inside a venv made with ``--system-site-packages``). Everything
else (USB webcams, Jetson CSI cameras exposed as V4L2, video files, RTSP URLs) goes through
``cv2.VideoCapture``. Frames are always BGR ``uint8`` ``(H, W, 3)``, as OpenCV delivers them.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np

from .errors import InputError

__all__ = ["frames"]

log = logging.getLogger(__name__)


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
