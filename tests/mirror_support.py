"""A local stand-in for the model files' upstream host, for tests that download models.

:class:`MirrorServer` is an HTTP server on ``127.0.0.1`` (a free port) in a daemon thread. It
serves every registry model that has a repository source (``ModelInfo.source.raw``) under the
same path as the upstream raw-file host, ``/<owner>/<repo>/<commit>/<path>``, reading the bytes
from the local fixture folder (``ANYEDGE_MODEL_PATH`` when the server is created, searched
recursively by file name). Point anyedge at it with ``ANYEDGE_MODEL_MIRROR=<server.url>``.
Wheel-sourced models (BlazeFace) are not served: pip fetches those.

Usage::

    from tests.mirror_support import MirrorServer

    with MirrorServer() as server:                       # mode "ok"
        env = {**os.environ, "ANYEDGE_MODEL_MIRROR": server.url,
               "ANYEDGE_CACHE_DIR": str(tmp / "cache")}
        env.pop("ANYEDGE_MODEL_PATH"); env.pop("ANYEDGE_OFFLINE")
        subprocess.run(["anyedge", "models", "fetch", "yunet"], env=env)
        server.mode = "404"                              # the mode may change at any time
        assert server.requests == ["/ShiqiYu/libfacedetection.train/0047.../onnx/yunet_s_640_640.onnx"]

or the pytest fixture :func:`mirror_server` (``mirror_server = mirror_support.mirror_server`` in a
test module makes it available there), which also sets ``ANYEDGE_MODEL_MIRROR``, an empty
``ANYEDGE_CACHE_DIR`` under ``tmp_path``, ``ANYEDGE_FETCH_TIMEOUT=5`` and unsets
``ANYEDGE_MODEL_PATH`` and ``ANYEDGE_OFFLINE`` for the test (the server has read its files first).

Modes (:attr:`MirrorServer.mode`):

``"ok"``         the file, with its ``Content-Length``.
``"wrong-bytes"`` a file of the same length with one byte flipped in the middle.
``"404"``        ``404 Not Found`` for everything.
``"stall"``      accepts the connection and reads the request, then never answers.
``"stall-half"`` sends the headers and the first half of the file, then nothing more
                 (the connection stays open).
``"truncate"``   sends the headers and the first half of the file, then closes the connection.
``"slow"``       streams the whole file at :attr:`MirrorServer.rate` bytes per second (default
                 256 KiB/s), so a client can be killed half way; :attr:`MirrorServer.sent` counts
                 the body bytes sent so far, over all requests.

Paths the server does not know get ``404`` in every mode. A stalled handler returns when the
server closes, so leaving the ``with`` block never hangs.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

__all__ = ["MODES", "MirrorServer", "mirror_server", "served_files"]

MODES = ("ok", "wrong-bytes", "404", "stall", "stall-half", "truncate", "slow")


def served_files(root: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """URL path (``/<owner>/<repo>/<commit>/<path>``) -> local file, for every repository-sourced
    registry model found under ``root`` (default: the first folder in ``ANYEDGE_MODEL_PATH``)."""
    from anyedge.registry import REGISTRY

    if root is None:
        root = os.environ.get("ANYEDGE_MODEL_PATH", "").split(os.pathsep)[0]
    base = Path(root)
    if not str(root) or not base.is_dir():
        raise FileNotFoundError(f"the mirror needs a folder of model files, got {str(root)!r}")
    files = {}
    for info in REGISTRY.values():
        if info.source.raw is None:
            continue
        hits = sorted(p for p in base.rglob(info.filename) if p.is_file())
        if hits:
            files["/" + info.source.raw.key] = hits[0]
    return files


class MirrorServer:
    """A local model mirror; see the module docstring.

    Args:
        root: the folder holding the model files (default: ``ANYEDGE_MODEL_PATH``'s first folder).
        mode: one of :data:`MODES`.
        rate: bytes per second in mode ``"slow"``.

    Attributes:
        url: ``http://127.0.0.1:<port>``, the value for ``ANYEDGE_MODEL_MIRROR``.
        files: URL path -> local file, what the server serves.
        requests: every request path, in arrival order.
        sent: body bytes sent so far (all requests).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, mode: str = "ok",
                 rate: int = 256 * 1024) -> None:
        self.files = served_files(root)
        self.mode = mode
        self.rate = rate
        self.requests: list[str] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-mirror", daemon=True)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {value!r}")
        self._mode = value

    def start(self) -> "MirrorServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "MirrorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_sent(self, nbytes: int, timeout: float = 30.0) -> bool:
        """Wait until at least ``nbytes`` body bytes were sent; ``False`` on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.sent >= nbytes:
                return True
            time.sleep(0.02)
        return False

    def _count(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with mirror._lock:
                    mirror.requests.append(self.path)
                mode = mirror.mode
                local = mirror.files.get(self.path)
                if mode == "stall":
                    mirror._closing.wait()
                    self.close_connection = True
                    return
                if local is None or mode == "404":
                    body = b"404: Not Found"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = bytearray(local.read_bytes())
                if mode == "wrong-bytes":
                    data[len(data) // 2] ^= 0xFF
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if mode in ("stall-half", "truncate"):
                    self._send(bytes(data[: len(data) // 2]))
                    if mode == "stall-half":
                        mirror._closing.wait()
                    self.close_connection = True
                    return
                if mode == "slow":
                    chunk = max(1, mirror.rate // 20)
                    for i in range(0, len(data), chunk):
                        if mirror._closing.is_set():
                            break
                        if not self._send(bytes(data[i:i + chunk])):
                            break
                        time.sleep(0.05)
                    return
                self._send(bytes(data))

            def _send(self, b: bytes) -> bool:
                try:
                    self.wfile.write(b)
                    self.wfile.flush()
                except OSError:  # the client went away (killed, timed out)
                    self.close_connection = True
                    return False
                mirror._count(len(b))
                return True

        return Handler


@pytest.fixture
def mirror_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MirrorServer]:
    """A started :class:`MirrorServer` (mode ``"ok"``), with the environment pointed at it."""
    with MirrorServer() as server:
        monkeypatch.setenv("ANYEDGE_MODEL_MIRROR", server.url)
        monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("ANYEDGE_FETCH_TIMEOUT", "5")
        monkeypatch.delenv("ANYEDGE_MODEL_PATH", raising=False)
        monkeypatch.delenv("ANYEDGE_OFFLINE", raising=False)
        monkeypatch.delenv("ANYEDGE_ACCEPT_LICENCE", raising=False)
        yield server
