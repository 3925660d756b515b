"""Live streams: a capture thread feeds a tiny queue that drops stale frames, so latency stays flat.

    from anyedge.live import open_source, run_live

    src = open_source("0")                         # camera index, file, URL or "picamera"
    summary = run_live(src, det.detect, on_frame=print)

When inference is slower than the camera, a frame that waits in the queue while a newer one
arrives is dropped (and counted) instead of queued: the detector always works on the newest
frame, and the capture-to-result latency is one inference plus at most one frame interval,
however long the stream runs.

The rooms, one module each:

* :mod:`.sources` - capture: :func:`open_source` (cameras, the Pi camera, files, stream URLs)
  and the plain :func:`frames` generator.
* :mod:`.loop` - scheduling: :class:`DropQueue` and :func:`run_live`, which run any ``process``
  callable on the newest frame and report through ``on_frame`` / ``on_second`` callbacks;
  ``workers=N`` runs N frames at once and still reports them in frame order.
* :mod:`.workers` - :func:`~.workers.open_detectors`: the detectors N workers run on (one per
  worker on LiteRT, one shared on ONNX Runtime and OpenVINO) and their engine threads.
* :mod:`.tracking` - :class:`Tracker`: a stable id per face across frames (called from ``on_frame``).
* :mod:`.events` - :class:`TrackEvents` (track appeared / named / left, status) and the
  :class:`EventHub` that hands them to outputs that subscribe (a web view, MQTT).
* :mod:`.sinks` - outputs: JSON lines, the status line and summary, the annotated video writer.
* :mod:`.mqtt` - :class:`~.mqtt.MqttPublisher`: the events to an MQTT broker (``--mqtt``), an
  :class:`EventHub` subscriber with its own thread and a bounded buffer.
* :mod:`.serve` - :class:`~anyedge.live.serve.LiveView`: the run in a browser (an MJPEG stream,
  ``/status``, ``/events`` and a page), fed by the frame hook and the event hub.
* :mod:`.cli` - ``anyedge run``, which wires a source, the loop and the sinks together.

A new stage lands as a room beside these: something that works on each result (tracking) is
a module called from ``on_frame``; a new output (a web view, MQTT) is a sink fed by
``on_frame`` / ``on_second``; neither changes the loop or the sources.
"""

from __future__ import annotations

from .loop import DropQueue, LiveSummary, run_live
from .sources import FrameSource, frames, open_source
from .tracking import Tracker, TrackerOptions

__all__ = ["FrameSource", "open_source", "frames", "DropQueue", "LiveSummary", "run_live", "Tracker",
           "TrackerOptions"]
