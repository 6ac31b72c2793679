"""The test passport issuer: an LDS folder (COM, DG1, DG2, SOD; DG14, DG15 and the AA key for
Active Authentication; CardAccess for PACE) signed by the test PKI, for the chip simulator,
training mode and tests. The folder holds the files exactly as a chip serves them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from drivers.chip.lds import face, files, sod
from kiosk.chip.countries import alpha2
from kiosk.chip.testpki import Signer, country_pki
from kiosk.documents.mrz import parse_mrz

HASH = "sha256"
AA_KINDS = ("rsa", "ec")


class IssueError(ValueError):
    """The inputs cannot make a passport (bad MRZ, unreadable portrait, unknown country)."""


@dataclass(frozen=True)
class Portrait:
    format: str  # face.JPEG or face.JPEG2000
    width: int
    height: int
    data: bytes


def portrait_from_file(path: Path, jpeg2000: bool) -> Portrait:
    """The portrait to store: the file's own bytes when it already is the wanted format (so a test
    knows the exact bytes on the chip), otherwise re-encoded by OpenCV."""
    import cv2

    data = path.read_bytes()
    try:
        pixels = face.decode_image(data)
    except face.FaceError:
        raise IssueError(f"{path}: not an image OpenCV can read") from None
    wanted = face.JPEG2000 if jpeg2000 else face.JPEG
    if face.sniff_format(data) != wanted:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        if jpeg2000:
            ok, buf = cv2.imencode(".jp2", bgr, [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, 50])
        else:
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise IssueError(f"{path}: cannot encode as {wanted}")
        data = buf.tobytes()
    height, width = pixels.shape[:2]
    return Portrait(wanted, width, height, data)


def _aa_key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # the size most chips use
    return ec.generate_private_key(ec.BrainpoolP256R1())


def build_lds(
    mrz_lines: list[str],
    portrait: Portrait,
    ds: Signer,
    aa_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    pace: bool = False,
) -> dict[str, bytes]:
    """The LDS files by name (``COM``, ``DG1``...), signed by ``ds``."""
    groups = {
        1: files.build_dg1(mrz_lines),
        2: face.build_dg2([face.FaceImage(portrait.format, portrait.width, portrait.height, portrait.data)]),
    }
    if isinstance(aa_key, ec.EllipticCurvePrivateKey):
        # an EC AA key needs DG14 to name its signature algorithm (ICAO 9303-11 §6.1)
        groups[14] = files.build_dg14([files.aa_info(HASH)])
    if aa_key is not None:
        spki = aa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        groups[15] = files.build_dg15(spki)
    lds = {f"DG{n}": data for n, data in groups.items()}
    lds["COM"] = files.build_com(sorted(groups))
    lds["SOD"] = sod.sign_sod(sod.build_security_object(HASH, groups), ds.cert, ds.key, HASH)
    if pace:
        lds["CardAccess"] = files.build_card_access([files.pace_info()])
    return lds


def issue(
    mrz_text: str,
    portrait_path: Path,
    out: Path,
    ca_dir: Path,
    jpeg2000: bool = False,
    aa: str | None = None,
    pace: bool = False,
) -> dict[str, bytes]:
    """Write a test passport's LDS into ``out`` (``<name>.bin``, and ``AA.key.pem`` with ``aa``)."""
    mrz = parse_mrz(mrz_text)
    if not mrz.valid:
        raise IssueError(f"the MRZ does not validate: {', '.join(mrz.errors) or 'check digit'}")
    country = alpha2(mrz.issuing_state)
    if country is None:
        raise IssueError(f"no ISO 3166 country code for issuing state {mrz.issuing_state!r}")
    _, ds = country_pki(ca_dir, country)
    aa_key = _aa_key(aa) if aa else None
    lds = build_lds(list(mrz.lines), portrait_from_file(portrait_path, jpeg2000), ds, aa_key, pace)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in lds.items():
        (out / f"{name}.bin").write_bytes(data)
    if aa_key is not None:
        key_path = out / "AA.key.pem"
        key_path.write_bytes(
            aa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
    return lds
