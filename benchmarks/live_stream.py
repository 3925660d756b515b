"""`anyedge run` on a 30 fps clip with a model slower than real time: FPS, latency, dropped frames.

Builds a 640x480, 30 fps MJPG clip from the WIDER FACE val images (each photo held for 4 frames),
then runs the live loop twice on it, paced like a camera:

* ``drop-queue``: anyedge's capture thread with a 1-frame queue (what ``anyedge run`` does),
  through the real command (``anyedge run --json``), so its per-second stats are what a user sees;
* ``unbounded``: the same loop with a queue that never drops, to show what dropping avoids.

Latency is capture-to-result. Flatness is shown as the median latency per tenth of the clip.
Results go to benchmarks/results/live_stream.{json,csv}.

    python benchmarks/live_stream.py [--model scrfd-500m] [--threads 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, median, pct, use_shared_models, write_results  # noqa: E402


def make_clip(path: Path, seconds: float, fps: float = 30.0, size: tuple[int, int] = (640, 480)) -> int:
    import cv2

    photos = sorted((SHARED / "data" / "widerface_val" / "images").glob("*.jpg"))
    n = int(seconds * fps)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        w.write(cv2.resize(cv2.imread(str(photos[(i // 4) % len(photos)])), size))
    w.release()
    return n


def tenths(lat: list[float]) -> list[float]:
    k = max(1, len(lat) // 10)
    return [round(median(lat[i:i + k]), 1) for i in range(0, k * 10, k) if lat[i:i + k]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="scrfd-500m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    use_shared_models()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip30.avi"
        frames = make_clip(clip, args.seconds)

        # 1) the real command
        r = subprocess.run([sys.executable, "-m", "anyedge.cli", "run", "--source", str(clip), "--model", args.model,
                            "--threads", str(args.threads), "--json"], capture_output=True, text=True, check=True)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        lat = [x["latency_ms"] for x in lines if x["type"] == "frame"]
        inf = [x["infer_ms"] for x in lines if x["type"] == "frame"]
        s = lines[-1]
        per_second = [x for x in lines if x["type"] == "stats"]
        rows.append({"mode": "drop-queue (anyedge run)", "frames": frames, "captured": s["captured"],
                     "processed": s["processed"], "dropped": s["dropped"], "fps": s["fps"],
                     "infer_ms_median": round(median(inf), 1), "latency_ms_median": round(median(lat), 1),
                     "latency_ms_p90": round(pct(lat, 0.9), 1), "latency_ms_max": round(max(lat), 1),
                     "latency_median_per_tenth": tenths(lat), "infer_median_per_tenth": tenths(inf),
                     "per_second_fps": [x["fps"] for x in per_second],
                     "per_second_latency_ms": [x["latency_ms"] for x in per_second]})

        # 2) the same loop without dropping (what a plain producer/consumer queue does)
        from anyedge import FaceDetector
        from anyedge.live import open_source, run_live

        with FaceDetector.create(args.model, channels="BGR", threads=args.threads) as det:
            lat2: list[float] = []
            inf2: list[float] = []
            s2 = run_live(open_source(str(clip)), det.detect, queue_size=10**6, pace=True,
                          on_frame=lambda i, f, res, la, nf: (lat2.append(la), inf2.append(nf)))
        rows.append({"mode": "unbounded queue", "frames": frames, "captured": s2.captured,
                     "processed": s2.processed, "dropped": s2.dropped, "fps": round(s2.processed / s2.seconds, 2),
                     "infer_ms_median": round(median(inf2), 1), "latency_ms_median": round(median(lat2), 1),
                     "latency_ms_p90": round(pct(lat2, 0.9), 1), "latency_ms_max": round(max(lat2), 1),
                     "latency_median_per_tenth": tenths(lat2), "infer_median_per_tenth": tenths(inf2),
                     "per_second_fps": [], "per_second_latency_ms": []})
    meta = {"model": args.model, "threads": args.threads, "clip": f"{frames} frames, 640x480, 30 fps, MJPG",
            "note": "machine shared with other jobs: absolute numbers are noisy; compare the rows"}
    jpath, _ = write_results("live_stream", rows, meta, Path(args.out) if args.out else None)
    for row in rows:
        print(f"{row['mode']:26} processed {row['processed']}/{row['captured']} dropped {row['dropped']} "
              f"fps {row['fps']} infer {row['infer_ms_median']} ms latency median {row['latency_ms_median']} "
              f"p90 {row['latency_ms_p90']} max {row['latency_ms_max']} ms")
        print(f"{'':26} latency median per tenth of the clip: {row['latency_median_per_tenth']}")
        print(f"{'':26} inference median per tenth:           {row['infer_median_per_tenth']}")
    print(f"results: {jpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
