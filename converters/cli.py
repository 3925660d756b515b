"""``anyedge convert`` and ``anyedge inspect``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from anyedge.cli_args import float_in, positive_int, size_arg
from anyedge.paths import data_path
from anyedge.signing.cli import add_trust_argument

__all__ = ["add_parsers"]


def _default_calibration() -> str | None:
    found = data_path("widerface_val", "images")
    return str(found) if found is not None and found.is_dir() else None


def _pairs(args: argparse.Namespace) -> str | None:
    """``--pairs``, or for a face embedder ``$ANYEDGE_DATA/faces/pairs.csv`` when it is there."""
    if args.pairs:
        return str(args.pairs)
    from anyedge.registry import REGISTRY

    info = REGISTRY.get(args.model)
    if (info is not None and info.task == "face_embedding") or args.family in ("mobilefacenet", "arcface"):
        found = data_path("faces", "pairs.csv")
        return str(found) if found is not None and found.is_file() else None
    return None



def _cmd_convert(args: argparse.Namespace) -> int:
    from anyedge.outputs import refuse_input

    from .api import convert

    from .frames import FrameSampling, source_kind

    calib = args.calib or _default_calibration()
    if calib is None:
        from anyedge.errors import CalibrationError

        raise CalibrationError("convert needs real images to calibrate and check fidelity: pass --calib DIR (a "
                               "folder of photos like the ones the model will see), a video file or a camera")
    kind = source_kind(calib)
    refuse_input(args.out, [args.model, calib if kind in ("folder", "video") else None, args.pairs])
    sampling = None
    if kind != "folder":
        sampling = FrameSampling(frames=args.calib_frames, every_s=args.calib_every, min_change=args.calib_dedup)
    if args.sign:
        from anyedge.signing import check_private_key

        check_private_key(args.sign)  # a bad key fails before the conversion, not after it
    res = convert(args.model, target=args.target, out=args.out, calibration=calib, max_drop=args.max_drop,
                  precision=args.precision, input_size=args.input_size, family=args.family,
                  max_calibration=args.max_calibration, show_progress=not args.json, pairs=_pairs(args),
                  sampling=sampling)
    m = res.bundle.manifest
    signed = None
    if args.sign:
        from anyedge.signing import sign_bundle

        signed = sign_bundle(res.path, args.sign).key
    if args.json:
        print(json.dumps({"bundle": str(res.path), "signed_by": signed, "target": m["target"], "engine": m["engine"],
                          "precision": m["precision"], "bytes": m["bytes"], "source_bytes": m["source"]["bytes"],
                          "calibration": m["calibration"], "fidelity": res.report, "speed_here": m.get("speed_here"),
                          "host": m.get("host")}))
        return 0
    fid = res.report
    if signed:
        print(f"signed   by {signed}")
    cal = m["calibration"]
    if "sampled" in cal:
        print(f"calib    {cal['kind']} {cal['source']}: {cal['sampled']} frames sampled, {cal['duplicates_dropped']} "
              f"dropped as near-duplicates, {cal['kept']} kept")
    if m["model"]["task"] == "face_embedding":
        return _print_embedder(res.path, m, fid)
    print(f"bundle   {res.path}")
    print(f"target   {m['target']} ({m['engine']}{', device ' + m['device'] if m.get('device') else ''})")
    kept = m.get("float_layers") or []
    print(f"precision {m['precision']} (asked {m['requested_precision']}; remedy: {m['remedy']}"
          + (f"; kept in float: {', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''}" if kept else "") + ")")
    print(f"size     {m['bytes']:,} bytes vs float {m['source']['bytes']:,} (x{m['size_ratio']:.2f})")
    noun = "frames" if "sampled" in cal else "images"
    print(f"fidelity gate F1 >= {fid['gate']} on {cal['held_back']} held-back {noun}; "
          f"{cal['images']} calibration {noun}")
    sp = m.get("speed_here") or {}
    if sp:
        verdict = "SLOWER than" if sp["ratio"] > 1.05 else ("faster than" if sp["ratio"] < 0.95 else "as fast as")
        print(f"speed    {sp['engine_ms']:.2f} ms vs float {sp['float_engine_ms']:.2f} ms per engine call here "
              f"(x{sp['ratio']:.2f}: {verdict} float on this {sp['machine']} CPU, 1 thread); whole detect "
              f"x{sp['task_ratio']:.2f}")
    host = m.get("host")
    if host:
        print(_host_table(host))
    for a in fid["attempts"]:
        if "fidelity" in a:
            g = a["fidelity"]
            line = (f"  {'PASS' if a['passed'] else 'fail'} {a['engine']:11} {a['remedy']:24} F1 {g['f1']:.4f}  "
                    f"mean IoU {g['mean_iou']:.4f}  score drift {g['mean_score_drift']:.4f}  "
                    f"faces {g['candidate_faces']}/{g['reference_faces']}")
        else:
            line = f"  fail {a['engine']:11} {a['remedy']:24} {a.get('error', '')[:100]}"
        print(line)
    return 0


def _print_embedder(path: Any, m: dict[str, Any], fid: dict[str, Any]) -> int:
    crops = m.get("crops", {})
    print(f"bundle   {path}")
    print(f"target   {m['target']} ({m['engine']}{', device ' + m['device'] if m.get('device') else ''})")
    print(f"precision {m['precision']} (asked {m['requested_precision']}; remedy: {m['remedy']})")
    print(f"size     {m['bytes']:,} bytes vs float {m['source']['bytes']:,} (x{m['size_ratio']:.2f})")
    stripped = (m.get("embedder") or {}).get("stripped_inputs") or []
    if stripped:
        print(f"inputs   stripped (no operator reads them): {', '.join(stripped)}")
    print(f"fidelity gate cosine p5 (and verification accuracy drop) >= {fid['gate']} on "
          f"{crops.get('held_back_crops')} held-back crops, {crops.get('pairs') or 0} pairs; "
          f"{crops.get('calibration_crops')} calibration crops")
    sp = m.get("speed_here") or {}
    if sp:
        print(f"speed    {sp['engine_ms']:.2f} ms vs float {sp['float_engine_ms']:.2f} ms per engine call here "
              f"(x{sp['ratio']:.2f}, 1 thread, {sp['machine']})")
    if m.get("host"):
        print(_host_table(m["host"]))
    for a in fid["attempts"]:
        g = a.get("fidelity")
        if g:
            ver = (f"  verification {g['verification']:.4f} (float {g['verification_float']:.4f})"
                   if "verification" in g else "")
            print(f"  {'PASS' if a['passed'] else 'fail'} {a['engine']:11} {a['remedy']:24} cosine mean "
                  f"{g['cosine_mean']:.4f}  p5 {g['cosine_p5']:.4f}  min {g['cosine_min']:.4f}{ver}")
        else:
            print(f"  fail {a['engine']:11} {a['remedy']:24} {a.get('error', '')[:100]}")
    return 0


def _host_table(host: dict[str, Any]) -> str:
    """The ``--target host`` measurement, one row per candidate that passed the gate."""
    gated = "F1" if any("f1" in (r["fidelity"] or {}) for r in host["table"]) else "cos p5"
    lines = [f"host     {host.get('note', '')}",
             f"  {'':2}{'engine':11} {'precision':10} {'float':>5} {gated:>7} {'engine ms':>9} {'x float':>7} "
             f"{'detect ms':>9} {'x float':>7} {'bytes':>10}"]
    for i, r in enumerate(host["table"]):
        sp, f = r["speed"], r["fidelity"] or {}
        lines.append(f"  {'->' if i == host['chosen'] else '  '}{r['engine']:11} {r['precision']:10} "
                     f"{r['float_layers']:5d} {f.get('f1', f.get('value', float('nan'))):7.4f} {sp['engine_ms']:9.2f} "
                     f"{sp['ratio']:7.2f} {sp['task_ms']:9.2f} {sp['task_ratio']:7.2f} {r['bytes']:10,}")
    return "\n".join(lines)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from anyedge.bundle import load_bundle

    from anyedge.signing.cli import signature_status

    b = load_bundle(args.bundle)  # refuses a bundle that fails the configured trust (--trust)
    m = dict(b.manifest)
    sig = signature_status(b.root)
    if args.json:
        runs = _runs_here(args.bundle, m["model"]["task"])
        print(json.dumps(_finite({**m, "signature": sig, "runs_here": runs}), indent=1, allow_nan=False))
        return 0
    model = m["model"]
    print(f"{args.bundle}: {model['name']} ({model['family']}, {model['task']}) verified")
    print(f"  signature  {sig['status']}" + (f", key {sig['key']}" if sig["key"] else ""))
    for key in ("target", "engine", "device", "precision", "remedy", "bytes", "size_ratio", "created"):
        if m.get(key) is not None:
            print(f"  {key:10} {m[key]}")
    if "input" in m:
        print(f"  input      {_input_line(m['input'])}")
    if "fidelity" in m and "chosen" in m["fidelity"]:
        c = m["fidelity"]["chosen"]
        g = c.get("fidelity") or c.get("agreement") or {}
        if "cosine_p5" in g:
            print(f"  fidelity   cosine mean {g.get('cosine_mean')}  p5 {g.get('cosine_p5')}  verification "
                  f"{g.get('verification')}  (gate {m['fidelity'].get('gate')})")
        else:
            print(f"  fidelity   F1 {g.get('f1')}  mean IoU {g.get('mean_iou')}  (gate {m['fidelity'].get('gate_f1')})")
    for name, digest in m["files"].items():
        print(f"  file       {name}  sha256 {digest[:16]}...")
    runs = _runs_here(args.bundle, model["task"])
    if "error" in runs:
        print(f"  runs here  cannot open here: {runs['error']}")
    else:
        where = f", device {runs['device']}" if runs["device"] else ""
        print(f"  runs here  {runs['engine']}{where}, precision {runs['precision']}")
    return 0


def _input_line(spec: Any) -> str:
    """A manifest's input spec in words, e.g. ``640x640 NCHW BGR, letterbox, mean 0 std 1, static``."""
    if not isinstance(spec, dict):
        return str(spec)
    size = spec.get("size")
    parts = ["x".join(str(v) for v in size) if isinstance(size, list) else "size ?",
             str(spec.get("layout", "")), str(spec.get("channels", ""))]
    rest = [str(spec["resize"])] if spec.get("resize") else []
    if "mean" in spec or "std" in spec:
        rest.append(f"mean {spec.get('mean')} std {spec.get('std')}")
    if "dynamic" in spec:
        rest.append("dynamic" if spec["dynamic"] else "static")
    return " ".join(p for p in parts if p) + (", " + ", ".join(rest) if rest else "")


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by ``None``: strict JSON has neither."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _runs_here(bundle: str, task: str) -> dict[str, Any]:
    """Which engine, device and precision this machine would actually run the bundle with (or why not)."""
    from anyedge.engines import open_engine
    from anyedge.errors import AnyEdgeError
    from anyedge.tasks._loading import resolve_spec

    try:
        spec = resolve_spec(bundle, task=task)
        eng = open_engine(spec.path, spec.engine, **dict(spec.engine_options))
    except AnyEdgeError as e:
        return {"error": str(e)}
    try:
        return {"engine": eng.name, "device": getattr(eng, "device", None) or None, "precision": eng.precision}
    finally:
        eng.close()


def add_parsers(sub: Any) -> None:
    from anyedge.targets import TARGETS

    from .frames import FrameSampling

    p = sub.add_parser("convert", help="quantize / compile a model for a target and write a bundle",
                       epilog="examples:\n  anyedge convert scrfd-500m --target arm-cpu --calib images/ --out scrfd.zip\n"
                              "  anyedge convert yunet-n-320 --target arm-cpu --calib clip.mp4 --out yunet-arm\n"
                              "  anyedge convert yunet-n-320 --target arm-cpu --calib 0 --calib-frames 90 "
                              "--calib-every 1 --out yunet-arm  # camera 0, 90 s\n"
                              "  anyedge convert yunet --target intel-npu --calib images/ --out yunet-npu --json\n"
                              "  anyedge convert mobilefacenet --target arm-cpu --out mfn-arm  "
                              "# faces in WIDER calibrate; faces/pairs.csv held back")
    p.add_argument("model", help="registry name or model file")
    p.add_argument("--target", required=True, choices=[*TARGETS, "host"],
                   help="target profile (required); 'host' builds every candidate this machine can run (each "
                        "installed engine x precision), times and gates each, and keeps the fastest that passes")
    p.add_argument("--out", required=True, help="bundle directory, or a path ending in .zip")
    p.add_argument("--calib", default=None, metavar="SOURCE",
                   help="what to calibrate on: a folder of real images (default: $ANYEDGE_DATA/widerface_val/images "
                        "when present), a video file, or a live source as 'anyedge run --source' takes it (camera "
                        "index, 'picamera', stream URL). From a video or live source --calib-frames frames are "
                        "sampled and near-duplicates dropped; the kept frames are split like a folder. For a face "
                        "embedder, the faces SCRFD finds there are aligned into calibration crops")
    p.add_argument("--calib-frames", type=positive_int, default=FrameSampling.frames, metavar="N",
                   help="video or live --calib: frames to sample; a video's are spread evenly over its length "
                        "(default: %(default)s)")
    p.add_argument("--calib-every", type=float_in(0.0, above=True), default=FrameSampling.every_s, metavar="SECONDS",
                   help="live --calib (camera, picamera, URL): seconds of the source's time between sampled frames "
                        "(default: %(default)s, so the default frames take a minute)")
    p.add_argument("--calib-dedup", type=float_in(0.0, 255.0), default=FrameSampling.min_change, metavar="LEVELS",
                   help="video or live --calib: drop a frame whose 32x32 grey thumbnail differs from every kept one "
                        "by less than this mean absolute grey level (0-255); 0 keeps every frame "
                        "(default: %(default)s)")
    p.add_argument("--max-drop", type=float_in(0.0, 1.0), default=None,
                   help="allowed drop vs the float model: F1 for detectors (default 0.05); 5th-percentile cosine "
                        "and verification accuracy for face embedders (default 0.02)")
    p.add_argument("--pairs", default=None,
                   help="face embedders: CSV of labelled pairs (file_a, file_b, same; paths relative to it); those "
                        "photos are held back and verification accuracy is gated (default: $ANYEDGE_DATA/faces/"
                        "pairs.csv when present)")
    p.add_argument("--precision", default=None, choices=["int8", "int8w", "bf16", "fp16", "fp32"],
                   help="most aggressive precision to try (default: the target's first; with --target host: int8); "
                        "bf16 needs a CPU with AMX / AVX-512 BF16")
    p.add_argument("--input-size", type=size_arg, default=None,
                   help="static input WIDTHxHEIGHT, e.g. 320x320 (default: the model's own size)")
    p.add_argument("--family", default=None, help="decoder family for a bare model file (default: from the registry)")
    p.add_argument("--max-calibration", type=positive_int, default=100,
                   help="use at most N calibration images (face embedders: N aligned face crops); every third "
                        "image is held back (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (default: text)")
    p.add_argument("--sign", default=None, metavar="KEY",
                   help="sign the bundle with this private key (anyedge keys new; default: unsigned)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("inspect", help="verify a bundle and show its manifest",
                       epilog="example:\n  anyedge inspect scrfd.zip --json")
    p.add_argument("bundle", help="bundle directory or .zip")
    p.add_argument("--json", action="store_true",
                   help="print the whole manifest as JSON, with the signature status under 'signature' "
                        "(default: a summary)")
    add_trust_argument(p)
    p.set_defaults(func=_cmd_inspect)
