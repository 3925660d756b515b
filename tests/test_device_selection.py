"""Device selection on the command line: --device, --providers and --strict-device.

This machine has no GPU and no NPU and its onnxruntime is the CPU build, which is exactly the
case these options must handle well: on the real engines, every command falls back to the CPU
with one notice (same faces as without the option) or, with --strict-device, fails with one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anyedge.engines import available_engines

from .conftest import DATA, ROOT, SMOKE

pytestmark = pytest.mark.skipif("openvino" not in available_engines(), reason="OpenVINO is not installed")

IMG = SMOKE / "couple.jpg"  # two faces
IDS = DATA / "faces" / "identities"
A, B = IDS / "person_01" / "img26.jpg", IDS / "person_01" / "img27.jpg"

# (case, engine, options, the notice a fallback prints, what a strict failure names)
CASES = [
    ("openvino-GPU", "openvino", ["--device", "GPU"],
     "OpenVINO device GPU is not available here (OpenVINO sees: CPU); running on CPU instead", "device GPU"),
    ("openvino-NPU", "openvino", ["--device", "npu"],
     "OpenVINO device NPU is not available here (OpenVINO sees: CPU); running on CPU instead", "device NPU"),
    ("ort-CUDA", "onnxruntime", ["--providers", "cuda,cpu"],
     "ONNX Runtime provider CUDAExecutionProvider is not available in this onnxruntime", "CUDAExecutionProvider"),
    ("ort-TensorRT", "onnxruntime", ["--providers", "TensorrtExecutionProvider"],
     "ONNX Runtime provider TensorrtExecutionProvider is not available in this onnxruntime",
     "TensorrtExecutionProvider"),
]
COMMANDS = ["detect", "run", "bench", "verify", "gallery"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=os.environ)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-frame clip of the couple photo, a folder with that one photo, a gallery with one person."""
    import cv2

    d = tmp_path_factory.mktemp("devices")
    clip = d / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    assert w.isOpened()
    for _ in range(3):
        w.write(cv2.resize(cv2.imread(str(IMG)), (640, 480)))
    w.release()
    photos = d / "photos"
    photos.mkdir()
    shutil.copy(IMG, photos / IMG.name)
    db = d / "gallery.db"
    r = cli("gallery", "enroll", "alice", A, "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    return {"clip": clip, "photos": photos, "db": db, "tmp": d}


def _command(command: str, engine: str, work: dict[str, Path], out: Path) -> list[str]:
    """A cheap invocation of ``command`` (one image, one or two frames, one timed run), JSON out."""
    # verify / gallery run a detector and an embedder (a .tflite file, which ONNX Runtime cannot read):
    # --engine openvino puts both on OpenVINO; for the providers the detector is on ONNX Runtime by itself
    on = ["--engine", engine] if engine == "openvino" or command in ("detect", "run") else []
    return {
        "detect": ["detect", IMG, "--model", "scrfd-500m", "--json", *on],
        "run": ["run", "--source", work["clip"], "--model", "scrfd-500m", "--every-frame", "--frames", "2", "--json",
                *on],
        "bench": ["bench", "scrfd-500m", "--engines", engine, "--images", work["photos"], "--runs", "1", "--warmup",
                  "0", "--no-png", "--json", "-q", "--out", out],
        "verify": ["verify", A, B, "--json", *on],
        "gallery": ["gallery", "identify", B, IMG, "--db", work["db"], "--json", *on],
    }[command]


def _results(command: str, stdout: str) -> object:
    """What must not change when the device falls back: faces, scores, names."""
    docs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if command == "detect":
        return [d["faces"] for d in docs]
    if command == "run":
        return [d["faces"] for d in docs if d.get("type") == "frame"]
    if command == "bench":
        return None
    return docs


def _device_reported(command: str, stdout: str, engine: str) -> list[str]:
    docs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if command == "detect":
        return [d["device"] for d in docs if d["engine"] == engine]
    if command == "run":
        return [d["device"] for d in docs if "device" in d and d.get("engine") == engine]
    if command == "bench":
        return [r["device"] for r in docs[0]["rows"] if r["engine"] == engine]
    return ["CPU"]  # verify / gallery print no engine; the notice and the equal results say it


_baselines: dict[tuple[str, str], str] = {}


def _baseline(command: str, engine: str, work: dict[str, Path], tmp_path: Path) -> str:
    key = (command, engine)
    if key not in _baselines:
        r = cli(*_command(command, engine, work, tmp_path / "base"))
        assert r.returncode == 0, r.stderr
        assert "not available" not in r.stderr, r.stderr
        _baselines[key] = r.stdout
    return _baselines[key]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("case", "engine", "options", "notice", "names"), CASES, ids=[c[0] for c in CASES])
def test_unavailable_device_falls_back_with_one_notice(command, case, engine, options, notice, names, work,
                                                       tmp_path) -> None:
    r = cli(*_command(command, engine, work, tmp_path / "out"), *options)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "not available" in line]
    assert len(said) == 1 and notice in said[0], r.stderr  # one notice, even with two models (verify, gallery)
    assert "Traceback" not in r.stderr
    assert set(_device_reported(command, r.stdout, engine)) == {"CPU"}
    if command == "bench":
        (row,) = json.loads(r.stdout)["rows"]
        assert row["fidelity"]["faces"] == 2 and "error" not in row  # the two faces of the photo
    else:
        assert _results(command, r.stdout) == _results(command, _baseline(command, engine, work, tmp_path))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("case", "engine", "options", "notice", "names"), CASES, ids=[c[0] for c in CASES])
def test_unavailable_device_with_strict_device_is_one_line(command, case, engine, options, notice, names, work,
                                                           tmp_path) -> None:
    out = tmp_path / "out"
    r = cli(*_command(command, engine, work, out), *options, "--strict-device")
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("anyedge: error: ") and names in line and "not available" in line, line
    assert "Exception from" not in line and "Traceback" not in line
    assert r.stdout == ""
    assert not (out / "bench.json").exists()  # bench fails before any row: no result written


@pytest.mark.parametrize("command", COMMANDS)
def test_a_typo_lists_the_valid_choices(command, work, tmp_path) -> None:
    for options, choices in ((["--device", "GPX"], "expected CPU, GPU, NPU or AUTO"),
                             (["--providers", "cdua,cpu"], "expected cpu, cuda, tensorrt, openvino")):
        r = cli(*_command(command, "openvino", work, tmp_path / "out"), *options)
        assert r.returncode == 2
        (line,) = r.stderr.strip().splitlines()
        assert choices in line and options[1].split(",")[0] in line, line


@pytest.mark.parametrize("command", ["detect", "run", "bench"])
def test_auto_runs_and_reports_the_cpu(command, work, tmp_path) -> None:
    r = cli(*_command(command, "openvino", work, tmp_path / "out"), "--device", "AUTO")
    assert r.returncode == 0, r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    assert set(_device_reported(command, r.stdout, "openvino")) == {"CPU"}
    if command != "bench":
        assert _results(command, r.stdout) == _results(command, _baseline(command, "openvino", work, tmp_path))


def test_a_model_on_an_engine_without_devices_ignores_them_with_a_notice() -> None:
    """blazeface-short runs on LiteRT: --device is ignored with one notice, or refused with --strict-device."""
    base = cli("detect", IMG, "--json")
    r = cli("detect", IMG, "--json", "--device", "GPU")
    assert base.returncode == 0 and r.returncode == 0, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert "blazeface-short runs on litert, which takes no OpenVINO devices: device GPU is ignored there" in line
    assert [d["faces"] for d in map(json.loads, r.stdout.splitlines())] == \
        [d["faces"] for d in map(json.loads, base.stdout.splitlines())]
    assert json.loads(r.stdout)["device"] == "CPU" and json.loads(r.stdout)["engine"] == "litert"
    r = cli("detect", IMG, "--json", "--providers", "cuda", "--strict-device")
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert "blazeface-short runs on litert, which takes no ONNX Runtime providers" in line
    r = cli("detect", IMG, "--device", "CPU", "--strict-device")  # the CPU is where every engine runs
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_bench_says_when_no_row_can_use_the_device(tmp_path, work) -> None:
    args = ["bench", "scrfd-500m", "--engines", "onnxruntime", "--images", work["photos"], "--runs", "1",
            "--warmup", "0", "--no-png", "--json", "-q", "--out", tmp_path / "b", "--device", "GPU"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "device GPU is for openvino rows and no row runs on openvino" in r.stderr
    r = cli(*args, "--strict-device")
    assert r.returncode == 2 and "no row runs on openvino" in r.stderr


@pytest.mark.parametrize("command", [["detect"], ["run"], ["bench"], ["verify"], ["gallery", "enroll"],
                                     ["gallery", "identify"]])
def test_help_explains_the_device_options(command) -> None:
    r = cli(*command, "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for option in ("--device DEVICE", "--providers LIST", "--strict-device"):
        assert option in text
    assert "falls back to the CPU with one notice" in text


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Choosing the device", 1)[1].split("\n#", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's 'Choosing the device' has no command block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_commands_run(tmp_path) -> None:
    """The commands of the README's "Choosing the device", on real photos: fallback with a notice, or
    (--strict-device) one line and exit 2."""
    shutil.copy(IMG, tmp_path / "photo.jpg")
    shutil.copy(A, tmp_path / "a.jpg")
    shutil.copy(B, tmp_path / "b.jpg")
    commands = _readme_commands()
    assert len(commands) == 3
    for command in commands:
        words = command.split()
        assert words[0] == "anyedge"
        r = cli(*words[1:], cwd=tmp_path)
        if "--strict-device" in words:
            assert r.returncode == 2 and r.stderr.count("\n") == 1 and "NPU is not available here" in r.stderr
        else:
            assert r.returncode == 0, r.stderr
            assert "2 face(s)" in r.stdout
            assert len([x for x in r.stderr.splitlines() if "not available" in x]) == 1, r.stderr


def test_python_api_takes_the_same_request() -> None:
    from anyedge import DeviceUnavailableError, FaceDetector, FacePipeline
    from anyedge.engines.devices import DeviceRequest

    with FaceDetector.create("scrfd-500m", engine="openvino", device="auto") as det:
        assert det.engine.device == "CPU" and det.options.device == DeviceRequest("AUTO")
    with pytest.raises(DeviceUnavailableError, match="NPU"):
        FacePipeline.create(engine="openvino", device=DeviceRequest("NPU", strict=True))
    with FaceDetector.create("scrfd-500m", device=DeviceRequest(providers=("cuda", "cpu"))) as det:
        assert det.engine.providers == ("CPUExecutionProvider",) and det.engine.device == "CPU"
