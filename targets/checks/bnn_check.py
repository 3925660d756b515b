"""Compile the portable C library with a model header and run it: on this host, and for riscv64/aarch64 under qemu.

``python targets/checks/bnn_check.py`` (what ``make riscv-check`` and ``make aarch64-check``
run) takes every shipped BNN, runs its data set's ``_TEST`` windows through the C library built
with the host compiler and, when the cross compilers and qemu are installed
(``riscv64-linux-gnu-gcc`` + ``qemu-riscv64``, ``aarch64-linux-gnu-gcc`` + ``qemu-aarch64``),
cross-built for those, and compares every score with the numpy reference. With ``--kernels-c``
it also compiles the Cython kernels' generated C with each cross compiler and checks that the
popcount became the target's instruction (AArch64 ``cnt``; RISC-V Zbb ``cpop``). It exits 1 on
any difference.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from anyedge.errors import ConversionError, EngineUnavailableError, InputError
from anyedge.targets.bnn import C_DIR, KERNELS_PYX
from anyedge.targets.bnn.format import BnnModel
from c_toolchains import CHECK_FLAGS, Toolchain, aarch64_toolchain, host_toolchain, riscv_toolchain

__all__ = [
    "C_DIR",
    "CResult",
    "Toolchain",
    "host_toolchain",
    "riscv_toolchain",
    "aarch64_toolchain",
    "compile_kernels_c",
    "build_harness",
    "run_harness",
    "fnv1a",
    "main",
]

log = logging.getLogger(__name__)

CHECK_C = Path(__file__).resolve().parent / "c" / "bnn_check.c"


@dataclass(frozen=True)
class CResult:
    """What the harness printed for each window.

    Attributes:
        rc: ``(n,)`` return codes of ``aebnn_run`` (0 is ``AEBNN_OK``).
        qhash: ``(n,)`` FNV-1a hashes of the int8 quantized windows.
        scores: ``(n, classes)`` int32 scores.
        argmax: ``(n,)`` predicted class indices.
    """

    rc: np.ndarray
    qhash: np.ndarray
    scores: np.ndarray
    argmax: np.ndarray


# What the popcount must compile to in the Cython kernels, per cross target: (-march flags, objdump, mnemonic).
_KERNEL_POPCOUNT = {
    "aarch64": ((), "aarch64-linux-gnu-objdump", "cnt"),
    "riscv64": (("-march=rv64gc_zbb", "-mabi=lp64d"), "riscv64-linux-gnu-objdump", "cpop"),
}


def compile_kernels_c(toolchain: Toolchain, workdir: str | os.PathLike[str]) -> tuple[Path, int]:
    """Cythonize ``_kernels.pyx`` and compile its C (object only) with ``toolchain``'s compiler.

    Uses the setup.py flags for that target (Zbb for riscv64) and counts the target's popcount
    instruction in the object. Python's headers come from this interpreter (the 64-bit Linux
    ABIs agree on every size the kernels use); nothing is linked or run.

    Returns:
        ``(object file, number of popcount instructions found)``.

    Raises:
        ConversionError: Cython or the compiler failed, or the objdump is missing.
    """
    import sysconfig

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    c_file = work / "_kernels.c"
    pyx = KERNELS_PYX
    proc = subprocess.run([sys.executable, "-m", "cython", "-3", str(pyx), "-o", str(c_file)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConversionError(f"cython failed on {pyx}: {proc.stderr[-2000:]}")
    march, objdump, mnemonic = _KERNEL_POPCOUNT[toolchain.name]
    obj = work / f"_kernels_{toolchain.name}.o"
    cmd = [toolchain.cc, "-c", "-O3", "-ffp-contract=off", "-fPIC", *march,
           f"-I{sysconfig.get_paths()['include']}", str(c_file), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConversionError(f"{toolchain.cc} failed on the Cython kernels: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    if not shutil.which(objdump):
        raise ConversionError(f"{objdump} is missing (it comes with the cross compiler's binutils)")
    dis = subprocess.run([objdump, "-d", str(obj)], capture_output=True, text=True, check=True).stdout
    count = sum(1 for line in dis.splitlines() if line.split("\t")[2:3] and line.split("\t")[2].strip() == mnemonic)
    return obj, count


def fnv1a(q: np.ndarray) -> int:
    """FNV-1a of int8 bytes, as the harness computes it."""
    h = 2166136261
    for b in np.asarray(q, dtype=np.int8).view(np.uint8).ravel().tolist():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def build_harness(model: BnnModel, workdir: str | os.PathLike[str], toolchain: Toolchain, *,
                  name: str = "model") -> Path:
    """Generate the model header and compile ``bnn_check.c`` + ``anyedge_bnn.c`` with ``toolchain``.

    Returns:
        The path of the executable.

    Raises:
        ConversionError: the compiler reported an error.
    """
    from anyedge.converters.bnn import write_c_header

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    write_c_header(model, work / "aebnn_model.h", name=name)
    exe = work / f"bnn_check_{toolchain.name}"
    cmd = [toolchain.cc, *CHECK_FLAGS, *toolchain.flags, f"-I{C_DIR}", f"-I{work}",
           str(C_DIR / "anyedge_bnn.c"), str(CHECK_C), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConversionError(f"{toolchain.cc} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return exe


def run_harness(exe: str | os.PathLike[str], windows: np.ndarray, toolchain: Toolchain, *,
                n_classes: int, timeout: float = 600.0) -> CResult:
    """Run a built harness on ``(n, window, channels)`` float32 windows.

    Raises:
        InputError: ``windows`` is not a 3-D array.
        ConversionError: the program failed or printed something unexpected.
    """
    w = np.ascontiguousarray(windows, dtype="<f4")
    if w.ndim != 3:
        raise InputError(f"expected (n, window, channels) windows, got shape {w.shape}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "windows.bin"
        path.write_bytes(struct.pack("<3I", *w.shape) + w.tobytes())
        proc = subprocess.run([*toolchain.runner, str(exe), str(path)], capture_output=True, text=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise ConversionError(f"{exe} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    lines = proc.stdout.split("\n")[:-1]
    if len(lines) != w.shape[0]:
        raise ConversionError(f"{exe} printed {len(lines)} lines for {w.shape[0]} windows")
    try:
        rows = np.array([[int(v) for v in line.split()] for line in lines], dtype=np.int64)
    except ValueError:
        raise ConversionError(f"{exe} printed non-integer output: {lines[:2]}") from None
    if rows.shape != (w.shape[0], n_classes + 3):
        raise ConversionError(f"{exe} printed rows of {rows.shape[1:]} values, expected {n_classes + 3}")
    return CResult(rc=rows[:, 0], qhash=rows[:, 1].astype(np.uint32), scores=rows[:, 2:-1].astype(np.int32),
                   argmax=rows[:, -1])


def check_model(model: BnnModel, windows: np.ndarray, toolchain: Toolchain, *, name: str = "model") -> int:
    """Build and run the C library for ``toolchain``; return how many windows differ from the reference."""
    from anyedge.targets.bnn.reference import forward, quantize

    with tempfile.TemporaryDirectory() as tmp:
        exe = build_harness(model, tmp, toolchain, name=name)
        res = run_harness(exe, windows, toolchain, n_classes=model.n_classes)
    ref = forward(model, windows)
    q = quantize(windows, model.offset, model.inv_scale)
    hashes = np.array([fnv1a(qi) for qi in q], dtype=np.uint32)
    bad = (res.rc != 0) | (res.qhash != hashes) | (res.scores != ref).any(axis=1)
    return int(bad.sum())


def main(argv: Sequence[str] | None = None) -> int:
    """Compare C (host, and riscv64 under qemu) with the numpy reference on every shipped model's test windows."""
    from anyedge.bundle import load_bundle
    from anyedge.har.data import har_dataset_path, load_ts
    from anyedge.registry import PACKAGED_BUNDLES, packaged_bundle
    from anyedge.targets.bnn.format import read_bnn

    ap = argparse.ArgumentParser(prog="python targets/checks/bnn_check.py", description=main.__doc__)
    ap.add_argument("--require-riscv", action="store_true", help="fail when the riscv64 toolchain or qemu is missing")
    ap.add_argument("--require-aarch64", action="store_true",
                    help="fail when the aarch64 toolchain or qemu is missing")
    ap.add_argument("--arch", action="append", choices=["host", "riscv64", "aarch64"], default=None,
                    help="check only these (repeatable; default: every toolchain installed)")
    ap.add_argument("--kernels-c", action="store_true",
                    help="also compile the Cython kernels' C with each cross compiler and check its popcount")
    ap.add_argument("--data-root", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chains = [t for t in (host_toolchain(), riscv_toolchain(), aarch64_toolchain())
              if t is not None and (args.arch is None or t.name in args.arch)]
    for arch, required in (("riscv64", args.require_riscv), ("aarch64", args.require_aarch64)):
        if args.arch is not None and arch not in args.arch:
            continue
        if not any(t.name == arch for t in chains):
            msg = (f"{arch}-linux-gnu-gcc and qemu-{arch} are not both installed "
                   f"(apt-get install gcc-{arch}-linux-gnu qemu-user)")
            if required:
                print(f"error: {msg}", file=sys.stderr)
                return 2
            log.warning("%s; skipping %s", msg, arch)
    failures = 0
    if args.kernels_c:
        for chain in chains:
            if chain.name not in _KERNEL_POPCOUNT:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    _, n = compile_kernels_c(chain, tmp)
                except (ConversionError, subprocess.CalledProcessError) as e:
                    print(f"error: Cython kernels for {chain.name}: {e}", file=sys.stderr)
                    failures += 1
                    continue
            mnemonic = _KERNEL_POPCOUNT[chain.name][2]
            ok = n > 0
            failures += 0 if ok else 1
            print(f"Cython kernels: C compiled with {chain.cc}: {n} '{mnemonic}' popcount instruction(s)"
                  + ("" if ok else " -- expected at least one"))
    names = [n for n in PACKAGED_BUNDLES if n.startswith("bnn-")]
    if not names:
        print("error: no shipped BNN bundles registered", file=sys.stderr)
        return 2
    for name in names:
        bdir = packaged_bundle(name)
        bundle = load_bundle(bdir)  # type: ignore[arg-type]
        model = read_bnn(bundle.model_path)
        dataset = bundle.manifest.get("training", {}).get("data", "").replace("_TRAIN.ts", "")
        test = load_ts(har_dataset_path(dataset, "test", args.data_root))
        for chain in chains:
            try:
                bad = check_model(model, test.x, chain, name=name)
            except (ConversionError, EngineUnavailableError, subprocess.TimeoutExpired) as e:
                print(f"error: {name} on {chain.name}: {e}", file=sys.stderr)
                failures += 1
                continue
            failures += bad
            print(f"{name}: C on {chain.name}: {len(test) - bad}/{len(test)} test windows bit-identical to the numpy reference")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
