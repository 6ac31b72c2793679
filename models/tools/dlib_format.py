"""Reader for dlib's binary serialization, enough to lift the weights out of its model files.

dlib writes integers and floats in its own portable encoding, tensors as raw little-endian float32,
and a network as a nested record: every wrapper's version number from the output end inwards, then
the input layer, then each layer's details from the input outwards. Tag and skip ids are not stored,
so :func:`read_network` returns the flat wrapper skeleton and the converters match it against the
architecture they know.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# Exponent values dlib reserves for the non-finite floats.
_EXP_POS_INF = 32000
_EXP_NEG_INF = 32001
_EXP_NAN = 32002


class DlibFormatError(ValueError):
    """The bytes are not what a dlib model of the expected kind holds."""


def _decode_int(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); hot enough in the 9 MB landmark model to be written flat."""
    if pos >= len(data):
        raise DlibFormatError(f"truncated: integer expected at offset {pos}")
    control = data[pos]
    size = control & 0x0F
    if control & 0x70 or size > 8:
        raise DlibFormatError(f"bad integer control byte 0x{control:02x} at offset {pos}")
    end = pos + 1 + size
    if end > len(data):
        raise DlibFormatError(f"truncated: {size}-byte integer at offset {pos}")
    value = int.from_bytes(data[pos + 1 : end], "little")
    return (-value if control & 0x80 else value), end


def _decode_float(data: bytes, pos: int) -> tuple[float, int]:
    if pos < len(data) and data[pos] & 0x70:
        # Written by dlib versions older than the portable encoding; no model we ship uses it.
        raise DlibFormatError(f"old ASCII float encoding at offset {pos}")
    mantissa, pos = _decode_int(data, pos)
    exponent, pos = _decode_int(data, pos)
    if exponent == _EXP_POS_INF:
        return float("inf"), pos
    if exponent == _EXP_NEG_INF:
        return float("-inf"), pos
    if exponent == _EXP_NAN:
        return float("nan"), pos
    return math.ldexp(mantissa, exponent), pos


class Reader:
    """A cursor over one serialized dlib object."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DlibFormatError(f"truncated: wanted {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read_int(self) -> int:
        value, self.pos = _decode_int(self.data, self.pos)
        return value

    def read_float(self) -> float:
        value, self.pos = _decode_float(self.data, self.pos)
        return value

    def read_floats(self, count: int) -> list[float]:
        data, pos = self.data, self.pos
        values = []
        for _ in range(count):
            value, pos = _decode_float(data, pos)
            values.append(value)
        self.pos = pos
        return values

    def read_bool(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool byte {byte!r} at offset {self.pos - 1}")
        return byte == b"1"

    def read_string(self) -> str:
        length = self.read_int()
        if length < 0:
            raise DlibFormatError(f"negative string length at offset {self.pos}")
        return self._take(length).decode("latin-1")

    def expect_string(self, *accepted: str) -> str:
        start = self.pos
        value = self.read_string()
        if value not in accepted:
            raise DlibFormatError(f"expected one of {accepted} at offset {start}, found {value!r}")
        return value

    def read_tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: NCHW float32."""
        start = self.pos
        version = self.read_int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at offset {start}")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)

    def read_alias(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: a view's shape into a layer's parameter tensor, no data."""
        start = self.pos
        version = self.read_int()
        if version != 1:
            raise DlibFormatError(f"alias tensor version {version} at offset {start}")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc

    def read_matrix(self) -> np.ndarray:
        """A ``matrix<float>`` in dlib's element-by-element float encoding (shape predictor)."""
        nr = -self.read_int()
        nc = -self.read_int()
        if nr < 0 or nc < 0:
            raise DlibFormatError(f"bad matrix shape at offset {self.pos}")
        values = self.read_floats(nr * nc)
        return np.asarray(values, dtype=np.float32).reshape(nr, nc)

    def read_sequence(self, item: Callable[[], T]) -> list[T]:
        """A ``std::vector``: length then the items."""
        return [item() for _ in range(self.read_int())]


# --------------------------------------------------------------------------------------------
# Networks


@dataclass(frozen=True)
class Layer:
    """One computational layer's details, as recorded in the file."""

    kind: str  # dlib's record tag, e.g. "con_4", "affine_", "relu_"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Network:
    """A whole dlib network file, flattened.

    ``wrappers`` runs from the output end to the input: "layer" (a computational layer, whose
    details are in ``layers`` in reverse order) or "tag"/"skip" (their ids are not stored; the two
    also share a version number, so they are reported as "tag_or_skip").
    """

    loss: dict[str, Any]
    wrappers: tuple[str, ...]
    input: dict[str, Any]
    layers: tuple[Layer, ...]  # input to output


def _conv_split(params: np.ndarray, filters: tuple[int, ...], biases: tuple[int, ...]) -> tuple:
    flat = params.reshape(-1)
    n_w = int(np.prod(filters))
    n_b = int(np.prod(biases))
    if flat.size != n_w + n_b:
        raise DlibFormatError(f"parameter size {flat.size} != {n_w} + {n_b}")
    return flat[:n_w].reshape(filters).copy(), flat[n_w:].reshape(-1).copy()


def _read_con(r: Reader) -> dict[str, Any]:
    params = r.read_tensor()
    num_filters, nr, nc = r.read_int(), r.read_int(), r.read_int()
    stride_y, stride_x = r.read_int(), r.read_int()
    pad_y, pad_x = r.read_int(), r.read_int()
    filters, biases = r.read_alias(), r.read_alias()
    lr = [r.read_float() for _ in range(4)]
    weight, bias = _conv_split(params, filters, biases)
    if weight.shape[0] != num_filters or weight.shape[2:] != (nr, nc):
        raise DlibFormatError(f"con_ weight shape {weight.shape} disagrees with {num_filters}x{nr}x{nc}")
    return {
        "weight": weight,
        "bias": bias,
        "stride": (stride_y, stride_x),
        "padding": (pad_y, pad_x),
        "learning_rates": lr,
    }


def _read_affine(r: Reader) -> dict[str, Any]:
    params = r.read_tensor()
    gamma, beta = r.read_alias(), r.read_alias()
    mode = r.read_int()
    flat = params.reshape(-1)
    n = int(np.prod(gamma))
    if flat.size != n + int(np.prod(beta)):
        raise DlibFormatError("affine_ parameter size mismatch")
    # mode 0 = per-channel (CONV_MODE), 1 = per-element (FC_MODE)
    return {"gamma": flat[:n].reshape(gamma).copy(), "beta": flat[n:].reshape(beta).copy(), "mode": mode}


def _read_batch_norm(r: Reader) -> dict[str, Any]:
    """A trained ``bn_`` record, folded into the affine form dlib itself uses at inference."""
    params = r.read_tensor()
    gamma, beta = r.read_alias(), r.read_alias()
    r.read_tensor()  # the last mini-batch's means
    r.read_tensor()  # ... and inverse standard deviations
    running_means = r.read_tensor().reshape(-1)
    running_variances = r.read_tensor().reshape(-1)
    r.read_int()  # num_updates
    r.read_int()  # running_stats_window_size
    for _ in range(4):
        r.read_float()  # learning-rate and weight-decay multipliers
    eps = r.read_float()
    flat = params.reshape(-1)
    n = int(np.prod(gamma))
    scale = flat[:n] / np.sqrt(running_variances + np.float32(eps))
    shift = flat[n:] - scale * running_means
    return {
        "gamma": scale.astype(np.float32).reshape(gamma),
        "beta": shift.astype(np.float32).reshape(beta),
        "mode": 0,
    }


def _read_pool(r: Reader) -> dict[str, Any]:
    nr, nc = r.read_int(), r.read_int()
    stride_y, stride_x = r.read_int(), r.read_int()
    pad_y, pad_x = r.read_int(), r.read_int()
    return {"size": (nr, nc), "stride": (stride_y, stride_x), "padding": (pad_y, pad_x)}


def _read_fc(r: Reader) -> dict[str, Any]:
    num_outputs, num_inputs = r.read_int(), r.read_int()
    params = r.read_tensor()
    weights, _biases = r.read_alias(), r.read_alias()
    bias_mode = r.read_int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
    lr = [r.read_float() for _ in range(4)]
    flat = params.reshape(-1)
    n_w = num_inputs * num_outputs
    weight = flat[:n_w].reshape(num_inputs, num_outputs).copy()
    bias = flat[n_w:].copy() if bias_mode == 0 else None
    if weights[0] * weights[1] != n_w:
        raise DlibFormatError("fc_ weights alias disagrees with its sizes")
    return {"weight": weight, "bias": bias, "learning_rates": lr}


def _read_nothing(_: Reader) -> dict[str, Any]:
    return {}


_LAYER_READERS: dict[str, Callable[[Reader], dict[str, Any]]] = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "bn_con2": _read_batch_norm,
    "relu_": _read_nothing,
    "add_prev_": _read_nothing,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "fc_2": _read_fc,
}


def _read_loss(r: Reader) -> dict[str, Any]:
    kind = r.expect_string("loss_metric_2", "loss_mmod_")
    if kind == "loss_metric_2":
        return {"kind": kind, "margin": r.read_float(), "distance_threshold": r.read_float()}
    return {"kind": kind, **_read_mmod_options(r)}


def _read_mmod_options(r: Reader) -> dict[str, Any]:
    version = r.read_int()
    if not 1 <= version <= 4:
        raise DlibFormatError(f"mmod_options version {version}")
    if version == 1:
        windows = [{"width": r.read_int(), "height": r.read_int(), "label": ""}]
    else:
        windows = r.read_sequence(
            lambda: {"width": r.read_int(), "height": r.read_int(), "label": r.read_string()}
        )
    opts: dict[str, Any] = {
        "version": version,
        "detector_windows": windows,
        "loss_per_false_alarm": r.read_float(),
        "loss_per_missed_target": r.read_float(),
        "truth_match_iou_threshold": r.read_float(),
        "nms_iou_threshold": r.read_float(),
        "nms_percent_covered_threshold": r.read_float(),
        "ignore_iou_threshold": r.read_float(),
        "ignore_percent_covered_threshold": r.read_float(),
        "use_bounding_box_regression": False,
    }
    if version >= 3:
        opts["assume_image_pyramid"] = r.read_int()
    if version >= 4:
        opts["use_bounding_box_regression"] = r.read_bool()
        opts["bbr_lambda"] = r.read_float()
    return opts


def _read_input(r: Reader) -> dict[str, Any]:
    kind = r.expect_string("input_rgb_image_sized", "input_rgb_image_pyramid", "input_rgb_image_pyramid2")
    means = (r.read_float(), r.read_float(), r.read_float())
    if kind == "input_rgb_image_sized":
        return {"kind": kind, "mean_rgb": means, "rows": r.read_int(), "cols": r.read_int()}
    padding, outer = (r.read_int(), r.read_int()) if kind.endswith("2") else (10, 11)
    return {"kind": "input_rgb_image_pyramid", "mean_rgb": means, "padding": padding, "outer_padding": outer}


def _skip_layer_trailer(r: Reader) -> None:
    # setup-called / gradient-stale / output-disabled flags and the (empty) cached tensors
    for _ in range(3):
        r.read_bool()
    for _ in range(3):
        r.read_tensor()


def read_network(data: bytes) -> Network:
    """Walk a dlib network file (``add_loss_layer`` at the top) into a :class:`Network`."""
    r = Reader(data)
    if r.read_int() != 1:
        raise DlibFormatError("not a dlib network file (loss layer version)")
    loss = _read_loss(r)
    wrappers: list[str] = []
    while True:
        version = r.read_int()
        if version == 2:
            wrappers.append("layer")
        elif version == 1:
            wrappers.append("tag_or_skip")
        elif version == 3:
            wrappers.append("layer")
            break
        else:
            raise DlibFormatError(f"unexpected wrapper version {version} at offset {r.pos}")
    net_input = _read_input(r)
    layers: list[Layer] = []
    n_layers = wrappers.count("layer")
    for index in range(n_layers):
        kind = r.read_string()
        reader = _LAYER_READERS.get(kind)
        if reader is None:
            raise DlibFormatError(f"unsupported layer record {kind!r}")
        layers.append(Layer(kind, reader(r)))
        _skip_layer_trailer(r)
        if index == 0:
            r.read_int()  # the input wrapper's sample expansion factor
    if r.remaining:
        raise DlibFormatError(f"{r.remaining} unread bytes after the network")
    return Network(loss=loss, wrappers=tuple(wrappers), input=net_input, layers=tuple(layers))
