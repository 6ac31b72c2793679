"""Telemetry pseudonyms (issue 12, hole 7): the fleet-key hash stays on the device; events carry a
pseudonym under this kiosk's own key for the epoch, which is destroyed when the epoch ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.clock import SimulatedClock
from config import Config, ConfigError, load_config
from drivers.simulated.lane import SimulatedLane
from kiosk.app import Kiosk, build_kiosk
from kiosk.pseudonyms import Pseudonymiser
from kiosk.simulation.population import SimulatedTraveller, reference_datasets, traveller_of
from kiosk.store import canonical_sha256

DAY_S = 86_400
# Tomorrow, early in the UTC day: two passages a few simulated minutes apart stay in one epoch, and
# the simulated passports' test certificates (issued now) are already valid.
START = (datetime.now(UTC) + timedelta(days=1)).replace(hour=6, minute=0, second=0, microsecond=0)


class _Now:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _key_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_same_document_same_epoch_links_and_nothing_else_does(tmp_path):
    now = _Now(START)
    one = Pseudonymiser(tmp_path / "a", DAY_S, now)
    first = one.document("MYS", "A1234567")
    assert one.document("mys", "a1234567 ") == first  # normalised as the fleet-key hash is
    assert one.document("MYS", "A1234568") != first
    assert one.document("SGP", "A1234567") != first  # numbers are unique only per issuer
    # A restart within the epoch keeps its pseudonyms: the key is on disk, not only in memory.
    assert Pseudonymiser(tmp_path / "a", DAY_S, now).document("MYS", "A1234567") == first
    # Another kiosk has its own random key.
    assert Pseudonymiser(tmp_path / "b", DAY_S, now).document("MYS", "A1234567") != first
    now.at += timedelta(days=1)
    assert one.document("MYS", "A1234567") != first


def test_an_epochs_key_is_destroyed_when_it_ends_even_on_an_idle_kiosk(tmp_path):
    now = _Now(START)
    folder = tmp_path / "keys"
    pseudonyms = Pseudonymiser(folder, DAY_S, now)
    first = pseudonyms.document("MYS", "A1234567")
    [old] = _key_files(folder)
    assert (folder / old).stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    now.at += timedelta(days=1)
    pseudonyms.rotate()  # what the engine's service check does between travellers
    [new] = _key_files(folder)
    assert new != old
    # Not even the device can re-link: yesterday's key is gone, so yesterday's pseudonym is unreachable.
    now.at -= timedelta(days=1)
    assert Pseudonymiser(folder, DAY_S, now).document("MYS", "A1234567") != first


@pytest.mark.parametrize("epoch_s", [60, 30 * DAY_S])
def test_epoch_length_is_bounded(tmp_path, epoch_s):
    file = tmp_path / "kiosk.toml"
    file.write_text(f"[privacy]\npseudonym_epoch_s = {epoch_s}\n")
    with pytest.raises(ConfigError, match=r"privacy\.pseudonym_epoch_s"):
        load_config(file)


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    built = build_kiosk(Config(base_dir=tmp_path), lane=SimulatedLane(SimulatedClock(START)))
    built.engine.start()
    yield built
    built.close()


def _serve(kiosk: Kiosk, traveller: SimulatedTraveller) -> str:
    kiosk.lane.arrive(traveller)
    try:
        outcome = kiosk.engine.run_once(1.0)
    finally:
        kiosk.lane.leave()
    assert outcome is not None and outcome.transaction_id is not None
    return outcome.transaction_id


def _events(kiosk: Kiosk) -> list[tuple[str, dict]]:
    return [(e.type, json.loads(e.payload)) for e in kiosk.store.outbox.pending(1000)]


def test_events_carry_an_epoch_pseudonym_never_the_fleet_key_hash(kiosk, tmp_path):
    today = kiosk.clock.now().date()
    citizen = traveller_of("citizen", seed=3, today=today)
    watched = traveller_of("watchlisted", seed=1, today=today)
    lost = traveller_of("lost_stolen", seed=1, today=today)
    travellers = [citizen, watched, lost]
    for name, records in reference_datasets(travellers, kiosk.hasher, today).items():
        kiosk.store.reference_data.apply(name, canonical_sha256(records)[:16], records)

    first, again = _serve(kiosk, citizen), _serve(kiosk, citizen)
    kiosk.clock.advance(DAY_S)
    next_day = _serve(kiosk, citizen)
    _serve(kiosk, watched)
    _serve(kiosk, lost)

    events = _events(kiosk)
    pseudonym = {p["transaction_id"]: p["document_pseudonym"] for t, p in events if t == "transaction"}
    assert pseudonym[first] == pseudonym[again]  # one kiosk, one epoch: linked
    assert pseudonym[next_day] != pseudonym[first]  # the next epoch: not
    assert len(list((tmp_path / "var/keys/pseudonym").iterdir())) == 1  # yesterday's key destroyed

    # The hub learns which of its watchlist records matched, by the record's own id.
    alerts = {p["alert"]: p for t, p in events if t == "alert"}
    assert alerts["referral_watchlist_hit"]["watchlist_records"] == ["sim-watch-0"]
    assert alerts["referral_document_lost_stolen"]["watchlist_records"] == ["sim-lost-0"]

    fleet_hashes = {
        h
        for t in travellers
        for h in (
            kiosk.hasher.document(t.issuing_state, t.document_number),
            kiosk.hasher.person(t.nationality, t.surname, t.given_names, t.birth_date),
        )
    }
    for _type, payload in events:
        text = json.dumps(payload)
        assert not any(h in text for h in fleet_hashes), payload
        assert "document_hash" not in text and "subject_hash" not in text


def test_the_outbox_refuses_a_fleet_key_hash(kiosk):
    with pytest.raises(ValueError, match="fleet-key hash"):
        kiosk.store.outbox.add("alert", {"alert": "referral_watchlist_hit", "document_hash": "ab" * 32})


def test_hub_refuses_to_sign_a_watchlist_without_record_ids(tmp_path, capsys):
    from hub.__main__ import main as hub_main

    assert hub_main(["keygen", "--out", str(tmp_path), "--role", "sync"]) == 0
    records = tmp_path / "watchlist.json"
    row = {"subject_hash": "ab" * 32, "match_on": "document", "category": "watchlist"}
    common = ["sign-bundle", "--key", str(tmp_path / "hub_sync_key.pem"), "--site", "lampung-barat"]
    common += ["--dataset", "watchlist", "--version", "w1", "--records", str(records)]
    common += ["--fleet-key-id", "0123456789abcdef"]
    records.write_text(json.dumps([row]))
    capsys.readouterr()
    assert hub_main(common) == 2
    assert "record_id" in capsys.readouterr().err
    records.write_text(json.dumps([{**row, "record_id": "case-1"}]))
    assert hub_main(common) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["record_id"] == "case-1"
