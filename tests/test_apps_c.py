"""The C post-processing library for apps and ``anyedge export-c``.

The C library (built from an export-c folder, on this host and for aarch64 under qemu) is fed
the raw engine outputs the SDK produced on real WIDER images and must give the SDK's faces:
bit for bit where the SDK's arithmetic is the C library's (BlazeFace, SCRFD, UltraFace), and bit
for bit for every family once the SDK decodes with numpy and libm's exp. ``make apps-check``
runs the same check on all 150 images and every registered detector; BlazeFace (the family with
a compiled kernel of its own in the SDK) is checked here on all 150 as well.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import apps_check  # targets/checks/ (pytest pythonpath)
import numpy as np
import pytest

from anyedge.cli import main as cli_main
from anyedge.engines.base import TensorSpec, dequantize_output
from anyedge.ops.anchors import grid_centers, retinaface_priors, ssd_anchors
from anyedge.ops.image import letterbox, to_tensor
from anyedge.ops.nms import nms, weighted_nms
from anyedge.registry import get_model_info

from .conftest import SMOKE, WIDER

# one model per family (yunet-n-320 is the fast YuNet; UltraFace rides along)
MODELS = ["blazeface-short", "scrfd-500m", "yunet-n-320", "retinaface-mnet025", "ultraface-rfb320"]
N_WIDER = 6


def _chains():
    chains = [pytest.param("host", id="host")]
    arm = apps_check.aarch64_toolchain()
    # CI installs the toolchain (.ci/run), so there a missing toolchain fails instead of skipping.
    chains.append(pytest.param("aarch64", id="aarch64-qemu", marks=pytest.mark.skipif(
        arm is None and not os.environ.get("CI"),
        reason="aarch64-linux-gnu-gcc / qemu-aarch64 not installed (apt-get install gcc-aarch64-linux-gnu qemu-user)")))
    return chains


def _toolchain(name: str) -> apps_check.Toolchain:
    chain = apps_check.host_toolchain() if name == "host" else apps_check.aarch64_toolchain()
    assert chain is not None, f"no {name} C toolchain (CI installs gcc-aarch64-linux-gnu and qemu-user)"
    return chain


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Every family exported once through the CLI."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for m in MODELS:
        assert cli_main(["export-c", m, "--out", str(root / m)]) == 0
        out[m] = root / m
    return out


@pytest.fixture(scope="session")
def harness(exports, tmp_path_factory):
    """Compiled harnesses, built once per (model, toolchain) and shared by the tests."""
    built: dict[tuple[str, str], Path] = {}
    work = tmp_path_factory.mktemp("harness")

    def get(model: str, chain: str) -> tuple[Path, apps_check.Toolchain]:
        t = _toolchain(chain)
        if (model, chain) not in built:
            ident = model.replace("-", "_")
            built[(model, chain)] = apps_check.build_harness(exports[model], ident, t, work)
        return built[(model, chain)], t

    return get


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> list[Path]:
    """A few crowded WIDER images, two smoke photos and a blank frame (no face)."""
    import cv2

    blank = tmp_path_factory.mktemp("blank") / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 500, 3), 128, np.uint8))
    return sorted(WIDER.glob("*.jpg"))[:N_WIDER] + [SMOKE / "astronaut.png", SMOKE / "couple.jpg", blank]


@pytest.fixture(scope="session")
def frames(exports, images, tmp_path_factory):
    """The SDK run once per model on ``images``: raw outputs on disk, its faces in memory."""
    from anyedge.apps.export_c import slot_names

    done: dict[str, apps_check.Frames] = {}
    work = tmp_path_factory.mktemp("frames")

    def get(model: str) -> apps_check.Frames:
        if model not in done:
            info = get_model_info(model)
            done[model] = apps_check.capture(model, images, work / f"{model}.bin",
                                         slots=slot_names(info.family, info.decoder))
        return done[model]

    return get


# -- the library against the SDK -------------------------------------------------------------
@pytest.mark.parametrize("chain", _chains())
@pytest.mark.parametrize("model", MODELS)
def test_c_faces_equal_the_sdk(model, chain, harness, frames):
    exe, t = harness(model, chain)
    fr = frames(model)
    res = apps_check.run_detect(exe, fr, t)
    st = apps_check.compare(fr, res, t.name)
    assert st.bad_rc == 0 and st.count_mismatches == 0, st.to_dict()
    assert st.faces > 0, "no faces at all: the comparison proves nothing"
    assert len(fr.faces[-1]) == 0 and len(res[-1].scores) == 0, "the blank frame has a face"
    # exp is the only difference: with the SDK decoding through libm's exp every face is bit-identical
    assert st.identical_libm_exp == st.images, st.to_dict()
    if st.family in apps_check.EXACT_FAMILIES:
        assert st.exact, st.to_dict()
    assert st.max_coord_diff <= apps_check.COORD_TOL and st.max_score_diff <= apps_check.SCORE_TOL, st.to_dict()


@pytest.mark.parametrize("model", ["blazeface-short", "blazeface-full"])
def test_blazeface_is_bit_identical_on_every_wider_image(model, tmp_path):
    # The SDK decodes BlazeFace in its own compiled kernel (anyedge.ops._decode) and in numpy;
    # both must be the C library's faces bit for bit on every image, not only on the few above
    # (a different exp or summation order shows on a handful of the 150 only).
    images = sorted(WIDER.glob("*.jpg"))
    assert len(images) == 150
    chains = apps_check.toolchains(require_aarch64=bool(os.environ.get("CI")))
    for st in apps_check.check_model(model, images, chains, tmp_path):
        assert st.bad_rc == 0 and st.count_mismatches == 0 and st.faces > 50, st.to_dict()
        assert st.identical_libm_exp == st.images, st.to_dict()  # numpy decoder = C
        assert st.identical_images == st.images and st.exact, st.to_dict()  # compiled kernel = C


@pytest.mark.parametrize("model", ["blazeface-short", "scrfd-500m"])
def test_max_faces_keeps_the_best(model, harness, frames):
    exe, t = harness(model, "host")
    fr = frames(model)
    res = apps_check.run_detect(exe, fr, t, max_faces=1)
    for py, c in zip(fr.faces_libm_exp, res):
        assert len(c.scores) == min(1, len(py))
        if len(py):
            np.testing.assert_array_equal(c.boxes[0], py.boxes[0])


def test_wrong_output_size_is_refused(harness, frames, tmp_path):
    exe, t = harness("scrfd-500m", "host")
    fr = frames("scrfd-500m")
    data = bytearray(fr.path.read_bytes())
    # first frame, first slot: claim one float fewer than score_8 holds
    off = 12 + 8
    (count,) = struct.unpack_from("<I", data, off)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"AEPF" + struct.pack("<II", 1, 9) + bytes(data[12:20]) + struct.pack("<I", count - 1)
                    + bytes(data[off + 4: off + 4 + 4 * (count - 1)]) + bytes(data[off + 4 + 4 * count:]))
    one = apps_check.Frames(fr.model, fr.family, bad, images=fr.images[:1], faces=fr.faces[:1], keypoints=5)
    (res,) = apps_check.run_detect(exe, one, t)
    assert res.rc == -2 and len(res.scores) == 0  # AEPOST_ERR_SHAPE


def _candidates(case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(case))
    if case == "empty":
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
    if case == "ties":  # a coarse grid of boxes, five score levels: many equal scores and overlaps
        xy = rng.integers(0, 12, (400, 2)) * 8.0
        wh = rng.integers(2, 6, (400, 2)) * 8.0
        scores = rng.choice([0.5, 0.625, 0.75, 0.875, 1.0], 400)
    else:  # "cluster": 300 jittered copies of one face (> 128 members) plus scattered others
        xy = np.concatenate([100 + rng.normal(0, 1.5, (300, 2)), rng.uniform(0, 500, (60, 2))])
        wh = np.concatenate([60 + rng.normal(0, 2, (300, 2)), rng.uniform(10, 80, (60, 2))])
        scores = rng.uniform(0.5, 1.0, 360)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    kps = (xy[:, None, :] + rng.uniform(0, 1, (len(xy), 6, 2)) * wh[:, None, :]).astype(np.float32)
    return boxes, scores.astype(np.float32), kps


def _write_candidates(path: Path, boxes, scores, kps) -> None:
    k16 = np.zeros((len(boxes), 16), np.float32)
    k16[:, : kps.shape[1] * 2] = kps.reshape(len(boxes), kps.shape[1] * 2)
    rows = np.concatenate([boxes, scores[:, None], k16], axis=1).astype("<f4")
    path.write_bytes(struct.pack("<I", len(boxes)) + rows.tobytes())


@pytest.mark.parametrize("chain", _chains())
@pytest.mark.parametrize("case", ["empty", "ties", "cluster"])
@pytest.mark.parametrize("iou, max_faces", [(0.3, 0), (0.5, 3), (0.0, 0)])
def test_suppression_equals_python(case, iou, max_faces, chain, harness, tmp_path):
    exe, t = harness("scrfd-500m", chain)
    boxes, scores, kps = _candidates(case)
    _write_candidates(tmp_path / "c.bin", boxes, scores, kps)
    run = lambda *a: subprocess.run([*t.runner, str(exe), *a], capture_output=True, text=True,  # noqa: E731
                                    check=True).stdout.split()
    got = run("nms", str(tmp_path / "c.bin"), repr(iou), str(max_faces))
    assert got[0] == "0"
    ref = nms(boxes, scores, iou, max_faces or None)
    assert [int(v) for v in got[1:]] == ref.tolist()
    got = run("wnms", str(tmp_path / "c.bin"), repr(iou), str(max_faces), "6")
    assert got[0] == "0"
    rb, rs, rk = weighted_nms(boxes, scores, kps, iou, max_faces or None)
    assert int(got[1]) == len(rs)
    v = np.array([int(x, 16) for x in got[2:]], np.uint32).reshape(len(rs), 17)
    np.testing.assert_array_equal(v[:, :4], rb.view(np.uint32))
    np.testing.assert_array_equal(v[:, 4], rs.view(np.uint32))
    np.testing.assert_array_equal(v[:, 5:], rk.reshape(len(rs), 12).view(np.uint32))
    if case != "empty" and max_faces == 0:
        assert len(ref) > 1 and len(rs) > 1


def test_weighted_suppression_ends_on_a_zero_area_box(harness, tmp_path):
    # Python's weighted_nms never drops a best box with no area (its IoU with itself is 0); C does
    exe, t = harness("blazeface-short", "host")
    boxes = np.array([[10, 10, 10, 30], [0, 0, 20, 20], [1, 1, 21, 21]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    _write_candidates(tmp_path / "c.bin", boxes, scores, np.zeros((3, 6, 2), np.float32))
    out = subprocess.run([*t.runner, str(exe), "wnms", str(tmp_path / "c.bin"), "0.3", "0", "6"], capture_output=True,
                         text=True, check=True, timeout=30).stdout.split()
    assert out[:2] == ["0", "2"]  # the zero-area box alone, then the cluster of the other two


@pytest.mark.parametrize("chain", _chains())
@pytest.mark.parametrize("model", MODELS)
def test_anchors_equal_python(model, chain, harness):
    exe, t = harness(model, chain)
    out = subprocess.run([*t.runner, str(exe), "anchors"], capture_output=True, text=True, check=True).stdout.split()
    n, fpa = int(out[0]), int(out[1])
    got = np.array([int(v, 16) for v in out[2:]], np.uint32).view(np.float32)
    info = get_model_info(model)
    cfg, (w, h) = info.decoder, info.input.size
    if info.family == "blazeface":
        ref = ssd_anchors((w, h), cfg["strides"], cfg["min_scale"], cfg["max_scale"],
                          cfg["interpolated_scale_aspect_ratio"])
    elif info.family == "retinaface":
        ref = retinaface_priors((w, h), cfg["min_sizes"], cfg["strides"])
    elif info.family in ("scrfd", "yunet"):
        per = cfg.get("anchors_per_cell", 2) if info.family == "scrfd" else 1
        ref = np.concatenate([grid_centers(-(-h // s), -(-w // s), s, per) for s in cfg["strides"]])
    else:
        assert (n, fpa, got.size) == (4420, 0, 0)
        return
    assert (n, fpa) == ref.shape
    np.testing.assert_array_equal(got.view(np.uint32), ref.astype(np.float32).ravel().view(np.uint32))


@pytest.mark.parametrize("chain", _chains())
@pytest.mark.parametrize("model", ["scrfd-500m", "ultraface-rfb320"])  # letterbox and stretch
def test_letterbox_params_equal_python(model, chain, harness):
    exe, t = harness(model, chain)
    size = get_model_info(model).input.size
    mode = get_model_info(model).input.resize
    for w, h in [(1, 1), (416, 416), (1920, 1080), (1080, 1920), (3, 1000), (1000, 3), (641, 479), (640, 640),
                 (333, 500), (257, 255)]:
        _, lb = letterbox(np.zeros((h, w, 3), np.uint8), size, mode)
        out = subprocess.run([*t.runner, str(exe), "letterbox", str(w), str(h)], capture_output=True, text=True,
                             check=True).stdout.split()
        assert (int(out[0]), int(out[1])) == (round(lb.scale_x * w), round(lb.scale_y * h))
        sx, sy = (struct.unpack("<d", bytes.fromhex(v)[::-1])[0] for v in out[2:4])
        assert (sx, sy) == (lb.scale_x, lb.scale_y), (w, h)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("source", ["RGB", "BGR"])
def test_normalize_equals_to_tensor(model, source, harness, tmp_path):
    exe, t = harness(model, "host")
    spec = get_model_info(model).input
    w, h = spec.size
    canvas = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    (tmp_path / "img.bin").write_bytes(canvas.tobytes())
    out = subprocess.run([*t.runner, str(exe), "normalize", str(tmp_path / "img.bin"), "0" if source == "RGB" else "1",
                          str(tmp_path / "t.bin")], capture_output=True, text=True, check=True)
    assert out.returncode == 0
    ref = to_tensor(canvas, layout=spec.layout, channels=spec.channels, source_channels=source, mean=spec.mean,
                    std=spec.std)
    got = np.frombuffer((tmp_path / "t.bin").read_bytes(), np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), ref.ravel().view(np.uint32))


@pytest.mark.parametrize("kind, scale, zero", [("int8", 0.0123, -7), ("uint8", 0.5, 128), ("int8", 1 / 3, 0)])
def test_dequantize_equals_the_engines(kind, scale, zero, harness):
    exe, t = harness("scrfd-500m", "host")
    out = subprocess.run([*t.runner, str(exe), "dequantize", kind, repr(scale), str(zero)], capture_output=True,
                         text=True, check=True).stdout.split()
    got = np.array([int(v, 16) for v in out], np.uint32)
    info = np.iinfo(kind)
    q = np.arange(info.min, info.max + 1).astype(kind)
    ref = dequantize_output(TensorSpec("y", (256,), kind, (scale, zero)), q)
    np.testing.assert_array_equal(got, ref.view(np.uint32))


# -- export-c ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_export_c_writes_a_complete_folder(model, exports):
    out = exports[model]
    info = get_model_info(model)
    ident = model.replace("-", "_")
    names = {p.name for p in out.iterdir()}
    assert {info.filename, "anyedge_post.c", "anyedge_post.h", f"{ident}.h"} <= names
    assert (out / info.filename).read_bytes() == (Path(os.environ["ANYEDGE_MODEL_PATH"]) / info.family
                                                  / info.filename).read_bytes()
    header = (out / f"{ident}.h").read_text()
    w, h = info.input.size
    U = ident.upper()
    assert f"#define {U}_INPUT_W {w}\n" in header and f"#define {U}_INPUT_H {h}\n" in header
    assert f'#define {U}_INPUT_LAYOUT "{info.input.layout}"' in header
    assert f'#define {U}_INPUT_CHANNELS "{info.input.channels}"' in header
    assert f"{_d(info.decoder['score_threshold'])}, {_d(info.decoder['iou_threshold'])}," in header
    assert f"#define {U}_NUM_KEYPOINTS {info.decoder['keypoints']}\n" in header


def _d(v: float) -> str:
    return repr(float(v))


def test_export_c_json_and_dynamic_input_size(tmp_path, capsys):
    assert cli_main(["export-c", "scrfd-500m", "--out", str(tmp_path / "e"), "--input-size", "320x256",
                     "--name", "det", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"] == [320, 256] and info["ident"] == "det"
    assert info["slots"][:3] == ["score_8", "bbox_8", "kps_8"]
    header = (tmp_path / "e" / "det.h").read_text()
    # 40 x 32 cells x 2 anchors at stride 8, and so on
    assert "#define DET_MAX_CANDIDATES 3360\n" in header
    assert "{2560, 10240, 25600, 640, 2560, 6400, 160, 640, 1600}" in header


@pytest.mark.parametrize("args, message", [
    (["scrfd-500m", "--input-size", "300x300"], "multiples of 32"),
    (["yunet", "--input-size", "320x320"], "static input"),
    (["scrfd-500m", "--name", "2bad"], "C identifier"),
    (["bnn-racketsports"], "activity_classification"),
    (["no-such-model"], "not a registered model"),
])
def test_export_c_refusals(args, message, tmp_path, capsys):
    rc = cli_main(["export-c", *args, "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and message in err[-1] and err[-1].startswith("anyedge: error:")
    assert not (tmp_path / "e").exists()


def test_export_c_bare_file_needs_a_family(tmp_path, capsys):
    src = Path(os.environ["ANYEDGE_MODEL_PATH"]) / "yunet" / "yunet_n_320_320.onnx"
    assert cli_main(["export-c", str(src), "--out", str(tmp_path / "e")]) == 2
    assert "family" in capsys.readouterr().err
    assert cli_main(["export-c", str(src), "--family", "yunet", "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "yunet_n_320_320.h").is_file()


def test_export_c_refuses_a_foreign_folder_and_replaces_its_own(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert cli_main(["export-c", "yunet-n-320", "--out", str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "e"
    assert cli_main(["export-c", "yunet-n-320", "--out", str(out)]) == 0
    assert cli_main(["export-c", "ultraface-rfb320", "--out", str(out)]) == 0
    assert not (out / "yunet_n_320.h").exists() and (out / "ultraface_rfb320.h").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "mine"]  # no temp folders left


# -- a converted bundle ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def converted_bundle(tmp_path_factory, faces_calib) -> Path:
    from anyedge.converters.api import convert

    out = tmp_path_factory.mktemp("bundle") / "blazeface-gpu"
    convert("blazeface-short", target="mobile-gpu", out=out, calibration=faces_calib, show_progress=False)
    return out


def test_export_c_of_a_converted_bundle_matches_the_sdk(converted_bundle, images, tmp_path, capsys):
    assert cli_main(["export-c", str(converted_bundle), "--out", str(tmp_path / "e"), "--name", "gpu",
                     "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    manifest = json.loads((converted_bundle / "manifest.json").read_text())
    assert manifest["model_file"] in info["files"] and "manifest.json" in info["files"]
    assert (tmp_path / "e" / "manifest.json").read_bytes() == (converted_bundle / "manifest.json").read_bytes()
    header = (tmp_path / "e" / "gpu.h").read_text()
    assert "target=mobile-gpu" in header and f"manifest_sha256={manifest['manifest_sha256']}" in header
    exe = apps_check.build_harness(tmp_path / "e", "gpu", _toolchain("host"), tmp_path)
    fr = apps_check.capture(converted_bundle, images[:4], tmp_path / "f.bin", slots=info["slots"])
    st = apps_check.compare(fr, apps_check.run_detect(exe, fr, _toolchain("host")), "host")
    assert st.faces > 0 and st.identical_libm_exp == st.images and st.ok, st.to_dict()


def test_export_c_refuses_a_tampered_bundle(converted_bundle, tmp_path, capsys):
    b = tmp_path / "b"
    shutil.copytree(converted_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["decoder"]["score_threshold"] = 0.01
    (b / "manifest.json").write_text(json.dumps(m))
    assert cli_main(["export-c", str(b), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("anyedge: error:") and "manifest" in err[-1]
    assert not (tmp_path / "e").exists()

    b2 = tmp_path / "b2"
    shutil.copytree(converted_bundle, b2)
    model = b2 / m["model_file"]
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    assert cli_main(["export-c", str(b2), "--out", str(tmp_path / "e")]) == 2
    assert "sha256" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_apps_check_entry_point(capsys):
    """What ``make apps-check`` runs (there on all 150 images and every detector), here on two images of
    the detectors the tests above leave out (CI: aarch64 required)."""
    rest = [m for m in apps_check.MODELS if m not in MODELS]
    assert rest == ["blazeface-full", "yunet"]
    args = ["--limit", "2", "--models", ",".join(rest)] + (["--require-aarch64"] if os.environ.get("CI") else [])
    rc = apps_check.main(args)
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [line.split() for line in out.splitlines()[1:]]
    assert {r[0] for r in rows} == set(rest)
    assert all(r[-1] in ("bit-identical", "rounding") for r in rows), out
    if apps_check.aarch64_toolchain() is not None:
        assert {r[2] for r in rows} == {"host", "aarch64"}
