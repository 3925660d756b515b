"""Binary neural networks for activity recognition: the packed format, kernels and portable C.

- :mod:`.format`: the ``.bnn`` file (``BnnModel``/``BnnLayer``, read/write, validation).
- :mod:`.reference`: the numpy reference of the integer arithmetic.
- :mod:`.kernels`: the compiled Cython XNOR-popcount kernels (``_kernels.pyx``).
- ``c/anyedge_bnn.{c,h}``: the malloc-free C library for firmware; :mod:`.cbuild` builds and
  checks it on the host and for riscv64 under qemu (``python -m anyedge.targets.bnn.cbuild``).

Nothing is imported here, so ``import anyedge.targets.bnn`` stays free of compiled code.
"""

from __future__ import annotations

__all__: list[str] = []
