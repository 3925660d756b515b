"""Prove that ``pip install anyedge`` resolves on a board, without the board.

``python targets/checks/install_check.py pi-os-64 jetpack-6`` asks pip (``install --dry-run
--report`` with ``--platform``/``--python-version`` tags and ``--only-binary=:all:``) to resolve
anyedge's dependencies, core and the ``openvino`` extra, as a Raspberry Pi OS 64-bit or JetPack 6
board would, from binary wheels only, and prints every package, version and wheel. It needs
PyPI. anyedge's own requirements are read from its installed metadata and their environment
markers evaluated for the BOARD (pip would evaluate them for this machine); dependencies that
pip left out because their markers were true only on the board are added and resolved again.

``riscv64`` is a board too, but only for the markers: PyPI has no riscv64 wheels of the vision
stack, so there anyedge needs numpy alone (``python3-numpy`` from the distribution).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["Board", "BOARDS", "requirements_for", "resolve", "main"]


@dataclass(frozen=True)
class Board:
    """A board's Python and platform as pip and environment markers see them."""

    name: str
    description: str
    python: str  # "3.11"
    python_full: str
    machine: str  # platform_machine
    glibc: tuple[int, int] | None  # newest manylinux_2_x its libc runs; None: markers only
    extras: tuple[str, ...] = ("openvino",)
    must_resolve: tuple[str, ...] = ("numpy", "opencv-python-headless", "ai-edge-litert", "onnxruntime",
                                     "openvino", "nncf")
    notes: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def marker_env(self, extra: str = "") -> dict[str, str]:
        return {"implementation_name": "cpython", "platform_python_implementation": "CPython",
                "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
                "platform_machine": self.machine, "python_version": self.python,
                "python_full_version": self.python_full, "implementation_version": self.python_full,
                "platform_release": "", "platform_version": "", "extra": extra, **self.env}

    def platform_tags(self) -> list[str]:
        """``manylinux_2_X_<arch>`` from the board's glibc down to 2.17, and ``manylinux2014``."""
        if self.glibc is None:
            return []
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        return tags + [f"manylinux2014_{self.machine}"]


BOARDS = {
    b.name: b
    for b in [
        Board("pi-os-64", "Raspberry Pi OS 64-bit (Debian 12 bookworm): Python 3.11, glibc 2.36, aarch64",
              "3.11", "3.11.2", "aarch64", (2, 36)),
        Board("jetpack-6", "NVIDIA JetPack 6 (Ubuntu 22.04): Python 3.10, glibc 2.35, aarch64",
              "3.10", "3.10.12", "aarch64", (2, 35),
              notes="the CUDA/TensorRT build of onnxruntime comes from NVIDIA's Jetson wheels, not PyPI"),
        Board("riscv64", "riscv64 Linux (e.g. VisionFive 2, Debian/Ubuntu): Python 3.12, markers only",
              "3.12", "3.12.3", "riscv64", None, must_resolve=("numpy",)),
    ]
}


def _requires(dist: str = "anyedge") -> list[str]:
    from importlib.metadata import requires

    return list(requires(dist) or [])


def requirements_for(board: Board, extras: Sequence[str] | None = None,
                     requires: Sequence[str] | None = None) -> list[str]:
    """anyedge's requirements that apply on ``board`` (markers evaluated there), markers stripped."""
    from packaging.requirements import Requirement

    extras = board.extras if extras is None else tuple(extras)
    out: list[str] = []
    for text in (_requires() if requires is None else requires):
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate(board.marker_env(e)) for e in ("", *extras)):
            continue
        if req.name == "anyedge":  # self-referencing extras such as anyedge[openvino,...]
            continue
        req.marker = None
        out.append(str(req))
    return sorted(set(out))


def _pip_dry_run(board: Board, reqs: Sequence[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "--only-binary=:all:", "--target", str(Path(tmp) / "target"),
               "--python-version", board.python, "--implementation", "cp",
               "--abi", f"cp{board.python.replace('.', '')}"]
        for tag in board.platform_tags():
            cmd += ["--platform", tag]
        proc = subprocess.run([*cmd, *reqs], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            errors = [x for x in proc.stderr.splitlines() if x.startswith("ERROR")] or proc.stderr.splitlines()[-3:]
            raise RuntimeError(f"{board.name}: pip could not resolve from binary wheels: {' | '.join(errors)}")
        return json.loads(report.read_text())["install"]


def resolve(board: Board) -> list[dict[str, str]]:
    """Resolve ``board``'s requirements from binary wheels; one row per package.

    Raises:
        RuntimeError: pip found no binary-wheel solution, or a must-resolve package is missing.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    reqs = requirements_for(board)
    if board.glibc is None:
        return [{"name": Requirement(r).name, "requirement": r, "version": "", "wheel": "(from the distribution)"}
                for r in reqs]
    for _ in range(3):
        items = _pip_dry_run(board, reqs)
        got = {canonicalize_name(i["metadata"]["name"]): i for i in items}
        missing = []
        for i in items:  # dependencies whose markers hold on the board but not here
            for text in i["metadata"].get("requires_dist") or []:
                r = Requirement(text)
                if r.marker is not None and not r.marker.evaluate(board.marker_env()):
                    continue
                if canonicalize_name(r.name) not in got:
                    r.marker = None
                    missing.append(str(r))
        if not missing:
            break
        reqs = sorted(set(reqs) | set(missing))
    rows = [{"name": i["metadata"]["name"], "version": i["metadata"]["version"],
             "wheel": i["download_info"]["url"].rsplit("/", 1)[-1]} for i in items]
    absent = [n for n in board.must_resolve if canonicalize_name(n) not in got]
    if absent:
        raise RuntimeError(f"{board.name}: {', '.join(absent)} did not resolve")
    bad = [r["wheel"] for r in rows if not r["wheel"].endswith(".whl")
           or not re.search(rf"(-any|{board.machine})\.whl$|{board.machine}\.", r["wheel"])]
    if bad:
        raise RuntimeError(f"{board.name}: not a binary wheel for {board.machine}: {', '.join(bad)}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Resolve anyedge for the named boards; exit 1 when one does not resolve."""
    ap = argparse.ArgumentParser(prog="python targets/checks/install_check.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("boards", nargs="*", metavar="BOARD",
                    help=f"boards to check, of {', '.join(BOARDS)} (default: pi-os-64 jetpack-6)")
    ap.add_argument("--json", action="store_true", help="one JSON object per board")
    args = ap.parse_args(argv)
    failed = 0
    for name in args.boards or ["pi-os-64", "jetpack-6"]:
        board = BOARDS.get(name)
        if board is None:
            print(f"error: unknown board {name!r}; boards: {', '.join(BOARDS)}", file=sys.stderr)
            return 2
        try:
            rows = resolve(board)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({"board": name, "description": board.description, "packages": rows}))
            continue
        print(f"{name}: {board.description}: {len(rows)} packages" + (f" ({board.notes})" if board.notes else ""))
        for r in rows:
            print(f"  {r['name']:28} {r['version']:12} {r['wheel']}")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
