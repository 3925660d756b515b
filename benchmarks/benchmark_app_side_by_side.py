"""OpenVINO's ``benchmark_app`` and ``anyedge bench`` on one model, alternated round by round.

Each round runs, one after another on the same machine:

1. ``benchmark_app`` sync, one thread, one stream, one request, f32 (latency);
2. ``benchmark_app -hint latency`` without a precision (what it picks by itself: bf16 on CPUs
   with AVX-512 BF16 or AMX);
3. ``benchmark_app -hint throughput``, f32 (throughput: its streams and requests);
4. ``anyedge bench MODEL --engines openvino,onnxruntime --duration S --async`` (latency of one
   thread, and throughput per mode: instances of task and of engine calls, workers as anyedge run
   --workers opens them, async).

Every run lasts ``--seconds``; the medians over ``--repeat`` rounds, and the median of each
round's ratio anyedge async / benchmark_app throughput, are printed as a markdown table and
written to benchmarks/results/benchmark_app_side_by_side.{json,csv}. On a shared machine run it
when the load is low: the load average before each round is recorded beside it.

    python benchmarks/benchmark_app_side_by_side.py [--model scrfd-500m] [--seconds 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, median, use_shared_models, write_results  # noqa: E402

_FIGURES = {"throughput_ips": r"Throughput:\s+([\d.]+)", "median": r"Median:\s+([\d.]+)",
            "mean": r"Average:\s+([\d.]+)", "min": r"Min:\s+([\d.]+)", "max": r"Max:\s+([\d.]+)",
            "streams": r"NUM_STREAMS:\s+(\d+)", "requests": r"OPTIMAL_NUMBER_OF_INFER_REQUESTS:\s+(\d+)",
            "precision": r"INFERENCE_PRECISION_HINT:\s+<Type: '(\w+)'>"}


def benchmark_app_runs(model: Path, shape: str, seconds: int) -> dict[str, list[str]]:
    """The three benchmark_app command lines (arguments after the program's name)."""
    common = ["-m", str(model), "-d", "CPU", "-shape", shape, "-t", str(seconds)]
    return {"bapp_sync_f32": [*common, "-infer_precision", "f32", "-hint", "none", "-nthreads", "1",
                              "-nstreams", "1", "-nireq", "1", "-api", "sync"],
            "bapp_latency_own_pick": [*common, "-hint", "latency"],
            # last, so that the runs whose ratio is taken follow each other
            "bapp_throughput_f32": [*common, "-infer_precision", "f32", "-hint", "throughput"]}


def parse_benchmark_app(text: str) -> dict[str, Any]:
    """Throughput, latency median / mean / min / max, streams, requests and precision from its log."""
    out: dict[str, Any] = {}
    for key, pattern in _FIGURES.items():
        found = re.findall(pattern, text)
        if found:
            v = found[-1]
            out[key] = v if key == "precision" else (int(v) if key in ("streams", "requests") else float(v))
    return out


def anyedge_records(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"<engine> <what>": figures}`` from a bench.json: latency of the engine call and of the
    whole call, and every throughput record (``instances`` of task / engine calls, ``async``)."""
    out: dict[str, dict[str, Any]] = {}
    for r in doc["rows"]:
        if "error" in r:
            raise RuntimeError(f"anyedge bench row {r['model']} {r['engine']}: {r['error']}")
        e = r["engine"]
        out[f"{e} engine x{r['threads']}"] = {**r["engine_ms"], "precision": r["engine_precision"]}
        out[f"{e} task x{r['threads']}"] = {**r["latency_ms"], "precision": r["engine_precision"]}
        for m in r["throughput"]:
            n = m.get("requests", m.get("instances", m.get("workers")))
            out[f"{e} {m['mode']} {m['of']} x{n}"] = {"throughput_ips": m["throughput_ips"], **m["latency_ms"]}
    for r in doc.get("live_modes") or []:
        out[f"{r['engine']} live mode"] = {"live_mode": r["text"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="scrfd-500m", help="registry name of a detector (default: scrfd-500m)")
    ap.add_argument("--seconds", type=int, default=10, help="whole seconds per run (benchmark_app -t; default: 10)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default: 5)")
    ap.add_argument("--out", default=None, help="folder for the results (default: benchmarks/results)")
    args = ap.parse_args()
    if args.seconds < 1 or args.repeat < 1:
        ap.error(f"--seconds and --repeat must be at least 1, got {args.seconds} and {args.repeat}")
    use_shared_models()

    from anyedge import FaceDetector
    from anyedge.bench.data import synthetic_frame
    from anyedge.registry import resolve_model

    bapp = Path(sys.executable).with_name("benchmark_app")
    if not bapp.is_file():
        print("benchmark_app comes with the openvino wheel: pip install openvino", file=sys.stderr)
        return 2
    path = resolve_model(args.model)[0]
    with FaceDetector.create(args.model, engine="openvino") as det:
        tensor = det.preprocess(synthetic_frame(640, 480))[0]
    shape = "[" + ",".join(str(d) for d in tensor.shape) + "]"
    rounds: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for k in range(args.repeat):
        rnd: dict[str, Any] = {"round": k + 1, "load_average": os.getloadavg()[0]}
        for name, argv in benchmark_app_runs(path, shape, args.seconds).items():
            proc = subprocess.run([str(bapp), *argv], capture_output=True, text=True, env=env)
            if proc.returncode:
                print(f"benchmark_app failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            rnd[name] = parse_benchmark_app(proc.stdout)
        with tempfile.TemporaryDirectory(prefix="anyedge-side-by-side-") as tmp:
            proc = subprocess.run([sys.executable, "-m", "anyedge.cli", "bench", args.model, "--engines",
                                   "openvino,onnxruntime", "--duration", str(args.seconds), "--async", "--json",
                                   "-q", "--no-png", "--out", tmp], capture_output=True, text=True, env=env)
        if proc.returncode:
            print(f"anyedge bench failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        rnd.update(anyedge_records(json.loads(proc.stdout)))
        rounds.append(rnd)
        print(f"round {k + 1}/{args.repeat} (load {rnd['load_average']:.2f}): benchmark_app throughput "
              f"{rnd['bapp_throughput_f32'].get('throughput_ips')}/s, anyedge async "
              f"{rnd.get('openvino async engine x2', {}).get('throughput_ips')}/s", file=sys.stderr)
    rows = []
    for name in [n for n in rounds[0] if isinstance(rounds[0][n], dict)]:
        got = [r[name] for r in rounds if name in r]
        row: dict[str, Any] = {"run": name}
        for key in ("precision", "streams", "requests", "live_mode"):
            if key in got[0]:
                row[key] = got[0][key]
        for key in ("throughput_ips", "median", "mean", "min", "max"):
            vals = [g[key] for g in got if isinstance(g.get(key), (int, float))]
            if vals:
                row[key] = round(median(vals), 2)
        rows.append(row)
    ratios = [r[a]["throughput_ips"] / r["bapp_throughput_f32"]["throughput_ips"] for r in rounds
              for a in [n for n in r if n.startswith("openvino async")]]
    meta = {"model": args.model, "seconds": args.seconds, "repeat": args.repeat, "shape": shape,
            "load_averages": [r["load_average"] for r in rounds],
            "async_vs_benchmark_app": {"per_round": [round(x, 3) for x in ratios],
                                       "median": round(median(ratios), 3) if ratios else None},
            "rounds": rounds}
    print(markdown_table(rows, ["run", "precision", "throughput_ips", "median", "mean", "min", "max"]))
    print(f"\nanyedge async / benchmark_app throughput, per round: {meta['async_vs_benchmark_app']['per_round']}, "
          f"median {meta['async_vs_benchmark_app']['median']}; load average before each round: "
          f"{meta['load_averages']}")
    live = [r for r in rows if "live_mode" in r]
    for r in live:
        print(f"{r['run']} (round 1): {r['live_mode']}")
    write_results("benchmark_app_side_by_side", rows, meta, Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
