"""Throughput of N worker threads: one shared detector vs one detector per thread.

Each mode runs the same images from N threads (engine threads = 1 per detector so the modes
are comparable), interleaved mode by mode within every repeat; the median images/second over
the repeats is reported with the ratio per-thread / shared. Results go to
benchmarks/results/thread_throughput.{json,csv}.

    python benchmarks/thread_throughput.py [--model yunet-n-320] [--engines a,b] [--workers 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, markdown_table, median, use_shared_models, write_results  # noqa: E402


def _run(dets: list, images: list, workers: int) -> float:
    """Images per second when ``workers`` threads split ``images`` (thread t uses dets[t % len])."""
    start = threading.Barrier(workers + 1)

    def work(t: int) -> None:
        det = dets[t % len(dets)]
        start.wait()
        for img in images[t::workers]:
            det.detect(img)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(workers)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    return len(images) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="yunet-n-320", help="registry name (default: yunet-n-320)")
    ap.add_argument("--engines", default=None, help="comma-separated (default: every engine that reads it)")
    ap.add_argument("--workers", type=int, default=2, help="worker threads (default: 2)")
    ap.add_argument("--images", type=int, default=40, help="WIDER images per pass (default: 40)")
    ap.add_argument("--repeat", type=int, default=5, help="passes per mode (default: 5)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    use_shared_models()

    import cv2

    from anyedge import FaceDetector
    from anyedge.engines import engines_for
    from anyedge.registry import resolve_model

    paths = sorted((SHARED / "data" / "widerface_val" / "images").glob("*.jpg"))[: args.images]
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    engines = args.engines.split(",") if args.engines else engines_for(resolve_model(args.model)[0])
    rows = []
    for engine in engines:
        shared = [FaceDetector.create(args.model, engine=engine, threads=1)]
        own = [FaceDetector.create(args.model, engine=engine, threads=1) for _ in range(args.workers)]
        for d in (*shared, *own):  # warm up every instance
            d.detect(images[0])
        rate: dict[str, list[float]] = {"shared": [], "per_thread": [], "serial": []}
        for _ in range(args.repeat):
            rate["serial"].append(_run(shared, images, 1))
            rate["shared"].append(_run(shared, images, args.workers))
            rate["per_thread"].append(_run(own, images, args.workers))
        for d in (*shared, *own):
            d.close()
        row = {"model": args.model, "engine": engine, "workers": args.workers,
               **{f"{k}_img_s": round(median(v), 1) for k, v in rate.items()}}
        row["per_thread_vs_shared"] = round(row["per_thread_img_s"] / row["shared_img_s"], 2)
        row["shared_vs_serial"] = round(row["shared_img_s"] / row["serial_img_s"], 2)
        rows.append(row)
        print(f"{engine}: {row}", file=sys.stderr)
    cols = ["model", "engine", "workers", "serial_img_s", "shared_img_s", "per_thread_img_s",
            "shared_vs_serial", "per_thread_vs_shared"]
    print(markdown_table(rows, cols))
    write_results("thread_throughput", rows, {"repeat": args.repeat, "images": len(images)},
                  Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
