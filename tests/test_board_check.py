"""The emulated-board checks' logic (cheap; the emulated runs are `make pi-check` / `make riscv-board-check`)
and the package's selfcheck against its shipped reference on this machine."""

from __future__ import annotations

import csv
import hashlib
import base64
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import board_check  # targets/checks/ (pytest pythonpath)
import boards
import pytest

from anyedge.targets import selfcheck

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT.parent / "shared" / "data" / "faces" / "smoke"


def _face(x0: float, y0: float, x1: float, y1: float, score: float = 0.9) -> dict:
    return {"box": [x0, y0, x1, y1], "score": score}


@pytest.mark.parametrize("ref, got, ok, matched, problem", [
    ({}, {}, True, 0, None),  # empty: nothing to disagree on
    ({"a.jpg": []}, {"a.jpg": []}, True, 0, None),
    ({"a.jpg": [_face(0, 0, 10, 10)]}, {"a.jpg": [_face(0.02, 0, 10, 10.01, 0.9004)]}, True, 1, None),
    # two faces listed in another order still match one to one
    ({"a.jpg": [_face(0, 0, 10, 10), _face(50, 50, 70, 70)]},
     {"a.jpg": [_face(50, 50, 70, 70), _face(0, 0, 10, 10)]}, True, 2, None),
    ({"a.jpg": [_face(0, 0, 10, 10)]}, {"a.jpg": []}, False, 0, "1 reference face(s) not found"),
    ({"a.jpg": []}, {"a.jpg": [_face(0, 0, 10, 10)]}, False, 0, "1 face(s) not in the reference"),
    ({"a.jpg": [_face(0, 0, 10, 10)]}, {"a.jpg": [_face(20, 20, 30, 30)]}, False, 0, "not found"),  # IoU 0
    ({"a.jpg": [_face(0, 0, 10, 10)]}, {"a.jpg": [_face(1.5, 0, 11.5, 10)]}, True, 1, None),
    ({"a.jpg": [_face(0, 0, 10, 10)]}, {"a.jpg": [_face(2.5, 0, 12.5, 10)]}, False, 1, "box difference 2.500"),
    ({"a.jpg": [_face(0, 0, 10, 10, 0.9)]}, {"a.jpg": [_face(0, 0, 10, 10, 0.8)]}, False, 1, "score difference"),
    ({"a.jpg": []}, {"b.jpg": []}, False, 0, "only in the"),
])
def test_compare_faces(ref, got, ok, matched, problem) -> None:
    d = board_check.compare_detections(ref, got)
    assert d.ok is ok
    assert d.matched == matched
    if problem:
        assert any(problem in p for p in d.problems), d.problems
    else:
        assert d.problems == []


@pytest.mark.parametrize("score, borderline, ok", [(0.505, 1, True), (0.509, 1, True), (0.52, 0, False),
                                                  (0.9, 0, False)])
def test_a_face_only_one_side_finds_is_borderline_only_at_the_threshold(score, borderline, ok) -> None:
    ref = {"a.jpg": [_face(0, 0, 10, 10), _face(50, 50, 60, 60, score)]}
    got = {"a.jpg": [_face(0, 0, 10, 10)]}
    d = board_check.compare_detections(ref, got, threshold=0.5)
    assert (d.borderline, d.ok, d.matched) == (borderline, ok, 1)
    d = board_check.compare_detections(got, ref, threshold=0.5)  # the board found the extra face
    assert (d.borderline, d.ok) == (borderline, ok)
    assert not board_check.compare_detections(ref, got).ok  # no threshold given: any unmatched face fails


def test_score_threshold_is_the_registrys() -> None:
    assert board_check.score_threshold("scrfd-500m") == 0.5


def test_match_faces_is_one_to_one_best_iou_first() -> None:
    ref = [_face(0, 0, 10, 10), _face(2, 0, 12, 10)]
    got = [_face(2, 0, 12, 10)]
    pairs, lost, extra = selfcheck.match_faces(ref, got)
    assert pairs == [(1, 0)] and lost == [0] and extra == []
    assert selfcheck.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize("ref, got, agree, problem", [
    (["a", "b"], ["a", "b"], 2, None),
    (["a", "b"], ["a", "c"], 1, "1 label(s) differ, first at 1: 'b' vs 'c'"),
    (["a", "b"], ["a"], 1, "2 labels on the host, 1 on the board"),
    ([], [], 0, "no labels at all"),
])
def test_compare_labels(ref, got, agree, problem) -> None:
    a, total, problems = board_check.compare_labels(ref, got)
    assert a == agree and total == max(len(ref), len(got))
    assert (problem in problems) if problem else problems == []


def test_json_lines_skips_blank_lines_and_refuses_non_json() -> None:
    assert board_check.json_lines('{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError):
        board_check.json_lines("anyedge: error: something\n")


def test_detector_matrix_pairs_each_present_detector_with_the_engines_that_read_it() -> None:
    models = [{"name": "bf", "task": "face_detection", "file": "x.tflite", "present": "/m/x.tflite"},
              {"name": "sc", "task": "face_detection", "file": "y.onnx", "present": "/m/y.onnx"},
              {"name": "gone", "task": "face_detection", "file": "z.onnx", "present": None},
              {"name": "emb", "task": "face_embedding", "file": "e.tflite", "present": "/m/e.tflite"}]
    assert board_check.detector_matrix(models, ["litert", "onnxruntime", "openvino"]) == [
        ("bf", "litert"), ("bf", "openvino"), ("sc", "onnxruntime"), ("sc", "openvino")]
    assert board_check.detector_matrix(models, []) == []


def test_repack_wheel_swaps_the_compiled_modules_retags_and_records(tmp_path: Path) -> None:
    src = tmp_path / "anyedge-0.1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("anyedge/__init__.py", "x = 1\n")
        z.writestr("anyedge/ops/_resize.cpython-311-x86_64-linux-gnu.so", b"x86")
        z.writestr("anyedge-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                                                    "Tag: cp311-cp311-linux_x86_64\n")
        z.writestr("anyedge-0.1.0.dist-info/RECORD", "stale\n")
    new = {"anyedge/ops/_resize.cpython-311-aarch64-linux-gnu.so": b"arm"}
    out = boards.repack_wheel(src, tmp_path, "cp311-cp311-linux_aarch64", new)
    assert out.name == "anyedge-0.1.0-cp311-cp311-linux_aarch64.whl"
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert "anyedge/ops/_resize.cpython-311-x86_64-linux-gnu.so" not in names
        assert "Tag: cp311-cp311-linux_aarch64" in z.read("anyedge-0.1.0.dist-info/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(z.read("anyedge-0.1.0.dist-info/RECORD").decode())))
        listed = {r[0]: r for r in rows}
        assert set(listed) == names
        for name in names - {"anyedge-0.1.0.dist-info/RECORD"}:
            data = z.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert listed[name][1:] == [f"sha256={digest}", str(len(data))]
    assert not list(tmp_path.glob("*.tmp"))


def test_boards_cross_build_with_the_flags_setup_py_chooses_there(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("anyedge_setup_py", ROOT / "setup.py")
    s = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(s)  # type: ignore[union-attr]
    monkeypatch.delenv("ANYEDGE_NO_POPCNT", raising=False)
    monkeypatch.setenv("ANYEDGE_RISCV_MARCH", boards.BOARDS["riscv64"].env["ANYEDGE_RISCV_MARCH"])
    assert s.compile_flags(["riscv64-linux-gnu-gcc"], lambda f: True) == \
        ["-O3", "-ffp-contract=off", "-march=rv64gc_zbb"]
    if shutil.which("aarch64-linux-gnu-gcc"):
        assert s.compile_flags(["aarch64-linux-gnu-gcc"], lambda f: True) == ["-O3", "-ffp-contract=off"]


def test_board_cpuinfo_describes_the_boards_cpu() -> None:
    pi = boards.BOARDS["pi"].cpuinfo
    assert pi.count("CPU part\t: 0xd08") == 4 and "CPU implementer\t: 0x41" in pi
    assert boards.BOARDS["riscv64"].cpuinfo.count("_zbb") == 4
    assert boards.BOARDS["pi"].ext_suffix == ".cpython-311-aarch64-linux-gnu.so"
    assert boards.BOARDS["riscv64"].wheel_tag == "cp313-cp313-linux_riscv64"


def test_board_cache_sits_beside_the_model_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "models"))
    assert boards.boards_cache() == tmp_path / "boards"
    assert boards.boards_cache(tmp_path / "x") == tmp_path / "x"


def test_synthetic_windows_are_fixed_values() -> None:
    x = selfcheck.synthetic_windows(3, 30, 6)
    assert x.shape == (3, 30, 6) and x.dtype.name == "float32"
    assert float(x[0, 0, 0]) == 0.0 and float(x[2, 5, 3]) == round(float(x[2, 5, 3]) * 1024) / 1024


@pytest.fixture
def sample_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from anyedge.samples import SAMPLES

    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    shutil.copy(SMOKE / "astronaut.png", tmp_path / SAMPLES["astronaut"][2])
    return tmp_path


def test_selfcheck_matches_its_shipped_reference_here(sample_cache: Path, capsys: pytest.CaptureFixture) -> None:
    """Every installed engine x present detector and both BNNs give the reference's answers on this machine."""
    from anyedge.engines import available_engines

    assert selfcheck.main(["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["passed"] >= 2
    ran = {i["name"] for i in doc["items"] if not i["skipped"]}
    assert {"bnn-racketsports", "bnn-basicmotions"} <= ran
    for engine in set(available_engines()) & {"litert", "onnxruntime", "openvino"}:
        assert any(n.endswith("/" + engine) for n in ran), (engine, ran)


def test_selfcheck_fails_on_a_reference_that_differs(sample_cache: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    ref = json.loads((ROOT / "targets" / "selfcheck_reference.json").read_text())
    ref["har"]["bnn-racketsports"]["labels"][0] = "no-such-label"
    key = sorted(ref["detect"])[0]
    ref["detect"][key]["faces"][0]["box"][0] += 5.0
    bad = tmp_path / "ref.json"
    bad.write_text(json.dumps(ref))
    assert selfcheck.main(["--json", "--reference", str(bad)]) == 1
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert not items["bnn-racketsports"]["ok"] and "1/24 labels differ" in items["bnn-racketsports"]["detail"]
    assert items["bnn-basicmotions"]["ok"]
    assert not items[key]["ok"] and "box difference 5.0" in items[key]["detail"]


@pytest.mark.parametrize("content", ["", "{}", "[1, 2]", "not json"])
def test_selfcheck_refuses_a_malformed_reference(content: str, sample_cache: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "ref.json"
    bad.write_text(content)
    assert selfcheck.main(["--reference", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "selfcheck reference" in err


def test_selfcheck_runs_as_a_module_and_the_reference_ships_in_the_package(sample_cache: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "anyedge.targets.selfcheck", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--write-reference" in r.stdout
    from importlib import resources

    assert json.loads(resources.files("anyedge.targets").joinpath("selfcheck_reference.json").read_text())["har"]
    text = (ROOT / "pyproject.toml").read_text()
    assert '"anyedge.targets" = ["selfcheck_reference.json"]' in text


def test_models_lists_the_engines_that_read_each_model_and_marks_models_without_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """On riscv64 no vision engine installs: `models` must say so rather than list them as usable."""
    import anyedge.engines as engines
    from anyedge.cli import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in board_check.json_lines(capsys.readouterr().out)}
    assert rows["bnn-racketsports"]["engines"] == ["bnn"]
    if "litert" in engines.available_engines():
        assert rows["blazeface-short"]["engines"][0] == "litert"
    real = engines._installed
    monkeypatch.setattr(engines, "_installed", lambda e: e.name == "bnn" and real(e))  # a riscv64 install
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in board_check.json_lines(capsys.readouterr().out)}
    assert rows["blazeface-short"]["engines"] == [] and rows["scrfd-500m"]["engines"] == []
    assert rows["bnn-basicmotions"]["engines"] == ["bnn"]
    assert main(["models"]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "no engine on this platform reads .tflite" in table["blazeface-short"]
    assert "no engine on this platform reads .onnx" in table["scrfd-500m"]
    assert "no engine" not in table["bnn-racketsports"]
