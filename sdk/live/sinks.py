"""Writing annotated video files atomically (temp file, then rename).

OpenCV picks a container from the file name's suffix, so the temporary file keeps the final
suffix (``.clip.annotated.1234.part.mp4``); a writer that cannot open is an error at once rather
than a silently empty file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["AtomicVideoWriter"]

_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class AtomicVideoWriter:
    """Frames go to a hidden temporary file beside ``path``; :meth:`commit` renames it into place.

    The writer opens on the first frame (its size sets the video's). :meth:`discard` removes the
    temporary file unless :meth:`commit` already ran, so a failure leaves nothing half-written.

    Args:
        path: final file (``.mp4``, ``.avi``, ``.mkv``, ``.mov``).
        fps: frames per second recorded in the file.

    Raises:
        InputError: unsupported suffix.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise InputError(f"video output {self.path}: expected one of {', '.join(sorted(_FOURCC))}, "
                             f"got {suffix or 'no suffix'}")
        if self.path.is_dir():
            raise InputError(f"video output {self.path} is a directory; expected a file name")
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.part{suffix}")
        self.frames = 0
        self._writer: Any = None
        self._done = False

    def write(self, bgr: Any) -> None:
        """Append one BGR ``(H, W, 3)`` uint8 frame."""
        import cv2

        if self._writer is None:
            h, w = bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()]),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                self.tmp.unlink(missing_ok=True)
                raise InputError(f"OpenCV cannot write {self.path.suffix} video here "
                                 f"({_FOURCC[self.path.suffix.lower()]} codec unavailable); try an .avi --out")
        self._writer.write(bgr)
        self.frames += 1

    def commit(self) -> Path:
        """Close the file and rename it to :attr:`path`; returns the path."""
        if self._writer is None:
            raise InputError(f"no frames were written to {self.path}")
        self._writer.release()
        self._writer = None
        os.replace(self.tmp, self.path)
        self._done = True
        return self.path

    def discard(self) -> None:
        """Drop the temporary file (no-op after :meth:`commit`)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if not self._done:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicVideoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
