"""Image checks and the resize/letterbox that maps network space back to source pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["MAX_PIXELS", "check_image", "as_rgb", "Letterbox", "letterbox", "to_tensor"]

MAX_PIXELS = 100_000_000  # 100 MP: beyond this an edge device should tile, not resize


def as_rgb(image: object, channels: str = "RGB") -> np.ndarray:
    """Validate an image and return it as contiguous ``uint8`` ``(H, W, 3)`` RGB (see :func:`check_image`)."""
    img, order = check_image(image, channels)
    return np.ascontiguousarray(img[:, :, ::-1] if order == "BGR" else img)


def check_image(image: object, channels: str = "RGB") -> tuple[np.ndarray, str]:
    """Validate an image and return a 3-channel ``uint8`` view of it plus its channel order.

    No copy is made for ordinary 3-channel input, so callers can resize first and swap
    channels on the small result. Accepts ``(H, W)`` grey, ``(H, W, 1)``, ``(H, W, 3)`` and ``(H, W, 4)`` (alpha dropped)
    ``uint8`` arrays; ``channels`` says whether the colour planes are ``"RGB"`` or
    ``"BGR"`` (as OpenCV reads them).

    Raises:
        InputError: not an array, wrong dtype, empty, wrong shape or absurdly large.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy uint8 array (H, W, 3), got {type(image).__name__}")
    if channels not in ("RGB", "BGR"):
        raise InputError(f"channels must be 'RGB' or 'BGR', got {channels!r}")
    if image.dtype != np.uint8:
        raise InputError(
            f"image must have dtype uint8 (0..255), got {image.dtype}; "
            "convert with np.clip(img, 0, 255).astype(np.uint8)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise InputError(f"image is empty (shape {image.shape})")
    if h * w > MAX_PIXELS:
        raise InputError(f"image has {h * w} pixels ({w}x{h}); at most {MAX_PIXELS} are accepted")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2), "RGB"
    return image[:, :, :3], channels


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed in the network input.

    ``input = source * scale + pad`` per axis; :meth:`to_source` inverts it.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    src_w: int
    src_h: int

    def to_source(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` network-input coordinates to source pixels."""
        out = np.empty_like(xy, dtype=np.float32)
        out[..., 0] = (xy[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (xy[..., 1] - self.pad_y) / self.scale_y
        return out

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(n, 4)`` xyxy network-input boxes to clipped source-pixel boxes."""
        b = self.to_source(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        b[:, 0::2] = np.clip(b[:, 0::2], 0, self.src_w)
        b[:, 1::2] = np.clip(b[:, 1::2], 0, self.src_h)
        return b


def letterbox(image: np.ndarray, size: tuple[int, int], mode: str = "letterbox") -> tuple[np.ndarray, Letterbox]:
    """Resize a 3-channel ``image`` into ``size = (width, height)``.

    ``"letterbox"`` keeps the aspect ratio and pads right/bottom with zeros;
    ``"stretch"`` scales each axis independently (for models trained that way).
    """
    import cv2

    tw, th = size
    h, w = image.shape[:2]
    if mode == "stretch":
        sx, sy = tw / w, th / h
        nw, nh = tw, th
    else:
        s = min(tw / w, th / h)
        sx = sy = s
        nw, nh = max(1, min(tw, round(w * s))), max(1, min(th, round(h * s)))
    interp = cv2.INTER_AREA if (nw < w or nh < h) else cv2.INTER_LINEAR
    if not image.flags.c_contiguous and not (image.strides[1] == 3 and image.strides[2] == 1):
        image = np.ascontiguousarray(image)
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    if (nw, nh) == (tw, th):
        canvas = resized
    else:
        canvas = np.zeros((th, tw, 3), np.uint8)
        canvas[:nh, :nw] = resized
    # the effective scale is what cv2 did, not the requested ratio
    return canvas, Letterbox(nw / w, nh / h, 0.0, 0.0, w, h)


def to_tensor(
    rgb: np.ndarray,
    *,
    layout: str,
    channels: str,
    source_channels: str = "RGB",
    mean: float | tuple[float, ...],
    std: float | tuple[float, ...],
    dtype: str = "float32",
) -> np.ndarray:
    """Normalise a uint8 image (in ``source_channels`` order) into a batch-of-one network input."""
    img = rgb[:, :, ::-1] if channels != source_channels else rgb
    x = img.astype(np.float32)
    m = np.asarray(mean, np.float32)
    s = np.asarray(std, np.float32)
    if m.ndim or float(m) != 0.0:
        x -= m
    if s.ndim or float(s) != 1.0:
        x /= s
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    elif layout != "NHWC":
        raise InputError(f"layout must be NCHW or NHWC, got {layout!r}")
    return np.ascontiguousarray(x[None]).astype(dtype, copy=False)
