"""Track events over MQTT (anyedge.live.mqtt), against a real mosquitto broker started here."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from anyedge.errors import InputError
from anyedge.live.mqtt import MqttTarget

ROOT = Path(__file__).resolve().parents[1]
MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)
EVENT_KEYS = {
    "track/appeared": {"type", "seq", "time", "track", "frame", "box", "score"},
    "track/named": {"type", "seq", "time", "track", "frame", "name", "score"},
    "track/left": {"type", "seq", "time", "track", "first_seen", "last_seen", "frames", "name", "score", "embeddings"},
    "status": {"type", "seq", "time", "tracks", "fps", "latency_ms", "latency_max_ms", "dropped", "processed"},
}


# -- the URL ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "env", "want"), [
    ("mqtt://broker.lan/door", None, ("broker.lan", 1883, "door", False, None, None)),
    ("mqtts://broker.lan", None, ("broker.lan", 8883, None, True, None, None)),
    ("MQTT://10.0.0.2:1999/home/hall/", None, ("10.0.0.2", 1999, "home/hall", False, None, None)),
    ("mqtt://cam%40door:p%40ss%3Aw%2Frd@h/x", None, ("h", 1883, "x", False, "cam@door", "p@ss:w/rd")),
    ("mqtt://cam@h/x", "from-env", ("h", 1883, "x", False, "cam", "from-env")),
    ("mqtt://cam:inurl@h/x", "from-env", ("h", 1883, "x", False, "cam", "inurl")),
    ("mqtt://h/x", "from-env", ("h", 1883, "x", False, None, None)),  # no user: no password sent
    ("mqtt://[::1]:1884/x", None, ("::1", 1884, "x", False, None, None)),
])
def test_the_url_gives_host_port_prefix_and_credentials(url: str, env: str | None, want: tuple) -> None:
    t = MqttTarget.parse(url, password=env)
    prefix = want[2] or f"anyedge/{re.sub(r'[^A-Za-z0-9._-]', '_', socket.gethostname())}"
    assert (t.host, t.port, t.prefix, t.tls, t.username, t.password) == (*want[:2], prefix, *want[3:])
    assert t.topic("track/left") == f"{prefix}/track/left"
    assert "inurl" not in str(t) and "p@ss" not in str(t) and "inurl" not in repr(t)


@pytest.mark.parametrize("url", ["", "http://h/x", "mqtt://", "mqtt:///x", "mqtt://h:99999/x", "mqtt://h:0/x",
                                 "mqtt://h:port/x", "mqtt://h/a/+/b", "mqtt://h/a/#", "mqtt://h/$SYS",
                                 "mqtt://h/a//b", "mqtt://:secret@h/x", "mqtt://u:secret@h/x?q=1",
                                 "mqtt://u:secret@h:x/y"])
def test_bad_urls_name_the_form_expected_and_hide_the_password(url: str) -> None:
    with pytest.raises(InputError) as e:
        MqttTarget.parse(url)
    assert "expected mqtt://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX]" in str(e.value)
    assert "secret" not in str(e.value)
    r = cli("run", "--source", "0", "--mqtt", url, timeout=60)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "--mqtt" in last and "expected mqtt://" in last, r.stderr
    assert "secret" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--mqtt-ca", "ca.pem"], "--mqtt-ca needs --mqtt"),
    (["--mqtt", "mqtt://127.0.0.1/x", "--mqtt-insecure"], "--mqtt-insecure needs an mqtts:// URL"),
    (["--mqtt", "mqtts://127.0.0.1/x", "--mqtt-ca", "nope.pem"], "--mqtt-ca nope.pem: no such file"),
    (["--mqtt", "mqtts://127.0.0.1/x", "--mqtt-key", "k.pem"], "--mqtt-key needs --mqtt-cert"),
    (["--mqtt", "mqtt://127.0.0.1/x", "--mqtt-buffer", "0"], "--mqtt-buffer: expected a positive integer, got 0"),
])
def test_bad_mqtt_options_are_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    r = cli("run", "--source", "0", *args, timeout=60, cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and says in last, r.stderr
    assert "Traceback" not in r.stderr


def test_without_paho_the_error_says_what_to_install(tmp_path: Path) -> None:
    code = "import sys; sys.modules['paho'] = None\nfrom anyedge.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    r = subprocess.run([sys.executable, "-c", code, "run", "--source", str(tmp_path / "none.mp4"),
                        "--mqtt", "mqtt://127.0.0.1:1/x"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "anyedge: error: --mqtt needs the paho-mqtt package: pip install 'anyedge[mqtt]'"], r.stderr


# -- a real broker ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1, persistent (its sessions and queued messages survive a restart)."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None,
                 anonymous: bool = False) -> None:
        if MOSQUITTO is None:
            if os.environ.get("CI"):
                pytest.fail("mosquitto is not installed (CI installs it: apt-get install mosquitto)")
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.folder, self.port, self.proc = folder, free_port(), None
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'false' if users and not anonymous else 'true'}",
                 "persistence true", f"persistence_location {folder}/", "log_dest stdout", "max_queued_messages 0",
                 f"user {pwd.getpwuid(os.getuid()).pw_name}"]  # as root it would switch to a user that cannot read tmp_path
        if users:
            pw = folder / "passwords"
            pw.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True)
            lines.append(f"password_file {pw}")
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=open(self.folder / "broker.log", "ab"),
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, (self.folder / "broker.log").read_text()
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves its persistence file on the way out
            self.proc.wait(10)
        self.proc = None


@pytest.fixture()
def broker(tmp_path: Path):
    b = Broker(tmp_path)
    yield b
    b.stop()


class Subscriber:
    """A paho client with a persistent session (QoS 1): it misses nothing across a broker restart."""

    def __init__(self, broker: Broker, prefix: str, *, user: tuple[str, str] | None = None, name: str = "test-sub",
                 tls: dict[str, Path] | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
        self.c.reconnect_delay_set(1, 1)
        if user:
            self.c.username_pw_set(*user)
        if tls:
            self.c.tls_set(ca_certs=str(tls["ca"]))
        subscribed = threading.Event()
        self.c.on_message = lambda c, u, m: self._got(m)
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        self.c.subscribe(f"{prefix}/#", qos=1)
        assert subscribed.wait(10)

    def _got(self, m: Any) -> None:
        with self.lock:
            self.got.append((m.topic, m.payload, bool(m.retain)))

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return list(self.got)

    def events(self) -> list[dict]:
        return [json.loads(p) for t, p, _ in self.messages() if not t.endswith("/availability")]

    def availability(self) -> list[str]:
        return [p.decode() for t, p, _ in self.messages() if t.endswith("/availability")]

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anyedge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """People from the identity photos walking across a scene (benchmarks/track_clip.py)."""
    d = tmp_path_factory.mktemp("door")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "track_clip.py"), str(d / "door.avi"),
                        "--people", "6", "--frames", "240", "--enrol-db", str(d / "door.db")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return d / "door.avi"


def run_lines(stdout: str) -> tuple[list[dict], list[dict], dict]:
    lines = [json.loads(x) for x in stdout.splitlines()]  # --json: nothing but JSON on stdout
    return ([d for d in lines if d["type"] == "track"], [d for d in lines if d["type"] == "stats"], lines[-1])


def expected_count(tracks: list[dict], stats: list[dict]) -> int:
    """Events a run without a gallery makes: each confirmed track appears and leaves; a status per second."""
    return 2 * len(tracks) + len(stats)


def strip(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k not in ("type", "seq", "time")}


def names_announced(stdout: str) -> list[tuple[int, str]]:
    """(track, name) each time a track's name changed, from the run's frame lines."""
    out, last = [], {}
    for d in map(json.loads, stdout.splitlines()):
        for face in d.get("faces", []) if d["type"] == "frame" else []:
            if face["track"] is not None and face["name"] is not None and face["name"] != last.get(face["track"]):
                last[face["track"]] = face["name"]
                out.append((face["track"], face["name"]))
    return out


def test_every_event_arrives_once_in_order_and_matches_the_run(door: Path, broker: Broker) -> None:
    sub = Subscriber(broker, "door")
    try:
        r = cli("run", "--source", str(door), "--gallery", str(door.with_suffix(".db")), "--every-frame", "--json",
                "--mqtt", f"mqtt://127.0.0.1:{broker.port}/door")
        assert r.returncode == 0, r.stderr
        tracks, stats, summary = run_lines(r.stdout)
        named = names_announced(r.stdout)
        n = expected_count(tracks, stats) + len(named)
        assert len(tracks) >= 4 and len(named) >= 4 and summary["mqtt"] == {"published": n, "dropped": 0, "pending": 0}
        assert sub.wait_for(lambda s: s.availability()[-1:] == ["offline"] and len(s.events()) >= n), sub.messages()
        events = sub.events()
        assert [e["seq"] for e in events] == list(range(1, n + 1))  # all, once each, in order
        for topic, payload, retained in sub.messages():
            ev = json.loads(payload) if not topic.endswith("availability") else None
            assert ev is None or (topic == f"door/{ev['type']}" and set(ev) == EVENT_KEYS[ev["type"]]
                                  and not retained), (topic, ev)
        left = [strip(e) for e in events if e["type"] == "track/left"]
        assert left == [strip(t) for t in tracks]  # the run's own track lines, in the same order
        assert [(e["track"], e["name"]) for e in events if e["type"] == "track/named"] == named
        order = {}  # per track: appeared, named..., left
        for e in events:
            if e["type"] != "status":
                order.setdefault(e["track"], []).append(e["type"])
        assert all(v[0] == "track/appeared" and v[-1] == "track/left" and set(v[1:-1]) <= {"track/named"}
                   for v in order.values()) and sorted(order) == sorted(t["track"] for t in tracks)
        for e in events:
            if e["type"] == "track/appeared":  # at a frame the track was seen
                t = next(t for t in tracks if t["track"] == e["track"])
                assert t["first_seen"] <= e["frame"] <= t["last_seen"] and len(e["box"]) == 4
        statuses = [e for e in events if e["type"] == "status"]
        assert [e["processed"] for e in statuses] == [s["processed"] for s in stats]
        assert sub.availability() == ["online", "offline"]
    finally:
        sub.close()
    late = Subscriber(broker, "door", name="late")  # availability is retained: a newcomer reads "offline"
    try:
        assert late.wait_for(lambda s: s.messages()), "no retained availability"
        assert late.messages() == [("door/availability", b"offline", True)]
    finally:
        late.close()


def test_user_and_password_from_the_url_or_the_environment(door: Path, tmp_path: Path) -> None:
    password = "p@ss:w/rd secret"
    b = Broker(tmp_path, users={"cam": password, "reader": "r"})
    sub = Subscriber(b, "hall", user=("reader", "r"))
    try:
        quoted = "p%40ss%3Aw%2Frd%20secret"
        r = cli("run", "--source", str(door), "--model", "yunet", "--every-frame", "--json", "--frames", "30",
                "--mqtt", f"mqtt://cam:{quoted}@127.0.0.1:{b.port}/hall")
        assert r.returncode == 0, r.stderr
        first = run_lines(r.stdout)[2]["mqtt"]
        r = cli("run", "--source", str(door), "--model", "yunet", "--every-frame", "--json", "--frames", "30",
                "--mqtt", f"mqtt://cam@127.0.0.1:{b.port}/hall", env={"ANYEDGE_MQTT_PASSWORD": password})
        assert r.returncode == 0, r.stderr
        second = run_lines(r.stdout)[2]["mqtt"]
        assert first["published"] > 0 and first == second and first["pending"] == 0
        assert sub.wait_for(lambda s: len(s.events()) == 2 * first["published"])
        assert sub.availability() == ["online", "offline", "online", "offline"]
        for how, env in ((f"cam:wrong@127.0.0.1:{b.port}/hall", {}),
                         (f"cam@127.0.0.1:{b.port}/hall", {"ANYEDGE_MQTT_PASSWORD": "wrong"}),
                         (f"127.0.0.1:{b.port}/hall", {})):  # anonymous, where the broker wants a user
            r = cli("run", "--source", str(door), "--model", "yunet", "--json", "--mqtt", f"mqtt://{how}", env=env)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2 and len(lines) == 1, r.stderr
            assert "refused the connection: Not authorized" in lines[0] and "ANYEDGE_MQTT_PASSWORD" in lines[0]
            assert "wrong" not in r.stderr and r.stdout == ""  # refused before any frame, password never shown
        assert len(sub.events()) == 2 * first["published"]
    finally:
        sub.close()
        b.stop()


def run_through_an_outage(door: Path, broker: Broker, *args: str, down_s: float = 3.0) -> dict[str, Any]:
    """Run on the clip; when the first event has arrived, stop the broker, restart it ``down_s``
    seconds later on the same port; return the run's lines and what the subscriber got."""
    sub = Subscriber(broker, "door")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "run", "--source", str(door), "--model", "yunet",
                                 "--every-frame", "--json", "--mqtt", f"mqtt://127.0.0.1:{broker.port}/door", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert sub.wait_for(lambda s: s.events(), 120), "no event before the outage"
        down = time.time()
        broker.stop()
        time.sleep(down_s)
        up = time.time()
        broker.start()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        tracks, stats, summary = run_lines(out)
        made = expected_count(tracks, stats)
        expect = made - summary["mqtt"]["dropped"]
        sub.wait_for(lambda s: len({e["seq"] for e in s.events()}) >= expect and s.availability()[-1:] == ["offline"])
        time.sleep(1.0)  # any late duplicate
        events = sub.events()
        seqs = [e["seq"] for e in events]
        firsts = list(dict.fromkeys(seqs))
        unique = {e["seq"]: e for e in reversed(events)}
        warned = [x for x in err.splitlines() if "mqtt:" in x and "waiting up to" not in x]
        return {"made": made, "summary": summary["mqtt"], "warned": warned, "seqs": seqs, "firsts": firsts,
                "during": sum(down <= e["time"] < up for e in unique.values()),
                "availability": sub.availability(), "tracks": tracks, "events": events}
    finally:
        sub.close()


def test_a_broker_restart_mid_run_loses_nothing_with_a_buffer_larger_than_the_outage(door: Path,
                                                                                      broker: Broker) -> None:
    got = run_through_an_outage(door, broker)
    firsts, made = got["firsts"], got["made"]
    assert got["summary"] == {"published": made, "dropped": 0, "pending": 0}
    assert sorted(firsts) == list(range(1, made + 1))  # none lost: seq contiguous after dedupe
    assert firsts == sorted(firsts)  # and in order
    assert got["during"] > 0, "no event was made while the broker was away"
    left = {e["seq"]: strip(e) for e in got["events"] if e["type"] == "track/left"}
    assert list(left.values()) == [strip(t) for t in got["tracks"]]
    assert got["availability"][0] == "online" and got["availability"][-1] == "offline"
    warned = got["warned"]
    assert len(warned) == 1 and "lost" in warned[0] and "buffer" in warned[0], warned
    print(f"\nbroker restart, buffer 1000: {made} events made, {got['during']} made while the broker was down, "
          f"{len(firsts)} delivered, {made - len(firsts)} lost, {len(got['seqs']) - len(firsts)} duplicates")


def test_a_tiny_buffer_loses_exactly_the_events_it_reports_dropped(door: Path, broker: Broker) -> None:
    got = run_through_an_outage(door, broker, "--mqtt-buffer", "1")
    firsts, made, summary = got["firsts"], got["made"], got["summary"]
    lost = made - len(firsts)
    assert summary["dropped"] > 0 and summary["pending"] == 0
    assert lost == summary["dropped"] and summary["published"] == len(firsts)
    assert firsts == sorted(firsts) and set(firsts) <= set(range(1, made + 1))
    assert sum("lost" in x for x in got["warned"]) == 1 and sum("is full" in x for x in got["warned"]) == 1, got
    print(f"\nbroker restart, buffer 1: {made} events made, {got['during']} delivered of those made while the broker "
          f"was down, {len(firsts)} delivered, {lost} lost = {summary['dropped']} dropped, "
          f"{len(got['seqs']) - len(firsts)} duplicates")


class LinkCutter:
    """A TCP relay to the broker whose links the test can break: first the broker's answers stop
    (PUBACKs lost on the way, the publishes still arrive), then the connection drops."""

    def __init__(self, port: int) -> None:
        self.upstream, self.deaf, self.links = port, threading.Event(), []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.upstream))
            self.links += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if not (answers and self.deaf.is_set()):
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        links, self.links = self.links, []
        for s in links:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.deaf.clear()

    def close(self) -> None:
        self.server.close()
        self.cut()


def test_events_unacknowledged_when_the_link_breaks_are_sent_again_and_seq_dedupes_them(door: Path,
                                                                                       broker: Broker) -> None:
    link = LinkCutter(broker.port)
    sub = Subscriber(broker, "door")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "run", "--source", str(door), "--model", "yunet",
                                 "--every-frame", "--json", "--mqtt", f"mqtt://127.0.0.1:{link.port}/door"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert sub.wait_for(lambda s: s.events(), 120), "no event"
        link.deaf.set()  # the broker gets the events, anyedge never hears it took them
        before = len(sub.events())
        assert sub.wait_for(lambda s: len(s.events()) >= before + 2, 60), "no event while the answers were lost"
        link.cut()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        tracks, stats, summary = run_lines(out)
        made = expected_count(tracks, stats)
        assert summary["mqtt"] == {"published": made, "dropped": 0, "pending": 0}
        assert sub.wait_for(lambda s: s.availability()[-1:] == ["offline"] and len({e["seq"] for e in s.events()})
                            == made)
        seqs = [e["seq"] for e in sub.events()]
        firsts = list(dict.fromkeys(seqs))
        assert firsts == list(range(1, made + 1))  # all of them, first seen in order
        assert len(seqs) - len(firsts) >= 2  # those the broker took while its answers were lost came twice
        assert sum("lost" in x for x in err.splitlines()) == 1, err
        print(f"\nlink cut with acknowledgements lost: {made} events made, {len(firsts)} delivered, "
              f"{len(seqs) - len(firsts)} duplicates (dropped by seq)")
    finally:
        sub.close()
        link.close()


def test_a_broker_down_at_start_warns_once_and_gets_the_events_when_it_comes(door: Path, broker: Broker) -> None:
    sub = Subscriber(broker, "door")  # its session waits in the broker's persistence file
    broker.stop()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "anyedge.cli", "run", "--source", str(door), "--model", "yunet",
                                 "--every-frame", "--json", "--frames", "60",
                                 "--mqtt", f"mqtt://127.0.0.1:{broker.port}/door"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)
        broker.start()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        tracks, stats, summary = run_lines(out)
        made = expected_count(tracks, stats)
        assert summary["mqtt"] == {"published": made, "dropped": 0, "pending": 0}
        warned = [x for x in err.splitlines() if "mqtt:" in x and "waiting up to" not in x]
        assert len(warned) == 1 and "unreachable" in warned[0] and "the run goes on" in warned[0], err
        assert sub.wait_for(lambda s: len({e["seq"] for e in s.events()}) == made)
    finally:
        sub.close()
    broker.stop()  # and one that never comes: the run still ends well, and says what was not sent
    r = cli("run", "--source", str(door), "--model", "yunet", "--every-frame", "--json", "--frames", "30",
            "--mqtt", f"mqtt://127.0.0.1:{broker.port}/door", "--mqtt-flush-timeout", "1")
    assert r.returncode == 0, r.stderr
    tracks, stats, summary = run_lines(r.stdout)
    assert summary["mqtt"] == {"published": 0, "dropped": 0, "pending": expected_count(tracks, stats)}
    assert sum("mqtt:" in x for x in r.stderr.splitlines()) == 2  # unreachable; waiting to send N events


# -- TLS --------------------------------------------------------------------------------------
def make_certs(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost that it signed (cryptography)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anyedge test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    out = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    out["ca"].write_bytes(ca.public_bytes(pem))
    out["cert"].write_bytes(cert.public_bytes(pem))
    out["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out


def test_tls_with_the_brokers_ca_insecure_or_refused(door: Path, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    certs = make_certs(tmp_path)
    b = Broker(tmp_path, tls=certs)
    sub = Subscriber(b, "tls", tls=certs)
    try:
        url = f"mqtts://127.0.0.1:{b.port}/tls"
        runs = [cli("run", "--source", str(door), "--model", "yunet", "--every-frame", "--json", "--frames", "30",
                    "--mqtt", url, *extra) for extra in (["--mqtt-ca", str(certs["ca"])], ["--mqtt-insecure"])]
        published = []
        for r in runs:
            assert r.returncode == 0, r.stderr
            published.append(run_lines(r.stdout)[2]["mqtt"]["published"])
        assert published[0] == published[1] > 0
        assert sub.wait_for(lambda s: len(s.events()) == sum(published))
        r = cli("run", "--source", str(door), "--model", "yunet", "--json", "--mqtt", url)  # the system's CAs
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "certificate failed verification" in lines[0], r.stderr
        assert "--mqtt-ca" in lines[0]
    finally:
        sub.close()
        b.stop()


# -- the README -------------------------------------------------------------------------------
def test_the_readme_mqtt_commands(door: Path, tmp_path: Path) -> None:
    """The README's --mqtt commands, as written but for the broker's port, with a clip named as there."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("anyedge run --source door.avi --every-frame --model yunet --mqtt"):]
    commands = block[:block.index("```")].strip().splitlines()
    assert len(commands) == 2 and "ANYEDGE_MQTT_PASSWORD=secret" in commands[1]
    b = Broker(tmp_path, users={"cam": "secret"}, anonymous=True)
    shutil.copy(door, tmp_path / "door.avi")
    sub = Subscriber(b, "anyedge/door")
    try:
        for c in commands:
            line = c.replace(":1883", f":{b.port}")
            env = dict(re.findall(r"(?:^|\s)(\w+)=(\S+)(?=\s+anyedge)", line))
            argv = line.split()[len(env):]
            assert argv[0] == "anyedge", c
            r = cli(*argv[1:], env=env, cwd=tmp_path)
            assert r.returncode == 0, (c, r.stderr)
            last = r.stdout.splitlines()[-1]
            summary = json.loads(last)["mqtt"] if "--json" in argv else None
            assert summary is None or (summary["published"] > 0 and summary["pending"] == 0), last
            assert summary is not None or re.search(r"mqtt: [1-9]\d* events published, 0 dropped, 0 not sent", last)
        assert sub.wait_for(lambda s: s.availability() == ["online", "offline"] * 2)
        assert {e["type"] for e in sub.events()} == {"track/appeared", "track/left", "status"}
        runs: list[list[dict]] = []
        for topic, payload, _ in sub.messages():
            if topic.endswith("/availability"):
                runs += [[]] if payload == b"online" else []
            else:
                runs[-1].append(json.loads(payload))
        second = runs[1]  # --mqtt-status-every 10: the 1st, 11th... status; track events all there
        seqs = {e["seq"] for e in second}
        shown = sorted(e["seq"] for e in second if e["type"] == "status")
        skipped = set(range(1, max(seqs) + 1)) - seqs
        assert shown and sorted(skipped | set(shown))[::10] == shown  # (nothing skipped on a run under 2 s)
    finally:
        sub.close()
        b.stop()
