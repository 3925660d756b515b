"""The ``bnn`` engine: packed binary networks (``.bnn``) on the Cython XNOR-popcount kernels.

Input ``window``: ``(n, window, channels)`` float32 sensor windows. Output ``scores``:
``(n, classes)`` int32. ``kernels="reference"`` runs the pure-numpy reference of the same
integer arithmetic instead (slow; for checking). The default, ``"auto"``, uses the compiled
kernels and falls back to the reference, with a logged notice, where anyedge was installed
without a C compiler (e.g. a RISC-V board without gcc): same scores, slower.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import logging

from ..errors import EngineError, EngineUnavailableError, InputError
from ..targets.bnn.format import BnnModel, read_bnn
from .base import TensorSpec, check_feeds

__all__ = ["BnnEngine", "load"]

_KERNELS = ("auto", "cython", "reference")

log = logging.getLogger(__name__)
_NOTICE = ("anyedge's compiled BNN kernels are not built here (no C compiler when anyedge was installed); "
           "running the numpy reference instead: identical scores, slower. For the fast kernels install a C "
           "compiler (e.g. apt install gcc python3-dev) and reinstall anyedge from source")


class BnnEngine:
    """A ``.bnn`` model on the XNOR-popcount kernels.

    Attributes:
        model: the parsed :class:`~anyedge.targets.bnn.format.BnnModel`.
        kernels: ``"cython"`` or ``"reference"`` (what ``"auto"`` resolved to).
    """

    name = "bnn"
    precision = "binary"  # 1-bit weights and activations, int8 first layer, integer scores

    def __init__(self, path: Path, *, kernels: str = "auto") -> None:
        if kernels not in _KERNELS:
            raise EngineUnavailableError(f"bnn kernels must be one of {_KERNELS}, got {kernels!r}")
        self.model: BnnModel | None = read_bnn(path)
        if kernels == "auto":
            try:
                from ..targets.bnn import kernels as _compiled  # noqa: F401
                kernels = "cython"
            except EngineUnavailableError:
                log.warning(_NOTICE)
                kernels = "reference"
        if kernels == "cython":
            from ..targets.bnn import kernels as impl  # raises EngineUnavailableError when not compiled

            plan = impl.prepare(self.model)
            self._forward = lambda m, x: impl.forward(m, x, plan=plan)
        else:
            from ..targets.bnn import reference as ref

            self._forward = ref.forward
        self.kernels = kernels
        self.device = "CPU"
        self.path = path
        m = self.model
        self.inputs = (TensorSpec("window", (-1, m.window, m.channels), "float32"),)
        self.outputs = (TensorSpec("scores", (-1, m.n_classes), "int32"),)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run on a batch of windows.

        Raises:
            InputError: wrong input name, dtype or shape, or non-finite samples.
            EngineError: the engine is closed.
        """
        m = self.model
        if m is None:
            raise EngineError("engine is closed")
        x = feeds.get("window") if len(feeds) == 1 else None
        # the common case checked in a few attribute reads; anything else gets the full check and its message
        if not (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 3
                and x.shape[1] == m.window and x.shape[2] == m.channels):
            check_feeds(self.inputs, feeds)
            x = feeds["window"]
        if not math.isfinite(float(x.sum())) and not np.isfinite(x).all():  # one reduction when all is well
            bad = np.argwhere(~np.isfinite(x))[0].tolist()
            raise InputError(f"input 'window' must hold finite samples; found NaN or infinity at index {bad}")
        return [self._forward(m, x)]

    def close(self) -> None:
        self.model = None


def load(path: Path, *, threads: int | None = None, **options: Any) -> BnnEngine:
    """Open a ``.bnn`` file (``threads`` is accepted and ignored: the kernels run on one core)."""
    return BnnEngine(path, **options)
