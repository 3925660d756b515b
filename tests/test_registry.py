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


def test_models_are_extracted_from_a_wheel_member(tmp_path: Path) -> None:
    """The BlazeFace files ship inside the mediapipe wheel; a local wheel stands in for PyPI."""
    import zipfile

    from anyedge.registry import extract_wheel_members

    short, full = REGISTRY["blazeface-short"], REGISTRY["blazeface-full"]
    wheel = tmp_path / "mediapipe-0.10.14-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(resolve_model("blazeface-short")[0], short.source.member)
        zf.writestr(full.source.member, b"not the real file")  # wrong sha256: must be skipped
    dest = tmp_path / "cache"
    dest.mkdir()
    written = extract_wheel_members(wheel, [short, full], dest)
    assert written == [dest / short.filename]
    assert sha256_file(dest / short.filename) == short.sha256
    assert sorted(p.name for p in dest.iterdir()) == [short.filename]  # no partial or bad file left


def test_url_source_is_downloaded_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file:// URL exercises the download path without a network."""
    from dataclasses import replace

    import anyedge.registry as reg

    src, info = resolve_model("yunet-n-320")
    monkeypatch.setitem(reg.REGISTRY, "yunet-n-320", replace(info, source=replace(info.source, url=src.as_uri())))
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", "")
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ANYEDGE_OFFLINE")
    path, _ = resolve_model("yunet-n-320")
    assert path == tmp_path / "cache" / info.filename and sha256_file(path) == info.sha256

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"tampered")
    monkeypatch.setitem(reg.REGISTRY, "yunet-n-320", replace(info, source=replace(info.source, url=bad.as_uri())))
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache2"))
    with pytest.raises(IntegrityError, match="wrong sha256"):
        resolve_model("yunet-n-320")
    assert [p for p in (tmp_path / "cache2").rglob("*") if p.is_file()] == []
