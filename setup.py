"""Build of anyedge's compiled parts: the BNN XNOR-popcount kernels and the image kernels (Cython).

Everything else is declared in pyproject.toml. On x86 the kernels get ``-mpopcnt`` when the
compiler accepts it and this CPU has the instruction, so ``__builtin_popcountll`` becomes one
``popcnt``; elsewhere (or if the check fails) the compiler's own popcount is used.
``ANYEDGE_NO_POPCNT=1`` forces the portable build.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _cpu_has_popcnt() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return sys.platform == "darwin" and platform.machine() in ("x86_64", "AMD64")
    return " popcnt" in flags


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
    """Adds ``-mpopcnt`` where it works; never fails the build over it."""

    def build_extensions(self) -> None:
        ctype = getattr(self.compiler, "compiler_type", "")
        x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
        extra: list[str] = []
        if ctype == "unix":
            extra += ["-O3", "-ffp-contract=off"]
            if x86 and not os.environ.get("ANYEDGE_NO_POPCNT") and _cpu_has_popcnt() \
                    and _compiler_accepts(self.compiler, "-mpopcnt"):
                extra.append("-mpopcnt")
        elif ctype == "msvc":
            extra += ["/O2", "/fp:precise"]
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + extra
        super().build_extensions()


_PYX = {"anyedge.targets.bnn._kernels": Path("targets/bnn/_kernels.pyx"),
        "anyedge.ops._resize": Path("sdk/ops/_resize.pyx")}  # image preprocessing (optional: cv2 fallback)


def _extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:  # building from an sdist that ships the generated C
        return [Extension(name, [str(pyx.with_suffix(".c"))]) for name, pyx in _PYX.items()]
    return cythonize([Extension(name, [str(pyx)]) for name, pyx in _PYX.items()],
                     compiler_directives={"language_level": "3"})


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
