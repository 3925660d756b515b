"""Engine adapters, chosen from an explicit table keyed by engine name and file suffix.

Each entry imports its runtime lazily, so ``import anyedge`` never loads an engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EngineUnavailableError, ModelLoadError
from .base import Engine, TensorSpec

__all__ = [
    "Engine",
    "TensorSpec",
    "ENGINES",
    "EngineEntry",
    "open_engine",
    "available_engines",
    "engines_for",
    "default_engine_for",
]


@dataclass(frozen=True)
class EngineEntry:
    """One row of the engine table."""

    name: str
    module: str  # anyedge.engines.<module>, imported on first use
    suffixes: tuple[str, ...]
    probe: tuple[str, ...]  # importable top-level modules; any one is enough
    extra: str | None  # pip extra that installs it
    description: str
    install: str | None = None  # how to get it when it is not an extra or a PyPI package


ENGINES: dict[str, EngineEntry] = {
    e.name: e
    for e in [
        EngineEntry("litert", "litert", (".tflite",), ("ai_edge_litert", "tflite_runtime"), None,
                    "LiteRT (TensorFlow Lite) interpreter with XNNPACK"),
        EngineEntry("onnxruntime", "onnxruntime", (".onnx",), ("onnxruntime",), None,
                    "ONNX Runtime (CPU; CUDA/TensorRT providers when installed)"),
        EngineEntry("openvino", "openvino", (".xml", ".onnx", ".tflite"), ("openvino",), "openvino",
                    "OpenVINO runtime (CPU, GPU, NPU devices)"),
        EngineEntry("bnn", "bnn", (".bnn",), ("anyedge.targets.bnn._kernels", "numpy"), None,
                    "anyedge binary networks: XNOR-popcount kernels (Cython, built at install; "
                    "the numpy reference where no compiler was available)",
                    install="reinstall anyedge from source with a C compiler present "
                            "(pip install --force-reinstall --no-binary anyedge anyedge) to build the kernels"),
    ]
}

# Which engine a file suffix gets when none is named: the one built for that format.
_PREFERRED = {".tflite": "litert", ".onnx": "onnxruntime", ".xml": "openvino"}


def _installed(entry: EngineEntry) -> bool:
    for module in entry.probe:
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except (ImportError, ValueError):  # a parent package missing or unimportable
            continue
    return False


def available_engines() -> list[str]:
    """Names of the engines whose runtime is installed here."""
    return [name for name, e in ENGINES.items() if _installed(e)]


def engines_for(path: str | os.PathLike[str]) -> list[str]:
    """Installed engines that can read this file format, preferred first."""
    suffix = Path(path).suffix.lower()
    names = [n for n, e in ENGINES.items() if suffix in e.suffixes and _installed(e)]
    pref = _PREFERRED.get(suffix)
    return sorted(names, key=lambda n: n != pref)


def default_engine_for(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    names = engines_for(path)
    if not names:
        can = [n for n, e in ENGINES.items() if suffix in e.suffixes]
        if not can:
            raise EngineUnavailableError(f"no engine reads {suffix or 'suffix-less'} files ({path})")
        hint = ", ".join(f"{n} ({_install_hint(ENGINES[n])})" for n in can)
        raise EngineUnavailableError(f"no installed engine reads {suffix} files; install one of: {hint}")
    return names[0]


def _install_hint(entry: EngineEntry) -> str:
    if entry.install:
        return entry.install
    if entry.extra:
        return f"pip install 'anyedge[{entry.extra}]'"
    return f"pip install {entry.probe[0].replace('_', '-')}"


def open_engine(
    path: str | os.PathLike[str],
    engine: str | None = None,
    *,
    threads: int | None = None,
    **options: Any,
) -> Engine:
    """Load a model file on an engine.

    Args:
        path: model file (.tflite, .onnx, .xml).
        engine: engine name from :data:`ENGINES`; ``None`` picks the format's own engine.
        threads: CPU threads for the engine; ``None`` leaves the engine's default.
        **options: engine-specific options (``device``, ``fallback_device``, ``precision`` for
            OpenVINO; ``providers`` for ONNX Runtime; ``strict_device`` for both: fail instead of
            falling back to the CPU, see :mod:`anyedge.engines.devices`).

    Raises:
        EngineUnavailableError: unknown engine, engine not installed, or wrong format.
        ModelLoadError: the file is missing, empty, truncated or not a model.
        DeviceUnavailableError: ``strict_device`` and the device or provider is not here.
        InputError: an unknown device or provider name.
    """
    path = Path(path)
    if engine is None:
        engine = default_engine_for(path)
    entry = ENGINES.get(engine)
    if entry is None:
        raise EngineUnavailableError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
    suffix = path.suffix.lower()
    if suffix not in entry.suffixes:
        raise EngineUnavailableError(
            f"engine {engine!r} reads {', '.join(entry.suffixes)} files, not {suffix or 'suffix-less'} "
            f"({path.name}); engines for it: {', '.join(engines_for(path)) or 'none installed'}"
        )
    if not _installed(entry):
        raise EngineUnavailableError(
            f"engine {engine!r} is not installed: {_install_hint(entry)}"
        )
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"model file {path} is empty")
    module = importlib.import_module(f"{__name__}.{entry.module}")
    return module.load(path, threads=threads, **options)
