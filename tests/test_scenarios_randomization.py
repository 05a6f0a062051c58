"""Domain randomisation: every family draws valid scenarios, the union covers every axis, draws reproduce."""
from __future__ import annotations

import numpy as np
import pytest

from ranpd.simulator.channel import doppler_hz
from ranpd.simulator.engine import Simulation
from ranpd.simulator.scenarios import (MAX_DOPPLER_PER_SLOT, RANDOMIZATION_BANDS, RANDOMIZATION_FAMILIES,
                                       Scenario, randomized_scenario)

UNION_DRAWS = 400


@pytest.fixture(scope="module")
def union() -> list[Scenario]:
    rng = np.random.default_rng(0)
    return [randomized_scenario(rng) for _ in range(UNION_DRAWS)]


@pytest.mark.parametrize("family", [*RANDOMIZATION_FAMILIES, None])
def test_every_family_draws_valid_scenarios_of_its_own(family):
    spec = RANDOMIZATION_FAMILIES.get(family)
    for seed in range(60):
        sc = randomized_scenario(np.random.default_rng(seed), family)
        again = Scenario.model_validate(sc.model_dump())          # round trip through the validators
        assert again == sc
        assert sc.family in RANDOMIZATION_FAMILIES and (family is None or sc.family == family)
        assert sc.doppler_per_slot <= MAX_DOPPLER_PER_SLOT
        assert sc.mcs_table == sc.cqi_table
        assert sc.ues_per_slot <= sc.ues_per_cell and 64 % sc.ues_per_cell == 0
        band = next(b for b in RANDOMIZATION_BANDS.values() if b.carrier_ghz == sc.carrier_ghz)
        assert sc.cell_prbs in band.prbs[sc.numerology] and sc.duplex == band.duplex
        if spec is not None:
            assert band in [RANDOMIZATION_BANDS[b] for b in spec.bands]
            bursty = [c.bursty for c in sc.classes]
            if spec.traffic == "full_buffer":
                assert bursty == [False]
            elif spec.traffic == "bursty":
                assert bursty == [True]
            else:
                assert len(sc.classes) >= 2
                assert min(c.ue_speed_kmh for c in sc.classes) <= 10 < max(c.ue_speed_kmh for c in sc.classes)


def test_unknown_family_is_refused_with_the_names():
    with pytest.raises(ValueError, match="mid-band"):
        randomized_scenario(np.random.default_rng(0), "atlantis")


def test_draws_reproduce_for_a_seed_and_differ_across_seeds():
    for family in [*RANDOMIZATION_FAMILIES, None]:
        a = [randomized_scenario(np.random.default_rng(7), family) for _ in range(3)]
        assert a[0] == a[1] == a[2]
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    assert [randomized_scenario(rng_a) for _ in range(20)] == [randomized_scenario(rng_b) for _ in range(20)]
    assert len({randomized_scenario(np.random.default_rng(s)).model_dump_json() for s in range(20)}) == 20


def test_the_union_covers_every_axis(union):
    def seen(attr):
        return {getattr(sc, attr) for sc in union}

    assert {sc.family for sc in union} == set(RANDOMIZATION_FAMILIES)
    assert seen("carrier_ghz") == {b.carrier_ghz for b in RANDOMIZATION_BANDS.values()}
    assert seen("numerology") == {0, 1, 2, 3}
    assert seen("duplex") == {"FDD", "TDD"}
    assert len(seen("tdd_pattern")) >= 4
    assert seen("environment") == {"UMa", "UMi", "RMa"}
    assert seen("tdl_profile") == {"C", "D"}
    assert {(sc.mcs_table, sc.cqi_table) for sc in union} == {(1, 1), (2, 2)}
    assert seen("interference_model") == {"scheduled", "onoff", "always_on"}
    loads = seen("load")
    assert min(loads) <= 0.05 and max(loads) == 1.0
    periods = seen("cqi_period_slots")
    assert {1, 2, 80} <= periods and len(periods) >= 8
    assert min(seen("cqi_error_db")) < 0.5 and max(seen("cqi_error_db")) > 2.5
    assert min(seen("cqi_bias_db")) < 0.5 and max(seen("cqi_bias_db")) > 2.5
    assert seen("ues_per_slot") == {1, 2, 4, 8}
    assert len(seen("cell_prbs")) >= 8
    assert seen("bler_level") == {"pdsch-awgn", "5g-lena"}
    assert seen("scheduler") == {"pf", "rr"}
    assert seen("max_transmissions") == {2, 3, 4, 5} and seen("k1_slots") == set(range(2, 9))
    assert seen("indoor_fraction") == {0.0, 0.5, 0.8}
    speeds = {c.ue_speed_kmh for sc in union for c in sc.classes}
    assert min(speeds) == 3.0 and max(speeds) >= 200.0
    traffic = {c.traffic for sc in union for c in sc.classes}
    assert traffic == {"full_buffer", "ftp3", "small_packets"}
    mixed = [sc for sc in union if len(sc.classes) > 1]
    assert len(mixed) > UNION_DRAWS / 10 and any(len(sc.classes) == 3 for sc in mixed)
    assert any({c.bursty for c in sc.classes} == {True, False} for sc in mixed)


def test_cqi_delay_matches_the_period(union):
    for sc in union:
        if sc.cqi_period_slots <= 2:                    # aperiodic reports: fresh
            assert sc.cqi_delay_slots <= 2
        else:                                           # periodic: reference resource 4-6 ms back
            assert 4 <= sc.cqi_delay_slots * sc.slot_duration_s * 1e3 <= 6


def test_speeds_stay_inside_the_doppler_limit_with_margin(union):
    for sc in union:
        for c in sc.classes:
            assert doppler_hz(c.ue_speed_kmh, sc.carrier_ghz) * sc.slot_duration_s <= 0.9 * MAX_DOPPLER_PER_SLOT


def test_trace_cache_keys_are_quantised(union):
    """Speed, delay spread, PRBs, load and burst length key the fading/interference trace caches: few values."""
    assert len({c.ue_speed_kmh for sc in union for c in sc.classes}) <= 9
    assert len({sc.delay_spread_ns for sc in union}) <= 5
    assert len({sc.load for sc in union}) <= 8
    assert len({sc.interference_burst_ms for sc in union}) <= 3
    assert len({(sc.cell_prbs, sc.numerology) for sc in union}) <= 18         # 3GPP channel bandwidths


@pytest.mark.slow
def test_bursty_draws_empty_their_buffers():
    """Bursty traffic is drawn at loads where a UE's buffer is empty for much of the time (OLLA-free:
    a fixed, robust MCS), unlike the saturated built-in FTP 3 scenario."""
    rng = np.random.default_rng(3)
    empty = []
    for i in range(6):
        sc = randomized_scenario(rng, "bursty")
        sim = Simulation(sc, seed=i, n_ues=32)
        report = sim.reset()
        fractions = []
        for slot in range(400):
            report = sim.step(np.full(report.ue.size, 4)).report
            if slot >= 200:
                fractions.append(np.mean(sim.buffer_bytes <= 0))
        empty.append(np.mean(fractions))
    assert np.median(empty) > 0.5 and min(empty) > 0.1, empty
