"""Target profiles (as data) and target code.

- Profiles: :class:`~.base.TargetProfile` records, one module per target (``arm_cpu``,
  ``intel_cpu``...), looked up through :data:`TARGETS` / :func:`get_target`.
- Runtime code the wheel ships: ``bnn`` (the ``.bnn`` format, numpy reference, Cython kernels and
  the portable C library) and ``apps/c`` (the C post-processing library ``anyedge export-c`` copies);
  ``ctext`` quotes untrusted strings for the C those exports generate.
- Check harnesses (cross builds, qemu comparisons, install resolution) live in ``targets/checks/``,
  outside the wheel: developer and CI tools, never imported by anyedge.
"""

from __future__ import annotations

import platform
from pathlib import Path

from .base import Recipe, TargetProfile

__all__ = ["Recipe", "TargetProfile", "TARGETS", "get_target", "host_profile", "cpu_has_vnni"]


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (int8 dot products that do not saturate)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def host_profile() -> TargetProfile:
    """The best profile for the machine this runs on."""
    from . import arm_cpu, intel_cpu

    if _is_x86():
        try:
            import openvino  # noqa: F401

            base = intel_cpu.PROFILE
        except ImportError:
            base = arm_cpu.PROFILE  # the same int8 recipes serve any CPU
    else:
        base = arm_cpu.PROFILE
    return TargetProfile("host", f"this machine ({platform.machine()}): {base.description}",
                         base.recipes, base.runs_here_on)


def _profiles() -> dict[str, TargetProfile]:
    from . import arm_cpu, intel_cpu, intel_npu, jetson, mobile_gpu

    return {p.name: p for p in (arm_cpu.PROFILE, mobile_gpu.PROFILE, intel_npu.PROFILE, intel_cpu.PROFILE,
                                jetson.PROFILE)}


TARGETS: dict[str, TargetProfile] = _profiles()


def get_target(name: str) -> TargetProfile:
    """Look up a target by name (``host`` is computed for this machine)."""
    from anyedge.errors import UnsupportedTargetError

    if name == "host":
        return host_profile()
    try:
        return TARGETS[name]
    except KeyError:
        raise UnsupportedTargetError(
            f"unknown target {name!r}; targets: {', '.join([*TARGETS, 'host'])}"
        ) from None
