"""The binarizing converter: a trained float-parameter BNN -> a packed integer ``.bnn`` model.

Training (``anyedge.converters.train_har``, needs torch) hands over plain numpy arrays in
:class:`FloatLayer` records; nothing here imports torch. The converter

* binarizes weights (``w >= 0`` is +1),
* folds each batch-norm into an integer threshold on the layer's integer accumulator,
  flipping the comparison where the batch-norm scale is negative,
* packs weights into ``uint32`` words in the layout :mod:`anyedge.targets.bnn.format` defines,
* turns the last layer's float bias into an integer bias at ``mult`` times finer resolution,

and writes a bundle (manifest + ``model.bnn``) that ``ActivityClassifier.create`` loads, or a
C header with the model as ``const`` arrays for ``targets/bnn/c/anyedge_bnn.c``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..bundle import Bundle, write_bundle
from ..errors import ConversionError, ModelLoadError
from ..manifest import BNN_PRECISION, Manifest, ModelCard, ScoreOutput, Window
from ..targets.bnn.format import BnnLayer, BnnModel, serialize_bnn, words_for
from ..targets.bnn.reference import pack_bits
from ..targets.ctext import c_comment, c_ident, c_string

__all__ = [
    "BatchNorm",
    "FloatLayer",
    "fold_batchnorm",
    "convert_bnn",
    "write_bnn_bundle",
    "c_header",
    "write_c_header",
    "MODEL_FILE",
]

log = logging.getLogger(__name__)

MODEL_FILE = "model.bnn"
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class BatchNorm:
    """Batch-norm statistics and affine parameters of one layer, each ``(channels,)``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5


@dataclass(frozen=True)
class FloatLayer:
    """One trained layer as float arrays.

    Attributes:
        kind: ``"conv_q8"`` (first layer, on int8 sensor values), ``"conv_bin"``,
            ``"dense_bin"`` (binary dense with batch-norm) or ``"dense_out"`` (last layer).
        weight: latent float weights, binarized by sign here. Convolutions: ``(out, in, kernel)``
            (PyTorch ``Conv1d`` layout); dense: ``(out, in_ch * in_len)`` in PyTorch's
            channel-major flatten order of a ``(batch, channels, time)`` tensor.
        bn: the batch-norm that follows (not for ``dense_out``).
        pool: max-pool size and stride over time after the sign.
        bias: ``dense_out`` only: ``(classes,)`` float bias.
        scale: ``dense_out`` only: positive logit scale, ``logits = scale * acc + bias``.
    """

    kind: str
    weight: np.ndarray
    bn: BatchNorm | None = None
    pool: int = 1
    bias: np.ndarray | None = None
    scale: float = 1.0


def fold_batchnorm(bn: BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``sign(bn(acc))`` on an integer accumulator into ``(acc >= thr) XOR flip``.

    With ``a = gamma / sqrt(var + eps)``, ``bn(acc) >= 0`` (sign(0) is +1) is
    ``acc >= tau`` for ``a > 0`` and ``acc <= tau`` for ``a < 0``, ``tau = mean - beta / a``.
    On integers that is ``acc >= ceil(tau)``, resp. ``not acc >= floor(tau) + 1``; ``a == 0``
    gives the constant ``beta >= 0``.

    Returns:
        ``(thresholds int32, flip uint8)``, each ``(channels,)``.

    Raises:
        ConversionError: the arrays are not matching 1-D shapes, or hold NaN.
    """
    arrs = [np.asarray(v, dtype=np.float64) for v in (bn.gamma, bn.beta, bn.mean, bn.var)]
    shape = arrs[0].shape
    if len(shape) != 1 or any(a.shape != shape for a in arrs):
        raise ConversionError(f"batch-norm arrays must be 1-D of one length, got {[a.shape for a in arrs]}")
    if not all(np.isfinite(a).all() for a in arrs) or (arrs[3] < 0).any():
        raise ConversionError("batch-norm arrays hold NaN, infinities or negative variances")
    gamma, beta, mean, var = arrs
    a = gamma / np.sqrt(var + float(bn.eps))
    thr = np.zeros(shape, dtype=np.float64)
    flip = np.zeros(shape, dtype=np.uint8)
    pos, neg, zero = a > 0, a < 0, a == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = mean - beta / np.where(zero, 1.0, a)
    thr[pos] = np.ceil(tau[pos])
    thr[neg] = np.floor(tau[neg]) + 1
    flip[neg] = 1
    thr[zero] = _I32_MIN  # acc >= INT32_MIN always holds: the bit is 1, or 0 when flipped
    flip[zero] = (beta[zero] < 0).astype(np.uint8)
    return np.clip(thr, _I32_MIN, _I32_MAX).astype(np.int32), flip


def _signs_to_rows(signs: np.ndarray, kind: str, in_ch: int) -> np.ndarray:
    """``(out, kernel, in_ch)`` booleans -> packed ``(out, words_per_row)`` uint32."""
    out, kernel, _ = signs.shape
    if kind == "conv_q8":
        return pack_bits(signs.reshape(out, kernel * in_ch))
    return pack_bits(signs).reshape(out, kernel * words_for(in_ch))


def convert_bnn(
    layers: Sequence[FloatLayer],
    *,
    window: int,
    channels: int,
    offset: np.ndarray,
    inv_scale: np.ndarray,
    mult: int = 16,
) -> tuple[BnnModel, float]:
    """Binarize, fold and pack a trained network.

    Args:
        layers: the trained layers in order, ``conv_q8`` first and ``dense_out`` last.
        window: samples per window.
        channels: sensor channels.
        offset: ``(channels,)`` input offsets of the int8 quantization.
        inv_scale: ``(channels,)`` input inverse scales of the int8 quantization.
        mult: integer resolution of the last layer's bias (``score = acc * mult + bias``).

    Returns:
        ``(model, score_scale)``: the packed model and the factor that turns its integer
        scores back into the trained logits (``logits ~= score_scale * scores``).

    Raises:
        ConversionError: layers out of order, or shapes that do not chain.
    """
    if not layers or layers[0].kind != "conv_q8" or layers[-1].kind != "dense_out":
        raise ConversionError("expected layers conv_q8, ..., dense_out, got "
                              f"{[lay.kind for lay in layers]}")
    if not isinstance(mult, int) or not 1 <= mult <= 1 << 12:
        raise ConversionError(f"mult must be an integer in 1..4096, got {mult!r}")
    in_len, in_ch = int(window), int(channels)
    packed: list[BnnLayer] = []
    score_scale = 1.0
    for i, fl in enumerate(layers):
        w = np.asarray(fl.weight, dtype=np.float64)
        if fl.kind in ("conv_q8", "conv_bin"):
            if w.ndim != 3 or w.shape[1] != in_ch:
                raise ConversionError(f"layer {i} ({fl.kind}) weight must be (out, {in_ch}, kernel), got {w.shape}")
            signs = np.transpose(w, (0, 2, 1)) >= 0  # (out, kernel, in_ch)
            kernel = w.shape[2]
        elif fl.kind in ("dense_bin", "dense_out"):
            if w.ndim != 2 or w.shape[1] != in_ch * in_len:
                raise ConversionError(f"layer {i} ({fl.kind}) weight must be (out, {in_ch * in_len}), got {w.shape}")
            signs = np.transpose(w.reshape(w.shape[0], in_ch, in_len), (0, 2, 1)) >= 0
            kernel = in_len
        else:
            raise ConversionError(f"layer {i}: unknown kind {fl.kind!r}")
        if (i > 0) == (fl.kind == "conv_q8"):
            raise ConversionError(f"layer {i}: conv_q8 must be the first layer and only the first")
        out = int(w.shape[0])
        kind = {"conv_q8": "conv_q8", "conv_bin": "conv_bin", "dense_bin": "conv_bin", "dense_out": "out_bin"}[fl.kind]
        rows = _signs_to_rows(signs, kind, in_ch)
        if kind == "out_bin":
            if i != len(layers) - 1:
                raise ConversionError("dense_out must be the last layer")
            if fl.bias is None or np.asarray(fl.bias).shape != (out,):
                raise ConversionError(f"dense_out needs a ({out},) bias")
            if not (np.isfinite(fl.scale) and fl.scale > 0):
                raise ConversionError(f"dense_out scale must be positive and finite, got {fl.scale}")
            bias = np.round(np.asarray(fl.bias, dtype=np.float64) * mult / fl.scale)
            thr = np.clip(bias, -(2**29), 2**29).astype(np.int32)
            flip = np.zeros(out, dtype=np.uint8)
            pool, lmult = 1, mult
            score_scale = float(fl.scale) / mult
        else:
            if fl.bn is None:
                raise ConversionError(f"layer {i} ({fl.kind}) needs its batch-norm to fold")
            thr, flip = fold_batchnorm(fl.bn)
            if thr.shape != (out,):
                raise ConversionError(f"layer {i}: batch-norm has {thr.shape[0]} channels, the layer {out}")
            pool, lmult = int(fl.pool), 1
        try:
            layer = BnnLayer(kind, in_len, in_ch, out, kernel, pool, lmult, rows, thr, flip)
        except ModelLoadError as e:
            raise ConversionError(f"layer {i}: {e}") from None
        packed.append(layer)
        in_len, in_ch = layer.out_len, layer.out_ch
    try:
        model = BnnModel(int(window), int(channels), np.asarray(offset, dtype=np.float32),
                         np.asarray(inv_scale, dtype=np.float32), tuple(packed))
    except ModelLoadError as e:
        raise ConversionError(str(e)) from None
    log.info("packed BNN: %d layers, %d parameter bytes", len(packed), model.nbytes)
    return model, score_scale


def write_bnn_bundle(
    model: BnnModel,
    out: str | os.PathLike[str],
    *,
    name: str,
    labels: Sequence[str],
    score_scale: float,
    channel_names: Sequence[str] | None = None,
    sample_rate_hz: float | None = None,
    description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Bundle:
    """Write ``model`` as an anyedge bundle (``manifest.json`` + ``model.bnn``).

    Args:
        model: the packed network.
        out: bundle directory to create or replace.
        name: model name (e.g. ``"bnn-racketsports"``).
        labels: class names, one per output.
        score_scale: from :func:`convert_bnn`; confidences are ``softmax(score_scale * scores)``.
        channel_names: optional names of the sensor channels.
        sample_rate_hz: optional sensor rate the model was trained at.
        description: a line of text for the manifest.
        extra: more manifest fields (training settings, accuracy...).

    Raises:
        ConversionError: the labels do not match the model's classes.
    """
    labels = [str(s) for s in labels]
    if len(labels) != model.n_classes or len(set(labels)) != len(labels):
        raise ConversionError(f"expected {model.n_classes} distinct labels, got {labels}")
    blob = serialize_bnn(model)
    extra = dict(extra or {})
    known = {"labels", "window", "output", "model", "model_file", "engine", "target", "precision"} & set(extra)
    if known:
        raise ConversionError(f"extra may not override the manifest's own fields {sorted(known)}")
    manifest = Manifest(
        model=ModelCard(name, "bnn", "activity_classification", description),
        model_file=MODEL_FILE,
        engine="bnn",
        target="bnn",
        precision=BNN_PRECISION,
        labels=tuple(labels),
        window=Window(model.window, model.channels, tuple(channel_names) if channel_names else None,
                      sample_rate_hz),
        output=ScoreOutput(float(score_scale), "int32"),
        extra={
            "input_quantization": {
                "scheme": "int8 per channel: round(clamp((x - offset) * inv_scale, -127, 127))",
                "offset": [float(v) for v in model.offset],
                "inv_scale": [float(v) for v in model.inv_scale],
            },
            "memory": {"model_file_bytes": len(blob), "parameter_bytes": model.nbytes,
                       "activation_words": model.scratch_words},
            **extra,
        },
    )
    return write_bundle(out, {MODEL_FILE: blob}, manifest)


def _c_array(ctype: str, cname: str, values: Sequence[str], per_line: int = 8) -> str:
    lines = [", ".join(values[i : i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n    ".join(lines) if lines else "0"
    return f"static const {ctype} {cname}[{max(len(values), 1)}] = {{\n    {body}\n}};\n"


def _c_float(v: np.float32) -> str:
    return float(v).hex() + "f"  # hexadecimal literal: the exact float32 value


def _c_i32(v: int) -> str:
    return "(-2147483647 - 1)" if v == _I32_MIN else str(int(v))


def c_header(model: BnnModel, *, name: str, labels: Sequence[str] | None = None) -> str:
    """The C header that holds ``model`` as ``const`` arrays for ``anyedge_bnn.c``.

    The header defines ``aebnn_model_<name>``, ``AEBNN_<NAME>_ARENA_WORDS`` (the ``uint32_t``
    work area ``aebnn_run`` needs) and, unless already defined, ``AEBNN_DEFAULT_MODEL``.

    Args:
        model: the packed network.
        name: the model's name: written (escaped) in the header's comment; its C identifier stem
            comes from :func:`~anyedge.targets.ctext.c_ident`.
        labels: class names, emitted as ``aebnn_<name>_labels``.
    """
    ident = c_ident(name)
    up = ident.upper()
    out = [
        f"/* {c_comment(name)}: binary activity-recognition network, generated by anyedge.converters.bnn. "
        "Do not edit. */\n",
        f"#ifndef AEBNN_MODEL_{up}_H\n#define AEBNN_MODEL_{up}_H\n\n#include \"anyedge_bnn.h\"\n\n",
        _c_array("float", f"aebnn_{ident}_offset", [_c_float(v) for v in model.offset], 4),
        _c_array("float", f"aebnn_{ident}_inv_scale", [_c_float(v) for v in model.inv_scale], 4),
    ]
    rows = []
    for i, layer in enumerate(model.layers):
        out.append(_c_array("uint32_t", f"aebnn_{ident}_w{i}", [f"0x{int(v):08x}u" for v in layer.weights.ravel()]))
        out.append(_c_array("int32_t", f"aebnn_{ident}_t{i}", [_c_i32(int(v)) for v in layer.thresholds], 8))
        out.append(_c_array("uint8_t", f"aebnn_{ident}_f{i}", [str(int(v)) for v in layer.flip], 16))
        kind = {"conv_q8": "AEBNN_CONV_Q8", "conv_bin": "AEBNN_CONV_BIN", "out_bin": "AEBNN_OUT_BIN"}[layer.kind]
        rows.append(
            f"    {{{kind}, {layer.in_len}u, {layer.in_ch}u, {layer.out_ch}u, {layer.kernel}u, {layer.pool}u, "
            f"{layer.mult}u, {layer.words_per_row}u, aebnn_{ident}_w{i}, aebnn_{ident}_t{i}, aebnn_{ident}_f{i}}}"
        )
    out.append(f"static const aebnn_layer aebnn_{ident}_layers[{len(rows)}] = {{\n" + ",\n".join(rows) + "\n};\n")
    if labels is not None:
        out.append(f"static const char *const aebnn_{ident}_labels[{len(labels)}] = {{"
                   + ", ".join(c_string(str(s)) for s in labels) + "};\n")
    out.append(
        f"static const aebnn_model aebnn_model_{ident} = {{\n"
        f"    {model.window}u, {model.channels}u, {model.n_classes}u, {len(model.layers)}u,\n"
        f"    aebnn_{ident}_offset, aebnn_{ident}_inv_scale, aebnn_{ident}_layers, {model.scratch_words}u\n}};\n\n"
        f"#define AEBNN_{up}_ARENA_WORDS AEBNN_ARENA_WORDS({model.window}u, {model.channels}u, {model.scratch_words}u)\n"
        f"#ifndef AEBNN_DEFAULT_MODEL\n#define AEBNN_DEFAULT_MODEL aebnn_model_{ident}\n"
        f"#define AEBNN_DEFAULT_ARENA_WORDS AEBNN_{up}_ARENA_WORDS\n#endif\n\n#endif\n"
    )
    return "".join(out)


def write_c_header(
    model: BnnModel, path: str | os.PathLike[str], *, name: str, labels: Sequence[str] | None = None
) -> Path:
    """Write :func:`c_header` to ``path`` and return it."""
    p = Path(path)
    p.write_text(c_header(model, name=name, labels=labels))
    return p
