"""Signed tree heads (contract.tree_head): signature, key id, wire form and its JSON Schema."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import schema
from contract.merkle import EMPTY_ROOT
from contract.topics import Topics
from contract.tree_head import TreeHead, key_id, public_key_raw, sign_head

TS = "2026-12-04T18:00:00.000+00:00"


def test_a_head_round_trips_and_verifies_with_its_key_only() -> None:
    device, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    head = sign_head(device, 3, hashlib.sha256(b"x").digest(), TS)
    assert head.key_id == hashlib.sha256(public_key_raw(device.public_key())).hexdigest()[:16]
    assert head.key_id == key_id(device.public_key()) != key_id(other.public_key())
    body = head.to_json()
    assert body["root"] == hashlib.sha256(b"x").hexdigest()
    again = TreeHead.from_json(body)
    assert again == head and again.verify(device.public_key())
    assert not head.verify(other.public_key())
    schema.validate(Topics("site-1", "lane-1").ledger_head, body)


@pytest.mark.parametrize(
    "change",
    [
        {"size": 4},
        {"root": EMPTY_ROOT.hex()},
        {"ts": "2026-12-04T18:00:01.000+00:00"},
    ],
)
def test_any_change_to_a_signed_field_breaks_the_signature(change: dict[str, object]) -> None:
    device = Ed25519PrivateKey.generate()
    body = {**sign_head(device, 3, hashlib.sha256(b"x").digest(), TS).to_json(), **change}
    assert not TreeHead.from_json(body).verify(device.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"size": -1},
        {"size": True},
        {"root": "AB" * 32},
        {"root": "ab" * 31},
        {"key_id": "xyz"},
        {"signature": "not base64!"},
        {"schema": 2},
        {"extra": 1},
    ],
)
def test_malformed_heads_are_refused_by_the_parser_and_the_schema(change: dict[str, object]) -> None:
    body = {**sign_head(Ed25519PrivateKey.generate(), 3, EMPTY_ROOT, TS).to_json(), **change}
    with pytest.raises(ValueError):
        TreeHead.from_json(body)
    assert schema.problems(Topics("site-1", "lane-1").ledger_head, body)
