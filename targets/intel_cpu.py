"""Intel / x86 CPUs: OpenVINO IR INT8 via NNCF (dynamic shapes allowed)."""

from __future__ import annotations

from .base import Recipe, TargetProfile

_IR = Recipe("openvino", ".xml", ("int8", "fp16", "fp32"), static_shape=True,
             quantization={"tool": "nncf", "preset": "performance", "subset_size": 100}, device="CPU")

PROFILE = TargetProfile(
    name="intel-cpu",
    description="Intel CPU: OpenVINO IR, INT8 via NNCF",
    recipes={".onnx": _IR, ".tflite": _IR},
)
