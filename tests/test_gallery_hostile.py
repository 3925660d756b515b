"""Galleries written by someone else, or on media we may not write: crafted ``meta`` rows and
rows are one clear GalleryError, names are clean text, failed opens close their connection,
read commands open read-only, and writes refused by the medium are one line (rc 2)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from anyedge.errors import EmbedderMismatchError, GalleryError, InputError
from anyedge.recognition.gallery import Gallery
from anyedge.tasks.face_embedder import EmbedderIdentity

ID = EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112")
NOBODY = 65534


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _gallery(path: Path, *people: str) -> Path:
    with Gallery(path, ID) as g:
        for i, name in enumerate(people):
            g.add(name, _vecs(2, i))
    return path


def _craft(db: Path, *sql: tuple[str, tuple[Any, ...]]) -> None:
    """Edit the file as another program would (plain sqlite3, no anyedge checks)."""
    with sqlite3.connect(db) as c:
        for stmt, params in sql:
            c.execute(stmt, params)
    c.close()


def _cli(*args: str, user: int | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "anyedge.cli", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


# -- crafted meta and rows ---------------------------------------------------------------------
_META = "UPDATE meta SET value = ? WHERE key = ?"


@pytest.mark.parametrize("key, value, message", [
    ("schema_version", "x", "schema version 'x'"),
    ("schema_version", "1.0", "schema version '1.0'"),
    ("schema_version", b"\x01", "schema version b'"),
    ("schema_version", 999, "schema version '999'"),  # the column's TEXT affinity stores '999'
    ("embedder_dim", "99999999999", "embedder_dim must be an embedding length"),
    ("embedder_dim", "-3", "embedder_dim must be an embedding length"),
    ("embedder_dim", "abc", "embedder_dim must be an embedding length"),
    ("embedder_dim", 16.5, "embedder_dim must be an embedding length"),
    ("embedder_name", "evil\x1b[2J", "embedder_name must be non-empty text without control characters"),
    ("embedder_geometry", "", "embedder_geometry must be non-empty text"),
    ("embedder_sha256", "zz", "embedder_sha256 must be a sha256"),
])
def test_crafted_meta_is_one_gallery_error(tmp_path: Path, key: str, value: Any, message: str) -> None:
    db = _gallery(tmp_path / "g.db", "alice")
    _craft(db, (_META, (value, key)))
    with pytest.raises(GalleryError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Gallery(db, create=False).close()


def test_an_incomplete_identity_is_one_gallery_error(tmp_path: Path) -> None:
    db = _gallery(tmp_path / "g.db", "alice")
    _craft(db, ("DELETE FROM meta WHERE key = ?", ("embedder_geometry",)))
    with pytest.raises(GalleryError, match="incomplete embedder identity"):
        Gallery(db, create=False).close()


@pytest.mark.parametrize("sql, message", [
    (("UPDATE people SET name = ? WHERE id = 1", (b"\xff\xfe",)), "not text"),
    (("UPDATE embeddings SET vector = ? WHERE id = 1", (b"\0" * 8,)), "not 16-d float32"),
    (("UPDATE embeddings SET vector = ? WHERE id = 1", ("text",)), "not 16-d float32"),
    (("UPDATE embeddings SET person_id = 99 WHERE id = 1", ()), "person 99, who is not in it"),
    (("UPDATE embeddings SET vector = ? WHERE id = 1", (np.full(16, np.nan, "<f4").tobytes(),)), "NaN"),
])
def test_crafted_rows_are_one_gallery_error(tmp_path: Path, sql: tuple[str, tuple[Any, ...]], message: str) -> None:
    db = _gallery(tmp_path / "g.db", "alice")
    _craft(db, ("PRAGMA foreign_keys = OFF", ()), sql)
    with pytest.raises(GalleryError, match=message):
        Gallery(db, ID, create=False).close()


def test_a_gallery_without_its_tables_is_one_gallery_error(tmp_path: Path) -> None:
    db = _gallery(tmp_path / "g.db", "alice")
    _craft(db, ("DROP TABLE meta", ()))
    with pytest.raises(GalleryError, match="no such table: meta"):
        Gallery(db, create=False).close()


def test_list_escapes_control_characters_in_stored_names(tmp_path: Path) -> None:
    db = _gallery(tmp_path / "g.db", "alice")
    _craft(db, ("UPDATE people SET name = ? WHERE id = 1", ("alice\x1b[2J\nroot",)))
    r = _cli("gallery", "list", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\\x1b[2J\\nroot" in r.stdout
    r = _cli("gallery", "list", "--db", str(db), "--json")
    assert json.loads(r.stdout)["people"][0]["name"] == "alice\x1b[2J\nroot"  # JSON escapes it itself


# -- names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bob\nalice", "\x1b[31mred", "tab\there", "nul\0", "line\u2028sep", "", "   "])
def test_names_with_control_characters_or_empty_are_refused(tmp_path: Path, name: str) -> None:
    with Gallery(tmp_path / "g.db", ID) as g:
        with pytest.raises(InputError, match="name"):
            g.add(name, _vecs(1))
        with pytest.raises(InputError, match="name"):
            g.remove(name)
        assert g.people() == []


def test_names_are_stripped_the_same_on_enrol_and_remove(tmp_path: Path) -> None:
    with Gallery(tmp_path / "g.db", ID) as g:
        assert g.add("  alice ", _vecs(2)) == 2
        assert g.people() == [("alice", 2)]
        assert g.remove(" alice  ") == 2
        assert g.people() == []


# -- failed opens close their connection ---------------------------------------------------------
def _open_fds(path: Path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            pass
    return n


@pytest.mark.parametrize("case", ["other embedder", "not a gallery"])
def test_a_failed_open_closes_its_connection(tmp_path: Path, case: str) -> None:
    db = tmp_path / "g.db"
    if case == "other embedder":
        _gallery(db, "alice")
        args: tuple[Any, ...] = (db, EmbedderIdentity("other", "cd" * 32, 16, "arcface-112x112"))
        error: type[Exception] = EmbedderMismatchError
    else:
        _craft(db, ("CREATE TABLE t (x)", ()))
        args, error = (db, ID), GalleryError
    kept = []
    for _ in range(3):
        with pytest.raises(error) as e:
            Gallery(*args)
        kept.append(e.value)  # a caller that keeps (or logs) the error keeps its traceback alive
    assert _open_fds(db) == 0


# -- read-only opens and read-only media -----------------------------------------------------------
def test_a_read_only_open_reads_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    db = _gallery(tmp_path / "g.db", "alice")
    with Gallery(db, ID, readonly=True) as g:
        assert g.people() == [("alice", 2)]
        assert g.search(_vecs(2, 0)[0], 1)[0][0].name == "alice"
        with pytest.raises(GalleryError, match="read-only"):
            g.add("bob", _vecs(1))
        with pytest.raises(GalleryError, match="read-only"):
            g.remove("alice")
    with pytest.raises(GalleryError, match="no gallery"):
        Gallery(tmp_path / "missing.db", ID, readonly=True)
    assert not (tmp_path / "missing.db").exists()


@pytest.fixture()
def shared_folder() -> Iterator[Path]:
    """A folder outside pytest's private tmp tree, so another user can reach it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    d = Path(tempfile.mkdtemp(prefix="anyedge-ro-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("folder_writable", [False, True])
def test_list_works_on_a_gallery_the_user_cannot_write(shared_folder: Path, folder_writable: bool) -> None:
    db = _gallery(shared_folder / "g.db", "alice", "bob")
    os.chmod(db, 0o644)  # owned by root: the other user may read it, not write it
    if folder_writable:
        os.chmod(shared_folder, 0o777)
    r = _cli("gallery", "list", "--db", str(db), "--json", user=NOBODY)
    assert r.returncode == 0, r.stderr
    assert [p["name"] for p in json.loads(r.stdout)["people"]] == ["alice", "bob"]
    r = _cli("gallery", "remove", "alice", "--db", str(db), user=NOBODY)
    assert r.returncode == 2
    assert "read-only" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    with Gallery(db, create=False) as g:
        assert [n for n, _ in g.people()] == ["alice", "bob"]


def test_identify_works_on_a_gallery_the_user_cannot_write(shared_folder: Path) -> None:
    from .conftest import DATA

    photo = str(DATA / "faces" / "identities" / "person_01" / "img26.jpg")
    db = shared_folder / "g.db"
    env = {**os.environ, "ANYEDGE_CACHE_DIR": str(shared_folder / "cache")}
    r = _cli("gallery", "enroll", "alice", photo, "--db", str(db), env=env)
    assert r.returncode == 0, r.stderr
    r = _cli("gallery", "identify", photo, "--db", str(db), "--json", user=NOBODY, env=env)
    assert r.returncode == 0, r.stderr
    assert [f["name"] for f in json.loads(r.stdout)["faces"]] == ["alice"]
