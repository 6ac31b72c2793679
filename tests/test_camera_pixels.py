"""Fuzzing the one place camera pixels change layout: whatever a library hands over, the result is
an RGB uint8 (H, W, 3) copy or a PixelFormatError — never another exception, never a wrong order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drivers.camera.pixels import MAX_SIDE, ChannelOrder, PixelFormatError, to_rgb

SETTINGS = settings(max_examples=300, deadline=None)

images = hnp.arrays(
    dtype=st.just(np.uint8),
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3, 4])),
)


@SETTINGS
@given(image=images, order=st.sampled_from(list(ChannelOrder)))
def test_any_camera_image_becomes_rgb(image: np.ndarray, order: ChannelOrder) -> None:
    rgb = to_rgb(image, order)
    height, width, channels = image.shape
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    if channels == 1:
        expected = np.repeat(image, 3, axis=2)
    elif order is ChannelOrder.BGR:
        expected = image[:, :, [2, 1, 0]]
    else:
        expected = image[:, :, :3]
    assert np.array_equal(rgb, expected)
    assert not np.shares_memory(rgb, image)  # the camera may reuse its buffer for the next frame


@SETTINGS
@given(image=images)
def test_bgr_input_equals_the_same_pixels_given_in_rgb_order(image: np.ndarray) -> None:
    swapped = image.copy()
    swapped[:, :, :3] = image[:, :, 2::-1] if image.shape[2] >= 3 else image
    assert np.array_equal(to_rgb(image, ChannelOrder.BGR), to_rgb(swapped, ChannelOrder.RGB))


@SETTINGS
@given(
    image=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.int8, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    ),
    order=st.sampled_from(list(ChannelOrder)),
)
def test_anything_else_is_refused_cleanly(image: np.ndarray, order: ChannelOrder) -> None:
    try:
        rgb = to_rgb(image, order)
    except PixelFormatError:
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8


def test_a_pure_red_bgr_pixel_is_red_in_rgb() -> None:
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 255
    assert to_rgb(bgr, ChannelOrder.BGR)[0, 0].tolist() == [255, 0, 0]
    bgrx = np.zeros((2, 2, 4), np.uint8)  # picamera2's XRGB8888: B, G, R, padding
    bgrx[..., 2] = 255
    bgrx[..., 3] = 255
    assert to_rgb(bgrx, ChannelOrder.BGR)[0, 0].tolist() == [255, 0, 0]


def test_sizes_beyond_any_configured_camera_are_refused() -> None:
    with pytest.raises(PixelFormatError, match="size"):
        to_rgb(np.zeros((1, MAX_SIDE + 1), np.uint8), ChannelOrder.RGB)
    with pytest.raises(PixelFormatError, match="numpy array"):
        to_rgb([[1, 2, 3]], ChannelOrder.RGB)  # type: ignore[arg-type]
