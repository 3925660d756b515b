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


# -- from a plain install: the shipped nets, their test data and float twins ----------------
def _plain_install(monkeypatch, tmp_path) -> None:
    """No data folder, no model folder, no twin folder, an empty cache; the aeon wheel served locally."""
    from .test_har_data import local_aeon_wheel

    for var in ("ANYEDGE_DATA", "ANYEDGE_HAR_TWINS", "ANYEDGE_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "no-models").mkdir()
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", str(tmp_path / "no-models"))
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(local_aeon_wheel(tmp_path / "index")))


def _sdk_accuracy(model: str, dataset: str) -> float:
    from anyedge.har import load_ts
    from anyedge.tasks.activity_classifier import ActivityClassifier

    from .har_support import har_file

    ds = load_ts(har_file(dataset, "test"))
    with ActivityClassifier.create(model) as clf:
        return float(np.mean([r.label == ds.labels[t] for r, t in zip(clf.classify_batch(ds.x), ds.y)]))


def test_default_bench_on_a_plain_install_runs_the_shipped_nets_and_says_what_racketsports_needs(
        tmp_path, monkeypatch, capsys):
    _plain_install(monkeypatch, tmp_path)
    out = tmp_path / "out"
    rc = main(["bench", "--runs", "3", "--warmup", "1", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "fetching the BasicMotions test split from the PyPI wheel aeon==" in captured.err
    doc = json.loads((out / "bench.json").read_text())
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == {"bnn-racketsports", "bnn-basicmotions", "bnn-basicmotions:float"}
    skipped = rows["bnn-racketsports"]
    assert skipped["source"] == "packaged" and "latency_ms" not in skipped
    assert "ANYEDGE_DATA" in skipped["skipped"] and "har/RacketSports/RacketSports_TEST.ts" in skipped["skipped"]
    bnn = rows["bnn-basicmotions"]
    assert bnn["source"] == "packaged" and bnn["fidelity"]["windows"] == 40
    assert bnn["fidelity"]["accuracy"] == pytest.approx(_sdk_accuracy("bnn-basicmotions", "BasicMotions"), abs=1e-4)
    assert rows["bnn-basicmotions:float"]["fidelity"]["reference"] == "self"  # the shipped twin, no folder set
    assert "bnn-basicmotions:float" in bnn["fidelity"]["reference"] and bnn["fidelity"]["agreement"] > 0.9
    # the table says which rows are the shipped nets and what the skipped one needs
    lines = captured.out.splitlines()
    assert [ln for ln in lines if ln.startswith("bnn-basicmotions *")]
    (line,) = [ln for ln in lines if ln.startswith("bnn-racketsports *")]
    assert "skipped: " in line and "ANYEDGE_DATA" in line
    assert "shipped in the anyedge package (marked *): bnn-racketsports, bnn-basicmotions" in captured.out
    (csv_skip,) = [r for r in csv.DictReader((out / "bench.csv").open()) if r["model"] == "bnn-racketsports"]
    assert "ANYEDGE_DATA" in csv_skip["skipped"]


def test_bench_of_a_net_without_test_data_alone_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    _plain_install(monkeypatch, tmp_path)
    assert main(["bench", "bnn-racketsports", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to benchmark" in err[0] and "ANYEDGE_DATA" in err[0]


def test_float_twins_ship_in_the_package_and_anyedge_har_twins_overrides_them(tmp_path, monkeypatch):
    from anyedge.bench.har import FloatTwin, packaged_twin_dir

    monkeypatch.delenv("ANYEDGE_HAR_TWINS", raising=False)
    for ds in ("BasicMotions", "RacketSports"):
        assert FloatTwin.find(ds).path == packaged_twin_dir() / f"float-{ds.lower()}.npz"
    z = dict(np.load(packaged_twin_dir() / "float-basicmotions.npz"))
    z["bo"] = z["bo"] + 1.0
    np.savez(tmp_path / "float-basicmotions.npz", **z)
    monkeypatch.setenv("ANYEDGE_HAR_TWINS", str(tmp_path))
    twin = FloatTwin.find("BasicMotions")
    assert twin.path == tmp_path / "float-basicmotions.npz"
    np.testing.assert_array_equal(twin.arrays["bo"], z["bo"])
    assert FloatTwin.find("RacketSports").path.parent == packaged_twin_dir()  # not in the override: shipped one


def test_without_the_onnx_package_the_float_twin_runs_as_numpy(monkeypatch):
    import importlib.util

    from anyedge.bench.har import FloatTwin, test_split
    from anyedge.tasks.activity_classifier import ActivityClassifier

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    doc = run_bench(BenchConfig(models=("bnn-basicmotions",), runs=3, warmup=1))
    rows = {r["model"]: r for r in doc["rows"]}
    twin_row, bnn = rows["bnn-basicmotions:float"], rows["bnn-basicmotions"]
    assert twin_row["engine"] == "numpy" and "numpy" in twin_row["note"] and twin_row["latency_ms"]["median"] > 0
    x, y, labels = test_split("BasicMotions")
    twin = FloatTwin.find("BasicMotions")
    float_pred = np.array(twin.labels)[np.argmax(twin.forward(x), axis=1)]
    assert twin_row["fidelity"]["accuracy"] == pytest.approx(np.mean(float_pred == np.array(labels)[y]), abs=1e-4)
    with ActivityClassifier.create("bnn-basicmotions") as clf:
        bnn_pred = np.array([r.label for r in clf.classify_batch(x)])
    assert bnn["fidelity"]["agreement"] == pytest.approx(np.mean(bnn_pred == float_pred), abs=1e-4)


# -- no vacuous figures ---------------------------------------------------------------------
def test_detector_fidelity_over_no_reference_face_is_none_with_a_reason():
    from anyedge.bench.worker import detector_fidelity
    from anyedge.ops.metrics import detection_agreement

    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    one = (np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32))
    none_at_all = detector_fidelity(detection_agreement([(empty, empty)]))
    assert none_at_all["f1"] is None and none_at_all["recall"] is None and none_at_all["mean_iou"] is None
    assert none_at_all["precision"] is None and "0 faces" in none_at_all["na"]
    spurious = detector_fidelity(detection_agreement([(empty, one)]))  # one false positive: precision 0 is real
    assert spurious["f1"] is None and spurious["precision"] == 0.0
    missed = detector_fidelity(detection_agreement([(one, empty)]))  # one miss: F1 0 is real, IoU of no pair is not
    assert missed["f1"] == 0.0 and missed["recall"] == 0.0 and missed["mean_iou"] is None and "IoU" in missed["na"]
    same = detector_fidelity(detection_agreement([(one, one)]))
    assert same["f1"] == 1.0 and same["mean_iou"] == 1.0 and "na" not in same


def test_har_fidelity_over_no_window_is_none():
    from anyedge.bench.worker import _har_fidelity

    f = _har_fidelity({}, np.array([], dtype=str), np.array([], dtype=str))
    assert f["windows"] == 0 and f["accuracy"] is None and "0 test windows" in f["na"]


@pytest.fixture(scope="module")
def no_face_photos(tmp_path_factory) -> Path:
    """Real photos without a face (scikit-image's cat and coffee cup)."""
    import cv2
    import skimage.data

    d = tmp_path_factory.mktemp("no-faces")
    for name in ("chelsea", "coffee"):
        cv2.imwrite(str(d / f"{name}.png"), cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR))
    return d


def test_fidelity_over_photos_without_faces_is_n_a_in_table_json_csv_and_png(tmp_path, no_face_photos, capsys):
    out = tmp_path / "out"
    rc = main(["bench", "yunet-n-320", "--engines", "onnxruntime,openvino", "--runs", "3", "--warmup", "1",
               "--images", str(no_face_photos), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "bench.json").read_text())
    ref, other = doc["rows"]
    assert (ref["engine"], other["engine"]) == ("onnxruntime", "openvino")
    assert ref["fidelity"]["faces"] == 0 and "0 faces" in ref["fidelity"]["na"]
    f = other["fidelity"]
    assert f["reference_faces"] == 0 and f["f1"] is None and f["mean_iou"] is None and "0 faces" in f["na"]
    for r in doc["rows"]:
        (line,) = [ln for ln in captured.out.splitlines() if ln.startswith("yunet-n-320") and f" {r['engine']} " in ln]
        assert "F1 n/a" in line and "1.000" not in line
    for line in csv.DictReader((out / "bench.csv").open()):
        assert line["fidelity_f1"] == "n/a" and "0 faces" in line["fidelity_na"]
    fig = report.chart(doc)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum(t.count("fidelity n/a") for t in texts) == 2
    assert not [ln for ln in fig.axes[0].get_lines() if len(ln.get_ydata())]  # no point at a made-up F1


def test_hand_made_n_a_figures_render_everywhere(tmp_path):
    rows = [_row("yunet", "openvino", 3.0, fidelity={"f1": None, "mean_iou": None, "reference_faces": 0,
                                                       "na": "the float model found 0 faces"}),
            _row("bnn-x", "bnn", 0.1, task="activity_classification", precision="binary",
                 fidelity={"windows": 0, "accuracy": None, "agreement": None, "na": "0 test windows"})]
    doc = _doc("CPU A", rows)
    text = report.format_table(doc)
    assert "F1 n/a" in text and "acc n/a" in text and "agree n/a" in text
    report.write_csv(doc, tmp_path / "b.csv")
    got = {r["model"]: r for r in csv.DictReader((tmp_path / "b.csv").open())}
    assert got["yunet"]["fidelity_f1"] == "n/a" and got["bnn-x"]["fidelity_accuracy"] == "n/a"
    assert report.write_png(doc, tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    c = report.compare(doc, doc)
    assert all(r["fidelity_delta"] is None for r in c["rows"])


# -- re-rendering saved runs, and the precision every output shows ---------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_from_json_never_replaces_another_runs_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    for folder in (a, b):
        assert main(["bench", "bnn-basicmotions", "--engines", "bnn", "--runs", "2", "--warmup", "0",
                     "-q", "--out", str(folder)]) == 0
    capsys.readouterr()
    before_a, before_b = _files(a), _files(b)
    assert json.loads(before_a["bench.json"]) != json.loads(before_b["bench.json"])  # two runs
    # into another run's folder: that run's files stay, this run's go under the next free stem
    assert main(["bench", "--from-json", str(a / "bench.json"), "--out", str(b)]) == 0
    after_b = _files(b)
    assert {k: after_b[k] for k in before_b if k != ".anyedge-outputs.json"} == \
        {k: v for k, v in before_b.items() if k != ".anyedge-outputs.json"}
    assert json.loads(after_b["bench-2.json"]) == json.loads(before_a["bench.json"])
    assert {"bench-2.csv", "bench-2.png"} <= set(after_b)
    # again: the same run's renderings are replaced, not multiplied
    assert main(["bench", "--from-json", str(a / "bench.json"), "--out", str(b)]) == 0
    assert not (b / "bench-3.json").exists()
    # no --out: rendered beside the saved run, whose JSON is left as it was; ./out/bench is not touched
    assert main(["bench", "--from-json", str(a / "bench.json"), "--no-png"]) == 0
    assert _files(a)["bench.json"] == before_a["bench.json"] and not (tmp_path / "out").exists()
    assert "written: " + str(a / "bench.csv") in capsys.readouterr().out


@pytest.fixture(scope="module")
def precision_bundles(tmp_path_factory, faces_calib) -> tuple[Path, Path]:
    """An int8 bundle (yunet-n-320 for arm-cpu, ONNX Runtime) and an fp16 one (blazeface-short for mobile-gpu)."""
    from anyedge.converters.api import convert

    d = tmp_path_factory.mktemp("precision-bundles")
    int8 = convert("yunet-n-320", target="arm-cpu", out=d / "yn-int8", calibration=faces_calib,
                   show_progress=False).path
    fp16 = convert("blazeface-short", target="mobile-gpu", out=d / "bf-fp16", calibration=faces_calib,
                   show_progress=False).path
    return int8, fp16


def test_precision_in_table_csv_and_png_is_the_jsons_for_every_row(tmp_path, images, precision_bundles, capsys):
    int8, fp16 = precision_bundles
    out = tmp_path / "out"
    rc = main(["bench", "yunet-n-320", str(int8), str(fp16), "mobilefacenet-int8w", "bnn-basicmotions",
               "--engines", "onnxruntime,litert,bnn", "--runs", "2", "--warmup", "0", "--max-images", "4",
               "--images", str(images), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "bench.json").read_text())
    assert {"fp32", "fp16", "int8", "int8w", "binary"} <= {r["precision"] for r in doc["rows"]}
    # rows where the engine names its precision differently (LiteRT runs int8 weights as int8)
    assert [r for r in doc["rows"] if r["engine_precision"] != r["precision"]]
    table = report.format_table(doc).splitlines()
    csv_rows = list(csv.DictReader((out / "bench.csv").open()))
    labels = [t.get_text() for ax in report.chart(doc).axes for t in ax.texts]
    for r, c in zip(doc["rows"], csv_rows):
        model = r["model"] + (" *" if r["source"] == "packaged" else "")
        (line,) = [ln for ln in table if ln.startswith(f"{model[:30]:30} {r['engine']:11} ")]
        assert line.split()[len(model.split()) + 1] == r["precision"][:7], line
        assert (c["model"], c["engine"], c["precision"]) == (r["model"], r["engine"], r["precision"])
        assert not any(f"{r['engine']} {p}" in t for t in labels if r["model"][:28] in t
                       for p in {r["engine_precision"]} - {r["precision"]})
    har = [t for t in labels if t.startswith("bnn-basicmotions\n")]
    assert har == ["bnn-basicmotions\nbnn binary"]
    # the chart's fp32 / other-precision styles (filled, solid / hollow, dashed) follow the JSON too
    series = list(dict.fromkeys((r["model"], r["engine"], r["precision"]) for r in doc["rows"]))
    lines = report.chart(doc).axes[-1].get_lines()
    assert len(lines) == len(series)
    for (model, engine, precision), ln in zip(series, lines):
        assert (ln.get_linestyle() == "-") == (precision == "fp32"), (model, engine, precision)
        assert (ln.get_markerfacecolor() == "white") == (precision != "fp32"), (model, engine, precision)
