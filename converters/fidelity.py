"""Fidelity of a converted detector against its float original, and per-layer sensitivity.

The check runs both models on held-back images (never the calibration ones) and reports
how well the converted model's faces reproduce the float model's: F1 at IoU 0.5, mean IoU of
matched faces and mean score drift. The sensitivity ranking follows the idea of HAWQ-V2's
mixed precision (spend precision where the network is most sensitive), measured
empirically: each layer is quantized on its own and the relative output error it causes
on calibration images is its score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from anyedge.ops.metrics import Agreement, detection_agreement
from anyedge.results import FaceDetections

__all__ = ["Attempt", "face_fidelity", "output_error", "rank_layers"]

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """One conversion try and how it scored."""

    remedy: str
    precision: str
    agreement: Agreement | None = None
    passed: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"remedy": self.remedy, "precision": self.precision, "passed": self.passed}
        if self.agreement is not None:
            d["agreement"] = {k: (round(v, 4) if isinstance(v, float) else v)
                              for k, v in self.agreement.to_dict().items()}
        if self.detail:
            d["detail"] = self.detail
        if self.error:
            d["error"] = self.error
        return d


def face_fidelity(reference: Sequence[FaceDetections], candidate: Sequence[FaceDetections]) -> Agreement:
    """Agreement of candidate detections with the float model's, over the same images."""
    return detection_agreement([((r.boxes, r.scores), (c.boxes, c.scores)) for r, c in zip(reference, candidate)])


def output_error(reference: Sequence[Sequence[np.ndarray]], candidate: Sequence[Sequence[np.ndarray]]) -> float:
    """Relative squared error of all raw outputs, summed over images: ||y' - y||^2 / ||y||^2."""
    num = den = 0.0
    for ref, cand in zip(reference, candidate):
        for a, b in zip(ref, cand):
            a = np.asarray(a, np.float64)
            num += float(np.sum((np.asarray(b, np.float64).reshape(a.shape) - a) ** 2))
            den += float(np.sum(a * a))
    return num / max(den, 1e-12)


def rank_layers(layers: Sequence[str], error_of: Callable[[str], float], progress: Callable[..., Any],
                failed: list[tuple[str, str]] | None = None) -> list[tuple[str, float]]:
    """Score every layer by the error it causes when it alone is quantized; most sensitive first.

    A layer the tool or engine cannot handle alone (:class:`~anyedge.errors.AnyEdgeError`) is
    left unranked and appended to ``failed`` as ``(layer, message)``; anything else is a bug
    and propagates.
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
