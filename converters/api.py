"""``convert()``: a float face detector or face embedder -> a verified bundle for one target.

Steps: resolve the model and the target's recipe for its format (refusing pairs that cannot
work, up front); read calibration images through the task's own preprocessing; run the float
reference on held-back images; let the engine's backend (:mod:`.backends`) build candidates
under the one remedy loop (:mod:`.remedy`), each judged by the task's evaluator
(:mod:`.fidelity`); write the bundle atomically with the report in its manifest. Nothing is
left in ``out`` unless a bundle is complete.

``target="host"`` measures instead of guessing: every engine installed here x every precision
its backend builds is converted, gated and timed against the float model, and the fastest
passing candidate is written (the float model on its fastest engine when nothing beats it).
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from anyedge.bundle import Bundle, write_bundle, zip_bundle
from anyedge.errors import CalibrationError, ConversionError, FidelityError, UnsupportedTargetError
from anyedge.registry import sha256_file
from anyedge.targets import TARGETS, Recipe, get_target

from .backends import BACKENDS, Backend, Source, get_backend
from .calibration import list_images, progress, read_bgr, split_images
from .fidelity import MIN_REFERENCE_FACES, DetectionEvaluator, EmbeddingEvaluator
from .remedy import FLOAT_STEPS, PRECISIONS, Attempt, precision_chain, search

__all__ = ["ConversionResult", "convert", "PRECISIONS", "MIN_REFERENCE_FACES"]

log = logging.getLogger(__name__)

_MIXED_STEPS = FLOAT_STEPS  # module attribute tests may narrow
# Where each engine's conversion settings come from when the target is "host".
_HOST_SETTINGS = {"onnxruntime": ("arm-cpu", ".onnx"), "openvino": ("intel-cpu", None), "litert": ("arm-cpu", ".tflite")}


@dataclass
class ConversionResult:
    """What :func:`convert` produced."""

    bundle: Bundle
    path: Path
    report: dict[str, Any]


class _DetectionTask:
    """What the converter needs from the face detection task, through its public API only."""

    evaluator_type = DetectionEvaluator

    def __init__(self, spec: Any, input_size: tuple[int, int] | None) -> None:
        self.spec = spec
        self.input_size = input_size

    def open(self, path: Path, engine: str, engine_options: Mapping[str, Any] | None = None,
             threads: int | None = None) -> Any:
        from anyedge.tasks.face_detector import FaceDetector

        return FaceDetector.create(path, family=self.spec.family, input_spec=self.spec.input,
                                   decoder=self.spec.decoder, engine=engine, channels="BGR", threads=threads,
                                   engine_options=dict(engine_options or {}),
                                   input_size=self.input_size if self.spec.input.dynamic else None)

    @staticmethod
    def outputs(task: Any, images: Sequence[np.ndarray]) -> list[Any]:
        return [task.detect(img) for img in images]

    @staticmethod
    def tensor(task: Any, image: np.ndarray) -> tuple[np.ndarray, Any]:
        x, lb = task.preprocess(image)
        return x.copy(), lb  # preprocess returns the task's own buffer, reused next call

    @staticmethod
    def from_raw(task: Any, raw: Mapping[str, np.ndarray], meta: Any) -> Any:
        return task.decode(raw, meta)


class _EmbeddingTask:
    """What the converter needs from the face embedding task, through its public API only.

    Its inputs are aligned RGB face crops in the embedder's geometry; its output per crop is the
    raw embedding (normalised by the evaluator).
    """

    evaluator_type = EmbeddingEvaluator

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.input_size = tuple(spec.input.size)

    def open(self, path: Path, engine: str, engine_options: Mapping[str, Any] | None = None,
             threads: int | None = None) -> Any:
        from anyedge.tasks.face_embedder import FaceEmbedder

        return FaceEmbedder.create(path, family=self.spec.family, engine=engine, threads=threads,
                                   engine_options=dict(engine_options or {}))

    @staticmethod
    def outputs(task: Any, crops: Sequence[np.ndarray]) -> np.ndarray:
        return task.embed(np.stack(crops))

    @staticmethod
    def tensor(task: Any, crop: np.ndarray) -> tuple[np.ndarray, Any]:
        return task.preprocess(crop), None

    @staticmethod
    def from_raw(task: Any, raw: Mapping[str, np.ndarray], _meta: Any) -> np.ndarray:
        name = task.settings.output
        v = raw[name] if name in raw else next(iter(raw.values()))
        return np.asarray(v, np.float32).reshape(-1)


@dataclass
class _Job:
    """Everything one conversion needs, gathered once."""

    spec: Any
    task: _DetectionTask | _EmbeddingTask
    evaluator: DetectionEvaluator | EmbeddingEvaluator
    reference: Any  # the float task on the source format's own engine
    work: Path
    input_shape: list[int]
    calib: list[np.ndarray]
    held_images: list[np.ndarray]
    held_reference: list[Any]
    show: bool
    attempts: list[Attempt] = field(default_factory=list)
    calib_sources: list[Path] = field(default_factory=list)  # the images the calibration inputs came from
    data: dict[str, Any] = field(default_factory=dict)  # task-specific provenance for the manifest

    def source(self, recipe: Recipe, settings: Mapping[str, Any]) -> Source:
        return Source(self.spec.path, self.reference.input_name, self.input_shape if recipe.static_shape else None,
                      self.calib, settings, self.work, hints=dict(self.spec.quantization))

    def evaluate(self, attempt: Attempt, backend: Backend) -> Attempt:
        path = next(iter(attempt.files.values()))
        try:
            with self.task.open(path, backend.engine, backend.engine_options(attempt.precision)) as cand:
                got = self.task.outputs(cand, self.held_images)
                attempt.runs_as = cand.engine.precision
        except Exception as e:  # an artifact the engine refuses is a failed attempt, not a crash
            attempt.error = f"{type(e).__name__}: {e}"
            log.warning("%s %s failed to run: %s", attempt.engine, attempt.label(), attempt.error)
            return attempt
        attempt.fidelity = self.evaluator.score(self.held_reference, got)
        log.info("%s %s: %s %.4f -> %s", attempt.engine, attempt.label(), attempt.fidelity.metric,
                 attempt.fidelity.value, "pass" if attempt.passed else "fail")
        return attempt

    def own_search(self, backend: Backend) -> Attempt:
        """The backend's own float-layer search, judged by the same evaluator, then re-checked here."""
        ref = self.reference
        held = [self.task.tensor(ref, img) for img in self.held_images]

        def score(run: Any) -> float:
            got = [self.task.from_raw(ref, run(x), meta) for x, meta in held]
            return self.evaluator.score(self.held_reference, got).value

        try:
            files, float_layers, detail = backend.own_float_search(score, self.evaluator.max_drop,
                                                                  [x for x, _ in held])
        except ConversionError as e:
            return Attempt(backend.engine, "int8", error=f"{type(e).__name__}: {e}")
        att = Attempt(backend.engine, "int8", tuple(float_layers), detail=detail, files=files)
        return self.evaluate(att, backend)

    def run(self, backend: Backend, chain: Sequence[str], float_layers: bool = True) -> Attempt | None:
        """The remedy loop over ``chain``; ``float_layers=False`` tries each precision plainly."""
        chosen, _ = search(
            backend, chain, lambda a: self.evaluate(a, backend),
            progress=lambda it, **kw: progress(it, enabled=self.show, **kw),
            own_search=self.own_search if float_layers else None, steps=_MIXED_STEPS if float_layers else (),
            attempts=self.attempts)
        return chosen


# -- public API -----------------------------------------------------------------------------
def convert(
    model: str | os.PathLike[str],
    *,
    target: str,
    out: str | os.PathLike[str],
    calibration: str | os.PathLike[str] | None,
    max_drop: float | None = None,
    precision: str | None = None,
    input_size: tuple[int, int] | None = None,
    family: str | None = None,
    max_calibration: int = 100,
    show_progress: bool = True,
    pairs: str | os.PathLike[str] | None = None,
) -> ConversionResult:
    """Convert a face detector or face embedder for ``target`` and write a verified bundle.

    Face embedders (``mobilefacenet``, or a file with ``family="mobilefacenet"``) go through the
    same backends, remedy loop and manifest; their calibration and held-back inputs are aligned
    face crops (every face SCRFD finds in the calibration images, aligned on its 5 keypoints),
    and the gate is :class:`~.fidelity.EmbeddingEvaluator`: the 5th-percentile cosine of
    converted to float embeddings ``>= 1 - max_drop`` and, with ``pairs``, verification accuracy
    within ``max_drop`` of the float model's. An input no operator reads (MobileFaceNet's
    training-only ``target``) is stripped from the converted model.

    Args:
        model: registry name or model file (then ``family`` is required).
        target: a target profile name (``anyedge.targets.TARGETS``) or ``"host"`` (measure
            every candidate this machine can run and keep the fastest that passes).
        out: bundle directory to create, or a path ending in ``.zip``.
        calibration: folder of real images; 2 in 3 calibrate, every third is held back for
            the fidelity check (which needs at least ``MIN_REFERENCE_FACES`` faces there).
        max_drop: largest allowed drop against the float model: F1 for detectors (default
            0.05), 5th-percentile cosine and verification accuracy for embedders (default 0.02,
            so the 5th percentile, and with it the mean, stays >= 0.98).
        precision: ``int8`` (weights and activations), ``int8w`` (int8 weights only), ``bf16``
            (bf16 compute, OpenVINO on CPUs that have it), ``fp16`` or ``fp32``; default: the
            target's first choice for this format. With ``host``: the most aggressive to try.
        input_size: ``(width, height)`` for the static shape (default: the model's size).
        max_calibration: at most this many calibration images (embedders: face crops).
        pairs: embedders only: a CSV with columns ``file_a, file_b, same`` (paths relative to
            the CSV); those photos are held back (never calibrate) and verification accuracy on
            their pairs is part of the gate.

    Returns:
        The bundle, its path and the report stored in its manifest.

    Raises:
        UnsupportedTargetError: this model format / precision cannot go to this target.
        CalibrationError: calibration folder missing, empty, unreadable, or too few faces held back.
        FidelityError: no remedy met the gate; nothing is written.
        ConversionError: a conversion tool failed.
    """
    from anyedge.tasks._loading import resolve_spec

    task_name = _task_of(model, family)
    if max_drop is None:
        max_drop = 0.02 if task_name == "face_embedding" else 0.05
    if not 0.0 <= max_drop < 1.0:
        raise ConversionError(f"max_drop must be in [0, 1), got {max_drop}")
    if precision is not None and precision not in PRECISIONS:
        raise UnsupportedTargetError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if pairs is not None and task_name != "face_embedding":
        raise ConversionError("pairs= (verification pairs) only applies to face embedders")
    host = target == "host"
    spec = resolve_spec(model, task=task_name, family=family)
    if task_name == "face_embedding" and input_size is not None and tuple(input_size) != tuple(spec.input.size):
        raise UnsupportedTargetError(f"{spec.name} embeds {spec.input.size[0]}x{spec.input.size[1]} aligned crops "
                                     f"(its crop geometry); --input-size {input_size[0]}x{input_size[1]} would "
                                     "not match it")
    suffix = spec.path.suffix.lower()
    if host:
        recipes = _host_recipes(suffix)
        if not recipes:
            raise UnsupportedTargetError(f"no engine installed here converts {suffix} models")
    else:
        recipes = {}
        profile = get_target(target)
        recipe = profile.recipe_for(suffix)
        if recipe is None:
            able = [n for n, p in TARGETS.items() if p.recipe_for(suffix)]
            raise UnsupportedTargetError(
                f"target {profile.name!r} takes {', '.join(profile.recipes)} models; {spec.name} is a {suffix} "
                f"model. Targets that take it: {', '.join(able) or 'none'}")
        precision = precision or recipe.precisions[0]
        if precision not in recipe.precisions:
            raise UnsupportedTargetError(
                f"target {profile.name!r} runs {suffix} models at {', '.join(recipe.precisions)}, not {precision!r}")
        recipes[recipe.engine] = recipe
    out = Path(out)
    _check_out(out)
    if calibration is None:
        raise CalibrationError("a calibration folder of real images is needed (pass --calib DIR; it also feeds "
                               "the fidelity check)")
    calib_files, held_files = split_images(list_images(calibration))
    if task_name == "face_detection":
        calib_files = calib_files[:max_calibration]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anyedge-convert-") as tmp:
        if task_name == "face_embedding":
            from .embedding_data import prepare_embedder

            job = prepare_embedder(spec, max_drop, Path(tmp), calib_files, held_files, pairs, max_calibration,
                                   show_progress)
            calib_files = list(dict.fromkeys(job.calib_sources))  # the images the crops came from
        else:
            job = _prepare(spec, max_drop, Path(tmp), input_size, calib_files, held_files, show_progress)
        try:
            if host:
                chosen, recipe, host_report = _host(job, recipes, precision or "int8")
            else:
                (recipe,) = recipes.values()
                backend = get_backend(recipe.engine, job.source(recipe, _resolved(recipe)))
                chosen = job.run(backend, precision_chain(precision, recipe.precisions))
                host_report = None
            if chosen is None:
                summary = "; ".join(
                    f"{a.engine} {a.label()}: " + (f"{a.fidelity.metric} {a.fidelity.value:.3f}" if a.fidelity
                                                   else a.error or "failed") for a in job.attempts)
                what = "F1" if task_name == "face_detection" else "cosine (5th percentile) and verification"
                raise FidelityError(
                    f"no conversion of {spec.name} for {target} kept {what} >= {1 - max_drop:.3f} against the "
                    f"float model ({summary}); nothing was written. Raise --max-drop or choose a higher "
                    "precision.")
            speed = (host_report["table"][host_report["chosen"]]["speed"] if host_report
                     else _speed(job, [(chosen, recipe)])[0])
        finally:
            job.reference.close()
        manifest = _manifest(job, target, recipe, precision or "measured", chosen, calibration, calib_files,
                             held_files, time.perf_counter() - t0, speed, host_report)
        files_out = chosen.files
        created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]  # deepest first
        try:
            if out.suffix.lower() == ".zip":
                staging = Path(tmp) / "bundle"
                write_bundle(staging, files_out, manifest)
                out.parent.mkdir(parents=True, exist_ok=True)
                zip_bundle(staging, out)
                from anyedge.bundle import load_bundle

                bundle = load_bundle(out, trusted_keys=False)  # written here; convert --sign signs it next
            else:
                bundle = write_bundle(out, files_out, manifest)
        except BaseException:
            _remove_empty(created)
            raise
    return ConversionResult(bundle=bundle, path=out, report=manifest["fidelity"])


def _task_of(model: str | os.PathLike[str], family: str | None) -> str:
    """``face_embedding`` for a registered embedder or an embedder family, else ``face_detection``."""
    from anyedge.registry import REGISTRY

    info = REGISTRY.get(os.fspath(model))
    if info is not None and info.task in ("face_detection", "face_embedding"):
        return info.task
    if info is not None:
        raise UnsupportedTargetError(f"{info.name} is a {info.task} model; convert takes face detectors and "
                                     "face embedders")
    embedders = {m.family for m in REGISTRY.values() if m.task == "face_embedding"}
    return "face_embedding" if family in embedders else "face_detection"


def _check_out(out: Path) -> None:
    if out.suffix.lower() == ".zip":
        if out.exists() and not out.is_file():
            raise ConversionError(f"{out} exists and is not a file")
        from anyedge.bundle import is_bundle_zip

        if out.exists() and not is_bundle_zip(out):  # refuse before converting, not after
            raise ConversionError(f"{out} exists and is not an anyedge bundle; refusing to overwrite it")
    elif out.exists() and not (out / "manifest.json").is_file():
        raise ConversionError(f"{out} exists and is not a bundle; refusing to overwrite it")


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a failed write created (deepest first), where nothing else was put in them."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            return


def _resolved(recipe: Recipe) -> dict[str, Any]:
    """The recipe's quantization settings with every ``"auto"`` replaced by the value used."""
    from anyedge.targets import cpu_has_vnni

    settings = dict(recipe.quantization)
    if settings.get("reduce_range") == "auto":
        # x86 without VNNI saturates u8 x s8 products unless weights use 7 bits
        settings["reduce_range"] = platform.machine().lower() in ("x86_64", "amd64") and not cpu_has_vnni()
    return settings


# -- preparation ----------------------------------------------------------------------------
def _prepare(spec: Any, max_drop: float, work: Path, input_size: tuple[int, int] | None,
             calib_files: Sequence[Path], held_files: Sequence[Path], show: bool) -> _Job:
    from anyedge.engines import default_engine_for

    size = tuple(input_size or spec.input.size)  # type: ignore[union-attr]
    task = _DetectionTask(spec, size)  # type: ignore[arg-type]
    ref = task.open(spec.path, default_engine_for(spec.path), {"precision": "fp32"} if spec.path.suffix == ".xml" else {})
    try:
        w, h = ref.input_size
        task.input_size = (w, h)
        shape = [1, 3, h, w] if spec.input.layout == "NCHW" else [1, h, w, 3]
        calib = [ref.preprocess(read_bgr(f))[0].copy()  # preprocess reuses its buffer
                 for f in progress(calib_files, desc="calibration images", total=len(calib_files), enabled=show)]
        held = [read_bgr(f) for f in held_files]
        held_ref = task.outputs(ref, list(progress(held, desc="float reference", total=len(held), enabled=show)))
        evaluator = DetectionEvaluator(max_drop)
        evaluator.check_reference(held_ref)
    except BaseException:
        ref.close()
        raise
    log.info("calibration: %d images, held back: %d (float model finds %d faces)", len(calib), len(held),
             sum(len(r) for r in held_ref))
    return _Job(spec, task, evaluator, ref, work, shape, calib, held, held_ref, show)


# -- speed ----------------------------------------------------------------------------------
def _speed(job: _Job, cands: Sequence[tuple[Attempt, Recipe]], runs: int = 15) -> list[dict[str, Any]]:
    """Converted vs float latency on this machine, every model timed in one round robin.

    Each candidate and the float model on each candidate's engine run one after another in
    every round (the order rotating), so background load hits all alike and absolute times are
    comparable across candidates: the engine call (one held-back image's tensor) and the whole
    task call (held-back images in turn), medians, 1 thread. Measured where the conversion
    runs: small models often gain nothing from int8 on a given CPU.
    """
    from contextlib import ExitStack

    with ExitStack() as stack:
        floats: dict[str, Any] = {}
        models = []
        for att, _ in cands:
            opts = {"precision": "bf16"} if att.precision == "bf16" else {}
            models.append(stack.enter_context(job.task.open(next(iter(att.files.values())), att.engine, opts, threads=1)))
            if att.engine not in floats:
                floats[att.engine] = stack.enter_context(job.task.open(job.spec.path, att.engine, {}, threads=1))
        timed = models + list(floats.values())
        inputs = [job.task.tensor(m, job.held_images[0])[0] for m in timed]
        eng: list[list[float]] = [[] for _ in timed]
        task: list[list[float]] = [[] for _ in timed]
        for i in range(runs + 2):
            img = job.held_images[i % len(job.held_images)]
            shift = i % len(timed)
            for j in [*range(shift, len(timed)), *range(shift)]:
                t = time.perf_counter()
                timed[j].run_engine(inputs[j])
                t1 = time.perf_counter()
                job.task.outputs(timed[j], [img])
                t2 = time.perf_counter()
                if i >= 2:
                    eng[j].append((t1 - t) * 1e3)
                    task[j].append((t2 - t1) * 1e3)
        med_e = [statistics.median(v) for v in eng]
        med_t = [statistics.median(v) for v in task]
        base = {e: len(models) + k for k, e in enumerate(floats)}
    res = []
    for j, (att, _) in enumerate(cands):
        f = base[att.engine]
        res.append({"engine_ms": round(med_e[j], 3), "float_engine_ms": round(med_e[f], 3),
                    "ratio": round(med_e[j] / med_e[f], 3), "task_ms": round(med_t[j], 3),
                    "float_task_ms": round(med_t[f], 3), "task_ratio": round(med_t[j] / med_t[f], 3),
                    "threads": 1, "runs": runs, "machine": platform.machine(),
                    "note": "medians; every candidate and the float model on its engine timed in one rotating "
                            "round robin where the conversion ran; the target device may differ"})
    return res


# -- host: measure every candidate ------------------------------------------------------------
def _host_recipes(suffix: str) -> dict[str, Recipe]:
    from anyedge.engines import ENGINES, available_engines

    out = {}
    for engine in available_engines():
        if engine not in BACKENDS or suffix not in ENGINES[engine].suffixes:
            continue
        name, fmt = _HOST_SETTINGS[engine]
        base = TARGETS[name].recipe_for(fmt or suffix)
        if base is None or base.engine != engine:
            continue
        out[engine] = replace(base, device="CPU" if engine == "openvino" else None, providers=())
    return out


def _host(job: _Job, recipes: Mapping[str, Recipe], start: str) -> tuple[Attempt | None, Recipe, dict[str, Any]]:
    rows: list[tuple[Attempt, Recipe]] = []
    for engine, recipe in recipes.items():
        try:
            backend = get_backend(engine, job.source(recipe, _resolved(recipe)))
        except ConversionError as e:
            job.attempts.append(Attempt(engine, start, error=f"{type(e).__name__}: {e}"))
            continue
        for p in precision_chain(start, backend.precisions):
            # int8 that fails the gate gets its float-layer remedy, as a fixed target does; every
            # other precision is tried plainly (each is its own candidate here)
            got = job.run(backend, [p], float_layers=p == "int8")
            if got is not None:
                rows.append((got, recipe))
    table: list[dict[str, Any]] = []
    if rows:
        for (att, recipe), sp in zip(rows, _speed(job, rows)):
            size = sum(f.stat().st_size for f in att.files.values())
            table.append({"engine": att.engine, "precision": att.achieved, "float_layers": len(att.float_layers),
                          "fidelity": att.fidelity.to_dict() if att.fidelity else None,
                          "bytes": size, "size_ratio": round(size / job.spec.path.stat().st_size, 4), "speed": sp})
    if not table:
        return None, next(iter(recipes.values())), {"table": [], "chosen": None}
    best = min(range(len(table)), key=lambda i: table[i]["speed"]["task_ms"])
    att, recipe = rows[best]
    if att.precision == "fp32":
        note = (f"no converted candidate beat the float model here: float (fp32) on {att.engine} is the fastest "
                "passing choice")
    else:
        note = f"{att.engine} {att.achieved} is the fastest candidate that passes the gate"
    return att, recipe, {"chosen": best, "note": note, "criterion": "lowest median task call (ms) among passing",
                         "table": table}


# -- manifest (the one place a converted face bundle's manifest is written) ----------------------
def _input_names(chosen: Attempt) -> set[str]:
    """Input names of the chosen artifact, read by its own engine."""
    from anyedge.engines import open_engine

    eng = open_engine(next(iter(chosen.files.values())), chosen.engine)
    try:
        return {s.name for s in eng.inputs}
    finally:
        eng.close()


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


def _manifest(job: _Job, target: str, recipe: Recipe, requested: str, chosen: Attempt, calibration: Any,
              calib_files: Sequence[Path], held_files: Sequence[Path], seconds: float,
              speed: Mapping[str, Any], host: Mapping[str, Any] | None) -> dict[str, Any]:
    from anyedge.registry import REGISTRY

    spec = job.spec
    embedder = spec.task == "face_embedding"
    w, h = job.task.input_size  # type: ignore[misc]
    input_spec = replace(spec.input, size=(w, h), dynamic=False) if recipe.static_shape else spec.input
    source_bytes = spec.path.stat().st_size
    out_bytes = sum(p.stat().st_size for p in chosen.files.values())
    from anyedge.manifest import Embedding, Manifest, ModelCard

    info = REGISTRY.get(spec.name)
    extra: dict[str, Any] = {
        "requested_precision": requested,
        "remedy": chosen.label(),
        "float_layers": list(chosen.float_layers),
        "source": {"file": spec.path.name, "sha256": sha256_file(spec.path), "bytes": source_bytes},
        "bytes": out_bytes,
        "size_ratio": round(out_bytes / source_bytes, 4),
        "tools": _tool_versions(),
        "quantization": _resolved(recipe),
        "calibration": {"folder": str(calibration), "images": len(calib_files), "held_back": len(held_files),
                        "input_shape": job.input_shape, "first": calib_files[0].name if calib_files else None},
        "fidelity": {
            "metric": job.evaluator.description,
            "max_drop": job.evaluator.max_drop,
            "gate": round(1.0 - job.evaluator.max_drop, 4),
            ("gate_cosine_p5" if embedder else "gate_f1"): round(1.0 - job.evaluator.max_drop, 4),
            ("min_reference_crops" if embedder else "min_reference_faces"): job.evaluator.min_reference,
            "passed": True,
            "chosen": chosen.to_dict(),
            "attempts": [a.to_dict() for a in job.attempts],
            "seconds": round(seconds, 1),
        },
        "speed_here": dict(speed),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if host is not None:
        extra["host"] = dict(host)
    extra.update(job.data)
    task_parts: dict[str, Any] = {"decoder": dict(spec.decoder)}
    if embedder:
        from anyedge.tasks.face_embedder import EmbedderSettings

        st = EmbedderSettings.from_mapping(spec.decoder, spec.name)
        stripped = sorted(set(st.extra_inputs or {}) - _input_names(chosen))
        task_parts = {"embedding": Embedding(st.embedding_dim, st.threshold)}
        extra["embedder"] = {
            "output": st.output,
            "extra_inputs": {k: v for k, v in (st.extra_inputs or {}).items() if k not in stripped},
            "stripped_inputs": stripped,
            "threshold_source": f"the float {spec.name}'s default, kept: {st.threshold_source}; the gate held "
                                "this model's verification accuracy at the float-chosen threshold",
        }
    return Manifest(
        model=ModelCard(spec.name, spec.family, spec.task, license=info.license if info else None),
        model_file=next(iter(chosen.files)),
        input=input_spec,
        **task_parts,
        target=target,
        engine=chosen.engine,
        device=recipe.device,
        providers=tuple(recipe.providers),
        precision=chosen.achieved,
        extra=extra,
    ).to_json()
