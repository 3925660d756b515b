"""OpenVINO backend: IR with INT8 via NNCF (int8 weight constants), bf16 compute, fp16 weights, fp32.

Float layers are searched by NNCF's accuracy-aware quantization, which measures each
quantized op's effect on the task's own gated value and reverts the most harmful ones; it
validates at fp32 (pinned through the model's runtime options) so that its baseline is the
same float reference anyedge's gate uses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from anyedge.errors import ConversionError

from . import openvino_tools as ovt
from .backends import Source

log = logging.getLogger(__name__)

Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]


class Backend:
    engine = "openvino"
    precisions = ("int8", "bf16", "fp16", "fp32")

    def __init__(self, source: Source, device: str = "CPU") -> None:
        self.src = source
        self.device = device
        self.model = ovt.read_model(source.path, source.input_shape)

    def layers(self) -> list[str]:
        return ovt.weighted_ops(self.model)

    def _save(self, model: Any, stem: str, fp16: bool) -> dict[str, Path]:
        xml = self.src.work / f"ov_{stem}.xml"
        ovt.save_ir(model, xml, fp16=fp16)
        return {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}

    def build(self, precision: str, float_layers: Sequence[str] = ()) -> dict[str, Path]:
        if precision == "int8":
            q = ovt.nncf_int8(self.model, self.src.calibration, self.src.settings, ignored=float_layers)
            return self._save(ovt.compress_int8_weights(q), f"int8_{len(float_layers)}", True)
        if float_layers:
            raise ConversionError(f"float layers only apply to int8, not {precision}")
        if precision == "bf16":
            from anyedge.engines.openvino import cpu_supports

            if not cpu_supports("bf16"):
                raise ConversionError("this CPU has no bf16 (OpenVINO lists no BF16 capability: no AVX-512 BF16 "
                                      "or AMX), so a bf16 model cannot be built and checked here")
            return self._save(self.model, "bf16", False)  # fp32 weights; the engine computes in bf16
        if precision == "fp16":
            return self._save(self.model, "fp16", True)
        if precision == "fp32":
            return self._save(self.model, "fp32", False)
        raise ConversionError(f"OpenVINO backend builds {', '.join(self.precisions)}, not {precision}")

    def engine_options(self, precision: str) -> dict[str, Any]:
        return {"precision": "bf16"} if precision == "bf16" else {}

    def own_float_search(self, score: Callable[[Run], float], max_drop: float,
                         validation: Sequence[np.ndarray]) -> tuple[dict[str, Path], list[str], dict[str, Any]]:
        """NNCF accuracy control with anyedge's absolute gate translated into NNCF's terms.

        Args:
            score: the task's gated value (e.g. F1 vs the float reference) for a raw-output runner.
            max_drop: anyedge's gate is ``score >= 1 - max_drop``.
            validation: the held-back input tensors ``score`` runs over (NNCF iterates them).
        """
        import nncf
        import openvino as ov

        from anyedge.engines.openvino import port_name

        def runner(compiled: Any) -> Run:
            names = [port_name(o) for o in compiled.outputs]

            def run(x: np.ndarray) -> dict[str, np.ndarray]:
                res = compiled(x)
                return {n: np.asarray(res[o], np.float32) for n, o in zip(names, compiled.outputs)}
            return run

        def validate(compiled: Any, _data: Any) -> float:
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")
            if hint.get_type_name() != "f32":  # the reference ran at fp32; judge candidates at fp32 too
                raise ConversionError(f"NNCF validated at {hint.get_type_name()}, not f32")
            return score(runner(compiled))

        model = self.model.clone()
        # NNCF compiles what it validates itself; rt_info runtime options pin those to f32 (the CPU
        # plugin would pick bf16 on AMX / AVX-512 BF16 CPUs and shift NNCF's baseline).
        model.set_rt_info("f32", ["runtime_options", "INFERENCE_PRECISION_HINT"])
        baseline = score(runner(ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})))
        # anyedge: value >= 1 - max_drop (absolute, float = 1). NNCF: value >= baseline - nncf_drop.
        nncf_drop = baseline - (1.0 - max_drop)
        if nncf_drop < 0:
            raise ConversionError(f"the float model re-run at fp32 scores {baseline:.4f}, below the gate")
        try:
            q = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(list(self.src.calibration)), nncf.Dataset(list(validation)),
                validation_fn=validate, max_drop=nncf_drop, drop_type=nncf.DropType.ABSOLUTE,
                subset_size=min(300, len(self.src.calibration)), preset=nncf.QuantizationPreset.PERFORMANCE,
            )
        except ConversionError:
            raise
        except Exception as e:
            raise ConversionError(f"NNCF accuracy-aware quantization failed: {e}") from e
        float_layers = ovt.float_weighted_ops(q)
        files = self._save(ovt.compress_int8_weights(q), "int8_mixed", True)
        return files, float_layers, {"search": "nncf accuracy control (per-op effect on the gated value)",
                                     "nncf_baseline": round(baseline, 6), "nncf_max_drop": round(nncf_drop, 6)}
