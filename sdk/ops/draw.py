"""Draw detections onto a BGR image (for the CLI's --out and the demo)."""

from __future__ import annotations

import numpy as np

from ..results import FaceDetections

__all__ = ["draw_faces"]


def draw_faces(bgr: np.ndarray, faces: FaceDetections, label: str = "") -> np.ndarray:
    """A copy of ``bgr`` with boxes, scores and keypoints drawn."""
    import cv2

    out = bgr.copy()
    t = max(1, round(max(out.shape[:2]) / 400))
    for f in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 220, 0), t)
        cv2.putText(out, f"{label}{f.score:.2f}", (x1, max(0, y1 - 4 * t)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * t, (0, 220, 0), t)
        for x, y in f.keypoints:
            cv2.circle(out, (int(round(x)), int(round(y))), t + 1, (0, 0, 255), -1)
    return out
