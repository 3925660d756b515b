"""Video clips for tests: real images held for a number of frames each, written as .mp4."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["make_clip", "read_frames"]


def _letterbox(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    canvas = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    canvas[y:y + nh, x:x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return canvas


def make_clip(images: Iterable[str | Path | np.ndarray], path: str | Path, fps: float = 10.0, hold: int = 1,
              size: tuple[int, int] = (1024, 768)) -> Path:
    """Write ``images`` (files or BGR / grey arrays) as an mp4v .mp4, each held for ``hold`` frames.

    Every image is letterboxed onto a ``size`` (width, height) black canvas. Consecutive frames
    of one image are near-duplicates (identical but for the codec's noise), so a clip of ``k``
    images has ``k * hold`` frames and ``k`` distinct scenes.

    Returns:
        ``path``.
    """
    import cv2

    if hold < 1:
        raise ValueError(f"hold must be >= 1, got {hold}")
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    n = 0
    try:
        for item in images:
            img = item if isinstance(item, np.ndarray) else cv2.imread(str(item), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"cannot read image {item}")
            frame = _letterbox(img, size)
            for _ in range(hold):
                writer.write(frame)
            n += 1
    finally:
        writer.release()
    if n == 0:
        path.unlink(missing_ok=True)
        raise ValueError("make_clip needs at least one image")
    return path


def read_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video file, decoded (BGR)."""
    import cv2

    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out
