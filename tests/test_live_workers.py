"""`anyedge run --workers N` and `run_live(workers=N)`: N frames in inference, results in frame order."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from anyedge.engines import available_engines

from .clip_support import make_clip, read_frames
from .conftest import ROOT, SMOKE, WIDER

# one detector per engine that runs detectors (bnn runs activity nets only)
DETECTORS = {"litert": "blazeface-short", "onnxruntime": "scrfd-500m", "openvino": "yunet"}
ENGINES = [e for e in DETECTORS if e in available_engines()]


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """12 distinct real photos, one frame each (faces near and far), 640x480 at 30 fps."""
    photos = [SMOKE / "couple.jpg", SMOKE / "astronaut.png", *sorted(WIDER.glob("*.jpg"))[:10]]
    path = make_clip(photos, tmp_path_factory.mktemp("workers") / "clip.mp4", fps=30.0, size=(640, 480))
    frames = read_frames(path)
    assert len(frames) == 12 and len({f.tobytes() for f in frames}) == 12
    return path, frames


# -- the loop -------------------------------------------------------------------------------
def test_two_workers_finish_out_of_order_and_results_are_handed_on_in_frame_order(clip) -> None:
    from anyedge.live import open_source, run_live

    path, frames = clip
    number = {f.tobytes(): i for i, f in enumerate(frames)}
    lock = threading.Lock()
    running, peak, finished, seen = [0], [0], [], []

    def process(frame: np.ndarray) -> int:
        i = number[frame.tobytes()]
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.06 if i % 2 == 0 else 0.005)  # an odd frame overtakes the even one before it
        with lock:
            running[0] -= 1
            finished.append(i)
        return i

    def on_frame(i: int, frame: np.ndarray, result: int, latency: float, infer: float) -> None:
        assert threading.current_thread() is threading.main_thread()  # the caller's thread hands them on
        seen.append((i, result, number[frame.tobytes()]))
        assert latency >= infer > 0

    s = run_live(open_source(str(path)), process, workers=2, every_frame=True, on_frame=on_frame)
    assert seen == [(i, i, i) for i in range(12)]  # every frame, in order, with its own result
    assert finished != sorted(finished)  # ...although the workers finished them out of order
    assert peak[0] == 2
    assert (s.workers, s.to_dict()["workers"], s.processed, s.dropped) == (2, 2, 12, 0)
    assert not [t for t in threading.enumerate() if t.name.startswith("anyedge-worker")]


def test_a_free_worker_takes_the_newest_frame_so_two_workers_process_more_of_a_paced_clip(tmp_path: Path) -> None:
    """A 30 fps clip and a process call that takes 3 frame periods (a sleep: no core is needed)."""
    from anyedge.live import open_source, run_live

    path = make_clip(sorted(WIDER.glob("*.jpg"))[:15], tmp_path / "clip.mp4", fps=30.0, hold=3, size=(320, 240))
    runs = {}
    for n in (1, 2):
        order: list[int] = []
        lock, running, peak = threading.Lock(), [0], [0]

        def slow(frame: np.ndarray) -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.1)
            with lock:
                running[0] -= 1
            return 0

        s = run_live(open_source(str(path)), slow, workers=n, on_frame=lambda i, f, r, lat, inf: order.append(i))
        assert s.captured == 45 and s.dropped > 0 and peak[0] == n
        assert s.processed + s.dropped in (44, 45)  # frames nobody took are dropped and counted, as with one
        assert order == sorted(set(order))
        runs[n] = s.processed
    assert runs[2] > runs[1]


def test_each_worker_keeps_its_own_process_callable(clip) -> None:
    """A list of callables: one per worker (one LiteRT interpreter each), never called from two threads."""
    from anyedge.live import open_source, run_live

    threads: list[set[int]] = [set(), set()]

    def own(k: int):
        def process(frame: np.ndarray) -> int:
            threads[k].add(threading.get_ident())
            time.sleep(0.01)
            return k
        return process

    got: list[int] = []
    s = run_live(open_source(str(clip[0])), [own(0), own(1)], every_frame=True,
                 on_frame=lambda i, f, r, lat, inf: got.append(r))
    assert s.workers == 2 and len(got) == 12 and set(got) == {0, 1}
    assert len(threads[0]) == len(threads[1]) == 1 and threads[0] != threads[1]


@pytest.mark.parametrize("fail_at", [0, 5])
def test_a_worker_error_stops_the_run_and_is_raised_as_it_was(clip, fail_at: int) -> None:
    from anyedge.errors import EngineError
    from anyedge.live import open_source, run_live

    path, frames = clip
    number = {f.tobytes(): i for i, f in enumerate(frames)}
    boom = EngineError("the engine failed on this frame")
    seen: list[int] = []

    def process(frame: np.ndarray) -> int:
        i = number[frame.tobytes()]
        time.sleep(0.01)
        if i == fail_at:
            raise boom
        return i

    with pytest.raises(EngineError) as e:
        run_live(open_source(str(path)), process, workers=2, every_frame=True,
                 on_frame=lambda i, f, r, lat, inf: seen.append(i))
    assert e.value is boom
    assert seen == list(range(len(seen))) and len(seen) <= fail_at  # nothing after the failed frame
    assert not [t for t in threading.enumerate() if t.name.startswith("anyedge-")]


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers must be a positive integer, got 0"),
    ({"workers": True}, "workers must be a positive integer, got True"),
    ({"workers": 3, "process": [len, len]}, "workers=3 but 2 process callables were given"),
    ({"process": []}, "process must be a non-empty list of callables"),
    ({"process": [len, "detect"]}, "process must be a non-empty list of callables"),
    ({"process": 3}, "process must be a callable or a list of callables"),
])
def test_bad_workers_arguments_are_input_errors(clip, kwargs: dict, message: str) -> None:
    from anyedge.errors import InputError
    from anyedge.live import open_source, run_live

    process = kwargs.pop("process", len)
    src = open_source(str(clip[0]))
    try:
        with pytest.raises(InputError, match=re.escape(message)):
            run_live(src, process, **kwargs)
    finally:
        src.close()


# -- which detectors, how many threads --------------------------------------------------------
@pytest.mark.parametrize("engine, workers, cores, threads", [
    ("litert", 1, 4, None), ("onnxruntime", 1, 4, None), ("openvino", 1, 4, None),
    ("litert", 2, 4, 2), ("litert", 3, 4, 1), ("litert", 8, 4, 1), ("litert", 2, 1, 1),
    ("onnxruntime", 2, 4, 3), ("onnxruntime", 4, 4, 1), ("onnxruntime", 8, 4, 1), ("onnxruntime", 2, 2, 1),
    ("openvino", 2, 4, None), ("bnn", 2, 4, None),
])
def test_worker_threads_share_the_cores_out(engine: str, workers: int, cores: int, threads: int | None) -> None:
    from anyedge.live.workers import worker_threads

    assert worker_threads(engine, workers, cores) == threads


def test_worker_threads_refuse_zero() -> None:
    from anyedge.errors import InputError
    from anyedge.live.workers import worker_threads

    with pytest.raises(InputError, match="workers and cores must be positive, got workers=0"):
        worker_threads("litert", 0, 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_litert_gets_one_detector_per_worker_the_others_share_one(engine: str, smoke) -> None:
    from anyedge.live.workers import open_detectors

    dets = open_detectors(DETECTORS[engine], workers=2, engine=engine, channels="BGR", cores=2)
    try:
        assert [d.engine.name for d in dets] == [engine] * len(dets)
        if engine == "litert":
            assert len(dets) == 2 and dets[0].engine is not dets[1].engine
            assert dets[0].engine._interp is not dets[1].engine._interp
        else:
            assert len(dets) == 1
        if engine == "openvino":  # two CPU streams: two requests run at once instead of taking turns
            assert int(dets[0].engine._compiled.get_property("NUM_STREAMS")) == 2
        img = smoke["couple.jpg"][:, :, ::-1].copy()
        assert all(len(d.detect(img)) == len(dets[0].detect(img)) > 0 for d in dets)
    finally:
        for d in dets:
            d.close()
    if engine == "openvino":
        (one,) = open_detectors(DETECTORS[engine], workers=1, engine=engine)
        try:
            assert int(one.engine._compiled.get_property("NUM_STREAMS")) == 1
        finally:
            one.close()


# -- anyedge run --workers ------------------------------------------------------------------
def _frames(stdout: str) -> tuple[list[dict], dict]:
    lines = [json.loads(x) for x in stdout.splitlines()]
    return [x for x in lines if x["type"] == "frame"], lines[-1]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_frame_with_two_workers_gives_the_faces_of_one(clip, engine: str) -> None:
    path, frames = clip
    runs = {}
    for n in (1, 2):
        r = cli("run", "--source", str(path), "--model", DETECTORS[engine], "--engine", engine, "--every-frame",
                "--workers", str(n), "--json")
        assert r.returncode == 0, r.stderr
        got, summary = _frames(r.stdout)
        assert summary["type"] == "summary" and summary["workers"] == n and summary["engine"] == engine
        assert [f["frame"] for f in got] == list(range(len(frames)))
        runs[n] = got
    assert sum(len(f["faces"]) for f in runs[1]) >= 3  # a comparison of empty frames would prove nothing
    for one, two in zip(runs[1], runs[2]):
        assert len(one["faces"]) == len(two["faces"]), one["frame"]
        for a, b in zip(one["faces"], two["faces"]):
            np.testing.assert_allclose(a["box"], b["box"], atol=1e-4)
            np.testing.assert_allclose(a["score"], b["score"], atol=1e-4)
            assert a["track"] == b["track"]


def test_two_workers_on_a_paced_clip_report_frames_in_order(tmp_path: Path) -> None:
    path = make_clip([SMOKE / "couple.jpg", *sorted(WIDER.glob("*.jpg"))[:14]], tmp_path / "clip.mp4", fps=30.0,
                     hold=4, size=(640, 480))
    r = cli("run", "--source", str(path), "--model", "scrfd-500m", "--workers", "2", "--json")
    assert r.returncode == 0, r.stderr
    got, summary = _frames(r.stdout)
    assert summary["workers"] == 2 and summary["captured"] == 60 and summary["processed"] == len(got)
    assert summary["processed"] + summary["dropped"] in (59, 60)
    assert [f["frame"] for f in got] == sorted({f["frame"] for f in got})
    assert all(f["latency_ms"] >= f["infer_ms"] > 0 for f in got)
    stats = [json.loads(x) for x in r.stdout.splitlines() if '"stats"' in x]
    assert all(s["workers"] == 2 for s in stats)


_FAULT = """\
import itertools, sys
from anyedge.errors import EngineError
from anyedge.tasks.face_detector import FaceDetector
calls, real = itertools.count(), FaceDetector.detect
def detect(self, image, *a, **k):
    if next(calls) == 4:
        raise {error}("the engine failed on this frame")
    return real(self, image, *a, **k)
FaceDetector.detect = detect
from anyedge.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("error, code, line", [
    ("EngineError", 2, "anyedge: error: the engine failed on this frame"),
    ("RuntimeError", 1, "anyedge: error: RuntimeError: the engine failed on this frame (run with -v for the traceback)"),
])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_worker_error_ends_the_run_with_one_line(clip, engine: str, error: str, code: int, line: str) -> None:
    """The fifth detect call fails (in whichever worker runs it): one line, the documented exit code."""
    r = subprocess.run([sys.executable, "-c", _FAULT.format(error=error), "run", "--source", str(clip[0]),
                        "--model", DETECTORS[engine], "--engine", engine, "--workers", "2", "--every-frame",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == code
    assert r.stderr.strip() == line
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert all(x["type"] == "frame" for x in got) and len(got) <= 4  # no summary; nothing after the failure
    assert [x["frame"] for x in got] == list(range(len(got)))


def test_gallery_names_with_two_workers_match_one(tmp_path: Path) -> None:
    """The embedder stays on the thread that hands results on: same names, same embedder calls."""
    db = tmp_path / "people.db"
    r = cli("gallery", "enroll", "eileen", str(SMOKE / "astronaut.png"), "--db", str(db))  # records yunet
    assert r.returncode == 0, r.stderr
    path = make_clip([SMOKE / "astronaut.png"] * 3 + [SMOKE / "couple.jpg"] * 3, tmp_path / "clip.mp4", fps=30.0,
                     size=(640, 480))
    runs = {}
    for n in (1, 2):
        r = cli("run", "--source", str(path), "--every-frame", "--gallery", str(db), "--workers", str(n), "--json")
        assert r.returncode == 0, r.stderr
        got, summary = _frames(r.stdout)
        runs[n] = ([[(f["name"], f["track"]) for f in x["faces"]] for x in got], summary["embedded_faces"])
    assert runs[1] == runs[2]
    names = runs[2][0]
    assert len(names) == 6 and {n for frame in names[:3] for n, _ in frame} == {"eileen"}


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_workers_below_one_is_a_usage_error(value: str) -> None:
    r = cli("run", "--source", "0", "--workers", value, timeout=60)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "argument --workers: expected a positive integer, got" in lines[0]


def test_help_and_readme_show_a_workers_command_that_works(clip, tmp_path: Path) -> None:
    r = cli("run", "--help")
    assert r.returncode == 0 and "--workers" in r.stdout
    (example,) = [x.strip() for x in r.stdout.splitlines() if x.strip().startswith("anyedge run") and "--workers" in x]
    command = re.sub(r"\s+#.*", "", example)
    assert command in (ROOT / "README.md").read_text()
    (tmp_path / "clip.mp4").write_bytes(clip[0].read_bytes())
    r = cli(*command.split()[1:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got, summary = _frames(r.stdout)
    assert summary["workers"] == 2 and summary["captured"] == 12 and got
    r = cli(*[a for a in command.split()[1:] if a != "--json"], cwd=tmp_path)  # the human summary says it too
    assert r.returncode == 0 and "12 captured" in r.stdout and "on 2 workers" in r.stdout, r.stdout + r.stderr


@pytest.fixture(scope="module")
def readme_benchmarks() -> list[str]:
    commands = re.findall(r"python benchmarks/live_stream\.py[^`\n]*", (ROOT / "README.md").read_text())
    assert len(commands) >= 3  # the queue table's and the workers table's
    return commands


def test_the_readme_live_stream_benchmarks_run_on_a_short_clip(readme_benchmarks: list[str], tmp_path: Path) -> None:
    """benchmarks/live_stream.py as the README runs it, each command on a 1 s clip, once."""
    for k, command in enumerate(readme_benchmarks):
        argv = command.split()
        r = subprocess.run([sys.executable, str(ROOT / argv[1]), *argv[2:], "--seconds", "1", "--repeat", "1",
                            "--out", str(tmp_path / str(k))], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        doc = json.loads((tmp_path / str(k) / "live_stream.json").read_text())
        repeat = doc["meta"]["repeat"]
        rows = doc["rows"]
        want = [("anyedge run --workers 1", 1), ("anyedge run --workers 2", 2)] * repeat
        assert [(x["mode"], x["workers"]) for x in rows] == want + (
            [] if "--no-unbounded" in argv else [("unbounded queue", 1)])
        fps = doc["meta"]["clip"].split(", ")[2]
        assert all(x["frames"] == int(float(fps.split()[0])) and 0 < x["processed"] <= x["captured"]
                   and x["latency_ms_p90"] >= x["latency_ms_median"] > 0 for x in rows)
        assert all(0 < x["cpu_ms_per_frame"] for x in rows if x["mode"] != "unbounded queue")
        assert [(s["workers"], s["runs"]) for s in doc["meta"]["per_workers"]] == [(1, repeat), (2, repeat)]
        table = r.stdout.splitlines()
        assert table[1].startswith("| workers | FPS | latency median / p90") and table[3].startswith("| 1 |")
        assert table[4].startswith("| 2 |")
