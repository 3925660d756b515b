"""The conversion job: what one ``convert()`` call gathers once and judges every candidate with.

:class:`DetectionTask` and :class:`EmbeddingTask` are what the converter needs from the face
detection and face embedding tasks (through their public API only); :class:`Job` holds the float
reference, the calibration tensors and the held-back inputs, and runs the remedy loop
(:mod:`.remedy`) over one engine's backend (:mod:`.backends`), each candidate scored by the
task's evaluator (:mod:`.fidelity`). :func:`prepare_detector` builds the job for a face detector
(:func:`.embedding_data.prepare_embedder` for a face embedder).
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from anyedge.errors import ConversionError
from anyedge.targets import Recipe

from .backends import Backend, Source
from .calibration import progress, read_bgr
from .fidelity import DetectionEvaluator, EmbeddingEvaluator
from .remedy import FLOAT_STEPS, Attempt, search

__all__ = ["DetectionTask", "EmbeddingTask", "Job", "prepare_detector", "resolved_settings"]

log = logging.getLogger(__name__)

_MIXED_STEPS = FLOAT_STEPS  # module attribute tests may narrow


class DetectionTask:
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


class EmbeddingTask:
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
class Job:
    """Everything one conversion needs, gathered once."""

    spec: Any
    task: DetectionTask | EmbeddingTask
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


def resolved_settings(recipe: Recipe) -> dict[str, Any]:
    """The recipe's quantization settings with every ``"auto"`` replaced by the value used."""
    from anyedge.targets import cpu_has_vnni

    settings = dict(recipe.quantization)
    if settings.get("reduce_range") == "auto":
        # x86 without VNNI saturates u8 x s8 products unless weights use 7 bits
        settings["reduce_range"] = platform.machine().lower() in ("x86_64", "amd64") and not cpu_has_vnni()
    return settings


def prepare_detector(spec: Any, max_drop: float, work: Path, input_size: tuple[int, int] | None,
                     calib_files: Sequence[Path], held_files: Sequence[Path], show: bool) -> Job:
    """The converter's job for a face detector: float reference, calibration tensors, held-back images."""
    from anyedge.engines import default_engine_for

    size = tuple(input_size or spec.input.size)  # type: ignore[union-attr]
    task = DetectionTask(spec, size)  # type: ignore[arg-type]
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
    return Job(spec, task, evaluator, ref, work, shape, calib, held, held_ref, show)
