"""Face recognition latency: per-frame stages, alignment per face, gallery search and open time.

1. Per frame on the 28 photos of ../shared/data/faces (and the 150 WIDER val images with
   ``--wider``): detect, align, embed and identify, ms per stage (median, p90), one engine thread.
2. Alignment alone, per face (median over repeats), for the two crop geometries.
3. Identify (top-1 and top-5 search, including the cross-process sync check) against galleries
   of 1k, 10k and 100k synthetic 128-d embeddings (5 per person), BLAS on one thread.
4. Gallery open time (read every embedding into the matrix) at 100k.

Aims (issue 9): identify at 100k < 10 ms on one core; alignment < 0.2 ms per face. Timings on a
shared machine are noisy: medians over repeats, and compare rows from the same run.

    python benchmarks/recognition_latency.py [--detectors a,b] [--embedder NAME] [--repeat 3] [--wider]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core for numpy's BLAS
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, markdown_table, median, pct, use_shared_models, write_results  # noqa: E402


def _images(root: Path, wider: bool) -> list[Path]:
    out = sorted(p for p in (root / "faces" / "identities").rglob("*") if p.is_file())
    if wider:
        out += sorted((root / "widerface_val" / "images").glob("*.jpg"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", default="scrfd-500m,blazeface-short")
    ap.add_argument("--embedder", default="mobilefacenet")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the images / search repeats x 100")
    ap.add_argument("--wider", action="store_true", help="also time the 150 WIDER val images")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    use_shared_models()

    import cv2

    from anyedge.ops.align import ARCFACE_112, SPHEREFACE_112x96, align_face
    from anyedge.recognition.gallery import Gallery
    from anyedge.recognition.pipeline import FacePipeline

    cv2.setNumThreads(1)
    paths = _images(SHARED / "data", args.wider)
    frames = [cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR) for p in paths]
    print(f"{len(frames)} frames", file=sys.stderr)

    # -- 1. per-frame stages -----------------------------------------------------------------
    stage_rows = []
    kps_for_align = []
    with tempfile.TemporaryDirectory() as tmp:
        for det in args.detectors.split(","):
            with FacePipeline.create(det, args.embedder, threads=1, channels="BGR") as fp:
                g = Gallery(Path(tmp) / f"{det}.db", fp.embedder.identity)
                fp.gallery = g
                g.add_many({f"p{i}": np.random.default_rng(i).normal(size=(5, fp.embedder.dim)) for i in range(200)})
                for f in frames[:3]:
                    fp.process(f)  # warm-up
                t: dict[str, list[float]] = {"detect": [], "align": [], "embed": [], "identify": [], "total": []}
                faces = 0
                for _ in range(args.repeat):
                    for f in frames:
                        t0 = time.perf_counter()
                        r = fp.process(f)
                        t["total"].append((time.perf_counter() - t0) * 1e3)
                        for k, v in fp.last_timing.items():
                            t[k].append(v * 1e3)
                        faces += len(r)
                        if det == args.detectors.split(",")[0] and len(r):
                            kps_for_align.append((f, r.detections.keypoints[0]))
                per_face_embed = [e for e, a in zip(t["embed"], t["align"]) if e > 0]
                row = {"detector": det, "embedder": args.embedder, "frames": len(t["total"]),
                       "faces_per_frame": faces / len(t["total"])}
                for k, v in t.items():
                    row[f"{k}_ms_median"] = median(v)
                    row[f"{k}_ms_p90"] = pct(v, 0.9)
                row["embed_ms_per_face_median"] = median(per_face_embed) / max(row["faces_per_frame"], 1)
                stage_rows.append(row)
                g.close()

    # -- 2. alignment alone ------------------------------------------------------------------
    # as photographed (faces 3-8x the crop: the anti-aliasing pre-shrink runs) and in frames scaled
    # to 640 px wide, like a camera stream (faces near crop size: one warpAffine)
    align_rows = []
    faces_at = {"photo": kps_for_align[: len(frames)], "640px-frame": []}
    for img, k in faces_at["photo"]:
        f = 640 / img.shape[1]
        faces_at["640px-frame"].append((cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), k * f))
    for where, items in faces_at.items():
        for geo in (SPHEREFACE_112x96, ARCFACE_112):
            ts, cpu = [], []
            for _ in range(max(1, args.repeat)):
                for img, k in items:
                    t0, c0 = time.perf_counter(), time.process_time()
                    align_face(img, k, geo)
                    cpu.append((time.process_time() - c0) * 1e3)
                    ts.append((time.perf_counter() - t0) * 1e3)
            iod = median([float(np.linalg.norm(k[1] - k[0])) for _, k in items])
            align_rows.append({"source": where, "geometry": geo.name, "faces": len(ts),
                               "eye_distance_px_median": iod, "ms_median": median(ts), "ms_p90": pct(ts, 0.9),
                               "cpu_ms_median": median(cpu)})

    # -- 3/4. gallery search and open ----------------------------------------------------------
    from anyedge.tasks.face_embedder import EmbedderIdentity

    ident = EmbedderIdentity("synthetic", "0" * 64, 128, "sphereface-112x96")
    search_rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            db = Path(tmp) / f"g{n}.db"
            vecs = rng.normal(size=(n, 128)).astype(np.float32)
            t0 = time.perf_counter()
            with Gallery(db, ident) as g:
                g.add_many({f"person{i}": vecs[i * 5:(i + 1) * 5] for i in range(n // 5)})
            build_s = time.perf_counter() - t0
            opens = []
            for _ in range(3):
                t0 = time.perf_counter()
                g = Gallery(db, ident)
                opens.append((time.perf_counter() - t0) * 1e3)
                if _ < 2:
                    g.close()
            queries = rng.normal(size=(100 * args.repeat, 128)).astype(np.float32)
            row = {"embeddings": n, "people": n // 5, "build_s": build_s, "open_ms_median": median(opens),
                   "db_mb": db.stat().st_size / 1e6}
            for k in (1, 5):
                ts, cpu = [], []
                for q in queries:
                    t0, c0 = time.perf_counter(), time.process_time()
                    g.search(q, k)
                    cpu.append((time.process_time() - c0) * 1e3)
                    ts.append((time.perf_counter() - t0) * 1e3)
                row[f"top{k}_ms_median"] = median(ts)
                row[f"top{k}_ms_p90"] = pct(ts, 0.9)
                row[f"top{k}_cpu_ms_median"] = median(cpu)  # CPU time: excludes waiting for a shared core
            m = g._fresh().matrix  # the bare matrix-vector product, for the ratio
            ts = []
            for q in queries:
                t0 = time.perf_counter()
                m @ q
                ts.append((time.perf_counter() - t0) * 1e3)
            row["matvec_ms_median"] = median(ts)
            g.close()
            search_rows.append(row)
            print(f"gallery {n}: top1 {row['top1_ms_median']:.3f} ms, open {row['open_ms_median']:.1f} ms",
                  file=sys.stderr)

    print("\n## Per frame (one engine thread), ms\n")
    print(markdown_table(stage_rows, ["detector", "embedder", "frames", "faces_per_frame", "detect_ms_median",
                                      "align_ms_median", "embed_ms_median", "identify_ms_median",
                                      "total_ms_median", "total_ms_p90", "embed_ms_per_face_median"]))
    print("\n## Alignment per face (Umeyama + warpAffine), ms\n")
    print(markdown_table(align_rows, list(align_rows[0])))
    print("\n## Gallery search (BLAS on one thread) and open time\n")
    print(markdown_table(search_rows, list(search_rows[0])))
    jpath, _ = write_results("recognition_latency", stage_rows, {"align": align_rows, "search": search_rows},
                             Path(args.out) if args.out else None)
    print(f"\nwritten {jpath}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
