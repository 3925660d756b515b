"""``anyedge verify``, ``anyedge calibrate-threshold`` and ``anyedge gallery ...``.

Exit codes: 0 success; 1 some images could not be used (each reported, the rest processed);
2 an error stopped the command (one line on stderr; ``-v`` for details).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..cli_args import add_device_args, device_request, float_in, int_at_least, positive_int
from ..errors import InputError
from ..signing.cli import add_trust_argument

__all__ = ["add_parsers"]

_EXIT = "exit codes: 0 ok, 1 some images failed (reported, others processed), 2 error"
_DEFAULT_EMBEDDER = "mobilefacenet"
_cosine = float_in(-1.0, 1.0)


def _read_bgr(path: str | Path) -> np.ndarray:
    from ..ops.image import read_image

    return read_image(path)


def _pipeline(args: argparse.Namespace, embedder: str, gallery: Any = None) -> Any:
    from .pipeline import FacePipeline

    return FacePipeline.create(args.detector, embedder, gallery=gallery, engine=args.engine,
                               threshold=getattr(args, "threshold", None), threads=args.threads,
                               flip=args.flip, channels="BGR", device=device_request(args))


def _largest_embedding(fp: Any, path: str) -> np.ndarray:
    res = fp.process(_read_bgr(path))
    if len(res) == 0:
        raise InputError(f"{path}: no face found")
    b = res.detections.boxes
    return res.embeddings[int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))]


# -- verify ---------------------------------------------------------------------------------
def _cmd_verify(args: argparse.Namespace) -> int:
    with _pipeline(args, args.embedder) as fp:
        a = _largest_embedding(fp, args.a)
        b = _largest_embedding(fp, args.b)
        score = float(a @ b)
        out = {"same": score >= fp.threshold, "score": round(score, 4), "threshold": fp.threshold}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'same person' if out['same'] else 'different people'}: cosine {score:.4f} "
              f"(threshold {out['threshold']})")
    return 0


# -- calibrate-threshold ----------------------------------------------------------------------
def _read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        ca = "a" if "a" in cols else "file_a" if "file_a" in cols else None
        cb = "b" if "b" in cols else "file_b" if "file_b" in cols else None
        if ca is None or cb is None or "same" not in cols:
            raise InputError(f"{path}: expected columns a, b, same (or file_a, file_b, same), got {cols}")
        rows = []
        for i, r in enumerate(reader, 2):
            s = (r["same"] or "").strip().lower()
            if s not in {"0", "1", "true", "false"}:
                raise InputError(f"{path}:{i}: 'same' must be 0/1 or true/false, got {r['same']!r}")
            rows.append((r[ca], r[cb], s in {"1", "true"}))
    if not rows:
        raise InputError(f"{path}: no pairs")
    return rows


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .verification import verification_report

    path = Path(args.pairs)
    pairs = _read_pairs(path)
    base = path.parent
    files = sorted({p for a, b, _ in pairs for p in (a, b)})
    vecs: dict[str, np.ndarray] = {}
    failed = []
    with _pipeline(args, args.embedder) as fp:
        default = fp.embedder.threshold
        for i, f in enumerate(files, 1):
            p = Path(f) if Path(f).is_absolute() else base / f
            try:
                vecs[f] = _largest_embedding(fp, str(p))
            except InputError as e:
                failed.append(str(e))
            print(f"\rembedding {i}/{len(files)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    for msg in failed:
        print(f"anyedge: skipped: {msg}", file=sys.stderr)
    used = [(a, b, s) for a, b, s in pairs if a in vecs and b in vecs]
    scores = np.array([float(vecs[a] @ vecs[b]) for a, b, _ in used])
    report = verification_report(scores, np.array([s for *_, s in used]))
    out = {**report.to_dict(), "skipped_pairs": len(pairs) - len(used), "default_threshold": default,
           "recommended_threshold_method": "median of 10-fold cross-validated thresholds maximising balanced accuracy"}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"pairs {report.pairs} ({report.genuine} genuine), skipped {out['skipped_pairs']}")
        print(f"ROC AUC {report.roc_auc:.4f}   EER {report.eer:.4f} (at {report.eer_threshold:.4f})")
        print(f"TAR @ FAR 1e-2 {report.tar_at_far_1e2:.4f}   TAR @ FAR 1e-3 {report.tar_at_far_1e3:.4f}"
              f"   (smallest resolvable FAR here: {report.min_resolvable_far:.2g})")
        print(f"recommended threshold {report.recommended_threshold:.4f} (10-fold CV accuracy "
              f"{report.cv_accuracy:.4f}, balanced {report.cv_balanced_accuracy:.4f}); embedder default {default}")
    return 0


# -- gallery ------------------------------------------------------------------------------------
def _open_gallery(args: argparse.Namespace, identity: Any = None, create: bool = True,
                  readonly: bool = False) -> Any:
    """The gallery --db names; commands that only read open it read-only (works on read-only media)."""
    from .gallery import Gallery

    return Gallery.open(args.db, identity, create=create, readonly=readonly)


def _printable(text: str) -> str:
    """A name from the gallery, with control characters escaped, safe to print on a terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _embedder_for(args: argparse.Namespace) -> str:
    """--embedder, else the one the gallery was built with, else the default."""
    if args.embedder:
        return args.embedder
    from .gallery import Gallery, default_gallery_path

    db = Path(args.db) if args.db else default_gallery_path()
    if db.exists():
        with Gallery.open(db, create=False, readonly=True) as g:
            ident = g.identity
        if ident:
            from ..tasks.face_embedder import embedder_names

            if ident["name"] not in embedder_names():
                raise InputError(f"{db} was built with embedder {ident['name']!r}, which is not a registry name "
                                 "(a bundle or file?): pass it with --embedder PATH")
            return ident["name"]
    return _DEFAULT_EMBEDDER


def _cmd_enroll(args: argparse.Namespace) -> int:
    from .gallery import person_name

    name = person_name(args.name)  # refuse a bad name before loading any model
    with _pipeline(args, _embedder_for(args)) as fp, _open_gallery(args, fp.embedder.identity) as g:
        fp.gallery = g
        images = []
        for i, p in enumerate(args.images, 1):
            images.append(_read_bgr(p))
            print(f"\rreading {i}/{len(args.images)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        n = fp.enroll(name, images, sources=[str(p) for p in args.images], face=args.face,
                      largest=args.largest)
        out = {"name": name, "added": len(images), "embeddings": n, "db": str(g.path)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"enrolled {out['name']}: {len(images)} photo(s) added, {n} in the gallery ({out['db']})")
    return 0


def _cmd_identify(args: argparse.Namespace) -> int:
    failures = 0
    with _pipeline(args, _embedder_for(args)) as fp, _open_gallery(args, fp.embedder.identity, create=False,
                                                                               readonly=True) as g:
        fp.gallery = g
        for p in args.images:
            try:
                res = fp.process(_read_bgr(p))
            except InputError as e:
                failures += 1
                if args.json:
                    print(json.dumps({"image": str(p), "error": str(e)}), flush=True)
                else:
                    print(f"anyedge: {e}", file=sys.stderr)
                continue
            faces = [{"box": f["box"], "name": f["name"], "score": f["score"]} for f in res.to_list()]
            if args.json:
                print(json.dumps({"image": str(p), "faces": faces}), flush=True)
            else:
                who = ", ".join(f"{_printable(f['name'] or 'unknown')} ({f['score']})" for f in faces) or "no face"
                print(f"{p}: {who}")
    return 1 if failures else 0


def _cmd_list(args: argparse.Namespace) -> int:
    with _open_gallery(args, create=False, readonly=True) as g:
        people = g.people()
        ident = g.identity
    if args.json:
        print(json.dumps({"db": str(g.path), "embedder": ident,
                          "people": [{"name": n, "embeddings": c} for n, c in people]}))
    else:
        print(f"{g.path}: {len(people)} people, embedder {_printable(ident['name']) if ident else 'none yet'}")
        for n, c in people:
            print(f"  {_printable(n)}  ({c} embedding{'s' if c != 1 else ''})")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from .gallery import person_name

    name = person_name(args.name)
    with _open_gallery(args, create=False) as g:
        n = g.remove(name)
    if args.json:
        print(json.dumps({"removed": name, "embeddings": n}))
    else:
        print(f"removed {name} ({n} embeddings)")
    return 0


# -- parsers ------------------------------------------------------------------------------------
def _model_opts(p: argparse.ArgumentParser, embedder_default: str | None) -> None:
    p.add_argument("--detector", default="scrfd-500m",
                   help="face detector with 5 keypoints or BlazeFace's 6: registry name, bundle or file "
                        "(default: scrfd-500m)")
    if embedder_default is None:
        p.add_argument("--embedder", default=None,
                       help="embedder name or bundle directory (default: the one the gallery was built "
                            f"with, else {_DEFAULT_EMBEDDER})")
    else:
        p.add_argument("--embedder", default=embedder_default,
                       help=f"embedder name or bundle directory (default: {embedder_default})")
    p.add_argument("--engine", default=None, help="litert, onnxruntime or openvino for both models "
                                                  "(default: each model's own)")
    add_trust_argument(p)
    p.add_argument("--threads", type=positive_int, default=None, help="engine CPU threads (default: engine default)")
    p.add_argument("--flip", action="store_true", help="average each embedding with its mirror image's")
    add_device_args(p, what="the detector and the embedder each")


def _db_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None,
                   help="gallery database (default: $XDG_DATA_HOME/anyedge/gallery.db, "
                        "i.e. ~/.local/share/anyedge/gallery.db)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")


def _example(command: str) -> str:
    return f"example:\n  {command}\n\n{_EXIT}"


def add_parsers(sub: Any) -> None:
    """Register ``verify``, ``calibrate-threshold`` and ``gallery`` on the main parser."""
    p = sub.add_parser("verify", help="are two photos the same person? (largest face of each)",
                       description="Embed the largest face of each photo and compare by cosine.",
                       epilog=_example("anyedge verify a.jpg b.jpg --json"))
    p.add_argument("a", metavar="A", help="first image (its largest face is used)")
    p.add_argument("b", metavar="B", help="second image (its largest face is used)")
    _model_opts(p, _DEFAULT_EMBEDDER)
    p.add_argument("--threshold", type=_cosine, default=None,
                   help="cosine in [-1, 1] for 'same' (default: the embedder's)")
    p.add_argument("--json", action="store_true", help='print {"same", "score", "threshold"}')
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("calibrate-threshold", help="ROC AUC, EER, TAR@FAR and a threshold from labelled pairs",
                       description="PAIRS.csv has columns a, b, same (1/0); image paths are relative to the "
                                   "CSV's folder. The largest face of each image is used; images without a "
                                   "face are skipped with a message. The recommended threshold is "
                                   "cross-validated (10 folds), so its accuracy is not measured on the pairs "
                                   "it was chosen on.",
                       epilog=_example("anyedge calibrate-threshold ../shared/data/faces/pairs.csv"))
    p.add_argument("pairs", metavar="PAIRS.csv", help="CSV with columns a, b, same (file_a, file_b also accepted)")
    _model_opts(p, _DEFAULT_EMBEDDER)
    p.add_argument("--json", action="store_true", help="one JSON object with every figure")
    p.set_defaults(func=_cmd_calibrate)

    g = sub.add_parser("gallery", help="enrol, identify, list and remove people in a face gallery",
                       description="A face gallery in one SQLite file.",
                       epilog=_example("anyedge gallery enroll alice a1.jpg a2.jpg"))
    gs = g.add_subparsers(dest="gallery_command", required=True)

    p = gs.add_parser("enroll", help="add photos of a person (all or none are added)",
                      epilog=_example("anyedge gallery enroll alice a1.jpg a2.jpg --detector scrfd-500m"),
                      description="Each photo must show one face (or use --face/--largest) with eyes at least "
                                  "20 px apart and a sharp enough crop (variance of Laplacian >= 50).")
    p.add_argument("name", metavar="NAME", help="the person's name (added to if already enrolled)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="photos of that person, one face each")
    _db_opt(p)
    _model_opts(p, None)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--face", type=int_at_least(0), default=None,
                       help="index of the face to take (best detection first)")
    which.add_argument("--largest", action="store_true", help="take the largest face when there are several")
    p.set_defaults(func=_cmd_enroll)

    p = gs.add_parser("identify", help="name every face in images (one JSON line per image with --json)",
                      epilog=_example("anyedge gallery identify frame.jpg --json"))
    p.add_argument("images", metavar="IMAGE", nargs="+", help="images to search for enrolled people")
    _db_opt(p)
    _model_opts(p, None)
    p.add_argument("--threshold", type=_cosine, default=None,
                   help="cosine in [-1, 1] below which a face is unknown (name null); default: the embedder's")
    p.set_defaults(func=_cmd_identify)

    p = gs.add_parser("list", help="people in the gallery and their number of embeddings",
                      epilog=_example("anyedge gallery list --json"))
    _db_opt(p)
    p.set_defaults(func=_cmd_list)

    p = gs.add_parser("remove", help="delete a person and their embeddings",
                      epilog=_example("anyedge gallery remove alice"))
    p.add_argument("name", metavar="NAME", help="the person to delete")
    _db_opt(p)
    p.set_defaults(func=_cmd_remove)

