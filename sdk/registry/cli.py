"""``anyedge models``: the model registry and what is present here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Register ``anyedge models`` on the top parser's subcommands."""
    p = sub.add_parser("models", help="list the model registry and what is present here",
                       description="List every registered model, whether its file is here, and where a "
                                   "missing one is published.",
                       epilog="example:\n  anyedge models\n  anyedge models --precision\n  anyedge models --json | jq -r .name")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per model, with the installed engines that read it (default: a table)")
    p.add_argument("--precision", action="store_true",
                   help="also open each present model on every installed engine that reads it and show the "
                        "precision it runs at there (engine.precision; default: off, it loads every model)")
    p.set_defaults(func=_cmd_models)


def _where_published(source: Any) -> str:
    if source.url:
        return source.url
    if source.wheel and source.member:
        return f"PyPI wheel {source.wheel}, member {source.member}"
    return source.origin


def _cmd_models(args: argparse.Namespace) -> int:
    from ..engines import engines_for
    from .fetch import find_model_file, packaged_bundle
    from .table import PACKAGED_BUNDLES, list_models

    rows = []
    for m in list_models():
        found = find_model_file(m)
        rows.append({"name": m.name, "task": m.task, "family": m.family, "file": m.filename,
                     "license": m.license, "present": str(found) if found else None,
                     "fetchable": m.source.fetchable, "source": _where_published(m.source),
                     "engines": engines_for(m.filename)})
    for name in PACKAGED_BUNDLES:
        p = packaged_bundle(name)
        rows.append({"name": name, "task": "activity_classification", "family": "bnn", "file": "bundle",
                     "license": "Apache-2.0 (anyedge's own)", "present": str(p) if p else None,
                     "fetchable": False, "source": "shipped inside the anyedge package",
                     "engines": engines_for("model.bnn")})
    if args.precision:
        for r in rows:
            r["precision"] = _precisions(r) if r["present"] else {}
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'name':20} {'task':24} {'family':14} {'present':8} {'licence':34} where to get it (when missing)")
    for r in rows:
        state = "yes" if r["present"] else ("fetch" if r["fetchable"] else "no")
        where = "" if r["present"] else r["source"]
        if not r["engines"]:  # e.g. the vision models on riscv64, where no vision engine installs
            where = f"no engine on this platform reads {Path(r['file']).suffix or 'it'}; {where}".rstrip("; ")
        print(f"{r['name']:20} {r['task']:24} {r['family']:14} {state:8} {r['license']:34} {where}".rstrip())
        if r.get("precision"):
            runs = ", ".join(f"{e} {p}" for e, p in r["precision"].items())
            print(f"{'':20} runs here at: {runs}")
    return 0


def _precisions(row: dict[str, Any]) -> dict[str, str]:
    """Engine -> the precision a present model actually runs at there (``engine.precision``)."""
    from ..engines import engines_for, open_engine
    from ..errors import AnyEdgeError

    path = Path(row["present"])
    if path.is_dir():  # a bundle: its model file
        from ..bundle import load_bundle

        path = load_bundle(path).model_path
    out: dict[str, str] = {}
    for name in engines_for(path):
        try:
            eng = open_engine(path, name)
        except AnyEdgeError as e:
            out[name] = f"cannot load ({e})"
            continue
        out[name] = str(getattr(eng, "precision", "unknown"))
        eng.close()
    return out
