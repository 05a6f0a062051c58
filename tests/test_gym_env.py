"""The Gymnasium views (issue 11): registration, the checker, vectorisation, seeding, rendering,
baselines through the public API, and Stable-Baselines3 out of the box on the per-UE view."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import DQN, PPO

from ranpd.simulator.engine import Simulation
from ranpd.simulator.env import LinkAdaptationEnv, LinkAdaptationUEEnv, PolicyAgent
from ranpd.simulator.policies import Illa, Olla
from ranpd.simulator.scenarios import load_scenario
from ranpd.training.sb3_baseline import Sb3BaselineConfig, action_scores, run

VECTOR, PER_UE = "ranpd/LinkAdaptation-v0", "ranpd/LinkAdaptationUE-v0"
SMALL = dict(scenarios="uma-mid-pedestrian", n_ues=16, episode_slots=40)
# Idle slots (no new transmission: TDD uplink slots, bursty UE classes) and several decisions per slot
MIXED = dict(scenarios=["uma-mid-mixed", "umi-mmwave-pedestrian"], n_ues=16, episode_slots=60)
# What check_env may say about these envs: ansi text has no frame rate; a made env is wrapped (the
# checker runs through the wrappers); a bare env has no spec to try other render modes from.
EXPECTED_WARNINGS = ("No render fps was declared", "is different from the unwrapped version",
                     "Not able to test alternative render modes")


def _views(**kwargs):
    return [LinkAdaptationEnv(**kwargs), LinkAdaptationUEEnv(**kwargs),
            gym.make(VECTOR, **kwargs), gym.make(PER_UE, **kwargs)]


@pytest.mark.parametrize("index", range(4), ids=["vector", "per-ue", "make-vector", "make-per-ue"])
def test_each_view_passes_the_gymnasium_checker(index):
    env = _views(render_mode="ansi", **SMALL)[index]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught if not any(s in str(w.message) for s in EXPECTED_WARNINGS)]
    assert unexpected == []


def test_the_per_ue_view_is_what_single_agent_libraries_take():
    env = gym.make(PER_UE, **SMALL)
    assert env.action_space == gym.spaces.Discrete(29)
    assert env.observation_space.shape == env.unwrapped.slots.observation_space.shape[1:]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (19,) and obs.dtype == np.float32


def test_scenarios_load_by_name_or_file():
    env = gym.make(VECTOR, scenarios="simulator/examples/my-network.yaml", n_ues=16)
    assert env.unwrapped.scenarios == [load_scenario("simulator/examples/my-network.yaml")]
    with pytest.raises(ValueError, match="unknown scenario"):
        gym.make(PER_UE, scenarios="no-such-scenario")


def test_observations_stay_in_the_space_while_the_price_climbs():
    """Random MCS at a 2% target: NACKs drive the price far above 1 (the old Box(-1, 1) did not hold it)."""
    env = LinkAdaptationEnv(scenarios="uma-mid-pedestrian", n_ues=16, episode_slots=300, bler_targets=(0.02,))
    env.reset(seed=1)
    env.action_space.seed(1)
    highest = 0.0
    for _ in range(300):
        obs, *_ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        highest = max(highest, float(obs[:, -1].max()))
    assert highest > 1.0


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", [VECTOR, PER_UE])
def test_make_vec_steps_both_views(env_id, mode):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, **SMALL)
    try:
        obs, _ = envs.reset(seed=0)
        envs.action_space.seed(0)
        for _ in range(60):           # past the end of an episode: sub-environments reset themselves
            obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
        single = envs.single_observation_space
        assert obs.shape == (2, *single.shape) and reward.shape == (2,)
        assert all(o in single for o in obs)
    finally:
        envs.close()


def _rollout(env, seed: int, steps: int) -> list:
    """Observations and rewards of `steps` seeded random steps (resetting unseeded between episodes)."""
    env.action_space.seed(seed)
    out = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out += [obs, reward]
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


@pytest.mark.parametrize("view", [LinkAdaptationEnv, LinkAdaptationUEEnv])
def test_a_seed_reproduces_the_episodes(view):
    first, again, other = (_rollout(view(**MIXED), seed, 150) for seed in (7, 7, 8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_the_per_ue_view_gives_each_decision_the_vector_envs_reward():
    """Random MCS per UE and slot, the same in both views: the per-UE view's reward (known before the
    slot's other decisions) and ACK are the vector env's, decision for decision, idle slots included."""
    vector, per_ue = LinkAdaptationEnv(**MIXED), LinkAdaptationUEEnv(**MIXED)
    mcs = np.random.default_rng(3).integers(0, 29, size=(MIXED["episode_slots"], 16))
    expected, got, idle_slots = [], [], 0
    vector.reset(seed=5)
    for slot in range(MIXED["episode_slots"]):
        idle_slots += vector.report.ue.size == 0
        *_, info = vector.step(mcs[slot])
        done = info["reward_mask"]
        expected += zip(np.flatnonzero(done), info["ue_reward"][done], info["ack"][done])
    per_ue.reset(seed=5)
    truncated = False
    while not truncated:
        ue, slot = per_ue.deciding_ue, per_ue.report.slot
        _, reward, _, truncated, info = per_ue.step(int(mcs[slot, ue]))
        got.append((ue, reward, info["ack"]))
    assert len(expected) > 50 and idle_slots > 5 and got == expected


@pytest.mark.parametrize("baseline", [Olla, Illa])
def test_a_baseline_through_the_public_api_runs_its_closed_loop(baseline):
    """`PolicyAgent` in the vector env is the baseline's closed loop on the same simulation; in the per-UE
    view it makes the same decisions (the events of the slots the view passes reach it too)."""
    env = gym.make(VECTOR, **MIXED)
    agent = PolicyAgent(baseline())
    env.reset(seed=11)
    sim = env.unwrapped.sim
    vector_outcomes, truncated = [], False
    while not truncated:
        *_, truncated, info = env.step(agent.act(env))
        done = info["reward_mask"]
        vector_outcomes += zip(np.flatnonzero(done), info["ue_reward"][done])

    reference = Simulation(sim.scenario, seed=sim.seed, n_ues=16, trace_seed=sim.trace_seed)
    policy = baseline()
    policy.reset(16, reference.mcs_table, reference.cqi_table)
    report = reference.reset()
    for _ in range(MIXED["episode_slots"]):
        report = reference.step(policy.decide(report)).report
    assert sim.kpis() == reference.kpis() and reference.kpis()["first_transmissions"] > 50

    per_ue = gym.make(PER_UE, **MIXED)
    agent = PolicyAgent(baseline())
    per_ue.reset(seed=11)
    per_ue_outcomes, truncated = [], False
    while not truncated:
        _, reward, _, truncated, info = per_ue.step(agent.act(per_ue))
        per_ue_outcomes.append((info["ue"], reward))
    assert per_ue_outcomes == vector_outcomes


def test_ansi_render_shows_the_slot_per_ue():
    env = gym.make(PER_UE, render_mode="ansi", **SMALL)
    env.reset(seed=2)
    slots = env.unwrapped.slots
    deciding = set(slots.report.ue.tolist())
    for _ in range(len(deciding)):            # every decision of slot 0: the slot transmits
        env.step(7)
    lines = env.render().splitlines()
    assert lines[0].startswith("slot 1/40 uma-mid-pedestrian") and len(lines) == 2 + 16 + 1
    rows = {int(line[1:5]): line for line in lines[2:-1]}
    assert lines[-1] == f"UE {env.unwrapped.deciding_ue} decides next"
    for ue, line in rows.items():
        cqi, mcs, ack = line[5:].split()[:3]
        assert int(cqi) == slots.builder.cqi[ue]
        assert (mcs, ack in ("ACK", "NAK")) == (("7", True) if ue in deciding else ("-", False))
        assert line.startswith("*") == (ue in slots.report.ue)
    truncated = False
    while not truncated:
        *_, truncated, _ = env.step(7)
    text = env.render()
    assert text.startswith("slot 40/40 ") and text.endswith("\nepisode over\n")
    with pytest.warns(UserWarning, match="without a render_mode"):
        assert gym.make(VECTOR, **SMALL).unwrapped.render() is None


@pytest.fixture
def one_torch_thread():
    """Small MLPs on a shared machine: more threads only contend (DQN took 40x longer on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("algorithm", [DQN, PPO])
def test_stable_baselines3_trains_on_the_per_ue_view(algorithm, one_torch_thread):
    env = gym.make(PER_UE, **SMALL)
    extra = dict(learning_starts=200, buffer_size=5_000) if algorithm is DQN else dict(n_steps=512, batch_size=128)
    model = algorithm("MlpPolicy", env, gamma=0.0, seed=0, device="cpu", policy_kwargs=dict(net_arch=[32]), **extra)
    model.learn(total_timesteps=2_000)
    assert model.num_timesteps >= 2_000
    obs = np.stack([env.reset(seed=s)[0] for s in range(8)])
    greedy, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action_scores(model)(obs).argmax(axis=1), greedy)


def test_sb3_baseline_reports_closed_loop_kpis_next_to_olla(one_torch_thread):
    result = run(Sb3BaselineConfig(algo="dqn", steps=1_000, eval_slots=100, eval_seeds=(1001,)))
    learned, olla = result["sb3-dqn"], result["olla"]
    assert result["ues"] == 16 and 0.0 <= learned["bler_first_tx"] <= 1.0
    assert olla["throughput_mbps"] > 0 and result["throughput_vs_olla"] == learned["throughput_mbps"] / olla["throughput_mbps"]
