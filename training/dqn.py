"""DQN with gamma = 0 for link adaptation (Mnih et al. 2015, reduced to a contextual bandit).

Why gamma = 0: an MCS choice changes only its own transport block's outcome. The HARQ-ACK arrives
a few slots later (delayed feedback), but the channel, the CSI and the scheduler do not depend on
the MCS chosen, so the best action in a state is the one with the highest expected immediate
reward: delivered bits normalised by the TBS at the table's top MCS. The Q-network therefore
regresses that reward per action, with no bootstrap term and no target network. The environment
reports, per step, which UEs' actions counted (`reward_mask`) and their rewards (`ue_reward`);
each such UE gives one transition (observation, action, reward). An optional NACK penalty
(`DqnConfig.nack_penalty`) turns the reward into r - lambda * (1 - ack): a BLER-aware operating point.

Reads top to bottom: config -> environment -> network -> replay buffer -> loop
(epsilon-greedy act, store, regress) -> log.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ranpd.simulator.env import LinkAdaptationEnv
from ranpd.simulator.observation import OBS_DIM
from ranpd.simulator.scenarios import Scenario
from ranpd.training.config import DqnConfig
from ranpd.training.networks import N_ACTIONS, mlp


class ReplayBuffer:
    """Ring buffer of (observation, action, reward) transitions, uniformly sampled."""

    def __init__(self, capacity: int, obs_dim: int = OBS_DIM):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.capacity, self.size, self._next = capacity, 0, 0

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray) -> None:
        idx = (self._next + np.arange(len(obs))) % self.capacity
        self.obs[idx], self.action[idx], self.reward[idx] = obs, action, reward
        self._next = int((self._next + len(obs)) % self.capacity)
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator):
        idx = rng.integers(0, self.size, size=batch_size)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.action[idx]),
                torch.from_numpy(self.reward[idx]))


def bandit_q_loss(q: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                  huber_delta: float = 1.0) -> torch.Tensor:
    """Huber loss between Q(s, a_taken) and the observed reward (the gamma = 0 TD target)."""
    q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
    return F.huber_loss(q_taken, reward, delta=huber_delta)


def penalised_reward(reward: np.ndarray, ack: np.ndarray, nack_penalty: float) -> np.ndarray:
    """Lagrangian relaxation of a first-transmission BLER constraint: r - lambda * (1 - ack).

    With gamma = 0 the greedy action then maximises E[bits] - lambda * P(NACK); lambda = 0 returns
    `reward` itself (the throughput-optimal target)."""
    if nack_penalty == 0.0:
        return reward
    return (reward - nack_penalty * (~ack.astype(bool))).astype(np.float32)


def epsilon_at(step: int, cfg: DqnConfig) -> float:
    """Linear decay from eps_start to eps_end over eps_decay_fraction of the run."""
    horizon = max(1, int(cfg.eps_decay_fraction * cfg.env_steps))
    frac = min(1.0, step / horizon)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


@dataclass
class DqnResult:
    q_network: nn.Module
    log: list[dict] = field(default_factory=list)
    snapshots: dict[int, nn.Module] = field(default_factory=dict)   # env step -> Q-network copy


def train_dqn(cfg: DqnConfig, scenarios: list[Scenario], seed: int, randomize: bool = False,
              desc: str = "dqn", snapshot_at: tuple[int, ...] = ()) -> DqnResult:
    """Train a Q-network on `scenarios` (domain randomisation instead if `randomize`); keep copies
    of the network after the env steps in `snapshot_at` (for learning curves)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = LinkAdaptationEnv(scenarios, n_ues=cfg.n_ues, episode_slots=cfg.episode_slots,
                            randomize=randomize)
    q_network = mlp(cfg.hidden)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.learning_rate)
    buffer = ReplayBuffer(cfg.buffer_size)

    obs, _ = env.reset(seed=seed)
    log: list[dict] = []
    snapshots: dict[int, nn.Module] = {}
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
        target = penalised_reward(info["ue_reward"][decided], info["ack"][decided], cfg.nack_penalty)
        buffer.add(obs[decided], action[decided], target)
        if decided.any():
            rewards.append(float(target.mean()))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        # regress Q(s, a) on the reward
        if step >= cfg.learning_starts and step % cfg.train_every == 0 and buffer.size:
            batch_obs, batch_action, batch_reward = buffer.sample(cfg.batch_size, rng)
            loss = bandit_q_loss(q_network(batch_obs), batch_action, batch_reward, cfg.huber_delta)
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
        if step + 1 in snapshot_at:
            snapshots[step + 1] = copy.deepcopy(q_network).eval()
    env.close()
    q_network.eval()
    return DqnResult(q_network, log, snapshots)
