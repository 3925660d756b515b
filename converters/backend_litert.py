"""LiteRT backend: prepared .tflite, static INT8 (per op exclusions), int8 weights-only, fp16, fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from anyedge.errors import ConversionError

from . import tflite_tools as tt
from .backends import Source


class Backend:
    engine = "litert"
    precisions = ("int8", "int8w", "fp16", "fp32")
    own_float_search = None

    def __init__(self, source: Source) -> None:
        if source.path.suffix.lower() != ".tflite":
            raise ConversionError(f"LiteRT converts .tflite models, not {source.path.name}")
        self.src = source
        self.prepared = tt.prepare_tflite(source.path, source.work / "litert_prepared.tflite")
        self._calib: Any = None
        self._ranges = dict(source.hints.get("tflite_int8_ranges", {}))

    def layers(self) -> list[str]:
        return tt.op_output_names(self.prepared)

    def build(self, precision: str, float_layers: Sequence[str] = ()) -> dict[str, Path]:
        work = self.src.work
        if precision == "int8":
            dst = work / f"litert_int8_{len(float_layers)}_{abs(hash(tuple(float_layers)))}.tflite"
            _, self._calib = tt.quantize_tflite(self.prepared, dst, "int8", input_name=self.src.input_name,
                                                tensors=self.src.calibration, float_ops=float_layers,
                                                calibration=self._calib, ranges=self._ranges)
            return {"model.tflite": dst}
        if float_layers:
            raise ConversionError(f"float layers only apply to int8, not {precision}")
        if precision in ("int8w", "fp16"):
            return {"model.tflite": tt.quantize_tflite(self.prepared, work / f"litert_{precision}.tflite", precision)[0]}
        if precision == "fp32":
            return {"model.tflite": self.prepared}
        raise ConversionError(f"LiteRT backend builds {', '.join(self.precisions)}, not {precision}")

    def engine_options(self, precision: str) -> dict[str, Any]:
        return {}
