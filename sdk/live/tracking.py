"""Tracking: a stable id per face across frames (IoU association with constant-velocity prediction).

    tracker = Tracker(TrackerOptions(min_hits=3, max_age=30))
    for index, frame in enumerate(frames):
        step = tracker.update(index, detector.detect(frame))
        step.ids        # (n,) public track id per face, -1 while the face's track is tentative
        step.ended      # tracks that died at this frame (their first_seen, last_seen, hits)
    tracker.finish()    # the tracks still alive at the end of the stream

In the spirit of SORT and ByteTrack, in pure numpy:

* **Prediction.** Each track keeps its last box as centre, width and height, and a velocity per
  frame number smoothed over its matches; at frame ``t`` it is expected at
  ``box + velocity * (t - last_seen)`` (its size kept within half and twice the last). Frame numbers are capture numbers, so frames the live loop
  dropped stretch the prediction rather than confuse it.
* **Association.** Detections are matched to the predicted boxes greedily, highest IoU first,
  a pair needing an IoU of at least ``iou_threshold``. Detections scoring at least
  ``birth_score`` are matched first, against every track; lower-scoring ones (ByteTrack's second
  pass) only extend tracks left unmatched, and never start one. A confirmed track still
  unmatched then takes the nearest unmatched detection whose centre lies within one box side of
  its prediction and whose size is within a factor 2 (a face coming out from behind something
  is first seen as a part, which spoils the motion estimate).
* **Birth.** A detection that matches no track and scores at least ``birth_score`` starts a
  *tentative* track. It is *confirmed* after ``min_hits`` matched frames in a row (the frame it
  was born in counts); only then does it get its public id (1, 2, 3... in order of
  confirmation). A tentative track that misses one frame is dropped without an id: one-frame
  false positives never show up as tracks.
* **Death.** A confirmed track survives unseen while ``t - last_seen <= max_age`` (frame
  numbers), then ends; a face that comes back within that time, near where its motion
  predicted, keeps its id. An ended track is reported once, in :attr:`TrackStep.ended`.

A :class:`Tracker` is state for one stream; use one per source, from one thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..ops.nms import iou_matrix
from ..results import FaceDetections

__all__ = ["TrackerOptions", "Track", "TrackStep", "Tracker", "DEFAULT_MIN_HITS", "DEFAULT_MAX_AGE"]

DEFAULT_MIN_HITS = 3
DEFAULT_MAX_AGE = 30


@dataclass(frozen=True)
class TrackerOptions:
    """How tracks are born, matched and ended.

    Attributes:
        min_hits: matched frames in a row before a track is confirmed and gets its id (>= 1).
        max_age: frame numbers a confirmed track survives without a match (>= 0).
        iou_threshold: the least IoU between a predicted box and a detection to match them.
        birth_score: detections below it only extend existing tracks (0: every detection may
            start one).
        smoothing: weight of the newest velocity measurement, in (0, 1].
    """

    min_hits: int = DEFAULT_MIN_HITS
    max_age: int = DEFAULT_MAX_AGE
    iou_threshold: float = 0.3
    birth_score: float = 0.0
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.min_hits, int) or self.min_hits < 1:
            raise InputError(f"min_hits: expected an integer >= 1, got {self.min_hits!r}")
        if not isinstance(self.max_age, int) or self.max_age < 0:
            raise InputError(f"max_age: expected an integer >= 0, got {self.max_age!r}")
        if not 0.0 < float(self.iou_threshold) <= 1.0:
            raise InputError(f"iou_threshold: expected a number in (0, 1], got {self.iou_threshold!r}")
        if not 0.0 <= float(self.birth_score) <= 1.0:
            raise InputError(f"birth_score: expected a number in [0, 1], got {self.birth_score!r}")
        if not 0.0 < float(self.smoothing) <= 1.0:
            raise InputError(f"smoothing: expected a number in (0, 1], got {self.smoothing!r}")


def _cxcywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def _xyxy(s: np.ndarray) -> np.ndarray:
    s = s.reshape(-1, 4)
    w, h = np.maximum(s[:, 2], 1e-3), np.maximum(s[:, 3], 1e-3)
    return np.stack([s[:, 0] - w / 2, s[:, 1] - h / 2, s[:, 0] + w / 2, s[:, 1] + h / 2], 1).astype(np.float32)


@dataclass
class Track:
    """One face's track.

    Attributes:
        key: internal number, unique per tracker (tentative tracks have one too).
        id: public id once confirmed, else ``None``.
        first_seen: frame number of its first detection.
        last_seen: frame number of its latest matched detection.
        hits: matched frames.
        state: ``(4,)`` centre x, centre y, width, height at ``last_seen``.
        velocity: ``(4,)`` change of ``state`` per frame number.
        data: room for what later stages keep per track (names, embeddings).
    """

    key: int
    id: int | None
    first_seen: int
    last_seen: int
    hits: int
    state: np.ndarray
    velocity: np.ndarray
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def confirmed(self) -> bool:
        return self.id is not None

    def predict(self, index: int) -> np.ndarray:
        """The ``(4,)`` xyxy box expected at frame ``index`` (its size kept within half and twice
        the last one: a shrinking partial view must not extrapolate to nothing)."""
        s = self.state + self.velocity * (index - self.last_seen)
        s[2:] = np.clip(s[2:], 0.5 * self.state[2:], 2.0 * self.state[2:])
        return _xyxy(s)[0]


@dataclass(frozen=True)
class TrackStep:
    """What one :meth:`Tracker.update` did.

    Attributes:
        ids: ``(n,)`` int64 public id per detection, ``-1`` when its track is tentative or it
            matched none.
        keys: ``(n,)`` int64 internal track key per detection, ``-1`` when it matched none (a
            low-score detection that extended nothing).
        ended: confirmed tracks that ended at this frame.
    """

    ids: np.ndarray
    keys: np.ndarray
    ended: tuple[Track, ...]


class Tracker:
    """Track ids for faces, one :meth:`update` per processed frame (see the module doc)."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []
        self._next_key = 0
        self._next_id = 1
        self._last_index: int | None = None

    @property
    def confirmed_count(self) -> int:
        """How many public ids were given out so far."""
        return self._next_id - 1

    def track(self, key: int) -> Track | None:
        """The live track with internal ``key``."""
        for t in self.tracks:
            if t.key == key:
                return t
        return None

    def _match(self, tracks: list[Track], boxes: np.ndarray, dets: np.ndarray, index: int) -> list[tuple[int, int]]:
        if not tracks or not len(dets):
            return []
        pred = np.stack([t.predict(index) for t in tracks])
        iou = iou_matrix(pred, boxes[dets])
        pairs = []
        while True:
            ti, di = np.unravel_index(int(np.argmax(iou)), iou.shape)
            if iou[ti, di] < self.options.iou_threshold:
                break
            pairs.append((int(ti), int(dets[di])))
            iou[ti, :] = -1.0
            iou[:, di] = -1.0
        return pairs

    def _rescue(self, tracks: list[Track], boxes: np.ndarray, dets: np.ndarray, index: int) -> list[tuple[Track, int]]:
        """Confirmed tracks that no detection overlapped enough: the nearest unmatched detection whose
        centre lies within one box side of the prediction and whose size is within a factor 2."""
        if not tracks or not len(dets):
            return []
        pred = _cxcywh(np.stack([t.predict(index) for t in tracks]))
        z = _cxcywh(boxes[dets])
        side = np.maximum(pred[:, 2], pred[:, 3])[:, None]
        dist = np.linalg.norm(pred[:, None, :2] - z[None, :, :2], axis=2) / side
        ratio = np.sqrt(z[None, :, 2] * z[None, :, 3] / np.maximum(pred[:, None, 2] * pred[:, None, 3], 1e-6))
        dist[(ratio < 0.5) | (ratio > 2.0)] = np.inf
        out = []
        while dist.size and np.isfinite(dist).any() and dist.min() <= 1.0:
            ti, di = np.unravel_index(int(np.argmin(dist)), dist.shape)
            out.append((tracks[int(ti)], int(dets[di])))
            dist[ti, :] = np.inf
            dist[:, di] = np.inf
        return out

    def update(self, index: int, detections: FaceDetections) -> TrackStep:
        """Match the detections of frame ``index`` to the tracks.

        Args:
            index: the frame's number; it must grow from call to call (gaps are dropped frames).
            detections: the frame's faces.

        Returns:
            The per-detection ids and keys, and the tracks that ended.

        Raises:
            InputError: a frame number that does not grow.
        """
        if self._last_index is not None and index <= self._last_index:
            raise InputError(f"tracker: frame numbers must grow, got {index} after {self._last_index}")
        self._last_index = index
        o = self.options
        n = len(detections)
        boxes = np.asarray(detections.boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(detections.scores, np.float32).reshape(-1)
        high = np.flatnonzero(scores >= o.birth_score)
        low = np.flatnonzero(scores < o.birth_score)
        # confirmed tracks pick first, so a tentative track never steals a known face
        order = sorted(self.tracks, key=lambda t: (not t.confirmed, -t.hits))
        pairs = self._match(order, boxes, high, index)
        taken = {ti for ti, _ in pairs}
        rest = [t for i, t in enumerate(order) if i not in taken]
        matched = [(order[ti], di) for ti, di in pairs] + [(rest[ti], di) for ti, di in
                                                            self._match(rest, boxes, low, index)]
        matched += self._rescue([t for t in rest if t.confirmed and t.key not in {m.key for m, _ in matched}],
                                boxes, np.array([d for d in high if int(d) not in {di for _, di in matched}],
                                                np.int64), index)
        keys = np.full(n, -1, np.int64)
        ids = np.full(n, -1, np.int64)
        seen: set[int] = set()
        z = _cxcywh(boxes)
        for t, di in matched:
            dt = index - t.last_seen
            v = (z[di] - t.state) / dt
            t.velocity = v if t.hits == 1 else o.smoothing * v + (1.0 - o.smoothing) * t.velocity
            t.state, t.last_seen, t.hits = z[di], index, t.hits + 1
            if t.id is None and t.hits >= o.min_hits:
                t.id, self._next_id = self._next_id, self._next_id + 1
            keys[di] = t.key
            seen.add(t.key)
        ended: list[Track] = []
        alive: list[Track] = []
        for t in self.tracks:
            if t.key in seen:
                alive.append(t)
            elif t.confirmed and index - t.last_seen <= o.max_age:
                alive.append(t)
            elif t.confirmed:
                ended.append(t)
            # a tentative track that missed a frame is dropped silently
        used = set(int(d) for _, d in matched)
        for di in high:
            if int(di) in used:
                continue
            t = Track(self._next_key, None, index, index, 1, z[di], np.zeros(4), {})
            self._next_key += 1
            if o.min_hits <= 1:
                t.id, self._next_id = self._next_id, self._next_id + 1
            alive.append(t)
            keys[di] = t.key
        self.tracks = alive
        by_key = {t.key: t for t in alive}
        for i, k in enumerate(keys):
            if k >= 0 and by_key[int(k)].id is not None:
                ids[i] = by_key[int(k)].id
        return TrackStep(ids, keys, tuple(ended))

    def finish(self) -> tuple[Track, ...]:
        """End the stream: the confirmed tracks still alive, which the tracker forgets."""
        done = tuple(t for t in self.tracks if t.confirmed)
        self.tracks = []
        return done
