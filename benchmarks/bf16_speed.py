"""OpenVINO CPU: the same float model computed in bf16 vs fp32 -- latency and F1 on the same images.

Both detectors run the registry's float model on OpenVINO's CPU plugin, one with
``precision="fp32"`` (anyedge's default), one with ``precision="bf16"``, interleaved image by
image over the held-back third of the WIDER images; medians of the engine call and the whole
``detect()``, and F1 / mean IoU of the bf16 faces against the fp32 faces. On a CPU without
bf16 (no AMX / AVX-512 BF16: OpenVINO lists no ``BF16`` capability) there is nothing to
measure and the script says so.

    python benchmarks/bf16_speed.py [--models scrfd-500m,yunet] [--threads 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, markdown_table, median, use_shared_models, write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="scrfd-500m,yunet")
    ap.add_argument("--images", default=str(SHARED / "data" / "widerface_val" / "images"))
    ap.add_argument("--threads", type=int, default=1, help="engine threads (0: the engine's default)")
    ap.add_argument("--runs", type=int, default=3, help="timed passes over the images")
    args = ap.parse_args()
    use_shared_models()

    from anyedge import FaceDetector
    from anyedge.converters.calibration import list_images, read_bgr, split_images
    from anyedge.converters.fidelity import face_fidelity
    from anyedge.engines.openvino import cpu_supports

    import openvino as ov

    caps = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if not cpu_supports("bf16"):
        print(f"this CPU has no bf16 (OpenVINO CPU capabilities: {', '.join(caps)}); nothing to measure")
        write_results("bf16_speed", [], {"capabilities": caps, "bf16": False, **machine()}, None)
        return 0
    images = [read_bgr(f) for f in split_images(list_images(args.images))[1]]
    rows: list[dict[str, Any]] = []
    for model in args.models.split(","):
        kw = {"engine": "openvino", "channels": "BGR", "threads": args.threads or None}
        with FaceDetector.create(model, engine_options={"precision": "fp32"}, **kw) as f32, \
                FaceDetector.create(model, engine_options={"precision": "bf16"}, **kw) as b16:
            assert (f32.engine.precision, b16.engine.precision) == ("fp32", "bf16")
            t: dict[str, list[float]] = {"fe": [], "be": [], "ft": [], "bt": []}
            ref, got = [], []
            for r in range(args.runs):
                for i, img in enumerate(images):
                    pair = [(f32, "f"), (b16, "b")][:: 1 if i % 2 else -1]
                    for det, tag in pair:
                        faces = det.detect(img)
                        t[f"{tag}e"].append(det.last_timing["engine"] * 1e3)
                        t[f"{tag}t"].append(det.last_timing["total"] * 1e3)
                        if r == 0:
                            (ref if tag == "f" else got).append(faces)
        a = face_fidelity(ref, got)
        m = {k: median(v) for k, v in t.items()}
        rows.append({"model": model, "fp32_engine_ms": m["fe"], "bf16_engine_ms": m["be"],
                     "engine_ratio": m["be"] / m["fe"], "fp32_detect_ms": m["ft"], "bf16_detect_ms": m["bt"],
                     "detect_ratio": m["bt"] / m["ft"], "f1": a.f1, "mean_iou": a.mean_iou,
                     "reference_faces": a.reference_faces, "images": len(images)})
    write_results("bf16_speed", rows, {"capabilities": caps, "bf16": True, "threads": args.threads, **machine()},
                  None)
    print(markdown_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
