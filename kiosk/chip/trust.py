"""The kiosk's trust store for passive authentication: CSCA certificates (DER or PEM), ICAO master
lists (a CMS-signed CscaMasterList, accepted only when its signer chains to a CSCA) and CRLs.

A master list is accepted when its signature verifies with the Master List Signer certificate it
carries and that certificate was issued by a CSCA in the list or already in the store (ICAO
9303-12 §8). What makes the list trusted at all is how it reached the kiosk: a signed reference
dataset through the fleet sync, or a technician's import.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from drivers.chip.lds.asn1 import ID_CSCA_MASTER_LIST, CscaMasterList
from drivers.chip.lds.sod import load_signed_data
from kiosk.chip.signatures import signer_certificate, verify_signed_data

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_CRL = b"-----BEGIN X509 CRL-----"
_MAX_FILE = 16 * 1024 * 1024  # the ICAO master list is a few MB; refuse anything far larger


REVOKED, GOOD, UNKNOWN = "revoked", "good", "unknown"  # revocation status of a certificate


class TrustError(ValueError):
    """A file is none of certificate, CRL or valid master list."""


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer``'s name and key signed ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # ValueError, TypeError, InvalidSignature: every way it is not so
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class TrustItem:
    """What one DER object added to the store was, summarised for reports (no key material)."""

    kind: str  # CSCA, MASTER_LIST or CRL
    sha256: str  # of the DER bytes
    subject: str  # the CSCA; the master list's signer; the CRL's issuer (RFC 4514)
    country: str | None  # that name's C, when it is two letters
    not_after: datetime | None  # the certificate's end of validity; the CRL's next update
    cscas: int = 0  # CSCAs the item brought (1 for a CSCA, the list's size for a master list)


CSCA, MASTER_LIST, CRL = "csca", "master_list", "crl"
_PEM_BLOCK = re.compile(rb"-----BEGIN (CERTIFICATE|X509 CRL)-----.+?-----END \1-----", re.S)


def der_objects(data: bytes) -> list[bytes]:
    """The DER objects of a file: each PEM certificate or CRL block in turn, or the file itself when it
    is not PEM."""
    if _PEM_CERT not in data and _PEM_CRL not in data:
        return [data]
    objects = []
    for block in _PEM_BLOCK.finditer(data):
        if block.group(1) == b"CERTIFICATE":
            der = x509.load_pem_x509_certificate(block.group(0)).public_bytes(serialization.Encoding.DER)
        else:
            der = x509.load_pem_x509_crl(block.group(0)).public_bytes(serialization.Encoding.DER)
        objects.append(der)
    return objects


def _country(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    country = str(values[0].value).upper() if values else ""
    return country if re.fullmatch("[A-Z]{2}", country) else None


def kind_of(der: bytes) -> str:
    """What a DER object is taken for: CSCA when it parses as a certificate, CRL as a CRL, anything
    else MASTER_LIST (which adding it then proves or refuses)."""
    for kind, parse in ((CSCA, x509.load_der_x509_certificate), (CRL, x509.load_der_x509_crl)):
        try:
            parse(der)
        except ValueError:
            continue
        return kind
    return MASTER_LIST


def _certificate_item(kind: str, digest: str, cert: x509.Certificate, cscas: int) -> TrustItem:
    return TrustItem(
        kind,
        digest,
        cert.subject.rfc4514_string(),
        _country(cert.subject),
        cert.not_valid_after_utc,
        cscas,
    )


@dataclass
class TrustStore:
    cscas: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file: reason" for what a load left out

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        """Every file of a folder (recursively), or one file (see :meth:`add_files`)."""
        store = cls()
        store.add_files(path)
        return store

    def add_files(self, path: Path) -> None:
        """Every file of a folder (recursively), or one file. Unusable files are skipped and noted in
        ``skipped`` rather than failing the whole store: one bad download must not close the lane."""
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for item in paths:
            try:
                self.add(item.read_bytes())
            except (OSError, ValueError) as exc:  # TrustError, and cryptography's PEM parse errors
                self.skipped.append(f"{item.name}: {exc}")

    def add(self, data: bytes) -> list[TrustItem]:
        """Add one file's content (DER, or PEM with one or more certificates and CRLs): what it held.
        Raises :class:`TrustError` (or cryptography's ValueError for broken PEM) on the first object
        refused; the objects before it stay added."""
        if len(data) > _MAX_FILE:
            raise TrustError("file too large")
        return [self.add_der(der) for der in der_objects(data)]

    def add_der(self, der: bytes) -> TrustItem:
        """Add one DER object, taken for what it parses as (:func:`kind_of`): a CA certificate, a CRL,
        or a master list whose signer chains to a CSCA (in the list or already here)."""
        if len(der) > _MAX_FILE:
            raise TrustError("file too large")
        kind = kind_of(der)
        digest = hashlib.sha256(der).hexdigest()
        if kind == CSCA:
            cert = x509.load_der_x509_certificate(der)
            self._add_csca(cert)
            return _certificate_item(CSCA, digest, cert, 1)
        if kind == CRL:
            crl = x509.load_der_x509_crl(der)
            self.crls.append(crl)
            return TrustItem(
                CRL, digest, crl.issuer.rfc4514_string(), _country(crl.issuer), crl.next_update_utc
            )
        signer, count = self._add_master_list(der)
        return _certificate_item(MASTER_LIST, digest, signer, count)

    def _add_csca(self, cert: x509.Certificate) -> None:
        if not _is_ca(cert):
            raise TrustError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
        if cert not in self.cscas:
            self.cscas.append(cert)

    def _add_master_list(self, data: bytes) -> tuple[x509.Certificate, int]:
        try:
            signed_data = load_signed_data(data, ID_CSCA_MASTER_LIST)
            listed = CscaMasterList.load(signed_data["encap_content_info"]["content"].contents, strict=True)
            cscas = [x509.load_der_x509_certificate(c.dump()) for c in listed["cert_list"]]
        except ValueError as exc:
            raise TrustError(f"not a certificate, CRL or master list ({exc})") from None
        signer = signer_certificate(signed_data)
        if signer is None:
            raise TrustError("master list without its signer certificate")
        if not verify_signed_data(signed_data, signer):
            raise TrustError("master list signature invalid")
        if not any(issued_by(signer, csca) for csca in [*cscas, *self.cscas]):
            raise TrustError("master list signer not issued by a known CSCA")
        for csca in cscas:
            if _is_ca(csca) and csca not in self.cscas:
                self.cscas.append(csca)
        return signer, len(cscas)

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """Trusted CSCAs that may have issued ``cert``: same name and, when the certificate names its
        issuer's key (authority key identifier), that key."""
        named = [c for c in self.cscas if c.subject == cert.issuer]
        wanted = _authority_key_id(cert)
        if wanted is None:
            return named
        return [c for c in named if _subject_key_id(c) in (None, wanted)]

    def revocation(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> str:
        """REVOKED when a CRL signed by ``issuer`` lists ``cert`` (a stale CRL still proves a
        revocation: revocations are permanent); GOOD when a CRL current at ``at`` does not list it;
        UNKNOWN when no current CRL of ``issuer`` is held."""
        crls = [
            c for c in self.crls if c.issuer == issuer.subject and c.is_signature_valid(issuer.public_key())
        ]
        if any(c.get_revoked_certificate_by_serial_number(cert.serial_number) is not None for c in crls):
            return REVOKED
        current = any(c.next_update_utc is None or c.next_update_utc >= at for c in crls)
        return GOOD if current else UNKNOWN


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None
