"""``anyedge export-c``: a face detector as a folder an app compiles (model, generated header, C library).

    anyedge export-c scrfd-500m --out app/scrfd
    anyedge export-c out/bundles/blazeface-mobile-gpu --out app/blazeface --json

:func:`add_parsers` adds the sub-command to the main ``anyedge`` parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli_args import size_arg
from ..signing.cli import add_trust_argument

__all__ = ["add_parsers"]



def add_parsers(sub: Any) -> None:
    """Add ``export-c`` to an argparse sub-parser set."""
    p = sub.add_parser(
        "export-c", help="write a face detector's model, a generated C header and the C post-processing library",
        description="Write a folder an app compiles: the model file (every file of a bundle, with its manifest), "
                    "IDENT.h generated from the registry entry or the bundle manifest (input size, layout, channel "
                    "order, mean/std, strides/anchors, thresholds, keypoint names, output names and order) and "
                    "anyedge_post.c/.h, the portable C99 decoder + NMS that mirrors anyedge's Python. Bundles are "
                    "verified first; a modified one is refused (exit 2).",
        epilog="examples:\n  anyedge export-c scrfd-500m --out app/scrfd\n"
               "  anyedge export-c out/blazeface-mobile-gpu --out app/bf\n"
               "  anyedge export-c my.onnx --family yunet --input-size 320x320 --out app/yn\n\n"
               "exit codes: 0 written, 2 bad input or a refused bundle (nothing written)")
    p.add_argument("model", metavar="BUNDLE|MODEL",
                   help="registry name (anyedge models), bundle directory or .zip, or a model file (with --family)")
    p.add_argument("--out", type=Path, required=True,
                   help="folder to write; must not exist, be empty, or hold only an earlier export-c output "
                        "(replaced; a file anyedge did not write there is never deleted: the export is refused)")
    p.add_argument("--family", default=None,
                   help="decoder family of a bare model file: blazeface, scrfd, yunet, retinaface or ultraface")
    p.add_argument("--input-size", type=size_arg, default=None, metavar="WxH",
                   help="network input for models with a dynamic input (default: the model's default size)")
    p.add_argument("--name", default=None,
                   help="C identifier of the model: the header is NAME.h, the constants NAME_* (default: from the "
                        "model name); C/C++ keywords, names starting with _ and the C libraries' aepost*/aebnn* "
                        "names are refused")
    p.add_argument("--engine", default=None,
                   help="engine used to read the model's tensor names and order (default: the model's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    add_trust_argument(p)
    p.set_defaults(func=_cmd_export_c)


def _cmd_export_c(args: argparse.Namespace) -> int:
    from ..targets.ctext import check_c_ident
    from .export_c import export_c

    if args.name is not None:
        check_c_ident(args.name)  # a bad --name is the only line on stderr
    print(f"export-c: reading {args.model} ...", file=sys.stderr)
    res = export_c(args.model, args.out, family=args.family, input_size=args.input_size, name=args.name,
                   engine=args.engine)
    p = res.params
    info = {"out": str(res.out), "header": str(res.header), "files": list(res.files), "model": p.name,
            "family": p.family, "ident": p.ident, "input": [p.input_w, p.input_h], "layout": p.layout,
            "channels": p.channels, "outputs": [o.name for o in p.outputs], "slots": list(p.slots),
            "max_candidates": p.max_candidates}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote {res.out}/: {', '.join(res.files)}")
        print(f"  {p.family} {p.input_w}x{p.input_h} {p.layout} {p.channels}; include \"{res.header.name}\" and "
              f"compile anyedge_post.c (C99, -ffp-contract=off)")
    return 0
