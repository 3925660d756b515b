"""anyedge bench for people who use benchmark_app: timed runs (--duration), min / max latency,
per-operator profiles from each engine's own profiler, and throughput per mode."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

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
