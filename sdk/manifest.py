"""The bundle manifest: one typed, validated description of what a bundle holds.

Every bundle (face detection, BNN activity classification, face embedding) carries one
``manifest.json`` parsed here, once, into a frozen :class:`Manifest`. Parsing checks types,
ranges, the known tasks, families, engines, targets, precisions and devices, and that the
manifest pins its own digest; anything wrong is a :class:`~anyedge.errors.BundleError` that
names the field, e.g. ``decoder.strides: expected a list of positive ints, got 'x'``.

JSON layout (schema version 1; ``format`` carries the version as ``anyedge-bundle/1``)::

    format          "anyedge-bundle/1"
    model           {name, family, task, description?, license?}
    model_file      the member the engine loads (listed in files, with an IR's .bin)
    files           {member: sha256}
    sizes           {member: bytes} (written by write_bundle; caps what a zip may unpack)
    manifest_sha256 sha256 of the canonical JSON without this field (required)
    engine, target, precision, device, providers     what it was built for (optional)
    face_detection:           input (InputSpec), decoder (family settings)
    face_embedding:           input (112x112 or 96x112 = width x height), embedding
                              {dimension, normalize, threshold, metric}
    activity_classification:  labels, window {length, channels, channel_names?,
                              sample_rate_hz?}, output {scores, score_scale}
    anything else   provenance (tools, calibration, fidelity, training, memory...), kept
                    verbatim in :attr:`Manifest.extra`

Build one in code with the constructor and :meth:`Manifest.to_json`; ``write_bundle`` fills
in ``files`` and seals ``manifest_sha256``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Mapping

from .errors import BundleError
from .registry import InputSpec

__all__ = [
    "SCHEMA_VERSION",
    "FORMAT",
    "TASKS",
    "FAMILIES",
    "EMBEDDER_SIZES",
    "BNN_PRECISION",
    "ModelCard",
    "Window",
    "ScoreOutput",
    "Embedding",
    "Manifest",
    "manifest_digest",
    "known_targets",
    "safe_member",
]

SCHEMA_VERSION = 1
_FORMAT_PREFIX = "anyedge-bundle/"
FORMAT = f"{_FORMAT_PREFIX}{SCHEMA_VERSION}"

#: task -> model families anyedge knows how to run for it (extend here when adding one).
FAMILIES: dict[str, frozenset[str]] = {
    "face_detection": frozenset({"blazeface", "scrfd", "yunet", "retinaface", "ultraface"}),
    "face_embedding": frozenset({"mobilefacenet", "arcface"}),
    "activity_classification": frozenset({"bnn"}),
}
TASKS = tuple(FAMILIES)
#: (width, height) inputs an embedder may take: aligned 96x112 (SphereFace/MobileFaceNet crop) or 112x112.
EMBEDDER_SIZES = ((96, 112), (112, 112))

#: the precision the binarizing converter writes: 1-bit layers after an int8 first layer (the
#: ``bnn`` engine reports it as ``binary``, one of :data:`anyedge.engines.base.PRECISIONS`).
BNN_PRECISION = "binary (int8 first layer)"

_SHA = re.compile(r"^[0-9a-f]{64}$")
_TOP = {"format", "model", "model_file", "files", "sizes", "manifest_sha256", "engine", "target", "precision", "device",
        "providers", "input", "decoder", "labels", "window", "output", "embedding"}


# -- field checks: each names the offending field -------------------------------------------
def _fail(where: str, expected: str, got: Any) -> BundleError:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return BundleError(f"{where}: expected {expected}, got {shown}")


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _fail(where, "an object", v)
    return v


def _str(v: Any, where: str, *, choices: Any = None, empty: bool = False) -> str:
    if not isinstance(v, str) or (not empty and not v):
        raise _fail(where, "a non-empty string", v)
    if choices is not None and v not in choices:
        raise _fail(where, f"one of {sorted(choices)}", v)
    return v


def _opt_str(v: Any, where: str) -> str | None:
    return None if v is None else _str(v, where)


def _int(v: Any, where: str, *, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise _fail(where, "a positive int" if low == 1 else f"an int >= {low}", v)
    return v


def _num(v: Any, where: str, *, low: float = -math.inf, high: float = math.inf, positive: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < low or v > high or (positive and v <= 0):
        if positive:
            what = "a positive number"
        elif math.isfinite(low) and math.isfinite(high):
            what = f"a number in [{low:g}, {high:g}]"
        elif math.isfinite(low):
            what = f"a number >= {low:g}"
        else:
            what = "a finite number"
        raise _fail(where, what, v)
    return float(v)


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(where, "true or false", v)
    return v


def _list(v: Any, where: str, what: str, check: Any, *, length: int | None = None, min_len: int = 1) -> list[Any]:
    n = f"{length} " if length is not None else ""
    if not isinstance(v, (list, tuple)) or len(v) < min_len or (length is not None and len(v) != length):
        raise _fail(where, f"a list of {n}{what}", v)
    try:
        return [check(x) for x in v]
    except BundleError:
        raise _fail(where, f"a list of {n}{what}", v) from None


def _pos_int(x: Any) -> int:
    return _int(x, "")


#: the largest input side a manifest may ask for (a 4096x4096 RGB float32 tensor is 192 MiB)
MAX_INPUT_SIDE = 4096


def _input_side(x: Any) -> int:
    if _int(x, "") > MAX_INPUT_SIDE:
        raise _fail("", f"at most {MAX_INPUT_SIDE}", x)
    return x


def _pos_num(x: Any) -> float:
    return _num(x, "", positive=True)


def _any_num(x: Any) -> float:
    return _num(x, "")


def safe_member(name: Any, where: str = "member") -> str:
    """A bundle member path that stays inside the bundle (no absolute, ``..``, ``\\``, drive)."""
    if not isinstance(name, str) or not name:
        raise _fail(where, "a non-empty member path", name)
    pp = PurePosixPath(name)
    if "\\" in name or pp.is_absolute() or ".." in pp.parts or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{where}: member path {name!r} escapes the bundle; refusing it")
    return str(pp)


# -- sections ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCard:
    """What the model is. ``family`` must be known for ``task`` (see :data:`FAMILIES`)."""

    name: str
    family: str
    task: str
    description: str = ""
    license: str | None = None

    def __post_init__(self) -> None:
        _str(self.name, "model.name")
        _str(self.task, "model.task", choices=TASKS)
        _str(self.family, "model.family", choices=FAMILIES[self.task])
        _str(self.description, "model.description", empty=True)
        _opt_str(self.license, "model.license")

    @classmethod
    def from_json(cls, d: Any) -> "ModelCard":
        d = _obj(d, "model")
        return cls(d.get("name"), d.get("family"), d.get("task"), d.get("description", ""), d.get("license"))

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "family": self.family, "task": self.task}
        if self.description:
            out["description"] = self.description
        if self.license is not None:
            out["license"] = self.license
        return out


@dataclass(frozen=True)
class Window:
    """A sensor window: ``length`` samples x ``channels``."""

    length: int
    channels: int
    channel_names: tuple[str, ...] | None = None
    sample_rate_hz: float | None = None

    def __post_init__(self) -> None:
        _int(self.length, "window.length")
        _int(self.channels, "window.channels")
        if self.channel_names is not None:
            names = _list(self.channel_names, "window.channel_names", "strings", lambda x: _str(x, ""),
                          length=self.channels)
            object.__setattr__(self, "channel_names", tuple(names))
        if self.sample_rate_hz is not None:
            object.__setattr__(self, "sample_rate_hz", _num(self.sample_rate_hz, "window.sample_rate_hz",
                                                            positive=True))

    @classmethod
    def from_json(cls, d: Any) -> "Window":
        d = _obj(d, "window")
        return cls(d.get("length"), d.get("channels"), d.get("channel_names"), d.get("sample_rate_hz"))

    def to_json(self) -> dict[str, Any]:
        return {"length": self.length, "channels": self.channels,
                "channel_names": list(self.channel_names) if self.channel_names is not None else None,
                "sample_rate_hz": self.sample_rate_hz}


@dataclass(frozen=True)
class ScoreOutput:
    """A classifier's output: integer ``scores``; confidences are ``softmax(score_scale * scores)``."""

    score_scale: float = 1.0
    scores: str = "int32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "score_scale", _num(self.score_scale, "output.score_scale", positive=True))
        _str(self.scores, "output.scores", choices=("int32", "float32"))

    @classmethod
    def from_json(cls, d: Any) -> "ScoreOutput":
        d = _obj(d, "output")
        return cls(d.get("score_scale", 1.0), d.get("scores", "int32"))

    def to_json(self) -> dict[str, Any]:
        return {"scores": self.scores, "score_scale": self.score_scale}


@dataclass(frozen=True)
class Embedding:
    """A face embedder's output: a ``dimension``-long vector, compared by cosine similarity.

    Attributes:
        dimension: embedding length (128 for MobileFaceNet, 512 for ArcFace R50...).
        normalize: whether embeddings are L2-normalised before comparison.
        threshold: default same-person decision threshold on the similarity, in [-1, 1].
        metric: ``"cosine"``.
    """

    dimension: int
    threshold: float
    normalize: bool = True
    metric: str = "cosine"

    def __post_init__(self) -> None:
        _int(self.dimension, "embedding.dimension")
        object.__setattr__(self, "threshold", _num(self.threshold, "embedding.threshold", low=-1.0, high=1.0))
        _bool(self.normalize, "embedding.normalize")
        _str(self.metric, "embedding.metric", choices=("cosine",))

    @classmethod
    def from_json(cls, d: Any) -> "Embedding":
        d = _obj(d, "embedding")
        return cls(d.get("dimension"), d.get("threshold"), d.get("normalize", True), d.get("metric", "cosine"))

    def to_json(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "threshold": self.threshold, "normalize": self.normalize,
                "metric": self.metric}


def _input_from_json(d: Any) -> InputSpec:
    d = _obj(d, "input")
    size = d.get("size")
    if size is not None:
        size = tuple(_list(size, "input.size", f"positive ints (width, height) up to {MAX_INPUT_SIDE}", _input_side,
                           length=2))

    def mean_std(key: str, default: float, positive: bool) -> Any:
        v = d.get(key, default)
        if isinstance(v, (list, tuple)):
            return tuple(_list(v, f"input.{key}", "positive numbers" if positive else "numbers",
                               _pos_num if positive else _any_num, length=3))
        return _num(v, f"input.{key}", positive=positive)

    return InputSpec(
        size=size,  # type: ignore[arg-type]
        layout=_str(d.get("layout", "NCHW"), "input.layout", choices=("NCHW", "NHWC")),
        channels=_str(d.get("channels", "RGB"), "input.channels", choices=("RGB", "BGR")),
        mean=mean_std("mean", 0.0, False),
        std=mean_std("std", 1.0, True),
        dynamic=_bool(d.get("dynamic", False), "input.dynamic"),
        resize=_str(d.get("resize", "letterbox"), "input.resize", choices=("letterbox", "stretch")),
    )


# Decoder settings every family may use, with their checks. Unknown keys are kept as they are
# (a family may add its own), known ones must have the right type and range.
def _decoder_checks() -> dict[str, Any]:
    def unit(w: str) -> Any:
        return lambda v: _num(v, w, low=0.0, high=1.0)

    def pos_ints(w: str) -> Any:
        return lambda v: _list(v, w, "positive ints", _pos_int)

    def pos_nums(w: str) -> Any:
        return lambda v: _list(v, w, "positive numbers", _pos_num)

    return {
        "strides": pos_ints("decoder.strides"),
        "score_threshold": unit("decoder.score_threshold"),
        "iou_threshold": unit("decoder.iou_threshold"),
        "keypoints": lambda v: _int(v, "decoder.keypoints", low=0),
        "anchors_per_cell": lambda v: _int(v, "decoder.anchors_per_cell"),
        "num_layers": lambda v: _int(v, "decoder.num_layers"),
        "min_scale": lambda v: _num(v, "decoder.min_scale", positive=True),
        "max_scale": lambda v: _num(v, "decoder.max_scale", positive=True),
        "interpolated_scale_aspect_ratio": lambda v: _num(v, "decoder.interpolated_scale_aspect_ratio", low=0.0),
        "variance": pos_nums("decoder.variance"),
        "min_sizes": lambda v: _list(v, "decoder.min_sizes", "lists of positive numbers",
                                     lambda x: _list(x, "decoder.min_sizes", "positive numbers", _pos_num)),
        "outputs": lambda v: {_str(k, "decoder.outputs"): _str(x, f"decoder.outputs.{k}")
                              for k, x in _obj(v, "decoder.outputs").items()},
    }


_DECODER_CHECKS = _decoder_checks()


def _decoder_from_json(d: Any) -> dict[str, Any]:
    d = _obj(d, "decoder")
    for key, value in d.items():
        check = _DECODER_CHECKS.get(key)
        if check is not None:
            check(value)
    return dict(d)


# -- the manifest -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """A bundle's manifest, validated on construction.

    Attributes:
        model: what the model is (:class:`ModelCard`).
        model_file: the member the engine loads; it (and an OpenVINO IR's ``.bin``) must be
            listed in ``files`` once the manifest is sealed.
        files: member -> sha256 of every file in the bundle.
        sizes: member -> size in bytes of every file (empty in manifests written before
            sizes were recorded); a zip may not unpack more than this.
        manifest_sha256: the digest the manifest pins of itself; ``None`` only while building.
        engine, target, precision, device: what the bundle was built for (optional).
        providers: ONNX Runtime execution providers the bundle asks for.
        input: image preprocessing (face detection and embedding).
        decoder: family decoder settings (face detection).
        labels, window, output: classifier classes, sensor window and score scaling
            (activity classification).
        embedding: embedding size, normalisation and default threshold (face embedding).
        extra: every other top-level field (provenance: tools, calibration, fidelity, training,
            memory...), kept verbatim.
        schema_version: the manifest schema (``format`` is ``anyedge-bundle/<version>``).
    """

    model: ModelCard
    model_file: str
    files: Mapping[str, str] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    manifest_sha256: str | None = None
    engine: str | None = None
    target: str | None = None
    precision: str | None = None
    device: str | None = None
    providers: tuple[str, ...] = ()
    input: InputSpec | None = None
    decoder: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    window: Window | None = None
    output: ScoreOutput | None = None
    embedding: Embedding | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelCard):
            raise _fail("model", "a ModelCard", self.model)
        if self.schema_version != SCHEMA_VERSION:
            raise BundleError(f"format: schema version {self.schema_version} is not one this anyedge reads "
                              f"({SCHEMA_VERSION}); upgrade anyedge")
        safe_member(self.model_file, "model_file")
        files = _obj(self.files, "files")
        for name, digest in files.items():
            safe_member(name, "files")
            if not isinstance(digest, str) or not _SHA.match(digest):
                raise _fail(f"files.{name}", "a sha256 (64 lowercase hex digits)", digest)
        object.__setattr__(self, "files", dict(files))
        sizes = _obj(self.sizes, "sizes")
        for name, n in sizes.items():
            _int(n, f"sizes.{name}", low=0)
        if sizes and files and set(sizes) != set(files):
            raise BundleError(f"sizes: expected the members of files {sorted(files)}, got {sorted(sizes)}")
        object.__setattr__(self, "sizes", dict(sizes))
        if files or self.manifest_sha256 is not None:  # sealed: every member the model loads is pinned
            for name in self.loaded_members:
                if name not in files:
                    raise BundleError(f"files: {name!r}, which the model loads, is not listed (and so not "
                                      f"pinned by a sha256); listed: {sorted(files)}")
        if self.manifest_sha256 is not None and (not isinstance(self.manifest_sha256, str)
                                                 or not _SHA.match(self.manifest_sha256)):
            raise _fail("manifest_sha256", "a sha256 (64 lowercase hex digits)", self.manifest_sha256)
        self._check_build()
        object.__setattr__(self, "providers",
                           tuple(_list(self.providers, "providers", "strings", lambda x: _str(x, ""), min_len=0)))
        if self.input is not None and not isinstance(self.input, InputSpec):
            raise _fail("input", "an InputSpec", self.input)
        object.__setattr__(self, "decoder", _decoder_from_json(self.decoder))
        object.__setattr__(self, "extra", dict(_obj(self.extra, "extra")))
        clash = _TOP & set(self.extra)
        if clash:
            raise BundleError(f"extra: {sorted(clash)} are manifest fields of their own, not extras")
        self._check_task()

    def _check_build(self) -> None:
        """``engine``, ``target``, ``precision`` and ``device`` name things anyedge knows (or are unset)."""
        if self.engine is not None:
            from .engines import ENGINES

            _str(self.engine, "engine", choices=ENGINES)
        if self.target is not None:
            _str(self.target, "target", choices=known_targets())
        if self.precision is not None:
            from .engines.base import PRECISIONS

            _str(self.precision, "precision", choices=(*PRECISIONS, BNN_PRECISION))
        if self.device is not None:
            from .engines.openvino import is_device

            if not is_device(_str(self.device, "device")):
                raise _fail("device", "an OpenVINO device: CPU, GPU or NPU (optionally numbered, GPU.0), "
                                      "or AUTO / AUTO:, MULTI: or HETERO: over a comma list of them", self.device)

    def _check_task(self) -> None:
        task = self.model.task
        if task in ("face_detection", "face_embedding") and self.input is None:
            raise BundleError(f"input: a {task} bundle needs its input spec")
        if task == "face_detection" and not self.decoder:
            raise BundleError("decoder: a face_detection bundle needs its decoder settings")
        if task == "face_embedding":
            if self.embedding is None:
                raise BundleError("embedding: a face_embedding bundle needs {dimension, threshold}")
            assert self.input is not None
            if self.input.size is None or tuple(self.input.size) not in EMBEDDER_SIZES:
                raise _fail("input.size", f"an embedder geometry (width, height) in {list(EMBEDDER_SIZES)}",
                            self.input.size)
        if task == "activity_classification":
            labels = _list(self.labels, "labels", "distinct non-empty strings", lambda x: _str(x, ""))
            if len(set(labels)) != len(labels):
                raise _fail("labels", "a list of distinct non-empty strings", self.labels)
            object.__setattr__(self, "labels", tuple(labels))
            if self.window is None:
                raise BundleError("window: an activity_classification bundle needs {length, channels}")
            if self.output is None:
                object.__setattr__(self, "output", ScoreOutput())

    # -- JSON -----------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: Any, *, require_hash: bool = True) -> "Manifest":
        """Parse and validate a manifest's JSON object (already decoded).

        Args:
            data: the decoded ``manifest.json``.
            require_hash: refuse a manifest without ``manifest_sha256`` (always, for loading;
                ``False`` only while a writer is still building it).

        Raises:
            BundleError: naming the first field that is missing, of the wrong type or out of range.
        """
        d = _obj(data, "manifest")
        fmt = d.get("format")
        if not isinstance(fmt, str) or not fmt.startswith(_FORMAT_PREFIX) or not fmt[len(_FORMAT_PREFIX):].isdigit():
            raise _fail("format", f"{FORMAT!r} (this is not an anyedge manifest)", fmt)
        version = int(fmt[len(_FORMAT_PREFIX):])
        for key in ("model", "model_file", "files"):
            if key not in d:
                raise BundleError(f"{key}: missing (every manifest has model, model_file and files)")
        if require_hash and d.get("manifest_sha256") is None:
            raise BundleError("manifest_sha256: missing; a manifest must pin its own digest (the bundle "
                              "was edited or written by a tool that does not seal it)")
        task_parts: dict[str, Any] = {}
        if d.get("input") is not None:
            task_parts["input"] = _input_from_json(d["input"])
        if d.get("window") is not None:
            task_parts["window"] = Window.from_json(d["window"])
        if d.get("output") is not None:
            task_parts["output"] = ScoreOutput.from_json(d["output"])
        if d.get("embedding") is not None:
            task_parts["embedding"] = Embedding.from_json(d["embedding"])
        return cls(
            model=ModelCard.from_json(d["model"]),
            model_file=d["model_file"],
            files=_obj(d["files"], "files"),
            sizes=d.get("sizes") or {},
            manifest_sha256=d.get("manifest_sha256"),
            engine=d.get("engine"),
            target=d.get("target"),
            precision=d.get("precision"),
            device=d.get("device"),
            providers=d.get("providers") or (),
            decoder=d.get("decoder") or {},
            labels=d.get("labels") or (),
            extra={k: v for k, v in d.items() if k not in _TOP},
            schema_version=version,
            **task_parts,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object (plain dicts and lists); fields that are unset are left out."""
        out: dict[str, Any] = {"format": f"{_FORMAT_PREFIX}{self.schema_version}", "model": self.model.to_json(),
                               "model_file": self.model_file}
        for key in ("engine", "target", "device", "precision"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.providers:
            out["providers"] = list(self.providers)
        if self.input is not None:
            out["input"] = self.input.to_dict()
        if self.decoder:
            out["decoder"] = json.loads(json.dumps(dict(self.decoder)))
        if self.labels:
            out["labels"] = list(self.labels)
        if self.window is not None:
            out["window"] = self.window.to_json()
        if self.output is not None:
            out["output"] = self.output.to_json()
        if self.embedding is not None:
            out["embedding"] = self.embedding.to_json()
        out.update(self.extra)
        out["files"] = dict(self.files)
        if self.sizes:
            out["sizes"] = dict(self.sizes)
        if self.manifest_sha256 is not None:
            out["manifest_sha256"] = self.manifest_sha256
        return out

    def digest(self) -> str:
        """The sha256 this manifest's JSON seals itself with (see :func:`manifest_digest`)."""
        return manifest_digest(self.to_json())

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def loaded_members(self) -> tuple[str, ...]:
        """Every member an engine opens for this model: ``model_file``, plus an OpenVINO IR's ``.bin``."""
        model = safe_member(self.model_file, "model_file")
        pp = PurePosixPath(model)
        return (model, str(pp.with_suffix(".bin"))) if pp.suffix.lower() == ".xml" else (model,)

    @property
    def declared_bytes(self) -> int | None:
        """Total size of the listed files, when the manifest records it."""
        return sum(self.sizes.values()) if self.sizes else None


def known_targets() -> frozenset[str]:
    """The ``target`` values a manifest may name: every target profile, ``host`` (converted for
    the machine that ran the converter) and ``bnn`` (the binarizing converter's own target)."""
    from .targets import TARGETS

    return frozenset({*TARGETS, "host", "bnn"})


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON, without its own ``manifest_sha256`` field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(o: Any) -> Any:
    import numpy as np
    from pathlib import Path

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
