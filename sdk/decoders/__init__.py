"""Per-family decoders: raw output tensors -> candidate faces in network-input pixels.

Each decoder returns boxes ``(n, 4)`` xyxy, scores ``(n,)`` and keypoints ``(n, k, 2)``
for candidates above the score threshold, before suppression. The table says which
suppression each family was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..errors import ModelLoadError
from .base import Decoded, require

__all__ = ["Decoded", "DecoderEntry", "DECODERS", "get_decoder", "require"]


@dataclass(frozen=True)
class DecoderEntry:
    family: str
    decode: Callable[[Mapping[str, np.ndarray], tuple[int, int], Mapping, float], Decoded]
    suppression: str  # "nms" or "weighted"
    # prepare(input_size, cfg, score_threshold, iou_threshold, max_faces) -> faces(outputs, letterbox)
    # giving (boxes, scores, keypoints) in source pixels, suppressed and filtered, or None for
    # no face: a compiled whole post-processing, where the family has one and it is built
    prepare: Callable | None = None


def _table() -> dict[str, DecoderEntry]:
    from . import blazeface, retinaface, scrfd, ultraface, yunet

    return {
        "blazeface": DecoderEntry("blazeface", blazeface.decode, "weighted", blazeface.prepare),
        "scrfd": DecoderEntry("scrfd", scrfd.decode, "nms"),
        "yunet": DecoderEntry("yunet", yunet.decode, "nms"),
        "retinaface": DecoderEntry("retinaface", retinaface.decode, "nms"),
        "ultraface": DecoderEntry("ultraface", ultraface.decode, "nms"),
    }


DECODERS: dict[str, DecoderEntry] = {}


def get_decoder(family: str) -> DecoderEntry:
    if not DECODERS:
        DECODERS.update(_table())
    try:
        return DECODERS[family]
    except KeyError:
        raise ModelLoadError(f"no decoder for family {family!r}; known: {', '.join(sorted(DECODERS))}") from None
