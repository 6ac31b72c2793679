"""A test country signing PKI: CSCA and Document Signer certificates after the ICAO 9303-12 §7
profiles, clearly marked as test material (``O=Gerbang TEST PKI``). For simulation, training and
tests only: keys are EC P-256 and stored unencrypted; no real passport is ever signed with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

TEST_ORGANISATION = "Gerbang TEST PKI"
CSCA_VALIDITY = timedelta(days=15 * 365)
# A DS signs passports for a few months, and its certificate must outlive the last one it signed.
DS_VALIDITY = timedelta(days=10 * 365 + 120)


@dataclass(frozen=True)
class Signer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name(country: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_csca(
    country: str, now: datetime | None = None, validity: timedelta = CSCA_VALIDITY, name: str = "CSCA"
) -> Signer:
    """A self-signed Country Signing CA for ``country`` (ISO 3166 alpha-2)."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(country, f"Gerbang TEST {name} {country}")
    spki = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(spki, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(spki), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Signer(cert, key)


def make_ds(
    csca: Signer,
    country: str | None = None,
    now: datetime | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
) -> Signer:
    """A Document Signer certificate issued by ``csca`` (same country unless ``country`` says so:
    tests make mismatched ones; an EC P-256 key unless ``key`` is given)."""
    now = now or datetime.now(UTC)
    country = country or csca.cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(country, f"Gerbang TEST Document Signer {country}"))
        .issuer_name(csca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + DS_VALIDITY)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                csca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(csca.key, hashes.SHA256())
    )
    return Signer(cert, key)


def save(signer: Signer, cert_path: Path, key_path: Path) -> None:
    cert_path.write_bytes(signer.cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        signer.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)


def _load(cert_path: Path, key_path: Path) -> Signer:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} is not an EC or RSA private key")
    return Signer(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)


def country_pki(ca_dir: Path, country: str) -> tuple[Signer, Signer]:
    """The (CSCA, DS) of ``country`` under ``ca_dir``, created on first use. One folder serves
    several countries: ``csca-<C>.pem`` (what a kiosk's trust store takes), ``ds-<C>.pem``, keys
    beside them."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        role: (ca_dir / f"{role}-{country}.pem", ca_dir / f"{role}-{country}.key.pem")
        for role in ("csca", "ds")
    }
    if all(p.exists() for pair in paths.values() for p in pair):
        return _load(*paths["csca"]), _load(*paths["ds"])
    csca = make_csca(country)
    ds = make_ds(csca)
    save(csca, *paths["csca"])
    save(ds, *paths["ds"])
    return csca, ds
