"""Engine backends for the converter: one small object per engine family, chosen from a table.

A backend knows how to turn the float source into its engine's artifact at a precision,
optionally with some layers kept in float. The remedy loop (:mod:`.remedy`) is written once
over this protocol; adding an engine or a precision touches one ``backend_*.py`` file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

__all__ = ["Source", "Backend", "BACKENDS", "TOOLS", "PROVIDED_BY", "get_backend", "check_tools"]


@dataclass(frozen=True)
class Source:
    """What every backend starts from.

    Attributes:
        path: the float model file (.onnx or .tflite).
        input_name: the model input's name (as the task reports it).
        input_shape: static shape to fix, or ``None`` to keep the file's.
        calibration: preprocessed calibration tensors, in the task's own preprocessing.
        settings: the target's quantization settings, resolved (no ``"auto"`` left).
        work: scratch folder for artifacts.
        hints: per-model converter hints from the registry (e.g. TFLite int8 ranges).
    """

    path: Path
    input_name: str
    input_shape: Sequence[int] | None
    calibration: Sequence[np.ndarray]
    settings: Mapping[str, Any]
    work: Path
    hints: Mapping[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """One engine family's conversion steps."""

    engine: str
    #: precisions this backend can build, safest last (a subset of ``remedy.PRECISIONS``)
    precisions: tuple[str, ...]
    #: set when the backend searches float layers itself (OpenVINO: NNCF accuracy control);
    #: called with ``(evaluate, max_drop)`` and returns ``(files, float_layers, detail)``
    own_float_search: Callable[..., tuple[dict[str, Path], list[str], dict[str, Any]]] | None

    def layers(self) -> list[str]:
        """Weighted layers that can be kept in float, by the names :meth:`build` accepts."""
        ...

    def build(self, precision: str, float_layers: Sequence[str] = ()) -> dict[str, Path]:
        """Write the artifact; the model file first. Raises ``ConversionError`` when it cannot."""
        ...

    def engine_options(self, precision: str) -> dict[str, Any]:
        """Engine options a bundle at ``precision`` must be opened with (e.g. bf16 compute)."""
        ...


# engine name -> module holding ``Backend`` (imported on first use: conversion tools are heavy)
BACKENDS: dict[str, str] = {
    "onnxruntime": "backend_onnxruntime",
    "openvino": "backend_openvino",
    "litert": "backend_litert",
}


def get_backend(engine: str, source: Source) -> Backend:
    """The backend for ``engine``, prepared on ``source``."""
    from anyedge.errors import UnsupportedTargetError

    if engine not in BACKENDS:
        raise UnsupportedTargetError(f"no converter backend for engine {engine!r}; have {', '.join(BACKENDS)}")
    module = importlib.import_module(f"{__package__}.{BACKENDS[engine]}")
    return module.Backend(source)


# engine -> the Python modules its backend imports: under "*" for every precision, else per precision
TOOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "onnxruntime": {"*": ("onnxruntime", "onnx"), "fp16": ("onnxconverter_common",)},
    "litert": {"*": ("ai_edge_litert",), "int8": ("ai_edge_quantizer",), "int8w": ("ai_edge_quantizer",),
               "fp16": ("ai_edge_quantizer",)},
    "openvino": {"*": ("openvino",), "int8": ("nncf",)},
}
# module -> what to install for it (pyproject.toml's extras; tests check the two agree)
PROVIDED_BY: dict[str, str] = {
    "onnx": "anyedge[quantize]", "onnxconverter_common": "anyedge[quantize]", "ai_edge_quantizer": "anyedge[quantize]",
    "openvino": "anyedge[openvino]", "nncf": "anyedge[openvino]",
    "onnxruntime": "onnxruntime", "ai_edge_litert": "ai-edge-litert",  # dependencies of anyedge itself
}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module entry set to None
        return False


def check_tools(engine: str, precisions: Sequence[str], what: str) -> None:
    """Refuse up front, in one line naming what to install, when a conversion tool is missing.

    Args:
        engine: the backend's engine.
        precisions: every precision the conversion may try on it.
        what: the conversion, for the message (e.g. ``"converting yunet for arm-cpu"``).

    Raises:
        EngineUnavailableError: a module the backend needs for one of ``precisions`` is not installed.
    """
    from anyedge.errors import EngineUnavailableError

    table = TOOLS.get(engine, {})

    def missing(p: str) -> list[str]:
        return [m for m in table.get(p, ()) if not _installed(m)]

    for p in ("*", *precisions):
        for module in missing(p):
            need = PROVIDED_BY.get(module, module)
            when = "" if p == "*" else f" at {p}"
            safer = next((q for q in precisions if q != p and not missing(q)), None) if p != "*" else None
            raise EngineUnavailableError(
                f"{what} on {engine}{when} needs the Python module {module}, which is not installed: "
                f"pip install '{need}'" + (f" (or pass --precision {safer}, which does not need it)" if safer else ""))
