"""anyedge: lightweight face and activity models on edge devices, one small API.

``import anyedge`` loads no engine: LiteRT, ONNX Runtime and OpenVINO are imported when a
model is first loaded on them.
"""

from __future__ import annotations

import os as _os
import signal as _signal
import sys as _sys


def _exit_on_signal(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM when the ``anyedge`` command cannot raise (still importing, or a second signal): one line, 130/143."""
    _os.write(2, b"anyedge: interrupted\n" if signum == _signal.SIGINT else b"anyedge: terminated\n")
    _os._exit(130 if signum == _signal.SIGINT else 143)


# First thing when this process is the ``anyedge`` command (its console script imports this package
# before anyedge.cli.main can install the full handling); a program importing anyedge keeps its own.
if _os.path.basename(_sys.argv[0] if _sys.argv else "") in ("anyedge", "anyedge.exe"):
    for _s in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_s, _exit_on_signal)

from typing import Any  # noqa: E402

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
    "FaceEmbedder": "anyedge.tasks.face_embedder",
    "FacePipeline": "anyedge.recognition.pipeline",
    "Gallery": "anyedge.recognition.gallery",
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
