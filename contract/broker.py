"""Broker addresses: ``mqtt://HOST:PORT`` or ``mqtts://HOST:PORT``, and the TLS files a client uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


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
