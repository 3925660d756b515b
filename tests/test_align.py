"""Alignment: Umeyama recovers hand-made similarity transforms exactly; crops land on the template."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anyedge.errors import InputError
from anyedge.ops.align import (ARCFACE_112, SPHEREFACE_112x96, align_face, align_faces, blazeface_to_five,
                               five_points, similarity_params, umeyama)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize(("scale", "angle_deg", "tx", "ty"), [
    (1.0, 0.0, 0.0, 0.0), (2.5, 30.0, -12.0, 40.0), (0.3, -170.0, 100.0, 5.5), (1.7, 90.0, 0.0, -3.0),
])
def test_umeyama_recovers_rotation_scale_translation(scale: float, angle_deg: float, tx: float, ty: float) -> None:
    src = np.array([[10, 20], [50, 18], [31, 42], [15, 60], [47, 61]], np.float64)
    a = math.radians(angle_deg)
    # by hand: x' = s(cos a x - sin a y) + tx, y' = s(sin a x + cos a y) + ty
    x, y = src[:, 0], src[:, 1]
    dst = np.stack([scale * (math.cos(a) * x - math.sin(a) * y) + tx,
                    scale * (math.sin(a) * x + math.cos(a) * y) + ty], 1)
    m = umeyama(src, dst)
    s, rot, mx, my = similarity_params(m)
    assert s == pytest.approx(scale, rel=1e-9)
    assert math.remainder(rot - a, 2 * math.pi) == pytest.approx(0.0, abs=1e-9)
    assert (mx, my) == pytest.approx((tx, ty), abs=1e-8)
    np.testing.assert_allclose(_apply(m, src), dst, atol=1e-8)


def test_umeyama_is_least_squares_and_never_reflects() -> None:
    src = np.array([[0, 0], [1, 0], [0, 1]], np.float64)
    mirrored = src * np.array([-1, 1])  # a reflection cannot be a similarity: no det<0 matrix allowed
    m = umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    # a least-squares fit moves no worse than the identity on noisy copies of the points
    rng = np.random.default_rng(0)
    noisy = src * 3 + 7 + rng.normal(0, 0.05, src.shape)
    m = umeyama(src, noisy)
    assert similarity_params(m)[0] == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("bad", [
    (np.zeros((5, 2)), np.zeros((5, 2))),          # coincident points
    (np.zeros((5, 2)), np.zeros((4, 2))),          # shape mismatch
    (np.ones((1, 2)), np.ones((1, 2))),            # one point
    (np.full((5, 2), np.nan), np.zeros((5, 2))),   # NaN
    (np.zeros((5, 3)), np.zeros((5, 3))),          # 3-d points
])
def test_umeyama_rejects_malformed_points(bad: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(InputError):
        umeyama(*bad)


@pytest.mark.parametrize("geometry", [ARCFACE_112, SPHEREFACE_112x96])
def test_aligned_crop_puts_marks_on_the_template(geometry) -> None:  # noqa: ANN001
    # draw 5 bright dots at the keypoints of a rotated, scaled, shifted face and align it
    img = np.zeros((400, 500, 3), np.uint8)
    a, s = math.radians(25), 2.2
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    kps = (geometry.template - geometry.template.mean(0)) @ rot.T * s + [240, 190]
    import cv2

    for x, y in kps:
        cv2.circle(img, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    crop = align_face(img, kps, geometry)
    assert crop.shape == (geometry.size[1], geometry.size[0], 3) and crop.dtype == np.uint8
    for tx, ty in geometry.template:  # each dot centre lands within 1 px of its template point
        assert crop[int(round(ty)), int(round(tx))].min() > 200
    assert align_faces(img, kps[None], geometry).shape == (1, *crop.shape)


def test_blazeface_mapping_keeps_eyes_nose_and_centres_mouth_corners() -> None:
    six = np.array([[30, 50], [66, 50], [48, 72], [48, 92], [5, 60], [90, 60]], np.float32)
    five = blazeface_to_five(six)
    np.testing.assert_array_equal(five[:3], six[:3])
    np.testing.assert_allclose(five[3:].mean(0), six[3])           # mouth centre preserved
    width = five[4, 0] - five[3, 0]
    assert width == pytest.approx(0.828 * 36, abs=0.1)               # template mouth/eye ratio
    assert five_points(six[None]).shape == (1, 5, 2)
    assert five_points(five) is not None and five_points(five).shape == (5, 2)


@pytest.mark.parametrize("k", [0, 4, 7])
def test_other_keypoint_counts_are_refused(k: int) -> None:
    with pytest.raises(InputError, match="5 keypoints"):
        five_points(np.zeros((k, 2), np.float32))


@pytest.mark.parametrize("img", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), "x"])
def test_align_face_rejects_bad_images(img) -> None:  # noqa: ANN001
    with pytest.raises(InputError):
        align_face(img, ARCFACE_112.template, ARCFACE_112)


def test_large_faces_are_anti_aliased_like_an_area_downscale() -> None:
    import cv2

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (1200, 1000, 3), dtype=np.uint8), (0, 0), 1.0)
    geo = SPHEREFACE_112x96
    kps = (geo.template - geo.template.mean(0)) * 7.3 + [500, 600]  # face 7.3x the crop
    s = 1 / 7.3
    ref = align_face(cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), (kps + 0.5) * s - 0.5, geo)
    got = align_face(img, kps, geo)
    direct = cv2.warpAffine(img, umeyama(kps, geo.template), geo.size)  # plain bilinear: aliased
    err_got = np.abs(got.astype(int) - ref).mean()
    assert err_got < 0.35 * np.abs(direct.astype(int) - ref).mean()  # 3.1 vs 13.1 grey levels here
