"""DG2: the facial image (ICAO 9303-10 §4.7.2) as ISO/IEC 19794-5:2005 records in the CBEFF
biometric templates, built and parsed; and decoding the portrait (JPEG or JPEG 2000) to pixels."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.chip import tlv

if TYPE_CHECKING:
    import numpy as np

JPEG = "jpeg"
JPEG2000 = "jpeg2000"
_DATA_TYPE = {JPEG: 0, JPEG2000: 1}
_FORMAT_BY_TYPE = {v: k for k, v in _DATA_TYPE.items()}

_TAG_DG2 = 0x75
_TAG_GROUP = 0x7F61
_TAG_COUNT = 0x02
_TAG_TEMPLATE = 0x7F60
_TAG_HEADER = 0xA1
_TAG_DATA = 0x5F2E
_TAG_DATA_ENCIPHERED = 0x7F2E

# Biometric header template (CBEFF, ICAO 9303-10 table 34): ICAO header version 1.1, type "facial
# features", format owner ISO/IEC JTC 1/SC 37 and its format type "face image".
_HEADER = (
    tlv.encode(0x80, b"\x01\x01")
    + tlv.encode(0x81, b"\x02")
    + tlv.encode(0x82, b"\x00")
    + tlv.encode(0x87, b"\x01\x01")
    + tlv.encode(0x88, b"\x00\x08")
)

_RECORD_HEADER = struct.Struct(">4s4sIH")  # 'FAC\0', '010\0', record length, number of images
_FACIAL_INFO = struct.Struct(">IHBBB3sH3s3s")  # block length, feature points, gender ... pose uncertainty
_FEATURE_POINT_SIZE = 8
_IMAGE_INFO = struct.Struct(">BBHHBBHH")  # face image type, data type, width, height, colour space...
_FULL_FRONTAL = 1
_RGB24 = 1
_DIGITAL_STILL = 2


class FaceError(ValueError):
    """DG2 or its 19794-5 record is malformed."""


@dataclass(frozen=True)
class FaceImage:
    format: str  # JPEG or JPEG2000, from the record's image data type
    width: int
    height: int
    data: bytes  # the image file exactly as stored on the chip


def _facial_record(image: FaceImage) -> bytes:
    data_length = _FACIAL_INFO.size + _IMAGE_INFO.size + len(image.data)
    facial_info = _FACIAL_INFO.pack(data_length, 0, 0, 0, 0, b"\0\0\0", 0, b"\0\0\0", b"\0\0\0")
    image_info = _IMAGE_INFO.pack(
        _FULL_FRONTAL, _DATA_TYPE[image.format], image.width, image.height, _RGB24, _DIGITAL_STILL, 0, 0
    )
    header = _RECORD_HEADER.pack(b"FAC\0", b"010\0", _RECORD_HEADER.size + data_length, 1)
    return header + facial_info + image_info + image.data


def build_dg2(images: list[FaceImage]) -> bytes:
    templates = b"".join(
        tlv.encode(_TAG_TEMPLATE, tlv.encode(_TAG_HEADER, _HEADER) + tlv.encode(_TAG_DATA, _facial_record(i)))
        for i in images
    )
    group = tlv.encode(_TAG_COUNT, bytes([len(images)])) + templates
    return tlv.encode(_TAG_DG2, tlv.encode(_TAG_GROUP, group))


def _parse_record(record: bytes) -> list[FaceImage]:
    if len(record) < _RECORD_HEADER.size:
        raise FaceError("facial record shorter than its header")
    magic, version, length, count = _RECORD_HEADER.unpack_from(record)
    if magic != b"FAC\0":
        raise FaceError("not an ISO/IEC 19794-5 facial record")
    if version != b"010\0":
        raise FaceError(f"unsupported facial record version {version!r}")
    if length != len(record):
        raise FaceError(f"facial record says {length} bytes, holds {len(record)}")
    images = []
    offset = _RECORD_HEADER.size
    for _ in range(count):
        if offset + _FACIAL_INFO.size + _IMAGE_INFO.size > len(record):
            raise FaceError("facial record truncated")
        block_length, points = _FACIAL_INFO.unpack_from(record, offset)[:2]
        image_at = offset + _FACIAL_INFO.size + points * _FEATURE_POINT_SIZE
        _, data_type, width, height = _IMAGE_INFO.unpack_from(record, image_at)[:4]
        data_at = image_at + _IMAGE_INFO.size
        end = offset + block_length
        if end > len(record) or end < data_at:
            raise FaceError("facial record block length out of range")
        if data_type not in _FORMAT_BY_TYPE:
            raise FaceError(f"image data type {data_type} is neither JPEG nor JPEG 2000")
        images.append(FaceImage(_FORMAT_BY_TYPE[data_type], width, height, record[data_at:end]))
        offset = end
    return images


def parse_dg2(data: bytes) -> list[FaceImage]:
    """Every face image in DG2, in the order stored."""
    try:
        group = tlv.child(tlv.unwrap(data, _TAG_DG2), _TAG_GROUP)
        images = []
        for tag, template in tlv.children(group):
            if tag != _TAG_TEMPLATE:
                continue
            for inner, value in tlv.children(template):
                if inner == _TAG_DATA_ENCIPHERED:
                    raise FaceError("enciphered biometric data block: not readable without its key")
                if inner == _TAG_DATA:
                    images.extend(_parse_record(value))
    except tlv.TlvError as exc:
        raise FaceError(f"DG2: {exc}") from None
    if not images:
        raise FaceError("DG2 holds no face image")
    return images


def sniff_format(image: bytes) -> str | None:
    """JPEG or JPEG2000 by the file's own signature (JP2 box or bare J2K codestream)."""
    if image.startswith(b"\xff\xd8"):
        return JPEG
    if image.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or image.startswith(b"\xff\x4f\xff\x51"):
        return JPEG2000
    return None


def decode_image(image: bytes) -> np.ndarray:
    """RGB pixels (H x W x 3, uint8) of a JPEG or JPEG 2000 file. OpenCV's wheels decode both
    (libjpeg-turbo and OpenJPEG), so no extra imaging library is needed."""
    import cv2
    import numpy as np

    bgr = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FaceError("the portrait image cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
