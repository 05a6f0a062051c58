"""The policy network: a priced two-head MLP, for teachers (large) and students (tiny) alike.

An MCS choice is a constrained contextual bandit: maximise what reaches the user subject to the
operator's first-transmission BLER target. Its Lagrangian scores MCS `a` in state `s` as

    score(s, a) = V(s, a) - price * P(s, a)

with P the probability of a NACK on the first transmission and V the value of sending the
transport block: the bits it delivers per transmission its HARQ takes, V = E[B * delivered] / E[n_tx],
where B is the bits the block carries normalised by the TBS of the table's top MCS on the same PRBs,
n_tx the transmissions its HARQ used (chase combining, up to the scenario's maximum) and `delivered`
0 when it was lost after the last one (RLC then sends its bits again). By the renewal-reward theorem
that ratio is a UE's goodput per scheduled transmission (training/dqn.py regresses it). A first
transmission that fails but is recovered by one retransmission is worth B/2, not 0 as the
first-transmission objective B * (1 - P) counts it. Measured on the previous shipped student, which
used that objective: it ran 20% first-tx BLER in throughput mode where best-tuned OLLA ran 48-58% in
the mid-band mobility built-ins, and lost 2.5-4.2% to it there (its report, 2026-12-07).

`price` is the constraint's multiplier, which the observation builder holds per UE by dual ascent on
its HARQ outcomes (the observation's last feature, `nack_price`; 0 in throughput mode, where the
score is V). The MLP sees every other feature and outputs both heads (V and the logit of P, one of
each per MCS); the price enters only in the last step, so one network serves every BLER target.
Exported to ONNX as one graph: observations in, scores out.
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
    """score = V - price * P with P = sigmoid(nack_logit), (V, nack_logit) = MLP(features but the price)."""

    def __init__(self, hidden: tuple[int, ...]):
        super().__init__()
        self.hidden = tuple(hidden)
        self.body = mlp(self.hidden, MLP_INPUTS, 2 * N_ACTIONS)

    def heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(V [n, 29], NACK logit [n, 29]) for observations [n, OBS_DIM]."""
        out = self.body(obs[:, :MLP_INPUTS])
        return out[:, :N_ACTIONS], out[:, N_ACTIONS:]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        value, nack_logit = self.heads(obs)
        return priced_scores(value, torch.sigmoid(nack_logit), obs[:, PRICE:])


def priced_scores(value: torch.Tensor, nack_p: torch.Tensor, price: torch.Tensor) -> torch.Tensor:
    """The Lagrangian score from the heads' values (price [n, 1])."""
    return value - price * nack_p


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(hidden: tuple[int, ...]) -> str:
    """'MLP 18-32-32-24-2x29 ReLU, score = V - price·P'."""
    return ("MLP " + "-".join(str(w) for w in (MLP_INPUTS, *hidden)) + f"-2x{N_ACTIONS} ReLU, "
            "score = V - price·P")


@torch.no_grad()
def scores(model: nn.Module, obs) -> "torch.Tensor":
    """Scores of a numpy/tensor batch of observations, as a numpy array (inference helper)."""
    return model(torch.as_tensor(obs, dtype=torch.float32)).numpy()
