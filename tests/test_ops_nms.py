"""NMS and BlazeFace's weighted blending on hand-made boxes, including degenerate ones."""

from __future__ import annotations

import numpy as np
import pytest

from anyedge.ops.nms import nms, weighted_nms


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(-1, 4)


def test_weighted_nms_terminates_on_a_zero_area_best_box() -> None:
    boxes = _boxes((5, 5, 5, 9), (0, 0, 10, 10), (1, 1, 11, 11))
    scores = np.asarray([0.9, 0.8, 0.7], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out_boxes, out_scores, out_kps = weighted_nms(boxes, scores, kps, 0.3)
    # The degenerate head is its own cluster; the two overlapping boxes blend into one.
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])
    w = np.asarray([0.8, 0.7], np.float32)[:, None]
    np.testing.assert_allclose(out_boxes[1], (boxes[1:] * w).sum(0) / w.sum(), rtol=1e-6)
    assert out_kps.shape == (2, 6, 2)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_nms_and_weighted_nms_on_small_inputs(n: int) -> None:
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 50, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 10], axis=1)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    keep = nms(boxes, scores, 0.5)
    assert len(set(keep.tolist())) == keep.size <= n
    ob, os_, ok = weighted_nms(boxes, scores, np.zeros((n, 2, 2), np.float32), 0.5)
    assert ob.shape[0] == os_.shape[0] == ok.shape[0] == keep.size
