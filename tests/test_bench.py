"""anyedge bench: schema, CSV, PNG, --compare on hand-made results, and small real runs (detector, bundle, BNN)."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anyedge.bench import report
from anyedge.bench.env import ISA_FLAGS, cpu_features
from anyedge.bench.runner import BenchConfig, run_bench
from anyedge.cli import main
from anyedge.errors import InputError

from .conftest import WIDER


def _row(model: str, engine: str, lat: float, **over) -> dict:
    row = {"model": model, "engine": engine, "precision": "fp32", "threads": 1, "task": "face_detection",
           "load_ms": 100.0, "first_ms": 5.0, "latency_ms": {"median": lat, "p90": lat * 1.2, "p99": lat * 1.5},
           "engine_ms": {"median": lat / 2, "p90": lat / 2, "p99": lat / 2}, "overhead_ratio": 2.0,
           "throughput_ips": 1000.0 / lat, "peak_rss_mb": 100.0, "size_bytes": 1000,
           "fidelity": {"f1": 1.0, "mean_iou": 1.0}}
    row.update(over)
    return row


def _doc(cpu: str, rows: list[dict]) -> dict:
    return {"schema": "anyedge-bench/1", "env": {"cpu": cpu, "host": "h", "cores": 2, "time": "t"}, "rows": rows}


OLD = _doc("CPU A", [_row("blazeface-short", "litert", 2.0), _row("yunet", "onnxruntime", 10.0),
                     _row("gone", "litert", 1.0)])
NEW = _doc("CPU A", [_row("blazeface-short", "litert", 4.0, fidelity={"f1": 0.9, "mean_iou": 0.8}),
                     _row("yunet", "onnxruntime", 5.0), _row("fresh", "openvino", 1.0)])


def test_compare_gives_ratios_of_matching_rows():
    c = report.compare(OLD, NEW)
    by = {(r["model"], r["engine"]): r for r in c["rows"]}
    assert set(by) == {("blazeface-short", "litert"), ("yunet", "onnxruntime")}
    assert by[("blazeface-short", "litert")]["latency"] == pytest.approx(2.0)
    assert by[("blazeface-short", "litert")]["throughput"] == pytest.approx(0.5)
    assert by[("blazeface-short", "litert")]["fidelity_delta"] == pytest.approx(-0.1)
    assert by[("yunet", "onnxruntime")]["latency"] == pytest.approx(0.5)
    assert c["same_device"] and c["only_old"] == [["gone", "litert", "fp32", 1]]
    assert c["only_new"] == [["fresh", "openvino", "fp32", 1]]
    text = report.format_compare(c)
    assert "REGRESSION" in text.splitlines()[[i for i, line in enumerate(text.splitlines())
                                              if line.startswith("blazeface-short")][0]]
    assert "yunet" in text and "REGRESSION" not in [ln for ln in text.splitlines() if ln.startswith("yunet")][0]


def test_compare_across_devices_says_so_and_flags_nothing():
    other = copy.deepcopy(NEW)
    other["env"]["cpu"] = "CPU B"
    c = report.compare(OLD, other)
    assert not c["same_device"]
    text = report.format_compare(c)
    assert "different devices" in text and "REGRESSION" not in text


def test_cli_compares_two_saved_runs(tmp_path, capsys):
    (tmp_path / "old.json").write_text(json.dumps(OLD))
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    rc = main(["bench", "--from-json", str(tmp_path / "new.json"), "--compare", str(tmp_path / "old.json"),
               "--out", str(tmp_path / "out"), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)  # --json: pure JSON on stdout
    assert doc["compare"]["rows"][0]["latency"] == pytest.approx(2.0)
    assert (tmp_path / "out" / "bench.json").is_file() and (tmp_path / "out" / "bench.png").is_file()


@pytest.mark.parametrize(
    "doc, needle",
    [
        ([], "'env'"),
        ({"env": {}}, "'rows'"),
        ({"env": {}, "rows": [1]}, "row 0 is not an object"),
        ({"env": {}, "rows": [{"model": "m"}]}, "lacks"),
        ({"env": {}, "rows": [_row("m", "e", 1.0, latency_ms={"median": 1.0})]}, "p90"),
    ],
)
def test_malformed_results_are_refused(doc, needle):
    with pytest.raises(InputError, match=needle):
        report.validate(doc)


@pytest.mark.parametrize("text, err", [("{not json", "not JSON"), (None, "no such file")])
def test_cli_compare_with_a_bad_file_is_one_line_exit_2(tmp_path, capsys, text, err):
    p = tmp_path / "old.json"
    if text is not None:
        p.write_text(text)
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    rc = main(["bench", "--from-json", str(tmp_path / "new.json"), "--compare", str(p), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 2 and err in captured.err and len(captured.err.strip().splitlines()) == 1


def test_csv_flattens_rows(tmp_path):
    path = report.write_csv(NEW, tmp_path / "bench.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["model"] for r in rows] == ["blazeface-short", "yunet", "fresh"]
    assert float(rows[0]["latency_median_ms"]) == 4.0 and float(rows[0]["latency_p99_ms"]) == 6.0
    assert float(rows[0]["fidelity_f1"]) == 0.9
    assert set(report.CSV_COLUMNS) == set(rows[0])


def test_png_is_written(tmp_path):
    doc = copy.deepcopy(NEW)
    doc["rows"].append(_row("yunet", "onnxruntime", 3.0, threads=2))
    doc["rows"].append(_row("bnn-racketsports", "bnn", 0.05, task="activity_classification",
                            fidelity={"accuracy": 0.88}))
    path = report.write_png(doc, tmp_path / "bench.png")
    head = path.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


@pytest.mark.parametrize(
    "cpuinfo, has, lacks",
    [
        ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 popcnt avx2 fma\n",
         {"AVX2", "POPCNT"}, {"AVX-512F", "AVX-512 VNNI", "AMX", "NEON"}),
        ("processor\t: 0\nmodel name\t: Xeon\nflags\t: avx2 avx512f avx512_vnni amx_tile amx_int8 popcnt\n",
         {"AVX-512F", "AVX-512 VNNI", "AMX", "AMX-INT8"}, {"NEON"}),
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm asimddp i8mm\nCPU part\t: 0xd0b\n",
         {"NEON", "NEON dotprod", "Arm i8mm"}, {"AVX2"}),
        ("", set(), {"AVX2", "AMX"}),
    ],
)
def test_cpu_features_from_cpuinfo(cpuinfo, has, lacks):
    f = cpu_features(cpuinfo)
    assert set(f["flags"]) == set(ISA_FLAGS.values())
    assert {k for k, v in f["flags"].items() if v} >= has
    assert not any(f["flags"][k] for k in lacks)


def test_cosine_fidelity_for_embedders():
    from anyedge.bench.worker import cosine_fidelity

    a = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    b = np.array([[2.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    f = cosine_fidelity(a, b)
    assert f["cosine_min"] == pytest.approx(np.sqrt(0.5), abs=1e-5) and f["n"] == 3
    assert f["cosine_mean"] == pytest.approx((2 + np.sqrt(0.5)) / 3, abs=1e-5)
    assert f["cosine_min"] <= f["cosine_p5"] <= f["cosine_mean"]
    with pytest.raises(InputError, match="one shape"):
        cosine_fidelity(a, b[:2])


def _check_schema(doc: dict) -> None:
    report.validate(doc)
    env = doc["env"]
    for key in ("cpu", "cores", "isa", "os", "python", "engines"):
        assert key in env
    for r in doc["rows"]:
        assert "error" not in r, r
        assert r["latency_ms"]["median"] > 0 and r["engine_ms"]["median"] > 0
        assert r["latency_ms"]["median"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["throughput_ips"] > 0 and r["peak_rss_mb"] > 10 and r["size_bytes"] > 0
        assert r["load_ms"] > 0 and r["first_ms"] > 0
        assert r["engine_precision"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bench-images")
    for f in sorted(WIDER.glob("*.jpg"))[:6]:
        shutil.copy(f, d / f.name)
    return d


def test_real_bench_run_writes_json_csv_png(tmp_path, images, capsys):
    out = tmp_path / "out"
    rc = main(["bench", "blazeface-short", "--engines", "litert", "--threads", "1,2", "--runs", "4",
               "--warmup", "1", "--images", str(images), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "bench.json").read_text())
    _check_schema(doc)
    assert [(r["model"], r["engine"], r["threads"]) for r in doc["rows"]] == [
        ("blazeface-short", "litert", 1), ("blazeface-short", "litert", 2)]
    # the float model on its own engine is the reference: its fidelity says so, and counts faces
    assert doc["rows"][0]["fidelity"]["reference"] == "self" and doc["rows"][0]["fidelity"]["images"] == 6
    assert len(list(csv.DictReader((out / "bench.csv").open()))) == 2
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "blazeface-short" in captured.out and "bench [" in captured.err  # table on stdout, progress on stderr


def test_bundle_rows_compare_with_the_float_model(tmp_path, images, faces_calib):
    from anyedge.converters.api import convert

    bundle = tmp_path / "bf-gpu"
    convert("blazeface-short", target="mobile-gpu", out=bundle, calibration=faces_calib, show_progress=False)
    doc = run_bench(BenchConfig(models=(str(bundle),), engines=("litert",), runs=3, warmup=1, images=str(images)))
    _check_schema(doc)
    (row,) = doc["rows"]
    assert row["source"] == "bundle" and row["precision"] == "fp16" and row["model"] == "blazeface-short@mobile-gpu"
    assert row["size_bytes"] == sum(f.stat().st_size for f in bundle.iterdir())
    fid = row["fidelity"]
    assert "blazeface-short litert" in fid["reference"] and fid["images"] == 6
    # the same comparison made here: the float model and the bundle on the same frames
    from anyedge import FaceDetector
    from anyedge.bench.data import read_images
    from anyedge.ops.metrics import detection_agreement

    frames = read_images(str(images))
    with FaceDetector.create("blazeface-short", engine="litert", channels="BGR", threads=1) as ref, \
            FaceDetector.create(str(bundle), engine="litert", channels="BGR", threads=1) as got:
        pairs = [((r.boxes, r.scores), (g.boxes, g.scores)) for r, g in ((ref.detect(x), got.detect(x)) for x in frames)]
    ag = detection_agreement(pairs)
    assert ag.reference_faces > 0 and fid["reference_faces"] == ag.reference_faces
    assert fid["f1"] == pytest.approx(ag.f1, abs=1e-4) and fid["mean_iou"] == pytest.approx(ag.mean_iou, abs=1e-4)


def test_embedder_units_keep_to_their_engines_and_compare_with_the_float_model():
    from anyedge.bench.runner import plan_units

    notes: list[str] = []
    units = plan_units(BenchConfig(models=("mobilefacenet-int8w",)), notes)
    rows = [(u.model, u.engine, u.precision) for u in units if not u.extra.get("reference_only")]
    assert rows == [("mobilefacenet-int8w", "litert", "int8w")]  # its settings allow LiteRT only
    (ref,) = [u for u in units if u.extra.get("reference_only")]
    assert ref.model == "mobilefacenet" and ref.is_reference and ref.kind == "face_embedding"
    assert {u.ref_key for u in units} == {"mobilefacenet"}


def test_embedder_rows_measure_cosine_to_the_float_model(tmp_path):
    doc = run_bench(BenchConfig(models=("mobilefacenet-int8w",), engines=("litert",), runs=3, warmup=1,
                                max_images=4))
    _check_schema(doc)
    (row,) = doc["rows"]
    assert (row["model"], row["precision"], row["task"], row["input"]) == ("mobilefacenet-int8w", "int8w",
                                                                          "face_embedding", "96x112")
    fid = row["fidelity"]
    assert "mobilefacenet litert" in fid["reference"] and fid["n"] == fid["crops"] >= 3  # aligned real faces
    # int8 weights move the embeddings a little, never to another face
    assert 0.9 < fid["cosine_min"] <= fid["cosine_p5"] <= fid["cosine_mean"] < 0.9999
    report.write_csv(doc, tmp_path / "bench.csv")
    (line,) = csv.DictReader((tmp_path / "bench.csv").open())
    assert float(line["fidelity_cosine_mean"]) == fid["cosine_mean"]
    assert "cos " in report.format_table(doc)


def test_bnn_rows_time_kernels_and_measure_test_accuracy():
    from anyedge.bench.har import test_split
    from anyedge.tasks.activity_classifier import ActivityClassifier

    doc = run_bench(BenchConfig(models=("bnn-basicmotions",), engines=("bnn",), runs=20, warmup=2))
    _check_schema(doc)
    (row,) = doc["rows"]
    assert row["engine"] == "bnn" and row["precision"] == "binary"
    assert row["kernel_ms"]["median"] > 0
    x, y, labels = test_split("BasicMotions")
    with ActivityClassifier.create("bnn-basicmotions") as clf:
        acc = np.mean([r.label == labels[t] for r, t in zip(clf.classify_batch(x), y)])
    assert row["fidelity"]["accuracy"] == pytest.approx(acc, abs=1e-4)
    # agreement with the float twin's predictions, counted here from the twin itself
    from anyedge.bench.har import FloatTwin

    twin = FloatTwin.find("BasicMotions")
    float_pred = np.array(twin.labels)[np.argmax(twin.forward(x), axis=1)]
    with ActivityClassifier.create("bnn-basicmotions") as clf:
        bnn_pred = np.array([r.label for r in clf.classify_batch(x)])
    assert row["fidelity"]["agreement"] == pytest.approx(np.mean(bnn_pred == float_pred), abs=1e-4)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bench", "no-such-model"], "not a registered model"),
        (["bench", "blazeface-short", "--engines", "tensorflow"], "unknown engine"),
        (["bench", "blazeface-short", "--images", "/nonexistent-dir"], "not a folder"),
    ],
)
def test_bench_usage_errors_are_one_line(argv, needle, capsys):
    assert main(argv + ["--out", "/tmp/anyedge-bench-never-written"]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_bad_thread_list_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--threads", "0,2"])
    assert e.value.code == 2 and "positive" in capsys.readouterr().err
