"""ONNX graph steps: fixed input shape, opset upgrade, static INT8 (QDQ) with ONNX Runtime, fp16."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from anyedge.errors import ConversionError

__all__ = [
    "fix_input_shape",
    "prepare_for_quantization",
    "quantizable_nodes",
    "quantize_int8",
    "to_fp16",
]

log = logging.getLogger(__name__)
QUANTIZABLE = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def fix_input_shape(src: Path, dst: Path, shape: Sequence[int]) -> Path:
    """Write ``src`` with its single input fixed to ``shape`` and shapes re-derived.

    ONNX Runtime's ``make_input_shape_fixed`` refuses models whose dynamic dims share one
    name (SCRFD names all three ``?``), so the dims are set directly, stale shape info is
    dropped and ORT's basic optimiser folds the now-constant Shape/Reshape chains.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.tools.onnx_model_utils import optimize_model

    m = onnx.load(str(src))
    if len(m.graph.input) < 1:
        raise ConversionError(f"{src.name} has no graph input")
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ConversionError(f"{src.name}: input has rank {len(dims)}, cannot fix it to {list(shape)}")
    for d, v in zip(dims, shape):
        if d.HasField("dim_value") and d.dim_value not in (0, v):
            raise ConversionError(f"{src.name}: input dim is fixed to {d.dim_value}, cannot make it {v}")
        d.Clear()
        d.dim_value = int(v)
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "shaped.onnx"
        onnx.save(m, str(t))
        optimize_model(t, dst, level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    onnx.checker.check_model(str(dst))
    return dst


def prepare_for_quantization(src: Path, dst: Path) -> Path:
    """Opset >= 13 (per-channel DequantizeLinear needs ``axis``) and ORT's quantization pre-pass."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    m = onnx.load(str(src))
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)
    with tempfile.TemporaryDirectory() as tmp:
        src13 = Path(tmp) / "opset13.onnx"
        if opset < 13:
            m = onnx.version_converter.convert_version(m, 13)
        onnx.save(m, str(src13))
        # skip_symbolic_shape: the symbolic pass needs sympy; static models do not need it
        quant_pre_process(str(src13), str(dst), skip_optimization=False, skip_symbolic_shape=True)
    return dst


def quantizable_nodes(path: Path) -> list[str]:
    """Names of the nodes a static INT8 pass would quantize (convolutions and matmuls)."""
    import onnx

    m = onnx.load(str(path))
    return [n.name for n in m.graph.node if n.op_type in QUANTIZABLE and n.name]


class _Reader:
    """ORT CalibrationDataReader over preprocessed tensors."""

    def __init__(self, input_name: str, tensors: Sequence[np.ndarray]) -> None:
        self.input_name = input_name
        self.tensors = list(tensors)
        self._it = iter(self.tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}

    def rewind(self) -> None:
        self._it = iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


def _qtypes(settings: Mapping[str, Any]) -> tuple[Any, Any]:
    from onnxruntime.quantization import QuantType

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    try:
        return types[settings.get("activation", "uint8")], types[settings.get("weight", "int8")]
    except KeyError as e:
        raise ConversionError(f"unsupported quantization type {e}; use uint8 or int8") from None


def quantize_int8(
    prepared: Path,
    dst: Path,
    input_name: str,
    tensors: Sequence[np.ndarray] | None,
    settings: Mapping[str, Any],
    *,
    cache: Path | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> Path:
    """Static INT8 QDQ with per-channel weights.

    Args:
        prepared: output of :func:`prepare_for_quantization`.
        tensors: calibration inputs (not needed once ``cache`` holds the ranges).
        settings: ``per_channel``, ``reduce_range`` (bool), ``activation``/``weight`` types.
        cache: calibration-range cache file (written on first use, then reused).
        exclude: node names kept in float.
        only: quantize just these nodes (for per-layer sensitivity).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    act, wt = _qtypes(settings)
    reader = _Reader(input_name, tensors) if tensors is not None else None
    try:
        quantize_static(
            str(prepared), str(dst), reader,
            quant_format=QuantFormat.QDQ,
            per_channel=bool(settings.get("per_channel", True)),
            reduce_range=bool(settings.get("reduce_range", False)),
            activation_type=act, weight_type=wt,
            nodes_to_exclude=list(exclude) or None,
            nodes_to_quantize=list(only) if only is not None else None,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMovingAverage": False},
            calibration_cache_path=str(cache) if cache else None,
        )
    except Exception as e:  # ORT raises plain ValueError/RuntimeError from deep inside
        raise ConversionError(f"ONNX Runtime static quantization failed: {e}") from e
    return dst


def to_fp16(src: Path, dst: Path, keep_io_types: bool = True) -> Path:
    """fp16 weights and compute, float32 inputs/outputs kept (``onnxconverter-common``)."""
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as e:
        from anyedge.errors import EngineUnavailableError

        raise EngineUnavailableError("fp16 ONNX needs onnxconverter-common: pip install 'anyedge[quantize]'") from e
    import warnings

    m = onnx.load(str(src))
    with warnings.catch_warnings():  # it warns once per tiny weight it clamps to fp16's range
        warnings.simplefilter("ignore", UserWarning)
        m16 = float16.convert_float_to_float16(m, keep_io_types=keep_io_types)
    onnx.save(m16, str(dst))
    return dst
