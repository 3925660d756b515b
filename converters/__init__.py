"""Converters: quantize / compile a model for a target and check its fidelity (``convert``)."""

from __future__ import annotations

from typing import Any

__all__ = ["convert", "ConversionResult", "FrameSampling"]


def __getattr__(name: str) -> Any:  # the conversion stack is heavy: import it on first use
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
