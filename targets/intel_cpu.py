"""Intel / x86 CPUs: OpenVINO IR INT8 via NNCF (dynamic shapes allowed)."""

from __future__ import annotations

from .base import Recipe, TargetProfile

_IR = Recipe("openvino", ".xml", ("int8", "bf16", "fp16", "fp32"), static_shape=True,
             quantization={"preset": "performance", "subset_size": 100}, device="CPU")

PROFILE = TargetProfile(
    name="intel-cpu",
    description="Intel CPU: OpenVINO IR, INT8 via NNCF; bf16 where the CPU has AMX / AVX-512 BF16",
    recipes={".onnx": _IR, ".tflite": _IR},
)
