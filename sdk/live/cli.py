"""``anyedge run``: face detection on a live stream, stale frames dropped.

    anyedge run --source 0 --model blazeface-short
    anyedge run --source clip.mp4 --model scrfd-500m --out annotated.mp4 --json

It wires the rooms together: a source (:mod:`.sources`), the loop (:mod:`.loop`) running a
:class:`~anyedge.tasks.face_detector.FaceDetector`, and the sinks (:mod:`.sinks`): JSON lines or
a status line, and an annotated video. :func:`add_parsers` adds the command to the main parser.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cli_args import add_device_args, device_request, positive_float, positive_int, size_arg, unit_float
from ..errors import InputError
from ..signing.cli import add_trust_argument
from .loop import run_live
from .sinks import AtomicVideoWriter, frame_record, print_json, print_stats, print_summary
from .sources import open_source

__all__ = ["add_parsers"]


def _gallery_labeller(gallery: str, args: argparse.Namespace) -> Callable[[np.ndarray, Any], list[str]]:
    """Names for the detected faces of a frame, from face recognition's gallery."""
    from ..recognition.pipeline import live_labeller

    if not Path(gallery).exists():
        raise InputError(f"--gallery {gallery}: no such gallery")
    return live_labeller(gallery, detector_model=args.model)  # type: ignore[return-value]


def _cmd_run(args: argparse.Namespace) -> int:
    from ..ops.draw import draw_faces
    from ..outputs import output_file
    from ..tasks.face_detector import FaceDetector

    if args.queue not in (1, 2):
        raise InputError(f"--queue must be 1 or 2, got {args.queue}")
    writer = AtomicVideoWriter(args.out, 25.0) if args.out else None  # validates the name up front
    out_folder = output_file(writer.path, inputs=[args.source])[0] if writer is not None else None
    labeller = _gallery_labeller(args.gallery, args) if args.gallery else None
    opts: dict[str, Any] = {"channels": "BGR", "threads": args.threads, "device": device_request(args)}
    if args.score is not None:
        opts["score_threshold"] = args.score
    stop = threading.Event()
    tty = sys.stderr.isatty()
    with FaceDetector.create(args.model, engine=args.engine, **opts) as det:
        src = open_source(args.source, size=args.size, timeout_s=args.timeout)
        if writer is not None and src.fps:
            writer.fps = src.fps

        def on_frame(index: int, frame: np.ndarray, faces: Any, latency: float, infer: float) -> None:
            names = labeller(frame, faces) if labeller is not None else None
            if args.json:
                print_json(frame_record(index, faces, latency, infer, names))
            if writer is not None:
                writer.write(draw_faces(frame, faces))

        def on_second(stats: dict[str, Any]) -> None:
            if args.json:
                print_json(stats)
            else:
                print_stats(stats, tty=tty)

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            summary = run_live(src, det.detect, queue_size=args.queue, every_frame=args.every_frame,
                               max_frames=args.frames, duration_s=args.duration, stop=stop,
                               on_frame=on_frame, on_second=on_second)
            if summary.captured == 0 and summary.stopped_by not in ("signal", "duration"):
                why = "" if summary.stopped_by == "end of source" else f" ({summary.stopped_by})"
                raise InputError(f"{src.name}: no frame could be read{why}; expected a video file, camera or "
                                 "stream that delivers frames")
            if writer is not None and out_folder is not None and writer.frames:
                out_folder.record(writer.commit())
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            if writer is not None:
                writer.discard()
    doc = {**summary.to_dict(), "engine": det.engine.name, "device": det.engine.device}
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
               "  anyedge run --source 0 --model scrfd-500m --providers cuda,cpu")
    p.add_argument("--source", required=True,
                   help="camera index (0), video file, stream URL (rtsp://, http://) or 'picamera' (required)")
    p.add_argument("--model", default="blazeface-short",
                   help="any face detector: registry name, bundle or model file (default: %(default)s)")
    p.add_argument("--engine", default=None, help="engine to run it on (default: the model's own)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for the engine (default: the engine's)")
    p.add_argument("--score", type=unit_float, default=None, help="score threshold in [0, 1] (default: the model's)")
    p.add_argument("--out", default=None,
                   help="write the processed frames, annotated, to this video file (.mp4/.avi; never the source "
                        "or a file anyedge did not write; default: none)")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: one per frame, a stats line per second, a summary at the end "
                        "(default: a live status line on stderr and a summary on stdout)")
    p.add_argument("--gallery", default=None,
                   help="face gallery for names on the faces (anyedge gallery enroll fills one; default: none)")
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
    add_trust_argument(p)
    add_device_args(p, what="the detector")
    p.set_defaults(func=_cmd_run)
