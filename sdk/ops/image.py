"""Image checks and the resize/letterbox that maps network space back to source pixels."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError

__all__ = ["MAX_PIXELS", "read_image", "image_size", "check_image", "as_rgb", "Letterbox", "letterbox", "to_tensor",
           "letterbox_tensor", "area_tables"]

MAX_PIXELS = 100_000_000  # 100 MP: beyond this an edge device should tile, not resize


_MAX_FILE_BYTES = 4 * MAX_PIXELS + (16 << 20)  # a 100 MP uncompressed 32-bit BMP, plus metadata


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file (any path, non-ASCII too) into a BGR ``uint8`` ``(H, W, 3)`` array.

    The size is read from the file's header first (:func:`image_size`), so an image over
    :data:`MAX_PIXELS` is refused before a single pixel is decoded.

    Raises:
        InputError: no such file, not a regular file, not a PNG/JPEG/BMP/WebP/TIFF/PNM image,
            too many pixels, or not decodable.
    """
    import cv2

    from ..inputs import open_regular

    p = Path(path)
    with open_regular(p, "image") as f:
        w, h = _header_size(f, p)
        if w * h > MAX_PIXELS:
            raise InputError(f"{p}: image has {w * h} pixels ({w}x{h}); at most {MAX_PIXELS} are accepted")
        f.seek(0)
        data = f.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise InputError(f"{p}: larger than {_MAX_FILE_BYTES} bytes; not an image anyedge reads")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise InputError(f"{p}: not a readable image")
    return img


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from an image file's header, without decoding it.

    Raises:
        InputError: not a regular file, or not a PNG, JPEG, BMP, WebP, TIFF or PNM image.
    """
    from ..inputs import open_regular

    p = Path(path)
    with open_regular(p, "image") as f:
        return _header_size(f, p)


def _header_size(f: BinaryIO, p: Path) -> tuple[int, int]:
    head = f.read(32)
    size: tuple[int, int] | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        size = struct.unpack(">II", head[16:24])
    elif head.startswith(b"\xff\xd8"):
        size = _jpeg_size(f)
    elif head.startswith(b"BM") and len(head) >= 26:
        if struct.unpack("<I", head[14:18])[0] == 12:  # BITMAPCOREHEADER
            size = struct.unpack("<HH", head[18:22])
        else:
            w, hh = struct.unpack("<ii", head[18:26])
            size = (abs(w), abs(hh))  # negative height: rows stored top-down
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        size = _webp_size(head + f.read(8))
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        size = _tiff_size(f, head[:2])
    elif head[:1] == b"P" and head[1:2] in b"123456":
        size = _pnm_size(head + f.read(992))
    if size is None:
        raise InputError(f"{p}: not a PNG, JPEG, BMP, WebP, TIFF or PNM image (or its header is cut short)")
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise InputError(f"{p}: the image header says {w}x{h} pixels")
    return w, h


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame marker (SOF0..SOF15 but DHT, JPG, DAC)."""
    f.seek(2)
    while True:
        b = f.read(1)
        while b == b"\xff":  # fill bytes
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            b = f.read(1)
            if b != b"\xff":
                return None
            continue
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            sof = f.read(5)
            if len(sof) < 5:
                return None
            h, w = struct.unpack(">HH", sof[1:5])
            return w, h
        if marker == 0xD9 or length < 2:  # end of image before any frame
            return None
        f.seek(length - 2, os.SEEK_CUR)
        b = f.read(1)
        if b != b"\xff":
            return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk, data = head[12:16], head[20:]
    if chunk == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[6:10])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 10:
        return int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
    return None


def _tiff_size(f: BinaryIO, order: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD."""
    e = "<" if order == b"II" else ">"
    f.seek(4)
    (ifd,) = struct.unpack(e + "I", f.read(4))
    f.seek(ifd)
    raw = f.read(2)
    if len(raw) < 2:
        return None
    (n,) = struct.unpack(e + "H", raw)
    found: dict[int, int] = {}
    for _ in range(min(n, 4096)):
        entry = f.read(12)
        if len(entry) < 12:
            return None
        tag, typ = struct.unpack(e + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), entry[8:10] if typ == 3 else entry[8:12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(head: bytes) -> tuple[int, int] | None:
    fields: list[int] = []
    for line in head[2:].split(b"\n"):
        for tok in line.split(b"#", 1)[0].split():
            if not tok.isdigit():
                return None
            fields.append(int(tok))
            if len(fields) == 2:
                return fields[0], fields[1]
    return None


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
        # clip with ufuncs in place: np.clip's values, without its wrapper's per-call cost
        for v, hi in ((b[:, 0::2], self.src_w), (b[:, 1::2], self.src_h)):
            np.maximum(v, 0, out=v)
            np.minimum(v, hi, out=v)
        return b


try:  # compiled at install time; without it the same results come from OpenCV / numpy, slower
    from . import _resize as _kernels
except ImportError:  # pragma: no cover - depends on the build
    _kernels = None


@lru_cache(maxsize=64)
def area_tables(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's ``INTER_AREA`` weights for shrinking ``src`` pixels to ``dst`` along one axis.

    Output pixel ``i`` covers source ``[i * s, (i + 1) * s)`` with ``s = src / dst``: whole
    pixels weigh ``1 / s``, the cut ones at both ends their covered fraction (cuts under
    1e-3 pixel are dropped), exactly as OpenCV's ``computeResizeAreaTab`` builds them.

    Returns:
        ``(start (dst,) int32, count (dst,) int32, weights (dst, max_count) float32)``.
    """
    scale = 1.0 / (dst / src)  # OpenCV keeps the inverse scale and inverts it back
    starts, counts, rows = [], [], []
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s2 = min(int(np.floor(f2)), src - 1)
        s1 = min(int(np.ceil(f1)), s2)
        taps: list[tuple[int, float]] = []
        if s1 - f1 > 1e-3:
            taps.append((s1 - 1, (s1 - f1) / cell))
        taps += [(x, 1.0 / cell) for x in range(s1, s2)]
        if f2 - s2 > 1e-3:
            taps.append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        starts.append(taps[0][0])
        counts.append(len(taps))
        rows.append([w for _, w in taps])
    weights = np.zeros((dst, max(counts)), np.float32)
    for d, r in enumerate(rows):
        weights[d, : len(r)] = r
    return np.asarray(starts, np.int32), np.asarray(counts, np.int32), weights


def _area_resize(image: np.ndarray, nw: int, nh: int, out: np.ndarray) -> bool:
    """Non-integer area downscaling with the compiled kernel into ``out``; False when it does not apply."""
    h, w = image.shape[:2]
    if _kernels is None or nw > w or nh > h or (w % nw == 0 and h % nh == 0) or out.strides[1:] != (3, 1):
        return False  # integer factors take OpenCV's own exact fast path
    if image.strides[1] != 3 or image.strides[2] != 1:
        image = np.ascontiguousarray(image)
    ys, yc, yw = area_tables(h, nh)
    xs, xc, xw = area_tables(w, nw)
    _kernels.area_resize(image, ys, yc, yw, xs, xc, xw, out)
    return True


def _placement(w: int, h: int, size: tuple[int, int], mode: str) -> tuple[int, int]:
    """The resized image's ``(width, height)`` inside ``size``: stretched, or aspect kept."""
    tw, th = size
    if mode == "stretch":
        return tw, th
    s = min(tw / w, th / h)
    return max(1, min(tw, round(w * s))), max(1, min(th, round(h * s)))


def letterbox(
    image: np.ndarray, size: tuple[int, int], mode: str = "letterbox", canvas: np.ndarray | None = None,
    fast: bool = False,
) -> tuple[np.ndarray, Letterbox]:
    """Resize a 3-channel ``image`` into ``size = (width, height)``.

    ``"letterbox"`` keeps the aspect ratio and pads right/bottom with zeros;
    ``"stretch"`` scales each axis independently (for models trained that way). Pass a
    ``(height, width, 3)`` uint8 ``canvas`` to reuse one buffer across frames. Downscaling is
    anti-aliased (``INTER_AREA``; non-integer factors through anyedge's compiled kernel, the
    same weights at about a third of OpenCV's cost) unless ``fast`` asks for bilinear, cheaper
    still for large reductions at some aliasing.
    """
    import cv2

    tw, th = size
    h, w = image.shape[:2]
    nw, nh = _placement(w, h, size, mode)
    interp = cv2.INTER_AREA if (nw < w or nh < h) and not fast else cv2.INTER_LINEAR
    if not image.flags.c_contiguous and not (image.strides[1] == 3 and image.strides[2] == 1):
        image = np.ascontiguousarray(image)
    if canvas is None or canvas.shape != (th, tw, 3):
        canvas = np.empty((th, tw, 3), np.uint8)
    if interp != cv2.INTER_AREA or not _area_resize(image, nw, nh, canvas[:nh, :nw]):
        cv2.resize(image, (nw, nh), dst=canvas[:nh, :nw], interpolation=interp)
    canvas[nh:] = 0
    canvas[:nh, nw:] = 0
    # the effective scale is what cv2 did, not the requested ratio
    return canvas, Letterbox(nw / w, nh / h, 0.0, 0.0, w, h)


def _constants(mean: object, std: object) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-channel float32 mean and 1/std (as the numpy path computes them) and whether to scale."""
    m = np.ascontiguousarray(np.broadcast_to(np.asarray(mean, np.float32), (3,)))
    inv = np.ascontiguousarray(1.0 / np.broadcast_to(np.asarray(std, np.float32), (3,)), np.float32)
    m.flags.writeable = False
    inv.flags.writeable = False
    return m, inv, bool(np.any(inv != 1.0))


_cached_constants = lru_cache(maxsize=32)(_constants)  # made once per model's mean/std


@lru_cache(maxsize=64)
def _fused_plan(w: int, h: int, size: tuple[int, int], mode: str, fast: bool, mean: object, std: object,
                swap: bool, nchw: bool) -> tuple | None:
    """The prepared compiled kernel :func:`letterbox_tensor` runs for one frame size, and the
    letterbox; ``None`` when the fused kernel does not apply (upscaling, integer factors,
    bilinear, no kernels)."""
    nw, nh = _placement(w, h, size, mode)
    if _kernels is None or fast or nw > w or nh > h or (nw == w and nh == h) or (w % nw == 0 and h % nh == 0):
        return None
    ys, yc, yw = area_tables(h, nh)
    xs, xc, xw = area_tables(w, nw)
    m, inv, _ = _constants(mean, std)
    tw, th = size
    kernel = _kernels.AreaResizeNormalize(h, w, ys, yc, yw, xs, xc, xw, m, inv, swap, nchw, th, tw)
    return kernel, Letterbox(nw / w, nh / h, 0.0, 0.0, w, h)


def letterbox_tensor(
    image: np.ndarray,
    size: tuple[int, int],
    mode: str = "letterbox",
    *,
    layout: str,
    channels: str,
    source_channels: str = "RGB",
    mean: float | tuple[float, ...],
    std: float | tuple[float, ...],
    out: np.ndarray | None = None,
    canvas: np.ndarray | None = None,
    fast: bool = False,
) -> tuple[np.ndarray, Letterbox, np.ndarray | None]:
    """:func:`letterbox` then :func:`to_tensor` in one call, fused into one pass where it can be.

    A non-integer area downscale (a camera or photo frame into a small network such as
    BlazeFace's 128x128) is resized and normalised straight into ``out`` by the compiled
    kernel: no uint8 canvas, no second pass, the same tensor bit for bit. Every other case
    letterboxes into ``canvas`` and normalises it, as the two functions do.

    Returns:
        ``(tensor, letterbox, canvas)``: ``tensor`` is ``out`` when it fits (else a new array),
        ``canvas`` the uint8 buffer used (``None`` on the fused path) to pass back next time.
    """
    if layout not in ("NCHW", "NHWC"):
        raise InputError(f"layout must be NCHW or NHWC, got {layout!r}")
    h, w = image.shape[:2]
    nchw = layout == "NCHW"
    try:
        plan = _fused_plan(w, h, tuple(size), mode, bool(fast), mean, std, channels != source_channels, nchw)
    except TypeError:  # a list mean/std is not hashable: take the two-pass path
        plan = None
    if plan is not None:
        kernel, lb = plan
        tw, th = size
        shape = (1, 3, th, tw) if nchw else (1, th, tw, 3)
        if out is None or out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            out = np.empty(shape, np.float32)
        if image.strides[1] != 3 or image.strides[2] != 1:
            image = np.ascontiguousarray(image)
        kernel(image, out)
        return out, lb, None
    canvas, lb = letterbox(image, size, mode, canvas=canvas, fast=fast)
    out = to_tensor(canvas, layout=layout, channels=channels, source_channels=source_channels, mean=mean,
                    std=std, out=out)
    return out, lb, canvas


def to_tensor(
    rgb: np.ndarray,
    *,
    layout: str,
    channels: str,
    source_channels: str = "RGB",
    mean: float | tuple[float, ...],
    std: float | tuple[float, ...],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Normalise a uint8 image (in ``source_channels`` order) into a batch-of-one float32 input.

    ``out`` (shape ``(1, 3, H, W)`` or ``(1, H, W, 3)``, float32) is filled in place when given,
    so a detector reuses one input buffer instead of allocating megabytes per frame.
    """
    if layout not in ("NCHW", "NHWC"):
        raise InputError(f"layout must be NCHW or NHWC, got {layout!r}")
    h, w = rgb.shape[:2]
    shape = (1, 3, h, w) if layout == "NCHW" else (1, h, w, 3)
    if out is None or out.shape != shape or out.dtype != np.float32:
        out = np.empty(shape, np.float32)
    swap = channels != source_channels
    if _kernels is not None and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.strides[1:] == (3, 1) \
            and out.flags.c_contiguous:
        try:
            km, kinv, scale = _cached_constants(mean, std)
        except TypeError:  # a list is not hashable
            km, kinv, scale = _constants(mean, std)
        _kernels.normalize(rgb, km, kinv, swap, layout == "NCHW", scale, out)
        return out
    m = np.broadcast_to(np.asarray(mean, np.float32), (3,))
    inv = 1.0 / np.broadcast_to(np.asarray(std, np.float32), (3,))
    if layout == "NCHW":
        for c in range(3):
            plane = out[0, c]
            np.subtract(rgb[:, :, 2 - c if swap else c], m[c], out=plane, dtype=np.float32)
            if inv[c] != 1.0:
                plane *= inv[c]
    else:
        img = rgb[:, :, ::-1] if swap else rgb
        np.subtract(img, m, out=out[0], dtype=np.float32)
        if np.any(inv != 1.0):
            out[0] *= inv
    return out
