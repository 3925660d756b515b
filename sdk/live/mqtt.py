"""Track events over MQTT: ``anyedge run --mqtt mqtt://[user[:password]@]host[:port][/prefix]``.

    publisher = MqttPublisher(MqttTarget.parse("mqtt://broker.local/door"), buffer=1000)
    publisher.start()               # first connection attempt (bounded); refused credentials raise
    hub.subscribe(publisher)        # each event is queued and sent by the publisher's thread
    ...
    stats = publisher.close(10.0)   # flush (bounded wait), retained "offline", disconnect

Topics under the prefix (default ``anyedge/<hostname>``): ``track/appeared``, ``track/named``,
``track/left`` and ``status``, each message one event of :mod:`.events` as JSON, QoS 1, not
retained; and ``availability``: ``online`` on every connection, ``offline`` when the run ends
(and as the connection's last will, so a crash or a lost link also reads ``offline``), retained.

Delivery is at least once. Events wait in a buffer of ``buffer`` events while the broker is
away (the oldest is dropped, and counted, when it is full); a thread connects, reconnects with
backoff (0.5 s doubling to 10 s) and sends them in order, at most :data:`IN_FLIGHT` unacknowledged
at a time. An event counts as published when the broker acknowledges it (PUBACK); one sent but not
acknowledged when the link broke is sent again after the reconnection, so a consumer may see it
twice: ``seq`` tells them apart.

A broker that cannot be reached when the run starts does not stop it (one warning on stderr;
the events wait in the buffer); a broker that answers but refuses the credentials, or a TLS
certificate that fails verification, is an error at start (:class:`~anyedge.errors.InputError`).

paho-mqtt (``pip install 'anyedge[mqtt]'``) is imported only when a publisher starts.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import EngineUnavailableError, InputError

__all__ = ["MqttTarget", "MqttTls", "MqttPublisher", "mqtt_url", "add_mqtt_arguments", "mqtt_from_args",
           "DEFAULT_BUFFER", "DEFAULT_FLUSH_TIMEOUT", "IN_FLIGHT", "TOPICS"]

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_BUFFER = 1000
DEFAULT_FLUSH_TIMEOUT = 10.0
IN_FLIGHT = 20  # events sent and not yet acknowledged, at most
KEEPALIVE_S = 15  # a silent broker is noticed after 1.5x this
BACKOFF_S = (0.5, 10.0)  # reconnection delay: first, most
TOPICS = ("track/appeared", "track/named", "track/left", "status", "availability")
_URL_FORM = "mqtt://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX] (or mqtts:// for TLS)"


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)


def _default_prefix() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"
    return f"anyedge/{host}"


@dataclass(frozen=True)
class MqttTarget:
    """Where events go: a broker and a topic prefix (never printed with its password)."""

    host: str
    port: int
    prefix: str
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, *, password: str | None = None) -> MqttTarget:
        """Parse ``mqtt://[user[:password]@]host[:port][/prefix]`` (``mqtts://`` for TLS).

        User name and password are percent-decoded; the default port is 1883 (8883 for
        ``mqtts://``) and the default prefix ``anyedge/<hostname>``.

        Args:
            url: the broker's URL.
            password: used when the URL names a user but no password (``ANYEDGE_MQTT_PASSWORD``).

        Raises:
            InputError: not such a URL (the message shows it with the password hidden).
        """
        shown = _redacted(url)

        def bad(why: str) -> InputError:
            return InputError(f"expected {_URL_FORM}, got {shown!r}: {why}")

        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise bad(f"the scheme must be mqtt or mqtts, not {scheme or 'missing'}")
        if "?" in url or "#" in url:
            raise bad("'?' and '#' have no place in it (in a password write them %3F and %23)")
        if not parts.hostname:
            raise bad("no host")
        try:
            port = parts.port
        except ValueError:
            raise bad("the port must be a number in 1-65535") from None
        if port == 0:
            raise bad("the port must be a number in 1-65535")
        user = unquote(parts.username) if parts.username is not None else None
        secret = unquote(parts.password) if parts.password is not None else None
        if secret is not None and not user:
            raise bad("a password needs a user name")
        if user and secret is None:
            secret = password
        prefix = unquote(parts.path).strip("/") or _default_prefix()
        if any(c in prefix for c in "+#\0") or prefix.startswith("$") or "//" in prefix:
            raise bad(f"the prefix {prefix!r} must be a plain topic: no +, #, empty levels or leading $")
        return cls(host=parts.hostname, port=port or DEFAULT_PORTS[scheme], prefix=prefix, tls=scheme == "mqtts",
                   username=user or None, password=secret if user else None)

    def topic(self, kind: str) -> str:
        """The topic of an event type (``track/left``, ``status``) or ``availability``."""
        return f"{self.prefix}/{kind}"

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}/{self.prefix}"


@dataclass(frozen=True)
class MqttTls:
    """TLS settings for ``mqtts://``: a CA file, a client certificate and key, or no verification."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        """The SSL context (the system's CAs unless ``ca``).

        Raises:
            InputError: a file is missing or not PEM, or a key without a certificate.
        """
        if self.key is not None and self.cert is None:
            raise InputError("--mqtt-key needs --mqtt-cert (the client certificate it belongs to)")
        for option, path in (("--mqtt-ca", self.ca), ("--mqtt-cert", self.cert), ("--mqtt-key", self.key)):
            if path is not None and not Path(path).is_file():
                raise InputError(f"{option} {path}: no such file; expected a PEM file")
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        except (ssl.SSLError, OSError) as e:
            raise InputError(f"--mqtt-ca {self.ca}: expected PEM CA certificates, got a file ssl cannot read "
                             f"({e})") from None
        if self.cert is not None:
            try:
                ctx.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
            except (ssl.SSLError, OSError) as e:
                raise InputError(f"--mqtt-cert {self.cert}: expected a PEM certificate and its key "
                                 f"(--mqtt-key), got files ssl cannot read ({e})") from None
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:
        raise EngineUnavailableError("--mqtt needs the paho-mqtt package: pip install 'anyedge[mqtt]'") from e
    return mqtt


class MqttPublisher:
    """Sends events to a broker from its own thread; call it with an event to queue it.

    Args:
        target: the broker and topic prefix.
        buffer: events that may wait unsent (the oldest is dropped when full).
        status_every: send every Nth ``status`` event (they come about once a second).
        tls: TLS settings (``mqtts://`` only; default: the system's CAs).
        connect_timeout: seconds one connection attempt may take.
    """

    def __init__(self, target: MqttTarget, *, buffer: int = DEFAULT_BUFFER, status_every: int = 1,
                 tls: MqttTls | None = None, connect_timeout: float = 5.0) -> None:
        if buffer < 1 or status_every < 1:
            raise InputError(f"expected buffer >= 1 and status_every >= 1, got {buffer} and {status_every}")
        if tls is not None and not target.tls:
            raise InputError(f"TLS options need an mqtts:// URL, got {target}")
        self.target = target
        self.buffer = buffer
        self.status_every = status_every
        self._ssl = (tls or MqttTls()).context() if target.tls else None
        self._connect_timeout = connect_timeout
        self._queue: collections.deque[tuple[str, str]] = collections.deque()  # (topic, JSON)
        self._lock = threading.Condition()
        self._inflight: set[int] = set()  # message ids sent and not acknowledged
        self._statuses = 0
        self.published = 0
        self.dropped = 0
        self._connected = False
        self._refused: str | None = None  # why the broker turned the last attempt down
        self._first = threading.Event()
        self._first_error: InputError | None = None
        self._warned: set[str] = set()
        self._closing = False
        self._deadline = float("inf")
        self._offline_mid: int | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None

    # -- the producer's side (the run's loop thread) -----------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        """Queue one event (never blocks; an :class:`~.events.EventHub` subscriber)."""
        if event.get("type") == "status":
            self._statuses += 1
            if (self._statuses - 1) % self.status_every:
                return
        message = (self.target.topic(event["type"]), json.dumps(event))  # a snapshot, made here
        with self._lock:
            if len(self._queue) >= self.buffer:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    self._warn_once("drop", f"{self.target} has not taken the events for a while: the buffer "
                                            f"({self.buffer} events, --mqtt-buffer) is full, dropping the oldest")
            self._queue.append(message)
            self._lock.notify()

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the broker (waiting or in flight)."""
        with self._lock:
            return len(self._queue) + len(self._inflight)

    def stats(self) -> dict[str, Any]:
        """``published`` (acknowledged), ``dropped`` (buffer full) and ``pending`` (never acknowledged)."""
        return {"published": self.published, "dropped": self.dropped, "pending": self.pending}

    # -- starting and stopping ---------------------------------------------------------------
    def start(self) -> None:
        """Start the thread and wait (bounded) for the first connection attempt.

        Raises:
            EngineUnavailableError: paho-mqtt is not installed.
            InputError: the broker refused the credentials, or its TLS certificate failed
                verification. A broker that does not answer only warns.
        """
        mqtt = _paho()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"anyedge-{uuid.uuid4().hex[:12]}",
                             clean_session=True)
        client.connect_timeout = self._connect_timeout
        client.max_inflight_messages_set(IN_FLIGHT)
        client.max_queued_messages_set(0)
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
        client.will_set(self.target.topic("availability"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._thread = threading.Thread(target=self._run, name="anyedge-mqtt", daemon=True)
        self._thread.start()
        self._first.wait(self._connect_timeout + 2.0)
        if self._first_error is not None:
            self._thread.join(2.0)
            raise self._first_error

    def close(self, timeout: float = DEFAULT_FLUSH_TIMEOUT) -> dict[str, Any]:
        """Send what is left (waiting at most ``timeout`` seconds), publish ``offline``, disconnect.

        Returns:
            :meth:`stats`.
        """
        if self._thread is None:
            return self.stats()
        with self._lock:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + timeout
                waiting = len(self._queue) + len(self._inflight)
                if waiting and not self._connected:
                    log.warning("waiting up to %g s (--mqtt-flush-timeout) for %s to take the %d events "
                                "left", timeout, self.target, waiting)
            self._lock.notify()
        self._thread.join(timeout + self._connect_timeout + 4.0)
        return self.stats()

    # -- the publisher's thread --------------------------------------------------------------
    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", text)
        else:
            log.info("%s", text)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)  # "Not authorized", "Bad user name or password"...
            return
        self._refused = None
        with self._lock:
            self._connected = True
        client.publish(self.target.topic("availability"), "online", qos=1, retain=True)
        log.info("connected to %s", self.target)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
        if was and not self._closing:
            self._warn_once("lost", f"lost {self.target} ({reason}); events wait in the buffer (up to "
                                    f"{self.buffer}) and are sent when it is back")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            if mid in self._inflight:
                self._inflight.discard(mid)
                self.published += 1
            self._lock.notify()
        if mid == self._offline_mid:
            self._offline_mid = -1

    def _attempt(self) -> None:
        """One connection attempt: TCP (and TLS), CONNECT, then wait for the CONNACK."""
        client = self._client
        self._refused = None
        try:
            client.connect(self.target.host, self.target.port, keepalive=KEEPALIVE_S)
        except ssl.SSLCertVerificationError as e:
            self._fail(f"{self.target}: the broker's TLS certificate failed verification ({e.verify_message}); "
                       "expected one signed by --mqtt-ca (or the system's CAs), or pass --mqtt-insecure")
            return
        except (OSError, ValueError) as e:  # refused, unreachable, no such host, TLS handshake
            self._unreachable(f"{type(e).__name__}: {e}")
            return
        deadline = time.monotonic() + self._connect_timeout
        while not self._connected and self._refused is None and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != 0:
                break
        if self._connected:
            self._first.set()
        elif self._refused is not None:
            why = self._refused
            client.disconnect()
            self._fail(f"{self.target} refused the connection: {why}; expected the user and password the "
                       "broker knows (in the URL or ANYEDGE_MQTT_PASSWORD)")
        else:
            client.disconnect()
            self._unreachable("no answer to CONNECT")

    def _fail(self, text: str) -> None:
        """A refusal: an error when the run starts, a warning (once) later."""
        if not self._first.is_set():
            self._first_error = InputError(text)
            self._first.set()
        else:
            self._warn_once("refused", text + "; retrying")

    def _unreachable(self, why: str) -> None:
        if not self._first.is_set():
            self._warn_once("lost", f"{self.target} is unreachable ({why}); the run goes on, events wait in "
                                    f"the buffer (up to {self.buffer}) and are sent when it answers")
            self._first.set()
        else:
            log.info("%s still unreachable (%s)", self.target, why)

    def _send_some(self) -> None:
        """Hand waiting events to the connection, in order, up to :data:`IN_FLIGHT` unacknowledged."""
        while True:
            with self._lock:
                if not self._queue or len(self._inflight) >= IN_FLIGHT or not self._connected:
                    return
                topic, payload = self._queue.popleft()
            info = self._client.publish(topic, payload, qos=1)  # kept by paho until acknowledged
            with self._lock:  # its PUBACK cannot come before the next loop(): same thread
                self._inflight.add(info.mid)

    def _done(self) -> bool:
        with self._lock:
            empty = not self._queue and not self._inflight
            return self._closing and (empty or time.monotonic() >= self._deadline)

    def _run(self) -> None:
        client, delay, next_try = self._client, BACKOFF_S[0], 0.0
        try:
            while not self._done():
                if self._connected:
                    delay = BACKOFF_S[0]
                    self._send_some()
                    if client.loop(timeout=0.05) != 0 and not client.is_connected():
                        with self._lock:  # paho reports the loss through on_disconnect; this is a backstop
                            self._connected = False
                    continue
                now = time.monotonic()
                if now >= next_try:
                    self._attempt()
                    if self._first_error is not None:
                        return
                    if not self._connected:
                        next_try, delay = time.monotonic() + delay, min(delay * 2, BACKOFF_S[1])
                    continue
                with self._lock:
                    self._lock.wait(min(next_try, self._deadline) - now)
            if self._connected:  # a clean goodbye: retained offline (a clean disconnect sends no will)
                info = client.publish(self.target.topic("availability"), "offline", qos=1, retain=True)
                self._offline_mid = info.mid
                end = time.monotonic() + 2.0
                while self._connected and self._offline_mid != -1 and time.monotonic() < end:
                    client.loop(timeout=0.05)
                client.disconnect()
                client.loop(timeout=0.05)
        except Exception as e:  # noqa: BLE001 - the run goes on without MQTT, and says why
            log.warning("the publisher stopped: %s: %s", type(e).__name__, e)
            self._first.set()


# -- the command line ------------------------------------------------------------------------
def mqtt_url(text: str) -> str:
    """An argparse type: checks the URL's form (the password is never shown); returns it as given."""
    try:
        MqttTarget.parse(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_mqtt_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--mqtt*`` options of ``anyedge run``."""
    from ..cli_args import int_at_least, positive_int

    g = p.add_argument_group("MQTT events")
    g.add_argument("--mqtt", type=mqtt_url, default=None, metavar="URL",
                   help="publish track events to an MQTT broker: mqtt://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX] "
                        "(mqtts:// for TLS; ports 1883 / 8883; prefix anyedge/<hostname>); topics "
                        "PREFIX/track/appeared, track/named, track/left, status and a retained availability "
                        "(online / offline); the password may come from ANYEDGE_MQTT_PASSWORD instead; a broker "
                        "that does not answer never stops the run, one that refuses the credentials is an error "
                        "(default: none)")
    g.add_argument("--mqtt-buffer", type=positive_int, default=DEFAULT_BUFFER, metavar="N",
                   help="events kept while the broker is away; when full the oldest is dropped and counted "
                        "(default: %(default)s)")
    g.add_argument("--mqtt-status-every", type=positive_int, default=1, metavar="N",
                   help="publish every Nth status event (they come once a second) (default: %(default)s)")
    g.add_argument("--mqtt-flush-timeout", type=int_at_least(0), default=int(DEFAULT_FLUSH_TIMEOUT), metavar="S",
                   help="at the end, wait at most S seconds for the broker to take the events left (Ctrl-C "
                        "abandons the wait: exit 130) (default: %(default)s)")
    g.add_argument("--mqtt-ca", default=None, metavar="FILE",
                   help="mqtts://: PEM CA certificates the broker's certificate must chain to (default: the system's)")
    g.add_argument("--mqtt-cert", default=None, metavar="FILE",
                   help="mqtts://: PEM client certificate, for brokers that ask for one (default: none)")
    g.add_argument("--mqtt-key", default=None, metavar="FILE",
                   help="mqtts://: PEM private key of --mqtt-cert, when not in the same file (default: none)")
    g.add_argument("--mqtt-insecure", action="store_true",
                   help="mqtts://: do not verify the broker's certificate or host name (tests only)")


def mqtt_from_args(args: argparse.Namespace) -> MqttPublisher | None:
    """The publisher ``anyedge run``'s options ask for (not started), or ``None`` without ``--mqtt``.

    Raises:
        InputError: TLS options without ``mqtts://``, or unreadable TLS files.
        EngineUnavailableError: paho-mqtt is not installed.
    """
    from ..paths import mqtt_password

    tls_given = [o for o, v in (("--mqtt-ca", args.mqtt_ca), ("--mqtt-cert", args.mqtt_cert),
                                ("--mqtt-key", args.mqtt_key), ("--mqtt-insecure", args.mqtt_insecure)) if v]
    if args.mqtt is None:
        if tls_given:
            raise InputError(f"{tls_given[0]} needs --mqtt mqtts://...")
        return None
    _paho()  # before the model loads
    target = MqttTarget.parse(args.mqtt, password=mqtt_password())
    if tls_given and not target.tls:
        raise InputError(f"{tls_given[0]} needs an mqtts:// URL, got {target}")
    tls = MqttTls(ca=Path(args.mqtt_ca) if args.mqtt_ca else None, cert=Path(args.mqtt_cert) if args.mqtt_cert else None,
                  key=Path(args.mqtt_key) if args.mqtt_key else None, insecure=args.mqtt_insecure)
    return MqttPublisher(target, buffer=args.mqtt_buffer, status_every=args.mqtt_status_every,
                         tls=tls if target.tls else None)
