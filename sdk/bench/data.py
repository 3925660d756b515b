"""The inputs a benchmark runs on: a folder of photos, or a stand-in frame when there is none."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..ops.image import read_image
from ..paths import data_path

__all__ = ["IMAGE_SUFFIXES", "default_images", "default_face_photos", "list_images", "read_images",
           "synthetic_frame", "face_crops"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def default_images() -> Path | None:
    """``$ANYEDGE_DATA/widerface_val/images`` when it exists."""
    found = data_path("widerface_val", "images")
    return found if found is not None and found.is_dir() else None


def default_face_photos() -> Path | None:
    """``$ANYEDGE_DATA/faces/identities`` (portraits, one face each) when it exists."""
    found = data_path("faces", "identities")
    return found if found is not None and found.is_dir() else None


def face_crops(folder: str | os.PathLike[str], geometry: object, limit: int | None = None,
               detector: str = "scrfd-500m") -> np.ndarray:
    """Aligned BGR crops ``(n, h, w, 3)`` of the largest face of every photo under ``folder``
    (sub-folders included), found by ``detector`` and aligned to ``geometry`` (a
    :class:`~anyedge.ops.align.CropGeometry`); photos without a face are skipped.

    Raises:
        InputError: the folder holds no photos, or no face was found in any.
    """
    from ..ops.align import align_faces
    from ..tasks.face_detector import FaceDetector

    p = Path(folder)
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else []
    if not files:
        raise InputError(f"{p}: no photos to take face crops from")
    crops = []
    with FaceDetector.create(detector, channels="BGR", threads=1) as det:
        for f in files[:limit] if limit else files:
            try:
                img = read_image(f)
            except InputError:
                continue
            faces = det.detect(img)
            if len(faces):
                b = faces.boxes
                big = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
                crops.append(align_faces(img, faces.keypoints[big : big + 1], geometry)[0])
    if not crops:
        raise InputError(f"{p}: {detector} found no face in {len(files)} photos")
    return np.stack(crops)


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
    return [read_image(f) for f in list_images(folder, limit)]
