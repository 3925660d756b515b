"""ONNX Runtime adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import EngineError, ModelLoadError
from .base import TensorSpec, check_feeds, model_precision

log = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeEngine", "load"]

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
_INTEGER = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


def _precision(path: Path) -> str:
    """What a model file computes in: QDQ int8 (whole or mixed), fp16 weights, or fp32.

    ONNX Runtime's CPU provider computes float layers exactly as stored (fp32 stays fp32 on every
    CPU; the arm64 bf16 fast-math GEMM is switched off in the session), so the file decides.
    """
    try:
        import onnx
    except ImportError:  # onnx is optional at run time: a coarse look at the bytes
        data = path.read_bytes()
        return "int8" if b"DequantizeLinear" in data or b"QLinearConv" in data else "fp32"
    g = onnx.load(str(path), load_external_data=False).graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name: t.data_type for t in g.initializer}
    quantized = weight_only = floating = 0
    fp16 = False
    for n in g.node:
        if n.op_type in _INTEGER:
            quantized += 1
            continue
        if n.op_type not in _WEIGHTED or len(n.input) < 2:
            continue
        act, w = (producer.get(n.input[i]) for i in (0, 1))
        w_int = w is not None and w.op_type == "DequantizeLinear"
        if w_int and act is not None and act.op_type == "DequantizeLinear":
            quantized += 1
        elif w_int:
            weight_only += 1
        else:
            floating += 1
            fp16 = fp16 or inits.get(n.input[1]) == onnx.TensorProto.FLOAT16
    elsewhere = any(n.op_type == "QuantizeLinear" for n in g.node)
    return model_precision(quantized=quantized, weight_only=weight_only, floating=floating, fp16_weights=fp16,
                           quantized_elsewhere=elsewhere)


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, arg.type))


class OnnxRuntimeEngine:
    """An .onnx model on ONNX Runtime.

    ``providers`` defaults to the CPU provider; on a Jetson pass
    ``["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]``.
    ``spin=True`` lets idle worker threads spin-wait (lower latency for back-to-back runs on a
    dedicated core, more power).
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        providers: Sequence[Any] | None = None,
        spin: bool = False,
    ) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT threads spin-wait by default; between frames that steals the CPU from our own
        # pre/post-processing (measured: 5 ms vs 1.8 ms letterbox at 640x640) and burns battery.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
        # fp32 stays fp32: no bf16 fast-math GEMM (an opt-in on arm64 CPUs with bf16)
        so.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
        wanted = list(providers or ["CPUExecutionProvider"])
        have = set(ort.get_available_providers())
        usable = [p for p in wanted if (p[0] if isinstance(p, tuple) else p) in have] or ["CPUExecutionProvider"]
        if len(usable) < len(wanted):
            log.info("ONNX Runtime providers %s are not installed here; using %s",
                     [p for p in wanted if p not in usable], usable)
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=so, providers=usable)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... classes
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {e}") from e
        self.inputs = tuple(_spec(a) for a in self._sess.get_inputs())
        self.outputs = tuple(_spec(a) for a in self._sess.get_outputs())
        self.providers = tuple(self._sess.get_providers())
        self.precision = _precision(path)
        self.path = path

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once. Thread-safe: ``InferenceSession.run`` may be called from many threads and
        nothing else is shared between calls (the feeds dict and the outputs are per call)."""
        sess = self._sess
        if sess is None:
            raise EngineError("engine is closed")
        check_feeds(self.inputs, feeds)
        try:
            return list(sess.run(None, dict(feeds)))
        except Exception as e:
            raise EngineError(f"ONNX Runtime failed running {self.path.name}: {e}") from e

    def close(self) -> None:
        self._sess = None


def load(path: Path, *, threads: int | None = None, **options: Any) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(path, threads=threads, **options)
