"""ONNX Runtime adapter."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import DeviceUnavailableError, EngineError, InputError, ModelLoadError
from .base import TensorSpec, check_feeds, gather_async, model_precision, notice

log = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeEngine", "load", "PROVIDERS", "provider_name", "resolve_providers", "profile_from_trace"]

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


# ONNX Runtime's element type names in a profile trace -> the precision an operator ran in
_TRACE_PRECISION = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8", "uint8": "int8",
                    "double": "fp64", "int32": "int32", "int64": "int64", "bool": "bool"}
_INTEGER_OPS = {*_INTEGER, "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearSigmoid", "QLinearGlobalAveragePool",
                "QLinearAveragePool", "QLinearLeakyRelu", "QLinearSoftmax", "DynamicQuantizeLinear"}


def _trace_precision(op_type: str, args: Mapping[str, Any]) -> str:
    if op_type in _INTEGER_OPS:
        return "int8"
    for entry in args.get("input_type_shape") or []:
        if isinstance(entry, dict) and entry:
            return _TRACE_PRECISION.get(str(next(iter(entry))), str(next(iter(entry))))
    return "?"


def profile_from_trace(events: Any, skip: int = 0) -> list[dict[str, Any]]:
    """Per-operator means per inference from an ONNX Runtime profile trace (its JSON list of events).

    Each node's ``*_kernel_time`` events are summed and divided by the number of ``model_run``
    events; the first ``skip`` runs (warm-up) and the node events inside them are left out. Returns ``[{"op", "type", "ms", "precision"}]``, slowest first; ``precision`` is the
    element type of the operator's first input (``int8`` for ONNX Runtime's integer kernels).

    Raises:
        EngineError: the trace is not a list of events or holds no run.
    """
    if not isinstance(events, list):
        raise EngineError(f"an ONNX Runtime profile trace is a JSON list of events, got {type(events).__name__}")
    model_runs = sorted((float(e.get("ts", 0)), float(e.get("dur", 0))) for e in events
                        if isinstance(e, dict) and e.get("cat") == "Session" and e.get("name") == "model_run")
    runs = len(model_runs) - skip
    if runs < 1:
        raise EngineError(f"the ONNX Runtime profile trace holds {len(model_runs)} model_run event(s), {skip} "
                          "skipped: nothing was profiled")
    after = model_runs[skip - 1][0] + model_runs[skip - 1][1] if skip else float("-inf")
    total: dict[str, list[Any]] = {}
    for e in events:
        if not isinstance(e, dict) or e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if float(e.get("ts", 0)) < after:
            continue
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        op = str(e["name"])[: -len("_kernel_time")]
        op_type = str(args.get("op_name", "?"))
        slot = total.setdefault(op, [op_type, 0.0, _trace_precision(op_type, args)])
        slot[1] += float(e.get("dur", 0)) / 1e3  # microseconds
    ops = [{"op": op, "type": t, "ms": round(ms / runs, 5), "precision": p} for op, (t, ms, p) in total.items()]
    return sorted(ops, key=lambda o: -o["ms"])


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, arg.type))


class OnnxRuntimeEngine:
    """An .onnx model on ONNX Runtime.

    ``providers`` defaults to the CPU provider; on a Jetson pass
    ``["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]``.
    ``spin=True`` lets idle worker threads spin-wait (lower latency for back-to-back runs on a
    dedicated core, more power). ``profile=True`` turns on ONNX Runtime's session profiling
    (every run is traced, which costs time): :meth:`profile` then gives the time per operator.

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
        profile: bool = False,
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
        self._profile_dir = None
        if profile:  # the trace goes to a folder of our own, read and removed by profile()
            self._profile_dir = tempfile.TemporaryDirectory(prefix="anyedge-ort-profile-")
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(self._profile_dir.name, "ort")
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

    @property
    def async_requests(self) -> int:
        """How many runs :meth:`run_async` keeps in flight by default: one per CPU core."""
        return max(1, os.cpu_count() or 1)

    def run_async(self, feeds: Iterable[Mapping[str, np.ndarray]],
                  requests: int | None = None) -> list[list[np.ndarray]]:
        """Run every feed on this one session from ``requests`` threads at once (default
        :attr:`async_requests`): ONNX Runtime's own parallel runs of one session.

        Returns:
            The outputs of each feed, in the order of ``feeds`` (as :meth:`run` would give them).

        Raises:
            InputError: a feed does not match the model's inputs.
            EngineError: the engine is closed or a run fails.
        """
        return gather_async(self.run_async_each, feeds, requests, "ONNX Runtime")

    def run_async_each(self, feeds: Iterable[Mapping[str, np.ndarray]],
                       on_result: Callable[[int, list[np.ndarray], float], None],
                       requests: int | None = None) -> int:
        """Run feeds on this one session from ``requests`` threads at once (default
        :attr:`async_requests`), handing each result to ``on_result(index, outputs, latency_ms)``
        as it completes; nothing is kept.

        ``feeds`` is read lazily: a thread takes the next feed when its run is done, so a
        generator that stops at a deadline starts its last run before it. ``latency_ms`` is the
        wall time of the run. ``on_result`` runs on those threads, several at once.

        Returns:
            How many feeds ran.

        Raises:
            InputError: a feed does not match the model's inputs.
            EngineError: the engine is closed or a run fails.
            Exception: what ``on_result`` raised (no further feed is started).
        """
        if self._sess is None:
            raise EngineError("engine is closed")
        it = iter(enumerate(feeds))
        take = threading.Lock()
        failed: list[BaseException] = []
        count = [0]

        def work() -> None:
            while not failed:
                try:
                    with take:
                        k, feed = next(it)
                        count[0] += 1
                except StopIteration:
                    return
                except BaseException as e:  # the feeds' own iterator failed
                    failed.append(e)
                    return
                try:
                    t0 = time.perf_counter()
                    got = self.run(feed)
                    on_result(k, got, (time.perf_counter() - t0) * 1e3)
                except BaseException as e:  # raised in the caller's thread once the others stop
                    failed.append(e)

        threads = [threading.Thread(target=work, name=f"anyedge-ort-run-{i}")
                   for i in range(max(1, int(requests or self.async_requests)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]
        return count[0]

    def profile(self, skip: int = 0) -> list[dict[str, Any]]:
        """Time per operator, per inference, over the runs since the engine was opened with
        ``profile=True``, the first ``skip`` left out (see :func:`profile_from_trace`). Ends the
        profiling: call it once.

        Raises:
            EngineError: not opened with ``profile=True``, closed, or profiled already.
        """
        if self._profile_dir is None:
            raise EngineError("this ONNX Runtime engine was not opened with profile=True, or its profile was taken already")
        sess = self._sess
        if sess is None:
            raise EngineError("engine is closed")
        try:
            trace = sess.end_profiling()
            events = json.loads(Path(trace).read_text())
        except (OSError, ValueError, RuntimeError) as e:
            raise EngineError(f"ONNX Runtime's profile of {self.path.name} cannot be read: {e}") from e
        finally:
            self._profile_dir.cleanup()
            self._profile_dir = None
        return profile_from_trace(events, skip)

    def close(self) -> None:
        self._sess = None
        if self._profile_dir is not None:
            self._profile_dir.cleanup()
            self._profile_dir = None


def load(path: Path, *, threads: int | None = None, **options: Any) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(path, threads=threads, **options)
