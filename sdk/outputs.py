"""Where anyedge writes files: an output never replaces an input or a file anyedge did not write.

Every command that writes files goes through this module:

* :class:`OutputDir` is a folder anyedge writes into (``detect --out``, ``demo --out``,
  ``bench --out``, and the folder of a single output file). :meth:`OutputDir.claim` hands out
  a path for a name: a name already taken in this run, by an input, or by a file anyedge did not
  write gets a distinct name (``photo-2.jpg``), or with ``rename=False`` is refused with one line
  naming the file.
* A hidden record, ``.anyedge-outputs.json``, in each such folder lists the names anyedge wrote
  there, so a second run replaces its own earlier outputs and nothing else.
* :func:`check_replaceable` guards a folder that is replaced whole (``export-c --out``): it may
  hold only what the record lists.

    out = OutputDir("annotated", inputs=paths)
    target = out.claim("photo.jpg")
    write_atomic(target, data)
    out.record(target)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .errors import InputError

__all__ = ["RECORD", "OutputDir", "output_file", "written_here", "check_replaceable", "refuse_input", "write_atomic"]

RECORD = ".anyedge-outputs.json"


def written_here(folder: str | os.PathLike[str]) -> set[str]:
    """Names anyedge recorded as written in ``folder`` (empty when there is no readable record)."""
    try:
        doc = json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return set()
    names = doc.get("files") if isinstance(doc, dict) else None
    return {n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")} \
        if isinstance(names, list) else set()


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``path``, then rename it into place."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def _write_record(folder: Path, names: Iterable[str]) -> None:
    write_atomic(folder / RECORD, (json.dumps({"written_by": "anyedge", "files": sorted(set(names))},
                                              indent=1) + "\n").encode())


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_input(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
                 option: str = "--out") -> None:
    """Refuse an output path that is one of the inputs, or a folder holding one.

    Raises:
        InputError: ``out`` is (or contains) an input; nothing has been written.
    """
    o = Path(out)
    for raw in inputs:
        if raw is None or str(raw) == "":
            continue
        i = Path(raw)
        if _same(o, i) or (o.is_dir() and i.exists() and o.resolve() in i.resolve().parents):
            raise InputError(f"{option} {o} is the input {i}; anyedge never writes over an input, "
                             "choose another output")


def check_replaceable(folder: str | os.PathLike[str], option: str = "--out",
                      ignore: Iterable[str] = ()) -> None:
    """Refuse to replace ``folder`` whole unless anyedge wrote everything in it.

    A missing or empty folder passes; so does one whose every entry is listed in its record
    (or in ``ignore``).

    Raises:
        InputError: ``folder`` is a file, or holds a file anyedge did not write (named).
    """
    p = Path(folder)
    if not p.exists():
        return
    if not p.is_dir():
        raise InputError(f"{option} {p} is an existing file; expected a directory (created when missing)")
    ours = written_here(p) | {RECORD, *ignore}
    for entry in sorted(p.iterdir()):
        if entry.name not in ours:
            raise InputError(f"{option} {p}: {entry} was not written by anyedge; refusing to replace the "
                             "folder (move that file out, or choose another folder)")


class OutputDir:
    """A folder anyedge writes into, created when missing.

    Args:
        path: the folder.
        option: the command-line option that named it (for messages).
        inputs: paths this run reads; no output replaces one of them.

    Raises:
        InputError: ``path`` is an existing file, or the folder cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], *, option: str = "--out",
                 inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.path = Path(path)
        self.option = option
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{option} {self.path} is an existing file; expected a directory (created when missing)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{option} {self.path}: cannot create the folder ({e.strerror or e})") from None
        self._inputs = [Path(i) for i in inputs]
        self._ours = written_here(self.path)
        self._claimed: set[str] = set()

    def _free(self, name: str) -> bool:
        target = self.path / name
        if name in self._claimed or name == RECORD:
            return False
        if any(_same(target, i) for i in self._inputs):
            return False
        return not (target.exists() or target.is_symlink()) or (name in self._ours and target.is_file())

    def claim(self, name: str, *, rename: bool = True) -> Path:
        """A path in this folder for ``name`` that replaces no input and no file anyedge did not write.

        Args:
            name: the wanted file name (no folders).
            rename: when the name is taken, use ``stem-2.suffix``, ``stem-3.suffix``...; when
                False, refuse instead.

        Raises:
            InputError: the name is taken and ``rename`` is False.
        """
        if not self._free(name):
            target = self.path / name
            if not rename:
                why = ("is an input" if any(_same(target, i) for i in self._inputs)
                       else "exists and was not written by anyedge")
                raise InputError(f"{self.option} {target} {why}; refusing to replace it (choose another name)")
            dot = name.rfind(".")
            stem, rest = (name[:dot], name[dot:]) if dot > 0 else (name, "")
            n = 2
            while not self._free(f"{stem}-{n}{rest}"):
                n += 1
            name = f"{stem}-{n}{rest}"
        self._claimed.add(name)
        return self.path / name

    def record(self, *paths: str | os.PathLike[str]) -> None:
        """Add written files or folders (paths in this folder) to the folder's record of anyedge's outputs."""
        names = set()
        for p in paths:
            try:
                names.add(Path(p).relative_to(self.path).parts[0])
            except (ValueError, IndexError):
                names.add(Path(p).name)
        self._ours = written_here(self.path) | self._ours | names
        _write_record(self.path, self._ours)


def output_file(path: str | os.PathLike[str], *, option: str = "--out",
                inputs: Iterable[str | os.PathLike[str]] = ()) -> tuple[OutputDir, Path]:
    """The folder and path of one output file named on the command line (the folder is created).

    The name is used as given: when it is an input or a file anyedge did not write, it is refused
    rather than renamed. Record the file with ``folder.record(path)`` once it is written.

    Raises:
        InputError: ``path`` is a folder, an input, or a file anyedge did not write.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{option} {p} is a folder; expected a file name")
    folder = OutputDir(p.parent, option=option, inputs=inputs)
    return folder, folder.claim(p.name, rename=False)
