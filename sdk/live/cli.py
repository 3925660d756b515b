"""``anyedge run``: face detection on a live stream, stale frames dropped.

    anyedge run --source 0 --model blazeface-short
    anyedge run --source clip.mp4 --model scrfd-500m --out annotated.mp4 --json
    anyedge run --source 0 --gallery people.db --json

Each face carries ``track``: an id stable across frames (:mod:`.tracking`; ``null`` until the
track is confirmed by ``--track-min-hits`` matched frames in a row; with ``--track-low-score``
weaker faces may extend tracks). With ``--gallery`` the
detector is the one the gallery was enrolled with (``--model`` may only repeat it) and each face
carries ``name`` and ``score`` as ``anyedge gallery identify --json``, decided per track
(:class:`~anyedge.recognition.pipeline.TrackLabeller`): the embedder runs when a track is born
and on better views at most every ``--reembed-every`` frames, and the name is a vote over them.
With ``--json`` a ``track`` line reports each confirmed track when it ends (and at the end of
the run): ``first_seen``, ``last_seen``, ``frames``, ``name``, ``score``, ``embeddings``.

It wires the rooms together: a source (:mod:`.sources`), the loop (:mod:`.loop`) running a
:class:`~anyedge.tasks.face_detector.FaceDetector`, and the sinks (:mod:`.sinks`): JSON lines or
a status line, and an annotated video; with ``--serve``, the live view in a browser (:mod:`.serve`). :func:`add_parsers` adds the command to the main parser.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ..cli_args import (add_device_args, device_request, int_at_least, listen_address, positive_float, positive_int,
                        size_arg, token_arg, unit_float)
from ..errors import InputError
from ..results import FaceDetections
from ..signing.cli import add_trust_argument
from .events import EventHub, TrackEvents
from .loop import run_live
from .mqtt import add_mqtt_arguments, mqtt_from_args
from .sinks import AtomicVideoWriter, frame_record, print_json, print_stats, print_summary, track_record
from .sources import open_source
from .tracking import DEFAULT_MAX_AGE, DEFAULT_MIN_HITS, Tracker, TrackerOptions, TrackStep

__all__ = ["add_parsers"]


_DEFAULT_MODEL = "blazeface-short"
DEFAULT_REEMBED_EVERY = 10  # the same as anyedge.recognition.pipeline's (not imported: it is heavy)


def _detector_for(args: argparse.Namespace) -> Any:
    """--model, else (with --gallery) the gallery's recorded detector or recognition's default."""
    if not args.gallery:
        return args.model or _DEFAULT_MODEL
    from ..recognition.pipeline import gallery_models

    if not Path(args.gallery).exists():
        raise InputError(f"--gallery {args.gallery}: no such gallery")
    return gallery_models(args.gallery, args.model, detector_option="--model", embedder_option=None)[0]


def _open_view(args: argparse.Namespace, source: str, model: Any) -> Any:
    """``--serve``: the live view, listening; its URL (and a warning when it is open to others) on stderr."""
    from ..paths import serve_token
    from .serve import LiveView, is_loopback

    token = args.serve_token or serve_token()
    if token is not None:
        try:
            token_arg(token)
        except argparse.ArgumentTypeError as e:
            raise InputError(f"ANYEDGE_SERVE_TOKEN: {e}") from None
    host, port = args.serve
    view = LiveView(host, port, token=token, source=source, model=str(model)).start()
    if token is None and not is_loopback(host):
        print(f"anyedge: warning: the live view listens on {host}:{view.port} without --serve-token: anyone who "
              "can reach this machine can watch the camera", file=sys.stderr)
    print(f"anyedge: live view at {view.url}" + (" (add ?token=TOKEN)" if token else ""), file=sys.stderr,
          flush=True)
    return view


def _cmd_run(args: argparse.Namespace) -> int:
    from ..ops.draw import draw_faces
    from ..outputs import output_file
    from .workers import open_detectors

    if args.queue not in (1, 2):
        raise InputError(f"--queue must be 1 or 2, got {args.queue}")
    if args.serve is None and (args.serve_token is not None or args.serve_hold):
        raise InputError("--serve-token and --serve-hold go with --serve; expected --serve [HOST:]PORT as well")
    writer = AtomicVideoWriter(args.out, 25.0) if args.out else None  # validates the name up front
    out_folder = output_file(writer.path, inputs=[args.source])[0] if writer is not None else None
    model = _detector_for(args)
    opts: dict[str, Any] = {"channels": "BGR", "threads": args.threads, "device": device_request(args)}
    if args.score is not None:
        opts["score_threshold"] = args.score
    if args.track_low_score is not None:  # the detector reports weaker faces; only tracks may keep them
        if args.score is not None and args.track_low_score >= args.score:
            raise InputError(f"--track-low-score must be below --score ({args.score:g}), got {args.track_low_score:g}")
        opts["score_threshold"] = args.track_low_score
    mqtt = mqtt_from_args(args)  # checks the TLS options before the model loads
    stop, interrupted = threading.Event(), threading.Event()
    tty = sys.stderr.isatty()
    with ExitStack() as stack:
        # one detector per worker on LiteRT, else one shared (workers.py); the first is "the" detector
        dets = [stack.enter_context(d) for d in open_detectors(model, workers=args.workers, engine=args.engine,
                                                               **opts)]
        det = dets[0]
        labeller = None
        if args.gallery:
            from ..recognition.pipeline import TrackLabeller, live_labeller

            labeller = TrackLabeller(live_labeller(args.gallery, det, channels="BGR"),
                                     reembed_every=args.reembed_every)
            stack.callback(labeller.close)
        birth = 0.0
        if args.track_low_score is not None:
            birth = args.score if args.score is not None else float(det.spec.decoder.get("score_threshold", 0.5))
            if args.track_low_score >= birth:
                raise InputError(f"--track-low-score must be below the detector's threshold ({birth:g}), "
                                 f"got {args.track_low_score:g}")
        tracker = Tracker(TrackerOptions(min_hits=args.track_min_hits, max_age=args.track_max_age,
                                         birth_score=birth))
        tracks_done: list[dict[str, Any]] = []
        # Outputs beyond stdout subscribe here: track events (events.py) and annotated frames.
        hub, events = EventHub(), TrackEvents()
        frame_hooks: list[Any] = []  # each called as hook(index, frame, faces, ids, names)
        if mqtt is not None:  # connects (a refusal is an error), then flushes and says offline at the end
            mqtt.start()
            stack.callback(mqtt.close, args.mqtt_flush_timeout)
            hub.subscribe(mqtt)

        def ended(tracks: Any) -> None:
            recs = []
            for t in tracks:
                ident = labeller.end(t.key) if labeller is not None else None
                rec = track_record(t, ident)
                recs.append(rec)
                tracks_done.append(rec)
                if args.json:
                    print_json(rec)
            if recs and hub.active:
                hub.publish_all(events.left(recs))
        view = stack.enter_context(_open_view(args, args.source, model)) if args.serve is not None else None
        if view is not None:
            hub.subscribe(view.on_event)
            frame_hooks.append(view.on_frame)
        src = open_source(args.source, size=args.size, timeout_s=args.timeout)
        if writer is not None and src.fps:
            writer.fps = src.fps

        def on_frame(index: int, frame: np.ndarray, faces: Any, latency: float, infer: float) -> None:
            step = tracker.update(index, faces)
            if birth > 0.0 and (step.keys < 0).any():  # weak faces that extended no track are not reported
                keep = step.keys >= 0
                faces = FaceDetections(faces.boxes[keep], faces.scores[keep], faces.keypoints[keep])
                step = TrackStep(step.ids[keep], step.keys[keep], step.ended)
            named = labeller(index, frame, faces, step.keys) if labeller is not None else None
            if args.json:  # with a gallery, faces as recognition's schema (name, score, detection_score)
                print_json(frame_record(index, named if named is not None else faces, latency, infer,
                                        tracks=step.ids))
            names = named.names if named is not None else None
            if hub.active:
                hub.publish_all(events.frame(index, faces, step.ids, names,
                                             named.match_scores if named is not None else None))
            ended(step.ended)
            for hook in frame_hooks:
                hook(index, frame, faces, step.ids, names)
            if labeller is not None:  # tentative tracks that died leave no record
                labeller.forget({t.key for t in tracker.tracks})
            if writer is not None:
                writer.write(draw_faces(frame, faces, ids=step.ids, names=names))

        def on_second(stats: dict[str, Any]) -> None:
            if hub.active:
                hub.publish(events.status(stats))
            if args.json:
                print_json(stats)
            else:
                print_stats(stats, tty=tty)

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()
            interrupted.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            process = [d.detect for d in dets] if len(dets) > 1 else det.detect
            summary = run_live(src, process, workers=args.workers, queue_size=args.queue, every_frame=args.every_frame,
                               max_frames=args.frames, duration_s=args.duration, stop=stop,
                               on_frame=on_frame, on_second=on_second)
            if summary.captured == 0 and summary.stopped_by not in ("signal", "duration"):
                why = "" if summary.stopped_by == "end of source" else f" ({summary.stopped_by})"
                raise InputError(f"{src.name}: no frame could be read{why}; expected a video file, camera or "
                                 "stream that delivers frames")
            ended(tracker.finish())
            if view is not None:
                view.finish(summary.to_dict())
                if args.serve_hold and not interrupted.is_set():
                    print(f"anyedge: the run ended; the live view stays up {args.serve_hold:g} s more (Ctrl-C "
                          "ends it)", file=sys.stderr, flush=True)
                    interrupted.wait(args.serve_hold)
            if writer is not None and out_folder is not None and writer.frames:
                out_folder.record(writer.commit())
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            if writer is not None:
                writer.discard()
    doc = {**summary.to_dict(), "engine": det.engine.name, "device": det.engine.device, "tracks": len(tracks_done)}
    if labeller is not None:
        doc["embedded_faces"] = labeller.embedded
    if mqtt is not None:
        doc["mqtt"] = mqtt.stats()
    if writer is not None and writer.frames:
        doc["out"] = str(writer.path)
    if args.json:
        print_json(doc)
    else:
        print_summary(doc, tty=tty)
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``anyedge run`` to the main parser's subcommands."""
    p = sub.add_parser(
        "run", help="detect faces on a live stream (camera, file, URL, picamera) dropping stale frames",
        description="Detect faces on a live stream. A capture thread keeps only the newest 1-2 frames, so "
                    "when inference is slower than the source, stale frames are dropped and latency stays "
                    "flat. Prints per-second FPS, latency and dropped frames; Ctrl-C or SIGTERM stops "
                    "cleanly with a summary (exit 0).",
        epilog="examples:\n  anyedge run --source 0 --model blazeface-short\n"
               "  anyedge run --source clip.mp4 --model scrfd-500m --out annotated.mp4 --json\n"
               "  anyedge run --source rtsp://camera.local/stream --model yunet --duration 60\n"
               "  anyedge run --source picamera --model blazeface-short --threads 4\n"
               "  anyedge run --source clip.mp4 --model yunet --workers 2 --json    # 2 frames in inference at once\n"
               "  anyedge run --source 0 --model scrfd-500m --providers cuda,cpu\n"
               "  anyedge run --source clip.mp4 --gallery people.db --json    # the gallery's detector\n"
               "  anyedge run --source 0 --gallery people.db --track-min-hits 5 --reembed-every 15 --json\n"
               "  anyedge run --source 0 --gallery people.db --mqtt mqtt://homeassistant.local/door\n"
               "  ANYEDGE_MQTT_PASSWORD=secret anyedge run --source 0 --mqtt mqtts://cam@broker.lan/door "
               "--mqtt-ca ca.pem\n"
               "  anyedge run --source 0 --serve 8080                    # open http://127.0.0.1:8080/\n"
               "  anyedge run --source 0 --serve 0.0.0.0:8080 --serve-token s3cret   # /?token=s3cret from others")
    p.add_argument("--source", required=True,
                   help="camera index (0), video file, stream URL (rtsp://, http://) or 'picamera' (required)")
    p.add_argument("--model", default=None,
                   help=f"any face detector: registry name, bundle or model file (default: {_DEFAULT_MODEL}; with "
                        "--gallery the detector the gallery records, else yunet, and one that differs from the "
                        "record is refused)")
    p.add_argument("--engine", default=None, help="engine to run it on (default: the model's own)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for the engine; with --workers, for each LiteRT worker's interpreter, the "
                        "shared ONNX Runtime session or the shared OpenVINO model (default: the engine's; with "
                        "--workers N the cores are shared out: LiteRT cores/N per worker, ONNX Runtime cores-N+1 "
                        "plus the N calling threads, OpenVINO N streams on all cores)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="inference threads: N frames in inference at once, each free worker taking the newest "
                        "frame, results still in frame order. More frames per second when one inference leaves "
                        "cores idle (a multi-core board, a source faster than the model); latency stays about "
                        "one inference. LiteRT opens one interpreter per worker (more memory); ONNX Runtime and "
                        "OpenVINO share one instance. With --gallery the embedder stays on one thread "
                        "(default: %(default)s)")
    p.add_argument("--score", type=unit_float, default=None, help="score threshold in [0, 1] (default: the model's)")
    p.add_argument("--out", default=None,
                   help="write the processed frames, annotated, to this video file (.mp4/.avi; never the source "
                        "or a file anyedge did not write; default: none)")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: one per frame, a stats line per second, a summary at the end "
                        "(default: a live status line on stderr and a summary on stdout)")
    p.add_argument("--gallery", default=None,
                   help="face gallery (anyedge gallery enroll fills one) for names on the faces: with --json each "
                        "face gets name (null when unknown), score (best gallery cosine) and detection_score, as "
                        "in anyedge gallery identify --json (default: none)")
    p.add_argument("--track-min-hits", type=positive_int, default=DEFAULT_MIN_HITS,
                   help="a new face gets its track id after this many matched frames in a row; before that its "
                        "track is null, and one that misses a frame is dropped (default: %(default)s)")
    p.add_argument("--track-max-age", type=int_at_least(0), default=DEFAULT_MAX_AGE,
                   help="a track survives this many frames (capture numbers) unseen, so a face hidden for less "
                        "keeps its id; then the track ends (default: %(default)s)")
    p.add_argument("--track-low-score", type=unit_float, default=None,
                   help="also take faces scoring down to this (below --score or the model's threshold): they may "
                        "extend an existing track (a blurred or half-turned frame) but never start one, and are "
                        "reported only when they do (default: none, only faces above the threshold)")
    p.add_argument("--reembed-every", type=positive_int, default=DEFAULT_REEMBED_EVERY,
                   help="with --gallery: embed a track's face again at most every K frames, and only when its "
                        "view (size, frontality, sharpness) beats the track's best so far; each track is "
                        "embedded once when it is born (default: %(default)s)")
    p.add_argument("--queue", type=int, default=1, help="frames held between capture and inference, 1 or 2 "
                                                        "(default: %(default)s)")
    p.add_argument("--every-frame", action="store_true",
                   help="process every frame of a file, dropping none (default: files are paced at their "
                        "frame rate like a camera)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="stop after N processed frames (default: no limit)")
    p.add_argument("--duration", type=positive_float, default=None, help="stop after S seconds (default: no limit)")
    p.add_argument("--size", type=size_arg, default=(640, 480),
                   help="camera capture WIDTHxHEIGHT (default: 640x480)")
    p.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds to wait for a source to open (default: %(default)s)")
    add_mqtt_arguments(p)
    g = p.add_argument_group(
        "live view in a browser",
        "--serve shows the run on a web page: the annotated stream (boxes, keypoints, track ids, names), FPS, "
        "latency, drops and the track events, with /stream.mjpg, /status and /events for other programs. It "
        "loads nothing from elsewhere, so it works offline, and ends with the run.")
    g.add_argument("--serve", type=listen_address, default=None, metavar="[HOST:]PORT",
                   help="serve the live view on PORT of 127.0.0.1 (this machine only); other machines reach it "
                        "only when HOST is written out, e.g. 0.0.0.0:8080 (every interface: use --serve-token); "
                        "port 0 picks a free one; the URL is printed on stderr (default: no live view)")
    g.add_argument("--serve-token", type=token_arg, default=None, metavar="TOKEN",
                   help="every request must carry TOKEN, as ?token=TOKEN (open /?token=TOKEN in the browser) or an "
                        "'Authorization: Bearer TOKEN' header, else 401 (default: $ANYEDGE_SERVE_TOKEN, which keeps "
                        "it out of the process list, else none)")
    g.add_argument("--serve-hold", type=positive_float, default=None, metavar="SECONDS",
                   help="when the run ends (a file's end, --frames, --duration), keep serving the last frame, the "
                        "final status and the events this long; Ctrl-C ends it sooner (default: stop at once)")
    add_trust_argument(p)
    add_device_args(p, what="the detector")
    p.set_defaults(func=_cmd_run)
