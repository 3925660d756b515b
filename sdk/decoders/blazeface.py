"""BlazeFace: SSD anchors with fixed unit size; offsets are in input pixels."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

from ..ops.anchors import ssd_anchors
from .base import Decoded, require

__all__ = ["decode", "prepare"]

try:  # compiled at install time; without it the numpy path below gives the same faces
    from ..ops import _decode as _kernel
except ImportError:  # pragma: no cover - depends on the build
    _kernel = None


@lru_cache(maxsize=8)
def _anchors(size: tuple[int, int], strides: tuple[int, ...], min_scale: float, max_scale: float,
             interp: float) -> tuple[np.ndarray, np.ndarray]:
    """The anchors, and their centres in input pixels (``anchors * (w, h)``, made once)."""
    anchors = ssd_anchors(size, strides, min_scale, max_scale, interp)
    centres = anchors * np.array(size, np.float32)
    anchors.flags.writeable = False
    centres.flags.writeable = False
    return anchors, centres


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 sigmoid of float32 logits, its ``exp`` taken in float64 and rounded to float32.

    That float is the same on every machine (numpy's float32 ``exp`` is its own SIMD code, off by
    an ulp or two in a third of the inputs), and it is what the compiled kernel and the C library
    (``targets/apps/c``) compute with libm's ``exp``: the three give the same scores, bit for bit.
    """
    e = np.exp(-np.abs(x).astype(np.float64)).astype(np.float32)
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


@lru_cache(maxsize=32)
def _logit_cut(score_threshold: float) -> float:
    """A logit below which no score can reach the threshold (with room for float32 rounding).

    Only anchors at or above it get a sigmoid; the exact ``score >= threshold`` test still
    decides, so the faces are the same as scoring every anchor.
    """
    if score_threshold <= 0.0:
        return -np.inf
    if score_threshold >= 1.0:
        return 15.0  # float32 sigmoid rounds to 1.0 from ~16.6 on
    return min(math.log(score_threshold / (1.0 - score_threshold)) - 0.5, 15.0)


def decode(outputs: Mapping[str, np.ndarray], input_size: tuple[int, int], cfg: Mapping,
           score_threshold: float) -> Decoded:
    names = cfg.get("outputs", {"boxes": "regressors", "scores": "classificators"})
    raw = np.asarray(require(outputs, names["boxes"], "blazeface"), np.float32).reshape(-1, 16)
    logits = np.asarray(require(outputs, names["scores"], "blazeface"), np.float32).reshape(-1)
    w, h = input_size
    anchors, centres = _anchors((w, h), tuple(cfg["strides"]), cfg["min_scale"], cfg["max_scale"],
                                cfg.get("interpolated_scale_aspect_ratio", 1.0))
    if len(anchors) != len(raw):
        from ..errors import ModelLoadError

        raise ModelLoadError(f"blazeface: {len(raw)} boxes but {len(anchors)} anchors for input {w}x{h}")
    cand = np.flatnonzero(logits >= _logit_cut(score_threshold))
    k = int(cfg.get("keypoints", 6))
    if cand.size == 0:  # most frames: no anchor near the cut, nothing to score
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, k, 2), np.float32)
    cand_scores = _sigmoid(np.minimum(np.maximum(logits[cand], -100.0), 100.0))  # np.clip, cheaper
    ok = cand_scores >= score_threshold
    keep, kept_scores = cand[ok], cand_scores[ok]
    if keep.size == 0:
        return np.zeros((0, 4), np.float32), kept_scores, np.zeros((0, k, 2), np.float32)
    r = raw[keep]
    # anchor centres are normalised; offsets are in input pixels (x_scale = width etc.)
    ctr = centres[keep]
    c = ctr + r[:, :2]
    half = r[:, 2:4] / 2
    boxes = np.concatenate([c - half, c + half], axis=1)
    kps = r[:, 4 : 4 + 2 * k].reshape(-1, k, 2) + ctr[:, None, :]
    return boxes, kept_scores, kps


def prepare(input_size: tuple[int, int], cfg: Mapping, score_threshold: float, iou_threshold: float,
            max_faces: int | None) -> Callable | None:
    """The whole post-processing of one detector in one compiled call per frame, or ``None``
    without the compiled kernels.

    The returned ``faces(outputs, letterbox)`` gives ``(boxes, scores, keypoints)`` in source
    pixels, suppressed by weighted blending and with empty boxes dropped (what :func:`decode`,
    :func:`anyedge.ops.nms.weighted_nms` and the letterbox mapping give), or ``None`` when no
    anchor reaches the threshold.
    """
    if _kernel is None:
        return None
    names = cfg.get("outputs", {"boxes": "regressors", "scores": "classificators"})
    boxes_name, scores_name = names["boxes"], names["scores"]
    w, h = input_size
    _, centres = _anchors((w, h), tuple(cfg["strides"]), cfg["min_scale"], cfg["max_scale"],
                          cfg.get("interpolated_scale_aspect_ratio", 1.0))
    cut, k, limit = _logit_cut(score_threshold), int(cfg.get("keypoints", 6)), int(max_faces or 0)
    run = _kernel.blazeface_faces

    def faces(outputs: Mapping[str, np.ndarray], lb) -> tuple | None:  # noqa: ANN001 - a Letterbox
        try:
            reg, cls = outputs[boxes_name], outputs[scores_name]
        except KeyError:  # say which outputs the model has
            reg, cls = require(outputs, boxes_name, "blazeface"), require(outputs, scores_name, "blazeface")
        try:  # the engines' float32 arrays, as they are
            return run(reg, cls, centres, cut, score_threshold, iou_threshold, limit, k,
                       lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y, lb.src_w, lb.src_h)
        except (ValueError, BufferError, TypeError):
            pass
        try:  # another dtype or layout (outputs made elsewhere): taken as numpy's decode takes them
            reg, cls = np.ascontiguousarray(reg, np.float32), np.ascontiguousarray(cls, np.float32)
            return run(reg, cls, centres, cut, score_threshold, iou_threshold, limit, k,
                       lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y, lb.src_w, lb.src_h)
        except (ValueError, BufferError, TypeError) as e:
            from ..errors import ModelLoadError

            raise ModelLoadError(f"{e} (input {w}x{h})") from None

    return faces
