"""Zip bundles: only listed members are unpacked, within the sizes the manifest declares,
atomically, inside the cache; damaged zips are BundleErrors; nothing is overwritten that is
not a bundle; files get ordinary permissions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from anyedge.bundle import is_bundle_zip, load_bundle, write_bundle, zip_bundle
from anyedge.errors import BundleError, IntegrityError
from anyedge.registry import cache_dir, file_mode, resolve_model

from .bundle_support import yunet_bundle
from .test_manifest import face_manifest

ZEROS = 256 << 20  # the bombs stay at a few hundred MB, streamed (never held in memory)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(c))
    return c


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    return yunet_bundle(tmp_path / "src" / "yunet")


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def _entries(cache: Path) -> list[str]:
    b = cache / "bundles"
    return sorted(p.name for p in b.iterdir()) if b.is_dir() else []


def _write_zeros(zf: zipfile.ZipFile, name: str, n: int) -> None:
    chunk = bytes(1 << 20)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as f:
        for _ in range(n // len(chunk)):
            f.write(chunk)


def _zip_of(bundle_dir: Path, out: Path, *, prefix: str = "", compression: int = zipfile.ZIP_DEFLATED,
            replace: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(out, "w", compression) as zf:
        for f in sorted(bundle_dir.iterdir()):
            data = (replace or {}).get(f.name, f.read_bytes())
            zf.writestr(prefix + f.name, data)
    return out


def test_zip_unpacks_inside_the_cache(cache: Path, bundle_dir: Path, tmp_path: Path) -> None:
    z = zip_bundle(bundle_dir, tmp_path / "y.zip")
    b = load_bundle(z)
    assert b.root.parent == cache_dir() / "bundles" and cache_dir() == cache
    assert sorted(p.name for p in b.root.iterdir()) == ["manifest.json", "model.onnx"]


def test_unlisted_members_are_not_unpacked(cache: Path, bundle_dir: Path, tmp_path: Path) -> None:
    z = zip_bundle(bundle_dir, tmp_path / "bomb.zip")
    with zipfile.ZipFile(z, "a", zipfile.ZIP_DEFLATED) as zf:
        for i in range(2):
            _write_zeros(zf, f"zeros{i}.bin", ZEROS // 2)
    assert z.stat().st_size < 2 << 20  # a small file that would unpack to 256 MB
    b = load_bundle(z)
    assert sorted(p.name for p in b.root.iterdir()) == ["manifest.json", "model.onnx"]
    assert _tree_bytes(cache) == _tree_bytes(bundle_dir)


def test_member_larger_than_declared_is_refused_and_leaves_nothing(cache: Path, bundle_dir: Path,
                                                                   tmp_path: Path) -> None:
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(bundle_dir / "manifest.json", "manifest.json")
        _write_zeros(zf, "model.onnx", ZEROS)  # listed, but far larger than the manifest declares
    with pytest.raises(BundleError, match="declares"):
        load_bundle(z)
    assert _tree_bytes(cache) == 0 and _entries(cache) == []


def test_manifest_without_sizes_still_caps_the_total(cache: Path, bundle_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import anyedge.bundle as bundle_mod
    from anyedge.bundle import manifest_digest

    m = json.loads((bundle_dir / "manifest.json").read_text())
    del m["sizes"]  # as written before sizes were recorded
    m["manifest_sha256"] = manifest_digest(m)
    z = _zip_of(bundle_dir, tmp_path / "old.zip", replace={"manifest.json": json.dumps(m).encode()})
    default_cap = bundle_mod._NO_SIZES_CAP
    monkeypatch.setattr(bundle_mod, "_NO_SIZES_CAP", 1000)
    with pytest.raises(BundleError, match="1000"):
        load_bundle(z)
    assert _entries(cache) == []
    monkeypatch.setattr(bundle_mod, "_NO_SIZES_CAP", default_cap)
    assert load_bundle(z).info.sizes == {}


def test_bad_crc_is_a_bundle_error_and_leaves_nothing(cache: Path, bundle_dir: Path, tmp_path: Path) -> None:
    z = _zip_of(bundle_dir, tmp_path / "crc.zip", compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("model.onnx")
    data = bytearray(z.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.file_size // 2] ^= 0xFF
    z.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="damaged zip.*CRC"):
        load_bundle(z)
    assert _entries(cache) == []


def test_edited_manifest_in_zip_is_refused_before_unpacking(cache: Path, bundle_dir: Path, tmp_path: Path) -> None:
    m = json.loads((bundle_dir / "manifest.json").read_text())
    m["decoder"]["score_threshold"] = 0.01
    z = _zip_of(bundle_dir, tmp_path / "edit.zip", replace={"manifest.json": json.dumps(m).encode()})
    with pytest.raises(IntegrityError, match="edited"):
        load_bundle(z)
    assert _entries(cache) == []


@pytest.mark.parametrize("junk", [b"not a zip at all", b"PK\x03\x04" + bytes(40)])
def test_not_a_zip(cache: Path, tmp_path: Path, junk: bytes) -> None:
    z = tmp_path / "junk.zip"
    z.write_bytes(junk)
    with pytest.raises(BundleError, match="zip"):
        load_bundle(z)


def test_zip_with_a_top_folder_loads_twice(cache: Path, bundle_dir: Path, tmp_path: Path) -> None:
    z = _zip_of(bundle_dir, tmp_path / "nested.zip", prefix="yunet-bundle/")
    first = load_bundle(z)
    second = load_bundle(z)
    assert first.root == second.root and first.manifest == second.manifest
    assert _entries(cache) == [first.root.name]  # one entry, no temp directories left over
    from anyedge import FaceDetector

    with FaceDetector.create(z) as det:
        assert det.spec.family == "yunet"


def test_zip_without_a_manifest(cache: Path, tmp_path: Path) -> None:
    z = tmp_path / "none.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/model.onnx", b"x")
        zf.writestr("b/other.txt", b"y")
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(z)
    assert _entries(cache) == []


def test_zip_bundle_never_overwrites_what_is_not_a_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    for content in (b"PK\x05\x06" + bytes(18), b"my holiday photos"):  # an empty zip, a non-zip
        other = tmp_path / "other.zip"
        other.write_bytes(content)
        with pytest.raises(BundleError, match="not an anyedge bundle"):
            zip_bundle(bundle_dir, other)
        assert other.read_bytes() == content
    unrelated = tmp_path / "unrelated.zip"
    with zipfile.ZipFile(unrelated, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"name": "someone else's"}))
    before = unrelated.read_bytes()
    with pytest.raises(BundleError, match="not an anyedge bundle"):
        zip_bundle(bundle_dir, unrelated)
    assert unrelated.read_bytes() == before
    # an existing bundle zip is replaced
    target = zip_bundle(bundle_dir, tmp_path / "b.zip")
    assert is_bundle_zip(target)
    assert zip_bundle(bundle_dir, target) == target and is_bundle_zip(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip", "other.zip", "src", "unrelated.zip"]


def test_convert_out_zip_refuses_to_overwrite_an_unrelated_zip(tmp_path: Path, shared_dir: Path) -> None:
    victim = tmp_path / "photos.zip"
    with zipfile.ZipFile(victim, "w") as zf:
        zf.writestr("holiday.jpg", b"\xff\xd8 not really")
    before = victim.read_bytes()
    calib = tmp_path / "calib"
    calib.mkdir()
    for p in sorted((shared_dir / "data" / "widerface_val" / "images").glob("*.jpg"))[:12]:
        shutil.copy(p, calib)
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "convert", "blazeface-short", "--target", "mobile-gpu",
                        "--out", str(victim), "--calib", str(calib)], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "not an anyedge bundle" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "photos.zip"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_bundles_get_ordinary_permissions(cache: Path, tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        out = tmp_path / f"b{umask:o}"
        write_bundle(out, {"model.onnx": resolve_model("yunet-n-320")[0]}, face_manifest())
        z = zip_bundle(out, tmp_path / f"b{umask:o}.zip")
        unpacked = load_bundle(z).root
        want_file = 0o666 & ~umask
        want_dir = 0o777 & ~umask
        assert file_mode() == want_file
        for d in (out, unpacked):
            assert d.stat().st_mode & 0o777 == want_dir, d
            for f in d.iterdir():
                assert f.stat().st_mode & 0o777 == want_file, f
        assert z.stat().st_mode & 0o777 == want_file
    finally:
        os.umask(old)
