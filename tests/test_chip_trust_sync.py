"""The ePassport trust store as a signed reference dataset: built by the hub from files, published on a
real mosquitto, applied by the agent into a real SQLite file, and used by the kiosk's ``load_trust``;
bad ones refused with the previous version kept."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import schema
from contract.bundles import records_sha256
from edge_agent.state import StateReporter
from hub.__main__ import main as hub_main
from hub.bundles import encode, publish_bundle, sign_bundle
from hub.signer import SYNC_PRIVATE_NAME
from kiosk.chip.issue import Portrait, build_lds
from kiosk.chip.passive import passive_authentication
from kiosk.chip.testpki import Signer, make_csca, make_ds
from kiosk.chip.trust import TrustStore
from kiosk.chip.trust_dataset import record, records_from_files
from kiosk.chip.trust_source import load_trust, technician_folder
from kiosk.reference_data import Dataset
from tests.chip_material import TD3, master_list, ml_signer, portrait
from tests.chip_material import encode as encode_image
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for
from tests.test_sync import SITE, TOPICS, ago, assert_events_valid, outbox, publish_raw, resign, running_agent

KEY_ROLE = "sync"  # the conftest `keys` fixture makes a bundle-signing pair
NOW = datetime.now(UTC)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """Two test states: UT's CSCA travels alone, DE's inside a master list signed under UT's."""

    def __init__(self) -> None:
        self.ut = make_csca("UT")
        self.de = make_csca("DE")
        self.ut_ds = make_ds(self.ut)
        self.revoked_ds = make_ds(self.ut)
        self.crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ut.cert.subject)
            .last_update(NOW - timedelta(hours=1))
            .next_update(NOW + timedelta(days=30))
            .add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(self.revoked_ds.cert.serial_number)
                .revocation_date(NOW)
                .build()
            )
            .sign(self.ut.key, hashes.SHA256())
        )
        self.master_list = master_list(ml_signer(self.ut), [self.ut, self.de])

    def lds(self, ds: Signer, country: str = "UTO") -> dict[str, bytes]:
        image = Portrait("jpeg", 120, 160, encode_image(portrait(120, 160), "jpeg"))
        mrz = [line.replace("UTO", country) for line in TD3]
        return build_lds(mrz, image, ds)

    def folder(self, where: Path) -> Path:
        """What a hub operator hands to sign-bundle: a CSCA as PEM, a master list, a CRL as DER."""
        where.mkdir(parents=True)
        (where / "csca-UT.pem").write_bytes(_pem(self.ut.cert))
        (where / "icao.ml").write_bytes(self.master_list)
        (where / "ut.crl").write_bytes(self.crl.public_bytes(serialization.Encoding.DER))
        return where


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _sign_with_hub_cli(tmp_path: Path, pki: Pki, version: str, capsys: pytest.CaptureFixture[str]) -> bytes:
    key_dir = tmp_path / "hub-keys"
    assert hub_main(["keygen", "--out", str(key_dir), "--role", "sync"]) == 0
    capsys.readouterr()
    argv = ["sign-bundle", "--key", str(key_dir / SYNC_PRIVATE_NAME), "--site", SITE]
    argv += [
        "--dataset",
        "chip_trust",
        "--version",
        version,
        "--trust-files",
        str(pki.folder(tmp_path / "in")),
    ]
    assert hub_main(argv) == 0
    return capsys.readouterr().out.strip().encode()


def test_the_hub_builds_records_the_kiosk_accepts(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = _sign_with_hub_cli(tmp_path, pki, "ct-1", capsys)
    assert schema.validate(TOPICS.sync("chip_trust"), payload) is not None
    records = json.loads(payload)["records"]
    by_kind = {r["kind"]: r for r in records}
    assert sorted(by_kind) == ["crl", "csca", "master_list"] and len(records) == 3
    assert by_kind["csca"]["der"] == base64.b64encode(_der(pki.ut.cert)).decode()
    assert (
        by_kind["csca"]["country"] == "UT"
        and by_kind["crl"]["subject"] == pki.ut.cert.subject.rfc4514_string()
    )
    assert by_kind["master_list"]["subject"].startswith("CN=Gerbang TEST Master List Signer")
    assert by_kind["crl"]["not_after"] == pki.crl.next_update_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # a file a kiosk would refuse stops the hub: the DS certificate is no CA
    bad = tmp_path / "ds.pem"
    bad.write_bytes(_pem(pki.ut_ds.cert))
    with pytest.raises(ValueError, match="is not a CA certificate"):
        records_from_files([bad])


@pytest.mark.timeout(90)
def test_a_synced_trust_store_is_what_the_lane_authenticates_with(
    tmp_path: Path,
    broker: MosquittoBroker,
    keys: tuple[Ed25519PrivateKey, Path],
    pki: Pki,
) -> None:
    private, public = keys
    db = tmp_path / "kiosk.sqlite3"
    data_dir = tmp_path / "data"
    records = records_from_files([pki.folder(tmp_path / "in")])
    with running_agent(db, broker, public) as agent:
        # Before any bundle: nothing is trusted, every chip fails on its unknown CSCA.
        before = passive_authentication(pki.lds(pki.ut_ds), load_trust(agent.store, data_dir), NOW)
        assert [e.value for e in before.errors] == ["UNKNOWN_CSCA"]

        bundle = sign_bundle(private, Dataset.CHIP_TRUST, "ct-1", records, site=SITE)
        publish_bundle("127.0.0.1", broker.port, SITE, bundle)
        wait_for(lambda: agent.handler.stats.applied == 1, 20, "chip_trust applied")
        assert StateReporter(agent.store, TOPICS).state()["datasets"] == {"chip_trust": "ct-1"}
        assert outbox(db, "audit")[-1] == {
            "audit": "dataset_applied",
            "dataset": "chip_trust",
            "version": "ct-1",
            "kind": "full",
            "records": 3,
        }

        trust = load_trust(agent.store, data_dir)
        assert trust.skipped == [] and len(trust.cscas) == 2 and len(trust.crls) == 1
        good = passive_authentication(pki.lds(pki.ut_ds), trust, NOW)
        assert (good.valid, good.revocation) == (True, "good")
        # the CRL came along: the revoked DS is caught
        revoked = passive_authentication(pki.lds(pki.revoked_ds), trust, NOW)
        assert [e.value for e in revoked.errors] == ["DS_REVOKED"]
        # DE's CSCA arrived only inside the master list
        de_ds = make_ds(pki.de)
        assert (
            passive_authentication(pki.lds(de_ds, "D<<"), trust, NOW).csca
            == pki.de.cert.subject.rfc4514_string()
        )

        # A technician's import on the kiosk adds to the synced set.
        fr = make_csca("FR")
        folder = technician_folder(data_dir)
        folder.mkdir(parents=True)
        (folder / "csca-FR.pem").write_bytes(_pem(fr.cert))
        merged = load_trust(agent.store, data_dir)
        assert len(merged.cscas) == 3
        assert passive_authentication(pki.lds(make_ds(fr), "FRA"), merged, NOW).valid

        # The hub re-sends the same content (retained, reconnect): silently unchanged.
        agent.publisher.resubscribe(agent.handler.subscriptions())
        wait_for(lambda: agent.handler.stats.unchanged >= 1, 20, "re-delivery recognised")
        assert outbox(db, "alert") == []
        assert_events_valid(db, agent.store)


def _with_record(private: Ed25519PrivateKey, records: list[dict[str, Any]], **changes: Any) -> bytes:
    """v2 = v1's CSCA plus one more record, ``changes`` applied to it."""
    extra = {**records[0], **changes}
    return encode(sign_bundle(private, Dataset.CHIP_TRUST, "ct-2", [records[0], extra], site=SITE))


def _object_record(der: bytes, **changes: Any) -> dict[str, Any]:
    """A record that describes ``der`` truthfully (as a hub that skipped the checks would write it)."""
    return {
        "kind": "csca",
        "der": base64.b64encode(der).decode(),
        "sha256": hashlib.sha256(der).hexdigest(),
        "subject": "CN=x",
        "country": None,
        "not_after": None,
        **changes,
    }


def _corrupt_certificate(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    der = _der(make_csca("ZZ").cert)[:-40]  # truncated in transit on the hub side
    return _with_record(private, records, **_object_record(der))


def _not_a_ca(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    ds = pki.ut_ds.cert  # a true summary: only the CA check fails
    return _with_record(
        private,
        records,
        **_object_record(
            _der(ds),
            subject=ds.subject.rfc4514_string(),
            country="UT",
            not_after=ds.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
    )


def _wrong_kind(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    crl = pki.crl.public_bytes(serialization.Encoding.DER)
    store = TrustStore()
    return _with_record(private, records, **{**record(store.add_der(crl), crl), "kind": "csca"})


def _lying_summary(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    de = _der(pki.de.cert)
    return _with_record(private, records, **{**record(TrustStore().add_der(de), de), "country": "ID"})


def _rogue_master_list(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    # signed under a CSCA nobody trusts, listing UT's real CSCA and the rogue's own
    rogue = make_csca("UT", name="ROGUE")
    data = master_list(ml_signer(rogue), [pki.ut])
    return _with_record(private, records, **_object_record(data, kind="master_list"))


def _pem_not_der(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    return _with_record(private, records, **_object_record(_pem(pki.de.cert)))


def _delta(private: Ed25519PrivateKey, pki: Pki, records: list[dict[str, Any]]) -> bytes:
    body = sign_bundle(private, Dataset.CHIP_TRUST, "ct-2", records, site=SITE) | {
        "kind": "delta",
        "base_version": "ct-1",
        "records": {"add": [], "remove": []},
    }
    return encode(resign(private, {**body, "records_sha256": records_sha256(body["records"])}))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("make", "reason", "problem"),
    [
        (
            _corrupt_certificate,
            "invalid_records",
            "kind 'csca' but the object is neither a certificate nor a CRL",
        ),
        (_not_a_ca, "invalid_records", "is not a CA certificate"),
        (_wrong_kind, "invalid_records", "kind 'csca' but the object is a crl"),
        (_lying_summary, "invalid_records", "country do not describe the object"),
        (_rogue_master_list, "invalid_records", "master list signer not issued by a known CSCA"),
        (_pem_not_der, "invalid_records", "PEM, not DER"),
        (_delta, "malformed", None),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_bad_trust_bundle_is_refused_and_the_previous_one_stays(
    tmp_path: Path,
    broker: MosquittoBroker,
    keys: tuple[Ed25519PrivateKey, Path],
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Ed25519PrivateKey, Pki, list[dict[str, Any]]], bytes],
    reason: str,
    problem: str | None,
) -> None:
    private, public = keys
    db = tmp_path / "kiosk.sqlite3"
    csca = _der(pki.ut.cert)
    v1 = [record(TrustStore().add_der(csca), csca)]
    with running_agent(db, broker, public) as agent:
        good = sign_bundle(private, Dataset.CHIP_TRUST, "ct-1", v1, site=SITE, issued_at=ago(30))
        publish_bundle("127.0.0.1", broker.port, SITE, good)
        wait_for(lambda: agent.handler.stats.applied == 1, 20, "ct-1 in force")
        publish_raw(broker.port, TOPICS.sync("chip_trust"), make(private, pki, v1))
        wait_for(lambda: agent.handler.stats.rejected == 1, 30, f"{reason} rejection")
        assert outbox(db, "alert") == [
            {"alert": "sync_rejected", "dataset": "chip_trust", "version": "ct-2", "reason": reason}
        ]
        assert agent.store.reference_data.dataset_versions() == {"chip_trust": "ct-1"}
        trust = load_trust(agent.store, tmp_path / "data")
        assert [c.subject for c in trust.cscas] == [pki.ut.cert.subject] and trust.skipped == []
        assert passive_authentication(pki.lds(pki.ut_ds), trust, NOW).valid
        assert_events_valid(db, agent.store)
        if problem is not None:
            # the log (never the alert, which carries codes only) says which record and why
            assert any(problem in message and "record " in message for message in caplog.messages)
