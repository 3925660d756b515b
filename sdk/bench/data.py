"""The inputs a benchmark runs on: a folder of photos, or a stand-in frame when there is none."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["IMAGE_SUFFIXES", "default_images", "list_images", "read_images", "synthetic_frame"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def default_images() -> Path | None:
    """``$ANYEDGE_DATA/widerface_val/images`` (or ``../shared/data/...``) when it exists."""
    env = os.environ.get("ANYEDGE_DATA")
    for root in ([Path(env)] if env else []) + [Path.cwd().parent / "shared" / "data"]:
        cand = root / "widerface_val" / "images"
        if cand.is_dir():
            return cand
    return None


def list_images(folder: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    """Image files in ``folder``, sorted by name, at most ``limit``.

    Raises:
        InputError: the folder does not exist or holds no images.
    """
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"--images {p}: not a folder")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--images {p}: no {'/'.join(sorted(IMAGE_SUFFIXES))} files in it")
    return files[:limit] if limit else files


def synthetic_frame(width: int = 640, height: int = 480) -> np.ndarray:
    """A deterministic textured BGR frame for timing when no photos are given (no faces in it)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([(x * 0.4) % 256, (y * 0.5) % 256, ((x + y) * 0.3) % 256], axis=2)
    return img.astype(np.uint8)


def read_images(folder: str | os.PathLike[str] | None, limit: int | None = None) -> list[np.ndarray]:
    """BGR frames from ``folder`` (all, or the first ``limit``); one synthetic frame when ``None``.

    Raises:
        InputError: the folder is missing, empty, or an image cannot be decoded.
    """
    if folder is None:
        return [synthetic_frame()]
    import cv2

    out = []
    for f in list_images(folder, limit):
        img = cv2.imdecode(np.fromfile(str(f), dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{f}: not a readable image")
        out.append(img)
    return out
