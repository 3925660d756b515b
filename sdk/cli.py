"""The ``anyedge`` command line: models, detect, demo (and the tasks' own subcommands).

Conventions every subcommand follows (``anyedge --help`` shows them to users):

* A failure is ONE line on stderr, ``anyedge: error: ...``, and a documented exit code
  (:data:`EXIT_CODES`); ``-v``/``--verbose`` anywhere on the line adds the traceback.
* While a command runs, only anyedge's own output reaches stdout: file descriptor 1 points at
  stderr, so progress bars and log lines of third-party libraries (NNCF, OpenVINO, tqdm, C
  libraries) land on stderr, and ``--json`` output stays pure JSON.
* Subcommands that live with their task register themselves through
  :func:`_subcommand_hooks` (one line each) and build parsers with ``sub.add_parser``; they get
  the same one-line usage errors and example epilogs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from .errors import AnyEdgeError, InputError
from .cli_args import positive_int, unit_float
from .outputs import OutputDir, write_atomic

__all__ = ["main", "build_parser", "EXIT_CODES"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_TERMINATED = 0, 1, 2, 130, 141, 143
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_PARTIAL: "some inputs failed (the others were processed), or an unexpected internal error",
    EXIT_USAGE: "bad usage or an anyedge error: unknown model, unreadable input, refused bundle, "
                "missing engine, failed conversion",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (anyedge run: Ctrl-C is the normal stop and exits 0)",
    EXIT_PIPE: "stdout was closed early (e.g. piped into head), or is closed or full; nothing else went wrong",
    EXIT_TERMINATED: "terminated by SIGTERM (anyedge run: a clean stop, exits 0)",
}

_EPILOG = """\
examples:
  anyedge models
  anyedge detect photo.jpg --model scrfd-500m --json
  anyedge run --source 0 --model blazeface-short
  anyedge convert scrfd-500m --target arm-cpu --calib images/ --out scrfd.zip
  anyedge har classify RacketSports_TEST.ts --model bnn-racketsports

-v/--verbose may be given anywhere on the line; it logs progress and shows tracebacks.
With --json, stdout carries only JSON; progress and third-party logs go to stderr.

exit codes:
""" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


class _Formatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions; keeps multi-line text (examples, exit codes) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) and epilogs kept as written.

    Sub-parsers made with ``add_subparsers().add_parser`` are of this class too (argparse uses
    the parent's class), so the hooks' subcommands behave the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


# -- detect ---------------------------------------------------------------------------------
def _iter_inputs(paths: Sequence[str]) -> list[tuple[str, Path]]:
    """(kind, path) of every input; a folder gives its images and videos, not anyedge's own outputs there.

    Raises:
        InputError: a folder holds no image or video.
    """
    from .inputs import regular_file
    from .outputs import written_here

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
    from .ops.image import read_image

    return read_image(path)


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
                msg = _one_line(e) if isinstance(e, AnyEdgeError) else f"{type(e).__name__}: {_one_line(e)}"
                if args.json:
                    print(json.dumps({"image": str(path), "error": msg}), flush=True)
                print(f"anyedge: error: {path}: {msg}" if str(path) not in msg else f"anyedge: error: {msg}",
                      file=sys.stderr)
                continue
            if args.json:
                rec: dict[str, Any] = {"image": str(path), "faces": faces.to_list()}
                if written is not None:
                    rec["out"] = str(written)
                print(json.dumps(rec), flush=True)
            else:
                ms = det.last_timing["total"] * 1e3
                print(f"{path}: {len(faces)} face(s) in {ms:.1f} ms" + (f" -> {written}" if written else ""),
                      flush=True)
    return EXIT_PARTIAL if failures else EXIT_OK


def _detect_camera(det: Any, args: argparse.Namespace) -> int:
    from .live import open_source

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

    from .inputs import regular_file
    from .ops.draw import draw_faces
    from .video import AtomicVideoWriter

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
    from .paths import data_path

    p = data_path("faces", "smoke", "astronaut.png")
    if p is not None and p.is_file():
        return str(p), _read_image(p)
    from .samples import sample_image

    path = sample_image()
    return str(path), _read_image(path)


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
    out = OutputDir(args.out, inputs=[args.image] if args.image else [])
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


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The full ``anyedge`` parser, hooks' subcommands included."""
    from . import __version__
    from .signing_cli import add_trust_argument

    ap = _Parser(prog="anyedge", description="Run face and activity models on edge devices.", epilog=_EPILOG)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log progress (downloads, conversion) and show tracebacks; accepted anywhere")
    ap.add_argument("--version", action="version", version=f"anyedge {__version__}",
                    help="print anyedge's version and exit")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("detect", help="detect faces in images, folders of images, videos or a camera",
                       description="Detect faces. PATHs may be images, folders of images/videos, or videos.",
                       epilog="examples:\n  anyedge detect photo.jpg\n"
                              "  anyedge detect photos/ clip.mp4 --model scrfd-500m --out annotated/ --json\n"
                              "  anyedge detect --camera 0 --frames 100")
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

    for hook in _subcommand_hooks():
        hook(sub)
    return ap


def _subcommand_hooks() -> list[Any]:
    """Subcommands that live with their task (converters, HAR, live streams): one line each."""
    hooks = []
    from .registry.cli import add_parsers as models  # anyedge models
    hooks.append(models)
    from .converters.cli import add_parsers as conv  # convert, targets, inspect
    hooks.append(conv)
    from .har.cli import add_har_parser  # anyedge har
    hooks.append(add_har_parser)
    from .recognition_cli import add_parsers as recognition  # verify, calibrate-threshold, gallery
    hooks.append(recognition)
    from .live import add_parsers as live  # anyedge run
    hooks.append(live)
    from .apps.cli import add_parsers as export_c  # export-c
    hooks.append(export_c)
    from .bench.cli import add_parsers as bench  # anyedge bench
    hooks.append(bench)
    from .signing_cli import add_parsers as signing  # keys new, sign
    hooks.append(signing)
    return hooks


# -- running a command ----------------------------------------------------------------------
class _ResultsOnlyStdout(io.TextIOBase):
    """``sys.stdout`` while a command runs: writes from anyedge's code reach the real stdout,
    writes from any other module (a library's progress bar or log handler bound to
    ``sys.stdout``) go to stderr. C-level writes to fd 1 already go to stderr (see :func:`_run`).
    """

    def __init__(self, results: TextIO, other: TextIO) -> None:
        self._results = results
        self._other = other

    def _target(self) -> TextIO:
        f = sys._getframe(2)  # the frame that called write() (print() is C and adds no frame)
        for _ in range(3):  # json.dump(obj, sys.stdout) and the like sit one frame deeper
            if f is None:
                break
            if _module_of(f.f_globals).split(".")[0] == "anyedge":
                return self._results
            f = f.f_back
        return self._other

    def write(self, s: str) -> int:  # type: ignore[override]
        target = self._target()
        if target is not self._results:
            return target.write(s)
        with _writing_stdout():
            return target.write(s)

    def writelines(self, lines: Any) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with _writing_stdout():
            self._results.flush()
        self._other.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._results.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._results.encoding


def _module_of(g: dict[str, Any]) -> str:
    """A frame's module name; ``python -m anyedge.cli`` runs as ``__main__`` with the real name in its spec."""
    name = str(g.get("__name__", ""))
    if name == "__main__":
        spec = g.get("__spec__")
        name = str(getattr(spec, "name", "") or "")
    return name


class _StdoutError(Exception):
    """The results could not be written to stdout (closed, full, an I/O error); a broken pipe is not one."""


@contextlib.contextmanager
def _writing_stdout() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise _StdoutError(f"cannot write to stdout: {e.strerror or e}") from e


class _Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread by the signal handler).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way
    (a remedy loop, an engine wrapper, a third-party library) can take it for a failed step.
    """


def _on_signal(signum: int, frame: Any) -> None:
    """The first SIGINT/SIGTERM raises, so the command cleans up on its way out.

    A second one (the clean-up hangs, or a library swallowed the first) ends the process at once:
    one line, 130 or 143. While the one-line report is written, signals are ignored (:func:`_quiet`).
    """
    from . import _exit_on_signal

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _exit_on_signal)
    if signum == signal.SIGTERM:
        raise _Terminated()
    raise KeyboardInterrupt()


def _quiet(previous: dict[int, Any]) -> None:
    """Ignore SIGINT/SIGTERM (only where main() installed its handling)."""
    for s in previous:
        signal.signal(s, signal.SIG_IGN)


def _run(args: argparse.Namespace) -> int:
    """Run a parsed command with fd 1 pointing at stderr and results routed to the real stdout."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced (tests capturing in-process)
        return int(args.func(args) or 0)
    sys.stdout.flush()
    saved = os.dup(fd)
    results = open(saved, "w", encoding=sys.stdout.encoding or "utf-8", errors="replace",  # noqa: SIM115
                   buffering=1, closefd=True)
    original = sys.stdout
    os.dup2(sys.stderr.fileno(), fd)
    sys.stdout = _ResultsOnlyStdout(results, sys.stderr)
    done = False
    try:
        code = int(args.func(args) or 0)
        done = True
        return code
    finally:
        sys.stdout = original
        try:
            original.flush()
        finally:
            os.dup2(saved, fd)
            try:
                with _writing_stdout():
                    results.close()
            except BrokenPipeError:
                pass
            except _StdoutError:
                if done:  # else the error already on its way says more
                    raise


def _split_verbose(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Take ``-v``/``--verbose`` from anywhere before a ``--``."""
    rest: list[str] = []
    verbose = False
    for i, tok in enumerate(argv):
        if tok == "--":
            rest.extend(argv[i:])
            break
        if tok in ("-v", "--verbose"):
            verbose = True
        else:
            rest.append(tok)
    return rest, verbose


def _silence_stdout() -> None:
    """After a broken pipe or a failed write: point stdout at /dev/null so the exit flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1 if sys.stdout is None else sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _report(line: str) -> None:
    """The one line a failed command prints on stderr (nothing, when stderr itself is gone)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (AttributeError, OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anyedge`` command; returns the exit code (see :data:`EXIT_CODES`)."""
    from .signing_cli import trust_scope

    previous = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, _on_signal)
    except ValueError:  # not the main thread
        pass
    verbose = False
    code, line = EXIT_OK, ""
    try:
        try:
            try:
                if sys.stdout is None:  # started with stdout closed (>&-): fd 1 may be reused by any file opened
                    _silence_stdout()
                    raise _StdoutError("stdout is closed; give the output somewhere to go (e.g. >/dev/null)")
                argv, verbose = _split_verbose(list(sys.argv[1:] if argv is None else argv))
                args = build_parser().parse_args(argv)
                args.verbose = verbose
                logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                                    format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
                with trust_scope(args):  # --trust KEYS: $ANYEDGE_TRUSTED_KEYS for this command
                    code = _run(args)
                sys.stdout.flush()
            except BrokenPipeError:
                _silence_stdout()
                code = EXIT_PIPE
            except AnyEdgeError as e:
                if verbose:
                    traceback.print_exc()
                code, line = EXIT_USAGE, f"anyedge: error: {_one_line(e)}"
            except _StdoutError as e:
                if verbose:
                    traceback.print_exc()
                _silence_stdout()
                code, line = EXIT_PIPE, f"anyedge: error: {e}"
            except Exception as e:  # noqa: BLE001 - the last line of defence: one line, exit 1
                if verbose:
                    traceback.print_exc()
                hint = "" if verbose else " (run with -v for the traceback)"
                code, line = EXIT_PARTIAL, f"anyedge: error: {type(e).__name__}: {_one_line(e)}{hint}"
        except KeyboardInterrupt:  # also while an error above was being handled
            code, line = EXIT_INTERRUPTED, "anyedge: interrupted"
        except _Terminated:
            code, line = EXIT_TERMINATED, "anyedge: terminated"
        finally:
            _quiet(previous)
        if line:
            _report(line)
    finally:  # also when argparse exits (--help, a usage error)
        for s, h in previous.items():
            signal.signal(s, h)
    return code


if __name__ == "__main__":
    sys.exit(main())
