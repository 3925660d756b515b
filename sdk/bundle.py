"""Bundles: a model file (or several) plus ``manifest.json``, as a directory or a .zip.

The manifest says what the model is (name, family, task, input spec, decoder settings),
what it was built for (target, engine, precision), how (tool versions, calibration,
fidelity report) and pins the sha256 and size of every file and its own digest; it is parsed
and validated once into a :class:`~anyedge.manifest.Manifest`. Loading verifies all of it and
refuses member paths that would escape the bundle. A zip is unpacked into the cache, listed
members only, atomically (see :func:`load_bundle`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import AnyEdgeError, BundleError, IntegrityError
from .inputs import open_member, read_member
from .manifest import FORMAT, Manifest, _json_default, manifest_digest, safe_member
from .signing.trust import MAX_SIGNATURE as _MAX_SIGNATURE
from .signing.trust import SIGNATURE, check_trust

__all__ = [
    "MANIFEST",
    "FORMAT",
    "Bundle",
    "is_bundle",
    "load_bundle",
    "write_bundle",
    "zip_bundle",
    "is_bundle_zip",
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


def _open_regular(root: Path, name: str) -> int:
    """A read-only descriptor on member ``name`` (see :func:`anyedge.inputs.open_member`)."""
    return open_member(root, _safe_member(name))


def _read_regular(root: Path, name: str, limit: int) -> bytes:
    """The bytes of member ``name``, refusing more than ``limit`` (see :func:`anyedge.inputs.read_member`)."""
    return read_member(root, _safe_member(name), limit)


def _hash_member(root: Path, name: str, size: int | None) -> str:
    """sha256 of member ``name``, reading no more than its declared ``size`` (or its stat size) + 1 bytes."""
    fd = _open_regular(root, name)
    with os.fdopen(fd, "rb") as f:
        have = os.fstat(fd).st_size
        if size is not None and have != size:
            raise IntegrityError(f"bundle {root}: {name} has {have} bytes, the manifest declares {size}; "
                                 "the bundle was modified or damaged")
        limit = have if size is None else size
        h = hashlib.sha256()
        done = 0
        while done <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - done))
            if not chunk:
                break
            done += len(chunk)
            h.update(chunk)
    if done > limit:
        raise IntegrityError(f"bundle {root}: {name} holds more than the {limit} bytes declared for it; "
                             "the bundle was modified or damaged")
    return h.hexdigest()


def _read_manifest(root: Path) -> tuple[dict[str, Any], Manifest]:
    mpath = root / MANIFEST
    if not os.path.lexists(mpath):
        raise BundleError(f"{root} has no {MANIFEST}")
    text = _read_regular(root, MANIFEST, _MAX_MANIFEST)
    try:
        raw = json.loads(text.decode("utf-8"))
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
        actual = _hash_member(root, name, manifest.sizes.get(name))
        if actual != digest:
            raise IntegrityError(
                f"bundle {root}: {name} has sha256 {actual}, the manifest pins {digest}; "
                "the bundle was modified or damaged"
            )


_NO_SIZES_CAP = 2 << 30  # total a zip may unpack when its manifest predates recorded sizes
# What zipfile raises on a damaged or unsupported archive (bad CRC, truncated stream,
# encrypted member, unknown compression).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def _bundle_cache() -> Path:
    """Where zip bundles are unpacked: ``bundles/`` inside the anyedge cache."""
    from .registry import cache_dir

    return cache_dir() / "bundles"


def _dir_mode() -> int:
    from .registry import file_mode

    return file_mode() | ((file_mode() & 0o444) >> 2)  # r -> x: 0o644 -> 0o755 under umask 022


def _zip_layout(path: Path, zf: zipfile.ZipFile) -> tuple[str, zipfile.ZipInfo]:
    """The folder prefix the bundle's files sit under ("" or "top/") and the manifest entry."""
    names = [i.filename for i in zf.infolist()]
    seen: set[str] = set()
    for name in names:  # check every name before reading anything
        clean = _safe_member(name)
        if clean in seen:
            raise BundleError(f"{path} holds {clean!r} more than once; refusing an ambiguous zip")
        seen.add(clean)
    infos = {i.filename: i for i in zf.infolist()}
    if MANIFEST in infos:
        return "", infos[MANIFEST]
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        prefix = f"{tops.pop()}/"
        if prefix + MANIFEST in infos:
            return prefix, infos[prefix + MANIFEST]
    raise BundleError(f"{path} has no {MANIFEST} at its root or in its single top folder")


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, dst: Any = None) -> bytes | int:
    """Stream one member (into ``dst`` or memory), refusing more than ``limit`` bytes."""
    done = 0
    chunks = []
    with zf.open(info) as src:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            done += len(chunk)
            if done > limit:
                raise BundleError(f"member {info.filename} unpacks to more than the {limit} bytes declared for it")
            if dst is None:
                chunks.append(chunk)
            else:
                dst.write(chunk)
    return b"".join(chunks) if dst is None else done


def _unzip(path: Path) -> Path:
    """Unpack a zip bundle into the cache, atomically; return its directory there.

    Only ``manifest.json`` and the members it lists are extracted, each no larger than the
    manifest declares; the manifest's own digest and every file's sha256 are verified before
    the unpacked directory is renamed into place, so the cache never holds a partial or
    unverified bundle and a refused zip leaves nothing behind.
    """
    digest = _sha256(path)
    cache = _bundle_cache()
    dest = cache / digest[:32]
    if (dest / MANIFEST).is_file():
        return dest
    try:
        zf = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, OSError) as e:
        raise BundleError(f"{path} is not a readable zip: {e}") from e
    tmp: Path | None = None
    try:
        with zf:
            prefix, minfo = _zip_layout(path, zf)
            raw_bytes = _read_zip_member(zf, minfo, _MAX_MANIFEST)
            try:
                raw = json.loads(bytes(raw_bytes).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise BundleError(f"{path}: {MANIFEST} is not valid JSON: {e}") from e
            try:
                manifest = Manifest.from_json(raw)
            except BundleError as e:
                raise BundleError(f"{path}: {MANIFEST}: {e}") from None
            if manifest.manifest_sha256 != manifest_digest(raw):
                raise IntegrityError(f"{path}: {MANIFEST} was edited after the bundle was written "
                                     "(its manifest_sha256 no longer matches)")
            infos = {i.filename: i for i in zf.infolist()}
            members = []
            for name in manifest.files:
                info = infos.get(prefix + _safe_member(name))
                if info is None or info.is_dir():
                    raise BundleError(f"{path} is missing {name}, which its manifest lists")
                limit = manifest.sizes.get(name, _NO_SIZES_CAP)
                if info.file_size > limit:
                    raise BundleError(f"{path}: member {name} unpacks to {info.file_size} bytes, "
                                      f"the manifest declares {limit}")
                members.append((name, info, limit))
            total = sum(i.file_size for _, i, _ in members)
            cap = manifest.declared_bytes if manifest.declared_bytes is not None else _NO_SIZES_CAP
            if total > cap:
                raise BundleError(f"{path}: the listed members unpack to {total} bytes, more than the "
                                  f"{cap} bytes the manifest allows")
            cache.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{digest[:32]}.unzip-"))
            os.chmod(tmp, _dir_mode())
            for name, info, limit in members:
                target = tmp / _safe_member(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as dst:
                    _read_zip_member(zf, info, limit, dst)
            (tmp / MANIFEST).write_bytes(bytes(raw_bytes))
            sig = infos.get(prefix + SIGNATURE)  # the signature beside the manifest (anyedge.signing)
            if sig is not None and not sig.is_dir():
                (tmp / SIGNATURE).write_bytes(bytes(_read_zip_member(zf, sig, _MAX_SIGNATURE)))
        _verify(tmp, raw, manifest)
        try:
            os.rename(tmp, dest)
            tmp = None
        except OSError:
            if not (dest / MANIFEST).is_file():  # an incomplete entry (older anyedge): replace it
                shutil.rmtree(dest, ignore_errors=True)
                os.rename(tmp, dest)
                tmp = None
            # else another process got there first with the same verified bytes: ours is removed below
    except AnyEdgeError:
        raise
    except _ZIP_ERRORS as e:
        raise BundleError(f"{path} is a damaged zip: {e}") from e
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def load_bundle(path: str | os.PathLike[str], *, trusted_keys: Any = None) -> Bundle:
    """Open and verify a bundle directory or .zip.

    A zip (files at its root or in one top folder) is unpacked into
    ``$ANYEDGE_CACHE_DIR/bundles/``: only the manifest and the files it lists, each within its
    declared size, verified in a temporary directory that is renamed into place.

    Raises:
        BundleError: not a bundle, bad or incomplete manifest (naming the field), missing
            member, unsafe member path, oversized member, damaged zip.
        IntegrityError: the manifest or a file differs from the digests it pins; or, with
            trusted keys configured (``trusted_keys=``, else ``$ANYEDGE_TRUSTED_KEYS``; see
            :mod:`anyedge.signing`), the bundle is not signed by one of them. ``trusted_keys=False``
            checks digests only (a bundle this process just wrote, or one about to be signed).
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
    check_trust(p, root, raw, trusted_keys)
    return Bundle(root=root, manifest=raw, info=manifest)


def replace_directory(tmp: Path, out: Path) -> None:
    """Move the finished directory ``tmp`` to ``out``, replacing what is there by renames only.

    ``tmp`` must be on ``out``'s filesystem (make it in ``out.parent``). An existing ``out`` is
    first renamed aside, so ``out`` never holds a mix of old and new files.
    """
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "x")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


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
    body.pop("sizes", None)
    body = json.loads(json.dumps(body, default=_json_default))
    Manifest.from_json(body, require_hash=False)  # refuse a bad manifest before writing anything
    if out.exists() and not (out / MANIFEST).is_file():
        raise BundleError(f"{out} exists and is not a bundle; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        os.chmod(tmp, _dir_mode())  # mkdtemp makes 0700; a bundle is an ordinary directory
        digests: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for name, src in files.items():
            target = tmp / _safe_member(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, bytes):
                target.write_bytes(src)
            else:
                shutil.copyfile(src, target)
            digests[name] = _sha256(target)
            sizes[name] = target.stat().st_size
        full = Manifest.from_json({**body, "files": digests, "sizes": sizes}, require_hash=False).to_json()
        full["manifest_sha256"] = manifest_digest(full)
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False, default=_json_default) + "\n")
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(out, trusted_keys=False)  # written here, not yet signed


def is_bundle_zip(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zip holding an anyedge manifest (at its root or in one top folder)."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            _, minfo = _zip_layout(p, zf)
            if minfo.file_size > _MAX_MANIFEST:
                return False
            raw = json.loads(zf.read(minfo).decode("utf-8"))
    except (*_ZIP_ERRORS, OSError, BundleError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(raw, dict) and str(raw.get("format", "")).startswith("anyedge-bundle/")


def zip_bundle(bundle_dir: str | os.PathLike[str], out_zip: str | os.PathLike[str]) -> Path:
    """Pack a bundle directory into a .zip (members at the zip root), atomically.

    Raises:
        BundleError: ``out_zip`` exists and is not an anyedge bundle zip (it is never overwritten).
    """
    src = Path(bundle_dir)
    bundle = load_bundle(src, trusted_keys=False)  # never zip something that does not verify
    out_zip = Path(out_zip)
    if out_zip.exists() and not (out_zip.is_file() and is_bundle_zip(out_zip)):
        raise BundleError(f"{out_zip} exists and is not an anyedge bundle; refusing to overwrite it")
    fd, tmpname = tempfile.mkstemp(dir=out_zip.parent, prefix=f".{out_zip.name}.", suffix=".part")
    os.close(fd)
    try:
        from .registry import file_mode

        os.chmod(tmpname, file_mode())  # mkstemp makes 0600; a bundle is an ordinary file
        with zipfile.ZipFile(tmpname, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in [MANIFEST, *sorted(bundle.info.files)]:
                zf.write(src / name, name)
            if (src / SIGNATURE).is_file():
                zf.write(src / SIGNATURE, SIGNATURE)
        os.replace(tmpname, out_zip)
    except BaseException:
        Path(tmpname).unlink(missing_ok=True)
        raise
    return out_zip
