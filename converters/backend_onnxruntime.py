"""ONNX Runtime backend: static shape, INT8 QDQ (per node exclusions), fp16, fp32."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

from anyedge.errors import ConversionError

from . import onnx_tools as ox
from .backends import Source


class Backend:
    engine = "onnxruntime"
    precisions = ("int8", "fp16", "fp32")
    own_float_search = None

    def __init__(self, source: Source) -> None:
        if source.path.suffix.lower() != ".onnx":
            raise ConversionError(f"ONNX Runtime converts .onnx models, not {source.path.name}")
        self.src = source
        self.static = source.work / "ort_static.onnx"
        if source.input_shape is not None:
            ox.fix_input_shape(source.path, self.static, source.input_shape)
        else:
            shutil.copyfile(source.path, self.static)
        self._prepared: Path | None = None
        self._n = 0

    def _prepare(self) -> Path:
        if self._prepared is None:
            self._prepared = ox.prepare_for_quantization(self.static, self.src.work / "ort_prepared.onnx")
        return self._prepared

    def layers(self) -> list[str]:
        return ox.quantizable_nodes(self._prepare())

    def build(self, precision: str, float_layers: Sequence[str] = ()) -> dict[str, Path]:
        work = self.src.work
        if precision == "int8":
            # re-quantized with the layers excluded rather than editing the QDQ graph: the quantizer
            # rewrites the graph around quantized nodes (activations folded into ranges), and an
            # edit gave SCRFD F1 0.941 where exclusion gives 0.968 (Conv_0 and Conv_2 in float)
            self._n += 1
            dst = work / f"ort_int8_{self._n}.onnx"
            ox.quantize_int8(self._prepare(), dst, self.src.input_name, self.src.calibration, self.src.settings,
                             cache=work / "ort_calibration.json", exclude=float_layers)
            return {"model.onnx": dst}
        if float_layers:
            raise ConversionError(f"float layers only apply to int8, not {precision}")
        if precision == "fp16":
            dst = ox.to_fp16(self.static, work / "ort_fp16.onnx", bool(self.src.settings.get("keep_io_types", True)))
            return {"model.onnx": dst}
        if precision == "fp32":
            return {"model.onnx": self.static}
        raise ConversionError(f"ONNX Runtime backend builds {', '.join(self.precisions)}, not {precision}")

    def engine_options(self, precision: str) -> dict[str, Any]:
        return {}
