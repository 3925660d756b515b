"""``convert()``: a float face detector or face embedder -> a verified bundle for one target.

Steps: resolve the model and the target's recipe for its format (refusing pairs that cannot
work, up front); gather the job (:mod:`.job`: calibration images through the task's own
preprocessing, the float reference on held-back images); let the engine's backend
(:mod:`.backends`) build candidates under the one remedy loop (:mod:`.remedy`), each judged by
the task's evaluator (:mod:`.fidelity`); write the bundle atomically with the report in its
manifest (:mod:`.bundle_manifest`). Nothing is left in ``out`` unless a bundle is complete.

``target="host"`` measures instead of guessing (:mod:`.host`): every engine installed here x
every precision its backend builds is converted, gated and timed against the float model, and
the fastest passing candidate is written (the float model on its fastest engine when nothing
beats it).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from anyedge.bundle import Bundle, write_bundle, zip_bundle
from anyedge.errors import CalibrationError, ConversionError, FidelityError, UnsupportedTargetError
from anyedge.targets import TARGETS, get_target

from . import host as host_target
from .backends import get_backend
from .bundle_manifest import converted_manifest
from .calibration import list_images, split_images
from .fidelity import MIN_REFERENCE_FACES, TooFewReferencesError
from .frames import FrameSampling, SampledFrames, public_name, sample_frames, source_kind
from .job import prepare_detector, resolved_settings
from .remedy import PRECISIONS, precision_chain

__all__ = ["ConversionResult", "convert", "FrameSampling", "PRECISIONS", "MIN_REFERENCE_FACES"]

log = logging.getLogger(__name__)


@dataclass
class ConversionResult:
    """What :func:`convert` produced."""

    bundle: Bundle
    path: Path
    report: dict[str, Any]


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
    sampling: FrameSampling | None = None,
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
            the fidelity check (which needs at least ``MIN_REFERENCE_FACES`` faces there). Or a
            video file, a camera index, ``"picamera"`` or a stream URL (as ``anyedge run --source``
            takes them): frames are sampled from it (``sampling``, :mod:`.frames`), near-duplicates
            dropped, and the kept frames split like a folder.
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
        sampling: for a video or live ``calibration``: how many frames, how far apart, and the
            near-duplicate threshold (default :class:`~.frames.FrameSampling()`).

    Returns:
        The bundle, its path and the report stored in its manifest.

    Raises:
        UnsupportedTargetError: this model format / precision cannot go to this target.
        CalibrationError: calibration source missing, empty, unreadable, too few distinct frames, or
            too few faces held back (:class:`~.fidelity.TooFewReferencesError`, with the counts).
        EngineUnavailableError: a conversion tool the target needs is not installed (names the extra).
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
        recipes = host_target.host_recipes(suffix)
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
    from .backends import check_tools

    for engine, recipe in recipes.items():
        chain = PRECISIONS[PRECISIONS.index(precision or "int8"):] if host else precision_chain(precision,
                                                                                                recipe.precisions)
        check_tools(engine, chain, f"converting {spec.name} for {target}")
    out = Path(out)
    _check_out(out)
    if calibration is None:
        raise CalibrationError("real images are needed to calibrate and check fidelity (pass --calib with a folder "
                               "of photos, a video file or a camera)")
    kind = source_kind(calibration)
    if sampling is not None and kind == "folder":
        raise CalibrationError(f"sampling= applies to a video or live calibration source, not the folder {calibration}")

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anyedge-convert-") as tmp:
        sampled = (sample_frames(calibration, Path(tmp) / "frames", sampling, show_progress) if kind != "folder"
                   else None)
        calib_files, held_files = split_images(list(sampled.files) if sampled else list_images(calibration))
        if task_name == "face_detection":
            calib_files = calib_files[:max_calibration]
        try:
            if task_name == "face_embedding":
                from .embedding_data import prepare_embedder

                job = prepare_embedder(spec, max_drop, Path(tmp), calib_files, held_files, pairs, max_calibration,
                                       show_progress)
                calib_files = list(dict.fromkeys(job.calib_sources))  # the images the crops came from
            else:
                job = prepare_detector(spec, max_drop, Path(tmp), input_size, calib_files, held_files,
                                       show_progress)
        except TooFewReferencesError as e:
            if sampled is not None:
                e.noun, e.advice = "frames", _more_frames_advice(sampled)
            raise
        try:
            if host:
                chosen, recipe, host_report = host_target.measure_candidates(job, recipes, precision or "int8")
            else:
                (recipe,) = recipes.values()
                backend = get_backend(recipe.engine, job.source(recipe, resolved_settings(recipe)))
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
                     else host_target.time_candidates(job, [(chosen, recipe)])[0])
        finally:
            job.reference.close()
        origin = sampled.record() if sampled else {"kind": "folder", "source": public_name(calibration)}
        manifest = converted_manifest(job, target, recipe, precision or "measured", chosen, origin,
                                      calib_files, held_files, time.perf_counter() - t0, speed, host_report)
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


def _more_frames_advice(sampled: SampledFrames) -> str:
    """What to do when frames sampled from a video or live source held too few faces."""
    got = (f"{sampled.sampled} sampled, {sampled.duplicates} dropped as near-duplicates, every third of the "
           f"{len(sampled.files)} kept is held back")
    if sampled.kind == "video" and sampled.length is not None and sampled.length <= sampled.sampling.frames:
        return f"{got}: the clip has only {sampled.length} frames; use a longer clip, or one where faces are visible"
    if sampled.kind == "video":
        return (f"{got}: sample more frames with --calib-frames (now {sampled.sampling.frames}), use a longer clip, "
                "or one where faces are visible")
    return (f"{got}: sample more frames with --calib-frames (now {sampled.sampling.frames}) or --calib-every, "
            "while faces are in view")


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
