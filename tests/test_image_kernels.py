"""The compiled preprocessing kernels against OpenCV / numpy on real images, and BlazeFace's logit cut."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from anyedge.ops import image as image_ops
from anyedge.ops.image import area_tables, letterbox, letterbox_tensor, to_tensor

from .conftest import WIDER


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(WIDER.glob("*.jpg"))[:12]]


def test_kernels_are_built():
    assert image_ops._kernels is not None, "sdk/ops/_resize.pyx was not compiled at install"


@pytest.mark.parametrize("src, dst", [(416, 128), (416, 192), (100, 37), (7, 3), (5, 5)])
def test_area_tables_sum_to_one_and_cover_the_source(src, dst):
    start, count, w = area_tables(src, dst)
    assert start.shape == count.shape == (dst,) and w.shape[0] == dst
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    assert start[0] == 0 and start[-1] + count[-1] == src
    assert (np.diff(start) >= 0).all()


@pytest.mark.parametrize("size", [(128, 128), (192, 192)])
def test_area_kernel_equals_opencv_for_the_blazeface_sizes(frames, size):
    for img in frames:
        ref = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        out = np.empty((size[1], size[0], 3), np.uint8)
        assert image_ops._area_resize(img, size[0], size[1], out)
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("size", [(100, 70), (333, 300), (320, 240), (129, 97)])
def test_area_kernel_within_one_grey_level_of_opencv(frames, size):
    differing = 0
    for img in frames:
        ref = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        out = np.empty((size[1], size[0], 3), np.uint8)
        assert image_ops._area_resize(img, size[0], size[1], out)
        diff = np.abs(out.astype(int) - ref)
        assert diff.max() <= 1
        differing += int((diff > 0).sum())
    assert differing <= 0.005 * len(frames) * size[0] * size[1] * 3


@pytest.mark.parametrize("crop", [(slice(0, 301), slice(0, 257)), (slice(10, 400), slice(3, 415, 2))])
def test_letterbox_of_views_matches_opencv(frames, crop):
    img = frames[0][crop]  # a view: odd sizes, and (second case) a column stride OpenCV cannot read
    canvas, lb = letterbox(img, (128, 128))
    nh, nw = round(img.shape[0] * lb.scale_y), round(img.shape[1] * lb.scale_x)
    ref = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_AREA)
    assert np.abs(canvas[:nh, :nw].astype(int) - ref).max() <= 1
    assert not canvas[nh:].any() and not canvas[:, nw:].any()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("mean, std", [(127.5, 127.5), ((104.0, 117.0, 123.0), 1.0), (0.0, 1.0), ([1.0, 2.0, 3.0], 2.0),
                                       ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))])
@pytest.mark.parametrize("source", ["RGB", "BGR"])
def test_normalise_kernel_is_bit_identical_to_numpy(frames, monkeypatch, layout, mean, std, source):
    img = cv2.resize(frames[1], (96, 64))
    got = to_tensor(img, layout=layout, channels="RGB", source_channels=source, mean=mean, std=std)
    monkeypatch.setattr(image_ops, "_kernels", None)  # the numpy implementation of the same step
    want = to_tensor(img, layout=layout, channels="RGB", source_channels=source, mean=mean, std=std)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("source", ["RGB", "BGR"])
@pytest.mark.parametrize("size, mode, crop", [
    ((128, 128), "letterbox", None),                           # BlazeFace on a square frame: the fused path
    ((128, 96), "letterbox", (slice(0, 301), slice(0, 257))),  # aspect kept: padding right / bottom
    ((192, 160), "stretch", (slice(10, 400), slice(3, 415, 2))),  # a strided view, both axes scaled
    ((128, 64), "letterbox", (slice(0, 128), slice(0, 256))),  # integer factors: OpenCV's path
    ((640, 640), "letterbox", None),                           # upscaling: bilinear, two passes
])
@pytest.mark.parametrize("mean, std", [(127.5, 127.5), ((104.0, 117.0, 123.0), (58.0, 57.0, 57.5)), (0.0, 1.0)])
def test_fused_letterbox_tensor_is_bit_identical_to_two_passes(frames, layout, source, size, mode, crop, mean, std):
    for img in frames[:3]:
        img = img[crop] if crop else img
        canvas, lb = letterbox(img, size, mode)
        want = to_tensor(canvas, layout=layout, channels="RGB", source_channels=source, mean=mean, std=std)
        out = np.full_like(want, np.nan)  # a reused buffer full of garbage: every value must be written
        got, glb, _ = letterbox_tensor(img, size, mode, layout=layout, channels="RGB", source_channels=source,
                                       mean=mean, std=std, out=out)
        assert got is out and glb == lb
        assert got.tobytes() == want.tobytes()


def test_fused_letterbox_tensor_takes_the_kernel_for_blazeface(frames, monkeypatch):
    calls = []
    kernel = image_ops._kernels.AreaResizeNormalize

    def spy(*a):
        calls.append(1)
        return kernel(*a)

    image_ops._fused_plan.cache_clear()
    monkeypatch.setattr(image_ops._kernels, "AreaResizeNormalize", spy, raising=False)
    _, _, canvas = letterbox_tensor(frames[0], (128, 128), layout="NHWC", channels="RGB", mean=127.5, std=127.5)
    image_ops._fused_plan.cache_clear()
    assert calls and canvas is None


def test_prepared_kernel_refuses_tables_and_arrays_that_do_not_fit(frames):
    ys, yc, yw = area_tables(416, 128)
    xs, xc, xw = area_tables(416, 128)
    m = np.full(3, 127.5, np.float32)
    inv = np.full(3, 1 / 127.5, np.float32)
    make = image_ops._kernels.AreaResizeNormalize
    k = make(416, 416, ys, yc, yw, xs, xc, xw, m, inv, False, False, 128, 128)
    with pytest.raises(ValueError, match="416, 416, 3"):
        k(np.zeros((400, 416, 3), np.uint8), np.empty((1, 128, 128, 3), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        k(np.zeros((416, 416, 3), np.uint8), np.empty((1, 3, 128, 128), np.float32))
    with pytest.raises(ValueError, match="outside"):  # tables for a taller image than it is built for
        make(300, 416, ys, yc, yw, xs, xc, xw, m, inv, False, False, 128, 128)
    with pytest.raises(ValueError, match="inside"):
        make(416, 416, ys, yc, yw, xs, xc, xw, m, inv, False, False, 100, 128)


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.75, 0.999, 1.0])
def test_blazeface_logit_cut_keeps_exactly_the_full_sigmoid_faces(frames, threshold):
    from anyedge import FaceDetector
    from anyedge.decoders import blazeface

    with FaceDetector.create("blazeface-short", engine="litert", channels="BGR", threads=1) as det:
        for img in frames[:6]:
            x, _ = det.preprocess(img)
            outs = det.run_engine(x)
            boxes, scores, kps = blazeface.decode(outs, det.input_size, det.spec.decoder, threshold)
            logits = np.clip(outs["classificators"].reshape(-1), -100, 100)
            full = blazeface._sigmoid(logits)
            keep = np.flatnonzero(full >= threshold)
            np.testing.assert_array_equal(scores, full[keep])
            assert len(boxes) == len(kps) == len(keep)


def _chain(name: str):
    import c_toolchains  # targets/checks/ (pytest pythonpath)

    return {"host": c_toolchains.host_toolchain, "aarch64": c_toolchains.aarch64_toolchain,
            "riscv64": c_toolchains.riscv_toolchain}[name]()


def _toolchains():
    out = []
    for name in ("host", "aarch64", "riscv64"):
        if name != "host" and _chain(name) is None and not os.environ.get("CI"):
            out.append(pytest.param(name, marks=pytest.mark.skip(reason=f"{name} cross gcc / qemu not installed")))
        else:
            out.append(name)  # CI installs the cross compilers and qemu: there a missing one fails
    return out


@pytest.fixture(scope="module")
def image_check(tmp_path_factory):
    """tests/c/image_check.c built per toolchain (the C of the fused kernel, sdk/ops/ae_image.h)."""
    built: dict[str, tuple[Path, tuple[str, ...]]] = {}
    root = Path(__file__).resolve().parents[1]

    def get(name: str):
        if name not in built:
            chain = _chain(name)
            assert chain is not None, f"no {name} toolchain (CI installs gcc-aarch64-linux-gnu, gcc-riscv64-linux-gnu, qemu-user)"
            exe = tmp_path_factory.mktemp(f"image-check-{name}") / "image_check"
            subprocess.run([chain.cc, "-std=c11", "-O3", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
                            *chain.flags, f"-I{root / 'sdk' / 'ops'}", str(root / "tests" / "c" / "image_check.c"),
                            "-o", str(exe)], check=True, capture_output=True, text=True)
            built[name] = (exe, chain.runner)
        return built[name]

    return get


@pytest.mark.parametrize("chain", _toolchains())
def test_fused_kernel_gives_the_same_tensor_on_every_cpu(frames, image_check, tmp_path, chain):
    """The C behind the fused resize, built for this host and (under qemu) for aarch64 and
    riscv64: the same tensor as the installed kernel, bit for bit."""
    exe, runner = image_check(chain)
    cases = [  # (crop, size, mode, layout, source order, mean, std)
        (None, (128, 128), "letterbox", "NHWC", "BGR", 127.5, 127.5),  # BlazeFace on a BGR frame
        ((slice(0, 301), slice(0, 257)), (128, 96), "letterbox", "NCHW", "RGB", (104.0, 117.0, 123.0),
         (58.0, 57.0, 57.5)),
        ((slice(3, 400), slice(0, 410)), (192, 160), "stretch", "NHWC", "RGB", 0.0, 1.0),
    ]
    for k, (crop, size, mode, layout, order, mean, std) in enumerate(cases):
        img = np.ascontiguousarray(frames[k][crop] if crop else frames[k])
        want, lb, canvas = letterbox_tensor(img, size, mode, layout=layout, channels="RGB", source_channels=order,
                                            mean=mean, std=std)
        assert canvas is None  # the fused kernel made it
        h, w = img.shape[:2]
        nw, nh = round(w * lb.scale_x), round(h * lb.scale_y)
        ys, yc, yw = area_tables(h, nh)
        xs, _, xw = area_tables(w, nw)
        m, inv, _ = image_ops._constants(mean, std)
        chan = [2 - s if order != "RGB" else s for s in range(3)]
        blob = b"".join([
            np.asarray([h, w, nh, nw, size[1], size[0], yw.shape[1], xw.shape[1], int(layout == "NCHW")],
                       "<i8").tobytes(),
            ys.astype("<i4").tobytes(), yc.astype("<i4").tobytes(), yw.astype("<f4").tobytes(),
            xs.astype("<i4").tobytes(), xw.astype("<f4").tobytes(),
            m[chan].astype("<f4").tobytes(), inv[chan].astype("<f4").tobytes(), np.asarray(chan, "<i4").tobytes(),
            img.tobytes(),
        ])
        (tmp_path / "in.bin").write_bytes(blob)
        subprocess.run([*runner, str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True,
                       timeout=300)
        got = np.frombuffer((tmp_path / "out.bin").read_bytes(), "<f4")
        assert got.size == want.size
        assert got.tobytes() == want.astype("<f4").tobytes(), f"case {k} on {chain}"
