"""Material for chip tests: a synthetic portrait (no real face is committed), ICAO specimen MRZs and
ICAO master lists signed by a test PKI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from drivers.chip.lds import sod
from drivers.chip.lds.asn1 import ID_CSCA_MASTER_LIST, ID_MASTER_LIST_SIGNING_KEY, CscaMasterList
from kiosk.chip.testpki import Signer, make_ds

TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
TD1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]


def portrait(width: int = 240, height: int = 320) -> np.ndarray:
    """A face-like RGB drawing: head, eyes and mouth on a smooth background (noise keeps the
    encoders from compressing it to nothing, so sizes resemble a real chip portrait)."""
    rng = np.random.default_rng(7)
    image = np.full((height, width, 3), 200, np.uint8)
    image[:] = np.linspace(170, 230, width, dtype=np.uint8)[None, :, None]
    centre = (width // 2, height // 2)
    cv2.ellipse(image, centre, (width // 3, height // 3), 0, 0, 360, (224, 172, 140), -1)
    for dx in (-width // 8, width // 8):
        cv2.circle(image, (centre[0] + dx, centre[1] - height // 12), max(2, width // 30), (40, 30, 30), -1)
    cv2.ellipse(
        image, (centre[0], centre[1] + height // 8), (width // 10, height // 40), 0, 0, 180, (150, 60, 60), 3
    )
    noise = rng.integers(-12, 13, image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    """JPEG or JPEG 2000 file bytes of an RGB image."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    else:
        ok, buf = cv2.imencode(".jp2", bgr, [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, 60])
    assert ok
    return buf.tobytes()


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
