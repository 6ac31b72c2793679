"""Signed reference-data bundles on ``gerbang/v1/{site}/sync/{dataset}``: format, limits, checksum."""

from __future__ import annotations

import hashlib
from typing import Any

from contract.signing import canonical

# 2: bundles name the fleet key their records were hashed under (fleet_key_id).
BUNDLE_SCHEMA = 2
# Checked before parsing: a 100k-row watchlist is ~13 MB, and json.loads of an unbounded message could
# take the agent's memory (and the device's link to the hub) with it.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
# The brokers' max_packet_size (deploy/mosquitto/mosquitto.conf): the largest bundle a kiosk accepts,
# plus 1 MiB for the fixed header, topic and MQTT 5 properties (a few hundred bytes in practice). A
# larger packet is cut off by the broker from its length header, before it is buffered or fanned out.
MAX_PACKET_BYTES = MAX_BUNDLE_BYTES + 1024 * 1024
KINDS = ("full", "delta")
FIELDS = frozenset(
    {
        "schema",
        "dataset",
        "version",
        "kind",
        "base_version",
        "issued_at",
        "site",
        "records",
        "records_sha256",
        "fleet_key_id",
        "signature",
    }
)
# The reference datasets (kiosk.reference.Dataset, checked equal by the tests) and the fleet settings,
# which travel as a bundle too but live in a file on the kiosk, not a table.
REFERENCE_DATASETS = frozenset({"evisa", "visa_exempt", "watchlist", "policy", "chip_trust"})
CONFIG_DATASET = "config"
DATASETS = REFERENCE_DATASETS | {CONFIG_DATASET}
# Sent whole only: policy and config are one object, not a list of rows; chip_trust is a few hundred
# certificates that change a few times a year, and a master list is one record anyway.
FULL_ONLY = frozenset({"policy", "chip_trust", CONFIG_DATASET})
# Records that are keyed hashes under the fleet key (document and person hashes): a bundle of these names
# the key it was hashed under, and a kiosk holding another key refuses it - its lookups would match nothing.
HASHED_DATASETS = frozenset({"evisa", "watchlist"})
FLEET_KEY_ID_LENGTH = 16
_FLEET_KEY_ID_DOMAIN = b"gerbang/fleet-key-id/v1\x00"


def fleet_key_id(key: bytes) -> str:
    """The public name of a fleet key: 64 bits of a domain-separated SHA-256 of it, enough to tell keys
    apart and useless for hashing anything (the key itself never leaves the kiosk or the hub)."""
    return hashlib.sha256(_FLEET_KEY_ID_DOMAIN + key).hexdigest()[:FLEET_KEY_ID_LENGTH]


def normalised(records: Any) -> Any:
    """List datasets in canonical order: the hub signs a given set as the same bytes every time."""
    if isinstance(records, list):
        return sorted(records, key=lambda record: canonical(record))
    return records


def records_sha256(records: Any) -> str:
    return hashlib.sha256(canonical(records)).hexdigest()
