"""The pip-installed path: build the wheel, install it into a throwaway venv, run it from another folder.

The throwaway venv takes anyedge from the wheel and its dependencies from this test environment (a
``.pth`` line), so the step stays fast and offline; ``anyedge`` must come from the wheel, not the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from .conftest import MODELS, SMOKE
from .har_support import har_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from the checkout's own files only: setuptools reuses ./build/lib, where files that
    # were moved or deleted since an earlier build would otherwise still ship.
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = list(out.glob("anyedge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


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
    assert {"anyedge/models/bnn-racketsports/manifest.json", "anyedge/models/bnn-basicmotions/model.bnn"} <= names
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


def test_installed_wheel_runs_models_demo_and_har_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
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
