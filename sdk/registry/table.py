"""The model table: what each known model is, under which licence, and its pinned sha256.

Data only. To add a model, add a :class:`ModelInfo` entry to :data:`REGISTRY` (pinned and
fetchable or findable on ``ANYEDGE_MODEL_PATH``), :data:`USER_SUPPLIED` (run but not pinned), or
a folder under ``anyedge/models/`` plus a :data:`PACKAGED_BUNDLES` line. Finding and fetching
the files is :mod:`anyedge.registry.fetch`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping
from urllib.parse import quote

from ..errors import UnknownModelError

__all__ = [
    "InputSpec",
    "RawFile",
    "Source",
    "LicenceClass",
    "UPSTREAM_RAW_HOST",
    "ModelInfo",
    "REGISTRY",
    "USER_SUPPLIED",
    "PACKAGED_BUNDLES",
    "get_model_info",
    "list_models",
]


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its image.

    Attributes:
        size: ``(width, height)`` of the network input; ``None`` for fully dynamic inputs.
        layout: ``"NHWC"`` or ``"NCHW"``.
        channels: ``"RGB"`` or ``"BGR"``: the channel order the network was trained on.
        mean: subtracted from the 0..255 pixel values (per channel or scalar).
        std: the difference is divided by this.
        dynamic: whether the network accepts other input sizes (then ``size`` is the default).
        resize: ``"letterbox"`` (keep aspect ratio, pad bottom/right) or ``"stretch"``.
    """

    size: tuple[int, int] | None
    layout: str = "NCHW"
    channels: str = "RGB"
    mean: float | tuple[float, float, float] = 0.0
    std: float | tuple[float, float, float] = 1.0
    dynamic: bool = False
    resize: str = "letterbox"

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size) if self.size else None,
            "layout": self.layout,
            "channels": self.channels,
            "mean": list(self.mean) if isinstance(self.mean, tuple) else self.mean,
            "std": list(self.std) if isinstance(self.std, tuple) else self.std,
            "dynamic": self.dynamic,
            "resize": self.resize,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InputSpec":
        def tup(v: Any) -> Any:
            return tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v)

        return cls(
            size=tuple(d["size"]) if d.get("size") else None,  # type: ignore[arg-type]
            layout=d.get("layout", "NCHW"),
            channels=d.get("channels", "RGB"),
            mean=tup(d.get("mean", 0.0)),
            std=tup(d.get("std", 1.0)),
            dynamic=bool(d.get("dynamic", False)),
            resize=d.get("resize", "letterbox"),
        )


UPSTREAM_RAW_HOST = "https://raw.githubusercontent.com"
"""Where :class:`RawFile` sources are published; ``ANYEDGE_MODEL_MIRROR`` replaces it."""

_REPO_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class RawFile:
    """A file in a public git repository at a fixed commit.

    Attributes:
        repo: ``"owner/name"`` on GitHub.
        commit: the full 40-hex commit id the file is pinned at.
        path: the file's path inside the repository (``/``-separated, relative).
    """

    repo: str
    commit: str
    path: str

    def __post_init__(self) -> None:
        parts = self.path.split("/")
        if (not _REPO_RE.fullmatch(self.repo) or not _COMMIT_RE.fullmatch(self.commit)
                or any(p in ("", ".", "..") for p in parts) or "\\" in self.path):
            raise ValueError(f"not a pinned repository file: {self.repo!r} {self.commit!r} {self.path!r}")

    @property
    def key(self) -> str:
        """``<owner>/<repo>/<commit>/<path>``: the file's place on the raw-file host or a mirror."""
        return f"{self.repo}/{self.commit}/{self.path}"

    def url(self, base: str = UPSTREAM_RAW_HOST) -> str:
        """The file's URL under ``base`` (the upstream raw-file host or a mirror of it)."""
        return base.rstrip("/") + "/" + quote(self.key, safe="/")


class LicenceClass(str, Enum):
    """What a model's licence lets anyedge do on its own.

    Permissive weights are downloaded on first use; the others only once the user accepts
    their licence (``anyedge models fetch NAME --accept-licence`` or ``ANYEDGE_ACCEPT_LICENCE=1``).
    """

    PERMISSIVE = "permissive"
    NON_COMMERCIAL = "non-commercial"
    UNSTATED = "no licence stated"

    @property
    def needs_acceptance(self) -> bool:
        return self is not LicenceClass.PERMISSIVE


@dataclass(frozen=True)
class Source:
    """Where a model officially comes from.

    At most one of ``raw`` (a file in a public repository at a fixed commit) or ``wheel`` (a
    pip requirement such as ``mediapipe==0.10.14`` together with ``member``, the path of the
    file inside that wheel) is set for a source anyedge can fetch; ``origin`` always says in
    words where the file was published.
    """

    origin: str
    raw: RawFile | None = None
    wheel: str | None = None
    member: str | None = None

    @property
    def fetchable(self) -> bool:
        return bool(self.raw or (self.wheel and self.member))

    @property
    def url(self) -> str | None:
        """The upstream URL of a ``raw`` source (``None`` for wheel members)."""
        return self.raw.url() if self.raw else None

    @property
    def mirror_path(self) -> str | None:
        """Where the file lies in a mirror folder (``anyedge models pack``).

        ``<owner>/<repo>/<commit>/<path>`` for a repository file (the raw-file host's own
        layout), ``pypi/<distribution>/<version>/<member>`` for a wheel member.
        """
        if self.raw:
            return self.raw.key
        if self.wheel and self.member and "==" in self.wheel:
            dist, version = self.wheel.split("==", 1)
            return f"pypi/{dist}/{version}/{self.member}"
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"origin": self.origin}
        if self.raw:
            d.update(url=self.url, repo=self.raw.repo, commit=self.raw.commit, path=self.raw.path)
        if self.wheel:
            d.update(wheel=self.wheel, member=self.member)
        return d


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry: everything the runtime needs to know about a model file."""

    name: str
    task: str
    family: str
    filename: str
    sha256: str
    license: str
    input: InputSpec
    source: Source
    decoder: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    quantization: Mapping[str, Any] = field(default_factory=dict)  # hints for the converters
    licence_class: LicenceClass = LicenceClass.UNSTATED  # permissive ones download on first use

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "family": self.family,
            "filename": self.filename,
            "sha256": self.sha256,
            "license": self.license,
            "licence_class": self.licence_class.value,
            "input": self.input.to_dict(),
            "decoder": dict(self.decoder),
            "source": self.source.to_dict(),
        }


_MP_WHEEL = "mediapipe==0.10.14"
_LFD = "GitHub ShiqiYu/libfacedetection.train"
_LFD_204 = ("ShiqiYu/libfacedetection.train", "204b0c9f687f2fd5c012988199a3cd47feb69a90")
_LFD_0047 = ("ShiqiYu/libfacedetection.train", "0047ac24afb1a50a0c6105001c89d1b5b805dbf1")
_ULTRA = ("Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB", "dffdddda9794a50607cba8f318507a28c1c27cab")
_MFN = "zye1996/Mobilefacenet-TF2-coral_tpu"
_P, _NC, _NONE = LicenceClass.PERMISSIVE, LicenceClass.NON_COMMERCIAL, LicenceClass.UNSTATED

# MobileFaceNet (zye1996 TF2 port): the crop, the embedding, and the ``target`` input [1, 10572],
# the class labels its ArcFace training head took. The exported graph keeps that input but the
# embedding does not depend on it: anyedge feeds zeros. The default threshold is the 10-fold
# cross-validated one on ../shared/data/faces/pairs.csv (benchmarks/recognition_accuracy.py).
_MFN_EMBEDDER: dict[str, Any] = {
    "embedding_dim": 128, "geometry": "sphereface-112x96", "output": "Identity",
    "extra_inputs": {"target": "zeros"}, "threshold": 0.37,
    "threshold_source": "10-fold cross-validated on ../shared/data/faces/pairs.csv (6 people, 378 pairs): "
                        "a rough default, re-calibrate with `anyedge calibrate-threshold` on your own pairs",
}

REGISTRY: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo(
            name="blazeface-short",
            task="face_detection",
            family="blazeface",
            filename="face_detection_short_range.tflite",
            sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            license="Apache-2.0",
            input=InputSpec((128, 128), "NHWC", "RGB", 127.5, 127.5),
            source=Source(
                origin="MediaPipe face detection (short range), shipped in the PyPI wheel "
                "mediapipe==0.10.14 under mediapipe/modules/face_detection/",
                wheel=_MP_WHEEL,
                member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
            ),
            decoder={
                "num_layers": 4, "strides": [8, 16, 16, 16], "min_scale": 0.1484375,
                "max_scale": 0.75, "interpolated_scale_aspect_ratio": 1.0,
                "score_threshold": 0.5, "iou_threshold": 0.3, "keypoints": 6,
                "outputs": {"boxes": "regressors", "scores": "classificators"},
            },
            description="BlazeFace short range, faces within ~2 m (selfie).",
            licence_class=_P,
            # Score logits reach -850 on background but sigmoid saturates past +-16; box and
            # keypoint offsets of real faces stay within [-51, 113] input pixels.
            quantization={"tflite_int8_ranges": {r"classificator.*|reshape|reshape_2": (-16.0, 16.0),
                                                 r"regressor.*|reshape_1|reshape_3": (-64.0, 128.0)}},
        ),
        ModelInfo(
            name="blazeface-full",
            task="face_detection",
            family="blazeface",
            filename="face_detection_full_range_sparse.tflite",
            sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
            license="Apache-2.0",
            input=InputSpec((192, 192), "NHWC", "RGB", 127.5, 127.5),
            source=Source(
                origin="MediaPipe face detection (full range, sparse), shipped in the PyPI wheel "
                "mediapipe==0.10.14 under mediapipe/modules/face_detection/",
                wheel=_MP_WHEEL,
                member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
            ),
            decoder={
                "num_layers": 1, "strides": [4], "min_scale": 0.1484375, "max_scale": 0.75,
                "interpolated_scale_aspect_ratio": 0.0,
                "score_threshold": 0.5, "iou_threshold": 0.3, "keypoints": 6,
                "outputs": {"boxes": "Identity", "scores": "Identity_1"},
            },
            description="BlazeFace full range, faces within ~5 m.",
            licence_class=_P,
        ),
        ModelInfo(
            name="scrfd-500m",
            task="face_detection",
            family="scrfd",
            filename="scrfd_500m_bnkps.onnx",
            sha256="6c6ba7956684796d7d582bfa1ab95dfe01dd280159f6bff1e23c1bc32bcc8431",
            license="insightface weights: non-commercial research only",
            input=InputSpec((640, 640), "NCHW", "RGB", 127.5, 128.0, dynamic=True),
            source=Source(
                origin=f"{_LFD}, onnx/scrfd_500m_bnkps.onnx at commit 204b0c9f (insightface SCRFD-0.5GF, "
                "also det_500m.onnx in insightface's buffalo_sc pack)",
                raw=RawFile(*_LFD_204, "onnx/scrfd_500m_bnkps.onnx"),
            ),
            decoder={"strides": [8, 16, 32], "anchors_per_cell": 2, "score_threshold": 0.5,
                     "iou_threshold": 0.4, "keypoints": 5},
            description="SCRFD-0.5GF with 5 keypoints.",
            licence_class=_NC,
        ),
        ModelInfo(
            name="yunet",
            task="face_detection",
            family="yunet",
            filename="yunet_s_640_640.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            license="Apache-2.0",
            input=InputSpec((640, 640), "NCHW", "BGR", 0.0, 1.0),
            source=Source(origin=f"{_LFD}, onnx/yunet_s_640_640.onnx at commit 0047ac24",
                          raw=RawFile(*_LFD_0047, "onnx/yunet_s_640_640.onnx")),
            decoder={"strides": [8, 16, 32], "score_threshold": 0.6, "iou_threshold": 0.3,
                     "keypoints": 5},
            description="YuNet-s (libfacedetection), static 640x640.",
            licence_class=_P,
        ),
        ModelInfo(
            name="yunet-n-320",
            task="face_detection",
            family="yunet",
            filename="yunet_n_320_320.onnx",
            sha256="81dbde155e982455488235acb8ec2dec5d647edf7cf7080d33e4abb69b93a0d2",
            license="Apache-2.0",
            input=InputSpec((320, 320), "NCHW", "BGR", 0.0, 1.0),
            source=Source(origin=f"{_LFD}, onnx/yunet_n_320_320.onnx at commit 0047ac24",
                          raw=RawFile(*_LFD_0047, "onnx/yunet_n_320_320.onnx")),
            decoder={"strides": [8, 16, 32], "score_threshold": 0.6, "iou_threshold": 0.3,
                     "keypoints": 5},
            description="YuNet-n (libfacedetection), static 320x320.",
            licence_class=_P,
        ),
        ModelInfo(
            name="retinaface-mnet025",
            task="face_detection",
            family="retinaface",
            filename="retinaface_mbnet0.25.onnx",
            sha256="13a69f2cb3012162ccce8466b1cd9e445ae1337ae641f31c90419e6179f13650",
            license="MIT",
            input=InputSpec((640, 640), "NCHW", "BGR", (104.0, 117.0, 123.0), 1.0, dynamic=True),
            source=Source(origin=f"{_LFD}, onnx/retinaface_mbnet0.25.onnx at commit 204b0c9f",
                          raw=RawFile(*_LFD_204, "onnx/retinaface_mbnet0.25.onnx")),
            decoder={"min_sizes": [[16, 32], [64, 128], [256, 512]], "strides": [8, 16, 32],
                     "variance": [0.1, 0.2], "score_threshold": 0.6, "iou_threshold": 0.4,
                     "keypoints": 5},
            description="RetinaFace with a MobileNet-0.25 backbone.",
            licence_class=_P,
        ),
        ModelInfo(
            name="ultraface-rfb320",
            task="face_detection",
            family="ultraface",
            filename="version-RFB-320.onnx",
            sha256="34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017",
            license="MIT",
            input=InputSpec((320, 240), "NCHW", "RGB", 127.0, 128.0, resize="stretch"),
            source=Source(
                origin="GitHub Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB, "
                "models/onnx/version-RFB-320.onnx at commit dffdddd",
                raw=RawFile(*_ULTRA, "models/onnx/version-RFB-320.onnx"),
            ),
            decoder={"score_threshold": 0.7, "iou_threshold": 0.3, "keypoints": 0},
            description="Ultra-Light-Fast-Generic-Face-Detector-1MB, RFB variant, 320x240.",
            licence_class=_P,
        ),
        ModelInfo(
            name="mobilefacenet",
            task="face_embedding",
            family="mobilefacenet",
            filename="inference_model_0.993.tflite",
            sha256="70ed61fcf34c6bff588b6827473d614f948c0a43580cff6c539c9152a5244e04",
            license="no licence stated: test fixture only",
            input=InputSpec((96, 112), "NHWC", "RGB", 127.5, 128.0, resize="stretch"),
            source=Source(origin="GitHub zye1996/Mobilefacenet-TF2-coral_tpu at commit 987f3302 "
                                 "(MobileFaceNet trained on CASIA-WebFace, SphereFace crop)",
                          raw=RawFile(_MFN, "987f3302f3cfa37d3279e22f10683fa7f95144b8",
                                      "pretrained_model/inference_model_0.993.tflite")),
            # embedder settings (see anyedge.tasks.face_embedder.EmbedderSettings)
            decoder=_MFN_EMBEDDER,
            description="MobileFaceNet, 112x96 crop, 128-d embedding (float).",
            licence_class=_NONE,
        ),
        ModelInfo(
            name="mobilefacenet-int8w",
            task="face_embedding",
            family="mobilefacenet",
            filename="inference_model_993_quant.tflite",
            sha256="fa77f06af74876b7a1b39403b093ee9c74c62f29a60005e13e445f74c06c445d",
            license="no licence stated: test fixture only",
            input=InputSpec((96, 112), "NHWC", "RGB", 127.5, 128.0, resize="stretch"),
            source=Source(origin="GitHub zye1996/Mobilefacenet-TF2-coral_tpu at commit 875decff",
                          raw=RawFile(_MFN, "875decff2fd120b31a682bbdfd6bc763650210af",
                                      "pretrained_model/training_model/inference_model_993_quant.tflite")),
            # OpenVINO reads this hybrid-int8 file but its embeddings drift (mean cosine 0.944, min 0.858
            # to the float model on faces/, vs LiteRT's 0.984/0.969): only LiteRT is allowed.
            decoder={**_MFN_EMBEDDER, "extra_inputs": {}, "threshold": 0.36, "engines": ["litert"]},
            description="MobileFaceNet with int8 weights (float activations), 112x96, 128-d.",
            licence_class=_NONE,
        ),
    ]
}


# Models anyedge knows how to run but does not pin or fetch: the user supplies the file (by path,
# or on ANYEDGE_MODEL_PATH under ``filename``). Geometry and normalisation come from here.
USER_SUPPLIED: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo(
            name="w600k-mbf",
            task="face_embedding",
            family="arcface",
            filename="w600k_mbf.onnx",
            sha256="",  # not pinned: the file is not in anyedge's fixtures, its digest is unverified
            license="insightface model packs: non-commercial research only",
            input=InputSpec((112, 112), "NCHW", "RGB", 127.5, 127.5, resize="stretch"),
            source=Source(origin="insightface buffalo_s / buffalo_sc packs (w600k_mbf.onnx), supplied by the user"),
            decoder={"embedding_dim": 512, "geometry": "arcface-112x112", "output": None, "extra_inputs": {},
                     "threshold": 0.30,
                     "threshold_source": "not calibrated here (file not in the fixtures): a common ArcFace "
                                         "cosine threshold; run `anyedge calibrate-threshold`"},
            description="insightface MobileFaceNet (WebFace600K), 112x112, 512-d.",
            licence_class=_NC,
        ),
    ]
}


# Bundles that ship inside the anyedge package itself (the project's own models, e.g. the
# HAR BNNs): name -> directory relative to the installed ``anyedge`` package.
PACKAGED_BUNDLES: dict[str, str] = {
    "bnn-racketsports": "models/bnn-racketsports",
    "bnn-basicmotions": "models/bnn-basicmotions",
}


def list_models() -> list[ModelInfo]:
    """Every registered model, in registry order."""
    return list(REGISTRY.values())


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``.

    Raises:
        UnknownModelError: ``name`` is not registered.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted([*REGISTRY, *PACKAGED_BUNDLES]))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None
