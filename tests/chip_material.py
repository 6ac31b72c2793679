"""Material for chip tests: a synthetic portrait (no real face is committed) and ICAO specimen MRZs."""

from __future__ import annotations

import cv2
import numpy as np

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
