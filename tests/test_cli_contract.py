"""The CLI's promises: one-line failures with documented exit codes, -v anywhere, --version,
help for every option, video --out, broken pipes, pure --json stdout, the models' sources."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SMOKE, WIDER


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_version_matches_the_package() -> None:
    import anyedge

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"anyedge {anyedge.__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_is_accepted_anywhere_and_shows_the_traceback(where: str) -> None:
    args = ["detect", str(SMOKE / "astronaut.png"), "--model", "nope"]
    r = run(*(["-v", *args] if where == "before" else [*args, "-v"]))
    assert r.returncode == 2
    assert "Traceback" in r.stderr and r.stderr.rstrip().splitlines()[-1].startswith("anyedge: error: 'nope'")


def test_unexpected_exception_is_one_line_with_exit_1_and_traceback_only_with_v() -> None:
    code = ("import sys, anyedge.cli as c, anyedge.registry.cli as m\n"
            "def boom(args):\n    raise RuntimeError('disk on fire\\nsecond line')\n"
            "m._cmd_models = boom\nsys.exit(c.main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "models"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert one_line(r.stderr) == ("anyedge: error: RuntimeError: disk on fire; second line "
                                  "(run with -v for the traceback)")
    r = subprocess.run([sys.executable, "-c", code, "models", "--verbose"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: disk on fire" in r.stderr


@pytest.mark.parametrize("args", [["detect", "--frames", "0", "--camera", "0"], ["nope"], ["convert"],
                                  ["har", "classify"]])
def test_usage_errors_are_one_line_with_exit_2(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2
    assert "error:" in one_line(r.stderr) and "--help" in r.stderr


def _walk(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _walk(child)


def test_every_option_has_help_and_every_command_an_example() -> None:
    from anyedge.cli import EXIT_CODES, build_parser

    top = build_parser()
    parsers = list(_walk(top))
    names = {p.prog for p in parsers}
    assert {"anyedge detect", "anyedge convert", "anyedge har classify", "anyedge har export-c"} <= names
    for p in parsers:
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert a.help and a.help != argparse.SUPPRESS, f"{p.prog} {a.option_strings or a.dest} has no help"
        assert p.epilog and "example" in p.epilog, f"{p.prog} has no example"
    text = top.format_help()
    for code in EXIT_CODES:
        assert f"  {code} " in text


def _wider_clip(path: Path, n: int = 6) -> None:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (416, 416))
    assert w.isOpened()
    for f in sorted(WIDER.glob("*.jpg"))[:n]:
        w.write(cv2.resize(cv2.imread(str(f)), (416, 416)))
    w.release()


def test_detect_video_out_writes_an_annotated_mp4_and_continues_with_later_inputs(tmp_path: Path) -> None:
    import cv2

    clip = tmp_path / "clip.mp4"
    _wider_clip(clip)
    out = tmp_path / "out"
    r = run("detect", str(clip), str(SMOKE / "astronaut.png"), "--model", "yunet", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x.get("frame") for x in lines] == [0, 1, 2, 3, 4, 5, None]
    assert len(lines[-1]["faces"]) == 1  # the image after the video was processed
    assert sorted(p.name for p in out.iterdir()) == [".anyedge-outputs.json", "astronaut.png.jpg",
                                                     "clip.annotated.mp4"]  # no temp files; the record
    cap = cv2.VideoCapture(str(out / "clip.annotated.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 6


def test_out_naming_an_existing_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "taken.txt"
    f.write_text("keep me")
    r = run("detect", str(SMOKE / "astronaut.png"), "--out", str(f))
    assert r.returncode == 2
    assert "is an existing file; expected a directory" in one_line(r.stderr)
    assert f.read_text() == "keep me"


def test_a_reader_that_stops_early_ends_without_broken_pipe_errors() -> None:
    p = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "detect", str(WIDER), "--model", "yunet",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()  # type: ignore[union-attr]
    p.stdout.close()  # type: ignore[union-attr]  # like `| head -1`
    err = p.stderr.read()  # type: ignore[union-attr]
    assert p.wait(timeout=300) == 141
    assert json.loads(first)["faces"] is not None
    assert "BrokenPipeError" not in err and "Traceback" not in err and "Exception ignored" not in err


def test_models_says_where_a_missing_model_is_published(tmp_path: Path) -> None:
    env = {**os.environ, "ANYEDGE_MODEL_PATH": str(tmp_path / "none"), "ANYEDGE_CACHE_DIR": str(tmp_path / "c"),
           "ANYEDGE_OFFLINE": "1"}
    r = run("models", env=env)
    assert r.returncode == 0, r.stderr
    assert "where to get it" in r.stdout.splitlines()[0]
    row = next(x for x in r.stdout.splitlines() if x.startswith("scrfd-500m"))
    assert "scrfd_500m_bnkps.onnx" in row and " no " in row
    short = next(x for x in r.stdout.splitlines() if x.startswith("blazeface-short"))
    assert "mediapipe==0.10.14" in short
    rows = {json.loads(x)["name"]: json.loads(x) for x in run("models", "--json", env=env).stdout.splitlines()}
    assert rows["yunet"]["present"] is None and "libfacedetection" in rows["yunet"]["source"]


def test_convert_without_images_names_the_calib_option(tmp_path: Path) -> None:
    env = {**os.environ, "ANYEDGE_DATA": str(tmp_path / "no-data")}
    r = run("convert", "yunet-n-320", "--target", "arm-cpu", "--out", str(tmp_path / "b"), cwd=tmp_path, env=env)
    assert r.returncode == 2
    assert "--calib DIR" in one_line(r.stderr)
    assert not (tmp_path / "b").exists()


def test_convert_json_for_an_openvino_target_is_pure_json(tmp_path: Path, faces_calib: Path) -> None:
    pytest.importorskip("nncf")
    r = run("convert", "yunet-n-320", "--target", "intel-npu", "--calib", str(faces_calib), "--out",
            str(tmp_path / "bundle"), "--json", "-v")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert doc["engine"] == "openvino" and Path(doc["bundle"]).is_dir()
    assert r.stderr.strip()  # NNCF's progress and -v logs went to stderr, not stdout


def test_routed_stdout_sends_foreign_writers_to_stderr() -> None:
    """A library that bound sys.stdout (a logging handler) while a command ran writes to stderr."""
    code = ("import logging, sys, anyedge.cli as c, anyedge.registry.cli as m\n"
            "def cmd(args):\n"
            "    h = logging.StreamHandler(sys.stdout); lg = logging.getLogger('thirdparty'); lg.addHandler(h)\n"
            "    lg.warning('INFO:thirdparty noise'); import os; os.write(1, b'C-level noise\\n')\n"
            "    print('{\"ok\": true}')\n"
            "m._cmd_models = cmd\nsys.exit(c.main(['models', '--json']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"ok": True}
    assert "INFO:thirdparty noise" in r.stderr and "C-level noise" in r.stderr


def _local_skimage_wheel(folder: Path) -> Path:
    """A stand-in for the scikit-image wheel on PyPI holding the real astronaut photo."""
    import zipfile

    from anyedge.samples import SAMPLES

    requirement, member, _, _ = SAMPLES["astronaut"]
    version = requirement.split("==")[1]
    folder.mkdir()
    dist = f"scikit_image-{version}.dist-info"
    with zipfile.ZipFile(folder / f"scikit_image-{version}-py3-none-any.whl", "w") as zf:
        zf.write(SMOKE / "astronaut.png", member)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: scikit-image\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: anyedge-tests\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return folder


def test_sample_photo_is_fetched_once_and_has_one_face_for_every_detector(tmp_path: Path, monkeypatch) -> None:
    import cv2

    from anyedge import FaceDetector
    from anyedge.errors import ModelNotFoundError
    from anyedge.registry import list_models, sha256_file
    from anyedge.samples import SAMPLES, sample_image

    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="--image"):  # nothing cached, downloads off
        sample_image()
    monkeypatch.delenv("ANYEDGE_OFFLINE")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(_local_skimage_wheel(tmp_path / "index")))
    path = sample_image()
    assert path.parent == tmp_path / "cache" and sha256_file(path) == SAMPLES["astronaut"][3]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    assert sample_image() == path  # cached: no second fetch
    img = cv2.imread(str(path))
    for m in list_models():
        if m.task == "face_detection":
            with FaceDetector.create(m.name, channels="BGR") as det:
                assert len(det.detect(img)) == 1, m.name


def test_models_precision_shows_what_each_engine_runs() -> None:
    """`models --precision` opens each present model: float ONNX files run at fp32 on every engine."""
    r = run("models", "--precision", "--json")
    assert r.returncode == 0, r.stderr
    rows = {d["name"]: d for d in map(json.loads, r.stdout.splitlines())}
    scrfd = rows["scrfd-500m"]["precision"]
    assert set(scrfd) >= {"onnxruntime"} and set(scrfd.values()) == {"fp32"}
    assert rows["bnn-racketsports"]["precision"] == {"bnn": "binary"}


@pytest.mark.parametrize("module", ["anyedge.converters.cli", "anyedge.har.cli"])
def test_a_command_whose_module_fails_to_import_fails_loudly(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from anyedge import cli

    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    with pytest.raises(ImportError, match=module):  # not a parser that silently lacks the command
        cli.build_parser()
