"""ARM CPUs: Raspberry Pi, Jetson CPU, phones. LiteRT/XNNPACK int8 or ONNX Runtime int8 QDQ."""

from __future__ import annotations

from .base import Recipe, TargetProfile

PROFILE = TargetProfile(
    name="arm-cpu",
    description="ARM CPU (Raspberry Pi, Jetson CPU, phones): int8 on LiteRT/XNNPACK or ONNX Runtime",
    recipes={
        ".tflite": Recipe("litert", ".tflite", ("int8", "int8w", "fp16", "fp32")),
        ".onnx": Recipe("onnxruntime", ".onnx", ("int8", "fp32"), static_shape=True,
                        quantization={"per_channel": True, "activation": "uint8",
                                      "weight": "int8", "reduce_range": "auto"}),
    },
)
