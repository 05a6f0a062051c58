"""`ranpd e2node`: the simulator as an E2 node against an xApp, in either control loop.

The command lives here, not in the simulator, because the near-RT loop composes two subsystems:
the node (`ranpd.simulator.e2node`) runs the models the xApp deploys with the xApp's own model
validation and onnxruntime wrapper (`ranpd.xapp.model.load_deployed`), one implementation on
both ends of the deployment.
"""
from __future__ import annotations

import json

import click

from ranpd.proto.e2link import LOOPS, parse_address
from ranpd.simulator.e2node import E2Node
from ranpd.simulator.policies import parse_bler_target


@click.command("e2node")
@click.option("--xapp", "address", required=True, metavar="HOST:PORT", help="The xApp's E2 address.")
@click.option("--scenario", "-s", default="uma-mid-vehicular", show_default=True,
              help="Built-in scenario name (see `ranpd scenarios`) or a YAML/JSON scenario file.")
@click.option("--slots", type=click.IntRange(min=1), default=2000, show_default=True, help="Slots to simulate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (reproduces the channel bit for bit).")
@click.option("--ues", type=click.IntRange(min=1), default=None, help="UEs (default: the scenario's).")
@click.option("--loop", type=click.Choice(LOOPS), default="rt", show_default=True,
              help="rt: the xApp decides every slot over E2 (co-located real-time RIC); near-rt: the xApp "
                   "deploys its model to the node, which runs it inline (shadow, then promoted; rollback on "
                   "regression) and reports KPIs through KPM (O-RAN near-RT RIC).")
@click.option("--deadline-us", type=click.FloatRange(min=1.0), default=None,
              help="rt: per-slot round-trip budget on the wall clock (default: one slot of the scenario).")
@click.option("--realtime", is_flag=True, help="Pace slots at the scenario's slot duration, as a gNB does.")
@click.option("--kpm-period-ms", type=click.IntRange(min=0), default=100, show_default=True,
              help="KPM REPORT granularity period in simulated time (0: send no KPM reports; near-rt needs them).")
@click.option("--model-wait-s", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="near-rt: after connecting, wait this long for the xApp's first model control.")
@click.option("--bler-target", default="0.1", show_default=True, metavar="{T|max}",
              help="Operator first-tx BLER target of the node (its OLLA, and in near-rt the model's), in (0, 1); "
                   "'max' (throughput mode) runs OLLA at 0.1.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of KPIs and loop statistics.")
def e2node_command(address, scenario, slots, seed, ues, loop, deadline_us, realtime, kpm_period_ms, model_wait_s,
                   bler_target, as_json) -> None:
    """Run the simulator as an E2 node against an xApp.

    rt: each slot it sends an E2 indication, applies the xApp's MCS when the control arrives before
    the deadline, and its own OLLA otherwise. near-rt: it runs the model the xApp deploys (OLLA
    until one is promoted) and carries out the xApp's promote and rollback controls. Both reconnect
    with backoff when the xApp goes away and send a KPM report every period. Prints the KPIs of
    `ranpd simulate` plus rtt_p50_us, rtt_p99_us, fallback_rate, reconnects, kpm_reports (near-rt:
    model, promotions, rollbacks, model_events); exits 1 when it never reached the xApp.
    """
    from rich.progress import Progress

    from ranpd.simulator.cli import load_scenario_or_fail
    from ranpd.xapp.model import load_deployed

    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--xapp") from exc
    try:
        target = parse_bler_target(bler_target)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bler-target") from exc
    if loop == "near-rt" and not kpm_period_ms:
        raise click.BadParameter("the near-RT loop needs KPM reports: the xApp supervises the model with them",
                                 param_hint="--kpm-period-ms")
    sc = load_scenario_or_fail(scenario)
    node = E2Node(sc, (host, port), seed=seed, n_ues=ues, deadline_us=deadline_us, realtime=realtime,
                  kpm_period_ms=kpm_period_ms, bler_target=target, loop=loop, load_model=load_deployed,
                  model_wait_s=model_wait_s)
    if as_json:
        click.echo(json.dumps(kpis := node.run(slots)))
    else:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{sc.name} via {address} ({loop})", total=slots)
            kpis = node.run(slots, on_slot=lambda i: progress.update(task, completed=i))
        _print_summary(kpis, sc.name, slots, seed, address)
    if not kpis["reached_xapp"]:
        raise click.ClickException(f"never reached the xApp at {address} ({kpis['connect_failures']} attempts; "
                                   f"last: {node.last_error}): every decision was the node's own OLLA")


def _print_summary(kpis: dict, scenario: str, slots: int, seed: int, address: str) -> None:
    from rich.console import Console

    from ranpd.simulator.cli import kpi_table

    console = Console()
    console.print(kpi_table(f"{scenario}: {kpis['ues']} UEs, {slots} slots, seed {seed}, xApp {address}",
                            {"xApp + OLLA fallback" if kpis["loop"] == "rt" else "node model + OLLA": kpis}))
    if kpis["loop"] == "near-rt":
        console.print(f"model in use {kpis['model'] or 'OLLA'}  model decisions {kpis['model_decisions']} of "
                      f"{kpis['decisions']}  promotions {kpis['promotions']}  rollbacks {kpis['rollbacks']}  "
                      f"reconnects {kpis['reconnects']}  KPM reports {kpis['kpm_reports']}")
        for event in kpis["model_events"]:
            console.print(f"  slot {event['slot']}: {event['event']} {event['version'] or 'OLLA'} {event['detail']}")
        return
    rtt = (f"{kpis['rtt_p50_us']:.0f} / {kpis['rtt_p99_us']:.0f} us" if kpis["rtt_samples"] else "n/a")
    console.print(f"decisions {kpis['decisions']}  from xApp {kpis['xapp_decisions']}  "
                  f"fallback rate {kpis['fallback_rate']:.3%}  RTT p50/p99 {rtt} "
                  f"(deadline {kpis['deadline_us']:.0f} us)  late {kpis['late_controls']}  "
                  f"reconnects {kpis['reconnects']}  KPM reports {kpis['kpm_reports']}")


@click.command("shadow")
@click.option("--model", "model_path", default="default", show_default=True,
              help="ONNX student (card beside it), or 'default' for the shipped one.")
@click.option("--scenario", "-s", "scenarios", multiple=True,
              default=("uma-mid-pedestrian", "uma-mid-vehicular", "umi-mmwave-pedestrian"), show_default=True,
              help="Built-in name or scenario file (repeatable).")
@click.option("--sigma", default="0,1,2,3", show_default=True, help="SINR-estimate errors in dB to compare.")
@click.option("--slots", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option("--ues", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_shadow(model_path, scenarios, sigma, slots, ues, seed, as_json) -> None:
    """The near-RT shadow estimate against the truth: per scenario, the expected gain the node
    reports for the model over OLLA at 10% (at each SINR-estimate error sigma) beside the
    closed-loop gain of the same model and seed (guard on, as the node runs it)."""
    from rich.console import Console
    from rich.table import Table

    from ranpd.simulator.cli import load_scenario_or_fail
    from ranpd.simulator.engine import run_policy
    from ranpd.simulator.guard import GuardConfig
    from ranpd.simulator.nearrt import shadow_estimate
    from ranpd.simulator.policies import Olla
    from ranpd.xapp.model import PACKAGED_MODEL, OnnxPolicyModel

    try:
        sigmas = [float(s) for s in sigma.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"expected numbers separated by commas: {exc}", param_hint="--sigma") from exc
    model = OnnxPolicyModel.load(PACKAGED_MODEL if model_path == "default" else model_path)
    rows = {}
    for name in scenarios:
        sc = load_scenario_or_fail(name)
        truth = run_policy(sc, model.policy(bler_target=0.1, guard=GuardConfig(), max_transmissions=sc.max_transmissions),
                           slots, seed=seed, n_ues=ues)["throughput_mbps"] / \
            run_policy(sc, Olla(0.1), slots, seed=seed, n_ues=ues)["throughput_mbps"] - 1.0
        estimates = {s: shadow_estimate(sc, model, slots, seed, ues, sinr_error_db=s) for s in sigmas}
        rows[sc.name] = {"closed_loop_gain": truth, "disagreement": estimates[sigmas[0]]["disagreement"],
                         "expected_gain": {str(s): e["expected_gain"] for s, e in estimates.items()}}
    if as_json:
        click.echo(json.dumps({"model": model.version, "slots": slots, "ues": ues, "seed": seed, "scenarios": rows}))
        return
    table = Table(title=f"shadow estimate vs closed loop: {model.version}, {ues} UEs, {slots} slots, seed {seed}")
    for column in ("scenario", "disagreement", *(f"expected gain, sigma {s:g} dB" for s in sigmas), "closed-loop gain"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(name, f"{row['disagreement']:.0%}", *(f"{g:+.1%}" for g in row["expected_gain"].values()),
                      f"{row['closed_loop_gain']:+.1%}")
    Console().print(table)
