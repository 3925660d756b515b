"""Track events (anyedge.live.events): appeared / named / left in order, numbered, once each."""

from __future__ import annotations

import numpy as np

from anyedge.live.events import EventHub, TrackEvents
from anyedge.live.sinks import track_record
from anyedge.live.tracking import Tracker, TrackerOptions
from anyedge.results import FaceDetections


def dets(boxes: list[list[float]]) -> FaceDetections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return FaceDetections(b, np.full(len(b), 0.9, np.float32), np.zeros((len(b), 5, 2), np.float32))


def run(frames: list[FaceDetections], names: list[list[str | None]] | None = None) -> list[dict]:
    tracker, events, hub, got = Tracker(TrackerOptions(min_hits=3, max_age=2)), TrackEvents(), EventHub(), []
    hub.subscribe(got.append)
    for i, faces in enumerate(frames):
        step = tracker.update(i, faces)
        hub.publish_all(events.frame(i, faces, step.ids, names[i] if names else None,
                                     [0.7] * len(faces) if names else None))
        hub.publish_all(events.left([track_record(t, {"name": None, "score": None, "embeddings": 0})
                                     for t in step.ended]))
    hub.publish_all(events.left([track_record(t) for t in tracker.finish()]))
    return got


def test_a_face_appears_once_when_confirmed_and_leaves_once() -> None:
    frames = [dets([[10 + 2 * i, 10, 70 + 2 * i, 70]]) for i in range(8)] + [dets([])] * 5
    got = run(frames)
    assert [e["type"] for e in got] == ["track/appeared", "track/left"]
    assert got[0]["track"] == got[1]["track"] == 1
    assert got[0]["frame"] == 2  # the third matched frame confirms it
    assert got[1]["first_seen"] == 0 and got[1]["last_seen"] == 7 and got[1]["frames"] == 8
    assert [e["seq"] for e in got] == [1, 2]


def test_names_are_announced_when_they_change_and_events_stay_in_order() -> None:
    frames = [dets([[10, 10, 70, 70], [200, 10, 260, 70]]) for _ in range(6)]
    names = [[None, None], [None, None], [None, None], ["ann", None], ["ann", "bob"], ["ann", "bo"]]
    got = run(frames, names)
    kinds = [(e["type"], e["track"], e.get("name")) for e in got]
    assert kinds == [("track/appeared", 1, None), ("track/appeared", 2, None), ("track/named", 1, "ann"),
                     ("track/named", 2, "bob"), ("track/named", 2, "bo"), ("track/left", 1, None),
                     ("track/left", 2, None)]
    assert [e["seq"] for e in got] == list(range(1, 8))
    assert all(e["score"] == 0.7 for e in got if e["type"] == "track/named")


def test_a_broken_subscriber_is_dropped_and_the_others_keep_receiving() -> None:
    hub, got = EventHub(), []

    def broken(ev: dict) -> None:
        raise RuntimeError("gone")

    hub.subscribe(broken)
    hub.subscribe(got.append)
    ev = TrackEvents()
    hub.publish(ev.status({"fps": 10.0, "processed": 3}))
    hub.publish(ev.status({"fps": 11.0, "processed": 4}))
    assert [e["processed"] for e in got] == [3, 4] and len(hub.errors) == 1
    assert got[0]["type"] == "status" and got[0]["tracks"] == []
