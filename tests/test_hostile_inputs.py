"""Signals, hangs and memory on hostile inputs: every case ends with one line and its exit code."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ANYEDGE = Path(sys.executable).with_name("anyedge")  # the console script, as users start it


def _wait_for(proc: subprocess.Popen, marker: bytes, timeout: float) -> bytes:
    """Read the child's stderr until ``marker`` shows up (progress bars use \\r, so read raw bytes)."""
    seen = b""
    fd = proc.stderr.fileno()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"never saw {marker!r}; stderr so far: {seen[-2000:]!r}")
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 65536)
    return seen


# -- signals ----------------------------------------------------------------------------------
def test_sigterm_while_quantizing_ends_convert_with_143_and_leaves_nothing(faces_calib: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    p = subprocess.Popen([str(ANYEDGE), "convert", "blazeface-short", "--target", "arm-cpu", "--calib",
                          str(faces_calib), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = _wait_for(p, b"Running Calibration", 300)
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=120)
    err = (seen + err).decode(errors="replace")
    assert p.returncode == 143, err[-2000:]
    assert err.rstrip().endswith("anyedge: terminated") and "Traceback" not in err  # after a progress bar
    assert not out.exists() and not list(tmp_path.iterdir()), rest


def test_ctrl_c_while_the_command_still_imports_is_one_line_and_130() -> None:
    # -X importtime reports each import as it finishes: interrupt right after anyedge's first module,
    # while the console script is still importing anyedge.cli (before main() runs)
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    p = subprocess.Popen([str(ANYEDGE), "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen = _wait_for(p, b" anyedge.errors\n", 60)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    err = (seen + err).decode(errors="replace")
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.rstrip().splitlines()[-1] == "anyedge: interrupted"


def test_a_second_ctrl_c_while_reporting_the_first_keeps_130() -> None:
    # the command interrupts itself; stderr sends a second SIGINT while the one-line report is written
    code = textwrap.dedent("""
        import os, signal, sys
        from anyedge import cli

        class Stderr:
            sent = False
            def __init__(self, real): self.real = real
            def write(self, s):
                if "interrupted" in s and not Stderr.sent:
                    Stderr.sent = True
                    os.kill(os.getpid(), signal.SIGINT)
                return self.real.write(s)
            def flush(self): self.real.flush()
            def fileno(self): return self.real.fileno()

        def models(args):
            os.kill(os.getpid(), signal.SIGINT)
            return 0

        cli._cmd_models = models
        sys.stderr = Stderr(sys.stderr)
        sys.exit(cli.main(["models"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines() == ["anyedge: interrupted"]


# -- stdout that cannot be written --------------------------------------------------------------
@pytest.mark.parametrize("redirect", [">/dev/full", ">&-"], ids=["full", "closed"])
@pytest.mark.parametrize("json_flag", ["--json", ""])
def test_stdout_full_or_closed_is_one_line_and_141(redirect: str, json_flag: str) -> None:
    r = subprocess.run(f"'{ANYEDGE}' models {json_flag} {redirect}", shell=True, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 141, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anyedge: error: ") and "stdout" in lines[0], r.stderr
