"""The C toolchains the check harnesses build with: this host's compiler, and cross compilers run under qemu.

A developer and CI tool, not part of the anyedge wheel: :mod:`bnn_check` and :mod:`apps_check`
import it from this folder.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

__all__ = ["CHECK_FLAGS", "Toolchain", "host_toolchain", "riscv_toolchain", "aarch64_toolchain"]

#: What every check program is built with: strict C99, and no fused multiply-add, so the float
#: arithmetic is the same on every CPU the checks compare.
CHECK_FLAGS = ("-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror")


@dataclass(frozen=True)
class Toolchain:
    """A C compiler and, for foreign architectures, the emulator that runs its programs."""

    name: str
    cc: str
    runner: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


def host_toolchain() -> Toolchain | None:
    """The host C compiler (``CC``, else cc/gcc/clang), or ``None``."""
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return Toolchain("host", cc)
    return None


def riscv_toolchain() -> Toolchain | None:
    """``riscv64-linux-gnu-gcc`` (static build) + ``qemu-riscv64``, or ``None`` when either is missing."""
    cc = os.environ.get("RISCV_CC", "riscv64-linux-gnu-gcc")
    qemu = os.environ.get("QEMU_RISCV", "qemu-riscv64")
    if shutil.which(cc) and shutil.which(qemu):
        return Toolchain("riscv64", cc, (qemu,), ("-static", "-march=rv64gc", "-mabi=lp64d"))
    return None


def aarch64_toolchain() -> Toolchain | None:
    """``aarch64-linux-gnu-gcc`` (static build) + ``qemu-aarch64``, or ``None`` when either is missing."""
    cc = os.environ.get("AARCH64_CC", "aarch64-linux-gnu-gcc")
    qemu = os.environ.get("QEMU_AARCH64", "qemu-aarch64")
    if shutil.which(cc) and shutil.which(qemu):
        return Toolchain("aarch64", cc, (qemu,), ("-static", "-march=armv8-a"))
    return None
