"""Sensor data for activity recognition: the UEA/UCR ``.ts`` format and sliding windows.

The ``.ts`` format (sktime) is text: header lines start with ``@`` (``@dimensions 6``,
``@classLabel true A B C``, ``@data``), ``#`` lines are comments, then one case per line:
each dimension's comma-separated values, dimensions separated by ``:``, the class label
last. Only equal-length, timestamp-free files are read here, which is what wearable
windows are.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..paths import require_data_dir

__all__ = ["TsDataset", "load_ts", "sliding_windows", "data_root", "har_dataset_path", "har_split_file",
           "HAR_DATA_WHEELS", "check_dataset_name"]

# UEA data sets that a PyPI wheel ships byte for byte, fetched like the sample photo when
# ``$ANYEDGE_DATA/har/<name>/`` does not hold them: (name, split) -> (pinned requirement,
# member in the wheel, cached file name, sha256). The files are aeon's copies of the UEA archive.
HAR_DATA_WHEELS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("BasicMotions", "TEST"): ("aeon==1.6.0", "aeon/datasets/data/BasicMotions/BasicMotions_TEST.ts",
                               "har-BasicMotions_TEST.ts",
                               "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc"),
    ("BasicMotions", "TRAIN"): ("aeon==1.6.0", "aeon/datasets/data/BasicMotions/BasicMotions_TRAIN.ts",
                                "har-BasicMotions_TRAIN.ts",
                                "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6"),
}

_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_TS_BYTES = 512 << 20
_MAX_TS_LINE = 4 << 20  # characters in one case: ~400k values, far beyond any sensor window


@dataclass(frozen=True)
class TsDataset:
    """Cases read from one ``.ts`` file.

    Attributes:
        x: ``(n, length, channels)`` float32 sensor values, time along axis 1 (the layout
            windows have everywhere in anyedge).
        y: ``(n,)`` int64 class indices into :attr:`labels`; ``-1`` where a case has no label.
        labels: class names in the order the header's ``@classLabel`` line gives them.
        name: the ``@problemName`` (or the file stem).
        meta: other header fields, lower-cased keys, raw string values.
    """

    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    name: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.ndim != 3 or self.x.dtype != np.float32:
            raise InputError(f"TsDataset.x must be (n, length, channels) float32, got {self.x.shape} {self.x.dtype}")
        if self.y.shape != (self.x.shape[0],):
            raise InputError(f"TsDataset.y must have shape ({self.x.shape[0]},), got {self.y.shape}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def length(self) -> int:
        """Samples per case."""
        return int(self.x.shape[1])

    @property
    def channels(self) -> int:
        """Sensor channels per sample."""
        return int(self.x.shape[2])


def _header_bool(meta: dict[str, str], key: str, path: Path) -> bool | None:
    raw = meta.get(key)
    if raw is None:
        return None
    v = raw.strip().lower()
    if v not in {"true", "false"}:
        raise InputError(f"{path}: @{key} must be true or false, got {raw!r}")
    return v == "true"


def load_ts(path: str | os.PathLike[str]) -> TsDataset:
    """Read an equal-length multivariate ``.ts`` file.

    Args:
        path: the ``.ts`` file.

    Returns:
        The cases as a :class:`TsDataset` (``x`` is ``(n, length, dims)`` float32).

    Raises:
        InputError: the file is missing, not UTF-8 text, lacks ``@data``, uses timestamps or
            unequal lengths, has a case with the wrong number of dimensions or values,
            a value that is not a finite number, or a label the header does not list.
    """
    from ..inputs import bounded_lines, open_regular

    p = Path(path)
    with open_regular(p, ".ts file", encoding="utf-8") as f:
        if os.fstat(f.fileno()).st_size > _MAX_TS_BYTES:
            raise InputError(f"{p} is larger than {_MAX_TS_BYTES} bytes; refusing to read it as a .ts file")
        try:
            text_lines = [line.rstrip("\n") for line in bounded_lines(f, _MAX_TS_LINE, "case of a .ts file")]
        except UnicodeDecodeError as e:
            raise InputError(f"{p} is not a UTF-8 text .ts file: {e}") from e
        except InputError as e:  # a line too long
            raise InputError(f"{p}: {e}") from None

    meta: dict[str, str] = {}
    labels: tuple[str, ...] = ()
    has_labels = False
    data_lines: list[tuple[int, str]] = []
    in_data = False
    for lineno, raw in enumerate(text_lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise InputError(f"{p}:{lineno}: expected a header line starting with '@' before @data, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                continue
            if key == "classlabel":
                parts = value.split()
                if not parts or parts[0].lower() not in {"true", "false"}:
                    raise InputError(f"{p}:{lineno}: @classLabel must start with true or false, got {value!r}")
                has_labels = parts[0].lower() == "true"
                labels = tuple(parts[1:])
                if has_labels and not labels:
                    raise InputError(f"{p}:{lineno}: @classLabel true lists no class names")
            meta[key] = value.strip()
        else:
            data_lines.append((lineno, line))
    if not in_data:
        raise InputError(f"{p} has no @data line; it is not a .ts file")
    if _header_bool(meta, "timestamps", p):
        raise InputError(f"{p} uses timestamps; only timestamp-free .ts files are supported")
    if _header_bool(meta, "equallength", p) is False:
        raise InputError(f"{p} has unequal-length series; sensor windows must all have one length")
    if not data_lines:
        raise InputError(f"{p} has a @data section with no cases")

    dims_hdr = meta.get("dimensions")
    n_dims: int | None = None
    if dims_hdr is not None:
        try:
            n_dims = int(dims_hdr)
        except ValueError:
            raise InputError(f"{p}: @dimensions must be an integer, got {dims_hdr!r}") from None
    if n_dims is None:
        n_dims = data_lines[0][1].count(":") + (0 if has_labels else 1)
    if n_dims < 1:
        raise InputError(f"{p}: @dimensions must be at least 1, got {n_dims}")

    label_index = {name: i for i, name in enumerate(labels)}
    length: int | None = None
    cases: list[np.ndarray] = []
    ys: list[int] = []
    for lineno, line in data_lines:
        parts = line.split(":")
        expected = n_dims + (1 if has_labels else 0)
        if len(parts) != expected:
            raise InputError(
                f"{p}:{lineno}: expected {n_dims} dimensions{' and a label' if has_labels else ''} "
                f"separated by ':', got {len(parts)} fields"
            )
        if has_labels:
            lab = parts[-1].strip()
            if lab not in label_index:
                raise InputError(f"{p}:{lineno}: label {lab!r} is not one of the header's {list(labels)}")
            ys.append(label_index[lab])
            parts = parts[:-1]
        else:
            ys.append(-1)
        rows = []
        for d, chunk in enumerate(parts):
            try:
                vals = [float(v) for v in chunk.split(",")]
            except ValueError:
                raise InputError(f"{p}:{lineno}: dimension {d} holds a value that is not a number "
                                 "(missing values '?' are not supported)") from None
            if not all(math.isfinite(v) for v in vals):
                raise InputError(f"{p}:{lineno}: dimension {d} holds a non-finite value")
            rows.append(vals)
        n = len(rows[0])
        if any(len(r) != n for r in rows) or (length is not None and n != length):
            want = length if length is not None else n
            got = sorted({len(r) for r in rows})
            raise InputError(f"{p}:{lineno}: expected {want} values per dimension, got {got}")
        length = n
        cases.append(np.asarray(rows, dtype=np.float64).T)
    x = np.stack(cases).astype(np.float32)
    sl = meta.get("serieslength")
    if sl is not None and sl.strip().isdigit() and int(sl) != x.shape[1]:
        raise InputError(f"{p}: @seriesLength says {sl}, the cases hold {x.shape[1]} values")
    return TsDataset(x=x, y=np.asarray(ys, dtype=np.int64), labels=labels,
                     name=meta.get("problemname", p.stem), meta=meta)


def sliding_windows(
    samples: np.ndarray | Iterable[Iterable[float]],
    length: int,
    hop: int | None = None,
    *,
    channels: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a stream of samples into overlapping windows.

    Args:
        samples: ``(n, channels)`` array, or any iterable of per-sample rows (a generator
            over a live sensor works: windows are yielded as soon as they are full).
        length: samples per window.
        hop: samples between window starts; defaults to ``length`` (no overlap).
        channels: expected channels per sample; defaults to the first sample's.

    Yields:
        ``(start, window)``: the index of the window's first sample in the stream and a
        ``(length, channels)`` float32 copy of the window.

    Raises:
        InputError: ``length``/``hop`` not positive integers, a sample with the wrong number
            of channels, or a sample that is not finite numbers.
    """
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise InputError(f"window length must be a positive integer, got {length!r}")
    hop = length if hop is None else hop
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or hop < 1:
        raise InputError(f"window hop must be a positive integer, got {hop!r}")
    length, hop = int(length), int(hop)
    if isinstance(samples, np.ndarray) and samples.ndim != 2:
        raise InputError(f"expected samples as a (n, channels) array, got shape {samples.shape}")
    ring: np.ndarray | None = None  # the last `length` samples, written round-robin
    for i, row in enumerate(samples):
        try:
            r = np.asarray(row, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"sample {i} is not a row of numbers: {row!r}") from None
        if r.ndim != 1:
            raise InputError(f"sample {i} must be a 1-D row of channel values, got shape {r.shape}")
        if channels is None:
            channels = int(r.shape[0])
        if r.shape[0] != channels:
            raise InputError(f"sample {i} has {r.shape[0]} channels, expected {channels}")
        if not np.isfinite(r).all():
            raise InputError(f"sample {i} holds NaN or infinite values: {r.tolist()}")
        if ring is None:
            ring = np.empty((length, channels), dtype=np.float32)
        ring[i % length] = r
        start = i - length + 1
        if start >= 0 and start % hop == 0:
            head = (i + 1) % length  # oldest sample's slot
            yield start, np.concatenate([ring[head:], ring[:head]])


def data_root() -> Path:
    """The data folder holding ``har/<name>/``: ``ANYEDGE_DATA`` (see :mod:`anyedge.paths`).

    Raises:
        InputError: ``ANYEDGE_DATA`` is not set.
    """
    return require_data_dir("har/<name>/")


def check_dataset_name(name: str) -> str:
    """``name`` when it can name a data set's folder and files (letters, digits, ``_ - .``, no
    path parts): the name may come from a bundle's manifest.

    Raises:
        InputError: anything else.
    """
    if not isinstance(name, str) or not _DATASET_NAME.fullmatch(name):
        raise InputError(f"a data set name is letters, digits, '_', '-' and '.' (not starting with '.'), "
                         f"got {str(name)[:60]!r}")
    return name


def har_dataset_path(name: str, split: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Path of ``har/<name>/<name>_<SPLIT>.ts`` under :func:`data_root` (or ``root``).

    Raises:
        InputError: ``split`` is not train or test.
    """
    s = split.upper()
    if s not in {"TRAIN", "TEST"}:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    check_dataset_name(name)
    base = Path(root) if root is not None else data_root()
    return base / "har" / name / f"{name}_{s}.ts"


def har_split_file(name: str, split: str) -> Path:
    """The ``.ts`` file of a UEA data set's split: ``$ANYEDGE_DATA/har/<name>/<name>_<SPLIT>.ts``
    when it is there, else the copy a pinned PyPI wheel ships (:data:`HAR_DATA_WHEELS`), fetched
    once into anyedge's cache and sha256-checked.

    Raises:
        InputError: ``split`` is not train or test; or the file is in neither place and no wheel
            ships it (the message names the folder ``ANYEDGE_DATA`` must hold).
        ModelNotFoundError: a wheel ships it but it is not cached and cannot be fetched
            (offline, pip failed); the message says so.
    """
    from ..paths import data_dir

    s = split.upper()
    if s not in {"TRAIN", "TEST"}:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    check_dataset_name(name)
    root = data_dir()
    if root is not None and (found := har_dataset_path(name, s, root)).is_file():
        return found
    pinned = HAR_DATA_WHEELS.get((name, s))
    want = f"har/{name}/{name}_{s}.ts"
    if pinned is None:
        where = f"{root} has no {want}" if root is not None else "ANYEDGE_DATA is not set"
        raise InputError(f"no {name} {s.lower()} data here ({where}) and no package ships it: "
                         f"set ANYEDGE_DATA to a folder holding {want}")
    from ..errors import ModelNotFoundError
    from ..registry import fetch_wheel_file

    requirement, member, filename, sha = pinned
    try:
        return fetch_wheel_file(requirement, member, filename, sha, f"the {name} {s.lower()} data")
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"{e}; or set ANYEDGE_DATA to a folder holding {want}") from None
