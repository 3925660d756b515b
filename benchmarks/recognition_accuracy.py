"""Face recognition accuracy on ../shared/data/faces (6 people, 28 photos, 378 pairs).

For every embedder x detector (SCRFD, YuNet, RetinaFace: 5 keypoints; BlazeFace's 6 mapped to 5)
x flip-averaging:
ROC AUC, EER, TAR at FAR 1e-2, accuracy and balanced accuracy at the embedder's default
threshold, the 10-fold cross-validated accuracy and threshold, and rank-1 identification
(enrol each person's first photo, identify the rest). Per detector, how many photos pass the
gallery's enrolment gate (one face, eyes 20 px apart, a sharp crop) as ``anyedge gallery enroll``
would take them. Also how far each detector's keypoints lie from the reference detector's (first
of ``--detectors`` unless ``--reference``; in inter-ocular distances, and the cosine between the
two embeddings of the same photo), the cosine between engines, and the sharpness (variance of the
Laplacian) of the aligned crops, sharp and blurred, behind the gallery's quality gate.

In each photo the largest detected face is used. Note: the default thresholds were chosen on
these same pairs (cross-validated); with 6 people every figure here is a rough estimate.

``--embedders`` also takes converted bundles (``anyedge convert mobilefacenet --target ...``):
for each, the cosine of its embeddings to the float model's on the same reference-detector crops (mean, 5th
percentile), its size and its embed latency next to the float model on the same engine (medians
of a rotating round robin, one thread; noisy on a shared machine, compare the ratios).

    python benchmarks/recognition_accuracy.py [--embedders a,b,BUNDLE] [--detectors a,b] [--reference DET] [--no-flip]
        [--out DIR]

Choosing recognition's default detector (the licence-free ones with 5 keypoints):

    python benchmarks/recognition_accuracy.py --embedders mobilefacenet \
        --detectors yunet-n-320,yunet,retinaface-mnet025,scrfd-500m
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, markdown_table, use_shared_models, write_results  # noqa: E402


def largest(faces):  # noqa: ANN001, ANN201
    if len(faces) == 0:
        return None
    area = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
    return int(np.argmax(area))


def conversion_row(name: str, bundle: str, float_name: str, crops: list, float_ref: np.ndarray,
                   rounds: int = 15) -> dict:
    """Cosine to float, size, and embed latency vs the float model on the bundle's engine."""
    import statistics
    import time

    from anyedge.bundle import load_bundle
    from anyedge.registry import resolve_model
    from anyedge.tasks.face_embedder import FaceEmbedder

    b = load_bundle(bundle)
    size = sum((Path(bundle) / f).stat().st_size for f in b.manifest["files"])
    fsize = resolve_model(float_name)[0].stat().st_size
    with FaceEmbedder.create(bundle, threads=1) as q:
        v = q.embed(np.stack(crops))
        with FaceEmbedder.create(float_name, engine=q.engine.name, threads=1) as fl:
            models = [q, fl]
            times: list[list[float]] = [[], []]
            one = crops[0]
            for i in range(rounds + 2):
                for j in ((0, 1) if i % 2 else (1, 0)):
                    t = time.perf_counter()
                    models[j].embed(one)
                    if i >= 2:
                        times[j].append((time.perf_counter() - t) * 1e3)
    cos = (v * float_ref).sum(1)
    ms, fms = statistics.median(times[0]), statistics.median(times[1])
    return {"embedder": name, "engine": q.engine.name, "cosine_mean": float(cos.mean()),
            "cosine_p5": float(np.percentile(cos, 5)), "cosine_min": float(cos.min()), "bytes": size,
            "size_vs_float": size / fsize, "embed_ms": ms, "float_embed_ms_same_engine": fms,
            "latency_vs_float": ms / fms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedders", default="mobilefacenet,mobilefacenet-int8w")
    ap.add_argument("--detectors", default="yunet-n-320,yunet,retinaface-mnet025,scrfd-500m,blazeface-short")
    ap.add_argument("--reference", default=None,
                    help="detector the others' keypoints and crops are compared with (default: the first)")
    ap.add_argument("--faces", default=str(SHARED / "data" / "faces"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-flip", action="store_true", help="skip the flip-averaged runs")
    ap.add_argument("--float", default="mobilefacenet", help="float reference for bundles (default mobilefacenet)")
    args = ap.parse_args()
    use_shared_models()

    import cv2

    from anyedge.engines import engines_for, open_engine
    from anyedge.ops.align import align_face, five_points
    from anyedge.recognition.verification import (balanced_threshold, cross_validated_threshold,
                                                  equal_error_rate, roc_auc, tar_at_far)
    from anyedge.registry import resolve_model
    from anyedge.tasks.face_embedder import FaceEmbedder, FaceEmbedderOptions

    root = Path(args.faces)
    with open(root / "pairs.csv", newline="") as f:
        pairs = [(r["file_a"], r["file_b"], r["same"] == "1") for r in csv.DictReader(f)]
    files = sorted({p for a, b, _ in pairs for p in (a, b)})
    person = {p: p.split("/")[1] for p in files}
    images = {}
    for p in files:
        bgr = cv2.imdecode(np.fromfile(str(root / p), np.uint8), cv2.IMREAD_COLOR)
        images[p] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    print(f"{len(files)} photos of {len(set(person.values()))} people, {len(pairs)} pairs "
          f"({sum(s for *_, s in pairs)} genuine)", file=sys.stderr)

    # -- detection: keypoints of the largest face per photo, and the enrolment gate ----------
    from anyedge.errors import FaceQualityError
    from anyedge.recognition.pipeline import FacePipeline

    detectors = args.detectors.split(",")
    ref_det = args.reference or detectors[0]
    if ref_det not in detectors:
        detectors.insert(0, ref_det)
    kps: dict[str, dict[str, np.ndarray]] = {}
    enrol_rows = []
    for det_name in detectors:
        kps[det_name] = {}
        refused: dict[str, str] = {}
        with FacePipeline.create(det_name, args.float) as fp:
            for p in files:
                faces = fp.detector.detect(images[p])
                i = largest(faces)
                if i is not None:
                    kps[det_name][p] = faces.keypoints[i]
                try:
                    fp.enrolment_embedding(images[p])
                except FaceQualityError as e:
                    refused[p] = str(e)
        missed = [p for p in files if p not in kps[det_name]]
        enrol_rows.append({"detector": det_name, "photos": len(files), "face_found": len(files) - len(missed),
                           "enrolment_passed": len(files) - len(refused),
                           "refused": "; ".join(f"{p}: {why}" for p, why in refused.items())})
        print(f"{det_name}: face found in {len(files) - len(missed)}/{len(files)} photos"
              + (f" (missed {missed})" if missed else "")
              + f", enrolment gate passed by {len(files) - len(refused)}", file=sys.stderr)

    # -- keypoints vs the reference detector on photos both found -----------------------------
    mapping = []
    ref = kps.get(ref_det, {})
    for det_name in kps:
        if det_name == ref_det or not ref:
            continue
        common = [p for p in files if p in ref and p in kps[det_name]]
        if not common:
            continue
        off = []
        for p in common:
            a, b = ref[p], five_points(kps[det_name][p])
            iod = float(np.linalg.norm(a[1] - a[0]))
            off.append(np.linalg.norm(a - b, axis=1) / iod)
        off = np.array(off)
        mapping.append({"detector": det_name, "reference": ref_det, "photos": len(common),
                        **{f"offset_{n}": float(np.median(off[:, i])) for i, n in
                           enumerate(["reye", "leye", "nose", "rmouth", "lmouth"])}})

    from anyedge.registry import REGISTRY

    def label(name: str) -> str:
        if name in REGISTRY:
            return name
        from anyedge.bundle import load_bundle

        m = load_bundle(name).manifest
        return f"{Path(name).name} ({m.get('target')}, {m.get('engine')} {m.get('precision')})"

    rows = []
    engine_rows = []
    sharp_rows = []
    conv_rows = []
    for emb_path in args.embedders.split(","):
        emb_name = label(emb_path)
        for flip in ((False,) if args.no_flip else (False, True)):
            with FaceEmbedder.create(emb_path, flip=flip) as emb:
                thr = emb.threshold
                vecs: dict[str, dict[str, np.ndarray]] = {}
                for det_name in kps:
                    vecs[det_name] = {p: emb.embed(align_face(images[p], k, emb.geometry))[0]
                                      for p, k in kps[det_name].items()}
                if not flip:  # engine agreement and the cosine to the reference crops, once per embedder
                    crops = [align_face(images[p], k, emb.geometry) for p, k in kps[ref_det].items()]
                    base = np.stack([vecs[ref_det][p] for p in kps[ref_det]])
                    ref_name = args.float
                    with FaceEmbedder.create(ref_name) as fl:
                        float_ref = fl.embed(np.stack(crops))
                    if emb_path not in REGISTRY:
                        conv_rows.append(conversion_row(emb_name, emb_path, ref_name, crops, float_ref))
                    for eng in (engines_for(resolve_model(emb_name)[0]) if emb_path in REGISTRY else []):
                        # the constructor, not create(): measure engines the registry does not allow too
                        other = FaceEmbedder(emb.spec, open_engine(emb.spec.path, eng), FaceEmbedderOptions())
                        with other:
                            v = other.embed(np.stack(crops))
                        cos = (v * base).sum(1)
                        cf = (v * float_ref).sum(1)
                        engine_rows.append({"embedder": emb_name, "engine": eng, "crops": len(crops),
                                            "min_cosine_to_default_engine": float(cos.min()),
                                            "mean_cosine_to_default_engine": float(cos.mean()),
                                            f"mean_cosine_to_{ref_name}_litert": float(cf.mean()),
                                            f"min_cosine_to_{ref_name}_litert": float(cf.min())})
                    for m in mapping:
                        d = m["detector"]
                        common = [p for p in files if p in vecs[ref_det] and p in vecs[d]]
                        m[f"cos_{emb_name}"] = float(np.median([vecs[ref_det][p] @ vecs[d][p] for p in common]))
                    if emb_path == args.embedders.split(",")[0]:
                        for blur in (0, 3, 7):
                            lv = []
                            for c in crops:
                                g = cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)
                                if blur:
                                    g = cv2.GaussianBlur(g, (0, 0), blur / 2)
                                lv.append(cv2.Laplacian(g, cv2.CV_64F).var())
                            sharp_rows.append({"gaussian_sigma_px": blur / 2, "min": float(np.min(lv)),
                                               "p10": float(np.percentile(lv, 10)),
                                               "median": float(np.median(lv)), "max": float(np.max(lv))})
            for det_name in kps:
                v = vecs[det_name]
                ok = [(a, b, s) for a, b, s in pairs if a in v and b in v]
                s = np.array([float(v[a] @ v[b]) for a, b, _ in ok])
                y = np.array([s_ for *_, s_ in ok])
                eer, _ = equal_error_rate(s, y)
                cv_thr, cv_acc, cv_bacc = cross_validated_threshold(s, y)
                pred = s >= thr
                # rank-1: the first photo of each person (sorted names) is the gallery
                gallery = {}
                for p in sorted(v):
                    gallery.setdefault(person[p], p)
                names = sorted(gallery)
                g = np.stack([v[gallery[n]] for n in names])
                probes = [p for p in sorted(v) if p not in gallery.values()]
                hits = sum(names[int(np.argmax(g @ v[p]))] == person[p] for p in probes)
                rows.append({
                    "embedder": emb_name, "detector": det_name, "flip": flip, "pairs": len(ok),
                    "roc_auc": roc_auc(s, y), "eer": eer, "tar_at_far_1e-2": tar_at_far(s, y, 1e-2)[0],
                    "threshold": thr, "accuracy": float((pred == y).mean()),
                    "balanced_accuracy": float(((pred & y).sum() / y.sum() + (~pred & ~y).sum() / (~y).sum()) / 2),
                    "cv_threshold": cv_thr, "cv_accuracy": cv_acc, "cv_balanced_accuracy": cv_bacc,
                    "best_threshold_in_sample": balanced_threshold(s, y),
                    "rank1": hits / len(probes), "probes": len(probes),
                    "genuine_mean": float(s[y].mean()), "impostor_mean": float(s[~y].mean()),
                    "margin": float(s[y].min() - s[~y].max()),  # > 0: perfectly separable
                    "d_prime": float((s[y].mean() - s[~y].mean()) / np.sqrt((s[y].var() + s[~y].var()) / 2)),
                })
                r = rows[-1]
                print(f"{emb_name:20} {det_name:16} flip={flip!s:5} AUC {r['roc_auc']:.3f} EER {eer:.3f} "
                      f"rank1 {r['rank1']:.3f}", file=sys.stderr)

    print("\n## Verification and identification (largest face per photo)\n")
    print(markdown_table(rows, ["embedder", "detector", "flip", "pairs", "roc_auc", "eer", "tar_at_far_1e-2",
                                "threshold", "accuracy", "balanced_accuracy", "cv_threshold", "cv_accuracy",
                                "cv_balanced_accuracy", "rank1", "probes", "genuine_mean", "impostor_mean",
                                "margin", "d_prime"]))
    print("\n## Enrolment gate per detector (photos that anyedge gallery enroll would take)\n")
    print(markdown_table(enrol_rows, ["detector", "photos", "face_found", "enrolment_passed", "refused"]))
    if mapping:
        print(f"\n## Keypoints vs {ref_det} (median offset in inter-ocular distances; "
              "median cosine of the two embeddings of a photo)\n")
        print(markdown_table(mapping, list(mapping[0])))
    if engine_rows:
        print(f"\n## Engines (cosine to the default engine's embeddings of the same {ref_det} crops)\n")
        print(markdown_table(engine_rows, list(engine_rows[0])))
    if conv_rows:
        print(f"\n## Converted embedders vs float (same {ref_det} crops; latency: medians, 1 thread, side by side)\n")
        print(markdown_table(conv_rows, list(conv_rows[0])))
    if sharp_rows:
        print("\n## Variance of the Laplacian of aligned crops (grey), sharp and Gaussian-blurred\n")
        print(markdown_table(sharp_rows, list(sharp_rows[0])))
    jpath, _ = write_results("recognition_accuracy", rows, {"reference_detector": ref_det, "enrolment": enrol_rows,
                                                             "mapping": mapping, "engines": engine_rows,
                                                             "sharpness": sharp_rows, "converted": conv_rows},
                             Path(args.out) if args.out else None)
    print(f"\nwritten {jpath}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
