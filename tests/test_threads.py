"""One task instance shared by many threads gives exactly the results of serial calls.

Every installed engine, one model of each family that runs there. Images of different
sizes are interleaved so a shared letterbox canvas, input buffer, interpreter tensor or
infer request would show up as wrong faces (or an error) in some thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from anyedge import ActivityClassifier, FaceDetector
from anyedge.engines import available_engines, engines_for
from anyedge.registry import resolve_model

from .conftest import WIDER, read_rgb

THREADS = 8
CALLS = 6  # per thread

# One model per decoder family; dynamic-input models run at 320x320 to keep the test lean.
FAMILY_MODELS = {
    "blazeface-short": None,
    "scrfd-500m": (320, 320),
    "yunet-n-320": None,
    "retinaface-mnet025": (320, 320),
    "ultraface-rfb320": None,
}
PAIRS = [(m, e) for m in FAMILY_MODELS for e in engines_for(resolve_model(m)[0])]


def _hammer(fn: Callable[[Any], Any], inputs: list[Any]) -> tuple[list[list[tuple[int, Any]]], list[BaseException]]:
    """Run ``fn`` from THREADS threads at once, each over the inputs in its own rotated order."""
    start = threading.Barrier(THREADS)
    results: list[list[tuple[int, Any]]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            for c in range(CALLS):
                i = (t + c) % len(inputs)
                results[t].append((i, fn(inputs[i])))
        except BaseException as e:  # collected and re-raised by the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, errors


@pytest.fixture(scope="module")
def images(smoke: dict[str, np.ndarray]) -> list[np.ndarray]:
    # Different sizes and aspect ratios: each call letterboxes differently.
    wider = [read_rgb(p) for p in sorted(WIDER.glob("*.jpg"))[:3]]
    return [smoke["couple.jpg"], smoke["astronaut.png"], *wider, smoke["camera.png"]]


@pytest.mark.parametrize(("model", "engine"), PAIRS)
def test_detector_shared_by_threads_matches_serial(images: list[np.ndarray], model: str, engine: str) -> None:
    with FaceDetector.create(model, engine=engine, input_size=FAMILY_MODELS[model]) as det:
        serial = [det.detect(img) for img in images]
        assert sum(len(f) for f in serial) > 0  # a comparison of empty results would prove nothing
        results, errors = _hammer(det.detect, images)
    assert not errors, f"{len(errors)} calls failed, first: {errors[0]!r}"
    for per_thread in results:
        assert len(per_thread) == CALLS
        for i, faces in per_thread:
            want = serial[i]
            assert len(faces) == len(want), f"image {i}: {len(faces)} faces, serial gave {len(want)}"
            np.testing.assert_array_equal(faces.boxes, want.boxes)
            np.testing.assert_array_equal(faces.scores, want.scores)
            np.testing.assert_array_equal(faces.keypoints, want.keypoints)


@pytest.mark.skipif("bnn" not in available_engines(), reason="the BNN kernels are not compiled here")
@pytest.mark.parametrize("kernels", ["cython", "reference"])
def test_activity_classifier_shared_by_threads_matches_serial(kernels: str) -> None:
    from anyedge.tasks.activity_classifier import ActivityClassifierOptions

    rng = np.random.default_rng(0)
    opts = ActivityClassifierOptions(engine_options={"kernels": kernels})
    with ActivityClassifier.create("bnn-racketsports", options=opts) as clf:
        windows = [rng.normal(0.0, 2.0, (4, clf.window, clf.channels)).astype(np.float32) for _ in range(5)]
        serial = [clf.classify_batch(w) for w in windows]
        results, errors = _hammer(clf.classify_batch, windows)
    assert not errors, f"{len(errors)} calls failed, first: {errors[0]!r}"
    for per_thread in results:
        for i, got in per_thread:
            assert [r.label for r in got] == [r.label for r in serial[i]]
            for a, b in zip(got, serial[i]):
                np.testing.assert_array_equal(a.raw, b.raw)
                np.testing.assert_array_equal(a.scores, b.scores)
