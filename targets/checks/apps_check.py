"""Prove the C post-processing library against the SDK: on this host, and for aarch64 under qemu.

``python targets/checks/apps_check.py`` (what ``make apps-check`` runs) takes every registered
face detector, runs the SDK's :class:`~anyedge.tasks.face_detector.FaceDetector` on the WIDER
validation images, and feeds the raw engine outputs Python produced to the C library
(``anyedge export-c``'s folder, compiled with the host compiler and, when
``aarch64-linux-gnu-gcc`` and ``qemu-aarch64`` are installed, cross-compiled for aarch64). It
compares every face (box, score, keypoints) with the SDK's and prints, per model and
toolchain, the images, faces and the largest coordinate and score differences. It exits 1 when
a face count differs, when a family the SDK decodes with the C library's arithmetic (BlazeFace,
SCRFD, UltraFace) is not bit-identical, when the SDK's numpy decoding with libm's ``exp`` is not
bit-identical for any family, or when a difference exceeds the float-rounding tolerance.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from anyedge.errors import ConversionError
from anyedge.paths import data_dir
from c_toolchains import CHECK_FLAGS, Toolchain, host_toolchain

__all__ = [
    "FLAGS",
    "EXACT_FAMILIES",
    "COORD_TOL",
    "SCORE_TOL",
    "aarch64_toolchain",
    "toolchains",
    "build_harness",
    "Frames",
    "numpy_decode",
    "capture",
    "run_detect",
    "compare",
    "Stats",
    "check_model",
    "main",
]

log = logging.getLogger(__name__)

CHECK_C = Path(__file__).resolve().parent / "c" / "post_check.c"
FLAGS = CHECK_FLAGS
# Families whose decoding is only + - * / and comparisons (SCRFD, UltraFace), or whose one exp
# the SDK takes in float64 and rounds to float32 as the C library does (BlazeFace's sigmoid, in
# the compiled kernel and the numpy path): IEEE float32 makes C and the SDK agree bit for bit.
# YuNet and RetinaFace call numpy's float32 exp (its SIMD code differs from libm's in the last bits).
EXACT_FAMILIES = frozenset({"blazeface", "scrfd", "ultraface"})
COORD_TOL = 1e-2  # source pixels; exp rounding moves coordinates by ~1e-4 px
SCORE_TOL = 1e-5

MODELS = ("blazeface-short", "blazeface-full", "scrfd-500m", "yunet", "yunet-n-320", "retinaface-mnet025",
          "ultraface-rfb320")


def aarch64_toolchain() -> Toolchain | None:
    """``aarch64-linux-gnu-gcc`` (static build) + ``qemu-aarch64``, or ``None`` when either is missing."""
    cc = os.environ.get("AARCH64_CC", "aarch64-linux-gnu-gcc")
    qemu = os.environ.get("QEMU_AARCH64", "qemu-aarch64")
    if shutil.which(cc) and shutil.which(qemu):
        return Toolchain("aarch64", cc, (qemu,), ("-static",))
    return None


def toolchains(require_aarch64: bool = False) -> list[Toolchain]:
    """The host compiler and, when installed, the aarch64 cross compiler.

    Raises:
        ConversionError: no host compiler, or ``require_aarch64`` and no aarch64 toolchain.
    """
    host = host_toolchain()
    if host is None:
        raise ConversionError("no C compiler found (set CC or install gcc)")
    arm = aarch64_toolchain()
    if arm is None and require_aarch64:
        raise ConversionError("aarch64-linux-gnu-gcc and qemu-aarch64 are not both installed "
                              "(apt-get install gcc-aarch64-linux-gnu qemu-user)")
    return [host] + ([arm] if arm else [])


def build_harness(export_dir: str | os.PathLike[str], ident: str, toolchain: Toolchain,
                  workdir: str | os.PathLike[str] | None = None) -> Path:
    """Compile ``post_check.c`` against an ``anyedge export-c`` folder (its library copy and header).

    Raises:
        ConversionError: the compiler reported an error.
    """
    exp = Path(export_dir)
    work = Path(workdir or exp)
    work.mkdir(parents=True, exist_ok=True)
    exe = work / f"post_check_{ident}_{toolchain.name}"
    cmd = [toolchain.cc, *FLAGS, *toolchain.flags, f"-I{exp}", f'-DAEPOST_CHECK_HEADER="{ident}.h"',
           f"-DAEPOST_CHECK_MODEL={ident}", str(exp / "anyedge_post.c"), str(CHECK_C), "-lm",
           "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConversionError(f"{toolchain.cc} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return exe


@dataclass
class Frames:
    """What the SDK did on a set of images: the raw outputs (in a file, slot order) and its faces."""

    model: str
    family: str
    path: Path
    images: list[str] = field(default_factory=list)
    faces: list[Any] = field(default_factory=list)  # FaceDetections per image
    faces_libm_exp: list[Any] = field(default_factory=list)  # the numpy decoding with libm's exp (see numpy_decode)
    score_threshold: float = 0.5
    iou_threshold: float = 0.4
    keypoints: int = 0


def _read_bgr(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ConversionError(f"{path}: not a readable image")
    return img


@contextlib.contextmanager
def libm_exp() -> Iterator[None]:
    """Within the block, ``numpy.exp`` of float32 arrays is the C library's: libm's exp in float64,
    rounded to float32 (the rest of numpy is untouched). Decoding with it shows that exp is the
    only difference between the C library and the SDK."""
    orig = np.exp

    def exp(x: Any, *args: Any, **kwargs: Any) -> Any:
        a = np.asarray(x)
        if a.dtype == np.float32 and not args and not kwargs:
            flat = [math.exp(v) for v in a.ravel().tolist()]
            return np.array(flat, dtype=np.float64).astype(np.float32).reshape(a.shape)
        return orig(x, *args, **kwargs)

    np.exp = exp  # type: ignore[assignment]
    try:
        yield
    finally:
        np.exp = orig  # type: ignore[assignment]


def numpy_decode(det: Any, outputs: Any, lb: Any) -> Any:
    """``det.decode`` through the numpy decoder with libm's ``exp`` (see :func:`libm_exp`): the
    family's compiled post-processing (BlazeFace's), when it has one, set aside. This is the
    reference the C library mirrors step by step, for every family."""
    fast, det._faces = det._faces, None
    try:
        with libm_exp():
            return det.decode(outputs, lb)
    finally:
        det._faces = fast


def capture(model: str | os.PathLike[str], images: Sequence[Path], out_file: str | os.PathLike[str], *,
            slots: Sequence[str], engine: str | None = None, progress: bool = False) -> Frames:
    """Run the SDK on ``images`` (read as BGR, as the CLI does) and record what the C library needs.

    The raw outputs of every image go to ``out_file`` in the harness's ``AEPF`` format, one image
    at a time (a 640x640 SCRFD frame is ~1 MB); the SDK's own faces are kept in memory.
    """
    from anyedge.tasks.face_detector import FaceDetector

    det = FaceDetector.create(model, engine=engine)
    try:
        cfg = det.spec.decoder
        fr = Frames(str(model), det.spec.family, Path(out_file),
                    score_threshold=float(cfg.get("score_threshold", 0.5)),
                    iou_threshold=float(cfg.get("iou_threshold", 0.4)), keypoints=int(cfg.get("keypoints", 0)))
        with open(out_file, "wb") as f:
            f.write(b"AEPF" + struct.pack("<II", len(images), len(slots)))
            for i, p in enumerate(images):
                img = _read_bgr(p)
                x, lb = det.preprocess(img, "BGR")
                outs = det.run_engine(x)
                fr.faces.append(det.decode(outs, lb))
                fr.faces_libm_exp.append(numpy_decode(det, outs, lb))
                fr.images.append(str(p))
                f.write(struct.pack("<II", img.shape[1], img.shape[0]))
                for name in slots:
                    a = np.ascontiguousarray(outs[name], dtype="<f4").ravel()
                    f.write(struct.pack("<I", a.size))
                    f.write(a.tobytes())
                if progress and (i + 1) % 25 == 0:
                    print(f"  {model}: {i + 1}/{len(images)} images", file=sys.stderr, flush=True)
    finally:
        det.close()
    return fr


@dataclass(frozen=True)
class CFace:
    rc: int
    resized: tuple[int, int]
    boxes: np.ndarray      # (n, 4) float32
    scores: np.ndarray     # (n,)
    keypoints: np.ndarray  # (n, k, 2)


def _floats(tokens: Sequence[str]) -> np.ndarray:
    return np.array([int(t, 16) for t in tokens], dtype=np.uint32).view(np.float32)


def run_detect(exe: str | os.PathLike[str], frames: Frames, toolchain: Toolchain, *,
               score_threshold: float | None = None, iou_threshold: float | None = None, max_faces: int = 0,
               timeout: float = 900.0) -> list[CFace]:
    """Run a built harness on a :class:`Frames` file; one :class:`CFace` per image.

    Raises:
        ConversionError: the program failed or printed something unexpected.
    """
    thr = frames.score_threshold if score_threshold is None else score_threshold
    iou = frames.iou_threshold if iou_threshold is None else iou_threshold
    cmd = [*toolchain.runner, str(exe), "detect", str(frames.path), repr(float(thr)), repr(float(iou)),
           str(int(max_faces))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ConversionError(f"{exe} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    lines = proc.stdout.split("\n")[:-1]
    if len(lines) != len(frames.images):
        raise ConversionError(f"{exe} printed {len(lines)} lines for {len(frames.images)} images")
    k = frames.keypoints
    per = 5 + 2 * k
    res = []
    for line in lines:
        t = line.split()
        rc, n, rw, rh = int(t[0]), int(t[1]), int(t[2]), int(t[3])
        vals = _floats(t[4:])
        if vals.size != n * per:
            raise ConversionError(f"{exe} printed {vals.size} values for {n} faces of {per}")
        v = vals.reshape(n, per)
        res.append(CFace(rc, (rw, rh), v[:, :4], v[:, 4], v[:, 5:].reshape(n, k, 2)))
    return res


@dataclass
class Stats:
    """Agreement of the C library with the SDK on one model and toolchain."""

    model: str
    family: str
    toolchain: str
    images: int = 0
    faces: int = 0
    c_faces: int = 0
    count_mismatches: int = 0
    bad_rc: int = 0
    identical_images: int = 0
    identical_libm_exp: int = 0  # images bit-identical to the SDK's numpy decoding with libm's exp
    max_coord_diff: float = 0.0
    max_score_diff: float = 0.0

    @property
    def exact(self) -> bool:
        return self.count_mismatches == 0 and self.bad_rc == 0 and self.identical_images == self.images

    @property
    def ok(self) -> bool:
        if self.count_mismatches or self.bad_rc or self.identical_libm_exp != self.images:
            return False
        if self.family in EXACT_FAMILIES:
            return self.exact
        return self.max_coord_diff <= COORD_TOL and self.max_score_diff <= SCORE_TOL

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "family": self.family, "toolchain": self.toolchain, "images": self.images,
                "faces": self.faces, "c_faces": self.c_faces, "count_mismatches": self.count_mismatches,
                "bad_rc": self.bad_rc, "bit_identical_images": self.identical_images,
                "bit_identical_images_libm_exp": self.identical_libm_exp,
                "max_coord_diff_px": self.max_coord_diff, "max_score_diff": self.max_score_diff,
                "exact": self.exact, "ok": self.ok}


def _bits_equal(py: Any, cf: CFace) -> bool:
    return (len(py) == len(cf.scores) and
            np.array_equal(np.asarray(py.boxes, np.float32).view(np.uint32), cf.boxes.view(np.uint32)) and
            np.array_equal(np.asarray(py.scores, np.float32).view(np.uint32), cf.scores.view(np.uint32)) and
            np.array_equal(np.asarray(py.keypoints, np.float32).view(np.uint32), cf.keypoints.view(np.uint32)))


def compare(frames: Frames, c: Sequence[CFace], toolchain: str) -> Stats:
    """Face-by-face comparison of the C results with the SDK's (both best score first)."""
    st = Stats(frames.model, frames.family, toolchain, images=len(frames.faces))
    for i, (py, cf) in enumerate(zip(frames.faces, c)):
        if i < len(frames.faces_libm_exp):
            st.identical_libm_exp += cf.rc == 0 and _bits_equal(frames.faces_libm_exp[i], cf)
        st.faces += len(py)
        st.c_faces += len(cf.scores)
        if cf.rc != 0:
            st.bad_rc += 1
            continue
        if len(py) != len(cf.scores):
            st.count_mismatches += 1
            continue
        if len(py) == 0:
            st.identical_images += 1
            continue
        pb, ps, pk = (np.asarray(py.boxes, np.float32), np.asarray(py.scores, np.float32),
                      np.asarray(py.keypoints, np.float32))
        st.identical_images += _bits_equal(py, cf)
        d = [np.abs(pb.astype(np.float64) - cf.boxes).max()]
        if pk.size:
            d.append(np.abs(pk.astype(np.float64) - cf.keypoints).max())
        st.max_coord_diff = max(st.max_coord_diff, float(max(d)))
        st.max_score_diff = max(st.max_score_diff, float(np.abs(ps.astype(np.float64) - cf.scores).max()))
    return st


def check_model(model: str, images: Sequence[Path], chains: Iterable[Toolchain], workdir: str | os.PathLike[str],
                *, progress: bool = False) -> list[Stats]:
    """Export ``model`` (anyedge export-c), capture the SDK on ``images``, run the C library per toolchain."""
    from anyedge.apps.export_c import export_c

    work = Path(workdir)
    exp = export_c(model, work / "export")
    exes = [(t, build_harness(exp.out, exp.params.ident, t, work)) for t in chains]
    frames = capture(model, images, work / "frames.bin", slots=exp.params.slots, progress=progress)
    try:
        return [compare(frames, run_detect(exe, frames, t), t.name) for t, exe in exes]
    finally:
        frames.path.unlink(missing_ok=True)


def _wider_images(data_root: Path | None, limit: int | None) -> list[Path]:
    root = data_root or data_dir()
    if root is None:
        raise ConversionError("no WIDER images: give --data-root or set ANYEDGE_DATA to the folder holding "
                              "widerface_val/images")
    folder = root / "widerface_val" / "images"
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise ConversionError(f"no WIDER images in {folder} (set ANYEDGE_DATA)")
    return files[:limit] if limit else files


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the C library (host, and aarch64 under qemu) with the SDK on the WIDER images."""
    ap = argparse.ArgumentParser(prog="python targets/checks/apps_check.py", description=main.__doc__)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names or bundles")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (default: all)")
    ap.add_argument("--data-root", type=Path, default=None, help="folder holding widerface_val/ (default: ANYEDGE_DATA)")
    ap.add_argument("--require-aarch64", action="store_true", help="fail when the aarch64 toolchain or qemu is missing")
    ap.add_argument("--json", default=None, type=Path, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        chains = toolchains(args.require_aarch64)
        images = _wider_images(args.data_root, args.limit)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(chains) == 1:
        print("warning: aarch64-linux-gnu-gcc / qemu-aarch64 missing; checking the host build only", file=sys.stderr)
    rows: list[Stats] = []
    failures = 0
    print(f"{'model':20} {'family':11} {'toolchain':9} {'images':>6} {'faces':>6} {'C faces':>7} "
          f"{'identical':>9} {'numpy+libm exp':>15} {'max |dxy| px':>12} {'max |dscore|':>12}  verdict")
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="apps-check-") as tmp:
            try:
                stats = check_model(model, images, chains, tmp, progress=True)
            except Exception as e:  # report and go on with the next model
                print(f"error: {model}: {e}", file=sys.stderr)
                failures += 1
                continue
        for s in stats:
            rows.append(s)
            failures += not s.ok
            verdict = ("bit-identical" if s.exact else "within float rounding") if s.ok else "MISMATCH"
            print(f"{s.model:20} {s.family:11} {s.toolchain:9} {s.images:6d} {s.faces:6d} {s.c_faces:7d} "
                  f"{s.identical_images:9d} {s.identical_libm_exp:15d} {s.max_coord_diff:12.3g} {s.max_score_diff:12.3g}  {verdict}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in rows], indent=1))
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
