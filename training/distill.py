"""Policy distillation with DAgger: Q-value teachers -> one tiny student.

Loss (Rusu et al. 2016, "Policy Distillation", eq. 3, with the student's scores at the same
temperature: see `distillation_loss`): KL(softmax(Q_teacher / tau) || softmax(Q_student / tau)) with
tau = 0.01, which sharpens the teacher's Q-values into a near one-hot target while keeping the
ranking of close actions. Teacher and student are both priced networks (`networks.PricedQ`:
score = V - price * P); the teacher labels each state with its two heads once, and the loss
compares the scores at the state's own price and, for `price_resample` of the rows, at a price
drawn over the builder's range (or 0, throughput mode), so the student learns the
teacher's ranking at every operating point, not only the ones its rollouts visited.

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
from ranpd.simulator.observation import PRICE_MAX, PRICE_SHIFT
from ranpd.training.networks import N_ACTIONS, PRICE, PricedQ, priced_scores


def distillation_loss(student_scores: torch.Tensor, teacher_q: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(teacher_q / tau) || softmax(student_scores / tau)), averaged over the batch.

    Both sides at the same temperature. Rusu et al. give the student raw logits, which is right for a
    student whose outputs mean nothing but their ranking; a priced student's scores are expected
    normalised bits (in [0, 1], near-ties 0.01 apart) that the dual loop prices, so softmax(raw
    scores) is nearly uniform and matching a tau = 0.01 target needed scores ~100x too large, which
    fought every other constraint (the shipped run's students agreed with their teacher's argmax on
    44-51% of their training states, KL stuck at 1.75-1.97). Measured offline on 203k generalist
    rollout states (student 32-32-24, 4 epochs; relative regret = teacher-score loss of the student's
    argmax, own price / resampled prices): raw logits 5.1% / 8.0%, scaled 1.4% / 2.2%."""
    target_log_p = F.log_softmax(teacher_q / tau, dim=1)
    return F.kl_div(F.log_softmax(student_scores / tau, dim=1), target_log_p,
                    reduction="batchmean", log_target=True)


def heads_loss(student: PricedQ, states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared error of the student's heads (V and P(NACK)) against the teacher's, summed over the
    MCS and averaged over the batch. The KL alone constrains only the score's ranking at the prices
    it is computed at: a student can rank well there with heads that are not bits and probabilities
    (measured when the value head was the TB size B: B of -7.5 at MCS 0), and its argmax then moves
    the wrong way with the price, so the dual loop cannot hold targets. Matching the heads makes every price's score the teacher's.
    That B of -7.5 came from the KL on unscaled student scores; with both sides at tau the KL at
    resampled prices ranks well at every price, and this term is off by default
    (`DistillConfig.heads_weight`: measured there)."""
    value, nack_logit = student.heads(states)
    predicted = torch.cat([value, torch.sigmoid(nack_logit)], dim=1)
    return F.mse_loss(predicted, labels, reduction="sum") / len(states)


@torch.no_grad()
def teacher_labels(teacher: PricedQ, states: torch.Tensor) -> torch.Tensor:
    """The teacher's heads per state: [n, 2 * N_ACTIONS] = (V, P(NACK))."""
    value, nack_logit = teacher.heads(states)
    return torch.cat([value, torch.sigmoid(nack_logit)], dim=1)


RESAMPLED_PRICE_MIN = -0.5      # prices below it are rare in closed loop (targets far above the optimum)


def resample_prices(states: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A copy of `states` whose price column is redrawn for `fraction` of the rows, uniformly on the
    builder's dual scale log(price + PRICE_SHIFT) over [RESAMPLED_PRICE_MIN, PRICE_MAX], or 0
    (throughput mode) for one in eight of them."""
    n = len(states)
    redraw = torch.rand(n, generator=generator) < fraction
    low, high = np.log(RESAMPLED_PRICE_MIN + PRICE_SHIFT), np.log(PRICE_MAX + PRICE_SHIFT)
    dual = torch.empty(n).uniform_(float(low), float(high), generator=generator)
    price = torch.where(torch.rand(n, generator=generator) < 0.125, 0.0, dual.exp() - PRICE_SHIFT)
    out = states.clone()
    out[:, PRICE] = torch.where(redraw, price, states[:, PRICE])
    return out


@dataclass
class DistillGroup:
    """Scenarios whose states one teacher labels."""

    name: str
    scenarios: list[Scenario]
    teacher: PricedQ
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
            batch = resample_prices(states[idx], cfg.price_resample, generator)
            teacher_q = priced_scores(targets[idx, :N_ACTIONS], targets[idx, N_ACTIONS:], batch[:, PRICE:])
            loss = (distillation_loss(student(batch), teacher_q, cfg.tau)
                    + cfg.heads_weight * heads_loss(student, batch, targets[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    student.eval()
    return float(np.mean(losses)) if losses else float("nan")      # nan: nothing to fit yet


@dataclass
class DistillResult:
    student: PricedQ
    holdout_states: np.ndarray             # states from a final student rollout, never trained on
    log: list[dict] = field(default_factory=list)
    obs_range: dict[str, list[float]] | None = None    # per-feature min/max of the training states


def distill(groups: list[DistillGroup], cfg: DistillConfig, seed: int, holdout: int = 4096,
            desc: str = "distil") -> DistillResult:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    envs = [LinkAdaptationEnv(g.scenarios, n_ues=cfg.n_ues, episode_slots=cfg.episode_slots,
                              randomize=g.randomize, bler_targets=cfg.bler_targets) for g in groups]
    student = PricedQ(cfg.hidden)
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
                targets.append(teacher_labels(group.teacher, obs_t))   # the group's teacher labels every state
            actor_rewards[group.name] = reward
        all_states, all_targets = torch.cat(states), torch.cat(targets)
        loss = fit(student, optimizer, all_states, all_targets, cfg, generator)
        with torch.no_grad():
            teacher_q = priced_scores(all_targets[:, :N_ACTIONS], all_targets[:, N_ACTIONS:], all_states[:, PRICE:])
            agreement = float((student(all_states).argmax(1) == teacher_q.argmax(1)).float().mean())
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
    obs_range = {"low": all_states.min(0).values.tolist(), "high": all_states.max(0).values.tolist()}
    return DistillResult(student, held, log, obs_range)
