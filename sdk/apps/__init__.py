"""Phone and embedded apps: export a face detector with its C post-processing (``anyedge export-c``)."""

from __future__ import annotations

__all__ = ["export_c"]


def export_c(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`anyedge.apps.export_c.export_c` (imported lazily)."""
    from .export_c import export_c as _export_c

    return _export_c(*args, **kwargs)
