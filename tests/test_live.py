"""Live streams (`anyedge run`, anyedge.live) and `anyedge har stream`."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .clip_support import read_frames
from .conftest import SMOKE, WIDER
from .har_support import har_file


def run(*args: str, timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def _clip(path: Path, frames: int, size: tuple[int, int] = (320, 240), fps: float = 30.0) -> list[np.ndarray]:
    """A real-image clip: WIDER photos and the smoke faces, a few frames each."""
    import cv2

    photos = [cv2.imread(str(SMOKE / "couple.jpg"))] + [cv2.imread(str(f)) for f in sorted(WIDER.glob("*.jpg"))[:4]]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert w.isOpened()
    for i in range(frames):
        w.write(cv2.resize(photos[(i // 3) % len(photos)], size))
    w.release()
    out = read_frames(path)
    assert len(out) == frames
    return out


def test_drop_queue_keeps_only_the_newest_frames() -> None:
    from anyedge.live import DropQueue

    for size in (1, 2):
        q = DropQueue(size)
        for i in range(5):
            q.put(i)
        assert q.dropped == 5 - size
        got = [q.get(timeout=0.01) for _ in range(size)]
        assert got == list(range(5 - size, 5)) and q.get(timeout=0.01) is None


@pytest.mark.parametrize("model", ["blazeface-short", "blazeface-full", "scrfd-500m", "yunet", "yunet-n-320",
                                   "retinaface-mnet025", "ultraface-rfb320"])
def test_every_detector_gives_the_same_faces_live_as_on_single_frames(tmp_path: Path, model: str) -> None:
    from anyedge import FaceDetector
    from anyedge.live import open_source, run_live

    frames = _clip(tmp_path / "clip.avi", 4)
    seen: dict[int, list] = {}
    with FaceDetector.create(model, channels="BGR") as det:
        summary = run_live(open_source(str(tmp_path / "clip.avi")), det.detect, every_frame=True,
                           on_frame=lambda i, f, faces, lat, inf: seen.__setitem__(i, faces.to_list()))
        expected = {i: det.detect(f).to_list() for i, f in enumerate(frames)}
    assert summary.captured == summary.processed == 4 and summary.dropped == 0
    assert seen == expected


def test_slow_inference_drops_stale_frames_instead_of_queueing_them(tmp_path: Path) -> None:
    from anyedge.live import open_source, run_live

    _clip(tmp_path / "clip.avi", 30)
    order: list[int] = []

    def slow(frame: np.ndarray) -> int:
        time.sleep(0.1)  # 3 frame periods at 30 fps
        return int(frame.sum() % 7)

    s = run_live(open_source(str(tmp_path / "clip.avi")), slow, queue_size=1,
                 on_frame=lambda i, f, r, lat, inf: order.append(i))
    assert s.captured == 30 and s.dropped > 0
    assert s.processed + s.dropped in (29, 30)  # at most the queue's one frame is left at the end
    assert order == sorted(order) and max(np.diff(order)) > 1  # the stale frames in between were skipped


def test_run_on_a_file_reports_frames_stats_and_summary_and_writes_the_video(tmp_path: Path) -> None:
    import cv2

    _clip(tmp_path / "clip.avi", 45)
    out = tmp_path / "annotated.mp4"
    r = run("run", "--source", str(tmp_path / "clip.avi"), "--model", "yunet-n-320", "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    frames = [x for x in lines if x["type"] == "frame"]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["stopped_by"] == "end of source"
    assert summary["captured"] == 45 and summary["processed"] == len(frames)
    assert summary["processed"] + summary["dropped"] in (44, 45)
    assert [f["frame"] for f in frames] == sorted({f["frame"] for f in frames})
    assert frames[0]["frame"] == 0 and len(frames[0]["faces"]) == 2  # couple.jpg opens the clip
    assert all(f["latency_ms"] >= f["infer_ms"] > 0 for f in frames)
    assert summary["out"] == str(out) and not list(tmp_path.glob(".*part*"))
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == summary["processed"]


def test_run_stops_cleanly_on_sigterm_with_a_summary(tmp_path: Path) -> None:
    _clip(tmp_path / "clip.avi", 300)  # 10 s at 30 fps
    p = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "run", "--source", str(tmp_path / "clip.avi"),
                          "--model", "yunet-n-320", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    first = json.loads(p.stdout.readline())  # type: ignore[union-attr]
    assert first["type"] == "frame"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["type"] == "summary" and summary["stopped_by"] == "signal" and summary["captured"] < 300


def test_a_missing_camera_index_is_a_clear_error() -> None:
    r = run("run", "--source", "7", "--model", "yunet-n-320", timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("anyedge: error: camera 7 could not be opened") and "Traceback" not in r.stderr
    assert not [x for x in lines if "WARN" in x]  # OpenCV's back-end chatter is not shown without -v


def test_a_url_where_nothing_listens_is_a_clear_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = run("run", "--source", f"http://127.0.0.1:{port}/stream.mjpg", "--timeout", "2", "--model", "yunet-n-320",
            timeout=60)
    assert r.returncode == 2
    assert "did not answer" in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr


def test_a_url_that_never_answers_gives_up_after_the_timeout() -> None:
    with socket.socket() as s:  # accepts the connection, never sends a byte
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        t = time.monotonic()
        r = run("run", "--source", f"http://127.0.0.1:{s.getsockname()[1]}/live", "--timeout", "2",
                "--model", "yunet-n-320", timeout=120)
        elapsed = time.monotonic() - t
    assert r.returncode == 2
    assert "did not answer within 2 s" in r.stderr.strip().splitlines()[-1]
    assert elapsed < 60  # it gave up instead of hanging (the bound only guards against a hang)


def test_gallery_with_a_broken_recognition_import_fails_loudly(tmp_path: Path) -> None:
    _clip(tmp_path / "clip.avi", 3)
    blocker = ("import sys, importlib.abc\n"
               "class B(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path, target=None):\n"
               "        if name == 'anyedge.recognition.pipeline': raise ImportError(name)\n"
               "sys.meta_path.insert(0, B())\n"
               "from anyedge.cli import main\nsys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", blocker, "run", "--source", str(tmp_path / "clip.avi"),
                        "--gallery", str(tmp_path / "people.db")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1  # an internal error, named; not a usage message that hides it
    assert "ImportError: anyedge.recognition.pipeline" in r.stderr.strip().splitlines()[-1], r.stderr


def test_gallery_puts_names_on_live_faces(tmp_path: Path) -> None:
    """Enrol the astronaut from the still photo; the live clip of the same photo names her."""
    import cv2

    db = tmp_path / "people.db"
    r = run("gallery", "enroll", "eileen", str(SMOKE / "astronaut.png"), "--db", str(db))  # records yunet
    assert r.returncode == 0, r.stderr
    frame = cv2.resize(cv2.imread(str(SMOKE / "astronaut.png")), (320, 320))
    w = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 320))
    for _ in range(3):
        w.write(frame)
    w.release()
    r = run("run", "--source", str(tmp_path / "clip.avi"), "--every-frame", "--gallery", str(db), "--json")
    assert r.returncode == 0, r.stderr
    frames = [d for d in map(json.loads, r.stdout.splitlines()) if d.get("type") == "frame"]
    assert len(frames) == 3
    assert all([f["name"] for f in d["faces"]] == ["eileen"] for d in frames)
    assert all(len(f["keypoints"]) == 5 for d in frames for f in d["faces"])  # the gallery's yunet, not blazeface
    # A detector without keypoints cannot be aligned: one clear line, exit 2.
    r = run("run", "--source", str(tmp_path / "clip.avi"), "--model", "ultraface-rfb320", "--every-frame",
            "--gallery", str(db))
    assert r.returncode == 2 and "keypoints" in r.stderr.strip().splitlines()[-1]


def _ts_as_csv(ts: Path, csv: Path) -> int:
    from anyedge.har.data import load_ts

    data = load_ts(ts)
    with csv.open("w") as f:
        f.write("acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n")
        for case in data.x:
            for row in case:
                f.write(",".join(repr(float(v)) for v in row) + "\n")
    return data.x.shape[1]


def test_har_stream_gives_the_same_labels_as_classify_on_the_same_windows(tmp_path: Path) -> None:
    ts = har_file("RacketSports", "test")
    length = _ts_as_csv(ts, tmp_path / "rs.csv")
    r = run("har", "stream", "--model", "bnn-racketsports", "--hop", str(length), "--json",
            stdin=(tmp_path / "rs.csv").read_text())
    assert r.returncode == 0, r.stderr
    streamed = [json.loads(x) for x in r.stdout.splitlines()]
    c = run("har", "classify", str(ts), "--model", "bnn-racketsports", "--json")
    classified = [json.loads(x) for x in c.stdout.splitlines()]
    assert len(streamed) == len(classified) == 152
    assert [s["start"] for s in streamed] == [i * length for i in range(152)]
    assert [s["label"] for s in streamed] == [x["label"] for x in classified]
    assert [s["score"] for s in streamed] == [x["score"] for x in classified]
    f = run("har", "stream", "--model", "bnn-racketsports", "--hop", str(length), "--json",
            "--source", str(tmp_path / "rs.csv"))
    assert f.stdout == r.stdout


def test_har_stream_names_a_malformed_line() -> None:
    r = run("har", "stream", "--model", "bnn-racketsports", stdin="1,2,3,4,5,6\n1,2,x,4,5,6\n")
    assert r.returncode == 2
    assert r.stderr.strip() == "anyedge: error: line 2: expected 6 comma-separated numbers, got '1,2,x,4,5,6'"


def test_har_stream_reads_a_serial_style_device(tmp_path: Path) -> None:
    """A pseudo-terminal stands in for the IMU's serial port (a character device, read as lines)."""
    import os
    import tty

    length = _ts_as_csv(har_file("RacketSports", "test"), tmp_path / "rs.csv")
    rows = (tmp_path / "rs.csv").read_text().splitlines()[: 1 + 3 * length]  # header + 3 windows
    master, slave = os.openpty()
    tty.setraw(slave)
    p = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "har", "stream", "--model", "bnn-racketsports",
                          "--hop", str(length), "--json", "--source", os.ttyname(slave)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got = []
        for row in rows:
            os.write(master, (row + "\n").encode())
        for _ in range(3):
            got.append(json.loads(p.stdout.readline()))  # type: ignore[union-attr]  # a label per hop, live
    finally:
        os.close(master)  # the device hangs up
        os.close(slave)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    classified = [json.loads(x) for x in run("har", "classify", str(har_file("RacketSports", "test")),
                                             "--json").stdout.splitlines()[:3]]
    assert [g["label"] for g in got] == [c["label"] for c in classified]
    assert out == "" and "error" not in err  # the hang-up ends the stream cleanly


@pytest.mark.parametrize("args, message", [
    (["--source", "picamera"], "the Pi camera needs picamera2"),
    (["--source", "/nonexistent/clip.mp4"], "no such file; expected a video file, a camera index"),
    (["--source", "0", "--queue", "3"], "--queue must be 1 or 2"),
    (["--source", "0", "--out", "annotated.gif"], "expected one of .avi, .m4v, .mkv, .mov, .mp4"),
])
def test_run_source_and_option_errors_are_one_line(args: list[str], message: str) -> None:
    pytest.importorskip("cv2")
    if args[1] == "picamera" and importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here")
    r = run("run", *args, "--model", "yunet-n-320", timeout=120)
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
