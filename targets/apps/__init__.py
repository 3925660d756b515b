"""Target code for phone and embedded apps: the portable C post-processing library (``c/``).

``c/anyedge_post.{h,c}`` is what ``anyedge export-c`` ships next to a model; :mod:`.cbuild`
compiles it for this host and for aarch64 (run under qemu) and checks it against the SDK.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["C_DIR"]

C_DIR = Path(__file__).resolve().parent / "c"
