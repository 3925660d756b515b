"""What a deployment target needs from a converted model, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Recipe", "TargetProfile"]


@dataclass(frozen=True)
class Recipe:
    """How one source format is turned into this target's artifact.

    Attributes:
        engine: the engine that runs the result (``litert``, ``onnxruntime``, ``openvino``).
        output_format: ``.tflite``, ``.onnx`` or ``.xml`` (OpenVINO IR).
        precisions: precisions this target can take, the default first.
        static_shape: whether the input shape must be fixed at conversion time.
        quantization: overrides for the quantizer (per-channel, reduce_range, schemes...).
        device: engine device string (OpenVINO ``NPU``/``CPU``; ONNX Runtime providers).
    """

    engine: str
    output_format: str
    precisions: tuple[str, ...]
    static_shape: bool = False
    quantization: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None
    providers: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetProfile:
    """A deployment target: one recipe per source format it accepts.

    ``recipes`` is keyed by the source file suffix (``.onnx``, ``.tflite``). A model whose
    format has no recipe cannot be converted for this target; :meth:`recipe_for` says so and
    names the targets that can take it.
    """

    name: str
    description: str
    recipes: Mapping[str, Recipe]
    runs_here_on: str | None = None  # what the converted model runs on when the device is absent

    def recipe_for(self, suffix: str) -> Recipe | None:
        return self.recipes.get(suffix.lower())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "recipes": {
                k: {"engine": r.engine, "format": r.output_format, "precisions": list(r.precisions),
                    "static_shape": r.static_shape, "quantization": dict(r.quantization),
                    "device": r.device, "providers": list(r.providers)}
                for k, r in self.recipes.items()
            },
        }
