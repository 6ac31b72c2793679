"""Reference-data bundles on the hub side: signing (full or delta), publishing (retained, QoS 1), a bench.

A bundle is what ``edge_agent.sync.SyncHandler`` accepts: every field but ``signature`` is signed
(Ed25519 over the canonical JSON shared with the agent), so site, dataset, version, base version and
issue time cannot be changed in transit. The bundle key is its own pair (``keygen --role sync``), never
the command key.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from contract import schema
from contract.broker import TlsOptions, check_transport, parse_broker
from contract.bundles import (
    BUNDLE_SCHEMA,
    CONFIG_DATASET,
    FULL_ONLY,
    HASHED_DATASETS,
    MAX_BUNDLE_BYTES,
    fleet_key_id,
    normalised,
    records_sha256,
)
from contract.signing import canonical, signature
from contract.topics import Topics
from edge_agent.sync import SyncHandler
from hub.signer import load_private_key
from kiosk.chip.trust_dataset import records_from_files
from kiosk.privacy import FleetKeyError, load_fleet_key
from kiosk.reference_data import Dataset

COMMANDS = ("sign-bundle", "publish-bundle")


def sign_bundle(
    private_key: Ed25519PrivateKey,
    dataset: Dataset | str,
    version: str,
    records: Any,
    *,
    site: str,
    kind: str = "full",
    base_version: str | None = None,
    issued_at: datetime | None = None,
    fleet_key_id: str | None = None,
) -> dict[str, Any]:
    """A signed bundle for ``site``; ``records`` is the dataset (full) or ``make_delta`` output (delta).

    ``dataset`` ``config`` carries fleet settings ``{section: {key: value}}`` (config.HUB_SETTABLE).
    ``fleet_key_id`` (contract.bundles.fleet_key_id) names the fleet key the records of a hashed dataset
    (watchlist, evisa) were hashed under; kiosks holding another key refuse the bundle.
    """
    name = CONFIG_DATASET if dataset == CONFIG_DATASET else Dataset(dataset).value
    if (name in HASHED_DATASETS) != (fleet_key_id is not None):
        raise ValueError(
            f"{name}: a fleet_key_id goes with the hashed datasets ({', '.join(sorted(HASHED_DATASETS))}) "
            "and only with them"
        )
    Topics(site, "hub")  # same segment rule as the topic the bundle will travel on
    if kind not in ("full", "delta"):
        raise ValueError(f"kind must be full or delta, not {kind!r}")
    if kind == "delta" and (name in FULL_ONLY or base_version is None):
        raise ValueError("a delta needs a base_version and a list dataset (policy and config are sent full)")
    if kind == "full" and base_version is not None:
        raise ValueError("a full bundle has no base_version")
    moment = issued_at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("issued_at must carry a time zone")
    body: dict[str, Any] = {
        "schema": BUNDLE_SCHEMA,
        "dataset": name,
        "version": version,
        "kind": kind,
        "base_version": base_version,
        "issued_at": moment.astimezone(UTC).isoformat(),
        "site": site,
        "records": normalised(records) if kind == "full" else records,
        "fleet_key_id": fleet_key_id,
    }
    body["records_sha256"] = records_sha256(body["records"])
    body["signature"] = signature(private_key, body)
    return body


def make_delta(
    old_records: Sequence[Mapping[str, Any]], new_records: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """``{"add", "remove"}`` turning ``old_records`` into ``new_records`` (records compared whole)."""
    old = {canonical(r): r for r in old_records}
    new = {canonical(r): r for r in new_records}
    return {
        "add": [new[k] for k in sorted(new.keys() - old.keys())],
        "remove": [old[k] for k in sorted(old.keys() - new.keys())],
    }


def encode(bundle: Mapping[str, Any]) -> bytes:
    payload = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(payload) > MAX_BUNDLE_BYTES:
        raise ValueError(f"bundle is {len(payload)} bytes; kiosks refuse more than {MAX_BUNDLE_BYTES}")
    return payload


def publish_bundle(
    host: str,
    port: int,
    site: str,
    bundle: Mapping[str, Any] | bytes,
    *,
    tls: TlsOptions | None = None,
    username: str | None = None,
    password: str | None = None,
    mqtt_version: int = 4,
    timeout_s: float = 30.0,
) -> str:
    """Publish retained at QoS 1 on ``gerbang/v1/{site}/sync/{dataset}``; returns the topic after PUBACK.

    Raises ``ConnectionError`` when the broker refuses the connection or (MQTT 5) the publish.
    """
    if isinstance(bundle, bytes):
        payload, body = bundle, json.loads(bundle)
    else:
        payload, body = encode(bundle), bundle
    if body.get("site") != site:
        raise ValueError(f"bundle is for site {body.get('site')!r}, not {site!r}")
    topic = Topics(site, "hub").sync(str(body.get("dataset")))
    protocol = mqtt.MQTTv5 if mqtt_version == 5 else mqtt.MQTTv311
    client_id = f"gerbang-hub-bundles-{uuid.uuid4().hex[:12]}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set(
            ca_certs=str(tls.ca_file),
            certfile=None if tls.cert_file is None else str(tls.cert_file),
            keyfile=None if tls.key_file is None else str(tls.key_file),
        )
    connected = threading.Event()
    acked = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome["connect"] = reason
        connected.set()

    def on_publish(_c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        outcome["publish"] = reason
        acked.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(timeout_s) or outcome["connect"].is_failure:
            raise ConnectionError(f"broker {host}:{port} refused the connection: {outcome.get('connect')}")
        client.publish(topic, payload, qos=1, retain=True)
        if not acked.wait(timeout_s):
            raise ConnectionError(f"no PUBACK for {topic} within {timeout_s} s")
        if getattr(outcome["publish"], "is_failure", False):
            raise ConnectionError(f"broker refused {topic}: {outcome['publish']}")
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


# ---------------------------------------------------------------------- bench


def synthetic_watchlist(rows: int, seed: int = 0) -> list[dict[str, str]]:
    """Rows shaped like the real watchlist (keyed hashes only), distinct for distinct seeds."""
    return [
        {
            "record_id": f"bench-{seed}-{i}",
            "subject_hash": hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(),
            "match_on": "document" if i % 3 else "person",
            "category": "lost_stolen" if i % 2 else "watchlist",
        }
        for i in range(rows)
    ]


def bench_apply(rows: int = 100_000, workdir: Path | None = None) -> dict[str, Any]:
    """Times sign (hub), verify + apply (agent), re-delivery and a 1 % delta of a ``rows``-row watchlist."""
    from kiosk.store import Store

    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        key = Ed25519PrivateKey.generate()
        key_id = fleet_key_id(b"bench fleet key")
        topics = Topics("bench-site", "bench-kiosk")
        records = synthetic_watchlist(rows)
        started = time.perf_counter()
        full = encode(
            sign_bundle(key, Dataset.WATCHLIST, "v1", records, site=topics.site, fleet_key_id=key_id)
        )
        sign_s = time.perf_counter() - started
        changed = max(1, rows // 100)
        newer = records[changed:] + synthetic_watchlist(changed, seed=1)
        delta = encode(
            sign_bundle(
                key,
                Dataset.WATCHLIST,
                "v2",
                make_delta(records, newer),
                site=topics.site,
                kind="delta",
                base_version="v1",
                fleet_key_id=key_id,
            )
        )
        with Store.open(Path(scratch) / "bench.sqlite3") as store:
            handler = SyncHandler(store, topics, key.public_key(), fleet_key_id=lambda: key_id)
            topic = topics.sync(Dataset.WATCHLIST.value)
            timings: dict[str, float] = {}
            for label, payload in (("full", full), ("redelivery", full), ("delta", delta)):
                started = time.perf_counter()
                outcome = handler.process(topic, payload)
                timings[label] = time.perf_counter() - started
                expected = "unchanged" if label == "redelivery" else "applied"
                if outcome.status != expected:
                    raise RuntimeError(f"bench {label} bundle was {outcome.status}: {outcome.reason}")
            versions = store.reference_data.dataset_versions()
    return {
        "rows": rows,
        "bundle_bytes": len(full),
        "sign_s": round(sign_s, 3),
        "verify_apply_full_s": round(timings["full"], 3),
        "redelivery_s": round(timings["redelivery"], 4),
        "delta_rows": 2 * changed,
        "delta_bytes": len(delta),
        "verify_apply_delta_s": round(timings["delta"], 3),
        "version": versions.get(Dataset.WATCHLIST.value),
    }


# ---------------------------------------------------------------------- command line


def add_parsers(sub: Any) -> None:
    sign = sub.add_parser("sign-bundle", help="print a signed reference-data bundle as JSON")
    sign.add_argument("--key", type=Path, required=True, help="the hub's bundle-signing PRIVATE key (PEM)")
    sign.add_argument("--site", required=True)
    sign.add_argument("--dataset", required=True, choices=[*(d.value for d in Dataset), CONFIG_DATASET])
    sign.add_argument("--version", required=True)
    source = sign.add_mutually_exclusive_group(required=True)
    source.add_argument("--records", type=Path, help="JSON file: the new dataset")
    source.add_argument(
        "--trust-files",
        type=Path,
        nargs="+",
        help="chip_trust: CSCA certificates (DER/PEM), ICAO master lists and CRLs, files or folders",
    )
    sign.add_argument("--base-records", type=Path, help="JSON file: the dataset the kiosks have (delta)")
    sign.add_argument("--base-version", help="version of --base-records (delta)")
    sign.add_argument("--issued-at", help="ISO-8601 with time zone (default: now)")
    fleet = sign.add_mutually_exclusive_group()
    fleet.add_argument(
        "--fleet-key", type=Path, help="watchlist/evisa: the fleet key file the records were hashed with"
    )
    fleet.add_argument("--fleet-key-id", help="watchlist/evisa: that key's id, when the key is elsewhere")
    pub = sub.add_parser("publish-bundle", help="publish a signed bundle retained at QoS 1")
    pub.add_argument("--broker", required=True, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    pub.add_argument("--bundle", type=Path, required=True, help="bundle JSON file ('-' = stdin)")
    pub.add_argument("--ca-file", type=Path)
    pub.add_argument("--cert-file", type=Path)
    pub.add_argument("--key-file", type=Path)
    pub.add_argument("--username")
    pub.add_argument("--password-file", type=Path)
    pub.add_argument("--mqtt5", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "sign-bundle":
            return _sign(args)
        return _publish(args)
    except ConnectionError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, FleetKeyError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2


def _sign(args: argparse.Namespace) -> int:
    if args.trust_files is not None:
        if args.dataset != Dataset.CHIP_TRUST:
            raise ValueError("--trust-files makes a chip_trust bundle")
        # Checked exactly as a kiosk will check them: a file it would refuse stops the signing.
        records = records_from_files(args.trust_files)
    else:
        records = json.loads(args.records.read_text(encoding="utf-8"))
    if (args.base_records is None) != (args.base_version is None):
        raise ValueError("--base-records and --base-version go together")
    kind = "full"
    if args.base_records is not None:
        records = make_delta(json.loads(args.base_records.read_text(encoding="utf-8")), records)
        kind = "delta"
    issued_at = None if args.issued_at is None else datetime.fromisoformat(args.issued_at)
    key_id = args.fleet_key_id
    if args.fleet_key is not None:
        key_id = fleet_key_id(load_fleet_key(args.fleet_key))
    bundle = sign_bundle(
        load_private_key(args.key),
        args.dataset,
        args.version,
        records,
        site=args.site,
        kind=kind,
        base_version=args.base_version,
        issued_at=issued_at,
        fleet_key_id=key_id,
    )
    payload = encode(bundle)
    # Checked against the contract here, where the operator can fix it (a watchlist record without its
    # record_id ...), rather than refused by every kiosk of the site with a sync_rejected alert.
    problems = schema.problems(Topics(args.site, "hub").sync(bundle["dataset"]), payload)
    if problems:
        raise ValueError("the kiosks would refuse this bundle: " + "; ".join(problems[:5]))
    sys.stdout.write(payload.decode("utf-8") + "\n")
    return 0


def _publish(args: argparse.Namespace) -> int:
    scheme, host, port = parse_broker(args.broker)
    check_transport(
        args.broker, sends_password=args.password_file is not None, plain_allowed_off_loopback=True
    )
    raw = sys.stdin.buffer.read() if str(args.bundle) == "-" else args.bundle.read_bytes()
    payload = raw.strip()
    if len(payload) > MAX_BUNDLE_BYTES:
        raise ValueError(f"bundle is {len(payload)} bytes; kiosks refuse more than {MAX_BUNDLE_BYTES}")
    body = json.loads(payload)
    tls = None
    if scheme == "mqtts":
        if args.ca_file is None:
            raise ValueError("mqtts:// needs --ca-file: the broker's certificate is always verified")
        tls = TlsOptions(args.ca_file, args.cert_file, args.key_file)
    password = None
    if args.password_file is not None:
        password = args.password_file.read_text(encoding="utf-8").strip()
    topic = publish_bundle(
        host,
        port,
        str(body.get("site")),
        payload,
        tls=tls,
        username=args.username,
        password=password,
        mqtt_version=5 if args.mqtt5 else 4,
    )
    print(json.dumps({"topic": topic, "bytes": len(payload), "version": body.get("version")}))
    return 0
