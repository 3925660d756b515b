"""`anyedge run --serve` with no viewer and with 20: inference FPS, and what serving costs in CPU.

Builds a 640x480, 30 fps MJPG clip from the WIDER FACE val images (each photo held for 4 frames),
then runs the real command on it with ``--every-frame`` (every frame processed, so FPS is the
loop's throughput) and ``--serve 127.0.0.1:0``, once with nobody watching and once with N
viewers reading ``/stream.mjpg`` from the moment the URL is printed, alternating the two
``--repeat`` times (this machine is shared: alternating spreads other jobs' load over both).
The process's CPU time (user + system, from wait4) shows what drawing, JPEG encoding and
sending cost per processed frame. Results go to benchmarks/results/live_serve.{json,csv}.

    python benchmarks/live_serve.py [--model yunet] [--seconds 20] [--viewers 20] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, median, use_shared_models, wider_clip, write_results  # noqa: E402


def viewer(port: int, counts: list[int], k: int, stop: threading.Event) -> None:
    """Reads the stream as fast as it comes, counting JPEG parts."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            while not stop.is_set():
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                counts[k] += chunk.count(b"--anyedge-frame\r\n")
    except OSError:
        pass


def run_once(clip: Path, model: str, threads: int, viewers: int) -> dict:
    import json

    argv = [sys.executable, "-m", "anyedge.cli", "run", "--source", str(clip), "--model", model, "--every-frame",
            "--json", "--serve", "127.0.0.1:0", "--threads", str(threads)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:  # type: ignore[union-attr]
        m = re.search(r"live view at http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            break
    assert port is not None, "no URL on stderr"
    counts, stop = [0] * viewers, threading.Event()
    ts = [threading.Thread(target=viewer, args=(port, counts, k, stop), daemon=True) for k in range(viewers)]
    for t in ts:
        t.start()
    out = p.stdout.read()  # type: ignore[union-attr]
    p.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    assert p.returncode == 0, f"anyedge run failed ({p.returncode})"
    summary = json.loads(out.splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return {"viewers": viewers, "processed": summary["processed"], "fps": summary["fps"],
            "infer_ms_median": summary["infer_ms_median"], "latency_ms_median": summary["latency_ms"]["median"],
            "cpu_s": round(cpu, 2), "cpu_ms_per_frame": round(1e3 * cpu / summary["processed"], 2),
            "frames_per_viewer_median": median(counts) if counts else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="yunet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    use_shared_models()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip30.avi"
        frames = wider_clip(clip, args.seconds)
        for rep in range(args.repeat):
            for v in (0, args.viewers):
                t = time.monotonic()
                row = run_once(clip, args.model, args.threads, v)
                row.update(repeat=rep, wall_s=round(time.monotonic() - t, 1))
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    meta = {"model": args.model, "threads": args.threads, "clip_frames": frames, "size": "640x480",
            "command": "anyedge run --every-frame --json --serve 127.0.0.1:0"}
    paths = write_results("live_serve", rows, meta, Path(args.out) if args.out else None)
    print(markdown_table(rows, ["viewers", "repeat", "processed", "fps", "infer_ms_median", "cpu_ms_per_frame",
                                "frames_per_viewer_median"]))
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
