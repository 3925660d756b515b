"""A face gallery: people and their embeddings in one SQLite file, searched in memory.

Storage (stdlib ``sqlite3``): WAL journal, ``synchronous=FULL``, every change one
``BEGIN IMMEDIATE ... COMMIT`` transaction, so a process killed at any point leaves the
database with the whole change or none of it. ``meta`` records the schema version and the
identity of the embedder that filled the gallery (name, model sha256, dimension, crop
geometry); opening it with another embedder raises :class:`~anyedge.errors.EmbedderMismatchError`.

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
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import EmbedderMismatchError, GalleryError, InputError

__all__ = ["SCHEMA_VERSION", "Match", "Gallery", "default_gallery_path"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_APP_ID = 0x41454731  # "AEG1": marks the file as an anyedge gallery
_IDENTITY_KEYS = ("name", "sha256", "dim", "geometry")

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
        >>> with Gallery.open("faces.db", embedder.identity) as g:
        ...     g.add("alice", embedder.embed(crops))
        ...     g.search(query_vector, k=3)
    """

    def __init__(self, path: str | os.PathLike[str], identity: Any = None, *, create: bool = True) -> None:
        """Open (or create) a gallery.

        Args:
            path: the database file.
            identity: the :class:`~anyedge.tasks.face_embedder.EmbedderIdentity` of the
                embedder that will add and search; ``None`` opens for listing and removing only.
            create: create the file when missing (else :class:`GalleryError`).

        Raises:
            GalleryError: not an anyedge gallery, another schema version, or missing.
            EmbedderMismatchError: the gallery was built with another embedder.
        """
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise GalleryError(f"no gallery at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                         timeout=10.0)
            self._setup()
        except sqlite3.DatabaseError as e:
            raise GalleryError(f"{self.path} is not a readable gallery database: {e}") from None
        self._identity = self._check_identity(identity)
        self._dim = int(self._stored_identity()["dim"]) if self._stored_identity() else None
        self._buffer = np.zeros((0, self._dim or 0), np.float32)
        self._snap = self._load()
        self._version = self._data_version()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, identity: Any = None, *,
             create: bool = True) -> "Gallery":
        """Same as the constructor; ``path=None`` takes :func:`default_gallery_path`."""
        return cls(default_gallery_path() if path is None else path, identity, create=create)

    # -- setup ----------------------------------------------------------------------------
    def _setup(self) -> None:
        c = self._conn
        c.execute("PRAGMA busy_timeout = 10000")
        app = c.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and app != _APP_ID:
            raise GalleryError(f"{self.path} is an SQLite database but not an anyedge gallery")
        if c.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise GalleryError(f"{self.path}: SQLite refused WAL mode (is it on a network filesystem?)")
        c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = ON")
        if not tables:
            with self._transaction():
                c.execute(f"PRAGMA application_id = {_APP_ID}")
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    c.execute(stmt)
                c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        got = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if got is None or int(got[0]) != SCHEMA_VERSION:
            raise GalleryError(f"{self.path} has gallery schema version {got[0] if got else 'none'}; "
                               f"this anyedge reads version {SCHEMA_VERSION}")

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self) -> "Gallery._Tx":
        return Gallery._Tx(self._conn)

    def _stored_identity(self) -> dict[str, str] | None:
        rows = dict(self._conn.execute("SELECT key, value FROM meta WHERE key LIKE 'embedder_%'").fetchall())
        if not rows:
            return None
        return {k: rows.get(f"embedder_{k}", "") for k in _IDENTITY_KEYS}

    def _check_identity(self, identity: Any) -> dict[str, str] | None:
        if identity is None:
            return None
        want = {k: str(getattr(identity, k)) for k in _IDENTITY_KEYS}
        have = self._stored_identity()
        if have is None:
            with self._lock, self._transaction() as c:
                have = self._stored_identity()  # another process may have been first
                if have is None:
                    c.executemany("INSERT INTO meta VALUES (?, ?)",
                                  [(f"embedder_{k}", v) for k, v in want.items()])
                    return want
        diff = [f"{k}: gallery {have[k]!r}, embedder {want[k]!r}" for k in _IDENTITY_KEYS if have[k] != want[k]]
        if diff:
            raise EmbedderMismatchError(
                f"{self.path} was built with embedder {have['name']!r}; its embeddings cannot be compared "
                f"with {want['name']!r} ({'; '.join(diff)}). Use the same embedder, or another --db")
        return want

    # -- loading --------------------------------------------------------------------------
    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _load(self) -> _Snapshot:
        """Read every embedding into a fresh buffer, from one consistent read transaction."""
        if self._conn.in_transaction:
            return self._read_all()
        self._conn.execute("BEGIN")
        try:
            return self._read_all()
        finally:
            self._conn.execute("COMMIT")

    def _read_all(self) -> _Snapshot:
        c = self._conn
        people = c.execute("SELECT id, name FROM people ORDER BY id").fetchall()
        index = {pid: i for i, (pid, _) in enumerate(people)}
        rows = c.execute("SELECT person_id, vector FROM embeddings ORDER BY id").fetchall()
        d = self._dim or 0
        n = len(rows)
        self._buffer = np.empty((max(16, n + n // 2), d), np.float32)
        if n:
            blob = b"".join(r[1] for r in rows)
            if len(blob) != n * d * 4:
                raise GalleryError(f"{self.path}: stored embeddings are not {d}-d float32")
            self._buffer[:n] = np.frombuffer(blob, np.float32).reshape(n, d)
        labels = np.fromiter((index[r[0]] for r in rows), np.int32, n)
        counts = np.bincount(labels, minlength=len(people)).astype(np.int64)
        self._label_of = {pid: i for i, (pid, _) in enumerate(people)}
        return _Snapshot(self._buffer[:n], labels, tuple(p[1] for p in people), counts,
                         tuple(p[0] for p in people))

    def _fresh(self) -> _Snapshot:
        """The current snapshot, reloaded first if another connection committed since."""
        with self._lock:
            v = self._data_version()
            if v != self._version:
                self._snap = self._load()
                self._version = v
            return self._snap

    # -- queries --------------------------------------------------------------------------
    @property
    def identity(self) -> dict[str, str] | None:
        """The stored embedder identity (``name``, ``sha256``, ``dim``, ``geometry``), if any."""
        with self._lock:
            return self._stored_identity()

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
        return self.add_many({name: vectors}, sources={name: sources} if sources is not None else None)[name.strip()]

    def add_many(self, people: Mapping[str, np.ndarray], *,
                 sources: Mapping[str, Sequence[str | None] | None] | None = None) -> dict[str, int]:
        """Add embeddings for several people in one transaction (all or none).

        Returns:
            Each name's number of embeddings afterwards.
        """
        self._need_identity("add embeddings")
        batch = []
        for name, vectors in people.items():
            if not isinstance(name, str) or not name.strip():
                raise InputError(f"a person needs a non-empty name, got {name!r}")
            q = self._as_queries(vectors)
            src = (sources or {}).get(name)
            src = list(src) if src is not None else [None] * len(q)
            if len(src) != len(q):
                raise InputError(f"{name}: {len(q)} embeddings but {len(src)} sources")
            batch.append((name.strip(), q, src))
        now = time.time()
        with self._lock:
            with self._transaction() as c:
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
            self._version = self._data_version()
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
        with self._lock:
            with self._transaction() as c:
                row = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise GalleryError(f"{name!r} is not in the gallery {self.path}")
                n = c.execute("DELETE FROM embeddings WHERE person_id = ?", (row[0],)).rowcount
                c.execute("DELETE FROM people WHERE id = ?", (row[0],))
            self._snap = self._load()
            self._version = self._data_version()
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
