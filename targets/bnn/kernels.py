"""Run a packed binary network with the compiled Cython XNOR-popcount kernels.

The compiled module (``_kernels``) is built at install time; importing this module without
it raises :class:`~anyedge.errors.EngineUnavailableError` with the fix.
"""

from __future__ import annotations

import numpy as np

from ...errors import EngineUnavailableError
from .format import BnnModel

try:
    from . import _kernels
except ImportError as e:  # pragma: no cover - depends on the build
    raise EngineUnavailableError(
        "the BNN kernels are not compiled; reinstall anyedge from source with a C compiler "
        f"(pip install -e . or pip install anyedge --no-binary anyedge): {e}"
    ) from e

__all__ = ["Plan", "prepare", "forward", "popcount_kind"]

Plan = tuple  # per layer: the expanded int8 signs of a conv_q8 layer, else None


def popcount_kind() -> str:
    """How the compiled kernels count bits."""
    return _kernels.popcount_kind()


def prepare(model: BnnModel) -> Plan:
    """Per-layer data the kernels precompute once per model (the first layer's weight signs)."""
    plan = []
    for layer in model.layers:
        if layer.kind == "conv_q8":
            span = layer.kernel * layer.in_ch
            signs = np.empty((layer.out_ch, span), dtype=np.int8)
            _kernels.expand_signs(layer.weights, span, signs)
            plan.append(signs)
        else:
            plan.append(None)
    return tuple(plan)


def forward(model: BnnModel, x: np.ndarray, *, activations: bool = False, plan: Plan | None = None):
    """Run ``model`` on ``(n, window, channels)`` float32 windows with the Cython kernels.

    The caller validates ``x`` (shape, dtype, finite values); see :mod:`anyedge.engines.bnn`.
    ``plan`` is :func:`prepare`'s result for ``model`` (computed here when omitted).

    Returns:
        ``(n, n_classes)`` int32 scores, or with ``activations=True`` the scores and the
        list of intermediate results laid out as :func:`anyedge.targets.bnn.reference.forward` does.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    q = np.empty(x.shape, dtype=np.int8)
    _kernels.quantize(x, model.offset, model.inv_scale, q)
    acts: list[np.ndarray] = [q]
    cur: np.ndarray = q
    if plan is None:
        plan = prepare(model)
    for layer, extra in zip(model.layers, plan):
        if layer.kind == "out_bin":
            scores = np.empty((n, layer.out_ch), dtype=np.int32)
            _kernels.out_bin(cur, layer.weights, layer.thresholds, layer.n_bits, layer.mult, scores)
            return (scores, acts) if activations else scores
        out = np.empty((n, layer.out_len, layer.out_words), dtype=np.uint32)
        if layer.kind == "conv_q8":
            _kernels.conv_q8(cur, extra, layer.thresholds, layer.flip, layer.kernel, layer.pool, out)
        else:
            _kernels.conv_bin(cur, layer.weights, layer.thresholds, layer.flip, layer.kernel,
                              layer.n_bits, layer.pool, out)
        acts.append(out)
        cur = out
    raise EngineUnavailableError("model has no out_bin layer")  # BnnModel rules this out
