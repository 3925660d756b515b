"""A pure-numpy reference of the packed binary network's integer arithmetic.

It deliberately computes differently from the kernels: weights and activations are
unpacked to +1/-1 integers and convolved with ``einsum`` in int64, instead of XNOR and
popcount on packed words. The kernels (Cython and C) must reproduce its results bit for bit.
"""

from __future__ import annotations

import numpy as np

from .format import BnnLayer, BnnModel, words_for

__all__ = ["quantize", "pack_bits", "unpack_bits", "layer_signs", "forward", "predict"]


def quantize(x: np.ndarray, offset: np.ndarray, inv_scale: np.ndarray) -> np.ndarray:
    """Quantize sensor values to int8 exactly as the kernels do (float32 steps).

    ``t = clamp((x - offset) * inv_scale, -127, 127)``, then rounded half away from zero
    by ``trunc(t +/- 0.5)``, each step in float32.

    Args:
        x: ``(..., channels)`` float32 values (finite).
        offset: ``(channels,)`` float32.
        inv_scale: ``(channels,)`` float32.

    Returns:
        int8 array of ``x``'s shape.
    """
    x = np.asarray(x, dtype=np.float32)
    t = (x - offset.astype(np.float32)) * inv_scale.astype(np.float32)
    t = np.minimum(np.maximum(t, np.float32(-127.0)), np.float32(127.0))
    half = np.where(t >= 0, np.float32(0.5), np.float32(-0.5))
    return np.trunc((t + half).astype(np.float32)).astype(np.int8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack booleans along the last axis into little-endian uint32 words (bit ``i % 32`` of word ``i // 32``)."""
    bits = np.asarray(bits, dtype=bool)
    n = bits.shape[-1]
    w = words_for(n)
    padded = np.zeros(bits.shape[:-1] + (w * 32,), dtype=np.uint64)
    padded[..., :n] = bits
    shifts = np.arange(32, dtype=np.uint64)
    return (padded.reshape(bits.shape[:-1] + (w, 32)) << shifts).sum(axis=-1).astype(np.uint32)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``n`` bits along the last axis, as booleans."""
    words = np.asarray(words, dtype=np.uint32)
    shifts = np.arange(32, dtype=np.uint32)
    bits = ((words[..., None] >> shifts) & np.uint32(1)).astype(bool)
    return bits.reshape(words.shape[:-1] + (words.shape[-1] * 32,))[..., :n]


def layer_signs(layer: BnnLayer) -> np.ndarray:
    """The layer's weights as ``(out_ch, kernel, in_ch)`` int64 +1/-1."""
    if layer.kind == "conv_q8":
        bits = unpack_bits(layer.weights, layer.kernel * layer.in_ch).reshape(layer.out_ch, layer.kernel, layer.in_ch)
    else:
        w = words_for(layer.in_ch)
        bits = unpack_bits(layer.weights.reshape(layer.out_ch, layer.kernel, w), layer.in_ch)
    return np.where(bits, 1, -1).astype(np.int64)


def _accumulate(values: np.ndarray, layer: BnnLayer) -> np.ndarray:
    """``(n, steps, in_ch)`` int64 values -> ``(n, conv_len, out_ch)`` int64 accumulators."""
    win = np.lib.stride_tricks.sliding_window_view(values, layer.kernel, axis=1)  # (n, L, in_ch, k)
    return np.einsum("nlck,fkc->nlf", win, layer_signs(layer), optimize=True)


def _threshold_pool(acc: np.ndarray, layer: BnnLayer) -> np.ndarray:
    bits = (acc >= layer.thresholds.astype(np.int64)) ^ layer.flip.astype(bool)
    n, _, f = bits.shape
    out_len = layer.out_len
    return bits[:, : out_len * layer.pool].reshape(n, out_len, layer.pool, f).any(axis=2)


def forward(model: BnnModel, x: np.ndarray, *, activations: bool = False):
    """Run the network on windows.

    Args:
        model: the packed network.
        x: ``(n, window, channels)`` float32 windows (finite values).
        activations: also return every hidden layer's packed output.

    Returns:
        ``(n, n_classes)`` int32 scores; with ``activations=True`` a pair of the scores and a
        list holding the int8 quantized input and, per hidden layer, its ``(n, out_len,
        out_words)`` uint32 packed output.
    """
    x = np.asarray(x, dtype=np.float32)
    q = quantize(x, model.offset, model.inv_scale)
    acts: list[np.ndarray] = [q]
    values = q.astype(np.int64)
    scores = None
    for layer in model.layers:
        acc = _accumulate(values, layer)
        if layer.kind == "out_bin":
            s = acc[:, 0, :] * layer.mult + layer.thresholds.astype(np.int64)
            scores = s.astype(np.int32)
            break
        bits = _threshold_pool(acc, layer)
        acts.append(pack_bits(bits))
        values = np.where(bits, 1, -1).astype(np.int64)
    assert scores is not None  # BnnModel guarantees an out_bin layer last
    return (scores, acts) if activations else scores


def predict(model: BnnModel, x: np.ndarray) -> np.ndarray:
    """``(n,)`` int64 class indices (first maximum wins ties, as in the kernels)."""
    return np.argmax(forward(model, x), axis=1)
