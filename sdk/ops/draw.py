"""Draw detections onto a BGR image (the CLI's annotated images and videos, the live view).

Each face gets its box, its keypoints and a label: the track id when it has one, the name when a
gallery gave one, and the detection score, e.g. ``3 ann 0.71``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..results import FaceDetections

__all__ = ["draw_faces", "face_label", "BOX_BGR", "TENTATIVE_BGR", "KEYPOINT_BGR"]

BOX_BGR = (0, 220, 0)  # a face, or a confirmed track
TENTATIVE_BGR = (0, 190, 255)  # a face whose track has no id yet
KEYPOINT_BGR = (0, 0, 255)
_MAX_NAME = 24  # characters of a name drawn; longer ones end with "..."


def face_label(score: float, track: int | None = None, name: str | None = None, prefix: str = "") -> str:
    """The text drawn over a face: ``[prefix][track ][name ]score``, e.g. ``"3 ann 0.71"``.

    The name is untrusted text (a gallery's): it is cut to 24 characters and anything but
    printable ASCII becomes ``?`` (the drawing font has nothing else).
    """
    parts = [] if track is None or track < 0 else [str(int(track))]
    if name:
        clean = "".join(c if " " <= c <= "~" else "?" for c in name)
        parts.append(clean if len(clean) <= _MAX_NAME else clean[:_MAX_NAME - 3] + "...")
    parts.append(f"{score:.2f}")
    return prefix + " ".join(parts)


def draw_faces(bgr: np.ndarray, faces: FaceDetections, label: str = "", *, ids: Sequence[int] | None = None,
               names: Sequence[str | None] | None = None) -> np.ndarray:
    """A copy of ``bgr`` with each face's box, keypoints and label drawn.

    Args:
        bgr: the image, ``(h, w, 3)`` uint8.
        faces: its detections.
        label: text put before every face's label (e.g. the model's name).
        ids: per face its public track id, ``-1`` while the track is tentative (drawn in
            :data:`TENTATIVE_BGR`, without an id); ``None``: no tracking, every box in :data:`BOX_BGR`.
        names: per face its name, ``None`` for unknown; ``None``: no gallery.

    Returns:
        The annotated copy (``bgr`` is not changed).
    """
    import cv2

    out = bgr.copy()
    t = max(1, round(max(out.shape[:2]) / 400))
    scale = 0.4 * t
    ids_l = [int(i) for i in ids] if ids is not None else [None] * len(faces)
    names_l = list(names) if names is not None else [None] * len(faces)
    for f, tid, name in zip(faces, ids_l, names_l):
        colour = TENTATIVE_BGR if tid is not None and tid < 0 else BOX_BGR
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, t)
        text = face_label(float(f.score), tid, name, label)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        top = y1 - th - base - 2 * t if y1 - th - base - 2 * t >= 0 else y1  # above the box, else inside it
        cv2.rectangle(out, (x1, top), (x1 + tw + 2 * t, top + th + base + 2 * t), colour, -1)
        cv2.putText(out, text, (x1 + t, top + th + t), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), t, cv2.LINE_AA)
        for x, y in f.keypoints:
            cv2.circle(out, (int(round(x)), int(round(y))), t + 1, KEYPOINT_BGR, -1)
    return out
