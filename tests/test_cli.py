from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from .conftest import SMOKE


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_detect_json_on_a_folder_and_annotated_output(tmp_path: Path) -> None:
    r = run("detect", str(SMOKE), "--model", "scrfd-500m", "--json", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    by_name = {Path(d["image"]).name: d for d in lines}
    assert set(by_name) == {"astronaut.png", "camera.png", "couple.jpg"}
    assert len(by_name["astronaut.png"]["faces"]) == 1
    assert len(by_name["couple.jpg"]["faces"]) == 2
    face = by_name["astronaut.png"]["faces"][0]
    assert len(face["box"]) == 4 and 0 < face["score"] <= 1 and len(face["keypoints"]) == 5
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "astronaut.jpg", "camera.jpg", "couple.jpg"]  # and the hidden record of what anyedge wrote


def test_detect_on_a_video_prints_one_line_per_frame(tmp_path: Path) -> None:
    import cv2

    img = cv2.imread(str(SMOKE / "astronaut.png"))
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (img.shape[1], img.shape[0]))
    assert w.isOpened()
    for dx in range(4):
        w.write(np.roll(img, dx * 20, axis=1))
    w.release()
    r = run("detect", str(video), "--model", "yunet", "--json")
    assert r.returncode == 0, r.stderr
    frames = [json.loads(x) for x in r.stdout.splitlines()]
    assert [f["frame"] for f in frames] == [0, 1, 2, 3]
    assert all(len(f["faces"]) == 1 for f in frames)
    xs = [f["faces"][0]["box"][0] for f in frames]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 40  # the face moves right with the roll


def test_unknown_model_is_an_error_not_a_traceback() -> None:
    r = run("detect", str(SMOKE / "astronaut.png"), "--model", "nope")
    assert r.returncode == 2
    assert "'nope' is not a registered model" in r.stderr and "Traceback" not in r.stderr


def test_unreadable_image_is_reported_and_others_still_run(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    r = run("detect", str(bad), str(SMOKE / "astronaut.png"), "--json")
    assert r.returncode == 1
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert "error" in lines[0] and len(lines[1]["faces"]) == 1


def test_models_lists_the_registry() -> None:
    r = run("models", "--json")
    assert r.returncode == 0
    names = {json.loads(x)["name"] for x in r.stdout.splitlines()}
    assert {"blazeface-short", "scrfd-500m", "yunet", "retinaface-mnet025", "ultraface-rfb320"} <= names


def test_demo_runs_every_engine_and_writes_the_image(tmp_path: Path) -> None:
    r = run("demo", "--runs", "2", "--models", "blazeface-short,yunet", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "demo.json").read_text())
    engines = {(x["model"], x["engine"]) for x in report["results"]}
    assert ("blazeface-short", "litert") in engines and ("yunet", "onnxruntime") in engines
    assert all(x["faces"] == 1 for x in report["results"])
    assert (tmp_path / "demo_yunet.jpg").stat().st_size > 1000


def test_import_anyedge_stays_light() -> None:
    code = ("import sys, anyedge; heavy = [m for m in ('onnxruntime', 'openvino', 'ai_edge_litert', 'cv2', "
            "'nncf', 'torch', 'onnx') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout


def test_camera_source_that_cannot_be_opened_is_a_clear_error() -> None:
    r = run("detect", "--camera", "7", "--frames", "1")
    assert r.returncode == 2
    assert "could not be opened" in r.stderr and "Traceback" not in r.stderr


def test_camera_frames_from_a_stream_source(tmp_path: Path) -> None:
    """--camera takes any OpenCV source; a video file stands in for a camera here."""
    import cv2

    img = cv2.imread(str(SMOKE / "couple.jpg"))
    img = cv2.resize(img, (640, 480))
    video = tmp_path / "cam.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 480))
    for _ in range(3):
        w.write(img)
    w.release()
    r = run("detect", "--camera", str(video), "--frames", "2", "--json", "--model", "yunet")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["frame"] for x in lines] == [0, 1] and all(len(x["faces"]) == 2 for x in lines)


def test_detect_needs_a_path_or_a_camera() -> None:
    r = run("detect")
    assert r.returncode == 2 and "--camera" in r.stderr
