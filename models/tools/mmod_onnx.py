"""dlib's CNN face detector (``mmod_human_face_detector``) as an ONNX graph.

The network is fully convolutional: three 5x5 stride-2 convolutions (the "downsampler"), three 5x5
stride-1 ones and a final 9x9 one-filter convolution, batch norm folded into each convolution. Its
input is the tiled image pyramid that :mod:`models.pyramid` builds; its output is the detection score
map for that tiled image (dynamic height and width). Build-time only: needs the ``onnx`` package.
"""

from __future__ import annotations

from onnx import TensorProto, helper

from models.tools.dlib_format import DlibFormatError, Network, read_network
from models.tools.resnet_onnx import GraphBuilder, finish_model


def build_graph(net: Network) -> bytes:
    if net.loss.get("kind") != "loss_mmod_" or net.input.get("kind") != "input_rgb_image_pyramid":
        raise DlibFormatError("not dlib's mmod CNN face detector")
    if net.loss.get("use_bounding_box_regression"):
        raise DlibFormatError("bounding-box regression detectors are not supported")
    if any(w != "layer" for w in net.wrappers):
        raise DlibFormatError("the detector has no tag/skip layers")
    builder = GraphBuilder()
    layers = list(net.layers)
    x = "input"
    i = 0
    while i < len(layers):
        conv = layers[i]
        if conv.kind != "con_4":
            raise DlibFormatError(f"layer {i}: expected a convolution, found {conv.kind!r}")
        norm = layers[i + 1] if i + 1 < len(layers) and layers[i + 1].kind in ("bn_con2", "affine_") else None
        x = builder.conv(x, conv, norm)
        i += 2 if norm is not None else 1
        if i < len(layers) and layers[i].kind == "relu_":
            x = builder.relu(x)
            i += 1
    if layers[-1].kind != "con_4" or layers[-1].params["weight"].shape[0] != 1:
        raise DlibFormatError("expected a single-filter convolution as the score layer")
    builder.nodes.append(helper.make_node("Identity", [x], ["scores"], name="scores"))
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 1, "OH", "OW"])]
    doc = "dlib mmod CNN face detector: tiled (pixel - mean)/256 RGB pyramid -> detection score map"
    return finish_model(builder, "dlib_mmod_face_detector", inputs, outputs, doc)


def convert(dat_bytes: bytes) -> tuple[bytes, Network]:
    """Convert ``mmod_human_face_detector.dat`` bytes; returns (onnx bytes, parsed net)."""
    net = read_network(dat_bytes)
    return build_graph(net), net
