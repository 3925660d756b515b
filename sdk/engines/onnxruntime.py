"""ONNX Runtime adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DeviceUnavailableError, EngineError, InputError, ModelLoadError
from .base import TensorSpec, check_feeds, model_precision, notice

log = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeEngine", "load", "PROVIDERS", "provider_name", "resolve_providers"]

#: short names of ONNX Runtime's execution providers -> their real names
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "cann": "CANNExecutionProvider",
    "rknpu": "RknpuExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
}
# the PyPI package whose onnxruntime build carries a provider
_PACKAGE = {"CUDAExecutionProvider": "onnxruntime-gpu", "TensorrtExecutionProvider": "onnxruntime-gpu",
            "OpenVINOExecutionProvider": "onnxruntime-openvino", "DmlExecutionProvider": "onnxruntime-directml",
            "QNNExecutionProvider": "onnxruntime-qnn"}
_SUFFIX = "ExecutionProvider"


def provider_name(name: str) -> str:
    """``"cuda"`` -> ``"CUDAExecutionProvider"``; real names pass (in any letter case).

    Raises:
        InputError: neither a short name nor a name ending in ``ExecutionProvider``; the message
            lists the short names.
    """
    text = name.strip() if isinstance(name, str) else ""
    full = {v.lower(): v for v in PROVIDERS.values()}
    if text.lower() in PROVIDERS:
        return PROVIDERS[text.lower()]
    if text.lower() in full:
        return full[text.lower()]
    if text.endswith(_SUFFIX) and len(text) > len(_SUFFIX) and text.isidentifier():
        return text  # one anyedge does not list; ONNX Runtime says whether it has it
    raise InputError(f"unknown ONNX Runtime provider {name!r}; expected {', '.join(PROVIDERS)} or a full name "
                     "such as CUDAExecutionProvider")


def _name(p: Any) -> str:
    return str(p[0] if isinstance(p, tuple) else p)


def resolve_providers(wanted: Sequence[Any], available: Sequence[str], *, strict: bool = False) -> list[Any]:
    """The providers to start a session with, given those this onnxruntime build has.

    Missing providers are dropped with one notice (what was asked, what is here, what runs
    instead); when none is left the CPU provider runs.

    Raises:
        DeviceUnavailableError: ``strict`` and a provider asked for is not in this build.
    """
    missing = [_name(p) for p in wanted if _name(p) not in available]
    if not missing:
        return list(wanted)
    usable = [p for p in wanted if _name(p) in available] or ["CPUExecutionProvider"]
    packages = sorted({_PACKAGE[m] for m in missing if m in _PACKAGE})
    comes = f"; {', '.join(missing)} come{'s' if len(missing) == 1 else ''} with {' or '.join(packages)}" if packages else ""
    what = (f"ONNX Runtime provider{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not available in this onnxruntime "
            f"(it has: {', '.join(available)}{comes})")
    if strict:
        raise DeviceUnavailableError(f"{what}; choose one it has, or allow the fallback to CPUExecutionProvider")
    notice(log, f"{what}; running on {', '.join(map(_name, usable))} instead")
    return usable

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

    Providers may be given by short name (``"cuda"``, ``"tensorrt"``, see :data:`PROVIDERS`). One
    this onnxruntime build lacks, or one that fails to start, is dropped with one logged notice
    (the CPU provider runs when none is left); ``strict_device=True`` raises
    :class:`~anyedge.errors.DeviceUnavailableError` instead. ``engine.providers`` lists the
    providers the session runs with, ``engine.device`` the first one's short form (``"CPU"``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        providers: Sequence[Any] | None = None,
        spin: bool = False,
        strict_device: bool = False,
    ) -> None:
        import onnxruntime as ort

        if isinstance(providers, str):
            providers = providers.split(",")
        wanted = [(provider_name(p[0]), p[1]) if isinstance(p, tuple) else provider_name(p)
                  for p in (providers or ["CPUExecutionProvider"])]

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
        usable = resolve_providers(wanted, ort.get_available_providers(), strict=strict_device)
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=so, providers=usable)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... classes
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {e}") from e
        self.providers = tuple(self._sess.get_providers())
        lost = [_name(p) for p in usable if _name(p) not in self.providers]
        if lost:  # in the build, but it could not start here (no driver, no device): ORT fell back
            what = (f"ONNX Runtime could not start {', '.join(lost)} for {path.name} (no device or driver for it "
                    "here)")
            if strict_device:
                self._sess = None
                raise DeviceUnavailableError(f"{what}; allow the fallback to CPUExecutionProvider")
            notice(log, f"{what}; running on {', '.join(self.providers)} instead")
        self.device = self.providers[0].removesuffix(_SUFFIX) if self.providers else "CPU"
        self.inputs = tuple(_spec(a) for a in self._sess.get_inputs())
        self.outputs = tuple(_spec(a) for a in self._sess.get_outputs())
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
