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
        "astronaut.png.jpg", "camera.png.jpg", "couple.jpg"]  # and the hidden record of what anyedge wrote


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


def _photos(folder: Path, names: dict[str, str]) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for name, src in names.items():
        cv2.imwrite(str(folder / name), cv2.imread(str(SMOKE / src)))


def test_detect_out_names_each_copy_after_its_inputs_whole_name(tmp_path: Path) -> None:
    """x.png and x.jpg, in one folder or two, never share an output, in one command or in two."""
    _photos(tmp_path / "a", {"x.png": "astronaut.png", "x.jpg": "couple.jpg"})
    _photos(tmp_path / "b", {"x.jpg": "camera.png"})

    def detect(*args: str, out: str) -> dict[str, tuple[str, int]]:
        r = run("detect", *args, "--model", "scrfd-500m", "--json", "--out", out, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return {d["image"]: (d["out"], len(d["faces"])) for d in map(json.loads, r.stdout.splitlines())}

    assert detect("a", out="o1") == {"a/x.jpg": ("o1/x.jpg", 2), "a/x.png": ("o1/x.png.jpg", 1)}
    couple = (tmp_path / "o1" / "x.jpg").read_bytes()
    assert detect("a/x.png", out="o1") == {"a/x.png": ("o1/x.png.jpg", 1)}  # a later run of x.png alone
    assert (tmp_path / "o1" / "x.jpg").read_bytes() == couple  # leaves x.jpg's copy alone
    assert detect("a/x.png", "b/x.jpg", out="o2") == {"a/x.png": ("o2/x.png.jpg", 1), "b/x.jpg": ("o2/x.jpg", 1)}
    # one name from two folders in one command: each copy gets its folder's name in front
    got = detect("b/x.jpg", "a/x.jpg", "a/x.png", out="o3")
    assert got == {"b/x.jpg": ("o3/b_x.jpg", 1), "a/x.jpg": ("o3/a_x.jpg", 2), "a/x.png": ("o3/x.png.jpg", 1)}
    assert sorted(p.name for p in (tmp_path / "o3").iterdir()) == [".anyedge-outputs.json", "a_x.jpg", "b_x.jpg",
                                                                   "x.png.jpg"]


def test_detect_output_names_rule() -> None:
    from anyedge.detection.cli import output_names

    inputs = [("image", Path("a/x.jpg")), ("image", Path("a/x.png")), ("image", Path("b/x.JPG")),
              ("video", Path("v/clip.mp4")), ("video", Path("v/clip.avi")), ("image", Path("c/x.png"))]
    assert output_names(inputs) == ["x.jpg", "a_x.png.jpg", "x.JPG", "clip.annotated.mp4",
                                    "clip.avi.annotated.mp4", "c_x.png.jpg"]
    assert output_names([]) == []
