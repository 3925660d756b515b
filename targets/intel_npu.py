"""Intel NPU (Core Ultra): OpenVINO IR, static input shape, INT8 via NNCF."""

from __future__ import annotations

from .base import Recipe, TargetProfile

_IR = Recipe("openvino", ".xml", ("int8", "fp16"), static_shape=True,
             quantization={"preset": "performance", "subset_size": 100}, device="NPU")

PROFILE = TargetProfile(
    name="intel-npu",
    description="Intel NPU: OpenVINO IR with a static input shape, INT8 weights and activations (NNCF)",
    recipes={".onnx": _IR, ".tflite": _IR},
    runs_here_on="OpenVINO CPU when no NPU is present",
)
