"""What every family decoder shares: the :data:`Decoded` triple and :func:`require`.

The family modules import these from here (never from the package, whose table imports them).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import ModelLoadError

__all__ = ["Decoded", "require"]

Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(boxes (n, 4) xyxy, scores (n,), keypoints (n, k, 2))`` in network-input pixels."""


def require(outputs: Mapping[str, np.ndarray], name: str, family: str) -> np.ndarray:
    """Fetch a named output tensor or say which names the model has."""
    try:
        return outputs[name]
    except KeyError:
        raise ModelLoadError(
            f"{family} decoder needs an output named {name!r}; the model has {sorted(outputs)}"
        ) from None
