"""Passive authentication (ICAO 9303-11 §5.1; Frontex ABC technical guidelines §4.4): is what the
chip holds what its issuing state signed?

Every check runs and reports its own reason code, so an operator (and a test) sees exactly what is
wrong; only a malformed EF.SOD stops early, since nothing else can be checked without it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from drivers.chip.files import FILES
from drivers.chip.lds import files
from drivers.chip.lds.sod import Sod, digest, parse_sod
from kiosk.chip.countries import alpha2
from kiosk.chip.signatures import signer_certificate, verify_signed_data
from kiosk.chip.trust import REVOKED, UNKNOWN, TrustStore, issued_by
from kiosk.documents.mrz import NotAnMrz, parse_mrz

log = logging.getLogger(__name__)


class PassiveError(StrEnum):
    SOD_MALFORMED = "SOD_MALFORMED"  # EF.SOD missing, unparseable, or without its DS certificate
    SOD_SIGNATURE_INVALID = (
        "SOD_SIGNATURE_INVALID"  # DS signature or messageDigest over the LDS Security Object
    )
    UNKNOWN_CSCA = "UNKNOWN_CSCA"  # no trusted CSCA has the DS certificate's issuer name and key
    CHAIN_BROKEN = "CHAIN_BROKEN"  # a trusted CSCA of that name did not sign the DS certificate
    DS_EXPIRED = "DS_EXPIRED"  # the DS certificate is outside its validity period at the check
    CSCA_EXPIRED = "CSCA_EXPIRED"  # the CSCA certificate is outside its validity period at the check
    KEY_USAGE_INVALID = "KEY_USAGE_INVALID"  # DS without digitalSignature, CSCA without keyCertSign
    DS_REVOKED = "DS_REVOKED"  # a CRL of the CSCA lists the DS certificate
    COUNTRY_MISMATCH = "COUNTRY_MISMATCH"  # DG1 issuing state, DS country and CSCA country differ
    DG_HASH_MISMATCH = "DG_HASH_MISMATCH"  # a data group read does not hash to the SOD's value
    COM_SOD_MISMATCH = "COM_SOD_MISMATCH"  # EF.COM and EF.SOD list different data groups


@dataclass
class PassiveResult:
    errors: list[PassiveError] = field(default_factory=list)
    signer: str | None = None  # DS certificate subject (the issuing authority, never the holder)
    csca: str | None = None  # subject of the CSCA the DS chains to
    mismatched_groups: list[int] = field(default_factory=list)
    revocation: str = UNKNOWN  # "good" only when a current CRL of the CSCA was held

    @property
    def valid(self) -> bool:
        return not self.errors

    def fail(self, error: PassiveError) -> None:
        if error not in self.errors:
            self.errors.append(error)

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "errors": [e.value for e in self.errors],
            "signer": self.signer,
            "csca": self.csca,
            "mismatched_groups": self.mismatched_groups,
            "revocation": self.revocation,
        }


def _country(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return str(values[0].value).upper() if values else None


def _valid_at(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_groups(sod: Sod, lds: Mapping[str, bytes], result: PassiveResult) -> None:
    """Frontex §4.4.6 and §4.4.5: each data group read hashes to the SOD's value; EF.COM lists the
    data groups the SOD covers."""
    for name, data in lds.items():
        number = FILES[name].dg if name in FILES else None
        if number is None:
            continue
        if sod.hashes.get(number) != digest(sod.hash_name, data):
            result.mismatched_groups.append(number)
            result.fail(PassiveError.DG_HASH_MISMATCH)
    if "COM" in lds:
        try:
            listed = set(files.parse_com(lds["COM"]).data_groups)
        except ValueError:
            listed = set()
        if listed != set(sod.hashes):
            result.fail(PassiveError.COM_SOD_MISMATCH)


def _check_chain(
    ds: x509.Certificate, trust: TrustStore, at: datetime, result: PassiveResult
) -> x509.Certificate | None:
    """Frontex §4.4.2-4.4.4: the DS certificate's signature by a trusted CSCA, validity periods, key
    usages and revocation. Returns the CSCA when the chain holds."""
    if not _valid_at(ds, at):
        result.fail(PassiveError.DS_EXPIRED)
    usage = _key_usage(ds)
    if usage is None or not usage.digital_signature:
        result.fail(PassiveError.KEY_USAGE_INVALID)
    candidates = trust.issuers_of(ds)
    if not candidates:
        result.fail(PassiveError.UNKNOWN_CSCA)
        return None
    csca = next((c for c in candidates if issued_by(ds, c)), None)
    if csca is None:
        result.fail(PassiveError.CHAIN_BROKEN)
        return None
    result.csca = csca.subject.rfc4514_string()
    if not _valid_at(csca, at):
        result.fail(PassiveError.CSCA_EXPIRED)
    csca_usage = _key_usage(csca)
    if csca_usage is None or not csca_usage.key_cert_sign:
        result.fail(PassiveError.KEY_USAGE_INVALID)
    result.revocation = trust.revocation(ds, csca, at)
    if result.revocation == REVOKED:
        result.fail(PassiveError.DS_REVOKED)
    return csca


def _check_country(
    lds: Mapping[str, bytes], ds: x509.Certificate, csca: x509.Certificate | None, result: PassiveResult
) -> None:
    """Frontex §4.4.8: the state in DG1 is the state whose DS signed (and whose CSCA issued the DS)."""
    try:
        state = parse_mrz(files.parse_dg1(lds["DG1"])).issuing_state
    except (KeyError, ValueError, NotAnMrz):
        return  # no DG1 read, or not an MRZ: its hash check already says what is wrong
    countries = {alpha2(state), _country(ds)} | ({_country(csca)} if csca is not None else set())
    if len(countries) != 1 or None in countries:
        result.fail(PassiveError.COUNTRY_MISMATCH)


def passive_authentication(
    lds: Mapping[str, bytes], trust: TrustStore, at: datetime | None = None
) -> PassiveResult:
    """Check the files read from a chip (by LDS name: ``SOD``, ``COM``, ``DG1``, ``DG2``...) against
    the trust store at time ``at`` (now by default)."""
    at = at or datetime.now(UTC)
    result = PassiveResult()
    try:
        sod = parse_sod(lds["SOD"])
        ds = signer_certificate(sod.signed_data)
    except Exception as exc:  # chip content is hostile input: whatever the parsers throw, it is malformed
        log.info("EF.SOD malformed: %s", type(exc).__name__)
        result.fail(PassiveError.SOD_MALFORMED)
        return result
    if ds is None:
        result.fail(PassiveError.SOD_MALFORMED)
        return result
    try:
        _check(sod, ds, lds, trust, at, result)
    except Exception as exc:  # asn1crypto and cryptography parse lazily: a malformed part surfaces late
        log.info("EF.SOD malformed: %s", type(exc).__name__)
        result.fail(PassiveError.SOD_MALFORMED)
    return result


def _check(
    sod: Sod,
    ds: x509.Certificate,
    lds: Mapping[str, bytes],
    trust: TrustStore,
    at: datetime,
    result: PassiveResult,
) -> None:
    result.signer = ds.subject.rfc4514_string()
    if not verify_signed_data(sod.signed_data, ds):
        result.fail(PassiveError.SOD_SIGNATURE_INVALID)
    csca = _check_chain(ds, trust, at, result)
    _check_country(lds, ds, csca, result)
    _check_groups(sod, lds, result)
