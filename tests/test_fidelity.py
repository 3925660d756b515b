"""Task-generic fidelity evaluators, on real model outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from anyedge.converters.fidelity import (
    ClassificationEvaluator,
    DetectionEvaluator,
    EmbeddingEvaluator,
    MIN_REFERENCE_FACES,
)
from anyedge.errors import CalibrationError, InputError
from anyedge.results import FaceDetections

from .conftest import DATA, MODELS

FACES = DATA / "faces"


def _embedder(path: Path):
    """A plain ``images -> (n, 128)`` callable over MobileFaceNet (112x96 RGB, (x - 127.5) / 128)."""
    import cv2

    from anyedge.engines import open_engine

    eng = open_engine(path, "litert", threads=1)
    feeds = {s.name: np.zeros([max(d, 1) for d in s.shape], s.dtype) for s in eng.inputs}
    image_input = next(s.name for s in eng.inputs if len(s.shape) == 4)
    out = next(i for i, s in enumerate(eng.outputs) if s.shape[-1] == 128)

    def embed(images: list[np.ndarray]) -> np.ndarray:
        rows = []
        for img in images:
            x = cv2.resize(img, (96, 112), interpolation=cv2.INTER_AREA).astype(np.float32)
            feeds[image_input] = ((x - 127.5) / 128.0)[None]
            rows.append(eng.run(feeds)[out].reshape(-1))
        return np.stack(rows)
    return embed


@pytest.fixture(scope="module")
def identities() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The 28 identity photos (RGB) and every labelled pair of them, as row indices."""
    import cv2

    files = sorted(p for p in (FACES / "identities").glob("*/*"))
    index = {f"identities/{p.parent.name}/{p.name}": i for i, p in enumerate(files)}
    images = []
    for p in files:
        bgr = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    pairs, same = [], []
    with open(FACES / "pairs.csv") as f:
        for row in csv.DictReader(f):
            pairs.append((index[row["file_a"]], index[row["file_b"]]))
            same.append(row["same"] == "1")
    return images, np.array(pairs), np.array(same)


def test_embedding_evaluator_on_mobilefacenet_float_vs_int8_weights(identities) -> None:
    images, pairs, same = identities
    ref = _embedder(MODELS / "mobilefacenet" / "inference_model_0.993.tflite")(images)
    q = _embedder(MODELS / "mobilefacenet" / "inference_model_993_quant.tflite")(images)
    assert ref.shape == q.shape == (28, 128)
    ev = EmbeddingEvaluator(max_drop=0.2, pairs=pairs, same=same)
    self_check = ev.score(ref, ref)
    assert self_check.metrics["cosine_mean"] == pytest.approx(1.0) and self_check.passed
    assert self_check.metrics["verification"] == self_check.metrics["verification_float"]
    f = ev.score(ref, q)
    m = f.metrics
    cos = np.sum(ref / np.linalg.norm(ref, axis=1, keepdims=True) * q / np.linalg.norm(q, axis=1, keepdims=True), 1)
    assert m["cosine_mean"] == pytest.approx(cos.mean()) and m["cosine_p5"] == pytest.approx(np.percentile(cos, 5))
    assert m["cosine_min"] <= m["cosine_p5"] <= m["cosine_mean"] < 1.0
    assert m["pairs"] == len(pairs) == 378 and 0.5 <= m["verification_float"] <= 1.0
    assert f.value == min(m["cosine_p5"], 1.0 - max(0.0, m["verification_float"] - m["verification"]))
    # embeddings of other images entirely are not the same model: the gate refuses them
    assert not ev.score(ref, np.roll(ref, 1, axis=0)).passed


def test_embedding_evaluator_refuses_bad_input() -> None:
    ev = EmbeddingEvaluator(max_drop=0.05)
    with pytest.raises(CalibrationError, match="at least"):
        ev.score(np.ones((3, 8)), np.ones((3, 8)))
    with pytest.raises(InputError, match="shape"):
        ev.score(np.ones((12, 8)), np.ones((12, 4)))
    with pytest.raises(InputError, match=r"\(n, d\)"):
        ev.score(np.ones(12), np.ones(12))


def test_classification_evaluator_counts_agreement_and_accuracy() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((40, 4))
    labels = ref.argmax(1)
    cand = ref.copy()
    cand[:4] = cand[:4, ::-1]  # reorder the scores of 4 inputs: their top-1 changes (or not, if symmetric)
    flipped = int(np.sum(ref.argmax(1) != cand.argmax(1)))
    f = ClassificationEvaluator(max_drop=0.05, labels=labels).score(ref, cand)
    assert f.metrics["top1_agreement"] == pytest.approx(1 - flipped / 40)
    assert f.metrics["accuracy_float"] == 1.0 and f.metrics["accuracy"] == pytest.approx(1 - flipped / 40)
    assert f.passed == (flipped <= 2)
    with pytest.raises(CalibrationError):
        ClassificationEvaluator(max_drop=0.05).score(ref[:3], cand[:3])


def test_detection_evaluator_refuses_to_judge_without_faces() -> None:
    ev = DetectionEvaluator(max_drop=0.05)
    empty = [FaceDetections.empty(0)] * 30
    with pytest.raises(CalibrationError, match=f"at least {MIN_REFERENCE_FACES}"):
        ev.score(empty, empty)  # F1 of nothing against nothing would be a vacuous 1.0
    box = FaceDetections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.zeros((1, 0, 2), np.float32))
    ref = [box] * MIN_REFERENCE_FACES
    assert ev.score(ref, ref).value == 1.0
    missing = ref[:-2] + [FaceDetections.empty(0)] * 2  # two faces lost of 20: F1 = 36/38 < 0.95
    f = ev.score(ref, missing)
    assert f.value == pytest.approx(2 * 18 / (20 + 18)) and not f.passed
