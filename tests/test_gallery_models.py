"""A gallery records the detector and embedder it was enrolled with; recognition commands use them
without options, refuse others with one line, survive galleries without a record and hostile
records, and print one face schema (gallery identify and run --gallery)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import DATA, MODELS, ROOT

IDS = DATA / "faces" / "identities"
ALICE = [IDS / "person_01" / f for f in ("img26.jpg", "img27.jpg", "img28.jpg")]
BOB = IDS / "person_03" / "img3.jpg"
RECORDED = "retinaface-mnet025"  # not the default (yunet): using it proves the record was read
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _cli(*args: str, cwd: Path | None = None, xdg: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if xdg is not None:
        env["XDG_DATA_HOME"] = str(xdg)
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed (LiteRT's own C++ log line aside)."""
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith("INFO: Created TensorFlow Lite")]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("anyedge: error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def _meta(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as c:
        meta = dict(c.execute("SELECT key, value FROM meta"))
    c.close()
    return meta


def _people(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT p.name, count(e.id) FROM people p JOIN embeddings e ON e.person_id = p.id "
                         "GROUP BY p.id ORDER BY p.id").fetchall()
    c.close()
    return rows


def _boxes(model: str, image: Path | np.ndarray) -> np.ndarray:
    """What ``model`` finds in the image, as the CLI reads it (BGR), rounded like the JSON."""
    import cv2

    from anyedge import FaceDetector

    bgr = cv2.imread(str(image)) if isinstance(image, Path) else image
    with FaceDetector.create(model, channels="BGR") as det:
        return np.round(det.detect(bgr).boxes, 2)


def _numbers_are_numbers(doc: Any, where: str = "") -> None:
    """Every number is a JSON number: no value is a string that parses as one."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            _numbers_are_numbers(v, f"{where}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            _numbers_are_numbers(v, f"{where}[{i}]")
    elif isinstance(doc, str):
        assert not NUMBER.fullmatch(doc.strip()), f"{where} is the string {doc!r}, not a number"
    else:
        assert doc is None or isinstance(doc, (bool, int, float)), (where, doc)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery created by ``gallery enroll --detector retinaface-mnet025`` (alice, 2 photos)."""
    db = tmp_path_factory.mktemp("recorded") / "people.db"
    r = _cli("gallery", "enroll", "alice", str(ALICE[0]), str(ALICE[1]), "--db", str(db), "--detector", RECORDED,
             "--json")
    assert r.returncode == 0, r.stderr
    (db.parent / "enroll.json").write_text(r.stdout)
    return db


def _copy(db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "people.db"
    with sqlite3.connect(db) as src, sqlite3.connect(out) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return out


# -- the record -------------------------------------------------------------------------------
def test_a_new_gallery_records_its_detector_and_embedder(enrolled: Path) -> None:
    from anyedge.registry import REGISTRY

    out = json.loads((enrolled.parent / "enroll.json").read_text())
    assert out["detector"] == RECORDED and out["embedder"] == "mobilefacenet" and out["embeddings"] == 2
    meta = _meta(enrolled)
    assert meta["detector_name"] == RECORDED and meta["detector_sha256"] == REGISTRY[RECORDED].sha256
    assert meta["embedder_name"] == "mobilefacenet" and meta["embedder_sha256"] == REGISTRY["mobilefacenet"].sha256
    r = _cli("gallery", "list", "--db", str(enrolled), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    _numbers_are_numbers(doc)
    assert doc["detector"] == {"name": RECORDED, "sha256": REGISTRY[RECORDED].sha256}
    assert doc["embedder"]["dim"] == 128 and doc["people"] == [{"name": "alice", "embeddings": 2}]
    r = _cli("gallery", "list", "--db", str(enrolled))
    assert r.returncode == 0 and f"detector {RECORDED}" in r.stdout


def test_gallery_list_json_gives_numbers_as_numbers(tmp_path: Path) -> None:
    from anyedge.recognition.gallery import Gallery
    from anyedge.tasks.face_embedder import EmbedderIdentity

    db = tmp_path / "g.db"
    with Gallery(db, EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112")) as g:
        g.add("alice", np.eye(16, dtype=np.float32)[:3])
        g.add("1234", np.eye(16, dtype=np.float32)[3:4])  # a name may look like a number; it stays a name
    r = _cli("gallery", "list", "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["embedder"]["dim"] == 16 and [p["embeddings"] for p in doc["people"]] == [3, 1]
    doc["people"][1]["name"] = "x"  # the one string that is a name, not a number
    _numbers_are_numbers(doc)


def test_the_python_api_records_and_checks_the_detector(tmp_path: Path) -> None:
    from anyedge.errors import DetectorMismatchError, InputError
    from anyedge.recognition.gallery import DetectorIdentity, Gallery
    from anyedge.tasks.face_embedder import EmbedderIdentity

    ident = EmbedderIdentity("test-embedder", "ab" * 32, 16, "arcface-112x112")
    det, other = DetectorIdentity("yunet", "cd" * 32), DetectorIdentity("yunet", "ef" * 32)
    db = tmp_path / "g.db"
    with Gallery(db, ident, detector=det) as g:
        assert g.detector == det
    with Gallery(db, ident, detector=det, readonly=True) as g:
        assert g.detector == det
    for kw in ({}, {"readonly": True}):
        with pytest.raises(DetectorMismatchError, match="'yunet' \\(sha256 cdcdcd.*'yunet' \\(sha256 efefef"):
            Gallery(db, ident, detector=other, **kw)
    for bad in (DetectorIdentity("../x", "cd" * 32), DetectorIdentity("yunet", "CD" * 32),
                DetectorIdentity("a'; DROP TABLE people; --", "cd" * 32), "yunet"):
        with pytest.raises(InputError):
            Gallery(tmp_path / "new.db", ident, detector=bad)  # type: ignore[arg-type]
    old = tmp_path / "old.db"
    Gallery(old, ident).close()  # no detector given: none recorded
    with Gallery(old, ident, detector=other, readonly=True) as g:  # read-only: nothing is written
        assert g.detector is None
    with Gallery(old, ident, detector=other) as g:
        assert g.detector == other


def test_the_readme_python_example_records_registry_and_file_detectors(tmp_path: Path) -> None:
    from anyedge import FaceDetector
    from anyedge.errors import DetectorMismatchError
    from anyedge.recognition.gallery import DetectorIdentity, Gallery
    from anyedge.recognition.pipeline import FacePipeline, detector_identity
    from anyedge.registry import REGISTRY

    from .conftest import read_rgb

    with FacePipeline.create("yunet", "mobilefacenet") as fp, \
            Gallery.open(tmp_path / "faces.db", fp.embedder.identity, detector=fp.detector_identity) as g:
        fp.gallery = g
        fp.enroll("alice", [read_rgb(ALICE[0]), read_rgb(ALICE[1])])
        assert [face.name for face in fp.process(read_rgb(ALICE[2]))] == ["alice"]
        assert g.detector == DetectorIdentity("yunet", REGISTRY["yunet"].sha256)
    path = MODELS / "retinaface" / "retinaface_mbnet0.25.onnx"
    with FaceDetector.create(path, family="retinaface") as det:  # a file: its name, the same bytes
        assert detector_identity(det) == DetectorIdentity("retinaface_mbnet0.25.onnx", REGISTRY[RECORDED].sha256)
        with pytest.raises(DetectorMismatchError, match="'yunet'.*'retinaface_mbnet0.25.onnx'"):
            Gallery.open(tmp_path / "faces.db", detector=detector_identity(det))


# -- defaults from the record -------------------------------------------------------------------
def test_commands_use_the_recorded_detector(enrolled: Path, tmp_path: Path) -> None:
    db = _copy(enrolled, tmp_path)
    r = _cli("gallery", "identify", str(ALICE[2]), "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    face = json.loads(r.stdout)["faces"][0]
    assert face["name"] == "alice"
    np.testing.assert_allclose(face["box"], _boxes(RECORDED, ALICE[2])[0], atol=0.011)  # retinaface's box
    assert np.abs(np.array(face["box"]) - _boxes("yunet", ALICE[2])[0]).max() > 1.0  # not the default's

    # verify --db: the same score as with the recorded detector named, another than the default's
    pair = [str(ALICE[0]), str(ALICE[2])]
    scores = {}
    for key, extra in [("db", ["--db", str(db)]), ("named", ["--detector", RECORDED]), ("default", [])]:
        r = _cli("verify", *pair, *extra, "--json")
        assert r.returncode == 0, r.stderr
        scores[key] = json.loads(r.stdout)["score"]
    assert scores["db"] == scores["named"] != scores["default"]

    # a second enrolment without options keeps (and uses) the record
    r = _cli("gallery", "enroll", "bob", str(BOB), "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["detector"] == RECORDED and _meta(db)["detector_name"] == RECORDED
    assert _people(db) == [("alice", 2), ("bob", 1)]


def test_run_gallery_uses_the_recorded_detector(enrolled: Path, tmp_path: Path) -> None:
    import cv2

    frame = cv2.resize(cv2.imread(str(ALICE[2])), (480, 480))
    clip = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (480, 480))
    for _ in range(2):
        w.write(frame)
    w.release()
    decoded = cv2.VideoCapture(str(clip)).read()[1]  # the frame run sees, after the codec
    r = _cli("run", "--source", str(clip), "--gallery", str(enrolled), "--every-frame", "--json")
    assert r.returncode == 0, r.stderr
    frames = [d for d in map(json.loads, r.stdout.splitlines()) if d["type"] == "frame"]
    assert len(frames) == 2 and [f["name"] for f in frames[0]["faces"]] == ["alice"]
    np.testing.assert_allclose(frames[0]["faces"][0]["box"], _boxes(RECORDED, decoded)[0], atol=0.011)


# -- a differing model: one line, nothing written -------------------------------------------------
@pytest.mark.parametrize("command, both", [
    (["gallery", "enroll", "carol", str(BOB), "--detector", "yunet"], (RECORDED, "yunet")),
    (["gallery", "identify", str(ALICE[2]), "--detector", "yunet-n-320"], (RECORDED, "yunet-n-320")),
    (["gallery", "identify", str(ALICE[2]), "--embedder", "mobilefacenet-int8w"],
     ("mobilefacenet", "mobilefacenet-int8w")),
    (["verify", str(ALICE[0]), str(ALICE[2]), "--detector", "yunet"], (RECORDED, "yunet")),
    (["run", "--source", str(ALICE[2]), "--model", "yunet"], (RECORDED, "yunet")),
])
def test_a_model_that_differs_from_the_record_is_refused(enrolled: Path, tmp_path: Path, command: list[str],
                                                         both: tuple[str, str]) -> None:
    db = _copy(enrolled, tmp_path)
    before = (_meta(db), _people(db))
    opt = ["--gallery", str(db)] if command[0] == "run" else ["--db", str(db)]
    line = _error_line(_cli(*command, *opt))
    assert all(f"'{name}'" in line for name in both), line
    assert (_meta(db), _people(db)) == before


# -- a gallery written before detectors were recorded ---------------------------------------------
def test_a_gallery_without_a_detector_record(enrolled: Path, tmp_path: Path) -> None:
    db = _copy(enrolled, tmp_path)
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM meta WHERE key LIKE 'detector_%'")
    c.close()
    r = _cli("gallery", "list", "--db", str(db), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["detector"] is None
    r = _cli("gallery", "identify", str(ALICE[2]), "--db", str(db), "--json")  # the default detector
    assert r.returncode == 0, r.stderr
    face = json.loads(r.stdout)["faces"][0]
    assert face["name"] == "alice"
    np.testing.assert_allclose(face["box"], _boxes("yunet", ALICE[2])[0], atol=0.011)
    r = _cli("gallery", "identify", str(ALICE[2]), "--db", str(db), "--detector", "yunet-n-320")  # nothing to refuse
    assert r.returncode == 0, r.stderr
    assert "detector_name" not in _meta(db)  # identify never writes
    r = _cli("gallery", "enroll", "bob", str(BOB), "--db", str(db))  # the next enrolment records its detector
    assert r.returncode == 0, r.stderr
    assert _meta(db)["detector_name"] == "yunet"


# -- hostile records -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "../../../etc/passwd", "/abs/model.onnx", "sub\\model.onnx", "x'; DROP TABLE people; --", 'a"b', "..",
    "yunet\n", "", " yunet", "a" * 200, b"yunet",
])
def test_a_hostile_detector_name_is_refused_cleanly(enrolled: Path, tmp_path: Path, name: Any) -> None:
    db = _copy(enrolled, tmp_path)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = ? WHERE key = 'detector_name'", (name,))
    c.close()
    people = _people(db)
    for command in (["gallery", "identify", str(ALICE[2]), "--db", str(db)],
                    ["gallery", "enroll", "bob", str(BOB), "--db", str(db)],
                    ["run", "--source", str(ALICE[2]), "--gallery", str(db)]):
        line = _error_line(_cli(*command))
        assert "detector_name must be a model name" in line, line
    assert _people(db) == people  # nothing dropped, nothing added


@pytest.mark.parametrize("sha", ["zz", "AB" * 32, "ab" * 32 + "\n", "ab" * 31])
def test_a_hostile_detector_sha256_is_refused_cleanly(enrolled: Path, tmp_path: Path, sha: str) -> None:
    db = _copy(enrolled, tmp_path)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = ? WHERE key = 'detector_sha256'", (sha,))
    c.close()
    assert "detector_sha256 must be a sha256" in _error_line(_cli("gallery", "list", "--db", str(db)))


def test_a_recorded_file_name_is_never_taken_as_a_path(enrolled: Path, tmp_path: Path) -> None:
    """A well-formed name the registry does not know (a bundle's or file's) must be passed again."""
    db = _copy(enrolled, tmp_path)
    decoy = tmp_path / "decoy.onnx"  # a file of that name in the working folder is not picked up
    shutil.copy(MODELS / "retinaface" / "retinaface_mbnet0.25.onnx", decoy)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = 'decoy.onnx' WHERE key = 'detector_name'")
    c.close()
    line = _error_line(_cli("gallery", "identify", str(ALICE[2]), "--db", str(db), cwd=tmp_path))
    assert "'decoy.onnx', which is not an anyedge registry name" in line and "--detector PATH" in line
    line = _error_line(_cli("run", "--source", str(ALICE[2]), "--gallery", str(db), cwd=tmp_path))
    assert "--model PATH" in line


# -- one face schema -----------------------------------------------------------------------------
def test_identify_and_run_gallery_print_the_same_faces(enrolled: Path, tmp_path: Path) -> None:
    import cv2

    photos = []
    for i, src in enumerate((ALICE[2], BOB)):  # a known face and an unknown one
        p = tmp_path / f"frame{i}.png"
        cv2.imwrite(str(p), cv2.resize(cv2.imread(str(src)), (480, 480)))
        photos.append(p)
    r = _cli("gallery", "identify", *map(str, photos), "--db", str(enrolled), "--json")
    assert r.returncode == 0, r.stderr
    identified = [json.loads(x)["faces"] for x in r.stdout.splitlines()]
    # one clip per photo (a face that stays in view, so its track is confirmed and named); the last
    # frame of each is compared with identify on the photo
    live, docs = [], []
    for i, p in enumerate(photos):
        clip = tmp_path / f"clip{i}.avi"
        w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (480, 480))
        for _ in range(5):
            w.write(cv2.imread(str(p)))
        w.release()
        r = _cli("run", "--source", str(clip), "--gallery", str(enrolled), "--every-frame", "--json")
        assert r.returncode == 0, r.stderr
        run_docs = [json.loads(x) for x in r.stdout.splitlines()]
        docs += run_docs
        live.append([d["faces"] for d in run_docs if d["type"] == "frame"][-1])
    assert len(live) == len(identified) == 2
    for doc in docs:
        _numbers_are_numbers(doc)
    for a_faces, b_faces in zip(identified, live):
        assert len(a_faces) == len(b_faces) == 1
        a, b = a_faces[0], b_faces[0]
        # the same face keys, in the same order; a live face adds its track id
        assert list(a) == ["box", "keypoints", "name", "score", "detection_score"]
        assert list(b) == [*a, "track"]
        for key in a:
            assert type(a[key]) is type(b[key]), (key, a[key], b[key])
        assert a["name"] == b["name"] and abs(a["score"] - b["score"]) < 0.05
        np.testing.assert_allclose(a["box"], b["box"], atol=4.0)  # the clip's codec moves pixels a little
        assert all(isinstance(v, float) for v in [*a["box"], *np.ravel(a["keypoints"]), a["detection_score"]])
    assert [f[0]["name"] for f in identified] == ["alice", None]  # unknown: name null, score a number
    assert isinstance(identified[1][0]["score"], float)


# -- help and README commands ---------------------------------------------------------------------
def _workspace(tmp_path: Path) -> Path:
    """A folder holding the file names the examples use, as real photos."""
    import cv2

    ws = tmp_path / "ws"
    ws.mkdir()
    names = {"a1.jpg": ALICE[0], "a2.jpg": ALICE[1], "frame.jpg": ALICE[2], "a.jpg": ALICE[0], "b.jpg": ALICE[2],
             "A.jpg": ALICE[0], "B.jpg": ALICE[2], "b1.jpg": BOB}
    for name, src in names.items():
        shutil.copy(src, ws / name)
    (ws / "pairs.csv").write_text("a,b,same\na1.jpg,a2.jpg,1\na1.jpg,frame.jpg,1\na2.jpg,frame.jpg,1\n"
                                  "a1.jpg,b1.jpg,0\na2.jpg,b1.jpg,0\nframe.jpg,b1.jpg,0\n")
    frame = cv2.resize(cv2.imread(str(BOB)), (360, 480))
    w = cv2.VideoWriter(str(ws / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (360, 480))
    assert w.isOpened()
    for _ in range(3):
        w.write(frame)
    w.release()
    return ws


def _run_examples(commands: list[str], ws: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run each ``anyedge ...`` line in ``ws`` (enrolments first, removals last); all must succeed."""
    def order(c: str) -> int:
        return 0 if " enroll " in c else 2 if " remove " in c else 1

    done = {}
    for c in sorted(dict.fromkeys(commands), key=order):
        args = shlex.split(c)
        assert args[0] == "anyedge", c
        if args[1] == "run":
            args += ["--every-frame"]  # the example paces the file like a camera; the output is the same
        r = _cli(*args[1:], cwd=ws, xdg=ws / "xdg")
        assert r.returncode == 0, (c, r.stderr)
        if "--json" in args:
            for line in r.stdout.splitlines():
                _numbers_are_numbers(json.loads(line))
        done[c] = r
    return done


def test_help_explains_the_recorded_models_and_its_examples_work(tmp_path: Path) -> None:
    commands = []
    for cmd in (["gallery", "enroll"], ["gallery", "identify"], ["verify"], ["run"]):
        r = _cli(*cmd, "--help")
        assert r.returncode == 0, r.stderr
        text = " ".join(r.stdout.split())
        assert "records" in text and ("refused" in text or "refuse" in text), cmd
        lines = r.stdout.splitlines()
        start = next(i for i, x in enumerate(lines) if re.fullmatch(r"examples?:", x))
        examples = [x.strip() for x in lines[start + 1:] if x.startswith("  anyedge")]
        assert examples, cmd
        commands += [re.sub(r"\s+#.*", "", x) for x in examples  # camera and stream examples need hardware
                     if cmd[0] != "run" or ("--gallery" in x and not re.search(r"--source (\d|picamera|\w+://)", x))]
    done = _run_examples(commands, _workspace(tmp_path))
    ran = " ".join(done)
    assert "gallery enroll" in ran and "gallery identify" in ran and "verify" in ran and "--gallery" in ran
    live = [r for c, r in done.items() if " run " in f" {c} "]
    faces = [f for x in live[0].stdout.splitlines() if (d := json.loads(x))["type"] == "frame" for f in d["faces"]]
    assert faces and all(f["name"] == "bob" for f in faces)  # people.db: bob, enrolled with retinaface


def test_the_readme_recognition_commands_work(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Face recognition"):]
    section = section[:section.index("\n## ", 3)]
    block = section[section.index("```sh") + 5:]
    block = block[:block.index("```")]
    commands = [re.sub(r"\s+#.*", "", x).strip() for x in block.splitlines() if x.strip().startswith("anyedge")]
    assert any("gallery enroll" in c for c in commands) and any("identify" in c for c in commands)
    done = _run_examples(commands, _workspace(tmp_path))
    identified = [r for c, r in done.items() if "identify" in c and "--json" in c]
    assert identified and json.loads(identified[0].stdout.splitlines()[0])["faces"][0]["name"] == "alice"
