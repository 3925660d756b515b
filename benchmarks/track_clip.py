"""A scripted synthetic clip for tracking, with its ground truth written beside it.

Faces are cut from the photos of ``$ANYEDGE_DATA/faces/identities/<person>/`` (the face found
by YuNet, with a margin), then moved along straight paths across a textured background, scaled
as they go, crossing one another, and passed behind an occluding bar for a few frames; in a
fraction of frames (``--bad``) a face is blurred and lit differently, as a camera's bad frames. The
last photo (by name) of every person in the clip is the one cut; the other photos are left for
enrolment (``--enrol-db`` enrols them into a gallery).

    python benchmarks/track_clip.py /tmp/door.avi --people 4 --frames 150 --enrol-db /tmp/door.db

writes ``/tmp/door.avi`` (MJPG) and ``/tmp/door.json``: ``{"fps", "size", "people": [...],
"frames": [[{"person", "box": [x1, y1, x2, y2], "visible"}, ...], ...]}``, one list per frame
of the faces in it; a face is ``visible`` when at least 60 % of its box is uncovered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, use_shared_models  # noqa: E402

FACE_FRACTION = 0.45  # the face box's side over the sprite's side


def identities() -> Path:
    return Path(os.environ.get("ANYEDGE_DATA", SHARED / "data")) / "faces" / "identities"


def cut_sprites(people: list[str], det) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per person a square BGR sprite around the face of their last photo, and the face box in it."""
    import cv2

    out = {}
    for person in people:
        photo = sorted((identities() / person).glob("*.jpg"))[-1]
        img = cv2.imread(str(photo))
        faces = det.detect(img)
        if len(faces) == 0:
            raise SystemExit(f"{photo}: no face found")
        b = faces.boxes[int(np.argmax((faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])))]
        cx, cy, side = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, max(b[2] - b[0], b[3] - b[1]) / FACE_FRACTION
        m = np.float32([[1, 0, side / 2 - cx], [0, 1, side / 2 - cy]])
        sprite = cv2.warpAffine(img, m, (int(side), int(side)), borderMode=cv2.BORDER_REFLECT)
        box = np.float32([b[0] - cx + side / 2, b[1] - cy + side / 2, b[2] - cx + side / 2, b[3] - cy + side / 2])
        out[person] = (sprite, box / side)  # the box in sprite fractions
    return out


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    import cv2

    w, h = size
    noise = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    bg = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(bg, (0, 0), 6).astype(np.uint8) // 2 + 60


def script(people: list[str], frames: int, size: tuple[int, int], rng: np.random.Generator) -> list[dict]:
    """Paths: each person enters at a staggered frame, walks across (alternately left-right and
    right-left, so paths cross), and grows or shrinks by up to 30 %."""
    w, h = size
    paths = []
    for i, person in enumerate(people):
        lane = h * (0.35 + 0.3 * (i % 2)) + rng.uniform(-20, 20)
        start = int(i * frames * 0.12)
        span = int(frames * rng.uniform(0.55, 0.8))
        x0, x1 = (0.12 * w, 0.88 * w) if i % 2 == 0 else (0.88 * w, 0.12 * w)
        s0 = rng.uniform(0.3, 0.38) * h
        paths.append({"person": person, "start": start, "end": min(frames, start + span), "x": (x0, x1),
                      "y": (lane, lane + rng.uniform(-30, 30)), "side": (s0, s0 * rng.uniform(0.75, 1.3))})
    return paths


def render(paths: list[dict], sprites: dict, frames: int, size: tuple[int, int], fps: float, path: Path,
           rng: np.random.Generator, blur: float = 0.0) -> list[list[dict]]:
    import cv2

    w, h = size
    bg = background(size, rng)
    bar_w = int(0.1 * w)
    occlusions = [(int(frames * 0.3), 5), (int(frames * 0.62), 6)]  # (first frame, length) of a bar's pass
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path}")
    truth: list[list[dict]] = []
    try:
        for f in range(frames):
            frame = bg.copy()
            cover = np.zeros((h, w), np.int32)  # which layer is on top at each pixel
            placed = []
            for layer, p in enumerate(paths, 1):
                if not p["start"] <= f < p["end"]:
                    continue
                t = (f - p["start"]) / max(1, p["end"] - p["start"] - 1)
                cx, cy = np.interp(t, [0, 1], p["x"]), np.interp(t, [0, 1], p["y"])
                side = int(np.interp(t, [0, 1], p["side"]))
                sprite, fbox = sprites[p["person"]]
                x, y = int(cx - side / 2), int(cy - side / 2)
                img = cv2.resize(sprite, (side, side), interpolation=cv2.INTER_AREA)
                if rng.random() < blur:  # a camera's bad frames: defocus or motion, dimmer or brighter light
                    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.0, 3.5))
                    img = np.clip(img.astype(np.float32) * rng.uniform(0.6, 1.3), 0, 255).astype(np.uint8)
                sx0, sy0, sx1, sy1 = max(0, -x), max(0, -y), min(side, w - x), min(side, h - y)
                if sx1 <= sx0 or sy1 <= sy0:
                    continue
                frame[y + sy0:y + sy1, x + sx0:x + sx1] = img[sy0:sy1, sx0:sx1]
                cover[y + sy0:y + sy1, x + sx0:x + sx1] = layer
                placed.append((layer, p["person"], np.float32([x, y, x, y]) + fbox * side))
            for start, length in occlusions:  # a bar sweeps over the middle of the frame
                if start <= f < start + length:
                    cx = int(w * 0.5)
                    frame[:, cx - bar_w // 2:cx + bar_w // 2] = (40, 40, 40)
                    cover[:, cx - bar_w // 2:cx + bar_w // 2] = 1 << 20
            faces = []
            for layer, person, b in placed:
                x1, y1, x2, y2 = [int(round(v)) for v in b]
                region = cover[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
                shown = float((region == layer).mean()) if region.size else 0.0
                faces.append({"person": person, "box": [round(float(v), 1) for v in b], "visible": shown >= 0.6})
            truth.append(faces)
            writer.write(frame)
    finally:
        writer.release()
    return truth


def enrol(people: list[str], db: Path) -> None:
    """Enrol every photo of each person but the one cut for the clip."""
    from anyedge.recognition.gallery import Gallery
    from anyedge.recognition.pipeline import FacePipeline

    with FacePipeline.create("yunet", "mobilefacenet", channels="RGB") as fp, \
            Gallery.open(db, fp.embedder.identity, detector=fp.detector_identity) as g:
        fp.gallery = g
        from anyedge.ops.image import read_image

        for person in people:
            photos = sorted((identities() / person).glob("*.jpg"))[:-1]
            fp.enroll(person, [read_image(p) for p in photos], largest=True, sources=[p.name for p in photos])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("out", type=Path, help="the clip to write (.avi); the ground truth goes beside it as .json")
    ap.add_argument("--people", type=int, default=4, help="people in the clip (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=150, help="frames (default: %(default)s)")
    ap.add_argument("--fps", type=float, default=15.0, help="frame rate (default: %(default)s)")
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default: %(default)s)")
    ap.add_argument("--bad", type=float, default=0.3,
                    help="fraction of faces per frame blurred (sigma 1..3.5 px) and lit 0.6..1.3x (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ap.add_argument("--enrol-db", type=Path, default=None,
                    help="also enrol the people's other photos into this gallery (default: none)")
    args = ap.parse_args(argv)
    use_shared_models()
    from anyedge import FaceDetector

    size = tuple(int(v) for v in args.size.lower().split("x"))
    people = sorted(p.name for p in identities().iterdir() if p.is_dir())[:args.people]
    rng = np.random.default_rng(args.seed)
    with FaceDetector.create("yunet", channels="BGR") as det:
        sprites = cut_sprites(people, det)
    paths = script(people, args.frames, size, rng)
    truth = render(paths, sprites, args.frames, size, args.fps, args.out, rng, args.bad)
    doc = {"fps": args.fps, "size": list(size), "people": people, "frames": truth}
    gt = args.out.with_suffix(".json")
    tmp = gt.with_suffix(".json.part")
    tmp.write_text(json.dumps(doc) + "\n")
    os.replace(tmp, gt)
    if args.enrol_db is not None:
        enrol(people, args.enrol_db)
    shown = sum(f["visible"] for fr in truth for f in fr)
    print(f"wrote {args.out} ({args.frames} frames, {len(people)} people, {shown} visible faces) and {gt}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
