"""Result types: frozen dataclasses of numpy arrays, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["Face", "FaceDetections"]


@dataclass(frozen=True)
class Face:
    """One detected face (a view into :class:`FaceDetections`)."""

    box: np.ndarray  # (4,) xyxy source pixels
    score: float
    keypoints: np.ndarray  # (k, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
        }


@dataclass(frozen=True)
class FaceDetections:
    """Faces found in one image, best score first.

    Attributes:
        boxes: ``(n, 4)`` float32 ``x1, y1, x2, y2`` in source-image pixels.
        scores: ``(n,)`` float32 confidences in [0, 1].
        keypoints: ``(n, k, 2)`` float32 ``(x, y)`` source pixels; ``k`` is 6 for BlazeFace
            (right eye, left eye, nose tip, mouth, right ear, left ear), 5 for SCRFD, YuNet and
            RetinaFace (right eye, left eye, nose, right and left mouth corner), 0 for UltraFace.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        b = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        s = np.asarray(self.scores, np.float32).reshape(-1)
        k = np.asarray(self.keypoints, np.float32)
        if k.size == 0:
            k = k.reshape(len(b), k.shape[1] if k.ndim == 3 else 0, 2)
        if len(b) != len(s) or k.ndim != 3 or k.shape[0] != len(b) or k.shape[2] != 2:
            raise ValueError(f"inconsistent detections: boxes {b.shape}, scores {s.shape}, keypoints {k.shape}")
        object.__setattr__(self, "boxes", b)
        object.__setattr__(self, "scores", s)
        object.__setattr__(self, "keypoints", k)

    @classmethod
    def empty(cls, num_keypoints: int = 0) -> "FaceDetections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, num_keypoints, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Face]:
        for i in range(len(self)):
            yield Face(self.boxes[i], float(self.scores[i]), self.keypoints[i])

    def __getitem__(self, i: int) -> Face:
        return Face(self.boxes[i], float(self.scores[i]), self.keypoints[i])

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self]
