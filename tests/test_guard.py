"""The per-UE guard (simulator/guard.py), the one scores -> MCS path at CQI 0, and the offline
policy's serving guards (MCS-table check, guard with its OLLA)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ranpd.simulator.engine import run_policy
from ranpd.simulator.guard import GuardConfig, UeGuard
from ranpd.simulator.policies import (OUT_OF_RANGE_MCS, Illa, ObservationPolicy, Olla, parse_bler_target,
                                      scores_to_mcs)
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import load_scenario
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS

TARGET = 0.1


def _feed(guard: UeGuard, row: int, slot: int, acks, tx: int = 1) -> int:
    """One HARQ outcome per slot for `row` (transmission number `tx`); returns the next slot."""
    for ack in acks:
        guard.apply_harq([row], [ack], [tx], slot, TARGET)
        slot += 1
    return slot


def test_a_ue_fed_nacks_is_handed_back_and_returns_after_recovering():
    guard = UeGuard(2)
    slot = _feed(guard, 0, 0, [True] * 40)
    assert not guard.select([0, 1], slot, TARGET).any()
    slot = _feed(guard, 0, slot, [False] * 30)               # a run of first-transmission NACKs
    assert guard.hand_backs == 1 and guard.n_handed_back == 1
    assert guard.select([0, 1], slot, TARGET).tolist() == [True, False]
    # OLLA at the target: ~10% NACKs. Not back before the hold ends, back once recovered.
    ok = [i % 10 != 0 for i in range(400)]
    slot = _feed(guard, 0, slot, ok[:50])
    assert guard.select([0], slot, TARGET).tolist() == [True] and guard.returns == 0
    slot = _feed(guard, 0, slot, ok[50:])
    assert slot > guard.hold_until[0]
    assert guard.select([0], slot, TARGET).tolist() == [False]
    assert guard.returns == 1 and guard.n_handed_back == 0
    assert guard.handed_back_decisions == 2                   # UE-slots decided while handed back


def test_no_verdict_before_an_estimate_spans_its_memory():
    guard = UeGuard(1)
    _feed(guard, 0, 0, [False] * (math.ceil(1 / guard.config.nack_alpha) - 1))     # 33 of 34
    assert guard.hand_backs == 0
    _feed(guard, 0, 100, [False])
    assert guard.hand_backs == 1


def test_residual_losses_hand_back_a_ue_even_in_throughput_mode():
    guard = UeGuard(1, max_transmissions=4)
    slot = 0
    for _ in range(120):                                      # every TB: NACK x4, then lost
        for tx in (1, 2, 3, 4):
            guard.apply_harq([0], [False], [tx], slot, np.nan)
            slot += 1
    assert guard.hand_backs == 1 and guard.residual_ewma[0] > guard.config.residual_limit
    # Throughput mode: first-tx NACKs alone never trip (no target to hold).
    nacks_only = UeGuard(1, max_transmissions=4)
    for i in range(400):
        nacks_only.apply_harq([0, 0], [False, True], [1, 2], i, np.nan)
    assert nacks_only.nack_ewma[0] > 0.9 and nacks_only.hand_backs == 0 and nacks_only.residual_ewma[0] == 0


def _trip(guard: UeGuard, slot: int) -> int:
    """Feed NACKs until the UE is handed back; returns the slot of the trip."""
    while not guard.handed_back[0]:
        slot = _feed(guard, 0, slot, [False])
    return slot - 1


def test_repeated_trips_hold_longer_and_forgiveness_resets_the_hold():
    guard, slot, holds = UeGuard(1, GuardConfig(hold_slots=50, max_hold_slots=150, forgive_slots=5000)), 0, []
    for _ in range(4):
        tripped = _trip(guard, slot)
        holds.append(int(guard.hold_until[0]) - tripped)
        slot = _feed(guard, 0, tripped + 1, [True] * 400)
        assert not guard.select([0], slot, TARGET).any()     # recovered and returned
    assert holds == [50, 100, 150, 150] and guard.hand_backs == guard.returns == 4
    tripped = _trip(guard, slot + 6000)                       # long after the last return: forgiven
    assert guard.hold_until[0] - tripped == 50


def test_a_ue_at_its_target_almost_never_trips():
    """Bernoulli first-tx NACKs at the target, retransmissions failing half the time (OLLA-like:
    ~1% residual loss): a false hand-back is rare (docstring: ~1e-6 per outcome for NACKs)."""
    rng, n = np.random.default_rng(0), 200
    guard, rows, tx = UeGuard(n), np.arange(n), np.ones(n, np.int64)
    for slot in range(3000):
        ack = rng.random(n) >= np.where(tx == 1, TARGET, 0.48)
        guard.apply_harq(rows, ack, tx, slot, TARGET)
        tx = np.where(ack | (tx >= 4), 1, tx + 1)
    assert guard.outcomes.sum() > 300_000 and guard.hand_backs <= 3


def test_a_ue_at_four_times_its_target_trips_within_tens_of_outcomes():
    rng, n = np.random.default_rng(1), 100
    guard, rows = UeGuard(n), np.arange(n)
    first = np.full(n, -1)
    for slot in range(200):
        guard.apply_harq(rows, rng.random(n) >= 0.4, np.ones(n, np.int64), slot, TARGET)
        first[(first < 0) & guard.handed_back] = slot
    assert (first >= 0).all() and np.median(first) < 60


def test_reset_rows_forgets_a_handed_back_ue():
    guard = UeGuard(1)
    _feed(guard, 0, 0, [False] * 40)
    assert guard.n_handed_back == 1
    guard.reset_rows([0])
    assert guard.n_handed_back == 0 and guard.outcomes[0] == 0 and guard.nack_ewma[0] == 0


@pytest.mark.parametrize("mcs_table, cqi_table", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_cqi_zero_rows_get_the_mcs_of_illa_and_a_fresh_olla(mcs_table, cqi_table):
    report = SlotReport(slot=5, mcs_table=mcs_table, cqi_table=cqi_table,
                        cqi_ue=np.array([1, 2]), cqi_value=np.array([0, 12]), cqi_slot=np.array([0, 0]),
                        ue=np.array([0, 1, 2]), prbs=np.full(3, 20), layers=np.ones(3, np.int64),
                        buffer_bytes=np.full(3, 1000))
    baselines = []
    for policy in (Illa(), Olla()):
        policy.reset(3, mcs_table, cqi_table)
        baselines.append(policy.decide(report)[:2])            # UE 0: no report yet; UE 1: CQI 0
    scores = np.zeros((3, MAX_SUPPORTED_MCS_ACTIONS), np.float32)
    scores[:, 24] = 1.0                                         # the network wants MCS 24 everywhere
    mcs = scores_to_mcs(scores, np.arange(MAX_SUPPORTED_MCS_ACTIONS), 27, np.array([0, 0, 12]))
    for baseline in baselines:
        np.testing.assert_array_equal(baseline, [OUT_OF_RANGE_MCS] * 2)
    assert mcs.tolist() == [OUT_OF_RANGE_MCS, OUT_OF_RANGE_MCS, 24]

    policy = ObservationPolicy(lambda obs: np.tile(scores[:1], (len(obs), 1)))
    policy.reset(3, mcs_table, cqi_table)
    assert policy.decide(report).tolist() == [OUT_OF_RANGE_MCS, OUT_OF_RANGE_MCS, 24]


def test_offline_policy_refuses_an_mcs_table_it_was_not_trained_for():
    policy = ObservationPolicy(lambda obs: obs, name="student-t2", mcs_tables=[2])
    with pytest.raises(ValueError, match=r"student-t2 was trained for MCS table\(s\) \[2\].*MCS table 1"):
        policy.reset(4, mcs_table=1, cqi_table=2)
    policy.reset(4, mcs_table=2, cqi_table=2)


def test_guarded_policy_hands_a_failing_policy_back_to_olla_offline():
    """A 'network' that always picks MCS 27 on a cell-edge scenario: the guard hands its UEs to
    an OLLA at the target, which the KPIs show, and the count of UE-slots OLLA decided is kept."""
    scenario = load_scenario("uma-mid-pedestrian")
    always_27 = np.zeros(MAX_SUPPORTED_MCS_ACTIONS, np.float32)
    always_27[27] = 1.0

    def score(obs):
        return np.tile(always_27, (len(obs), 1))
    bare = run_policy(scenario, ObservationPolicy(score), 600, seed=1, n_ues=8)
    guarded_policy = ObservationPolicy(score, guard=GuardConfig(), max_transmissions=scenario.max_transmissions)
    guarded = run_policy(scenario, guarded_policy, 600, seed=1, n_ues=8)
    guard = guarded_policy.guard
    assert guard.hand_backs >= 4 and guard.handed_back_decisions > 0
    assert guarded["bler_first_tx"] < bare["bler_first_tx"] - 0.2
    assert guarded["throughput_mbps"] > bare["throughput_mbps"]


def test_parse_bler_target():
    assert parse_bler_target("0.2") == 0.2 and parse_bler_target(0.05) == 0.05
    assert parse_bler_target("max") is None and parse_bler_target(" MAX ") is None
    for bad in ("0", "1", "1.5", "-0.1", "ten", "nan"):
        with pytest.raises(ValueError, match="BLER target"):
            parse_bler_target(bad)


def test_events_of_one_ue_in_one_report_count_in_order_and_trip_once():
    config = GuardConfig(nack_alpha=0.5, hold_slots=7)
    one_call, per_event = UeGuard(2, config), UeGuard(2, config)
    rows, acks, tx = [0, 0, 0, 1, 0], [False, False, False, True, False], [1, 1, 2, 1, 1]
    one_call.apply_harq(rows, acks, tx, 10, TARGET)
    for event in zip(rows, acks, tx):
        per_event.apply_harq(*([x] for x in event), 10, TARGET)
    assert np.array_equal(one_call.nack_ewma, per_event.nack_ewma) and list(one_call.outcomes) == [3, 1]
    assert one_call.hand_backs == per_event.hand_backs == 1 and one_call.hold_until[0] == 17


def test_scores_to_mcs_takes_the_first_maximum_and_a_nan_as_argmax_does():
    scores = np.array([[0.0, 2.0, 2.0], [1.0, np.nan, 5.0], [3.0, 1.0, 0.0]], np.float32)
    action_mcs = np.array([4, 9, 27])
    assert list(np.argmax(scores, axis=1)) == [1, 1, 0]
    assert list(scores_to_mcs(scores, action_mcs, 20, np.array([5, 5, 5]))) == [9, 9, 4]
    assert list(scores_to_mcs(scores[[0]] * 0 + [[0, 0, 1]], action_mcs, 20, np.array([5]))) == [20]   # clipped
