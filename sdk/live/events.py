"""Events: what a live run tells the outside world about tracks, as small JSON-ready dicts.

    events = TrackEvents()
    hub = EventHub()
    hub.subscribe(print)                       # a browser view, an MQTT client...
    for index, frame in ...:
        step = tracker.update(index, faces)
        for ev in events.frame(index, faces, step, names):
            hub.publish(ev)
        for ev in events.left(step.ended, identities):
            hub.publish(ev)

Every event is a dict with ``type``, ``seq`` (1, 2, 3... per run, so a consumer can see order
and gaps), ``time`` (Unix seconds) and ``track``. The types:

``track/appeared``
    a track was confirmed (it got its public id): ``frame``, ``box`` (x1, y1, x2, y2 in source
    pixels), ``score`` (detection score).
``track/named``
    a track's name changed from what was last announced (``null`` to a name, or to another
    name after more votes): ``frame``, ``name``, ``score`` (the mean gallery cosine of its
    winning votes).
``track/left``
    a confirmed track ended (unseen for longer than the tracker's ``max_age``, or the run
    ended): ``first_seen``, ``last_seen``, ``frames``, ``name``, ``score``, ``embeddings`` as the
    run's ``track`` JSON line.
``status``
    about once a second (:meth:`TrackEvents.status`): the loop's stats (``fps``,
    ``latency_ms``, ``dropped``, ``processed``) and ``tracks``: the ids in view.

Events of one track always come in the order appeared, named (zero or more), left. The
producer (the run's main thread) numbers them; :class:`EventHub` hands each to every
subscriber in that order. Subscribers must not block: they queue and return.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["TrackEvents", "EventHub", "EVENT_TYPES"]

EVENT_TYPES = ("track/appeared", "track/named", "track/left", "status")


class TrackEvents:
    """Turns the tracker's steps (and a gallery's names) into numbered events (one per stream)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.seq = 0
        self._clock = clock
        self._announced: dict[int, str | None] = {}  # public id -> name last announced

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        return {"type": kind, "seq": self.seq, "time": round(self._clock(), 3), **fields}

    def frame(self, index: int, faces: Any, ids: np.ndarray, names: Iterable[str | None] | None = None,
              scores: Iterable[float] | None = None) -> list[dict[str, Any]]:
        """Events of one processed frame: tracks that got their id, names that changed.

        Args:
            index: the frame's capture number.
            faces: the frame's detections (``boxes``, ``scores``).
            ids: public track id per face, ``-1`` for none (:attr:`TrackStep.ids`).
            names: per face the track's name (``None`` while unnamed); ``None``: no gallery.
            scores: per face the name's score (NaN or ``None`` for none).
        """
        out: list[dict[str, Any]] = []
        ids = np.asarray(ids, np.int64).reshape(-1)
        names_l = list(names) if names is not None else [None] * len(ids)
        scores_l = list(scores) if scores is not None else [None] * len(ids)
        for i, tid in enumerate(ids.tolist()):
            if tid < 0:
                continue
            if tid not in self._announced:
                self._announced[tid] = None
                box = [round(float(v), 1) for v in faces.boxes[i]]
                out.append(self._event("track/appeared", track=tid, frame=index, box=box,
                                       score=round(float(faces.scores[i]), 4)))
            name = names_l[i]
            if name is not None and name != self._announced[tid]:
                self._announced[tid] = name
                s = scores_l[i]
                score = None if s is None or not np.isfinite(s) else round(float(s), 4)
                out.append(self._event("track/named", track=tid, frame=index, name=name, score=score))
        return out

    def left(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """``track/left`` events from the run's ``track`` records of tracks that ended."""
        out = []
        for rec in records:
            self._announced.pop(rec["track"], None)
            fields = {k: v for k, v in rec.items() if k != "type"}
            out.append(self._event("track/left", **fields))
        return out

    def status(self, stats: dict[str, Any]) -> dict[str, Any]:
        """A ``status`` event from the loop's per-second stats dict."""
        fields = {k: stats[k] for k in ("fps", "latency_ms", "latency_max_ms", "dropped", "processed") if k in stats}
        return self._event("status", tracks=sorted(self._announced), **fields)

    @property
    def in_view(self) -> list[int]:
        """Public ids of the confirmed tracks alive now."""
        return sorted(self._announced)


class EventHub:
    """Fan-out of events to subscribers, in order, from the producing thread.

    A subscriber that raises is dropped (and the error kept in :attr:`errors`): one broken
    consumer never stops the run or the others.
    """

    def __init__(self) -> None:
        self._subs: list[Callable[[dict[str, Any]], None]] = []
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.published = 0

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            self._subs.append(fn)

    def unsubscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            if fn in self._subs:
                self._subs.remove(fn)

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subs)
        self.published += 1
        for fn in subs:
            try:
                fn(event)
            except Exception as e:  # noqa: BLE001 - a consumer's failure is its own
                self.errors.append(e)
                self.unsubscribe(fn)

    def publish_all(self, events: Iterable[dict[str, Any]]) -> None:
        for ev in events:
            self.publish(ev)

    @property
    def active(self) -> bool:
        """Whether anyone listens (events need not be made otherwise)."""
        with self._lock:
            return bool(self._subs)
