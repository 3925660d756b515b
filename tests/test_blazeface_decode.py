"""BlazeFace's compiled post-processing (``anyedge.ops._decode``) against the numpy path it replaces."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from anyedge import FaceDetector
from anyedge.errors import ModelLoadError
from anyedge.ops.image import Letterbox
from anyedge.ops.nms import weighted_nms

from .conftest import WIDER


def test_decode_kernel_is_built():
    from anyedge.decoders import blazeface

    assert blazeface._kernel is not None, "sdk/ops/_decode.pyx was not compiled at install"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(WIDER.glob("*.jpg"))[:60]]


def _numpy_faces(det: FaceDetector, outs, lb):
    fast, det._faces = det._faces, None  # the numpy decoder, weighted_nms and letterbox mapping
    try:
        return det.decode(outs, lb)
    finally:
        det._faces = fast


def _assert_same_bits(got, want) -> None:
    for name in ("boxes", "scores", "keypoints"):
        g, w = getattr(got, name), getattr(want, name)
        assert g.dtype == w.dtype == np.float32 and g.shape == w.shape, name
        np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32), err_msg=name)


@pytest.mark.parametrize("model, options", [
    ("blazeface-short", {}),
    ("blazeface-full", {}),
    ("blazeface-short", {"score_threshold": 0.1}),           # many overlapping candidates per face
    ("blazeface-short", {"score_threshold": 0.3, "max_faces": 2}),
    ("blazeface-short", {"iou_threshold": 0.0}),
])
def test_compiled_post_processing_finds_the_numpy_faces(frames, model, options):
    with FaceDetector.create(model, engine="litert", channels="BGR", threads=1, **options) as det:
        assert det._faces is not None
        total = 0
        for img in frames:
            x, lb = det.preprocess(img)
            outs = det.run_engine(x)
            got, want = det.decode(outs, lb), _numpy_faces(det, outs, lb)
            assert len(got) == len(want)
            total += len(got)
            assert got.boxes.dtype == got.scores.dtype == got.keypoints.dtype == np.float32
            assert got.keypoints.shape == want.keypoints.shape
            # the same float32 steps in the same order, the same exp: the same bits
            _assert_same_bits(got, want)
            if options.get("max_faces"):
                assert len(got) <= options["max_faces"]
        assert total > 10  # the comparison saw faces


def test_the_sigmoid_is_libms_exp_rounded_to_float32():
    # what the compiled kernel and the C library compute; numpy's own float32 exp is not it
    from anyedge.decoders import blazeface

    x = np.linspace(-100, 100, 400_001).astype(np.float32)
    e = np.array([math.exp(-abs(v)) for v in x.tolist()]).astype(np.float32)
    one = np.float32(1)
    want = np.where(x >= 0, one / (one + e), e / (one + e))
    got = blazeface._sigmoid(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_degenerate_and_overlapping_candidates_match_weighted_nms():
    from anyedge.decoders import blazeface

    with FaceDetector.create("blazeface-short", engine="litert", threads=1) as det:
        cfg = det.spec.decoder
        _, centres = blazeface._anchors(det.input_size, tuple(cfg["strides"]), cfg["min_scale"], cfg["max_scale"],
                                        cfg.get("interpolated_scale_aspect_ratio", 1.0))
        n = len(centres)
        reg = np.zeros((1, n, 16), np.float32)
        logits = np.full((1, n, 1), -20.0, np.float32)
        rng = np.random.default_rng(0)
        picks = rng.choice(n, 12, replace=False)
        target = centres[picks[0]] + 3.0
        for j, i in enumerate(picks):
            # most candidates describe one face near `target`; one has a zero-size box and scores best
            reg[0, i, :2] = target - centres[i] + rng.normal(0, 1.0, 2)
            reg[0, i, 2:4] = (0.0, 20.0) if j == 0 else 30.0 + rng.normal(0, 2.0, 2)
            reg[0, i, 4:] = rng.normal(0, 5.0, 12)
            logits[0, i, 0] = 5.0 if j == 0 else 1.0 + 0.1 * j
        outs = {"regressors": reg, "classificators": logits}
        lb = Letterbox(1.0, 1.0, 0.0, 0.0, 128, 128)
        got = det.decode(outs, lb)
        want = _numpy_faces(det, outs, lb)
        assert len(got) == len(want) >= 1
        _assert_same_bits(got, want)
        # and the numpy path is weighted_nms itself: the zero-size head stands alone, and is dropped
        # as an empty box, while the others blend into one face
        b, s, _ = weighted_nms(*blazeface.decode(outs, det.input_size, cfg, det._thresholds[0]),
                               det._thresholds[1])
        assert len(b) == 2 and len(got) == 1


@pytest.mark.parametrize("members", [7, 8, 100, 300])  # one cluster: sums below, at and above numpy's blocks
def test_a_large_cluster_blends_as_weighted_nms(members):
    from anyedge.decoders import blazeface

    with FaceDetector.create("blazeface-short", engine="litert", threads=1, score_threshold=0.05) as det:
        n = 896
        cfg = det.spec.decoder
        _, centres = blazeface._anchors(det.input_size, tuple(cfg["strides"]), cfg["min_scale"], cfg["max_scale"],
                                        cfg.get("interpolated_scale_aspect_ratio", 1.0))
        rng = np.random.default_rng(members)
        picks = rng.choice(n, members, replace=False)
        reg = np.zeros((1, n, 16), np.float32)
        logits = np.full((1, n, 1), -20.0, np.float32)
        reg[0, picks, :2] = (64.0 - centres[picks]) + rng.normal(0, 1.0, (members, 2))
        reg[0, picks, 2:4] = 40.0 + rng.normal(0, 1.0, (members, 2))
        reg[0, picks, 4:] = rng.normal(0, 5.0, (members, 12))
        logits[0, picks, 0] = rng.uniform(-2.5, 4.0, members)
        outs = {"regressors": reg, "classificators": logits}
        lb = Letterbox(1.0, 1.0, 0.0, 0.0, 128, 128)
        got, want = det.decode(outs, lb), _numpy_faces(det, outs, lb)
        assert len(got) == len(want) == 1
        _assert_same_bits(got, want)


def test_a_frame_without_candidates_is_the_shared_empty_result():
    with FaceDetector.create("blazeface-short", engine="litert", threads=1) as det:
        n = 896
        outs = {"regressors": np.zeros((1, n, 16), np.float32),
                "classificators": np.full((1, n, 1), -50.0, np.float32)}
        faces = det.decode(outs, Letterbox(1.0, 1.0, 0.0, 0.0, 128, 128))
        assert len(faces) == 0 and faces.keypoints.shape == (0, 6, 2)


def test_outputs_of_another_dtype_give_the_same_faces(frames):
    with FaceDetector.create("blazeface-short", engine="litert", channels="BGR", threads=1) as det:
        seen = 0
        for img in frames[:20]:
            x, lb = det.preprocess(img)
            outs = det.run_engine(x)
            want = det.decode(outs, lb)
            for dtype in (np.float64, np.float16):
                other = {k: v.astype(dtype) for k, v in outs.items()}
                numpy_path = _numpy_faces(det, other, lb)
                got = det.decode(other, lb)
                assert len(got) == len(numpy_path)
                np.testing.assert_allclose(got.boxes, numpy_path.boxes, atol=1e-3)
                if dtype is np.float64:
                    assert len(got) == len(want)
            # a strided view (not contiguous) as well
            view = {"regressors": np.asfortranarray(outs["regressors"][0])[None],
                    "classificators": outs["classificators"]}
            assert len(det.decode(view, lb)) == len(want)
            seen += len(want)
        assert seen > 0


@pytest.mark.parametrize("outs, match", [
    ({"regressors": np.full((1, 896, 16), "x"), "classificators": np.zeros((1, 896, 1), np.float32)},
     "could not convert"),
    ({"regressors": np.zeros((1, 500, 16), np.float32), "classificators": np.zeros((1, 500, 1), np.float32)},
     "500 scores"),
    ({"regressors": np.zeros((1, 896, 3), np.float32), "classificators": np.zeros((1, 896, 1), np.float32)},
     "3 regressor values"),
    ({"boxes": np.zeros((1, 896, 16), np.float32), "classificators": np.zeros((1, 896, 1), np.float32)},
     "regressors"),
])
def test_malformed_outputs_are_a_model_error(outs, match):
    with FaceDetector.create("blazeface-short", engine="litert", threads=1) as det:
        with pytest.raises(ModelLoadError, match=match):
            det.decode(outs, Letterbox(1.0, 1.0, 0.0, 0.0, 128, 128))
