"""What machine a benchmark ran on: CPU, the instruction sets that matter, OS, Python, engine versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["environment", "cpu_features", "ISA_FLAGS"]

# Instruction sets that change which kernels an engine picks, by /proc/cpuinfo flag (x86 "flags",
# Arm "Features"). The value is the name printed in the report.
ISA_FLAGS: dict[str, str] = {
    "asimd": "NEON",
    "asimddp": "NEON dotprod",
    "i8mm": "Arm i8mm",
    "sve": "SVE",
    "sve2": "SVE2",
    "bf16": "Arm BF16",
    "popcnt": "POPCNT",
    "sse4_2": "SSE4.2",
    "avx2": "AVX2",
    "fma": "FMA",
    "f16c": "F16C",
    "avx512f": "AVX-512F",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}

_ENGINE_PACKAGES = {
    "litert": ("ai-edge-litert", "tflite-runtime"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "openvino": ("openvino",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_features(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model name and the flags of :data:`ISA_FLAGS` it has.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (read from this machine when ``None``).

    Returns:
        ``{"model": str, "flags": {name: bool}}``; on systems without ``/proc/cpuinfo``
        (macOS, Windows) the flags are those the platform module can tell, else empty.
    """
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    model = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    if not model:
        model = platform.processor() or platform.machine()
    if not flags and platform.machine().lower() in ("arm64", "aarch64"):
        flags = {"asimd"}  # every AArch64 CPU has NEON
    return {"model": model, "flags": {name: (flag in flags) for flag, name in ISA_FLAGS.items()}}


def _version(names: tuple[str, ...]) -> str | None:
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _bnn_popcount() -> str | None:
    try:
        from ..targets.bnn import kernels

        return kernels.popcount_kind()
    except Exception:  # kernels not compiled: the bnn engine is simply absent
        return None


def _memory_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _device_model() -> str | None:
    """The board name on a Pi / Jetson (device tree), else ``None``."""
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return Path(p).read_text(errors="replace").strip("\x00\n ")
        except OSError:
            continue
    return None


def environment() -> dict[str, Any]:
    """Facts about this machine and software stack for ``bench.json``."""
    from .. import __version__
    from ..engines import available_engines

    cpu = cpu_features()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "device": _device_model(),
        "cpu": cpu["model"],
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": {name: has for name, has in cpu["flags"].items()},
        "memory_mb": _memory_mb(),
        "load_average": load,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "anyedge": __version__,
        "engines": {name: _version(_ENGINE_PACKAGES[name]) if name in _ENGINE_PACKAGES else __version__
                    for name in available_engines()},
        "libraries": {name: _version(pkgs) for name, pkgs in _ENGINE_PACKAGES.items() if name in ("numpy", "opencv")},
        "bnn_popcount": _bnn_popcount(),
    }
