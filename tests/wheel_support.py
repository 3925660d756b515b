"""Build anyedge's wheel from the checkout and install it into a throwaway venv (plain functions).

The venv takes anyedge from the wheel and its dependencies from this test environment (a ``.pth``
line), so installing stays fast and offline; ``anyedge`` itself must come from the wheel, not the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["ROOT", "build_wheel", "install_wheel"]

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(out: Path, src: Path) -> Path:
    """Build the wheel into ``out`` from a copy, in ``src``, of the checkout's own files.

    Only files git tracks or would track are copied: setuptools reuses ./build/lib, where files that
    were moved or deleted since an earlier build would otherwise still ship.
    """
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


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A new venv at ``venv`` holding ``wheel``, its dependencies taken from this environment."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv
