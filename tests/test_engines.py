"""The engine contract, written once and run on every installed engine and format it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anyedge.engines import ENGINES, available_engines, engines_for, open_engine
from anyedge.errors import EngineUnavailableError, InputError, ModelLoadError
from anyedge.registry import resolve_model

MODELS = {".tflite": "blazeface-short", ".onnx": "yunet-n-320"}
CASES = [
    (engine, suffix)
    for engine in available_engines()
    for suffix in MODELS
    if suffix in ENGINES[engine].suffixes
]


def test_the_core_engines_are_installed() -> None:
    assert {"litert", "onnxruntime"} <= set(available_engines())


@pytest.mark.parametrize(("engine", "suffix"), CASES)
def test_engine_contract(engine: str, suffix: str) -> None:
    path, _ = resolve_model(MODELS[suffix])
    eng = open_engine(path, engine, threads=1)
    assert eng.name == engine
    assert len(eng.inputs) == 1 and len(eng.outputs) >= 2
    spec = eng.inputs[0]
    x = np.random.default_rng(0).standard_normal([d if d > 0 else 1 for d in spec.shape]).astype(spec.dtype)
    outs = eng.run({spec.name: x})
    assert len(outs) == len(eng.outputs)
    for o, s in zip(outs, eng.outputs):
        assert isinstance(o, np.ndarray) and o.ndim == len(s.shape)
        assert all(d < 0 or d == a for d, a in zip(s.shape, o.shape))
        assert np.isfinite(o).all()
    with pytest.raises(InputError, match="dtype"):
        eng.run({spec.name: x.astype(np.float64)})
    with pytest.raises(InputError, match="shape"):
        eng.run({spec.name: x[..., :1] if x.shape[-1] > 1 else x[:, :1]})
    with pytest.raises(InputError, match="inputs"):
        eng.run({"nope": x})
    eng.close()


@pytest.mark.parametrize(("engine", "suffix"), CASES)
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_model_is_a_clear_error(engine: str, suffix: str, fraction: float, tmp_path: Path) -> None:
    src, _ = resolve_model(MODELS[suffix])
    data = src.read_bytes()
    bad = tmp_path / f"truncated{suffix}"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError):
        open_engine(bad, engine)


@pytest.mark.parametrize("engine", available_engines())
def test_garbage_file_is_a_clear_error(engine: str, tmp_path: Path) -> None:
    suffix = ENGINES[engine].suffixes[0]
    bad = tmp_path / f"garbage{suffix}"
    bad.write_bytes(b"\x00not a model" * 100)
    with pytest.raises(ModelLoadError):
        open_engine(bad, engine)


def test_engine_that_cannot_read_the_format() -> None:
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(EngineUnavailableError, match="reads .tflite"):
        open_engine(path, "litert")


def test_unknown_engine() -> None:
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(EngineUnavailableError, match="known engines"):
        open_engine(path, "tensorflow")


def test_engine_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import anyedge.engines as engines

    monkeypatch.setitem(engines.ENGINES, "openvino", replace(ENGINES["openvino"], probe=("no_such_openvino",)))
    path, _ = resolve_model("yunet-n-320")
    with pytest.raises(EngineUnavailableError, match=r"anyedge\[openvino\]"):
        open_engine(path, "openvino")
    assert "openvino" not in engines_for(path)


def test_default_engine_is_the_formats_own() -> None:
    assert engines_for("x.tflite")[0] == "litert"
    assert engines_for("x.onnx")[0] == "onnxruntime"
