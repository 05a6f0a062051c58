"""`ranpd demo`: the main job end to end.

Starts the xApp in its own process on the shipped student at the operator's BLER target, drives it
with the simulator as E2 node on a few built-in scenarios (the student decides through the E2 loop,
the node's OLLA covers late answers), runs OLLA at the same target and best-tuned OLLA offline on the
same seeds (common random numbers: all see the same channel), and prints the KPIs side by side with
the loop's round-trip latency.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import click

DEFAULT_SCENARIOS = "uma-mid-pedestrian,uma-mid-vehicular,uma-low-pedestrian"
OLLA_TARGETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)         # the training report's grid
OLLA_STEPS_DB = (0.5, 1.0, 2.0)
TUNING_SLOTS = 2000
COMPARED = ("throughput_mbps", "bler_first_tx", "bler_residual", "mean_mcs")
DIGITS = {"throughput_mbps": 2, "bler_first_tx": 3, "bler_residual": 3, "mean_mcs": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class XappProcess(NamedTuple):
    e2_port: int
    http_port: int
    pid: int


@contextmanager
def xapp_process(model: Path, startup_timeout_s: float = 60.0, bler_target: str = "0.1"):
    """Run `ranpd xapp` on loopback in a child process at `bler_target` (a number or 'max'); yield its
    `XappProcess`; stop it after."""
    e2_port, http_port = _free_port(), _free_port()
    command = [sys.executable, "-c", "import sys; from ranpd.cli import main; sys.exit(main())", "xapp",
               "--model", str(model), "--host", "127.0.0.1", "--e2-port", str(e2_port),
               "--http-port", str(http_port)]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1", "RANPD_XAPP_BLER_TARGET": bler_target})
        try:
            _wait_ready(process, http_port, startup_timeout_s, log)
            yield XappProcess(e2_port, http_port, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen, http_port: int, timeout_s: float, log) -> None:
    url = f"http://127.0.0.1:{http_port}/ric/v1/health/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise click.ClickException(f"the xApp exited with code {process.returncode}:\n{log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise click.ClickException(f"the xApp was not ready at {url} within {timeout_s:.0f} s")


def _gain_pct(student: float, baseline: float) -> float | None:
    return 100.0 * (student / baseline - 1.0) if baseline > 0 else None


def _tables(rows: list[dict], model_version: str, target: str):
    """The KPI table (three rows per scenario) and the E2 loop's latency table."""
    from rich import box
    from rich.table import Table

    kpis = Table(title=f"student {model_version} via the xApp at BLER target {target} vs OLLA (same seeds)",
                 box=box.SIMPLE_HEAD)
    for header in ("scenario", "policy", "Mbit/s/UE", "vs OLLA", "vs best OLLA", "BLER 1st", "BLER res", "mean MCS"):
        kpis.add_column(header, justify="left" if header in ("scenario", "policy") else "right", no_wrap=True)
    latency = Table(title="E2 loop: indication -> control round trip (us), UE-slots decided",
                    box=box.SIMPLE_HEAD)
    for header in ("scenario", "UE-slots", "RTT p50", "RTT p99", "deadline", "fallback"):
        latency.add_column(header, justify="left" if header == "scenario" else "right", no_wrap=True)
    for row in rows:
        olla, best, xapp = row["olla"], row["olla_best"], row["student"]

        def cells(k):
            return [f"{k[c]:.{DIGITS[c]}f}" for c in COMPARED]

        def pct(value):
            return f"{value:+.1f}%" if value is not None else "n/a"

        kpis.add_row(row["scenario"], f"OLLA {olla['target_bler']:g}", cells(olla)[0], "", "", *cells(olla)[1:])
        kpis.add_row("", f"best OLLA ({best['target_bler']:g}, {best['step_up_db']:g} dB)", cells(best)[0],
                     pct(_gain_pct(best["throughput_mbps"], olla["throughput_mbps"])), "", *cells(best)[1:])
        kpis.add_row("", "student", cells(xapp)[0], pct(row["throughput_gain_pct"]), pct(row["gain_vs_best_pct"]),
                     *cells(xapp)[1:], end_section=True)
        rtt = [f"{xapp[k]:.0f}" if xapp[k] is not None else "n/a" for k in ("rtt_p50_us", "rtt_p99_us")]
        latency.add_row(row["scenario"], str(xapp["decisions"]), *rtt, f"{xapp['deadline_us']:.0f}",
                        f"{xapp['fallback_rate']:.2%}")
    return kpis, latency


def best_tuned_olla(scenario, slots: int, seed: int, ues: int | None) -> dict:
    """OLLA's target and step from the evaluation grid with the best mean UE throughput on a tuning
    seed (`seed` + 1000, never the reported one)."""
    from ranpd.simulator.engine import run_policy
    from ranpd.simulator.policies import Olla

    grid = [(t, s) for t in OLLA_TARGETS for s in OLLA_STEPS_DB]
    scores = [run_policy(scenario, Olla(t, s), slots, seed=seed + 1000, n_ues=ues)["throughput_mbps"] for t, s in grid]
    target, step = grid[int(max(range(len(grid)), key=scores.__getitem__))]
    return {"target_bler": target, "step_up_db": step}


@click.command()
@click.option("--scenarios", "scenario_names", default=DEFAULT_SCENARIOS, show_default=True,
              help="Comma-separated built-in scenario names or scenario files.")
@click.option("--slots", type=click.IntRange(min=1), default=8000, show_default=True,
              help="Slots per scenario.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every run (same for both policies).")
@click.option("--ues", type=click.IntRange(min=1), default=None, help="UEs per scenario (default: the scenario's).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX student (card beside it); default: the shipped student.")
@click.option("--deadline-us", type=click.FloatRange(min=1.0), default=None,
              help="Per-slot round-trip budget (default: one slot of each scenario's numerology).")
@click.option("--bler-target", default="0.1", show_default=True,
              help="Operator first-tx BLER target of the student and of OLLA, in (0, 1); 'max': the student in "
                   "throughput mode (OLLA at 0.1).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for machines.")
def demo(scenario_names, slots, seed, ues, model, deadline_us, bler_target, as_json) -> None:
    """The main job: the xApp on the shipped student, the simulator in the loop, a KPI table.

    For each scenario: the simulator, as E2 node, asks the xApp (its own process, loopback E2) for
    every MCS at the operator's BLER target and falls back to its OLLA when an answer misses the
    slot's deadline; then OLLA at the same target and best-tuned OLLA (target and step tuned on
    another seed, 2000 slots per grid point) run alone on the same seed. Prints throughput, first-
    transmission and residual BLER, mean MCS, the student's gain over both, and the E2 round trip
    (p50/p99) with the fallback rate.
    """
    from rich.console import Console
    from rich.progress import Progress

    from ranpd.simulator.cli import load_scenario_or_fail
    from ranpd.simulator.e2node import E2Node
    from ranpd.simulator.engine import run_policy
    from ranpd.simulator.policies import Olla, parse_bler_target
    from ranpd.xapp.model import PACKAGED_MODEL, ModelError, OnnxPolicyModel

    try:
        target = parse_bler_target(bler_target)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bler-target") from exc
    olla_target = 0.1 if target is None else target
    model = model or PACKAGED_MODEL
    if not model.is_file():
        raise click.ClickException(
            f"no student at {model}. Train and ship one with `ranpd train --profile full` "
            "(needs the train extra), or pass --model PATH.")
    try:
        model_version = OnnxPolicyModel.load(model).version
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    scenarios = [load_scenario_or_fail(name.strip()) for name in scenario_names.split(",") if name.strip()]
    if not scenarios:
        raise click.BadParameter("name at least one scenario", param_hint="--scenarios")

    console = Console(stderr=True)
    rows = []
    with xapp_process(model, bler_target=bler_target) as xapp, Progress(console=console, transient=True) as progress:
        for sc in scenarios:
            task = progress.add_task(f"{sc.name}: student via xApp", total=slots)
            node = E2Node(sc, ("127.0.0.1", xapp.e2_port), seed=seed, n_ues=ues, deadline_us=deadline_us,
                          bler_target=target)
            student = node.run(slots, on_slot=lambda i: progress.update(task, completed=i))
            progress.update(task, description=f"{sc.name}: OLLA, and tuning OLLA", completed=0)
            olla = {**run_policy(sc, Olla(olla_target), slots, seed=seed, n_ues=ues), "target_bler": olla_target}
            tuned = best_tuned_olla(sc, min(slots, TUNING_SLOTS), seed, ues)
            best = {**run_policy(sc, Olla(tuned["target_bler"], tuned["step_up_db"]), slots, seed=seed, n_ues=ues),
                    **tuned}
            progress.remove_task(task)
            rows.append({"scenario": sc.name, "student": student, "olla": olla, "olla_best": best,
                         "throughput_gain_pct": _gain_pct(student["throughput_mbps"], olla["throughput_mbps"]),
                         "gain_vs_best_pct": _gain_pct(student["throughput_mbps"], best["throughput_mbps"])})
    if as_json:
        click.echo(json.dumps({"model": model_version, "slots": slots, "seed": seed, "bler_target": target,
                               "scenarios": rows}))
    else:
        out = Console()
        if not out.is_terminal:     # logs and pipes: no 80-column default that truncates the table
            out.width = 120
        out.print(*_tables(rows, model_version, bler_target))
