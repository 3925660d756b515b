"""OpenVINO adapter: reads OpenVINO IR (.xml + .bin), .onnx and .tflite directly."""

from __future__ import annotations

import logging
import queue
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import EngineError, ModelLoadError
from .base import TensorSpec, check_feeds

log = logging.getLogger(__name__)

__all__ = ["OpenVINOEngine", "load"]


def _port_name(port: Any) -> str:
    """The model-level name of a port: OpenVINO may attach several (e.g. ``{"450", "score_8"}``)."""
    names = sorted(port.get_names())
    readable = [n for n in names if not n.isdigit()]
    return (readable or names or [port.get_any_name()])[0]


def _spec(port: Any) -> TensorSpec:
    ps = port.get_partial_shape()
    shape = tuple(d.get_length() if d.is_static else -1 for d in ps)
    return TensorSpec(_port_name(port), shape, np.dtype(port.get_element_type().to_dtype()).name)


class OpenVINOEngine:
    """A model compiled by OpenVINO for ``device`` (``"CPU"`` by default, ``"NPU"``, ``"GPU"``).

    Thread-safe: an infer request is not reentrant, so ``run`` borrows one from a pool of
    idle requests (creating one when every request is busy) and returns it afterwards. A
    single thread keeps reusing the same request; ``n`` threads end up with ``n`` requests
    on one compiled model, which run in parallel.
    """

    name = "openvino"

    def __init__(self, path: Path, *, threads: int | None = None, device: str = "CPU",
                 fallback_device: str | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        if fallback_device and device not in ("AUTO", *core.available_devices):
            log.warning("OpenVINO device %s is not present (have %s); running on %s",
                        device, ", ".join(core.available_devices), fallback_device)
            device = fallback_device
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise ModelLoadError(f"OpenVINO IR {path} has no weights file {path.with_suffix('.bin').name}")
        try:
            model = core.read_model(str(path))
            self._compiled = core.compile_model(model, device, config)
        except Exception as e:
            raise ModelLoadError(f"OpenVINO cannot load {path} on {device}: {e}") from e
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle.put(self._compiled.create_infer_request())
        self.inputs = tuple(_spec(p) for p in self._compiled.inputs)
        self.outputs = tuple(_spec(p) for p in self._compiled.outputs)
        self.device = device
        self.path = path

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
