"""The ``anyedge`` command line: models, detect, demo (and the tasks' own subcommands)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import AnyEdgeError, InputError

__all__ = ["main"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _shared_data() -> Path | None:
    env = os.environ.get("ANYEDGE_DATA")
    for cand in ([Path(env)] if env else []) + [Path.cwd().parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


# -- models ---------------------------------------------------------------------------------
def _cmd_models(args: argparse.Namespace) -> int:
    from .registry import PACKAGED_BUNDLES, find_model_file, list_models, packaged_bundle

    rows = []
    for m in list_models():
        found = find_model_file(m)
        rows.append({"name": m.name, "task": m.task, "family": m.family, "file": m.filename,
                     "license": m.license, "present": str(found) if found else None,
                     "fetchable": m.source.fetchable})
    for name in PACKAGED_BUNDLES:
        p = packaged_bundle(name)
        rows.append({"name": name, "task": "activity_classification", "family": "bnn", "file": "bundle",
                     "license": "Apache-2.0 (anyedge's own)", "present": str(p), "fetchable": False})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'name':20} {'task':24} {'family':11} {'present':8} licence")
    for r in rows:
        state = "yes" if r["present"] else ("fetch" if r["fetchable"] else "no")
        print(f"{r['name']:20} {r['task']:24} {r['family']:11} {state:8} {r['license']}")
    return 0


# -- detect ---------------------------------------------------------------------------------
def _iter_inputs(paths: Sequence[str]) -> Iterator[tuple[str, Path]]:
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    yield "image", f
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            yield "video", p
        else:
            yield "image", p


def _read_image(path: Path) -> Any:
    import cv2
    import numpy as np

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"{path}: not a readable image")
    return img


def _cmd_detect(args: argparse.Namespace) -> int:

    from .ops.draw import draw_faces
    from .tasks.face_detector import FaceDetector

    opts: dict[str, Any] = {"channels": "BGR", "threads": args.threads}
    if args.score is not None:
        opts["score_threshold"] = args.score
    if args.max_faces is not None:
        opts["max_faces"] = args.max_faces
    if not args.paths and args.camera is None:
        raise InputError("give one or more PATHs (images, folders, videos) or --camera")
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with FaceDetector.create(args.model, engine=args.engine, **opts) as det:
        if args.camera is not None:
            return _detect_camera(det, args)
        for kind, path in _iter_inputs(args.paths):
            try:
                if kind == "video":
                    failures += _detect_video(det, path, args, out_dir)
                    continue
                img = _read_image(path)
                faces = det.detect(img)
            except InputError as e:
                failures += 1
                if args.json:
                    print(json.dumps({"image": str(path), "error": str(e)}))
                else:
                    print(f"{path}: error: {e}", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps({"image": str(path), "faces": faces.to_list()}))
            else:
                ms = det.last_timing["total"] * 1e3
                print(f"{path}: {len(faces)} face(s) in {ms:.1f} ms")
            if out_dir:
                _write_image(out_dir / (path.stem + ".jpg"), draw_faces(img, faces))
    return 1 if failures else 0


def _detect_camera(det: Any, args: argparse.Namespace) -> int:
    from .camera import frames

    for i, frame in enumerate(frames(args.camera, limit=args.frames)):
        faces = det.detect(frame)
        if args.json:
            print(json.dumps({"camera": str(args.camera), "frame": i, "faces": faces.to_list()}), flush=True)
        else:
            print(f"frame {i}: {len(faces)} face(s) in {det.last_timing['total'] * 1e3:.1f} ms", flush=True)
    return 0


def _write_image(path: Path, bgr: Any) -> None:
    import cv2

    ok, buf = cv2.imencode(path.suffix, bgr)
    if not ok:
        raise InputError(f"could not encode {path}")
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def _detect_video(det: Any, path: Path, args: argparse.Namespace, out_dir: Path | None) -> int:
    import cv2

    from .ops.draw import draw_faces

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: not a readable video")
    writer = None
    tmp = None
    frame_no = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            faces = det.detect(frame)
            if args.json:
                print(json.dumps({"image": str(path), "frame": frame_no, "faces": faces.to_list()}))
            if out_dir:
                if writer is None:
                    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
                    tmp = out_dir / f".{path.stem}.annotated.mp4.part"
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(draw_faces(frame, faces))
            frame_no += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
            os.replace(tmp, out_dir / f"{path.stem}.annotated.mp4")  # type: ignore[operator]
    if frame_no == 0:
        raise InputError(f"{path}: video has no readable frames")
    if not args.json:
        print(f"{path}: {frame_no} frames")
    return 0


# -- demo -----------------------------------------------------------------------------------
def _demo_image() -> tuple[str, Any]:
    import cv2

    data = _shared_data()
    if data and (data / "faces" / "smoke" / "astronaut.png").is_file():
        p = data / "faces" / "smoke" / "astronaut.png"
        return str(p), _read_image(p)
    try:
        from skimage import data as skdata
    except ImportError as e:
        raise InputError("no sample image: install scikit-image or pass --image") from e
    return "skimage.data.astronaut()", cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)


def _cmd_demo(args: argparse.Namespace) -> int:
    import statistics

    from .engines import engines_for
    from .ops.draw import draw_faces
    from .registry import find_model_file, get_model_info, list_models
    from .tasks.face_detector import FaceDetector

    if args.image:
        name, img = args.image, _read_image(Path(args.image))
    else:
        name, img = _demo_image()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.models:
        models = args.models.split(",")
    else:  # every face detector on this machine or fetchable from its official source
        models = [m.name for m in list_models()
                  if m.task == "face_detection" and (find_model_file(m) or m.source.fetchable)]
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
            print(f"{model:20} {engine:12} {len(faces):5d} {med:10.2f} {p90:8.2f}")
            rows.append({"model": model, "engine": engine, "faces": len(faces), "median_ms": med,
                         "p90_ms": p90, "detections": faces.to_list()})
            if engine == engines_for(info.filename)[0]:
                _write_image(out_dir / f"demo_{model}.jpg", draw_faces(img, faces, f"{model} "))
    (out_dir / "demo.json").write_text(json.dumps({"image": name, "results": rows}, indent=1))
    print(f"\nannotated images and demo.json written to {out_dir}/")
    return 0


# -- entry point ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anyedge", description="Run face and activity models on edge devices.")
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress (downloads, conversion)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model registry and what is present here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("detect", help="detect faces in images, folders of images, videos or a camera")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--camera", default=None, help="camera index (0), 'picamera' or a stream URL instead of PATHs")
    p.add_argument("--frames", type=int, default=None, help="with --camera: stop after N frames")
    p.add_argument("--model", default="blazeface-short", help="registry name, bundle or model file")
    p.add_argument("--engine", default=None, help="litert, onnxruntime or openvino (default: the model's own)")
    p.add_argument("--json", action="store_true", help="one JSON object per image (per frame for videos)")
    p.add_argument("--out", default=None, help="directory for annotated images/videos")
    p.add_argument("--score", type=float, default=None, help="score threshold (default: the model's)")
    p.add_argument("--max-faces", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("demo", help="detect faces on a sample image with every installed engine")
    p.add_argument("--image", default=None)
    p.add_argument("--models", default=None, help="comma-separated model names (default: all present)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="out/demo")
    p.set_defaults(func=_cmd_demo)

    for hook in _subcommand_hooks():
        hook(sub)
    return ap


def _subcommand_hooks() -> list[Any]:
    """Subcommands that live with their task (converters, HAR)."""
    hooks = []
    try:
        from .converters.cli import add_parsers as conv
        hooks.append(conv)
    except ImportError:
        pass
    try:
        from .har.cli import add_har_parser
        hooks.append(add_har_parser)
    except ImportError:
        pass
    hooks.append(__import__("anyedge.bench.cli", fromlist=["add_parsers"]).add_parsers)  # anyedge bench
    return hooks


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except AnyEdgeError as e:
        print(f"anyedge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
