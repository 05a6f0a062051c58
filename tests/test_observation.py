"""The observation builder: what a policy sees is built from gNB events only, deterministically."""
import numpy as np
import pytest

from ranpd.simulator.observation import FEATURES, OBS_DIM, ObservationBuilder

COL = {name: i for i, name in enumerate(FEATURES)}


def observe_one(builder, slot, row=0):
    return builder.observe([row], slot, prbs=[68], layers=[1], buffer_bytes=[1 << 30])[0]


def test_cqi_age_and_trend_follow_the_reports_including_the_attach_report_before_slot_zero():
    b = ObservationBuilder(2)
    b.apply_cqi([0], [9], [-8])            # the attach report: reference resource before slot 0
    obs = observe_one(b, 2)
    assert obs[COL["cqi"]] == np.float32(9 / 15) and obs[COL["cqi_trend"]] == 0.0
    assert obs[COL["cqi_age"]] == np.float32(10 / 64)
    b.apply_cqi([0], [12], [2])
    assert observe_one(b, 10)[COL["cqi_trend"]] == np.float32(3 / 15)
    b.apply_cqi([0], [4], [1])             # older than the one held: ignored
    assert observe_one(b, 10)[COL["cqi"]] == np.float32(12 / 15)
    assert observe_one(b, 1000)[COL["cqi_age"]] == 1.0


def test_only_first_transmission_feedback_enters_the_history_newest_first():
    b = ObservationBuilder(1)
    b.apply_harq([0], [False], [20], [1], slot=5)
    b.apply_harq([0], [True], [20], [2], slot=6)    # a retransmission: ignored
    b.apply_harq([0], [True], [14], [1], slot=7)
    obs = observe_one(b, 9)
    assert list(obs[[COL["ack_0"], COL["ack_1"], COL["ack_2"]]]) == [1.0, -1.0, 0.0]
    assert obs[COL["mcs_0"]] == np.float32(14 / 28) and obs[COL["mcs_1"]] == np.float32(20 / 28)
    assert obs[COL["feedback_age"]] == np.float32(2 / 64)
    assert 0.0 < obs[COL["nack_ewma"]] < 0.2
    assert obs.shape == (OBS_DIM,) and np.all(np.abs(obs) <= 1.0)


def test_reset_rows_forgets_a_ue():
    b = ObservationBuilder(2)
    b.apply_cqi([1], [15], [0])
    b.apply_harq([1], [False], [27], [1], slot=3)
    b.reset_rows([1])
    np.testing.assert_array_equal(observe_one(b, 5, row=1), observe_one(ObservationBuilder(2), 5, row=1))


def test_the_nack_price_holds_each_rows_bler_target_by_dual_ascent():
    """A synthetic link where P(NACK) falls with the price (the policy backs off as NACKs get
    dearer): the long-run NACK rate of each row lands on its own target; a throughput-mode row
    keeps price 0."""
    rng = np.random.default_rng(0)
    targets = [0.05, 0.1, 0.3]
    b = ObservationBuilder(4)
    for row, target in enumerate(targets):
        b.set_bler_target([row], target)
    b.set_bler_target([3], None)
    nacks = np.zeros(4)
    slots = 20_000
    for slot in range(slots):
        p_nack = 0.6 / (1.0 + 4.0 * b.nack_price)
        ack = rng.random(4) >= p_nack
        b.apply_harq(np.arange(4), ack, np.full(4, 10), np.ones(4, np.int64), slot)
        if slot >= slots // 2:
            nacks += ~ack
    rate = nacks / (slots // 2)
    np.testing.assert_allclose(rate[:3], targets, atol=0.01)
    assert rate[3] > 0.55 and observe_one(b, slots, row=3)[COL["nack_price"]] == 0.0
    assert observe_one(b, slots, row=0)[COL["nack_price"]] > observe_one(b, slots, row=2)[COL["nack_price"]]


def test_bler_target_must_be_a_probability_or_throughput_mode():
    b = ObservationBuilder(1)
    for bad in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match="BLER target"):
            b.set_bler_target([0], bad)
    b.set_bler_target([0], None)
    b.reset_rows([0])
    assert b.nack_price[0] == 0.0


def test_a_ue_listed_several_times_in_one_report_is_updated_in_order():
    """TDD: one uplink slot acknowledges several of a UE's PDSCHs. Applying them in one call (the
    kernel walks the events in order) equals applying them one call at a time."""
    rng = np.random.default_rng(3)
    rows, ack = rng.integers(0, 3, 40), rng.random(40) < 0.7
    mcs, tx = rng.integers(0, 28, 40), rng.integers(1, 3, 40)
    together, one_by_one = ObservationBuilder(3, bler_target=0.2), ObservationBuilder(3, bler_target=0.2)
    together.apply_harq(rows, ack, mcs, tx, slot=9)
    for event in zip(rows, ack, mcs, tx):
        one_by_one.apply_harq(*([x] for x in event), slot=9)
    assert np.array_equal(together.observe([0, 1, 2], 10, 68, 1, 1000), one_by_one.observe([0, 1, 2], 10, 68, 1, 1000))
    assert np.array_equal(together.nack_price, one_by_one.nack_price) and together.nack_price.min() != 0.0
