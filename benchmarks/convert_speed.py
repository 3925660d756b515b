"""Float vs converted latency per model x target, measured in the same run, plus bundle sizes.

For every (model, target) pair the model is converted with ``anyedge.converters.api.convert`` (or an
existing bundle under ``--bundles`` is reused when its manifest names the same model, target and
float source sha256). Then the float registry model and the bundle are both opened on the bundle's
engine, with the same engine options (device / providers), the same thread count and the same
input size, and timed *interleaved*: per image one detector runs right after the other, the order
alternating from image to image, so background load and cache warmth hit both alike.

Timed images: by default the held-back third of ``--images`` (every 3rd file in sorted order,
index % 3 == 2 -- the same split ``convert`` uses, so these images were never used for
calibration; with the default WIDER folder that is 50 images). ``--subset all`` times every image.

Per row: medians and p90 of the engine call alone and of the whole ``detect()``, for float and
converted; ``*_ratio`` = converted / float on medians (< 1: the converted model is faster, > 1:
it is slower -- reported as measured); ``engine_ratio_paired`` = median of the per-image
converted/float engine-time ratios (each pair measured back to back, so less sensitive to load
drift); ``conv_faster_share`` = share of images on which the converted engine call was the faster
one; ``verdict`` reads ``engine_ratio`` with a +-5% band ("faster", "SLOWER", "same").
Also the bundle's bytes vs its float source, the precision achieved, the remedy and the
fidelity (F1, mean IoU vs the float model) from the manifest. Pairs that cannot be converted
(e.g. a .tflite model for an ONNX-only target) are listed with the reason.

Results go to benchmarks/results/convert_speed.{json,csv}; bundles to benchmarks/results/bundles.

    python benchmarks/convert_speed.py [--models a,b] [--targets t1,t2] [--threads 1,0] [--runs 5]

Thread count 0 means the engine's default. Runs on whatever hardware is here: the "runs_here_on"
note of a target (e.g. intel-npu falls back to OpenVINO CPU, jetson to ONNX Runtime CPU) applies,
and each row records where both detectors actually ran.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED, markdown_table, median, pct, use_shared_models, write_results  # noqa: E402

DEFAULT_IMAGES = SHARED / "data" / "widerface_val" / "images"


def _where(det: Any) -> str:
    """Where a detector's engine actually runs: OpenVINO device, ORT provider or engine name."""
    eng = det.engine
    if getattr(eng, "device", None):
        return f"{eng.name}:{eng.device}"
    if getattr(eng, "providers", None):
        return f"{eng.name}:{eng.providers[0].replace('ExecutionProvider', '')}"
    return eng.name


def _bundle_for(model: str, target: str, bundles: Path, calib: Path, log: logging.Logger) -> tuple[Any, bool, float]:
    """An up-to-date bundle of ``model`` for ``target``: reused if present, else converted.

    Returns:
        ``(bundle, reused, seconds spent converting)``.

    Raises:
        ConversionError (UnsupportedTargetError, FidelityError, ...): from ``convert``.
    """
    from anyedge.bundle import load_bundle
    from anyedge.converters import convert
    from anyedge.errors import AnyEdgeError
    from anyedge.registry import REGISTRY

    out = bundles / f"{model}__{target}"
    if (out / "manifest.json").is_file():
        try:
            b = load_bundle(out)
            m = b.manifest
            if (m.get("target") == target and m.get("model", {}).get("name") == model
                    and m.get("source", {}).get("sha256") == REGISTRY[model].sha256):
                return b, True, 0.0
            log.info("%s holds another model/target/source; converting again", out)
        except AnyEdgeError as e:
            log.info("%s is not a usable bundle (%s); converting again", out, e)
    elif out.exists():
        raise SystemExit(f"{out} exists and is not a bundle; move it away or pass another --bundles")
    t0 = time.perf_counter()
    res = convert(model, target=target, out=out, calibration=calib, show_progress=False)
    return res.bundle, False, time.perf_counter() - t0


def _time_pair(flt: Any, conv: Any, images: list[Any], runs: int, warmup: int) -> dict[str, list[float]]:
    """Interleaved timing: per image both detectors, order alternating; times in ms."""
    for i in range(min(warmup, len(images))):
        flt.detect(images[i])
        conv.detect(images[i])
    t: dict[str, list[float]] = {k: [] for k in ("f_eng", "f_tot", "c_eng", "c_tot", "f_faces", "c_faces")}
    gc.collect()
    k = 0
    for _ in range(runs):
        for img in images:
            order = ((flt, "f"), (conv, "c")) if k % 2 == 0 else ((conv, "c"), (flt, "f"))
            k += 1
            for det, tag in order:
                faces = det.detect(img)
                t[f"{tag}_eng"].append(det.last_timing["engine"] * 1e3)
                t[f"{tag}_tot"].append(det.last_timing["total"] * 1e3)
                t[f"{tag}_faces"].append(len(faces))
    return t


def _size_row(bundle: Any) -> dict[str, Any]:
    m = bundle.manifest
    on_disk = sum((bundle.root / name).stat().st_size for name in m["files"])
    src = int(m.get("source", {}).get("bytes") or 0)
    chosen = (m.get("fidelity") or {}).get("chosen") or {}
    agree = chosen.get("fidelity") or chosen.get("agreement") or {}
    return {
        "precision": m.get("precision"), "requested": m.get("requested_precision"), "remedy": m.get("remedy"),
        "source_file": m.get("source", {}).get("file"), "source_bytes": src, "bundle_bytes": on_disk,
        "size_ratio": round(on_disk / src, 4) if src else float("nan"),
        "f1": agree.get("f1"), "mean_iou": agree.get("mean_iou"), "score_drift": agree.get("mean_score_drift"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="blazeface-short,scrfd-500m,yunet")
    ap.add_argument("--targets", default="arm-cpu,intel-npu,mobile-gpu,jetson")
    ap.add_argument("--calib", default=str(DEFAULT_IMAGES), help="calibration folder for convert()")
    ap.add_argument("--images", default=str(DEFAULT_IMAGES), help="images to time on")
    ap.add_argument("--subset", choices=("held", "all"), default="held",
                    help="held: the held-back third (index %% 3 == 2); all: every image")
    ap.add_argument("--threads", default="1", help="comma-separated engine threads; 0 = engine default")
    ap.add_argument("--runs", type=int, default=5, help="timed passes over the images")
    ap.add_argument("--warmup", type=int, default=5, help="untimed images per detector first")
    ap.add_argument("--bundles", default=str(RESULTS / "bundles"), help="where bundles are kept and reused")
    ap.add_argument("--reconvert", action="store_true", help="convert again even when a bundle matches")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("anyedge.engines.openvino").setLevel(logging.ERROR)  # "no NPU here": recorded per row
    log = logging.getLogger("convert_speed")
    use_shared_models()

    from anyedge import FaceDetector
    from anyedge.converters.calibration import list_images, read_bgr, split_images
    from anyedge.errors import AnyEdgeError, UnsupportedTargetError
    from anyedge.registry import REGISTRY

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    files = list_images(args.images)
    files = split_images(files)[1] if args.subset == "held" else files
    images = [read_bgr(f) for f in files]
    threads = [int(x) for x in args.threads.split(",")]
    bundles = Path(args.bundles)
    if args.reconvert and bundles.exists():
        for d in bundles.iterdir():
            if (d / "manifest.json").is_file():
                shutil.rmtree(d)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for model in args.models.split(","):
        for target in args.targets.split(","):
            base = {"model": model, "target": target}
            try:
                bundle, reused, conv_s = _bundle_for(model, target, bundles, Path(args.calib), log)
            except UnsupportedTargetError as e:
                skipped.append({**base, "status": "unsupported", "reason": str(e)})
                print(f"{model:16} {target:11} unsupported: {e}", flush=True)
                continue
            except AnyEdgeError as e:  # FidelityError, ConversionError, ...: record and go on
                skipped.append({**base, "status": type(e).__name__, "reason": str(e)})
                print(f"{model:16} {target:11} {type(e).__name__}: {e}", flush=True)
                continue
            m = bundle.manifest
            engine = m["engine"]
            size = tuple(m["input"]["size"])
            dynamic = REGISTRY[model].input.dynamic
            eopts: dict[str, Any] = {}
            if engine == "openvino" and m.get("device"):
                eopts = {"device": m["device"], "fallback_device": "CPU"}
            elif engine == "onnxruntime" and m.get("providers"):
                eopts = {"providers": list(m["providers"])}
            sizes = _size_row(bundle)
            for th in threads:
                n = th or None
                with FaceDetector.create(model, engine=engine, threads=n, channels="BGR", engine_options=eopts,
                                         input_size=size if dynamic else None) as flt, \
                        FaceDetector.create(bundle.root, threads=n, channels="BGR") as conv:
                    if flt.input_size != conv.input_size:
                        raise SystemExit(f"{model}/{target}: float runs at {flt.input_size}, bundle at "
                                         f"{conv.input_size}; not comparable")
                    t = _time_pair(flt, conv, images, args.runs, args.warmup)
                    where_f, where_c = _where(flt), _where(conv)
                fe, ce, ft, ct = median(t["f_eng"]), median(t["c_eng"]), median(t["f_tot"]), median(t["c_tot"])
                paired = [c / f for c, f in zip(t["c_eng"], t["f_eng"]) if f > 0]
                row = {
                    **base, "engine": engine, "ran_on": where_c if where_c == where_f else f"{where_f} vs {where_c}",
                    "threads": th, "input": f"{size[0]}x{size[1]}", "timed": len(t["f_eng"]),
                    "precision": sizes["precision"],
                    "float_engine_ms": fe, "conv_engine_ms": ce, "engine_ratio": ce / fe,
                    "engine_ratio_paired": median(paired),
                    "conv_faster_share": sum(p < 1 for p in paired) / len(paired) if paired else float("nan"),
                    "float_engine_p90_ms": pct(t["f_eng"], 0.9), "conv_engine_p90_ms": pct(t["c_eng"], 0.9),
                    "float_detect_ms": ft, "conv_detect_ms": ct, "detect_ratio": ct / ft,
                    "float_detect_p90_ms": pct(t["f_tot"], 0.9), "conv_detect_p90_ms": pct(t["c_tot"], 0.9),
                    "verdict": "faster" if ce / fe < 0.95 else "SLOWER" if ce / fe > 1.05 else "same (within 5%)",
                    **{k: v for k, v in sizes.items() if k != "precision"},
                    "float_faces": sum(t["f_faces"]) / len(t["f_faces"]),
                    "conv_faces": sum(t["c_faces"]) / len(t["c_faces"]),
                    "bundle": "reused" if reused else f"converted in {conv_s:.1f} s",
                }
                rows.append(row)
                print(f"{model:16} {target:11} {row['ran_on']:22} t={th} {row['precision']:10} "
                      f"engine {fe:7.2f} -> {ce:7.2f} ms (x{row['engine_ratio']:.2f}, "
                      f"paired x{row['engine_ratio_paired']:.2f}) "
                      f"detect {ft:7.2f} -> {ct:7.2f} ms (x{row['detect_ratio']:.2f})  "
                      f"size x{row['size_ratio']:.2f}  F1 {row['f1']}  [{row['bundle']}]", flush=True)
    seconds = time.perf_counter() - t_start
    meta = {"models": args.models, "targets": args.targets, "threads": threads, "runs": args.runs,
            "warmup": args.warmup, "images_dir": str(args.images), "subset": args.subset, "timed_images": len(images),
            "calibration_dir": str(args.calib), "bundles_dir": str(bundles), "seconds": round(seconds, 1),
            "loadavg_start": round(load_start, 2), "loadavg_end": round(os.getloadavg()[0], 2),
            "ratio": "converted / float (< 1 faster); engine = engine call only; detect = whole detect()",
            "skipped": skipped}
    out = Path(args.out) if args.out else None
    j, c = write_results("convert_speed", rows + skipped, meta, out)
    print()
    print(markdown_table(rows, ["model", "target", "ran_on", "threads", "input", "precision",
                                "float_engine_ms", "conv_engine_ms", "engine_ratio", "engine_ratio_paired",
                                "conv_faster_share", "float_detect_ms", "conv_detect_ms", "detect_ratio", "verdict"]))
    print()
    per_bundle = list({(r["model"], r["target"]): r for r in rows}.values())  # sizes do not depend on threads
    print(markdown_table(per_bundle, ["model", "target", "precision", "remedy", "source_file", "source_bytes",
                                      "bundle_bytes", "size_ratio", "f1", "mean_iou"]))
    for s in skipped:
        print(f"\nnot measured: {s['model']} -> {s['target']} ({s['status']}): {s['reason']}")
    print(f"\n{len(rows)} rows in {seconds:.0f} s (load average {load_start:.2f} -> {meta['loadavg_end']:.2f}); "
          f"written {j} and {c}")
    slower = [f"{r['model']} -> {r['target']} (threads {r['threads']})" for r in rows if r["verdict"] == "SLOWER"]
    print("converted model slower than float (engine median > +5%): " + (", ".join(slower) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
