"""TFLite steps with ai-edge-quantizer (no TensorFlow): prepare, fp16, weight-only and static INT8.

MediaPipe's BlazeFace files need two fixes before ai-edge-quantizer can work on them:
they keep fp16 weights behind DEQUANTIZE ops (folded here into float32 constants) and they
carry no SignatureDef (one is added). Their operator codes also live only in the deprecated
field, which the quantizer does not read; that is copied across, otherwise every recipe
"succeeds" while quantizing nothing.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from anyedge.errors import ConversionError, EngineUnavailableError

__all__ = ["SIGNATURE", "prepare_tflite", "quantize_tflite", "op_output_names"]

log = logging.getLogger(__name__)
SIGNATURE = "serving_default"


def _schema() -> tuple[Any, Any]:
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils as fbu
    except ImportError as e:
        raise EngineUnavailableError("TFLite conversion needs ai-edge-litert") from e
    return schema, fbu


def prepare_tflite(src: Path, dst: Path) -> Path:
    """Float32 weights, real operator codes and a SignatureDef; numerically the same model.

    Inputs that no operator reads are dropped (they cannot change any output).
    """
    schema, fbu = _schema()
    try:
        m = fbu.read_model(str(src))
    except Exception as e:
        raise ConversionError(f"cannot parse {src.name} as a TFLite flatbuffer: {e}") from e
    if len(m.subgraphs) != 1:
        raise ConversionError(f"{src.name}: expected one subgraph, found {len(m.subgraphs)}")
    for oc in m.operatorCodes:
        oc.builtinCode = max(oc.builtinCode, oc.deprecatedBuiltinCode)
    sg = m.subgraphs[0]
    kept = []
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex].builtinCode
        if code == schema.BuiltinOperator.DEQUANTIZE:
            t_in, t_out = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            buf = m.buffers[t_in.buffer]
            if t_in.type == schema.TensorType.FLOAT16 and buf.data is not None and len(buf.data):
                w = np.frombuffer(bytes(bytearray(buf.data)), np.float16).astype(np.float32)
                nb = schema.BufferT()
                nb.data = np.frombuffer(w.tobytes(), np.uint8)
                m.buffers.append(nb)
                t_out.buffer = len(m.buffers) - 1
                buf.data = None
                continue
        kept.append(op)
    sg.operators = _fold_activations(m, schema, kept, sg)
    read = {i for op in sg.operators for i in op.inputs if i >= 0}
    unused = [sg.tensors[i].name for i in sg.inputs if i not in read and i not in sg.outputs]
    if unused:  # an input no operator reads cannot change an output (MobileFaceNet's training ``target``)
        log.info("%s: stripping input(s) no operator reads: %s", src.name, ", ".join(map(str, unused)))
        sg.inputs = [i for i in sg.inputs if i in read or i in sg.outputs]
    used = set(sg.inputs) | set(sg.outputs)
    for op in sg.operators:
        used |= {i for i in op.inputs if i >= 0} | set(op.outputs)
    remap: dict[int, int] = {}
    tensors = []
    for i, t in enumerate(sg.tensors):
        if i in used:
            remap[i] = len(tensors)
            tensors.append(t)
    sg.tensors = tensors
    for op in sg.operators:
        op.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [remap[i] for i in op.outputs]
    sg.inputs = [remap[i] for i in sg.inputs]
    sg.outputs = [remap[i] for i in sg.outputs]

    def tmap(idx: int) -> Any:
        tm = schema.TensorMapT()
        tm.name = sg.tensors[idx].name
        tm.tensorIndex = idx
        return tm

    sd = schema.SignatureDefT()
    sd.signatureKey = SIGNATURE
    sd.subgraphIndex = 0
    sd.inputs = [tmap(i) for i in sg.inputs]
    sd.outputs = [tmap(i) for i in sg.outputs]
    m.signatureDefs = [sd]
    fbu.write_model(m, str(dst))
    return dst


def _fold_activations(m: Any, schema: Any, ops: list[Any], sg: Any) -> list[Any]:
    """Fold standalone RELU/RELU6/RELU_N1_TO_1 ops into their producer's fused activation.

    Bit-exact in float. It matters for int8: a quantizer gives a standalone RELU its own output
    scale, XNNPACK then refuses it, and every such op splits the delegated graph (17 of them
    made BlazeFace int8 5x slower than float).
    """
    acts = {schema.BuiltinOperator.RELU: schema.ActivationFunctionType.RELU,
            schema.BuiltinOperator.RELU6: schema.ActivationFunctionType.RELU6,
            schema.BuiltinOperator.RELU_N1_TO_1: schema.ActivationFunctionType.RELU_N1_TO_1}
    producer: dict[int, Any] = {}
    readers: dict[int, int] = {}
    for op in ops:
        for t in op.outputs:
            producer[t] = op
        for t in op.inputs:
            if t >= 0:
                readers[t] = readers.get(t, 0) + 1
    kept = []
    for op in ops:
        act = acts.get(m.operatorCodes[op.opcodeIndex].builtinCode)
        src = op.inputs[0] if act is not None else None
        prod = producer.get(src) if src is not None else None
        opts = getattr(prod, "builtinOptions", None)
        if (prod is not None and readers.get(src) == 1 and src not in sg.outputs and len(prod.outputs) == 1
                and getattr(opts, "fusedActivationFunction", None) == schema.ActivationFunctionType.NONE):
            opts.fusedActivationFunction = act
            prod.outputs = [op.outputs[0]]
            producer[op.outputs[0]] = prod
            continue
        kept.append(op)
    return kept


def op_output_names(path: Path) -> list[str]:
    """Output tensor names of every op a static recipe would quantize, in graph order."""
    schema, fbu = _schema()
    m = fbu.read_model(str(path))
    sg = m.subgraphs[0]
    skip = {schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE}
    out = []
    for op in sg.operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode not in skip:
            name = sg.tensors[op.outputs[0]].name
            out.append(name.decode() if isinstance(name, bytes) else name)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ai-edge-quantizer logs every step on the root logger and warns about its debug mode."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        root.setLevel(level)


def _calibrate_min_max(model: Path, input_name: str, tensors: Sequence[np.ndarray]) -> Any:
    """Ranges from the true min/max over every calibration image.

    ``Quantizer.calibrate`` keeps a moving average of per-image extremes, which forgets rare
    large values, such as the positive face logits that only a few anchors ever produce.
    """
    from ai_edge_quantizer import calibrator, recipe, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    rm = recipe_manager.RecipeManager()
    rm.load_quantization_recipe(recipe.static_wi8_ai8())
    cal = calibrator.Calibrator(model.read_bytes(), num_threads=2, qsv_update_func=qsv_utils.min_max_update)
    cal.calibrate({SIGNATURE: [{input_name: t} for t in tensors]}, rm)
    return cal.get_model_qsvs()


def _override_ranges(qsv: Any, ranges: Mapping[str, tuple[float, float]]) -> Any:
    import copy
    import re

    if not ranges:
        return qsv
    out = copy.deepcopy(qsv)
    for pattern, (lo, hi) in ranges.items():
        for name in out:
            if re.fullmatch(pattern, name):
                out[name] = {"min": np.array([lo], np.float32), "max": np.array([hi], np.float32)}
    return out


def _quantizer(src: Path) -> Any:
    try:
        from ai_edge_quantizer import quantizer
    except ImportError as e:
        raise EngineUnavailableError("TFLite quantization needs: pip install 'anyedge[quantize]'") from e
    return quantizer.Quantizer(str(src))


def quantize_tflite(
    prepared: Path,
    dst: Path,
    scheme: str,
    *,
    input_name: str | None = None,
    tensors: Sequence[np.ndarray] | None = None,
    float_ops: Iterable[str] = (),
    calibration: Any = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[Path, Any]:
    """Quantize a prepared .tflite.

    Args:
        scheme: ``"fp16"`` (fp16 weights), ``"int8w"`` (int8 weights, float activations) or
            ``"int8"`` (static int8 weights and activations, float model inputs/outputs).
        tensors: calibration inputs for ``"int8"``.
        float_ops: output-tensor names of ops kept in float (regex-escaped here).
        calibration: a previous calibration result to reuse (returned by this function).
        ranges: ``{tensor-name regex: (min, max)}`` that replace calibrated ranges, for
            tensors whose useful range is far narrower than what calibration sees (score
            logits: sigmoid saturates beyond +-16, so spending int8 steps on -800 is waste).

    Returns:
        The written file and the calibration result (``None`` for weight-only schemes).
    """
    import re

    from ai_edge_quantizer import qtyping, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    qt = _quantizer(prepared)
    if scheme == "fp16":
        qt.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif scheme == "int8w":
        qt.load_quantization_recipe(recipe.weight_only_wi8_afp32())
    elif scheme == "int8":
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        # The model keeps float inputs and outputs, so apps feed and read it as before.
        for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            qt.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key=AlgorithmName.NO_QUANTIZE)
        # An op's scope is its output tensor name followed by ';'.
        for name in float_ops:
            qt.update_quantization_recipe(regex=f"^{re.escape(name)}(;|$)",
                                          operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
    else:
        raise ConversionError(f"unknown TFLite scheme {scheme!r}; use fp16, int8w or int8")
    try:
        with _quiet():
            if qt.need_calibration:
                if calibration is None:
                    if not tensors or input_name is None:
                        raise ConversionError("static int8 needs calibration tensors")
                    calibration = _calibrate_min_max(prepared, input_name, tensors)
                qsv = _override_ranges(calibration, ranges or {})
                result = qt.quantize(qsv, enable_progress_report=False, enable_progress_bar=False)
            else:
                result = qt.quantize(enable_progress_report=False, enable_progress_bar=False)
            dst.unlink(missing_ok=True)
            result.export_model(str(dst), overwrite=True)
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(f"ai-edge-quantizer ({scheme}) failed: {e}") from e
    return dst, calibration
