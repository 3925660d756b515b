"""YuNet (libfacedetection, 2023): anchor-free, per-cell offsets and log sizes at strides 8/16/32."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..ops.anchors import grid_centers
from .base import Decoded, require

__all__ = ["decode"]


def decode(outputs: Mapping[str, np.ndarray], input_size: tuple[int, int], cfg: Mapping,
           score_threshold: float) -> Decoded:
    w, h = input_size
    k = int(cfg.get("keypoints", 5))
    all_b, all_s, all_k = [], [], []
    for stride in cfg.get("strides", (8, 16, 32)):
        cls = np.clip(require(outputs, f"cls_{stride}", "yunet").reshape(-1), 0, 1)
        obj = np.clip(require(outputs, f"obj_{stride}", "yunet").reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        bbox = require(outputs, f"bbox_{stride}", "yunet").reshape(-1, 4)[keep]
        kps = require(outputs, f"kps_{stride}", "yunet").reshape(-1, k, 2)[keep]
        cells = grid_centers(-(-h // stride), -(-w // stride), 1)[keep]  # (col, row)
        cxy = (cells + bbox[:, :2]) * stride
        wh = np.exp(bbox[:, 2:]) * stride
        all_b.append(np.concatenate([cxy - wh / 2, cxy + wh / 2], axis=1))
        all_s.append(score[keep])
        all_k.append((kps + cells[:, None, :]) * stride)
    return (np.concatenate(all_b).astype(np.float32), np.concatenate(all_s).astype(np.float32),
            np.concatenate(all_k).astype(np.float32))
