"""DQN with gamma = 0 for link adaptation (Mnih et al. 2015, reduced to a constrained contextual bandit).

Why gamma = 0: an MCS choice changes only its own transport block's outcome. The HARQ-ACK arrives
a few slots later (delayed feedback), but the channel, the CSI and the scheduler do not depend on
the MCS chosen, so the best action in a state is the one with the best expected immediate outcome.
The network (`networks.PricedQ`) regresses both parts of the action taken's outcome: B, the bits
its transport block carried normalised by the TBS at the table's top MCS (Huber loss; known at
transmission, no decoding noise), and P(NACK) (binary cross-entropy on the ACK); no bootstrap
term, no target network. It acts by the Lagrangian score B (1 - P) - price * P (the expected
delivered bits minus the priced NACKs) with each UE's price from the observation, so the operator's BLER
target (drawn per UE and episode from `DqnConfig.bler_targets`) shapes the states it visits while
the two heads stay the same for every target.

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
    """Ring buffer of (observation, action, offered bits, nack) transitions, uniformly sampled."""

    def __init__(self, capacity: int, obs_dim: int = OBS_DIM):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.offered = np.zeros(capacity, np.float32)
        self.nack = np.zeros(capacity, np.float32)
        self.capacity, self.size, self._next = capacity, 0, 0

    def add(self, obs: np.ndarray, action: np.ndarray, offered: np.ndarray, nack: np.ndarray) -> None:
        idx = (self._next + np.arange(len(obs))) % self.capacity
        self.obs[idx], self.action[idx], self.offered[idx], self.nack[idx] = obs, action, offered, nack
        self._next = int((self._next + len(obs)) % self.capacity)
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator):
        idx = rng.integers(0, self.size, size=batch_size)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.action[idx]),
                torch.from_numpy(self.offered[idx]), torch.from_numpy(self.nack[idx]))


def bandit_loss(net: PricedQ, obs: torch.Tensor, action: torch.Tensor, offered: torch.Tensor,
                nack: torch.Tensor, huber_delta: float = 1.0) -> torch.Tensor:
    """Huber(B(s, a_taken), offered) + BCE(P(s, a_taken), nack): the gamma = 0 targets of both heads."""
    offered_head, nack_logit = net.heads(obs)
    taken = action.unsqueeze(1)
    return (F.huber_loss(offered_head.gather(1, taken).squeeze(1), offered, delta=huber_delta)
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
                   (~info["ack"][decided]).astype(np.float32))
        if decided.any():
            rewards.append(float(reward.mean()))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        # regress Q(s, a) on the reward
        if step >= cfg.learning_starts and step % cfg.train_every == 0 and buffer.size:
            loss = bandit_loss(q_network, *buffer.sample(cfg.batch_size, rng), cfg.huber_delta)
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
