"""Every MQTT message against its JSON Schema (contract/schemas) and the AsyncAPI document.

The messages come from the real producers: a headless lane run into a real SQLite file (transactions,
door alarms, silent referrals, help, out of service, hub requests, maintenance PIN), the agent's state
and metrics reporters on that file, signed commands through the agent's command handler, signed
bundles through its sync handler, and finally a real broker with the agent in a thread and a hub-side
subscriber validating everything it sees on ``gerbang/v1/#``.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

from common.pinhash import PinHash, hash_pin
from config import Config
from contract import schema
from contract.bundles import DATASETS, HASHED_DATASETS
from contract.commands import COMMAND_NAMES
from contract.topics import Topics
from drivers.door_controller import AlarmKind
from drivers.interfaces import LaneEvent
from edge_agent.agent import Overrides, build_publisher
from edge_agent.commands import CommandHandler
from edge_agent.metrics import MetricsReporter
from edge_agent.publisher import Publisher, event_message
from edge_agent.state import StateReporter
from edge_agent.sync import REASONS as SYNC_REASONS
from edge_agent.sync import SyncHandler
from hub.bundles import encode, make_delta, sign_bundle
from hub.signer import keygen, load_private_key, sign_command
from kiosk.documents.mrz import MrzFormat
from kiosk.flow.states import State
from kiosk.headless import run_population, simulated_kiosk
from kiosk.pinlock import Lockout, PinLock
from kiosk.privacy import read_fleet_key_id
from kiosk.reasons import Reason
from kiosk.reference_data import Dataset, PolicyRules
from kiosk.simulation.population import reference_datasets
from kiosk.store import Store
from kiosk.store.records import DECISIONS, FORBIDDEN_PAYLOAD_KEYS, EventType
from kiosk.store.requests import KIOSK_COMMANDS, LANE_MODES, Request
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for

ROOT = Path(__file__).resolve().parent.parent
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
SCHEMA_DIR = ROOT / "contract" / "schemas"
SEED = 8  # this population has tailgaters, walk-aways, a watchlist hit and bad chips: several alert kinds
TRAVELLERS = 50
# Arguments a hub would send, per command; a new command must be added here (and to the schema).
GOOD_ARGS: dict[str, dict[str, Any]] = {
    "set_mode": {"mode": "maintenance", "reason": "cleaning"},
    "open_exit_door": {"hold_s": 5},
    "sync_now": {},
    "reload_config": {},
    "diagnostics": {},
    "reboot": {},
    "resend": {"from_seq": 1, "to_seq": 3},
}


def outbox_messages(store: Store, topics: Topics) -> list[tuple[str, bytes]]:
    """Every outbox row in its wire form, on the topic the publisher would use."""
    return [(topics.event(str(e.type)), event_message(e)) for e in store.outbox.pending(10_000)]


def assert_valid(messages: list[tuple[str, bytes]]) -> None:
    failures = [
        f"{topic}: {problems}" for topic, body in messages if (problems := schema.problems(topic, body))
    ]
    assert failures == [], "\n".join(failures)


def payloads(messages: list[tuple[str, bytes]], kind: str) -> list[dict[str, Any]]:
    return [json.loads(body)["payload"] for topic, body in messages if topic.endswith(f"/events/{kind}")]


# ---------------------------------------------------------------------- the schemas themselves


def test_every_schema_is_a_valid_draft_2020_12_schema_with_its_own_id() -> None:
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json"))
    assert files == sorted(f"{name}.schema.json" for name in schema.schemas())
    for name, contents in schema.schemas().items():
        Draft202012Validator.check_schema(contents)
        assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert contents["$id"] == schema.schema_uri(name)


def _walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every (JSON pointer, value) below ``node``; the pointer is what a ``$ref`` fragment would say."""
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from _walk(value, f"{pointer}/{escaped}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{index}")


def test_every_ref_resolves_offline() -> None:
    resolved = 0
    for name, contents in schema.schemas().items():
        resolver = schema.registry().resolver(base_uri=schema.schema_uri(name))
        for _pointer, node in _walk(contents):
            if isinstance(node, dict) and isinstance(node.get("$ref"), str):
                resolver.lookup(node["$ref"])  # raises on a dangling reference
                resolved += 1
    assert resolved > 50


def test_schemas_ship_as_package_data() -> None:
    """What setuptools installs: packages found by the include patterns, data files by package globs."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    assert (SCHEMA_DIR / "__init__.py").is_file(), "contract.schemas must be a package to be installed"
    assert any(fnmatchcase("contract.schemas", p) for p in setuptools["packages"]["find"]["include"])
    data = setuptools["package-data"]
    globs = [*data.get("contract.schemas", []), *data.get("*", [])]
    for path in SCHEMA_DIR.glob("*.schema.json"):
        assert any(fnmatchcase(path.name, glob) for glob in globs), f"{path.name} would not be installed"
    # The hub validates at run time, so jsonschema is a runtime dependency, not a test one.
    assert any(d.startswith("jsonschema") for d in pyproject["project"]["dependencies"])


def test_forbidden_keys_are_the_stores_list() -> None:
    listed = schema.schemas()["common"]["$defs"]["forbidden_key"]["enum"]
    assert sorted(listed) == sorted(FORBIDDEN_PAYLOAD_KEYS)


def test_no_schema_admits_a_personal_data_key_anywhere() -> None:
    """Every object schema is closed, or restricts its key names so that no forbidden key passes."""
    forbidden = sorted(FORBIDDEN_PAYLOAD_KEYS)
    spellings = [k for key in forbidden for k in (key, key.upper(), key.title())]
    objects = 0
    for name, contents in schema.schemas().items():
        for pointer, node in _walk(contents):
            if not isinstance(node, dict):
                continue
            # Key patterns would need checking one by one; the schemas use propertyNames instead.
            assert "patternProperties" not in node, f"{name}{pointer}"
            types = node.get("type")
            if not (types == "object" or (isinstance(types, list) and "object" in types)):
                continue
            objects += 1
            where = f"{name}.schema.json#{pointer}"
            named = set(node.get("properties", {}))
            assert not named & FORBIDDEN_PAYLOAD_KEYS, f"{where} names {named & FORBIDDEN_PAYLOAD_KEYS}"
            if node.get("additionalProperties") is False:
                continue
            assert "propertyNames" in node, f"{where} is an open object without a propertyNames rule"
            keys = Draft202012Validator(
                {"$ref": f"{schema.schema_uri(name)}#{pointer}/propertyNames"}, registry=schema.registry()
            )
            admitted = [k for k in spellings if keys.is_valid(k)]
            assert admitted == [], f"{where} admits {admitted}"
    assert objects > 40


def test_enumerations_match_the_code() -> None:
    common = schema.schemas()["common"]["$defs"]
    assert set(common["reason_code"]["enum"]) == {r.value for r in Reason}
    assert set(common["lane_state"]["enum"]) == {s.value for s in State}
    assert set(common["decision"]["enum"]) == set(DECISIONS)
    assert set(common["event_type"]["enum"]) == {t.value for t in EventType} == set(schema.EVENT_TYPES)
    assert set(common["command_name"]["enum"]) == set(COMMAND_NAMES) == set(GOOD_ARGS)
    assert tuple(common["lane_mode"]["enum"]) == LANE_MODES
    alert = schema.schemas()["event-alert"]["$defs"]
    assert set(alert["door_alarm"]["enum"]) == {k.value for k in AlarmKind}
    event_enum = alert["payload"]["properties"]["event"]["enum"]
    assert set(event_enum) == {e.value for e in LaneEvent} | {None}
    assert tuple(alert["sync_rejection_reason"]["enum"]) == SYNC_REASONS
    transaction = schema.schemas()["event-transaction"]["$defs"]["payload"]["properties"]
    assert set(transaction["document_format"]["enum"]) == {f.value for f in MrzFormat} | {None}
    audit = schema.schemas()["event-audit"]["$defs"]
    assert set(audit["command_executed"]["properties"]["name"]["enum"]) == KIOSK_COMMANDS
    bundle = schema.schemas()["sync-bundle"]["$defs"]
    assert set(bundle["dataset"]["enum"]) == DATASETS
    assert set(bundle["policy"]["properties"]) == set(PolicyRules.model_fields)
    # Every reason the command handler can raise is one the schema knows.
    source = (ROOT / "edge_agent" / "commands.py").read_text(encoding="utf-8")
    raised = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Rejected"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert raised and raised <= set(common["rejection_reason"]["enum"])


def test_feedback_schema_knows_the_screens_codes(tmp_path: Path) -> None:
    # Kivy is imported in a child process: its import-time set-up must not leak into this one.
    code = (
        "import json; from kiosk.ui.screens.feedback import PROBLEMS, RATINGS; "
        "print(json.dumps({'problems': [p[0] for p in PROBLEMS], 'ratings': [r[0] for r in RATINGS]}))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIVY_NO_ARGS": "1",
        "KIVY_NO_CONSOLELOG": "1",
        "KIVY_NO_FILELOG": "1",
        "KIVY_HOME": str(tmp_path / "kivy"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    screen = json.loads(done.stdout.strip().splitlines()[-1])
    feedback = schema.schemas()["event-feedback"]["$defs"]["payload"]["properties"]
    assert feedback["problem"]["enum"] == screen["problems"]
    assert (feedback["rating"]["minimum"], feedback["rating"]["maximum"]) == (
        min(screen["ratings"]),
        max(screen["ratings"]),
    )


# ---------------------------------------------------------------------- a real lane's messages


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A headless run plus the side paths a run of ordinary travellers never takes."""
    base = tmp_path_factory.mktemp("lane")
    config = Config(base_dir=base)
    db = base / "lane.sqlite3"
    topics = Topics(config.kiosk.site, config.kiosk.id)
    with simulated_kiosk(config, TRAVELLERS, SEED, db) as (kiosk, stage, travellers):
        engine, store = kiosk.engine, kiosk.store
        for traveller in travellers:
            stage.arrive(traveller)
            try:
                engine.run_once(1.0)
            finally:
                stage.leave()
        engine.request_help()
        # Hub requests the agent queued, acted on by the lane between travellers.
        for name, args in (("open_exit_door", {"hold_s": 0.5}), ("reboot", {})):
            store.requests.post(Request(str(uuid.uuid4()), name, args))
        engine.run_once(0.1)
        # A device failure takes the lane out of service; the repair brings it back.
        engine.devices.camera.fail("lens covered")  # type: ignore[attr-defined]
        engine.run_once(0.1)
        engine.devices.camera.repair()  # type: ignore[attr-defined]
        engine.run_once(0.1)
        # A transaction cut short by a crash after its decision was recorded.
        txn = store.transactions.begin(versions=engine.versions, training=False)
        store.transactions.record_decision(txn, decision="OPEN", reasons=[])
        store.transactions.abort_unfinished()
        # Every way a maintenance PIN attempt is audited (training flag on: it travels in the envelope).
        pins = PinLock(
            store,
            PinHash.parse(hash_pin("246813")),
            Lockout(max_failures=2, first_s=60, max_s=120),
            now=time.time,
            training=lambda: True,
        )
        for pin in ("000000", "246813", "111111", "222222", "246813"):
            pins.attempt(pin)
        # The feedback screen's two kinds of answer, as kiosk.ui.app.record_feedback stores them.
        last = store.transactions.recent(limit=1)[0]["id"]
        store.outbox.add("feedback", {"transaction_id": last, "rating": 5})
        store.outbox.add("feedback", {"transaction_id": None, "problem": "camera"})
        messages = outbox_messages(store, topics)
        running_state = StateReporter(store, topics).message()
        metrics = MetricsReporter(store, topics).produce()[0]
    with Store.open(db) as store:
        stopped_state = StateReporter(store, topics, now=lambda: datetime.now(UTC) + timedelta(hours=1))
        stopped = stopped_state.message()
    return {
        "topics": topics,
        "messages": messages,
        "state": running_state,
        "stopped_state": stopped,
        "metrics": metrics,
    }


def test_every_outbox_event_of_a_lane_run_validates(lane: dict[str, Any]) -> None:
    messages = lane["messages"]
    assert_valid(messages)
    types = {json.loads(body)["type"] for _, body in messages}
    assert types == {"transaction", "alert", "help", "feedback", "audit"}
    assert len(payloads(messages, "transaction")) == TRAVELLERS
    alerts = {p["alert"] for p in payloads(messages, "alert")}
    assert {
        "tailgating",
        "referral_watchlist_hit",
        "officer_exit_override",
        "out_of_service",
        "transaction_interrupted",
        "maintenance_locked_out",
    } <= alerts
    audits = {p["audit"] for p in payloads(messages, "audit")}
    assert {"command_executed", "maintenance_pin_wrong", "maintenance_opened"} <= audits
    assert {"maintenance_pin_locked_out", "maintenance_pin_refused_locked"} <= audits


def test_state_and_metrics_from_the_lane_validate(lane: dict[str, Any]) -> None:
    for message in (lane["state"], lane["stopped_state"], lane["metrics"]):
        assert schema.problems(message.topic, message.payload) == []
    running = json.loads(lane["state"].payload)
    assert running["mode"] == "in_service" and running["kiosk_running"]
    assert set(running["devices"]) == {"document_reader", "chip", "camera", "fingerprint", "gate"}
    stopped = json.loads(lane["stopped_state"].payload)
    assert stopped["mode"] == "out_of_service" and not stopped["kiosk_running"]
    metrics = json.loads(lane["metrics"].payload)
    assert metrics["counters"]["transactions"] >= TRAVELLERS
    for histogram in [metrics["histograms"]["face_score"], *metrics["histograms"]["stage_ms"].values()]:
        assert len(histogram["counts"]) == len(histogram["edges"]) - 1


def test_state_of_a_kiosk_that_never_reported_validates(tmp_path: Path) -> None:
    topics = Topics("site-a", "kiosk-a")
    with Store.open(tmp_path / "fresh.sqlite3") as store:
        for message in (StateReporter(store, topics).message(), *MetricsReporter(store, topics).produce()):
            assert schema.problems(message.topic, message.payload) == []


def _mutated(message: tuple[str, bytes], change: Any) -> bytes:
    body = json.loads(message[1])
    change(body)
    return json.dumps(body).encode()


def test_personal_data_missing_fields_and_unknown_values_are_rejected(lane: dict[str, Any]) -> None:
    messages, topics = lane["messages"], lane["topics"]
    transaction = next(m for m in messages if m[0] == topics.event("transaction"))
    assert schema.problems(*transaction) == []

    leaked = _mutated(transaction, lambda b: b["payload"].__setitem__("document_number", "X1234567"))
    with pytest.raises(schema.MessageInvalid, match="document_number"):
        schema.validate(transaction[0], leaked)
    no_seq = _mutated(transaction, lambda b: b.pop("seq"))
    with pytest.raises(schema.MessageInvalid, match="'seq' is a required property"):
        schema.validate(transaction[0], no_seq)
    state = json.loads(lane["state"].payload)
    with pytest.raises(schema.MessageInvalid, match="mode"):
        schema.validate(topics.state, json.dumps({**state, "mode": "party"}))

    # Each forbidden key, at the top of every event type's payload and inside open maps, is refused.
    samples = {json.loads(body)["type"]: (topic, body) for topic, body in messages}
    for key in sorted(FORBIDDEN_PAYLOAD_KEYS):
        for topic, body in samples.values():
            assert schema.problems(
                topic, _mutated((topic, body), lambda b, k=key: b["payload"].update({k: 1}))
            )
        nested = _mutated(transaction, lambda b, k=key: b["payload"]["face"]["quality"].update({k: 0.5}))
        assert schema.problems(transaction[0], nested)
        assert schema.problems(
            topics.state, json.dumps({**state, "devices": {key: state["devices"]["gate"]}})
        )

    # A payload of one type on another type's topic, an unknown alert, a bad timestamp, a non-JSON body.
    alert = next(m for m in messages if m[0] == topics.event("alert"))
    assert schema.problems(topics.event("transaction"), alert[1])
    assert schema.problems(alert[0], _mutated(alert, lambda b: b["payload"].update({"alert": "meteor"})))
    assert schema.problems(alert[0], _mutated(alert, lambda b: b.update({"ts": "yesterday"})))
    assert schema.problems(alert[0], _mutated(alert, lambda b: b.update({"event_id": str(uuid.uuid4())})))
    assert schema.problems(alert[0], b"{not json")
    assert schema.problems(topics.availability, b"maybe")
    assert (
        schema.problems(topics.availability, b"\xff")
        and schema.problems(topics.availability, b"online") == []
    )


def test_unknown_topics_are_refused() -> None:
    for topic in (
        "gerbang/v2/s/k/state",
        "gerbang/v1/s/k/events/gossip",
        "gerbang/v1/s/k/firmware",
        "gerbang/v1/S/k/state",
        "gerbang/v1/s/k/cmd/reboot/now",
        "other/v1/s/k/state",
    ):
        with pytest.raises(schema.UnknownTopic):
            schema.validate(topic, b"{}")


# ---------------------------------------------------------------------- commands and bundles


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The agent's real composition (keys from the hub's keygen), not connected to any broker."""
    command_private, command_public = keygen(tmp_path / "keys")
    sync_private, sync_public = keygen(tmp_path / "keys", role="sync")
    config = Config.model_validate(
        {
            "agent": {"command_key_file": str(command_public), "sync_key_file": str(sync_public)},
            "base_dir": tmp_path,
        }
    )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.store_path)
    publisher = build_publisher(config, store, Overrides())
    try:
        yield {
            "config": config,
            "store": store,
            "topics": Topics(config.kiosk.site, config.kiosk.id),
            "commands": next(h for h in publisher.inbound if isinstance(h, CommandHandler)),
            "sync": next(h for h in publisher.inbound if isinstance(h, SyncHandler)),
            "command_key": load_private_key(command_private),
            "sync_key": load_private_key(sync_private),
        }
    finally:
        store.close()


def _send(agent: dict[str, Any], name: str, body: dict[str, Any] | bytes) -> list[tuple[str, bytes]]:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    replies = agent["commands"].handle(agent["topics"].command(name), payload, False)
    return [(reply.topic, reply.payload) for reply in replies]


def test_signed_commands_and_their_results_validate(agent: dict[str, Any]) -> None:
    topics, key = agent["topics"], agent["command_key"]
    target = {"site": topics.site, "kiosk": topics.kiosk}
    agent["store"].outbox.add("audit", {"audit": "maintenance_opened"})  # something for resend
    results: list[tuple[str, bytes]] = []
    for name in sorted(COMMAND_NAMES):
        body = sign_command(key, name, target, GOOD_ARGS[name])
        assert schema.problems(topics.command(name), json.dumps(body)) == [], name
        replies = _send(agent, name, body)
        assert [json.loads(r[1])["status"] for r in replies] == ["accepted"], (name, replies)
        results += replies
    assert_valid(results)
    diagnostics = next(json.loads(r[1])["result"] for r in results if "state" in json.loads(r[1])["result"])
    assert {"backlog", "datasets", "version", "state"} == set(diagnostics)

    # Every way of being rejected answers with a valid result and raises a valid alert.
    good = sign_command(key, "reboot", target)
    tampered = {**sign_command(key, "reboot", target), "args": {"force": True}}
    rejections = {
        "bad_signature": ("reboot", tampered),
        "stale": (
            "reboot",
            sign_command(key, "reboot", target, issued_at=datetime.now(UTC) - timedelta(hours=1)),
        ),
        "wrong_target": ("reboot", sign_command(key, "reboot", {"site": topics.site, "kiosk": "other"})),
        "unknown_command": ("self_destruct", sign_command(key, "self_destruct", target)),
        "invalid_args": ("set_mode", sign_command(key, "set_mode", target, {"mode": "party"})),
        "malformed": ("reboot", b"\x00not json"),
    }
    assert _send(agent, "reboot", good)[0][1]
    rejected: list[tuple[str, bytes]] = _send(agent, "reboot", good)  # replayed
    assert json.loads(rejected[0][1])["reason"] == "replayed"
    for reason, (name, body) in rejections.items():
        replies = _send(agent, name, body)
        assert json.loads(replies[0][1]) | {"command_id": None} == {
            "command_id": None,
            "status": "rejected",
            "reason": reason,
        }, reason
        rejected += replies
    assert any(topic.endswith("/cmd_result/invalid") for topic, _ in rejected)
    assert_valid(rejected)
    # What the schema itself refuses of those (the rest is only detectable with the key or the clock).
    assert schema.problems(topics.command("self_destruct"), json.dumps(rejections["unknown_command"][1]))
    assert schema.problems(topics.command("set_mode"), json.dumps(rejections["invalid_args"][1]))
    assert schema.problems(topics.command("reboot"), json.dumps(tampered))  # reboot takes no args
    assert schema.problems(topics.command("diagnostics"), json.dumps(good))  # name is not the topic's

    events = outbox_messages(agent["store"], topics)
    assert_valid(events)
    alerts = [p for p in payloads(events, "alert") if p["alert"] == "command_rejected"]
    assert {a["reason"] for a in alerts} == set(rejections) | {"replayed"}
    accepted = {p["name"] for p in payloads(events, "audit") if p.get("audit") == "command_accepted"}
    assert accepted == set(COMMAND_NAMES) | {"reboot"}


def _datasets(config: Config) -> dict[Dataset, Any]:
    """The reference data a hub would sync for a simulated population (keyed hashes only)."""
    with simulated_kiosk(config, TRAVELLERS, SEED, None) as (kiosk, _stage, travellers):
        data = reference_datasets(travellers, kiosk.hasher, kiosk.clock.now().date())
    assert all(data.values()), "the population must fill every dataset"
    return data


def test_signed_bundles_and_their_outcomes_validate(agent: dict[str, Any]) -> None:
    topics, key, handler = agent["topics"], agent["sync_key"], agent["sync"]
    data = _datasets(agent["config"])
    issued = datetime.now(UTC) - timedelta(minutes=5)
    bundles: list[tuple[str, bytes]] = []
    key_id = read_fleet_key_id(agent["config"].fleet_key_path)  # the simulation made the kiosk's key
    hashed = {d: key_id if d in HASHED_DATASETS else None for d in data}
    for dataset, records in data.items():
        body = sign_bundle(
            key, dataset, "v1", records, site=topics.site, issued_at=issued, fleet_key_id=hashed[dataset]
        )
        bundles.append((topics.sync(dataset.value), encode(body)))
    for dataset in (Dataset.EVISA, Dataset.VISA_EXEMPT, Dataset.WATCHLIST):
        newer = data[dataset][1:]
        delta = make_delta(data[dataset], newer)
        body = sign_bundle(
            key,
            dataset,
            "v2",
            delta,
            site=topics.site,
            kind="delta",
            base_version="v1",
            issued_at=issued,
            fleet_key_id=hashed[dataset],
        )
        bundles.append((topics.sync(dataset.value), encode(body)))
    assert_valid(bundles)
    for topic, payload in bundles:
        assert handler.process(topic, payload).status == "applied", topic

    # A corrupt bundle (records changed after signing) and garbage are refused and reported.
    evisa_topic = topics.sync("evisa")
    evisa = json.loads(next(body for topic, body in bundles if topic == evisa_topic))
    corrupt = {**evisa, "version": "v9", "records": evisa["records"][1:]}
    assert handler.process(evisa_topic, json.dumps(corrupt).encode()).status == "rejected"
    assert handler.process(evisa_topic, b"\x00garbage").status == "rejected"
    events = outbox_messages(agent["store"], topics)
    assert_valid(events)
    applied = [p for p in payloads(events, "audit") if p.get("audit") == "dataset_applied"]
    assert len(applied) == len(bundles)
    assert {p["reason"] for p in payloads(events, "alert") if p["alert"] == "sync_rejected"} == {
        "bad_signature",
        "malformed",
    }

    # What the schema refuses on its own.
    leaked = copy.deepcopy(evisa)
    leaked["records"][0]["document_number"] = "X1234567"
    assert schema.problems(evisa_topic, json.dumps(leaked))
    assert schema.problems(evisa_topic, json.dumps({**evisa, "kind": "delta"}))  # a delta needs a base
    policy_topic = topics.sync("policy")
    policy = json.loads(next(body for topic, body in bundles if topic == policy_topic))
    assert schema.problems(policy_topic, json.dumps({**policy, "kind": "delta", "base_version": "v0"}))
    assert schema.problems(topics.sync("watchlist"), json.dumps(evisa))  # on another dataset's topic
    # The hub deleting a retained bundle (an empty publish) is no bundle, and no error.
    assert schema.validate(evisa_topic, b"") is None
    assert schema.problems(topics.state, b"") and schema.problems(topics.command("reboot"), b"")


# ---------------------------------------------------------------------- the AsyncAPI document


def _local(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _instances(address: str, parameters: dict[str, Any]) -> list[str]:
    """The address with every parameter replaced by each of its enum values (or first example)."""
    topics = [address]
    for name, parameter in parameters.items():
        values = parameter.get("enum") or parameter["examples"][:1]
        topics = [t.replace(f"{{{name}}}", v) for t in topics for v in values]
    return topics


def test_asyncapi_document_matches_the_schemas_and_the_topic_tree() -> None:
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    referenced: set[str] = set()
    for channel_id, channel in document["channels"].items():
        placeholders = set(re.findall(r"\{(\w+)\}", channel["address"]))
        parameters = {n: _local(document, p["$ref"]) for n, p in channel.get("parameters", {}).items()}
        assert placeholders == set(parameters), channel_id
        channel_schemas = {}
        for message_id, message_ref in channel["messages"].items():
            message = _local(document, message_ref["$ref"])
            payload = message["payload"]
            assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12"
            path = (ASYNCAPI.parent / payload["schema"]["$ref"]).resolve()
            assert path.parent == SCHEMA_DIR and path.is_file(), path
            name = path.name.removesuffix(schema.SUFFIX)
            assert name in schema.schemas()
            channel_schemas[message_id] = name
            referenced.add(name)
        # Whatever topic the channel stands for, contract.schema picks one of the channel's schemas.
        for topic in _instances(channel["address"], parameters):
            chosen = schema.schema_name(topic)
            assert chosen in channel_schemas.values(), (topic, chosen)
            if channel_id == "events":
                assert chosen == f"event-{topic.rsplit('/', 1)[1]}"
    assert referenced == set(schema.schemas()) - {"common", "event"}

    parameters = document["components"]["parameters"]
    assert parameters["type"]["enum"] == list(schema.EVENT_TYPES)
    assert set(parameters["name"]["enum"]) == set(COMMAND_NAMES)
    assert set(parameters["dataset"]["enum"]) == DATASETS
    actions = {}
    for operation_id, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), operation_id
        channel_ref = operation["channel"]["$ref"]
        channel = _local(document, channel_ref)
        for message_ref in operation["messages"]:
            assert message_ref["$ref"].startswith(f"{channel_ref}/messages/"), operation_id
            _local(document, message_ref["$ref"])
        actions[channel_ref.rsplit("/", 1)[1]] = operation["action"]
        assert channel["address"].startswith("gerbang/v1/{site}/")
    # From the kiosk's side: it receives only its commands, its watermark and its site's bundles.
    assert actions == {
        "availability": "send",
        "state": "send",
        "metrics": "send",
        "events": "send",
        "ledgerHead": "send",
        "commands": "receive",
        "commandResults": "send",
        "ack": "receive",
        "sync": "receive",
    }


# ---------------------------------------------------------------------- on a real broker


class ValidatingHub:
    """Subscribes to everything under gerbang/v1/ and validates each message as it arrives."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.seen: list[tuple[str, str]] = []  # (schema, topic)
        self.bodies: dict[str, list[Any]] = {}
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-schema-test")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(10), "hub could not connect"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe("gerbang/v1/#", qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = schema.validate(msg.topic, msg.payload)
            name = schema.schema_name(msg.topic)
        except schema.MessageInvalid as exc:
            with self.lock:
                self.errors.append(str(exc))
            return
        with self.lock:
            self.seen.append((name, msg.topic))
            self.bodies.setdefault(name, []).append(body)

    def event_ids(self) -> set[str]:
        with self.lock:
            return {
                e["event_id"]
                for name, bodies in self.bodies.items()
                if name.startswith("event-")
                for e in bodies
            }

    def of(self, name: str) -> list[Any]:
        with self.lock:
            return list(self.bodies.get(name, []))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.timeout(120)
def test_everything_on_a_real_broker_validates(tmp_path: Path) -> None:
    command_private, command_public = keygen(tmp_path / "keys")
    sync_private, sync_public = keygen(tmp_path / "keys", role="sync")
    broker = MosquittoBroker(tmp_path)
    broker.start()
    config = Config.model_validate(
        {
            "agent": {
                "broker": broker.url,
                "command_key_file": str(command_public),
                "sync_key_file": str(sync_public),
                "backoff_max_s": 1.0,
            },
            "base_dir": tmp_path,
        }
    )
    topics = Topics(config.kiosk.site, config.kiosk.id)
    target = {"site": topics.site, "kiosk": topics.kiosk}
    config.data_dir.mkdir(parents=True, exist_ok=True)
    run_population(config, 20, SEED, config.store_path)
    with Store.open(config.store_path) as kiosk_store:
        expected_ids = {e.event_id for e in kiosk_store.outbox.pending(10_000)}
    hub = ValidatingHub(broker.port)
    agent_store = Store.open(config.store_path)
    publisher: Publisher = build_publisher(config, agent_store, Overrides())
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: publisher.connections > 0, 20, "agent connected")
        wait_for(lambda: expected_ids <= hub.event_ids(), 30, "every outbox event at the hub")
        commands = [
            sign_command(load_private_key(command_private), "diagnostics", target),
            sign_command(load_private_key(command_private), "set_mode", target, {"mode": "maintenance"}),
        ]
        forged = sign_command(Ed25519PrivateKey.generate(), "reboot", target)
        for body in [*commands, forged]:
            hub.publish(topics.command(body["name"]), json.dumps(body).encode())
        key = load_private_key(sync_private)
        policy = sign_bundle(
            key, Dataset.POLICY, "p1", PolicyRules().model_dump(mode="json"), site=topics.site
        )
        hub.publish(topics.sync("policy"), encode(policy), retain=True)
        key_id = read_fleet_key_id(config.fleet_key_path)
        watchlist = sign_bundle(key, Dataset.WATCHLIST, "w1", [], site=topics.site, fleet_key_id=key_id)
        hub.publish(topics.sync("watchlist"), encode({**watchlist, "records_sha256": "0" * 64}), retain=True)
        ids = {c["command_id"] for c in [*commands, forged]}
        wait_for(lambda: ids <= {r["command_id"] for r in hub.of("command-result")}, 30, "every cmd_result")
        wait_for(
            lambda: any(a["payload"].get("audit") == "dataset_applied" for a in hub.of("event-audit")),
            30,
            "the applied bundle's audit event",
        )
        wait_for(
            lambda: any(a["payload"]["alert"] == "sync_rejected" for a in hub.of("event-alert")),
            30,
            "the refused bundle's alert",
        )
        wait_for(lambda: bool(hub.of("metrics") and hub.of("state")), 30, "state and metrics")
    finally:
        publisher.stop()
        thread.join(15)
        agent_store.close()
    try:
        wait_for(lambda: hub.of("availability")[-1:] == ["offline"], 15, "offline on a clean stop")
    finally:
        hub.close()
        broker.stop()
    assert hub.errors == []
    names = {name for name, _ in hub.seen}
    assert {
        "availability",
        "state",
        "metrics",
        "event-transaction",
        "event-alert",
        "event-audit",
        "command",
        "command-result",
        "sync-bundle",
    } <= names
    assert len({e["event_id"] for e in hub.of("event-transaction")}) == 20
    assert hub.of("metrics")[0]["counters"]["transactions"] == 20
    statuses = {r["command_id"]: (r["status"], r.get("reason")) for r in hub.of("command-result")}
    assert statuses[forged["command_id"]] == ("rejected", "bad_signature")
    assert {statuses[c["command_id"]][0] for c in commands} == {"accepted"}
