"""``anyedge detect`` and ``anyedge demo``: face detection on images, folders, videos and cameras.

    anyedge detect photo.jpg --model scrfd-500m --json
    anyedge detect photos/ clip.mp4 --out annotated/
    anyedge demo

:func:`add_parsers` adds both commands to the main ``anyedge`` parser. The detector itself is
:class:`anyedge.tasks.face_detector.FaceDetector`; live streams with frame dropping are
``anyedge run`` (:mod:`anyedge.live`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..cli_args import add_device_args, device_request, positive_int, unit_float
from ..cli_common import EXIT_OK, EXIT_PARTIAL, one_line
from ..errors import AnyEdgeError, InputError
from ..outputs import OutputDir, write_atomic
from ..signing.cli import add_trust_argument

__all__ = ["add_parsers", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _iter_inputs(paths: Sequence[str]) -> list[tuple[str, Path]]:
    """(kind, path) of every input; a folder gives its images and videos, not anyedge's own outputs there.

    Raises:
        InputError: a folder holds no image or video.
    """
    from ..inputs import regular_file
    from ..outputs import written_here

    found: list[tuple[str, Path]] = []
    for raw in paths:
        p = Path(raw)
        if p.exists() and not p.is_dir():  # a FIFO or device named on the line is refused, never opened
            regular_file(p, "image or video")
        if p.is_dir():
            ours = written_here(p)
            inside = [("image" if f.suffix.lower() in IMAGE_SUFFIXES else "video", f) for f in sorted(p.iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and f.name not in ours]
            if not inside:
                raise InputError(f"{p}: no images or videos in this folder (expected "
                                 f"{', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
            found.extend(inside)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            found.append(("video", p))
        else:
            found.append(("image", p))
    return found


def _read_image(path: Path) -> Any:
    from ..ops.image import read_image

    return read_image(path)


def _cmd_detect(args: argparse.Namespace) -> int:
    from ..ops.draw import draw_faces
    from ..tasks.face_detector import FaceDetector

    opts: dict[str, Any] = {"channels": "BGR", "threads": args.threads, "device": device_request(args)}
    if args.score is not None:
        opts["score_threshold"] = args.score
    if args.max_faces is not None:
        opts["max_faces"] = args.max_faces
    if not args.paths and args.camera is None:
        raise InputError("give one or more PATHs (images, folders, videos) or --camera")
    inputs = [] if args.camera is not None else _iter_inputs(args.paths)
    out = OutputDir(args.out, inputs=[p for _, p in inputs]) if args.out else None
    failures = 0
    with FaceDetector.create(args.model, engine=args.engine, **opts) as det:
        if args.camera is not None:
            return _detect_camera(det, args)
        for kind, path in inputs:
            written = None
            try:
                if kind == "video":
                    _detect_video(det, path, args, out)
                    continue
                img = _read_image(path)
                faces = det.detect(img)
                if out:
                    written = out.claim(path.stem + ".jpg")
                    _write_image(written, draw_faces(img, faces))
                    out.record(written)
            except BrokenPipeError:
                raise
            except (AnyEdgeError, OSError) as e:  # one bad input never stops the others
                failures += 1
                msg = one_line(e) if isinstance(e, AnyEdgeError) else f"{type(e).__name__}: {one_line(e)}"
                if args.json:
                    print(json.dumps({"image": str(path), "error": msg}), flush=True)
                print(f"anyedge: error: {path}: {msg}" if str(path) not in msg else f"anyedge: error: {msg}",
                      file=sys.stderr)
                continue
            if args.json:
                rec: dict[str, Any] = {"image": str(path), "faces": faces.to_list(), "engine": det.engine.name,
                                       "device": det.engine.device}
                if written is not None:
                    rec["out"] = str(written)
                print(json.dumps(rec), flush=True)
            else:
                ms = det.last_timing["total"] * 1e3
                print(f"{path}: {len(faces)} face(s) in {ms:.1f} ms" + (f" -> {written}" if written else ""),
                      flush=True)
    return EXIT_PARTIAL if failures else EXIT_OK


def _detect_camera(det: Any, args: argparse.Namespace) -> int:
    from ..live.sources import open_source

    src = open_source(args.camera)  # one-line errors for missing cameras and silent URLs
    try:
        i = 0
        while args.frames is None or i < args.frames:
            frame = src.read()
            if frame is None:
                break
            faces = det.detect(frame)
            if args.json:
                print(json.dumps({"camera": str(args.camera), "frame": i, "faces": faces.to_list()}), flush=True)
            else:
                print(f"frame {i}: {len(faces)} face(s) in {det.last_timing['total'] * 1e3:.1f} ms", flush=True)
            i += 1
    finally:
        src.close()
    return EXIT_OK


def _write_image(path: Path, bgr: Any) -> None:
    import cv2

    ok, buf = cv2.imencode(path.suffix, bgr)
    if not ok:
        raise InputError(f"could not encode {path}")
    write_atomic(path, buf.tobytes())


def _detect_video(det: Any, path: Path, args: argparse.Namespace, out: OutputDir | None) -> None:
    import cv2

    from ..inputs import regular_file
    from ..ops.draw import draw_faces
    from ..live.sinks import AtomicVideoWriter

    cap = cv2.VideoCapture(str(regular_file(path, "video")))
    if not cap.isOpened():
        raise InputError(f"{path}: not a readable video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = AtomicVideoWriter(out.claim(f"{path.stem}.annotated.mp4"), fps) if out else None
    frame_no = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            faces = det.detect(frame)
            if args.json:
                print(json.dumps({"image": str(path), "frame": frame_no, "faces": faces.to_list()}), flush=True)
            if writer is not None:
                writer.write(draw_faces(frame, faces))
            frame_no += 1
        if frame_no == 0:
            raise InputError(f"{path}: video has no readable frames")
        if writer is not None and out is not None:
            writer.commit()
            out.record(writer.path)
    finally:
        cap.release()
        if writer is not None:
            writer.discard()  # no-op after commit
    if not args.json:
        print(f"{path}: {frame_no} frames" + (f" -> {writer.path}" if writer is not None else ""), flush=True)


# -- demo -----------------------------------------------------------------------------------
def _demo_image() -> tuple[str, Any]:
    from ..paths import data_path

    p = data_path("faces", "smoke", "astronaut.png")
    if p is not None and p.is_file():
        return str(p), _read_image(p)
    from ..samples import sample_image

    path = sample_image()
    return str(path), _read_image(path)


def _fetchable_unasked(info: Any) -> bool:
    """Whether first use of a model fetches it by itself (a source, and no licence to accept)."""
    from ..registry.fetch import licence_accepted

    return info.source.fetchable and (not info.licence_class.needs_acceptance or licence_accepted())


def _cmd_demo(args: argparse.Namespace) -> int:
    import statistics

    from ..engines import engines_for
    from ..ops.draw import draw_faces
    from ..registry import find_model_file, get_model_info, list_models
    from ..tasks.face_detector import FaceDetector

    if args.image:
        name, img = args.image, _read_image(Path(args.image))
    else:
        name, img = _demo_image()
    out = OutputDir(args.out, inputs=[args.image] if args.image else [])
    if args.models:
        models = args.models.split(",")
    else:  # every face detector on this machine, or fetchable without accepting a licence first
        detectors = [m for m in list_models() if m.task == "face_detection"]
        models = [m.name for m in detectors if find_model_file(m) or _fetchable_unasked(m)]
        gated = [m.name for m in detectors if m.name not in models and m.source.fetchable]
        if gated:
            print(f"anyedge: not in the demo: {', '.join(gated)} (their weights' licence must be accepted "
                  f"first: anyedge models fetch NAME --accept-licence)", file=sys.stderr)
    print(f"anyedge demo on {name} ({img.shape[1]}x{img.shape[0]}), {args.runs} timed runs each\n")
    print(f"{'model':20} {'engine':12} {'faces':>5} {'median ms':>10} {'p90 ms':>8}")
    rows = []
    for model in models:
        info = get_model_info(model)
        for engine in engines_for(info.filename):
            with FaceDetector.create(model, engine=engine, channels="BGR", threads=args.threads) as det:
                faces = det.detect(img)  # warm-up
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    faces = det.detect(img)
                    times.append((time.perf_counter() - t) * 1e3)
            times.sort()
            med, p90 = statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]
            print(f"{model:20} {engine:12} {len(faces):5d} {med:10.2f} {p90:8.2f}", flush=True)
            rows.append({"model": model, "engine": engine, "faces": len(faces), "median_ms": med,
                         "p90_ms": p90, "detections": faces.to_list()})
            if engine == engines_for(info.filename)[0]:
                written = out.claim(f"demo_{model}.jpg")
                _write_image(written, draw_faces(img, faces, f"{model} "))
                out.record(written)
    summary = out.claim("demo.json")
    write_atomic(summary, json.dumps({"image": name, "results": rows}, indent=1).encode())
    out.record(summary)
    print(f"\nannotated images and {summary.name} written to {out.path}/")
    return EXIT_OK


# -- parsers --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    """Add ``detect`` and ``demo`` to the main parser's subcommands."""
    p = sub.add_parser("detect", help="detect faces in images, folders of images, videos or a camera",
                       description="Detect faces. PATHs may be images, folders of images/videos, or videos.",
                       epilog="examples:\n  anyedge detect photo.jpg\n"
                              "  anyedge detect photos/ clip.mp4 --model scrfd-500m --out annotated/ --json\n"
                              "  anyedge detect --camera 0 --frames 100\n"
                              "  anyedge detect photo.jpg --model scrfd-500m --engine openvino --device GPU")
    p.add_argument("paths", nargs="*", metavar="PATH", help="images, folders or videos (.mp4, .avi, ...)")
    p.add_argument("--camera", default=None,
                   help="camera index (0), 'picamera' or a stream URL instead of PATHs (default: none); "
                        "for live use with frame dropping see 'anyedge run'")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="with --camera: stop after N frames (default: until the source ends)")
    p.add_argument("--model", default="blazeface-short",
                   help="registry name, bundle or model file (default: %(default)s)")
    p.add_argument("--engine", default=None,
                   help="litert, onnxruntime or openvino (default: the model's own engine)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per image (per frame for videos) on stdout (default: text)")
    p.add_argument("--out", default=None,
                   help="directory for annotated images (NAME.jpg) and videos (NAME.annotated.mp4); "
                        "created when missing; a name taken by an input or a file anyedge did not write gets "
                        "a suffix (NAME-2.jpg) (default: write nothing)")
    p.add_argument("--score", type=unit_float, default=None, help="score threshold in [0, 1] (default: the model's)")
    p.add_argument("--max-faces", type=positive_int, default=None,
                   help="keep at most N faces per image (default: no limit)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for the engine (default: the engine's own choice)")
    add_trust_argument(p)
    add_device_args(p)
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("demo", help="detect faces on a sample image with every installed engine",
                       description="Time every face detector on every installed engine on one image "
                                   "(default: the smoke photo in $ANYEDGE_DATA when present, else NASA's "
                                   "public-domain astronaut portrait, fetched once from the scikit-image "
                                   "wheel on PyPI into the cache).",
                       epilog="examples:\n  anyedge demo\n  anyedge demo --models yunet,scrfd-500m --runs 50")
    p.add_argument("--image", default=None,
                   help="image to use (default: $ANYEDGE_DATA's smoke photo, else the fetched sample photo)")
    p.add_argument("--models", default=None,
                   help="comma-separated model names (default: every face detector present or fetchable)")
    p.add_argument("--runs", type=positive_int, default=20, help="timed runs per model (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for the engines (default: the engine's own choice)")
    p.add_argument("--out", default="out/demo",
                   help="directory for annotated images and demo.json (default: %(default)s)")
    p.set_defaults(func=_cmd_demo)
