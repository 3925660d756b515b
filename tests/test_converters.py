"""convert -> bundle -> load -> detect, for every conversion path, and the ways it must refuse."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anyedge import FaceDetector
from anyedge.bundle import load_bundle
from anyedge.converters import convert
from anyedge.errors import (
    BundleError,
    CalibrationError,
    FidelityError,
    IntegrityError,
    UnsupportedTargetError,
)
from anyedge.targets import TARGETS, get_target

from .conftest import WIDER


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 real WIDER images: 20 calibrate, 10 are held back for the fidelity check."""
    d = tmp_path_factory.mktemp("calib")
    for f in sorted(WIDER.glob("*.jpg"))[::5]:
        shutil.copy(f, d / f.name)
    return d


def _calib_for(model: str, calib_dir: Path, faces_calib: Path) -> Path:
    return faces_calib if model.startswith("blazeface") else calib_dir


PATHS = [
    # model, target, precision, engine, achieved precisions accepted
    ("yunet", "arm-cpu", None, "onnxruntime", {"int8", "int8-mixed"}),
    ("scrfd-500m", "intel-npu", None, "openvino", {"int8", "int8-mixed"}),
    ("blazeface-short", "mobile-gpu", None, "litert", {"fp16"}),
    ("blazeface-short", "arm-cpu", "int8w", "litert", {"int8w"}),
    ("scrfd-500m", "jetson", None, "onnxruntime", {"fp16"}),
    ("yunet", "mobile-gpu", None, "onnxruntime", {"fp16"}),
    ("blazeface-short", "intel-cpu", "fp16", "openvino", {"fp16"}),
]


@pytest.mark.parametrize(("model", "target", "precision", "engine", "accepted"), PATHS,
                         ids=[f"{m}-{t}-{p or 'default'}" for m, t, p, *_ in PATHS])
def test_round_trip(model, target, precision, engine, accepted, calib_dir, faces_calib, smoke, tmp_path) -> None:
    from anyedge.converters.calibration import list_images, split_images

    out = tmp_path / "bundle"
    folder = _calib_for(model, calib_dir, faces_calib)
    res = convert(model, target=target, out=out, calibration=folder, precision=precision, show_progress=False)
    m = res.bundle.manifest
    assert m["target"] == target and m["engine"] == engine and m["precision"] in accepted
    assert m["fidelity"]["passed"] and m["fidelity"]["chosen"]["fidelity"]["f1"] >= 0.95
    calib, held = split_images(list_images(folder))
    assert m["calibration"]["images"] == len(calib) and m["calibration"]["held_back"] == len(held)
    assert m["precision"] == det_precision(out)
    assert m["source"]["sha256"] and m["bytes"] > 0 and set(m["files"]) >= {m["model_file"]}
    sp = m["speed_here"]
    assert sp["float_engine_ms"] > 0 and sp["engine_ms"] > 0 and sp["ratio"] == pytest.approx(
        sp["engine_ms"] / sp["float_engine_ms"], rel=0.01)
    assert sp["task_ratio"] == pytest.approx(sp["task_ms"] / sp["float_task_ms"], rel=0.01)
    assert load_bundle(out).manifest == m
    with FaceDetector.create(out) as det:
        assert det.engine.name == engine
        assert len(det.detect(smoke["astronaut.png"])) == 1
        assert len(det.detect(smoke["couple.jpg"])) == 2
    if target in ("intel-npu", "jetson", "arm-cpu") and engine != "litert":
        assert -1 not in det.engine.inputs[0].shape  # static shape
    if target == "intel-npu":  # built for the NPU, runs on the CPU where there is none
        import openvino as ov

        assert m["device"] == "NPU"
        assert det.engine.device == ("NPU" if "NPU" in ov.Core().available_devices else "CPU")


def test_host_target_with_only_float_candidates_says_float_wins(calib_dir, smoke, tmp_path) -> None:
    """From fp32 only the float model on each engine is a candidate: the fastest engine wins, and the note says so."""
    res = convert("yunet", target="host", out=tmp_path / "b", calibration=calib_dir, precision="fp32",
                  show_progress=False)
    m = res.bundle.manifest
    table = m["host"]["table"]
    assert {r["engine"] for r in table} == {"onnxruntime", "openvino"} and {r["precision"] for r in table} == {"fp32"}
    fastest = min(table, key=lambda r: r["speed"]["task_ms"])
    assert table[m["host"]["chosen"]] == fastest and m["engine"] == fastest["engine"] and m["target"] == "host"
    assert "no converted candidate beat the float model" in m["host"]["note"]
    with FaceDetector.create(tmp_path / "b") as det:
        assert len(det.detect(smoke["couple.jpg"])) == 2


def test_zip_bundle_round_trip_and_inspect(calib_dir, smoke, tmp_path) -> None:
    import subprocess
    import sys

    out = tmp_path / "yunet-npu.zip"
    convert("yunet", target="intel-npu", out=out, calibration=calib_dir, precision="fp16", show_progress=False)
    assert zipfile.is_zipfile(out)
    with FaceDetector.create(out) as det:
        assert len(det.detect(smoke["astronaut.png"])) == 1
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "inspect", str(out), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["precision"] == "fp16"
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "inspect", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "runs here  openvino, device CPU, precision fp16" in r.stdout, r.stdout + r.stderr


def test_scrfd_static_320(calib_dir, smoke, tmp_path) -> None:
    res = convert("scrfd-500m", target="intel-cpu", out=tmp_path / "b", calibration=calib_dir, precision="fp16",
                  input_size=(320, 320), show_progress=False)
    assert res.bundle.manifest["input"]["size"] == [320, 320]
    with FaceDetector.create(tmp_path / "b") as det:
        assert det.input_size == (320, 320)
        assert len(det.detect(smoke["astronaut.png"])) == 1


def test_cli_convert_prints_the_fidelity_report(faces_calib, tmp_path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "convert", "blazeface-short", "--target", "mobile-gpu",
                        "--out", str(tmp_path / "b"), "--calib", str(faces_calib)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "PASS litert      fp16" in r.stdout and "F1 1.0000" in r.stdout


def det_precision(bundle: Path) -> str:
    """The precision the engine reports running the bundle at (it reads the model file itself)."""
    with FaceDetector.create(bundle) as det:
        return det.engine.precision


# -- refusals: each a clear error, nothing left at the output path ----------------------------
@pytest.fixture()
def yunet_bundle(calib_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "yunet"
    convert("yunet", target="mobile-gpu", out=out, calibration=calib_dir, show_progress=False)
    return out


def test_tampered_manifest(yunet_bundle: Path) -> None:
    p = yunet_bundle / "manifest.json"
    m = json.loads(p.read_text())
    m["decoder"]["score_threshold"] = 0.01
    p.write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="manifest"):
        FaceDetector.create(yunet_bundle)


def test_tampered_model_file(yunet_bundle: Path) -> None:
    f = yunet_bundle / "model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 3] ^= 0x55
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        FaceDetector.create(yunet_bundle)


def test_missing_member(yunet_bundle: Path) -> None:
    (yunet_bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(yunet_bundle)


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "..\\evil.txt"])
def test_zip_with_escaping_member_is_refused(member: str, tmp_path: Path) -> None:
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr(member, "pwned")
    before = set(tmp_path.parent.rglob("evil.txt"))
    with pytest.raises(BundleError, match="escapes"):
        load_bundle(z)
    assert set(tmp_path.parent.rglob("evil.txt")) == before


def test_manifest_listing_an_escaping_file(yunet_bundle: Path) -> None:
    p = yunet_bundle / "manifest.json"
    m = json.loads(p.read_text())
    m["files"]["../outside.onnx"] = "0" * 64
    from anyedge.bundle import manifest_digest

    m["manifest_sha256"] = manifest_digest(m)  # consistent digest: the member path itself must be refused
    p.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="escapes"):
        load_bundle(yunet_bundle)


def test_missing_calibration_folder(tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(CalibrationError, match="does not exist"):
        convert("yunet", target="arm-cpu", out=out, calibration=tmp_path / "nope")
    assert not out.exists()


def test_empty_calibration_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    out = tmp_path / "b"
    with pytest.raises(CalibrationError, match="no images"):
        convert("yunet", target="arm-cpu", out=out, calibration=tmp_path / "empty")
    assert not out.exists()


@pytest.mark.parametrize("out", ["new/deeper/b.zip", "new/deeper/b"])
@pytest.mark.parametrize("via", ["api", "cli"])
def test_failed_convert_leaves_no_folder_behind(out: str, via: str, tmp_path: Path) -> None:
    from anyedge.cli import main

    (tmp_path / "empty").mkdir()
    if via == "api":
        with pytest.raises(CalibrationError, match="no images"):
            convert("yunet", target="arm-cpu", out=tmp_path / out, calibration=tmp_path / "empty")
    else:
        assert main(["convert", "yunet", "--target", "arm-cpu", "--calib", str(tmp_path / "empty"),
                     "--out", str(tmp_path / out)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_unsupported_model_target_pair_names_who_can_take_it(calib_dir, tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(UnsupportedTargetError, match="arm-cpu") as e:
        convert("blazeface-short", target="jetson", out=out, calibration=calib_dir)  # refused before any image is read
    assert ".tflite" in str(e.value)
    with pytest.raises(UnsupportedTargetError, match="int8"):
        convert("yunet", target="mobile-gpu", out=out, calibration=calib_dir, precision="int8")
    with pytest.raises(UnsupportedTargetError, match="unknown target"):
        convert("yunet", target="tpu", out=out, calibration=calib_dir)
    assert not out.exists()


def test_refuses_to_overwrite_a_non_bundle(calib_dir, tmp_path: Path) -> None:
    from anyedge.errors import ConversionError

    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("x")
    with pytest.raises(ConversionError, match="not a bundle"):
        convert("yunet", target="arm-cpu", out=tmp_path / "precious", calibration=calib_dir)
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "x"


def test_target_profiles_are_data() -> None:
    for name, prof in TARGETS.items():
        d = prof.to_dict()
        assert d["name"] == name and d["recipes"]
        for r in d["recipes"].values():
            assert r["engine"] in ("litert", "onnxruntime", "openvino") and r["precisions"]
    assert TARGETS["intel-npu"].recipes[".onnx"].static_shape
    assert TARGETS["intel-npu"].recipes[".onnx"].device == "NPU"
    assert "TensorrtExecutionProvider" in TARGETS["jetson"].recipes[".onnx"].providers
    assert get_target("host").recipes


def test_prepared_tflite_is_the_same_network_with_relus_folded(tmp_path: Path, smoke) -> None:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from anyedge.converters.tflite_tools import SIGNATURE, prepare_tflite
    from anyedge.engines import open_engine
    from anyedge.registry import resolve_model

    src, _ = resolve_model("blazeface-short")
    dst = prepare_tflite(src, tmp_path / "prepared.tflite")
    m = fbu.read_model(str(dst))
    codes = [m.operatorCodes[op.opcodeIndex].builtinCode for op in m.subgraphs[0].operators]
    assert schema.BuiltinOperator.RELU not in codes and schema.BuiltinOperator.DEQUANTIZE not in codes
    assert m.signatureDefs[0].signatureKey.decode() == SIGNATURE
    det = FaceDetector.create("blazeface-short")
    x = det.preprocess(smoke["couple.jpg"])[0].copy()
    a, b = open_engine(src, "litert"), open_engine(dst, "litert")
    out_a = dict(zip([o.name for o in a.outputs], a.run({"input": x})))
    out_b = dict(zip([o.name for o in b.outputs], b.run({"input": x})))
    for name in ("regressors", "classificators"):
        np.testing.assert_allclose(out_a[name], out_b[name], rtol=1e-5, atol=1e-4)


# -- the gate's own honesty -----------------------------------------------------------------------
def _write_images(folder: Path, images) -> Path:
    import cv2

    folder.mkdir()
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return folder


@pytest.mark.parametrize("kind", ["no faces", "too few faces"])
def test_gate_refuses_to_judge_on_too_few_reference_faces(kind: str, smoke, tmp_path: Path) -> None:
    import cv2

    from anyedge.converters.api import MIN_REFERENCE_FACES
    from .conftest import SMOKE

    if kind == "no faces":  # background crops: the float model finds nothing, so F1 would be a vacuous 1.0
        crops = (np.load(SMOKE / "lfw_subset.npy")[100:130] * 255).round().astype(np.uint8)
        images = [cv2.resize(c, (160, 160)) for c in crops]
    else:  # a few real faces, far fewer than the gate needs
        images = [cv2.cvtColor(smoke[n], cv2.COLOR_RGB2BGR) for n in ("astronaut.png", "couple.jpg")] * 3
    folder = _write_images(tmp_path / "calib", images)
    out = tmp_path / "b"
    with pytest.raises(CalibrationError, match=f"at least {MIN_REFERENCE_FACES}"):
        convert("yunet", target="arm-cpu", out=out, calibration=folder, show_progress=False)
    assert not out.exists()


def test_rank_layers_records_failures_and_lets_bugs_through() -> None:
    from anyedge.converters.fidelity import rank_layers
    from anyedge.errors import ConversionError

    def err(name: str) -> float:
        if name == "b":
            raise ConversionError("cannot quantize b alone")
        return {"a": 0.1, "c": 0.3}[name]

    failed: list = []
    ranking = rank_layers(["a", "b", "c"], err, lambda it, **kw: it, failed)
    assert ranking == [("c", 0.3), ("a", 0.1)]
    assert failed == [("b", "ConversionError: cannot quantize b alone")]
    with pytest.raises(KeyError):  # a bug is not a "layer that could not be measured"
        rank_layers(["zzz"], err, lambda it, **kw: it, [])


def test_manifest_records_resolved_settings_only(calib_dir, tmp_path: Path) -> None:
    res = convert("yunet", target="arm-cpu", out=tmp_path / "b", calibration=calib_dir, precision="fp32",
                  show_progress=False)
    q = res.bundle.manifest["quantization"]
    assert isinstance(q["reduce_range"], bool)
    assert not {"scheme", "weights", "format", "tool"} & set(q)
    for prof in TARGETS.values():  # every key a profile carries is one the converter reads
        for r in prof.recipes.values():
            assert set(r.quantization) <= {"per_channel", "reduce_range", "activation", "weight", "keep_io_types",
                                           "preset", "subset_size"}


# -- the remedy loop, forced: a gate plain int8 cannot meet on these images ----------------------
REMEDY = [  # model, target whose first precision is int8, engine
    ("yunet", "arm-cpu", "onnxruntime"),
    ("scrfd-500m", "intel-npu", "openvino"),
    ("blazeface-short", "arm-cpu", "litert"),
]


def _int8_only(target: str, monkeypatch: pytest.MonkeyPatch, suffix: str) -> str:
    from anyedge.targets.base import TargetProfile

    base = TARGETS[target].recipes[suffix]
    only = TargetProfile(f"{target}-int8-only", "test", {suffix: replace(base, precisions=("int8",))})
    monkeypatch.setitem(TARGETS, only.name, only)
    return only.name


@pytest.mark.parametrize(("model", "target", "engine"), REMEDY, ids=[r[2] for r in REMEDY])
def test_forced_remedy_keeps_float_layers(model, target, engine, calib_dir, faces_calib, tmp_path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain int8's own F1 on this machine sets the gate just above it: only the float-layer remedy can pass."""
    from anyedge.registry import resolve_model

    folder = _calib_for(model, calib_dir, faces_calib)
    only = _int8_only(target, monkeypatch, resolve_model(model)[0].suffix)
    monkeypatch.setattr("anyedge.converters.job._MIXED_STEPS", (1, 2, 4, 8, 16, 32, 64, 128, 256))
    plain = convert(model, target=only, out=tmp_path / "plain", calibration=folder, max_drop=0.5,
                    show_progress=False).report["chosen"]
    assert plain["remedy"] == "int8" and plain["float_layer_count"] == 0
    f1 = plain["fidelity"]["f1"]
    if f1 >= 0.999:
        pytest.fail(f"plain int8 of {model} already agrees perfectly (F1 {f1}); pick a harder fixture")
    res = convert(model, target=only, out=tmp_path / "mixed", calibration=folder, max_drop=1.0 - f1 - 1e-3,
                  show_progress=False)
    chosen = res.report["chosen"]
    assert chosen["engine"] == engine and chosen["precision"] == "int8-mixed" and chosen["passed"]
    assert chosen["float_layer_count"] == len(chosen["float_layers"]) >= 1
    assert chosen["fidelity"]["f1"] > f1
    assert res.report["attempts"][0]["remedy"] == "int8" and not res.report["attempts"][0]["passed"]
    assert res.bundle.manifest["float_layers"] == chosen["float_layers"]
    assert det_precision(tmp_path / "mixed") == "int8-mixed"  # the engine sees int8 ops and float layers


def test_every_remedy_failing_writes_nothing(faces_calib, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """int8 only, a gate of F1 >= 1.0: plain int8, the layer ranking and every float-layer step run, all fail."""
    only = _int8_only("arm-cpu", monkeypatch, ".tflite")
    monkeypatch.setattr("anyedge.converters.job._MIXED_STEPS", (1, 2))
    out = tmp_path / "b"
    with pytest.raises(FidelityError, match="nothing was written") as e:
        convert("blazeface-short", target=only, out=out, calibration=faces_calib, max_drop=0.0, show_progress=False)
    assert "litert int8: f1" in str(e.value) and "int8 + 2 float layers" in str(e.value)  # the remedy ran
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


# -- --target host: measured, not guessed -----------------------------------------------------------
def test_host_target_remedies_int8_that_fails_the_gate(faces_calib, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain int8's own F1 sets the gate just above it: the host table holds the remedied int8."""
    from anyedge.converters import host, job

    only = _int8_only("arm-cpu", monkeypatch, ".tflite")
    monkeypatch.setattr(job, "_MIXED_STEPS", (1, 2, 4, 8, 16, 32, 64, 128, 256))
    plain = convert("blazeface-short", target=only, out=tmp_path / "plain", calibration=faces_calib, max_drop=0.5,
                    show_progress=False).report["chosen"]
    assert plain["remedy"] == "int8" and plain["fidelity"]["f1"] < 0.999
    every_engine = host.host_recipes
    monkeypatch.setattr(host, "host_recipes", lambda suffix: {"litert": every_engine(suffix)["litert"]})
    res = convert("blazeface-short", target="host", out=tmp_path / "host", calibration=faces_calib,
                  max_drop=1.0 - plain["fidelity"]["f1"] - 1e-3, show_progress=False)
    attempts = res.report["attempts"]
    assert attempts[0]["remedy"] == "int8" and not attempts[0]["passed"]
    mixed = [r for r in res.bundle.manifest["host"]["table"] if r["precision"] == "int8-mixed"]
    assert len(mixed) == 1 and mixed[0]["float_layers"] >= 1 and mixed[0]["fidelity"]["passed"]
    assert mixed[0]["fidelity"]["f1"] > plain["fidelity"]["f1"]


@pytest.mark.parametrize("model", ["blazeface-short", "scrfd-500m"])
def test_host_target_keeps_the_fastest_passing_candidate(model, calib_dir, faces_calib, tmp_path) -> None:
    res = convert(model, target="host", out=tmp_path / "b", calibration=_calib_for(model, calib_dir, faces_calib),
                  show_progress=False)
    m = res.bundle.manifest
    host = m["host"]
    table = host["table"]
    assert len(table) >= 2 and {r["engine"] for r in table} >= {"openvino"}
    passing = [r for r in table if r["fidelity"]["passed"]]
    assert passing == table  # only candidates that passed the gate are timed
    fastest = min(passing, key=lambda r: r["speed"]["task_ms"])
    assert table[host["chosen"]] is not None and table[host["chosen"]] == fastest
    assert (m["engine"], m["precision"]) == (fastest["engine"], fastest["precision"])
    assert ("float" in host["note"]) == (fastest["precision"] == "fp32")
    assert any(r["precision"] == "fp32" for r in table)  # the float model is always a candidate
    with FaceDetector.create(tmp_path / "b") as det:
        assert det.engine.name == m["engine"] and det.engine.precision == m["precision"]


def test_inspect_json_is_pure_json_and_the_summary_prints_no_dict_repr(yunet_bundle: Path) -> None:
    import subprocess
    import sys

    from anyedge.registry.fetch import packaged_bundle

    def strict(text: str) -> dict:
        def refuse(c: str) -> None:
            raise ValueError(f"{c} is not JSON")
        return json.loads(text, parse_constant=refuse)

    for bundle, engine in ((yunet_bundle, "onnxruntime"), (packaged_bundle("bnn-racketsports"), "bnn")):
        r = subprocess.run([sys.executable, "-m", "anyedge.cli", "inspect", str(bundle), "--json"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        doc = strict(r.stdout)  # the whole of stdout, nothing before or after
        assert doc["engine"] == engine and doc["runs_here"]["engine"] == engine
        assert doc["runs_here"]["precision"] and doc["signature"]["status"] == "unsigned"
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "inspect", str(yunet_bundle)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "{" not in r.stdout and "  input      640x640 NCHW BGR, letterbox, mean 0.0 std 1.0, static" in r.stdout
    assert re.search(r"  runs here  onnxruntime(, device \w+)?, precision fp16\n", r.stdout), r.stdout
