"""Binary neural networks for activity recognition: the packed format, kernels and portable C.

- :mod:`.format`: the ``.bnn`` file (``BnnModel``/``BnnLayer``, read/write, validation).
- :mod:`.reference`: the numpy reference of the integer arithmetic.
- :mod:`.kernels`: the compiled Cython XNOR-popcount kernels (``_kernels.pyx``).
- ``c/anyedge_bnn.{c,h}`` (:data:`C_DIR`): the malloc-free C library for firmware. The check that
  builds it on the host and for riscv64/aarch64 under qemu is a developer tool outside the wheel
  (``targets/checks/bnn_check.py``, run by ``make riscv-check`` and ``make aarch64-check``).

No submodule is imported here, so ``import anyedge.targets.bnn`` stays free of compiled code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["C_DIR", "KERNELS_PYX"]

C_DIR = Path(__file__).resolve().parent / "c"
"""The folder holding the portable C library (``anyedge_bnn.c``, ``anyedge_bnn.h``)."""

KERNELS_PYX = Path(__file__).resolve().parent / "_kernels.pyx"
"""The Cython source of the compiled kernels (shipped so a cross build can compile it)."""
