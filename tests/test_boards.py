"""Boards without the hardware: aarch64/riscv64 builds of the kernels, setup.py's popcount flags,
the riscv64 HAR path without OpenCV or engines, and the aarch64 wheel resolution (needs PyPI)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import bnn_check  # targets/checks/ (pytest pythonpath)
import pytest


from .har_support import har_file

ROOT = Path(__file__).resolve().parents[1]


def _setup_module():
    spec = importlib.util.spec_from_file_location("anyedge_setup_py", ROOT / "setup.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]  # setup() only runs as __main__
    return mod


def test_setup_popcount_flags_follow_the_compilers_target(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup_module()
    monkeypatch.delenv("ANYEDGE_NO_POPCNT", raising=False)
    monkeypatch.delenv("ANYEDGE_RISCV_MARCH", raising=False)
    yes = lambda flag: True  # noqa: E731 - a compiler that accepts anything
    assert s.popcount_flags("aarch64", yes) == []  # NEON cnt by default; never an x86 flag
    monkeypatch.setattr(s, "_cpu_has_popcnt", lambda: True)
    assert s.popcount_flags("x86_64", yes) == ["-mpopcnt"]
    assert s.popcount_flags("x86_64", lambda flag: False) == []
    monkeypatch.setattr(s, "_cpu_has_zbb", lambda: True)
    assert s.popcount_flags("riscv64", yes) == ["-march=rv64gc_zbb"]
    monkeypatch.setattr(s, "_cpu_has_zbb", lambda: False)
    assert s.popcount_flags("riscv64", yes) == []  # a CPU without Zbb must not get cpop
    monkeypatch.setenv("ANYEDGE_NO_POPCNT", "1")
    assert s.popcount_flags("x86_64", yes) == []
    if bnn_check.aarch64_toolchain() is not None:
        assert s.target_arch(["aarch64-linux-gnu-gcc"]) == "aarch64"  # a cross compiler gets its target's flags


@pytest.mark.parametrize("arch, mnemonic", [("aarch64", "cnt"), ("riscv64", "cpop")])
def test_cython_kernels_cross_compile_to_the_targets_popcount(tmp_path: Path, arch: str, mnemonic: str) -> None:
    chain = bnn_check.aarch64_toolchain() if arch == "aarch64" else bnn_check.riscv_toolchain()
    if chain is None:
        if os.environ.get("CI"):
            pytest.fail(f"{arch} cross toolchain missing in CI (.ci/run installs it)")
        pytest.skip(f"{arch}-linux-gnu-gcc / qemu-{arch} not installed")
    obj, count = bnn_check.compile_kernels_c(chain, tmp_path)
    assert obj.stat().st_size > 10_000
    assert count > 0, f"no {mnemonic} in the {arch} kernels"


_BLOCKER = """
import sys, importlib.abc
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in BLOCKED or name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not available on this board")
sys.meta_path.insert(0, Blocker())
from anyedge.cli import main
code = main(sys.argv[2:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m in BLOCKED)
print("LOADED", heavy, file=sys.stderr)
sys.exit(code)
"""
_VISION = "cv2,onnxruntime,openvino,ai_edge_litert,tflite_runtime,nncf,onnx,torch,skimage,sklearn,scipy"


def _labels(stdout: str) -> list[str]:
    import json

    return [json.loads(x)["label"] for x in stdout.splitlines()]


@pytest.fixture(scope="module")
def reference_labels() -> list[str]:
    from anyedge import ActivityClassifier
    from anyedge.har.data import load_ts

    with ActivityClassifier.create("bnn-racketsports") as clf:
        return [r.label for r in clf.classify_batch(load_ts(har_file("RacketSports", "test")).x)]


def test_har_path_runs_without_opencv_or_any_vision_engine(reference_labels: list[str]) -> None:
    ts = str(har_file("RacketSports", "test"))
    r = subprocess.run([sys.executable, "-c", _BLOCKER, _VISION, "har", "classify", ts, "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _labels(r.stdout) == reference_labels
    assert "LOADED []" in r.stderr


def test_without_compiled_kernels_the_reference_runs_with_a_notice(reference_labels: list[str]) -> None:
    ts = str(har_file("RacketSports", "test"))
    r = subprocess.run([sys.executable, "-c", _BLOCKER, _VISION + ",anyedge.targets.bnn._kernels", "har",
                        "classify", ts, "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _labels(r.stdout) == reference_labels  # the numpy reference gives the same answers
    assert "compiled BNN kernels are not built here" in r.stderr and "numpy reference" in r.stderr


def test_riscv64_requirements_are_numpy_only_for_the_declared_dependencies() -> None:
    from install_check import BOARDS, requirements_for

    pyproject = (ROOT / "pyproject.toml").read_text()
    import tomllib

    proj = tomllib.loads(pyproject)["project"]
    requires = list(proj["dependencies"]) + [f"{r}; extra == '{x}'" if ";" not in r else f"{r} and extra == '{x}'"
                                             for x, rs in proj["optional-dependencies"].items() for r in rs]
    assert requirements_for(BOARDS["riscv64"], extras=("openvino",), requires=requires) == ["numpy>=1.26"]
    pi = requirements_for(BOARDS["pi-os-64"], extras=("openvino",), requires=requires)
    assert {"onnxruntime>=1.17", "openvino>=2024.4", "ai-edge-litert>=1.2"} <= set(pi)


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("board", ["pi-os-64", "jetpack-6"])
def test_aarch64_boards_resolve_every_dependency_from_binary_wheels(board: str) -> None:
    if not _pypi_reachable():
        if os.environ.get("CI"):
            pytest.fail("CI has PyPI: the aarch64 resolution must run there")
        pytest.skip("pypi.org is not reachable from here")
    from install_check import BOARDS, resolve

    rows = {r["name"].lower(): r for r in resolve(BOARDS[board])}
    for name in ("numpy", "opencv-python-headless", "ai-edge-litert", "onnxruntime", "openvino", "nncf"):
        assert name in rows, f"{name} did not resolve for {board}"
        wheel = rows[name]["wheel"]
        assert wheel.endswith(("aarch64.whl", "-any.whl")), wheel
    py = BOARDS[board].python.replace(".", "")
    assert f"cp{py}" in rows["numpy"]["wheel"] and "aarch64" in rows["onnxruntime"]["wheel"]
