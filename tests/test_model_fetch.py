"""Models download themselves: through a local mirror on 127.0.0.1 (tests/mirror_support.py),
never the internet. Each test gets an empty cache and no ANYEDGE_MODEL_PATH (the server reads the
shared files itself)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from anyedge import errors
from anyedge.registry import REGISTRY, resolve_model, sha256_file

from .conftest import MODELS
from . import mirror_support
from .mirror_support import MirrorServer

mirror_server = mirror_support.mirror_server  # the fixture: a started mirror, the environment pointed at it

URL_MODELS = [n for n, m in REGISTRY.items() if not m.source.wheel]
GATED = ["scrfd-500m", "mobilefacenet", "mobilefacenet-int8w"]


def _shared(name: str) -> Path:
    return next(MODELS.rglob(REGISTRY[name].filename))


def _cache() -> Path:
    return Path(os.environ["ANYEDGE_CACHE_DIR"])


def _cache_files() -> list[str]:
    c = _cache()
    return sorted(p.relative_to(c).as_posix() for p in c.rglob("*") if p.is_file()) if c.exists() else []


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          env=env if env is not None else dict(os.environ), cwd=cwd, timeout=timeout)


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    lines = r.stderr.splitlines()
    errs = [x for x in lines if x.startswith("anyedge: error:")]
    assert len(errs) == 1 and "Traceback" not in r.stderr, r.stderr
    return errs[0]


def test_every_repository_model_downloads_through_the_mirror(mirror_server: MirrorServer,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    assert set(URL_MODELS) == {"scrfd-500m", "yunet", "yunet-n-320", "retinaface-mnet025", "ultraface-rfb320",
                               "mobilefacenet", "mobilefacenet-int8w"}
    for name in URL_MODELS:
        path, info = resolve_model(name, accept_licence=True)
        assert path == _cache() / info.filename
        assert path.read_bytes() == _shared(name).read_bytes()
    assert _cache_files() == sorted(REGISTRY[n].filename for n in URL_MODELS)  # exactly them, no temp files
    assert sorted(mirror_server.requests) == sorted("/" + REGISTRY[n].source.raw.key for n in URL_MODELS)
    err = capfd.readouterr().err
    for name in URL_MODELS:  # each says its licence once, when it arrives
        assert sum(f"'{name}'" in x and f"licence: {REGISTRY[name].license}" in x for x in err.splitlines()) == 1
    # progress for files over 1 MB only: scrfd is 2.5 MB, yunet-n-320 0.3 MB
    assert "downloading scrfd_500m_bnkps.onnx: 100%" in err
    assert "downloading yunet_n_320_320.onnx" not in err
    # a second use finds the cache: no request, no notice
    resolve_model("yunet")
    assert len(mirror_server.requests) == len(URL_MODELS) and "licence" not in capfd.readouterr().err


def test_wrong_bytes_are_refused_and_nothing_is_cached(mirror_server: MirrorServer) -> None:
    mirror_server.mode = "wrong-bytes"
    with pytest.raises(errors.IntegrityError, match="sha256") as e:
        resolve_model("retinaface-mnet025")
    assert isinstance(e.value, errors.DownloadError) and "\n" not in str(e.value)
    assert _cache_files() == []
    mirror_server.mode = "ok"  # the next try gets the real file
    assert sha256_file(resolve_model("retinaface-mnet025")[0]) == REGISTRY["retinaface-mnet025"].sha256


def test_404_is_one_line_with_the_url(mirror_server: MirrorServer) -> None:
    mirror_server.mode = "404"
    with pytest.raises(errors.DownloadError) as e:
        resolve_model("yunet")
    msg = str(e.value)
    assert "HTTP 404" in msg and mirror_server.url + "/ShiqiYu/libfacedetection.train/" in msg and "\n" not in msg
    assert _cache_files() == []


@pytest.mark.parametrize("mode", ["stall", "stall-half", "truncate"])
def test_a_stalled_or_cut_download_fails_within_the_configured_timeout(mirror_server: MirrorServer,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       mode: str) -> None:
    monkeypatch.setenv("ANYEDGE_FETCH_TIMEOUT", "1")
    mirror_server.mode = mode
    t0 = time.monotonic()
    with pytest.raises(errors.DownloadError) as e:
        resolve_model("scrfd-500m", accept_licence=True)
    waited = time.monotonic() - t0
    assert waited < 30  # the default timeout was not the one used
    if mode == "truncate":
        assert "ended after 1264809 of 2529618 bytes" in str(e.value)
    else:
        assert "no answer within 1 s (ANYEDGE_FETCH_TIMEOUT)" in str(e.value) and waited >= 1
    assert _cache_files() == []


def test_connection_refused_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with MirrorServer(MODELS) as closed:
        url = closed.url
    monkeypatch.setenv("ANYEDGE_MODEL_MIRROR", url)
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ANYEDGE_MODEL_PATH")
    monkeypatch.delenv("ANYEDGE_OFFLINE")
    with pytest.raises(errors.DownloadError, match="connection refused; check ANYEDGE_MODEL_MIRROR"):
        resolve_model("yunet")
    r = cli("models", "fetch", "yunet")
    assert r.returncode == 4 and "connection refused" in _one_line_error(r)


@pytest.mark.parametrize("var, value, expected", [
    ("ANYEDGE_FETCH_TIMEOUT", "soon", "ANYEDGE_FETCH_TIMEOUT must be a positive number of seconds, got 'soon'"),
    ("ANYEDGE_FETCH_TIMEOUT", "0", "got '0'"),
    ("ANYEDGE_FETCH_TIMEOUT", "nan", "got 'nan'"),
    ("ANYEDGE_MODEL_MIRROR", "ftp://x", "must be an http://, https:// or file:// base URL, got 'ftp://x'"),
])
def test_bad_fetch_settings_are_input_errors(mirror_server: MirrorServer, monkeypatch: pytest.MonkeyPatch,
                                             var: str, value: str, expected: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(errors.InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        resolve_model("yunet")
    assert mirror_server.requests == []


def test_a_download_killed_half_way_leaves_nothing_that_loads(mirror_server: MirrorServer) -> None:
    mirror_server.mode = "slow"
    mirror_server.rate = 200_000  # 2.5 MB in ~13 s
    proc = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "models", "fetch", "scrfd-500m",
                             "--accept-licence"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert mirror_server.wait_sent(600_000, timeout=60), "the download never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    info = REGISTRY["scrfd-500m"]
    assert not (_cache() / info.filename).exists()
    [part] = _cache_files()  # the killed download's own temp file, under a name nothing looks for
    assert part.startswith(f".{info.filename}.") and part.endswith(".part")
    assert 0 < (_cache() / part).stat().st_size < 2529618
    with pytest.raises(errors.ModelNotFoundError):  # nothing partial is found, let alone loaded
        resolve_model("scrfd-500m", download=False)
    mirror_server.mode = "ok"
    old = time.time() - 2 * 3600
    os.utime(_cache() / part, (old, old))  # as if killed two hours ago
    path, _ = resolve_model("scrfd-500m", accept_licence=True)
    assert sha256_file(path) == info.sha256
    assert _cache_files() == [info.filename]  # the next download cleared the stale temp file


def test_concurrent_first_fetches_in_threads_all_end_with_the_verified_file(mirror_server: MirrorServer) -> None:
    info = REGISTRY["retinaface-mnet025"]
    results: list[Path] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            results.append(resolve_model("retinaface-mnet025")[0])
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, repr(failures[0])
    assert results == [_cache() / info.filename] * 8
    assert sha256_file(results[0]) == info.sha256 and _cache_files() == [info.filename]


def test_concurrent_first_fetches_in_processes_all_end_with_the_verified_file(mirror_server: MirrorServer) -> None:
    info = REGISTRY["ultraface-rfb320"]
    code = "from anyedge.registry import resolve_model; print(resolve_model('ultraface-rfb320')[0])"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-800:]
        assert Path(out.strip()) == _cache() / info.filename
    assert sha256_file(_cache() / info.filename) == info.sha256 and _cache_files() == [info.filename]


@pytest.mark.parametrize("name", GATED)
def test_gated_licences_are_not_fetched_without_accepting(mirror_server: MirrorServer, name: str) -> None:
    with pytest.raises(errors.LicenceNotAcceptedError) as e:
        resolve_model(name)
    msg = str(e.value)
    assert REGISTRY[name].license in msg and "\n" not in msg
    assert f"anyedge models fetch {name} --accept-licence" in msg and "ANYEDGE_ACCEPT_LICENCE=1" in msg
    assert mirror_server.requests == [] and _cache_files() == []


def test_accepting_by_flag_or_environment_fetches_a_gated_model(mirror_server: MirrorServer,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    assert resolve_model("mobilefacenet-int8w", accept_licence=True)[0] == _cache() / "inference_model_993_quant.tflite"
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache-env"))
    monkeypatch.setenv("ANYEDGE_ACCEPT_LICENCE", "1")
    path, info = resolve_model("mobilefacenet-int8w")
    assert path == tmp_path / "cache-env" / info.filename and sha256_file(path) == info.sha256


def test_a_gated_model_already_here_is_used_without_accepting(mirror_server: MirrorServer,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    import shutil

    info = REGISTRY["scrfd-500m"]
    _cache().mkdir(parents=True)
    shutil.copy(_shared("scrfd-500m"), _cache() / info.filename)
    assert resolve_model("scrfd-500m")[0] == _cache() / info.filename
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "other"))
    monkeypatch.setenv("ANYEDGE_MODEL_PATH", str(MODELS))
    assert resolve_model("scrfd-500m")[0] == _shared("scrfd-500m")
    assert mirror_server.requests == []


def test_models_fetch_reports_gated_models_and_still_fetches_the_others(mirror_server: MirrorServer) -> None:
    r = cli("models", "fetch", "yunet-n-320", "scrfd-500m")
    assert r.returncode == 3, r.stderr
    assert "--accept-licence" in _one_line_error(r) and "'scrfd-500m'" in _one_line_error(r)
    [line] = r.stdout.splitlines()
    info = REGISTRY["yunet-n-320"]
    assert line.split()[:3] == ["yunet-n-320", "fetched", str(_cache() / info.filename)]
    assert f"sha256:{info.sha256}" in line and line.endswith("licence: Apache-2.0")
    assert _cache_files() == [info.filename]

    # the README's and --help's commands
    r = cli("models", "fetch", "yunet-n-320", "retinaface-mnet025")
    assert r.returncode == 0, r.stderr
    assert [x.split()[:2] for x in r.stdout.splitlines()] == [["yunet-n-320", "present"],
                                                              ["retinaface-mnet025", "fetched"]]
    r = cli("models", "fetch", "scrfd-500m", "--accept-licence")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["scrfd-500m", "fetched"]
    assert "licence: insightface weights: non-commercial research only" in r.stderr  # said once, on arrival
    r = cli("models", "fetch", "scrfd-500m", "--accept-licence", "--json")
    assert r.returncode == 0, r.stderr
    [row] = [json.loads(x) for x in r.stdout.splitlines()]
    assert (row["name"], row["status"]) == ("scrfd-500m", "present") and "licence" not in r.stderr
    assert row["license"] == "insightface weights: non-commercial research only"
    assert row["licence_class"] == "non-commercial" and sha256_file(row["path"]) == row["sha256"]


def test_models_fetch_failures_are_one_line_with_their_exit_code(mirror_server: MirrorServer) -> None:
    mirror_server.mode = "404"
    r = cli("models", "fetch", "yunet", "--json")
    assert r.returncode == 4 and "HTTP 404" in _one_line_error(r)
    assert json.loads(r.stdout)["status"] == "failed"  # stdout stays JSON
    r = cli("models", "fetch", "no-such-model")
    assert r.returncode == 2 and "unknown model 'no-such-model'" in _one_line_error(r)
    r = cli("models", "fetch")
    assert r.returncode == 2 and "--all" in _one_line_error(r)
    mirror_server.mode = "stall"
    r = cli("models", "fetch", "yunet", env={**os.environ, "ANYEDGE_FETCH_TIMEOUT": "1"})
    assert r.returncode == 4 and "no answer within 1 s" in _one_line_error(r)
    assert _cache_files() == []


def test_models_lists_licences_and_which_need_accepting(mirror_server: MirrorServer) -> None:
    r = cli("models", "--json")
    rows = {x["name"]: x for x in map(json.loads, r.stdout.splitlines())}
    for name, info in REGISTRY.items():
        assert rows[name]["license"] == info.license
        assert rows[name]["needs_accept_licence"] is (name in GATED)
        assert rows[name]["fetch"] == ("--accept-licence" if name in GATED else "auto")
    text = cli("models").stdout.splitlines()
    scrfd = next(x for x in text if x.startswith("scrfd-500m"))
    assert "non-commercial research only" in scrfd and "--accept-licence" in scrfd
    assert "anyedge models fetch NAME --accept-licence" in text[-1]


def test_pack_then_model_path_resolves_every_packed_model_offline(tmp_path: Path) -> None:
    pack = tmp_path / "models-pack"
    env = {**os.environ, "ANYEDGE_MODEL_PATH": str(MODELS), "ANYEDGE_CACHE_DIR": str(tmp_path / "cache")}
    r = cli("models", "fetch", "--all", "--accept-licence", env=env)  # all here already: nothing to fetch
    assert r.returncode == 0, r.stderr
    assert [x.split()[:2] for x in r.stdout.splitlines()] == [[n, "present"] for n in REGISTRY]
    r = cli("models", "pack", "models-pack/", "--all", "--accept-licence", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(REGISTRY)
    for info in REGISTRY.values():
        assert (pack / info.source.mirror_path).read_bytes() == _shared(info.name).read_bytes()
    assert (pack / "pypi/mediapipe/0.10.14/mediapipe/modules/face_detection/face_detection_short_range.tflite").is_file()
    assert (pack / "ShiqiYu/libfacedetection.train/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_640_640.onnx").is_file()
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=pack, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(REGISTRY), check.stdout + check.stderr
    strict = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=pack, capture_output=True, text=True)
    assert strict.returncode == 0, strict.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left beside it

    r = cli("models", "--json", env={**env, "ANYEDGE_MODEL_PATH": "models-pack/", "ANYEDGE_OFFLINE": "1",
                                      "ANYEDGE_CACHE_DIR": str(tmp_path / "empty")}, cwd=tmp_path)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert {x["name"]: x["present"] for x in rows if x["name"] in REGISTRY} == {
        n: os.path.join("models-pack", m.source.mirror_path) for n, m in REGISTRY.items()}
    offline = {**os.environ, "ANYEDGE_MODEL_PATH": str(pack), "ANYEDGE_CACHE_DIR": str(tmp_path / "empty"),
               "ANYEDGE_OFFLINE": "1"}
    code = ("import json; from anyedge.registry import REGISTRY, resolve_model; "
            "print(json.dumps({n: str(resolve_model(n, download=False)[0]) for n in REGISTRY}))")
    r = subprocess.run([sys.executable, "-c", code], env=offline, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {n: str(pack / m.source.mirror_path) for n, m in REGISTRY.items()}

    # a second pack replaces the first; a folder that is not a pack is refused and left alone
    r = cli("models", "pack", "models-pack/", "yunet-n-320", "retinaface-mnet025", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in pack.rglob("*") if p.is_file()) == ["SHA256SUMS", "retinaface_mbnet0.25.onnx",
                                                                      "yunet_n_320_320.onnx"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    r = cli("models", "pack", str(mine), "yunet", env=env)
    assert r.returncode == 2 and "not a model pack" in _one_line_error(r)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"


def test_a_pack_served_by_a_static_http_server_is_a_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anyedge.registry import pack_models

    pack = tmp_path / "pack"
    pack_models(pack, URL_MODELS)  # from ANYEDGE_MODEL_PATH
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(pack))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("ANYEDGE_MODEL_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
        monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.delenv("ANYEDGE_MODEL_PATH")
        monkeypatch.delenv("ANYEDGE_OFFLINE")
        for name in URL_MODELS:
            assert sha256_file(resolve_model(name, accept_licence=True)[0]) == REGISTRY[name].sha256
    finally:
        server.shutdown()
        server.server_close()
