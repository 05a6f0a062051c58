"""`ranpd bench targets`: the limits in the held-out acceptance targets that no MCS choice moves.

Measured for the shipped student and OLLA at the same operator target, on the same seeds:

- **The MCS floor.** A UE whose first transmissions at MCS 0 (the lowest rate of TS 38.214 Table
  5.1.3.1-1/-2) NACK more often than the target cannot hold it: below MCS 0 a gNB can only stop
  scheduling it. Its NACKs are in the cell's first-tx BLER whatever the policy. A UE counts as
  below the floor when it made at least `FLOOR_MIN_TX` first transmissions at MCS 0 and more than
  the target of them failed. Reported: the share of first transmissions from such UEs, and the
  first-tx BLER over them and over every other UE.
- **Offered load.** Where every policy delivers all the traffic (throughput equal to the offered
  load: the report's ILLA, OLLA and students within 0.1% of each other), no policy can raise it 5%; what
  link adaptation changes there is packet delay and air time. Reported: throughput, packet delay
  p95 and first transmissions per delivered Mbit.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from ranpd.simulator.engine import run_closed_loop
from ranpd.simulator.policies import LinkAdaptationPolicy, Olla
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import Scenario, heldout_scenarios
from ranpd.xapp.model import PACKAGED_MODEL, OnnxPolicyModel

FLOOR_MIN_TX = 20


class _FloorTally:
    """Wraps a policy and counts, per UE, first transmissions and their NACKs, in total and at MCS 0
    (from the HARQ feedback the reports carry, as a gNB sees it)."""

    def __init__(self, policy: LinkAdaptationPolicy):
        self.policy, self.name = policy, policy.name

    def reset(self, n_ues: int, mcs_table: int, cqi_table: int) -> None:
        self.policy.reset(n_ues, mcs_table, cqi_table)
        self.counts = np.zeros((4, n_ues), np.int64)     # first tx, first NACKs, at MCS 0, NACKs at MCS 0

    def decide(self, report: SlotReport) -> np.ndarray:
        first = report.harq_tx == 1
        ue, nack, floor = report.harq_ue[first], ~report.harq_ack[first], report.harq_mcs[first] == 0
        for row, sel in enumerate((None, nack, floor, floor & nack)):
            np.add.at(self.counts[row], ue if sel is None else ue[sel], 1)
        return self.policy.decide(report)

    def floor_split(self, target: float) -> dict[str, float]:
        """First-tx BLER over the UEs below the MCS floor and over the others, and their share."""
        tx, nacks, floor_tx, floor_nacks = self.counts
        below = (floor_tx >= FLOOR_MIN_TX) & (floor_nacks > target * np.maximum(floor_tx, 1))
        share = tx[below].sum() / max(tx.sum(), 1)
        return {"floor_ues": int(below.sum()), "floor_tx_share": float(share),
                "bler_floor_ues": float(nacks[below].sum() / max(tx[below].sum(), 1)) if below.any() else None,
                "bler_other_ues": float(nacks[~below].sum() / max(tx[~below].sum(), 1))}


def run_targets(scenarios: list[Scenario], model: Path, targets: tuple[float, ...], slots: int,
                seeds: tuple[int, ...]) -> dict[str, Any]:
    """Per scenario and target: student and OLLA (same target, 1 dB step) KPIs, floor split, air time."""
    onnx = OnnxPolicyModel.load(model)
    out: dict[str, Any] = {"model": str(model), "version": onnx.version, "slots": slots, "seeds": list(seeds),
                           "floor_min_tx": FLOOR_MIN_TX, "results": {}}
    for sc in scenarios:
        for target in targets:
            row: dict[str, Any] = {}
            for name, make in (("student", lambda: onnx.policy(bler_target=target)), ("olla", lambda: Olla(target))):
                runs = []
                for seed in seeds:
                    tally = _FloorTally(make())
                    kpis = run_closed_loop(sc, tally, slots, seed=seed).kpis()
                    delivered_mbit = kpis["throughput_mbps"] * kpis["ues"] * slots * sc.slot_duration_s
                    runs.append({**tally.floor_split(target), "bler_first_tx": kpis["bler_first_tx"],
                                 "throughput_mbps": kpis["throughput_mbps"],
                                 "packet_delay_p95_ms": kpis["packet_delay_p95_ms"],
                                 "first_tx_per_mbit": kpis["first_transmissions"] / max(delivered_mbit, 1e-9)})
                row[name] = {key: _mean([r[key] for r in runs]) for key in runs[0]}
            out["results"].setdefault(sc.name, {})[str(target)] = row
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _markdown(result: dict[str, Any]) -> str:
    lines = [f"Model {result['version']}, {result['slots']} slots, seeds {result['seeds']}; a UE is below the MCS "
             f"floor with >= {result['floor_min_tx']} first transmissions at MCS 0, more than the target of them NACKed.",
             "", "| scenario | target | first-tx BLER student / OLLA | floor UEs' share of first tx student / OLLA | "
             "BLER of the other UEs student / OLLA | throughput student / OLLA (Mbit/s) | delay p95 student / OLLA (ms) "
             "| first tx per Mbit student / OLLA |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
    for name, by_target in result["results"].items():
        for target, row in by_target.items():
            s, o = row["student"], row["olla"]
            lines.append(" | ".join([
                f"| {name}", target, f"{s['bler_first_tx']:.3f} / {o['bler_first_tx']:.3f}",
                f"{s['floor_tx_share']:.1%} / {o['floor_tx_share']:.1%}",
                f"{s['bler_other_ues']:.3f} / {o['bler_other_ues']:.3f}",
                f"{s['throughput_mbps']:.3f} / {o['throughput_mbps']:.3f}",
                f"{fmt(s['packet_delay_p95_ms'], '.1f')} / {fmt(o['packet_delay_p95_ms'], '.1f')}",
                f"{s['first_tx_per_mbit']:.1f} / {o['first_tx_per_mbit']:.1f} |"]))
    return "\n".join(lines)


@click.command("targets")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=PACKAGED_MODEL,
              show_default="the packaged student", help="ONNX student (card beside it).")
@click.option("--target", "targets", type=float, multiple=True, default=(0.1, 0.2), show_default=True,
              help="Operator first-tx BLER target (repeatable).")
@click.option("--slots", type=click.IntRange(min=100), default=2000, show_default=True)
@click.option("--seeds", default="1001,1002", show_default=True, help="Comma-separated evaluation seeds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a markdown table.")
def bench_targets(model: Path, targets: tuple[float, ...], slots: int, seeds: str, as_json: bool) -> None:
    """The held-out set at operator targets: how much of each policy's first-tx BLER comes from UEs
    below the MCS floor, and throughput, delay and air time (load-limited scenarios)."""
    for t in targets:
        if not 0.0 < t < 1.0:
            raise click.BadParameter(f"a BLER target must be in (0, 1), got {t}", param_hint="--target")
    try:
        seed_list = tuple(int(s) for s in seeds.split(","))
    except ValueError:
        raise click.BadParameter(f"seeds must be comma-separated integers, got {seeds!r}", param_hint="--seeds")
    result = run_targets(heldout_scenarios(), model, targets, slots, seed_list)
    click.echo(json.dumps(result, indent=1) if as_json else _markdown(result))
