"""Activity classification from wearable IMU windows (accelerometer + gyroscope).

    with ActivityClassifier.create("bnn-racketsports") as clf:
        r = clf.classify(window)            # window: (30, 6) float samples x channels
        for r in clf.stream(samples):       # samples: (n, 6) array or an iterator of rows
            print(r.start, r.label, r.score)

The shipped models (``bnn-racketsports``, ``bnn-basicmotions``) are binary networks that run
on the ``bnn`` engine; any bundle with ``task: activity_classification`` works the same way.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..engines import Engine, open_engine
from ..errors import InputError, ModelLoadError
from ..har.data import sliding_windows
from ._loading import ModelSpec, resolve_spec

__all__ = ["ActivityResult", "ActivityClassifierOptions", "ActivityClassifier"]

TASK = "activity_classification"


@dataclass(frozen=True)
class ActivityResult:
    """One classified window.

    Attributes:
        label: the most likely class name (``""`` for :meth:`empty`).
        class_index: its index into the model's labels (``-1`` for :meth:`empty`).
        score: its confidence in ``[0, 1]`` (softmax of the model's scores).
        scores: ``(classes,)`` float32 confidences of every class, summing to 1.
        raw: ``(classes,)`` int32 integer scores straight from the network.
        start: index of the window's first sample in the stream (0 for :meth:`ActivityClassifier.classify`).
    """

    label: str
    class_index: int
    score: float
    scores: np.ndarray
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    start: int = 0

    def __post_init__(self) -> None:
        if self.scores.ndim != 1 or self.scores.dtype != np.float32:
            raise InputError(f"scores must be (classes,) float32, got {self.scores.shape} {self.scores.dtype}")
        if self.raw.shape != self.scores.shape and self.raw.size:
            raise InputError(f"raw must match scores' shape {self.scores.shape}, got {self.raw.shape}")
        if not -1 <= self.class_index < max(len(self.scores), 0):
            raise InputError(f"class_index {self.class_index} is outside 0..{len(self.scores) - 1}")
        if not 0.0 <= self.score <= 1.0:
            raise InputError(f"score must be in [0, 1], got {self.score}")

    @classmethod
    def empty(cls) -> "ActivityResult":
        """A result with no class (no window was classified)."""
        return cls("", -1, 0.0, np.zeros(0, dtype=np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"label": self.label, "class_index": self.class_index, "score": float(self.score),
                "start": self.start, "scores": [float(v) for v in self.scores]}


@dataclass(frozen=True)
class ActivityClassifierOptions:
    """How :class:`ActivityClassifier` runs.

    Attributes:
        hop: samples between window starts in :meth:`ActivityClassifier.stream`; ``None``
            means half a window.
        engine_options: passed to the engine (e.g. ``{"kernels": "reference"}`` for ``bnn``).
    """

    hop: int | None = None
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hop is not None and (isinstance(self.hop, bool) or not isinstance(self.hop, int) or self.hop < 1):
            raise InputError(f"hop must be a positive integer or None, got {self.hop!r}")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class ActivityClassifier:
    """Classifies fixed-length IMU windows; build it with :meth:`create`."""

    def __init__(self, spec: ModelSpec, engine: Engine, options: ActivityClassifierOptions) -> None:
        m = spec.manifest or {}
        win = m.get("window") or {}
        try:
            self.window = int(win["length"])
            self.channels = int(win["channels"])
            self.labels: tuple[str, ...] = tuple(str(s) for s in m["labels"])
            self.score_scale = float((m.get("output") or {}).get("score_scale", 1.0))
        except (KeyError, TypeError, ValueError) as e:
            engine.close()
            raise ModelLoadError(f"{spec.name}: the manifest lacks window length/channels or labels ({e})") from None
        spec_in = engine.inputs[0].shape
        n_out = engine.outputs[0].shape[-1]
        if tuple(spec_in[1:]) != (self.window, self.channels) or n_out != len(self.labels):
            engine.close()
            raise ModelLoadError(
                f"{spec.name}: manifest says ({self.window}, {self.channels}) windows and {len(self.labels)} labels, "
                f"the model file takes {tuple(spec_in[1:])} and gives {n_out} scores")
        self.spec = spec
        self.engine = engine
        self.options = options
        self._input = engine.inputs[0].name

    @classmethod
    def create(
        cls,
        model: str | os.PathLike[str],
        *,
        engine: str | None = None,
        options: ActivityClassifierOptions | None = None,
    ) -> "ActivityClassifier":
        """Load a model.

        Args:
            model: a model name (``"bnn-racketsports"``, ``"bnn-basicmotions"``) or a bundle path.
            engine: engine name; ``None`` uses the one the bundle was built for.
            options: run options.

        Raises:
            UnknownModelError: ``model`` is not a known name or bundle.
            InputError: the bundle holds a model for another task.
            BundleError, IntegrityError: the bundle is malformed or was modified.
            ModelLoadError: the model file is corrupt or disagrees with its manifest.
            EngineUnavailableError: the engine is not installed.
        """
        options = options or ActivityClassifierOptions()
        spec = resolve_spec(model, task=TASK)
        eng = open_engine(spec.path, engine or spec.engine, **dict(options.engine_options))
        return cls(spec, eng, options)

    def __enter__(self) -> "ActivityClassifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()

    # -- steps -------------------------------------------------------------------------------

    def _preprocess(self, windows: Any) -> np.ndarray:
        """Validate ``(window, channels)`` or ``(n, window, channels)`` input; returns a float32 batch."""
        try:
            x = np.asarray(windows, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"expected a ({self.window}, {self.channels}) array of sensor samples, "
                             f"got {type(windows).__name__}") from None
        if x.ndim == 2:
            x = x[None]
        want = f"({self.window}, {self.channels}) (samples x channels)"
        if x.ndim != 3:
            raise InputError(f"expected a {want} window or a batch of them, got shape {x.shape}")
        if x.shape[0] == 0:
            raise InputError(f"expected at least one {want} window, got an empty batch")
        if x.shape[1:] == (self.channels, self.window) and self.channels != self.window:
            raise InputError(f"expected {want} windows, got {x.shape[1:]}: transpose to samples x channels")
        if x.shape[1] != self.window:
            raise InputError(f"expected windows of {self.window} samples, got {x.shape[1]} (shape {x.shape[1:]})")
        if x.shape[2] != self.channels:
            raise InputError(f"expected {self.channels} channels per sample, got {x.shape[2]} (shape {x.shape[1:]})")
        if not math.isfinite(float(x.sum())):  # one reduction; the element-wise scan only when it fails
            finite = np.isfinite(x)
            if not finite.all():
                n, t, c = np.argwhere(~finite)[0].tolist()
                raise InputError(f"window {n} holds NaN or infinite values (first at sample {t}, channel {c})")
        return np.ascontiguousarray(x)

    def _decode(self, raw: np.ndarray, starts: Sequence[int]) -> list[ActivityResult]:
        probs = _softmax(raw.astype(np.float64) * self.score_scale)
        best = np.argmax(raw, axis=1).tolist()
        raw32 = raw.astype(np.int32)
        out = []
        for n, (i, s) in enumerate(zip(best, starts)):
            p = probs[n]
            out.append(ActivityResult(self.labels[i], i, float(min(max(p[i], 0.0), 1.0)), p, raw32[n], int(s)))
        return out

    def _decode_one(self, raw: np.ndarray, start: int) -> ActivityResult:
        """:meth:`_decode` for one window in plain Python floats: a handful of classes costs
        less this way than a dozen numpy calls (the same float64 softmax, then float32)."""
        vals = raw.tolist()
        z = [float(v) * self.score_scale for v in vals]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        total = 0.0
        for v in e:
            total += v
        p = np.array([v / total for v in e], dtype=np.float32)
        i = vals.index(max(vals))  # the first best, as np.argmax
        return ActivityResult(self.labels[i], i, float(min(max(p[i], 0.0), 1.0)), p,
                              np.array(vals, dtype=np.int32), int(start))

    # -- API ---------------------------------------------------------------------------------

    def classify_batch(self, windows: Any) -> list[ActivityResult]:
        """Classify ``(n, window, channels)`` windows at once.

        Raises:
            InputError: wrong shape, wrong window length or channel count, NaN/inf samples.
        """
        x = self._preprocess(windows)
        raw = self.engine.run({self._input: x})[0]
        return self._decode(raw, [0] * len(x))

    def classify(self, window: Any) -> ActivityResult:
        """Classify one ``(window, channels)`` window.

        Raises:
            InputError: wrong shape, wrong window length or channel count, NaN/inf samples.
        """
        try:
            x = np.asarray(window, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"expected a ({self.window}, {self.channels}) array of sensor samples, "
                             f"got {type(window).__name__}") from None
        if x.ndim != 2:
            raise InputError(f"classify takes one ({self.window}, {self.channels}) window (samples x channels), "
                             f"got shape {x.shape}; use classify_batch for a batch")
        raw = self.engine.run({self._input: self._preprocess(x)})[0]
        return self._decode_one(raw[0], 0)

    def stream(self, samples: np.ndarray | Iterable[Iterable[float]], *, hop: int | None = None) -> Iterator[ActivityResult]:
        """Classify a sliding window over a stream of samples.

        Args:
            samples: ``(n, channels)`` array or an iterable of per-sample rows (a live sensor
                generator works: a result is yielded as soon as each window is full).
            hop: samples between windows; defaults to the options' hop, else half a window.

        Yields:
            One :class:`ActivityResult` per full window, with ``start`` set.

        Raises:
            InputError: a sample with the wrong channel count or NaN values, or a bad hop.
        """
        hop = hop or self.options.hop or max(self.window // 2, 1)
        for start, win in sliding_windows(samples, self.window, hop, channels=self.channels):
            raw = self.engine.run({self._input: win[None]})[0]
            yield self._decode_one(raw[0], start)
