"""Throw-away PKI for tests: a CA, a broker certificate and client certificates, made with `cryptography`.

Nothing here is ever used outside tests: keys are unencrypted and valid for one day. EC P-256 keeps
generation fast on a loaded machine (an RSA-2048 key costs ~50x more).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = timedelta(days=1)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass
class Authority:
    """A CA that can issue server and client certificates into ``directory``."""

    name: str
    directory: Path
    cert: Path
    key: Path
    _certificate: x509.Certificate = field(repr=False)
    _private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def create(cls, directory: Path, name: str = "gerbang-test-ca") -> Authority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            # Back-dated a little: the broker and client clocks are the same here, but a strict
            # "not before now" check can still trip on sub-second rounding.
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path = directory / f"{name}.crt"
        key_path = directory / f"{name}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cls(name, directory, cert_path, key_path, certificate, key)

    def issue(
        self,
        common_name: str,
        *,
        server: bool = False,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        file_stem: str | None = None,
    ) -> CertPair:
        """A leaf certificate: a server one (SANs, serverAuth) or a client one (CN = identity, clientAuth)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._private_key.public_key()),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._private_key, hashes.SHA256())
        stem = file_stem or common_name
        pair = CertPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


@dataclass(frozen=True)
class Pki:
    """What a TLS test needs: the real CA with broker and client certificates, and a rogue CA."""

    ca: Authority
    server: CertPair
    rogue: Authority

    def client(self, identity: str) -> CertPair:
        return self.ca.issue(identity)


def make_pki(directory: Path, server_dns: tuple[str, ...] = ("localhost",)) -> Pki:
    """The broker certificate names only ``server_dns``: connecting by IP must fail the hostname check."""
    ca = Authority.create(directory / "ca")
    server = ca.issue("mosquitto", server=True, dns_names=server_dns, file_stem="server")
    # Same CN as the real CA: trust must come from the key, not from a matching name.
    rogue = Authority.create(directory / "rogue", name="gerbang-test-ca")
    return Pki(ca, server, rogue)
