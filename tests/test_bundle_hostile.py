"""Bundles written by someone else: every member the model loads is pinned, nothing is read
through a link or outside the bundle, hashing never reads past the declared size, a zip
names each member once, and processes racing to unpack one zip leave one cache entry."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from anyedge.bundle import load_bundle, write_bundle
from anyedge.errors import BundleError
from anyedge.manifest import Manifest, ModelCard
from anyedge.registry import REGISTRY, resolve_model

from .bundle_support import reseal, yunet_bundle
from .test_manifest import face_manifest


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(c))
    return c


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    return yunet_bundle(tmp_path / "src" / "yunet")


def _unlist(*names: str) -> Any:
    def edit(m: dict[str, Any]) -> None:
        for n in names:
            m["files"].pop(n)
            m.get("sizes", {}).pop(n, None)
    return edit


def _openvino_bundle(tmp_path: Path) -> Path:
    info = REGISTRY["yunet-n-320"]
    m = Manifest(model=ModelCard(info.name, info.family, info.task), model_file="model.xml", engine="openvino",
                 input=info.input, decoder=dict(info.decoder))
    out = tmp_path / "ir"
    write_bundle(out, {"model.xml": b"<net/>", "model.bin": b"\0" * 64}, m)
    return out


# -- every member the model loads is listed and pinned -------------------------------------------
def test_an_empty_files_table_does_not_verify_an_unpinned_model(bundle_dir: Path) -> None:
    reseal(bundle_dir, _unlist("model.onnx"))
    with pytest.raises(BundleError, match="'model.onnx', which the model loads, is not listed"):
        load_bundle(bundle_dir)


def test_a_task_refuses_an_unpinned_model(bundle_dir: Path) -> None:
    from anyedge.tasks.face_detector import FaceDetector

    (bundle_dir / "model.onnx").write_bytes(b"not the model that was pinned")
    reseal(bundle_dir, _unlist("model.onnx"))
    with pytest.raises(BundleError, match="model.onnx"):
        FaceDetector.create(bundle_dir)


def test_an_openvino_ir_needs_its_weights_pinned(tmp_path: Path) -> None:
    out = _openvino_bundle(tmp_path)
    assert load_bundle(out).info.loaded_members == ("model.xml", "model.bin")
    reseal(out, _unlist("model.bin"))
    with pytest.raises(BundleError, match="'model.bin', which the model loads, is not listed"):
        load_bundle(out)


def test_an_unlisted_signature_member_is_left_alone(bundle_dir: Path) -> None:
    (bundle_dir / "manifest.sig").write_bytes(b"a detached signature, not a model member")
    assert load_bundle(bundle_dir).info.model_file == "model.onnx"


# -- no links, no special files ---------------------------------------------------------------
def test_a_symlinked_model_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle_dir / "model.onnx", outside)
    (bundle_dir / "model.onnx").symlink_to(outside)  # same bytes, so the pinned sha256 matches
    with pytest.raises(BundleError, match="model.onnx .*is a symlink"):
        load_bundle(bundle_dir)


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_bundle(out, {"sub/model.onnx": resolve_model("yunet-n-320")[0]},
                 Manifest(**{**face_manifest().__dict__, "model_file": "sub/model.onnx"}))
    assert load_bundle(out).model_path == out / "sub" / "model.onnx"
    shutil.move(out / "sub", tmp_path / "outside")
    (out / "sub").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(BundleError, match="sub .*is a symlink"):
        load_bundle(out)


def test_a_symlinked_manifest_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    shutil.move(bundle_dir / "manifest.json", tmp_path / "manifest.json")
    (bundle_dir / "manifest.json").symlink_to(tmp_path / "manifest.json")
    with pytest.raises(BundleError, match="manifest.json .*is a symlink"):
        load_bundle(bundle_dir)


def test_a_fifo_member_is_refused_without_blocking(bundle_dir: Path) -> None:
    (bundle_dir / "model.onnx").unlink()
    os.mkfifo(bundle_dir / "model.onnx")
    with pytest.raises(BundleError, match="not a regular file"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("sizes", ["declared 0", "not recorded"])
def test_inspect_of_a_model_linked_to_pagemap_ends_at_once(bundle_dir: Path, sizes: str) -> None:
    """/proc/self/pagemap reports 0 bytes but reads for ever: the old hashing never returned."""
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""

    def edit(m: dict[str, Any]) -> None:
        m["files"]["model.onnx"] = empty
        if sizes == "declared 0":
            m["sizes"]["model.onnx"] = 0
        else:
            m.pop("sizes")
    (bundle_dir / "model.onnx").unlink()
    (bundle_dir / "model.onnx").symlink_to("/proc/self/pagemap")
    reseal(bundle_dir, edit)
    r = subprocess.run([sys.executable, "-m", "anyedge.cli", "inspect", str(bundle_dir)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "symlink" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("declared", [0, None])
def test_hashing_never_reads_past_the_declared_size(declared: int | None) -> None:
    """A regular file that reads on past its size (pagemap: 0 bytes by stat) is cut off at once."""
    from anyedge.bundle import _hash_member
    from anyedge.errors import IntegrityError

    with pytest.raises(IntegrityError, match="holds more than the 0 bytes"):
        _hash_member(Path("/proc/self"), "pagemap", declared)


# -- zips name each member once -----------------------------------------------------------------
@pytest.mark.parametrize("twice", ["manifest.json", "model.onnx", "./model.onnx"])
def test_a_zip_with_a_member_twice_is_refused(cache: Path, bundle_dir: Path, tmp_path: Path, twice: str) -> None:
    z = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        with zipfile.ZipFile(z, "w") as zf:
            for f in sorted(bundle_dir.iterdir()):
                zf.writestr(f.name, f.read_bytes())
            first = twice.removeprefix("./")
            zf.writestr(twice, (bundle_dir / first).read_bytes() if first == "model.onnx" else b"{}")
    with pytest.raises(BundleError, match="more than once"):
        load_bundle(z)
    assert not (cache / "bundles").exists() or not any((cache / "bundles").iterdir())


# -- processes racing to unpack one zip -----------------------------------------------------------
def _load_in_child(zip_path: str, cache_dir: str, barrier: Any) -> str:
    os.environ["ANYEDGE_CACHE_DIR"] = cache_dir
    from anyedge.bundle import load_bundle as load

    barrier.wait(timeout=60)
    return str(load(zip_path).root)


def test_processes_racing_on_one_zip_leave_one_entry(bundle_dir: Path, tmp_path: Path) -> None:
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(bundle_dir.iterdir()):
            zf.writestr(f.name, f.read_bytes())
    procs, rounds = 4, 5
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:
        for i in range(rounds):
            cache = tmp_path / f"cache{i}"
            barrier = manager.Barrier(procs)
            roots = pool.starmap_async(_load_in_child, [(str(z), str(cache), barrier)] * procs).get(timeout=120)
            entries = sorted(p.name for p in (cache / "bundles").iterdir())
            assert len(set(roots)) == 1 and entries == [Path(roots[0]).name], (i, entries)
