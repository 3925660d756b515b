"""OpenVINO steps: read .onnx/.tflite, fix the input shape, save IR fp32/fp16, INT8 with NNCF."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from anyedge.errors import ConversionError, EngineUnavailableError

__all__ = ["read_model", "save_ir", "nncf_int8", "weighted_ops", "float_weighted_ops", "compress_int8_weights"]

log = logging.getLogger(__name__)


def _ov() -> Any:
    try:
        import openvino as ov
    except ImportError as e:
        raise EngineUnavailableError("OpenVINO conversion needs: pip install 'anyedge[openvino]'") from e
    return ov


def read_model(src: Path, input_shape: Sequence[int] | None) -> Any:
    """Read ``src`` with OpenVINO's frontends, drop inputs nothing reads, fix the input shape when given."""
    ov = _ov()
    try:
        model = ov.convert_model(str(src))
    except Exception as e:
        raise ConversionError(f"OpenVINO cannot read {src.name}: {e}") from e
    _fold_fp16_constants(model)
    for param in list(model.get_parameters()):
        # an input nothing reads cannot change an output (MobileFaceNet's training-only ``target``)
        if not param.output(0).get_target_inputs() and len(model.get_parameters()) > 1:
            log.info("%s: stripping input %s (no operation reads it)", src.name, param.get_friendly_name())
            model.remove_parameter(param)
    if input_shape is not None:
        if len(model.inputs) != 1:
            raise ConversionError(f"{src.name}: expected one input, found {len(model.inputs)}")
        try:
            model.reshape({model.inputs[0]: ov.PartialShape([int(d) for d in input_shape])})
        except Exception as e:
            raise ConversionError(f"{src.name}: cannot fix the input shape to {list(input_shape)}: {e}") from e
    return model


def _fold_fp16_constants(model: Any) -> int:
    """Replace ``Constant(f16) -> Convert(f32)`` by an f32 constant (same values).

    Models that store fp16 weights (MediaPipe's .tflite) arrive with a decompression Convert
    between each weight and its layer; NNCF then puts its FakeQuantize behind the Convert, where
    OpenVINO's weight-compression pass does not find it, and the int8 IR kept every weight in
    float. Returns how many constants were folded.
    """
    from openvino import opset13 as ops

    folded = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convert" or op.get_output_element_type(0).get_type_name() != "f32":
            continue
        src = op.input_value(0).get_node()
        if src.get_type_name() != "Constant" or src.get_output_element_type(0).get_type_name() != "f16":
            continue
        const = ops.constant(src.get_data().astype(np.float32))
        const.set_friendly_name(src.get_friendly_name())
        op.output(0).replace(const.output(0))
        folded += 1
    if folded:
        model.validate_nodes_and_infer_types()
    return folded


def save_ir(model: Any, xml: Path, *, fp16: bool) -> list[Path]:
    """Write ``xml`` + ``.bin``; fp16 stores compressed weights (computed in the device's precision)."""
    ov = _ov()
    ov.save_model(model, str(xml), compress_to_fp16=fp16)
    return [xml, xml.with_suffix(".bin")]


def weighted_ops(model: Any) -> list[str]:
    """Friendly names of the convolution / matmul ops NNCF would quantize, in graph order."""
    kinds = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"}
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in kinds]


def nncf_int8(
    model: Any,
    tensors: Sequence[np.ndarray],
    settings: Mapping[str, Any],
    *,
    ignored: Iterable[str] = (),
) -> Any:
    """Post-training INT8 (weights and activations) with NNCF on real calibration tensors."""
    try:
        import nncf
    except ImportError as e:
        raise EngineUnavailableError("INT8 for OpenVINO needs NNCF: pip install 'anyedge[openvino]'") from e
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE,
              "mixed": nncf.QuantizationPreset.MIXED}[settings.get("preset", "performance")]
    names = list(ignored)
    kwargs: dict[str, Any] = {}
    if names:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=names)
    try:
        return nncf.quantize(
            model, nncf.Dataset(list(tensors)), preset=preset,
            subset_size=min(int(settings.get("subset_size", 300)), len(tensors)), **kwargs,
        )
    except Exception as e:
        raise ConversionError(f"NNCF quantization failed: {e}") from e


def compress_int8_weights(model: Any) -> Any:
    """Fold each FakeQuantize on constant weights into int8 constants (+ Convert, Subtract, Multiply).

    NNCF leaves quantized weights as float constants behind a FakeQuantize; saved like that the
    IR stores every weight in fp32/fp16 plus the FakeQuantize ranges, which is why an int8 IR
    was larger than its float source. OpenVINO's own offline pass stores them as int8.
    """
    from openvino._offline_transformations import compress_quantize_weights_transformation

    compress_quantize_weights_transformation(model)
    return model


def float_weighted_ops(model: Any) -> list[str]:
    """Weighted ops whose weights are not quantized (kept in float), by friendly name."""
    from anyedge.engines.openvino import _PASS_THROUGH, _source

    kinds = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"}
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in kinds:
            continue
        w = _source(op.input_value(1).get_node(), _PASS_THROUGH)
        quantized = w.get_type_name() == "FakeQuantize" or (
            w.get_type_name() == "Constant" and w.get_output_element_type(0).get_type_name() in ("i8", "u8", "i4", "u4"))
        if not quantized:
            out.append(op.get_friendly_name())
    return out
