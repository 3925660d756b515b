"""Bundles: a model file (or several) plus ``manifest.json``, as a directory or a .zip.

The manifest says what the model is (name, family, task, input spec, decoder settings),
what it was built for (target, engine, precision), how (tool versions, calibration,
fidelity report) and pins the sha256 of every file. Loading verifies all of it and refuses
member paths that would escape the bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from .errors import BundleError, IntegrityError
from .manifest import FORMAT, Manifest, manifest_digest, safe_member

__all__ = [
    "MANIFEST",
    "FORMAT",
    "Bundle",
    "is_bundle",
    "load_bundle",
    "write_bundle",
    "zip_bundle",
    "manifest_digest",
]

MANIFEST = "manifest.json"
_MAX_MANIFEST = 4 << 20


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk.

    Attributes:
        root: directory holding the files (a zip is unpacked into the cache first).
        manifest: the verified ``manifest.json`` as read (plain JSON values).
        info: the same manifest parsed and validated (:class:`~anyedge.manifest.Manifest`).
    """

    root: Path
    manifest: Mapping[str, Any]
    info: Manifest

    @property
    def model_path(self) -> Path:
        return self.root / self.info.model_file

    def file(self, name: str) -> Path:
        return self.root / _safe_member(name)


def is_bundle(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / MANIFEST).is_file()) or (p.is_file() and p.suffix.lower() == ".zip")


def _safe_member(name: str) -> str:
    """Reject absolute paths, drive letters, backslashes and ``..`` components."""
    return safe_member(name, "bundle member")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_manifest(root: Path) -> tuple[dict[str, Any], Manifest]:
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{root} has no {MANIFEST}")
    if mpath.stat().st_size > _MAX_MANIFEST:
        raise BundleError(f"{mpath} is larger than {_MAX_MANIFEST} bytes")
    try:
        raw = json.loads(mpath.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{mpath} is not valid JSON: {e}") from e
    try:
        return raw, Manifest.from_json(raw)
    except BundleError as e:
        raise BundleError(f"{mpath}: {e}") from None


def _verify(root: Path, raw: Mapping[str, Any], manifest: Manifest) -> None:
    if manifest.manifest_sha256 != manifest_digest(raw):
        raise IntegrityError(f"bundle {root}: {MANIFEST} was edited after the bundle was written "
                             "(its manifest_sha256 no longer matches)")
    for name, digest in manifest.files.items():
        member = root / _safe_member(name)
        if not member.is_file():
            raise BundleError(f"bundle {root} is missing {name}, which its manifest lists")
        actual = _sha256(member)
        if actual != digest:
            raise IntegrityError(
                f"bundle {root}: {name} has sha256 {actual}, the manifest pins {digest}; "
                "the bundle was modified or damaged"
            )


def _bundle_cache() -> Path:
    from .registry import cache_dir

    return cache_dir().parent / "bundles"


def _unzip(path: Path) -> Path:
    digest = _sha256(path)
    dest = _bundle_cache() / digest[:32]
    if (dest / MANIFEST).is_file():
        return dest
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{path} is not a readable zip: {e}") from e
    with zf:
        infos = zf.infolist()
        for info in infos:  # check every name before writing anything
            _safe_member(info.filename)
            if info.file_size > (2 << 30):
                raise BundleError(f"{path}: member {info.filename} is implausibly large")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".unzip-"))
        try:
            for info in infos:
                if info.is_dir():
                    continue
                target = tmp / _safe_member(info.filename)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            if (dest / MANIFEST).is_file():
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Open and verify a bundle directory or .zip.

    Raises:
        BundleError: not a bundle, bad manifest, missing member, unsafe member path.
        IntegrityError: a file's sha256 differs from the manifest.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".zip":
        root = _unzip(p)
    elif p.is_dir():
        root = p
    else:
        raise BundleError(f"{p} is neither a bundle directory nor a .zip")
    raw, manifest = _read_manifest(root)
    _verify(root, raw, manifest)
    return Bundle(root=root, manifest=raw, info=manifest)


def write_bundle(
    out: str | os.PathLike[str],
    files: Mapping[str, str | os.PathLike[str] | bytes],
    manifest: Manifest | Mapping[str, Any],
) -> Bundle:
    """Write a bundle directory atomically (temp dir, then rename).

    Args:
        out: the bundle directory to create; it must not exist, or be an existing bundle
            that is replaced.
        files: member name -> source file path or bytes.
        manifest: a :class:`~anyedge.manifest.Manifest`, or its JSON fields; ``format``,
            ``files`` and ``manifest_sha256`` are filled in here. It is validated before
            anything is written.

    Returns:
        The written, verified bundle.
    """
    out = Path(out)
    body = manifest.to_json() if isinstance(manifest, Manifest) else dict(manifest)
    body = {"format": FORMAT, **body, "files": {}}
    body.pop("manifest_sha256", None)
    body = json.loads(json.dumps(body, default=_json_default))
    Manifest.from_json(body, require_hash=False)  # refuse a bad manifest before writing anything
    if out.exists() and not (out / MANIFEST).is_file():
        raise BundleError(f"{out} exists and is not a bundle; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        digests: dict[str, str] = {}
        for name, src in files.items():
            target = tmp / _safe_member(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, bytes):
                target.write_bytes(src)
            else:
                shutil.copyfile(src, target)
            digests[name] = _sha256(target)
        full = Manifest.from_json({**body, "files": digests}, require_hash=False).to_json()
        full["manifest_sha256"] = manifest_digest(full)
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False, default=_json_default) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "b")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(out)


def zip_bundle(bundle_dir: str | os.PathLike[str], out_zip: str | os.PathLike[str]) -> Path:
    """Pack a bundle directory into a .zip (members at the zip root), atomically."""
    src = Path(bundle_dir)
    load_bundle(src)  # never zip something that does not verify
    out_zip = Path(out_zip)
    fd, tmpname = tempfile.mkstemp(dir=out_zip.parent, prefix=f".{out_zip.name}.", suffix=".part")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmpname, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(src.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(src).as_posix())
        os.replace(tmpname, out_zip)
    except BaseException:
        Path(tmpname).unlink(missing_ok=True)
        raise
    return out_zip


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
