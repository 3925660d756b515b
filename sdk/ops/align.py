"""Face alignment: a least-squares similarity transform from 5 keypoints onto a crop template.

The transform is Umeyama's closed form (1991): the rotation, uniform scale and translation
that minimise the squared distance between the mapped keypoints and the template. The crop
is then cut with one ``cv2.warpAffine``.

Keypoint order everywhere (the detectors' 5 points): right eye, left eye, nose, right mouth
corner, left mouth corner, where "right" is the subject's right, i.e. the image left.

BlazeFace gives 6 points (right eye, left eye, nose tip, mouth centre, right ear, left ear)
and no mouth corners. :func:`blazeface_to_five` maps them: the eyes and nose are taken as they
are, the ears are dropped (they sit on the face outline and move with yaw) and the two mouth
corners are placed on the line through the mouth centre parallel to the eye line, half a
template mouth width either side (the template's mouth is 0.828 of its eye distance wide).
The made-up corners carry no information beyond the mouth centre, so the fit is in effect a
4-point fit in which the mouth counts twice; ``benchmarks/recognition_accuracy.py`` measures
what the mapping costs (embedding cosine and verification accuracy against SCRFD's points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "CropGeometry",
    "ARCFACE_112",
    "SPHEREFACE_112x96",
    "GEOMETRIES",
    "get_geometry",
    "umeyama",
    "similarity_params",
    "blazeface_to_five",
    "five_points",
    "align_face",
    "align_faces",
]


@dataclass(frozen=True)
class CropGeometry:
    """An aligned-crop layout: output size and where the 5 keypoints land in it.

    Attributes:
        name: identifier stored in galleries and manifests (``"arcface-112x112"``).
        size: ``(width, height)`` of the crop in pixels.
        template: ``(5, 2)`` float32 target keypoints in crop pixels.
    """

    name: str
    size: tuple[int, int]
    template: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.template, np.float32)
        if t.shape != (5, 2):
            raise InputError(f"a crop template needs (5, 2) points, got {t.shape}")
        t.setflags(write=False)
        object.__setattr__(self, "template", t)
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    @property
    def eye_distance(self) -> float:
        """Distance between the template's eyes, in crop pixels."""
        return float(np.linalg.norm(self.template[1] - self.template[0]))


# SphereFace/CosFace 96x112 crop (the MTCNN-aligned CASIA-WebFace and LFW images).
SPHEREFACE_112x96 = CropGeometry(
    "sphereface-112x96", (96, 112),
    np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
              [33.5493, 92.3655], [62.7299, 92.2041]], np.float32),
)
# ArcFace / insightface 112x112 crop: the same points, moved 8 px right.
ARCFACE_112 = CropGeometry(
    "arcface-112x112", (112, 112),
    SPHEREFACE_112x96.template + np.array([8.0, 0.0], np.float32),
)
GEOMETRIES: dict[str, CropGeometry] = {g.name: g for g in (ARCFACE_112, SPHEREFACE_112x96)}

# template mouth width / eye distance, shared by both templates (0.828)
_MOUTH_TO_EYES = float(np.linalg.norm(SPHEREFACE_112x96.template[4] - SPHEREFACE_112x96.template[3])
                       / SPHEREFACE_112x96.eye_distance)


def get_geometry(name: str) -> CropGeometry:
    """The crop geometry called ``name``.

    Raises:
        InputError: unknown name.
    """
    try:
        return GEOMETRIES[name]
    except KeyError:
        raise InputError(f"unknown crop geometry {name!r}; known: {', '.join(GEOMETRIES)}") from None


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` points onto ``dst``.

    Args:
        src: ``(n, 2)`` points, ``n >= 2``, not all equal.
        dst: ``(n, 2)`` target points.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``: rotation,
        uniform scale and translation only (no reflection, no shear).

    Raises:
        InputError: shapes differ, fewer than 2 points, non-finite or coincident points.
    """
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape or len(s) < 2:
        raise InputError(f"umeyama needs two (n>=2, 2) point sets of one shape, got {s.shape} and {d.shape}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise InputError("keypoints contain NaN or infinity")
    ms, md = s.mean(0), d.mean(0)
    sc, dc = s - ms, d - md
    var_s = float((sc ** 2).sum())
    if var_s <= 1e-12 * len(s):
        raise InputError("keypoints all coincide: no transform can be estimated")
    # Umeyama's solution in 2-D, in closed form: with the centred points as complex numbers
    # z_s and z_d, the optimal rotation-and-scale is a + ib = sum(conj(z_s) z_d) / sum(|z_s|^2);
    # it is a proper rotation by construction (no reflection), so no SVD is needed.
    a = float((sc[:, 0] * dc[:, 0] + sc[:, 1] * dc[:, 1]).sum()) / var_s
    b = float((sc[:, 0] * dc[:, 1] - sc[:, 1] * dc[:, 0]).sum()) / var_s
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = md - m[:, :2] @ ms
    return m


def similarity_params(m: np.ndarray) -> tuple[float, float, float, float]:
    """``(scale, rotation_radians, tx, ty)`` of a ``(2, 3)`` similarity matrix."""
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    return scale, float(np.arctan2(m[1, 0], m[0, 0])), float(m[0, 2]), float(m[1, 2])


def blazeface_to_five(keypoints: np.ndarray) -> np.ndarray:
    """Map BlazeFace's 6 keypoints to the 5-point layout (see the module docstring).

    Args:
        keypoints: ``(6, 2)`` or ``(n, 6, 2)``: right eye, left eye, nose tip, mouth centre,
            right ear, left ear.

    Returns:
        ``(5, 2)`` or ``(n, 5, 2)`` float32: right eye, left eye, nose, right and left mouth corner.
    """
    k = np.asarray(keypoints, np.float32)
    if k.shape[-2:] != (6, 2):
        raise InputError(f"BlazeFace keypoints are (..., 6, 2), got {k.shape}")
    half = 0.5 * _MOUTH_TO_EYES * (k[..., 1, :] - k[..., 0, :])  # along the eye line, image left->right
    out = np.empty(k.shape[:-2] + (5, 2), np.float32)
    out[..., 0:3, :] = k[..., 0:3, :]
    out[..., 3, :] = k[..., 3, :] - half
    out[..., 4, :] = k[..., 3, :] + half
    return out


def five_points(keypoints: np.ndarray) -> np.ndarray:
    """Bring ``(..., 5, 2)`` or BlazeFace ``(..., 6, 2)`` keypoints to the 5-point layout.

    Raises:
        InputError: any other number of keypoints (e.g. UltraFace's 0): alignment needs 5.
    """
    k = np.asarray(keypoints, np.float32)
    if k.ndim < 2 or k.shape[-1] != 2:
        raise InputError(f"keypoints must be (..., k, 2), got {k.shape}")
    if k.shape[-2] == 5:
        return k
    if k.shape[-2] == 6:
        return blazeface_to_five(k)
    raise InputError(f"alignment needs 5 keypoints (or BlazeFace's 6), the detector gave {k.shape[-2]}")


def align_face(image: np.ndarray, keypoints: np.ndarray, geometry: CropGeometry,
               *, border: str = "constant") -> np.ndarray:
    """Cut one aligned face crop.

    Args:
        image: ``(H, W, 3)`` uint8 image (any channel order; the crop keeps it).
        keypoints: ``(5, 2)`` (or BlazeFace ``(6, 2)``) keypoints in ``image`` pixels.
        geometry: the crop layout (:data:`ARCFACE_112`, :data:`SPHEREFACE_112x96`).
        border: ``"constant"`` (black, as the models were trained) or ``"replicate"``.

    Returns:
        ``(height, width, 3)`` uint8 crop, a new array.
    """
    import cv2

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"align_face needs a uint8 (H, W, 3) image, got {got}")
    m = umeyama(five_points(keypoints), geometry.template)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return _warp(image, m, geometry.size, mode)


def _warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    """``warpAffine``, after an integer area-downscale of the face region when it shrinks > 2x.

    A bilinear warp reads 4 source pixels per output pixel, so a face 7x larger than the crop
    (a phone photo) aliases. Then the region the crop covers is first shrunk by the integer
    factor ``F = floor(1 / scale)`` with ``INTER_AREA`` (OpenCV's fast block-average path),
    and the warp runs at a scale in (0.5, 1].
    """
    import cv2

    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if scale >= 0.5:
        return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=border)
    w, h = size
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ inv[:, :2].T + inv[:, 2]
    f = int(1.0 / scale)
    x0, y0 = (np.maximum(np.floor(corners.min(0)).astype(int) - f, 0) // f) * f
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + f, [image.shape[1], image.shape[0]])
    nw, nh = (x1 - x0) // f, (y1 - y0) // f
    if nw < 2 or nh < 2:  # the face lies (mostly) outside the image
        return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=border)
    small = cv2.resize(image[y0:y0 + nh * f, x0:x0 + nw * f], (nw, nh), interpolation=cv2.INTER_AREA)
    # block j covers source pixels f*j .. f*j+f-1 (offset x0): its centre is x = f*j + (f-1)/2 + x0
    m2 = np.empty((2, 3))
    m2[:, :2] = m[:, :2] * f
    m2[:, 2] = m[:, 2] + m[:, :2] @ np.array([(f - 1) / 2.0 + x0, (f - 1) / 2.0 + y0])
    return cv2.warpAffine(small, m2, size, flags=cv2.INTER_LINEAR, borderMode=border)


def align_faces(image: np.ndarray, keypoints: np.ndarray, geometry: CropGeometry) -> np.ndarray:
    """Aligned crops of every face: ``(n, height, width, 3)`` uint8 for ``(n, k, 2)`` keypoints."""
    k = np.asarray(keypoints, np.float32)
    if k.ndim != 3:
        raise InputError(f"keypoints of several faces are (n, k, 2), got {k.shape}")
    w, h = geometry.size
    out = np.empty((len(k), h, w, 3), np.uint8)
    for i in range(len(k)):
        out[i] = align_face(image, k[i], geometry)
    return out
