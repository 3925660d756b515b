"""Emulated boards: a Debian root filesystem run under qemu-user, and anyedge built and installed in it.

A developer and CI tool, not part of the anyedge wheel; :mod:`board_check` drives it. For each
board (:data:`BOARDS`) it makes, caching every step under the anyedge cache folder
(``~/.cache/anyedge/boards/``, beside the model cache; ``--cache`` overrides it):

* the root filesystem: ``debootstrap --foreign`` (Debian 12 arm64 = Raspberry Pi OS 64-bit's base;
  Debian 13 riscv64), every downloaded package unpacked with ``dpkg -x`` (the second stage needs a
  chroot; running Python needs only the files), plus a ``proc/cpuinfo`` describing the board's CPU
  (qemu-user redirects the guest's absolute paths into the root, and ONNX Runtime and LiteRT read
  it to size their thread pools);
* anyedge's wheel for the board: the wheel built from this checkout, its compiled kernels
  replaced by the Cython-generated C cross-compiled with the board's own compiler command and
  flags (the root's ``sysconfig`` plus setup.py's :func:`compile_flags`: NEON ``cnt`` on aarch64,
  Zbb ``cpop`` on riscv64 via ``ANYEDGE_RISCV_MARCH``) against the root's Python headers;
* the install: aarch64 takes the README's ``pip install "anyedge[openvino]"`` made by this host's
  pip for the board's platform tags (pip under qemu would take many minutes), riscv64 the same
  command made by the board's own pip under qemu in a ``--system-site-packages`` venv, so pip
  evaluates the riscv64 markers itself (numpy comes from Debian).

Every cache entry is keyed by what it depends on (a hash in its folder name) and built in a
temporary folder renamed into place, so an interrupted run leaves nothing half-made.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from anyedge.errors import ConversionError
from anyedge.paths import cache_dir

__all__ = ["Board", "BOARDS", "boards_cache", "Emulator", "rootfs", "board_wheel", "install", "prepare",
           "source_digest", "repack_wheel", "PI_CPUINFO", "RISCV_CPUINFO"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "http://deb.debian.org/debian"
#: Bumped when the way an entry is made changes, so older cache entries are not reused.
RECIPE = "1"
WHEEL_RECIPE = "2"

_A72 = ("processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n")
#: A Raspberry Pi 4's /proc/cpuinfo: four Cortex-A72 cores (implementer 0x41, part 0xd08).
PI_CPUINFO = "".join(_A72.format(n=n) for n in range(4)) + (
    "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
#: A VisionFive 2's /proc/cpuinfo: four SiFive U74 harts with Zba/Zbb.
RISCV_CPUINFO = "".join(
    f"processor\t: {n}\nhart\t\t: {n}\nisa\t\t: rv64imafdc_zicntr_zicsr_zifencei_zihpm_zba_zbb\n"
    "mmu\t\t: sv39\nuarch\t\t: sifive,u74-mc\n\n" for n in range(4))


@dataclass(frozen=True)
class Board:
    """One emulated board: its Debian release, Python, compiler and emulator.

    Attributes:
        name: ``pi`` or ``riscv64`` (cache folder names, the check's ``--board``).
        deb_arch: Debian's name of the architecture.
        machine: ``platform.machine()`` there.
        python: ``major.minor`` of the release's Python.
        cpu: qemu's ``-cpu`` value.
        packages: what debootstrap downloads beyond the base (then all of it is unpacked).
        env: environment of the cross build (``ANYEDGE_RISCV_MARCH``, as on a Zbb board).
        popcount: the instruction the kernels' popcounts must compile to (objdump mnemonic).
        pip_on_board: install with the board's pip under qemu (else this host's pip with
            the board's platform tags).
        extras: the extras the README's install line names.
    """

    name: str
    title: str
    deb_arch: str
    suite: str
    machine: str
    python: str
    cc: str
    objdump: str
    qemu: str
    cpu: str
    packages: tuple[str, ...]
    cpuinfo: str
    popcount: str
    pip_on_board: bool
    extras: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def triplet(self) -> str:
        return f"{self.machine}-linux-gnu"

    @property
    def ext_suffix(self) -> str:
        return f".cpython-{self.python.replace('.', '')}-{self.triplet}.so"

    @property
    def wheel_tag(self) -> str:
        return f"{self.abi}-{self.abi}-linux_{self.machine}"


BOARDS: dict[str, Board] = {
    b.name: b
    for b in [
        Board("pi", "Raspberry Pi OS 64-bit (Debian 12 bookworm, arm64), Python 3.11, Cortex-A72 under qemu-aarch64",
              "arm64", "bookworm", "aarch64", "3.11", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objdump",
              "qemu-aarch64", "cortex-a72",
              ("python3", "python3-venv", "libpython3.11", "libpython3.11-dev", "libstdc++6", "libgomp1"),
              PI_CPUINFO, "cnt", pip_on_board=False, extras=("openvino",)),
        Board("riscv64", "Debian 13 trixie riscv64, Python 3.13, rv64gc + Zbb under qemu-riscv64",
              "riscv64", "trixie", "riscv64", "3.13", "riscv64-linux-gnu-gcc", "riscv64-linux-gnu-objdump",
              "qemu-riscv64", "rv64,zbb=true",
              ("python3", "python3-venv", "python3-numpy", "libpython3.13-dev"),
              RISCV_CPUINFO, "cpop", pip_on_board=True, env={"ANYEDGE_RISCV_MARCH": "rv64gc_zbb"}),
    ]
}


def boards_cache(override: str | os.PathLike[str] | None = None) -> Path:
    """``boards/`` beside anyedge's model cache (``~/.cache/anyedge/boards``), or ``override``."""
    return Path(override).expanduser() if override else cache_dir().parent / "boards"


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run(cmd: Sequence[str], *, what: str, timeout: float = 1800, **kw) -> subprocess.CompletedProcess[str]:
    log.debug("$ %s", " ".join(map(str, cmd)))
    try:
        proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError as e:
        raise ConversionError(f"{what}: {e.filename} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ConversionError(f"{what}: no answer within {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise ConversionError(f"{what} failed ({proc.returncode}): {tail}")
    return proc


def _cached(folder: Path, make: Callable[[Path], None], *, progress: Callable[[str], None], what: str) -> Path:
    """``folder`` if it exists; else ``make(tmp)`` in a sibling temporary folder renamed to ``folder``."""
    if folder.is_dir():
        progress(f"{what}: cached ({folder})")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    progress(f"{what}: making {folder} ...")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        make(tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another run made it meanwhile
            if not folder.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# -- the root filesystem ------------------------------------------------------------------------------

def rootfs(board: Board, cache: Path, *, mirror: str = MIRROR, progress: Callable[[str], None] = log.info) -> Path:
    """The board's Debian root (cached): debootstrap's first stage, every package unpacked, ``proc/cpuinfo``.

    Raises:
        ConversionError: debootstrap or dpkg is missing or failed (network, mirror).
    """
    key = _digest(RECIPE, board.deb_arch, board.suite, board.packages, mirror, board.cpuinfo)

    def make(tmp: Path) -> None:
        root = tmp / "root"
        _run(["debootstrap", "--foreign", f"--arch={board.deb_arch}", "--variant=minbase",
              "--include=" + ",".join(board.packages), board.suite, root, mirror],
             what=f"debootstrap {board.suite} {board.deb_arch}")
        debs = sorted((root / "var/cache/apt/archives").glob("*.deb"))
        if not debs:
            raise ConversionError(f"debootstrap left no packages in {root}/var/cache/apt/archives")
        for deb in debs:  # what the second stage would unpack; no maintainer script runs
            _run(["dpkg-deb", "-x", deb, root], what=f"dpkg-deb -x {deb.name}")
            deb.unlink()
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc/cpuinfo").write_text(board.cpuinfo)
        lib = root / "usr/lib" / board.triplet
        for name, alt in (("libblas.so.3", "blas"), ("liblapack.so.3", "lapack")):
            # update-alternatives links, made by the postinst that did not run
            if (lib / alt / name).exists() and not (lib / name).exists():
                (lib / name).symlink_to(f"{alt}/{name}")
        py = root / "usr/bin" / f"python{board.python}"
        if not py.exists():
            raise ConversionError(f"the {board.suite} root has no {py.name}")

    return _cached(cache / f"rootfs-{board.name}-{key}", make, progress=progress,
                   what=f"{board.name} root filesystem ({board.suite} {board.deb_arch})") / "root"


class Emulator:
    """Runs the board's Python (or any of its programs) under qemu-user with the root as ``-L`` prefix."""

    def __init__(self, board: Board, root: Path) -> None:
        self.board = board
        self.root = root
        self.python = root / "usr/bin" / f"python{board.python}"

    def command(self, program: str | os.PathLike[str], *args: str | os.PathLike[str]) -> list[str]:
        return [self.board.qemu, "-L", str(self.root), "-cpu", self.board.cpu, str(program), *map(str, args)]


# -- the wheel ----------------------------------------------------------------------------------------

#: What the wheel is built from (the check harnesses, tests and benchmarks are not in it).
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "sdk/", "converters/", "targets/")


def _source_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode().split("\0")
    return sorted(n for n in out if n and n.startswith(WHEEL_SOURCES) and not n.startswith("targets/checks/")
                  and (ROOT / n).is_file())


def source_digest(files: Iterable[str] | None = None) -> str:
    """A hash of the checkout's files (names and bytes): what the wheel is built from."""
    h = hashlib.sha256()
    for name in files if files is not None else _source_files():
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _setup_module():
    spec = importlib.util.spec_from_file_location("anyedge_setup", ROOT / "setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]  # setup() runs only under __main__
    return mod


def _sysconfig_vars(root: Path, board: Board) -> dict[str, str]:
    """The root's ``sysconfig`` build variables (CC, CFLAGS, CCSHARED, LDSHARED): what setuptools uses there."""
    lib = root / "usr/lib" / f"python{board.python}"
    found = sorted(lib.glob(f"_sysconfigdata_*{board.triplet}.py"))
    if not found:
        raise ConversionError(f"no _sysconfigdata_*{board.triplet}.py in {lib}")
    text = found[0].read_text()
    import ast

    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "build_time_vars":
            data = ast.literal_eval(node.value)
            return {k: str(data.get(k, "")) for k in ("CC", "CFLAGS", "CCSHARED", "LDSHARED", "EXT_SUFFIX")}
    raise ConversionError(f"{found[0]} holds no build_time_vars")


def cross_flags(board: Board, root: Path) -> tuple[list[str], list[str], list[str]]:
    """``(compile, anyedge's flags, link)`` command prefixes for an extension, as setuptools would run them on the board.

    The board's ``sysconfig`` names the compiler (``aarch64-linux-gnu-gcc`` on Debian arm64: the
    same name as the cross compiler here), its flags and ``-shared``; setup.py's
    :func:`compile_flags` adds what anyedge adds there, with the board's environment.
    """
    v = _sysconfig_vars(root, board)
    if v["EXT_SUFFIX"] != board.ext_suffix:
        raise ConversionError(f"{board.name}: the root's EXT_SUFFIX is {v['EXT_SUFFIX']}, expected {board.ext_suffix}")
    cc = board.cc

    def accepts(flag: str) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe.c"
            src.write_text("int main(void) { volatile unsigned long long x = 5; return __builtin_popcountll(x) == 2 ? 0 : 1; }\n")
            return subprocess.run([cc, "-c", str(src), "-o", str(Path(tmp) / "probe.o"), flag],
                                  capture_output=True).returncode == 0

    saved = {k: os.environ.get(k) for k in board.env}
    os.environ.update(board.env)
    try:
        extra = _setup_module().compile_flags([cc], accepts)
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old
    board_cc = v["CC"].split()
    compile_cmd = [cc, *board_cc[1:], *v["CFLAGS"].split(), *v["CCSHARED"].split(),
                   f"-I{root}/usr/include/python{board.python}",
                   # after the cross compiler's own C library headers: the root's pyconfig.h wrapper
                   # includes <TRIPLET/pythonX.Y/pyconfig.h> from here, and nothing else may come from here
                   "-idirafter", f"{root}/usr/include"]
    link = [cc, *v["LDSHARED"].split()[1:]]
    return compile_cmd, list(extra), link


#: The compiled extensions: module name -> the generated C (in the built source tree) and include dirs.
EXTENSIONS = {"anyedge.targets.bnn._kernels": ("targets/bnn/_kernels.c", ()),
              "anyedge.ops._resize": ("sdk/ops/_resize.c", ("sdk/ops",)),
              "anyedge.ops._decode": ("sdk/ops/_decode.c", ())}


def _record_line(name: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def repack_wheel(wheel: Path, out_dir: Path, tag: str, replace: Mapping[str, bytes]) -> Path:
    """``wheel`` with every compiled module dropped, ``replace`` (archive name -> bytes) added, tagged ``tag``.

    Raises:
        ConversionError: the wheel has no WHEEL or RECORD file.
    """
    name, version = wheel.name.split("-")[:2]
    dist_info = f"{name}-{version}.dist-info"
    out = out_dir / f"{name}-{version}-{tag}.whl"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if info.filename.endswith(".so") or info.filename == f"{dist_info}/RECORD":
                continue
            files[info.filename] = z.read(info)
    if f"{dist_info}/WHEEL" not in files:
        raise ConversionError(f"{wheel.name} has no {dist_info}/WHEEL")
    meta = files[f"{dist_info}/WHEEL"].decode()
    meta = re.sub(r"(?m)^Tag: .*$", f"Tag: {tag}", meta)
    meta = re.sub(r"(?m)^Root-Is-Purelib: .*$", "Root-Is-Purelib: false", meta)
    files[f"{dist_info}/WHEEL"] = meta.encode()
    files.update(replace)
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for fname, data in files.items():
        writer.writerow(_record_line(fname, data))
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for fname, data in files.items():
            z.writestr(fname, data)
        z.writestr(f"{dist_info}/RECORD", record.getvalue())
    os.replace(tmp, out)
    return out


def board_wheel(board: Board, root: Path, cache: Path, *, progress: Callable[[str], None] = log.info) -> Path:
    """anyedge's wheel for the board, built from this checkout (cached by the checkout's files).

    Raises:
        ConversionError: the host wheel build or a cross compile failed.
    """
    files = _source_files()
    key = _digest(RECIPE, WHEEL_RECIPE, source_digest(files), board.name, board.cc, dict(board.env), root.parent.name)

    def make(tmp: Path) -> None:
        src = tmp / "src"
        for name in files:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
        built = tmp / "host"
        # CC=false: the host's own kernels are not wanted (the build then says it skipped them);
        # the build still writes the Cython-generated C into src/, which is what gets cross-compiled.
        env = {**os.environ, "CC": "false", "LDSHARED": "false"}
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", built, src],
             what="building anyedge's wheel from this checkout", env=env)
        (host_wheel,) = built.glob("anyedge-*.whl")
        compile_cmd, extra, link = cross_flags(board, root)
        replace: dict[str, bytes] = {}
        for module, (c_file, includes) in EXTENSIONS.items():
            c_path = src / c_file
            if not c_path.is_file():
                raise ConversionError(f"the build wrote no {c_file} (is Cython installed in {sys.executable}?)")
            obj = tmp / (module + ".o")
            so = tmp / (module.rsplit(".", 1)[-1] + board.ext_suffix)
            cmd = [*compile_cmd, *extra, *(f"-I{src / d}" for d in includes), "-c", str(c_path), "-o", str(obj)]
            _run(cmd, what=f"{board.cc} {c_file}")
            _run([*link, str(obj), "-o", str(so)], what=f"linking {so.name}")
            replace[module.replace(".", "/") + board.ext_suffix] = so.read_bytes()
        (tmp / "flags.json").write_text(json.dumps({"compile": compile_cmd, "anyedge": extra, "link": link}, indent=1))
        repack_wheel(host_wheel, tmp, board.wheel_tag, replace)
        shutil.rmtree(src)
        shutil.rmtree(built)

    folder = _cached(cache / f"wheel-{board.name}-{key}", make, progress=progress, what=f"anyedge wheel for {board.name}")
    (wheel,) = folder.glob("anyedge-*.whl")
    return wheel


def wheel_flags(wheel: Path) -> dict[str, list[str]]:
    """The compile and link commands the board wheel's kernels were built with."""
    return json.loads((wheel.parent / "flags.json").read_text())


# -- the install --------------------------------------------------------------------------------------

def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    return sorted(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:"))


def _pip_platform_args(board: Board) -> list[str]:
    from install_check import BOARDS as RESOLVE_BOARDS

    tags = RESOLVE_BOARDS["pi-os-64"].platform_tags() if board.machine == "aarch64" else []
    args = ["--python-version", board.python, "--implementation", "cp", "--abi", board.abi,
            "--only-binary=:all:"]
    for tag in [*tags, f"linux_{board.machine}"]:
        args += ["--platform", tag]
    return args


@dataclass(frozen=True)
class Installed:
    """Where anyedge sits on the board: the Python to run and the ``anyedge`` script it runs."""

    python: Path  # the board's Python (the venv's, or the system one with PYTHONPATH)
    script: Path  # the installed ``anyedge`` console script (run as ``python script``)
    pythonpath: tuple[Path, ...]  # extra sys.path entries (host-pip installs)
    how: str  # the install command, as run


def install(board: Board, root: Path, wheel: Path, cache: Path, *,
            progress: Callable[[str], None] = log.info) -> Installed:
    """Install the board wheel with its dependencies, the README's way (cached).

    Raises:
        ConversionError: pip failed.
    """
    spec = f"{wheel}[{','.join(board.extras)}]" if board.extras else str(wheel)
    if board.pip_on_board:
        return _install_with_board_pip(board, root, wheel, cache, progress=progress)
    # host pip, board's tags: the dependencies (keyed by what the wheel requires), then anyedge alone
    deps_key = _digest(RECIPE, board.name, _requires_dist(wheel), board.extras)

    def make_deps(tmp: Path) -> None:
        site = tmp / "site"
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", site,
              *_pip_platform_args(board), spec], what=f"pip install {spec} for {board.machine}", timeout=3600)
        for p in [*site.glob("anyedge"), *site.glob("anyedge-*.dist-info")]:
            shutil.rmtree(p)
        for p in site.glob("bin/anyedge"):
            p.unlink()

    deps = _cached(cache / f"deps-{board.name}-{deps_key}", make_deps, progress=progress,
                   what=f"{board.name} dependencies (pip, {board.machine} wheels)") / "site"
    own_key = _digest(RECIPE, wheel.parent.name)

    def make_own(tmp: Path) -> None:
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--no-deps", "--target", tmp / "site",
              *_pip_platform_args(board), str(wheel)], what=f"pip install {wheel.name}")

    own = _cached(cache / f"site-{board.name}-{own_key}", make_own, progress=progress,
                  what=f"anyedge on {board.name}") / "site"
    how = (f"pip install --target DIR {' '.join(_pip_platform_args(board)[:8])} ... "
           f"'{wheel.name}[{','.join(board.extras)}]' (this host's pip, the board's tags)")
    return Installed(root / "usr/bin" / f"python{board.python}", own / "bin" / "anyedge", (own, deps), how)


def _install_with_board_pip(board: Board, root: Path, wheel: Path, cache: Path, *,
                            progress: Callable[[str], None]) -> Installed:
    key = _digest(RECIPE, root.parent.name, wheel.parent.name)
    emu = Emulator(board, root)
    pip_whl = sorted((root / "usr/share/python-wheels").glob("pip-*.whl"))
    if not pip_whl:
        raise ConversionError(f"the {board.name} root has no pip wheel in usr/share/python-wheels")

    folder = cache / f"venv-{board.name}-{key}"
    done = folder / "pip-report.json"  # written last: a venv without it is half-made
    if done.is_file():
        progress(f"anyedge on {board.name}: cached ({folder})")
    else:
        progress(f"anyedge on {board.name}: python -m venv --system-site-packages, pip install (under qemu) ...")
        shutil.rmtree(folder, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=cache))
        try:
            # a venv records its own path, so it is made where it stays
            _run(emu.command(emu.python, "-m", "venv", "--system-site-packages", "--without-pip", folder),
                 what=f"python{board.python} -m venv under {board.qemu}")
            wheels = tmp / "wheels"
            wheels.mkdir()
            shutil.copy2(wheel, wheels / wheel.name)
            # the board's pip, from Debian's wheel; --no-index: PyPI has nothing more for riscv64,
            # and numpy is Debian's (the venv sees the system site)
            _run(emu.command(folder / "bin/python", pip_whl[-1] / "pip", "install", "--no-index",
                             "--no-compile", "--find-links", wheels, "--report", tmp / "report.json", "anyedge"),
                 what=f"pip install anyedge under {board.qemu}", timeout=3600)
            os.replace(tmp / "report.json", done)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    how = "python3 -m venv --system-site-packages; pip install anyedge (the board's pip under qemu, --no-index)"
    return Installed(folder / "bin/python", folder / "bin/anyedge", (), how)


def pip_report(installed: Installed) -> list[str]:
    """What the board's pip installed (names), from the report it wrote; empty for host-pip installs."""
    path = installed.script.parent.parent / "pip-report.json"
    if not path.is_file():
        return []
    return sorted(item["metadata"]["name"] for item in json.loads(path.read_text())["install"])


def prepare(board: Board, cache: Path, *, mirror: str = MIRROR,
            progress: Callable[[str], None] = log.info) -> tuple[Emulator, Path, Installed]:
    """Root filesystem, wheel and install for ``board`` (each cached): the emulator, the wheel, the install."""
    root = rootfs(board, cache, mirror=mirror, progress=progress)
    wheel = board_wheel(board, root, cache, progress=progress)
    return Emulator(board, root), wheel, install(board, root, wheel, cache, progress=progress)
