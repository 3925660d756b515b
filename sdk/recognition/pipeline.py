"""FacePipeline: one call from a frame to faces with box, keypoints, aligned crop, embedding and name.

Any detector with 5 keypoints (SCRFD, YuNet, RetinaFace) or BlazeFace's 6 (mapped to 5, see
:mod:`anyedge.ops.align`), any embedder, any engine. With a :class:`~anyedge.recognition.gallery.Gallery`
each face also gets the best-matching name (``None`` below the threshold: an unknown person).

Enrolment goes through a quality gate (:class:`QualityGate`): exactly one face (or the one
asked for), an inter-ocular distance of at least ``min_eye_distance_px`` source pixels, and an
aligned crop sharp enough (variance of its Laplacian at least ``min_sharpness``).

Defaults: :data:`DEFAULT_DETECTOR` (``yunet``, Apache-2.0) and :data:`DEFAULT_EMBEDDER`
(``mobilefacenet``). YuNet-s was chosen over RetinaFace-MNet0.25 (MIT) and YuNet-n at 320 by
``benchmarks/recognition_accuracy.py`` on ``faces/pairs.csv``: the same AUC, EER, rank-1 and
enrolment-gate results, the widest genuine/impostor margin of the three (0.098 vs 0.067 and
0.027) and 2.3x faster than RetinaFace at 640. :func:`gallery_models` picks the models a gallery
was enrolled with.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import FaceQualityError, InputError
from ..ops.align import five_points
from ..ops.image import check_image
from ..results import FaceDetections
from ..tasks.face_detector import FaceDetector
from ..tasks.face_embedder import FaceEmbedder
from . import DEFAULT_DETECTOR, DEFAULT_EMBEDDER
from .gallery import DetectorIdentity, model_record_name

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_EMBEDDER", "QualityGate", "RecognizedFace", "RecognizedFaces",
           "FacePipeline", "sharpness", "detector_identity", "detector_names", "gallery_models",
           "GalleryLabeller", "live_labeller", "face_quality", "TrackLabeller", "DEFAULT_REEMBED_EVERY"]


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
        """The one JSON face of recognition (``gallery identify --json`` and ``run --gallery --json``).

        ``box`` ``[x1, y1, x2, y2]`` and ``keypoints`` ``[[x, y], ...]`` in source pixels;
        ``name``: the gallery's best match at or above the threshold, else ``null``; ``score``: the
        best gallery cosine (``null`` when nothing was searched: no gallery, or an empty one);
        ``detection_score``: the detector's confidence. Numbers are JSON numbers.
        """
        return {"box": [round(float(v), 2) for v in self.box],
                "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
                "name": self.name,
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
        >>> with FacePipeline.create("yunet", "mobilefacenet") as fp, \\
        ...         Gallery.open("faces.db", fp.embedder.identity, detector=fp.detector_identity) as g:
        ...     fp.gallery = g
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
        self._detector_identity: DetectorIdentity | None = None

    @property
    def detector_identity(self) -> DetectorIdentity:
        """What a gallery records about this pipeline's detector (:func:`detector_identity`)."""
        if self._detector_identity is None:
            self._detector_identity = detector_identity(self.detector)
        return self._detector_identity

    @property
    def last_timing(self) -> dict[str, float]:
        """Seconds per stage (detect, align, embed, identify) of this thread's last :meth:`process`."""
        return dict(getattr(self._local, "timing", {}))

    @classmethod
    def create(cls, detector: str | os.PathLike[str] = DEFAULT_DETECTOR,
               embedder: str | os.PathLike[str] = DEFAULT_EMBEDDER, *, gallery: Any = None,
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
        return self._recognize(image, faces, ch, t0, t1)

    def recognize(self, image: np.ndarray, faces: FaceDetections, *, channels: str | None = None) -> RecognizedFaces:
        """Align, embed and identify faces already detected in ``image`` (by this or another loop).

        Args:
            faces: detections with 5 keypoints (or BlazeFace's 6) in ``image``'s pixels.

        Raises:
            InputError: not a valid image, or faces without 5 or 6 keypoints.
        """
        if len(faces) and faces.keypoints.shape[1] not in (5, 6):
            raise InputError(f"faces need 5 keypoints (SCRFD, YuNet, RetinaFace) or BlazeFace's 6 to be aligned, "
                             f"got {faces.keypoints.shape[1]}")
        t = time.perf_counter()
        return self._recognize(image, faces, channels or self.detector.options.channels, t, t)

    def _recognize(self, image: np.ndarray, faces: FaceDetections, ch: str, t0: float, t1: float) -> RecognizedFaces:
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


def detector_names() -> list[str]:
    """Registry names of face detectors (what a gallery's detector record may name)."""
    from ..registry import REGISTRY

    return [n for n, m in REGISTRY.items() if m.task == "face_detection"]


def detector_identity(detector: FaceDetector) -> DetectorIdentity:
    """What a gallery records about ``detector``: its registry name when it is the registry's
    pinned file, else its model file's name; and the file's sha256."""
    from ..registry import REGISTRY, sha256_file

    spec = detector.spec
    digest = sha256_file(spec.path)
    info = REGISTRY.get(spec.name)
    if info is not None and info.task == "face_detection" and spec.info is None and info.sha256 == digest:
        return DetectorIdentity(spec.name, digest)
    return DetectorIdentity(model_record_name(Path(spec.path).name), digest)


def _by_name(gallery: Any, kind: str, name: str, names: list[str], option: str | None) -> str:
    """A recorded model name, if the registry knows it (then it is never taken as a path)."""
    if name not in names:
        raise InputError(f"{gallery.path} was enrolled with {kind} {name!r}, which is not an anyedge registry name "
                         "(a bundle or file?)" + (f": pass that model with {option} PATH" if option else ""))
    return name


def gallery_models(path: str | os.PathLike[str] | None, detector: str | os.PathLike[str] | None = None,
                   embedder: str | os.PathLike[str] | None = None, *, detector_option: str | None = "--detector",
                   embedder_option: str | None = "--embedder") -> tuple[str | os.PathLike[str], str | os.PathLike[str]]:
    """``(detector, embedder)`` for a gallery: each as given, else the one the gallery records,
    else :data:`DEFAULT_DETECTOR` / :data:`DEFAULT_EMBEDDER`. ``detector_option`` /
    ``embedder_option`` name the command-line option that passes a model the registry cannot
    name (``None``: the command has none).

    A recorded name is used only when it is a registry name (it was validated when read, and is
    never taken as a path); a gallery with no gallery file at ``path`` (or ``path=None``), or
    without a record (made before detectors were recorded), gets the defaults. A given model
    that differs from the record is refused when the gallery is opened with it
    (:class:`~anyedge.errors.DetectorMismatchError`, :class:`~anyedge.errors.EmbedderMismatchError`).

    Raises:
        GalleryError: the file is not a readable gallery, or its records are malformed.
        InputError: the gallery records a bundle or file (not a registry name) that was not given.
    """
    if (detector is not None and embedder is not None) or path is None or not Path(path).exists():
        return detector or DEFAULT_DETECTOR, embedder or DEFAULT_EMBEDDER
    from ..tasks.face_embedder import embedder_names
    from .gallery import Gallery

    with Gallery.open(path, create=False, readonly=True) as g:
        ident, det = g.identity, g.detector
        if embedder is None:
            embedder = _by_name(g, "embedder", ident["name"], embedder_names(), embedder_option) if ident \
                else DEFAULT_EMBEDDER
        if detector is None:
            detector = _by_name(g, "detector", det.name, detector_names(), detector_option) if det \
                else DEFAULT_DETECTOR
    return detector, embedder


class GalleryLabeller:
    """Names for faces another loop already detected (``anyedge run --gallery``).

    Loads the embedder the gallery was built with, opens the gallery read-only (nothing is
    written, another process may enrol meanwhile) and checks ``detector`` against the
    gallery's record. Call it as ``labeller(frame, faces) -> RecognizedFaces``; faces are
    aligned from their keypoints. :meth:`close` closes the embedder and the gallery, not the
    detector (the caller's).

    Raises:
        GalleryError: no gallery at that path, or one without an embedder yet.
        InputError: the gallery's embedder is not a registry name; the detector gives neither 5
            nor 6 keypoints.
        DetectorMismatchError: the gallery was enrolled with another detector.
    """

    def __init__(self, gallery: str | os.PathLike[str], detector: FaceDetector, *, channels: str = "BGR",
                 threshold: float | None = None) -> None:
        from ..errors import GalleryError
        from .gallery import Gallery

        from ..tasks.face_embedder import embedder_names

        with Gallery.open(gallery, create=False, readonly=True) as g:
            ident = g.identity
            if not ident:
                raise GalleryError(f"{gallery}: the gallery is empty (enrol someone first: anyedge gallery enroll)")
            embedder = _by_name(g, "embedder", ident["name"], embedder_names(), None)
        emb = FaceEmbedder.create(embedder, channels=channels)
        try:
            self._pipeline = FacePipeline(detector, emb, threshold=threshold)  # checks the keypoints
            self.gallery = Gallery.open(gallery, emb.identity, detector=self._pipeline.detector_identity,
                                        create=False, readonly=True)
        except BaseException:
            emb.close()
            raise
        self._pipeline.gallery = self.gallery
        self.channels = channels

    @property
    def pipeline(self) -> FacePipeline:
        """The pipeline it labels with (the caller's detector, the gallery's embedder and gallery)."""
        return self._pipeline

    def __call__(self, frame: np.ndarray, faces: FaceDetections) -> RecognizedFaces:
        return self._pipeline.recognize(frame, faces, channels=self.channels)

    def close(self) -> None:
        self._pipeline.embedder.close()
        self.gallery.close()


def live_labeller(gallery: str | os.PathLike[str], detector: FaceDetector, *, channels: str = "BGR",
                  threshold: float | None = None) -> GalleryLabeller:
    """A :class:`GalleryLabeller` for ``gallery`` and the live loop's ``detector``."""
    return GalleryLabeller(gallery, detector, channels=channels, threshold=threshold)


DEFAULT_REEMBED_EVERY = 10


def face_quality(keypoints: np.ndarray, crop: np.ndarray, *, min_sharpness: float = QualityGate.min_sharpness) -> float:
    """How good a view of a face is for recognition: size x frontality x sharpness.

    Size is the inter-ocular distance in source pixels; frontality is ``1 - 2 |offset|``
    (at least 0), ``offset`` being how far the nose sits from the eyes' midpoint along the eye
    line, in eye distances (0 for a frontal face, about 0.5 in full profile); sharpness is the
    crop's variance of the Laplacian over ``min_sharpness``, capped at 1.

    Args:
        keypoints: ``(5|6, 2)`` one face's keypoints.
        crop: its aligned RGB crop.
    """
    k = five_points(np.asarray(keypoints, np.float64))
    eyes = k[1] - k[0]
    iod = float(np.linalg.norm(eyes))
    if iod <= 1e-6:
        return 0.0
    offset = float(np.dot(k[2] - (k[0] + k[1]) / 2, eyes / iod)) / iod
    frontal = max(0.0, 1.0 - 2.0 * abs(offset))
    sharp = min(1.0, sharpness(crop) / min_sharpness) if min_sharpness > 0 else 1.0
    return iod * frontal * sharp


class TrackLabeller:
    """Names per track, not per frame: the embedder runs when a track is born and on better views.

    A face of a track is embedded when the track has no embedding yet, or when at least
    ``reembed_every`` frames passed since the track's last embedding and the face's
    :func:`face_quality` beats the best the track has had. Each embedding votes for its best
    gallery match when that match reaches the threshold (the vote weighs its cosine); the
    track's name is the name with the most weight, and stays ``None`` until one confident match
    has voted. Every face of a track carries the track's name and score (the mean cosine of the
    winning votes; while unnamed, the best cosine seen).

    Call it as ``labeller(index, frame, faces, keys)`` with the frame number and per-face track
    keys (``-1``: no track, not embedded, unnamed); :meth:`end` returns and forgets a track's
    record. :attr:`embedded` counts the faces embedded so far.

    Args:
        labeller: a :class:`GalleryLabeller` (its detector, embedder and gallery are used).
        reembed_every: frames between embeddings of one track (>= 1).
    """

    def __init__(self, labeller: GalleryLabeller, *, reembed_every: int = DEFAULT_REEMBED_EVERY) -> None:
        if not isinstance(reembed_every, int) or reembed_every < 1:
            raise InputError(f"reembed_every: expected an integer >= 1, got {reembed_every!r}")
        self.labeller = labeller
        self.reembed_every = reembed_every
        self.embedded = 0
        self._tracks: dict[int, dict[str, Any]] = {}

    def _state(self, key: int) -> dict[str, Any]:
        st = self._tracks.get(key)
        if st is None:
            st = self._tracks[key] = {"best_quality": -1.0, "last_embedded": None, "embeddings": 0,
                                      "votes": {}, "counts": {}, "best_cosine": None, "vector": None}
        return st

    @staticmethod
    def _verdict(st: dict[str, Any]) -> tuple[str | None, float | None]:
        votes: dict[str, float] = st["votes"]
        if not votes:
            return None, st["best_cosine"]
        name = max(sorted(votes), key=lambda n: votes[n])
        return name, votes[name] / st["counts"][name]

    def __call__(self, index: int, frame: np.ndarray, faces: FaceDetections, keys: np.ndarray) -> RecognizedFaces:
        p = self.labeller.pipeline
        ch = self.labeller.channels
        keys = np.asarray(keys, np.int64).reshape(-1)
        if len(keys) != len(faces):
            raise InputError(f"track keys: expected one per face ({len(faces)}), got {len(keys)}")
        w, h = p.embedder.geometry.size
        if len(faces) == 0:
            return RecognizedFaces.empty((w, h), p.embedder.dim, faces.keypoints.shape[1])
        if faces.keypoints.shape[1] not in (5, 6):
            raise InputError(f"faces need 5 keypoints (SCRFD, YuNet, RetinaFace) or BlazeFace's 6 to be aligned, "
                             f"got {faces.keypoints.shape[1]}")
        crops = p._crops(frame, faces, ch)
        todo: list[int] = []
        for i, key in enumerate(keys.tolist()):
            if key < 0:
                continue
            st = self._state(key)
            due = st["last_embedded"] is None or index - st["last_embedded"] >= self.reembed_every
            if not due:
                continue
            q = face_quality(faces.keypoints[i], crops[i] if ch == "RGB" else crops[i][:, :, ::-1],
                             min_sharpness=p.quality.min_sharpness)
            if st["last_embedded"] is None or q > st["best_quality"]:
                st["best_quality"] = max(q, st["best_quality"])
                todo.append(i)
        if todo:
            vecs = p.embedder.embed(crops[todo], channels=ch)
            self.embedded += len(todo)
            hits = p.gallery.search(vecs, 1) if p.gallery is not None else [[] for _ in todo]
            for i, v, hit in zip(todo, vecs, hits):
                st = self._tracks[int(keys[i])]
                st["last_embedded"], st["embeddings"], st["vector"] = index, st["embeddings"] + 1, v
                if hit:
                    cos = float(hit[0].score)
                    st["best_cosine"] = cos if st["best_cosine"] is None else max(cos, st["best_cosine"])
                    if cos >= p.threshold:
                        st["votes"][hit[0].name] = st["votes"].get(hit[0].name, 0.0) + cos
                        st["counts"][hit[0].name] = st["counts"].get(hit[0].name, 0) + 1
        emb = np.zeros((len(faces), p.embedder.dim), np.float32)
        names: list[str | None] = []
        scores = np.full(len(faces), np.nan, np.float32)
        for i, key in enumerate(keys.tolist()):
            st = self._tracks.get(key) if key >= 0 else None
            if st is None:
                names.append(None)
                continue
            if st["vector"] is not None:
                emb[i] = st["vector"]
            name, score = self._verdict(st)
            names.append(name)
            if score is not None:
                scores[i] = score
        return RecognizedFaces(faces, crops, emb, tuple(names), scores)

    def end(self, key: int) -> dict[str, Any]:
        """Forget track ``key``; returns its ``name``, ``score`` and ``embeddings`` (count)."""
        st = self._tracks.pop(key, None)
        if st is None:
            return {"name": None, "score": None, "embeddings": 0}
        name, score = self._verdict(st)
        return {"name": name, "score": None if score is None else round(float(score), 4),
                "embeddings": st["embeddings"]}

    def forget(self, live: set[int]) -> None:
        """Drop the state of tracks whose keys are not in ``live`` (tentative tracks that died)."""
        for key in [k for k in self._tracks if k not in live]:
            del self._tracks[key]

    def close(self) -> None:
        self.labeller.close()
