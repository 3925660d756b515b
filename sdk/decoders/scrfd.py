"""SCRFD: distance-to-bbox regression from anchor points at strides 8/16/32.

Each feature-map cell at ``(x, y)`` has ``anchors_per_cell`` anchor points at
``(x * stride, y * stride)``; the box is ``(cx - l, cy - t, cx + r, cy + b)`` with the four
distances predicted in units of the stride, keypoints likewise as offsets.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..ops.anchors import grid_centers
from .base import Decoded, require

__all__ = ["decode"]


def decode(outputs: Mapping[str, np.ndarray], input_size: tuple[int, int], cfg: Mapping,
           score_threshold: float) -> Decoded:
    w, h = input_size
    per_cell = int(cfg.get("anchors_per_cell", 2))
    k = int(cfg.get("keypoints", 5))
    all_b, all_s, all_k = [], [], []
    for stride in cfg.get("strides", (8, 16, 32)):
        scores = require(outputs, f"score_{stride}", "scrfd").reshape(-1)
        dist = require(outputs, f"bbox_{stride}", "scrfd").reshape(-1, 4) * stride
        kps = require(outputs, f"kps_{stride}", "scrfd").reshape(-1, k, 2) * stride
        fh, fw = -(-h // stride), -(-w // stride)
        centers = grid_centers(fh, fw, stride, per_cell)
        keep = np.flatnonzero(scores >= score_threshold)
        c = centers[keep]
        d = dist[keep]
        all_b.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
        all_s.append(scores[keep])
        all_k.append(kps[keep] + c[:, None, :])
    return (np.concatenate(all_b).astype(np.float32), np.concatenate(all_s).astype(np.float32),
            np.concatenate(all_k).astype(np.float32))
