"""Model packs: a folder of registry model files to copy onto an offline machine or serve as a mirror.

A pack holds each model's file at its mirror path (:attr:`anyedge.registry.Source.mirror_path`):

* ``<owner>/<repo>/<commit>/<path>`` for a file from a public repository, the layout of the
  upstream raw-file host, so any static HTTP server serving the folder is an
  ``ANYEDGE_MODEL_MIRROR``;
* ``pypi/<distribution>/<version>/<member>`` for a member of a PyPI wheel (the BlazeFace files),
  which are found through ``ANYEDGE_MODEL_PATH`` (pip fetches them from PyPI otherwise);

plus ``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` checks it). ``ANYEDGE_MODEL_PATH=DIR`` finds
every packed model, since the search path is searched recursively by file name.

The pack is assembled in a temporary folder beside ``DIR`` and renamed into place, so ``DIR``
is either the old pack or the new one, never half of each. An existing ``DIR`` is replaced only
when it is empty or a pack itself (every file in it listed in its ``SHA256SUMS``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from .fetch import fetch_model, file_mode, process_umask, sha256_file
from .table import PACKAGED_BUNDLES, ModelInfo, get_model_info

__all__ = ["PackedModel", "pack_models", "SUMS_FILE"]

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class PackedModel:
    """One model written into a pack: its entry, its file in the pack, and that file's sha256."""

    info: ModelInfo
    path: Path
    sha256: str


def _is_pack(folder: Path) -> bool:
    """Whether ``folder`` is empty, or holds only a ``SHA256SUMS`` and the files it lists."""
    entries = list(folder.rglob("*"))
    if not entries:
        return True
    sums = folder / SUMS_FILE
    if not sums.is_file() or sums.is_symlink():
        return False
    listed = set()
    try:
        for line in sums.read_text(encoding="utf-8").splitlines():
            if line.strip():
                listed.add(line.split(None, 1)[1].lstrip("*").removeprefix("./"))
    except (OSError, UnicodeDecodeError, IndexError):
        return False
    for p in entries:
        if p.is_symlink():
            return False
        if p.is_file() and p != sums and p.relative_to(folder).as_posix() not in listed:
            return False
    return True


def pack_models(dest: str | os.PathLike[str], names: Sequence[str], *,
                accept_licence: bool = False) -> list[PackedModel]:
    """Write a pack of the named registry models into ``dest`` (see the module docstring).

    Each model is taken from the search path or the cache, or fetched first (as
    :func:`anyedge.registry.resolve_model` does, with the same licence rule).

    Args:
        dest: the pack folder; created, or replaced when it is empty or an earlier pack.
        names: registry names, at least one.
        accept_licence: accept non-commercial or unstated licences, so such models are fetched.

    Returns:
        The packed models, in the order given.

    Raises:
        InputError: no names, or ``dest`` is a file or a folder that is not a pack.
        UnknownModelError: a name is not in the registry.
        LicenceNotAcceptedError, DownloadError, IntegrityError: a model could not be had.
    """
    dest = Path(dest)
    if not names:
        raise InputError("expected at least one model name to pack, got none")
    for n in names:
        if n in PACKAGED_BUNDLES:
            raise InputError(f"{n!r} ships inside the anyedge package; a pack holds registry model files only")
    infos = [get_model_info(n) for n in dict.fromkeys(names)]
    for info in infos:
        if info.source.mirror_path is None:
            raise InputError(f"model {info.name!r} has no place in a pack (no pinned source)")
    if dest.exists() or dest.is_symlink():
        if dest.is_symlink() or not dest.is_dir():
            raise InputError(f"{dest} is an existing file; expected a folder for the model pack")
        if not _is_pack(dest):
            raise InputError(f"{dest} is a folder that is not a model pack (it holds files its {SUMS_FILE} "
                             f"does not list, or has no {SUMS_FILE}); refusing to replace it: choose a new "
                             "or empty folder")
    sources = [fetch_model(i.name, accept_licence=accept_licence).path for i in infos]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.pack-"))
    try:
        os.chmod(tmp, 0o777 & ~process_umask())  # mkdtemp makes 0700; a pack is an ordinary folder
        packed, lines = [], []
        for info, src in zip(infos, sources):
            rel = info.source.mirror_path
            assert rel is not None
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)  # mkdir honours the umask
            shutil.copyfile(src, target)
            os.chmod(target, file_mode())
            digest = sha256_file(target)
            if digest != info.sha256:  # changed under us since it was verified
                raise InputError(f"{src} changed while it was packed (sha256 {digest}); try again")
            packed.append(PackedModel(info, dest / rel, digest))
            lines.append(f"{digest}  ./{rel}\n")
        sums = tmp / SUMS_FILE
        sums.write_text("".join(lines), encoding="utf-8")
        os.chmod(sums, file_mode())
        _swap_in(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return packed


def _swap_in(new: Path, dest: Path) -> None:
    """Put the folder ``new`` at ``dest``, moving an earlier pack there aside and removing it."""
    if not dest.exists():
        os.rename(new, dest)
        return
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except OSError:
        os.rename(old, dest)  # put the earlier pack back
        raise
    shutil.rmtree(old, ignore_errors=True)
