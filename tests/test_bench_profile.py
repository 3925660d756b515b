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


@pytest.mark.parametrize("engine", _async_engines())
def test_async_mode_returns_what_serial_calls_return(engine, smoke):
    from anyedge.engines import open_engine
    from anyedge.registry import resolve_model
    from anyedge.tasks.face_detector import FaceDetector

    path, _ = resolve_model("scrfd-500m")
    with FaceDetector.create("scrfd-500m", engine=engine) as det:
        feeds = [{det.engine.inputs[0].name: det.preprocess(img)[0].copy()} for img in smoke.values()] * 4
    options = {"performance": "throughput"} if engine == "openvino" else {}
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
    rows = json.loads((out / "bench.json").read_text())["rows"]
    for r in rows:
        modes = {m["mode"]: m for m in r["throughput"]}
        assert all(m["throughput_ips"] > 0 for m in modes.values())
        assert modes["instances"]["instances"] == r["threads"]
        assert modes["instances"]["throughput_ips"] == r["throughput_ips"]
        if r["engine"] in ("onnxruntime", "openvino") and r["threads"] == 1:
            assert modes["async"]["matches_serial"] is True and modes["async"]["requests"] >= 1
        else:  # LiteRT has no engine-native async mode; the async mode is measured once per model x engine
            assert set(modes) == {"instances"}
    assert "throughput per mode" in captured.out
    assert "scrfd-500m onnxruntime fp32 x1: instances" in captured.out
    lines = list(csv.DictReader((out / "bench.csv").open()))
    assert any(ln["async_throughput_ips"] and float(ln["async_throughput_ips"]) > 0 for ln in lines)


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
    assert [ln.split()[0] for ln in lines] == ["benchmark_app", "benchmark_app", "anyedge"]
    model_dir = resolve_model("scrfd-500m")[0].parent
    for line in lines[:2]:
        argv = shlex.split(line)
        proc = subprocess.run([str(bapp), *argv[1:]], cwd=model_dir, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "INFERENCE_PRECISION_HINT: <Type: 'float32'>" in proc.stdout and "Throughput:" in proc.stdout
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(lines[2])[1:]) == 0, capsys.readouterr().err
    (row,) = json.loads((tmp_path / "out" / "bench" / "bench.json").read_text())["rows"]
    assert row["engine_precision"] == "fp32" and row["timed_s"] >= 10
    assert [m["mode"] for m in row["throughput"]] == ["instances", "async"]
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
