"""FaceDetector on real images, against references nobody here wrote, and on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anyedge import FaceDetector
from anyedge.engines import engines_for
from anyedge.errors import (
    EngineUnavailableError,
    InputError,
    IntegrityError,
    ModelLoadError,
    UnknownModelError,
)
from anyedge.ops.metrics import match_boxes
from anyedge.registry import list_models, resolve_model

from .conftest import SMOKE, read_rgb

DETECTORS = [m.name for m in list_models() if m.task == "face_detection"]
PAIRS = [(m, e) for m in DETECTORS for e in engines_for(resolve_model(m)[0])]


@pytest.fixture(scope="module")
def detectors() -> dict[tuple[str, str], FaceDetector]:
    dets = {(m, e): FaceDetector.create(m, engine=e, threads=1) for m, e in PAIRS}
    yield dets
    for d in dets.values():
        d.close()


@pytest.mark.parametrize(("model", "engine"), PAIRS)
def test_astronaut_has_exactly_one_face(detectors, smoke, model: str, engine: str) -> None:
    faces = detectors[model, engine].detect(smoke["astronaut.png"])
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.boxes[0]
    # the astronaut's face is around x 180..270, y 60..180 in the 512x512 photo
    assert 150 < x1 < 210 and 240 < x2 < 300 and 40 < y1 < 100 and 160 < y2 < 200
    assert 0.5 < faces.scores[0] <= 1.0


@pytest.mark.parametrize(("model", "engine"), PAIRS)
def test_couple_has_exactly_two_faces(detectors, smoke, model: str, engine: str) -> None:
    faces = detectors[model, engine].detect(smoke["couple.jpg"])
    assert len(faces) == 2
    assert abs(faces.boxes[0, 0] - faces.boxes[1, 0]) > 500  # two different people, side by side


@pytest.mark.parametrize("model", DETECTORS)
def test_few_false_positives_on_non_face_crops(detectors, model: str) -> None:
    crops = np.load(SMOKE / "lfw_subset.npy")
    non_faces = (crops[100:] * 255).round().astype(np.uint8)
    det = detectors[model, engines_for(resolve_model(model)[0])[0]]
    hits = sum(len(det.detect(c)) > 0 for c in non_faces)
    assert hits <= 3, f"{model}: {hits} of 100 background crops gave a face"


@pytest.mark.parametrize("model", DETECTORS)
def test_engine_parity_on_wider_images(detectors, wider_images, model: str) -> None:
    engines = engines_for(resolve_model(model)[0])
    if len(engines) < 2:
        pytest.fail(f"{model}: only {engines} installed; parity needs two engines (install anyedge[openvino])")
    ref_engine, *others = engines
    for other in others:
        ious, n_ref, n_other = [], 0, 0
        for path in wider_images[::5]:
            img = read_rgb(path)
            a = detectors[model, ref_engine].detect(img)
            b = detectors[model, other].detect(img)
            n_ref += len(a)
            n_other += len(b)
            ious += [v for *_, v in match_boxes(a.boxes, b.boxes, 0.5)]
        assert abs(n_ref - n_other) <= max(1, 0.02 * n_ref), (ref_engine, other, n_ref, n_other)
        assert len(ious) >= 0.97 * n_ref
        assert np.mean(ious) >= 0.98, f"{model} {ref_engine} vs {other}: mean IoU {np.mean(ious):.4f}"


def test_yunet_matches_opencv_facedetectoryn(wider_images) -> None:
    """Same ONNX file through OpenCV's own YuNet post-processing: same faces."""
    import cv2

    path, _ = resolve_model("yunet")
    ref = cv2.FaceDetectorYN.create(str(path), "", (640, 640), 0.6, 0.3, 5000)
    det = FaceDetector.create("yunet", engine="onnxruntime", channels="BGR", score_threshold=0.6, iou_threshold=0.3)
    ious, same_count, n = [], 0, 0
    for p in [*wider_images, SMOKE / "astronaut.png", SMOKE / "couple.jpg"]:
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        s = 640 / max(h, w)
        canvas = np.zeros((640, 640, 3), np.uint8)
        small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        canvas[: small.shape[0], : small.shape[1]] = small
        _, raw = ref.detect(canvas)
        raw = np.zeros((0, 15), np.float32) if raw is None else raw
        ref_boxes = np.c_[raw[:, 0], raw[:, 1], raw[:, 0] + raw[:, 2], raw[:, 1] + raw[:, 3]] / s
        ours = det.detect(img)
        n += 1
        same_count += len(ours) == len(ref_boxes)
        ious += [v for *_, v in match_boxes(ref_boxes, ours.boxes, 0.3)]
    assert same_count >= n - 2, f"face count differs on {n - same_count} of {n} images"
    assert np.mean(ious) >= 0.9


def test_scrfd_decoding_matches_a_literal_rederivation() -> None:
    """Hand-made tensors decoded by anyedge vs the paper's distance encoding written out in loops."""
    from anyedge.decoders.scrfd import decode

    rng = np.random.default_rng(7)
    w, h = 96, 64
    outs, expected = {}, []
    for s in (8, 16, 32):
        rows, cols = h // s, w // s
        n = rows * cols * 2
        score = rng.uniform(0, 1, (1, n, 1)).astype(np.float32)
        dist = rng.uniform(0.1, 3, (1, n, 4)).astype(np.float32)
        kps = rng.uniform(-2, 2, (1, n, 10)).astype(np.float32)
        outs[f"score_{s}"], outs[f"bbox_{s}"], outs[f"kps_{s}"] = score, dist, kps
        i = 0
        for y in range(rows):
            for x in range(cols):
                for _anchor in range(2):
                    if score[0, i, 0] >= 0.5:
                        cx, cy = x * s, y * s
                        left, top, right, bottom = dist[0, i] * s
                        box = [cx - left, cy - top, cx + right, cy + bottom]
                        pts = [[cx + kps[0, i, 2 * k] * s, cy + kps[0, i, 2 * k + 1] * s] for k in range(5)]
                        expected.append((score[0, i, 0], box, pts))
                    i += 1
    boxes, scores, points = decode(outs, (w, h), {"strides": [8, 16, 32], "anchors_per_cell": 2, "keypoints": 5}, 0.5)
    assert len(scores) == len(expected) > 10
    np.testing.assert_allclose(scores, [e[0] for e in expected], rtol=0, atol=0)
    np.testing.assert_allclose(boxes, [e[1] for e in expected], atol=1e-4)
    np.testing.assert_allclose(points, [e[2] for e in expected], atol=1e-4)


def test_boxes_land_in_source_pixels_at_any_aspect_ratio(smoke) -> None:
    det = FaceDetector.create("scrfd-500m")
    img = smoke["astronaut.png"]
    base = det.detect(img)
    for h, w, oy, ox in [(512, 1600, 0, 900), (1400, 600, 700, 50)]:
        canvas = np.full((h, w, 3), 127, np.uint8)
        canvas[oy : oy + 512, ox : ox + 512] = img
        got = det.detect(canvas)
        assert len(got) == 1
        shifted = base.boxes[0] + [ox, oy, ox, oy]
        assert match_boxes(shifted[None], got.boxes, 0.8), (shifted, got.boxes)
        assert np.abs(got.keypoints[0] - (base.keypoints[0] + [ox, oy])).max() < 12


def test_bgr_frames_with_channels_option_match_rgb(smoke) -> None:
    rgb = smoke["couple.jpg"]
    with FaceDetector.create("blazeface-short") as a, FaceDetector.create("blazeface-short", channels="BGR") as b:
        fa, fb = a.detect(rgb), b.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
        fc = a.detect(np.ascontiguousarray(rgb[:, :, ::-1]), channels="BGR")
    np.testing.assert_allclose(fa.boxes, fb.boxes, atol=1e-3)
    np.testing.assert_allclose(fa.boxes, fc.boxes, atol=1e-3)


def test_options_score_threshold_and_max_faces(smoke) -> None:
    det = FaceDetector.create("yunet", max_faces=1)
    assert len(det.detect(smoke["couple.jpg"])) == 1
    det = FaceDetector.create("yunet", score_threshold=0.999)
    assert len(det.detect(smoke["couple.jpg"])) == 0


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64, 3), np.int64), "uint8"),
        (np.zeros((64, 64, 2), np.uint8), "shape"),
        (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
        ([[1, 2], [3, 4]], "numpy"),
        (None, "numpy"),
        (np.zeros((20000, 20000), np.uint8)[:, :, None].repeat(1, 2), None),  # 400 MP
    ],
)
def test_bad_images_are_clear_errors(image, match) -> None:
    det = FaceDetector.create("blazeface-short")
    with pytest.raises(InputError, match=match or "pixels"):
        det.detect(image)


def test_grey_rgba_tiny_and_huge_images_give_correct_results(smoke) -> None:
    import cv2

    det = FaceDetector.create("yunet")
    rgb = smoke["astronaut.png"]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert len(det.detect(grey)) == 1
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert len(det.detect(rgba)) == 1
    assert len(det.detect(np.zeros((1, 1, 3), np.uint8))) == 0
    huge = np.zeros((8000, 8000, 3), np.uint8)
    huge[3000:3512, 4000:4512] = rgb  # the face is ~1% of the width: YuNet at 640 may miss it
    faces = det.detect(huge)
    assert all(3000 <= b[1] and b[3] <= 3520 and 3990 <= b[0] and b[2] <= 4520 for b in faces.boxes)


def test_truncated_model_file(tmp_path: Path) -> None:
    src, _ = resolve_model("scrfd-500m")
    bad = tmp_path / "scrfd.onnx"
    bad.write_bytes(src.read_bytes()[:50_000])
    with pytest.raises(ModelLoadError):
        FaceDetector.create(bad, family="scrfd")


def test_wrong_sha256_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, info = resolve_model("blazeface-short")
    data = bytearray(src.read_bytes())
    data[-100] ^= 1
    (tmp_path / info.filename).write_bytes(bytes(data))
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", str(tmp_path))
    with pytest.raises(IntegrityError):
        FaceDetector.create("blazeface-short")


def test_unknown_model_name() -> None:
    with pytest.raises(UnknownModelError, match="known models"):
        FaceDetector.create("facenet-9000")


def test_bare_file_needs_a_family() -> None:
    src, _ = resolve_model("scrfd-500m")
    with pytest.raises(InputError, match="family"):
        FaceDetector.create(src)
    assert len(FaceDetector.create(src, family="scrfd").detect(read_rgb(SMOKE / "astronaut.png"))) == 1


def test_missing_engine() -> None:
    with pytest.raises(EngineUnavailableError):
        FaceDetector.create("blazeface-short", engine="onnxruntime")
    with pytest.raises(EngineUnavailableError):
        FaceDetector.create("blazeface-short", engine="coreml")


def test_bad_options() -> None:
    with pytest.raises(InputError, match="score_threshold"):
        FaceDetector.create("yunet", score_threshold=1.5)
    with pytest.raises(InputError, match="unknown option"):
        FaceDetector.create("yunet", colour="RGB")
    with pytest.raises(InputError, match="static input"):
        FaceDetector.create("yunet", input_size=(320, 320))


def test_fast_resize_finds_the_same_faces(wider_images) -> None:
    from anyedge.ops.metrics import detection_agreement

    with FaceDetector.create("blazeface-short") as a, FaceDetector.create("blazeface-short", fast_resize=True) as b:
        pairs = []
        for p in wider_images[::3]:
            img = read_rgb(p)
            fa, fb = a.detect(img), b.detect(img)
            pairs.append(((fa.boxes, fa.scores), (fb.boxes, fb.scores)))
    agreement = detection_agreement(pairs)
    assert agreement.reference_faces > 10
    assert agreement.f1 >= 0.85 and agreement.mean_iou >= 0.85
