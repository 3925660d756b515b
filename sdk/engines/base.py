"""The engine protocol: tensors in, tensors out."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["TensorSpec", "gather_async", "Engine", "PRECISIONS", "model_precision", "check_feeds", "quantize_input", "dequantize_output",
           "notice"]

#: What ``engine.precision`` may say, most exact first. ``int8w``: int8 weights, float activations;
#: ``int8-mixed``: int8 with some weighted layers kept in float; ``binary``: the bnn engine.
PRECISIONS = ("fp32", "bf16", "fp16", "int8w", "int8-mixed", "int8", "binary")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a loaded model.

    Attributes:
        name: tensor name in the model file.
        shape: dimensions; ``-1`` where the model leaves a dimension dynamic.
        dtype: numpy dtype name, e.g. ``"float32"``.
        quantization: ``(scale, zero_point)`` for quantized tensors, else ``None``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None = None


@runtime_checkable
class Engine(Protocol):
    """What every engine adapter provides."""

    name: str
    precision: str  # what actually runs: one of PRECISIONS
    device: str  # where it actually runs: "CPU", OpenVINO's execution devices ("GPU.0"), ONNX Runtime's provider ("CUDA")
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once; returns outputs in the order of :attr:`outputs`."""
        ...

    def close(self) -> None:
        """Free the engine's resources; the engine cannot run afterwards."""
        ...


def model_precision(*, quantized: int, weight_only: int, floating: int, fp16_weights: bool,
                    compute: str = "fp32", quantized_elsewhere: bool = False) -> str:
    """Name the precision a model runs at from a count of its weighted layers (conv / matmul).

    Args:
        quantized: layers whose weights and activations are int8.
        weight_only: layers with int8 weights and float activations.
        floating: layers left in float.
        fp16_weights: the float weights are stored as fp16.
        compute: the precision the engine computes float layers in (``fp32``, ``bf16``, ``fp16``).
        quantized_elsewhere: other ops (adds, pooling, resizes...) run on int8 tensors.
    """
    if quantized:
        return "int8" if not (weight_only or floating) else "int8-mixed"
    if quantized_elsewhere:  # every weighted layer kept in float, the rest still int8
        return "int8-mixed"
    if weight_only:
        return "int8w"
    if compute != "fp32":
        return compute
    return "fp16" if fp16_weights else "fp32"


def check_feeds(inputs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`~anyedge.errors.InputError` when feeds do not match the model's inputs."""
    from ..errors import InputError

    names = {s.name for s in inputs}
    missing = names - set(feeds)
    extra = set(feeds) - names
    if missing or extra:
        raise InputError(f"engine expects inputs {sorted(names)}, got {sorted(feeds)}")
    for spec in inputs:
        arr = feeds[spec.name]
        if arr.dtype != np.dtype(spec.dtype):
            raise InputError(f"input {spec.name!r} expects dtype {spec.dtype}, got {arr.dtype}")
        if len(arr.shape) != len(spec.shape) or any(
            d >= 0 and d != a for d, a in zip(spec.shape, arr.shape)
        ):
            raise InputError(f"input {spec.name!r} expects shape {spec.shape}, got {arr.shape}")


def quantize_input(spec: TensorSpec, x: np.ndarray) -> np.ndarray:
    """Bring a float32 tensor to the dtype an input wants (affine int8/uint8 quantization)."""
    if spec.dtype in ("int8", "uint8") and spec.quantization:
        scale, zero = spec.quantization
        info = np.iinfo(spec.dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(spec.dtype)
    return x if x.dtype == np.dtype(spec.dtype) else x.astype(spec.dtype)


def dequantize_output(spec: TensorSpec, y: np.ndarray) -> np.ndarray:
    """Float32 view of an output, undoing affine quantization where the model has it."""
    if spec.quantization and y.dtype in (np.int8, np.uint8, np.int16):
        scale, zero = spec.quantization
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32, copy=False)


_NOTICED: set[str] = set()
_NOTICE_LOCK = threading.Lock()


def notice(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning once per process.

    A fallback that several models meet (a detector and an embedder both asked for a missing
    GPU) is said once, not once per model.
    """
    with _NOTICE_LOCK:
        if message in _NOTICED:
            return
        _NOTICED.add(message)
    logger.warning("%s", message)


def gather_async(run_each: Callable[..., int], feeds: Iterable[Mapping[str, np.ndarray]], requests: int | None,
                 engine: str) -> list[list[np.ndarray]]:
    """Every output of an engine's ``run_async_each(feeds, on_result, requests)``, in feed order.

    Raises:
        EngineError: the engine reported fewer results than feeds it ran.
    """
    from ..errors import EngineError

    results: dict[int, list[np.ndarray]] = {}

    def keep(k: int, outputs: list[np.ndarray], _ms: float) -> None:
        results[k] = outputs

    n = run_each(feeds, keep, requests)
    missing = n - len(results)
    if missing:
        raise EngineError(f"{engine} gave no result for {missing} of {n} asynchronous runs")
    return [results[k] for k in range(n)]
