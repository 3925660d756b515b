"""``anyedge.camera.frames``: kept for existing code; it lives in :mod:`anyedge.live.sources`."""

from __future__ import annotations

from .live.sources import frames

__all__ = ["frames"]
