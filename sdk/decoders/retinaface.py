"""RetinaFace (MobileNet-0.25): SSD priors with variance-encoded box and landmark offsets."""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np

from ..ops.anchors import retinaface_priors
from .base import Decoded, require

__all__ = ["decode"]


@lru_cache(maxsize=8)
def _priors(size: tuple[int, int], min_sizes: tuple[tuple[int, ...], ...], strides: tuple[int, ...]) -> np.ndarray:
    return retinaface_priors(size, min_sizes, strides)


def decode(outputs: Mapping[str, np.ndarray], input_size: tuple[int, int], cfg: Mapping,
           score_threshold: float) -> Decoded:
    w, h = input_size
    loc = require(outputs, "loc", "retinaface").reshape(-1, 4)
    conf = require(outputs, "conf", "retinaface").reshape(-1, 2)
    lm = require(outputs, "iou", "retinaface").reshape(-1, 5, 2)
    priors = _priors((w, h), tuple(tuple(m) for m in cfg["min_sizes"]), tuple(cfg["strides"]))
    v0, v1 = cfg.get("variance", (0.1, 0.2))
    scores = conf[:, 1]  # the exported graph ends in a softmax over (background, face)
    keep = np.flatnonzero(scores >= score_threshold)
    p, l_, m = priors[keep], loc[keep], lm[keep]
    cxy = p[:, :2] + l_[:, :2] * v0 * p[:, 2:]
    wh = p[:, 2:] * np.exp(l_[:, 2:] * v1)
    scale = np.array([w, h], np.float32)
    boxes = np.concatenate([(cxy - wh / 2) * scale, (cxy + wh / 2) * scale], axis=1)
    kps = (p[:, None, :2] + m * v0 * p[:, None, 2:]) * scale
    return boxes.astype(np.float32), scores[keep].astype(np.float32), kps.astype(np.float32)
