"""Gymnasium environment: link adaptation for many UEs at once, one step per slot.

Observation: float32 [n_ues, OBS_DIM] from the shared `ObservationBuilder` (what the gNB knows).
Action: one MCS index per UE (MultiDiscrete, 29 values: the widest MCS table; clipped to the
scenario's table). Only UEs scheduled for a new transmission decide in a slot:
`info["decide_mask"]` marks whose action the next `step` uses, `info["reward_mask"]` whose action
this step used. Reward per UE: bits delivered by its first transmission over the TBS at the
table's top MCS (in [0, 1]); the scalar reward is their mean. Link adaptation is a contextual
bandit with delayed feedback: the reward is known to the learner at once (the simulator decodes at
transmission time) while the policy's inputs only learn it K1 slots later, as at a real gNB.
`info["ack"]` gives each first transmission's outcome (the NACK head's label) and
`info["ue_offered"]` the normalised bits its TB carried (the reward had it decoded).

Operator BLER targets: each reset gives every UE a first-tx BLER target drawn from `bler_targets`
(None: throughput mode); the observation's `nack_price` holds it (`ObservationBuilder`), so a
training run visits the states of every operating point.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from ranpd.simulator.engine import FULL_BUFFER_BYTES, Simulation
from ranpd.simulator.observation import DEFAULT_BLER_TARGET, OBS_DIM, ObservationBuilder
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, Scenario, randomized_scenario
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS

# Training episodes draw simulation seeds from here up, and their traces from TRAINING_TRACE_SETS trace
# seeds from here up (reused through the trace caches, as generating traces costs more than an episode);
# evaluation seeds (< 2^20) are disjoint, so evaluation never meets a channel seen in training.
TRAINING_SEEDS_FROM = 1 << 20
TRAINING_TRACE_SETS = 4


class LinkAdaptationEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, scenarios: Scenario | list[Scenario] | None = None, n_ues: int = 64,
                 episode_slots: int = 200, randomize: bool = False,
                 bler_targets: tuple[float | None, ...] = (DEFAULT_BLER_TARGET,)):
        if isinstance(scenarios, Scenario):
            scenarios = [scenarios]
        self.scenarios = list(scenarios or BUILTIN_SCENARIOS.values())
        if not self.scenarios:
            raise ValueError("need at least one scenario")
        for sc in self.scenarios:
            if sc.with_ues(n_ues).n_ues != n_ues:
                raise ValueError(f"n_ues={n_ues} is not a whole number of cells of {sc.ues_per_cell} "
                                 f"UEs in scenario {sc.name!r}")
        if episode_slots < 1:
            raise ValueError("episode_slots must be >= 1")
        if not bler_targets:
            raise ValueError("need at least one BLER target (None: throughput mode)")
        self.n_ues, self.episode_slots, self.randomize = n_ues, episode_slots, randomize
        self.bler_targets = tuple(bler_targets)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(n_ues, OBS_DIM), dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(n_ues, MAX_SUPPORTED_MCS_ACTIONS))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.randomize:
            scenario = randomized_scenario(self.np_random)
        else:
            scenario = self.scenarios[self.np_random.integers(len(self.scenarios))]
        seed = int(self.np_random.integers(TRAINING_SEEDS_FROM, 2 ** 31))
        trace_seed = TRAINING_SEEDS_FROM + int(self.np_random.integers(TRAINING_TRACE_SETS))
        self.sim = Simulation(scenario, seed=seed, n_ues=self.n_ues, trace_seed=trace_seed)
        self.builder = ObservationBuilder(self.n_ues, self.sim.mcs_table, self.sim.cqi_table)
        target = self.np_random.integers(len(self.bler_targets), size=self.n_ues)
        for i, bler_target in enumerate(self.bler_targets):
            self.builder.set_bler_target(np.flatnonzero(target == i), bler_target)
        self._report = self.sim.reset()
        return self._observe(self._report), self._info(np.zeros(self.n_ues, bool))

    def step(self, action):
        action = np.asarray(action)
        if action.shape != (self.n_ues,):
            raise ValueError(f"action must have shape ({self.n_ues},), got {action.shape}")
        outcome = self.sim.step(action[self._report.ue])
        self._report = outcome.report
        reward_mask = np.zeros(self.n_ues, bool)
        reward_mask[outcome.ue] = True
        ue_reward = np.zeros(self.n_ues, np.float32)
        ue_reward[outcome.ue] = outcome.reward
        ue_offered = np.zeros(self.n_ues, np.float32)
        ue_offered[outcome.ue] = outcome.offered
        ack = np.zeros(self.n_ues, bool)
        ack[outcome.ue] = outcome.ack
        info = self._info(reward_mask)
        info.update(ue_reward=ue_reward, ue_offered=ue_offered, ack=ack)
        reward = float(outcome.reward.mean()) if outcome.ue.size else 0.0
        truncated = self.sim.slot >= self.episode_slots
        return self._observe(self._report), reward, False, truncated, info

    def _observe(self, report: SlotReport) -> np.ndarray:
        """Every UE's observation as if it were scheduled now (same inputs a report would carry)."""
        self.builder.apply_report(report)
        rows = np.arange(self.n_ues)
        buffer = np.minimum(self.sim.buffer_bytes, FULL_BUFFER_BYTES).astype(np.int64)
        return self.builder.observe(rows, report.slot, self.sim.prbs_per_ue, self.sim.scenario.layers, buffer)

    def _info(self, reward_mask: np.ndarray) -> dict:
        decide = np.zeros(self.n_ues, bool)
        decide[self._report.ue] = True
        return {"decide_mask": decide, "reward_mask": reward_mask, "scenario": self.sim.scenario.name}
