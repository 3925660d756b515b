"""LiteRT adapter (``ai_edge_litert``; ``tflite_runtime`` as a fallback import)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import EngineError, EngineUnavailableError, ModelLoadError
from .base import TensorSpec, check_feeds, model_precision

__all__ = ["LiteRTEngine", "load"]


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:  # the predecessor package; dead under numpy 2 but fine on older stacks
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter
    except ImportError as e:
        raise EngineUnavailableError(
            "engine 'litert' is not installed: pip install ai-edge-litert"
        ) from e


# Lines LiteRT's native code writes to fd 2 on every load; nothing a user can act on.
_NOISE = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
_FD_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_noise_filtered() -> Iterator[None]:
    """Drop LiteRT's native INFO line from fd 2; everything else written meanwhile is replayed.

    The line comes from C++ (``TFLITE_LOG_PROD``), below Python's ``sys.stderr``, and no
    option or environment variable of ai-edge-litert turns it off, so fd 2 is pointed at a
    temporary file while the interpreter allocates its tensors.
    """
    fd = 2  # native code writes to descriptor 2 whatever sys.stderr is
    with _FD_LOCK, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            rest = b"".join(line for line in tmp.read().splitlines(keepends=True)
                            if line.rstrip(b"\r\n") not in _NOISE)
            if rest:
                os.write(fd, rest)


_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D"}
_INT = (np.int8, np.uint8, np.int16, np.int4) if hasattr(np, "int4") else (np.int8, np.uint8, np.int16)


def _precision(interp: Any) -> str:
    """What the interpreter computes in, from each weighted op's operand types.

    XNNPACK runs float graphs in fp32 on every CPU unless told to force fp16 (anyedge never
    does), so the model's own types decide: fp16 weights behind DEQUANTIZE are expanded to fp32.
    """
    try:
        ops = interp._get_ops_details()
    except (AttributeError, ValueError, RuntimeError):
        return "fp32"
    producer = {int(o): op for op in ops for o in op["outputs"]}
    quantized = weight_only = floating = 0
    fp16 = False
    for op in ops:
        types = list(op.get("operand_types") or [])
        if op["op_name"] not in _WEIGHTED or len(types) < 2:
            continue
        act, w = types[0], types[1]
        src = producer.get(int(op["inputs"][1]))
        if src is not None and src["op_name"] == "DEQUANTIZE" and src.get("operand_types"):
            w = src["operand_types"][0]
        if w in _INT and act in _INT:
            quantized += 1
        elif w in _INT:
            weight_only += 1
        else:
            floating += 1
            fp16 = fp16 or w is np.float16
    elsewhere = any(op["op_name"] == "QUANTIZE" for op in ops)
    return model_precision(quantized=quantized, weight_only=weight_only, floating=floating, fp16_weights=fp16,
                           quantized_elsewhere=elsewhere)


def _check_flatbuffer(path: Path) -> None:
    """Refuse files that are not TFLite flatbuffers before the C++ loader sees them."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if size < 8 or head[4:8] != b"TFL3":
        raise ModelLoadError(f"{path} is not a TFLite model (no TFL3 identifier)")


def _spec(d: Mapping[str, Any], names: Mapping[int, str]) -> TensorSpec:
    q = d.get("quantization") or (0.0, 0)
    quant = (float(q[0]), int(q[1])) if q and q[0] else None
    shape = tuple(int(x) for x in d.get("shape_signature", d["shape"]))
    return TensorSpec(names.get(d["index"], d["name"]), shape, np.dtype(d["dtype"]).name, quant)


def _signature_names(interp: Any) -> dict[int, str]:
    """Tensor index -> SignatureDef name: these survive quantization, tensor names may not."""
    try:
        if not interp.get_signature_list():
            return {}
        runner = interp.get_signature_runner()
        details = {**runner.get_input_details(), **runner.get_output_details()}
        return {int(v["index"]): k for k, v in details.items()}
    except (ValueError, RuntimeError, KeyError, AttributeError):
        return {}


class LiteRTEngine:
    """A .tflite model on the LiteRT interpreter (XNNPACK on CPU by default).

    Thread-safe: one interpreter holds one set of input/output tensors, so ``run`` takes a
    lock around set -> invoke -> get. Threads sharing an engine therefore take turns; for
    parallel throughput open one engine per thread (see the README, "Threads").
    """

    name = "litert"

    def __init__(self, path: Path, *, threads: int | None = None, delegates: Any = None) -> None:
        _check_flatbuffer(path)
        cls = _interpreter_class()
        try:
            self._interp = cls(
                model_path=str(path),
                num_threads=threads if threads else None,
                experimental_delegates=delegates,
            )
            with _native_noise_filtered():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelLoadError(f"LiteRT cannot load {path}: {e}") from e
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        names = _signature_names(self._interp)
        self.inputs = tuple(_spec(d, names) for d in self._in)
        self.outputs = tuple(_spec(d, names) for d in self._out)
        self.path = path
        self._lock = threading.Lock()
        self.precision = _precision(self._interp)
        self.device = "CPU" if not delegates else "CPU+delegate"  # XNNPACK on the CPU; a delegate may move ops

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        check_feeds(self.inputs, feeds)
        arrays = [np.ascontiguousarray(feeds[spec.name]) for spec in self.inputs]
        try:
            with self._lock:  # the interpreter's tensors are shared state: one call at a time
                interp = self._interp
                if interp is None:
                    raise EngineError("engine is closed")
                for i, arr in enumerate(arrays):
                    d = self._in[i]
                    if tuple(arr.shape) != tuple(d["shape"]):
                        interp.resize_tensor_input(d["index"], arr.shape)
                        with _native_noise_filtered():
                            interp.allocate_tensors()
                        self._in = interp.get_input_details()
                        self._out = interp.get_output_details()
                    interp.set_tensor(self._in[i]["index"], arr)
                interp.invoke()
                return [interp.get_tensor(d["index"]).copy() for d in self._out]
        except (ValueError, RuntimeError) as e:
            raise EngineError(f"LiteRT failed running {self.path.name}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._interp = None


def load(path: Path, *, threads: int | None = None, **options: Any) -> LiteRTEngine:
    return LiteRTEngine(path, threads=threads, **options)
