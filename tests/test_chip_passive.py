"""Passive authentication against a real generated test PKI: a genuine passport passes, and each
Frontex §4.4 failure is reported by its own reason code (and only by it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.chip.lds import files, sod
from kiosk.chip.consistency import dg1_matches_mrz
from kiosk.chip.issue import Portrait, build_lds
from kiosk.chip.passive import PassiveError, passive_authentication
from kiosk.chip.testpki import Signer, make_csca, make_ds
from kiosk.chip.trust import TrustStore
from tests.chip_material import TD3, encode, master_list, ml_signer, portrait

NOW = datetime.now(UTC)
IDN_TD3 = [TD3[0].replace("UTO", "IDN"), "L898902C36IDN7408122F1204159ZE184226B<<<<<10"]


@pytest.fixture(scope="module")
def pki() -> tuple[Signer, Signer]:
    csca = make_csca("UT")
    return csca, make_ds(csca)


@pytest.fixture(scope="module")
def picture() -> Portrait:
    return Portrait("jpeg", 120, 160, encode(portrait(120, 160), "jpeg"))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _trust(tmp_path: Path, *cscas: Signer, crl: bytes | None = None) -> TrustStore:
    folder = tmp_path / "trust"
    folder.mkdir(exist_ok=True)
    for i, csca in enumerate(cscas):
        (folder / f"csca{i}.pem").write_bytes(_pem(csca.cert))
    if crl is not None:
        (folder / "revoked.crl").write_bytes(crl)
    store = TrustStore.load(folder)
    assert store.skipped == []
    return store


def _errors(lds: dict[str, bytes], trust: TrustStore, at: datetime = NOW) -> list[str]:
    return [e.value for e in passive_authentication(lds, trust, at).errors]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_genuine_passport_is_authentic(tmp_path: Path, pki: tuple[Signer, Signer], picture: Portrait) -> None:
    csca, ds = pki
    lds = build_lds(TD3, picture, ds)
    result = passive_authentication(lds, _trust(tmp_path, csca), NOW)
    assert result.to_json() == {
        "valid": True,
        "errors": [],
        "signer": "CN=Gerbang TEST Document Signer UT,O=Gerbang TEST PKI,C=UT",
        "csca": "CN=Gerbang TEST CSCA UT,O=Gerbang TEST PKI,C=UT",
        "mismatched_groups": [],
        "revocation": "unknown",
    }


def test_rsa_document_signer(tmp_path: Path, pki: tuple[Signer, Signer], picture: Portrait) -> None:
    csca, _ = pki
    ds = make_ds(csca, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    lds = build_lds(TD3, picture, ds)
    assert passive_authentication(lds, _trust(tmp_path, csca), NOW).valid
    signature = sod.parse_sod(lds["SOD"]).signer_info["signature"].native
    at = lds["SOD"].index(signature) + 5
    assert _errors({**lds, "SOD": _flip(lds["SOD"], at)}, _trust(tmp_path, csca)) == ["SOD_SIGNATURE_INVALID"]


def test_each_tampering_has_its_own_reason(
    tmp_path: Path, pki: tuple[Signer, Signer], picture: Portrait
) -> None:
    csca, ds = pki
    trust = _trust(tmp_path, csca)
    lds = build_lds(TD3, picture, ds)

    # a data group byte flipped (in the portrait's image data)
    assert _errors({**lds, "DG2": _flip(lds["DG2"], len(lds["DG2"]) - 10)}, trust) == ["DG_HASH_MISMATCH"]
    result = passive_authentication({**lds, "DG1": lds["DG1"].replace(b"ANNA", b"ANNE")}, trust, NOW)
    assert (result.errors, result.mismatched_groups) == ([PassiveError.DG_HASH_MISMATCH], [1])

    # the SOD signature's last byte flipped
    signature = sod.parse_sod(lds["SOD"]).signer_info["signature"].native
    at = lds["SOD"].index(signature) + len(signature) - 1
    assert _errors({**lds, "SOD": _flip(lds["SOD"], at)}, trust) == ["SOD_SIGNATURE_INVALID"]

    # the SOD cut short, or not there
    assert _errors({**lds, "SOD": lds["SOD"][:-40]}, trust) == ["SOD_MALFORMED"]
    assert _errors({k: v for k, v in lds.items() if k != "SOD"}, trust) == ["SOD_MALFORMED"]

    # a DS made by another key in the name of the trusted CSCA (as a forger would)
    forger = Signer(csca.cert, make_csca("UT").key)
    assert _errors(build_lds(TD3, picture, make_ds(forger)), trust) == ["CHAIN_BROKEN"]

    # the CSCA is not in the trust store
    other = make_csca("UT", name="CSCA-2")
    assert _errors(build_lds(TD3, picture, make_ds(other)), trust) == ["UNKNOWN_CSCA"]

    # an expired DS, and a check after the CSCA's own end
    expired = make_ds(csca, not_before=NOW - timedelta(days=3 * 365), not_after=NOW - timedelta(days=1))
    assert _errors(build_lds(TD3, picture, expired), trust) == ["DS_EXPIRED"]
    long_ds = make_ds(csca, not_after=csca.cert.not_valid_after_utc + timedelta(days=400))
    late = csca.cert.not_valid_after_utc + timedelta(days=1)
    assert _errors(build_lds(TD3, picture, long_ds), trust, late) == ["CSCA_EXPIRED"]

    # DG1 of another state than the DS (and its CSCA)
    assert _errors(build_lds(IDN_TD3, picture, ds), trust) == ["COUNTRY_MISMATCH"]

    # EF.COM listing a data group the SOD does not cover
    assert _errors({**lds, "COM": files.build_com([1, 2, 3])}, trust) == ["COM_SOD_MISMATCH"]


def test_revoked_ds(tmp_path: Path, pki: tuple[Signer, Signer], picture: Portrait) -> None:
    csca, ds = pki
    revoked = make_ds(csca)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(csca.cert.subject)
        .last_update(NOW - timedelta(hours=1))
        .next_update(NOW + timedelta(days=30))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.cert.serial_number)
            .revocation_date(NOW)
            .build()
        )
        .sign(csca.key, hashes.SHA256())
    )
    trust = _trust(tmp_path, csca, crl=crl.public_bytes(serialization.Encoding.DER))
    assert _errors(build_lds(TD3, picture, revoked), trust) == ["DS_REVOKED"]
    result = passive_authentication(build_lds(TD3, picture, ds), trust, NOW)
    assert (result.valid, result.revocation) == (True, "good")
    # once the CRL is past its next update it proves no more than that it was good then
    later = passive_authentication(build_lds(TD3, picture, ds), trust, NOW + timedelta(days=31))
    assert (later.valid, later.revocation) == (True, "unknown")
    assert _errors(build_lds(TD3, picture, revoked), trust, NOW + timedelta(days=31)) == ["DS_REVOKED"]


def test_master_list_import(tmp_path: Path, pki: tuple[Signer, Signer], picture: Portrait) -> None:
    csca, ds = pki
    others = [make_csca(c) for c in ("ID", "DE")]
    ml_path = tmp_path / "ml.ml"
    ml_path.write_bytes(master_list(ml_signer(csca), [csca, *others]))
    trust = TrustStore.load(ml_path)
    assert trust.skipped == []
    assert {c.subject for c in trust.cscas} == {c.cert.subject for c in [csca, *others]}
    assert passive_authentication(build_lds(TD3, picture, ds), trust, NOW).valid

    # a list whose signer no CSCA issued, and a list with a flipped byte, are refused
    rogue = tmp_path / "rogue.ml"
    rogue.write_bytes(master_list(ml_signer(make_csca("UT", name="ROGUE")), [csca]))
    assert "not issued by a known CSCA" in TrustStore.load(rogue).skipped[0]
    good = master_list(ml_signer(csca), [csca])
    broken = tmp_path / "broken.ml"
    broken.write_bytes(_flip(good, len(good) - 3))
    store = TrustStore.load(broken)
    assert store.cscas == [] and "signature invalid" in store.skipped[0]


def test_dg1_against_the_printed_mrz() -> None:
    dg1 = files.build_dg1(TD3)
    assert dg1_matches_mrz(dg1, ["", f"  {TD3[0].lower()} ", TD3[1]])
    assert not dg1_matches_mrz(dg1, [TD3[0], TD3[1].replace("L898902C3", "L898902C4")])
    assert not dg1_matches_mrz(dg1[:-3], TD3)


def test_sod_corruption_never_raises_and_signed_parts_always_fail(
    tmp_path: Path, pki: tuple[Signer, Signer], picture: Portrait
) -> None:
    csca, ds = pki
    trust = _trust(tmp_path, csca)
    lds = build_lds(TD3, picture, ds)
    data = lds["SOD"]
    parsed = sod.parse_sod(data)
    signed_parts = [
        parsed.security_object_der,
        parsed.signer_info["signed_attrs"].dump(),
        parsed.signer_info["signature"].native,
        parsed.signed_data["certificates"][0].chosen["tbs_certificate"].dump(),
    ]
    signed = {data.index(part) + i for part in signed_parts for i in range(len(part))}
    accepted = []
    for index in range(len(data)):
        if passive_authentication({**lds, "SOD": _flip(data, index)}, trust, NOW).valid:
            accepted.append(index)
    assert not signed & set(accepted)
    # what may change harmlessly is unsigned framing: the NULL parameters of the digest algorithm
    # (in digestAlgorithms and in the SignerInfo), and the unused-bits octet of the DS certificate's
    # signature BIT STRING, which cryptography ignores
    assert len(accepted) <= 3, accepted
