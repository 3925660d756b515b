"""Gallery: persistence, search, sync across connections, crash safety, embedder identity, CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from anyedge.errors import EmbedderMismatchError, FaceQualityError, GalleryError, InputError
from anyedge.recognition.gallery import SCHEMA_VERSION, Gallery, default_gallery_path
from anyedge.tasks.face_embedder import EmbedderIdentity

from .conftest import DATA, read_rgb

ID = EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112")
IDS = DATA / "faces" / "identities"
ROOT = Path(__file__).resolve().parents[1]


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_add_search_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    v = _vecs(6)
    with Gallery(db, ID) as g:
        assert g.search(v[0]) == [[]] and g.identify(v[0], 0.5)[0] is None
        assert g.add("alice", v[:2]) == 2
        assert g.add("bob", v[2:3]) == 1
        assert g.add("alice", v[3:4]) == 3
    with Gallery(db, ID) as g:  # a new process would see the same
        assert g.people() == [("alice", 3), ("bob", 1)] and len(g) == 4
        hits = g.search(v[3] * 5.0, k=2)[0]  # queries are normalised
        assert [h.name for h in hits] == ["alice", "bob"] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert g.identify(v[2], 0.9) == ("bob", pytest.approx(1.0, abs=1e-5))
        assert g.identify(v[5], 0.99)[0] is None  # an unknown face
        assert len(g.search(v[:3], k=5)) == 3 and len(g.search(v[0], k=5)[0]) == 2
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(con.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
    con.close()


def test_search_matches_brute_force_with_many_embeddings(tmp_path: Path) -> None:
    v = _vecs(300, 1)
    labels = np.arange(300) % 37
    with Gallery(tmp_path / "g.db", ID) as g:
        for p in range(37):
            g.add(f"p{p}", v[labels == p])
        q = _vecs(5, 2)
        for row, hits in zip(q, g.search(q, k=4)):
            s = v @ row
            best = sorted(((s[labels == p].max(), f"p{p}") for p in range(37)), reverse=True)[:4]
            assert [h.name for h in hits] == [n for _, n in best]
            np.testing.assert_allclose([h.score for h in hits], [b for b, _ in best], atol=1e-5)


def test_other_connections_changes_are_seen(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    v = _vecs(3)
    with Gallery(db, ID) as reader, Gallery(db, ID) as writer:
        writer.add("alice", v[:1])
        assert reader.identify(v[0], 0.9)[0] == "alice"
        writer.remove("alice")
        assert reader.identify(v[0], 0.9)[0] is None and reader.people() == []


def test_concurrent_readers_and_one_writer(tmp_path: Path) -> None:
    v = _vecs(200)
    names = ["seed"] + [f"p{i % 50}" for i in range(1, 200)]  # row i of the gallery is v[i], of names[i]
    queries = v[::50]
    scores = v @ queries.T  # (200, 4)

    def expected(m: int) -> list[list[tuple[str, float]]]:
        """The 3 best people per query when the gallery holds the first m rows."""
        out = []
        for col in scores[:m].T:
            best: dict[str, float] = {}
            for name, s in zip(names[:m], col):
                best[name] = max(best.get(name, -2.0), float(s))
            out.append(sorted(best.items(), key=lambda t: -t[1])[:3])
        return out

    def matches(hits: list[list], want: list[list[tuple[str, float]]]) -> bool:
        return all([h.name for h in got] == [n for n, _ in exp]
                   and np.allclose([h.score for h in got], [s for _, s in exp], atol=1e-5)
                   for got, exp in zip(hits, want))

    errors: list[BaseException] = []
    reads = [0]
    with Gallery(tmp_path / "g.db", ID) as g:
        g.add("seed", v[:1])
        stop = threading.Event()

        def read() -> None:
            try:
                last = 0
                while not stop.is_set():
                    before = len(g)
                    hits = g.search(queries, k=3)
                    after = len(g)
                    assert last <= before <= after, (last, before, after)  # the count never goes back
                    last = after
                    # each read is one snapshot: the gallery's first m rows, every name with its own vectors
                    assert any(matches(hits, expected(m)) for m in range(before, after + 1)), (before, after, hits)
                    reads[0] += 1
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for i in range(1, 200):
            g.add(names[i], v[i:i + 1])
        stop.set()
        for t in readers:
            t.join()
        assert not errors, errors[0]
        assert reads[0] > 0 and len(g) == 200 and g.identify(v[150], 0.99)[0] == "p0"
        assert matches(g.search(queries, k=3), expected(200))


def test_embedder_mismatch_and_bad_files(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    Gallery(db, ID).close()
    for field, value in [("name", "other"), ("sha256", "cd" * 32), ("dim", 512), ("geometry", "sphereface-112x96")]:
        other = EmbedderIdentity(**{**ID.to_dict(), field: value})
        with pytest.raises(EmbedderMismatchError, match=field):
            Gallery(db, other)
    with Gallery(db) as g:  # no identity: list and remove only
        with pytest.raises(GalleryError, match="identity"):
            g.search(_vecs(1))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(GalleryError):
        Gallery(junk, ID)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(GalleryError, match="not an anyedge gallery"):
        Gallery(other, ID)
    with pytest.raises(GalleryError, match="no gallery"):
        Gallery(tmp_path / "missing.db", ID, create=False)


@pytest.mark.parametrize(("name", "vectors"), [
    ("", _vecs(1)), ("x", np.zeros((1, 16), np.float32)), ("x", _vecs(1)[:, :8]),
    ("x", np.full((1, 16), np.nan, np.float32)),
])
def test_bad_enrolment_input(tmp_path: Path, name: str, vectors: np.ndarray) -> None:
    with Gallery(tmp_path / "g.db", ID) as g:
        with pytest.raises(InputError):
            g.add(name, vectors)
        assert len(g) == 0 and g.people() == []
        with pytest.raises(GalleryError, match="not in the gallery"):
            g.remove("nobody")


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np
    from anyedge.recognition.gallery import Gallery
    from anyedge.tasks.face_embedder import EmbedderIdentity
    g = Gallery(sys.argv[1], EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112"))
    inserts = []
    def trace(sql):
        if sql.startswith("INSERT INTO embeddings"):
            inserts.append(sql)
            if len(inserts) == int(sys.argv[2]):  # inside the transaction, rows already written
                print("inside", flush=True)
                time.sleep(60)
    g._conn.set_trace_callback(trace)
    v = np.random.default_rng(7).normal(size=(10, 16)).astype(np.float32)
    g.add("victim", v)
    print("committed", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize(("pause_at", "expect"), [(5, 0), (11, 10)])
def test_sigkill_mid_enrolment_leaves_all_or_nothing(tmp_path: Path, pause_at: int, expect: int) -> None:
    db = tmp_path / "g.db"
    with Gallery(db, ID) as g:
        g.add("keeper", _vecs(2))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(db), str(pause_at)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert line == ("inside" if expect == 0 else "committed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Gallery(db, ID) as g:
        people = dict(g.people())
        assert people.get("victim", 0) == expect and people["keeper"] == 2


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_gallery_path() == tmp_path / "anyedge" / "gallery.db"


# -- enrolment gate and CLI with the real models ----------------------------------------------
@pytest.fixture(scope="module")
def pipeline():  # noqa: ANN201
    from anyedge.recognition.pipeline import FacePipeline

    with FacePipeline.create("scrfd-500m", "mobilefacenet", threads=1) as fp:
        yield fp


def test_enrolment_quality_gate(pipeline, smoke, tmp_path: Path) -> None:  # noqa: ANN001
    import cv2

    from anyedge.recognition.pipeline import FacePipeline

    photo = read_rgb(IDS / "person_01" / "img26.jpg")
    pipeline.enrolment_embedding(photo)  # passes
    with pytest.raises(FaceQualityError, match="no face"):
        pipeline.enrolment_embedding(np.zeros((200, 200, 3), np.uint8))
    with pytest.raises(FaceQualityError, match="2 faces"):
        pipeline.enrolment_embedding(smoke["couple.jpg"])
    assert pipeline.enrolment_embedding(smoke["couple.jpg"], largest=True)[0].shape == (128,)
    assert pipeline.enrolment_embedding(smoke["couple.jpg"], face=1)[0].shape == (128,)
    _, face = pipeline.enrolment_embedding(photo)
    iod = float(np.linalg.norm(face.keypoints[1] - face.keypoints[0]))
    with pytest.raises(FaceQualityError, match="too blurred"):  # sigma 2.5 px at crop scale (35 px eyes)
        pipeline.enrolment_embedding(cv2.GaussianBlur(photo, (0, 0), 2.5 * iod / 35))
    f = 16.0 / iod  # eyes 16 px apart
    small = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    canvas = np.full((640, 640, 3), 128, np.uint8)
    canvas[100:100 + small.shape[0], 100:100 + small.shape[1]] = small
    with pytest.raises(FaceQualityError, match="too small"):
        pipeline.enrolment_embedding(canvas)
    with Gallery(tmp_path / "g.db", pipeline.embedder.identity) as g:
        fp = FacePipeline(pipeline.detector, pipeline.embedder, g)
        with pytest.raises(FaceQualityError, match="photo 1: no face"):
            fp.enroll("alice", [photo, np.zeros((200, 200, 3), np.uint8)])
        assert g.people() == []  # all or nothing
        assert fp.enroll("alice", [photo]) == 1


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_gallery_cli_enrol_restart_identify(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    a = [str(IDS / "person_01" / f) for f in ("img26.jpg", "img27.jpg")]
    r = _cli("gallery", "enroll", "alice", *a, "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["embeddings"] == 2
    assert (tmp_path / "xdg" / "anyedge" / "gallery.db").is_file()
    probes = [str(IDS / "person_01" / "img28.jpg"), str(IDS / "person_03" / "img3.jpg"), str(tmp_path / "nope.jpg")]
    r = _cli("gallery", "identify", *probes, "--json", env=env)
    assert r.returncode == 1  # one image failed, the others were answered
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0]["faces"][0]["name"] == "alice" and lines[0]["faces"][0]["score"] > 0.36
    assert lines[1]["faces"][0]["name"] is None and len(lines[1]["faces"][0]["box"]) == 4
    assert "error" in lines[2]
    r = _cli("gallery", "enroll", "bob", str(IDS / "person_03" / "img3.jpg"), "--embedder", "mobilefacenet-int8w",
             env=env)
    assert r.returncode == 2 and "built with embedder 'mobilefacenet'" in r.stderr
    ours = [x for x in r.stderr.splitlines() if not x.startswith("INFO: Created TensorFlow Lite")]  # LiteRT's C++ log
    assert len(ours) == 1 and ours[0].startswith("anyedge: error:") and "Traceback" not in r.stderr
    r = _cli("gallery", "list", "--json", env=env)
    assert json.loads(r.stdout)["people"] == [{"name": "alice", "embeddings": 2}]
    assert _cli("gallery", "remove", "alice", env=env).returncode == 0
    r = _cli("gallery", "remove", "alice", env=env)
    assert r.returncode == 2 and "not in the gallery" in r.stderr


def test_verify_and_calibrate_cli(tmp_path: Path) -> None:
    env = dict(os.environ)
    r = _cli("verify", str(IDS / "person_01" / "img26.jpg"), str(IDS / "person_01" / "img27.jpg"), "--json", env=env)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["same"] is True and out["score"] > out["threshold"]
    r = _cli("verify", str(IDS / "person_01" / "img26.jpg"), str(IDS / "person_05" / "img16.jpg"), "--json", env=env)
    assert json.loads(r.stdout)["same"] is False
    photos = [f"{IDS}/person_0{p}/{f}" for p, f in [(1, "img26.jpg"), (1, "img27.jpg"), (1, "img28.jpg"),
                                                      (3, "img3.jpg"), (3, "img12.jpg"), (5, "img16.jpg")]]
    rows = ["a,b,same"] + [f"{x},{y},{int(x.split('/')[-2] == y.split('/')[-2])}"
                           for i, x in enumerate(photos) for y in photos[i + 1:]]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    r = _cli("calibrate-threshold", str(tmp_path / "pairs.csv"), "--json", env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["pairs"] == 15 and rep["genuine"] == 4 and 0.9 <= rep["roc_auc"] <= 1.0
    assert 0.0 <= rep["eer"] <= 0.2 and -1 < rep["recommended_threshold"] < 1
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    r = _cli("calibrate-threshold", str(tmp_path / "bad.csv"), env=env)
    assert r.returncode == 2 and "expected columns a, b, same" in r.stderr


_WRITER_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from anyedge.recognition.gallery import Gallery
    from anyedge.tasks.face_embedder import EmbedderIdentity
    g = Gallery(sys.argv[1], EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112"))
    rng = np.random.default_rng(3)
    for i in range(40):
        g.add(f"w{i}", rng.normal(size=(3, 16)).astype(np.float32))  # 40 transactions
    print("done", flush=True)
""")


def test_reader_process_follows_a_writer_process(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with Gallery(db, ID) as g:
        g.add("seed", _vecs(1))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(db)], stdout=subprocess.PIPE, text=True,
                                env=env)
        seen = set()
        while proc.poll() is None:  # search while the other process commits
            seen.add(len(g))
            assert g.search(_vecs(1, 5), k=2)[0]
        assert proc.stdout.read().strip() == "done" and proc.returncode == 0  # type: ignore[union-attr]
        assert len(g) == 1 + 40 * 3 and len(g.people()) == 41
        assert all((n - 1) % 3 == 0 for n in seen)  # only whole transactions were ever visible
