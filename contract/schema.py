"""The JSON Schemas of the MQTT messages, and validation of a message by the topic it travels on.

One schema file per message in ``contract/schemas/`` (draft 2020-12, shipped as package data);
``docs/asyncapi.yaml`` points at the same files. The hub validates what it receives and tests validate
what the real producers send, so a producer that drifts from the contract fails loudly::

    from contract.schema import validate
    body = validate(msg.topic, msg.payload)  # raises MessageInvalid, else returns the parsed payload

Besides the schema, :func:`validate` checks what only the topic knows: an event's ``type``, a
command's ``name``, a result's ``command_id`` and a bundle's ``dataset`` must match their segment.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from contract.topics import LEDGER_HEAD_SEGMENT, ROOT

BASE_URI = "https://schemas.gerbang.example/mqtt/v1/"
SUFFIX = ".schema.json"
# Outbox event types with a schema of their own (kiosk.store.records.EventType).
EVENT_TYPES = ("transaction", "alert", "help", "feedback", "audit", "state")
# Enough to see what is wrong without flooding a log with one bad 100k-row bundle.
MAX_PROBLEMS = 10
# The topic a command with no usable command_id is answered on (edge_agent.commands).
INVALID_RESULT_SEGMENT = "invalid"
# The hub deletes a retained bundle by publishing an empty payload on its topic (edge_agent.sync ignores it).
RETAINED_DELETABLE = frozenset({"sync-bundle"})
FORBIDDEN_KEY_REF = "#/$defs/forbidden_key"  # as common.schema.json's safe_key refers to the list


class MessageInvalid(ValueError):
    """A message that does not match the contract of its topic; ``problems`` lists why."""

    def __init__(self, topic: str, schema: str | None, problems: list[str]) -> None:
        self.topic = topic
        self.schema = schema
        self.problems = problems
        where = f"{topic} ({schema})" if schema else topic
        super().__init__(f"{where}: " + "; ".join(problems))


class UnknownTopic(MessageInvalid):
    """Not a topic of the Gerbang tree: no schema applies."""


def _schema_files() -> dict[str, dict[str, Any]]:
    folder = resources.files("contract.schemas")
    loaded: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(SUFFIX):
            loaded[entry.name.removesuffix(SUFFIX)] = json.loads(entry.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def schemas() -> Mapping[str, Mapping[str, Any]]:
    """Every schema by name (file name without ``.schema.json``); ``common`` holds shared definitions."""
    return _schema_files()


def schema_uri(name: str) -> str:
    return f"{BASE_URI}{name}{SUFFIX}"


@functools.cache
def registry() -> Registry[Any]:
    """All schema files by ``$id``, so relative ``$ref`` between them resolve without any network."""
    resources_by_uri = [
        (schema_uri(name), Resource.from_contents(dict(contents))) for name, contents in schemas().items()
    ]
    return Registry().with_resources(resources_by_uri)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    if name not in schemas():
        raise KeyError(f"no schema named {name!r} (known: {', '.join(sorted(schemas()))})")
    return Draft202012Validator(dict(schemas()[name]), registry=registry())


@functools.cache
def _segment_validator() -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{schema_uri('common')}#/$defs/segment"}, registry=registry())


def _is_segment(value: object) -> bool:
    return isinstance(value, str) and _segment_validator().is_valid(value)


def schema_name(topic: str) -> str:
    """The schema of the messages on ``topic``; raises :class:`UnknownTopic` for any other topic."""
    parts = topic.split("/")
    if "/".join(parts[:2]) != ROOT or len(parts) not in (5, 6) or not all(_is_segment(p) for p in parts[2:]):
        raise UnknownTopic(topic, None, ["not a gerbang/v1 topic"])
    kind = parts[4] if len(parts) == 6 else None
    if len(parts) == 5 and parts[3] == "sync":
        # The site's bundles; "sync" is therefore not usable as a kiosk id (see docs/asyncapi.yaml).
        return "sync-bundle"
    if len(parts) == 5 and parts[4] in ("availability", "state", "metrics", "ack"):
        return parts[4]
    if len(parts) == 5 and parts[4] == LEDGER_HEAD_SEGMENT:
        return "tree-head"
    if kind == "events" and parts[5] in EVENT_TYPES:
        return f"event-{parts[5]}"
    if kind == "cmd":
        return "command"
    if kind == "cmd_result":
        return "command-result"
    raise UnknownTopic(topic, None, ["no message is defined for this topic"])


def parse(name: str, payload: bytes | bytearray | str | object) -> Any:
    """The JSON value of a wire payload (``availability`` is plain text, so its value is the text)."""
    if isinstance(payload, bytes | bytearray):
        payload = bytes(payload).decode("utf-8")
    if not isinstance(payload, str):
        return payload  # already parsed
    if name == "availability":
        return payload
    return json.loads(payload)


def _describe(error: ValidationError) -> str:
    # For anyOf/oneOf the top error only says "not valid under any"; the best branch says why.
    leaf = best_match([error]) or error
    if leaf.validator == "not" and leaf.validator_value == {"$ref": FORBIDDEN_KEY_REF}:
        return f"{leaf.json_path}: key {leaf.instance!r} names personal or biometric data"
    return f"{leaf.json_path}: {leaf.message}"


def _topic_problems(name: str, topic: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    segment = topic.rsplit("/", 1)[-1]
    if name == "command" and body.get("name") != segment:
        return [f"$.name: {body.get('name')!r} is not the topic's command {segment!r}"]
    if name == "sync-bundle" and body.get("dataset") != segment:
        return [f"$.dataset: {body.get('dataset')!r} is not the topic's dataset {segment!r}"]
    if name == "command-result":
        command_id = body.get("command_id")
        if segment == INVALID_RESULT_SEGMENT and not _is_segment(command_id):
            return []
        if command_id != segment:
            return [f"$.command_id: {command_id!r} is not the topic's command id {segment!r}"]
    return []


def _check(topic: str, payload: bytes | bytearray | str | object) -> tuple[str, Any, list[str]]:
    name = schema_name(topic)
    if name in RETAINED_DELETABLE and payload in (b"", ""):
        # An empty retained publish is MQTT's way of deleting the retained bundle, not a message.
        return name, None, []
    try:
        body = parse(name, payload)
    except (ValueError, RecursionError) as exc:
        return name, None, [f"not {'UTF-8 text' if name == 'availability' else 'JSON'}: {exc}"]
    errors = sorted(validator(name).iter_errors(body), key=lambda e: e.json_path)
    found = [_describe(e) for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        found.append(f"... and {len(errors) - MAX_PROBLEMS} more")
    return name, body, found + _topic_problems(name, topic, body)


def problems(topic: str, payload: bytes | bytearray | str | object) -> list[str]:
    """Why the message does not match its topic's contract; empty when it does."""
    try:
        return _check(topic, payload)[2]
    except UnknownTopic as exc:
        return exc.problems


def validate(topic: str, payload: bytes | bytearray | str | object) -> Any:
    """The parsed payload if the message matches its topic's contract; raises :class:`MessageInvalid`.

    ``None`` for an empty payload on a sync topic: the hub deleting the retained bundle.
    """
    name, body, found = _check(topic, payload)
    if found:
        raise MessageInvalid(topic, name, found)
    return body
