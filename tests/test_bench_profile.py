"""anyedge bench for people who use benchmark_app: timed runs (--duration), min / max latency,
per-operator profiles from each engine's own profiler, and throughput per mode."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anyedge.bench import report
from anyedge.bench.runner import BenchConfig, run_bench
from anyedge.cli import main

from .conftest import WIDER


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bench-images")
    for f in sorted(WIDER.glob("*.jpg"))[:4]:
        shutil.copy(f, d / f.name)
    return d


# -- --duration, min / max ------------------------------------------------------------------
@pytest.mark.parametrize("duration", [0.4, 1.2])
def test_duration_honours_its_budget_within_one_runs_time(images, duration):
    doc = run_bench(BenchConfig(models=("blazeface-short",), engines=("litert",), runs=3, warmup=1,
                                duration=duration, images=str(images)))
    (row,) = doc["rows"]
    assert "error" not in row, row
    assert doc["config"]["duration"] == duration
    # one timed "run" is the whole call and the engine call, interleaved
    one_run_s = (row["latency_ms"]["max"] + row["engine_ms"]["max"]) / 1e3
    assert duration <= row["timed_s"] <= duration + one_run_s + 0.02  # 20 ms: the loop's own bookkeeping
    assert row["runs"] > 3  # --runs gives way to the budget
    assert row["latency_ms"]["n"] == row["engine_ms"]["n"] == row["runs"]


def test_latency_has_min_and_max_in_json_csv_and_table(tmp_path, images, capsys):
    out = tmp_path / "out"
    rc = main(["bench", "blazeface-short", "--engines", "litert", "--runs", "6", "--warmup", "1",
               "--images", str(images), "--out", str(out), "--no-png", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (row,) = json.loads((out / "bench.json").read_text())["rows"]
    assert row["runs"] == 6
    for block in ("latency_ms", "engine_ms", "latency_cpu_ms", "engine_cpu_ms"):
        s = row[block]
        assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"], (block, s)
    (line,) = list(csv.DictReader((out / "bench.csv").open()))
    assert float(line["latency_min_ms"]) == row["latency_ms"]["min"]
    assert float(line["engine_max_ms"]) == row["engine_ms"]["max"]
    head = next(ln for ln in captured.out.splitlines() if ln.startswith("model "))
    assert head.split()[10:14] == ["p90", "p99", "min", "max"]
    body = next(ln for ln in captured.out.splitlines() if ln.startswith("blazeface-short"))
    assert f"{row['latency_ms']['min']:.2f}" in body.split() and f"{row['latency_ms']['max']:.2f}" in body.split()


def test_runs_and_duration_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "blazeface-short", "--runs", "5", "--duration", "2"])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_duration_must_be_positive_seconds(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "blazeface-short", "--duration", value])
    assert e.value.code == 2 and "--duration" in capsys.readouterr().err


def test_a_saved_run_without_min_and_max_still_renders(tmp_path):
    row = {"model": "m", "engine": "litert", "precision": "fp32", "threads": 1, "task": "face_detection",
           "load_ms": 1.0, "first_ms": 1.0, "latency_ms": {"median": 2.0, "p90": 2.5, "p99": 3.0},
           "engine_ms": {"median": 1.0, "p90": 1.5, "p99": 2.0}, "throughput_ips": 400.0, "peak_rss_mb": 50.0,
           "size_bytes": 10, "fidelity": {}}
    doc = report.validate({"env": {}, "rows": [row]})
    assert "m " in report.format_table(doc)
    report.write_csv(doc, tmp_path / "b.csv")
    (line,) = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert line["latency_median_ms"] == "2.0" and line["latency_min_ms"] == ""


# -- --profile: operators from each engine's own profiler -----------------------------------
def _profiled_engines() -> list[str]:
    """The installed engines with a profiler anyedge reads, on SCRFD's ONNX file."""
    from anyedge.engines import engines_for
    from anyedge.registry import resolve_model

    path, _ = resolve_model("scrfd-500m")
    return [e for e in engines_for(path) if e in ("onnxruntime", "openvino")]


@pytest.mark.parametrize("engine", _profiled_engines())
def test_profile_accounts_for_the_engine_time(images, engine):
    doc = run_bench(BenchConfig(models=("scrfd-500m",), engines=(engine,), runs=5, warmup=1, profile=True,
                                images=str(images)))
    (row,) = doc["rows"]
    assert "error" not in row, row
    ops = row["profile"]
    assert ops and all(set(o) == {"op", "type", "ms", "precision"} for o in ops)
    assert [o["ms"] for o in ops] == sorted((o["ms"] for o in ops), reverse=True)
    assert all(o["ms"] >= 0 for o in ops) and ops[0]["ms"] > 0
    # the float model's convolutions run in fp32 (OpenVINO's fp32 pin holds under profiling too)
    convs = [o for o in ops if o["type"] in ("Conv", "Convolution", "FusedConv")]
    assert convs and {o["precision"] for o in convs} == {"fp32"}, convs
    assert row["profile_ms"] == pytest.approx(sum(o["ms"] for o in ops), abs=1e-3)
    # a profile that accounts for nothing is a bug: within 30 % of the engine time measured beside it
    assert 0.7 <= row["profile_ms"] / row["profile_engine_ms"]["median"] <= 1.3, (
        row["profile_ms"], row["profile_engine_ms"])
    # the profiled runs are apart from the timed ones
    assert row["latency_ms"]["n"] == row["engine_ms"]["n"] == row["runs"] == 5
    assert row["profile_runs"] == 10 and row["profile_engine_ms"]["n"] == 10


def test_profile_table_in_the_terminal_and_why_litert_has_none(tmp_path, images, capsys):
    out = tmp_path / "out"
    rc = main(["bench", "blazeface-short", "--engines", "litert,openvino", "--runs", "3", "--warmup", "1",
               "--images", str(images), "--out", str(out), "--no-png", "-q", "--profile"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = {r["engine"]: r for r in json.loads((out / "bench.json").read_text())["rows"]}
    assert "profile" not in rows["litert"] and "Python Interpreter API" in rows["litert"]["profile_na"]
    text = captured.out
    assert "slowest operators" in text
    assert "blazeface-short litert fp32 x1: no profile (LiteRT's Python Interpreter API" in text
    if "openvino" in rows:
        top = rows["openvino"]["profile"][:5]
        block = text[text.index("blazeface-short openvino fp32 x1:"):].splitlines()
        assert [ln.split()[-1] for ln in block[2:7]] == [o["op"] for o in top]
        (line,) = [ln for ln in csv.DictReader((out / "bench.csv").open()) if ln["engine"] == "openvino"]
        assert float(line["profile_ms"]) == rows["openvino"]["profile_ms"]


@pytest.mark.parametrize("exec_type, precision", [
    ("jit_avx512_I8", "int8"), ("jit_avx2_FP32", "fp32"), ("brgconv_avx512_amx_BF16", "bf16"),
    ("ref_any_U8", "int8"), ("jit_uni_f16_FP16", "fp16"), ("unknown", "?"), ("", "?")])
def test_layer_precision_from_openvino_exec_type(exec_type, precision):
    pytest.importorskip("openvino")
    from anyedge.engines.openvino import layer_precision

    assert layer_precision(exec_type) == precision


def _ev(name, ts, dur, cat="Node", **args):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


@pytest.mark.parametrize("events, skip, expect", [
    ([_ev("model_run", 0, 100, "Session"), _ev("c_kernel_time", 10, 60, op_name="Conv",
                                              input_type_shape=[{"float": [1, 3]}]),
      _ev("model_run", 200, 100, "Session"), _ev("c_kernel_time", 210, 80, op_name="Conv",
                                                input_type_shape=[{"float": [1, 3]}]),
      _ev("q_kernel_time", 250, 20, op_name="QLinearConv", input_type_shape=[{"uint8": [1]}]),
      _ev("c_fence_before", 205, 1, op_name="Conv")],
     0, [("c", "Conv", 0.07, "fp32"), ("q", "QLinearConv", 0.01, "int8")]),
    ([_ev("model_run", 0, 100, "Session"), _ev("c_kernel_time", 10, 60, op_name="Conv"),
      _ev("model_run", 200, 100, "Session"), _ev("c_kernel_time", 210, 80, op_name="Conv")],
     1, [("c", "Conv", 0.08, "?")]),
])
def test_onnxruntime_trace_means_per_inference(events, skip, expect):
    from anyedge.engines.onnxruntime import profile_from_trace

    got = [(o["op"], o["type"], o["ms"], o["precision"]) for o in profile_from_trace(events, skip)]
    assert got == expect


@pytest.mark.parametrize("events, skip", [([], 0), ({"traceEvents": []}, 0), ([_ev("model_run", 0, 1, "Session")], 1),
                                          (None, 0)])
def test_onnxruntime_trace_without_runs_is_an_engine_error(events, skip):
    from anyedge.engines.onnxruntime import profile_from_trace
    from anyedge.errors import EngineError

    with pytest.raises(EngineError, match="trace"):
        profile_from_trace(events, skip)


# -- throughput modes -----------------------------------------------------------------------
def _async_engines() -> list[str]:
    """The installed engines with an engine-native async mode, on SCRFD's ONNX file."""
    from anyedge.engines import engines_for
    from anyedge.registry import resolve_model

    path, _ = resolve_model("scrfd-500m")
    return [e for e in engines_for(path) if e in ("onnxruntime", "openvino")]


@pytest.mark.parametrize("engine, static", [(e, False) for e in _async_engines()]
                         + [("openvino", True)] * ("openvino" in _async_engines()))
def test_async_mode_returns_what_serial_calls_return(engine, static, smoke):
    """Bit for bit, in order, on the dynamic model and (OpenVINO) compiled for its one shape,
    where the requests read the feeds in place: the serial calls after them see fresh inputs."""
    from anyedge.engines import open_engine
    from anyedge.registry import resolve_model
    from anyedge.tasks.face_detector import FaceDetector

    path, _ = resolve_model("scrfd-500m")
    with FaceDetector.create("scrfd-500m", engine=engine) as det:
        feeds = [{det.engine.inputs[0].name: det.preprocess(img)[0].copy()} for img in smoke.values()] * 4
    options = {"performance": "throughput"} if engine == "openvino" else {}
    if static:
        options["shapes"] = {k: list(v.shape) for k, v in feeds[0].items()}
    eng = open_engine(path, engine, threads=None if engine == "openvino" else 1, **options)
    try:
        if engine == "openvino":  # the fp32 pin holds under the THROUGHPUT hint too
            assert eng.compute_precision == "fp32" and eng.precision == "fp32"
        assert eng.async_requests >= 1
        got = eng.run_async(feeds, requests=max(2, eng.async_requests))
        serial = [eng.run(f) for f in feeds]
        assert len(got) == len(serial) == 12
        for a, b in zip(got, serial):
            assert len(a) == len(b) == len(eng.outputs)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
        # the three photos differ, so a mix-up of the order would show
        assert not np.array_equal(got[0][0], got[1][0])
        assert eng.run_async([]) == []
    finally:
        eng.close()


def test_every_throughput_record_has_its_mode(images, capsys, tmp_path):
    out = tmp_path / "out"
    rc = main(["bench", "scrfd-500m", "blazeface-short", "--threads", "1,2", "--runs", "3", "--warmup", "1",
               "--images", str(images), "--out", str(out), "--no-png", "-q", "--async"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "bench.json").read_text())
    for r in doc["rows"]:
        modes = {(m["mode"], m["of"], m.get("requests", m.get("instances", m.get("workers")))): m
                 for m in r["throughput"]}
        assert len(modes) == len(r["throughput"])
        assert all(m["throughput_ips"] > 0 and m["calls"] >= 1 for m in modes.values())
        assert r["throughput"][0] == modes[("instances", "task", r["threads"])]
        assert r["throughput"][0]["throughput_ips"] == r["throughput_ips"]
        if r["engine"] in ("onnxruntime", "openvino") and r["threads"] == 1:
            # the async mode, and as many instances as it has requests, timed alike
            (n,) = [k[2] for k in modes if k[0] == "async"]
            assert modes[("async", "engine", n)]["matches_serial"] is True and n >= 1
            assert ("instances", "engine", n) in modes and ("workers", "task", n) in modes
        else:  # LiteRT has no engine-native async mode; the async mode is measured once per model x engine
            assert set(modes) == {("instances", "task", r["threads"])}
    assert "throughput per mode" in captured.out
    assert "scrfd-500m onnxruntime fp32 x1:" in captured.out
    # which mode a live loop should use: one per detector x engine, one line each in the terminal
    live = {(m["model"], m["engine"]) for m in doc["live_modes"]}
    assert live == {(r["model"], r["engine"]) for r in doc["rows"]}
    for m in doc["live_modes"]:
        assert f"{m['model']} {m['engine']} {m['precision']}: for anyedge run: " in captured.out
    lines = list(csv.DictReader((out / "bench.csv").open()))
    assert any(ln["async_throughput_ips"] and float(ln["async_throughput_ips"]) > 0 for ln in lines)
    assert any(ln["async_latency_median_ms"] and float(ln["async_latency_median_ms"]) > 0 for ln in lines)
    assert any(ln["instances_engine_throughput_ips"] and float(ln["instances_engine_throughput_ips"]) > 0
               for ln in lines)


@pytest.mark.parametrize("engine", _async_engines())
def test_async_honours_the_duration_and_times_each_request(images, engine):
    """Every throughput mode of --async runs for --duration (the last call starting before it is
    over), and reports each call's latency as benchmark_app does: median, mean, min, max."""
    duration = 1.0
    doc = run_bench(BenchConfig(models=("scrfd-500m",), engines=(engine,), warmup=1, duration=duration,
                                async_throughput=True, images=str(images)))
    (row,) = doc["rows"]
    assert "error" not in row, row
    modes = row["throughput"]
    assert [(m["mode"], m["of"]) for m in modes] == [("instances", "task"), ("instances", "engine"),
                                                       ("workers", "task"), ("async", "engine")]
    for m in modes:
        lat = m["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["max"], m
        assert lat["min"] <= lat["mean"] <= lat["max"] and lat["n"] == m["calls"], m
        # within one call's time of the budget (plus 50 ms of thread start and join)
        assert duration <= m["seconds"] <= duration + lat["max"] / 1e3 + 0.05, m
        assert m["throughput_ips"] == pytest.approx(m["calls"] / m["seconds"], rel=0.01)
    rec = modes[-1]
    assert rec["matches_serial"] is True
    assert modes[1]["instances"] == modes[2]["workers"] == rec["requests"]
    if engine == "openvino":  # as anyedge run --workers opens it: one instance, a CPU stream per worker
        assert modes[2]["streams"] == modes[2]["workers"]
    if engine == "openvino":  # compiled for the one shape it runs, as benchmark_app -shape
        assert rec["shapes"] == {"input.1": [1, 3, 640, 640]}


@pytest.mark.parametrize("engine", _async_engines())
def test_async_feeds_are_taken_lazily_and_each_request_is_timed(engine, smoke):
    """``run_async_each`` takes a feed only when a request is free (a generator may stop at a
    deadline), hands every result over once with its latency, and they are serial calls' outputs."""
    import time

    from anyedge.engines import open_engine
    from anyedge.registry import resolve_model
    from anyedge.tasks.face_detector import FaceDetector

    path, _ = resolve_model("scrfd-500m")
    with FaceDetector.create("scrfd-500m", engine=engine) as det:
        name = det.engine.inputs[0].name
        feeds = [{name: det.preprocess(img)[0].copy()} for img in smoke.values()]
    options = {"performance": "throughput", "shapes": {name: list(feeds[0][name].shape)}} if engine == "openvino" else {}
    eng = open_engine(path, engine, threads=None if engine == "openvino" else 1, **options)
    try:
        serial = [eng.run(f) for f in feeds]
        taken: list[float] = []
        got: dict[int, tuple[list[np.ndarray], float]] = {}

        def until(end: float):
            k = 0
            while time.perf_counter() < end:
                taken.append(time.perf_counter())
                yield feeds[k % len(feeds)]
                k += 1

        def keep(k: int, outputs: list[np.ndarray], ms: float) -> None:
            assert k not in got
            got[k] = (outputs, ms)

        t0 = time.perf_counter()
        n = eng.run_async_each(until(t0 + 0.5), keep, requests=2)
        wall = time.perf_counter() - t0
        assert n == len(taken) == len(got) and sorted(got) == list(range(n)) and n >= 2
        assert taken[-1] < t0 + 0.5 and wall < 0.5 + 2 * max(ms for _, ms in got.values()) / 1e3 + 0.05
        for k, (outputs, ms) in got.items():
            assert 0 < ms <= wall * 1e3
            for x, y in zip(outputs, serial[k % len(feeds)]):
                np.testing.assert_array_equal(x, y)
        assert eng.run_async_each(iter(()), keep) == 0
    finally:
        eng.close()


def _bad_feeds(name):
    good = np.zeros((1, 3, 640, 640), np.float32)
    return [({name: good.astype(np.float64)}, "dtype"), ({"other": good}, "expects inputs"),
            ({name: good[0]}, "shape")]


@pytest.mark.parametrize("engine", _async_engines())
def test_async_stops_at_a_bad_feed_or_a_failing_callback(engine):
    from anyedge.engines import open_engine
    from anyedge.errors import InputError
    from anyedge.registry import resolve_model

    path, _ = resolve_model("scrfd-500m")
    options = {"performance": "throughput", "shapes": {"input.1": [1, 3, 640, 640]}} if engine == "openvino" else {}
    eng = open_engine(path, engine, threads=None if engine == "openvino" else 1, **options)
    good = {"input.1": np.zeros((1, 3, 640, 640), np.float32)}
    try:
        for bad, what in _bad_feeds("input.1"):
            with pytest.raises(InputError, match=what):
                eng.run_async([good, bad, good])
        seen: list[int] = []

        def fail(k: int, outputs: list[np.ndarray], ms: float) -> None:
            seen.append(k)
            raise ValueError("consumer failed")

        with pytest.raises(ValueError, match="consumer failed"):
            eng.run_async_each([good] * 20, fail, requests=2)
        assert 1 <= len(seen) < 20  # no further feed once the consumer failed
    finally:
        eng.close()


@pytest.mark.parametrize("shapes, error, match", [
    ({"input.1": [1, 3, 320, 480]}, None, None),
    ({"input.1": (1, 3, 640, 640)}, None, None),
    ({"image": [1, 3, 640, 640]}, "InputError", "has the inputs 'input.1'"),
    ({"input.1": [1, 3, 0, 640]}, "InputError", "positive sizes"),
    ({"input.1": [1, 3, -1, 640]}, "InputError", "positive sizes"),
    ({"input.1": []}, "InputError", "positive sizes"),
    ({"input.1": "1,3,640,640"}, "InputError", "positive sizes"),
    ({"input.1": [1, 3, 640]}, "ModelLoadError", "cannot give scrfd_500m_bnkps.onnx the input shapes"),
])
def test_openvino_shapes_fix_dynamic_inputs(shapes, error, match):
    pytest.importorskip("openvino")
    from anyedge import errors
    from anyedge.engines import open_engine
    from anyedge.registry import resolve_model

    path, _ = resolve_model("scrfd-500m")
    if error:
        with pytest.raises(getattr(errors, error), match=match):
            open_engine(path, "openvino", shapes=shapes)
        return
    eng = open_engine(path, "openvino", shapes=shapes)
    try:
        assert eng.inputs[0].shape == tuple(shapes["input.1"])
        (x,) = [np.random.default_rng(0).random(tuple(shapes["input.1"]), dtype=np.float32)]
        assert len(eng.run({"input.1": x})) == len(eng.outputs)
    finally:
        eng.close()


def test_the_readmes_profile_duration_and_async_commands(tmp_path, images, capsys):
    """The README's bench lines that time by duration, profile or measure the async mode, as shown."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text[text.index("## `anyedge bench`"):].split("```")[1]
    lines = [ln.split("#")[0].strip() for ln in block.splitlines()
             if any(k in ln for k in ("--duration", "--profile", "--async"))]
    assert len(lines) == 2, lines
    for k, line in enumerate(lines):
        out = tmp_path / f"out{k}"
        argv = shlex.split(line)
        assert argv[0] == "anyedge"
        rc = main(argv[1:] + ["--images", str(images), "--out", str(out), "--no-png", "-q"])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        rows = json.loads((out / "bench.json").read_text())["rows"]
        assert rows and all("error" not in r for r in rows)
        if "--profile" in argv:
            assert all(r.get("profile") for r in rows) and "slowest operators" in captured.out
            assert all(r["timed_s"] >= 1.0 for r in rows)
        if "--async" in argv:
            assert {r["threads"] for r in rows} == {1, 2} and "throughput per mode" in captured.out


def test_the_readmes_side_by_side_with_benchmark_app(tmp_path, monkeypatch, capsys):
    """The README's benchmark_app comparison as shown: benchmark_app's runs (precision pinned to
    f32 as asked), anyedge's timed run with the async mode, and the int8 bundle's profile."""
    import os
    import shlex
    import subprocess
    import sys

    from anyedge.registry import resolve_model

    bapp = Path(sys.executable).with_name("benchmark_app")
    if not bapp.is_file():
        pytest.skip("benchmark_app comes with the openvino wheel, not installed here")
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    part = text[text.index("**Beside OpenVINO's `benchmark_app`**"):]
    block = part.split("```")[1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("sh")]
    assert [ln.split()[0] for ln in lines] == ["benchmark_app", "benchmark_app", "benchmark_app", "anyedge"]
    model_dir = resolve_model("scrfd-500m")[0].parent
    for line in lines[:3]:
        argv = shlex.split(line)
        proc = subprocess.run([str(bapp), *argv[1:]], cwd=model_dir, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Throughput:" in proc.stdout and "Median:" in proc.stdout
        if "-infer_precision" in argv:  # asked for f32; else its own pick, shown in the table
            assert "INFERENCE_PRECISION_HINT: <Type: 'float32'>" in proc.stdout
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(lines[3])[1:]) == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "bench" / "bench.json").read_text())
    (row,) = doc["rows"]
    assert row["engine_precision"] == "fp32" and row["timed_s"] >= 5
    assert [(m["mode"], m["of"]) for m in row["throughput"]] == [("instances", "task"), ("instances", "engine"),
                                                                   ("workers", "task"), ("async", "engine")]
    assert all(m["seconds"] >= 5 for m in row["throughput"])
    assert [m["text"].startswith("for anyedge run: ") for m in doc["live_modes"]] == [True]
    # the int8 bundle: converted, then profiled beside the float model
    para = part[part.index("Where the time goes"):].split("\n\n")[0]
    convert, bench = [" ".join(c.split()) for c in para.split("`")[1::2] if c.startswith("anyedge ")]
    assert main(shlex.split(convert)[1:]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(shlex.split(bench)[1:]) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "out" / "bench" / "bench.json").read_text())["rows"]
    f32, i8 = rows
    assert f32["precision"] == "fp32" and i8["precision"] == "int8"
    assert {o["precision"] for o in f32["profile"]} == {"fp32"}
    weighted = [o for o in i8["profile"] if o["type"] in ("Convolution", "GroupConvolution")]
    assert weighted and {o["precision"] for o in weighted} == {"int8"}
    assert "slowest operators" in capsys.readouterr().out


def test_png_has_a_bar_chart_of_the_slowest_operators(tmp_path):
    pytest.importorskip("matplotlib")
    ops = [{"op": f"conv{k}", "type": "Convolution", "ms": 1.0 / (k + 1), "precision": "int8"} for k in range(8)]
    row = {"model": "m", "engine": "openvino", "precision": "int8", "threads": 1, "task": "face_detection",
           "load_ms": 1.0, "first_ms": 1.0, "latency_ms": {"median": 2.0, "p90": 2.5, "p99": 3.0},
           "engine_ms": {"median": 1.0, "p90": 1.5, "p99": 2.0}, "throughput_ips": 400.0, "peak_rss_mb": 50.0,
           "size_bytes": 10, "fidelity": {}, "profile": ops, "profile_ms": sum(o["ms"] for o in ops)}
    doc = {"env": {}, "rows": [row, {**row, "engine": "litert", "profile": None, "profile_na": "none"}]}
    fig = report.chart(doc)
    (ax,) = [a for a in fig.axes if a.get_title().startswith("Slowest operators")]
    widths = sorted((p.get_width() for p in ax.patches), reverse=True)
    assert widths[:5] == pytest.approx([o["ms"] for o in ops[:5]]) and len(ax.patches) == 6  # top 5 + the row's label
    assert report.write_png(doc, tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


# -- which mode a live loop should use ------------------------------------------------------
_COUNT = {"instances": "instances", "workers": "workers", "async": "requests"}


def _row(threads, latency, modes, model="m", engine="openvino", task="face_detection"):
    return {"model": model, "engine": engine, "precision": "fp32", "threads": threads, "task": task,
            "latency_ms": {"median": latency}, "throughput": [
                {"mode": mode, "of": of, _COUNT[mode]: n, "throughput_ips": ips,
                 "latency_ms": {"median": ms}} for mode, of, n, ips, ms in modes]}


@pytest.mark.parametrize("rows, mode, workers, threads, fps, words", [
    # two workers deliver 1.6x the frames of one: worth it when the camera is faster than one worker
    ([_row(1, 25.0, [("instances", "task", 1, 40.0, 25.0), ("instances", "task", 2, 64.0, 31.0)])],
     "workers", 2, None, 64.0, ["--workers 2", "more than 40 frames/s", "31.0 ms instead of 25.0 ms"]),
    # what anyedge run --workers opens is the figure for several workers, when measured
    ([_row(1, 25.0, [("instances", "task", 1, 40.0, 25.0), ("instances", "task", 2, 64.0, 31.0),
                     ("workers", "task", 2, 44.0, 45.0)])],
     "one worker", 1, 1, 40.0, ["2 workers would process 44.0 frames/s (x1.10, under x1.2) at 45.0 ms"]),
    # 1.1x is not worth each frame's longer wait
    ([_row(1, 25.0, [("instances", "task", 1, 40.0, 25.0), ("instances", "task", 2, 44.0, 45.0)])],
     "one worker", 1, 1, 40.0, ["--threads 1 (one worker)", "x1.10, under x1.2"]),
    # one worker with two engine threads beats two workers with one each
    ([_row(1, 25.0, [("instances", "task", 1, 40.0, 25.0)]),
      _row(2, 14.0, [("instances", "task", 2, 45.0, 44.0)])],
     "one worker", 1, 2, 71.43, ["--threads 2 (one worker)", "71.4 frames/s at 14.0 ms"]),
    # the async engine figure is named beside, never chosen: a live loop runs whole calls
    ([_row(1, 25.0, [("instances", "task", 1, 40.0, 25.0), ("instances", "engine", 2, 90.0, 22.0),
                     ("async", "engine", 2, 95.0, 21.0)])],
     "one worker", 1, 1, 40.0, ["no several-worker figure", "async mode reaches 95.0/s on engine calls"]),
    # a figure measured over nothing is no candidate
    ([_row(1, 0.0, [("instances", "task", 1, 40.0, 25.0), ("instances", "task", 2, 30.0, float("nan"))])],
     "one worker", 1, 1, 40.0, ["40.0 frames/s at 25.0 ms"]),
])
def test_live_mode_follows_the_measured_figures(rows, mode, workers, threads, fps, words):
    from anyedge.bench.advice import live_modes

    (rec,) = live_modes(rows)
    assert (rec["mode"], rec["workers"], rec["threads"]) == (mode, workers, threads)
    assert rec["frames_per_s"] == pytest.approx(fps, abs=0.01)
    assert rec["text"].startswith("for anyedge run: ")
    for w in words:
        assert w in rec["text"], rec["text"]


@pytest.mark.parametrize("rows", [
    [],
    [{"model": "m", "engine": "litert", "precision": "fp32", "threads": 1, "error": "boom"}],
    [{"model": "m", "engine": "litert", "precision": "fp32", "threads": 1, "skipped": "no data"}],
    [_row(1, 20.0, [], task="activity_classification")],  # no live loop runs an activity net per frame
])
def test_no_live_mode_without_a_detector_figure(rows):
    from anyedge.bench.advice import format_live_modes, live_modes

    assert live_modes(rows) == []
    assert format_live_modes({"rows": rows}) == ""


def test_live_mode_of_a_run_saved_without_it(tmp_path, capsys):
    """--from-json of a run saved before live modes existed still says which mode to use."""
    row = {**_row(1, 25.0, [("instances", "task", 1, 40.0, 25.0), ("instances", "task", 2, 64.0, 31.0)]),
           "load_ms": 1.0, "first_ms": 1.0, "engine_ms": {"median": 20.0, "p90": 21.0, "p99": 22.0},
           "throughput_ips": 40.0, "peak_rss_mb": 50.0, "size_bytes": 10, "fidelity": {}}
    row["latency_ms"] = {"median": 25.0, "p90": 26.0, "p99": 27.0}
    (tmp_path / "old.json").write_text(json.dumps({"env": {}, "rows": [row]}))
    assert main(["bench", "--from-json", str(tmp_path / "old.json"), "--no-png"]) == 0
    out = capsys.readouterr().out
    assert "m openvino fp32: for anyedge run: --workers 2 when the camera gives more than 40" in out


def test_the_side_by_side_script_alternates_benchmark_app_and_anyedge(tmp_path):
    """benchmarks/benchmark_app_side_by_side.py (the README's side-by-side figures), one short round."""
    import subprocess
    import sys

    if not Path(sys.executable).with_name("benchmark_app").is_file():
        pytest.skip("benchmark_app comes with the openvino wheel, not installed here")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "benchmark_app_side_by_side.py"
    proc = subprocess.run([sys.executable, str(script), "--seconds", "1", "--repeat", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "benchmark_app_side_by_side.json").read_text())
    rows = {r["run"]: r for r in doc["rows"]}
    assert rows["bapp_throughput_f32"]["precision"] == "float32" and rows["bapp_throughput_f32"]["throughput_ips"] > 0
    assert rows["bapp_sync_f32"]["precision"] == "float32"
    (async_run,) = [k for k in rows if k.startswith("openvino async engine")]
    assert rows[async_run]["throughput_ips"] > 0 and rows[async_run]["min"] <= rows[async_run]["median"]
    assert any(k.startswith("onnxruntime async engine") for k in rows)
    ratio = doc["meta"]["async_vs_benchmark_app"]
    assert ratio["median"] == pytest.approx(rows[async_run]["throughput_ips"] / rows["bapp_throughput_f32"]["throughput_ips"],
                                            rel=0.02)
    assert len(doc["meta"]["load_averages"]) == 1 and "| bapp_throughput_f32 | float32 |" in proc.stdout
    assert "openvino live mode (round 1): for anyedge run: " in proc.stdout
