"""The engine contract, written once and run on every installed engine and format it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anyedge.engines import ENGINES, available_engines, engines_for, open_engine
from anyedge.errors import EngineUnavailableError, InputError, ModelLoadError
from anyedge.registry import resolve_model

MODELS = {".tflite": "blazeface-short", ".onnx": "yunet-n-320"}
CASES = [
    (engine, suffix)
    for engine in available_engines()
    for suffix in MODELS
    if suffix in ENGINES[engine].suffixes
]


def test_the_core_engines_are_installed() -> None:
    assert {"litert", "onnxruntime"} <= set(available_engines())


@pytest.mark.parametrize(("engine", "suffix"), CASES)
def test_engine_contract(engine: str, suffix: str) -> None:
    path, _ = resolve_model(MODELS[suffix])
    eng = open_engine(path, engine, threads=1)
    assert eng.name == engine
    assert len(eng.inputs) == 1 and len(eng.outputs) >= 2
    spec = eng.inputs[0]
    x = np.random.default_rng(0).standard_normal([d if d > 0 else 1 for d in spec.shape]).astype(spec.dtype)
    outs = eng.run({spec.name: x})
    assert len(outs) == len(eng.outputs)
    for o, s in zip(outs, eng.outputs):
        assert isinstance(o, np.ndarray) and o.ndim == len(s.shape)
        assert all(d < 0 or d == a for d, a in zip(s.shape, o.shape))
        assert np.isfinite(o).all()
    with pytest.raises(InputError, match="dtype"):
        eng.run({spec.name: x.astype(np.float64)})
    with pytest.raises(InputError, match="shape"):
        eng.run({spec.name: x[..., :1] if x.shape[-1] > 1 else x[:, :1]})
    with pytest.raises(InputError, match="inputs"):
        eng.run({"nope": x})
    eng.close()


@pytest.mark.parametrize(("engine", "suffix"), CASES)
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_model_is_a_clear_error(engine: str, suffix: str, fraction: float, tmp_path: Path) -> None:
    src, _ = resolve_model(MODELS[suffix])
    data = src.read_bytes()
    bad = tmp_path / f"truncated{suffix}"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError):
        open_engine(bad, engine)


@pytest.mark.parametrize("engine", available_engines())
def test_garbage_file_is_a_clear_error(engine: str, tmp_path: Path) -> None:
    suffix = ENGINES[engine].suffixes[0]
    bad = tmp_path / f"garbage{suffix}"
    bad.write_bytes(b"\x00not a model" * 100)
    with pytest.raises(ModelLoadError):
        open_engine(bad, engine)


def test_engine_that_cannot_read_the_format() -> None:
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(EngineUnavailableError, match="reads .tflite"):
        open_engine(path, "litert")


def test_unknown_engine() -> None:
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(EngineUnavailableError, match="known engines"):
        open_engine(path, "tensorflow")


def test_engine_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import anyedge.engines as engines

    monkeypatch.setitem(engines.ENGINES, "openvino", replace(ENGINES["openvino"], probe=("no_such_openvino",)))
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(EngineUnavailableError, match=r"anyedge\[openvino\]"):
        open_engine(path, "openvino")
    assert "openvino" not in engines_for(path)


def test_default_engine_is_the_formats_own() -> None:
    assert engines_for("x.tflite")[0] == "litert"
    assert engines_for("x.onnx")[0] == "onnxruntime"


# -- execution precision: fp32 unless the model or bundle says otherwise ------------------------
@pytest.mark.parametrize(("engine", "suffix"), CASES)
def test_float_models_report_the_precision_they_run(engine: str, suffix: str) -> None:
    path, _ = resolve_model(MODELS[suffix])
    eng = open_engine(path, engine, threads=1)
    # yunet-n-320 stores fp32 weights; the MediaPipe BlazeFace file stores fp16 weights (run in fp32)
    assert eng.precision == ("fp16" if suffix == ".tflite" else "fp32")
    eng.close()


@pytest.mark.skipif("openvino" not in available_engines(), reason="OpenVINO is not installed")
def test_openvino_compiles_float_models_at_f32_by_default() -> None:
    path, _ = resolve_model("scrfd-500m")
    eng = open_engine(path, "openvino")
    hint = eng._compiled.get_property("INFERENCE_PRECISION_HINT")
    assert hint.get_type_name() == "f32"  # OpenVINO's own default is bf16 on CPUs with AMX/AVX-512 BF16
    assert eng.compute_precision == "fp32" and eng.precision == "fp32"


@pytest.mark.skipif("openvino" not in available_engines(), reason="OpenVINO is not installed")
@pytest.mark.parametrize("device", ["AUTO", "MULTI:CPU", "HETERO:CPU", "AUTO:CPU"])
def test_openvino_meta_devices_keep_the_fp32_pin(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import openvino as ov

    compiled_with: list[tuple[str, dict]] = []
    real = ov.Core.compile_model

    def spy(self, model, device_name=None, config=None, *a, **kw):  # records what the engine asks for, then compiles
        compiled_with.append((device_name, dict(config or {})))
        return real(self, model, device_name, config, *a, **kw)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    path, _ = resolve_model("scrfd-500m")
    cpu, meta = open_engine(path, "openvino"), open_engine(path, "openvino", device=device)
    (_, config), = [c for c in compiled_with if c[0] == device]
    # the pin is asked for on the CPU the meta device lands on (on any CPU, bf16 or not) ...
    assert config["DEVICE_PROPERTIES"]["CPU"]["INFERENCE_PRECISION_HINT"] == "f32", config
    # ... the compiled model holds it, and the engine reports what runs
    hint = meta._compiled.get_property("DEVICE_PROPERTIES")["CPU"]["INFERENCE_PRECISION_HINT"]
    assert hint.get_type_name() == "f32"
    assert meta.execution_devices == ("CPU",) and meta.compute_precision == "fp32" and meta.precision == "fp32"
    # the same bits as the CPU device at fp32 (bf16 would move SCRFD's scores by ~1e-2)
    spec = cpu.inputs[0]
    assert spec.shape[:2] in ((-1, 3), (1, 3)), spec.shape
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 320, 320)).astype(np.float32)
    for a, b in zip(cpu.run({spec.name: x}), meta.run({spec.name: x})):
        np.testing.assert_array_equal(a, b)
    cpu.close()
    meta.close()


def _bf16_reason() -> str:
    if "openvino" not in available_engines():
        return "OpenVINO is not installed"
    from anyedge.engines.openvino import cpu_supports

    return "" if cpu_supports("bf16") else "this CPU has no bf16 (no AVX-512 BF16 / AMX): OpenVINO cannot run bf16 here"


@pytest.mark.skipif(bool(_bf16_reason()), reason=_bf16_reason() or "-")
def test_openvino_bf16_is_reported_and_within_the_gate(wider_images) -> None:
    from anyedge import FaceDetector
    from anyedge.converters.fidelity import face_fidelity

    from .conftest import read_rgb

    images = [read_rgb(p) for p in wider_images[:12]]
    with FaceDetector.create("scrfd-500m", engine="openvino") as f32, \
            FaceDetector.create("scrfd-500m", engine="openvino", engine_options={"precision": "bf16"}) as b16:
        assert f32.engine.precision == "fp32" and b16.engine.precision == "bf16"
        ref = [f32.detect(im) for im in images]
        got = [b16.detect(im) for im in images]
    agreement = face_fidelity(ref, got)
    assert agreement.reference_faces >= 20
    assert agreement.f1 >= 0.95  # the default conversion gate (max_drop 0.05)


@pytest.mark.skipif(bool(_bf16_reason()), reason=_bf16_reason() or "-")
def test_openvino_meta_device_reports_the_precision_its_device_runs() -> None:
    path, _ = resolve_model("scrfd-500m")
    eng = open_engine(path, "openvino", device="AUTO", precision="bf16")
    assert eng.compute_precision == "bf16" and eng.precision == "bf16"  # read back, not assumed
    eng.close()


@pytest.mark.skipif("openvino" not in available_engines(), reason="OpenVINO is not installed")
def test_openvino_refuses_an_unknown_precision() -> None:
    path, _ = resolve_model("scrfd-500m")
    with pytest.raises(ModelLoadError, match="precision"):
        open_engine(path, "openvino", precision="fp8")


def test_litert_load_prints_no_delegate_line_and_keeps_other_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    import os
    import subprocess
    import sys

    from anyedge.engines.litert import _native_noise_filtered

    path, _ = resolve_model("blazeface-short")
    code = ("from anyedge.engines import open_engine; import numpy as np; "
            f"e = open_engine({str(path)!r}, 'litert'); e.run({{'input': np.zeros((1, 128, 128, 3), np.float32)}}); "
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 0 and r.stdout.strip() == "ok"
    assert "XNNPACK" not in r.stderr, r.stderr
    with _native_noise_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nsomething else\n")
    err = capfd.readouterr().err
    assert "something else" in err and "XNNPACK" not in err


# -- device selection: what runs when the device asked for is not here --------------------------
# This machine has no GPU and no NPU, and its onnxruntime is the CPU build: exactly the
# unavailable case. A device that is not here falls back to the CPU with one notice, or fails
# with strict_device=True; the engine reports what actually runs.
OPENVINO = pytest.mark.skipif("openvino" not in available_engines(), reason="OpenVINO is not installed")


@pytest.fixture
def fresh_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notices are said once per process; each test starts from none said."""
    import anyedge.engines.base as base

    monkeypatch.setattr(base, "_NOTICED", set(), raising=False)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def _same_outputs(a, b) -> None:
    spec = a.inputs[0]
    x = np.random.default_rng(1).uniform(-1, 1, [d if d > 0 else 320 for d in spec.shape]).astype(np.float32)
    for u, v in zip(a.run({spec.name: x}), b.run({spec.name: x})):
        np.testing.assert_array_equal(u, v)


@OPENVINO
@pytest.mark.parametrize("device", ["GPU", "NPU", "GPU.1", "gpu"])
def test_openvino_missing_device_falls_back_to_cpu_with_one_notice(device, fresh_notices, caplog) -> None:
    from anyedge.errors import DeviceUnavailableError

    path, _ = resolve_model("yunet-n-320")
    with caplog.at_level("WARNING"):
        cpu = open_engine(path, "openvino")
        eng = open_engine(path, "openvino", device=device)
        again = open_engine(path, "openvino", device=device)  # the same fallback is not said twice
    assert eng.device == "CPU" and eng.execution_devices == ("CPU",) and eng.compute_precision == "fp32"
    (msg,) = _warnings(caplog)
    assert f"device {device.upper()} is not available here (OpenVINO sees: CPU); running on CPU instead" in msg
    _same_outputs(cpu, eng)
    with pytest.raises(DeviceUnavailableError, match=f"device {device.upper()} is not available here") as e:
        open_engine(path, "openvino", device=device, strict_device=True)
    assert "\n" not in str(e.value) and "Exception from" not in str(e.value)
    for x in (cpu, eng, again):
        x.close()


@OPENVINO
@pytest.mark.parametrize(("device", "runs"), [("AUTO:GPU,CPU", "AUTO:CPU"), ("MULTI:GPU,CPU", "MULTI:CPU"),
                                              ("HETERO:NPU,CPU", "HETERO:CPU"), ("AUTO:-CPU", "CPU")])
def test_openvino_meta_device_drops_missing_members_and_keeps_the_fp32_pin(device, runs, fresh_notices, caplog,
                                                                            monkeypatch) -> None:
    import openvino as ov

    compiled_with: list[tuple[str, dict]] = []
    real = ov.Core.compile_model

    def spy(self, model, device_name=None, config=None, *a, **kw):  # records what the engine asks for
        compiled_with.append((device_name, dict(config or {})))
        return real(self, model, device_name, config, *a, **kw)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    path, _ = resolve_model("scrfd-500m")
    with caplog.at_level("WARNING"):
        eng = open_engine(path, "openvino", device=device)
    assert [d for d, _ in compiled_with] == [runs]  # OpenVINO itself refuses AUTO:GPU,CPU without a GPU plugin
    config = compiled_with[0][1]
    pin = config["DEVICE_PROPERTIES"]["CPU"] if ":" in runs else config
    assert pin["INFERENCE_PRECISION_HINT"] == "f32", config
    assert eng.device == "CPU" and eng.compiled_for == runs and eng.precision == "fp32"
    (msg,) = _warnings(caplog)
    assert f"running on {runs} instead" in msg and "OpenVINO sees: CPU" in msg
    eng.close()


@OPENVINO
def test_openvino_auto_runs_and_reports_the_cpu(fresh_notices, caplog) -> None:
    path, _ = resolve_model("yunet-n-320")
    with caplog.at_level("WARNING"):
        eng = open_engine(path, "openvino", device="AUTO")
    assert eng.device == "CPU" and eng.compiled_for == "AUTO"
    assert _warnings(caplog) == []  # AUTO over what is here is no fallback
    eng.close()


@OPENVINO
@pytest.mark.parametrize("device", ["GPX", "", "CPU,GPU", "AUTO:", "gpu.x", "MULTI"])
def test_openvino_unknown_device_lists_the_choices(device) -> None:
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(InputError, match="expected CPU, GPU, NPU or AUTO"):
        open_engine(path, "openvino", device=device)


@OPENVINO
def test_openvino_listed_device_whose_plugin_fails_falls_back(fresh_notices, caplog, monkeypatch) -> None:
    """A machine whose OpenVINO lists a GPU that its plugin cannot use (the GPU plugin without an
    OpenCL runtime, as here): the real compile fails, the notice says why in one line."""
    import openvino as ov

    from anyedge.errors import DeviceUnavailableError

    monkeypatch.setattr(ov.Core, "available_devices", property(lambda self: ["CPU", "GPU"]))
    path, _ = resolve_model("yunet-n-320")
    with caplog.at_level("WARNING"):
        eng = open_engine(path, "openvino", device="GPU")
    assert eng.device == "CPU"
    (msg,) = _warnings(caplog)
    assert msg.startswith("OpenVINO cannot compile yunet_n_320_320.onnx for GPU (") and msg.endswith(
        "running on CPU instead")
    assert "\n" not in msg and "Exception from" not in msg and "/site-packages/" not in msg
    with pytest.raises(DeviceUnavailableError, match="cannot compile yunet_n_320_320.onnx for GPU") as e:
        open_engine(path, "openvino", device="GPU", strict_device=True)
    assert "\n" not in str(e.value)
    eng.close()


@pytest.mark.parametrize(("asked", "missing"), [
    (["cuda", "cpu"], "CUDAExecutionProvider"),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     "TensorrtExecutionProvider, CUDAExecutionProvider"),
    (["tensorrt"], "TensorrtExecutionProvider"),
    ("cuda", "CUDAExecutionProvider"),
])
def test_onnxruntime_missing_provider_falls_back_with_one_notice(asked, missing, fresh_notices, caplog) -> None:
    import onnxruntime as ort

    from anyedge.errors import DeviceUnavailableError

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider: the unavailable case cannot be shown here")
    path, _ = resolve_model("yunet-n-320")
    cpu = open_engine(path, "onnxruntime")
    with caplog.at_level("WARNING"):
        eng = open_engine(path, "onnxruntime", providers=asked)
    assert eng.providers == ("CPUExecutionProvider",) and eng.device == "CPU" and cpu.device == "CPU"
    (msg,) = _warnings(caplog)
    assert msg.startswith(f"ONNX Runtime provider{'s' if ',' in missing else ''} {missing} ")
    assert "not available in this onnxruntime (it has: " in msg and "onnxruntime-gpu" in msg
    assert msg.endswith("running on CPUExecutionProvider instead")
    _same_outputs(cpu, eng)
    with pytest.raises(DeviceUnavailableError, match=missing.split(",")[0]):
        open_engine(path, "onnxruntime", providers=asked, strict_device=True)
    cpu.close()
    eng.close()


@pytest.mark.parametrize(("short", "real"), [("cuda", "CUDAExecutionProvider"), ("TensorRT", "TensorrtExecutionProvider"),
                                             ("openvino", "OpenVINOExecutionProvider"), ("cpu", "CPUExecutionProvider"),
                                             ("cudaexecutionprovider", "CUDAExecutionProvider"),
                                             ("FooExecutionProvider", "FooExecutionProvider")])
def test_provider_short_names(short, real) -> None:
    from anyedge.engines.onnxruntime import provider_name

    assert provider_name(short) == real


@pytest.mark.parametrize("bad", ["cdua", "", "ExecutionProvider", "gpu", "cuda;rm -rf"])
def test_unknown_provider_lists_the_short_names(bad) -> None:
    from anyedge.engines.onnxruntime import provider_name

    with pytest.raises(InputError, match="expected cpu, cuda, tensorrt, openvino"):
        provider_name(bad)


@pytest.mark.parametrize("engine", available_engines())
def test_every_engine_reports_where_it_runs(engine: str) -> None:
    suffix = next((s for s in MODELS if s in ENGINES[engine].suffixes), None)
    if suffix is not None:
        path = resolve_model(MODELS[suffix])[0]
    else:  # bnn: a shipped binary network
        from anyedge.bundle import load_bundle
        from anyedge.registry import packaged_bundle

        path = load_bundle(packaged_bundle("bnn-racketsports")).model_path
    eng = open_engine(path, engine)
    assert eng.device == "CPU"  # no GPU or NPU here
    eng.close()
