"""UltraFace: the exported graph already decodes its priors; boxes are normalised xyxy."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .base import Decoded, require

__all__ = ["decode"]


def decode(outputs: Mapping[str, np.ndarray], input_size: tuple[int, int], cfg: Mapping,
           score_threshold: float) -> Decoded:
    w, h = input_size
    scores = require(outputs, "scores", "ultraface").reshape(-1, 2)[:, 1]
    boxes = require(outputs, "boxes", "ultraface").reshape(-1, 4)
    keep = np.flatnonzero(scores >= score_threshold)
    b = boxes[keep] * np.array([w, h, w, h], np.float32)
    return b.astype(np.float32), scores[keep].astype(np.float32), np.zeros((len(keep), 0, 2), np.float32)
