"""The kiosk's trust store for passive authentication: CSCA certificates (DER or PEM), ICAO master
lists (a CMS-signed CscaMasterList, accepted only when its signer chains to a CSCA) and CRLs.

A master list is accepted when its signature verifies with the Master List Signer certificate it
carries and that certificate was issued by a CSCA in the list or already in the store (ICAO
9303-12 §8). What makes the list trusted at all is how it reached the kiosk: a signed reference
dataset through the fleet sync, or a technician's import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

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


@dataclass
class TrustStore:
    cscas: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file: reason" for what a load left out

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        """Every file of a folder (recursively), or one file. Unusable files are skipped and noted in
        ``skipped`` rather than failing the whole store: one bad download must not close the lane."""
        store = cls()
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for item in paths:
            try:
                store.add(item.read_bytes())
            except (OSError, TrustError) as exc:
                store.skipped.append(f"{item.name}: {exc}")
        return store

    def add(self, data: bytes) -> str:
        """Add one file's content; returns what it was ("csca", "crl", "master list (N CSCAs)")."""
        if len(data) > _MAX_FILE:
            raise TrustError("file too large")
        if _PEM_CERT in data:
            for cert in x509.load_pem_x509_certificates(data):
                self._add_csca(cert)
            return "csca"
        if _PEM_CRL in data:
            self.crls.append(x509.load_pem_x509_crl(data))
            return "crl"
        try:
            cert = x509.load_der_x509_certificate(data)
        except ValueError:
            pass
        else:
            self._add_csca(cert)
            return "csca"
        try:
            self.crls.append(x509.load_der_x509_crl(data))
        except ValueError:
            pass
        else:
            return "crl"
        count = self._add_master_list(data)
        return f"master list ({count} CSCAs)"

    def _add_csca(self, cert: x509.Certificate) -> None:
        if not _is_ca(cert):
            raise TrustError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
        if cert not in self.cscas:
            self.cscas.append(cert)

    def _add_master_list(self, data: bytes) -> int:
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
        return len(cscas)

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
