"""``anyedge models``: the model registry and what is present here; ``models fetch`` and ``models pack``."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


_ACCEPT_HELP = ("accept the licence of non-commercial or unlicensed weights (scrfd-500m, mobilefacenet, "
                "mobilefacenet-int8w), so they are fetched too; ANYEDGE_ACCEPT_LICENCE=1 does the same "
                "(default: such models are reported and not fetched)")


def _add_model_choice(p: argparse.ArgumentParser) -> None:
    """NAME..., --all and --accept-licence, as ``models fetch`` and ``models pack`` take them."""
    p.add_argument("names", nargs="*", metavar="NAME", help="registry model names (see 'anyedge models')")
    p.add_argument("--all", action="store_true", help="every registry model (default: only the NAMEs given)")
    p.add_argument("--accept-licence", action="store_true", help=_ACCEPT_HELP)


def add_parsers(sub: Any) -> None:
    """Register ``anyedge models`` (and ``models fetch``, ``models pack``) on the top parser's subcommands."""
    p = sub.add_parser("models", help="list the model registry and what is present here; fetch or pack models",
                       description="List every registered model, whether its file is here, its licence, "
                                   "whether fetching it needs --accept-licence, and where a missing one is "
                                   "published. 'models fetch' downloads models into the cache; 'models pack' "
                                   "writes a folder of them for an offline machine or a mirror.",
                       epilog="examples:\n  anyedge models\n  anyedge models --precision\n"
                              "  anyedge models --json | jq -r .name\n"
                              "  anyedge models fetch yunet-n-320 retinaface-mnet025\n"
                              "  anyedge models pack models-pack/ yunet-n-320 retinaface-mnet025")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per model, with the installed engines that read it (default: a table)")
    p.add_argument("--precision", action="store_true",
                   help="also open each present model on every installed engine that reads it and show the "
                        "precision it runs at there (engine.precision; default: off, it loads every model)")
    p.set_defaults(func=_cmd_models)
    msub = p.add_subparsers(dest="models_command", metavar="{fetch,pack}",
                            title="subcommands (default: list the registry)")

    f = msub.add_parser(
        "fetch", help="download models into the cache (or confirm they are here)",
        description="Download each named model from its pinned source into the cache "
                    "(ANYEDGE_CACHE_DIR), sha256-checked, or confirm the copy already here, and print one "
                    "line per model: name, status (fetched or present), path, sha256, licence. Sources: "
                    "https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>, or the same path under "
                    "ANYEDGE_MODEL_MIRROR; the BlazeFace files come from the mediapipe wheel on PyPI (pip). "
                    "A model whose licence is non-commercial or unstated is reported and not fetched without "
                    "--accept-licence; the others are still fetched.",
        epilog="exit status: 0 every model is here; 3 a model's licence needs --accept-licence; "
               "4 a download failed\n"
               "examples:\n  anyedge models fetch yunet-n-320 retinaface-mnet025\n"
               "  anyedge models fetch scrfd-500m --accept-licence --json\n"
               "  anyedge models fetch --all --accept-licence")
    _add_model_choice(f)
    f.add_argument("--json", action="store_true",
                   help="one JSON object per model on stdout: name, status, path, sha256, license, "
                        "licence_class (and error when it failed) (default: one text line per model)")
    f.set_defaults(func=_cmd_fetch)

    k = msub.add_parser(
        "pack", help="write a folder of model files (and SHA256SUMS) for an offline machine or a mirror",
        description="Write the named models (from the search path or the cache, fetched when missing) "
                    "into DIR in the upstream raw-file layout, <owner>/<repo>/<commit>/<path> (wheel members: "
                    "pypi/<distribution>/<version>/<member>), plus SHA256SUMS (check it with "
                    "'sha256sum -c SHA256SUMS' inside DIR). Copy DIR to a machine and set "
                    "ANYEDGE_MODEL_PATH=DIR, or serve it over HTTP and set ANYEDGE_MODEL_MIRROR to its URL. "
                    "DIR is written atomically and replaced only when it is empty or an earlier pack.",
        epilog="examples:\n  anyedge models pack models-pack/ yunet-n-320 retinaface-mnet025\n"
               "  anyedge models pack models-pack/ --all --accept-licence\n"
               "  ANYEDGE_MODEL_PATH=models-pack/ anyedge models")
    k.add_argument("dir", metavar="DIR", help="the pack folder (created; an earlier pack there is replaced)")
    _add_model_choice(k)
    k.add_argument("--json", action="store_true",
                   help="one JSON object per packed model on stdout: name, path, sha256, license "
                        "(default: one text line per model)")
    k.set_defaults(func=_cmd_pack)


def _where_published(source: Any) -> str:
    if source.url:
        return source.url
    if source.wheel and source.member:
        return f"PyPI wheel {source.wheel}, member {source.member}"
    return source.origin


def _fetch_mode(m: Any) -> str:
    """How a missing model is had: ``auto`` on first use, ``--accept-licence``, or ``manual``."""
    if not m.source.fetchable:
        return "manual"
    return "--accept-licence" if m.licence_class.needs_acceptance else "auto"


def _cmd_models(args: argparse.Namespace) -> int:
    from ..engines import engines_for
    from .fetch import find_model_file, packaged_bundle
    from .table import PACKAGED_BUNDLES, list_models

    rows = []
    for m in list_models():
        found = find_model_file(m)
        rows.append({"name": m.name, "task": m.task, "family": m.family, "file": m.filename,
                     "license": m.license, "licence_class": m.licence_class.value,
                     "needs_accept_licence": m.licence_class.needs_acceptance,
                     "present": str(found) if found else None,
                     "fetchable": m.source.fetchable, "fetch": _fetch_mode(m),
                     "source": _where_published(m.source), "engines": engines_for(m.filename)})
    for name in PACKAGED_BUNDLES:
        p = packaged_bundle(name)
        rows.append({"name": name, "task": "activity_classification", "family": "bnn", "file": "bundle",
                     "license": "Apache-2.0 (anyedge's own)", "licence_class": "permissive",
                     "needs_accept_licence": False, "present": str(p) if p else None,
                     "fetchable": False, "fetch": "shipped", "source": "shipped inside the anyedge package",
                     "engines": engines_for("model.bnn")})
    if args.precision:
        for r in rows:
            r["precision"] = _precisions(r) if r["present"] else {}
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'name':20} {'task':24} {'family':14} {'present':8} {'licence':50} {'fetch':16} "
          "where to get it (when missing)")
    for r in rows:
        where = "" if r["present"] else r["source"]
        if not r["engines"]:  # e.g. the vision models on riscv64, where no vision engine installs
            where = f"no engine on this platform reads {Path(r['file']).suffix or 'it'}; {where}".rstrip("; ")
        print(f"{r['name']:20} {r['task']:24} {r['family']:14} {'yes' if r['present'] else 'no':8} "
              f"{r['license']:50} {r['fetch']:16} {where}".rstrip())
        if r.get("precision"):
            runs = ", ".join(f"{e} {p}" for e, p in r["precision"].items())
            print(f"{'':20} runs here at: {runs}")
    if any(r["needs_accept_licence"] and not r["present"] for r in rows):
        print("fetch '--accept-licence': non-commercial or no stated licence, not downloaded on first use; "
              "if the licence suits you: anyedge models fetch NAME --accept-licence (or ANYEDGE_ACCEPT_LICENCE=1)")
    return 0


def _names(args: argparse.Namespace) -> list[str]:
    from ..errors import InputError
    from .table import PACKAGED_BUNDLES, REGISTRY, get_model_info

    if args.all and args.names:
        raise InputError(f"give model names or --all, not both (got --all and {' '.join(args.names)})")
    if not args.all and not args.names:
        raise InputError("expected model names (see 'anyedge models') or --all, got neither")
    names = list(REGISTRY) if args.all else list(dict.fromkeys(args.names))
    for n in names:
        if n not in PACKAGED_BUNDLES:
            get_model_info(n)  # an unknown name fails before anything is fetched
    return names


def _cmd_fetch(args: argparse.Namespace) -> int:
    from ..cli_common import EXIT_LICENCE, EXIT_OK, error_exit_code, one_line
    from ..errors import AnyEdgeError, LicenceNotAcceptedError
    from .fetch import fetch_model
    from .table import get_model_info

    from .fetch import packaged_bundle

    codes = []
    for name in _names(args):
        shipped = packaged_bundle(name)
        if shipped is not None:  # a bundle inside the package: nothing to fetch
            doc = {"name": name, "status": "shipped", "path": str(shipped), "sha256": None,
                   "license": "Apache-2.0 (anyedge's own)", "licence_class": "permissive"}
            print(json.dumps(doc) if args.json else f"{name:20} shipped  {shipped}  licence: {doc['license']}")
            continue
        try:
            got = fetch_model(name, accept_licence=args.accept_licence)
        except AnyEdgeError as e:
            info = get_model_info(name)
            refused = isinstance(e, LicenceNotAcceptedError)
            codes.append(error_exit_code(e))
            if getattr(args, "verbose", False):
                traceback.print_exc()
            print(f"anyedge: error: {one_line(e)}", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps({"name": name, "status": "refused" if refused else "failed", "path": None,
                                  "sha256": info.sha256, "license": info.license,
                                  "licence_class": info.licence_class.value, "error": one_line(e)}), flush=True)
            continue
        status = "fetched" if got.fetched else "present"
        if args.json:
            print(json.dumps({"name": name, "status": status, "path": str(got.path), "sha256": got.info.sha256,
                              "license": got.info.license, "licence_class": got.info.licence_class.value}),
                  flush=True)
        else:
            print(f"{name:20} {status:8} {got.path}  sha256:{got.info.sha256}  licence: {got.info.license}",
                  flush=True)
    others = [c for c in codes if c != EXIT_LICENCE]
    return others[0] if others else (EXIT_LICENCE if codes else EXIT_OK)


def _cmd_pack(args: argparse.Namespace) -> int:
    from .pack import pack_models

    for p in pack_models(args.dir, _names(args), accept_licence=args.accept_licence):
        if args.json:
            print(json.dumps({"name": p.info.name, "path": str(p.path), "sha256": p.sha256,
                              "license": p.info.license, "licence_class": p.info.licence_class.value}))
        else:
            print(f"{p.info.name:20} {p.path}  sha256:{p.sha256}  licence: {p.info.license}")
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
