"""dlib's ResNet face-descriptor network (``dlib_face_recognition_resnet_model_v1``) as an ONNX graph.

The file stores no tag/skip ids, so the converter walks the layer records against the architecture
the model was trained with (dlib's ``dnn_face_recognition_ex``): a 7x7/2 stem and max pool, then
residual levels of 32, 64, 128, 256 and 256 filters, a global average pool and a 256->128 fully
connected layer without bias. Build-time only: this module needs the ``onnx`` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.tools.dlib_format import DlibFormatError, Layer, Network, read_network

OPSET = 17
IR_VERSION = 8  # the newest IR that opset 17 runtimes on the Pi images all read
PRODUCER = "gerbang.models"
PRODUCER_VERSION = "1"

CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128

# (filters, downsample first, residual blocks) from the input end; see the module docstring.
_LEVELS: tuple[tuple[int, bool, int], ...] = (
    (32, False, 3),
    (64, True, 4),
    (128, True, 3),
    (256, True, 3),
    (256, True, 1),
)


@dataclass
class GraphBuilder:
    """Accumulates nodes/initializers with deterministic names and tracks static shapes (C, H, W)."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _count: int = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, conv: Layer, affine: Layer | None) -> str:
        """dlib ``con_`` followed (optionally) by a per-channel affine, folded into one Conv."""
        weight = conv.params["weight"].astype(np.float32)
        bias = conv.params["bias"].astype(np.float32)
        if affine is not None:
            if affine.params["mode"] != 0:
                raise DlibFormatError("only per-channel affine layers follow a convolution")
            gamma = affine.params["gamma"].reshape(-1)
            beta = affine.params["beta"].reshape(-1)
            weight = weight * gamma[:, None, None, None]
            bias = bias * gamma + beta
        kh, kw = weight.shape[2:]
        pad_y, pad_x = conv.params["padding"]
        return self.node(
            "Conv",
            [x, self.const("w", weight), self.const("b", bias.astype(np.float32))],
            kernel_shape=[int(kh), int(kw)],
            strides=[int(s) for s in conv.params["stride"]],
            pads=[int(pad_y), int(pad_x), int(pad_y), int(pad_x)],
        )

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    # dlib pools: 1 + (size + 2p - k) / s, integer division, same as ONNX's floor mode
    return 1 + (size + 2 * padding - kernel) // stride


def finish_model(builder: GraphBuilder, graph_name: str, inputs: list, outputs: list, doc: str) -> bytes:
    """Serialize with fixed producer fields and no timestamps, so equal weights give equal bytes."""
    graph = helper.make_graph(builder.nodes, graph_name, inputs, outputs, builder.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


class _Cursor:
    """Consumes the network's layers in input-to-output order, checking each one's kind."""

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self.layers = layers
        self.i = 0

    def take(self, *kinds: str) -> Layer:
        if self.i >= len(self.layers):
            raise DlibFormatError(f"network ended early; expected {kinds}")
        layer = self.layers[self.i]
        if layer.kind not in kinds:
            raise DlibFormatError(f"layer {self.i}: expected {kinds}, found {layer.kind!r}")
        self.i += 1
        return layer


def expected_wrappers() -> str:
    """The output-to-input wrapper skeleton of the known architecture ("L" layer, "t" tag/skip)."""
    ares = "LLLLLLLt"  # relu, add_prev, affine, con, relu, affine, con, tag1
    ares_down = "LLLttLLLLLt"  # relu, add_prev, avg_pool, skip1, tag2, affine, con, relu, affine, con, tag1
    parts = ["LL"]  # fc_no_bias, avg_pool_everything
    for _filters, down, blocks in reversed(_LEVELS):
        parts.append(ares * (blocks - 1 if down else blocks) + (ares_down if down else ""))
    parts.append("LLLL")  # max_pool, relu, affine, con
    return "".join(parts)


def _pad_to(builder: GraphBuilder, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
    """dlib's add_prev adds mismatched tensors as if the smaller were zero-extended at the end."""
    if shape == target:
        return x
    extra = [t - s for s, t in zip(shape, target, strict=True)]
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return builder.node("Pad", [x, builder.const("pads", pads)], mode="constant")


def _add_prev(
    builder: GraphBuilder, a: str, a_shape: tuple[int, int, int], b: str, b_shape: tuple[int, int, int]
) -> tuple[str, tuple[int, int, int]]:
    shape = tuple(max(p, q) for p, q in zip(a_shape, b_shape, strict=True))
    out = builder.node("Add", [_pad_to(builder, a, a_shape, shape), _pad_to(builder, b, b_shape, shape)])
    return out, shape  # type: ignore[return-value]


def _residual(
    builder: GraphBuilder, cur: _Cursor, x: str, shape: tuple[int, int, int], filters: int, down: bool
) -> tuple[str, tuple[int, int, int]]:
    c1 = cur.take("con_4")
    h = builder.conv(x, c1, cur.take("affine_"))
    cur.take("relu_")
    h = builder.relu(h)
    stride = c1.params["stride"][0]
    size = conv_output_size(shape[1], c1.params["weight"].shape[2], stride, c1.params["padding"][0])
    if (stride == 2) != down or c1.params["weight"].shape[0] != filters:
        raise DlibFormatError(f"residual block at layer {cur.i} does not match the architecture")
    c2 = cur.take("con_4")
    h = builder.conv(h, c2, cur.take("affine_"))
    h_shape = (filters, size, size)
    if down:
        pool = cur.take("avg_pool_2")
        k, s, p = pool.params["size"][0], pool.params["stride"][0], pool.params["padding"][0]
        shortcut = builder.node("AveragePool", [x], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        pooled = pool_output_size(shape[1], k, s, p)
        short_shape = (shape[0], pooled, pooled)
    else:
        shortcut, short_shape = x, shape
    cur.take("add_prev_")
    out, out_shape = _add_prev(builder, shortcut, short_shape, h, h_shape)
    cur.take("relu_")
    return builder.relu(out), out_shape


def build_graph(net: Network) -> bytes:
    """ONNX bytes for the parsed ResNet network."""
    if net.loss.get("kind") != "loss_metric_2" or net.input.get("kind") != "input_rgb_image_sized":
        raise DlibFormatError("not dlib's face-recognition ResNet")
    skeleton = "".join("L" if w == "layer" else "t" for w in net.wrappers)
    if skeleton != expected_wrappers():
        raise DlibFormatError("the network's layer skeleton is not the known face-recognition ResNet")
    size = net.input["rows"]
    builder = GraphBuilder()
    cur = _Cursor(net.layers)
    stem = cur.take("con_4")
    x = builder.conv("input", stem, cur.take("affine_"))
    cur.take("relu_")
    x = builder.relu(x)
    size = conv_output_size(size, stem.params["weight"].shape[2], stem.params["stride"][0], 0)
    pool = cur.take("max_pool_2")
    k, s, p = pool.params["size"][0], pool.params["stride"][0], pool.params["padding"][0]
    x = builder.node("MaxPool", [x], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    shape = (stem.params["weight"].shape[0], pool_output_size(size, k, s, p), pool_output_size(size, k, s, p))
    for filters, down, blocks in _LEVELS:
        for index in range(blocks):
            x, shape = _residual(builder, cur, x, shape, filters, down and index == 0)
    gap = cur.take("avg_pool_2")
    if gap.params["size"] != (0, 0):
        raise DlibFormatError("expected a global average pool before the fully connected layer")
    x = builder.node("GlobalAveragePool", [x])
    x = builder.node("Flatten", [x], axis=1)
    fc = cur.take("fc_2")
    if fc.params["bias"] is not None or fc.params["weight"].shape != (shape[0], DESCRIPTOR_SIZE):
        raise DlibFormatError("unexpected final fully connected layer")
    out = builder.node("MatMul", [x, builder.const("fc", fc.params["weight"].astype(np.float32))])
    builder.nodes.append(helper.make_node("Identity", [out], ["descriptor"], name="descriptor"))
    if cur.i != len(net.layers):
        raise DlibFormatError("unconsumed layers after the fully connected layer")
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size_in(net), size_in(net)])]
    outputs = [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", DESCRIPTOR_SIZE])]
    doc = "dlib face-recognition ResNet v1: (pixel - mean)/256 RGB 150x150 chip -> 128-D descriptor"
    return finish_model(builder, "dlib_resnet_v1", inputs, outputs, doc)


def size_in(net: Network) -> int:
    return int(net.input["rows"])


def convert(dat_bytes: bytes) -> tuple[bytes, Network]:
    """Convert ``dlib_face_recognition_resnet_model_v1.dat`` bytes; returns (onnx bytes, parsed net)."""
    net = read_network(dat_bytes)
    return build_graph(net), net
