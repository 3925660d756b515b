"""`anyedge run` on a clip faster than the model: FPS, latency and dropped frames, per worker count.

Builds a 30 fps (``--fps``) 640x480 (``--size``) MJPG clip from the WIDER FACE val images (each
photo held for 4 frames), then runs the live loop on it, paced like a camera:

* ``anyedge run --workers N``: anyedge's capture thread with a 1-frame queue, through the real
  command (``anyedge run --json``), once for each N of ``--workers`` (default 1 and 2), the
  sequence repeated ``--repeat`` times (1, 2, 1, 2, ...) so that a machine whose load changes
  affects every N alike; the table gives each N's median over the repeats;
* ``unbounded``: the same loop with one worker and a queue that never drops, to show what
  dropping avoids (``--no-unbounded`` skips it).

Latency is capture-to-result. Flatness is shown as the median latency per tenth of the clip.
The load average before each run is recorded, and the CPU time each command took: per processed
frame (everything included: start-up, capture, inference, JSON), and as a share of the machine
over the clip's length (100 %: every core busy for this command alone). On a shared machine a
low share means other jobs held the cores; compare the rows of one run.
Results go to benchmarks/results/live_stream.{json,csv}.

    python benchmarks/live_stream.py [--model scrfd-500m] [--workers 1,2] [--repeat 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, pct, use_shared_models, wider_clip, write_results  # noqa: E402


def tenths(lat: list[float]) -> list[float]:
    k = max(1, len(lat) // 10)
    return [round(median(lat[i:i + k]), 1) for i in range(0, k * 10, k) if lat[i:i + k]]


def run_command(clip: Path, model: str, workers: int, threads: int | None, engine: str | None) -> dict:
    """One `anyedge run --json` on the clip: its summary, per-frame latencies and per-second stats."""
    cmd = [sys.executable, "-m", "anyedge.cli", "run", "--source", str(clip), "--model", model,
           "--workers", str(workers), "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    if engine:
        cmd += ["--engine", engine]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    lat = [x["latency_ms"] for x in lines if x["type"] == "frame"]
    inf = [x["infer_ms"] for x in lines if x["type"] == "frame"]
    s = lines[-1]
    per_second = [x for x in lines if x["type"] == "stats"]
    return {"mode": f"anyedge run --workers {workers}", "workers": s["workers"], "engine": s["engine"],
            "frames": None, "captured": s["captured"], "processed": s["processed"], "dropped": s["dropped"],
            "fps": s["fps"], "infer_ms_median": round(median(inf), 1), "latency_ms_median": round(median(lat), 1),
            "latency_ms_p90": round(pct(lat, 0.9), 1), "latency_ms_max": round(max(lat), 1),
            "load_before": round(load, 2), "cpu_s": round(cpu, 2),
            "cpu_ms_per_frame": round(cpu * 1e3 / s["processed"], 1) if s["processed"] else None,
            "latency_median_per_tenth": tenths(lat),
            "infer_median_per_tenth": tenths(inf), "per_second_fps": [x["fps"] for x in per_second],
            "per_second_latency_ms": [x["latency_ms"] for x in per_second]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="scrfd-500m")
    ap.add_argument("--engine", default=None, help="engine to run on (default: the model's own)")
    ap.add_argument("--threads", type=int, default=None,
                    help="passed to anyedge run (default: none, the engine's own, or shared out by --workers)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare, comma-separated (default: 1,2)")
    ap.add_argument("--repeat", type=int, default=1, help="run the worker counts this many times, interleaved")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=30.0, help="the clip's frame rate (default: 30)")
    ap.add_argument("--size", default="640x480", help="the clip's WIDTHxHEIGHT (default: 640x480)")
    ap.add_argument("--no-unbounded", action="store_true", help="skip the never-dropping queue")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    size = tuple(int(v) for v in args.size.lower().split("x"))
    use_shared_models()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        frames = wider_clip(clip, args.seconds, args.fps, size)  # type: ignore[arg-type]

        # 1) the real command, each worker count in turn
        for rep in range(args.repeat):
            for n in counts:
                row = run_command(clip, args.model, n, args.threads, args.engine)
                rows.append({**row, "frames": frames, "repeat": rep + 1})
                print(f"run {rep + 1} workers {n}: fps {row['fps']} latency median {row['latency_ms_median']} "
                      f"p90 {row['latency_ms_p90']} ms (load {row['load_before']})", file=sys.stderr)

        # 2) the same loop without dropping (what a plain producer/consumer queue does)
        if not args.no_unbounded:
            from anyedge import FaceDetector
            from anyedge.live import open_source, run_live

            with FaceDetector.create(args.model, engine=args.engine, channels="BGR", threads=args.threads) as det:
                lat2: list[float] = []
                inf2: list[float] = []
                s2 = run_live(open_source(str(clip)), det.detect, queue_size=10**6, pace=True,
                              on_frame=lambda i, f, res, la, nf: (lat2.append(la), inf2.append(nf)))
            rows.append({"mode": "unbounded queue", "workers": 1, "engine": det.engine.name, "frames": frames,
                         "captured": s2.captured, "processed": s2.processed, "dropped": s2.dropped,
                         "fps": round(s2.processed / s2.seconds, 2), "infer_ms_median": round(median(inf2), 1),
                         "latency_ms_median": round(median(lat2), 1), "latency_ms_p90": round(pct(lat2, 0.9), 1),
                         "latency_ms_max": round(max(lat2), 1), "latency_median_per_tenth": tenths(lat2),
                         "infer_median_per_tenth": tenths(inf2), "per_second_fps": [], "per_second_latency_ms": []})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    summary = []
    for n in counts:
        mine = [r for r in rows if r["mode"] == f"anyedge run --workers {n}"]
        summary.append({"workers": n, "runs": len(mine), "fps": round(median([r["fps"] for r in mine]), 1),
                        "latency_ms_median": round(median([r["latency_ms_median"] for r in mine]), 1),
                        "latency_ms_p90": round(median([r["latency_ms_p90"] for r in mine]), 1),
                        "infer_ms_median": round(median([r["infer_ms_median"] for r in mine]), 1),
                        "dropped": round(median([r["dropped"] for r in mine])),
                        "cpu_ms_per_frame": round(median([r["cpu_ms_per_frame"] for r in mine]), 1),
                        "cpu_share": round(median([r["cpu_s"] / (r["captured"] / args.fps) for r in mine]) / cores, 2),
                        "load_before": [r["load_before"] for r in mine]})
    meta = {"model": args.model, "engine": args.engine, "threads": args.threads, "workers": counts,
            "repeat": args.repeat, "cores": cores,
            "clip": f"{frames} frames, {size[0]}x{size[1]}, {args.fps:g} fps, MJPG", "per_workers": summary,
            "note": "machine shared with other jobs: absolute numbers are noisy; compare the rows"}
    jpath, _ = write_results("live_stream", rows, meta, Path(args.out) if args.out else None)
    print(f"{args.model}, {meta['clip']}, {meta['cores']} cores (medians over {args.repeat} run(s) each)")
    print("| workers | FPS | latency median / p90 | inference median | dropped | CPU per frame | CPU share "
          "| load before |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['workers']} | {s['fps']} | {s['latency_ms_median']} / {s['latency_ms_p90']} ms | "
              f"{s['infer_ms_median']} ms | {s['dropped']} | {s['cpu_ms_per_frame']} ms | {s['cpu_share']:.0%} | "
              f"{', '.join(str(x) for x in s['load_before'])} |")
    for row in rows:
        if row["mode"] == "unbounded queue":
            print(f"unbounded queue: processed {row['processed']}/{row['captured']} fps {row['fps']} latency median "
                  f"{row['latency_ms_median']} p90 {row['latency_ms_p90']} max {row['latency_ms_max']} ms")
            print(f"  latency median per tenth of the clip: {row['latency_median_per_tenth']}")
    print(f"results: {jpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
