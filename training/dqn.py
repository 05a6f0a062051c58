"""DQN with gamma = 0 for link adaptation (Mnih et al. 2015, reduced to a constrained contextual bandit).

Why gamma = 0: an MCS choice changes only its own transport block's outcome. The HARQ-ACK arrives
a few slots later (delayed feedback), but the channel, the CSI and the scheduler do not depend on
the MCS chosen, so the best action in a state is the one with the best expected outcome of its own
transport block. The network (`networks.PricedQ`) regresses both parts of the action taken's
outcome: V, the block's normalised bits delivered over the transmissions its HARQ took (known when
its HARQ ends, after retransmissions: the replay buffer holds the transition until then and trains
only on labelled ones), and P(NACK) of its first transmission (binary cross-entropy on the ACK).
V's Huber loss weights each block by its transmissions n_tx, so that V converges to the renewal
ratio E[delivered bits] / E[n_tx] (the weighted mean of D/n_tx with weights n_tx), the goodput per
transmission, not to E[D / n_tx], which counts a block lost after four attempts like one that took
one and over-rates aggressive MCS. Measured on generalist teachers (20k steps, 1000 slots, seed
1001, throughput mode vs best-tuned OLLA), uma-low-pedestrian / rma-low-vehicular: first-tx
objective +5.0% / +4.1%, E[D / n_tx] +0.0% / -1.3% (at 40-43% first-tx BLER), the renewal ratio
+1.4% / +2.7%; uma-mid-highway: -8.7%, -0.4%, -2.5%. No bootstrap term, no target network. It acts
by the Lagrangian score V - price * P with each UE's price from the observation, so the operator's
BLER target (drawn per UE and episode from `DqnConfig.bler_targets`) shapes the states it visits
while the two heads stay the same for every target.

Reads top to bottom: config -> environment -> network -> replay buffer -> loop
(epsilon-greedy act, store, regress) -> log.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ranpd.simulator.env import LinkAdaptationEnv
from ranpd.simulator.observation import OBS_DIM
from ranpd.simulator.scenarios import Scenario
from ranpd.training.config import DqnConfig
from ranpd.training.networks import N_ACTIONS, PricedQ


class ReplayBuffer:
    """Ring buffer of (observation, action, offered bits, nack, value, transmissions) transitions,
    uniformly sampled among those whose value is known. A transition is added at its first
    transmission with its value unknown (NaN); `label` sets the value and the transmissions when the
    block's HARQ ends, found by the env's decision number (`pending`: number -> row, cleared at
    each env reset, where numbers restart)."""

    def __init__(self, capacity: int, obs_dim: int = OBS_DIM):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.offered = np.zeros(capacity, np.float32)
        self.nack = np.zeros(capacity, np.float32)
        self.value = np.full(capacity, np.nan, np.float32)
        self.transmissions = np.ones(capacity, np.float32)
        self.decision = np.full(capacity, -1, np.int64)
        self.pending: dict[int, int] = {}
        self.capacity, self.size, self._next = capacity, 0, 0

    def add(self, obs: np.ndarray, action: np.ndarray, offered: np.ndarray, nack: np.ndarray,
            decision: np.ndarray) -> None:
        idx = (self._next + np.arange(len(obs))) % self.capacity
        self.obs[idx], self.action[idx], self.offered[idx], self.nack[idx] = obs, action, offered, nack
        self.value[idx], self.decision[idx] = np.nan, decision
        self.pending.update(zip(decision.tolist(), idx.tolist()))
        self._next = int((self._next + len(obs)) % self.capacity)
        self.size = min(self.size + len(obs), self.capacity)

    def label(self, decision: np.ndarray, delivered: np.ndarray, transmissions: np.ndarray) -> None:
        """V = offered * delivered / transmissions for the transitions of these ended TBs (those
        overwritten meanwhile, or from before the last reset, are skipped)."""
        found = [(row, k) for k, d in enumerate(decision.tolist())
                 if (row := self.pending.pop(d, -1)) >= 0 and self.decision[row] == d]
        if found:
            rows, k = (np.array(c) for c in zip(*found))
            self.value[rows] = self.offered[rows] * delivered[k] / transmissions[k]
            self.transmissions[rows] = transmissions[k]

    def sample(self, batch_size: int, rng: np.random.Generator):
        """Up to `batch_size` labelled transitions as tensors (None while none is labelled)."""
        idx = rng.integers(0, self.size, size=2 * batch_size)
        idx = idx[~np.isnan(self.value[idx])][:batch_size]
        if idx.size == 0:
            return None
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.action[idx]),
                torch.from_numpy(self.value[idx]), torch.from_numpy(self.nack[idx]),
                torch.from_numpy(self.transmissions[idx]))


def bandit_loss(net: PricedQ, obs: torch.Tensor, action: torch.Tensor, value: torch.Tensor,
                nack: torch.Tensor, transmissions: torch.Tensor, huber_delta: float = 1.0) -> torch.Tensor:
    """Huber(V(s, a_taken), value) weighted by the transmissions + BCE(P(s, a_taken), nack): the
    gamma = 0 targets of both heads (module docstring)."""
    value_head, nack_logit = net.heads(obs)
    taken = action.unsqueeze(1)
    huber = F.huber_loss(value_head.gather(1, taken).squeeze(1), value, delta=huber_delta, reduction="none")
    return ((huber * transmissions).sum() / transmissions.sum()
            + F.binary_cross_entropy_with_logits(nack_logit.gather(1, taken).squeeze(1), nack))


def epsilon_at(step: int, cfg: DqnConfig) -> float:
    """Linear decay from eps_start to eps_end over eps_decay_fraction of the run."""
    horizon = max(1, int(cfg.eps_decay_fraction * cfg.env_steps))
    frac = min(1.0, step / horizon)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


@dataclass
class DqnResult:
    q_network: PricedQ
    log: list[dict] = field(default_factory=list)


def train_dqn(cfg: DqnConfig, scenarios: list[Scenario], seed: int, randomize: bool = False,
              desc: str = "dqn") -> DqnResult:
    """Train a priced Q-network on `scenarios` (fresh `randomized_scenario` draws instead if `randomize`)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = LinkAdaptationEnv(scenarios, n_ues=cfg.n_ues, episode_slots=cfg.episode_slots,
                            randomize=randomize, bler_targets=cfg.bler_targets)
    q_network = PricedQ(cfg.hidden)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.learning_rate)
    buffer = ReplayBuffer(cfg.buffer_size)

    obs, _ = env.reset(seed=seed)
    log: list[dict] = []
    losses, rewards = [], []
    for step in (bar := tqdm(range(cfg.env_steps), desc=desc, leave=False)):
        # act: epsilon-greedy per UE
        eps = epsilon_at(step, cfg)
        with torch.no_grad():
            action = q_network(torch.from_numpy(obs)).argmax(dim=1).numpy()
        explore = rng.random(len(action)) < eps
        action[explore] = rng.integers(0, N_ACTIONS, size=int(explore.sum()))

        # store one transition per UE whose action counted in this step
        next_obs, _, terminated, truncated, info = env.step(action)
        decided = info["reward_mask"]
        reward = info["ue_reward"][decided]
        buffer.add(obs[decided], action[decided], info["ue_offered"][decided],
                   (~info["ack"][decided]).astype(np.float32), info["decision"][decided])
        buffer.label(*info["harq_ended"])
        if decided.any():
            rewards.append(float(reward.mean()))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            buffer.pending.clear()          # the new episode numbers its decisions from 0 again

        # regress both heads on the outcomes known so far
        batch = buffer.sample(cfg.batch_size, rng) if step >= cfg.learning_starts and step % cfg.train_every == 0 \
            and buffer.size else None
        if batch is not None:
            loss = bandit_loss(q_network, *batch, cfg.huber_delta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())

        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.env_steps:
            row = {"step": step + 1, "epsilon": round(eps, 4), "buffer": buffer.size,
                   "mean_reward": float(np.mean(rewards)) if rewards else None,
                   "loss": float(np.mean(losses)) if losses else None}
            log.append(row)
            bar.set_postfix(reward=row["mean_reward"], loss=row["loss"], eps=row["epsilon"])
            losses, rewards = [], []
    env.close()
    q_network.eval()
    return DqnResult(q_network, log)
