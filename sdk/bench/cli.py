"""``anyedge bench``: every model x engine x precision x threads here, with fidelity beside speed."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..cli_args import add_device_args, device_request, int_at_least, positive_float, positive_int

__all__ = ["add_parsers"]

_EPILOG = """\
Each row runs in its own fresh process: load (cold = first create there, warm = second),
first inference, then --runs timed whole calls interleaved with the engine call alone
(median / p90 / p99, after warm-up), throughput of T instances in T threads, peak RSS,
model/bundle bytes and fidelity against the float model on the images (F1 and mean IoU of
faces for detectors; test-split accuracy for the activity models).

examples:
  anyedge bench                                   every model present, every engine, threads 1
  anyedge bench blazeface-short bf-gpu/ --threads 1,2 --runs 100
  anyedge bench --compare old/bench.json          ratios of this run against an earlier one
  anyedge bench scrfd-500m --engines openvino --device GPU   the OpenVINO rows on the GPU
  anyedge bench --from-json new.json --compare old.json   compare two saved runs, no benchmark

exit status: 0 ok, 1 some rows failed, 2 usage or model error.
"""


def _threads(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"thread counts must be positive, got {text!r}")
    return tuple(dict.fromkeys(vals))


def _engines(text: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in text.split(",") if e.strip())


def _progress(stream: Any) -> Any:
    tty = stream.isatty()
    t0 = time.perf_counter()

    def show(done: int, total: int, label: str) -> None:
        width = 24
        fill = int(width * done / max(total, 1))
        line = f"bench [{'#' * fill}{'.' * (width - fill)}] {done}/{total} {time.perf_counter() - t0:5.0f}s  {label}"
        if tty:
            stream.write("\r" + line[:120].ljust(120) + ("\n" if done == total else ""))
        else:
            stream.write(line + "\n")
        stream.flush()

    return show


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..outputs import OutputDir
    from . import report
    from .data import default_images
    from .runner import BenchConfig, run_bench

    out = OutputDir(args.out, inputs=[p for p in (args.compare, args.from_json) if p])
    old = report.load_result(args.compare) if args.compare else None
    if args.from_json:
        if args.models:
            raise InputError("--from-json reads a saved run: give no MODELs with it")
        doc = report.load_result(args.from_json)
    else:
        images = args.images if args.images else (str(default_images()) if default_images() else None)
        if args.images and not Path(args.images).is_dir():
            raise InputError(f"--images {args.images}: not a folder")
        cfg = BenchConfig(models=tuple(args.models), engines=args.engines or (), threads=args.threads,
                          images=images, max_images=args.max_images, runs=args.runs, warmup=args.warmup,
                          timeout_s=args.timeout, device=device_request(args))
        doc = run_bench(cfg, progress=None if args.quiet else _progress(sys.stderr))
    written = [report.write_json(doc, out.claim("bench.json")), report.write_csv(doc, out.claim("bench.csv"))]
    out.record(*written)
    if not args.no_png:
        written.append(report.write_png(doc, out.claim("bench.png")))
        out.record(written[-1])
    cmp = report.compare(old, doc) if old else None
    if args.json:
        print(json.dumps({**doc, "compare": cmp} if cmp else doc))
    else:
        print(report.format_table(doc))
        if cmp:
            print()
            print(report.format_compare(cmp))
        print("\nwritten: " + ", ".join(map(str, written)))
    failed = [r for r in doc["rows"] if "error" in r]
    return 1 if failed else 0


def add_parsers(sub: Any) -> None:
    """Register ``anyedge bench`` on the CLI's subparsers."""
    from ..signing.cli import add_trust_argument

    p = sub.add_parser("bench", help="benchmark models x engines x precisions x threads on this device",
                       description="Benchmark speed, memory and fidelity of every model x engine x precision x "
                                   "threads on this device.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL|BUNDLE",
                   help="registry names (anyedge models), bnn-racketsports / bnn-basicmotions, or bundle "
                        "directories / .zip from anyedge convert (default: every model present here)")
    p.add_argument("--engines", type=_engines, default=None,
                   help="comma-separated engines to use (default: every installed engine that reads each model)")
    p.add_argument("--threads", type=_threads, default=(1,),
                   help="comma-separated thread counts, one row each (default 1): latency of one instance with "
                        "that many engine threads, throughput of that many instances in as many threads")
    p.add_argument("--images", default=None,
                   help="folder of photos for the detectors (default: $ANYEDGE_DATA/widerface_val/images when "
                        "present, else a synthetic frame and no fidelity)")
    p.add_argument("--max-images", type=positive_int, default=None, help="use at most this many photos (default: all)")
    p.add_argument("--runs", type=positive_int, default=50, help="timed calls per row after warm-up (default 50)")
    p.add_argument("--warmup", type=int_at_least(0), default=5, help="untimed calls before timing (default 5)")
    p.add_argument("--out", default="out/bench",
                   help="folder for bench.json, bench.csv, bench.png (default out/bench); a name taken by an input "
                        "or a file anyedge did not write gets a suffix (bench-2.json)")
    p.add_argument("--compare", default=None, metavar="OLD.json",
                   help="print ratios of this run against an earlier bench.json (same device: regressions; "
                        "another device: how they differ)")
    p.add_argument("--from-json", default=None, metavar="NEW.json",
                   help="use a saved run instead of benchmarking (re-renders table/CSV/PNG; with --compare "
                        "compares two saved runs)")
    p.add_argument("--no-png", action="store_true", help="skip the chart (no matplotlib needed)")
    p.add_argument("--timeout", type=positive_float, default=600.0,
                   help="seconds before a row's process is stopped (600)")
    p.add_argument("--json", action="store_true",
                   help="print bench.json (with the comparison under 'compare') on stdout instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    add_trust_argument(p)
    add_device_args(p, what="each row (the rows of its engine)")
    p.set_defaults(func=_cmd_bench)
