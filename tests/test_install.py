"""The pip-installed path: build the wheel, install it into a throwaway venv, run it from another folder.

The throwaway venv takes anyedge from the wheel and its dependencies from this test environment (a
``.pth`` line), so the step stays fast and offline; ``anyedge`` must come from the wheel, not the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from .conftest import MODELS, SMOKE
from .har_support import har_file
from .wheel_support import install_wheel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(anyedge_wheel: Path) -> Path:
    return anyedge_wheel


def _metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(name).decode())
    return msg.get_all("Requires-Dist") or []


def test_wheel_dependencies_on_riscv64_are_numpy_only(wheel: Path) -> None:
    from install_check import BOARDS, requirements_for

    requires = _metadata(wheel)
    for extras in ((), ("openvino",), ("openvino", "camera")):
        assert requirements_for(BOARDS["riscv64"], extras=extras, requires=requires) == ["numpy>=1.26"]
    pi = requirements_for(BOARDS["pi-os-64"], extras=("openvino",), requires=requires)
    assert {"numpy>=1.26", "opencv-python-headless>=4.8", "ai-edge-litert>=1.2", "onnxruntime>=1.17",
            "openvino>=2024.4", "nncf>=2.14"} <= set(pi)


def test_wheel_ships_the_models_and_kernels_and_no_photos(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "anyedge/samples/__init__.py" in names
    assert not any(n.lower().endswith((".jpg", ".jpeg", ".png")) for n in names)
    assert {"anyedge/models/bnn-racketsports/manifest.json", "anyedge/models/bnn-basicmotions/model.bnn",
            "anyedge/models/float-racketsports.npz", "anyedge/models/float-basicmotions.npz"} <= names
    # every compiled kernel: without _decode / _resize BlazeFace falls back to numpy / OpenCV and its bits move
    for kernel in ("anyedge/targets/bnn/_kernels", "anyedge/ops/_decode", "anyedge/ops/_resize"):
        assert any(n.startswith(kernel + ".") and n.endswith((".so", ".pyd")) for n in names), kernel
    assert not any(n.startswith(("tests/", "benchmarks/", "sdk/")) for n in names)
    # the C sources the product copies at run time (export-c, har export-c) ship; the check harnesses
    # (targets/checks/: cross builds, qemu comparisons, pip resolution) are developer tools and do not
    assert {"anyedge/targets/apps/c/anyedge_post.c", "anyedge/targets/apps/c/anyedge_post.h",
            "anyedge/targets/bnn/c/anyedge_bnn.c", "anyedge/targets/bnn/c/anyedge_bnn.h",
            "anyedge/targets/bnn/_kernels.pyx"} <= names
    harness = ("/checks/", "cbuild", "_check.py", "_check.c", "install_check", "c_toolchains")
    assert not [n for n in names if any(h in n for h in harness)]


def _install(wheel: Path, venv: Path) -> Path:
    """A fresh venv with anyedge from ``wheel`` and its dependencies from this test environment; its python."""
    return install_wheel(wheel, venv) / "bin" / "python"


def test_installed_wheel_runs_models_demo_and_har_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    py = _install(wheel, venv)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANYEDGE_", "PYTHON"))}
    env.update(ANYEDGE_MODEL_PATH=str(MODELS), ANYEDGE_OFFLINE="1", ANYEDGE_CACHE_DIR=str(tmp_path / "cache"))
    # the demo photo as a first run leaves it in the cache (fetching it is tested in test_cli_contract)
    from anyedge.samples import SAMPLES

    (tmp_path / "cache").mkdir()
    shutil.copy(SMOKE / "astronaut.png", tmp_path / "cache" / SAMPLES["astronaut"][2])
    anyedge = str(venv / "bin" / "anyedge")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*args], capture_output=True, text=True, cwd=work, env=env, timeout=300)

    where = run(str(py), "-c", "import anyedge, anyedge.targets.bnn.kernels as k, anyedge.ops._decode, "
                               "anyedge.ops._resize; print(anyedge.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv)), where.stdout  # the wheel, not the source tree
    m = run(anyedge, "models", "--json")
    assert m.returncode == 0, m.stderr
    assert {"yunet", "bnn-racketsports"} <= {json.loads(x)["name"] for x in m.stdout.splitlines()}
    d = run(anyedge, "demo", "--runs", "1", "--models", "blazeface-short,yunet-n-320", "--out", "demo")
    assert d.returncode == 0, d.stderr
    report = json.loads((work / "demo" / "demo.json").read_text())
    assert report["image"] == str(tmp_path / "cache" / SAMPLES["astronaut"][2])
    assert {x["faces"] for x in report["results"]} == {1}
    h = run(anyedge, "har", "classify", str(har_file("RacketSports", "test")), "--json")
    assert h.returncode == 0, h.stderr
    assert len(h.stdout.splitlines()) == 152


def _sdk_accuracy(model: str, dataset: str) -> float:
    from anyedge.har import load_ts
    from anyedge.tasks.activity_classifier import ActivityClassifier

    ds = load_ts(har_file(dataset, "test"))
    with ActivityClassifier.create(model) as clf:
        return float(sum(r.label == ds.labels[t] for r, t in zip(clf.classify_batch(ds.x), ds.y)) / len(ds.y))


def test_installed_wheel_benches_the_shipped_nets_with_no_data_folder_and_no_checkout(
        wheel: Path, pypi_wheels: Path, tmp_path: Path) -> None:
    py = _install(wheel, tmp_path / "venv")
    anyedge = str(tmp_path / "venv" / "bin" / "anyedge")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANYEDGE_", "PYTHON", "PIP_"))}
    env.update(ANYEDGE_CACHE_DIR=str(tmp_path / "cache"), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(pypi_wheels))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([anyedge, *args], capture_output=True, text=True, cwd=work, env=env, timeout=600)

    where = subprocess.run([str(py), "-c", "import anyedge; print(anyedge.__file__)"], capture_output=True,
                           text=True, cwd=work, env=env)
    assert where.stdout.strip().startswith(str(tmp_path / "venv")), where.stdout + where.stderr
    one = run("bench", "bnn-basicmotions", "--runs", "5", "--warmup", "1", "--out", "one")
    assert one.returncode == 0, one.stderr
    assert "fetching the BasicMotions test split from the PyPI wheel aeon==" in one.stderr
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["har-BasicMotions_TEST.ts"]
    rows = {r["model"]: r for r in json.loads((work / "one" / "bench.json").read_text())["rows"]}
    assert set(rows) == {"bnn-basicmotions", "bnn-basicmotions:float"}
    bnn, twin = rows["bnn-basicmotions"], rows["bnn-basicmotions:float"]
    assert bnn["source"] == "packaged" and bnn["fidelity"]["windows"] == 40
    assert bnn["fidelity"]["accuracy"] == pytest.approx(_sdk_accuracy("bnn-basicmotions", "BasicMotions"), abs=1e-4)
    assert twin["fidelity"]["reference"] == "self" and 0.5 < bnn["fidelity"]["agreement"] <= 1.0  # the shipped twin
    # the default rows: every shipped net, RacketSports saying what to pass, exit 0
    default = run("bench", "--runs", "3", "--warmup", "1", "--out", "all")
    assert default.returncode == 0, default.stderr
    rows = {r["model"]: r for r in json.loads((work / "all" / "bench.json").read_text())["rows"]}
    assert set(rows) == {"bnn-basicmotions", "bnn-basicmotions:float", "bnn-racketsports"}
    assert "ANYEDGE_DATA" in rows["bnn-racketsports"]["skipped"]
    assert rows["bnn-basicmotions"]["fidelity"]["accuracy"] == bnn["fidelity"]["accuracy"]
    assert "shipped in the anyedge package (marked *): bnn-racketsports, bnn-basicmotions" in default.stdout
    assert [ln for ln in default.stdout.splitlines() if ln.startswith("bnn-racketsports *") and "skipped: " in ln]


def test_ci_entry_point_runs_the_tests_with_ci_set(tmp_path: Path) -> None:
    """``.ci/run`` exports ``CI=1``, so the tests' skip guards turn into failures there."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    seen = tmp_path / "make-env"
    for tool in ("gcc", "riscv64-linux-gnu-gcc", "qemu-riscv64", "aarch64-linux-gnu-gcc", "qemu-aarch64", "debootstrap"):
        (stubs / tool).write_text("#!/bin/sh\nexit 0\n")
    (stubs / "make").write_text(f'#!/bin/sh\necho "$@ CI=${{CI:-unset}}" > {seen}\n')
    for f in stubs.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{stubs}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert seen.read_text().split() == ["test", "pi-check", "riscv-board-check", "BOARD_CHECK_ARGS=--images",
                                        "20", "CI=1"]
