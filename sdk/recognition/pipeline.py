"""FacePipeline: one call from a frame to faces with box, keypoints, aligned crop, embedding and name.

Any detector with 5 keypoints (SCRFD, YuNet, RetinaFace) or BlazeFace's 6 (mapped to 5, see
:mod:`anyedge.ops.align`), any embedder, any engine. With a :class:`~anyedge.recognition.gallery.Gallery`
each face also gets the best-matching name (``None`` below the threshold: an unknown person).

Enrolment goes through a quality gate (:class:`QualityGate`): exactly one face (or the one
asked for), an inter-ocular distance of at least ``min_eye_distance_px`` source pixels, and an
aligned crop sharp enough (variance of its Laplacian at least ``min_sharpness``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import FaceQualityError, InputError
from ..ops.align import five_points
from ..ops.image import check_image
from ..results import FaceDetections
from ..tasks.face_detector import FaceDetector
from ..tasks.face_embedder import FaceEmbedder

__all__ = ["QualityGate", "RecognizedFace", "RecognizedFaces", "FacePipeline", "sharpness", "live_labeller"]


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a face must pass to be enrolled.

    Attributes:
        min_eye_distance_px: inter-ocular distance in source pixels. The crops' own eye distance
            is 35 px (both templates), so a face below 20 px is magnified more than 1.75x and
            its crop is mostly interpolation.
        min_sharpness: variance of the Laplacian of the grey aligned crop. Measured on the 28
            photos of ``faces/`` (benchmarks/recognition_accuracy.py): sharp crops 200..2121,
            the same crops after a Gaussian blur of sigma 1.5 crop pixels 15..37, sigma 3.5
            px 3..5; 50 rejects the blurred ones with margin on both sides. It judges the crop
            the embedder sees: blur in a large photo that the crop's downscaling removes passes.
    """

    min_eye_distance_px: float = 20.0
    min_sharpness: float = 50.0


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a uint8 ``(h, w, 3)`` crop in grey (higher = sharper)."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass(frozen=True)
class RecognizedFace:
    """One face (a view into :class:`RecognizedFaces`)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    crop: np.ndarray
    embedding: np.ndarray
    name: str | None
    match_score: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(float(v), 2) for v in self.box], "name": self.name,
                "score": None if self.match_score is None or np.isnan(self.match_score)
                else round(float(self.match_score), 4),
                "detection_score": round(float(self.score), 4)}


@dataclass(frozen=True)
class RecognizedFaces:
    """Faces of one frame, best detection score first.

    Attributes:
        detections: boxes ``(n, 4)``, scores ``(n,)`` and keypoints ``(n, k, 2)`` in source pixels.
        crops: ``(n, h, w, 3)`` uint8 aligned crops, in the frame's channel order.
        embeddings: ``(n, d)`` float32 unit vectors.
        names: per face the gallery name, or ``None`` (no gallery, or below the threshold).
        match_scores: ``(n,)`` float32 best gallery cosine (NaN without a gallery).
    """

    detections: FaceDetections
    crops: np.ndarray
    embeddings: np.ndarray
    names: tuple[str | None, ...]
    match_scores: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.detections)
        if not (len(self.crops) == len(self.embeddings) == len(self.names) == len(self.match_scores) == n):
            raise ValueError(f"inconsistent recognition results for {n} faces")

    @classmethod
    def empty(cls, crop_size: tuple[int, int] = (112, 112), dim: int = 0, keypoints: int = 5) -> "RecognizedFaces":
        w, h = crop_size
        return cls(FaceDetections.empty(keypoints), np.zeros((0, h, w, 3), np.uint8),
                   np.zeros((0, dim), np.float32), (), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.detections)

    def __getitem__(self, i: int) -> RecognizedFace:
        d = self.detections
        ms = float(self.match_scores[i])
        return RecognizedFace(d.boxes[i], float(d.scores[i]), d.keypoints[i], self.crops[i], self.embeddings[i],
                              self.names[i], None if np.isnan(ms) else ms)

    def __iter__(self) -> Iterator[RecognizedFace]:
        for i in range(len(self)):
            yield self[i]

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self]


class FacePipeline:
    """Detect, align, embed and (with a gallery) identify faces.

    Example:
        >>> with FacePipeline.create("scrfd-500m", "mobilefacenet", gallery=g) as fp:
        ...     for face in fp.process(rgb):
        ...         print(face.box, face.name, face.match_score)
    """

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, gallery: Any = None, *,
                 threshold: float | None = None, quality: QualityGate | None = None) -> None:
        """Combine a loaded detector and embedder (the pipeline closes both).

        Args:
            detector: any :class:`FaceDetector` whose model gives 5 or 6 keypoints.
            embedder: any :class:`FaceEmbedder`.
            gallery: an open :class:`~anyedge.recognition.gallery.Gallery` for names, or ``None``.
            threshold: cosine for "known person"; ``None`` takes the embedder's default.
            quality: the enrolment gate; ``None`` takes :class:`QualityGate`'s defaults.
        """
        k = int(detector.spec.decoder.get("keypoints", 0))
        if k not in (5, 6):
            raise InputError(f"detector {detector.spec.name!r} gives {k} keypoints; alignment needs 5 "
                             "(SCRFD, YuNet, RetinaFace) or BlazeFace's 6")
        self.detector = detector
        self.embedder = embedder
        self.gallery = gallery
        self.threshold = embedder.threshold if threshold is None else float(threshold)
        self.quality = quality or QualityGate()
        self._local = threading.local()  # timings per thread: a pipeline may be shared

    @property
    def last_timing(self) -> dict[str, float]:
        """Seconds per stage (detect, align, embed, identify) of this thread's last :meth:`process`."""
        return dict(getattr(self._local, "timing", {}))

    @classmethod
    def create(cls, detector: str | os.PathLike[str] = "scrfd-500m",
               embedder: str | os.PathLike[str] = "mobilefacenet", *, gallery: Any = None,
               engine: str | None = None, detector_engine: str | None = None, embedder_engine: str | None = None,
               threshold: float | None = None, threads: int | None = None, flip: bool = False,
               channels: str = "RGB", quality: QualityGate | None = None,
               trusted_keys: Any = None, device: Any = None) -> "FacePipeline":
        """Load a detector and an embedder by name, bundle or file.

        Args:
            engine: engine for both models (each may be overridden); ``None``: each model's own.
            channels: the channel order of the frames you will pass (``"BGR"`` for OpenCV).
            trusted_keys: public keys both bundles must be signed by (default
                ``$ANYEDGE_TRUSTED_KEYS``); see :mod:`anyedge.signing`.
            device: where both models run: an OpenVINO device string or a
                :class:`~anyedge.engines.devices.DeviceRequest` (see :class:`~anyedge.tasks.base.TaskOptions`).
        """
        det = FaceDetector.create(detector, engine=detector_engine or engine, threads=threads, channels=channels,
                                  trusted_keys=trusted_keys, device=device)
        try:
            emb = FaceEmbedder.create(embedder, engine=embedder_engine or engine, threads=threads,
                                      flip=flip, channels=channels, trusted_keys=trusted_keys, device=device)
        except BaseException:
            det.close()
            raise
        try:
            return cls(det, emb, gallery, threshold=threshold, quality=quality)
        except BaseException:
            det.close()
            emb.close()
            raise

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()

    def __enter__(self) -> "FacePipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- per frame ----------------------------------------------------------------------
    def _crops(self, image: np.ndarray, faces: FaceDetections, channels: str) -> np.ndarray:
        img, _ = check_image(image, channels)
        return self.embedder.align(img, faces.keypoints)  # crop keeps the frame's channel order

    def process(self, image: np.ndarray, *, channels: str | None = None) -> RecognizedFaces:
        """Detect, align, embed and identify every face in one frame.

        Args:
            image: ``uint8`` ``(H, W, 3)`` frame (grey and RGBA accepted).
            channels: ``"RGB"``/``"BGR"``; defaults to the detector's option.

        Raises:
            InputError: not a valid image.
            EngineError: an engine failed.
        """
        ch = channels or self.detector.options.channels
        t0 = time.perf_counter()
        faces = self.detector.detect(image, channels=ch)
        t1 = time.perf_counter()
        w, h = self.embedder.geometry.size
        if len(faces) == 0:
            self._local.timing = {"detect": t1 - t0, "align": 0.0, "embed": 0.0, "identify": 0.0}
            return RecognizedFaces.empty((w, h), self.embedder.dim, faces.keypoints.shape[1])
        crops = self._crops(image, faces, ch)
        t2 = time.perf_counter()
        emb = self.embedder.embed(crops, channels=ch)
        t3 = time.perf_counter()
        names: tuple[str | None, ...] = (None,) * len(faces)
        scores = np.full(len(faces), np.nan, np.float32)
        if self.gallery is not None:
            hits = self.gallery.search(emb, 1)
            names = tuple(hit[0].name if hit and hit[0].score >= self.threshold else None for hit in hits)
            scores = np.array([hit[0].score if hit else np.nan for hit in hits], np.float32)
        t4 = time.perf_counter()
        self._local.timing = {"detect": t1 - t0, "align": t2 - t1, "embed": t3 - t2, "identify": t4 - t3}
        return RecognizedFaces(faces, crops, emb, names, scores)

    # -- enrolment ----------------------------------------------------------------------
    def enrolment_embedding(self, image: np.ndarray, *, face: int | None = None, largest: bool = False,
                            channels: str | None = None) -> tuple[np.ndarray, RecognizedFace]:
        """The embedding of the one face of a photo that passes the quality gate.

        Args:
            face: index of the face to take (detections are best score first) when there are several.
            largest: take the largest face when there are several.

        Raises:
            FaceQualityError: no face, several faces (and neither ``face`` nor ``largest``),
                a face too small or too blurred.
        """
        ch = channels or self.detector.options.channels
        faces = self.detector.detect(image, channels=ch)
        if len(faces) == 0:
            raise FaceQualityError("no face found")
        if face is not None:
            if not 0 <= face < len(faces):
                raise FaceQualityError(f"face {face} asked for, but {len(faces)} face(s) found")
            i = face
        elif len(faces) > 1:
            if not largest:
                raise FaceQualityError(f"{len(faces)} faces found; say which one (face index or largest)")
            b = faces.boxes
            i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        else:
            i = 0
        k5 = five_points(faces.keypoints[i])
        iod = float(np.linalg.norm(k5[1] - k5[0]))
        if iod < self.quality.min_eye_distance_px:
            raise FaceQualityError(f"face too small: eyes {iod:.1f} px apart, at least "
                                   f"{self.quality.min_eye_distance_px:g} px needed")
        img, _ = check_image(image, ch)
        crop = self.embedder.align(img, faces.keypoints[i:i + 1])
        sharp = sharpness(crop[0] if ch == "RGB" else crop[0][:, :, ::-1])
        if sharp < self.quality.min_sharpness:
            raise FaceQualityError(f"face too blurred: sharpness (variance of Laplacian) {sharp:.1f}, at least "
                                   f"{self.quality.min_sharpness:g} needed")
        v = self.embedder.embed(crop, channels=ch)
        return v[0], RecognizedFace(faces.boxes[i], float(faces.scores[i]), faces.keypoints[i], crop[0], v[0],
                                    None, None)

    def enroll(self, name: str, images: Sequence[np.ndarray], *, sources: Sequence[str] | None = None,
               face: int | None = None, largest: bool = False, channels: str | None = None) -> int:
        """Enrol ``name`` from photos: every photo must pass the gate, then one transaction adds them all.

        Returns:
            How many embeddings the person now has.

        Raises:
            FaceQualityError: a photo fails the gate (nothing is written); the message names it.
            GalleryError: no gallery.
        """
        from ..errors import GalleryError

        if self.gallery is None:
            raise GalleryError("this pipeline has no gallery to enrol into")
        if len(images) == 0:
            raise InputError("enrolment needs at least one photo")
        vecs = []
        for j, img in enumerate(images):
            try:
                vecs.append(self.enrolment_embedding(img, face=face, largest=largest, channels=channels)[0])
            except FaceQualityError as e:
                where = sources[j] if sources else f"photo {j}"
                raise FaceQualityError(f"{where}: {e}") from None
        return self.gallery.add(name, np.stack(vecs), sources=sources)

    def __repr__(self) -> str:
        return f"FacePipeline(detector={self.detector!r}, embedder={self.embedder!r}, threshold={self.threshold})"


def live_labeller(gallery: str | os.PathLike[str], *, detector_model: str | None = None,
                  channels: str = "BGR", threshold: float | None = None,
                  ) -> "Callable[[np.ndarray, FaceDetections], list[str | None]]":
    """Names for faces another loop already detected (``anyedge run --gallery``).

    Opens the gallery read-only in spirit (nothing is added), loads the embedder it was built
    with, and returns ``label(frame, faces) -> [name or None, ...]``; faces are aligned from
    their keypoints, so the detector must give 5 (or BlazeFace's 6) keypoints.

    Raises:
        GalleryError: no gallery at that path, or one without an embedder yet.
        InputError: the gallery's embedder is not a registry name.
    """
    from ..errors import GalleryError
    from ..tasks.face_embedder import embedder_names
    from .gallery import Gallery

    g = Gallery.open(gallery, create=False)
    ident = g.identity
    if not ident:
        g.close()
        raise GalleryError(f"{gallery}: the gallery is empty (enrol someone first: anyedge gallery enroll)")
    if ident["name"] not in embedder_names():
        g.close()
        raise InputError(f"{gallery} was built with embedder {ident['name']!r}, which is not a registry name")
    emb = FaceEmbedder.create(ident["name"], channels=channels)
    g.close()
    g = Gallery.open(gallery, emb.identity, create=False)
    thr = emb.threshold if threshold is None else float(threshold)
    where = f" ({detector_model})" if detector_model else ""

    def label(frame: np.ndarray, faces: FaceDetections) -> list[str | None]:
        if len(faces) == 0:
            return []
        if faces.keypoints.shape[1] not in (5, 6):
            raise InputError(f"--gallery needs a detector with 5 keypoints (SCRFD, YuNet, RetinaFace) or "
                             f"BlazeFace's 6; this one{where} gives {faces.keypoints.shape[1]}")
        img, _ = check_image(frame, channels)
        vecs = emb.embed(emb.align(img, faces.keypoints), channels=channels)
        return [name for name, _score in (g.identify(v, thr) for v in vecs)]

    return label
