"""The agent's composition root: configuration (plus command-line overrides) into a running publisher."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common.backoff import Backoff
from config import Config
from contract.broker import PLAIN_MQTT_LAB_KEY, TlsOptions, check_transport, is_loopback, parse_broker
from contract.signing import load_public_key
from contract.topics import Topics
from edge_agent.ack import AckHandler, hub_ack_seq
from edge_agent.commands import CommandHandler
from edge_agent.metrics import MetricsReporter
from edge_agent.publisher import Inbound, Outgoing, Periodic, Publisher, PublisherOptions
from edge_agent.state import StateReporter, software_version
from edge_agent.sync import SyncHandler
from kiosk.privacy import read_fleet_key_id
from kiosk.store import Store

log = logging.getLogger(__name__)

STATE_CHECK_S = 2.0  # how soon a kiosk mode change or crash reaches the hub
COMPACT_EVERY_S = 3600.0


@dataclass(frozen=True)
class Overrides:
    """What the command line may set over the config file."""

    broker: str | None = None
    site: str | None = None
    kiosk: str | None = None
    mqtt5: bool = False
    keepalive_s: int | None = None
    backoff_initial_s: float | None = None
    backoff_max_s: float | None = None
    command_key: Path | None = None
    sync_key: Path | None = None


def publisher_options(config: Config, over: Overrides) -> PublisherOptions:
    agent = config.agent
    url = over.broker or agent.broker
    # Again here: --broker overrides the URL the configuration was validated with.
    check_transport(
        url,
        sends_password=agent.password_file is not None,
        plain_allowed_off_loopback=agent.insecure_plain_mqtt_lab_only,
    )
    scheme, host, port = parse_broker(url)
    if scheme == "mqtt" and not is_loopback(host):
        log.warning(
            "INSECURE (agent.%s): plain MQTT to %s, events and commands cross the network in clear",
            PLAIN_MQTT_LAB_KEY,
            host,
        )
    tls = None
    if scheme == "mqtts":
        if agent.tls.ca_file is None:
            raise ValueError("mqtts:// needs agent.tls.ca_file: the broker's certificate is always verified")
        tls = TlsOptions(
            ca_file=config.data_path(agent.tls.ca_file),  # type: ignore[arg-type]
            cert_file=config.data_path(agent.tls.cert_file),
            key_file=config.data_path(agent.tls.key_file),
        )
    elif agent.tls.cert_file is not None:
        raise ValueError("a client certificate is configured but the broker URL is not mqtts://")
    password = None
    if agent.password_file is not None:
        if agent.username is None:
            raise ValueError("agent.password_file needs agent.username")
        path = config.data_path(agent.password_file)
        assert path is not None
        password = path.read_text(encoding="utf-8").strip()
    return PublisherOptions(
        host=host,
        port=port,
        keepalive_s=over.keepalive_s or agent.keepalive_s,
        mqtt_version=5 if over.mqtt5 or agent.mqtt_version == "5" else 4,
        backoff=Backoff(
            initial_s=over.backoff_initial_s or agent.backoff_initial_s,
            maximum_s=over.backoff_max_s or agent.backoff_max_s,
        ),
        tls=tls,
        username=agent.username,
        password=password,
    )


def compact_outbox(store: Store, retention: timedelta) -> list[Outgoing]:
    """Delete events the hub has stored (at or below its watermark) and the broker acknowledged longer
    ago than ``retention``; without a watermark nothing goes, whatever its age."""
    removed = store.outbox.compact(
        acked_through=hub_ack_seq(store), delivered_before=datetime.now(UTC) - retention
    )
    if removed:
        log.info("compacted %d delivered outbox events", removed)
    return []


def purge_expired(store: Store, retention_days: int) -> list[Outgoing]:
    """Beside compaction: transactions, referrals and hub requests the hub has had for the period."""
    counts = store.retention.purge(
        acked_through=hub_ack_seq(store), now=datetime.now(UTC), retention_days=retention_days
    )
    if any(counts.values()):
        log.info("retention purged %s", counts)
    return []


def build_publisher(config: Config, store: Store, over: Overrides) -> Publisher:
    """Raises ValueError/OSError for unusable settings (bad URL, unreadable key or password file)."""
    agent = config.agent
    topics = Topics(over.site or config.kiosk.site, over.kiosk or config.kiosk.id)
    options = publisher_options(config, over)
    state = StateReporter(store, topics, interval_s=agent.state_interval_s)
    metrics = MetricsReporter(store, topics)
    inbound: list[Inbound] = []
    sync: SyncHandler | None = None
    sync_key = over.sync_key or config.data_path(agent.sync_key_file)
    if sync_key is not None:
        key_path = config.fleet_key_path
        sync = SyncHandler(
            store, topics, load_public_key(sync_key), config, fleet_key_id=lambda: read_fleet_key_id(key_path)
        )
        inbound.append(sync)
    command_key = over.command_key or config.data_path(agent.command_key_file)
    if command_key is not None:
        hub_key = load_public_key(command_key)
        # The watermark is signed with the command key: without it the agent cannot trust one.
        inbound.append(AckHandler(store, topics, hub_key))
        commands = CommandHandler(
            store,
            topics,
            hub_key,
            freshness_s=agent.command_freshness_s,
            diagnostics=lambda: {
                "backlog": store.outbox.backlog(),
                "datasets": store.reference_data.dataset_versions(),
                "version": software_version(),
                "state": state.state(),
            },
        )
        inbound.append(commands)
    retention = timedelta(days=agent.outbox_retention_days)
    periodic = [
        Periodic(STATE_CHECK_S, state.produce, reset=state.reset),
        Periodic(agent.metrics_interval_s, metrics.produce),
        Periodic(COMPACT_EVERY_S, lambda: compact_outbox(store, retention)),
        Periodic(COMPACT_EVERY_S, lambda: purge_expired(store, config.privacy.retention_days)),
    ]
    publisher = Publisher(store, topics, options, inbound, periodic)
    if command_key is not None:
        commands.on_resend.append(publisher.rewind)
    if sync is not None and command_key is not None:
        # sync_now: subscribe again, so the broker re-sends its retained bundles.
        commands.on_sync_now.append(lambda: publisher.resubscribe(sync.subscriptions()))
    return publisher
