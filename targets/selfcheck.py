"""Does anyedge give this machine's answers the same as the reference machine's? Run it on a board.

``python -m anyedge.targets.selfcheck`` runs, with what is installed here:

* both shipped activity models on fixed synthetic sensor windows (computed, not stored): labels
  and integer scores must equal the reference exactly, and the engine must be running the
  compiled kernels (``--allow-reference-kernels`` accepts the numpy fallback);
* every registered face detector whose file is here, on every installed engine that reads it,
  on the sample photo (:func:`anyedge.samples.sample_image`, fetched once): every face matched by
  IoU with the reference's, boxes within :data:`BOX_TOL` px and scores within :data:`SCORE_TOL`.

The reference (``selfcheck_reference.json``, shipped in this package) was made on x86-64 with
``python -m anyedge.targets.selfcheck --write-reference targets/selfcheck_reference.json``.
Items this machine cannot run (a model not present, an engine not installed) are listed as
skipped. Exit code 0 when every item run matches, 1 when one does not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["BOX_TOL", "SCORE_TOL", "Item", "FaceDiff", "iou", "match_faces", "compare_faces",
           "synthetic_windows", "run_items", "check", "main"]

# Another ISA gets slightly different input tensors where the image is upscaled (OpenCV's INTER_LINEAR
# is not bit-exact across its x86-64 and aarch64 builds) and engines sum in another order: measured on
# 20 WIDER images, aarch64 vs x86-64, up to 1.23 px (RetinaFace, full-size input) and 0.0093 in score.
BOX_TOL = 2.0  # source pixels
SCORE_TOL = 0.01
REFERENCE = "selfcheck_reference.json"
HAR_MODELS = ("bnn-racketsports", "bnn-basicmotions")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``xyxy`` boxes (0 when both are empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_faces(ref: Sequence[Mapping[str, Any]], got: Sequence[Mapping[str, Any]],
                min_iou: float = 0.5) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs ``(i_ref, i_got)`` matched greedily by IoU (highest first, at least ``min_iou``), then the
    unmatched indices of ``ref`` and of ``got``."""
    cand = sorted(((iou(a["box"], b["box"]), i, j) for i, a in enumerate(ref) for j, b in enumerate(got)),
                  key=lambda t: (-t[0], t[1], t[2]))
    used_i: set[int] = set()
    used_j: set[int] = set()
    pairs = []
    for v, i, j in cand:
        if v < min_iou:
            break
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    return (sorted(pairs), [i for i in range(len(ref)) if i not in used_i],
            [j for j in range(len(got)) if j not in used_j])


@dataclass
class FaceDiff:
    """Faces found here against the reference's, over a set of images."""

    images: int = 0
    faces_ref: int = 0
    faces_got: int = 0
    matched: int = 0
    max_box: float = 0.0
    max_score: float = 0.0
    borderline: int = 0  # unmatched faces scored within the score tolerance of the threshold
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        text = (f"{self.matched}/{self.faces_ref} faces matched ({self.faces_got} here) on {self.images} image(s), "
                f"max box diff {self.max_box:.3f} px, max score diff {self.max_score:.4f}")
        if self.borderline:
            text += f", {self.borderline} unmatched face(s) at the score threshold"
        return text + (f"; {'; '.join(self.problems[:3])}" if self.problems else "")


def compare_faces(ref: Mapping[str, Sequence[Mapping[str, Any]]], got: Mapping[str, Sequence[Mapping[str, Any]]],
                  *, box_tol: float = BOX_TOL, score_tol: float = SCORE_TOL,
                  threshold: float | None = None) -> FaceDiff:
    """Compare faces per image (image -> list of ``{"box": xyxy, "score"}``).

    A problem (so ``ok`` is false): an image only one side has, a face either side has that the
    other has not (IoU < 0.5), a box coordinate or a score further apart than the tolerance.
    With the detector's score ``threshold``, a face one side has whose score is within
    ``score_tol`` of it is counted as ``borderline`` instead: the other side scored it just below.
    """
    d = FaceDiff(images=len(set(ref) | set(got)))
    for name in sorted(set(ref) ^ set(got)):
        d.problems.append(f"{name}: only in the {'reference' if name in ref else 'run here'}")
    for name in sorted(set(ref) & set(got)):
        a, b = ref[name], got[name]
        d.faces_ref += len(a)
        d.faces_got += len(b)
        pairs, lost, extra = match_faces(a, b)
        if threshold is not None:
            at_edge = [i for i in lost if float(a[i]["score"]) < threshold + score_tol]
            at_edge += [j for j in extra if float(b[j]["score"]) < threshold + score_tol]
            d.borderline += len(at_edge)
            lost = [i for i in lost if float(a[i]["score"]) >= threshold + score_tol]
            extra = [j for j in extra if float(b[j]["score"]) >= threshold + score_tol]
        d.matched += len(pairs)
        for i, j in pairs:
            d.max_box = max(d.max_box, max(abs(float(x) - float(y)) for x, y in zip(a[i]["box"], b[j]["box"])))
            d.max_score = max(d.max_score, abs(float(a[i]["score"]) - float(b[j]["score"])))
        if lost or extra:
            d.problems.append(f"{Path(name).name}: {len(lost)} reference face(s) not found, "
                              f"{len(extra)} face(s) not in the reference")
    if d.max_box > box_tol:
        d.problems.append(f"box difference {d.max_box:.3f} px > {box_tol}")
    if d.max_score > score_tol:
        d.problems.append(f"score difference {d.max_score:.4f} > {score_tol}")
    return d


@dataclass
class Item:
    """One thing checked: a model on an engine."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False


def synthetic_windows(n: int, window: int, channels: int):
    """``(n, window, channels)`` float32 sensor-like windows, the same on every machine (sines of exact inputs)."""
    import numpy as np

    t = np.arange(window, dtype=np.float64)[None, :, None]
    k = np.arange(n, dtype=np.float64)[:, None, None]
    c = np.arange(channels, dtype=np.float64)[None, None, :]
    x = (1.0 + 0.25 * k) * np.sin(0.07 * (c + 1.0) * t + 0.5 * k + c) + 0.1 * (k - c)
    # rounded to 1/1024 so libm's last-bit differences between machines cannot reach the model
    return (np.round(x * 1024.0) / 1024.0).astype(np.float32)


def _har_results() -> dict[str, Any]:
    from ..tasks.activity_classifier import ActivityClassifier

    out: dict[str, Any] = {}
    for model in HAR_MODELS:
        with ActivityClassifier.create(model) as clf:
            spec = clf.engine.inputs[0]
            x = synthetic_windows(24, spec.shape[1], spec.shape[2])
            raw = clf.engine.run({spec.name: x})[0]
            labels = [r.label for r in clf.classify_batch(x)]
            out[model] = {"labels": labels, "scores": raw.astype(int).tolist(),
                          "kernels": getattr(clf.engine, "kernels", "?")}
    return out


def _detector_results(image: Path | None) -> tuple[dict[str, Any], list[Item]]:
    from ..engines import engines_for
    from ..registry import find_model_file, list_models

    skipped: list[Item] = []
    todo = []
    for m in list_models():
        if m.task != "face_detection":
            continue
        engines = engines_for(m.filename)
        if not engines:
            skipped.append(Item(f"{m.name}", True, "no engine installed here reads it", skipped=True))
        elif not find_model_file(m):
            skipped.append(Item(f"{m.name}", True, "model file not present (anyedge models)", skipped=True))
        else:
            todo += [(m.name, e) for e in engines]
    if not todo:
        return {}, skipped
    import cv2

    from ..tasks.face_detector import FaceDetector

    if image is None:
        from ..samples import sample_image

        image = sample_image("astronaut")
    img = cv2.imread(str(image))
    out = {}
    for model, engine in todo:
        with FaceDetector.create(model, engine=engine, channels="BGR", threads=1) as det:
            out[f"{model}/{engine}"] = {"faces": det.detect(img).to_list()}
    return out, skipped


def run_items(image: Path | None = None) -> dict[str, Any]:
    """What this machine answers: ``{"har": {...}, "detect": {...}, "skipped": [...]}`` (the reference's shape)."""
    har = _har_results()
    det, skipped = _detector_results(image)
    return {"machine": platform.machine(), "har": har, "detect": det, "skipped": [asdict(s) for s in skipped]}


def check(reference: Mapping[str, Any], here: Mapping[str, Any], *, allow_reference_kernels: bool = False) -> list[Item]:
    """Compare this machine's answers with the reference: one :class:`Item` per model (x engine)."""
    items: list[Item] = []
    for model in HAR_MODELS:
        ref, got = reference.get("har", {}).get(model), here["har"].get(model)
        if ref is None or got is None:
            items.append(Item(model, False, "missing from the reference" if ref is None else "not run here"))
            continue
        problems = []
        if got["labels"] != ref["labels"]:
            n = sum(a != b for a, b in zip(ref["labels"], got["labels"])) + abs(len(ref["labels"]) - len(got["labels"]))
            problems.append(f"{n}/{len(ref['labels'])} labels differ")
        if got["scores"] != ref["scores"]:
            problems.append("integer scores differ")
        if got["kernels"] != "cython" and not allow_reference_kernels:
            problems.append(f"the bnn engine runs the {got['kernels']} kernels, not the compiled ones")
        items.append(Item(model, not problems, "; ".join(problems) or
                          f"{len(got['labels'])} windows: labels and scores identical ({got['kernels']} kernels)"))
    for key, got in sorted(here["detect"].items()):
        ref = reference.get("detect", {}).get(key)
        if ref is None:
            items.append(Item(key, True, "not in the reference", skipped=True))
            continue
        d = compare_faces({"sample": ref["faces"]}, {"sample": got["faces"]})
        items.append(Item(key, d.ok, d.summary()))
    items += [Item(**s) for s in here.get("skipped", [])]
    return items


def _reference(path: str | None) -> dict[str, Any]:
    from ..errors import InputError

    try:
        if path:
            text = Path(path).read_text()
        else:
            text = resources.files("anyedge.targets").joinpath(REFERENCE).read_text()
        doc = json.loads(text)
    except (OSError, ValueError) as e:
        raise InputError(f"the selfcheck reference {path or REFERENCE} is not readable JSON: {e}") from None
    if not isinstance(doc, dict) or "har" not in doc or "detect" not in doc:
        raise InputError(f"the selfcheck reference {path or REFERENCE} has no 'har' and 'detect' sections")
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import AnyEdgeError

    ap = argparse.ArgumentParser(
        prog="python -m anyedge.targets.selfcheck", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m anyedge.targets.selfcheck\n  python -m anyedge.targets.selfcheck --json\n"
               "  python -m anyedge.targets.selfcheck --write-reference my-ref.json")
    ap.add_argument("--json", action="store_true", help='print {"ok", "passed", "items": [...]} instead of a table')
    ap.add_argument("--reference", default=None, help="compare with this JSON instead of the shipped reference")
    ap.add_argument("--image", type=Path, default=None,
                    help="photo for the detectors (default: the sample photo; the reference is made on it)")
    ap.add_argument("--allow-reference-kernels", action="store_true",
                    help="accept the bnn engine's numpy fallback (a board without a compiler at install)")
    ap.add_argument("--write-reference", default=None, metavar="PATH",
                    help="write this machine's answers as a reference to PATH and exit")
    args = ap.parse_args(argv)
    try:
        here = run_items(args.image)
        if args.write_reference:
            out = Path(args.write_reference)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(json.dumps(here, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, out)
            print(f"wrote {out}", file=sys.stderr)
            return 0
        items = check(_reference(args.reference), here, allow_reference_kernels=args.allow_reference_kernels)
    except AnyEdgeError as e:
        print(f"selfcheck: error: {e}", file=sys.stderr)
        return 2
    run = [i for i in items if not i.skipped]
    ok = bool(run) and all(i.ok for i in run)
    if args.json:
        print(json.dumps({"ok": ok, "machine": here["machine"], "passed": sum(i.ok for i in run),
                          "items": [asdict(i) for i in items]}))
    else:
        for i in items:
            print(f"{'skip' if i.skipped else 'ok' if i.ok else 'FAIL':4}  {i.name:32} {i.detail}")
        print(f"{sum(i.ok for i in run)}/{len(run)} match the reference on {here['machine']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
