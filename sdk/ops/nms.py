"""One NMS for every model and engine, plus BlazeFace's weighted blending."""

from __future__ import annotations

import numpy as np

__all__ = ["box_area", "iou_matrix", "nms", "weighted_nms"]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(n, 4)`` xyxy boxes (zero for degenerate boxes)."""
    # np.maximum(x, 0) is np.clip(x, 0, None) without the wrapper's cost (per-frame decode path)
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(n, 4)`` and ``(m, 4)`` xyxy boxes, shape ``(n, m)``."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_det: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Returns:
        Indices of kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if max_det is not None and len(keep) >= max_det:
            break
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def weighted_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    keypoints: np.ndarray,
    iou_threshold: float,
    max_det: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BlazeFace's blending suppression: each kept face is the score-weighted mean of its cluster.

    Clusters are formed greedily around the highest remaining score; the cluster's score is
    that of its best member.
    """
    order = np.argsort(-scores, kind="stable")
    ob, os_, ok = [], [], []
    while order.size:
        ious = iou_matrix(boxes[order[:1]], boxes[order])[0]
        members = order[ious > iou_threshold]
        members = members if members.size else order[:1]
        w = scores[members][:, None]
        ob.append((boxes[members] * w).sum(0) / w.sum())
        ok.append((keypoints[members] * w[:, :, None]).sum(0) / w.sum())
        os_.append(scores[order[0]])
        # The head always leaves: a zero-area head has IoU 0 even with itself and would
        # otherwise stay first forever.
        order = order[1:][ious[1:] <= iou_threshold]
        if max_det is not None and len(ob) >= max_det:
            break
    k = keypoints.shape[1] if keypoints.ndim == 3 else 0
    if not ob:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, k, 2), np.float32)
    return (np.asarray(ob, np.float32), np.asarray(os_, np.float32), np.asarray(ok, np.float32))
