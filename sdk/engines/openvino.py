"""OpenVINO adapter: reads OpenVINO IR (.xml + .bin), .onnx and .tflite directly."""

from __future__ import annotations

import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import AnyEdgeError, DeviceUnavailableError, EngineError, InputError, ModelLoadError
from .base import TensorSpec, check_feeds, gather_async, model_precision, notice

log = logging.getLogger(__name__)

__all__ = ["OpenVINOEngine", "load", "cpu_supports", "port_name", "is_device", "normalize_device", "resolve_device",
           "COMPUTE_PRECISIONS", "DEVICES", "DEVICE_CHOICES", "PERFORMANCE_HINTS", "layer_precision"]

#: OpenVINO's devices anyedge compiles for. A device string names one, optionally numbered
#: (``GPU.0``), or AUTO / MULTI / HETERO over a list of them (``AUTO``, ``AUTO:GPU,CPU``,
#: ``AUTO:-CPU`` to exclude one, ``MULTI:GPU.0,GPU.1``, ``HETERO:NPU,CPU``).
DEVICES = ("CPU", "GPU", "NPU")
_ONE = rf"(?:{'|'.join(DEVICES)})(?:\.[0-9]+)?"
_DEVICE = re.compile(rf"{_ONE}|AUTO(?::-?{_ONE}(?:,-?{_ONE})*)?|(?:MULTI|HETERO):{_ONE}(?:,{_ONE})*")
#: what a device string may be, in words (error messages and ``--help``)
DEVICE_CHOICES = ("CPU, GPU, NPU or AUTO, or OpenVINO's own forms: GPU.0 (a numbered device), AUTO:GPU,CPU, "
                  "AUTO:-CPU (any but the CPU), MULTI:GPU,CPU, HETERO:NPU,CPU")

#: anyedge precision name -> OpenVINO ``INFERENCE_PRECISION_HINT``.
COMPUTE_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# OPTIMIZATION_CAPABILITIES entry that says the CPU plugin computes in that precision natively
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "fp32": "FP32"}
_WEIGHTED = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"}
_PASS_THROUGH = {"Convert", "Reshape", "Multiply", "Subtract", "Transpose", "Unsqueeze", "Squeeze"}


def cpu_supports(precision: str) -> bool:
    """Whether OpenVINO's CPU plugin computes ``precision`` natively on this CPU.

    ``bf16`` needs AVX-512 BF16 or AMX; this is what OpenVINO itself reports in
    ``OPTIMIZATION_CAPABILITIES``, so it agrees with what the plugin will do.
    """
    import openvino as ov

    try:
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no CPU plugin
        return False
    return _CAPABILITY.get(precision, precision.upper()) in {str(c).upper() for c in caps}


def is_device(name: str) -> bool:
    """Whether ``name`` is an OpenVINO device string anyedge knows (see :data:`DEVICES`)."""
    return isinstance(name, str) and _DEVICE.fullmatch(name) is not None


def normalize_device(name: str) -> str:
    """``"gpu"`` -> ``"GPU"``: a device string in OpenVINO's spelling.

    Raises:
        InputError: not a device string anyedge knows; the message lists the valid choices.
    """
    text = name.strip().upper().replace(" ", "") if isinstance(name, str) else ""
    if not is_device(text):
        raise InputError(f"unknown OpenVINO device {name!r}; expected {DEVICE_CHOICES}")
    return text


def port_name(port: Any) -> str:
    """The model-level name of a port: OpenVINO may attach several (e.g. ``{"450", "score_8"}``)."""
    names = sorted(port.get_names())
    readable = [n for n in names if not n.isdigit()]
    return (readable or names or [port.get_any_name()])[0]


def _spec(port: Any) -> TensorSpec:
    ps = port.get_partial_shape()
    shape = tuple(d.get_length() if d.is_static else -1 for d in ps)
    return TensorSpec(port_name(port), shape, np.dtype(port.get_element_type().to_dtype()).name)


def _source(node: Any, kinds: set[str]) -> Any:
    """Walk up first inputs through decompression / reshaping ops to the node that feeds them."""
    while node.get_type_name() in kinds and node.get_input_size():
        node = node.input_value(0).get_node()
    return node


def _weighted_layers(model: Any) -> tuple[int, int, int, bool, bool]:
    """``(quantized, weight_only, floating, fp16_weights, fake_quantize_anywhere)`` over conv / matmul ops."""
    quantized = weight_only = floating = 0
    fp16 = elsewhere = False
    for op in model.get_ordered_ops():
        elsewhere = elsewhere or op.get_type_name() == "FakeQuantize"
        if op.get_type_name() not in _WEIGHTED or op.get_input_size() < 2:
            continue
        w = _source(op.input_value(1).get_node(), _PASS_THROUGH)
        x = _source(op.input_value(0).get_node(), {"Convert"})
        w_type = w.get_output_element_type(0).get_type_name() if w.get_type_name() == "Constant" else ""
        w_int = w.get_type_name() == "FakeQuantize" or w_type in ("i8", "u8", "i4", "u4")
        if w_int and x.get_type_name() == "FakeQuantize":
            quantized += 1
        elif w_int:
            weight_only += 1
        else:
            floating += 1
            fp16 = fp16 or w_type == "f16"
    return quantized, weight_only, floating, fp16, elsewhere


#: device specs that spread a model over other devices (``AUTO``, ``MULTI:GPU,CPU``, ``HETERO:NPU,CPU``)
_META_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
# the lowest precision first: bf16 keeps 8 mantissa bits, fp16 11, fp32 24
_LEAST_PRECISE = ("bf16", "fp16", "fp32")


def _device_targets(device: str, available: Sequence[str]) -> list[str]:
    """The devices a device spec can compile on: ``"AUTO"`` -> every device here,
    ``"MULTI:GPU,CPU"`` / ``"AUTO:GPU(2),CPU"`` -> ``["GPU", "CPU"]``, ``"CPU"`` -> ``["CPU"]``."""
    kind, _, rest = device.partition(":")
    if kind.upper() not in _META_DEVICES:
        return [device]
    if not rest:
        return list(available)
    names = [d.split("(")[0].strip() for d in rest.split(",")]
    wanted = [d for d in names if d and not d.startswith("-")]
    if wanted:
        return wanted
    excluded = {d[1:] for d in names if d.startswith("-")}  # AUTO:-GPU: every device here but the GPU
    return [a for a in available if a not in excluded and a.split(".")[0] not in excluded]


def _present(device: str, available: Sequence[str]) -> bool:
    """``GPU`` is present when any GPU is; ``GPU.1`` only when that one is (``GPU.0`` also when a lone ``GPU``)."""
    kind, _, number = device.partition(".")
    return (device in available or any(a.split(".")[0] == device for a in available)
            or (number == "0" and kind in available))


def _cpu_only(device: str, available: Sequence[str]) -> bool:
    return all(d.split(".")[0] == "CPU" for d in _device_targets(device, available))


def resolve_device(device: str, available: Sequence[str], *, strict: bool = False, fallback: str = "CPU") -> str:
    """The device string to compile for, given the devices OpenVINO sees here.

    A device that is not here gives way to ``fallback`` with one notice (what was asked, what is
    here, what runs instead); inside ``AUTO:``/``MULTI:``/``HETERO:`` lists the missing members
    are dropped (``AUTO:GPU,CPU`` -> ``AUTO:CPU``). Plain ``AUTO`` picks among what is here.

    Raises:
        DeviceUnavailableError: ``strict`` and a device asked for is not here.
    """
    kind, _, rest = device.partition(":")
    instead = fallback
    if kind not in _META_DEVICES:
        if _present(device, available):
            return device
        what = device
    elif not rest:
        return device
    else:
        items = [d.strip() for d in rest.split(",") if d.strip()]
        wanted = [d for d in items if not d.startswith("-")]
        if not wanted:  # AUTO:-CPU: any device but the excluded ones
            excluded = {d[1:] for d in items}
            if any(a not in excluded and a.split(".")[0] not in excluded for a in available):
                return device
            what = f"{device} (a device other than {', '.join(sorted(excluded))})"
        else:
            missing = [d for d in wanted if not _present(d, available)]
            if not missing:
                return device
            here = [d for d in wanted if d not in missing]
            what = f"{', '.join(missing)} (of {device})"
            if here:
                instead = f"{kind}:{','.join(here)}"
    seen = ", ".join(available) or "no device"
    if strict:
        raise DeviceUnavailableError(f"OpenVINO device {what} is not available here (OpenVINO sees: {seen}); "
                                     f"choose one of those, or allow the fallback to {fallback}")
    notice(log, f"OpenVINO device {what} is not available here (OpenVINO sees: {seen}); running on {instead} instead")
    return instead


def _reason(e: BaseException) -> str:
    """The telling line of an OpenVINO exception (its last line that is not an ``Exception from src/...`` frame)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    told = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))] or lines or [type(e).__name__]
    text = told[-1]
    lib = re.match(r'Cannot load library "([^"]+)": (.*)', text)
    if lib:  # a plugin without its runtime (the GPU plugin without OpenCL): name the files, not the paths
        text = f"its plugin {Path(lib.group(1)).name} cannot load: {lib.group(2)}"
    return text if len(text) <= 200 else text[:197] + "..."


#: anyedge's name -> OpenVINO ``PERFORMANCE_HINT``: one request as fast as possible, or many in flight
PERFORMANCE_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
# the precision suffix of a layer's exec_type in the performance counters (``jit_avx512_I8``)
_EXEC_PRECISION = {"FP32": "fp32", "F32": "fp32", "BF16": "bf16", "FP16": "fp16", "F16": "fp16", "I8": "int8",
                   "U8": "int8", "I32": "int32", "I64": "int64", "U1": "binary", "BOOL": "bool"}


def layer_precision(exec_type: str) -> str:
    """The precision a layer ran in, from the ``exec_type`` of OpenVINO's performance counters
    (``jit_avx512_I8`` -> ``int8``, ``brgconv_avx512_amx_BF16`` -> ``bf16``; ``?`` when it names none)."""
    tail = str(exec_type).rsplit("_", 1)[-1].upper()
    return _EXEC_PRECISION.get(tail, "?")


def _compile_config(device: str, available: Sequence[str], threads: int | None, hint: str,
                    performance: str = "latency", profile: bool = False, streams: int | None = None) -> dict[str, Any]:
    """Compile settings that pin the float precision on every CPU or GPU the spec can land on.

    ``streams`` sets the CPU's ``NUM_STREAMS``: how many infer requests run at once (the latency
    hint makes one stream, on which concurrent requests take turns).

    A meta device (``AUTO``, ``MULTI``, ``HETERO``) ignores a top-level precision hint for the
    devices it picks, so each of those gets its own in ``DEVICE_PROPERTIES``.
    """
    def own(d: str) -> dict[str, Any]:
        kind = d.split(".")[0].upper()
        props: dict[str, Any] = {}
        if kind in ("CPU", "GPU"):  # the NPU compiles to its own fixed precision
            props["INFERENCE_PRECISION_HINT"] = hint
        if threads and kind == "CPU":
            props["INFERENCE_NUM_THREADS"] = int(threads)
        if streams and kind == "CPU":
            props["NUM_STREAMS"] = int(streams)
        return props

    config: dict[str, Any] = {"PERFORMANCE_HINT": PERFORMANCE_HINTS[performance]}
    if profile:
        config["PERF_COUNT"] = True
    if device.partition(":")[0].upper() not in _META_DEVICES:
        return {**config, **own(device)}
    per_device = {d: own(d) for d in _device_targets(device, available)}
    return {**config, "DEVICE_PROPERTIES": {d: p for d, p in per_device.items() if p}}


def _what_runs(compiled: Any, device: str) -> tuple[tuple[str, ...], str]:
    """``(execution devices, float compute precision)`` as the compiled model reports them.

    A meta device's compiled model has no precision hint of its own; its ``DEVICE_PROPERTIES``
    hold each execution device's. Devices without the property (the NPU) compute float layers in
    fp16. Over several devices the least precise one is reported.
    """
    by_type = {v: k for k, v in COMPUTE_PRECISIONS.items()}

    def name(hint: Any) -> str:
        t = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint).lower()
        return by_type.get(t, t)

    try:
        execution = tuple(str(d).strip("()") for d in compiled.get_property("EXECUTION_DEVICES"))
    except Exception:  # noqa: BLE001 - a plugin without the property runs on the device asked for
        execution = (device,)
    try:
        return execution, name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    except Exception:  # noqa: BLE001 - a meta device or the NPU
        pass
    try:
        per_device = dict(compiled.get_property("DEVICE_PROPERTIES"))
    except Exception:  # noqa: BLE001
        per_device = {}
    found = set()
    for d in execution:
        hint = (per_device.get(d) or {}).get("INFERENCE_PRECISION_HINT")
        found.add(name(hint) if hint is not None else ("fp16" if d.split(".")[0] == "NPU" else "fp32"))
    return execution, min(found, key=lambda p: _LEAST_PRECISE.index(p) if p in _LEAST_PRECISE else -1)


_END: Any = object()  # the end of the feeds


def _reshape(model: Any, shapes: Mapping[str, Sequence[int]], path: Path) -> None:
    """Give ``model``'s inputs the static ``shapes`` (``{input name: shape}``).

    Raises:
        InputError: a name that is no input of the model, or a shape that is not a list of
            positive sizes.
        ModelLoadError: the model cannot take that shape.
    """
    ports = {port_name(p): p for p in model.inputs}
    unknown = sorted(set(shapes) - set(ports))
    if unknown:
        raise InputError(f"shapes for {', '.join(map(repr, unknown))}: {path.name} has the inputs "
                         f"{', '.join(map(repr, sorted(ports)))}")
    fixed = {}
    for name, shape in shapes.items():
        dims = tuple(shape) if isinstance(shape, (list, tuple)) else ()
        if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
            raise InputError(f"the shape of input {name!r} must be a list of positive sizes, got {shape!r}")
        fixed[ports[name]] = [int(d) for d in dims]
    try:
        model.reshape(fixed)
    except Exception as e:
        raise ModelLoadError(f"OpenVINO cannot give {path.name} the input shapes "
                             f"{ {n: list(s) for n, s in shapes.items()} }: {_reason(e)}") from e


class OpenVINOEngine:
    """A model compiled by OpenVINO for ``device`` (``"CPU"`` by default, ``"NPU"``, ``"GPU"``, or a
    meta device: ``"AUTO"``, ``"MULTI:GPU,CPU"``, ``"HETERO:NPU,CPU"``).

    Thread-safe: an infer request is not reentrant, so ``run`` borrows one from a pool of
    idle requests (creating one when every request is busy) and returns it afterwards. A
    single thread keeps reusing the same request; ``n`` threads end up with ``n`` requests
    on one compiled model, which run in parallel.

    Float layers run at ``precision`` (``"fp32"`` unless asked otherwise): OpenVINO's CPU
    plugin would otherwise pick bf16 by itself on CPUs with AMX / AVX-512 BF16, and its GPU
    plugin fp16, so the same model would give different faces on different machines. The pin
    holds for every CPU or GPU a meta device can pick. ``engine.execution_devices`` and
    ``engine.compute_precision`` are read back from the compiled model; ``engine.precision``
    says what actually runs (``"int8"`` for a quantized IR).

    A device that is not here (or whose plugin cannot compile the model) gives way to
    ``fallback_device`` (the CPU by default) with one logged notice; ``strict_device=True``
    raises :class:`~anyedge.errors.DeviceUnavailableError` instead. ``engine.device`` says
    where the model runs (``"CPU"`` after a fallback or for ``AUTO`` on a CPU-only machine).

    ``performance="throughput"`` compiles with OpenVINO's THROUGHPUT hint (several streams) for
    :meth:`run_async`; the float precision stays pinned either way. ``streams=n`` gives the CPU
    ``n`` streams under either hint, so ``n`` threads calling :meth:`run` at once run in
    parallel (with one stream, the latency hint's, they take turns). ``shapes={input: shape}``
    fixes dynamic input dimensions before compiling (as ``benchmark_app -shape``: the plugin then
    plans for that one shape). ``profile=True`` turns on the performance counters: :meth:`profile`
    then gives the time per layer (it costs time per run).
    """

    name = "openvino"

    def __init__(self, path: Path, *, threads: int | None = None, device: str = "CPU",
                 fallback_device: str | None = None, strict_device: bool = False, precision: str = "fp32",
                 performance: str = "latency", profile: bool = False, streams: int | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None) -> None:
        import openvino as ov

        if precision not in COMPUTE_PRECISIONS:
            raise ModelLoadError(f"OpenVINO precision must be one of {', '.join(COMPUTE_PRECISIONS)}, "
                                 f"got {precision!r}")
        if streams is not None and (isinstance(streams, bool) or not isinstance(streams, int) or streams < 1):
            raise ModelLoadError(f"OpenVINO streams must be a positive integer, got {streams!r}")
        if performance not in PERFORMANCE_HINTS:
            raise ModelLoadError(f"OpenVINO performance must be one of {', '.join(PERFORMANCE_HINTS)}, "
                                 f"got {performance!r}")
        device = normalize_device(device)
        fallback = normalize_device(fallback_device) if fallback_device else "CPU"
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise ModelLoadError(f"OpenVINO IR {path} has no weights file {path.with_suffix('.bin').name}")

        core = ov.Core()
        available = list(core.available_devices)
        device = resolve_device(device, available, strict=strict_device, fallback=fallback)
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise ModelLoadError(f"OpenVINO cannot read {path}: {e}") from e
        if shapes:
            _reshape(model, shapes, path)
        try:
            self._compiled = core.compile_model(
                model, device, _compile_config(device, available, threads, COMPUTE_PRECISIONS[precision], performance, profile,
                                                streams))
        except Exception as e:
            if _cpu_only(device, available) or device == fallback:  # the model itself fails: nothing to fall back to
                raise ModelLoadError(f"OpenVINO cannot load {path} on {device}: {e}") from e
            # the device is listed but its plugin or driver fails (e.g. no OpenCL runtime for the GPU)
            why = f"OpenVINO cannot compile {path.name} for {device} ({_reason(e)})"
            if strict_device:
                raise DeviceUnavailableError(f"{why}; allow the fallback to {fallback} or fix the device's "
                                             "driver") from e
            notice(log, f"{why}; running on {fallback} instead")
            device = fallback
            try:
                self._compiled = core.compile_model(
                    model, device, _compile_config(device, available, threads, COMPUTE_PRECISIONS[precision], performance, profile,
                                                streams))
            except Exception as e2:
                raise ModelLoadError(f"OpenVINO cannot load {path} on {device}: {e2}") from e2
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle.put(self._compiled.create_infer_request())
        self.execution_devices, self.compute_precision = _what_runs(self._compiled, device)
        if precision != "fp32" and self.compute_precision != precision:
            log.warning("OpenVINO %s cannot compute in %s on this machine; it runs %s", device, precision,
                        self.compute_precision)
        q, w, f, fp16, elsewhere = _weighted_layers(model)
        self.precision = model_precision(quantized=q, weight_only=w, floating=f, fp16_weights=fp16,
                                         compute=self.compute_precision, quantized_elsewhere=elsewhere)
        self.inputs = tuple(_spec(p) for p in self._compiled.inputs)
        self.outputs = tuple(_spec(p) for p in self._compiled.outputs)
        self.compiled_for = device  # the device string compiled for ("AUTO", "CPU" after a fallback)
        self.device = ",".join(self.execution_devices)  # where it runs ("CPU" for AUTO on this machine)
        self.path = path
        # performance counters of each run (when profiling): [(layer, type, seconds, precision), ...]
        self._perf: list[list[tuple[str, str, float, str]]] | None = [] if profile else None
        self._perf_lock = threading.Lock()

    def _count(self, request: Any) -> None:
        """Keep one finished request's performance counters (executed layers only)."""
        run = [(p.node_name, p.node_type, p.real_time.total_seconds(), layer_precision(p.exec_type))
               for p in request.get_profiling_info() if str(p.status).rsplit(".", 1)[-1] == "EXECUTED"]
        with self._perf_lock:
            assert self._perf is not None
            self._perf.append(run)

    def profile(self, skip: int = 0) -> list[dict[str, Any]]:
        """Time per executed layer, per inference, over the runs since the engine was opened with
        ``profile=True`` (the first ``skip`` left out: warm-up): ``[{"op", "type", "ms",
        "precision"}]``, slowest first. ``precision`` is the one the layer ran in, from its
        ``exec_type`` (:func:`layer_precision`).

        Raises:
            EngineError: not opened with ``profile=True``, or no run left after ``skip``.
        """
        if self._perf is None:
            raise EngineError("this OpenVINO engine was not opened with profile=True")
        with self._perf_lock:
            runs = self._perf[skip:]
        if not runs:
            raise EngineError(f"no run to profile: {len(self._perf)} run(s), {skip} skipped")
        total: dict[str, list[Any]] = {}
        for run in runs:
            for name, kind, sec, prec in run:
                total.setdefault(name, [kind, 0.0, prec])[1] += sec
        ops = [{"op": op, "type": t, "ms": round(sec * 1e3 / len(runs), 5), "precision": prec}
               for op, (t, sec, prec) in total.items()]
        return sorted(ops, key=lambda o: -o["ms"])

    @property
    def async_requests(self) -> int:
        """How many requests :meth:`run_async` keeps in flight by default: the compiled model's
        ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` (its streams under the THROUGHPUT hint)."""
        compiled = self._compiled
        if compiled is None:
            raise EngineError("engine is closed")
        return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") or 1))

    def run_async(self, feeds: Iterable[Mapping[str, np.ndarray]],
                  requests: int | None = None) -> list[list[np.ndarray]]:
        """Run every feed through OpenVINO's asynchronous infer requests, as many in flight as the
        compiled model asks for (``OPTIMAL_NUMBER_OF_INFER_REQUESTS``, or ``requests``).

        Returns:
            The outputs of each feed, in the order of ``feeds`` (as :meth:`run` would give them).

        Raises:
            InputError: a feed does not match the model's inputs.
            EngineError: the engine is closed or a request fails.
        """
        return gather_async(self.run_async_each, feeds, requests, "OpenVINO")

    def run_async_each(self, feeds: Iterable[Mapping[str, np.ndarray]],
                       on_result: Callable[[int, list[np.ndarray], float], None],
                       requests: int | None = None) -> int:
        """Run feeds through OpenVINO's asynchronous infer requests (``requests`` in flight, by
        default :attr:`async_requests`), handing each result to ``on_result(index, outputs,
        latency_ms)`` as it completes; nothing is kept.

        ``feeds`` is read lazily: the next feed is taken only once a request is free, so a
        generator that stops at a deadline starts its last request before it. On a model whose
        inputs are all static (``shapes=``) the request reads each feed's arrays in place, with no
        copy: they must not change until this returns. Dynamic inputs are copied (OpenVINO's CPU
        plugin, 2026.4, then runs later synchronous requests on a stale shared input).
        ``latency_ms`` is OpenVINO's own latency of the request (start to completion, as
        ``benchmark_app`` reports it). ``on_result`` runs on OpenVINO's threads, several at once.

        Returns:
            How many feeds ran.

        Raises:
            InputError: a feed does not match the model's inputs.
            EngineError: the engine is closed or a request fails.
            Exception: what ``on_result`` raised (no further feed is started).
        """
        import openvino as ov

        compiled = self._compiled
        if compiled is None:
            raise EngineError("engine is closed")
        outputs = len(self.outputs)
        share = all(d >= 0 for spec in self.inputs for d in spec.shape)
        held: dict[int, dict[str, np.ndarray]] = {}  # the arrays each request reads in place
        failed: list[BaseException] = []

        def done(request: Any, k: int) -> None:
            held.pop(k, None)
            if failed:
                return
            try:
                got = [request.get_output_tensor(i).data.copy() for i in range(outputs)]
                if self._perf is not None:
                    self._count(request)
                on_result(k, got, float(request.latency))
            except BaseException as e:  # raised in the caller's thread once the requests are done
                failed.append(e)

        pool = ov.AsyncInferQueue(compiled, max(1, int(requests or self.async_requests)))
        pool.set_callback(done)
        it = iter(feeds)
        count = 0
        try:
            while not failed:
                pool.get_idle_request_id()  # waits (without the GIL) until a request is free
                feed = next(it, _END)
                if feed is _END:
                    break
                check_feeds(self.inputs, feed)
                arrays = {name: np.ascontiguousarray(v) for name, v in feed.items()}
                if share:
                    held[count] = arrays
                pool.start_async(arrays, count, share_inputs=share)
                count += 1
        except AnyEdgeError:
            raise
        except Exception as e:
            raise EngineError(f"OpenVINO failed running {self.path.name}: {e}") from e
        finally:
            try:
                pool.wait_all()
            except Exception as e:
                failed.append(EngineError(f"OpenVINO failed running {self.path.name}: {e}"))
        if failed:
            raise failed[0]
        return count

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        compiled = self._compiled
        if compiled is None:
            raise EngineError("engine is closed")
        check_feeds(self.inputs, feeds)
        try:
            request = self._idle.get_nowait()
        except queue.Empty:  # every request is busy in another thread: one more for this one
            request = compiled.create_infer_request()
        try:
            request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
            if self._perf is not None:
                self._count(request)
            return [request.get_output_tensor(i).data.copy() for i in range(len(self.outputs))]
        except Exception as e:
            raise EngineError(f"OpenVINO failed running {self.path.name}: {e}") from e
        finally:
            self._idle.put(request)

    def close(self) -> None:
        self._compiled = None
        self._idle = queue.SimpleQueue()


def load(path: Path, *, threads: int | None = None, **options: Any) -> OpenVINOEngine:
    return OpenVINOEngine(path, threads=threads, **options)
