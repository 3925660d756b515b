"""Build of anyedge's one compiled part: the BNN XNOR-popcount kernels (Cython).

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


def _extensions() -> list[Extension]:
    pyx = Path("targets/bnn/_kernels.pyx")
    try:
        from Cython.Build import cythonize
    except ImportError:  # building from an sdist that ships the generated C
        return [Extension("anyedge.targets.bnn._kernels", [str(pyx.with_suffix(".c"))])]
    return cythonize([Extension("anyedge.targets.bnn._kernels", [str(pyx)])],
                     compiler_directives={"language_level": "3"})


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
