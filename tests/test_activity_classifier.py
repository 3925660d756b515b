"""ActivityClassifier with the shipped BNNs: accuracy on the UEA _TEST sets, bad input, the bnn engine, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from anyedge.bundle import load_bundle
from anyedge.engines import open_engine
from anyedge.errors import AnyEdgeError, EngineError, InputError, IntegrityError, ModelLoadError, UnknownModelError
from anyedge.har import load_ts
from anyedge.har.cli import main as har_main
from anyedge.registry import packaged_bundle, sha256_file
from anyedge.tasks.activity_classifier import ActivityClassifier, ActivityClassifierOptions, ActivityResult

from .har_support import ROOT, har_file

# model, data set, accuracy bar on _TEST (issue 4), window, classes
SHIPPED = [("bnn-racketsports", "RacketSports", 0.80, 30), ("bnn-basicmotions", "BasicMotions", 0.95, 100)]


@pytest.fixture(scope="module")
def racket():
    with ActivityClassifier.create("bnn-racketsports") as clf:
        yield clf


@pytest.mark.parametrize("name, dataset, bar, window", SHIPPED)
def test_shipped_accuracy_and_size(name, dataset, bar, window):
    test = load_ts(har_file(dataset, "test"))
    with ActivityClassifier.create(name) as clf:
        assert clf.window == window and clf.channels == 6 and clf.labels == test.labels
        results = clf.classify_batch(test.x)
    pred = np.array([r.class_index for r in results])
    acc = float((pred == test.y).mean())
    assert acc >= bar, f"{name}: test accuracy {acc:.3f} is below {bar}"
    # the whole model (the packed file the engine loads) is under 4 KiB
    bundle = load_bundle(packaged_bundle(name))
    assert bundle.model_path.stat().st_size < 4096
    assert bundle.manifest["model"]["family"] == "bnn" and bundle.manifest["engine"] == "bnn"


def test_classify_one_window(racket):
    test = load_ts(har_file("RacketSports", "test"))
    r = racket.classify(test.x[0])
    assert isinstance(r, ActivityResult)
    assert r.label in racket.labels and racket.labels[r.class_index] == r.label
    assert r.scores.shape == (4,) and abs(float(r.scores.sum()) - 1) < 1e-5
    assert r.score == pytest.approx(float(r.scores.max())) and 0.25 <= r.score <= 1
    assert r.raw.dtype == np.int32 and int(np.argmax(r.raw)) == r.class_index
    # a list of rows works the same as the array
    assert racket.classify(test.x[0].tolist()).raw.tolist() == r.raw.tolist()
    with pytest.raises(AttributeError):
        r.label = "x"  # frozen


def test_empty_result():
    e = ActivityResult.empty()
    assert e.label == "" and e.class_index == -1 and e.scores.shape == (0,)


def test_stream_matches_windows(racket):
    test = load_ts(har_file("RacketSports", "test"))
    samples = test.x[:5].reshape(-1, 6)  # five cases back to back
    by_window = list(racket.stream(samples, hop=30))
    assert [r.start for r in by_window] == [0, 30, 60, 90, 120]
    assert [r.raw.tolist() for r in by_window] == [r.raw.tolist() for r in racket.classify_batch(test.x[:5])]
    # default hop is half a window; a generator of rows gives the same results as the array
    half = list(racket.stream(samples))
    assert [r.start for r in half] == list(range(0, 121, 15))
    gen = list(racket.stream(iter(samples.tolist())))
    assert [r.raw.tolist() for r in gen] == [r.raw.tolist() for r in half]
    assert list(racket.stream(samples[:29])) == []


@pytest.mark.parametrize(
    "window, needle",
    [
        (np.zeros((29, 6)), "30 samples, got 29"),
        (np.zeros((31, 6)), "30 samples, got 31"),
        (np.zeros((30, 5)), "6 channels per sample, got 5"),
        (np.zeros((30, 3)), "6 channels per sample, got 3"),
        (np.zeros((6, 30)), "transpose"),
        (np.zeros(180), "shape"),
        (np.zeros((2, 30, 6)), "classify_batch"),
        (np.array([[np.nan] * 6] * 30), "NaN"),
        (np.where(np.eye(30, 6) > 0, np.inf, 0.0), "NaN or infinite"),
        ("walking", "array of sensor samples|shape"),
        ([[1, 2], [3]], "array of sensor samples"),
    ],
)
def test_bad_windows(racket, window, needle):
    with pytest.raises(InputError, match=needle):
        racket.classify(window)


@pytest.mark.parametrize(
    "batch, needle",
    [(np.zeros((0, 30, 6)), "empty"), (np.zeros((3, 30, 7)), "7"), (np.zeros((1, 1, 30, 6)), "shape")],
)
def test_bad_batches(racket, batch, needle):
    with pytest.raises(InputError, match=needle):
        racket.classify_batch(batch)


def test_bad_stream_samples(racket):
    with pytest.raises(InputError, match="channels"):
        list(racket.stream(np.zeros((40, 5))))
    bad = np.zeros((40, 6))
    bad[33, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        list(racket.stream(bad))
    with pytest.raises(InputError, match="hop"):
        ActivityClassifierOptions(hop=0)


def _copy_bundle(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(packaged_bundle("bnn-racketsports"), dst)
    return dst


def test_corrupted_weights_in_bundle_fail_integrity(tmp_path):
    b = _copy_bundle(tmp_path)
    blob = bytearray((b / "model.bnn").read_bytes())
    blob[200] ^= 0x01
    (b / "model.bnn").write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="sha256"):
        ActivityClassifier.create(str(b))


def _write_resealed(bundle, manifest):
    """Rewrite the manifest with every hash made consistent, as a careless tool would: the
    bundle-level checks pass, so the model's own checks must catch the problem."""
    from anyedge.bundle import manifest_digest

    for name in manifest.get("sizes", {}):
        manifest["sizes"][name] = (bundle / name).stat().st_size
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_corrupted_weights_with_fixed_manifest_fail_crc(tmp_path):
    b = _copy_bundle(tmp_path)
    blob = bytearray((b / "model.bnn").read_bytes())
    blob[200] ^= 0x01
    (b / "model.bnn").write_bytes(bytes(blob))
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["files"]["model.bnn"] = sha256_file(b / "model.bnn")
    _write_resealed(b, manifest)
    with pytest.raises(ModelLoadError, match="corrupted"):
        ActivityClassifier.create(str(b))
    (b / "model.bnn").write_bytes(bytes(blob[:50]))
    manifest["files"]["model.bnn"] = sha256_file(b / "model.bnn")
    _write_resealed(b, manifest)
    with pytest.raises(ModelLoadError):
        ActivityClassifier.create(str(b))


def test_manifest_that_disagrees_with_the_model(tmp_path):
    b = _copy_bundle(tmp_path)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["labels"] = manifest["labels"][:3]
    _write_resealed(b, manifest)
    with pytest.raises(ModelLoadError, match="3 labels"):
        ActivityClassifier.create(str(b))


def test_bundle_path_equals_name(tmp_path):
    b = _copy_bundle(tmp_path)
    x = load_ts(har_file("RacketSports", "test")).x[:20]
    with ActivityClassifier.create(str(b)) as a, ActivityClassifier.create("bnn-racketsports") as c:
        assert [r.raw.tolist() for r in a.classify_batch(x)] == [r.raw.tolist() for r in c.classify_batch(x)]


def test_unknown_model():
    with pytest.raises(UnknownModelError, match="bnn-racketsports"):
        ActivityClassifier.create("bnn-nope")


# -- the bnn engine through the engine table ------------------------------------------------


def test_bnn_engine_contract():
    path = load_bundle(packaged_bundle("bnn-basicmotions")).model_path
    eng = open_engine(path)  # picked by the .bnn suffix
    assert eng.name == "bnn"
    assert eng.inputs[0].shape == (-1, 100, 6) and eng.inputs[0].dtype == "float32"
    assert eng.outputs[0].shape == (-1, 4) and eng.outputs[0].dtype == "int32"
    x = load_ts(har_file("BasicMotions", "test")).x
    (scores,) = eng.run({"window": x})
    assert scores.shape == (40, 4) and scores.dtype == np.int32
    ref = open_engine(path, "bnn", kernels="reference")
    np.testing.assert_array_equal(ref.run({"window": x})[0], scores)
    with pytest.raises(InputError, match="dtype"):
        eng.run({"window": x.astype(np.float64)})
    with pytest.raises(InputError, match="shape"):
        eng.run({"window": x[:, :99]})
    with pytest.raises(InputError, match="inputs"):
        eng.run({"x": x})
    bad = x.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="finite"):
        eng.run({"window": bad})
    eng.close()
    with pytest.raises(EngineError, match="closed"):
        eng.run({"window": x})
    with pytest.raises(AnyEdgeError, match="kernels"):
        open_engine(path, "bnn", kernels="gpu")


# -- CLI ------------------------------------------------------------------------------------


def test_cli_classify_json(capsys):
    path = har_file("RacketSports", "test")
    assert har_main(["har", "classify", str(path), "--model", "bnn-racketsports", "--json"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    test = load_ts(path)
    assert len(lines) == len(test)
    objs = [json.loads(line) for line in lines]
    assert all(set(o) == {"index", "label", "score"} for o in objs)
    assert [o["index"] for o in objs] == list(range(len(test)))
    acc = np.mean([o["label"] == test.labels[y] for o, y in zip(objs, test.y)])
    assert acc >= 0.80
    with ActivityClassifier.create("bnn-racketsports") as clf:
        r = clf.classify_batch(test.x[:3])
    assert [o["label"] for o in objs[:3]] == [x.label for x in r]
    assert [o["score"] for o in objs[:3]] == pytest.approx([x.score for x in r], abs=1e-6)


def test_cli_errors(tmp_path, capsys):
    assert har_main(["classify", str(tmp_path / "missing.ts"), "--model", "bnn-racketsports"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a BasicMotions file (100-sample windows) on the RacketSports model (30)
    assert har_main(["classify", str(har_file("BasicMotions", "test")), "--model", "bnn-racketsports", "--json"]) == 2
    assert "30 samples, got 100" in capsys.readouterr().err
    assert har_main(["classify", str(har_file("BasicMotions", "test")), "--model", "nope"]) == 2


def test_cli_export_c_and_models(tmp_path, capsys):
    out = tmp_path / "m.h"
    assert har_main(["export-c", "--model", "bnn-basicmotions", "--out", str(out)]) == 0
    text = out.read_text()
    assert "aebnn_model_bnn_basicmotions" in text and '"Standing"' in text
    assert har_main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "bnn-racketsports" in listing and "bnn-basicmotions" in listing


def test_import_anyedge_stays_light():
    code = ("import sys, anyedge, anyedge.har, anyedge.tasks.activity_classifier; "
            "bad = [m for m in ('torch', 'anyedge.targets.bnn._kernels', 'onnxruntime') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
