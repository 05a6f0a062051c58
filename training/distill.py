"""Policy distillation with DAgger: Q-value teachers -> one tiny student.

Loss (Rusu et al. 2016, "Policy Distillation", eq. 3): KL(softmax(Q_teacher / tau) || softmax(z_student))
with tau = 0.01, which sharpens the teacher's Q-values into a near one-hot target while keeping
the ranking of close actions.

Data (Ross et al. 2011, DAgger): the HARQ-history features of the observation depend on the
policy's own past MCS choices, so a student trained only on teacher rollouts meets states it has
never seen. Round 0 rolls out the teachers; each DAgger round lets the student act, the teachers
label the states it visits, and the student is retrained on the aggregated dataset.

Single-policy distillation is one group (all scenarios, the generalist teacher). Multi-policy
distillation has one group per scenario family, each labelled by that family's specialist; the
student never sees a scenario id.

Reads top to bottom: loss -> rollouts -> fit -> distil (rounds).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ranpd.simulator.env import LinkAdaptationEnv
from ranpd.simulator.scenarios import Scenario
from ranpd.training.config import DistillConfig
from ranpd.training.networks import mlp


def distillation_loss(student_logits: torch.Tensor, teacher_q: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(teacher_q / tau) || softmax(student_logits)), averaged over the batch."""
    target_log_p = F.log_softmax(teacher_q / tau, dim=1)
    return F.kl_div(F.log_softmax(student_logits, dim=1), target_log_p,
                    reduction="batchmean", log_target=True)


@dataclass
class DistillGroup:
    """Scenarios whose states one teacher labels."""

    name: str
    scenarios: list[Scenario]
    teacher: nn.Module
    randomize: bool = False


@torch.no_grad()
def rollout_states(env: LinkAdaptationEnv, actor: nn.Module, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """Let `actor` (greedy) drive `env` for `steps`; return the states of UEs that decided, and the
    mean reward the actor earned."""
    obs, info = env.reset(seed=seed)
    states, rewards = [], []
    for _ in range(steps):
        action = actor(torch.from_numpy(obs)).argmax(dim=1).numpy()
        states.append(obs[info["decide_mask"]])
        obs, _, terminated, truncated, info = env.step(action)
        if info["reward_mask"].any():
            rewards.append(float(info["ue_reward"][info["reward_mask"]].mean()))
        if terminated or truncated:
            obs, info = env.reset()
    return np.concatenate(states), float(np.mean(rewards)) if rewards else float("nan")


def fit(student: nn.Module, optimizer: torch.optim.Optimizer, states: torch.Tensor, targets: torch.Tensor,
        cfg: DistillConfig, generator: torch.Generator) -> float:
    """`cfg.epochs` passes of minibatch KL descent over the aggregated dataset; mean loss of the last."""
    student.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(states), generator=generator)
        losses = []
        for start in range(0, len(states), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss = distillation_loss(student(states[idx]), targets[idx], cfg.tau)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    student.eval()
    return float(np.mean(losses)) if losses else float("nan")      # nan: nothing to fit yet


@dataclass
class DistillResult:
    student: nn.Module
    holdout_states: np.ndarray             # states from a final student rollout, never trained on
    log: list[dict] = field(default_factory=list)


def distill(groups: list[DistillGroup], cfg: DistillConfig, seed: int, holdout: int = 4096,
            desc: str = "distil") -> DistillResult:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    envs = [LinkAdaptationEnv(g.scenarios, n_ues=cfg.n_ues, episode_slots=cfg.episode_slots,
                              randomize=g.randomize) for g in groups]
    student = mlp(cfg.hidden)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.learning_rate)
    states: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    log: list[dict] = []

    rounds = [("teacher", cfg.teacher_rollout_steps)] + [("student", cfg.dagger_steps)] * cfg.dagger_rounds
    for round_index, (who, steps) in enumerate(tqdm(rounds, desc=desc, leave=False)):
        actor_rewards = {}
        for g_index, (group, env) in enumerate(zip(groups, envs)):
            actor = group.teacher if who == "teacher" else student
            obs, reward = rollout_states(env, actor, steps, seed=seed + 1000 * round_index + g_index)
            with torch.no_grad():
                obs_t = torch.from_numpy(obs)
                states.append(obs_t)
                targets.append(group.teacher(obs_t))      # the group's teacher labels every state
            actor_rewards[group.name] = reward
        all_states, all_targets = torch.cat(states), torch.cat(targets)
        loss = fit(student, optimizer, all_states, all_targets, cfg, generator)
        with torch.no_grad():
            agreement = float((student(all_states).argmax(1) == all_targets.argmax(1)).float().mean())
        log.append({"round": round_index, "actor": who, "dataset": len(all_states), "kl": loss,
                    "train_argmax_agreement": agreement, "actor_reward": actor_rewards})

    # held-out states: a fresh student rollout on new seeds (parity and int8 agreement use them)
    held_out = [rollout_states(env, student, max(1, cfg.dagger_steps // 2), seed=seed + 99_991 + i)[0]
                for i, env in enumerate(envs)]
    for env in envs:
        env.close()
    rng = np.random.default_rng(seed)
    held = np.concatenate(held_out)
    held = held[rng.permutation(len(held))[:holdout]]
    return DistillResult(student, held, log)
