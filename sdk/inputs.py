"""Checks every file input passes before anything opens it."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import IO, Any, Iterator

from .errors import BundleError, InputError

__all__ = ["regular_file", "open_regular", "bounded_lines", "open_member", "read_member"]

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def regular_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` when it names a regular file (symlinks followed); refuse anything else.

    Opening a FIFO blocks until a writer appears, and a device can be read forever, so inputs
    are checked with ``stat`` before they are opened.

    Args:
        path: the file named by the user.
        what: what the file should be, for the message (``"image"``, ``"video"``, ``"CSV file"``).

    Raises:
        InputError: no such file, or it is a directory, FIFO, socket or device.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as e:
        raise _unreadable(p, e, what) from None
    _check_mode(p, mode, what)
    return p


def open_regular(path: str | os.PathLike[str], what: str = "file", **text: str) -> IO[Any]:
    """Open a regular file for reading without ever blocking in ``open``; binary unless ``text`` options are given.

    The file is opened non-blocking (a FIFO opens at once instead of waiting for a writer),
    checked with ``fstat`` (no race with a path swapped after a ``stat``), then read normally.

    Raises:
        InputError: no such file, unreadable, or not a regular file (see :func:`regular_file`).
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _unreadable(p, e, what) from None
    try:
        _check_mode(p, os.fstat(fd).st_mode, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "r" if text else "rb", **text)
    except BaseException:
        os.close(fd)
        raise


def _unreadable(p: Path, e: OSError, what: str) -> InputError:
    if isinstance(e, FileNotFoundError):
        return InputError(f"{p} does not exist; expected {_article(what)}")
    return InputError(f"{p}: cannot read it ({e.strerror or e}); expected {_article(what)}")


def _check_mode(p: Path, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise InputError(f"{p}: expected {_article(what)} (a regular file), got {kind}")


def bounded_lines(f: IO[str], limit: int, what: str = "line") -> Iterator[str]:
    """The lines of a text stream, each read at most ``limit`` characters at a time.

    A line longer than ``limit`` is refused once ``limit`` characters of it are read, so a file
    (or a pipe) that never sends a newline cannot grow one line without bound.

    Raises:
        InputError: a line (numbered from 1) longer than ``limit`` characters.
    """
    n = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n += 1
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith("\n")):
            raise InputError(f"line {n}: longer than {limit} characters; expected {_article(what)}")
        yield line


def _article(what: str) -> str:
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"


def open_member(root: Path, name: str) -> int:
    """A read-only descriptor on bundle member ``name``, which must be a regular file reached without links.

    ``name`` is a relative POSIX path already checked (:func:`anyedge.manifest.safe_member`).
    Every path component below ``root`` is checked with ``lstat``: a symlink, device, FIFO or
    socket anywhere on the way is refused, so nothing outside the bundle is ever read.

    Raises:
        BundleError: the member is missing, is or passes through a link or special file, or was
            replaced while it was being opened.
    """
    parts = PurePosixPath(name).parts
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise BundleError(f"bundle {root} is missing {name}, which its manifest lists") from None
        last = i == len(parts) - 1
        if not (stat.S_ISREG(st.st_mode) if last else stat.S_ISDIR(st.st_mode)):
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file" if last else "not a folder"
            raise BundleError(f"bundle {root}: {'/'.join(parts[:i + 1])} (in member {name}) is {kind}; "
                              "a bundle holds regular files only")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                 | getattr(os, "O_BINARY", 0))
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise BundleError(f"bundle {root}: {name} was replaced while it was being opened")
    return fd


def read_member(root: Path, name: str, limit: int) -> bytes:
    """The bytes of bundle member ``name`` (see :func:`open_member`), refusing more than ``limit``.

    Raises:
        BundleError: as :func:`open_member`, or the member is larger than ``limit`` bytes.
    """
    fd = open_member(root, name)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"bundle {root}: {name} is larger than {limit} bytes")
    return data
