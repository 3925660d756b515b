"""The live view (`anyedge run --serve`, anyedge.live.serve) and the face annotation it streams."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from .clip_support import make_clip
from .conftest import SMOKE

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-Token_1"
HOSTILE = "<img src=x onerror=alert(1)>"


# -- helpers --------------------------------------------------------------------------------------
def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """GET ``path`` straight from 127.0.0.1 (no proxy); the status, the headers and the body."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def stream_socket(port: int, path: str = f"/stream.mjpg?token={TOKEN}", rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def jpegs(sock: socket.socket) -> Iterator[bytes]:
    """The JPEG parts of a multipart MJPEG response read from ``sock``, as they arrive."""
    buf = b""

    def need(n: int) -> None:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the stream ended")
            buf += chunk

    while b"\r\n\r\n" not in buf:
        need(len(buf) + 1)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200") and b"multipart/x-mixed-replace; boundary=anyedge-frame" in head, head
    while True:
        while b"\r\n\r\n" not in buf:
            need(len(buf) + 1)
        part, buf = buf.split(b"\r\n\r\n", 1)
        assert part.startswith(b"--anyedge-frame\r\nContent-Type: image/jpeg"), part[:80]
        n = int(re.search(rb"Content-Length: (\d+)", part).group(1))  # type: ignore[union-attr]
        need(n + 2)
        yield buf[:n]
        assert buf[n:n + 2] == b"\r\n"
        buf = buf[n + 2:]


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, Any]]:
    """Real photos with the faces yunet finds on them."""
    import cv2

    from anyedge import FaceDetector

    out = []
    with FaceDetector.create("yunet", channels="BGR") as det:
        for name in ("astronaut.png", "couple.jpg", "camera.png"):
            img = cv2.resize(cv2.imread(str(SMOKE / name)), (480, 360))
            out.append((img, det.detect(img)))
    assert len(out[0][1]) == 1 and len(out[1][1]) == 2
    return out


class Feeder:
    """Plays the run's side: a frame every 20 ms through ``on_frame`` (the photos in turn, each frame
    numbered in a corner), track events through ``on_event``."""

    def __init__(self, view: Any, scenes: list[tuple[np.ndarray, Any]]) -> None:
        from anyedge.live.events import TrackEvents

        self.view, self.scenes, self.events = view, scenes, TrackEvents()
        self.stop = threading.Event()
        self.frames = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            img, faces = self.scenes[i % len(self.scenes)]
            ids = np.arange(1, len(faces) + 1)
            names = [HOSTILE] + [None] * (len(faces) - 1)
            for ev in self.events.frame(i, faces, ids, names, [0.71] * len(faces)):
                self.view.on_event(ev)
            if i % 10 == 0:
                self.view.on_event(self.events.status({"fps": 50.0, "latency_ms": 12.5, "latency_max_ms": 20.0,
                                                        "dropped": 0, "processed": i + 1}))
            import cv2

            frame = img.copy()  # a camera's clock in the corner: every frame differs
            cv2.putText(frame, f"{i:06d}", (5, 350), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
            self.view.on_frame(i, frame, faces, ids, names)
            self.frames = i = i + 1
            time.sleep(0.02)


@pytest.fixture()
def view(scenes: list) -> Iterator[Any]:
    """A live view with a token, fed real frames and their faces 50 times a second."""
    from anyedge.live.serve import LiveView

    v = LiveView("127.0.0.1", 0, token=TOKEN, source="rtsp://admin:pw@cam.local:554/live?key=k", model="yunet")
    feeder = Feeder(v, scenes)
    with v:
        feeder.thread.start()
        yield v
        feeder.stop.set()
        feeder.thread.join()


# -- annotation -----------------------------------------------------------------------------------
def test_face_labels_carry_track_name_and_score_and_tame_untrusted_names() -> None:
    from anyedge.ops.draw import face_label

    assert face_label(0.714, 3, "ann") == "3 ann 0.71"
    assert face_label(0.5) == "0.50" and face_label(0.5, -1, None) == "0.50"  # tentative: no id
    assert face_label(0.5, 2, None, "yunet ") == "yunet 2 0.50"
    assert face_label(0.5, 1, "Zoë\n<b>") == "1 Zo??<b> 0.50"  # the font has printable ASCII only
    assert face_label(0.5, 1, "x" * 40) == "1 " + "x" * 21 + "... 0.50"


def test_boxes_of_tentative_tracks_differ_and_labels_are_drawn(scenes: list) -> None:
    from anyedge.ops.draw import BOX_BGR, TENTATIVE_BGR, draw_faces

    img, faces = scenes[1]  # two faces
    plain = draw_faces(img, faces)
    tracked = draw_faces(img, faces, ids=[7, -1], names=["ann", None])
    assert not np.array_equal(img, plain) and not np.array_equal(plain, tracked)
    for (x1, y1, x2, y2), want, other in zip(faces.boxes.astype(int), (BOX_BGR, TENTATIVE_BGR),
                                             (TENTATIVE_BGR, BOX_BGR)):
        edge = tracked[(y1 + y2) // 2, max(0, x1 - 1):x1 + 2]  # across the box's left edge
        assert (edge == want).all(axis=1).any() and not (edge == other).all(axis=1).any()
    x1, y1 = faces.boxes[0].astype(int)[:2]
    above = tracked[max(0, y1 - 30):y1, x1:x1 + 60]
    assert (above == BOX_BGR).all(axis=2).sum() > 50  # the label's filled background over the box
    assert (above.max(axis=2) < 80).sum() > 10  # and its dark text


def test_the_out_video_marks_tentative_and_confirmed_tracks(tmp_path: Path) -> None:
    """`anyedge run --out`: a face is drawn in the tentative colour until its track is confirmed
    (the third frame, --track-min-hits 3), then in the box colour."""
    import cv2

    from anyedge.ops.draw import BOX_BGR, TENTATIVE_BGR

    clip = make_clip([SMOKE / "astronaut.png"], tmp_path / "clip.mp4", fps=10, hold=6, size=(640, 480))
    out = tmp_path / "annotated.mp4"
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "run", "--source", str(clip), "--model", "yunet",
                        "--every-frame", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cap, shown = cv2.VideoCapture(str(out)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        near = [(np.abs(frame.astype(int) - c).max(axis=2) < 40).sum() for c in (TENTATIVE_BGR, BOX_BGR)]
        shown.append("tentative" if near[0] > near[1] else "confirmed")
    assert shown == ["tentative"] * 2 + ["confirmed"] * 4


# -- HTTP -----------------------------------------------------------------------------------------
ROUTES = ["/", "/stream.mjpg", "/status", "/events", "/events?since=3", "/nope"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("how", ["none", "wrong query", "wrong header", "empty query", "basic header",
                                 "prefix of the token"])
def test_every_route_refuses_a_missing_or_wrong_token(view: Any, route: str, how: str) -> None:
    sep = "&" if "?" in route else "?"
    path, headers = {
        "none": (route, {}),
        "wrong query": (f"{route}{sep}token=nope", {}),
        "wrong header": (route, {"Authorization": "Bearer nope"}),
        "empty query": (f"{route}{sep}token=", {}),
        "basic header": (route, {"Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()}),
        "prefix of the token": (f"{route}{sep}token={TOKEN[:-1]}", {}),
    }[how]
    status, hdrs, body = get(view.port, path, headers)
    assert status == 401 and hdrs["Content-Type"] == "application/json"
    assert "token" in json.loads(body)["error"] and hdrs["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("how", ["query", "header"])
def test_the_right_token_opens_every_route(view: Any, how: str) -> None:
    for route in ["/", "/status", "/events", "/events?since=2"]:
        sep = "&" if "?" in route else "?"
        path, headers = ((f"{route}{sep}token={TOKEN}", {}) if how == "query"
                         else (route, {"Authorization": f"Bearer {TOKEN}"}))
        status, _, _ = get(view.port, path, headers)
        assert status == 200, route
    s = stream_socket(view.port) if how == "query" else None
    if s is None:
        s = socket.create_connection(("127.0.0.1", view.port), timeout=30)
        s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    with s:
        assert next(jpegs(s))[:2] == b"\xff\xd8"


@pytest.mark.parametrize("path", ["/nope", "/index.html", "/status/", "http://h/status", "/../../etc/passwd",
                                  "/stream.mjpg/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/x.js",
                                  "/favicon.ico", "/events/1"])
def test_unknown_paths_are_404_json_and_touch_no_file(view: Any, path: str) -> None:
    sep = "&" if "?" in path else "?"
    status, hdrs, body = get(view.port, f"{path}{sep}token={TOKEN}")
    assert status == 404 and hdrs["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "no such page; expected /, /stream.mjpg, /status or /events"}


def test_the_page_loads_nothing_from_elsewhere_and_inserts_text_only(view: Any) -> None:
    status, hdrs, body = get(view.port, f"/?token={TOKEN}")
    page = body.decode()
    assert status == 200 and hdrs["Content-Type"] == "text/html; charset=utf-8"
    assert "http://" not in page and "https://" not in page and "//" not in re.sub(r"<script>.*</script>", "", page,
                                                                                  flags=re.S)
    assert not re.search(r"<(script|link|img)[^>]*\ssrc=", page)  # no script or image from a URL
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page
    assert "textContent" in page and "encodeURIComponent(token)" in page
    for route in ("stream.mjpg", '"status"', '"events"'):
        assert route in page
    csp = hdrs["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "img-src 'self'" in csp
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp  # only the page's own script may run
    assert hdrs["X-Content-Type-Options"] == "nosniff" and hdrs["Cache-Control"] == "no-store"


def test_status_and_events_json(view: Any) -> None:
    time.sleep(0.5)
    status, hdrs, body = get(view.port, "/status", {"Authorization": f"Bearer {TOKEN}"})
    st = json.loads(body)
    assert status == 200 and hdrs["Content-Type"] == "application/json"
    assert st["type"] == "status" and st["running"] is True and st["stopped_by"] is None
    assert st["source"] == "rtsp://cam.local:554/live"  # no user, password or query for viewers
    assert st["model"] == "yunet" and st["fps"] == 50.0 and st["latency_ms"] == 12.5 and st["dropped"] == 0
    assert st["processed"] >= 10 and st["frame"] == st["processed"] - 1 and st["faces"] in (1, 2, 3)
    assert st["tracks"] == [1, 2] and st["viewers"] == 0 and st["streamed"] == 0  # nobody watches: no JPEG made
    status, hdrs, body = get(view.port, f"/events?token={TOKEN}")
    got = json.loads(body)
    kinds = [(e["type"], e["track"], e.get("name")) for e in got["events"]]
    assert kinds[:3] == [("track/appeared", 1, None), ("track/named", 1, HOSTILE), ("track/appeared", 2, None)]
    assert all(e["type"] != "status" for e in got["events"]) and got["seq"] >= got["events"][-1]["seq"]
    later = json.loads(get(view.port, f"/events?since={got['events'][1]['seq']}&token={TOKEN}")[2])
    assert later["events"] == got["events"][2:]
    assert json.loads(get(view.port, f"/events?since={got['seq']}&token={TOKEN}")[2])["events"] == []
    for bad in ("-1", "x", "1e3", ""):
        status, hdrs, body = get(view.port, f"/events?since={bad}&token={TOKEN}")
        assert status == 400 and "since must be an event number" in json.loads(body)["error"]


def test_the_events_kept_are_the_last_200(view: Any) -> None:
    from anyedge.live.serve import MAX_EVENTS

    for i in range(1000, 1300):
        view.on_event({"type": "track/left", "seq": i, "time": 0.0, "track": i})
    got = json.loads(get(view.port, f"/events?token={TOKEN}")[2])["events"]
    assert len(got) == MAX_EVENTS == 200 and got[-1]["seq"] == 1299 and got[0]["seq"] == 1100


def test_a_viewer_that_leaves_mid_stream_is_dropped_quietly(view: Any, capfd: pytest.CaptureFixture[str]) -> None:
    stayer = stream_socket(view.port)
    frames = jpegs(stayer)
    next(frames)
    for how in ("reset", "close"):
        leaver = stream_socket(view.port)
        stream = jpegs(leaver)
        next(stream)
        leaver.recv(1000)  # in the middle of the next frame
        if how == "reset":  # an abrupt end: RST instead of FIN
            leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        leaver.close()
        before = view.streamed
        got = [next(frames) for _ in range(5)]  # the other viewer keeps receiving new frames
        assert len(set(got)) >= 4 and view.streamed >= before + 4
    end = time.monotonic() + 10
    while view.viewers != 1 and time.monotonic() < end:
        next(frames)
    assert view.viewers == 1
    stayer.close()
    err = capfd.readouterr().err
    assert err == "", err


def test_twenty_viewers_each_receive_distinct_frames(view: Any) -> None:
    import cv2

    results: dict[int, list[bytes]] = {}

    def watch(k: int) -> None:
        with stream_socket(view.port) as s:
            stream = jpegs(s)
            results[k] = [next(stream) for _ in range(5)]

    threads = [threading.Thread(target=watch, args=(k,)) for k in range(20)]
    assert view.streamed == 0  # nobody watched yet: nothing was encoded
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    from anyedge.live.serve import STREAM_FPS

    assert view.streamed <= STREAM_FPS * (time.monotonic() - t0) + 2  # fed 50 frames a second, shows at most 15
    assert sorted(results) == list(range(20))
    for got in results.values():
        assert len(set(got)) >= 4  # new frames, not the same one again
        img = cv2.imdecode(np.frombuffer(got[-1], np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (360, 480, 3)
    status = json.loads(get(view.port, f"/status?token={TOKEN}")[2])
    assert status["streamed"] < sum(len(v) for v in results.values())  # one encoding serves every viewer


def test_more_viewers_than_allowed_get_503(view: Any) -> None:
    from anyedge.live.serve import MAX_VIEWERS

    socks = [stream_socket(view.port) for _ in range(MAX_VIEWERS)]
    try:
        for s in socks:
            next(jpegs(s))
        status, _, body = get(view.port, f"/stream.mjpg?token={TOKEN}")
        assert status == 503 and "too many viewers" in json.loads(body)["error"]
    finally:
        for s in socks:
            s.close()


def test_a_viewer_that_never_reads_does_not_hold_the_run_back(tmp_path: Path) -> None:
    """A viewer with a tiny receive buffer that never reads: the run still processes every frame,
    another viewer keeps getting new ones, and closing the view does not wait for it."""
    from anyedge import FaceDetector
    from anyedge.live import open_source, run_live
    from anyedge.live.serve import LiveView

    clip = make_clip([SMOKE / "couple.jpg", SMOKE / "astronaut.png"], tmp_path / "clip.mp4", fps=30, hold=30,
                     size=(1024, 768))
    with FaceDetector.create("yunet-n-320", channels="BGR") as det, LiveView("127.0.0.1", 0, token=TOKEN) as v:
        stuck = stream_socket(v.port, rcvbuf=4096)
        reader = stream_socket(v.port)
        end = time.monotonic() + 10
        while v.viewers < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert v.viewers == 2
        got: list[bytes] = []
        frames = jpegs(reader)

        def read() -> None:
            try:
                for jpeg in frames:
                    got.append(jpeg)
            except (EOFError, OSError):  # the view closed
                pass

        threading.Thread(target=read, daemon=True).start()
        summary = run_live(open_source(str(clip)), det.detect, every_frame=True,
                           on_frame=lambda i, f, faces, lat, inf: v.on_frame(i, f, faces, np.full(len(faces), -1),
                                                                             None))
        assert summary.processed == summary.captured == 60 and summary.dropped == 0
        assert len(set(got)) >= 3 and v.viewers == 2  # the stuck one is still connected, blocked in a send
        t = time.monotonic()
    assert time.monotonic() - t < 10  # closing shut the stuck connection instead of waiting 30 s for it
    stuck.close()
    reader.close()


# -- the command ----------------------------------------------------------------------------------
def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


class Run:
    """``anyedge ...`` in the background, its stderr lines collected as they come."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stderr:  # type: ignore[union-attr]
            self.err.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    break
                continue
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern!r} on stderr: {''.join(self.err)}")

    def end(self, sig: int | None = signal.SIGTERM) -> tuple[int, str, str]:
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        out, _ = self.p.communicate(timeout=120)
        time.sleep(0.1)
        return self.p.returncode, out, "".join(self.err)


def test_a_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    clip = make_clip([SMOKE / "astronaut.png"], tmp_path / "clip.mp4", hold=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = cli("run", "--source", str(clip), "--model", "yunet", "--serve", str(port))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"anyedge: error: the live view cannot listen on 127.0.0.1:{port}: "
                                                 "the port is in use; expected a free port (0 picks one)")


@pytest.mark.parametrize("args, message", [
    (["--serve", "http://x:80"], "expected [HOST:]PORT"), (["--serve", "70000"], "expected [HOST:]PORT"),
    (["--serve", "::1:80"], "expected [HOST:]PORT"), (["--serve", "a b:80"], "expected [HOST:]PORT"),
    (["--serve", ":80"], "expected [HOST:]PORT"), (["--serve", "8080", "--serve-token", "a b"], "printable ASCII"),
    (["--serve-token", "abc"], "go with --serve"), (["--serve-hold", "5"], "go with --serve"),
    (["--serve", "8080", "--serve-hold", "0"], "expected a number > 0"),
    (["--serve", "192.0.2.1:0"], "the live view cannot listen on 192.0.2.1:0"),
])
def test_bad_serve_options_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    clip = make_clip([SMOKE / "astronaut.png"], tmp_path / "clip.mp4", hold=3)
    r = cli("run", "--source", str(clip), "--model", "yunet", *args)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and message in last and "Traceback" not in r.stderr, r.stderr


def test_a_bad_token_in_the_environment_is_named(tmp_path: Path) -> None:
    clip = make_clip([SMOKE / "astronaut.png"], tmp_path / "clip.mp4", hold=3)
    r = cli("run", "--source", str(clip), "--model", "yunet", "--serve", "0",
            env={**os.environ, "ANYEDGE_SERVE_TOKEN": "two words"})
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("anyedge: error: ANYEDGE_SERVE_TOKEN: ")


def _readme_serve_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("anyedge run --source clip.mp4 --gallery people.db --serve 8080"):]
    return [line.split("#")[0].strip() for line in block[:block.index("```")].strip().splitlines()]


def _argv(line: str) -> tuple[list[str], dict[str, str]]:
    """A README line as argv (port 8080 made 0: the system picks a free one) and its environment."""
    words = line.replace(":8080", ":0").replace(" 8080", " 0").split()
    env = dict(os.environ)
    while "=" in words[0]:
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words[0] == "anyedge"
    return [sys.executable, "-m", "anyedge.cli", *words[1:]], env


def test_the_readme_token_command_binds_everywhere_and_asks_for_the_token(tmp_path: Path) -> None:
    line = _readme_serve_lines()[1]
    assert line.startswith("ANYEDGE_SERVE_TOKEN=") and "0.0.0.0:8080" in line
    make_clip([SMOKE / "couple.jpg"], tmp_path / "clip.mp4", fps=10, hold=40, size=(640, 480))
    argv, env = _argv(line)
    run = Run(argv, tmp_path, env)
    port = int(run.wait_for(r"live view at http://[^:]+:(\d+)/ \(add \?token=TOKEN\)").group(1))
    token = env["ANYEDGE_SERVE_TOKEN"]
    assert get(port, "/status")[0] == 401 and get(port, "/status?token=wrong")[0] == 401
    status, _, body = get(port, f"/status?token={token}")
    assert status == 200 and json.loads(body)["source"] == "clip.mp4"
    code, out, err = run.end(sig=None)
    assert code == 0 and "warning" not in err and "Traceback" not in err, err
    assert token not in err  # the secret is not printed


def test_serving_every_interface_without_a_token_warns_in_one_line(tmp_path: Path) -> None:
    clip = make_clip([SMOKE / "astronaut.png"], tmp_path / "clip.mp4", hold=3)
    r = cli("run", "--source", str(clip), "--model", "yunet", "--serve", "0.0.0.0:0",
            env={k: v for k, v in os.environ.items() if k != "ANYEDGE_SERVE_TOKEN"})
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if "warning" in x]
    assert len(warnings) == 1 and warnings[0].startswith("anyedge: warning: the live view listens on 0.0.0.0:")
    assert "without --serve-token" in warnings[0]
    r = cli("run", "--source", str(clip), "--model", "yunet", "--serve", "0")  # loopback: no warning
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


# -- in a real browser ----------------------------------------------------------------------------
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(tmp_path: Path, url: str, *mode: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium on ``url``: 4 s of page time (its 1 s polls run), then ``mode``'s output."""
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chromium'}", "--hide-scrollbars", "--window-size=1200,800",
                           "--virtual-time-budget=4000", *mode, url], capture_output=True, text=True, timeout=120)


def test_the_page_in_chromium_shows_the_run_its_events_and_annotated_frames(tmp_path: Path) -> None:
    """The README's first --serve command, on a clip of a person enrolled under a hostile name."""
    import cv2

    chromium()
    line = _readme_serve_lines()[0]
    assert "--serve-hold" in line
    r = cli("gallery", "enroll", HOSTILE, str(SMOKE / "astronaut.png"), "--db", str(tmp_path / "people.db"))
    assert r.returncode == 0, r.stderr
    make_clip([SMOKE / "astronaut.png"], tmp_path / "clip.mp4", fps=10, hold=30, size=(640, 480))
    argv, env = _argv(line)
    run = Run(argv, tmp_path, env)
    try:
        port = int(run.wait_for(r"anyedge: live view at http://127\.0\.0\.1:(\d+)/$").group(1))
        run.wait_for(r"the run ended; the live view stays up")
        final = json.loads(get(port, "/status")[2])
        dom = browse(tmp_path, f"http://127.0.0.1:{port}/", "--dump-dom").stdout
        shot = tmp_path / "page.png"
        browse(tmp_path, f"http://127.0.0.1:{port}/", f"--screenshot={shot}")
    finally:
        code, out, err = run.end()
    assert code == 0 and "Traceback" not in err, err
    assert final["running"] is False and final["processed"] > 20 and final["fps"] > 0
    fps = re.search(r'<dd id="fps">([^<]*)</dd>', dom).group(1)  # type: ignore[union-attr]
    assert fps == f"{final['fps']:.1f}"  # the script filled it in from /status (the page starts with a dash)
    assert re.search(r'<dd id="processed">(\d+)</dd>', dom).group(1) == str(final["processed"])  # type: ignore[union-attr]
    assert 'class="off">run ended (end of source)</span>' in dom
    items = re.findall(r'<li class="(track-[a-z]+)">([^<]*)</li>', dom)
    kinds = [k for k, _ in reversed(items)]
    assert kinds == ["track-appeared", "track-named", "track-left"], items
    escaped = HOSTILE.replace("<", "&lt;").replace(">", "&gt;")
    assert f"track 1 is {escaped} (" in items[1][1]  # the name as text
    assert len(re.findall(r"<img\b", dom)) == 1 and 'src="x"' not in dom  # no element made from the name
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (800, 1200)
    from anyedge.ops.draw import BOX_BGR

    green = (np.abs(img.astype(int) - BOX_BGR).max(axis=2) < 40)
    assert green.sum() > 500  # the face's box and its label's background, drawn into the streamed frame
    ys, xs = np.nonzero(green)
    assert xs.max() < 700  # in the stream's picture, not the text beside it


def test_the_benchmark_runs_short(tmp_path: Path) -> None:
    """The README's `python benchmarks/live_serve.py`, on a 2 s clip with 3 viewers, once."""
    assert "python benchmarks/live_serve.py --repeat 3" in (ROOT / "README.md").read_text()
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "live_serve.py"), "--seconds", "2", "--viewers", "3",
                        "--repeat", "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "live_serve.json").read_text())["rows"]
    assert [x["viewers"] for x in rows] == [0, 3] and all(x["processed"] == 60 and x["cpu_s"] > 0 for x in rows)
    assert rows[1]["frames_per_viewer_median"] >= 1 and (tmp_path / "live_serve.csv").exists()
