"""Material for chip tests: a synthetic portrait (no real face is committed), ICAO specimen MRZs and
ICAO master lists signed by a test PKI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from drivers.chip.lds import sod
from drivers.chip.lds.asn1 import ID_CSCA_MASTER_LIST, ID_MASTER_LIST_SIGNING_KEY, CscaMasterList
from kiosk.chip.specimen import encode, portrait
from kiosk.chip.testpki import Signer, make_ds

__all__ = ["TD1", "TD3", "encode", "master_list", "ml_signer", "portrait"]

TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
TD1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]


def master_list(signer: Signer, cscas: list[Signer]) -> bytes:
    """An ICAO CscaMasterList of ``cscas``, CMS-signed by ``signer``."""
    content = CscaMasterList(
        {
            "version": 0,
            "cert_list": [
                asn1_x509.Certificate.load(c.cert.public_bytes(serialization.Encoding.DER)) for c in cscas
            ],
        }
    )
    return sod.sign_cms(ID_CSCA_MASTER_LIST, content.dump(), signer.cert, signer.key)


def ml_signer(issuer: Signer) -> Signer:
    """A Master List Signer certificate issued by the CSCA ``issuer``."""
    now = datetime.now(UTC)
    signer = make_ds(issuer)  # a key and certificate from the CSCA; master lists add the ICAO usage
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name.from_rfc4514_string("CN=Gerbang TEST Master List Signer,O=Gerbang TEST PKI,C=UT")
        )
        .issuer_name(issuer.cert.subject)
        .public_key(signer.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(ID_MASTER_LIST_SIGNING_KEY)]), critical=False
        )
        .sign(issuer.key, hashes.SHA256())
    )
    return Signer(cert, signer.key)
