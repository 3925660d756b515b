"""Phone GPUs: fp16 weights for the LiteRT GPU delegate (fp16 ONNX for ORT Mobile's GPU EPs)."""

from __future__ import annotations

from .base import Recipe, TargetProfile

PROFILE = TargetProfile(
    name="mobile-gpu",
    description="mobile GPU: fp16 .tflite for the LiteRT GPU delegate; fp16 .onnx for ONNX Runtime "
                "Mobile (NNAPI / CoreML execution providers)",
    recipes={
        ".tflite": Recipe("litert", ".tflite", ("fp16", "fp32")),
        ".onnx": Recipe("onnxruntime", ".onnx", ("fp16", "fp32"), static_shape=True,
                        quantization={"keep_io_types": True}),
    },
    runs_here_on="CPU (the fp16 weights are upcast; the GPU delegate is used on the phone)",
)
