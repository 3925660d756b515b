"""NVIDIA Jetson GPU: static-shape fp16 ONNX for the CUDA / TensorRT execution providers."""

from __future__ import annotations

from .base import Recipe, TargetProfile

PROFILE = TargetProfile(
    name="jetson",
    description="NVIDIA Jetson GPU: static-shape fp16 ONNX for ONNX Runtime's TensorRT/CUDA providers",
    recipes={
        ".onnx": Recipe("onnxruntime", ".onnx", ("fp16", "fp32"), static_shape=True,
                        quantization={"keep_io_types": True},
                        providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")),
    },
    runs_here_on="ONNX Runtime CPU when no CUDA provider is installed",
)
