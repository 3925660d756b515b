"""A face gallery: people and their embeddings in one SQLite file, searched in memory.

Storage (stdlib ``sqlite3``): WAL journal, ``synchronous=FULL``, every change one
``BEGIN IMMEDIATE ... COMMIT`` transaction, so a process killed at any point leaves the
database with the whole change or none of it. ``meta`` records the schema version, the
identity of the embedder that filled the gallery (name, model sha256, dimension, crop
geometry) and of the detector whose keypoints aligned its faces (:class:`DetectorIdentity`:
registry or file name, model sha256). Both are written, in one transaction, by the first open
that names them (the one that creates the gallery, for ``anyedge gallery enroll``); opening it
with another embedder raises :class:`~anyedge.errors.EmbedderMismatchError`, with another
detector :class:`~anyedge.errors.DetectorMismatchError`. A gallery written before detectors
were recorded has no detector record: it opens with any detector, and the first writable open
that names one records it.

Search: all embeddings are loaded once into an L2-normalised float32 matrix; a query is one
matrix-vector product plus a partial sort. The matrix follows this object's own changes
directly, and other processes' commits through SQLite's ``PRAGMA data_version`` (checked
before each search, microseconds). Any number of threads may search while one writes: a
search works on an immutable snapshot; appends write rows past every published snapshot and
then publish a longer one.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DetectorMismatchError, EmbedderMismatchError, GalleryError, InputError

__all__ = ["SCHEMA_VERSION", "Match", "DetectorIdentity", "Gallery", "default_gallery_path", "person_name",
           "model_record_name"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_APP_ID = 0x41454731  # "AEG1": marks the file as an anyedge gallery
_IDENTITY_KEYS = ("name", "sha256", "dim", "geometry")
_BUSY_MS = 10000  # how long a connection waits for another process's lock
_MAX_DIM = 1 << 16  # the longest embedding a gallery may declare
_MAX_TEXT = 4096  # the longest embedder name or geometry a gallery may record
_SHA = re.compile(r"[0-9a-f]{64}")
_DETECTOR_KEYS = ("name", "sha256")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")  # no path separators, quotes or spaces

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL, source TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_person ON embeddings(person_id);
"""


def default_gallery_path() -> Path:
    """``$XDG_DATA_HOME/anyedge/gallery.db`` (``~/.local/share/anyedge/gallery.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "anyedge" / "gallery.db"


def _shown(value: Any) -> str:
    """``repr`` of a value read from a gallery, cut short for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _has_control(text: str) -> bool:
    """Whether ``text`` holds control characters or line/paragraph separators."""
    return any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text)


def person_name(name: Any) -> str:
    """A person's name as the gallery stores it: stripped, non-empty, without control characters.

    Raises:
        InputError: not a string, empty after stripping, or holding a control character
            (newline, tab, ESC...).
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"a person needs a non-empty name, got {_shown(name)}")
    clean = name.strip()
    if _has_control(clean):
        raise InputError(f"a person's name may not hold control characters (newline, tab, ESC...), "
                         f"got {_shown(clean)}")
    return clean


def model_record_name(name: str) -> str:
    """A model's name as a gallery records it: a registry name unchanged; a file name with every
    character other than letters, digits and ``. _ + -`` replaced by ``_`` (and cut to 128).

    Raises:
        InputError: nothing usable is left (an empty name).
    """
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)).lstrip("._+-")[:128]
    if not clean:
        raise InputError(f"a model needs a name to be recorded in a gallery, got {_shown(name)}")
    return clean


@dataclass(frozen=True)
class DetectorIdentity:
    """What a gallery records about the detector whose keypoints aligned its faces.

    Attributes:
        name: the registry name (``"yunet"``) when the model came from the registry, else the
            model file's name (:func:`model_record_name`); letters, digits and ``. _ + -`` only.
        sha256: the model file's sha256 (64 lowercase hex digits).
    """

    name: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


@dataclass(frozen=True)
class Match:
    """One search hit: a person and the best cosine of any of their embeddings to the query."""

    name: str
    score: float


@dataclass(frozen=True)
class _Snapshot:
    matrix: np.ndarray  # (n, d) float32 unit rows, a view of the buffer
    labels: np.ndarray  # (n,) int32 index into names
    names: tuple[str, ...]
    counts: np.ndarray  # (len(names),) embeddings per person
    person_ids: tuple[int, ...]

    @property
    def max_count(self) -> int:
        return int(self.counts.max()) if len(self.counts) else 0


class Gallery:
    """People and embeddings in SQLite, with top-k cosine search over an in-memory matrix.

    Example:
        >>> with Gallery.open("faces.db", embedder.identity, detector=pipeline.detector_identity) as g:
        ...     g.add("alice", embedder.embed(crops))
        ...     g.search(query_vector, k=3)
    """

    def __init__(self, path: str | os.PathLike[str], identity: Any = None, *, detector: DetectorIdentity | None = None,
                 create: bool = True, readonly: bool = False) -> None:
        """Open (or create) a gallery.

        Args:
            path: the database file.
            identity: the :class:`~anyedge.tasks.face_embedder.EmbedderIdentity` of the
                embedder that will add and search; ``None`` opens for listing and removing only.
            detector: the :class:`DetectorIdentity` of the detector that will find the faces
                (:attr:`FacePipeline.detector_identity
                <anyedge.recognition.pipeline.FacePipeline.detector_identity>`); recorded when
                the gallery has no detector record yet (unless ``readonly``), else compared with
                the record. ``None``: not recorded, not checked.
            create: create the file when missing (else :class:`GalleryError`).
            readonly: open for reading only (SQLite ``mode=ro``): searching and listing work on
                read-only media; :meth:`add` and :meth:`remove` raise :class:`GalleryError`.

        Raises:
            GalleryError: not an anyedge gallery, another schema version, malformed, or missing.
            EmbedderMismatchError: the gallery was built with another embedder.
            DetectorMismatchError: the gallery was enrolled with another detector.
            InputError: ``detector`` is not a :class:`DetectorIdentity` with a recordable name.
        """
        self.path = Path(path)
        self.readonly = readonly
        if not self.path.exists() and (readonly or not create):
            raise GalleryError(f"no gallery at {self.path}")
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            with self._sqlite_errors("open it"):
                if not readonly:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = self._connect()
                self._setup()
                self._identity = self._check_records(identity, detector)
                stored = self._stored_identity()
                self._dim = int(stored["dim"]) if stored else int(self._identity["dim"]) if self._identity else None
                self._buffer = np.zeros((0, self._dim or 0), np.float32)
                self._snap, self._version = self._load()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, identity: Any = None, *,
             detector: DetectorIdentity | None = None, create: bool = True, readonly: bool = False) -> "Gallery":
        """Same as the constructor; ``path=None`` takes :func:`default_gallery_path`."""
        return cls(default_gallery_path() if path is None else path, identity, detector=detector, create=create,
                   readonly=readonly)

    # -- setup ----------------------------------------------------------------------------
    @contextmanager
    def _sqlite_errors(self, what: str) -> Iterator[None]:
        """Turn SQLite and file-system failures into one clear :class:`GalleryError`."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            if "readonly" in str(e):  # "attempt to write a readonly database"
                raise GalleryError(f"cannot {what}: {self.path} is read-only here (no write permission, "
                                   "or read-only media)") from None
            raise GalleryError(f"cannot {what}: {self.path} is not a usable gallery database: {e}") from None
        except OSError as e:
            raise GalleryError(f"cannot {what}: {self.path}: {e.strerror or e}") from None

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            return sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=_BUSY_MS / 1000)
        uri = self.path.absolute().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False,
                               timeout=_BUSY_MS / 1000)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if os.access(self.path.parent, os.W_OK):
                raise
        # A WAL database in a folder we cannot write: SQLite cannot make its shared-memory file
        # there; nobody else can write it either, so read it as an unchanging file.
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)

    def _setup(self) -> None:
        """Check (and, when new, create) the schema, each in one transaction, then set WAL mode.

        The check reads in one transaction, so it never sees a gallery half created; only a new
        file takes the write lock, and then the check is repeated under it: one process creates,
        the others wait (busy timeout) and find it done.
        """
        c = self._conn
        assert c is not None
        c.execute(f"PRAGMA busy_timeout = {int(_BUSY_MS)}")
        c.execute("BEGIN")
        try:
            tables = self._tables()
            if not tables and self.readonly:
                raise GalleryError(f"{self.path} is empty: no gallery has been written there yet")
            if not tables:
                c.execute("COMMIT")
                c.execute("BEGIN IMMEDIATE")
                if not self._tables():
                    c.execute(f"PRAGMA application_id = {int(_APP_ID)}")
                    for stmt in filter(str.strip, _SCHEMA.split(";")):
                        c.execute(stmt)
                    c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            got = c.execute("SELECT value FROM meta WHERE key = ?", ("schema_version",)).fetchone()
            if got is None or got[0] != str(SCHEMA_VERSION):
                raise GalleryError(f"{self.path} has gallery schema version {_shown(got[0]) if got else 'none'}; "
                                   f"this anyedge reads version {SCHEMA_VERSION}")
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        if not self.readonly:
            if self._wal_mode().lower() != "wal":
                raise GalleryError(f"{self.path}: SQLite refused WAL mode (is it on a network filesystem?)")
            c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = ON")

    def _tables(self) -> set[str]:
        """The file's tables (inside the caller's transaction); refuses another program's database."""
        c = self._conn
        assert c is not None
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and c.execute("PRAGMA application_id").fetchone()[0] != _APP_ID:
            raise GalleryError(f"{self.path} is an SQLite database but not an anyedge gallery")
        return tables

    def _wal_mode(self) -> str:
        """Switch a new gallery to WAL. SQLite answers "locked" at once, without waiting, while
        another connection reads; so wait here, as long as the busy timeout."""
        c = self._conn
        assert c is not None
        mode = str(c.execute("PRAGMA journal_mode").fetchone()[0])
        deadline = time.monotonic() + _BUSY_MS / 1000
        while mode.lower() != "wal":
            try:
                mode = str(c.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        return mode

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self) -> "Gallery._Tx":
        if self.readonly:
            raise GalleryError(f"{self.path} was opened read-only; open it without readonly=True to change it")
        return Gallery._Tx(self._conn)

    def _stored_identity(self) -> dict[str, str] | None:
        """The embedder identity recorded in ``meta``, checked (the file may come from anyone)."""
        keys = [f"embedder_{k}" for k in _IDENTITY_KEYS]
        rows = dict(self._conn.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})",
                                       keys).fetchall())
        if not rows:
            return None
        missing = [k for k in keys if k not in rows]
        if missing:
            raise GalleryError(f"{self.path}: its meta table records an incomplete embedder identity "
                               f"(no {', '.join(missing)})")
        out = {k: rows[f"embedder_{k}"] for k in _IDENTITY_KEYS}
        for k, v in out.items():
            if not isinstance(v, str) or not v or len(v) > _MAX_TEXT or _has_control(v):
                raise GalleryError(f"{self.path}: meta embedder_{k} must be non-empty text without control "
                                   f"characters, got {_shown(v)}")
        if not out["dim"].isascii() or not out["dim"].isdigit() or not 1 <= int(out["dim"]) <= _MAX_DIM:
            raise GalleryError(f"{self.path}: meta embedder_dim must be an embedding length in 1..{_MAX_DIM}, "
                               f"got {_shown(out['dim'])}")
        if not _SHA.fullmatch(out["sha256"]):
            raise GalleryError(f"{self.path}: meta embedder_sha256 must be a sha256 (64 lowercase hex digits), "
                               f"got {_shown(out['sha256'])}")
        return out

    def _stored_detector(self) -> DetectorIdentity | None:
        """The detector recorded in ``meta``, checked: its name never reaches a path unchecked."""
        keys = [f"detector_{k}" for k in _DETECTOR_KEYS]
        rows = dict(self._conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", keys).fetchall())
        if not rows:
            return None
        missing = [k for k in keys if k not in rows]
        if missing:
            raise GalleryError(f"{self.path}: its meta table records an incomplete detector identity "
                               f"(no {', '.join(missing)})")
        name, sha = rows["detector_name"], rows["detector_sha256"]
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise GalleryError(f"{self.path}: meta detector_name must be a model name (1-128 letters, digits, "
                               f"'.', '_', '+', '-'; no path separators or quotes), got {_shown(name)}")
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise GalleryError(f"{self.path}: meta detector_sha256 must be a sha256 (64 lowercase hex digits), "
                               f"got {_shown(sha)}")
        return DetectorIdentity(name, sha)

    @staticmethod
    def _wanted_detector(detector: Any) -> DetectorIdentity | None:
        if detector is None:
            return None
        if not isinstance(detector, DetectorIdentity):
            raise InputError(f"detector must be a DetectorIdentity, got {type(detector).__name__}")
        if not isinstance(detector.name, str) or not _MODEL_NAME.fullmatch(detector.name):
            raise InputError(f"a detector's recorded name must be 1-128 letters, digits, '.', '_', '+', '-' "
                             f"(see model_record_name), got {_shown(detector.name)}")
        if not isinstance(detector.sha256, str) or not _SHA.fullmatch(detector.sha256):
            raise InputError(f"a detector's sha256 must be 64 lowercase hex digits, got {_shown(detector.sha256)}")
        return detector

    def _check_records(self, identity: Any, detector: Any) -> dict[str, str] | None:
        """Record what the gallery lacks (one transaction), then compare both records with the caller's."""
        want = {k: str(getattr(identity, k)) for k in _IDENTITY_KEYS} if identity is not None else None
        want_det = self._wanted_detector(detector)
        have, have_det = self._stored_identity(), self._stored_detector()
        if not self.readonly and ((have is None and want) or (have_det is None and want_det)):
            with self._lock, self._transaction() as c:
                have, have_det = self._stored_identity(), self._stored_detector()  # another process may have been first
                if have is None and want:
                    c.executemany("INSERT INTO meta VALUES (?, ?)", [(f"embedder_{k}", v) for k, v in want.items()])
                    have = want
                if have_det is None and want_det:
                    c.executemany("INSERT INTO meta VALUES (?, ?)",
                                  [(f"detector_{k}", v) for k, v in want_det.to_dict().items()])
                    have_det = want_det
        if want is not None and have is not None:
            diff = [f"{k}: gallery {have[k]!r}, embedder {want[k]!r}" for k in _IDENTITY_KEYS if have[k] != want[k]]
            if diff:
                raise EmbedderMismatchError(
                    f"{self.path} was built with embedder {have['name']!r}; its embeddings cannot be compared "
                    f"with {want['name']!r} ({'; '.join(diff)}). Use the same embedder, or another --db")
        if want_det is not None and have_det is not None and have_det != want_det:
            raise DetectorMismatchError(
                f"{self.path} was enrolled with detector {have_det.name!r} (sha256 {have_det.sha256[:12]}...), "
                f"not {want_det.name!r} (sha256 {want_det.sha256[:12]}...): leave the detector option out to "
                "use the recorded one, or use another gallery")
        return want

    # -- loading --------------------------------------------------------------------------
    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _load(self) -> tuple[_Snapshot, int]:
        """Every embedding in a fresh buffer and the ``data_version`` it matches, from one read transaction."""
        if self._conn.in_transaction:
            return self._read_all(), self._data_version()
        self._conn.execute("BEGIN")
        try:
            return self._read_all(), self._data_version()
        finally:
            self._conn.execute("COMMIT")

    def _read_all(self) -> _Snapshot:
        c = self._conn
        people = c.execute("SELECT id, name FROM people ORDER BY id").fetchall()
        for pid, name in people:
            if not isinstance(pid, int) or not isinstance(name, str):
                raise GalleryError(f"{self.path}: person {_shown(pid)} has a name that is not text: {_shown(name)}")
        index = {pid: i for i, (pid, _) in enumerate(people)}
        rows = c.execute("SELECT person_id, vector FROM embeddings ORDER BY id").fetchall()
        d = self._dim or 0
        n = len(rows)
        if n and d == 0:
            raise GalleryError(f"{self.path} holds embeddings but records no embedder identity")
        for pid, vector in rows:
            if pid not in index:
                raise GalleryError(f"{self.path}: an embedding belongs to person {_shown(pid)}, who is not in it")
            if not isinstance(vector, bytes) or len(vector) != d * 4:
                raise GalleryError(f"{self.path}: stored embeddings are not {d}-d float32")
        self._buffer = np.empty((max(16, n + n // 2), d), np.float32)
        if n:
            self._buffer[:n] = np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(n, d)
            if not np.isfinite(self._buffer[:n]).all():
                raise GalleryError(f"{self.path}: stored embeddings hold NaN or infinity")
        labels = np.fromiter((index[r[0]] for r in rows), np.int32, n)
        counts = np.bincount(labels, minlength=len(people)).astype(np.int64)
        self._label_of = {pid: i for i, (pid, _) in enumerate(people)}
        return _Snapshot(self._buffer[:n], labels, tuple(p[1] for p in people), counts,
                         tuple(p[0] for p in people))

    def _fresh(self) -> _Snapshot:
        """The current snapshot, reloaded first if another connection committed since."""
        with self._lock, self._sqlite_errors("read it"):
            if self._data_version() != self._version:
                self._snap, self._version = self._load()
            return self._snap

    # -- queries --------------------------------------------------------------------------
    @property
    def identity(self) -> dict[str, str] | None:
        """The stored embedder identity (``name``, ``sha256``, ``dim``, ``geometry``), if any."""
        with self._lock, self._sqlite_errors("read it"):
            return self._stored_identity()

    @property
    def detector(self) -> DetectorIdentity | None:
        """The recorded detector, or ``None`` (a new gallery, or one written before detectors were recorded)."""
        with self._lock, self._sqlite_errors("read it"):
            return self._stored_detector()

    def __len__(self) -> int:
        return len(self._fresh().matrix)

    def people(self) -> list[tuple[str, int]]:
        """``(name, number of embeddings)`` for every person, in enrolment order."""
        s = self._fresh()
        return [(n, int(c)) for n, c in zip(s.names, s.counts)]

    def _need_identity(self, what: str) -> None:
        if self._identity is None:
            raise GalleryError(f"cannot {what}: open the gallery with the embedder's identity")

    def _as_queries(self, vectors: np.ndarray) -> np.ndarray:
        q = np.asarray(vectors, np.float32)
        q = q[None] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise InputError(f"embeddings must be ({self._dim},) or (n, {self._dim}), got {np.shape(vectors)}")
        if not np.isfinite(q).all():
            raise InputError("embeddings contain NaN or infinity")
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InputError("an embedding is all zeros")
        return q / norms

    def search(self, vectors: np.ndarray, k: int = 1) -> list[list[Match]]:
        """The ``k`` best people for each query, by their best-matching embedding.

        Args:
            vectors: ``(d,)`` or ``(m, d)`` embeddings (normalised here).
            k: people per query.

        Returns:
            For each query, up to ``k`` matches, best first (empty for an empty gallery).
        """
        self._need_identity("search")
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        q = self._as_queries(vectors)
        s = self._fresh()
        n = len(s.matrix)
        if n == 0:
            return [[] for _ in q]
        out = []
        m = min(n, k * s.max_count)  # enough rows to hold k distinct people
        for row in q:
            scores = s.matrix @ row
            if k == 1:  # the best row's person is the best person
                i = int(np.argmax(scores))
                out.append([Match(s.names[int(s.labels[i])], float(scores[i]))])
                continue
            idx = np.argpartition(-scores, m - 1)[:m] if m < n else np.arange(n)
            idx = idx[np.argsort(-scores[idx], kind="stable")]
            hits: list[Match] = []
            seen: set[int] = set()
            for i in idx:
                lab = int(s.labels[i])
                if lab not in seen:
                    seen.add(lab)
                    hits.append(Match(s.names[lab], float(scores[i])))
                    if len(hits) == k:
                        break
            out.append(hits)
        return out

    def identify(self, vector: np.ndarray, threshold: float) -> tuple[str | None, float]:
        """``(name, score)`` of the best match, or ``(None, score)`` below ``threshold`` (or empty)."""
        hits = self.search(vector, 1)[0]
        if not hits:
            return None, float("nan")
        best = hits[0]
        return (best.name if best.score >= threshold else None), best.score

    # -- changes --------------------------------------------------------------------------
    def add(self, name: str, vectors: np.ndarray, *, sources: Sequence[str | None] | None = None) -> int:
        """Add embeddings for ``name`` (created if new) in one transaction.

        Returns:
            The number of embeddings the person now has.

        Raises:
            InputError: empty name, or embeddings of the wrong shape.
            GalleryError: opened without an embedder identity.
        """
        return self.add_many({name: vectors}, sources={name: sources} if sources is not None else None)[
            person_name(name)]

    def add_many(self, people: Mapping[str, np.ndarray], *,
                 sources: Mapping[str, Sequence[str | None] | None] | None = None) -> dict[str, int]:
        """Add embeddings for several people in one transaction (all or none).

        Returns:
            Each name's number of embeddings afterwards.
        """
        self._need_identity("add embeddings")
        batch = []
        for name, vectors in people.items():
            clean = person_name(name)
            q = self._as_queries(vectors)
            src = (sources or {}).get(name)
            src = list(src) if src is not None else [None] * len(q)
            if len(src) != len(q):
                raise InputError(f"{clean}: {len(q)} embeddings but {len(src)} sources")
            batch.append((clean, q, src))
        now = time.time()
        with self._lock:
            with self._sqlite_errors("add to it"), self._transaction() as c:
                self._fresh()  # the write lock is held: catch up with other writers first
                added = []
                for name, q, src in batch:
                    row = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
                    pid = row[0] if row else c.execute("INSERT INTO people (name, created) VALUES (?, ?)",
                                                       (name, now)).lastrowid
                    for v, s in zip(q, src):
                        c.execute("INSERT INTO embeddings (person_id, vector, source, created) VALUES (?, ?, ?, ?)",
                                  (pid, v.astype("<f4").tobytes(), s, now))
                    added.append((pid, name, q))
            # self._version stays the one _fresh() read inside the transaction: reading it after the
            # commit would count another process's later commit as seen
            self._append(added)
            s = self._snap
            return {name: int(s.counts[self._label_of[pid]]) for pid, name, _ in added}

    def _append(self, added: list[tuple[int, str, np.ndarray]]) -> None:
        """Publish a snapshot with ``added`` rows (writer only, lock held)."""
        s = self._snap
        n, a = len(s.matrix), sum(len(q) for *_, q in added)
        if n + a > len(self._buffer):  # grow: a new buffer; old snapshots keep the old one
            buf = np.empty((max(2 * len(self._buffer), n + a), self._dim or 0), np.float32)
            buf[:n] = s.matrix
            self._buffer = buf
        names, ids = list(s.names), list(s.person_ids)
        counts = np.zeros(len(names) + len(added), np.int64)
        counts[:len(s.counts)] = s.counts
        labels = np.empty(n + a, np.int32)
        labels[:n] = s.labels
        row = n
        for pid, name, q in added:
            lab = self._label_of.get(pid)
            if lab is None:
                lab = self._label_of[pid] = len(names)
                names.append(name)
                ids.append(pid)
            self._buffer[row:row + len(q)] = q  # rows past every published snapshot
            labels[row:row + len(q)] = lab
            counts[lab] += len(q)
            row += len(q)
        self._snap = _Snapshot(self._buffer[:n + a], labels, tuple(names), counts[:len(names)], tuple(ids))

    def remove(self, name: str) -> int:
        """Delete a person and all their embeddings (one transaction).

        Returns:
            The number of embeddings removed.

        Raises:
            GalleryError: no such person.
        """
        name = person_name(name)
        with self._lock:
            with self._sqlite_errors("remove from it"), self._transaction() as c:
                row = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise GalleryError(f"{name!r} is not in the gallery {self.path}")
                n = c.execute("DELETE FROM embeddings WHERE person_id = ?", (row[0],)).rowcount
                c.execute("DELETE FROM people WHERE id = ?", (row[0],))
                snap, version = self._load()  # inside the transaction: no other commit can slip between
            self._snap, self._version = snap, version
            return int(n)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._snap
        return f"Gallery({str(self.path)!r}, people={len(s.names)}, embeddings={len(s.matrix)})"
