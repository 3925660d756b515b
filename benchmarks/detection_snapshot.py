"""Save a detector's faces on a folder of images, or compare today's faces with a saved snapshot.

Used to check that a change to pre/post-processing leaves the faces as they were:

    git stash; python benchmarks/detection_snapshot.py save before.npz --model blazeface-short; git stash pop
    python benchmarks/detection_snapshot.py compare before.npz --model blazeface-short

``compare`` prints F1 at IoU 0.5, mean IoU of matched faces and mean score drift of today's
faces against the snapshot's (``anyedge.ops.metrics.detection_agreement``), and exits 1 when F1 is
below ``--min-f1``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, use_shared_models  # noqa: E402


def _faces(model: str, engine: str | None, images: Path, threads: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import cv2

    from anyedge import FaceDetector

    out = {}
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    with FaceDetector.create(model, engine=engine, channels="BGR", threads=threads) as det:
        for p in paths:
            f = det.detect(cv2.imread(str(p)))
            out[p.name] = (f.boxes.copy(), f.scores.copy())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["save", "compare"])
    ap.add_argument("snapshot", help=".npz file to write (save) or read (compare)")
    ap.add_argument("--model", default="blazeface-short")
    ap.add_argument("--engine", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", default=str(SHARED / "data" / "widerface_val" / "images"))
    ap.add_argument("--min-f1", type=float, default=0.99)
    args = ap.parse_args()
    use_shared_models()
    from anyedge.ops.metrics import detection_agreement

    faces = _faces(args.model, args.engine, Path(args.images), args.threads)
    if args.action == "save":
        arrays = {}
        for name, (b, s) in faces.items():
            arrays[f"{name}|boxes"] = b
            arrays[f"{name}|scores"] = s
        np.savez_compressed(args.snapshot, **arrays)
        print(f"saved {sum(len(s) for _, s in faces.values())} faces on {len(faces)} images to {args.snapshot}")
        return 0
    z = np.load(args.snapshot)
    names = sorted({k.split("|")[0] for k in z.files})
    missing = [n for n in names if n not in faces]
    if missing:
        print(f"{len(missing)} snapshot images are not in {args.images}", file=sys.stderr)
        return 2
    pairs = [((z[f"{n}|boxes"], z[f"{n}|scores"]), faces[n]) for n in names]
    ag = detection_agreement(pairs)
    print(json.dumps({"model": args.model, "images": len(names), **ag.to_dict()}))
    return 0 if ag.f1 >= args.min_f1 else 1


if __name__ == "__main__":
    sys.exit(main())
