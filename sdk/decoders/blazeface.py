"""BlazeFace: SSD anchors with fixed unit size; offsets are in input pixels."""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np

from ..ops.anchors import ssd_anchors
from . import Decoded, require

__all__ = ["decode"]


@lru_cache(maxsize=8)
def _anchors(size: tuple[int, int], strides: tuple[int, ...], min_scale: float, max_scale: float,
             interp: float) -> np.ndarray:
    return ssd_anchors(size, strides, min_scale, max_scale, interp)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def decode(outputs: Mapping[str, np.ndarray], input_size: tuple[int, int], cfg: Mapping,
           score_threshold: float) -> Decoded:
    names = cfg.get("outputs", {"boxes": "regressors", "scores": "classificators"})
    raw = require(outputs, names["boxes"], "blazeface").reshape(-1, 16).astype(np.float32)
    logits = require(outputs, names["scores"], "blazeface").reshape(-1).astype(np.float32)
    w, h = input_size
    anchors = _anchors((w, h), tuple(cfg["strides"]), cfg["min_scale"], cfg["max_scale"],
                       cfg.get("interpolated_scale_aspect_ratio", 1.0))
    if len(anchors) != len(raw):
        from ..errors import ModelLoadError

        raise ModelLoadError(f"blazeface: {len(raw)} boxes but {len(anchors)} anchors for input {w}x{h}")
    scores = _sigmoid(np.clip(logits, -100.0, 100.0))
    keep = np.flatnonzero(scores >= score_threshold)
    r = raw[keep]
    a = anchors[keep]
    # anchor centres are normalised; offsets are in input pixels (x_scale = width etc.)
    cx = a[:, 0] * w + r[:, 0]
    cy = a[:, 1] * h + r[:, 1]
    bw, bh = r[:, 2], r[:, 3]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    k = int(cfg.get("keypoints", 6))
    kps = r[:, 4 : 4 + 2 * k].reshape(-1, k, 2) + (a * np.array([w, h], np.float32))[:, None, :]
    return boxes.astype(np.float32), scores[keep].astype(np.float32), kps.astype(np.float32)
