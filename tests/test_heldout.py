"""The project's held-out set: shipped scenario files that training and tuning never see."""
from __future__ import annotations

import numpy as np
import pytest

from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import Olla
from ranpd.simulator.scenarios import (BUILTIN_SCENARIOS, HELDOUT_DIR, RANDOMIZATION_FAMILIES, heldout_scenarios,
                                       load_scenario, randomized_scenario)

HELDOUT = heldout_scenarios()
LABELS = ("name", "description", "family")


def _deployment(sc) -> dict:
    """A scenario's fields less its labels: two scenarios are the same deployment when these are equal."""
    return sc.model_dump(exclude=set(LABELS))


def test_the_held_out_files_load_and_are_at_least_six():
    files = sorted(HELDOUT_DIR.glob("*.yaml"))
    assert len(files) >= 6 and len(HELDOUT) == len(files)
    assert [sc.name for sc in HELDOUT] == sorted(path.stem for path in files)     # file name = scenario name
    for path, sc in zip(files, HELDOUT):
        assert load_scenario(path) == sc
        assert sc.family == "heldout" and len(sc.description) > 80


def test_the_held_out_set_is_shipped_as_package_data():
    import tomllib
    from pathlib import Path
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert "heldout/*.yaml" in pyproject["tool"]["setuptools"]["package-data"]["ranpd.simulator"]


def test_the_held_out_set_covers_the_required_kinds():
    kinds = {
        "mixed cell": lambda s: len(s.classes) >= 2 and len({c.traffic for c in s.classes}) >= 2,
        "bursty low load": lambda s: all(c.bursty for c in s.classes) and s.load <= 0.3 and s.carrier_ghz < 6,
        "mmWave pedestrian, bursty": lambda s: s.carrier_ghz > 24 and s.numerology >= 2 and all(
            c.bursty and c.ue_speed_kmh <= 5 for c in s.classes),
        "noisy fresh CQI": lambda s: s.cqi_period_slots <= 2 and s.cqi_delay_slots <= 2 and s.cqi_error_db >= 3
        and s.cqi_bias_db >= 2,
        "static interference": lambda s: s.interference_model == "always_on",
        "table-1 network": lambda s: s.mcs_table == 1 and s.cqi_table == 1,
    }
    for kind, matches in kinds.items():
        assert any(matches(sc) for sc in HELDOUT), f"no held-out scenario is a {kind}"


def test_the_held_out_scenarios_differ_from_every_built_in_and_each_other():
    builtins = [_deployment(sc) for sc in BUILTIN_SCENARIOS.values()]
    deployments = [_deployment(sc) for sc in HELDOUT]
    for sc, fields in zip(HELDOUT, deployments):
        assert sc.name not in BUILTIN_SCENARIOS
        assert fields not in builtins, f"{sc.name} is a built-in up to its name"
    assert len({str(d) for d in deployments}) == len(deployments)


def test_the_held_out_scenarios_are_not_drawn_by_domain_randomisation():
    """Training sees the built-ins and seeded draws of randomized_scenario: none is a held-out deployment."""
    heldout = [_deployment(sc) for sc in HELDOUT]
    for seed in range(10):
        rng = np.random.default_rng(seed)
        for family in [*RANDOMIZATION_FAMILIES, None]:
            for _ in range(20):
                assert _deployment(randomized_scenario(rng, family)) not in heldout


@pytest.mark.slow
@pytest.mark.parametrize("name", [sc.name for sc in HELDOUT])
def test_every_held_out_scenario_is_a_working_deployment(name):
    """OLLA serves every held-out deployment: bits flow, first-tx and residual BLER stay bounded."""
    sc = next(s for s in HELDOUT if s.name == name)
    kpis = run_policy(sc, Olla(), slots=300, seed=1, n_ues=32)
    assert kpis["throughput_mbps"] > 0 and kpis["cell_throughput_mbps"] > 0
    assert 0.02 < kpis["bler_first_tx"] < 0.5 and kpis["bler_residual"] < 0.15


def test_the_floor_tally_counts_first_transmissions_as_the_kpis_do_and_splits_off_floor_ues():
    """`ranpd bench targets`: the per-UE tally of first-tx outcomes agrees with the run's KPIs
    (less the feedback still in flight at the end), and a UE pinned at MCS 0 that NACKs above the
    target is split off as below the floor."""
    from ranpd.training.attainable import FLOOR_MIN_TX, _FloorTally

    sc = next(s for s in HELDOUT if s.name == "noisy-fresh-cqi-edge")
    tally = _FloorTally(Olla(0.1))
    kpis = run_policy(sc, tally, 300, seed=3, n_ues=16)
    tx, nacks, _, _ = tally.counts
    assert 0 < kpis["first_transmissions"] - tx.sum() <= 16 * sc.harq_processes
    assert nacks.sum() / tx.sum() == pytest.approx(kpis["bler_first_tx"], abs=0.02)
    tally.counts = np.array([[100, 100, 50], [50, 5, 5], [FLOOR_MIN_TX, FLOOR_MIN_TX, 0],
                             [FLOOR_MIN_TX // 2, 1, 0]])
    split = tally.floor_split(0.1)
    assert split["floor_ues"] == 1 and split["floor_tx_share"] == pytest.approx(0.4)
    assert split["bler_floor_ues"] == pytest.approx(0.5) and split["bler_other_ues"] == pytest.approx(10 / 150)
