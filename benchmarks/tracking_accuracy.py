"""Tracking and per-track recognition against the ground truth of a synthetic clip.

    python benchmarks/track_clip.py /tmp/door.avi --enrol-db /tmp/door.db
    python benchmarks/tracking_accuracy.py /tmp/door.avi --gallery /tmp/door.db

Runs ``anyedge run --every-frame --json --gallery`` on the clip (every frame, as a file is read
offline) and compares with embedding every face of every frame (the gallery labeller without
tracking). Faces are matched to the ground truth by IoU >= 0.5. Prints and writes
(``benchmarks/results/tracking_accuracy.{json,csv}``):

* ``id_switches``: times a person's track id changed from one frame they were seen in to the next;
* ``name_flips``: per track, times its name changed between two named frames (and how many of
  them fell on people who stayed in view);
* ``embedder_per_frame``: faces embedded per frame;
* ``accuracy``: named correctly / faces matched to a person; ``errors``: faces named as someone else;
* ``ms_per_frame``: what naming costs per frame, timed in one pass over the clip in this process
  (the detector's time is the same for both and shown apart): embedding and searching every face,
  against the tracker's update plus the per-track labeller (mean over the clip's frames).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, use_shared_models, write_results  # noqa: E402


def match(truth: list[dict], faces: list[dict]) -> list[tuple[dict, dict]]:
    """Visible ground-truth faces paired with detected ones, IoU >= 0.5, greedily."""
    from anyedge.ops.nms import iou_matrix

    shown = [t for t in truth if t["visible"]]
    if not shown or not faces:
        return []
    iou = iou_matrix(np.array([t["box"] for t in shown]), np.array([f["box"] for f in faces]))
    out = []
    while iou.size and iou.max() >= 0.5:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        out.append((shown[i], faces[j]))
        iou[i, :] = -1
        iou[:, j] = -1
    return out


def score(truth: list[list[dict]], frames: dict[int, list[dict]], *, tracked: bool) -> dict:
    ids: dict[str, list[int]] = {}
    names_by_track: dict[int, list[tuple[str, str | None]]] = {}
    matched = correct = errors = 0
    for f, gt in enumerate(truth):
        for t, face in match(gt, frames.get(f, [])):
            matched += 1
            correct += face.get("name") == t["person"]
            errors += face.get("name") not in (None, t["person"])
            if tracked and face.get("track") is not None:
                ids.setdefault(t["person"], []).append(face["track"])
                names_by_track.setdefault(face["track"], []).append((t["person"], face.get("name")))
    switches = sum(sum(a != b for a, b in zip(v, v[1:])) for v in ids.values())
    flips = 0
    for seq in names_by_track.values():
        named = [n for _, n in seq if n is not None]
        flips += sum(a != b for a, b in zip(named, named[1:]))
    return {"faces_matched": matched, "accuracy": round(correct / matched, 4) if matched else None,
            "errors": errors, "id_switches": switches if tracked else None,
            "tracks": len(names_by_track) if tracked else None, "name_flips": flips if tracked else None}


def run_cli(clip: Path, gallery: Path, extra: list[str]) -> tuple[dict[int, list[dict]], dict, list[dict]]:
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "run", "--source", str(clip), "--every-frame",
                        "--json", "--gallery", str(gallery), *extra], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"anyedge run failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    frames = {d["frame"]: d["faces"] for d in lines if d["type"] == "frame"}
    return frames, lines[-1], [d for d in lines if d["type"] == "track"]


def per_frame(clip: Path, gallery: Path, reembed_every: int | None) -> tuple[dict[int, list[dict]], dict[str, float]]:
    """Every face of every frame embedded and searched (the labeller without tracking), and the
    cost per frame of that vs the tracker plus the per-track labeller on the same detections."""
    import time

    import cv2

    from anyedge import FaceDetector
    from anyedge.live.tracking import Tracker
    from anyedge.recognition.pipeline import TrackLabeller, gallery_models, live_labeller

    det_name = gallery_models(gallery, None, None)[0]
    out = {}
    cost = {"detector": 0.0, "every_face": 0.0, "tracker": 0.0, "track_labeller": 0.0}
    with FaceDetector.create(det_name, channels="BGR") as det:
        lab = live_labeller(gallery, det, channels="BGR")
        tracked = TrackLabeller(live_labeller(gallery, det, channels="BGR"),
                                **({"reembed_every": reembed_every} if reembed_every else {}))
        tracker = Tracker()
        try:
            cap = cv2.VideoCapture(str(clip))
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                t0 = time.perf_counter()
                faces = det.detect(frame)
                t1 = time.perf_counter()
                out[i] = lab(frame, faces).to_list()
                t2 = time.perf_counter()
                step = tracker.update(i, faces)
                t3 = time.perf_counter()
                tracked(i, frame, faces, step.keys)
                t4 = time.perf_counter()
                for name, dt in zip(cost, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    cost[name] += dt
                i += 1
            cap.release()
        finally:
            lab.close()
            tracked.close()
    return out, {k: round(v * 1e3 / max(i, 1), 3) for k, v in cost.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("clip", type=Path, help="a clip from track_clip.py (its .json beside it)")
    ap.add_argument("--gallery", type=Path, required=True, help="the gallery track_clip.py --enrol-db wrote")
    ap.add_argument("--reembed-every", type=int, default=None, help="passed to anyedge run (default: its own)")
    ap.add_argument("--name", default="tracking_accuracy", help="results file name (default: %(default)s)")
    args = ap.parse_args(argv)
    use_shared_models()
    truth = json.loads(args.clip.with_suffix(".json").read_text())["frames"]
    extra = ["--reembed-every", str(args.reembed_every)] if args.reembed_every else []
    frames, summary, tracks = run_cli(args.clip, args.gallery, extra)
    base, cost = per_frame(args.clip, args.gallery, args.reembed_every)
    n = len(truth)
    stay = sum(1 for t in tracks if t["name"] is not None)
    rows = [
        {"mode": "per track (anyedge run)", **score(truth, frames, tracked=True),
         "embedder_per_frame": round(summary["embedded_faces"] / n, 3),
         "naming_ms_per_frame": round(cost["tracker"] + cost["track_labeller"], 3), "tracker_ms_per_frame": cost["tracker"]},
        {"mode": "every face, every frame", **score(truth, base, tracked=False),
         "embedder_per_frame": round(sum(len(v) for v in base.values()) / n, 3),
         "naming_ms_per_frame": cost["every_face"]},
    ]
    rows[0]["embedder_saving"] = round(rows[1]["embedder_per_frame"] / max(rows[0]["embedder_per_frame"], 1e-9), 2)
    cols = ["mode", "faces_matched", "accuracy", "errors", "id_switches", "tracks", "name_flips",
            "embedder_per_frame", "embedder_saving", "naming_ms_per_frame", "tracker_ms_per_frame"]
    print(markdown_table(rows, cols))
    print(f"{len(tracks)} tracks ended, {stay} named; frames {n}; detector {cost['detector']} ms/frame", file=sys.stderr)
    write_results(args.name, rows, {"clip": str(args.clip), "frames": n, "detector_ms_per_frame": cost["detector"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
