"""A random-weight MLP of the student's shape, written as ONNX + model card with onnx.helper.

For tests and for benchmarking the serving path before a trained student is at hand: it has the
student's interface (input `obs` [N, OBS_DIM] float32, output `scores` [N, 29]) and cost, but its
decisions mean nothing. Its card says so (kind "student", name "synthetic-random-mlp").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ranpd.simulator.observation import OBS_DIM
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS
from ranpd.xapp.model_card import ActionTable, ModelCard, card_path_for, file_sha256

OPSET = 17


def mlp_onnx(hidden: tuple[int, ...] = (32, 32, 32), seed: int = 0,
             n_actions: int = MAX_SUPPORTED_MCS_ACTIONS) -> onnx.ModelProto:
    """Gemm-ReLU stack OBS_DIM -> hidden... -> n_actions with a dynamic batch axis."""
    rng = np.random.default_rng(seed)
    widths = (OBS_DIM, *hidden, n_actions)
    nodes, weights, x = [], [], "obs"
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        weights += [numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(w_in), (w_in, w_out)).astype(np.float32), f"W{i}"),
                    numpy_helper.from_array(rng.normal(0, 0.1, w_out).astype(np.float32), f"b{i}")]
        last = i == len(widths) - 2
        y = "scores" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [y if last else f"z{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [y]))
        x = y
    graph = helper.make_graph(
        nodes, "synthetic_student",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS_DIM])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_actions])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ranpd.xapp.synthetic")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_synthetic_model(path: str | Path, hidden: tuple[int, ...] = (32, 32, 32), seed: int = 0,
                          n_actions: int = MAX_SUPPORTED_MCS_ACTIONS) -> Path:
    """Write `path` (.onnx) and its card beside it; returns the ONNX path."""
    path = Path(path)
    model = mlp_onnx(hidden, seed, n_actions)
    onnx.save(model, str(path))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    ModelCard(name="synthetic-random-mlp", kind="student",
              action_table=ActionTable(mcs_table=2, mcs=list(range(n_actions))),
              architecture="MLP " + "-".join(map(str, (OBS_DIM, *hidden, n_actions))) + " ReLU (random weights)",
              params=params, onnx_opset=OPSET, bytes=path.stat().st_size,
              sha256=file_sha256(path)).save(card_path_for(path))
    return path


def write_constant_model(path: str | Path, action: int, n_actions: int = MAX_SUPPORTED_MCS_ACTIONS) -> Path:
    """A model whose scores ignore the observation and always rank `action` first: e.g. the top MCS
    whatever the channel, the deliberately bad model of the near-RT rollback test. Written with
    its card (name "constant-action-<action>") beside it; returns the ONNX path."""
    path = Path(path)
    bias = np.zeros(n_actions, np.float32)
    bias[action] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["obs", "W", "b"], ["scores"])], "constant_action",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS_DIM])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_actions])],
        [numpy_helper.from_array(np.zeros((OBS_DIM, n_actions), np.float32), "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ranpd.xapp.synthetic")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    ModelCard(name=f"constant-action-{action}", kind="student",
              action_table=ActionTable(mcs_table=2, mcs=list(range(n_actions))),
              architecture=f"constant: always action {action}", params=OBS_DIM * n_actions + n_actions,
              onnx_opset=OPSET, bytes=path.stat().st_size, sha256=file_sha256(path)).save(card_path_for(path))
    return path
