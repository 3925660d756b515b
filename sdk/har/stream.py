"""``anyedge har stream``: classify IMU samples arriving as CSV lines (stdin, a file or a serial device).

One line per sample, the channels comma-separated in the model's order (``acc_x,acc_y,acc_z,gyr_x,
gyr_y,gyr_z`` for the shipped models); blank lines and ``#`` comments are skipped, and so is a
header line before the first sample. A label is printed per hop as soon as its window is full,
so a board can pipe its IMU straight in::

    imu-reader | anyedge har stream --model bnn-basicmotions --json
    anyedge har stream --model bnn-racketsports --source /dev/ttyACM0

Only numpy and the classifier are imported: no OpenCV, no vision engine.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from ..cli_args import positive_int
from ..errors import InputError

__all__ = ["add_stream_parser", "csv_samples", "MAX_LINE_CHARS"]

MAX_LINE_CHARS = 4096  # one sample line: channels of numbers, far below this; longer is refused, not buffered


def csv_samples(lines: IO[str] | Any, channels: int) -> Iterator[list[float]]:
    """Parse CSV sample lines into rows of ``channels`` floats.

    A header line (channel names, none of them a number) may come before the first sample.

    Raises:
        InputError: a data line that is not ``channels`` comma-separated numbers, a first line that is
            neither numbers nor a header of names, or a line over :data:`MAX_LINE_CHARS` (naming the line).
    """
    seen_data = False
    for n, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE_CHARS + 1:
            raise InputError(f"line {n}: longer than {MAX_LINE_CHARS} characters; expected one sample of "
                             f"{channels} comma-separated numbers")
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.replace(";", ",").split(",")]
        try:
            row = [float(p) for p in parts]
        except ValueError:
            if not seen_data and _is_header(parts):  # such as "acc_x,acc_y,..."
                seen_data = True
                continue
            first = " (or a header of channel names)" if not seen_data else ""
            raise InputError(f"line {n}: expected {channels} comma-separated numbers{first}, "
                             f"got {line[:60]!r}") from None
        if len(row) != channels:
            raise InputError(f"line {n}: expected {channels} values (one per channel), got {len(row)}: {line[:60]!r}")
        seen_data = True
        yield row


def _is_header(fields: list[str]) -> bool:
    """Names, not numbers: every field non-empty and none of them parses as a number."""
    for f in fields:
        if not f:
            return False
        try:
            float(f)
        except ValueError:
            continue
        return False
    return True


def _open_source(source: str, baud: int) -> IO[str]:
    if source == "-":
        return sys.stdin
    path = Path(source)
    if not path.exists():
        raise InputError(f"--source {source}: no such file or device")
    if stat.S_ISCHR(os.stat(path).st_mode):
        try:
            import serial  # type: ignore[import-not-found]
        except ImportError:  # a tty already set up with `stty -F DEV BAUD raw` reads as a file
            return open(path, encoding="ascii", errors="replace")  # noqa: SIM115
        return serial.Serial(str(path), baud, timeout=None)  # pragma: no cover - needs a device
    from ..inputs import open_regular

    return open_regular(path, "CSV file or serial device", encoding="utf-8", errors="replace")


class _SerialLines:
    """Text lines from a pyserial port."""

    def __init__(self, port: Any) -> None:
        self.port = port

    def __iter__(self) -> Iterator[str]:  # pragma: no cover - needs a device
        while True:
            raw = self.port.readline()
            if not raw:
                return
            yield raw.decode("ascii", errors="replace")


def _until_hangup(lines: Any) -> Iterator[str]:
    """Lines until the end; a serial/pty device that hangs up (EIO) ends the stream too."""
    try:
        yield from lines
    except OSError as e:
        if e.errno != errno.EIO:
            raise
        print("anyedge: the sensor device hung up; stream ended", file=sys.stderr)


def _stream(args: argparse.Namespace) -> int:
    from ..tasks.activity_classifier import ActivityClassifier

    from ..inputs import bounded_lines

    src = _open_source(args.source, args.baud)
    lines = (bounded_lines(src, MAX_LINE_CHARS, "CSV sample line") if not hasattr(src, "in_waiting")
             else _SerialLines(src))
    lines = _until_hangup(lines)
    try:
        with ActivityClassifier.create(args.model, engine=args.engine) as clf:
            for r in clf.stream(csv_samples(lines, clf.channels), hop=args.hop):
                if args.json:
                    print(json.dumps({"start": r.start, "label": r.label, "score": round(float(r.score), 6)}),
                          flush=True)
                else:
                    print(f"{r.start}\t{r.label}\t{r.score:.3f}", flush=True)
    finally:
        if src is not sys.stdin:
            src.close()
    return 0


def add_stream_parser(sub: Any) -> None:
    """Add ``stream`` to the ``har`` sub-commands."""
    from ..signing.cli import add_trust_argument

    s = sub.add_parser("stream", help="classify CSV sensor samples from stdin or a serial device, a label per hop",
                       description="Classify IMU samples given as CSV lines (one sample per line, channels "
                                   "comma-separated in the model's order), printing a label per hop.",
                       epilog="examples:\n  imu-reader | anyedge har stream --model bnn-basicmotions --json\n"
                              "  anyedge har stream --model bnn-racketsports --source /dev/ttyACM0 --hop 10")
    s.add_argument("--model", default="bnn-racketsports", help="model name or bundle path (default: %(default)s)")
    s.add_argument("--engine", default=None, help="engine name, e.g. bnn (default: the bundle's)")
    s.add_argument("--source", default="-",
                   help="'-' for stdin, a CSV file, or a serial device such as /dev/ttyACM0 (default: stdin)")
    s.add_argument("--baud", type=positive_int, default=115200,
                   help="serial speed when --source is a device and pyserial is installed (default: %(default)s)")
    s.add_argument("--hop", type=positive_int, default=None, help="samples between windows (default: half a window)")
    s.add_argument("--json", action="store_true", help='one JSON object per window: {"start", "label", "score"}')
    add_trust_argument(s)
    s.set_defaults(func=_stream)
