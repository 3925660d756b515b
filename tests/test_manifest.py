"""The typed manifest: schema validation naming the field, the required self-digest, and the
shipped BNN bundles staying loadable and reproducible with the project's own writer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anyedge.bundle import load_bundle, write_bundle
from anyedge.errors import BundleError, IntegrityError
from anyedge.manifest import Embedding, Manifest, ModelCard
from anyedge.registry import PACKAGED_BUNDLES, REGISTRY, packaged_bundle, resolve_model

from .bundle_support import reseal, yunet_bundle


def face_manifest() -> Manifest:
    info = REGISTRY["yunet-n-320"]
    return Manifest(model=ModelCard(info.name, info.family, info.task, license=info.license),
                    model_file="model.onnx", engine="onnxruntime", target="arm-cpu", precision="fp32",
                    input=info.input, decoder=dict(info.decoder), extra={"created": "now"})


@pytest.fixture()
def face_bundle(tmp_path: Path) -> Path:
    return yunet_bundle(tmp_path / "yunet")


def _set(path: str, value: Any) -> Any:
    def edit(m: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = m
        for p in parents:
            node = node[p]
        node[last] = value

    return edit


@pytest.mark.parametrize("name", sorted(PACKAGED_BUNDLES))
def test_shipped_bnn_bundles_load_and_round_trip(name: str, tmp_path: Path) -> None:
    b = load_bundle(packaged_bundle(name))
    assert b.info.task == "activity_classification" and b.info.schema_version == 1
    assert Manifest.from_json(b.manifest).to_json() == b.manifest
    # the project's own writer reproduces the shipped manifest from the shipped model file
    from anyedge.converters.bnn import write_bnn_bundle
    from anyedge.targets.bnn.format import read_bnn

    m = b.info
    again = write_bnn_bundle(read_bnn(b.model_path), tmp_path / name, name=m.model.name, labels=m.labels,
                             score_scale=m.output.score_scale, channel_names=m.window.channel_names,
                             sample_rate_hz=m.window.sample_rate_hz, description=m.model.description,
                             extra={"training": m.extra["training"]})
    assert again.manifest == b.manifest
    assert again.model_path.read_bytes() == b.model_path.read_bytes()


def test_face_bundle_round_trips_through_the_typed_manifest(face_bundle: Path) -> None:
    b = load_bundle(face_bundle)
    assert b.info.input == REGISTRY["yunet-n-320"].input
    assert b.info.decoder["strides"] == [8, 16, 32]
    assert Manifest.from_json(b.manifest).to_json() == b.manifest


def test_manifest_without_its_digest_is_refused(face_bundle: Path) -> None:
    m = json.loads((face_bundle / "manifest.json").read_text())
    del m["manifest_sha256"]
    m["decoder"]["score_threshold"] = 0.01  # the edit the missing digest would have hidden
    (face_bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="manifest_sha256: missing"):
        load_bundle(face_bundle)
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "inspect", str(face_bundle)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "verified" not in r.stdout
    assert "manifest_sha256" in r.stderr


def test_edited_manifest_with_stale_digest_is_refused(face_bundle: Path) -> None:
    m = json.loads((face_bundle / "manifest.json").read_text())
    m["decoder"]["strides"] = [8, 16]
    (face_bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="edited"):
        load_bundle(face_bundle)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("decoder.strides", "x", "decoder.strides: expected a list of positive ints, got 'x'"),
        ("decoder.strides", [8, 0, 32], "decoder.strides: expected a list of positive ints"),
        ("decoder.score_threshold", 1.5, r"decoder.score_threshold: expected a number in \[0, 1\]"),
        ("decoder.keypoints", "5", "decoder.keypoints: expected an int >= 0"),
        ("model", "yunet", "model: expected an object, got 'yunet'"),
        ("model.family", "facenet9000", "model.family: expected one of"),
        ("model.task", "segmentation", "model.task: expected one of"),
        ("model.name", "", "model.name: expected a non-empty string"),
        ("model_file", "../model.onnx", "model_file: member path '../model.onnx' escapes"),
        ("model_file", 3, "model_file: expected a non-empty member path"),
        ("files", ["model.onnx"], "files: expected an object"),
        ("files.model.onnx", "abc", "files.model.onnx: expected a sha256"),
        ("input", None, "input: a face_detection bundle needs its input spec"),
        ("input.size", [0, 320], "input.size: expected a list of 2 positive ints"),
        ("input.layout", "HWC", "input.layout: expected one of"),
        ("input.std", [1.0, 0.0, 1.0], "input.std: expected a list of 3 positive numbers"),
        ("input.dynamic", "no", "input.dynamic: expected true or false"),
        ("engine", "tensorflow", "engine: expected one of"),
        ("providers", "CPUExecutionProvider", "providers: expected a list of strings"),
        ("decoder", {}, "decoder: a face_detection bundle needs its decoder settings"),
        ("format", "anyedge-bundle/9", "schema version 9 is not one this anyedge reads"),
        ("format", "something-else", "format: expected 'anyedge-bundle/1'"),
    ],
)
def test_malformed_fields_name_the_field(face_bundle: Path, path: str, value: Any, message: str) -> None:
    if path == "files.model.onnx":
        reseal(face_bundle, lambda m: m["files"].__setitem__("model.onnx", value))
    else:
        reseal(face_bundle, _set(path, value))
    with pytest.raises(BundleError, match=message):
        load_bundle(face_bundle)


@pytest.mark.parametrize("size", [[4097, 320], [320, 100_000], [10**9, 10**9]])
def test_input_size_is_capped(face_bundle: Path, size: list[int]) -> None:
    reseal(face_bundle, _set("input.size", size))
    with pytest.raises(BundleError, match=r"input.size: expected a list of 2 positive ints \(width, height\) up to 4096"):
        load_bundle(face_bundle)
    reseal(face_bundle, _set("input.size", [4096, 4096]))  # the cap itself is allowed
    assert load_bundle(face_bundle).info.input.size == (4096, 4096)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("labels", [], "labels: expected a list of distinct non-empty strings"),
        ("labels", ["a", "a", "b", "c"], "labels: expected a list of distinct non-empty strings"),
        ("window.length", -1, "window.length: expected a positive int"),
        ("window.channel_names", ["x"], "window.channel_names: expected a list of 6 strings"),
        ("window", None, "window: an activity_classification bundle needs"),
        ("output.score_scale", 0, "output.score_scale: expected a positive number"),
        ("model.family", "scrfd", "model.family: expected one of \\['bnn'\\]"),
    ],
)
def test_malformed_bnn_fields_name_the_field(tmp_path: Path, path: str, value: Any, message: str) -> None:
    b = tmp_path / "b"
    shutil.copytree(packaged_bundle("bnn-racketsports"), b)
    reseal(b, _set(path, value))
    with pytest.raises(BundleError, match=message):
        load_bundle(b)


def test_face_embedding_manifests_are_described() -> None:
    def embedder(size: tuple[int, int], **emb: Any) -> Manifest:
        from anyedge.registry import InputSpec

        return Manifest(model=ModelCard("mobilefacenet", "mobilefacenet", "face_embedding"),
                        model_file="model.onnx", input=InputSpec(size, "NCHW", "RGB", 127.5, 128.0),
                        embedding=Embedding(**{"dimension": 128, "threshold": 0.35, **emb}))

    for size in [(96, 112), (112, 112)]:
        m = embedder(size)
        assert Manifest.from_json(m.to_json(), require_hash=False) == m
    with pytest.raises(BundleError, match=r"input.size: expected an embedder geometry"):
        embedder((128, 128))
    with pytest.raises(BundleError, match=r"embedding.threshold: expected a number in \[-1, 1\]"):
        embedder((112, 112), threshold=2.0)
    with pytest.raises(BundleError, match="embedding.dimension: expected a positive int"):
        embedder((112, 112), dimension=0)
    with pytest.raises(BundleError, match="embedding: a face_embedding bundle needs"):
        Manifest.from_json({**embedder((112, 112)).to_json(), "embedding": None}, require_hash=False)


def test_write_bundle_refuses_a_bad_manifest_and_writes_nothing(tmp_path: Path) -> None:
    bad = {**face_manifest().to_json(), "decoder": {"strides": "x"}}
    with pytest.raises(BundleError, match="decoder.strides"):
        write_bundle(tmp_path / "out", {"model.onnx": resolve_model("yunet-n-320")[0]}, bad)
    assert list(tmp_path.iterdir()) == []
