"""``python -m edge_agent bench``: the edge-agent benchmarks against a local mosquitto. Prints, never asserts.

1. drain: a backlog of ``--events`` realistic transaction events (payloads copied from a real headless
   kiosk run) drained by a real ``python -m edge_agent run`` subprocess, timed by the store (backlog to
   0) and by a hub subscriber (every event received); target >= 5,000 events/s.
2. agent RSS: the agent's peak resident set (``VmHWM``) during that drain; target <= 80 MB.
3. fan-in: ``--kiosks`` simulated kiosks in ``--processes`` processes (one poll loop over many paho
   clients each) publishing retained state and metrics built by the agent's own reporters every
   ``--interval`` seconds for ``--duration`` seconds; a hub subscriber counts what arrives, and the
   broker's CPU comes from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import queue
import random
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from contract.bundles import MAX_PACKET_BYTES
from contract.topics import OFFLINE, ONLINE, Topics
from edge_agent.metrics import MetricsReporter
from edge_agent.state import StateReporter
from kiosk.store import MAX_PAGE_ROWS, EventType, Store
from kiosk.store.records import new_id

ROOT = Path(__file__).resolve().parent.parent
DRAIN_TARGET_EVENTS_S = 5000.0
RSS_TARGET_MB = 80.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIOSKS_PER_SITE = 50


# ------------------------------------------------------------------------------------------ plumbing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_fd_limit() -> None:
    # Hundreds of sockets per process: lift the soft limit to the hard one (never above it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        # The command name may contain spaces; the numeric fields follow its closing parenthesis.
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _status_mb(pid: int, key: str) -> float | None:
    """A ``/proc/<pid>/status`` memory figure (VmHWM = peak RSS, VmRSS) in MB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _ratio(value: float | None, target: float) -> float | None:
    return None if value is None else round(value / target, 2)


class Broker:
    """A throw-away mosquitto on a free loopback port.

    ``max_queued_messages`` is raised as docs/mqtt.md asks of a site broker: with the default 1000 a
    hub subscriber falling behind a 50,000-event drain would lose QoS 1 messages.
    """

    def __init__(self, workdir: Path) -> None:
        binary = os.environ.get("MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_queued_messages 1000000\nmax_packet_size {MAX_PACKET_BYTES}\n",
            encoding="utf-8",
        )
        self._log = (workdir / "mosquitto.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=self._log, stderr=self._log, preexec_fn=_raise_fd_limit
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start accepting connections")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class HubCounter:
    """The hub end of a benchmark: counts messages per kind; events de-duplicated by ``event_id``."""

    def __init__(self, port: int, filters: list[str]) -> None:
        self.filters = filters
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.event_ids: set[str] = set()
        self.first_event_at: float | None = None
        self.last_event_at: float | None = None
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-hub-{os.getpid()}")
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in self.filters])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("hub subscriber could not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.split("/")[4]
        now = time.monotonic()
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == "events":
                self.event_ids.add(json.loads(msg.payload)["event_id"])
                self.first_event_at = self.first_event_at or now
                self.last_event_at = now

    def unique_events(self) -> int:
        with self.lock:
            return len(self.event_ids)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ------------------------------------------------------------------------------------------ data


def sample_store(workdir: Path, travellers: int = 200) -> Path:
    """A kiosk database filled by a real headless run: real transaction payloads, real metrics figures."""
    db = workdir / "sample.sqlite3"
    subprocess.run(
        [
            *(sys.executable, "-m", "kiosk", "run", "--headless", "--simulate"),
            *("--travellers", str(travellers), "--seed", "1", "--db", str(db)),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return db


def build_backlog(sample: Path, db: Path, events: int) -> float:
    """``events`` pending transaction events, payloads cycled from the sample; returns their mean size."""
    with Store.open(sample) as source:
        payloads = [e.data for e in source.outbox.pending(MAX_PAGE_ROWS) if e.type is EventType.TRANSACTION]
    with Store.open(db) as store:
        # One SQLite transaction rather than one fsync per event: the set-up is not what is measured.
        queued = store.outbox.add_many(
            EventType.TRANSACTION,
            (dict(payloads[i % len(payloads)], transaction_id=new_id()) for i in range(events)),
        )
    return sum(len(e.payload) for e in queued) / max(1, len(queued))


# ------------------------------------------------------------------------------------------ 1 + 2: drain


def bench_drain(workdir: Path, sample: Path, events: int) -> dict[str, Any]:
    db = workdir / "drain.sqlite3"
    mean_bytes = build_backlog(sample, db, events)
    broker = Broker(workdir / "drain-broker")
    hub = HubCounter(broker.port, ["gerbang/v1/+/+/events/#"])
    agent: subprocess.Popen[bytes] | None = None
    drained_at: float | None = None
    peak_rss: float | None = None
    agent_cpu: float | None = None
    try:
        with (
            Store.open(db) as probe,
            (workdir / "agent.log").open("wb") as agent_log,
        ):
            started = time.monotonic()
            agent = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edge_agent", "run", "--db", str(db)),
                    *("--broker", f"mqtt://127.0.0.1:{broker.port}", "--site", "bench", "--kiosk", "k0001"),
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stderr=agent_log,
            )
            deadline = started + max(120.0, events / 200)
            while time.monotonic() < deadline:
                peak_rss = _status_mb(agent.pid, "VmHWM") or peak_rss
                if drained_at is None and probe.outbox.backlog() == 0:
                    drained_at = time.monotonic()
                if drained_at is not None and hub.unique_events() >= events:
                    break
                if agent.poll() is not None:
                    log = (workdir / "agent.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the agent exited with {agent.returncode}: {log}")
                time.sleep(0.02)
            peak_rss = _status_mb(agent.pid, "VmHWM") or peak_rss
            agent_cpu = _cpu_s(agent.pid)
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            agent.wait(15)
        hub.close()
        broker.stop()
    received = hub.unique_events()
    first, last = hub.first_event_at, hub.last_event_at
    hub_s = None if first is None or last is None or last <= first else last - first
    hub_rate = None if hub_s is None else received / hub_s
    agent_s = None if drained_at is None else drained_at - started
    return {
        "drain": {
            "events": events,
            "payload_bytes_mean": round(mean_bytes),
            "agent_backlog_to_zero_s": None if agent_s is None else round(agent_s, 2),
            "agent_events_per_s_incl_start": None if agent_s is None else round(events / agent_s),
            "hub_received_unique": received,
            "hub_duplicates": hub.counts.get("events", 0) - received,
            "hub_first_to_last_s": None if hub_s is None else round(hub_s, 2),
            "hub_events_per_s": None if hub_rate is None else round(hub_rate),
            "agent_cpu_s": None if agent_cpu is None else round(agent_cpu, 2),
            "target_events_per_s": DRAIN_TARGET_EVENTS_S,
            "ratio_vs_target": _ratio(hub_rate, DRAIN_TARGET_EVENTS_S),
        },
        "agent_rss": {
            "peak_mb": peak_rss,
            "target_mb": RSS_TARGET_MB,
            "ratio_vs_target": _ratio(peak_rss, RSS_TARGET_MB),
        },
    }


# ------------------------------------------------------------------------------------------ 3: fan-in


class _Payloads:
    """State and metrics bodies from the agent's own reporters, rebuilt at most once a second.

    All kiosks of one process share the sample store, so their bodies are alike; building one per
    message would measure the reporters' SQL, not the broker.
    """

    def __init__(self, store: Store) -> None:
        topics = Topics("bench", "template")
        self.state_reporter = StateReporter(store, topics)
        self.metrics_reporter = MetricsReporter(store, topics)
        self.built_at = float("-inf")
        self.state = b""
        self.metrics = b""

    def refresh(self, now: float) -> None:
        if now - self.built_at >= 1.0:
            self.state = self.state_reporter.message().payload
            # MetricsReporter.produce would also move its window in store meta; the body is the same.
            self.metrics = json.dumps(self.metrics_reporter.metrics(), sort_keys=True).encode()
            self.built_at = now


class _SimKiosk:
    def __init__(self, index: int) -> None:
        self.topics = Topics(f"site-{index // KIOSKS_PER_SITE:03d}", f"k{index:05d}")
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"gerbang-{self.topics.site}-{self.topics.kiosk}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.connected_at: float | None = None
        self.tcp_s: float | None = None  # the blocking socket connect alone (kernel SYN retries included)
        self.birth = False
        self.phased = False
        self.due = float("inf")
        self.sent = self.acked = self.lost_connection = 0

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self.connected_at = time.monotonic()
            self.birth = True

    def _on_publish(self, *_: Any) -> None:
        self.acked += 1

    def _on_disconnect(self, *_: Any) -> None:
        self.lost_connection += 1

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        if self.client.publish(topic, payload, qos=1, retain=retain).rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.sent += 1


def _fanin_worker(
    host: str,
    port: int,
    indices: list[int],
    sample: str,
    workdir: str,
    interval_s: float,
    duration_s: float,
    go: Any,
    out: Any,
) -> None:
    _raise_fd_limit()
    db = Path(workdir) / f"fanin-{os.getpid()}.sqlite3"
    with Store.open(Path(sample)) as source:
        source.backup(db)
    store = Store.open(db)
    payloads = _Payloads(store)
    payloads.refresh(time.monotonic())
    kiosks = [_SimKiosk(i) for i in indices]
    rng = random.Random(indices[0] if indices else 0)
    out.put(("ready", os.getpid()))
    go.wait()
    cpu0 = _cpu_s(os.getpid())
    started = time.monotonic()
    poller = select.poll()
    by_fd: dict[int, _SimKiosk] = {}
    refused = 0
    for kiosk in kiosks:
        before = time.monotonic()
        try:
            kiosk.client.connect(host, port, keepalive=60)
        except OSError:
            refused += 1
            continue
        kiosk.tcp_s = time.monotonic() - before
        sock = kiosk.client.socket()
        assert sock is not None
        by_fd[sock.fileno()] = kiosk
        poller.register(sock.fileno(), select.POLLIN)
    writing: set[int] = set()
    next_misc = started + 1.0
    stop_at = started + duration_s
    drain_until = stop_at + 15.0
    while True:
        now = time.monotonic()
        publishing = now < stop_at
        if not publishing and (now > drain_until or all(k.acked >= k.sent for k in kiosks)):
            break
        if publishing:
            payloads.refresh(now)
            for kiosk in kiosks:
                if kiosk.birth:
                    # Birth, as the agent does on every connect; then state + metrics every interval
                    # from a random phase, so the fleet is not in lockstep.
                    kiosk.birth = False
                    kiosk.publish(kiosk.topics.availability, ONLINE.encode(), retain=True)
                    kiosk.due = now
                if now >= kiosk.due:
                    kiosk.publish(kiosk.topics.state, payloads.state, retain=True)
                    kiosk.publish(kiosk.topics.metrics, payloads.metrics, retain=False)
                    kiosk.due = now + (interval_s if kiosk.phased else rng.uniform(0, interval_s))
                    kiosk.phased = True
        for fd, kiosk in by_fd.items():
            wants = kiosk.client.want_write()
            if wants != (fd in writing):
                poller.modify(fd, select.POLLIN | (select.POLLOUT if wants else 0))
                (writing.add if wants else writing.discard)(fd)
        for fd, flags in poller.poll(20):
            kiosk = by_fd[fd]
            readable = flags & (select.POLLIN | select.POLLERR | select.POLLHUP)
            if readable and kiosk.client.loop_read(10) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # Not reconnected: a lost kiosk shows in "connections_lost" and in sent vs received.
                poller.unregister(fd)
                writing.discard(fd)
                del by_fd[fd]
                continue
            if flags & select.POLLOUT:
                kiosk.client.loop_write()
        if now >= next_misc:
            for kiosk in kiosks:
                kiosk.client.loop_misc()
            next_misc = now + 1.0
    lost = sum(k.lost_connection for k in kiosks)
    for kiosk in kiosks:
        if kiosk.client.is_connected():
            kiosk.client.disconnect()
    connect_times = [k.connected_at - started for k in kiosks if k.connected_at is not None]
    out.put(
        (
            "result",
            {
                "kiosks": len(kiosks),
                "connected": len(connect_times),
                "refused": refused,
                "connect_s": sorted(round(t, 3) for t in connect_times),
                "tcp_s": sorted(round(k.tcp_s, 4) for k in kiosks if k.tcp_s is not None),
                "sent": sum(k.sent for k in kiosks),
                "acked": sum(k.acked for k in kiosks),
                "connections_lost": lost,
                "cpu_s": round(_cpu_s(os.getpid()) - cpu0, 2),
                "state_bytes": len(payloads.state),
                "metrics_bytes": len(payloads.metrics),
            },
        )
    )
    store.close()


def bench_fanin(
    workdir: Path, sample: Path, kiosks: int, processes: int, duration_s: float, interval_s: float
) -> dict[str, Any]:
    broker = Broker(workdir / "fanin-broker")
    context = mp.get_context("spawn")
    go = context.Event()
    out = context.Queue()
    chunks = [list(range(kiosks))[i::processes] for i in range(processes)]
    chunks = [c for c in chunks if c]
    workers = [
        context.Process(
            target=_fanin_worker,
            args=(
                "127.0.0.1",
                broker.port,
                chunk,
                str(sample),
                str(workdir),
                interval_s,
                duration_s,
                go,
                out,
            ),
            daemon=True,
        )
        for chunk in chunks
    ]
    hub: HubCounter | None = None
    results: list[dict[str, Any]] = []
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            kind, _pid = out.get(timeout=120)
            assert kind == "ready"
        hub = HubCounter(
            broker.port, ["gerbang/v1/+/+/state", "gerbang/v1/+/+/metrics", "gerbang/v1/+/+/availability"]
        )
        cpu0, started = _cpu_s(broker.proc.pid), time.monotonic()
        go.set()
        for _ in workers:
            kind, result = out.get(timeout=duration_s + 180)
            assert kind == "result"
            results.append(result)
        elapsed = time.monotonic() - started
        broker_cpu = _cpu_s(broker.proc.pid) - cpu0
        broker_rss = _status_mb(broker.proc.pid, "VmHWM")
        sent = sum(r["sent"] for r in results)
        deadline = time.monotonic() + 15
        while hub.total() < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        received = hub.total()
        counts = dict(hub.counts)
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
        if hub is not None:
            hub.close()
        broker.stop()
    connect = sorted(t for r in results for t in r["connect_s"])
    tcp = sorted(t for r in results for t in r["tcp_s"])
    return {
        "fan_in": {
            "kiosks": kiosks,
            "processes": len(workers),
            "duration_s": duration_s,
            "interval_s": interval_s,
            "connected": sum(r["connected"] for r in results),
            # Every process connects its clients one after the other from the same start signal; a
            # client's CONNACK is read once its process has issued all its connects.
            "connect_all_s": connect[-1] if connect else None,
            # The socket connect alone: > 1 s means a SYN dropped by a full listen queue and retried.
            "tcp_connect_p50_s": tcp[len(tcp) // 2] if tcp else None,
            "tcp_connect_max_s": tcp[-1] if tcp else None,
            "tcp_connects_over_1s": sum(t > 1.0 for t in tcp),
            "sent": sent,
            "acked": sum(r["acked"] for r in results),
            "received": received,
            "received_by_kind": counts,
            "lost": sent - received,
            "messages_per_s": round(received / elapsed, 1),
            "state_bytes": results[0]["state_bytes"] if results else None,
            "metrics_bytes": results[0]["metrics_bytes"] if results else None,
            "broker_cpu_pct": round(100.0 * broker_cpu / elapsed, 1),
            "broker_peak_rss_mb": broker_rss,
            "clients_cpu_s": round(sum(r["cpu_s"] for r in results), 1),
            "elapsed_s": round(elapsed, 1),
        }
    }


# ------------------------------------------------------------------------------------------ entry


def run(events: int, kiosks: int, duration_s: float, processes: int, interval_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gerbang-agent-bench-") as tmp:
        workdir = Path(tmp)
        sample = sample_store(workdir)
        if events > 0:
            result.update(bench_drain(workdir, sample, events))
        if kiosks > 0:
            result.update(bench_fanin(workdir, sample, kiosks, max(1, processes), duration_s, interval_s))
    result["machine"] = {"cpus": os.cpu_count(), "load_1m_after": round(os.getloadavg()[0], 2)}
    return result


def main(events: int, kiosks: int, duration_s: float, processes: int, interval_s: float) -> int:
    try:
        result = run(events, kiosks, duration_s, processes, interval_s)
    except (RuntimeError, OSError, subprocess.CalledProcessError, queue.Empty) as exc:
        print(f"agent bench failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
