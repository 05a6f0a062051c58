"""The simulator against the standard's definitions and the physics it claims."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from gymnasium.utils.env_checker import check_env
from scipy.special import j0

from ranpd.cli import main
from ranpd.simulator import phy
from ranpd.simulator.channel import jakes_processes
from ranpd.simulator.engine import Simulation, run_policy
from ranpd.simulator.env import LinkAdaptationEnv
from ranpd.simulator.observation import OBS_DIM, ObservationBuilder
from ranpd.simulator.policies import CQI_FEATURE, Illa, Olla, decide_mcs, make_baseline, scores_to_mcs
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, FAMILIES, load_scenario, randomized_scenario
from ranpd.simulator.tables import MCS_TABLES, cqi_to_mcs_map

VEHICULAR = BUILTIN_SCENARIOS["uma-mid-vehicular"]


def test_jakes_autocorrelation_matches_bessel_j0():
    f_d = 0.01  # f_D·T_slot
    x = jakes_processes(64, 16384, f_d, np.random.default_rng(0))
    lags = np.arange(0, 80, 5)
    n = x.shape[1]
    acf = np.array([np.mean(x[:, k:] * np.conj(x[:, :n - k])).real for k in lags])
    np.testing.assert_allclose(acf, j0(2 * np.pi * f_d * lags), atol=0.03)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("table", [1, 2])
def test_olla_mcs_thresholds_rise_with_mcs(table):
    """OLLA's MCS thresholds (10% BLER at long blocks, from the link-level curves) never fall with MCS."""
    threshold = phy.mcs_bler10_sinr_db(table)
    assert np.all(np.diff(threshold) >= 0) and threshold[-1] - threshold[0] > 20


def _flat_channel_simulation(sinr_db: float) -> Simulation:
    scenario = VEHICULAR.model_copy(update={"cqi_error_db": 0.0, "cqi_bias_db": 0.0, "n_subbands": 1})
    sim = Simulation(scenario, seed=0, n_ues=16)
    sim._sinr = lambda ue, slot: np.full((np.size(ue), 1), 10 ** (sinr_db / 10))
    return sim


@pytest.mark.parametrize("cqi", [3, 6, 9, 12, 15])
def test_cqi_reported_at_an_sinr_gives_ten_percent_bler_when_used_there(cqi):
    """38.214 §5.2.2.1: the CQI is the highest whose TBLER on the reference resource is <= 0.1."""
    # The SINR at which this CQI's own (Qm, R) would reach exactly 10% TBLER on the allocation:
    grid = np.arange(-10.0, 35.0, 0.01)
    probe = _flat_channel_simulation(0.0)
    k = cqi - 1
    bler = phy.cqi_curves(2).tbler(grid, k, probe._cqi_cb_bits[k], probe._cqi_n_cb[k])
    sinr_db = grid[np.argmax(bler <= 0.1)] + 0.005
    sim = _flat_channel_simulation(sinr_db)
    reported = sim._measure_cqi(np.arange(4), 0)
    assert np.all(reported == cqi)
    mcs = cqi_to_mcs_map(2, 2)[cqi]
    _, n_cb, cb_bits = sim.transport_block(sim.prbs_per_ue, mcs)
    used = phy.mcs_curves(2).tbler(sinr_db, mcs, cb_bits, n_cb)
    assert 0.06 <= used <= 0.1


def test_olla_holds_its_bler_target_on_a_slow_channel():
    slow = BUILTIN_SCENARIOS["uma-mid-pedestrian"].model_copy(update={"load": 0.5})
    kpis = run_policy(slow, Olla(target_bler=0.1), slots=3000, seed=1)
    assert kpis["bler_first_tx"] == pytest.approx(0.1, abs=0.015)


def test_illa_bler_rises_with_speed_and_cqi_delay():
    def illa_bler(**update):
        scenario = VEHICULAR.model_copy(update={"load": 1.0, **update})
        return run_policy(scenario, Illa(), slots=1500, seed=2)["bler_first_tx"]

    # 3.5 GHz: 3/10/30 km/h give f_D = 10/32/97 Hz; the 4 ms-old CQI decorrelates by 30 km/h.
    by_speed = [illa_bler(ue_speed_kmh=v) for v in (3.0, 10.0, 30.0)]
    by_delay = [illa_bler(ue_speed_kmh=3.0, cqi_delay_slots=d) for d in (4, 24, 64)]
    assert by_speed[0] < by_speed[1] < by_speed[2]
    assert by_delay[0] < by_delay[1] < by_delay[2]


def test_a_seed_reproduces_a_run_bit_for_bit():
    runs = [run_policy(VEHICULAR, make_baseline("olla"), slots=300, seed=s) for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_policies_face_the_same_channel_with_the_same_seed():
    a, b = Simulation(VEHICULAR, seed=3), Simulation(VEHICULAR, seed=3)
    for sim, policy in ((a, Illa()), (b, Olla())):
        policy.reset(sim.n_ues, sim.mcs_table, sim.cqi_table)
        report = sim.reset()
        for _ in range(50):
            report = sim.step(policy.decide(report)).report
    ue = np.arange(a.n_ues)
    np.testing.assert_array_equal(a._sinr(ue, 77), b._sinr(ue, 77))
    np.testing.assert_array_equal(a.known_cqi, b.known_cqi)


def test_pdsch_on_downlink_and_special_slots_never_on_uplink_slots():
    sim = Simulation(BUILTIN_SCENARIOS["uma-mid-pedestrian"], seed=0)  # TDD DDDSU, S = 10 downlink symbols
    report = sim.reset()
    decided = []
    for _ in range(20):
        decided.append(report.n_decisions)
        report = sim.step(np.full(report.n_decisions, 5)).report
    assert all(decided[t] == 0 for t in range(20) if t % 5 == 4)
    assert all(decided[t] > 0 for t in range(20) if t % 5 < 4)
    # The S slot's PDSCH has 8 symbols instead of 12: a smaller TB on the same PRBs.
    assert sim.transport_block(68, 5, special_slot=True)[0] < sim.transport_block(68, 5)[0]


def test_harq_retransmits_until_max_then_counts_residual_error():
    sim = Simulation(VEHICULAR, seed=0, n_ues=16)
    report, first_transmissions = sim.reset(), 0
    for _ in range(400):  # the top MCS fails almost always: every TB burns all its transmissions
        first_transmissions += report.n_decisions
        report = sim.step(np.full(report.n_decisions, 27)).report
    kpis = sim.kpis()
    assert kpis["bler_first_tx"] > 0.8
    assert kpis["retransmissions"] > 2 * first_transmissions
    assert 0.0 < kpis["bler_residual"] < kpis["bler_first_tx"]


def test_gymnasium_env_passes_the_checker_and_matches_the_policy_observation():
    env = LinkAdaptationEnv(n_ues=16, episode_slots=30)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=5)
    builder = ObservationBuilder(16, env.sim.mcs_table, env.sim.cqi_table)
    report = env.report
    for _ in range(25):
        expected = builder.observe_report(report)
        np.testing.assert_array_equal(obs[report.ue], expected)
        assert np.array_equal(np.flatnonzero(info["decide_mask"]), report.ue)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        report = env.report
        assert 0.0 <= reward <= 1.0 and np.all(info["ue_reward"][~info["reward_mask"]] == 0)


def test_scenarios_are_many_valid_and_load_from_files(tmp_path):
    assert len(BUILTIN_SCENARIOS) >= 8 and len(FAMILIES) >= 3
    speeds = [s.ue_speed_kmh for s in BUILTIN_SCENARIOS.values()]
    assert min(speeds) <= 3 and max(speeds) >= 120
    assert load_scenario("simulator/examples/my-network.yaml").ue_speed_kmh == 50
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"name": "x", "ue_speed_kmh": 12, "n_ues": 16}))
    assert load_scenario(path).ue_speed_kmh == 12
    path.write_text(json.dumps({"name": "x", "ue_sped_kmh": 12}))
    with pytest.raises(ValueError, match="ue_sped_kmh"):
        load_scenario(path)
    with pytest.raises(ValueError, match="unknown scenario"):
        load_scenario("atlantis")


def test_cli_simulate_json_and_tbs():
    runner = CliRunner()
    result = runner.invoke(main, ["simulate", "--scenario", "uma-mid-vehicular", "--policy", "illa",
                                  "--slots", "100", "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    kpis = json.loads(result.output)
    for key in ("throughput_mbps", "cell_throughput_mbps", "spectral_efficiency", "bler_first_tx",
                "bler_residual", "mean_mcs", "slots", "ues"):
        assert key in kpis
    assert kpis["slots"] == 100 and kpis["ues"] == 64
    result = runner.invoke(main, ["tbs", "--mcs", "27", "--table", "2", "--prb", "273", "--symbols", "12",
                                  "--dmrs", "12", "--layers", "1"])
    assert result.exit_code == 0 and int(result.output) > 0
    assert runner.invoke(main, ["simulate", "--scenario", "atlantis"]).exit_code != 0


def test_speeds_beyond_one_fading_sample_per_slot_are_refused_and_never_drawn():
    mmwave = BUILTIN_SCENARIOS["umi-mmwave-pedestrian"]
    with pytest.raises(ValueError, match="f_D·T_slot"):
        mmwave.model_validate({**mmwave.model_dump(), "ue_speed_kmh": 300.0})
    rng = np.random.default_rng(0)
    drawn = [randomized_scenario(rng) for _ in range(300)]
    assert max(s.doppler_per_slot for s in drawn) <= 0.4
    assert max(s.ue_speed_kmh for s in drawn) > 120


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_mcs=st.sampled_from([27, 28]))
def test_a_learned_policy_never_gives_a_better_cqi_a_lower_mcs_whatever_its_network(seed, max_mcs):
    """`decide_mcs` is monotone in the CQI by construction: a random (mostly non-monotone) scorer,
    states with random features, each decided at CQI 1..15 with the rest fixed."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(OBS_DIM, 29)).astype(np.float32)
    score = lambda obs: np.sin(7 * obs @ weights)   # noqa: E731 -- far from monotone in any feature
    states = rng.uniform(0, 1, size=(32, OBS_DIM)).astype(np.float32)
    by_cqi = []
    for cqi in range(1, 16):
        probe = states.copy()
        probe[:, CQI_FEATURE] = cqi / 15
        by_cqi.append(decide_mcs(score, probe, np.arange(29), max_mcs, np.full(len(probe), cqi)))
    by_cqi = np.stack(by_cqi, axis=1)
    assert (np.diff(by_cqi, axis=1) >= 0).all()
    states[:, CQI_FEATURE] = 1.0
    own = scores_to_mcs(score(states), np.arange(29), max_mcs, np.full(len(states), 15))
    np.testing.assert_array_equal(by_cqi[:, -1], own)        # at the top CQI: the network's own choice


def test_every_first_transmission_ends_once_delivered_or_lost_with_its_transmissions():
    """The value head's label: each decision's TB ends exactly once (delivered, or lost after
    max_transmissions) with the transmissions it took, consistent with the run's KPIs."""
    sc = BUILTIN_SCENARIOS["uma-mid-vehicular"]
    sim = Simulation(sc, seed=5, n_ues=16)
    report, rng = sim.reset(), np.random.default_rng(0)
    decided, ended, tx, delivered = [], [], [], []
    for _ in range(400):
        outcome = sim.step(rng.integers(0, 28, report.ue.size))
        report = outcome.report
        decided.append(outcome.decision)
        ended.append(outcome.harq_ended.decision)
        tx.append(outcome.harq_ended.transmissions)
        delivered.append(outcome.harq_ended.delivered)
    decided, ended, tx, delivered = (np.concatenate(x) for x in (decided, ended, tx, delivered))
    np.testing.assert_array_equal(decided, np.arange(decided.size))
    assert np.unique(ended).size == ended.size and set(ended) <= set(decided)
    assert decided.size - ended.size <= 16 * sc.harq_processes            # only blocks still in flight
    assert tx.min() == 1 and tx.max() == sc.max_transmissions
    assert not delivered[tx < sc.max_transmissions].size or delivered[tx < sc.max_transmissions].all()
    kpis = sim.kpis()
    assert (~delivered).sum() / ended.size == pytest.approx(kpis["bler_residual"])
