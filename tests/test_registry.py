from __future__ import annotations

import os
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


def test_repository_source_is_downloaded_from_a_file_mirror_and_verified(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """ANYEDGE_MODEL_MIRROR may be a file:// URL of a folder in the upstream layout."""
    src, info = resolve_model("yunet-n-320")
    assert info.source.raw is not None
    mirror = tmp_path / "mirror"
    (mirror / info.source.raw.key).parent.mkdir(parents=True)
    shutil.copy(src, mirror / info.source.raw.key)
    monkeypatch.setenv("ANYEDGE_MODEL_MIRROR", mirror.as_uri())
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", "")
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ANYEDGE_OFFLINE")
    path, _ = resolve_model("yunet-n-320")
    assert path == tmp_path / "cache" / info.filename and sha256_file(path) == info.sha256

    (mirror / info.source.raw.key).write_bytes(b"tampered")
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache2"))
    with pytest.raises(IntegrityError, match="sha256"):
        resolve_model("yunet-n-320")
    assert [p for p in (tmp_path / "cache2").rglob("*") if p.is_file()] == []


def test_every_registry_model_has_a_pinned_source_with_the_upstream_url() -> None:
    """Every model downloads itself: BlazeFace from its PyPI wheel, the others from their repository
    at a full commit id, on the raw-file host."""
    for info in list_models():
        assert info.source.fetchable, info.name
        if info.source.wheel:
            assert info.source.url is None and info.source.member
            continue
        raw = info.source.raw
        assert raw is not None and len(raw.commit) == 40
        assert info.source.url == f"https://raw.githubusercontent.com/{raw.repo}/{raw.commit}/{raw.path}"
        assert info.source.url.endswith("/" + info.filename)
        assert raw.commit[:7] in info.source.origin  # the words agree with the pin


@pytest.mark.parametrize("name, licence, gated", [
    ("blazeface-short", "Apache-2.0", False),
    ("blazeface-full", "Apache-2.0", False),
    ("scrfd-500m", "insightface weights: non-commercial research only", True),
    ("yunet", "Apache-2.0", False),
    ("yunet-n-320", "Apache-2.0", False),
    ("retinaface-mnet025", "MIT", False),
    ("ultraface-rfb320", "MIT", False),
    ("mobilefacenet", "no licence stated: test fixture only", True),
    ("mobilefacenet-int8w", "no licence stated: test fixture only", True),
])
def test_licence_strings_and_classes(name: str, licence: str, gated: bool) -> None:
    info = get_model_info(name)
    assert info.license == licence
    assert info.licence_class.needs_acceptance is gated
    assert info.to_dict()["licence_class"] == info.licence_class.value


def test_pinned_repository_file_rejects_paths_that_escape() -> None:
    from anyedge.registry import RawFile

    ok = RawFile("a/b", "0" * 40, "dir/x.onnx")
    assert ok.url("http://m/") == "http://m/a/b/" + "0" * 40 + "/dir/x.onnx"
    for repo, commit, path in [("a/b", "0" * 40, "../x"), ("a/b", "0" * 40, "/x"), ("a/b/c", "0" * 40, "x"),
                               ("a/b", "abc", "x"), ("a/b", "0" * 40, "d//x"), ("", "0" * 40, "x")]:
        with pytest.raises(ValueError):
            RawFile(repo, commit, path)


def _local_mediapipe_wheel(folder: Path) -> Path:
    """A stand-in for the mediapipe wheel on PyPI holding the real BlazeFace member files."""
    import zipfile

    folder.mkdir()
    wheel = folder / "mediapipe-0.10.14-py3-none-any.whl"
    dist = "mediapipe-0.10.14.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in ("blazeface-short", "blazeface-full"):
            zf.write(resolve_model(name)[0], REGISTRY[name].source.member)
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: mediapipe\nVersion: 0.10.14\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: anyedge-tests\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return folder


def test_concurrent_first_fetches_into_one_empty_cache_all_succeed(tmp_path: Path) -> None:
    """Several processes fetch the same model at once from a local wheel index (pip --find-links)."""
    import subprocess
    import sys

    index = _local_mediapipe_wheel(tmp_path / "index")
    cache = tmp_path / "cache"
    env = {**os.environ, "ANYEDGE_MODEL_PATH": "", "ANYEDGE_CACHE_DIR": str(cache),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}
    env.pop("ANYEDGE_OFFLINE", None)
    code = ("import sys; from anyedge.registry import resolve_model; "
            "p, _ = resolve_model('blazeface-short'); print(p)")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-800:]
        assert Path(out.strip()) == cache / REGISTRY["blazeface-short"].filename
    assert sha256_file(cache / REGISTRY["blazeface-short"].filename) == REGISTRY["blazeface-short"].sha256
    left = sorted(p.name for p in cache.iterdir())
    assert left == sorted({REGISTRY["blazeface-short"].filename, REGISTRY["blazeface-full"].filename})


def test_concurrent_wheel_extraction_never_shares_a_temp_file(tmp_path: Path) -> None:
    """Many extractions of one wheel into one cache at once: each writes its own temp file."""
    import threading

    from anyedge.registry import extract_wheel_members, file_mode

    index = _local_mediapipe_wheel(tmp_path / "index")
    wheel = next(index.glob("*.whl"))
    infos = [REGISTRY["blazeface-short"], REGISTRY["blazeface-full"]]
    dest = tmp_path / "cache"
    dest.mkdir()
    errors: list[BaseException] = []
    written: list[list[Path]] = []

    def work() -> None:
        try:
            for _ in range(5):
                written.append(extract_wheel_members(wheel, infos, dest))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, repr(errors[0])
    assert all(len(w) == 2 for w in written) and len(written) == 40
    assert sorted(p.name for p in dest.iterdir()) == sorted(i.filename for i in infos)
    for i in infos:
        assert sha256_file(dest / i.filename) == i.sha256
        assert (dest / i.filename).stat().st_mode & 0o777 == file_mode()
