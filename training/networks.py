"""The two model shapes: a large teacher MLP (Q-values) and a tiny student MLP (logits).

Both map an observation (`ranpd.simulator.observation`, OBS_DIM features) to one score per MCS
action (MAX_SUPPORTED_MCS_ACTIONS = 29); the environment and the policies clip the argmax to the
scenario's MCS table.
"""
from __future__ import annotations

import torch
from torch import nn

from ranpd.simulator.observation import OBS_DIM
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS

N_ACTIONS = MAX_SUPPORTED_MCS_ACTIONS
STUDENT_MAX_PARAMS = 4_096


def mlp(hidden: tuple[int, ...], in_dim: int = OBS_DIM, out_dim: int = N_ACTIONS) -> nn.Sequential:
    """Linear-ReLU stack: in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim (no output activation)."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(hidden: tuple[int, ...]) -> str:
    """'MLP 18-32-32-32-29 ReLU'."""
    return "MLP " + "-".join(str(w) for w in (OBS_DIM, *hidden, N_ACTIONS)) + " ReLU"


@torch.no_grad()
def scores(model: nn.Module, obs) -> "torch.Tensor":
    """Scores of a numpy/tensor batch of observations, as a numpy array (inference helper)."""
    return model(torch.as_tensor(obs, dtype=torch.float32)).numpy()
