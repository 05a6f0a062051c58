"""The policy network: a priced two-head MLP, for teachers (large) and students (tiny) alike.

An MCS choice is a constrained contextual bandit: maximise the expected delivered bits subject to
the operator's first-transmission BLER target. Its Lagrangian scores MCS `a` in state `s` as

    score(s, a) = B(s, a) * (1 - P(s, a)) - price * P(s, a)

with B the bits the transport block would carry, normalised by the TBS of the table's top MCS on
the same PRBs (known at transmission: TBS capped by the buffer), P the probability of a NACK, and
`price` the constraint's multiplier, which the observation builder holds per UE by dual ascent on
its HARQ outcomes (the observation's last feature, `nack_price`; 0 in throughput mode, where the
score is the expected delivered bits). The MLP sees every other feature and outputs both heads (B
and the logit of P, one of each per MCS); the price enters only in the last step, so one network
serves every BLER target. Splitting the expected bits into a deterministic size B and a Bernoulli
P regresses B without decoding noise. Exported to ONNX as one graph: observations in, scores out.
"""
from __future__ import annotations

import torch
from torch import nn

from ranpd.simulator.observation import FEATURES, OBS_DIM
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS

N_ACTIONS = MAX_SUPPORTED_MCS_ACTIONS
STUDENT_MAX_PARAMS = 4_096
PRICE = FEATURES.index("nack_price")
assert PRICE == OBS_DIM - 1, "the price must be the observation's last feature"
MLP_INPUTS = OBS_DIM - 1


def mlp(hidden: tuple[int, ...], in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack: in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim (no output activation)."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class PricedQ(nn.Module):
    """score = B (1 - P) - price * P with P = sigmoid(nack_logit), (B, nack_logit) = MLP(features but the price)."""

    def __init__(self, hidden: tuple[int, ...]):
        super().__init__()
        self.hidden = tuple(hidden)
        self.body = mlp(self.hidden, MLP_INPUTS, 2 * N_ACTIONS)

    def heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B [n, 29], NACK logit [n, 29]) for observations [n, OBS_DIM]."""
        out = self.body(obs[:, :MLP_INPUTS])
        return out[:, :N_ACTIONS], out[:, N_ACTIONS:]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        offered, nack_logit = self.heads(obs)
        return priced_scores(offered, torch.sigmoid(nack_logit), obs[:, PRICE:])


def priced_scores(offered: torch.Tensor, nack_p: torch.Tensor, price: torch.Tensor) -> torch.Tensor:
    """The Lagrangian score from the heads' values (price [n, 1])."""
    return offered * (1.0 - nack_p) - price * nack_p


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(hidden: tuple[int, ...]) -> str:
    """'MLP 18-32-32-24-2x29 ReLU, score = B(1-P) - price·P'."""
    return ("MLP " + "-".join(str(w) for w in (MLP_INPUTS, *hidden)) + f"-2x{N_ACTIONS} ReLU, "
            "score = B(1-P) - price·P")


@torch.no_grad()
def scores(model: nn.Module, obs) -> "torch.Tensor":
    """Scores of a numpy/tensor batch of observations, as a numpy array (inference helper)."""
    return model(torch.as_tensor(obs, dtype=torch.float32)).numpy()
