"""Every task shares one base: create -> resolve -> open engine -> run -> close, the same options,
the same decoder-override merging for registry names, bundles and bare files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anyedge
from anyedge import ActivityClassifier, FaceDetector
from anyedge.bundle import write_bundle
from anyedge.errors import EngineError, InputError, ModelLoadError
from anyedge.registry import REGISTRY, resolve_model
from anyedge.tasks.base import Task, TaskOptions

from .test_manifest import face_manifest


def test_tasks_share_the_base_and_its_options() -> None:
    for task in (FaceDetector, ActivityClassifier):
        assert issubclass(task, Task) and issubclass(task.Options, TaskOptions)
        opts = task.Options(threads=2, engine_options={"x": 1})
        assert opts.threads == 2 and dict(opts.engine_options) == {"x": 1}
        with pytest.raises(InputError, match="threads must be a positive integer"):
            task.Options(threads=0)
        with pytest.raises(InputError, match=r"unknown option\(s\) \['colour'\]"):
            task.make_options(colour="red")


def test_result_types_live_together_and_are_exported() -> None:
    from anyedge.results import ActivityResult as FromResults
    from anyedge.tasks.activity_classifier import ActivityResult as FromTask

    assert anyedge.ActivityResult is FromResults is FromTask
    assert "ActivityResult" in anyedge.__all__
    assert len(anyedge.ActivityResult.empty().scores) == 0


def test_engine_options_reach_the_engine_from_options_or_create() -> None:
    x = np.random.default_rng(1).normal(0, 2, (8, 30, 6)).astype(np.float32)
    with ActivityClassifier.create("bnn-racketsports") as fast:
        want = [r.raw.tolist() for r in fast.classify_batch(x)]
        assert fast.engine.kernels == "cython"
    with ActivityClassifier.create("bnn-racketsports", engine_options={"kernels": "reference"}) as a:
        assert a.engine.kernels == "reference"
        assert [r.raw.tolist() for r in a.classify_batch(x)] == want
    with ActivityClassifier.create("bnn-racketsports", engine_options={"kernels": "reference"}, hop=5) as b:
        assert b.options.hop == 5 and b.engine.kernels == "reference"


@pytest.mark.parametrize(("task", "model"), [(FaceDetector, "yunet-n-320"), (ActivityClassifier, "bnn-racketsports")])
def test_context_manager_closes_the_engine(task: type[Task], model: str) -> None:
    with task.create(model) as t:
        eng = t.engine
        feeds = {s.name: np.zeros([d if d > 0 else 1 for d in s.shape], s.dtype) for s in eng.inputs}
        eng.run(feeds)
    with pytest.raises(EngineError, match="closed"):
        eng.run(feeds)


def test_a_failing_setup_closes_the_engine() -> None:
    opened = []

    class Broken(FaceDetector):
        def _setup(self) -> None:
            opened.append(self.engine)
            raise ModelLoadError("this model does not fit")

    with pytest.raises(ModelLoadError, match="does not fit"):
        Broken.create("yunet-n-320")
    (eng,) = opened
    with pytest.raises(EngineError, match="closed"):
        eng.run({eng.inputs[0].name: np.zeros(eng.inputs[0].shape, np.float32)})


def test_a_new_task_needs_only_a_setup_hook(smoke) -> None:
    """What the docstring of anyedge.tasks.base promises a new task (e.g. an embedder) gets."""

    class RawOutputs(Task):
        TASK = "face_detection"

        def _setup(self) -> None:
            self.size = self.spec.input.size

        def outputs(self) -> dict[str, np.ndarray]:
            w, h = self.size
            return self.run_engine(np.zeros((1, 3, h, w), np.float32))

    with RawOutputs.create("yunet-n-320", threads=1) as t:
        outs = t.outputs()
    with FaceDetector.create("yunet-n-320", threads=1) as det:
        assert set(outs) == {s.name for s in det.engine.outputs}


def test_decoder_overrides_merge_the_same_way_everywhere(tmp_path: Path, smoke) -> None:
    info = REGISTRY["yunet-n-320"]
    bundle = tmp_path / "b"
    write_bundle(bundle, {"model.onnx": resolve_model("yunet-n-320")[0]}, face_manifest())
    override = {"score_threshold": 0.93}  # couple.jpg: faces at 0.935 and 0.922
    want = {**info.decoder, **override}
    dets = [FaceDetector.create("yunet-n-320", decoder=override),
            FaceDetector.create(resolve_model("yunet-n-320")[0], family="yunet", decoder=override),
            FaceDetector.create(bundle, decoder=override)]
    try:
        faces = [d.detect(smoke["couple.jpg"]) for d in dets]
        for d, f in zip(dets, faces):
            assert dict(d.spec.decoder) == want
            assert len(f) == 1
            np.testing.assert_array_equal(f.boxes, faces[0].boxes)
        with FaceDetector.create("yunet-n-320") as plain:
            assert len(plain.detect(smoke["couple.jpg"])) == 2
    finally:
        for d in dets:
            d.close()
