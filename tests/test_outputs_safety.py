"""No output replaces an input or a file anyedge did not write; bad option values are one-line usage errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import socketserver
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from anyedge.cli import main

from .conftest import SMOKE


def _photo(name: str) -> np.ndarray:
    img = cv2.imread(str(SMOKE / name))
    assert img is not None
    return img


def _video(path: Path, frames: int = 6, fourcc: str = "mp4v") -> Path:
    img = cv2.resize(_photo("astronaut.png"), (160, 160))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (160, 160))
    assert w.isOpened()
    for i in range(frames):
        w.write(np.roll(img, 8 * i, axis=1))
    w.release()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: _digest(p) for p in folder.iterdir() if p.is_file()}


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("anyedge") or ln.startswith("usage")]
    assert len(lines) == 1, err
    return lines[0]


# -- outputs never replace an input -------------------------------------------------------------------
def test_detect_out_into_the_input_folder_keeps_every_photo(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    cv2.imwrite(str(d / "astronaut.jpg"), _photo("astronaut.png"))
    cv2.imwrite(str(d / "couple.jpg"), _photo("couple.jpg"))
    before = _snapshot(d)
    assert main(["detect", str(d), "--out", str(d), "--json"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {Path(r["image"]).name for r in records} == {"astronaut.jpg", "couple.jpg"}
    after = _snapshot(d)
    assert {n: after[n] for n in before} == before  # the photos are untouched
    annotated = {Path(r["out"]).name for r in records}
    assert len(annotated) == 2 and not annotated & set(before) and annotated <= set(after)
    # a second run reads the photos only (not its own annotated copies) and replaces its own outputs
    assert main(["detect", str(d), "--out", str(d), "--json"]) == 0
    again = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {Path(r["image"]).name for r in again} == {"astronaut.jpg", "couple.jpg"}
    assert {Path(r["out"]).name for r in again} == annotated
    assert {n: _digest(d / n) for n in before} == before


def test_run_out_equal_to_the_source_is_refused_and_the_video_kept(tmp_path, capsys):
    v = _video(tmp_path / "v.mp4")
    before = _digest(v)
    rc = main(["run", "--source", str(v), "--out", str(v), "--every-frame"])
    line = _error_line(capsys.readouterr().err)
    assert rc == 2 and "is an input" in line and str(v) in line
    assert _digest(v) == before


def test_bench_out_never_replaces_the_run_it_reads(tmp_path, capsys):
    from .test_bench import NEW

    out = tmp_path / "out"
    out.mkdir()
    saved = out / "bench.json"
    saved.write_text(json.dumps(NEW))
    before = saved.read_bytes()
    assert main(["bench", "--from-json", str(saved), "--out", str(out), "--no-png", "--json"]) == 0
    capsys.readouterr()
    assert saved.read_bytes() == before
    # the saved run is rendered beside it, and its JSON is not copied again
    assert sorted(p.name for p in out.iterdir()) == [".anyedge-outputs.json", "bench.csv", "bench.json"]


# -- outputs that would collide get distinct names ----------------------------------------------------
def test_detect_inputs_with_the_same_name_get_distinct_outputs(tmp_path, capsys):
    (tmp_path / "c1").mkdir()
    (tmp_path / "c2").mkdir()
    cv2.imwrite(str(tmp_path / "c1" / "x.jpg"), _photo("astronaut.png"))
    cv2.imwrite(str(tmp_path / "c2" / "x.jpg"), cv2.resize(_photo("camera.png"), (320, 240)))
    cv2.imwrite(str(tmp_path / "c1" / "x.png"), _photo("couple.jpg"))
    oc = tmp_path / "oc"
    args = [str(tmp_path / "c1" / "x.jpg"), str(tmp_path / "c2" / "x.jpg"), str(tmp_path / "c1" / "x.png")]
    assert main(["detect", *args, "--out", str(oc), "--json"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    outs = [Path(r["out"]) for r in records]
    assert len(set(outs)) == 3 and all(p.is_file() for p in outs)
    shapes = {cv2.imread(str(p)).shape for p in outs}  # three different photos, three different files
    assert len(shapes) == 3


# -- a file anyedge did not write is never replaced ---------------------------------------------------
def test_detect_keeps_a_file_of_the_same_name_it_did_not_write(tmp_path, capsys):
    photo = tmp_path / "x.jpg"
    cv2.imwrite(str(photo), _photo("astronaut.png"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.jpg").write_bytes(b"the user's own file")
    assert main(["detect", str(photo), "--out", str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert (out / "x.jpg").read_bytes() == b"the user's own file"
    assert Path(rec["out"]) != out / "x.jpg" and cv2.imread(rec["out"]) is not None


def test_run_out_onto_a_file_it_did_not_write_is_refused(tmp_path, capsys):
    v = _video(tmp_path / "v.mp4")
    mine = tmp_path / "mine.avi"
    mine.write_bytes(b"holiday video")
    rc = main(["run", "--source", str(v), "--out", str(mine), "--every-frame"])
    line = _error_line(capsys.readouterr().err)
    assert rc == 2 and "not written by anyedge" in line and mine.read_bytes() == b"holiday video"
    # its own earlier output is replaced
    out = tmp_path / "annotated.avi"
    for _ in range(2):
        assert main(["run", "--source", str(v), "--out", str(out), "--every-frame", "--json"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["out"] == str(out)


def test_export_c_again_keeps_a_file_the_user_added(tmp_path, capsys):
    out = tmp_path / "app"
    assert main(["export-c", "yunet-n-320", "--out", str(out)]) == 0
    (out / "my_app_code.c").write_text("int main(void) { return 0; }\n")
    rc = main(["export-c", "yunet-n-320", "--out", str(out)])
    line = _error_line(capsys.readouterr().err)
    assert rc == 2 and "my_app_code.c" in line
    assert (out / "my_app_code.c").read_text() == "int main(void) { return 0; }\n"
    assert (out / "yunet_n_320.h").is_file()  # the earlier export is still whole
    (out / "my_app_code.c").unlink()
    assert main(["export-c", "yunet-n-320", "--out", str(out)]) == 0  # only its own files: replaced


def test_har_export_c_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    header = tmp_path / "model.h"
    header.write_text("/* hand-written */\n")
    assert main(["har", "export-c", "--model", "bnn-basicmotions", "--out", str(header)]) == 2
    assert "not written by anyedge" in _error_line(capsys.readouterr().err)
    assert header.read_text() == "/* hand-written */\n"
    fresh = tmp_path / "gen.h"
    for _ in range(2):  # its own output is replaced
        assert main(["har", "export-c", "--model", "bnn-basicmotions", "--out", str(fresh)]) == 0
    assert "aebnn_model_bnn_basicmotions" in fresh.read_text()


# -- option values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, option", [
    (["verify", "a.jpg", "b.jpg", "--threshold", "nan"], "--threshold"),
    (["verify", "a.jpg", "b.jpg", "--threshold", "1.5"], "--threshold"),
    (["gallery", "identify", "a.jpg", "--db", "none.db", "--threshold", "inf"], "--threshold"),
    (["detect", "a.jpg", "--score", "nan"], "--score"),
    (["detect", "a.jpg", "--score", "2"], "--score"),
    (["run", "--source", "none.mp4", "--score", "-0.1"], "--score"),
    (["run", "--source", "none.mp4", "--frames", "-1"], "--frames"),
    (["run", "--source", "none.mp4", "--duration", "-5"], "--duration"),
    (["run", "--source", "none.mp4", "--duration", "nan"], "--duration"),
    (["run", "--source", "none.mp4", "--timeout", "-1"], "--timeout"),
    (["run", "--source", "none.mp4", "--threads", "0"], "--threads"),
    (["har", "stream", "--source", "none.csv", "--hop", "0"], "--hop"),
    (["bench", "--from-json", "none.json", "--timeout", "nan"], "--timeout"),
    (["bench", "--from-json", "none.json", "--runs", "0"], "--runs"),
    (["convert", "yunet", "--target", "arm-cpu", "--out", "x", "--calib", "none", "--max-drop", "nan"],
     "--max-drop"),
    (["convert", "yunet", "--target", "arm-cpu", "--out", "x", "--calib", "none", "--max-calibration", "-3"],
     "--max-calibration"),
])
def test_bad_option_values_are_one_line_usage_errors(args, option, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(args)
    line = _error_line(capsys.readouterr().err)
    assert e.value.code == 2 and f"argument {option}" in line and "expected" in line


def test_detect_on_an_empty_folder_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["detect", str(tmp_path / "empty")])
    captured = capsys.readouterr()
    assert rc == 2 and "no images or videos" in _error_line(captured.err) and captured.out == ""


def test_run_on_a_file_without_readable_frames_is_exit_2(tmp_path, capsys):
    v = _video(tmp_path / "broken.mp4")
    data = bytearray(v.read_bytes())
    start, end = data.find(b"mdat"), data.find(b"moov")
    assert 0 < start < end
    data[start + 4:end - 4] = bytes(end - 4 - start - 4)  # the container opens; no frame decodes
    v.write_bytes(bytes(data))
    rc = main(["run", "--source", str(v), "--every-frame"])
    assert rc == 2 and "no frame could be read" in _error_line(capsys.readouterr().err)


def test_a_camera_index_that_cannot_exist_is_one_line_exit_2(capsys):
    assert main(["run", "--source", "99999999999"]) == 2
    assert "camera index 99999999999 cannot exist" in _error_line(capsys.readouterr().err)


def test_a_stream_that_stalls_is_not_reported_as_its_end(tmp_path, capsys):
    data = _video(tmp_path / "s.avi", frames=40, fourcc="MJPG").read_bytes()
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # half the video, then silence
            self.send_response(200)
            self.send_header("Content-Type", "video/x-msvideo")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *args: object) -> None:
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t = time.monotonic()
        url = f"http://127.0.0.1:{server.server_address[1]}/s.avi"
        assert main(["run", "--source", url, "--timeout", "2", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert time.monotonic() - t < 20
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert summary["captured"] > 0 and summary["stopped_by"].startswith("stalled"), summary


def test_convert_out_onto_its_input_bundle_is_refused_up_front(tmp_path, capsys):
    from anyedge.bundle import write_bundle
    from anyedge.registry import resolve_model

    from .conftest import WIDER
    from .test_manifest import face_manifest

    bundle = tmp_path / "b"
    write_bundle(bundle, {"model.onnx": resolve_model("yunet-n-320")[0]}, face_manifest())
    before = _snapshot(bundle)
    t = time.monotonic()
    rc = main(["convert", str(bundle), "--target", "arm-cpu", "--calib", str(WIDER), "--out", str(bundle)])
    line = _error_line(capsys.readouterr().err)
    assert rc == 2 and "is the input" in line and time.monotonic() - t < 30  # before any conversion work
    assert _snapshot(bundle) == before
