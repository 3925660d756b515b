"""FaceDetector: image in, faces (boxes, scores, keypoints in source pixels) out, on any engine."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..engines.base import quantize_input
from ..errors import InputError
from ..ops.image import check_image, letterbox_tensor
from ..ops.nms import nms, weighted_nms
from ..registry import InputSpec
from ..results import FaceDetections
from .base import Task, TaskOptions

__all__ = ["FaceDetectorOptions", "FaceDetector"]

TASK = "face_detection"


@dataclass(frozen=True)
class FaceDetectorOptions(TaskOptions):
    """Options of a :class:`FaceDetector` (plus ``threads`` and ``engine_options``, keyword-only,
    from :class:`~anyedge.tasks.base.TaskOptions`).

    Attributes:
        score_threshold: minimum confidence; ``None`` takes the model's default.
        iou_threshold: suppression IoU; ``None`` takes the model's default.
        max_faces: keep at most this many faces (best first); ``None`` keeps all.
        channels: channel order of the images you pass, ``"RGB"`` (default) or ``"BGR"``
            (OpenCV ``imread``/``VideoCapture`` frames).
        input_size: ``(width, height)`` network input for models with dynamic input shapes.
        fast_resize: bilinear instead of anti-aliased (area) downscaling; much cheaper when a
            large frame feeds a small network (BlazeFace), slightly different faces.
    """

    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_faces: int | None = None
    channels: str = "RGB"
    input_size: tuple[int, int] | None = None
    fast_resize: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("score_threshold", "iou_threshold"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= float(v) <= 1.0):
                raise InputError(f"{name} must be in [0, 1], got {v}")
        if self.max_faces is not None and int(self.max_faces) < 1:
            raise InputError(f"max_faces must be >= 1, got {self.max_faces}")
        if self.channels not in ("RGB", "BGR"):
            raise InputError(f"channels must be 'RGB' or 'BGR', got {self.channels!r}")


class FaceDetector(Task):
    """Detect faces with any registered detector, bundle or model file, on any engine.

    Safe to share across threads (results identical to serial calls); see the README, "Threads".

    Example:
        >>> with FaceDetector.create("blazeface-short") as det:
        ...     faces = det.detect(rgb_image)
    """

    TASK = TASK
    Options = FaceDetectorOptions
    options: FaceDetectorOptions

    def _setup(self) -> None:
        from ..decoders import get_decoder

        spec, engine = self.spec, self.engine
        if spec.input is None:
            raise InputError(f"{spec.name}: no input spec known for this model")
        self._decoder = get_decoder(spec.family)
        if len(engine.inputs) != 1:
            raise InputError(f"{spec.name}: a face detector needs one input, the model has {len(engine.inputs)}")
        self._in = engine.inputs[0]
        self.input_size = self._resolve_input_size()
        cfg, opts = spec.decoder, self.options  # both frozen: the thresholds are settled once
        self._thresholds = (
            float(opts.score_threshold if opts.score_threshold is not None else cfg.get("score_threshold", 0.5)),
            float(opts.iou_threshold if opts.iou_threshold is not None else cfg.get("iou_threshold", 0.4)),
            int(cfg.get("keypoints", 0)),
        )
        self._empty = FaceDetections.empty(self._thresholds[2])
        # the family's compiled whole post-processing, where it has one (same faces, one call)
        prepare = self._decoder.prepare
        self._faces = prepare(self.input_size, cfg, self._thresholds[0], self._thresholds[1],
                              opts.max_faces) if prepare is not None else None
        # Per-thread state: the reused letterbox canvas and input tensor (large per-frame
        # allocations cost page faults on every frame) and the last call's timing. A detector
        # shared by threads gives every thread its own buffers, so results never mix.
        self._local = threading.local()

    @property
    def last_timing(self) -> dict[str, float]:
        """Seconds spent in ``preprocess``/``engine``/``decode``/``total`` by this thread's last
        :meth:`detect` (empty before the first)."""
        return getattr(self._local, "timing", {})

    @classmethod
    def create(  # type: ignore[override]
        cls,
        model: str | os.PathLike[str],
        *,
        engine: str | None = None,
        options: FaceDetectorOptions | None = None,
        family: str | None = None,
        input_spec: InputSpec | None = None,
        decoder: Mapping[str, Any] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        trusted_keys: Any = None,
        **option_overrides: Any,
    ) -> "FaceDetector":
        """Load a detector.

        Args:
            model: registry name (``anyedge models`` lists them), bundle directory or .zip,
                or a model file path (then ``family`` is required).
            engine: ``"litert"``, ``"onnxruntime"`` or ``"openvino"``; ``None`` takes the
                bundle's engine or the file format's own engine.
            options: a :class:`FaceDetectorOptions`; keyword overrides are applied on top
                (``score_threshold=0.6``, ``channels="BGR"``...).
            family: decoder family for a bare model file.
            input_spec: preprocessing that differs from the model's (bare files mostly).
            decoder: decoder settings merged over the model's own, the same way for a
                registry name, a bundle and a bare file (e.g. ``{"score_threshold": 0.3}``).
            engine_options: passed to the engine (``device="NPU"``, ``providers=[...]``).
            trusted_keys: public keys a bundle must be signed by (folder of ``*.pub``, ``.pub``
                file or list; default ``$ANYEDGE_TRUSTED_KEYS``); see :mod:`anyedge.signing`.

        Raises:
            UnknownModelError, ModelNotFoundError, IntegrityError, BundleError: model resolution.
            EngineUnavailableError: engine not installed or cannot read the file.
            ModelLoadError: the file cannot be loaded.
            InputError: invalid options.
        """
        return super().create(model, engine=engine, options=options, engine_options=engine_options,
                              family=family, input_spec=input_spec, decoder=decoder, trusted_keys=trusted_keys,
                              **option_overrides)

    # -- pipeline ---------------------------------------------------------------------------
    @property
    def input_name(self) -> str:
        """Name of the engine input :meth:`preprocess` fills (converters feed calibration by it)."""
        return self._in.name

    def _resolve_input_size(self) -> tuple[int, int]:
        shape = self._in.shape
        spec = self.spec.input
        assert spec is not None
        hw = shape[1:3] if spec.layout == "NHWC" else shape[2:4]
        if all(d > 0 for d in hw):
            fixed = (int(hw[1]), int(hw[0]))
            if self.options.input_size and tuple(self.options.input_size) != fixed:
                raise InputError(f"{self.spec.name} has a static input of {fixed[0]}x{fixed[1]}; "
                                 f"input_size={self.options.input_size} is not possible")
            return fixed
        size = self.options.input_size or spec.size
        if not size:
            raise InputError(f"{self.spec.name} has a dynamic input: pass input_size=(width, height)")
        w, h = int(size[0]), int(size[1])
        if w % 32 or h % 32 or w <= 0 or h <= 0:
            raise InputError(f"input_size must be positive multiples of 32, got {w}x{h}")
        return (w, h)

    def preprocess(self, image: np.ndarray, channels: str | None = None) -> tuple[np.ndarray, Any]:
        """Validate, letterbox and normalise one image into the engine's input tensor.

        The returned array is the calling thread's input buffer, overwritten by that thread's
        next call: copy it to keep it.
        """
        spec = self.spec.input
        assert spec is not None
        img, order = check_image(image, channels or self.options.channels)
        buf = self._local
        # one fused pass straight into this thread's input tensor where the resize allows it
        tensor, lb, canvas = letterbox_tensor(
            img, self.input_size, spec.resize, layout=spec.layout, channels=spec.channels, source_channels=order,
            mean=spec.mean, std=spec.std, out=getattr(buf, "tensor", None), canvas=getattr(buf, "canvas", None),
            fast=self.options.fast_resize)
        buf.tensor = tensor
        if canvas is not None:
            buf.canvas = canvas
        return quantize_input(self._in, tensor), lb

    def decode(self, outputs: Mapping[str, np.ndarray], letterbox: Any) -> FaceDetections:
        """Raw outputs -> thresholded, suppressed faces in source pixels."""
        if self._faces is not None:
            got = self._faces(outputs, letterbox)
            return self._empty if got is None else FaceDetections._made(*got)
        cfg = self.spec.decoder
        thr, iou, k = self._thresholds
        boxes, scores, kps = self._decoder.decode(outputs, self.input_size, cfg, thr)
        if len(scores) == 0:
            return self._empty  # shared by every faceless frame: its arrays hold no values to change
        if self._decoder.suppression == "weighted":
            boxes, scores, kps = weighted_nms(boxes, scores, kps, iou, self.options.max_faces)
        else:
            keep = nms(boxes, scores, iou, self.options.max_faces)
            boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        src_boxes = letterbox.boxes_to_source(boxes)
        src_kps = letterbox.to_source(kps) if kps.size else kps.reshape(len(boxes), k, 2)
        ok = (src_boxes[:, 2] > src_boxes[:, 0]) & (src_boxes[:, 3] > src_boxes[:, 1])
        return FaceDetections(src_boxes[ok], np.clip(scores[ok], 0.0, 1.0), src_kps[ok])

    def detect(self, image: np.ndarray, *, channels: str | None = None) -> FaceDetections:
        """Find faces in one image.

        Args:
            image: ``uint8`` array ``(H, W, 3)`` (also grey ``(H, W)`` or RGBA ``(H, W, 4)``).
            channels: ``"RGB"`` or ``"BGR"``; defaults to the detector's option.

        Returns:
            Faces, best score first, boxes and keypoints in ``image`` pixels.

        Raises:
            InputError: the image is not a valid uint8 image.
            EngineError: the engine failed.
        """
        t0 = time.perf_counter()
        x, lb = self.preprocess(image, channels)
        t1 = time.perf_counter()
        outs = self.run_engine(x)
        t2 = time.perf_counter()
        faces = self.decode(outs, lb)
        t3 = time.perf_counter()
        self._local.timing = {"preprocess": t1 - t0, "engine": t2 - t1, "decode": t3 - t2, "total": t3 - t0}
        return faces

    def __repr__(self) -> str:
        return (f"FaceDetector(model={self.spec.name!r}, family={self.spec.family!r}, "
                f"engine={self.engine.name!r}, input={self.input_size[0]}x{self.input_size[1]})")
