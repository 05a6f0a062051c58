"""Simulator commands: `ranpd scenarios`, `ranpd simulate`, `ranpd tbs`."""
from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import make_baseline
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, load_scenario
from ranpd.simulator.tbs import ldpc_segmentation, transport_block_size

KPI_LABELS = {
    "throughput_mbps": "mean UE goodput (Mbit/s)",
    "throughput_p5_mbps": "5th-percentile UE throughput (Mbit/s)",
    "cell_throughput_mbps": "cell throughput (Mbit/s)",
    "spectral_efficiency": "spectral efficiency (bit/s/Hz/cell)",
    "bler_first_tx": "first-transmission BLER",
    "bler_residual": "residual BLER",
    "mean_mcs": "mean MCS",
    "rlc_resends": "TBs resent by RLC",
    "upt_mbps": "user-perceived throughput, packets (Mbit/s)",
    "packet_delay_p50_ms": "packet delay p50 (ms)",
    "packet_delay_p95_ms": "packet delay p95 (ms)",
}


def scenario_option(function):
    return click.option("--scenario", "-s", default="uma-mid-vehicular", show_default=True,
                        help="Built-in scenario name (see `ranpd scenarios`) or a YAML/JSON scenario file.")(function)


def load_scenario_or_fail(name_or_path: str):
    try:
        return load_scenario(name_or_path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from exc


def _cell(value) -> str:
    """A KPI as table text: counts as integers, n/a where the KPI does not apply."""
    if value is None:
        return "n/a"
    return f"{value:d}" if isinstance(value, int) else f"{value:.3f}"


def kpi_table(title: str, columns: dict[str, dict]) -> Table:
    """A KPI table with one column per run (e.g. per policy)."""
    table = Table(title=title)
    table.add_column("KPI")
    for name in columns:
        table.add_column(name, justify="right")
    for key, label in KPI_LABELS.items():
        table.add_row(label, *(_cell(kpis.get(key)) for kpis in columns.values()))
    return table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for machines.")
def scenarios(as_json: bool) -> None:
    """List the built-in scenarios and their key parameters.

    A scenario file (YAML or JSON) takes the same fields; `--json` prints every field.
    """
    if as_json:
        click.echo(json.dumps([s.model_dump() for s in BUILTIN_SCENARIOS.values()], indent=2))
        return
    rows = [s.summary() for s in BUILTIN_SCENARIOS.values()]
    table = Table(title="built-in scenarios")
    for key in rows[0]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


@click.command()
@scenario_option
@click.option("--policy", "-p", type=click.Choice(["illa", "olla"]), default="olla", show_default=True,
              help="Link adaptation: inner loop only (CQI -> MCS) or outer loop (ACK/NACK offset).")
@click.option("--slots", type=click.IntRange(min=1), default=2000, show_default=True, help="Slots to simulate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (reproduces a run bit for bit).")
@click.option("--ues", type=click.IntRange(min=1), default=None, help="UEs (default: the scenario's).")
@click.option("--olla-target", type=click.FloatRange(0.001, 0.999), default=0.1, show_default=True,
              help="OLLA first-transmission BLER target.")
@click.option("--olla-step", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="OLLA Δup in dB (Δdown = Δup·t/(1-t)).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of KPIs.")
def simulate(scenario, policy, slots, seed, ues, olla_target, olla_step, as_json) -> None:
    """Run a scenario closed loop with ILLA or OLLA and print its KPIs."""
    sc = load_scenario_or_fail(scenario)
    kwargs = {"target_bler": olla_target, "step_up_db": olla_step} if policy == "olla" else {}
    kpis = run_policy(sc, make_baseline(policy, **kwargs), slots, seed=seed, n_ues=ues, progress=not as_json)
    if as_json:
        click.echo(json.dumps(kpis))
    else:
        Console().print(kpi_table(f"{sc.name}: {kpis['ues']} UEs, {slots} slots, seed {seed}", {policy: kpis}))


@click.command()
@click.option("--mcs", type=int, required=True, help="MCS index.")
@click.option("--table", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="MCS table: 1 = 64QAM (38.214 Table 5.1.3.1-1), 2 = 256QAM (Table 5.1.3.1-2).")
@click.option("--prb", type=int, required=True, help="Allocated PRBs (1..275).")
@click.option("--symbols", type=int, default=12, show_default=True, help="Allocated PDSCH OFDM symbols.")
@click.option("--dmrs", type=int, default=12, show_default=True, help="DMRS resource elements per PRB.")
@click.option("--layers", type=int, default=1, show_default=True, help="MIMO layers (1..4).")
@click.option("--json", "as_json", is_flag=True, help="Print TBS and LDPC segmentation as JSON.")
def tbs(mcs, table, prb, symbols, dmrs, layers, as_json) -> None:
    """Transport block size in bits (TS 38.214 §5.1.3.2)."""
    try:
        bits = transport_block_size(mcs, int(table), prb, symbols, dmrs, layers)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        from ranpd.simulator.tables import MCS_TABLES
        graph, blocks, block_bits = ldpc_segmentation(bits, float(MCS_TABLES[int(table)].code_rate[mcs]))
        click.echo(json.dumps({"tbs_bits": bits, "base_graph": graph, "code_blocks": blocks,
                               "code_block_bits": block_bits}))
    else:
        click.echo(bits)
