"""Broker addresses: ``mqtt://HOST:PORT`` or ``mqtts://HOST:PORT``, and the TLS files a client uses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# The configuration key that lets a lab run plain MQTT off the machine; named so nobody sets it by accident.
PLAIN_MQTT_LAB_KEY = "insecure_plain_mqtt_lab_only"


def parse_broker(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)``; raises ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"broker must look like mqtt://HOST:PORT or mqtts://HOST:PORT, got {url!r}")
    return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]


@dataclass(frozen=True)
class TlsOptions:
    """The broker's certificate is always verified against ``ca_file``; the pair is for mutual TLS."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


def is_loopback(host: str) -> bool:
    """Only a name that cannot leave the machine: "localhost" or a loopback address (127/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str, *, sends_password: bool, plain_allowed_off_loopback: bool) -> None:
    """Raises ValueError saying why a connection to ``url`` would expose the link.

    A password is never sent without TLS, whatever the host: anyone on the path (or on a shared host,
    with a packet capture on lo) would read it. Plain MQTT carries events and commands in clear, so it
    leaves the machine only when a lab says so explicitly.
    """
    scheme, host, _ = parse_broker(url)
    if scheme == "mqtts":
        return
    if sends_password:
        raise ValueError(
            f"refusing to send a password over plain {url}: use mqtts:// with the broker's CA "
            "(or a client certificate instead of the password)"
        )
    if not is_loopback(host) and not plain_allowed_off_loopback:
        raise ValueError(
            f"plain {url} leaves this machine unencrypted: use mqtts:// (with agent.tls.ca_file); "
            f"only a lab may set agent.{PLAIN_MQTT_LAB_KEY} = true"
        )
