"""The link to the broker: no password without TLS, no plain MQTT off the machine unless a lab says so,
and a broker that cuts off a packet larger than the largest bundle before it buffers it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from config import ConfigError, load_config
from contract.broker import PLAIN_MQTT_LAB_KEY, is_loopback
from contract.bundles import MAX_BUNDLE_BYTES, MAX_PACKET_BYTES
from contract.topics import Topics
from edge_agent.agent import Overrides, publisher_options
from tests.mqtt_broker import MosquittoBroker, site_broker_limits
from tests.test_edge_agent import wait_for

ROOT = Path(__file__).resolve().parent.parent
SYNC_TOPIC = Topics("soetta-t3", "gate-07").sync("watchlist")


def write_config(tmp_path: Path, agent: str) -> Path:
    (tmp_path / "mqtt.password").write_text("secret\n", encoding="utf-8")
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[kiosk]\ndata_dir = "{tmp_path}"\n\n[agent]\n{agent}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "localhost", "[::1]"])
def test_plain_mqtt_to_loopback_is_accepted(tmp_path: Path, host: str) -> None:
    config = load_config(write_config(tmp_path, f'broker = "mqtt://{host}:1883"'))
    assert config.agent.insecure_plain_mqtt_lab_only is False


@pytest.mark.parametrize("host", ["10.1.2.3", "broker.example.org", "localhost.example.org", "0.0.0.0"])
def test_plain_mqtt_off_loopback_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, f'broker = "mqtt://{host}:1883"'))
    message = str(refused.value)
    assert "leaves this machine unencrypted" in message and PLAIN_MQTT_LAB_KEY in message


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3"])
def test_a_password_is_never_sent_without_tls(tmp_path: Path, host: str) -> None:
    agent = f'broker = "mqtt://{host}:1883"\nusername = "u"\npassword_file = "mqtt.password"\n'
    # Not even a lab may send a password in clear.
    agent += f"{PLAIN_MQTT_LAB_KEY} = true"
    with pytest.raises(ConfigError, match="refusing to send a password over plain mqtt://"):
        load_config(write_config(tmp_path, agent))


def test_a_lab_may_allow_plain_mqtt_and_the_agent_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        write_config(tmp_path, f'broker = "mqtt://10.1.2.3:1883"\n{PLAIN_MQTT_LAB_KEY} = true')
    )
    caplog.set_level(logging.WARNING, logger="edge_agent.agent")
    options = publisher_options(config, Overrides())
    assert (options.host, options.tls, options.password) == ("10.1.2.3", None, None)
    assert any("INSECURE" in r.getMessage() and PLAIN_MQTT_LAB_KEY in r.getMessage() for r in caplog.records)


def test_the_agent_refuses_a_plain_remote_broker_from_the_command_line(tmp_path: Path) -> None:
    """``--broker`` bypasses the file's validation; the agent checks the URL it will really use."""
    config = write_config(tmp_path, 'broker = "mqtt://127.0.0.1:1883"')
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config), "--broker", "mqtt://10.1.2.3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "leaves this machine unencrypted" in done.stderr


def test_is_loopback() -> None:
    assert all(is_loopback(h) for h in ("localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "localhost.evil", "::", "kiosk"))


# ------------------------------------------------------------------------------ broker packet limit
class PlainClient:
    """MQTT 3.1.1 on the broker's plain loopback listener: 3.1.1 clients are not told the broker's
    limit, so the refusal seen here is the broker's own, not the client library's."""

    def __init__(self, broker: MosquittoBroker, client_id: str, subscribe: str | None = None) -> None:
        self.lock = threading.Lock()
        self.received: list[bytes] = []
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.connected.set()
        self._subscribe = subscribe
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        wait_for(self.connected.is_set, 30, f"{client_id} connected")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert not reason.is_failure
        if self._subscribe is None:
            self.connected.set()
        else:
            client.subscribe(self._subscribe, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append(msg.payload)

    def sizes(self) -> list[int]:
        with self.lock:
            return [len(p) for p in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_shipped_broker_limit_is_the_contracts() -> None:
    assert f"max_packet_size {MAX_PACKET_BYTES}" in site_broker_limits()


@pytest.mark.timeout(180)
def test_broker_cuts_off_an_oversized_packet_and_passes_the_largest_bundle(broker: MosquittoBroker) -> None:
    hub = PlainClient(broker, "kiosk-listener", subscribe=SYNC_TOPIC)
    sender = PlainClient(broker, "oversized-sender")
    try:
        oversized = b"x" * MAX_PACKET_BYTES  # payload alone already over the packet limit
        sender.client.publish(SYNC_TOPIC, oversized, qos=1)
        wait_for(sender.disconnected.is_set, 60, "the broker disconnecting the oversized sender")

        # The largest bundle a kiosk accepts still goes through, from a fresh connection.
        good = PlainClient(broker, "bundle-sender")
        try:
            info = good.client.publish(SYNC_TOPIC, b"b" * MAX_BUNDLE_BYTES, qos=1)
            info.wait_for_publish(60)
            wait_for(lambda: MAX_BUNDLE_BYTES in hub.sizes(), 60, "the largest legitimate bundle")
        finally:
            good.close()
        # The listener's one connection delivers in order: a routed oversized message would be first.
        assert hub.sizes() == [MAX_BUNDLE_BYTES]
    finally:
        sender.close()
        hub.close()
