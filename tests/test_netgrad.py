"""The numpy interpreter of the gender net: same outputs as onnxruntime, gradients that match finite differences."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")

import numpy as np
import onnx

from gimg import models
from gimg.netgrad import Net
from gimg.chipnet import onnx_session


@pytest.fixture(scope="module")
def net() -> Net:
    return Net(onnx.load(str(models.gender_onnx())))


def test_forward_matches_onnxruntime(net):
    batch = np.random.default_rng(1).normal(size=(5, 3, 32, 32)).astype(np.float32)
    ours, _ = net.forward(batch, "probabilities")
    theirs = onnx_session(models.gender_onnx(), "gender-v1").run(["probabilities"], {"images": batch})[0]
    assert np.abs(ours - theirs).max() < 1e-5


@pytest.mark.parametrize("weight", ["layer_19_weights", "layer_18_scale", "layer_12_weights", "layer_11_offset",
                                    "layer_4_weights", "layer_1_bias"])
def test_gradients_match_finite_differences(net, weight):
    rng = np.random.default_rng(2)
    batch = rng.normal(size=(3, 3, 32, 32))
    params = {name: value.astype(np.float64) for name, value in net.params.items()}
    direction = rng.normal(size=(3, 2))

    def loss(values):
        logits, tape = net.forward(batch, "logits", values)
        return float((logits * direction).sum() + 0.5 * (logits**2).sum()), logits, tape

    _, logits, tape = loss(params)
    gradient = net.backward(tape, direction + logits)[weight]
    for _ in range(3):
        index = tuple(int(rng.integers(0, size)) for size in params[weight].shape)
        step = 1e-6
        moved = dict(params)
        moved[weight] = params[weight].copy()
        moved[weight][index] += step
        above = loss(moved)[0]
        moved[weight][index] -= 2 * step
        below = loss(moved)[0]
        assert gradient[index] == pytest.approx((above - below) / (2 * step), rel=1e-4, abs=1e-6)


def test_export_writes_the_weights_back(net):
    changed = {**net.params, "layer_1_bias": net.params["layer_1_bias"] + np.float32(3.0)}
    exported = Net(net.export(changed))
    assert np.array_equal(exported.params["layer_1_bias"], changed["layer_1_bias"])
    assert np.array_equal(exported.params["layer_4_weights"], net.params["layer_4_weights"])


def test_an_operator_it_cannot_run_is_refused():
    node = onnx.helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    with pytest.raises(ValueError, match="MaxPool"):
        Net(onnx.helper.make_model(graph))
