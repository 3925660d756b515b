"""Face-detection latency per model x engine over the 150 WIDER FACE val images.

For every image it times the whole ``detect()`` call and the engine call alone, so the SDK's
own overhead (validation, letterbox, normalisation, decoding, NMS) shows as a ratio.
Medians and p90 over all images; results go to benchmarks/results/detect_latency.{json,csv}.
`anyedge bench` (sdk/bench/) measures the same ratio per row, beside load, memory, throughput and fidelity.

    python benchmarks/detect_latency.py [--models a,b] [--engines e1,e2] [--threads 1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, markdown_table, median, pct, use_shared_models, write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="comma-separated (default: every face detector present)")
    ap.add_argument("--engines", default=None, help="comma-separated (default: every installed engine)")
    ap.add_argument("--images", default=str(SHARED / "data" / "widerface_val" / "images"))
    ap.add_argument("--threads", type=int, default=None, help="engine threads (default: engine default)")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the images")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    use_shared_models()

    import cv2

    from anyedge import FaceDetector
    from anyedge.engines import engines_for
    from anyedge.registry import find_model_file, list_models

    folder = Path(args.images)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}) if folder.is_dir() else []
    if not paths:
        print(f"no images in {folder}: pass --images DIR with some photos", file=sys.stderr)
        return 2
    images = [cv2.imread(str(p)) for p in paths]
    models = args.models.split(",") if args.models else [
        m.name for m in list_models() if m.task == "face_detection" and find_model_file(m)]
    wanted = set(args.engines.split(",")) if args.engines else None
    rows = []
    for model in models:
        info = next(m for m in list_models() if m.name == model)
        for engine in engines_for(info.filename):
            if wanted and engine not in wanted:
                continue
            with FaceDetector.create(model, engine=engine, channels="BGR", threads=args.threads) as det:
                for img in images[: args.warmup]:
                    det.detect(img)
                total, eng, faces = [], [], []
                for _ in range(args.repeat):
                    for img in images:
                        f = det.detect(img)
                        total.append(det.last_timing["total"] * 1e3)
                        eng.append(det.last_timing["engine"] * 1e3)
                        faces.append(len(f))
            row = {
                "model": model, "engine": engine, "input": f"{det.input_size[0]}x{det.input_size[1]}",
                "images": len(total), "detect_median_ms": median(total), "detect_p90_ms": pct(total, 0.9),
                "engine_median_ms": median(eng), "engine_p90_ms": pct(eng, 0.9),
                "overhead_ratio": median(total) / median(eng), "mean_faces": sum(faces) / len(faces),
            }
            rows.append(row)
            print(f"{model:20} {engine:12} detect {row['detect_median_ms']:7.2f} ms (p90 {row['detect_p90_ms']:7.2f}) "
                  f"engine {row['engine_median_ms']:7.2f} ms  x{row['overhead_ratio']:.2f}  faces/img {row['mean_faces']:.1f}",
                  flush=True)
    out = Path(args.out) if args.out else None
    j, c = write_results("detect_latency", rows, {"threads": args.threads, "repeat": args.repeat,
                                                   "images_dir": str(args.images)}, out)
    print()
    print(markdown_table(rows, ["model", "engine", "input", "detect_median_ms", "detect_p90_ms",
                                "engine_median_ms", "engine_p90_ms", "overhead_ratio", "mean_faces"]))
    print(f"\nwritten {j} and {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
