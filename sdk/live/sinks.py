"""Sinks: where a live run's results go (JSON lines, a status line, an annotated video).

The loop (:mod:`.loop`) hands each result to ``on_frame`` and a stats dict to ``on_second``;
the functions here turn them into output. JSON lines and the summary go to stdout, the human
status line to stderr.

Annotated video files are written atomically (temp file, then rename). OpenCV picks a container
from the file name's suffix, so the temporary file keeps the final suffix
(``.clip.annotated.1234.part.mp4``); a writer that cannot open is an error at once rather than
a silently empty file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["AtomicVideoWriter", "frame_record", "track_record", "print_json", "status_line", "print_stats", "print_summary"]


# -- JSON lines and the status line ----------------------------------------------------------
def frame_record(index: int, faces: Any, latency_ms: float, infer_ms: float, *,
                 tracks: Any = None) -> dict[str, Any]:
    """The JSON line of one processed frame.

    With ``tracks`` (one public track id per face, ``-1`` for none) each face gains ``track``:
    the id, or ``null`` while its track is tentative.

    ``faces`` is anything with ``to_list()``: :class:`~anyedge.results.FaceDetections` (``box``,
    ``score``, ``keypoints``), or, when a gallery named them,
    :class:`~anyedge.recognition.pipeline.RecognizedFaces`, whose faces have the keys of
    ``anyedge gallery identify --json`` (``box``, ``keypoints``, ``name``, ``score``: the gallery
    cosine, ``detection_score``).
    """
    listed = faces.to_list()
    if tracks is not None:
        for face, tid in zip(listed, [int(t) for t in tracks]):
            face["track"] = tid if tid >= 0 else None
    return {"type": "frame", "frame": index, "latency_ms": round(latency_ms, 2),
            "infer_ms": round(infer_ms, 2), "faces": listed}


def track_record(track: Any, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON line of a confirmed track that ended (:class:`~anyedge.live.tracking.Track`).

    ``first_seen`` / ``last_seen`` are frame numbers, ``frames`` the frames it was matched in;
    ``name``, ``score`` and ``embeddings`` (how many times its face was embedded) come from
    ``identity`` (a gallery's per-track verdict) and are ``null`` / ``0`` without one.
    """
    ident = identity or {"name": None, "score": None, "embeddings": 0}
    return {"type": "track", "track": track.id, "first_seen": track.first_seen, "last_seen": track.last_seen,
            "frames": track.hits, "name": ident["name"], "score": ident["score"], "embeddings": ident["embeddings"]}


def print_json(doc: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (a frame, a stats line or the summary)."""
    print(json.dumps(doc), flush=True)


def status_line(stats: dict[str, Any]) -> str:
    """The human one-line view of a stats dict from :func:`anyedge.live.run_live`'s ``on_second``."""
    return (f"{stats['fps']:6.1f} fps | latency {stats['latency_ms']:7.1f} ms (max {stats['latency_max_ms']:.0f}) "
            f"| dropped {stats['dropped']} | processed {stats['processed']}")


def print_stats(stats: dict[str, Any], *, tty: bool) -> None:
    """The status line on stderr: rewritten in place on a terminal, one line per second otherwise."""
    if tty:
        print("\r" + status_line(stats), end="", file=sys.stderr, flush=True)
    else:
        print(status_line(stats), file=sys.stderr, flush=True)


def print_summary(doc: dict[str, Any], *, tty: bool) -> None:
    """The human summary of a run (:meth:`LiveSummary.to_dict <anyedge.live.LiveSummary.to_dict>`) on stdout."""
    if tty:
        print(file=sys.stderr)  # end the status line
    lat = doc["latency_ms"]
    print(f"{doc['source']}: {doc['processed']} frames processed of {doc['captured']} captured, "
          f"{doc['dropped']} dropped, {doc['fps']} fps over {doc['seconds']} s ({doc['stopped_by']}); "
          f"latency median {lat['median']} ms, p90 {lat['p90']} ms, max {lat['max']} ms; "
          f"inference median {doc['infer_ms_median']} ms" + (f" on {doc['workers']} workers" if doc.get("workers", 1) > 1 else "")
          + f"; {doc.get('tracks', 0)} tracks" + (f"; wrote {doc['out']}" if "out" in doc else "")
          + (f"; mqtt: {m['published']} events published, {m['dropped']} dropped, {m['pending']} not sent"
             if (m := doc.get("mqtt")) else ""))


# -- annotated video ------------------------------------------------------------------------
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class AtomicVideoWriter:
    """Frames go to a hidden temporary file beside ``path``; :meth:`commit` renames it into place.

    The writer opens on the first frame (its size sets the video's). :meth:`discard` removes the
    temporary file unless :meth:`commit` already ran, so a failure leaves nothing half-written.

    Args:
        path: final file (``.mp4``, ``.avi``, ``.mkv``, ``.mov``).
        fps: frames per second recorded in the file.

    Raises:
        InputError: unsupported suffix.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise InputError(f"video output {self.path}: expected one of {', '.join(sorted(_FOURCC))}, "
                             f"got {suffix or 'no suffix'}")
        if self.path.is_dir():
            raise InputError(f"video output {self.path} is a directory; expected a file name")
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.part{suffix}")
        self.frames = 0
        self._writer: Any = None
        self._done = False

    def write(self, bgr: Any) -> None:
        """Append one BGR ``(H, W, 3)`` uint8 frame."""
        import cv2

        if self._writer is None:
            h, w = bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()]),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                self.tmp.unlink(missing_ok=True)
                raise InputError(f"OpenCV cannot write {self.path.suffix} video here "
                                 f"({_FOURCC[self.path.suffix.lower()]} codec unavailable); try an .avi --out")
        self._writer.write(bgr)
        self.frames += 1

    def commit(self) -> Path:
        """Close the file and rename it to :attr:`path`; returns the path."""
        if self._writer is None:
            raise InputError(f"no frames were written to {self.path}")
        self._writer.release()
        self._writer = None
        os.replace(self.tmp, self.path)
        self._done = True
        return self.path

    def discard(self) -> None:
        """Drop the temporary file (no-op after :meth:`commit`)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if not self._done:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicVideoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
