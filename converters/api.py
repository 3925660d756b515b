"""``convert()``: a float face detector -> a verified bundle for one target.

Steps: resolve the model and the target's recipe for its format (refusing pairs that cannot
work, up front); fix the input shape where the target needs it; read calibration images
through the detector's own preprocessing; convert; run float and converted model on
held-back images and gate on F1; when the gate fails, try the next remedy (keep the most
sensitive layers in float, then lower-risk precisions); write the bundle atomically with
the fidelity report in its manifest. Nothing is left in ``out`` unless a bundle is complete.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from anyedge.bundle import Bundle, write_bundle, zip_bundle
from anyedge.errors import (
    CalibrationError,
    ConversionError,
    FidelityError,
    UnsupportedTargetError,
)
from anyedge.registry import sha256_file
from anyedge.targets import TARGETS, Recipe, TargetProfile, get_target

from .calibration import list_images, progress, read_bgr, split_images
from .fidelity import Attempt, face_fidelity, output_error, rank_layers

__all__ = ["ConversionResult", "convert", "PRECISIONS"]

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "int8w", "bf16", "fp16", "fp32")
_MIXED_STEPS = (1, 2, 4, 8, 16)  # how many of the most sensitive layers to keep in float, in turn
# The gate refuses to judge on fewer reference faces than this. F1 moves by about 1/n per face
# lost out of n; with 20 faces one lost face costs ~0.026 and two ~0.05, so the default gate
# (max_drop 0.05) can tell "one face lost" from "two lost". With fewer faces a single miss
# swings F1 past the gate and the verdict is noise; with none there is nothing to compare.
MIN_REFERENCE_FACES = 20


@dataclass
class ConversionResult:
    """What :func:`convert` produced."""

    bundle: Bundle
    path: Path
    report: dict[str, Any]


@dataclass
class _Job:
    """Everything one conversion needs, gathered once."""

    spec: Any
    target: TargetProfile
    recipe: Recipe
    precision: str
    max_drop: float
    work: Path
    input_size: tuple[int, int]
    input_shape: list[int]
    input_name: str
    reference: Any  # float FaceDetector on the target engine
    calib_tensors: list[np.ndarray]
    held_images: list[np.ndarray]
    held_reference: list[Any]
    sens_tensors: list[np.ndarray]
    progress: bool
    quantization: dict[str, Any] = field(default_factory=dict)  # the settings used, resolved
    attempts: list[Attempt] = field(default_factory=list)


# -- public API -----------------------------------------------------------------------------
def convert(
    model: str | os.PathLike[str],
    *,
    target: str,
    out: str | os.PathLike[str],
    calibration: str | os.PathLike[str] | None,
    max_drop: float = 0.05,
    precision: str | None = None,
    input_size: tuple[int, int] | None = None,
    family: str | None = None,
    max_calibration: int = 100,
    show_progress: bool = True,
) -> ConversionResult:
    """Convert a face detector for ``target`` and write a verified bundle.

    Args:
        model: registry name or model file (then ``family`` is required).
        target: a target profile name (``anyedge.targets.TARGETS``) or ``"host"``.
        out: bundle directory to create, or a path ending in ``.zip``.
        calibration: folder of real images; 2 in 3 calibrate, every third is held back for
            the fidelity check.
        max_drop: largest allowed F1 drop against the float model (gate: F1 >= 1 - max_drop).
        precision: ``int8`` (weights and activations), ``int8w`` (int8 weights only),
            ``fp16`` or ``fp32``; default: the target's first choice for this format.
        input_size: ``(width, height)`` for the static shape (default: the model's size).
        max_calibration: at most this many calibration images.

    Returns:
        The bundle, its path and the report stored in its manifest.

    Raises:
        UnsupportedTargetError: this model format / precision cannot go to this target.
        CalibrationError: calibration folder missing, empty or unreadable.
        FidelityError: no remedy met the gate; nothing is written.
        ConversionError: a conversion tool failed.
    """
    from anyedge.tasks._loading import resolve_spec

    if not 0.0 <= max_drop < 1.0:
        raise ConversionError(f"max_drop must be in [0, 1), got {max_drop}")
    profile = get_target(target)
    spec = resolve_spec(model, task="face_detection", family=family)
    suffix = spec.path.suffix.lower()
    recipe = profile.recipe_for(suffix)
    if recipe is None:
        able = [n for n, p in TARGETS.items() if p.recipe_for(suffix)]
        raise UnsupportedTargetError(
            f"target {profile.name!r} takes {', '.join(profile.recipes)} models; {spec.name} is a {suffix} "
            f"model. Targets that take it: {', '.join(able) or 'none'}"
        )
    precision = precision or recipe.precisions[0]
    if precision not in recipe.precisions:
        raise UnsupportedTargetError(
            f"target {profile.name!r} runs {suffix} models at {', '.join(recipe.precisions)}, not {precision!r}"
        )
    out = Path(out)
    _check_out(out)
    if calibration is None:
        raise CalibrationError("a calibration folder of real images is needed (it also feeds the fidelity check)")
    files = list_images(calibration)
    calib_files, held_files = split_images(files)
    calib_files = calib_files[:max_calibration]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anyedge-convert-") as tmp:
        job = _prepare(spec, profile, recipe, precision, max_drop, Path(tmp), input_size,
                       calib_files, held_files, show_progress)
        try:
            produced = _run_remedies(job)
            speed = _speed(job, next(iter(produced[0].values()))) if produced else {}
        finally:
            job.reference.close()
        if produced is None:
            summary = "; ".join(f"{a.remedy}: " + (f"F1 {a.agreement.f1:.3f}" if a.agreement else a.error or "failed")
                                for a in job.attempts)
            raise FidelityError(
                f"no conversion of {spec.name} for {profile.name} kept F1 >= {1 - max_drop:.3f} "
                f"against the float model ({summary}); nothing was written. Raise --max-drop or "
                "choose a higher precision."
            )
        files_out, attempt = produced
        manifest = _manifest(job, attempt, files_out, calibration, calib_files, held_files,
                             time.perf_counter() - t0)
        manifest["speed_here"] = speed
        if out.suffix.lower() == ".zip":
            staging = Path(tmp) / "bundle"
            write_bundle(staging, files_out, manifest)
            zip_bundle(staging, out)
            from anyedge.bundle import load_bundle

            bundle = load_bundle(out)
        else:
            bundle = write_bundle(out, files_out, manifest)
    return ConversionResult(bundle=bundle, path=out, report=manifest["fidelity"])


def _check_out(out: Path) -> None:
    if out.suffix.lower() == ".zip":
        if out.exists() and not out.is_file():
            raise ConversionError(f"{out} exists and is not a file")
        if not out.parent.exists():
            out.parent.mkdir(parents=True)
    elif out.exists() and not (out / "manifest.json").is_file():
        raise ConversionError(f"{out} exists and is not a bundle; refusing to overwrite it")


# -- preparation ----------------------------------------------------------------------------
def _prepare(spec: Any, profile: TargetProfile, recipe: Recipe, precision: str, max_drop: float, work: Path,
             input_size: tuple[int, int] | None, calib_files: Sequence[Path], held_files: Sequence[Path],
             show: bool) -> _Job:
    from anyedge.tasks.face_detector import FaceDetector

    size = tuple(input_size or spec.input.size)  # type: ignore[union-attr]
    ref_engine = recipe.engine
    ref = FaceDetector.create(spec.path, family=spec.family, input_spec=spec.input, decoder=spec.decoder,
                              engine=ref_engine, channels="BGR", input_size=size if spec.input.dynamic else None)
    w, h = ref.input_size
    shape = [1, 3, h, w] if spec.input.layout == "NCHW" else [1, h, w, 3]
    tensors = []
    for f in progress(calib_files, desc="calibration images", total=len(calib_files), enabled=show):
        tensors.append(ref.preprocess(read_bgr(f))[0].copy())  # preprocess reuses its buffer
    held = [read_bgr(f) for f in held_files]
    held_ref = [ref.detect(img) for img in progress(held, desc="float reference", total=len(held), enabled=show)]
    faces = sum(len(r) for r in held_ref)
    log.info("calibration: %d images, held back: %d (float model finds %d faces)", len(tensors), len(held), faces)
    if faces < MIN_REFERENCE_FACES:
        ref.close()
        raise CalibrationError(
            f"the float {spec.name} finds {faces} face(s) in the {len(held)} held-back images; the fidelity "
            f"gate needs at least {MIN_REFERENCE_FACES} to judge (add images with faces to the calibration "
            "folder; every third image is held back)")
    return _Job(spec, profile, recipe, precision, max_drop, work, (w, h), shape, ref._in.name, ref,
                tensors, held, held_ref, tensors[:12], show, quantization=_resolved(recipe))


def _resolved(recipe: Recipe) -> dict[str, Any]:
    """The recipe's quantization settings with every ``"auto"`` replaced by the value used."""
    from anyedge.targets import cpu_has_vnni

    settings = dict(recipe.quantization)
    if settings.get("reduce_range") == "auto":
        # x86 without VNNI saturates u8 x s8 products unless weights use 7 bits
        settings["reduce_range"] = platform.machine().lower() in ("x86_64", "amd64") and not cpu_has_vnni()
    return settings


def _evaluate(job: _Job, path: Path, attempt: Attempt) -> Attempt:
    from anyedge.tasks.face_detector import FaceDetector

    eopts = {"precision": "bf16"} if attempt.precision == "bf16" else {}
    try:
        with FaceDetector.create(path, family=job.spec.family, input_spec=job.spec.input, decoder=job.spec.decoder,
                                 engine=job.recipe.engine, channels="BGR", engine_options=eopts,
                                 input_size=job.input_size if job.spec.input.dynamic else None) as det:
            cand = [det.detect(img) for img in job.held_images]
    except Exception as e:  # an artifact the engine refuses is a failed attempt, not a crash
        attempt.error = f"{type(e).__name__}: {e}"
        log.warning("%s (%s) failed to run: %s", attempt.remedy, attempt.precision, attempt.error)
        job.attempts.append(attempt)
        return attempt
    attempt.agreement = face_fidelity(job.held_reference, cand)
    attempt.passed = attempt.agreement.f1 >= 1.0 - job.max_drop
    log.info("%s (%s): F1 %.4f mean IoU %.4f -> %s", attempt.remedy, attempt.precision,
             attempt.agreement.f1, attempt.agreement.mean_iou, "pass" if attempt.passed else "fail")
    job.attempts.append(attempt)
    return attempt


def _raw_outputs(job: _Job, path: Path, tensors: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    from anyedge.engines import open_engine
    from anyedge.engines.base import dequantize_output, quantize_input

    eng = open_engine(path, job.recipe.engine, threads=None)
    try:
        spec = eng.inputs[0]
        res = []
        for x in tensors:
            outs = eng.run({spec.name: quantize_input(spec, x)})
            by_name = {o.name: dequantize_output(o, y) for o, y in zip(eng.outputs, outs)}
            res.append([by_name[k] for k in sorted(by_name)])  # same order whatever the engine's
        return res
    finally:
        eng.close()


def _speed(job: _Job, path: Path, runs: int = 30) -> dict[str, Any]:
    """Float vs converted engine latency on this machine, interleaved run by run.

    Small models often gain nothing from int8 on a given CPU; the report says so, so nobody
    ships a slower model by accident. Measured where the conversion runs, not on the target.
    """
    import statistics

    from anyedge.engines import open_engine
    from anyedge.engines.base import quantize_input

    cand = open_engine(path, job.recipe.engine, threads=1)
    ref_one = open_engine(job.reference.spec.path, job.recipe.engine, threads=1)
    try:
        x = job.calib_tensors[0]
        feeds_ref = {ref_one.inputs[0].name: quantize_input(ref_one.inputs[0], x)}
        feeds_cand = {cand.inputs[0].name: quantize_input(cand.inputs[0], x)}
        tf, tc = [], []
        for i in range(runs + 3):
            for eng, feeds, acc in ((ref_one, feeds_ref, tf), (cand, feeds_cand, tc))[:: 1 if i % 2 else -1]:
                t = time.perf_counter()
                eng.run(feeds)
                if i >= 3:
                    acc.append((time.perf_counter() - t) * 1e3)
        f, c = statistics.median(tf), statistics.median(tc)
    finally:
        cand.close()
        ref_one.close()
    return {"float_ms": round(f, 3), "converted_ms": round(c, 3), "ratio": round(c / f, 3), "threads": 1,
            "runs": runs, "machine": platform.machine(),
            "note": "engine call only, measured where the conversion ran; the target device may differ"}


# -- the remedy chain per engine ------------------------------------------------------------
Candidate = tuple[dict[str, Path], Attempt]


def _run_remedies(job: _Job) -> Candidate | None:
    runner: Callable[[_Job], Candidate | None] = {
        "onnxruntime": _chain_onnxruntime,
        "openvino": _chain_openvino,
        "litert": _chain_litert,
    }[job.recipe.engine]
    return runner(job)


def _first_pass(job: _Job, tries: Sequence[tuple[str, str, Callable[[], dict[str, Path] | None]]]) -> Candidate | None:
    """Run remedies in order; return the first whose artifact passes the gate."""
    for remedy, precision, make in tries:
        try:
            files = make()
        except ConversionError as e:
            job.attempts.append(Attempt(remedy, precision, error=str(e)))
            log.warning("%s (%s) could not be produced: %s", remedy, precision, e)
            continue
        if files is None:
            continue
        model_file = next(iter(files.values()))
        att = _evaluate(job, model_file, Attempt(remedy, precision))
        if att.passed:
            return files, att
    return None


def _precision_chain(job: _Job) -> list[str]:
    """The requested precision, then every safer one the recipe offers."""
    order = list(PRECISIONS)
    start = order.index(job.precision)
    return [p for p in order[start:] if p in job.recipe.precisions]


# ONNX Runtime -------------------------------------------------------------------------------
def _chain_onnxruntime(job: _Job) -> Candidate | None:
    from . import onnx_tools as ox

    src = job.spec.path
    static = job.work / "static.onnx"
    if job.recipe.static_shape:
        ox.fix_input_shape(src, static, job.input_shape)
    else:
        shutil.copyfile(src, static)
    job_settings = job.quantization
    prepared = job.work / "prepared.onnx"
    cache = job.work / "calibration.json"

    def int8(exclude: Sequence[str] = ()) -> dict[str, Path]:
        if not prepared.exists():
            ox.prepare_for_quantization(static, prepared)
        dst = job.work / f"int8_{len(exclude)}.onnx"
        ox.quantize_int8(prepared, dst, job.input_name, job.calib_tensors, job_settings, cache=cache, exclude=exclude)
        return {"model.onnx": dst}

    def mixed() -> Candidate | None:
        int8()  # ensure prepared + calibration cache
        nodes = ox.quantizable_nodes(prepared)
        ref = _raw_outputs(job, static, job.sens_tensors)

        def err(node: str) -> float:
            dst = job.work / "one.onnx"
            ox.quantize_int8(prepared, dst, job.input_name, None, job_settings, cache=cache, only=[node])
            return output_error(ref, _raw_outputs(job, dst, job.sens_tensors))

        ranking = _ranking(job, nodes, err)
        return _mixed_steps(job, ranking, lambda keep: int8(keep))

    tries: list[tuple[str, str, Callable[[], Any]]] = []
    for p in _precision_chain(job):
        if p == "int8":
            tries.append(("int8", "int8", int8))
        elif p == "fp16":
            tries.append(("fp16", "fp16", lambda: {"model.onnx": ox.to_fp16(static, job.work / "fp16.onnx",
                                                                              bool(job.quantization.get("keep_io_types", True)))}))
        elif p == "fp32":
            tries.append(("fp32", "fp32", lambda: {"model.onnx": static}))
    return _with_mixed(job, tries, mixed)


def _with_mixed(job: _Job, tries: list[tuple[str, str, Callable[[], Any]]],
                mixed: Callable[[], Candidate | None]) -> Candidate | None:
    """First the plain requested precision; if that was int8 and failed, the mixed-precision remedy; then the rest."""
    if not tries:
        return None
    first = _first_pass(job, tries[:1])
    if first is not None:
        return first
    if tries[0][0] == "int8":
        try:
            got = mixed()
        except ConversionError as e:
            job.attempts.append(Attempt("int8+float-sensitive-layers", "int8-mixed", error=str(e)))
            got = None
        if got is not None:
            return got
    return _first_pass(job, tries[1:])


def _ranking(job: _Job, layers: Sequence[str], err: Callable[[str], float]) -> list[tuple[str, float]]:
    """Per-layer sensitivity; layers that could not be measured are recorded as a failed attempt."""
    failed: list[tuple[str, str]] = []
    ranking = rank_layers(layers, err, lambda it, **kw: progress(it, enabled=job.progress, **kw), failed)
    if failed:
        job.attempts.append(Attempt("sensitivity", "int8", error=f"{len(failed)} of {len(layers)} layers not "
                                    f"measured; first: {failed[0][0]}: {failed[0][1]}",
                                    detail={"unmeasured": [n for n, _ in failed]}))
    if not ranking:
        raise ConversionError(f"no layer's sensitivity could be measured ({len(layers)} tried)")
    return ranking


def _mixed_steps(job: _Job, ranking: Sequence[tuple[str, float]],
                 make: Callable[[list[str]], dict[str, Path]]) -> Candidate | None:
    """Keep the k most sensitive layers in float for growing k until the gate passes."""
    names = [n for n, _ in ranking]
    for k in _MIXED_STEPS:
        if k > len(names):
            break
        keep = names[:k]
        try:
            files = make(keep)
        except ConversionError as e:
            job.attempts.append(Attempt("int8+float-sensitive-layers", "int8-mixed", error=str(e)))
            return None
        detail = {"float_layers": keep, "sensitivity": {n: round(s, 6) for n, s in ranking[:k]},
                  "ranked_layers": len(ranking)}
        att = _evaluate(job, next(iter(files.values())), Attempt("int8+float-sensitive-layers", "int8-mixed",
                                                                   detail=detail))
        if att.passed:
            return files, att
    return None


# OpenVINO -----------------------------------------------------------------------------------
def _chain_openvino(job: _Job) -> Candidate | None:
    from . import openvino_tools as ovt

    model = ovt.read_model(job.spec.path, job.input_shape if job.recipe.static_shape else None)

    def save(m: Any, stem: str, fp16: bool) -> dict[str, Path]:
        xml = job.work / f"{stem}.xml"
        ovt.save_ir(m, xml, fp16=fp16)
        return {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}

    def int8() -> dict[str, Path]:
        return save(ovt.nncf_int8(model, job.calib_tensors, job.quantization), "int8", True)

    def mixed() -> Candidate | None:
        return _openvino_accuracy_control(job, model, save)

    def bf16() -> dict[str, Path]:
        """fp32 weights computed in bf16: the manifest asks the engine for it (precision "bf16")."""
        from anyedge.engines.openvino import cpu_supports

        if job.recipe.device == "CPU" and not cpu_supports("bf16"):
            raise ConversionError("this CPU has no bf16 (OpenVINO lists no BF16 capability: no AVX-512 BF16 "
                                  "or AMX), so a bf16 model cannot be checked here")
        return save(model, "bf16", False)

    tries: list[tuple[str, str, Callable[[], Any]]] = []
    for p in _precision_chain(job):
        if p == "int8":
            tries.append(("int8", "int8", int8))
        elif p == "bf16":
            tries.append(("bf16", "bf16", bf16))
        elif p == "fp16":
            tries.append(("fp16", "fp16", lambda: save(model, "fp16", True)))
        elif p == "fp32":
            tries.append(("fp32", "fp32", lambda: save(model, "fp32", False)))
    return _with_mixed(job, tries, mixed)


def _openvino_accuracy_control(job: _Job, model: Any, save: Callable[..., dict[str, Path]]) -> Candidate | None:
    """NNCF's accuracy-aware PTQ: ranks quantized ops by their measured effect on our F1 and
    reverts the most harmful to float until the drop is within ``max_drop``."""
    import nncf

    ref = job.reference
    vdata = []
    for img, r in zip(job.held_images, job.held_reference):
        x, lb = ref.preprocess(img)
        vdata.append((x.copy(), r, lb))

    def validate(compiled: Any, data: Any) -> float:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        if hint.get_type_name() != "f32":  # our reference ran at fp32; judge candidates at fp32 too
            raise ConversionError(f"NNCF validated at {hint.get_type_name()}, not f32")
        outs = [sorted(o.get_names(), key=lambda s: (s.isdigit(), s))[0] for o in compiled.outputs]
        cand = []
        refs = []
        for x, r, lb in data:
            res = compiled(x)
            named = {n: np.asarray(res[o], np.float32) for n, o in zip(outs, compiled.outputs)}
            cand.append(ref.decode(named, lb))
            refs.append(r)
        return face_fidelity(refs, cand).f1

    # NNCF compiles the models it validates itself; rt_info runtime options pin them to f32 (the
    # CPU plugin would pick bf16 on AMX / AVX-512 BF16 CPUs and shift the baseline).
    model.set_rt_info("f32", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    import openvino as ov

    baseline = validate(ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), vdata)
    # anyedge's gate is absolute against the float model (F1 >= 1 - max_drop); NNCF's max_drop is
    # relative to its own baseline metric, so translate: baseline - nncf_drop = 1 - max_drop.
    nncf_drop = baseline - (1.0 - job.max_drop)
    if nncf_drop < 0:
        raise ConversionError(f"the float model itself scores F1 {baseline:.4f} at fp32 when re-run; below the gate")
    try:
        q = nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(job.calib_tensors), nncf.Dataset(vdata), validation_fn=validate,
            max_drop=nncf_drop, drop_type=nncf.DropType.ABSOLUTE,
            subset_size=min(300, len(job.calib_tensors)),
            preset=nncf.QuantizationPreset.PERFORMANCE,
        )
    except Exception as e:
        raise ConversionError(f"NNCF accuracy-aware quantization failed: {e}") from e
    files = save(q, "int8_mixed", True)
    float_ops = _ov_float_ops(q)
    att = _evaluate(job, files["model.xml"], Attempt("int8+float-sensitive-layers", "int8-mixed",
                                                      detail={"ranking": "nncf accuracy control (per-op F1 effect)",
                                                              "float_layers": float_ops, "nncf_baseline_f1": baseline,
                                                              "nncf_max_drop": round(nncf_drop, 6)}))
    return (files, att) if att.passed else None


def _ov_float_ops(model: Any) -> list[str]:
    """Weighted ops left without a FakeQuantize on their weights (i.e. kept in float)."""
    kinds = {"Convolution", "GroupConvolution", "MatMul"}
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in kinds:
            continue
        weight_src = op.inputs()[1].get_source_output().get_node().get_type_name()
        if weight_src == "Constant":  # quantized weights arrive through FakeQuantize or int8 decompression
            out.append(op.get_friendly_name())
    return out


# LiteRT -------------------------------------------------------------------------------------
def _chain_litert(job: _Job) -> Candidate | None:
    from . import tflite_tools as tt

    prepared = job.work / "prepared.tflite"
    tt.prepare_tflite(job.spec.path, prepared)
    state: dict[str, Any] = {}
    ranges = dict(job.spec.quantization.get("tflite_int8_ranges", {}))

    def int8(float_ops: Sequence[str] = ()) -> dict[str, Path]:
        dst = job.work / f"int8_{len(float_ops)}.tflite"
        _, state["calib"] = tt.quantize_tflite(prepared, dst, "int8", input_name=job.input_name,
                                               tensors=job.calib_tensors, float_ops=float_ops,
                                               calibration=state.get("calib"), ranges=ranges)
        return {"model.tflite": dst}

    def mixed() -> Candidate | None:
        ops = tt.op_output_names(prepared)
        ref = _raw_outputs(job, prepared, job.sens_tensors)

        def err(op: str) -> float:
            dst = job.work / "one.tflite"
            others = [o for o in ops if o != op]
            tt.quantize_tflite(prepared, dst, "int8", input_name=job.input_name, float_ops=others,
                               calibration=state.get("calib"), tensors=job.calib_tensors, ranges=ranges)
            return output_error(ref, _raw_outputs(job, dst, job.sens_tensors))

        ranking = _ranking(job, ops, err)
        return _mixed_steps(job, ranking, lambda keep: int8(keep))

    def simple(scheme: str) -> Callable[[], dict[str, Path]]:
        return lambda: {"model.tflite": tt.quantize_tflite(prepared, job.work / f"{scheme}.tflite", scheme)[0]}

    tries: list[tuple[str, str, Callable[[], Any]]] = []
    for p in _precision_chain(job):
        if p == "int8":
            tries.append(("int8", "int8", int8))
        elif p in ("int8w", "fp16"):
            tries.append((p, p, simple(p)))
        elif p == "fp32":
            tries.append(("fp32", "fp32", lambda: {"model.tflite": prepared}))
    return _with_mixed(job, tries, mixed)


# -- manifest -------------------------------------------------------------------------------
def _tool_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("anyedge", "onnxruntime", "onnx", "openvino", "nncf", "ai-edge-litert", "ai-edge-quantizer",
                 "onnxconverter-common", "numpy", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _manifest(job: _Job, attempt: Attempt, files: Mapping[str, Path], calibration: Any,
              calib_files: Sequence[Path], held_files: Sequence[Path], seconds: float) -> dict[str, Any]:
    spec = job.spec
    w, h = job.input_size
    input_spec = replace(spec.input, size=(w, h), dynamic=False) if job.recipe.static_shape else spec.input
    source_bytes = spec.path.stat().st_size
    out_bytes = sum(p.stat().st_size for p in files.values())
    from anyedge.registry import REGISTRY

    info = REGISTRY.get(spec.name)
    return {
        "model": {"name": spec.name, "family": spec.family, "task": "face_detection",
                  "license": info.license if info else None},
        "model_file": next(iter(files)),
        "input": input_spec.to_dict(),
        "decoder": dict(spec.decoder),
        "target": job.target.name,
        "engine": job.recipe.engine,
        "device": job.recipe.device,
        "providers": list(job.recipe.providers),
        "precision": attempt.precision,
        "requested_precision": job.precision,
        "remedy": attempt.remedy,
        "source": {"file": spec.path.name, "sha256": sha256_file(spec.path), "bytes": source_bytes},
        "bytes": out_bytes,
        "size_ratio": round(out_bytes / source_bytes, 4),
        "tools": _tool_versions(),
        "quantization": dict(job.quantization),
        "calibration": {"folder": str(calibration), "images": len(calib_files), "held_back": len(held_files),
                        "input_shape": job.input_shape, "first": calib_files[0].name if calib_files else None},
        "fidelity": {
            "metric": "detection agreement with the float model on held-back images (IoU 0.5)",
            "max_drop": job.max_drop,
            "gate_f1": round(1.0 - job.max_drop, 4),
            "passed": True,
            "chosen": attempt.to_dict(),
            "attempts": [a.to_dict() for a in job.attempts],
            "seconds": round(seconds, 1),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
