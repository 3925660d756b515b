"""Bit-exactness of the BNN arithmetic: numpy reference == Cython kernels == C (host) == C (riscv64, qemu).

Also the batch-norm folding and the packed .bnn file format.
"""

from __future__ import annotations

import os

import re
import struct
import zlib
from dataclasses import replace

import bnn_check  # targets/checks/ (pytest pythonpath)
import numpy as np
import pytest

from anyedge.bundle import load_bundle
from anyedge.converters.bnn import BatchNorm, c_header, fold_batchnorm
from anyedge.errors import ConversionError, ModelLoadError
from anyedge.har import load_ts
from anyedge.registry import packaged_bundle
from anyedge.targets.bnn import kernels, reference
from anyedge.targets.bnn.format import BnnModel, parse_bnn, read_bnn, serialize_bnn

from .har_support import extreme_windows, har_file, random_model

SHIPPED = [("bnn-racketsports", "RacketSports"), ("bnn-basicmotions", "BasicMotions")]

RANDOM_SHAPES = [
    dict(),
    dict(window=37, channels=5, f1=40, k1=4, pool1=3, f2=33, k2=2, pool2=1, hidden=70),
    dict(window=100, channels=6, f1=64, k1=3, pool1=4, f2=96, k2=3, pool2=2, classes=7),
    dict(window=9, channels=1, f1=3, k1=1, pool1=1, f2=31, k2=9, pool2=1, classes=2),
    dict(window=20, channels=3, f1=65, k1=2, pool1=2, f2=32, k2=5, pool2=3, hidden=129, classes=3),
]


def _shipped(name: str) -> BnnModel:
    return read_bnn(load_bundle(packaged_bundle(name)).model_path)


def _test_windows(dataset: str, model: BnnModel) -> np.ndarray:
    return np.concatenate([load_ts(har_file(dataset, "test")).x, extreme_windows(model, 40, seed=7)])


@pytest.mark.parametrize("shape", RANDOM_SHAPES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_cython_equals_reference_random_models(shape):
    varied = 0
    for seed in range(3):
        model = random_model(seed, **shape)
        x = extreme_windows(model, 64, seed=seed + 100)
        ref_scores, ref_acts = reference.forward(model, x, activations=True)
        cy_scores, cy_acts = kernels.forward(model, x, activations=True)
        assert len(ref_acts) == len(cy_acts) == len(model.layers)
        for i, (a, b) in enumerate(zip(ref_acts, cy_acts)):
            np.testing.assert_array_equal(a, b, err_msg=f"layer {i} output")
        np.testing.assert_array_equal(ref_scores, cy_scores)
        varied += len({tuple(r) for r in ref_scores.tolist()}) > 1
    assert varied >= 2, "random models are degenerate: every window gets the same scores"


@pytest.mark.parametrize("name, dataset", SHIPPED)
def test_cython_equals_reference_shipped(name, dataset):
    model = _shipped(name)
    x = _test_windows(dataset, model)
    ref_scores, ref_acts = reference.forward(model, x, activations=True)
    cy_scores, cy_acts = kernels.forward(model, x, activations=True)
    for a, b in zip(ref_acts, cy_acts):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref_scores, cy_scores)


def _toolchains():
    chains = [pytest.param(bnn_check.host_toolchain(), id="host")]
    rv = bnn_check.riscv_toolchain()
    # CI installs the toolchain (.ci/run), so there a missing toolchain fails instead of skipping.
    chains.append(pytest.param(rv, id="riscv64-qemu", marks=pytest.mark.skipif(
        rv is None and not os.environ.get("CI"), reason="riscv64-linux-gnu-gcc / qemu-riscv64 not installed (apt-get install gcc-riscv64-linux-gnu qemu-user)")))
    a64 = bnn_check.aarch64_toolchain()
    chains.append(pytest.param(a64, id="aarch64-qemu", marks=pytest.mark.skipif(
        a64 is None and not os.environ.get("CI"), reason="aarch64-linux-gnu-gcc / qemu-aarch64 not installed (apt-get install gcc-aarch64-linux-gnu qemu-user)")))
    return chains


@pytest.mark.parametrize("toolchain", _toolchains())
@pytest.mark.parametrize("name, dataset", SHIPPED)
def test_c_equals_reference_shipped(tmp_path, toolchain, name, dataset):
    assert toolchain is not None, "no host C compiler"
    model = _shipped(name)
    x = _test_windows(dataset, model)
    exe = bnn_check.build_harness(model, tmp_path, toolchain, name=name)
    res = bnn_check.run_harness(exe, x, toolchain, n_classes=model.n_classes)
    assert (res.rc == 0).all()
    q = reference.quantize(x, model.offset, model.inv_scale)
    np.testing.assert_array_equal(res.qhash, [bnn_check.fnv1a(qi) for qi in q])
    ref = reference.forward(model, x)
    np.testing.assert_array_equal(res.scores, ref)
    np.testing.assert_array_equal(res.argmax, np.argmax(ref, axis=1))
    np.testing.assert_array_equal(res.scores, kernels.forward(model, x))


@pytest.mark.parametrize("toolchain", _toolchains())
def test_c_equals_reference_random_models(tmp_path, toolchain):
    assert toolchain is not None, "no host C compiler"
    for i, shape in enumerate(RANDOM_SHAPES[1:3]):
        model = random_model(11 + i, **shape)
        x = extreme_windows(model, 48, seed=i)
        exe = bnn_check.build_harness(model, tmp_path / str(i), toolchain, name=f"random-{i}")
        res = bnn_check.run_harness(exe, x, toolchain, n_classes=model.n_classes)
        np.testing.assert_array_equal(res.scores, reference.forward(model, x))


def test_c_reports_nonfinite_samples(tmp_path):
    model = random_model(3)
    x = extreme_windows(model, 4, seed=1)
    x[1, 5, 2] = np.nan
    x[2, 0, 0] = np.inf
    chain = bnn_check.host_toolchain()
    res = bnn_check.run_harness(bnn_check.build_harness(model, tmp_path, chain), x, chain, n_classes=model.n_classes)
    assert res.rc.tolist() == [0, -3, -3, 0]


def test_c_library_is_integer_only_and_malloc_free():
    src = (bnn_check.C_DIR / "anyedge_bnn.c").read_text()
    assert "malloc" not in src and "free(" not in src
    for fn in ("conv_q8", "conv_bin", "out_bin", "aebnn_run_quantized"):
        body = re.search(rf"^(static )?\w[\w ]* \*?{fn}\(.*?^}}", src, re.S | re.M)
        assert body is not None, fn
        assert "float" not in body.group(0), f"{fn} uses float"


def test_c_header_is_exact():
    model = random_model(5)
    h = c_header(model, name="bnn-test", labels=["a", "b", "c", 'd"q'])
    assert "aebnn_model_bnn_test" in h and "AEBNN_BNN_TEST_ARENA_WORDS" in h
    assert '"d\\"q"' in h
    # offsets are hexadecimal float literals: parse them back to the same float32
    offs = re.search(r"aebnn_bnn_test_offset\[\d+\] = \{(.*?)\};", h, re.S).group(1)
    vals = [np.float32(float.fromhex(v.strip().rstrip("f"))) for v in offs.replace("\n", "").split(",")]
    np.testing.assert_array_equal(vals, model.offset)


def test_popcount_kind():
    assert "popcount" in kernels.popcount_kind()


# -- batch-norm folding -----------------------------------------------------------------------


def test_fold_batchnorm_matches_float_sign_everywhere():
    rng = np.random.default_rng(0)
    n = 64
    gamma = rng.normal(size=n)
    gamma[::7] = 0.0
    gamma[1::5] *= -1
    bn = BatchNorm(gamma, rng.normal(size=n) * 3, rng.normal(size=n) * 40, rng.random(n) * 500 + 0.1, 1e-5)
    thr, flip = fold_batchnorm(bn)
    assert (flip[gamma < 0] == 1).all() and (flip[gamma > 0] == 0).all()
    acc = np.arange(-600, 601)[:, None]
    y = gamma / np.sqrt(bn.var + bn.eps) * (acc - bn.mean) + bn.beta
    want = y >= 0
    got = (acc >= thr) ^ flip.astype(bool)
    assert (got == want).all()
    assert want.any(axis=0).any() and (~want).any()


def test_fold_batchnorm_rejects_bad_arrays():
    with pytest.raises(ConversionError):
        fold_batchnorm(BatchNorm(np.ones(3), np.ones(2), np.ones(3), np.ones(3)))
    with pytest.raises(ConversionError):
        fold_batchnorm(BatchNorm(np.ones(3), np.ones(3), np.ones(3), -np.ones(3)))
    with pytest.raises(ConversionError):
        fold_batchnorm(BatchNorm(np.array([np.nan, 1, 1]), np.ones(3), np.ones(3), np.ones(3)))


# -- the .bnn file ----------------------------------------------------------------------------


def test_bnn_roundtrip():
    model = random_model(2, hidden=40)
    back = parse_bnn(serialize_bnn(model))
    assert back.window == model.window and len(back.layers) == len(model.layers)
    x = extreme_windows(model, 16, seed=3)
    np.testing.assert_array_equal(reference.forward(back, x), reference.forward(model, x))


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda b: b"", "too short"),
        (lambda b: b[:20], "crc32|truncated|short"),
        (lambda b: b[:-1], "crc32"),
        (lambda b: b[:100] + bytes([b[100] ^ 0x10]) + b[101:], "corrupted"),
        (lambda b: b"XXXXX" + b[5:], "not a .bnn"),
        (lambda b: _with_crc(b[:5] + b"\x00\x09\x00" + b[8:-4]), "version"),
        (lambda b: _with_crc(b[:-40]), "truncated|unexpected"),
        (lambda b: _with_crc(b[:-4] + b"\x00" * 8), "unexpected bytes"),
        (lambda b: _with_crc(b[:8] + struct.pack("<I", 31) + b[12:-4]), "conv_q8 over|expects|truncated"),
        (lambda b: _with_crc(b[:8] + struct.pack("<I", 0) + b[12:-4]), "window must be"),
    ],
    ids=["empty", "cut-header", "cut-crc", "bitflip", "magic", "version", "short-body", "trailing", "window", "zero-window"],
)
def test_corrupted_bnn_is_rejected(mutate, needle):
    blob = serialize_bnn(random_model(4))
    with pytest.raises(ModelLoadError, match=needle):
        parse_bnn(mutate(blob))


def test_padding_bits_and_layer_mismatch_are_rejected():
    model = random_model(4, channels=5)  # conv_q8 rows of 25 bits leave padding
    blob = bytearray(serialize_bnn(model)[:-4])
    header = 8 + 16 + 2 * 4 * model.channels
    w0 = header + 32  # first weight word of layer 0
    blob[w0 + 3] |= 0x80  # bit 31: a padding bit
    with pytest.raises(ModelLoadError, match="padding"):
        parse_bnn(_with_crc(bytes(blob)))
    with pytest.raises(ModelLoadError, match="expects"):
        BnnModel(model.window, model.channels, model.offset, model.inv_scale,
                 (model.layers[0], replace(model.layers[1], in_len=model.layers[1].in_len + 1)) + model.layers[2:])


def test_read_bnn_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        read_bnn(tmp_path / "nope.bnn")
