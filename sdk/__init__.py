"""anyedge: lightweight face and activity models on edge devices, one small API.

``import anyedge`` loads no engine: LiteRT, ONNX Runtime and OpenVINO are imported when a
model is first loaded on them.
"""

from __future__ import annotations

from typing import Any

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

_LAZY = {
    "FaceDetector": "anyedge.tasks.face_detector",
    "FaceDetectorOptions": "anyedge.tasks.face_detector",
    "FaceDetections": "anyedge.results",
    "ActivityResult": "anyedge.results",
    "ActivityClassifier": "anyedge.tasks.activity_classifier",
    "ActivityClassifierOptions": "anyedge.tasks.activity_classifier",
    "list_models": "anyedge.registry",
    "available_engines": "anyedge.engines",
    "load_bundle": "anyedge.bundle",
}

__all__ = ["__version__", *_errors_all, *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'anyedge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
