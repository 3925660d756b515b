"""Result types: frozen dataclasses of numpy arrays, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .errors import InputError

__all__ = ["Face", "FaceDetections", "ActivityResult"]


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
    def _made(cls, boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray) -> "FaceDetections":
        """For arrays anyedge's own post-processing made with the right dtypes and shapes: no
        checks, no copies (the per-frame path)."""
        obj = object.__new__(cls)
        obj.__dict__.update(boxes=boxes, scores=scores, keypoints=keypoints)
        return obj

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


@dataclass(frozen=True)
class ActivityResult:
    """One classified sensor window.

    Attributes:
        label: the most likely class name (``""`` for :meth:`empty`).
        class_index: its index into the model's labels (``-1`` for :meth:`empty`).
        score: its confidence in ``[0, 1]`` (softmax of the model's scores).
        scores: ``(classes,)`` float32 confidences of every class, summing to 1.
        raw: ``(classes,)`` int32 integer scores straight from the network.
        start: index of the window's first sample in the stream (0 for ``ActivityClassifier.classify``).
    """

    label: str
    class_index: int
    score: float
    scores: np.ndarray
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    start: int = 0

    def __post_init__(self) -> None:
        if self.scores.ndim != 1 or self.scores.dtype != np.float32:
            raise InputError(f"scores must be (classes,) float32, got {self.scores.shape} {self.scores.dtype}")
        if self.raw.shape != self.scores.shape and self.raw.size:
            raise InputError(f"raw must match scores' shape {self.scores.shape}, got {self.raw.shape}")
        if not -1 <= self.class_index < max(len(self.scores), 0):
            raise InputError(f"class_index {self.class_index} is outside 0..{len(self.scores) - 1}")
        if not 0.0 <= self.score <= 1.0:
            raise InputError(f"score must be in [0, 1], got {self.score}")

    @classmethod
    def empty(cls) -> "ActivityResult":
        """A result with no class (no window was classified)."""
        return cls("", -1, 0.0, np.zeros(0, dtype=np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"label": self.label, "class_index": self.class_index, "score": float(self.score),
                "start": self.start, "scores": [float(v) for v in self.scores]}
