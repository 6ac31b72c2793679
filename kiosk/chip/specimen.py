"""A synthetic, face-like test portrait (no real face is committed or bundled) and its encoding at
a chosen file size, for test passports, the chip benchmark and the tests."""

from __future__ import annotations

import cv2
import numpy as np

JPEG, JPEG2000 = "jpeg", "jpeg2000"


def portrait(width: int = 240, height: int = 320, seed: int = 7) -> np.ndarray:
    """A face-like RGB drawing: head, eyes and mouth on a smooth background (noise keeps the
    encoders from compressing it to nothing, so sizes resemble a real chip portrait)."""
    rng = np.random.default_rng(seed)
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


def encode(rgb: np.ndarray, fmt: str, quality: int | None = None) -> bytes:
    """JPEG (quality 1-100, default 85) or JPEG 2000 (compression ×1000 1-1000, default 60) file bytes."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if fmt == JPEG:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality or 85])
    else:
        ok, buf = cv2.imencode(".jp2", bgr, [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, quality or 60])
    if not ok:
        raise ValueError(f"OpenCV cannot encode {fmt}")
    return buf.tobytes()


def encode_near(rgb: np.ndarray, fmt: str, target_bytes: int) -> bytes:
    """The encoding of ``rgb`` whose size is closest to ``target_bytes`` (bisecting the quality)."""
    low, high = (1, 100) if fmt == JPEG else (1, 1000)
    best = encode(rgb, fmt, high)
    while low <= high:
        quality = (low + high) // 2
        data = encode(rgb, fmt, quality)
        if abs(len(data) - target_bytes) < abs(len(best) - target_bytes):
            best = data
        if len(data) < target_bytes:
            low = quality + 1
        else:
            high = quality - 1
    return best
