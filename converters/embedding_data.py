"""Calibration and held-back inputs for face embedders: aligned face crops.

A face embedder is calibrated and judged on what it sees in use: faces found by a detector and
aligned on their 5 keypoints onto the embedder's crop geometry. Here the detector is SCRFD
(``scrfd-500m``, 5 keypoints); every face it finds with an inter-ocular distance of at least
``MIN_EYE_PX`` pixels is aligned (smaller faces would be upsampled blur), at most
``FACES_PER_IMAGE`` per image, largest first.

- Calibration crops: faces in the calibration images (2 in 3 of the folder), up to
  ``max_crops``.
- Held-back crops: faces in every third image of the folder, then, with ``pairs``, the largest
  face of each photo named in the pairs CSV (those photos never calibrate); verification
  accuracy on the pairs is part of the gate (:class:`~.fidelity.EmbeddingEvaluator`).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from anyedge.errors import CalibrationError

from .calibration import progress, read_bgr
from .fidelity import EmbeddingEvaluator, TooFewReferencesError
from .job import EmbeddingTask, Job

__all__ = ["MIN_EYE_PX", "FACES_PER_IMAGE", "DETECTOR", "read_pairs", "face_crops", "prepare_embedder"]

log = logging.getLogger(__name__)

MIN_EYE_PX = 16.0  # inter-ocular distance below which a face is not used (the crop's eyes are ~35 px apart)
FACES_PER_IMAGE = 4
DETECTOR = "scrfd-500m"


def read_pairs(path: str | os.PathLike[str]) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """A ``file_a, file_b, same`` CSV -> (photos, ``(m, 2)`` indices into photos, ``(m,)`` bools).

    Paths in the CSV are relative to its folder.

    Raises:
        CalibrationError: missing file, missing columns, or a photo that does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"pairs file {p} does not exist (a CSV with columns file_a, file_b, same)")
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        if not {"file_a", "file_b", "same"} <= set(reader.fieldnames or ()):
            raise CalibrationError(f"{p}: expected columns file_a, file_b, same; got {reader.fieldnames}")
        rows = [(r["file_a"], r["file_b"], r["same"].strip() in ("1", "true", "True")) for r in reader]
    if not rows:
        raise CalibrationError(f"{p} lists no pairs")
    photos = sorted({x for a, b, _ in rows for x in (a, b)})
    index = {x: i for i, x in enumerate(photos)}
    files = [p.parent / x for x in photos]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CalibrationError(f"{p}: {len(missing)} photo(s) not found, first {missing[0]}")
    pairs = np.array([[index[a], index[b]] for a, b, _ in rows], int)
    same = np.array([s for *_, s in rows], bool)
    return files, pairs, same


def face_crops(detector: Any, geometry: Any, image_bgr: np.ndarray, limit: int = FACES_PER_IMAGE) -> list[np.ndarray]:
    """Aligned RGB crops of the largest faces in an image with eyes at least ``MIN_EYE_PX`` apart."""
    from anyedge.ops.align import align_face

    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    faces = detector.detect(rgb)
    if len(faces) == 0:
        return []
    kps = np.asarray(faces.keypoints, np.float32)
    eye = np.linalg.norm(kps[:, 1] - kps[:, 0], axis=1)
    order = [int(i) for i in np.argsort(-eye) if eye[i] >= MIN_EYE_PX][:limit]
    return [align_face(rgb, kps[i], geometry) for i in order]


def prepare_embedder(spec: Any, max_drop: float, work: Path, calib_files: Sequence[Path],
                     held_files: Sequence[Path], pairs: str | os.PathLike[str] | None, max_crops: int,
                     show: bool) -> Job:
    """The converter's job for a face embedder: float reference, calibration tensors, held-back crops."""
    from anyedge.engines import default_engine_for
    from anyedge.tasks.face_detector import FaceDetector

    task = EmbeddingTask(spec)
    pair_files, pair_idx, same = (read_pairs(pairs) if pairs is not None else ([], None, None))
    pair_set = {f.resolve() for f in pair_files}
    calib_files = [f for f in calib_files if f.resolve() not in pair_set]
    held_files = [f for f in held_files if f.resolve() not in pair_set]
    ref = task.open(spec.path, default_engine_for(spec.path))
    try:
        geometry = ref.geometry
        calib_crops: list[np.ndarray] = []
        sources: list[Path] = []
        with FaceDetector.create(DETECTOR) as det:
            for f in progress(calib_files, desc="calibration faces", total=len(calib_files), enabled=show):
                if len(calib_crops) >= max_crops:
                    break
                got = face_crops(det, geometry, read_bgr(f))[: max_crops - len(calib_crops)]
                calib_crops += got
                sources += [f] * len(got)
            held: list[np.ndarray] = []
            for f in held_files:
                held += face_crops(det, geometry, read_bgr(f))
            n_free = len(held)
            for f in pair_files:
                got = face_crops(det, geometry, read_bgr(f), limit=1)
                if not got:
                    raise CalibrationError(f"{DETECTOR} finds no usable face in pair photo {f}")
                held += got
        if not calib_crops:
            raise CalibrationError(f"{DETECTOR} found no face with eyes >= {MIN_EYE_PX:g} px apart in the "
                                   f"{len(calib_files)} calibration images")
        calib = [task.tensor(ref, c)[0] for c in calib_crops]
        held_pairs = pair_idx + n_free if pair_idx is not None else None
        evaluator = EmbeddingEvaluator(max_drop, held_pairs, same)
        held_ref = task.outputs(ref, list(progress(held, desc="float reference", total=len(held), enabled=show)))
        try:
            evaluator.check_reference(held_ref)
        except TooFewReferencesError as e:
            e.finder, e.images = DETECTOR, len(held_files) + len(pair_files)
            raise
        h_w = list(ref.engine.inputs[[s.name for s in ref.engine.inputs].index(ref.input_name)].shape)
    except BaseException:
        ref.close()
        raise
    log.info("embedder calibration: %d crops from %d images; held back: %d crops (%d from pair photos, %s pairs)",
             len(calib), len(set(sources)), len(held), len(pair_files), 0 if pair_idx is None else len(pair_idx))
    job = Job(spec, task, evaluator, ref, work, h_w, calib, held, held_ref, show)  # type: ignore[arg-type]
    job.calib_sources = sources
    job.data = {"crops": {"detector": DETECTOR, "min_eye_px": MIN_EYE_PX, "faces_per_image": FACES_PER_IMAGE,
                          "geometry": geometry.name, "calibration_crops": len(calib),
                          "calibration_images": len(set(sources)), "held_back_crops": len(held),
                          "held_back_from_folder": n_free, "pair_photos": len(pair_files),
                          "pairs": None if pair_idx is None else int(len(pair_idx)),
                          "pairs_file": None if pairs is None else str(pairs)}}
    return job
