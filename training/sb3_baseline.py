"""Stable-Baselines3 PPO or DQN on the per-UE view, evaluated in closed loop against OLLA at 10%.

    python3 -m ranpd.training.sb3_baseline --algo ppo --steps 100000 --scenario uma-mid-pedestrian

A baseline for researchers, not the product's teachers (training/dqn.py): SB3 trains on
`ranpd/LinkAdaptationUE-v0` as any single-agent env, maximising the env's reward (the bits each
first transmission delivers) with nothing for the BLER target but the price in the observation
(held at 10%). gamma = 0: link adaptation is a contextual bandit, and the view's consecutive steps
are different UEs' decisions. Evaluation reuses training/evaluate.py: SB3's greedy action (DQN: the
argmax of Q; PPO: the most likely action) scores observations inside an `ObservationPolicy`, run
next to OLLA 10% / 1 dB on held-out seeds (below 2^20; training episodes draw theirs above).
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from ranpd.simulator.observation import DEFAULT_BLER_TARGET
from ranpd.simulator.policies import ObservationPolicy
from ranpd.simulator.scenarios import Scenario, load_scenario
from ranpd.training.config import EvalConfig
from ranpd.training.evaluate import PolicySpec, evaluate, olla_spec

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN}
HYPERPARAMETERS = {      # small networks, gamma = 0 (module docstring); the rest SB3's defaults
    "ppo": dict(gamma=0.0, n_steps=1024, batch_size=256, ent_coef=0.01, policy_kwargs=dict(net_arch=[64, 64])),
    "dqn": dict(gamma=0.0, learning_rate=5e-4, buffer_size=100_000, learning_starts=1_000, batch_size=128,
                exploration_fraction=0.3, exploration_final_eps=0.02, policy_kwargs=dict(net_arch=[64, 64])),
}
REPORTED_KPIS = ("throughput_mbps", "bler_first_tx", "mean_mcs", "throughput_p5_mbps")


@dataclass(frozen=True)
class Sb3BaselineConfig:
    algo: str = "ppo"
    steps: int = 100_000                   # per-UE decisions to train on
    scenario: str = "uma-mid-pedestrian"   # built-in name or scenario file
    n_ues: int | None = None               # None: one cell of the scenario
    episode_slots: int = 200
    seed: int = 0
    eval_slots: int = 2_000
    eval_seeds: tuple[int, ...] = (1001, 1002, 1003)


def make_env(scenario: Scenario, n_ues: int, episode_slots: int) -> gym.Env:
    """The per-UE view on `scenario` (registered by importing ranpd.simulator), UEs at the 10% target."""
    return gym.make("ranpd/LinkAdaptationUE-v0", scenarios=scenario, n_ues=n_ues, episode_slots=episode_slots,
                    bler_targets=(DEFAULT_BLER_TARGET,))


def train(cfg: Sb3BaselineConfig, scenario: Scenario, n_ues: int) -> BaseAlgorithm:
    env = make_env(scenario, n_ues, cfg.episode_slots)
    model = ALGORITHMS[cfg.algo]("MlpPolicy", env, seed=cfg.seed, device="cpu", **HYPERPARAMETERS[cfg.algo])
    return model.learn(total_timesteps=cfg.steps)


def action_scores(model: BaseAlgorithm):
    """Scores per action for observations [n, OBS_DIM] whose argmax is the model's greedy action."""
    @torch.no_grad()
    def score(obs: np.ndarray) -> np.ndarray:
        tensor, _ = model.policy.obs_to_tensor(obs)
        if isinstance(model, DQN):
            return model.policy.q_net(tensor).numpy()
        return model.policy.get_distribution(tensor).distribution.logits.numpy()
    return score


@dataclass(frozen=True)
class Sb3PolicySpec(PolicySpec):
    """A saved SB3 model (params: algo, path) as an evaluation policy at the 10% target."""

    def build(self, scenario: Scenario) -> ObservationPolicy:
        model = ALGORITHMS[self.params["algo"]].load(self.params["path"], device="cpu")
        return ObservationPolicy(action_scores(model), self.name, bler_target=DEFAULT_BLER_TARGET)


def run(cfg: Sb3BaselineConfig) -> dict:
    """Train, then evaluate next to OLLA: the config, training time and both policies' KPIs."""
    torch.set_num_threads(1)      # small MLPs: more threads only contend on a shared machine
    scenario = load_scenario(cfg.scenario)
    n_ues = cfg.n_ues or scenario.ues_per_cell
    started = time.perf_counter()
    model = train(cfg, scenario, n_ues)
    train_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sb3-{cfg.algo}.zip"
        model.save(path)
        learned = Sb3PolicySpec(f"sb3-{cfg.algo}", "sb3", {"algo": cfg.algo, "path": str(path)})
        olla = olla_spec(DEFAULT_BLER_TARGET, 1.0, name="olla")
        eval_cfg = EvalConfig(slots=cfg.eval_slots, n_ues=n_ues, seeds=cfg.eval_seeds)
        table = evaluate([scenario], {scenario.name: [learned, olla]}, eval_cfg)[scenario.name]
    kpis = {name: {key: table[name][key] for key in REPORTED_KPIS} for name in (learned.name, "olla")}
    return {"config": asdict(cfg), "ues": n_ues, "train_seconds": round(train_seconds, 1), **kpis,
            "throughput_vs_olla": kpis[learned.name]["throughput_mbps"] / kpis["olla"]["throughput_mbps"]}


def main(argv: list[str] | None = None) -> None:
    defaults = Sb3BaselineConfig()
    parser = argparse.ArgumentParser(prog="python3 -m ranpd.training.sb3_baseline", description=__doc__.split("\n")[0])
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), default=defaults.algo)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="per-UE decisions to train on")
    parser.add_argument("--scenario", default=defaults.scenario, help="built-in name or scenario file")
    parser.add_argument("--ues", type=int, default=None, help="UEs (default: one cell of the scenario)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--eval-slots", type=int, default=defaults.eval_slots)
    args = parser.parse_args(argv)
    cfg = Sb3BaselineConfig(algo=args.algo, steps=args.steps, scenario=args.scenario, n_ues=args.ues,
                            seed=args.seed, eval_slots=args.eval_slots)
    print(json.dumps(run(cfg), indent=2))


if __name__ == "__main__":
    main()
