"""The whole SDK on an emulated board, against this host: ``make pi-check``, ``make riscv-board-check``.

``python targets/checks/board_check.py --board pi`` makes (or takes from the cache, see
:mod:`boards`) a Raspberry Pi OS-like Debian 12 arm64 root, anyedge's wheel cross-built for it and
installed the README's way, then runs the ``anyedge`` command under ``qemu-aarch64 -cpu
cortex-a72`` and the same command in this host's environment, and compares:

* ``--version``, ``models``, ``demo``; the compiled kernels (NEON ``cnt`` in the built extension,
  ``bnn`` engine on the ``cython`` kernels, not the numpy fallback);
* ``detect --json`` on the first ``--images`` WIDER images with every engine x every registered
  detector that engine reads: faces matched by IoU, the largest box and score differences; any
  unmatched face, or a difference over :data:`BOX_TOL` / :data:`SCORE_TOL`, fails;
* ``gallery enroll`` / ``identify`` on the shared face photos (same names);
* ``har classify`` and ``har stream`` with both shipped activity models (same labels);
* ``run --source CLIP.mp4`` on a short clip made from the images (same faces per frame);
* ``anyedge export-c``'s C library built for aarch64 and run under qemu on the same images
  (:mod:`apps_check`);
* ``bench --runs 5`` (timings printed, labelled emulated: not a board's speed);
* ``python -m anyedge.targets.selfcheck`` against the reference shipped in the package.

``--board riscv64`` (Debian 13, ``qemu-riscv64 -cpu rv64,zbb=true``): the board's own pip installs
the wheel into a ``--system-site-packages`` venv and must add nothing but anyedge (numpy is
Debian's); ``har classify`` / ``har stream`` with both models on the Zbb kernels (``cpop`` in the
built extension); ``models`` marks the vision models as having no engine; ``detect`` fails with
one line on stderr and exit code 2; the selfcheck.

It prints one table per part and exits 1 when any comparison fails (2 when the board could not be
made: no debootstrap, no network, no cross compiler).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import boards
from anyedge.errors import AnyEdgeError
from anyedge.targets.selfcheck import BOX_TOL, SCORE_TOL, FaceDiff, compare_faces, iou, match_faces

__all__ = ["BOX_TOL", "SCORE_TOL", "FaceDiff", "iou", "match_faces", "compare_detections", "compare_labels",
           "Check", "main"]

ROOT = Path(__file__).resolve().parents[2]


def compare_detections(ref: Mapping[str, Sequence[Mapping[str, Any]]],
                       got: Mapping[str, Sequence[Mapping[str, Any]]], threshold: float | None = None) -> FaceDiff:
    """The host's faces (``ref``) against the board's, per image: :func:`anyedge.targets.selfcheck.compare_faces`."""
    return compare_faces(ref, got, box_tol=BOX_TOL, score_tol=SCORE_TOL, threshold=threshold)


def score_threshold(model: str) -> float | None:
    """The registry's default score threshold of a detector (what ``detect`` used), if it names one."""
    from anyedge.registry import get_model_info

    value = get_model_info(model).decoder.get("score_threshold")
    return float(value) if value is not None else None


def compare_labels(ref: Sequence[str], got: Sequence[str]) -> tuple[int, int, list[str]]:
    """``(agreeing, total, problems)``; a length difference is a problem."""
    problems = [] if len(ref) == len(got) else [f"{len(ref)} labels on the host, {len(got)} on the board"]
    if not ref and not got:
        problems.append("no labels at all")
    agree = sum(a == b for a, b in zip(ref, got))
    if agree != min(len(ref), len(got)):
        first = next(i for i, (a, b) in enumerate(zip(ref, got)) if a != b)
        problems.append(f"{min(len(ref), len(got)) - agree} label(s) differ, first at {first}: "
                        f"{ref[first]!r} vs {got[first]!r}")
    return agree, max(len(ref), len(got)), problems


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects of ``--json`` output, one per line (blank lines skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- running commands on both sides -------------------------------------------------------------------

@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float


@dataclass
class Check:
    """One row of the report."""

    part: str
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


class Side:
    """Runs ``anyedge ARGS`` (or Python code) on this host or on the board, with the same environment."""

    def __init__(self, name: str, anyedge: list[str], python: list[str], env: Mapping[str, str]) -> None:
        self.name, self._anyedge, self._python, self.env = name, anyedge, python, dict(env)

    def anyedge(self, *args: str | os.PathLike[str], stdin: str | None = None, timeout: float = 1800) -> Result:
        return self._run([*self._anyedge, *map(str, args)], stdin, timeout)

    def python(self, code: str, timeout: float = 600) -> Result:
        return self._run([*self._python, "-c", code], None, timeout)

    def _run(self, cmd: list[str], stdin: str | None, timeout: float) -> Result:
        t = time.perf_counter()
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env, timeout=timeout,
                               cwd=self.env.get("ANYEDGE_BOARD_WORK") or None)
        except subprocess.TimeoutExpired as e:
            return Result(124, "", f"timed out after {timeout:.0f} s ({e.cmd[-1]})", time.perf_counter() - t)
        return Result(p.returncode, p.stdout, p.stderr, time.perf_counter() - t)


def _finish(pool: Any, fut: dict[tuple[str, str], Any], checks: list[Check], board: Any, wheel: Path,
            dev: Any) -> dict[tuple[str, str], Result]:
    """Queue the board's selfcheck, check its compiled kernels, and wait for every queued command."""
    fut[("selfcheck", "board")] = pool.submit("board selfcheck", lambda: dev.python(
        "import sys; from anyedge.targets.selfcheck import main; sys.exit(main(['--json']))"))
    checks += kernel_checks(board, wheel, dev)
    pool.close()
    return {k: f.result() for k, f in fut.items()}


def _both_ran(res: dict[tuple[str, str], Result], key: str, checks: list[Check],
              group: str) -> tuple[Result, Result] | None:
    """The host's and the board's results of ``key``, or ``None`` (and a failed check) when either failed."""
    h, b = res[(key, "host")], res[(key, "board")]
    for side, r in (("host", h), ("board", b)):
        if r.rc != 0:
            checks.append(Check(group, key, False, f"{side}: {_fail_line(r)}", b.seconds))
            return None
    return h, b


def _fail_line(r: Result) -> str:
    lines = [x for x in r.err.strip().splitlines() if x.strip()]
    return f"exit {r.rc}: {lines[-1] if lines else '(no stderr)'}"


class Pool:
    """Runs (host, board) command pairs concurrently, ``jobs`` at a time, reporting each on stderr."""

    def __init__(self, jobs: int, say: Callable[[str], None]) -> None:
        self._ex = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
        self._say = say

    def submit(self, label: str, fn: Callable[[], Result]) -> concurrent.futures.Future:
        def run() -> Result:
            r = fn()
            self._say(f"  {label}: exit {r.rc}, {r.seconds:.0f} s")
            return r
        return self._ex.submit(run)

    def close(self) -> None:
        self._ex.shutdown(wait=True)


# -- the parts ---------------------------------------------------------------------------------------

KERNELS_CODE = r"""
import json
from anyedge.tasks.activity_classifier import ActivityClassifier
import anyedge.targets.bnn.kernels as k
out = {"popcount": k.popcount_kind()}
for m in ("bnn-racketsports", "bnn-basicmotions"):
    with ActivityClassifier.create(m) as clf:
        out[m] = clf.engine.kernels
try:
    import anyedge.ops._resize, anyedge.ops._decode
    out["image_kernels"] = True
except ImportError as e:
    out["image_kernels"] = str(e)
print(json.dumps(out))
"""


def popcount_instructions(so: Path, objdump: str, mnemonic: str) -> int:
    """How many ``mnemonic`` instructions the disassembly of ``so`` holds."""
    p = subprocess.run([objdump, "-d", str(so)], capture_output=True, text=True)
    if p.returncode != 0:
        raise AnyEdgeError(f"{objdump} -d {so.name} failed: {p.stderr.strip()[-300:]}")
    return sum(1 for line in p.stdout.splitlines() if line.split("\t")[2:3] and line.split("\t")[2].split() and
               line.split("\t")[2].split()[0] == mnemonic)


def kernel_checks(board: boards.Board, wheel: Path, side: Side) -> list[Check]:
    """The built extension holds the board's popcount instruction, and the board runs it (not the fallback)."""
    checks = []
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        name = next(n for n in z.namelist() if n.endswith("_kernels" + board.ext_suffix))
        so = Path(z.extract(name, tmp))
        n = popcount_instructions(so, board.objdump, board.popcount)
    checks.append(Check("kernels", f"{board.popcount} in {Path(name).name}", n > 0,
                        f"{n} {board.popcount} instruction(s) ({board.objdump} -d)"))
    r = side.python(KERNELS_CODE)
    if r.rc != 0:
        return checks + [Check("kernels", "compiled kernels run", False, _fail_line(r), r.seconds)]
    info = json.loads(r.out.strip().splitlines()[-1])
    want = {"cnt": "NEON cnt", "cpop": "Zbb cpop"}[board.popcount]
    ok = (want in info["popcount"] and info["bnn-racketsports"] == info["bnn-basicmotions"] == "cython"
          and info["image_kernels"] is True)
    checks.append(Check("kernels", "compiled kernels run", ok,
                        f"bnn engine kernels: {info['bnn-racketsports']}/{info['bnn-basicmotions']}; "
                        f"popcount: {info['popcount']}; image kernels: {info['image_kernels']}", r.seconds))
    return checks


def har_stream_input(ts: Path, cases: int = 3) -> str:
    """CSV sample lines of the first ``cases`` windows of a ``.ts`` file (what an IMU would send)."""
    from anyedge.har.data import load_ts

    x = load_ts(ts).x[:cases]
    return "".join(",".join(repr(float(v)) for v in sample) + "\n" for window in x for sample in window)


def make_clip(images: Sequence[Path], out: Path, frames: int = 8) -> Path:
    """A short .mp4 (mp4v, 10 fps, 640x480) of the first images: the ``run --source`` input."""
    import cv2

    tmp = out.with_name(out.stem + ".tmp.mp4")
    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    if not w.isOpened():
        raise AnyEdgeError("OpenCV cannot write mp4v video here")
    for p in list(images)[:frames]:
        w.write(cv2.resize(cv2.imread(str(p)), (640, 480), interpolation=cv2.INTER_AREA))
    w.release()
    os.replace(tmp, out)
    return out


def detector_matrix(side_models: Iterable[Mapping[str, Any]], engines: Sequence[str]) -> list[tuple[str, str]]:
    """(model, engine) for every present detector and every listed engine that reads its file format."""
    suffix_engines = {"litert": (".tflite",), "onnxruntime": (".onnx",), "openvino": (".xml", ".onnx", ".tflite")}
    out = []
    for m in side_models:
        if m["task"] != "face_detection" or not m["present"]:
            continue
        for e in engines:
            if Path(m["file"]).suffix in suffix_engines.get(e, ()):
                out.append((m["name"], e))
    return out


# -- main --------------------------------------------------------------------------------------------

def _data(*parts: str) -> Path:
    from anyedge.paths import data_path

    p = data_path(*parts)
    if p is None:
        raise AnyEdgeError(f"no $ANYEDGE_DATA/{'/'.join(parts)} (set ANYEDGE_DATA; the Makefile does)")
    return p


def _sides(board: boards.Board, emu: boards.Emulator, inst: boards.Installed, work: Path) -> tuple[Side, Side]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(ANYEDGE_OFFLINE="1", ANYEDGE_CACHE_DIR=str(work / "cache"), ANYEDGE_BOARD_WORK=str(work))
    host_bin = Path(sys.executable).parent
    host = Side("x86-64 host", [str(host_bin / "anyedge")], [sys.executable], env)
    benv = dict(env)
    if inst.pythonpath:
        benv["PYTHONPATH"] = os.pathsep.join(map(str, inst.pythonpath))
    qemu = [board.qemu, "-L", str(emu.root), "-cpu", board.cpu, str(inst.python)]
    if inst.pythonpath:
        # a child the board's Python starts (bench's workers) runs its sys.executable: here a host
        # script that starts the emulator again (no binfmt_misc). Not for a venv, which Python finds
        # from its own path.
        wrap = work / "bin" / inst.python.name
        wrap.parent.mkdir(parents=True, exist_ok=True)
        wrap.write_text("#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in emu.command(inst.python)) + ' "$@"\n')
        wrap.chmod(0o755)
        qemu[-1:-1] = ["-0", str(wrap)]
    on_board = Side(f"{board.machine} (qemu)", [*qemu, str(inst.script)], qemu, benv)
    return host, on_board


def run_pi(board: boards.Board, emu: boards.Emulator, wheel: Path, inst: boards.Installed, work: Path,
           args: argparse.Namespace, say: Callable[[str], None]) -> tuple[list[Check], dict[str, Any]]:
    host, dev = _sides(board, emu, inst, work)
    checks: list[Check] = []
    extra: dict[str, Any] = {}
    images = sorted(_data("widerface_val", "images").glob("*.jpg"))[: args.images]
    smoke = _data("faces", "smoke")
    (work / "cache").mkdir(exist_ok=True)
    from anyedge.samples import SAMPLES

    shutil.copy(smoke / "astronaut.png", work / "cache" / SAMPLES["astronaut"][2])
    pool = Pool(args.jobs, say)
    fut: dict[tuple[str, str], concurrent.futures.Future] = {}

    def both(key: str, *cmd: str | os.PathLike[str], stdin: str | None = None,
             cmd_board: Sequence[str | os.PathLike[str]] | None = None) -> None:
        fut[(key, "host")] = pool.submit(f"host {key}", lambda: host.anyedge(*cmd, stdin=stdin))
        fut[(key, "board")] = pool.submit(f"board {key}", lambda: dev.anyedge(*(cmd_board or cmd), stdin=stdin))

    both("version", "--version")
    both("models", "models", "--json")
    t1 = ("--threads", "1")  # engines' thread pools spin: under emulation on a shared machine that costs minutes
    both("demo", "demo", "--models", "blazeface-short", "--runs", "1", *t1, "--out", work / "demo-host",
         cmd_board=["demo", "--models", "blazeface-short", "--runs", "1", *t1, "--out", work / "demo-board"])
    har = {m: _data("har", ds, f"{ds}_TEST.ts") for m, ds in (("bnn-racketsports", "RacketSports"),
                                                               ("bnn-basicmotions", "BasicMotions"))}
    for m, ts in har.items():
        both(f"har classify {m}", "har", "classify", ts, "--model", m, "--json")
        both(f"har stream {m}", "har", "stream", "--model", m, "--json", stdin=har_stream_input(ts))
    clip = make_clip(images, work / "clip.mp4")
    both("run clip", "run", "--source", clip, "--model", "blazeface-short", "--json", *t1)
    people = sorted(p for p in _data("faces", "identities").iterdir() if p.is_dir())
    enrolled = people[: args.people]
    probes = [p for person in people for p in sorted(person.glob("*.jpg"))[2:3]]
    # the host's models list decides the detector matrix (the board must list the same; checked below)
    models_host = host.anyedge("models", "--json")
    engines = [e for e in ("litert", "onnxruntime", "openvino") if e in args.engines]
    matrix = detector_matrix(json_lines(models_host.out), engines)
    for model, engine in matrix:
        both(f"detect {model} {engine}", "detect", "--json", "--model", model, "--engine", engine, *t1, *images)

    def gallery(side: Side, db: Path) -> Result:
        t = time.perf_counter()
        for person in enrolled:
            r = side.anyedge("gallery", "enroll", person.name, *sorted(person.glob("*.jpg"))[:2], "--largest",
                             "--db", db, *t1)
            if r.rc != 0:
                return r
        r = side.anyedge("gallery", "identify", *probes, "--db", db, "--json", *t1)
        r.seconds = time.perf_counter() - t
        return r

    fut[("gallery", "host")] = pool.submit("host gallery", lambda: gallery(host, work / "host.db"))
    fut[("gallery", "board")] = pool.submit("board gallery", lambda: gallery(dev, work / "board.db"))
    fut[("bench", "board")] = pool.submit("board bench", lambda: dev.anyedge(
        "bench", "blazeface-short", "bnn-racketsports", "--engines", "litert,bnn", "--runs", "5", "--warmup", "1",
        "--max-images", "5", "--threads", "1", "--no-png", "--out", work / "bench", "--json"))
    res = _finish(pool, fut, checks, board, wheel, dev)

    def pair(key: str) -> tuple[Result, Result] | None:
        return _both_ran(res, key, checks, key.split()[0])

    if p := pair("version"):
        checks.append(Check("cli", "anyedge --version", p[0].out == p[1].out, p[1].out.strip(), p[1].seconds))
    if p := pair("models"):
        a = {(m["name"], bool(m["present"])) for m in json_lines(p[0].out)}
        b = {(m["name"], bool(m["present"])) for m in json_lines(p[1].out)}
        checks.append(Check("cli", "anyedge models", a == b, f"{len(b)} models, {sum(x[1] for x in b)} present"
                            + ("" if a == b else f"; differ: {sorted(a ^ b)}"), p[1].seconds))
    if p := pair("demo"):
        def faces(d: Path) -> dict[str, int]:
            doc = json.loads((d / "demo.json").read_text())
            return {f"{x['model']}/{x['engine']}": x["faces"] for x in doc["results"]}
        a, b = faces(work / "demo-host"), faces(work / "demo-board")
        checks.append(Check("cli", "anyedge demo", a == b and bool(b),
                            ", ".join(f"{k}: {v} face(s)" for k, v in sorted(b.items())), p[1].seconds))
    table = []
    for model, engine in matrix:
        key = f"detect {model} {engine}"
        if p := pair(key):
            ref = {Path(x["image"]).name: x["faces"] for x in json_lines(p[0].out)}
            got = {Path(x["image"]).name: x["faces"] for x in json_lines(p[1].out)}
            d = compare_detections(ref, got, score_threshold(model))
            table.append({"model": model, "engine": engine, "images": d.images, "faces_host": d.faces_ref,
                          "faces_board": d.faces_got, "matched": d.matched, "borderline": d.borderline,
                          "max_box_px": round(d.max_box, 3),
                          "max_score": round(d.max_score, 4), "ok": d.ok, "board_s": round(p[1].seconds, 1)})
            checks.append(Check("detect", f"{model} on {engine}", d.ok, d.summary(), p[1].seconds))
    extra["detect"] = table
    _har_checks(checks, pair, har, extra)
    if p := pair("run clip"):
        # the live loop drops frames it has no time for (under emulation, most): compare the frames both ran
        got = {str(x["frame"]): x["faces"] for x in json_lines(p[1].out) if x.get("type") == "frame"}
        ref = {str(x["frame"]): x["faces"] for x in json_lines(p[0].out) if x.get("type") == "frame"
               and str(x["frame"]) in got}
        d = compare_detections(ref, got, score_threshold("blazeface-short"))
        checks.append(Check("run", "run --source clip.mp4 (blazeface-short)", d.ok and bool(ref),
                            f"{len(got)} frames: {d.summary()}", p[1].seconds))
    if p := pair("gallery"):
        a = [x.get("names") or [f.get("name") for f in x.get("faces", [])] for x in json_lines(p[0].out)]
        b = [x.get("names") or [f.get("name") for f in x.get("faces", [])] for x in json_lines(p[1].out)]
        named = sum(1 for names in b for n in names if n)
        checks.append(Check("gallery", f"enroll {len(enrolled)} people, identify {len(probes)} photos", a == b and bool(b),
                            f"{named} face(s) named, same names as the host: {a == b}", p[1].seconds))
        extra["gallery"] = b
    bench = res[("bench", "board")]
    if bench.rc == 0:
        doc = json.loads(bench.out)
        rows = [{"model": r.get("model"), "engine": r.get("engine"),
                 "latency_ms_median_emulated": (r.get("latency_ms") or {}).get("median")} for r in doc["rows"]]
        extra["bench_emulated"] = rows
        checks.append(Check("bench", "bench --runs 5", bool(rows), f"{len(rows)} rows (emulated timings, not a "
                            "board's speed)", bench.seconds))
    else:
        checks.append(Check("bench", "bench --runs 5", False, _fail_line(bench), bench.seconds))
    checks.append(_selfcheck(res[("selfcheck", "board")]))
    if not args.skip_export_c:
        checks += _export_c_checks(images, say)
    return checks, extra


def _har_checks(checks: list[Check], pair: Callable, har: Mapping[str, Path], extra: dict[str, Any]) -> None:
    agree_rows = []
    for m in har:
        for kind in ("classify", "stream"):
            if p := pair(f"har {kind} {m}"):
                a = [x["label"] for x in json_lines(p[0].out)]
                b = [x["label"] for x in json_lines(p[1].out)]
                agree, total, problems = compare_labels(a, b)
                agree_rows.append({"model": m, "command": f"har {kind}", "agree": agree, "total": total})
                checks.append(Check("har", f"har {kind} {m}", not problems, f"{agree}/{total} labels agree"
                                    + (f"; {'; '.join(problems)}" if problems else ""), p[1].seconds))
    extra["har"] = agree_rows


def _selfcheck(r: Result) -> Check:
    if r.rc != 0 and not r.out.strip():
        return Check("selfcheck", "python -m anyedge.targets.selfcheck", False, _fail_line(r), r.seconds)
    doc = json.loads(r.out)
    return Check("selfcheck", "python -m anyedge.targets.selfcheck", r.rc == 0 and doc["ok"],
                 f"{doc['passed']}/{sum(not i['skipped'] for i in doc['items'])} items run match the shipped "
                 f"reference ({sum(i['skipped'] for i in doc['items'])} skipped: no engine or model here)"
                 + "".join(f"; {i['name']}: {i['detail']}" for i in doc["items"] if not i["ok"])[:300], r.seconds)


def _export_c_checks(images: Sequence[Path], say: Callable[[str], None]) -> list[Check]:
    import apps_check

    arm = apps_check.aarch64_toolchain()
    if arm is None:
        return [Check("export-c", "export-c on aarch64", False, "aarch64-linux-gnu-gcc or qemu-aarch64 missing")]
    t = time.perf_counter()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("blazeface-short", "scrfd-500m", "yunet-n-320"):
            say(f"  export-c {model}: aarch64 build under qemu ...")
            try:
                stats = apps_check.check_model(model, list(images), [arm], Path(tmp) / model)
            except AnyEdgeError as e:
                out.append(Check("export-c", f"{model} on aarch64", False, str(e).splitlines()[0]))
                continue
            for s in stats:
                out.append(Check("export-c", f"{model} C library on aarch64 (qemu)", s.ok,
                                 f"{s.images} images, {s.c_faces}/{s.faces} faces, bit-identical images "
                                 f"{s.identical_images}, max coord diff {s.max_coord_diff:.2e} px, "
                                 f"max score diff {s.max_score_diff:.2e}", time.perf_counter() - t))
    return out


def run_riscv(board: boards.Board, emu: boards.Emulator, wheel: Path, inst: boards.Installed, work: Path,
              args: argparse.Namespace, say: Callable[[str], None]) -> tuple[list[Check], dict[str, Any]]:
    host, dev = _sides(board, emu, inst, work)
    checks: list[Check] = []
    extra: dict[str, Any] = {}
    added = boards.pip_report(inst)
    r = dev.python("import numpy, json, importlib.util as u; print(json.dumps({'numpy': numpy.__version__, "
                   "'numpy_from': numpy.__file__, 'cv2': u.find_spec('cv2') is not None, "
                   "'engines': [m for m in ('ai_edge_litert', 'onnxruntime', 'openvino') if u.find_spec(m)]}))")
    if r.rc == 0:
        info = json.loads(r.out)
        ok = added == ["anyedge"] and not info["cv2"] and not info["engines"] and "dist-packages" in info["numpy_from"]
        checks.append(Check("install", "pip install anyedge (board's pip): numpy only", ok,
                            f"pip added {added}; numpy {info['numpy']} from Debian ({info['numpy_from']}); "
                            f"cv2 {'present' if info['cv2'] else 'absent'}; vision engines {info['engines'] or 'none'}",
                            r.seconds))
    else:
        checks.append(Check("install", "pip install anyedge (board's pip): numpy only", False, _fail_line(r)))
    pool = Pool(args.jobs, say)
    fut: dict[tuple[str, str], concurrent.futures.Future] = {}
    har = {m: _data("har", ds, f"{ds}_TEST.ts") for m, ds in (("bnn-racketsports", "RacketSports"),
                                                               ("bnn-basicmotions", "BasicMotions"))}
    for m, ts in har.items():
        for kind, cmd, stdin in (("classify", ("har", "classify", ts, "--model", m, "--json"), None),
                                 ("stream", ("har", "stream", "--model", m, "--json"), har_stream_input(ts))):
            key = f"har {kind} {m}"
            fut[(key, "host")] = pool.submit(f"host {key}", lambda c=cmd, s=stdin: host.anyedge(*c, stdin=s))
            fut[(key, "board")] = pool.submit(f"board {key}", lambda c=cmd, s=stdin: dev.anyedge(*c, stdin=s))
    fut[("version", "board")] = pool.submit("board --version", lambda: dev.anyedge("--version"))
    fut[("models", "board")] = pool.submit("board models", lambda: dev.anyedge("models", "--json"))
    img = _data("faces", "smoke") / "couple.jpg"
    fut[("detect", "board")] = pool.submit("board detect", lambda: dev.anyedge("detect", img))
    res = _finish(pool, fut, checks, board, wheel, dev)

    def pair(key: str) -> tuple[Result, Result] | None:
        return _both_ran(res, key, checks, "har")

    v = res[("version", "board")]
    checks.append(Check("cli", "anyedge --version", v.rc == 0 and v.out.startswith("anyedge "),
                        v.out.strip() or _fail_line(v), v.seconds))
    m = res[("models", "board")]
    if m.rc == 0:
        rows = json_lines(m.out)
        vision = [x for x in rows if x["task"] != "activity_classification"]
        ok = bool(vision) and all(not x.get("engines") for x in vision) and all(
            x.get("engines") == ["bnn"] for x in rows if x["task"] == "activity_classification")
        checks.append(Check("cli", "models marks vision models without an engine", ok,
                            f"{len(vision)} vision models, engines here: "
                            f"{sorted({e for x in vision for e in x.get('engines') or []}) or 'none'}", m.seconds))
    else:
        checks.append(Check("cli", "models marks vision models without an engine", False, _fail_line(m)))
    d = res[("detect", "board")]
    lines = [x for x in d.err.splitlines() if x.strip()]
    checks.append(Check("cli", "detect fails with one clear line", d.rc == 2 and len(lines) == 1 and not d.out.strip(),
                        f"exit {d.rc}: {' | '.join(lines)[:200]}", d.seconds))
    _har_checks(checks, pair, har, extra)
    checks.append(_selfcheck(res[("selfcheck", "board")]))
    return checks, extra


def print_report(board: boards.Board, checks: Sequence[Check], extra: Mapping[str, Any], out=sys.stdout) -> None:
    print(f"\n{board.title}", file=out)
    print(f"{'part':10} {'check':46} {'':4} {'emulated s':>10}  detail", file=out)
    for c in checks:
        print(f"{c.part:10} {c.name[:46]:46} {'ok' if c.ok else 'FAIL':4} {c.seconds:10.0f}  {c.detail}", file=out)
    if extra.get("detect"):
        print(f"\ndetect --json, {board.machine} under qemu vs x86-64 host:", file=out)
        print(f"{'model':20} {'engine':12} {'images':>6} {'faces host':>10} {'board':>6} {'matched':>7} "
              f"{'at threshold':>12} {'max box px':>10} {'max score':>9}", file=out)
        for r in extra["detect"]:
            print(f"{r['model']:20} {r['engine']:12} {r['images']:6} {r['faces_host']:10} {r['faces_board']:6} "
                  f"{r['matched']:7} {r['borderline']:12} {r['max_box_px']:10.3f} {r['max_score']:9.4f}", file=out)
    if extra.get("bench_emulated"):
        print("\nbench --runs 5 under qemu (EMULATED timings: they say nothing about a board's speed):", file=out)
        for r in extra["bench_emulated"]:
            print(f"  {r['model']:20} {r['engine']:12} median {r['latency_ms_median_emulated']} ms (emulated)", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="board_check.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python targets/checks/board_check.py --board pi\n"
               "  python targets/checks/board_check.py --board riscv64 --json out/riscv64.json\n"
               "  python targets/checks/board_check.py --board pi --images 150 --jobs 4")
    ap.add_argument("--board", choices=sorted(boards.BOARDS), required=True, help="the board to emulate")
    ap.add_argument("--images", type=int, default=20, help="WIDER images for detect and export-c (default: %(default)s)")
    ap.add_argument("--people", type=int, default=3, help="people enrolled in the gallery check (default: %(default)s)")
    ap.add_argument("--engines", default="litert,onnxruntime,openvino",
                    help="engines of the detect matrix (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=2, help="commands run at once (default: %(default)s)")
    ap.add_argument("--cache", default=None, help="cache folder (default: ~/.cache/anyedge/boards, beside the model cache)")
    ap.add_argument("--mirror", default=boards.MIRROR, help="Debian mirror (default: %(default)s)")
    ap.add_argument("--skip-export-c", action="store_true", help="pi: skip the export-c C library check")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the checks and tables to this JSON file")
    ap.add_argument("-v", "--verbose", action="store_true", help="log each command")
    args = ap.parse_args(argv)
    board = boards.BOARDS[args.board]

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG)
    t0 = time.perf_counter()
    cache = boards.boards_cache(args.cache)
    try:
        emu, wheel, inst = boards.prepare(board, cache, mirror=args.mirror, progress=say)
    except AnyEdgeError as e:
        say(f"board_check: error: {board.name}: {e}")
        return 2
    prep_s = time.perf_counter() - t0
    say(f"{board.name} ready in {prep_s:.0f} s; running the checks ...")
    with tempfile.TemporaryDirectory(prefix="anyedge-board-") as tmp:
        try:
            run = run_pi if board.name == "pi" else run_riscv
            checks, extra = run(board, emu, wheel, inst, Path(tmp), args, say)
        except AnyEdgeError as e:
            say(f"board_check: error: {e}")
            return 2
    total = time.perf_counter() - t0
    print_report(board, checks, extra)
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed; prepare {prep_s:.0f} s, total {total:.0f} s "
          f"wall (installed: {inst.how})")
    if args.json_out:
        doc = {"board": board.name, "title": board.title, "ok": not failed, "prepare_s": round(prep_s, 1),
               "total_s": round(total, 1), "install": inst.how,
               "checks": [c.__dict__ for c in checks], **extra}
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmpf = out.with_name(out.name + ".tmp")
        tmpf.write_text(json.dumps(doc, indent=1))
        os.replace(tmpf, out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
