"""How faithfully a converted model reproduces its float original, per task, and per-layer sensitivity.

Every evaluator compares the converted model's outputs with the float model's on the same
held-back inputs (never the calibration ones) and returns a :class:`Fidelity`: the metrics,
the one value the gate judges, and whether it passed. ``max_drop`` is absolute: the gated
value must be at least ``1 - max_drop`` (agreement of the float model with itself is 1).

- :class:`DetectionEvaluator`: F1 at IoU 0.5, mean IoU of matched boxes, mean score drift;
  refuses to judge on fewer than ``min_reference`` reference faces.
- :class:`EmbeddingEvaluator`: mean and 5th-percentile cosine to the float embeddings, and
  verification accuracy on labelled pairs when given. Works on arrays, so any
  ``images -> (n, d)`` callable (a task, a bare engine) can feed it.
- :class:`ClassificationEvaluator`: top-1 agreement, and accuracy when labels are given.

:func:`rank_layers` scores each layer with a caller-given function (the remedy loop uses the gain
in the gated value when that layer alone is kept in float) and records the layers it could not
measure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from anyedge.errors import CalibrationError, InputError
from anyedge.ops.metrics import Agreement, detection_agreement
from anyedge.results import FaceDetections

__all__ = [
    "Fidelity",
    "Evaluator",
    "DetectionEvaluator",
    "EmbeddingEvaluator",
    "ClassificationEvaluator",
    "MIN_REFERENCE_FACES",
    "TooFewReferencesError",
    "face_fidelity",
    "rank_layers",
]

log = logging.getLogger(__name__)

# The detection gate refuses to judge on fewer reference faces than this. F1 moves by about 1/n
# per face lost out of n; with 20 faces one lost face costs ~0.026 and two ~0.05, so the default
# gate (max_drop 0.05) can tell "one face lost" from "two lost". With fewer faces a single miss
# swings F1 past the gate and the verdict is noise; with none there is nothing to compare.
MIN_REFERENCE_FACES = 20


class TooFewReferencesError(CalibrationError):
    """The held-back inputs give the gate too few references to judge, with the counts and what to do.

    Attributes:
        found: references found (faces, or face crops for an embedder).
        needed: the fewest the gate judges on.
        unit: what was counted (``"face(s)"``).
        finder: who found them (``"the float model"``).
        images: held-back images (or frames) they were looked for in; ``None`` when not known.
        noun: ``"images"`` or ``"frames"``.
        advice: what to do about it.
    """

    def __init__(self, found: int, needed: int, unit: str = "face(s)", finder: str = "the float model",
                 images: int | None = None, noun: str = "images",
                 advice: str = "add images with faces to the calibration folder; every third image is held back"):
        super().__init__()
        self.found, self.needed, self.unit, self.finder = found, needed, unit, finder
        self.images, self.noun, self.advice = images, noun, advice

    def __str__(self) -> str:
        where = f" in the {self.images} held-back {self.noun}" if self.images is not None else " held back"
        return (f"{self.finder} finds {self.found} {self.unit}{where}; the fidelity gate needs at least {self.needed} "
                f"to judge ({self.advice})")


def _r(v: Any) -> Any:
    return round(float(v), 4) if isinstance(v, (float, np.floating)) else v


@dataclass(frozen=True)
class Fidelity:
    """One evaluator's verdict on one candidate.

    Attributes:
        metric: name of the gated value (``"f1"``, ``"cosine_p5"``, ``"top1_agreement"``).
        value: the gated value; the gate is ``value >= gate``.
        gate: ``1 - max_drop``.
        metrics: every metric the evaluator computed.
        secondary: a finer value in [0, 1] that breaks ties of ``value`` when ranking layers.
    """

    metric: str
    value: float
    gate: float
    metrics: dict[str, Any] = field(default_factory=dict)
    secondary: float = 0.0

    @property
    def rank_value(self) -> float:
        return self.value + 1e-3 * self.secondary

    @property
    def passed(self) -> bool:
        return self.value >= self.gate

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": _r(self.value), "gate": _r(self.gate), "passed": self.passed,
                **{k: _r(v) for k, v in self.metrics.items()}}


class Evaluator(Protocol):
    """Compares a candidate's task outputs with the float model's on the same inputs."""

    description: str

    def check_reference(self, reference: Sequence[Any]) -> None:
        """Raise :class:`~anyedge.errors.CalibrationError` when the reference cannot support a verdict."""
        ...

    def score(self, reference: Sequence[Any], candidate: Sequence[Any]) -> Fidelity: ...


def face_fidelity(reference: Sequence[FaceDetections], candidate: Sequence[FaceDetections]) -> Agreement:
    """Agreement of candidate detections with the float model's, over the same images."""
    if len(reference) != len(candidate):
        raise InputError(f"{len(reference)} reference results but {len(candidate)} candidate results")
    return detection_agreement([((r.boxes, r.scores), (c.boxes, c.scores)) for r, c in zip(reference, candidate)])


@dataclass(frozen=True)
class DetectionEvaluator:
    """Detections vs the float model's: F1 at IoU 0.5 gated, mean IoU and score drift reported."""

    max_drop: float
    min_reference: int = MIN_REFERENCE_FACES
    description: str = "detection agreement with the float model on held-back images (F1 at IoU 0.5)"

    def check_reference(self, reference: Sequence[FaceDetections]) -> None:
        faces = sum(len(r) for r in reference)
        if faces < self.min_reference:
            raise TooFewReferencesError(faces, self.min_reference, images=len(reference))

    def score(self, reference: Sequence[FaceDetections], candidate: Sequence[FaceDetections]) -> Fidelity:
        self.check_reference(reference)
        a = face_fidelity(reference, candidate)
        return Fidelity("f1", a.f1, 1.0 - self.max_drop, a.to_dict(), secondary=a.mean_iou)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise InputError(f"embeddings must be (n, d), got shape {x.shape}")
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _verification(emb: np.ndarray, pairs: np.ndarray, same: np.ndarray, threshold: float) -> float:
    sims = np.sum(emb[pairs[:, 0]] * emb[pairs[:, 1]], axis=1)
    return float(np.mean((sims >= threshold) == same))


def best_threshold(emb: np.ndarray, pairs: np.ndarray, same: np.ndarray) -> float:
    """The cosine threshold that maximises verification accuracy on ``pairs`` (ties: the lowest)."""
    sims = np.sum(emb[pairs[:, 0]] * emb[pairs[:, 1]], axis=1)
    cands = np.unique(sims)
    accs = [np.mean((sims >= t) == same) for t in cands]
    return float(cands[int(np.argmax(accs))])


@dataclass(frozen=True)
class EmbeddingEvaluator:
    """Embeddings vs the float model's: 5th-percentile cosine gated; mean cosine and verification reported.

    Args:
        max_drop: gate on the 5th-percentile cosine (``>= 1 - max_drop``), and, with pairs, on
            the verification accuracy drop (candidate accuracy ``>=`` float accuracy ``- max_drop``)
            at the threshold chosen on the float embeddings.
        pairs: ``(m, 2)`` row indices into the embeddings, with ``same`` ``(m,)`` booleans.
        min_reference: fewest embeddings it will judge on (a percentile of fewer is noise).
    """

    max_drop: float
    pairs: np.ndarray | None = None
    same: np.ndarray | None = None
    min_reference: int = 10
    description: str = "cosine of converted to float embeddings on held-back images (5th percentile)"

    def check_reference(self, reference: Sequence[np.ndarray] | np.ndarray) -> None:
        n = len(np.asarray(reference))
        if n < self.min_reference:
            raise TooFewReferencesError(n, self.min_reference, unit="usable face crop(s)", finder="the face detector",
                                        advice="add photos with clearly visible faces; every third is held back")

    def score(self, reference: Any, candidate: Any) -> Fidelity:
        ref, cand = _unit(np.asarray(reference)), _unit(np.asarray(candidate))
        if ref.shape != cand.shape:
            raise InputError(f"reference embeddings {ref.shape} and candidate {cand.shape} differ in shape")
        self.check_reference(ref)
        cos = np.sum(ref * cand, axis=1)
        metrics: dict[str, Any] = {"cosine_mean": float(cos.mean()), "cosine_p5": float(np.percentile(cos, 5)),
                                   "cosine_min": float(cos.min()), "count": int(len(cos))}
        value = metrics["cosine_p5"]
        if self.pairs is not None and self.same is not None:
            pairs, same = np.asarray(self.pairs, int), np.asarray(self.same, bool)
            t = best_threshold(ref, pairs, same)
            ref_acc, cand_acc = _verification(ref, pairs, same, t), _verification(cand, pairs, same, t)
            metrics.update(verification_threshold=t, verification_float=ref_acc, verification=cand_acc,
                           pairs=int(len(pairs)))
            # one gated value: the worse of the two, both expressed as "1 - drop"
            value = min(value, 1.0 - max(0.0, ref_acc - cand_acc))
        return Fidelity("cosine_p5" if value == metrics["cosine_p5"] else "verification", value,
                        1.0 - self.max_drop, metrics, secondary=metrics["cosine_mean"])


@dataclass(frozen=True)
class ClassificationEvaluator:
    """Class scores vs the float model's: top-1 agreement gated; accuracy with labels reported."""

    max_drop: float
    labels: np.ndarray | None = None
    min_reference: int = 10
    description: str = "top-1 agreement of converted and float class scores on held-back inputs"

    def check_reference(self, reference: Any) -> None:
        n = len(np.asarray(reference))
        if n < self.min_reference:
            raise CalibrationError(f"{n} held-back inputs; the classification gate needs at least {self.min_reference}")

    def score(self, reference: Any, candidate: Any) -> Fidelity:
        ref, cand = np.asarray(reference), np.asarray(candidate)
        if ref.shape != cand.shape or ref.ndim != 2:
            raise InputError(f"class scores must be (n, classes) of one shape, got {ref.shape} and {cand.shape}")
        self.check_reference(ref)
        r1, c1 = ref.argmax(1), cand.argmax(1)
        metrics: dict[str, Any] = {"top1_agreement": float(np.mean(r1 == c1)), "count": int(len(r1))}
        value = metrics["top1_agreement"]
        if self.labels is not None:
            labels = np.asarray(self.labels)
            metrics.update(accuracy_float=float(np.mean(r1 == labels)), accuracy=float(np.mean(c1 == labels)))
            value = min(value, 1.0 - max(0.0, metrics["accuracy_float"] - metrics["accuracy"]))
        return Fidelity("top1_agreement", value, 1.0 - self.max_drop, metrics)


def rank_layers(layers: Sequence[str], error_of: Callable[[str], float], progress: Callable[..., Any],
                failed: list[tuple[str, str]] | None = None) -> list[tuple[str, float]]:
    """Score every layer with ``error_of``; highest score (most worth keeping in float) first.

    A layer the tool or engine cannot handle (:class:`~anyedge.errors.AnyEdgeError`) is left
    unranked and appended to ``failed`` as ``(layer, message)``; anything else is a bug and
    propagates.
    """
    from anyedge.errors import AnyEdgeError

    scores = []
    for name in progress(layers, desc="per-layer sensitivity", total=len(layers)):
        try:
            scores.append((name, float(error_of(name))))
        except AnyEdgeError as e:
            log.warning("sensitivity of %s not measured: %s", name, e)
            if failed is not None:
                failed.append((name, f"{type(e).__name__}: {e}"))
    return sorted(scores, key=lambda t: -t[1])
