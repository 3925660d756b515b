"""The live view: a live run's annotated frames, stats and track events over HTTP (``anyedge run --serve``).

    view = LiveView("127.0.0.1", 8080, token=None, source="clip.mp4", model="yunet").start()
    hub.subscribe(view.on_event)        # track events and the per-second status (events.py)
    frame_hooks.append(view.on_frame)   # (index, frame, faces, ids, names) after each processed frame
    ...
    view.finish(summary.to_dict())      # the run ended: /status says so, the last frame stays
    view.close()

Routes (every one asks for the token when there is one, as ``?token=`` or
``Authorization: Bearer``; a missing or wrong one is a 401 JSON answer):

``/``             a small HTML page, nothing loaded from elsewhere: the stream, FPS, latency,
                  drops, tracks in view and a scrolling list of events (it polls the two below).
``/stream.mjpg``  ``multipart/x-mixed-replace`` MJPEG of annotated frames (boxes, keypoints,
                  ``track name score`` labels, :func:`anyedge.ops.draw.draw_faces`).
``/status``       JSON: ``running``, ``stopped_by``, ``source``, ``model``, ``fps``, ``latency_ms``,
                  ``latency_max_ms``, ``dropped``, ``processed``, ``frame``, ``faces``, ``tracks``
                  (ids in view), ``viewers``, ``streamed`` (JPEG frames made).
``/events``       JSON ``{"events": [...], "seq": N}``: the last 200 track events (appeared, named,
                  left; :mod:`.events`), ``?since=SEQ`` only those numbered after ``SEQ``; ``seq``
                  is the newest number published (status events share the numbering).

The inference loop never waits for viewers: :meth:`LiveView.on_frame` only keeps a reference to
the newest frame; one encoder thread draws and JPEG-encodes the newest frame when someone
watches (at most 15 times a second, :data:`STREAM_FPS`), and each viewer's thread sends the newest JPEG it has not sent yet, so a slow viewer
skips frames instead of queueing them (without new frames, as after the run, the last one is
sent again every second, so the stream does not look dead). A viewer that stops reading for 30 s, or goes away, is
dropped quietly. Nothing from a URL reaches the filesystem; names (a gallery's: untrusted) reach
the page only as JSON, which it inserts as text, under a Content-Security-Policy that allows no
script but its own.
"""

from __future__ import annotations

import base64
import collections
import errno
import hashlib
import hmac
import http.server
import ipaddress
import json
import logging
import socket
import socketserver
import threading
import time
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

from ..errors import InputError

__all__ = ["LiveView", "is_loopback", "public_source", "MAX_EVENTS", "MAX_VIEWERS", "STREAM_FPS"]

log = logging.getLogger(__name__)

MAX_EVENTS = 200  # track events /events keeps
MAX_VIEWERS = 32  # streams at once; more get 503
STREAM_FPS = 15.0  # the stream's frame rate at most
_STALL_S = 30.0  # a viewer whose socket accepts nothing for this long is dropped
_BOUNDARY = "anyedge-frame"
_REPEAT_S = 1.0  # a stream without a new frame for this long sends the last one again

_STYLE = """
body{margin:0;font:14px system-ui,sans-serif;background:#111;color:#ddd}
header{display:flex;gap:1em;align-items:baseline;padding:.5em 1em;background:#222}
h1{font-size:1.1em;margin:0}h2{font-size:1em;margin:.8em 0 .3em}
main{display:flex;flex-wrap:wrap;gap:1em;padding:1em}
#stream{max-width:100%;background:#000;min-width:320px;min-height:240px}
aside{flex:1;min-width:16em}dl{display:grid;grid-template-columns:auto 1fr;gap:.2em 1em;margin:0}
dt{color:#999}dd{margin:0;font-variant-numeric:tabular-nums}
#events{height:24em;overflow-y:auto;margin:0;padding-left:2.5em;font-size:.9em}
#state.off{color:#e66}
"""

_SCRIPT = """
"use strict";
const token = new URLSearchParams(location.search).get("token");
function url(path, query) {
  const parts = [];
  if (token !== null) parts.push("token=" + encodeURIComponent(token));
  if (query) parts.push(query);
  return parts.length ? path + "?" + parts.join("&") : path;
}
function show(id, value) { document.getElementById(id).textContent = value; }
function num(v, digits) { return typeof v === "number" ? v.toFixed(digits) : "\\u2013"; }
const img = document.getElementById("stream");
img.addEventListener("error", () => setTimeout(() => { img.src = url("stream.mjpg", "t=" + Date.now()); }, 2000));
img.src = url("stream.mjpg");
const state = document.getElementById("state");
function setState(text, off) { state.textContent = text; state.className = off ? "off" : ""; }
async function getJSON(path, query) {
  const r = await fetch(url(path, query), {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
async function pollStatus() {
  try {
    const s = await getJSON("status");
    show("fps", num(s.fps, 1));
    show("latency", typeof s.latency_ms === "number" ? s.latency_ms.toFixed(0) + " ms" : "\\u2013");
    show("dropped", String(s.dropped ?? "\\u2013"));
    show("processed", String(s.processed));
    show("tracks", s.tracks.length ? s.tracks.join(", ") : "none");
    show("viewers", String(s.viewers));
    show("source", s.source);
    show("model", s.model);
    setState(s.running ? "live" : "run ended (" + s.stopped_by + ")", !s.running);
  } catch (e) { setState("disconnected", true); }
  setTimeout(pollStatus, 1000);
}
let since = 0;
function describe(e) {
  const who = "track " + e.track;
  if (e.type === "track/appeared") return who + " appeared (score " + num(e.score, 2) + ")";
  if (e.type === "track/named") return who + " is " + e.name + " (" + num(e.score, 2) + ")";
  if (e.type === "track/left") {
    return who + " left after " + e.frames + " frames" + (e.name === null ? "" : " (" + e.name + ")");
  }
  return who + " " + e.type;
}
const list = document.getElementById("events");
async function pollEvents() {
  try {
    const got = await getJSON("events", "since=" + since);
    for (const e of got.events) {
      const li = document.createElement("li");
      li.className = e.type.replace("/", "-");
      li.textContent = new Date(e.time * 1000).toLocaleTimeString() + "  " + describe(e);
      list.prepend(li);
    }
    while (list.children.length > 200) list.lastElementChild.remove();
    since = got.seq;
  } catch (e) { setState("disconnected", true); }
  setTimeout(pollEvents, 1000);
}
pollStatus();
pollEvents();
"""

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>anyedge live</title><link rel="icon" href="data:,"><style>{_STYLE}</style></head>
<body><header><h1>anyedge live</h1><span id="state">connecting</span></header>
<main><img id="stream" alt="annotated live frames">
<aside><dl>
<dt>FPS</dt><dd id="fps">&ndash;</dd><dt>latency</dt><dd id="latency">&ndash;</dd>
<dt>dropped</dt><dd id="dropped">&ndash;</dd><dt>processed</dt><dd id="processed">&ndash;</dd>
<dt>tracks in view</dt><dd id="tracks">&ndash;</dd><dt>viewers</dt><dd id="viewers">&ndash;</dd>
<dt>source</dt><dd id="source">&ndash;</dd><dt>model</dt><dd id="model">&ndash;</dd>
</dl><h2>events</h2><ol id="events" reversed></ol></aside></main>
<script>{_SCRIPT}</script></body></html>
""".encode()


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_CSP = (f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_source(name: str) -> str:
    """A source's name as viewers may see it: a URL without its user, password and query."""
    if "://" not in name:
        return name
    parts = urlsplit(name)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:  # HTTPServer's also looks the host's name up (DNS): not needed
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        err = sys.exc_info()[1]
        if isinstance(err, OSError):  # a viewer went away or stalled: not the run's business
            log.debug("live view: %s: %s", client_address, err)
        else:
            log.error("live view: a request from %s failed: %s: %s", client_address, type(err).__name__, err)


class _Server6(_Server):
    address_family = socket.AF_INET6


class LiveView:
    """The HTTP live view of one run; see the module docstring for its routes.

    Args:
        host: address to listen on (``127.0.0.1``, ``0.0.0.0``, ``::1``, ``localhost``...).
        port: TCP port; 0 picks a free one (:attr:`port` tells which).
        token: when set, every request must carry it; compared in constant time.
        source: the source's name shown on the page (URL credentials are removed).
        model: the model's name shown on the page.
        quality: JPEG quality of the stream, 1-100.
        max_fps: frames per second the stream shows at most (drawing and encoding cost CPU that
            inference may want); the loop may process more.
    """

    def __init__(self, host: str, port: int, *, token: str | None = None, source: str = "", model: str = "",
                 quality: int = 80, max_fps: float = STREAM_FPS) -> None:
        if not 0 <= port <= 65535:
            raise InputError(f"the live view's port must be 0-65535, got {port}")
        if token is not None and not token:
            raise InputError("the live view's token is empty; expected some text, or no token")
        if not max_fps > 0:
            raise InputError(f"the live view's max_fps must be > 0, got {max_fps}")
        self.host, self.port, self.quality, self.max_fps = host, port, int(quality), float(max_fps)
        self._token = token.encode() if token is not None else None
        self._source, self._model = public_source(source), model
        self._frame_cond = threading.Condition()
        self._latest: tuple[Any, ...] | None = None
        self._latest_n = 0
        self._jpeg_cond = threading.Condition()
        self._jpeg = b""
        self._jpeg_n = 0
        self._viewers = 0
        self._conns: set[socket.socket] = set()
        self._closing = False
        self._lock = threading.Lock()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS)
        self._seq = 0
        self._status: dict[str, Any] = {}
        self._processed = 0
        self._frame_index: int | None = None
        self._faces = 0
        self._running = True
        self._stopped_by: str | None = None
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    # -- the run's side -----------------------------------------------------------------------
    def start(self) -> "LiveView":
        """Listen and serve in daemon threads.

        Raises:
            InputError: the port is in use, or the address is not one of this machine's.
        """
        cls = _Server6 if ":" in self.host else _Server
        try:
            self._server = cls((self.host, self.port), _handler_for(self))
        except OSError as e:
            where = f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"
            if e.errno == errno.EADDRINUSE:
                raise InputError(f"the live view cannot listen on {where}: the port is in use; expected a free "
                                 "port (0 picks one)") from None
            raise InputError(f"the live view cannot listen on {where}: {e.strerror or e}; expected an address "
                             "of this machine (127.0.0.1, 0.0.0.0, ...)") from None
        self.port = int(self._server.server_address[1])
        for target, name in ((self._server.serve_forever, "anyedge-serve"), (self._encode, "anyedge-encode")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    @property
    def url(self) -> str:
        """The page's address (an unspecified host such as ``0.0.0.0`` is shown as this machine's name)."""
        host = self.host
        try:
            if ipaddress.ip_address(host).is_unspecified:
                host = socket.gethostname()
        except ValueError:
            pass
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def on_frame(self, index: int, frame: Any, faces: Any, ids: Any, names: Sequence[str | None] | None) -> None:
        """A processed frame (the run's frame hook): keeps a reference to it, nothing more."""
        with self._frame_cond:
            self._latest = (frame, faces, ids, names)
            self._latest_n += 1
            self._processed += 1
            self._frame_index, self._faces = index, len(faces)
            self._frame_cond.notify()

    def on_event(self, event: dict[str, Any]) -> None:
        """An event from the run's :class:`~anyedge.live.events.EventHub` (a subscriber: never blocks)."""
        with self._lock:
            self._seq = max(self._seq, int(event.get("seq", 0)))
            if event.get("type") == "status":
                self._status = event
            else:
                self._events.append(event)

    def finish(self, summary: dict[str, Any]) -> None:
        """The run ended (its summary dict): /status reports the run's totals; the last frame stays."""
        with self._lock:
            self._running = False
            self._stopped_by = summary.get("stopped_by")
            latency = summary.get("latency_ms") or {}
            self._status = {**self._status, "fps": summary.get("fps"), "dropped": summary.get("dropped"),
                            "latency_ms": latency.get("median"), "latency_max_ms": latency.get("max"), "tracks": []}

    def close(self) -> None:
        """Stop serving: viewers are disconnected, the threads end."""
        with self._frame_cond, self._jpeg_cond:
            self._closing = True
            self._frame_cond.notify_all()
            self._jpeg_cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # a viewer blocked in a send gets its error now, not after the stall timeout
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5.0)
        end = time.monotonic() + 2.0
        while self.viewers and time.monotonic() < end:
            time.sleep(0.01)

    def __enter__(self) -> "LiveView":
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state --------------------------------------------------------------------------------
    @property
    def viewers(self) -> int:
        with self._jpeg_cond:
            return self._viewers

    @property
    def streamed(self) -> int:
        """JPEG frames made so far (only while someone watches)."""
        with self._jpeg_cond:
            return self._jpeg_n

    def status(self) -> dict[str, Any]:
        """What /status answers."""
        with self._frame_cond:
            processed, frame, faces = self._processed, self._frame_index, self._faces
        with self._lock:
            st, running, stopped_by = dict(self._status), self._running, self._stopped_by
        return {"type": "status", "running": running, "stopped_by": stopped_by, "source": self._source,
                "model": self._model, "fps": st.get("fps"), "latency_ms": st.get("latency_ms"),
                "latency_max_ms": st.get("latency_max_ms"), "dropped": st.get("dropped"), "processed": processed,
                "frame": frame, "faces": faces, "tracks": st.get("tracks", []), "viewers": self.viewers,
                "streamed": self.streamed}

    def events(self, since: int = 0) -> dict[str, Any]:
        """What /events answers: the kept track events numbered after ``since``."""
        with self._lock:
            return {"events": [e for e in self._events if e.get("seq", 0) > since], "seq": self._seq}

    def authorized(self, given: str | None) -> bool:
        """Whether ``given`` is the token (always, without one); constant time."""
        if self._token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._token)

    # -- threads ------------------------------------------------------------------------------
    def _encode(self) -> None:
        """The encoder thread: draws and JPEG-encodes the newest frame, when someone watches."""
        import cv2

        from ..ops.draw import draw_faces

        done, next_at = 0, 0.0
        while True:
            with self._frame_cond:
                while not self._closing and not (self._latest_n > done and self.viewers > 0):
                    self._frame_cond.wait()
                if self._closing:
                    return
                wait = next_at - time.monotonic()
                if wait > 0:  # at most max_fps: wait, then take the newest frame
                    self._frame_cond.wait(wait)
                    continue
                done, (frame, faces, ids, names) = self._latest_n, self._latest  # type: ignore[misc]
            next_at = time.monotonic() + 1.0 / self.max_fps
            try:
                ok, buf = cv2.imencode(".jpg", draw_faces(frame, faces, ids=ids, names=names),
                                       [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the view
                log.warning("live view: frame %s could not be drawn: %s", done, e)
                continue
            if ok:
                with self._jpeg_cond:
                    self._jpeg, self._jpeg_n = buf.tobytes(), self._jpeg_n + 1
                    self._jpeg_cond.notify_all()

    def _join(self, conn: socket.socket) -> bool:
        with self._jpeg_cond:
            if self._viewers >= MAX_VIEWERS or self._closing:
                return False
            self._viewers += 1
        with self._lock:
            self._conns.add(conn)
        with self._frame_cond:
            self._frame_cond.notify()  # the encoder starts (or encodes the last frame for this viewer)
        return True

    def _leave(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
        with self._jpeg_cond:
            self._viewers -= 1

    def _next_jpeg(self, sent: int) -> tuple[bytes, int] | None:
        """The newest JPEG newer than number ``sent``, waiting for one; the same one again after
        :data:`_REPEAT_S` without a newer one (a stream that stalls looks dead to browsers and
        proxies); ``None`` when closing."""
        with self._jpeg_cond:
            end = time.monotonic() + _REPEAT_S
            while not self._closing and (self._jpeg_n <= sent or not self._jpeg):
                left = end - time.monotonic()
                if left <= 0 and self._jpeg:
                    break
                self._jpeg_cond.wait(max(left, 0.05) if self._jpeg else None)
            if self._closing:
                return None
            return self._jpeg, self._jpeg_n


def _handler_for(view: LiveView) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "anyedge"
        sys_version = ""
        timeout = _STALL_S

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug("live view: %s %s", self.address_string(), format % args)

        def _headers(self, code: int, ctype: str, length: int | None = None, **extra: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            if length is not None:
                self.send_header("Content-Length", str(length))
            for k, v in extra.items():
                self.send_header(k.replace("_", "-"), v)
            self.end_headers()

        def _json(self, code: int, doc: dict[str, Any], **extra: str) -> None:
            body = json.dumps(doc).encode()
            self._headers(code, "application/json", len(body), **extra)
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            self.close_connection = True
            try:
                self._json(code, {"error": message or self.responses.get(code, ("",))[0]})
            except OSError:
                pass

        def _token(self, query: dict[str, list[str]]) -> str | None:
            auth = self.headers.get("Authorization")
            if auth is not None:
                scheme, _, value = auth.partition(" ")
                return value.strip() if scheme.lower() == "bearer" else None
            given = query.get("token")
            return given[-1] if given else None

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            path, _, raw_query = self.path.partition("?")
            query = parse_qs(raw_query.partition("#")[0], keep_blank_values=True)
            if not view.authorized(self._token(query)):
                self._json(401, {"error": "a token is required: add ?token=TOKEN or an Authorization: Bearer "
                                          "header"}, WWW_Authenticate='Bearer realm="anyedge"')
                return
            if path == "/":
                self._headers(200, "text/html; charset=utf-8", len(_PAGE), Content_Security_Policy=_CSP)
                if self.command != "HEAD":
                    self.wfile.write(_PAGE)
            elif path == "/status":
                self._json(200, view.status())
            elif path == "/events":
                raw = query.get("since", ["0"])[-1]
                if not raw.isdigit():
                    self._json(400, {"error": f"since must be an event number (0, 1, 2...), got {raw[:40]!r}"})
                    return
                self._json(200, view.events(int(raw)))
            elif path == "/stream.mjpg" and self.command == "GET":
                self._stream()
            elif path == "/stream.mjpg":
                self._headers(200, f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            else:
                self._json(404, {"error": "no such page; expected /, /stream.mjpg, /status or /events"})

        do_HEAD = do_GET  # noqa: N815

        def _stream(self) -> None:
            conn = self.connection
            if not view._join(conn):
                self._json(503, {"error": f"too many viewers (at most {MAX_VIEWERS})"}, Retry_After="5")
                return
            try:
                self._headers(200, f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
                sent = 0
                while True:
                    got = view._next_jpeg(sent)
                    if got is None:
                        break
                    jpeg, sent = got
                    self.wfile.write(b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (_BOUNDARY.encode(), len(jpeg), jpeg))
            except OSError as e:  # the viewer went away or stopped reading
                log.debug("live view: viewer %s left: %s", self.address_string(), e)
            finally:
                self.close_connection = True
                view._leave(conn)

    return Handler
