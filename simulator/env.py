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
`info["ue_offered"]` the normalised bits its TB carried (the reward had it decoded). What reached
the user is known later: `info["decision"]` numbers each first transmission (-1: no decision), and
`info["harq_ended"]` (the engine's `HarqEnded`: one tuple, so that vector envs can stack infos of
varying length) lists the TBs whose HARQ ended in the step, delivered or lost after the last
attempt, with the transmissions each took (the label of the value head, training/dqn.py). Numbers
restart at each reset.

Operator BLER targets: each reset gives every UE a first-tx BLER target drawn from `bler_targets`
(None: throughput mode); the observation's `nack_price` holds it (`ObservationBuilder`), so a
training run visits the states of every operating point.

Two views, registered with Gymnasium when `ranpd.simulator` is imported (docs/gymnasium.md):
`ranpd/LinkAdaptation-v0` is `LinkAdaptationEnv` (all UEs, one step per slot) and
`ranpd/LinkAdaptationUE-v0` is `LinkAdaptationUEEnv` (one UE's decision per step, `Discrete` action,
1-D observation: what single-agent libraries such as Stable-Baselines3 take). Both render
`render_mode="ansi"` text and let a baseline act through `PolicyAgent`.
"""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from ranpd.simulator.engine import FULL_BUFFER_BYTES, Simulation
from ranpd.simulator.observation import DEFAULT_BLER_TARGET, FEATURES, OBS_DIM, PRICE_MAX, ObservationBuilder
from ranpd.simulator.policies import LinkAdaptationPolicy
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, Scenario, load_scenario, randomized_scenario
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS

# Training episodes draw simulation seeds from here up, and their traces from TRAINING_TRACE_SETS trace
# seeds from here up (reused through the trace caches, as generating traces costs more than an episode);
# evaluation seeds (< 2^20) are disjoint, so evaluation never meets a channel seen in training.
TRAINING_SEEDS_FROM = 1 << 20
TRAINING_TRACE_SETS = 4
MAX_IDLE_EPISODES = 100      # per-UE view: episodes drawn in a row without one new transmission, then an error


# Every feature lies in [-1, 1] but the NACK price, which dual ascent holds in (PRICE_MIN, PRICE_MAX].
OBS_LOW = np.full(OBS_DIM, -1.0, np.float32)
OBS_HIGH = np.where(np.array(FEATURES) == "nack_price", PRICE_MAX, 1.0).astype(np.float32)

ScenarioArg = Scenario | str | Path


class LinkAdaptationEnv(gym.Env):
    """All UEs, one step per slot (module docstring). `scenarios`: scenarios, built-in names or
    scenario files (`load_scenario`), one or a list (None: every built-in); each episode draws one."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, scenarios: ScenarioArg | list[ScenarioArg] | None = None, n_ues: int = 64,
                 episode_slots: int = 200, randomize: bool = False,
                 bler_targets: tuple[float | None, ...] = (DEFAULT_BLER_TARGET,), render_mode: str | None = None):
        if isinstance(scenarios, ScenarioArg):
            scenarios = [scenarios]
        self.scenarios = [sc if isinstance(sc, Scenario) else load_scenario(sc)
                          for sc in scenarios or BUILTIN_SCENARIOS.values()]
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
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.bler_targets = tuple(bler_targets)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(np.tile(OBS_LOW, (n_ues, 1)), np.tile(OBS_HIGH, (n_ues, 1)),
                                                dtype=np.float32)
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
        self._last_mcs = np.full(self.n_ues, -1, np.int64)     # per UE, its latest first transmission (render)
        self._last_ack = np.zeros(self.n_ues, bool)
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
        self._last_mcs[outcome.ue] = np.minimum(action[outcome.ue], self.sim.max_mcs)
        self._last_ack[outcome.ue] = outcome.ack
        decision = np.full(self.n_ues, -1, np.int64)
        decision[outcome.ue] = outcome.decision
        info = self._info(reward_mask)
        info.update(ue_reward=ue_reward, ue_offered=ue_offered, ack=ack, decision=decision,
                    harq_ended=outcome.harq_ended)
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

    @property
    def report(self) -> SlotReport:
        """The current slot's report: the events a gNB received and the UEs that decide now."""
        return self._report

    @property
    def slot_reports(self) -> list[SlotReport]:
        """The reports a policy has to see before deciding now: this slot's (every step is a slot)."""
        return [self._report]

    def action_for(self, mcs: np.ndarray) -> np.ndarray:
        """The action that sends each deciding UE with `mcs[ue]` (an MCS per UE)."""
        return np.array(mcs, np.int64)

    def render(self) -> str | None:
        """`ansi`: the slot, and per UE its reported CQI, latest first-transmission MCS and outcome
        and throughput so far (`*`: decides now)."""
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: make the env with render_mode='ansi'")
            return None
        deciding = set(self._report.ue.tolist())
        tput = self.sim.ue_throughput_mbps()
        lines = [f"slot {self.sim.slot}/{self.episode_slots} {self.sim.scenario.name}",
                 "   ue cqi mcs ack  Mbit/s"]
        for ue in range(self.n_ues):
            sent = self._last_mcs[ue] >= 0
            mcs, ack = (self._last_mcs[ue], "ACK" if self._last_ack[ue] else "NAK") if sent else ("-", "-")
            lines.append(f"{'*' if ue in deciding else ' '}{ue:4d} {self.builder.cqi[ue]:3d} {mcs:>3} {ack:>3} "
                         f"{tput[ue]:7.1f}")
        return "\n".join(lines) + "\n"


class LinkAdaptationUEEnv(gym.Env):
    """Single-agent view of `LinkAdaptationEnv`: one step is one UE's first-transmission MCS.

    Observation: the deciding UE's row of the vector env's observation (float32 [OBS_DIM]); action:
    its MCS index (`Discrete(29)`, clipped to the scenario's table). The UEs the scheduler gives a
    new transmission in a slot decide one after another (in UE order); when the last has its MCS,
    the simulator transmits the slot (the vector env's `step`) and the next slot's UEs follow;
    slots in which no UE decides pass inside `step`. The reward of a step is that decision's
    reward as the vector env defines it (its first transmission's delivered bits over the TBS at
    the table's top MCS, in [0, 1]), known at once: a decision's outcome depends on its own MCS
    only, and `Simulation.preview_first_transmissions` gives it with the slot's channel and
    decoding luck before the slot's other decisions are in. The episode ends (truncated) with the
    vector env's; the last observation is then the deciding UE's row after the last slot.
    `info`: the decision's UE, slot, `ack` and `offered` (the reward had it decoded).

    Seeding: `reset(seed=...)` seeds the vector env, whose generator (`np_random`, shared) draws
    every episode, so a seed reproduces the episodes; keyword arguments go to `LinkAdaptationEnv`.
    """

    metadata = LinkAdaptationEnv.metadata

    def __init__(self, render_mode: str | None = None, **env_kwargs):
        self.slots = LinkAdaptationEnv(render_mode=render_mode, **env_kwargs)
        self.render_mode, self.n_ues = render_mode, self.slots.n_ues
        self.observation_space = gym.spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(MAX_SUPPORTED_MCS_ACTIONS)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._matrix, _ = self.slots.reset(seed=seed, options=options)
        self._np_random, self._np_random_seed = self.slots.np_random, self.slots.np_random_seed
        self._mcs = np.zeros(self.n_ues, np.int64)     # the MCS of this slot's decisions so far
        self._position = 0                             # the deciding UE's position in report.ue
        for _ in range(MAX_IDLE_EPISODES):
            self._passed: list[SlotReport] = []
            if self._pass_idle_slots():
                return self._matrix[self.deciding_ue].copy(), {}
            self._matrix, _ = self.slots.reset()
        raise RuntimeError(f"no UE had a new transmission in {MAX_IDLE_EPISODES} episodes of "
                           f"{self.slots.episode_slots} slots: lengthen episode_slots")

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an MCS index in [0, {self.action_space.n}), got {action!r}")
        report, ue = self.slots.report, self.deciding_ue
        offered, ack = self.slots.sim.preview_first_transmissions([self._position], [action])
        info = {"ue": ue, "slot": report.slot, "ack": bool(ack[0]), "offered": float(offered[0])}
        self._mcs[ue] = action
        self._position += 1
        truncated = False
        if self._position == report.ue.size:
            self._passed, self._position = [], 0
            truncated = self._transmit(self._mcs) or not self._pass_idle_slots()
        row = ue if truncated else self.deciding_ue
        return self._matrix[row].copy(), float(offered[0] * ack[0]), False, truncated, info

    def _transmit(self, mcs: np.ndarray) -> bool:
        """One slot of the vector env; True when its episode ends."""
        self._matrix, _, _, truncated, _ = self.slots.step(mcs)
        return truncated

    def _pass_idle_slots(self) -> bool:
        """Transmit slots in which no UE decides (retransmissions only) until one does; False if
        the episode ends first."""
        while self.slots.report.ue.size == 0:
            self._passed.append(self.slots.report)
            if self._transmit(self._mcs):
                return False
        return True

    @property
    def deciding_ue(self) -> int:
        """The UE whose MCS the next `step` sets."""
        return int(self.slots.report.ue[self._position])

    @property
    def report(self) -> SlotReport:
        """The current slot's report (the vector env's)."""
        return self.slots.report

    @property
    def slot_reports(self) -> list[SlotReport]:
        """The reports since the previous slot with decisions, oldest first, ending with this slot's:
        a policy sees the events of the slots passed inside `step` too."""
        return [*self._passed, self.slots.report]

    def action_for(self, mcs: np.ndarray) -> int:
        """The action that sends the deciding UE with `mcs[ue]` (an MCS per UE)."""
        return int(mcs[self.deciding_ue])

    def render(self) -> str | None:
        """The vector env's `ansi` text and the UE that decides next."""
        text = self.slots.render()
        if text is None:
            return None
        over = self.slots.sim.slot >= self.slots.episode_slots
        return text + ("episode over\n" if over else f"UE {self.deciding_ue} decides next\n")


class PolicyAgent:
    """A `LinkAdaptationPolicy` (ILLA, OLLA, a learned `ObservationPolicy`) acting in either view
    through its public API: `act(env)` is the policy's action now. The policy decides once per slot
    on the slot's report, as in closed loop (`run_closed_loop`): it sees every report (events of the
    slots the per-UE view passes included) and is reset at the start of each episode (slot 0). Call
    `act` before every `step`."""

    def __init__(self, policy: LinkAdaptationPolicy):
        self.policy = policy
        self._report: SlotReport | None = None

    def act(self, env: gym.Env):
        view = env.unwrapped
        reports = view.slot_reports
        if reports[-1] is not self._report:
            for report in reports:
                if report.slot == 0:
                    self.policy.reset(view.n_ues, report.mcs_table, report.cqi_table)
                mcs = self.policy.decide(report)
            self._mcs = np.zeros(view.n_ues, np.int64)
            self._mcs[report.ue] = mcs
            self._report = report
        return view.action_for(self._mcs)
