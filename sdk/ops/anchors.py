"""Anchor and prior generators for the detector families."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["ssd_anchors", "grid_centers", "retinaface_priors"]


def ssd_anchors(
    input_size: tuple[int, int],
    strides: Sequence[int],
    min_scale: float,
    max_scale: float,
    interpolated_scale_aspect_ratio: float = 1.0,
    aspect_ratios: Sequence[float] = (1.0,),
    offset: float = 0.5,
) -> np.ndarray:
    """SSD anchors as the BlazeFace paper and MediaPipe generate them, fixed anchor size.

    Consecutive layers with the same stride share one feature map; each layer adds one
    anchor per aspect ratio, plus one interpolated-scale anchor when that ratio is > 0.
    Because BlazeFace uses fixed-size anchors only the centres matter.

    Returns:
        ``(num_anchors, 2)`` anchor centres ``(x, y)`` in [0, 1].
    """
    w, h = input_size
    out: list[np.ndarray] = []
    n = len(strides)
    layer = 0
    while layer < n:
        count = 0
        last = layer
        while last < n and strides[last] == strides[layer]:
            count += len(aspect_ratios)
            if interpolated_scale_aspect_ratio > 0:
                count += 1
            last += 1
        stride = strides[layer]
        fh, fw = math.ceil(h / stride), math.ceil(w / stride)
        ys, xs = np.meshgrid((np.arange(fh) + offset) / fh, (np.arange(fw) + offset) / fw, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, count, axis=0))
        layer = last
    del min_scale, max_scale  # only used for anchor sizes, which are fixed to 1 here
    return np.concatenate(out).astype(np.float32)


def grid_centers(height: int, width: int, stride: int, per_cell: int = 1, offset: float = 0.0) -> np.ndarray:
    """Top-left (``offset=0``) or centre (``offset=0.5``) points of a stride grid, in pixels.

    Returns:
        ``(height * width * per_cell, 2)`` ``(x, y)``, row-major, each cell repeated ``per_cell`` times.
    """
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pts = (np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32) + offset) * stride
    return np.repeat(pts, per_cell, axis=0) if per_cell > 1 else pts


def retinaface_priors(
    input_size: tuple[int, int], min_sizes: Sequence[Sequence[int]], strides: Sequence[int]
) -> np.ndarray:
    """RetinaFace priors ``(cx, cy, w, h)`` normalised to the input size."""
    w, h = input_size
    out = []
    for sizes, step in zip(min_sizes, strides):
        fh, fw = math.ceil(h / step), math.ceil(w / step)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = ((xs.ravel() + 0.5) * step / w)[:, None]
        cy = ((ys.ravel() + 0.5) * step / h)[:, None]
        per = [np.concatenate([cx, cy, np.full_like(cx, s / w), np.full_like(cy, s / h)], 1) for s in sizes]
        out.append(np.stack(per, axis=1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)
