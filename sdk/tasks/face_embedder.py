"""FaceEmbedder: aligned face crops in, L2-normalised embeddings out, on any engine.

Models come from the registry (``mobilefacenet``, ``mobilefacenet-int8w``), from the
user-supplied table (``w600k-mbf``: anyedge knows its crop and normalisation but does not ship
or pin the file), from a bundle directory whose manifest task is ``face_embedding``, or from a
bare file with ``family=``. The crop geometry, normalisation, embedding size and default
verification threshold always come from that metadata, never from the tensor shapes.

The calls a converter needs are public: :attr:`FaceEmbedder.input_name`,
:meth:`FaceEmbedder.preprocess` (aligned crop -> input tensor) and
:meth:`FaceEmbedder.run_engine` (input tensor -> raw outputs by name).

Thread safety: an embedder keeps no per-call state; concurrent :meth:`embed` calls share only
the engine (whose ``run`` is the engine adapter's promise) and read-only arrays.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..engines.base import dequantize_output, quantize_input
from ..errors import EngineUnavailableError, InputError, ModelLoadError, ModelNotFoundError, UnknownModelError
from ..ops.align import GEOMETRIES, CropGeometry, align_faces, get_geometry
from ..registry import REGISTRY, USER_SUPPLIED, InputSpec, ModelInfo, find_model_file, sha256_file
from ._loading import ModelSpec, resolve_spec
from .base import Task, TaskOptions

__all__ = ["TASK", "EmbedderSettings", "EmbedderIdentity", "FaceEmbedderOptions", "FaceEmbedder",
           "embedder_names"]

log = logging.getLogger(__name__)

TASK = "face_embedding"


@dataclass(frozen=True)
class EmbedderSettings:
    """What an embedder model is, parsed once from its registry entry or manifest.

    Attributes:
        embedding_dim: length of the embedding.
        geometry: the aligned-crop layout the model was trained on.
        output: name of the embedding output; ``None`` takes the only output.
        extra_inputs: inputs besides the image and what to feed them (only ``"zeros"``).
        threshold: default cosine threshold for "same person".
        threshold_source: how that threshold was chosen.
        engines: the engines whose embeddings were checked against the reference; ``None``: any.
    """

    embedding_dim: int
    geometry: CropGeometry
    output: str | None = None
    extra_inputs: Mapping[str, str] | None = None
    threshold: float = 0.5
    threshold_source: str = "unspecified"
    engines: tuple[str, ...] | None = None

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any], where: str) -> "EmbedderSettings":
        try:
            dim = int(m["embedding_dim"])
            geometry = get_geometry(str(m["geometry"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{where}: embedder settings need embedding_dim and geometry ({e})") from None
        extra = dict(m.get("extra_inputs") or {})
        bad = {k: v for k, v in extra.items() if v != "zeros"}
        if bad:
            raise ModelLoadError(f"{where}: extra inputs can only be fed 'zeros', got {bad}")
        thr = float(m.get("threshold", 0.5))
        if not -1.0 <= thr <= 1.0:
            raise ModelLoadError(f"{where}: threshold must be a cosine in [-1, 1], got {thr}")
        engines = tuple(m["engines"]) if m.get("engines") else None
        return cls(dim, geometry, m.get("output"), extra, thr, str(m.get("threshold_source", "unspecified")),
                   engines)


@dataclass(frozen=True)
class EmbedderIdentity:
    """What a gallery records about the embedder that filled it.

    Two embedders are interchangeable only when all four fields agree.
    """

    name: str
    sha256: str
    dim: int
    geometry: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaceEmbedderOptions(TaskOptions):
    """Options of a :class:`FaceEmbedder` (plus ``threads`` and ``engine_options``, keyword-only,
    from :class:`~anyedge.tasks.base.TaskOptions`).

    Attributes:
        flip: also embed the mirrored crop and average the two (twice the engine time; see
            ``benchmarks/recognition_accuracy.py`` for what it buys).
        channels: channel order of the crops you pass, ``"RGB"`` (default) or ``"BGR"``.
    """

    flip: bool = False
    channels: str = "RGB"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels not in ("RGB", "BGR"):
            raise InputError(f"channels must be 'RGB' or 'BGR', got {self.channels!r}")


def embedder_names() -> list[str]:
    """Registry and user-supplied names of face embedders."""
    return [n for n, m in {**REGISTRY, **USER_SUPPLIED}.items() if m.task == TASK]


def _spec_from_bundle(path: Path, trusted_keys: Any = None) -> tuple[ModelSpec, str]:
    """A face-embedding bundle -> its spec and model sha256 (the one place that reads a manifest).

    From the typed manifest: ``model`` (task ``face_embedding``), ``input`` (its size picks the
    crop geometry), ``embedding`` (dimension, threshold); the family's registry entry supplies
    the rest (output name, inputs fed zeros), and an optional ``embedder`` extra overrides it.
    The file hashes were verified by :func:`anyedge.bundle.load_bundle`.
    """
    spec = resolve_spec(path, task=TASK, trusted_keys=trusted_keys)  # verifies the bundle, checks the task
    m = spec.info
    if m is None or m.embedding is None or m.input is None or m.input.size is None:
        raise ModelLoadError(f"bundle {path}: a face_embedding manifest needs input.size and embedding")
    size = tuple(m.input.size)
    geometry = next((g for g in GEOMETRIES.values() if g.size == size), None)
    if geometry is None:
        raise ModelLoadError(f"bundle {path}: no crop geometry is {size[0]}x{size[1]}")
    base = next((i for i in [*REGISTRY.values(), *USER_SUPPLIED.values()]
                 if i.task == TASK and i.family == m.model.family and i.input.size == size), None)
    settings = {**(dict(base.decoder) if base else {}), "engines": None,
                "embedding_dim": m.embedding.dimension, "geometry": geometry.name,
                "threshold": m.embedding.threshold,
                "threshold_source": f"bundle {m.model.name} manifest", **dict(m.extra.get("embedder") or {})}
    return replace(spec, decoder=settings), m.files[m.model_file]


def _spec_from_info(info: ModelInfo, path: Path) -> ModelSpec:
    return ModelSpec(info.name, TASK, info.family, path, info.input, dict(info.decoder))


def _resolve(model: str | os.PathLike[str], family: str | None, trusted_keys: Any = None) -> tuple[ModelSpec, str]:
    from ..bundle import is_bundle

    text = os.fspath(model)
    p = Path(text).expanduser()
    if text in REGISTRY:
        spec = resolve_spec(text, task=TASK)  # verifies the pinned sha256
        return spec, REGISTRY[text].sha256
    if text in USER_SUPPLIED:
        info = USER_SUPPLIED[text]
        found = find_model_file(info)
        if found is None:
            raise ModelNotFoundError(
                f"{text!r} is not shipped with anyedge: put {info.filename} ({info.source.origin}) on "
                f"ANYEDGE_MODEL_PATH, or pass its path with family={info.family!r}")
        log.warning("%s: %s is not sha256-pinned by anyedge; using it as found", text, found)
        return _spec_from_info(info, found), sha256_file(found)
    if p.exists() and is_bundle(p):
        return _spec_from_bundle(p, trusted_keys)
    if p.is_file():
        if family is None:
            fams = sorted({m.family for m in {**REGISTRY, **USER_SUPPLIED}.values() if m.task == TASK})
            raise InputError(f"{p} is a bare model file: pass family=... (one of {', '.join(fams)}); "
                             "anyedge does not guess models from tensor shapes")
        base = next((m for m in [*REGISTRY.values(), *USER_SUPPLIED.values()]
                     if m.task == TASK and m.family == family), None)
        if base is None:
            raise InputError(f"unknown face embedding family {family!r}")
        return replace(_spec_from_info(base, p), name=p.stem), sha256_file(p)
    raise UnknownModelError(f"{text!r} is not a face embedder name, a bundle directory or a model file; "
                            f"known embedders: {', '.join(embedder_names())}")


class FaceEmbedder(Task):
    """Embed aligned face crops with any registered embedder, bundle or model file, on any engine.

    Safe to share across threads: no state is kept between calls (the engine is shared).

    Example:
        >>> with FaceEmbedder.create("mobilefacenet") as emb:
        ...     crops = emb.align(rgb_image, faces.keypoints)
        ...     vectors = emb.embed(crops)            # (n, 128), unit length
    """

    TASK = TASK
    Options = FaceEmbedderOptions
    options: FaceEmbedderOptions

    def _setup(self) -> None:
        spec, engine = self.spec, self.engine
        self.settings = EmbedderSettings.from_mapping(spec.decoder, spec.name)
        if spec.input is None:
            raise ModelLoadError(f"{spec.name}: no input spec known for this embedder")
        self.input_spec: InputSpec = spec.input
        extra = dict(self.settings.extra_inputs or {})
        images = [s for s in engine.inputs if s.name not in extra]
        if len(images) != 1:
            raise ModelLoadError(f"{spec.name}: expected one image input besides {sorted(extra)}, "
                                 f"the model has {[s.name for s in engine.inputs]}")
        self._in = images[0]
        # read-only zeros for the extra inputs the file has (a converted model may have dropped
        # them): shared by every call and thread, never written
        self._extra: dict[str, np.ndarray] = {}
        for s in engine.inputs:
            if s.name in extra:
                z = np.zeros([d if d > 0 else 1 for d in s.shape], np.dtype(s.dtype))
                z.setflags(write=False)
                self._extra[s.name] = z
        w, h = self.geometry.size
        hw = self._in.shape[1:3] if self.input_spec.layout == "NHWC" else self._in.shape[2:4]
        if all(d > 0 for d in hw) and tuple(hw) != (h, w):
            raise ModelLoadError(f"{spec.name}: model input is {hw[1]}x{hw[0]} but crop geometry "
                                 f"{self.geometry.name} is {w}x{h}")
        out_names = [s.name for s in engine.outputs]
        self._out = self.settings.output if self.settings.output in out_names else out_names[0]
        digest = str(spec.extra.get("sha256") or sha256_file(spec.path))
        self.identity = EmbedderIdentity(spec.name, digest, self.settings.embedding_dim, self.geometry.name)

    @classmethod
    def create(  # type: ignore[override]
        cls,
        model: str | os.PathLike[str] = "mobilefacenet",
        *,
        engine: str | None = None,
        options: FaceEmbedderOptions | None = None,
        engine_options: Mapping[str, Any] | None = None,
        family: str | None = None,
        trusted_keys: Any = None,
        **option_overrides: Any,
    ) -> "FaceEmbedder":
        """Load an embedder.

        Args:
            model: embedder name (``mobilefacenet``, ``mobilefacenet-int8w``, ``w600k-mbf``),
                bundle directory or zip, or model file (then ``family`` is required).
            engine: ``"litert"``, ``"onnxruntime"`` or ``"openvino"``; ``None`` takes the
                bundle's engine or the file format's own.
            options: a :class:`FaceEmbedderOptions`; keyword overrides apply on top
                (``flip=True``, ``threads=1``...).
            engine_options: passed to the engine.
            family: ``"mobilefacenet"`` or ``"arcface"`` for a bare model file.
            trusted_keys: public keys a bundle must be signed by (folder of ``*.pub``, ``.pub``
                file or list; default ``$ANYEDGE_TRUSTED_KEYS``); see :mod:`anyedge.signing`.

        Raises:
            UnknownModelError, ModelNotFoundError, IntegrityError, BundleError: model resolution.
            EngineUnavailableError: the engine is not installed, cannot read the file, or was
                not validated for this model.
            ModelLoadError: the file cannot be loaded or does not fit the settings.
            InputError: invalid options, or a model for another task.
        """
        opts = cls.make_options(options, **option_overrides)
        spec, digest = _resolve(model, family, trusted_keys)
        allowed = EmbedderSettings.from_mapping(spec.decoder, spec.name).engines
        if engine is not None and allowed is not None and engine not in allowed:
            raise EngineUnavailableError(
                f"{spec.name} is only validated on {', '.join(allowed)}: its embeddings on {engine} drift from "
                "the reference (see the registry note); use another engine or the float model")
        spec = replace(spec, extra={**spec.extra, "sha256": digest})
        return cls.from_spec(spec, engine, opts, engine_options)

    # -- properties ---------------------------------------------------------------------
    @property
    def geometry(self) -> CropGeometry:
        return self.settings.geometry

    @property
    def dim(self) -> int:
        return self.settings.embedding_dim

    @property
    def threshold(self) -> float:
        """Default cosine threshold for "same person" (see ``settings.threshold_source``)."""
        return self.settings.threshold

    @property
    def input_name(self) -> str:
        """Name of the image input tensor."""
        return self._in.name

    @property
    def extra_inputs(self) -> Mapping[str, np.ndarray]:
        """Inputs fed constant zeros (read-only arrays), e.g. MobileFaceNet's ``target``."""
        return dict(self._extra)

    # -- pipeline -----------------------------------------------------------------------
    def _check_crops(self, aligned: object) -> np.ndarray:
        w, h = self.geometry.size
        if not isinstance(aligned, np.ndarray) or aligned.dtype != np.uint8:
            got = aligned.dtype if isinstance(aligned, np.ndarray) else type(aligned).__name__
            raise InputError(f"aligned crops must be uint8 numpy arrays, got {got}")
        a = aligned[None] if aligned.ndim == 3 else aligned
        if a.ndim != 4 or a.shape[1:] != (h, w, 3):
            raise InputError(f"{self.spec.name} needs aligned crops of {w}x{h} ({self.geometry.name}): "
                             f"(h={h}, w={w}, 3) or (n, {h}, {w}, 3) uint8, got shape {aligned.shape}")
        return a

    def preprocess(self, aligned: np.ndarray, channels: str | None = None) -> np.ndarray:
        """One aligned ``(h, w, 3)`` uint8 crop -> the engine's image input tensor (a new array)."""
        from ..ops.image import to_tensor

        crop = self._check_crops(aligned)
        if len(crop) != 1:
            raise InputError(f"preprocess takes one crop, got {len(crop)}")
        spec = self.input_spec
        x = to_tensor(crop[0], layout=spec.layout, channels=spec.channels,
                      source_channels=channels or self.options.channels, mean=spec.mean, std=spec.std)
        return quantize_input(self._in, x)

    def run_engine(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One engine call on the image tensor (extra inputs fed zeros); outputs by name, float32.

        ``run_engine(tensor)`` takes the output of :meth:`preprocess`; passing every model input
        in order (as :meth:`Task.run_engine` does) also works.
        """
        if len(inputs) != 1:
            return super().run_engine(*inputs)
        outs = self.engine.run({self._in.name: inputs[0], **self._extra})
        return {s.name: dequantize_output(s, a) for s, a in zip(self.engine.outputs, outs)}

    def _raw(self, crop: np.ndarray, channels: str | None) -> np.ndarray:
        v = self.run_engine(self.preprocess(crop, channels))[self._out].reshape(-1).astype(np.float32)
        if v.size != self.dim:
            raise ModelLoadError(f"{self.spec.name}: output {self._out!r} has {v.size} values, "
                                 f"the settings promise {self.dim}")
        return v

    def embed(self, aligned: np.ndarray, *, channels: str | None = None) -> np.ndarray:
        """Embed aligned crops.

        Args:
            aligned: ``(h, w, 3)`` or ``(n, h, w, 3)`` uint8 crops in the embedder's
                :attr:`geometry` (from :meth:`align` or :func:`anyedge.ops.align.align_faces`).
            channels: ``"RGB"`` or ``"BGR"``; defaults to the embedder's option.

        Returns:
            ``(n, dim)`` float32, each row of unit L2 norm.

        Raises:
            InputError: wrong dtype or crop size.
            EngineError: the engine failed.
        """
        crops = self._check_crops(aligned)
        out = np.empty((len(crops), self.dim), np.float32)
        for i, c in enumerate(crops):
            v = self._raw(c, channels)
            if self.options.flip:  # mean of the two unit vectors
                f = self._raw(np.ascontiguousarray(c[:, ::-1]), channels)
                v = v / max(float(np.linalg.norm(v)), 1e-12) + f / max(float(np.linalg.norm(f)), 1e-12)
            n = np.linalg.norm(v)
            out[i] = v / n if n > 0 else v
        return out

    def align(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Aligned crops ``(n, h, w, 3)`` for ``(n, 5|6, 2)`` keypoints in ``image`` pixels."""
        from ..ops.image import check_image

        img, _ = check_image(image, "RGB")
        return align_faces(np.ascontiguousarray(img), keypoints, self.geometry)

    def __repr__(self) -> str:
        w, h = self.geometry.size
        return (f"FaceEmbedder(model={self.spec.name!r}, engine={self.engine.name!r}, crop={w}x{h}, "
                f"dim={self.dim}, flip={self.options.flip})")
