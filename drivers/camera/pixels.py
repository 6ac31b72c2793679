"""Turning whatever a camera library hands over into the one image layout the kiosk uses.

Every backend delivers a different layout: OpenCV gives BGR (or a single grey plane from a
monochrome sensor), picamera2's "RGB888" is B, G, R in memory and its 32-bit formats carry a
fourth padding byte. Downstream code (face detection, the UI, the audit snapshot) must only ever
see RGB ``uint8`` arrays of shape (H, W, 3); a swapped channel order silently degrades face
matching, so the conversion lives here once, without I/O, and is fuzzed.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

# Frames beyond this are not a camera we configured: refuse rather than allocate without bound.
MAX_SIDE = 8192


class ChannelOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"


class PixelFormatError(ValueError):
    """The array is not an image this kiosk can use (wrong type, shape or size)."""


def to_rgb(image: np.ndarray, order: ChannelOrder) -> np.ndarray:
    """A C-contiguous RGB ``uint8`` copy of ``image``, which is in ``order`` (H, W[, C]) layout.

    Grey images (H, W) or (H, W, 1) are spread to three channels; a fourth channel (alpha or the
    padding byte of 32-bit formats) is dropped. Raises :class:`PixelFormatError` otherwise.
    """
    if not isinstance(image, np.ndarray):
        raise PixelFormatError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PixelFormatError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3:
        raise PixelFormatError(f"expected an (H, W[, C]) image, got shape {image.shape}")
    height, width, channels = image.shape
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise PixelFormatError(f"unusable image size {width}x{height}")
    if channels == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if channels not in (3, 4):
        raise PixelFormatError(f"expected 1, 3 or 4 channels, got {channels}")
    colour = image[:, :, :3]
    if order is ChannelOrder.BGR:
        colour = colour[:, :, ::-1]
    # Always a fresh array: the source buffer may be reused by the camera for the next frame.
    return np.array(colour, dtype=np.uint8, order="C", copy=True)
