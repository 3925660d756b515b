"""The packed binary-network file (``.bnn``): an integer-only model in a few kilobytes.

A model is a chain of layers over a ``(window, channels)`` sensor window:

``conv_q8``
    The first layer. Sensor values are quantized to int8 per channel
    (``q = round(clamp((x - offset) * inv_scale, -127, 127))``, halves away from zero, in
    float32), then convolved over time with binary (+1/-1) weights:
    ``acc = sum(w * q)``. Output bit = ``(acc >= threshold) XOR flip``, max-pooled over
    time (an OR of bits).
``conv_bin``
    A binary layer: input and weights are bits (1 means +1, 0 means -1),
    ``acc = n_bits - 2 * popcount(x XOR w)``, then the same threshold, flip and pool. A
    dense layer is a ``conv_bin`` whose kernel spans the whole input length.
``out_bin``
    The last layer: ``score = acc * mult + bias`` (int32), one per class.

Activations are packed along channels, 32 per little-endian ``uint32`` word, bit ``c % 32`` of
word ``c // 32``; a time step holds ``ceil(channels / 32)`` words and unused bits are 0. A
``conv_q8`` weight row holds the bits of ``(k, c)`` at bit index ``k * channels + c``; a
``conv_bin`` weight row holds ``kernel`` time steps of input words, so a receptive field is a
contiguous run of words in both.

File layout (all little-endian)::

    b"AEBNN\\x00\\x01\\x00"                    magic + format version 1
    u32 window, channels, n_classes, n_layers
    f32 offset[channels], f32 inv_scale[channels]
    per layer:
        u32 kind (1 conv_q8, 2 conv_bin, 3 out_bin), in_len, in_ch, out_ch, kernel, pool,
            mult, words_per_row
        u32 weights[out_ch * words_per_row]
        i32 thresholds[out_ch]          (out_bin: bias)
        u8  flip[out_ch], zero-padded to a multiple of 4 bytes
    u32 crc32 of every byte before it
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ModelLoadError

__all__ = [
    "MAGIC",
    "KINDS",
    "MAX_DIM",
    "BnnLayer",
    "BnnModel",
    "words_for",
    "read_bnn",
    "write_bnn",
    "parse_bnn",
    "serialize_bnn",
]

MAGIC = b"AEBNN\x00\x01\x00"
KINDS = {"conv_q8": 1, "conv_bin": 2, "out_bin": 3}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
MAX_DIM = 1 << 16  # no dimension of a model for a microcontroller comes near this
_MAX_FILE = 16 << 20


def words_for(bits: int) -> int:
    """``uint32`` words that hold ``bits`` bits."""
    return (int(bits) + 31) // 32


@dataclass(frozen=True)
class BnnLayer:
    """One layer of a packed binary network.

    Attributes:
        kind: ``"conv_q8"``, ``"conv_bin"`` or ``"out_bin"``.
        in_len: time steps in.
        in_ch: channels in (int8 sensor channels for ``conv_q8``, bits otherwise).
        out_ch: output channels (bits), or classes for ``out_bin``.
        kernel: taps over time (``in_len`` for a dense layer).
        pool: max-pool size and stride over time (1: none).
        mult: ``out_bin`` score multiplier (1 elsewhere).
        weights: ``(out_ch, words_per_row)`` uint32 packed +1/-1 weights.
        thresholds: ``(out_ch,)`` int32 thresholds (``out_bin``: biases).
        flip: ``(out_ch,)`` uint8, 1 where the output bit is inverted (a negative batch-norm scale).
    """

    kind: str
    in_len: int
    in_ch: int
    out_ch: int
    kernel: int
    pool: int
    mult: int
    weights: np.ndarray
    thresholds: np.ndarray
    flip: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelLoadError(f"layer kind must be one of {list(KINDS)}, got {self.kind!r}")
        for name in ("in_len", "in_ch", "out_ch", "kernel", "pool", "mult"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 1 <= int(v) <= MAX_DIM:
                raise ModelLoadError(f"{self.kind} layer: {name} must be an integer in 1..{MAX_DIM}, got {v!r}")
        if self.kernel > self.in_len:
            raise ModelLoadError(f"{self.kind} layer: kernel {self.kernel} is longer than its input ({self.in_len} steps)")
        if self.kind != "out_bin" and self.mult != 1:
            raise ModelLoadError(f"{self.kind} layer: mult must be 1, got {self.mult}")
        conv_len = self.in_len - self.kernel + 1
        if conv_len // self.pool < 1:
            raise ModelLoadError(f"{self.kind} layer: pool {self.pool} leaves no output from {conv_len} steps")
        if self.kind == "out_bin" and (conv_len != 1 or self.pool != 1):
            raise ModelLoadError("out_bin layer must span its whole input (kernel == in_len) with pool 1")
        want = (self.out_ch, self.words_per_row)
        if self.weights.dtype != np.uint32 or self.weights.shape != want:
            raise ModelLoadError(f"{self.kind} layer: weights must be uint32 {want}, got {self.weights.dtype} {self.weights.shape}")
        if self.thresholds.dtype != np.int32 or self.thresholds.shape != (self.out_ch,):
            raise ModelLoadError(f"{self.kind} layer: thresholds must be int32 ({self.out_ch},), got "
                                 f"{self.thresholds.dtype} {self.thresholds.shape}")
        if self.flip.dtype != np.uint8 or self.flip.shape != (self.out_ch,) or (self.flip > 1).any():
            raise ModelLoadError(f"{self.kind} layer: flip must be uint8 0/1 of shape ({self.out_ch},)")
        if self.kind == "out_bin" and self.flip.any():
            raise ModelLoadError("out_bin layer has no threshold, so flip must be all 0")
        if (self.weights & self.pad_mask()).any():
            raise ModelLoadError(f"{self.kind} layer: weight padding bits are set; the file is damaged")

    @property
    def in_words(self) -> int:
        """Words per input time step (0 for ``conv_q8``, whose input is int8)."""
        return 0 if self.kind == "conv_q8" else words_for(self.in_ch)

    @property
    def words_per_row(self) -> int:
        """Words in one output channel's weight row."""
        if self.kind == "conv_q8":
            return words_for(self.kernel * self.in_ch)
        return self.kernel * words_for(self.in_ch)

    @property
    def n_bits(self) -> int:
        """Products summed per output: the accumulator range is ``[-n_bits, n_bits]`` (times 127 for int8)."""
        return self.kernel * self.in_ch

    @property
    def out_len(self) -> int:
        """Time steps out."""
        return (self.in_len - self.kernel + 1) // self.pool

    @property
    def out_words(self) -> int:
        """Words per output time step."""
        return words_for(self.out_ch)

    def pad_mask(self) -> np.ndarray:
        """``(words_per_row,)`` uint32 with the bits that carry no weight set."""
        used = np.zeros(self.words_per_row * 32, dtype=bool)
        if self.kind == "conv_q8":
            used[: self.kernel * self.in_ch] = True
        else:
            w = words_for(self.in_ch)
            for k in range(self.kernel):
                used[k * w * 32 : k * w * 32 + self.in_ch] = True
        bits = (~used).reshape(-1, 32).astype(np.uint64)
        return (bits << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)

    @property
    def nbytes(self) -> int:
        """Bytes of parameters (weights, thresholds, flips)."""
        return int(self.weights.nbytes + self.thresholds.nbytes + self.flip.nbytes)


@dataclass(frozen=True)
class BnnModel:
    """A whole packed binary network.

    Attributes:
        window: samples per input window.
        channels: sensor channels per sample.
        offset: ``(channels,)`` float32 subtracted before quantizing.
        inv_scale: ``(channels,)`` float32 multiplied after subtracting.
        layers: the layers, ``conv_q8`` first and ``out_bin`` last.
    """

    window: int
    channels: int
    offset: np.ndarray
    inv_scale: np.ndarray
    layers: tuple[BnnLayer, ...]

    def __post_init__(self) -> None:
        if len(self.layers) < 2:
            raise ModelLoadError(f"a BNN needs at least a conv_q8 and an out_bin layer, got {len(self.layers)} layers")
        for name in ("offset", "inv_scale"):
            a = getattr(self, name)
            if a.dtype != np.float32 or a.shape != (self.channels,) or not np.isfinite(a).all():
                raise ModelLoadError(f"{name} must be {self.channels} finite float32 values, got {a.dtype} {a.shape}")
        first, last = self.layers[0], self.layers[-1]
        if first.kind != "conv_q8" or first.in_len != self.window or first.in_ch != self.channels:
            raise ModelLoadError(
                f"first layer must be conv_q8 over ({self.window}, {self.channels}), got {first.kind} "
                f"over ({first.in_len}, {first.in_ch})")
        if last.kind != "out_bin":
            raise ModelLoadError(f"last layer must be out_bin, got {last.kind}")
        for i, (a, b) in enumerate(zip(self.layers, self.layers[1:]), start=1):
            if b.kind == "conv_q8" or (a.kind == "out_bin"):
                raise ModelLoadError(f"layer {i}: conv_q8 only comes first and out_bin only last")
            if (b.in_len, b.in_ch) != (a.out_len, a.out_ch):
                raise ModelLoadError(
                    f"layer {i} expects ({b.in_len}, {b.in_ch}) input but layer {i - 1} gives ({a.out_len}, {a.out_ch})")
        # int8 accumulators of conv_q8 must fit int32 comfortably; binary ones trivially do
        if first.n_bits * 127 >= 2**30 or last.n_bits * last.mult >= 2**30 or (
            np.abs(last.thresholds.astype(np.int64)) >= 2**30
        ).any():
            raise ModelLoadError("layer sizes or biases would overflow 32-bit accumulators")

    @property
    def n_classes(self) -> int:
        return self.layers[-1].out_ch

    @property
    def nbytes(self) -> int:
        """Parameter bytes: every layer plus the quantization constants."""
        return sum(layer.nbytes for layer in self.layers) + int(self.offset.nbytes + self.inv_scale.nbytes)

    @property
    def scratch_words(self) -> int:
        """``uint32`` words of one activation buffer big enough for any layer's output."""
        return max(layer.out_len * layer.out_words for layer in self.layers[:-1])


def serialize_bnn(model: BnnModel) -> bytes:
    """The ``.bnn`` bytes of ``model``."""
    parts = [MAGIC, struct.pack("<4I", model.window, model.channels, model.n_classes, len(model.layers)),
             model.offset.astype("<f4").tobytes(), model.inv_scale.astype("<f4").tobytes()]
    for layer in model.layers:
        parts.append(struct.pack("<8I", KINDS[layer.kind], layer.in_len, layer.in_ch, layer.out_ch,
                                 layer.kernel, layer.pool, layer.mult, layer.words_per_row))
        parts.append(layer.weights.astype("<u4").tobytes())
        parts.append(layer.thresholds.astype("<i4").tobytes())
        flip = layer.flip.astype(np.uint8).tobytes()
        parts.append(flip + b"\x00" * (-len(flip) % 4))
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelLoadError(f"{self.where} is truncated: expected {n} more bytes of {what} at offset "
                                 f"{self.pos}, the file has {len(self.data) - self.pos}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * size, what), dtype=dtype).copy()


def parse_bnn(data: bytes, where: str = "<bytes>") -> BnnModel:
    """Parse and validate ``.bnn`` bytes.

    Raises:
        ModelLoadError: wrong magic or version, checksum mismatch, truncated or oversized
            data, or layers that do not fit together.
    """
    if len(data) < len(MAGIC) + 4:
        raise ModelLoadError(f"{where} is {len(data)} bytes, too short to be a .bnn model")
    if data[:5] != MAGIC[:5]:
        raise ModelLoadError(f"{where} is not a .bnn model (expected magic {MAGIC[:5]!r}, got {data[:5]!r})")
    if data[5:8] != MAGIC[5:8]:
        raise ModelLoadError(f"{where} is .bnn format version {data[5:8].hex()}, this anyedge reads {MAGIC[5:8].hex()}")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    actual = zlib.crc32(body) & 0xFFFFFFFF
    if actual != crc:
        raise ModelLoadError(f"{where} is corrupted: its crc32 is {actual:08x}, the file records {crc:08x}")
    r = _Reader(body, where)
    r.take(len(MAGIC), "magic")
    window, channels, n_classes, n_layers = struct.unpack("<4I", r.take(16, "header"))
    for name, v in (("window", window), ("channels", channels), ("classes", n_classes), ("layers", n_layers)):
        if not 1 <= v <= MAX_DIM:
            raise ModelLoadError(f"{where}: {name} must be in 1..{MAX_DIM}, the file says {v}")
    offset = r.array("<f4", channels, "offsets").astype(np.float32)
    inv_scale = r.array("<f4", channels, "scales").astype(np.float32)
    layers = []
    for i in range(n_layers):
        kind, in_len, in_ch, out_ch, kernel, pool, mult, wpr = struct.unpack("<8I", r.take(32, f"layer {i} header"))
        if kind not in _KIND_NAMES:
            raise ModelLoadError(f"{where}: layer {i} has unknown kind {kind}")
        if not (1 <= out_ch <= MAX_DIM and 1 <= wpr <= MAX_DIM):
            raise ModelLoadError(f"{where}: layer {i} has implausible sizes (out_ch={out_ch}, words_per_row={wpr})")
        weights = r.array("<u4", out_ch * wpr, f"layer {i} weights").astype(np.uint32).reshape(out_ch, wpr)
        thresholds = r.array("<i4", out_ch, f"layer {i} thresholds").astype(np.int32)
        flip = r.array("u1", out_ch, f"layer {i} flips")
        r.take(-out_ch % 4, f"layer {i} padding")
        try:
            layer = BnnLayer(_KIND_NAMES[kind], in_len, in_ch, out_ch, kernel, pool, mult, weights, thresholds, flip)
        except ModelLoadError as e:
            raise ModelLoadError(f"{where}: layer {i}: {e}") from None
        if layer.words_per_row != wpr:
            raise ModelLoadError(f"{where}: layer {i} records {wpr} words per row, its shape needs {layer.words_per_row}")
        layers.append(layer)
    if r.pos != len(body):
        raise ModelLoadError(f"{where} has {len(body) - r.pos} unexpected bytes after the last layer")
    try:
        model = BnnModel(window, channels, offset, inv_scale, tuple(layers))
    except ModelLoadError as e:
        raise ModelLoadError(f"{where}: {e}") from None
    if model.n_classes != n_classes:
        raise ModelLoadError(f"{where} says {n_classes} classes, its last layer has {model.n_classes}")
    return model


def read_bnn(path: str | os.PathLike[str]) -> BnnModel:
    """Read and validate a ``.bnn`` file.

    Raises:
        ModelLoadError: the file is missing, too large, or not a valid ``.bnn`` model.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"expected a .bnn model file, but {p} does not exist")
    size = p.stat().st_size
    if size > _MAX_FILE:
        raise ModelLoadError(f"{p} is {size} bytes; a .bnn model is at most {_MAX_FILE}")
    return parse_bnn(p.read_bytes(), str(p))


def write_bnn(model: BnnModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a ``.bnn`` file and return its path."""
    p = Path(path)
    p.write_bytes(serialize_bnn(model))
    return p
