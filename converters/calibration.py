"""Calibration and held-back images: read a folder of real images, split it, preprocess it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from anyedge.errors import CalibrationError, InputError

__all__ = ["IMAGE_SUFFIXES", "list_images", "split_images", "read_bgr", "progress"]

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Sorted image files directly in ``folder``.

    Raises:
        CalibrationError: the folder does not exist or holds no images.
    """
    p = Path(folder)
    if not p.is_dir():
        raise CalibrationError(f"calibration folder {p} does not exist (pass --calib DIR with real images)")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"calibration folder {p} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def split_images(files: Sequence[Path], holdout_every: int = 3) -> tuple[list[Path], list[Path]]:
    """Deterministic split: every ``holdout_every``-th image is held back for the fidelity check.

    Returns:
        ``(calibration, held_back)``, disjoint. With fewer than 2 images both get the same one
        would be wrong, so that raises instead.
    """
    if len(files) < 2:
        raise CalibrationError(f"need at least 2 images to calibrate and check fidelity, got {len(files)}")
    held = [f for i, f in enumerate(files) if i % holdout_every == holdout_every - 1]
    calib = [f for i, f in enumerate(files) if i % holdout_every != holdout_every - 1]
    return calib, held or [calib.pop()]


def read_bgr(path: Path) -> np.ndarray:
    """A calibration image as BGR ``uint8`` (size checked from its header before decoding)."""
    from anyedge.ops.image import read_image

    try:
        return read_image(path)
    except InputError as e:
        raise CalibrationError(f"calibration image {e}") from None


def progress(items: Iterable[Any], desc: str, total: int | None = None, enabled: bool = True) -> Iterator[Any]:
    """tqdm when installed and wanted; otherwise log every tenth of the way."""
    if enabled:
        try:
            from tqdm import tqdm

            yield from tqdm(items, desc=desc, total=total, leave=False, unit="img")
            return
        except ImportError:
            pass
    n = total or 0
    step = max(1, n // 10)
    for i, x in enumerate(items):
        if n and i % step == 0:
            if enabled:  # no tqdm: a plain line on stderr every tenth of the way
                print(f"{desc}: {i}/{n}", file=sys.stderr, flush=True)
            else:
                log.info("%s: %d/%d", desc, i, n)
        yield x
    if enabled and n:
        print(f"{desc}: {n}/{n}", file=sys.stderr, flush=True)
