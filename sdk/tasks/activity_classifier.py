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
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import InputError, ModelLoadError
from ..har.data import sliding_windows
from ..results import ActivityResult
from .base import Task, TaskOptions

__all__ = ["ActivityResult", "ActivityClassifierOptions", "ActivityClassifier"]

TASK = "activity_classification"


@dataclass(frozen=True)
class ActivityClassifierOptions(TaskOptions):
    """How :class:`ActivityClassifier` runs (plus ``threads`` and ``engine_options``, e.g.
    ``{"kernels": "reference"}`` for ``bnn``, from :class:`~anyedge.tasks.base.TaskOptions`).

    Attributes:
        hop: samples between window starts in :meth:`ActivityClassifier.stream`; ``None``
            means half a window.
    """

    hop: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hop is not None and (isinstance(self.hop, bool) or not isinstance(self.hop, int) or self.hop < 1):
            raise InputError(f"hop must be a positive integer or None, got {self.hop!r}")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class ActivityClassifier(Task):
    """Classifies fixed-length IMU windows; build it with :meth:`create`.

    ``create(model, *, engine=None, options=None, engine_options=None, **overrides)``: ``model``
    is a model name (``"bnn-racketsports"``, ``"bnn-basicmotions"``) or a bundle path; overrides
    are :class:`ActivityClassifierOptions` fields (``hop=10``). It raises UnknownModelError
    (unknown name or bundle), InputError (a bundle for another task), BundleError /
    IntegrityError (malformed or modified bundle), ModelLoadError (corrupt model file or one
    that disagrees with its manifest), EngineUnavailableError (engine not installed).
    Safe to share across threads.
    """

    TASK = TASK
    Options = ActivityClassifierOptions
    options: ActivityClassifierOptions

    def _setup(self) -> None:
        spec, engine = self.spec, self.engine
        m = spec.info
        if m is None or m.window is None or not m.labels:
            raise ModelLoadError(f"{spec.name}: an activity model comes as a bundle whose manifest gives "
                                 "its window length/channels and labels")
        self.window = m.window.length
        self.channels = m.window.channels
        self.labels: tuple[str, ...] = m.labels
        self.score_scale = m.output.score_scale if m.output is not None else 1.0
        spec_in = engine.inputs[0].shape
        n_out = engine.outputs[0].shape[-1]
        if tuple(spec_in[1:]) != (self.window, self.channels) or n_out != len(self.labels):
            raise ModelLoadError(
                f"{spec.name}: manifest says ({self.window}, {self.channels}) windows and {len(self.labels)} labels, "
                f"the model file takes {tuple(spec_in[1:])} and gives {n_out} scores")
        self._input = engine.inputs[0].name

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
