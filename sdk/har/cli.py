"""``anyedge har ...``: activity recognition from the command line.

    anyedge har classify FILE.ts --model bnn-racketsports --json
    anyedge har export-c --model bnn-racketsports --out model_racketsports.h
    anyedge har models

:func:`add_parsers` adds the ``har`` sub-command to the main ``anyedge`` parser; the
module also runs alone (``python -m anyedge.har.cli ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import AnyEdgeError
from ..signing.cli import add_trust_argument

__all__ = ["add_parsers", "run_har", "main"]


def add_parsers(sub: Any) -> None:
    """Add ``har`` (with ``classify``, ``export-c``, ``models``, ``stream``) to the main parser's subcommands.

    Each leaf parser sets ``func`` to a handler taking the parsed namespace and returning the
    exit code.
    """
    har = sub.add_parser("har", help="human activity recognition on IMU windows",
                         description="Human activity recognition on IMU windows.",
                         epilog="examples:\n  anyedge har classify RacketSports_TEST.ts --json\n"
                                "  anyedge har models\n  imu-reader | anyedge har stream --model bnn-basicmotions")
    hs = har.add_subparsers(dest="har_command", metavar="COMMAND")
    hs.required = True

    c = hs.add_parser("classify", help="classify every case of a UEA .ts file",
                      epilog="example:\n  anyedge har classify RacketSports_TEST.ts --model bnn-racketsports --json")
    c.add_argument("file", type=Path, help="a .ts file (UEA/sktime format) of windows")
    c.add_argument("--model", default="bnn-racketsports", help="model name or bundle path (default: %(default)s)")
    c.add_argument("--engine", default=None, help="engine name, e.g. bnn (default: the bundle's)")
    c.add_argument("--json", action="store_true", help='one JSON object per case: {"index", "label", "score"}')
    add_trust_argument(c)
    c.set_defaults(func=_classify)

    e = hs.add_parser("export-c", help="write a model as a C header for anyedge_bnn.c",
                      epilog="example:\n  anyedge har export-c --model bnn-racketsports --out model_racketsports.h")
    e.add_argument("--model", required=True, help="model name or bundle path")
    e.add_argument("--out", type=Path, required=True,
                   help="header file to write (never a file anyedge did not write)")
    add_trust_argument(e)
    e.set_defaults(func=_export_c)

    m = hs.add_parser("models", help="list the shipped activity models", epilog="example:\n  anyedge har models")
    add_trust_argument(m)
    m.set_defaults(func=_models)

    from .stream import add_stream_parser
    add_stream_parser(hs)


def _classify(args: argparse.Namespace) -> int:
    from ..tasks.activity_classifier import ActivityClassifier
    from .data import load_ts

    data = load_ts(args.file)
    with ActivityClassifier.create(args.model, engine=args.engine) as clf:
        results = clf.classify_batch(data.x)
    correct = 0
    for i, r in enumerate(results):
        if args.json:
            print(json.dumps({"index": i, "label": r.label, "score": round(float(r.score), 6)}))
        else:
            truth = data.labels[data.y[i]] if data.y[i] >= 0 and len(data.labels) else ""
            correct += int(truth == r.label)
            print(f"{i}\t{r.label}\t{r.score:.3f}" + (f"\t(true: {truth})" if truth else ""))
    if not args.json and (data.y >= 0).all() and data.labels:
        print(f"accuracy: {correct}/{len(results)} = {correct / len(results):.3f}")
    return 0


def _export_c(args: argparse.Namespace) -> int:
    from ..converters.bnn import c_header
    from ..outputs import output_file, write_atomic
    from ..targets.bnn.format import read_bnn
    from ..tasks._loading import resolve_spec

    spec = resolve_spec(args.model, task="activity_classification")
    folder, target = output_file(args.out, inputs=[args.model, spec.path])
    model = read_bnn(spec.path)
    labels = (spec.manifest or {}).get("labels")
    write_atomic(target, c_header(model, name=spec.name, labels=labels).encode())
    folder.record(target)
    print(f"wrote {args.out} ({model.nbytes} parameter bytes); compile it with targets/bnn/c/anyedge_bnn.c")
    return 0


def _models(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..registry import PACKAGED_BUNDLES, packaged_bundle

    for name in PACKAGED_BUNDLES:
        b = load_bundle(packaged_bundle(name))  # type: ignore[arg-type]
        if b.manifest["model"].get("task") != "activity_classification":
            continue
        w = b.manifest.get("window", {})
        mem = b.manifest.get("memory", {}).get("model_file_bytes")
        print(f"{name}\t{w.get('length')}x{w.get('channels')}\t{len(b.manifest.get('labels', []))} classes\t{mem} bytes")
    return 0


def run_har(args: argparse.Namespace) -> int:
    """Run a parsed ``har`` command; anyedge errors become a message and exit code 2."""
    from ..signing.cli import trust_scope

    try:
        with trust_scope(args):
            return int(args.func(args))
    except AnyEdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m anyedge.har.cli har classify ...`` (or without the ``har``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "har":
        argv = ["har", *argv]
    parser = argparse.ArgumentParser(prog="anyedge")
    add_parsers(parser.add_subparsers(dest="command"))
    return run_har(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
