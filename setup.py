"""Build of anyedge's compiled parts: the BNN XNOR-popcount kernels and the image kernels (Cython).

Everything else is declared in pyproject.toml. The popcount flags follow the architecture the
COMPILER targets (``cc -dumpmachine``, so a cross compiler gets its own target's flags):

* x86-64: ``-mpopcnt`` when the compiler accepts it and this CPU has the instruction, so
  ``__builtin_popcountll`` becomes one ``popcnt``;
* aarch64: no flag: GCC and Clang emit NEON ``cnt`` for ``__builtin_popcountll`` by default
  (no x86 flag is ever passed);
* riscv64: ``-march=rv64gc_zbb`` when the compiler accepts it and this CPU lists Zbb in
  ``/proc/cpuinfo``, so popcount is the Zbb ``cpop`` instruction; else the compiler's own
  popcount (``ANYEDGE_RISCV_MARCH`` overrides the -march value, ``ANYEDGE_NO_POPCNT=1`` forces
  the portable build everywhere).

Without a working C compiler the build does not fail: anyedge installs without the compiled
kernels, says so, and the ``bnn`` engine runs the numpy reference (same scores, slower).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_NO_COMPILER = ("anyedge: the compiled kernels could not be built ({}); installing without them. "
                "The bnn engine will run the numpy reference (same scores, slower) and image resizing uses "
                "OpenCV (same pixels, slower). Install a C compiler "
                "and Python headers (e.g. apt install gcc python3-dev) and reinstall for the fast kernels.")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_has_popcnt() -> bool:
    info = _cpuinfo()
    if not info:
        return sys.platform == "darwin" and platform.machine() in ("x86_64", "AMD64")
    return " popcnt" in info


def _cpu_has_zbb() -> bool:
    for line in _cpuinfo().splitlines():
        if line.startswith("isa"):
            isa = line.split(":", 1)[-1].strip().lower()
            return "_zbb" in isa or isa.startswith("rv64") and "zbb" in isa
    return False


def target_arch(compiler_cmd: list[str] | None) -> str:
    """``x86_64``, ``aarch64``, ``riscv64``... as the compiler targets (falls back to this machine)."""
    if compiler_cmd:
        try:
            out = subprocess.run([compiler_cmd[0], "-dumpmachine"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                arch = out.stdout.strip().split("-")[0].lower()
                return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
        except (OSError, subprocess.SubprocessError):
            pass
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def popcount_flags(arch: str, accepts) -> list[str]:  # noqa: ANN001 - accepts(flag) -> bool
    """The popcount flag(s) for a compiler targeting ``arch``; ``accepts`` probes one flag."""
    if os.environ.get("ANYEDGE_NO_POPCNT"):
        return []
    if arch in ("x86_64", "i386", "i686") and _cpu_has_popcnt() and accepts("-mpopcnt"):
        return ["-mpopcnt"]
    if arch == "riscv64":
        march = os.environ.get("ANYEDGE_RISCV_MARCH") or ("rv64gc_zbb" if _cpu_has_zbb() else "")
        if march and accepts(f"-march={march}"):
            return [f"-march={march}"]
    return []  # aarch64 and the rest: the compiler's own __builtin_popcountll


def compile_flags(compiler_cmd: list[str] | None, accepts) -> list[str]:  # noqa: ANN001
    """What anyedge adds to a unix compiler's flags for its kernels (also used by the board checks'
    cross builds, so a wheel built for a board gets exactly what a build on the board would)."""
    return ["-O3", "-ffp-contract=off", *popcount_flags(target_arch(compiler_cmd), accepts)]


def _compiler_accepts(compiler, flag: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("int main(void) { volatile unsigned long long x = 5; return __builtin_popcountll(x) == 2 ? 0 : 1; }\n")
        try:
            compiler.compile([str(src)], output_dir=tmp, extra_postargs=[flag])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Adds the popcount flags where they work; never fails the install over the kernels."""

    def build_extensions(self) -> None:
        ctype = getattr(self.compiler, "compiler_type", "")
        extra: list[str] = []
        if ctype == "unix":
            extra += compile_flags(list(getattr(self.compiler, "compiler_so", []) or []),
                                   lambda flag: _compiler_accepts(self.compiler, flag))
        elif ctype == "msvc":
            extra += ["/O2", "/fp:precise"]
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + extra
        super().build_extensions()

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - no compiler, no headers: install without the kernels
            self.warn(_NO_COMPILER.format(f"{type(e).__name__}: {e}"))
            print(_NO_COMPILER.format(f"{type(e).__name__}: {e}"), file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            self.warn(_NO_COMPILER.format(f"{type(e).__name__}: {e}"))
            print(_NO_COMPILER.format(f"{type(e).__name__}: {e}"), file=sys.stderr)


_PYX = {"anyedge.targets.bnn._kernels": Path("targets/bnn/_kernels.pyx"),
        "anyedge.ops._resize": Path("sdk/ops/_resize.pyx"),  # image preprocessing (optional: cv2 fallback)
        "anyedge.ops._decode": Path("sdk/ops/_decode.pyx")}  # BlazeFace post-processing (optional: numpy)


def _extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:  # building from an sdist that ships the generated C
        return [Extension(name, [str(pyx.with_suffix(".c"))], optional=True) for name, pyx in _PYX.items()]
    return cythonize([Extension(name, [str(pyx)], optional=True) for name, pyx in _PYX.items()],
                     compiler_directives={"language_level": "3"})


if __name__ == "__main__":
    setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
