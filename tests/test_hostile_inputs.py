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
        from anyedge.registry import cli as models_cli

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

        models_cli._cmd_models = models
        sys.stderr = Stderr(sys.stderr)
        sys.exit(cli.main(["models"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines() == ["anyedge: interrupted"]


def test_a_second_ctrl_c_stops_a_command_that_swallowed_the_first() -> None:
    code = textwrap.dedent("""
        import os, signal, sys, time
        from anyedge import cli
        from anyedge.registry import cli as models_cli

        def models(args):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                pass  # as a careless library might
            print("swallowed", file=sys.stderr, flush=True)
            time.sleep(120)
            return 0

        models_cli._cmd_models = models
        sys.exit(cli.main(["models"]))
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = _wait_for(p, b"swallowed\n", 60)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, (seen + err).decode()
    assert err.decode().strip().splitlines() == ["anyedge: interrupted"]


# -- stdout that cannot be written --------------------------------------------------------------
@pytest.mark.parametrize("redirect", [">/dev/full", ">&-"], ids=["full", "closed"])
@pytest.mark.parametrize("json_flag", ["--json", ""])
def test_stdout_full_or_closed_is_one_line_and_141(redirect: str, json_flag: str) -> None:
    r = subprocess.run(f"'{ANYEDGE}' models {json_flag} {redirect}", shell=True, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 141, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anyedge: error: ") and "stdout" in lines[0], r.stderr


# -- files that are not files -------------------------------------------------------------------
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("argv", [
    ["detect", "{fifo}", "--model", "yunet-n-320"],
    ["har", "classify", "{fifo}", "--model", "bnn-basicmotions"],
    ["har", "stream", "--source", "{fifo}", "--model", "bnn-basicmotions"],
    ["run", "--source", "{fifo}", "--model", "yunet-n-320"],
    ["detect", "{photo}", "--model", "{fifo}"],
], ids=["detect", "har-classify", "har-stream", "run", "model-path"])
def test_a_fifo_named_like_a_file_is_refused_without_opening_it(tmp_path: Path, argv: list[str]) -> None:
    fifo = _fifo(tmp_path / "x.mp4")  # nobody ever writes: opening it would block for good
    photo = Path(os.environ["ANYEDGE_DATA"]) / "faces" / "smoke" / "couple.jpg"
    p = subprocess.Popen([str(ANYEDGE), *(a.format(fifo=fifo, photo=photo) for a in argv)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"anyedge {' '.join(argv)} blocked on the FIFO") from None
    assert p.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "FIFO" in lines[0] and str(fifo) in lines[0], err


def test_a_fifo_among_the_images_is_one_failed_input(tmp_path: Path) -> None:
    from anyedge.errors import InputError
    from anyedge.ops.image import read_image

    with pytest.raises(InputError, match="FIFO"):
        read_image(_fifo(tmp_path / "photo.jpg"))
    with pytest.raises(InputError, match="directory"):
        read_image(tmp_path)


# -- images whose header promises too much ------------------------------------------------------
def _png(path: Path, w: int, h: int) -> Path:
    """A valid grey PNG of zeros, written row by row (a 30000x30000 one is 0.9 MB on disk)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(w + 1)  # filter byte + w grey pixels
    idat = b"".join([*(z.compress(row) for _ in range(h)), z.flush()])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _png(tmp_path_factory.mktemp("huge") / "huge.png", 30000, 30000)


def test_a_900_megapixel_png_is_refused_from_its_header_with_little_memory(huge_png: Path) -> None:
    assert huge_png.stat().st_size < 2 << 20
    code = textwrap.dedent("""
        import sys
        from anyedge.errors import InputError
        from anyedge.ops.image import read_image
        try:
            read_image(sys.argv[1])
            print("decoded")
        except InputError as e:
            print("refused:", e)
        # VmHWM is this process's own peak: ru_maxrss would carry the parent's over fork and exec
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        print(int(hwm.split()[1]) // 1024)
    """)
    r = subprocess.run([sys.executable, "-c", code, str(huge_png)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    verdict, peak_mb = r.stdout.strip().splitlines()
    assert verdict.startswith("refused:") and "30000x30000" in verdict
    assert int(peak_mb) < 500, f"peak RSS {peak_mb} MB refusing a 900 MP PNG (decoding it costs ~2.7 GB)"


def test_detect_refuses_the_huge_png_in_one_line_with_little_memory(huge_png: Path) -> None:
    r, peak = _peak_rss_mb_of([str(ANYEDGE), "detect", str(huge_png), "--model", "yunet-n-320"])
    assert r.returncode == 1, r.stderr  # one input failed (detect goes on with the others)
    assert r.stderr.strip().splitlines() == [
        f"anyedge: error: {huge_png}: image has 900000000 pixels (30000x30000); at most 100000000 are accepted"]
    assert peak < 500, f"peak RSS {peak} MB refusing a 900 MP PNG (model and engine included)"


def _encoded(ext: str, w: int, h: int, tmp_path: Path, **params: int) -> Path:
    import cv2
    import numpy as np

    img = (np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3) % 251).astype(np.uint8)
    p = tmp_path / f"img{len(params)}{ext}"
    flags = [v for kv in ((getattr(cv2, k), v) for k, v in params.items()) for v in kv]
    assert cv2.imwrite(str(p), img, flags)
    return p


@pytest.mark.parametrize("ext,params", [
    (".png", {}), (".jpg", {}), (".jpg", {"IMWRITE_JPEG_PROGRESSIVE": 1}), (".bmp", {}), (".webp", {}),
    (".webp", {"IMWRITE_WEBP_QUALITY": 101}), (".tif", {}), (".ppm", {}),
], ids=["png", "jpeg", "jpeg-progressive", "bmp", "webp-lossy", "webp-lossless", "tiff", "ppm"])
def test_header_sizes_match_what_opencv_decodes(tmp_path: Path, ext: str, params: dict[str, int]) -> None:
    import cv2

    from anyedge.ops.image import image_size, read_image

    p = _encoded(ext, 53, 37, tmp_path, **params)
    assert image_size(p) == (53, 37)
    assert read_image(p).shape == cv2.imread(str(p)).shape == (37, 53, 3)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"BM", b"RIFF\0\0\0\0WEBP",
                                  b"GIF89a\x01\x00\x01\x00", b"not an image at all"],
                         ids=["empty", "png-cut", "jpeg-no-frame", "bmp-cut", "webp-cut", "gif", "text"])
def test_unreadable_headers_are_one_clear_error(tmp_path: Path, data: bytes) -> None:
    from anyedge.errors import InputError
    from anyedge.ops.image import read_image

    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    with pytest.raises(InputError, match="not a PNG, JPEG, BMP, WebP, TIFF or PNM image"):
        read_image(p)


# -- HAR text with hostile lines ----------------------------------------------------------------
def _peak_rss_mb_of(argv: list[str], **kw: object) -> tuple[subprocess.CompletedProcess, int]:
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(r.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); "
            "sys.stderr.write(r.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, **kw)
    rc, peak = r.stdout.split()
    return subprocess.CompletedProcess(argv, int(rc), "", r.stderr), int(peak)


def test_a_20_mb_csv_line_is_refused_without_buffering_it(tmp_path: Path) -> None:
    f = tmp_path / "long.csv"
    f.write_text("1.0," * 5_000_000 + "1.0\n")
    r, peak = _peak_rss_mb_of([str(ANYEDGE), "har", "stream", "--model", "bnn-basicmotions", "--source", str(f)])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["anyedge: error: line 1: longer than 4096 characters; "
                                             "expected a CSV sample line"]
    assert peak < 200, f"peak RSS {peak} MB refusing a 20 MB line"


def test_a_20_mb_ts_case_is_refused_without_buffering_it(tmp_path: Path) -> None:
    f = tmp_path / "long.ts"
    f.write_text("@problemName x\n@dimensions 1\n@classLabel true a\n@data\n" + "1.0," * 5_000_000 + "1.0:a\n")
    r, peak = _peak_rss_mb_of([str(ANYEDGE), "har", "classify", str(f), "--model", "bnn-basicmotions"])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"anyedge: error: {f}: line 5: longer than 4194304 characters; "
                                             "expected a case of a .ts file"]
    assert peak < 200, f"peak RSS {peak} MB refusing a 20 MB line"


@pytest.mark.parametrize("text,ok", [
    ("acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n1,2,3,4,5,6\n", True),
    ("# comment\n\nax;ay;az;gx;gy;gz\n1,2,3,4,5,6\n", True),
    ("1,2,3,4,5,6\n", True),
    ("1.0,x,3,4,5,6\n1,2,3,4,5,6\n", False),   # a broken sample, not a header
    ("acc_x,,acc_z,gyr_x,gyr_y,gyr_z\n1,2,3,4,5,6\n", False),  # an empty name
    ("nan?,1e3,z,q,w,e\n1,2,3,4,5,6\n", False),  # 1e3 is a number
    ("", True),
], ids=["header", "comment-then-header", "no-header", "malformed-first-line", "empty-name", "number-in-header",
        "empty"])
def test_a_first_line_is_a_header_only_when_it_looks_like_one(text: str, ok: bool) -> None:
    from anyedge.errors import InputError
    from anyedge.har.stream import csv_samples

    lines = text.splitlines(keepends=True)
    if ok:
        assert all(len(r) == 6 for r in csv_samples(lines, 6))
        return
    with pytest.raises(InputError, match=r"line \d+: expected 6 comma-separated numbers \(or a header"):
        list(csv_samples(lines, 6))


def test_a_malformed_first_csv_line_is_one_clear_error_on_the_command_line() -> None:
    r = subprocess.run([str(ANYEDGE), "har", "stream", "--model", "bnn-basicmotions"], input="1.0,x,3\n" + "1,2,3,4,5,6\n" * 200,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.strip().splitlines() == ["anyedge: error: line 1: expected 6 comma-separated numbers "
                                             "(or a header of channel names), got '1.0,x,3'"]
