"""FaceEmbedder and FacePipeline on real photos, on every engine that reads the model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from anyedge.bundle import write_bundle
from anyedge.engines import engines_for
from anyedge.errors import InputError, ModelNotFoundError, UnknownModelError
from anyedge.ops.align import ARCFACE_112
from anyedge.recognition.pipeline import FacePipeline
from anyedge.registry import REGISTRY, USER_SUPPLIED, InputSpec, resolve_model
from anyedge.tasks.face_embedder import FaceEmbedder

from .conftest import DATA, MODELS, read_rgb

IDS = DATA / "faces" / "identities"
# two photos of one person, one of another
PHOTOS = {"a1": IDS / "person_01" / "img26.jpg", "a2": IDS / "person_01" / "img27.jpg",
          "b1": IDS / "person_03" / "img3.jpg"}
MFN_ENGINES = engines_for(resolve_model("mobilefacenet")[0])


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {k: read_rgb(p) for k, p in PHOTOS.items()}


@pytest.fixture(scope="module")
def crops(photos) -> np.ndarray:  # noqa: ANN001
    with FacePipeline.create("scrfd-500m", "mobilefacenet", threads=1) as fp:
        return np.stack([fp.process(photos[k]).crops[0] for k in ("a1", "a2", "b1")])


@pytest.mark.parametrize("engine", MFN_ENGINES)
def test_embeddings_are_unit_and_tell_people_apart(crops, engine: str) -> None:  # noqa: ANN001
    with FaceEmbedder.create("mobilefacenet", engine=engine, threads=1) as emb:
        assert emb.input_name == "input_1" and set(emb.extra_inputs) == {"target"}
        v = emb.embed(crops)
    assert v.shape == (3, 128) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    same, diff = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert same > emb.threshold > diff, (same, diff)


def test_same_embeddings_on_every_engine(crops) -> None:  # noqa: ANN001
    if len(MFN_ENGINES) < 2:
        pytest.skip("only one engine reads .tflite here")
    outs = {}
    for engine in MFN_ENGINES:
        with FaceEmbedder.create("mobilefacenet", engine=engine, threads=1) as emb:
            outs[engine] = emb.embed(crops)
    ref = outs[MFN_ENGINES[0]]
    for engine, v in outs.items():
        assert (v * ref).sum(1).min() >= 0.999, engine


def test_int8_weight_model_stays_close_to_float(crops) -> None:  # noqa: ANN001
    with FaceEmbedder.create("mobilefacenet", threads=1) as f, FaceEmbedder.create("mobilefacenet-int8w", threads=1) as q:
        assert q.identity.sha256 != f.identity.sha256 and q.identity.dim == f.identity.dim
        cos = (f.embed(crops) * q.embed(crops)).sum(1)
    assert cos.mean() >= 0.9, cos


def test_flip_averaging_is_unit_and_close_to_plain(crops) -> None:  # noqa: ANN001
    with FaceEmbedder.create("mobilefacenet", threads=1) as plain, \
            FaceEmbedder.create("mobilefacenet", threads=1, flip=True) as flip:
        a, b = plain.embed(crops), flip.embed(crops)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert 0.8 < (a * b).sum(1).min() < 0.99999  # differs (it used the mirror) but not wildly


def test_bgr_input_gives_the_same_embedding(crops) -> None:  # noqa: ANN001
    with FaceEmbedder.create("mobilefacenet", threads=1) as emb:
        a = emb.embed(crops[:1])
        b = emb.embed(np.ascontiguousarray(crops[:1, :, :, ::-1]), channels="BGR")
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_threads_give_identical_embeddings(crops) -> None:  # noqa: ANN001
    with FaceEmbedder.create("mobilefacenet", threads=1) as emb:
        ref = emb.embed(crops)
        out: dict[int, list[np.ndarray]] = {i: [] for i in range(6)}
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for _ in range(5):
                    out[i].append(emb.embed(crops[[i % 3]]))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errors, errors
    for i, vs in out.items():
        assert len(vs) == 5
        for v in vs:
            np.testing.assert_array_equal(v[0], ref[i % 3])


@pytest.mark.parametrize("bad", [
    np.zeros((112, 112, 3), np.uint8),          # ArcFace size into a 112x96 model
    np.zeros((112, 96, 3), np.float32),         # float
    np.zeros((2, 112, 96), np.uint8),           # no channels
    np.zeros((0, 112, 96, 3), np.uint8)[0:0, :, :, :1],
    "crop",
])
def test_bad_crops_are_refused(bad) -> None:  # noqa: ANN001
    with FaceEmbedder.create("mobilefacenet", threads=1) as emb, pytest.raises(InputError):
        emb.embed(bad)


def test_empty_batch_gives_empty_embeddings() -> None:
    with FaceEmbedder.create("mobilefacenet", threads=1) as emb:
        assert emb.embed(np.zeros((0, 112, 96, 3), np.uint8)).shape == (0, 128)


def test_bare_file_needs_a_family_and_unknown_names_are_listed() -> None:
    path = resolve_model("mobilefacenet")[0]
    with pytest.raises(InputError, match="family"):
        FaceEmbedder.create(path)
    with FaceEmbedder.create(path, family="mobilefacenet") as emb:
        assert emb.dim == 128 and emb.identity.sha256 == REGISTRY["mobilefacenet"].sha256
    with pytest.raises(UnknownModelError, match="mobilefacenet"):
        FaceEmbedder.create("no-such-embedder")
    with pytest.raises(InputError, match="face_embedding"):
        FaceEmbedder.create("scrfd-500m")


def test_user_supplied_w600k_geometry_and_missing_file() -> None:
    info = USER_SUPPLIED["w600k-mbf"]
    assert info.decoder["geometry"] == ARCFACE_112.name and info.decoder["embedding_dim"] == 512
    assert info.input == InputSpec((112, 112), "NCHW", "RGB", 127.5, 127.5, resize="stretch")
    if not any(MODELS.rglob(info.filename)):
        with pytest.raises(ModelNotFoundError, match="w600k_mbf.onnx"):
            FaceEmbedder.create("w600k-mbf")


def test_bundle_with_face_embedding_task_loads(tmp_path: Path, crops) -> None:  # noqa: ANN001
    info = REGISTRY["mobilefacenet"]
    src = resolve_model("mobilefacenet")[0]
    manifest = {"model": {"name": "mfn-bundle", "family": "mobilefacenet", "task": "face_embedding"},
                "model_file": "model.tflite", "engine": "litert", "input": info.input.to_dict(),
                "embedding": {"dimension": 128, "threshold": 0.4}}
    write_bundle(tmp_path / "b", {"model.tflite": src}, manifest)
    with FaceEmbedder.create(tmp_path / "b", threads=1) as b, FaceEmbedder.create("mobilefacenet", threads=1) as r:
        assert b.identity.name == "mfn-bundle" and b.identity.sha256 == info.sha256
        assert b.geometry is r.geometry and b.threshold == 0.4 and set(b.extra_inputs) == {"target"}
        assert b.input_name == r.input_name
        np.testing.assert_allclose(b.embed(crops), r.embed(crops), atol=1e-6)
        # the converter's view: preprocess -> run_engine -> raw output
        raw = b.run_engine(b.preprocess(crops[0]))["Identity"][0]
        np.testing.assert_allclose(raw / np.linalg.norm(raw), r.embed(crops[:1])[0], atol=1e-5)
    det = {**manifest, "model": {**manifest["model"], "task": "face_detection", "family": "scrfd"},
           "decoder": {"strides": [8, 16, 32], "keypoints": 5}}
    det.pop("embedding")
    write_bundle(tmp_path / "c", {"model.tflite": src}, det)
    with pytest.raises(InputError, match="face_detection"):
        FaceEmbedder.create(tmp_path / "c")


@pytest.mark.parametrize("detector", ["scrfd-500m", "blazeface-short", "yunet-n-320"])
def test_pipeline_with_any_keypoint_detector(photos, detector: str) -> None:  # noqa: ANN001
    with FacePipeline.create(detector, "mobilefacenet", threads=1) as fp:
        res = [fp.process(photos[k]) for k in ("a1", "a2", "b1")]
        assert all(len(r) >= 1 for r in res)
        v = [r.embeddings[0] for r in res]
        assert float(v[0] @ v[1]) > fp.threshold > float(v[0] @ v[2])
        assert res[0].crops.shape[1:] == (112, 96, 3) and res[0].names == (None,) * len(res[0])
        assert set(fp.last_timing) == {"detect", "align", "embed", "identify"}


def test_pipeline_no_face_and_no_keypoints() -> None:
    with FacePipeline.create("scrfd-500m", "mobilefacenet", threads=1) as fp:
        r = fp.process(np.zeros((200, 200, 3), np.uint8))
        assert len(r) == 0 and r.embeddings.shape == (0, 128) and r.to_list() == []
    with pytest.raises(InputError, match="keypoints"):
        FacePipeline.create("ultraface-rfb320", "mobilefacenet")


@pytest.mark.parametrize("engine", sorted(set(engines_for(resolve_model("scrfd-500m")[0])) & set(MFN_ENGINES)))
def test_pipeline_on_one_engine_for_both_models_matches_the_defaults(photos, engine: str) -> None:  # noqa: ANN001
    with FacePipeline.create("scrfd-500m", "mobilefacenet", engine=engine, threads=1) as one, \
            FacePipeline.create("scrfd-500m", "mobilefacenet", threads=1) as own:
        assert one.embedder.engine.name == engine and one.detector.engine.name == engine
        a, b = one.process(photos["a1"]), own.process(photos["a1"])
    assert len(a) == len(b) >= 1
    assert float(a.embeddings[0] @ b.embeddings[0]) >= 0.99  # detector keypoints differ slightly by engine


def test_int8w_is_refused_on_engines_it_was_not_validated_on() -> None:
    from anyedge.errors import EngineUnavailableError

    others = [e for e in engines_for(resolve_model("mobilefacenet-int8w")[0]) if e != "litert"]
    for engine in others:
        with pytest.raises(EngineUnavailableError, match="only validated on litert"):
            FaceEmbedder.create("mobilefacenet-int8w", engine=engine)
    with FaceEmbedder.create("mobilefacenet-int8w", threads=1) as emb:
        assert emb.engine.name == "litert" and emb.settings.engines == ("litert",)


def test_arcface_family_file_gets_registry_geometry_and_normalisation(tmp_path: Path) -> None:
    """A stand-in ONNX file with w600k_mbf's interface: NCHW 112x112 in, 512-d out.

    The network (channel means -> fixed 3x512 matrix) is small enough to compute by hand, so the
    embedding checks the crop size, the RGB order and (x - 127.5) / 127.5 from the registry.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input.1"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("MatMul", ["f", "w"], ["683"])],
        "arcface_standin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "w600k_mbf.onnx"
    onnx.save(model, str(path))
    crop = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    expect = ((crop.reshape(-1, 3).astype(np.float64) - 127.5) / 127.5).mean(0) @ w
    expect /= np.linalg.norm(expect)
    for engine in engines_for(path):
        with FaceEmbedder.create(path, family="arcface", engine=engine) as emb:
            assert emb.geometry is ARCFACE_112 and emb.dim == 512 and emb.input_name == "input.1"
            np.testing.assert_allclose(emb.embed(crop)[0], expect, atol=1e-4)
            with pytest.raises(InputError, match="112x112"):
                emb.embed(np.zeros((112, 96, 3), np.uint8))
