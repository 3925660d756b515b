from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anyedge.errors import IntegrityError, ModelNotFoundError, UnknownModelError
from anyedge.registry import REGISTRY, get_model_info, list_models, resolve_model, sha256_file


def test_every_registered_model_is_found_and_verified_from_the_search_path() -> None:
    for info in list_models():
        path, got = resolve_model(info.name, download=False)
        assert got is info
        assert path.name == info.filename
        assert sha256_file(path) == info.sha256


def test_every_model_records_licence_origin_and_input_spec() -> None:
    for info in list_models():
        assert info.license and info.source.origin
        assert info.input.layout in ("NCHW", "NHWC") and info.input.channels in ("RGB", "BGR")
        assert len(info.sha256) == 64


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="scrfd-500m"):
        get_model_info("no-such-model")


def test_wrong_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = REGISTRY["yunet"]
    src, _ = resolve_model("yunet")
    bad = tmp_path / info.filename
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", str(tmp_path))
    with pytest.raises(IntegrityError, match="sha256"):
        resolve_model("yunet")


def test_missing_model_offline_names_the_file_and_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("blazeface-short")
    msg = str(e.value)
    assert "face_detection_short_range.tflite" in msg and str(tmp_path / "cache") in msg


def test_cache_is_searched_after_the_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, info = resolve_model("ultraface-rfb320")
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(src, cache / info.filename)
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", "")
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(cache))
    path, _ = resolve_model("ultraface-rfb320")
    assert path == cache / info.filename
