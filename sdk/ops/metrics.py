"""Box matching and agreement metrics shared by tests, benchmarks and fidelity checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nms import iou_matrix

__all__ = ["match_boxes", "Agreement", "detection_agreement"]


def match_boxes(a: np.ndarray, b: np.ndarray, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU, best pairs first.

    Returns:
        ``(index_in_a, index_in_b, iou)`` for every pair with IoU >= ``iou_threshold``.
    """
    if len(a) == 0 or len(b) == 0:
        return []
    ious = iou_matrix(a, b)
    pairs = []
    used_a, used_b = set(), set()
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        i, j = divmod(int(flat), ious.shape[1])
        v = float(ious[i, j])
        if v < iou_threshold:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j, v))
    return pairs


@dataclass(frozen=True)
class Agreement:
    """How well detections ``b`` reproduce reference detections ``a`` over many images."""

    reference_faces: int
    candidate_faces: int
    matched: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    mean_score_drift: float

    def to_dict(self) -> dict[str, float | int]:
        return dict(vars(self))


def detection_agreement(
    pairs_of_results: list[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
    iou_threshold: float = 0.5,
) -> Agreement:
    """F1 / mean IoU / mean |score difference| of candidate vs reference detections.

    Args:
        pairs_of_results: per image, ``((ref_boxes, ref_scores), (cand_boxes, cand_scores))``.
    """
    n_ref = n_cand = n_match = 0
    ious: list[float] = []
    drift: list[float] = []
    for (rb, rs), (cb, cs) in pairs_of_results:
        n_ref += len(rb)
        n_cand += len(cb)
        for i, j, v in match_boxes(rb, cb, iou_threshold):
            n_match += 1
            ious.append(v)
            drift.append(abs(float(rs[i]) - float(cs[j])))
    precision = n_match / n_cand if n_cand else 1.0
    recall = n_match / n_ref if n_ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Agreement(n_ref, n_cand, n_match, precision, recall, f1,
                     float(np.mean(ious)) if ious else 1.0, float(np.mean(drift)) if drift else 0.0)
