"""convert --calib SOURCE from a video file or a live source: sampling, near-duplicates, the manifest
record, the counted errors, and the one-line refusals (missing camera, missing conversion extra)."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from anyedge.converters.frames import FrameSampling, public_name, sample_frames
from anyedge.errors import CalibrationError

from .clip_support import _letterbox, make_clip
from .conftest import SMOKE, WIDER

SMALL = (320, 240)


def cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "\r" not in ln and "img/s" not in ln]
    assert len(lines) == 1 and lines[0].startswith("anyedge: error: "), r.stderr[-2000:]
    assert "Traceback" not in r.stderr and r.stdout == ""
    return lines[0]


def _wider(n: int) -> list[Path]:
    files = sorted(WIDER.glob("*.jpg"))
    return files[:: len(files) // n][:n]


# -- sampling a video file -----------------------------------------------------------------------
@pytest.mark.parametrize(("images", "hold", "frames", "sampled", "dropped"), [
    (10, 6, 20, 20, 10),   # two samples per held image: one of each pair is a near-duplicate
    (10, 6, 5, 5, 0),      # one sample in every other image
    (10, 6, 100, 60, 50),  # more asked than the clip has: every frame once
    (10, 1, 20, 10, 0),    # a frame per image
])
def test_video_frames_spread_over_the_clip_and_near_duplicates_dropped(images, hold, frames, sampled, dropped,
                                                                      tmp_path: Path) -> None:
    import cv2

    photos = _wider(images)
    clip = make_clip(photos, tmp_path / "clip.mp4", fps=10, hold=hold, size=SMALL)
    got = sample_frames(clip, tmp_path / "frames", FrameSampling(frames=frames), show=False)
    assert (got.sampled, got.duplicates, len(got.files)) == (sampled, dropped, sampled - dropped)
    assert got.kind == "video" and got.length == images * hold
    # the kept frames are the clip's images, in order, at the positions spread over its length
    length, n = images * hold, min(frames, images * hold)
    expected = sorted({int((i + 0.5) * length / n) // hold if n < length else i // hold for i in range(n)})
    thumbs = [cv2.resize(cv2.cvtColor(_letterbox(cv2.imread(str(p)), SMALL), cv2.COLOR_BGR2GRAY), (32, 32),
                         interpolation=cv2.INTER_AREA).astype(int) for p in photos]
    for f, want in zip(got.files, expected):
        t = cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2GRAY), (32, 32),
                       interpolation=cv2.INTER_AREA).astype(int)
        assert int(np.argmin([np.abs(t - r).mean() for r in thumbs])) == want
    assert len(got.files) == len(expected)


def test_a_scene_that_comes_back_is_a_near_duplicate_of_the_first_time(tmp_path: Path) -> None:
    a, b, c = _wider(3)
    clip = make_clip([a, b, a, c, b], tmp_path / "clip.mp4", fps=10, hold=2, size=SMALL)
    got = sample_frames(clip, tmp_path / "f", FrameSampling(frames=10), show=False)
    assert (got.sampled, got.duplicates, len(got.files)) == (10, 7, 3)
    every = sample_frames(clip, tmp_path / "g", FrameSampling(frames=10, min_change=0.0), show=False)
    assert (every.sampled, every.duplicates) == (10, 0)


def test_a_clip_of_one_scene_gives_the_counted_too_few_frames_error(tmp_path: Path) -> None:
    clip = make_clip(_wider(1), tmp_path / "still.mp4", fps=10, hold=30, size=SMALL)
    with pytest.raises(CalibrationError, match=r"gave 1 distinct frame\(s\) \(30 sampled, 29 dropped as "
                                               r"near-duplicates\); calibration needs at least 3"):
        sample_frames(clip, tmp_path / "f", FrameSampling(frames=50), show=False)


@pytest.mark.parametrize(("bad", "message"), [
    ({"frames": 0}, "frames must be a positive whole number"),
    ({"every_s": float("nan")}, "every_s must be a finite number > 0"),
    ({"min_change": -1.0}, r"min_change must be a number in \[0, 255\]"),
])
def test_bad_sampling_settings_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        FrameSampling(**bad)


@pytest.mark.parametrize(("source", "recorded"), [
    ("rtsp://admin:hunter2@cam.local:554/live?token=abc#x", "rtsp://cam.local:554/live"),
    ("http://user@[::1]:8080/a.mp4", "http://[::1]:8080/a.mp4"),
    ("clips/door.mp4", "clips/door.mp4"),
    ("0", "0"),
])
def test_a_recorded_source_never_holds_credentials(source: str, recorded: str) -> None:
    assert public_name(source) == recorded


# -- conversions from a clip ---------------------------------------------------------------------
def _readme_commands() -> list[list[str]]:
    """The commands of the README's "Calibrate from your camera" block."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("**Calibrate from your camera.**", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    cmds = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert len(cmds) == 2 and all(c[:2] == ["anyedge", "convert"] for c in cmds)
    return cmds


def test_readme_calibrate_from_your_camera(tmp_path: Path) -> None:
    """The README's commands. The clip: 70 distinct WIDER images, each held 3 frames (210 frames); the
    camera: converted where one exists, else the one-line refusal."""
    clip_cmd, camera_cmd = _readme_commands()
    make_clip(_wider(70), tmp_path / "clip.mp4", fps=10, hold=3)
    r = cli(*clip_cmd[1:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    cal = json.loads((tmp_path / "yunet-arm" / "manifest.json").read_text())["calibration"]
    # 120 positions over 210 frames: 70 images, 50 second samples of an image dropped; 2 in 3 calibrate
    assert cal["kind"] == "video" and cal["source"] == "clip.mp4" and cal["video_frames"] == 210
    assert (cal["frames_requested"], cal["sampled"], cal["duplicates_dropped"], cal["kept"]) == (120, 120, 50, 70)
    assert (cal["images"], cal["held_back"]) == (47, 23)
    assert cal["dedup"]["min_change"] == 2.0 and "folder" not in cal
    assert "calib    video clip.mp4: 120 frames sampled, 50 dropped as near-duplicates, 70 kept" in r.stdout
    assert "fidelity gate F1 >= 0.95 on 23 held-back frames; 47 calibration frames" in r.stdout
    f1 = float(re.search(r"PASS onnxruntime .* F1 (\S+)", r.stdout).group(1))
    assert f1 >= 0.95
    r = cli(*camera_cmd[1:], cwd=tmp_path, timeout=300)
    if Path("/dev/video0").exists():
        assert r.returncode == 0, r.stderr[-3000:]
    else:
        assert "camera 0 could not be opened (no /dev/video* device exists here)" in _one_line_error(r)


def test_a_clip_with_too_few_faces_gives_the_counted_error(tmp_path: Path) -> None:
    import cv2

    background = (np.load(SMOKE / "lfw_subset.npy")[100:112] * 255).round().astype(np.uint8)
    scenes = [cv2.imread(str(SMOKE / "couple.jpg")), cv2.imread(str(SMOKE / "astronaut.png"))]
    scenes += [cv2.resize(c, (400, 400)) for c in background]
    make_clip(scenes, tmp_path / "few.mp4", fps=10, hold=4, size=SMALL)
    r = cli("convert", "yunet-n-320", "--target", "arm-cpu", "--calib", "few.mp4", "--calib-frames", "28",
            "--out", "b", cwd=tmp_path)
    line = _one_line_error(r)
    m = re.search(r"finds (\d+) face\(s\) in the (\d+) held-back frames; the fidelity gate needs at least 20 to "
                  r"judge \(28 sampled, (\d+) dropped as near-duplicates, every third of the (\d+) kept is held back: "
                  r"sample more frames with --calib-frames \(now 28\), use a longer clip, or one where faces are "
                  r"visible\)", line)
    assert m, line
    found, held, dropped, kept = map(int, m.groups())
    assert found < 20 and kept == 14 and dropped == 14 and held == kept // 3
    assert not (tmp_path / "b").exists()


# -- a stream URL --------------------------------------------------------------------------------
class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Files with HTTP Range support (FFmpeg seeks to an mp4's index at the end); no query strings."""

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        self.path = self.path.split("?", 1)[0]
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start_s, _, end_s = rng.removeprefix("bytes=").partition("-")
        start = int(start_s or 0)
        end = min(int(end_s) if end_s else size - 1, size - 1)
        if start >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")  # noqa: SIM115 - closed by the base class's copyfile caller
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._limit = end - start + 1
        return f

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        left = getattr(self, "_limit", None)
        if left is None:
            return super().copyfile(source, outputfile)
        while left > 0:
            chunk = source.read(min(65536, left))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


@pytest.fixture()
def served(tmp_path: Path):
    from functools import partial

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(tmp_path)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_stream_url_is_sampled_by_its_own_time(served: str, tmp_path: Path) -> None:
    """12 images held 5 frames at 10 fps (6 s); a frame every 0.25 s is two per image."""
    make_clip(_wider(12), tmp_path / "cam.mp4", fps=10, hold=5, size=SMALL)
    got = sample_frames(f"http://{served}/cam.mp4", tmp_path / "f", FrameSampling(frames=100, every_s=0.25),
                        show=False)
    assert got.kind == "stream" and (got.sampled, got.duplicates, len(got.files)) == (24, 12, 12)
    assert got.ended == "end of source"


def test_convert_from_a_url_with_credentials_never_records_them(served: str, tmp_path: Path) -> None:
    make_clip(_wider(60), tmp_path / "cam.mp4", fps=10, hold=5)
    url = f"http://viewer:s3cret@{served}/cam.mp4?token=t0ken"
    r = cli("convert", "yunet-n-320", "--target", "arm-cpu", "--calib", url, "--calib-every", "0.5",
            "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "b" / "manifest.json").read_text()
    assert "s3cret" not in text and "t0ken" not in text and "viewer" not in text
    cal = json.loads(text)["calibration"]
    assert cal["kind"] == "stream" and cal["source"] == f"http://{served}/cam.mp4" and cal["every_s"] == 0.5
    assert (cal["sampled"], cal["duplicates_dropped"], cal["kept"], cal["held_back"]) == (60, 0, 60, 20)
    assert "calib    stream http://" in r.stdout and "60 frames sampled, 0 dropped as near-duplicates" in r.stdout


# -- one-line refusals ---------------------------------------------------------------------------
def test_a_camera_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    line = _one_line_error(cli("convert", "yunet-n-320", "--target", "arm-cpu", "--calib", "57",
                               "--out", str(tmp_path / "b")))
    assert "camera 57 could not be opened" in line
    assert not (tmp_path / "b").exists()


def test_a_missing_calibration_source_names_what_it_takes(tmp_path: Path) -> None:
    line = _one_line_error(cli("convert", "yunet-n-320", "--target", "arm-cpu", "--calib", str(tmp_path / "nope.mp4"),
                               "--out", str(tmp_path / "b")))
    assert "does not exist" in line and "a video file, a camera index" in line


MISSING = [
    # model, target, module made unimportable, what the message says to install
    ("yunet-n-320", "arm-cpu", "onnx", "pip install 'anyedge[quantize]'"),
    ("blazeface-short", "arm-cpu", "ai_edge_quantizer", "pip install 'anyedge[quantize]'"),
    ("yunet-n-320", "jetson", "onnxconverter_common", "pip install 'anyedge[quantize]'"),
    ("yunet-n-320", "intel-cpu", "openvino", "pip install 'anyedge[openvino]'"),
    ("yunet-n-320", "intel-npu", "nncf", "pip install 'anyedge[openvino]'"),
    ("yunet-n-320", "arm-cpu", "onnxruntime", "pip install 'onnxruntime'"),
]


@pytest.mark.parametrize(("model", "target", "module", "install"), MISSING, ids=[f"{m[2]}-{m[1]}" for m in MISSING])
def test_a_missing_conversion_extra_names_what_to_install(model, target, module, install, tmp_path: Path) -> None:
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from anyedge.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, "convert", model, "--target", target,
                        "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=600)
    line = _one_line_error(r)
    assert install in line and module in line and "ModuleNotFoundError" not in line
    assert not (tmp_path / "b").exists()


def test_the_extras_named_are_the_ones_pyproject_declares() -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    from anyedge.converters.backends import PROVIDED_BY, TOOLS

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]

    def dists(reqs: list[str]) -> set[str]:
        return {re.split(r"[<>=!;\[ ]", r, maxsplit=1)[0].strip().lower() for r in reqs}

    modules = {m for per in TOOLS.values() for ms in per.values() for m in ms}
    assert modules == set(PROVIDED_BY)
    for module, need in PROVIDED_BY.items():
        dist = module.replace("_", "-")
        extra = re.fullmatch(r"anyedge\[(\w+)\]", need)
        declared = dists(meta["optional-dependencies"][extra.group(1)]) if extra else dists(meta["dependencies"])
        assert dist in declared, (module, need)


def test_a_clip_shorter_than_asked_says_the_clip_is_too_short(tmp_path: Path) -> None:
    make_clip(_wider(4), tmp_path / "short.mp4", fps=10, hold=3, size=SMALL)
    line = _one_line_error(cli("convert", "yunet-n-320", "--target", "arm-cpu", "--calib", "short.mp4",
                               "--out", "b", cwd=tmp_path))
    assert re.search(r"finds \d+ face\(s\) in the 1 held-back frames; the fidelity gate needs at least 20 to judge "
                     r"\(12 sampled, 8 dropped as near-duplicates, every third of the 4 kept is held back: the clip "
                     r"has only 12 frames; use a longer clip", line), line


def test_progress_without_tqdm_still_shows_on_stderr() -> None:
    """Sampling a camera for a minute without tqdm installed must not look hung: plain lines on stderr."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['tqdm'] = None\n"
            "from anyedge.converters.calibration import progress\n"
            "assert list(progress(range(20), desc='sampling camera frames', total=20)) == list(range(20))\n"
            "assert list(progress(range(20), desc='quiet', total=20, enabled=False)) == list(range(20))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == "sampling camera frames: 0/20" and lines[-1] == "sampling camera frames: 20/20"
    assert len(lines) == 11 and not [ln for ln in lines if ln.startswith("quiet")]
