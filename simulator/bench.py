"""`ranpd bench sim`: simulator speed in UE-slots per second on one core."""
from __future__ import annotations

import json
import time

import click
import numpy as np

from ranpd.simulator.cli import load_scenario_or_fail, scenario_option
from ranpd.simulator.engine import Simulation
from ranpd.simulator.policies import make_baseline


def measure(scenario, n_ues: int, slots: int, repeats: int, seed: int = 0) -> dict:
    """Time `repeats` runs of `slots` slots (OLLA deciding, fading, EESM, HARQ and CSI on).

    Set-up (drop, trace generation) is excluded: it is paid once per simulation.
    """
    rates = []
    for r in range(repeats):
        sim = Simulation(scenario, seed=seed + r, n_ues=n_ues)
        policy = make_baseline("olla")
        policy.reset(sim.n_ues, sim.mcs_table, sim.cqi_table)
        report = sim.reset()
        start = time.perf_counter()
        for _ in range(slots):
            report = sim.step(policy.decide(report)).report
        rates.append(sim.n_ues * slots / (time.perf_counter() - start))
    return {"scenario": scenario.name, "ues": sim.n_ues, "slots": slots, "repeats": repeats,
            "ue_slots_per_s": float(np.median(rates)), "ue_slots_per_s_min": float(np.min(rates)),
            "ue_slots_per_s_max": float(np.max(rates))}


@click.command("sim")
@scenario_option
@click.option("--ues", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--slots", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_sim(scenario, ues, slots, repeats, as_json) -> None:
    """Simulator throughput in UE-slots/s on one core (median of repeats), OLLA in the loop."""
    result = measure(load_scenario_or_fail(scenario), ues, slots, repeats)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{result['ue_slots_per_s']:,.0f} UE-slots/s (median of {repeats}; "
                   f"min {result['ue_slots_per_s_min']:,.0f}, max {result['ue_slots_per_s_max']:,.0f}) "
                   f"with {result['ues']} UEs x {slots} slots on {result['scenario']}")
