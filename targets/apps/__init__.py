"""Target code for phone and embedded apps: the portable C post-processing library (``c/``).

``c/anyedge_post.{h,c}`` is what ``anyedge export-c`` ships next to a model. The check that
compiles it for this host and for aarch64 (run under qemu) and compares it with the SDK is a
developer tool outside the wheel (``targets/checks/apps_check.py``, run by ``make apps-check``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["C_DIR"]

C_DIR = Path(__file__).resolve().parent / "c"
