"""`ranpd train` and `ranpd evaluate` (torch is imported only when these commands run)."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from ranpd.cli import require_extra

DEFAULT_MODEL = "default"


@click.command()
@click.option("--profile", type=click.Choice(["smoke", "full", "full-bler10"]), default="smoke", show_default=True,
              help="smoke: the whole pipeline in a few minutes (tests); full: the shipped models; full-bler10: "
                   "full with a NACK penalty in the teachers' reward (first-tx BLER near 10%; not shipped by default).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: runs/<profile>-seed<S>).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random stream.")
@click.option("--ship/--no-ship", default=None,
              help="Install the best student as the packaged default (xapp/models/default.onnx) and copy "
                   "the report to docs/report. Default: on for --profile full, off for smoke.")
@click.option("--workers", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Processes for the closed-loop evaluation.")
def train(profile: str, out: Path | None, seed: int, ship: bool | None, workers: int) -> None:
    """Train RL teachers (specialists per scenario family + a domain-randomised generalist), distil them
    into tiny students (single- and multi-policy, with DAgger), export ONNX (fp32 + int8) with model
    cards, evaluate everything in closed loop against ILLA/OLLA and write a markdown report."""
    require_extra("train", "train", "torch", "tqdm", "matplotlib")
    from ranpd.training.config import load_profile
    from ranpd.training.pipeline import run_pipeline

    cfg = load_profile(profile, seed)
    out = out or Path("runs") / f"{profile}-seed{seed}"
    command = "ranpd train " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else \
        f"ranpd train --profile {profile} --seed {seed}"
    results = run_pipeline(cfg, out, ship=profile == "full" if ship is None else ship, workers=workers,
                           command=command)
    click.echo(f"run directory: {out}  (report: {out / 'report' / 'README.md'})")
    click.echo(f"wall time: {results['wall_s']['total'] / 60:.1f} min")


def _model_path(model: str) -> Path:
    from ranpd.xapp.model import PACKAGED_MODEL

    path = PACKAGED_MODEL if model == DEFAULT_MODEL else Path(model)
    if not path.is_file():
        raise click.BadParameter(f"no ONNX model at {path}" + (
            " (the shipped student is created by `ranpd train --profile full`)" if model == DEFAULT_MODEL else ""),
            param_hint="--model")
    return path


@click.command()
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="ONNX model file (student or teacher), or 'default' for the shipped student.")
@click.option("--scenario", required=True, help="Built-in scenario name or a scenario file (.yaml/.json).")
@click.option("--slots", type=click.IntRange(1), default=4000, show_default=True, help="Slots to simulate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (OLLA runs on the same one).")
@click.option("--ues", type=click.IntRange(1), default=None, help="Override the scenario's UE count.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the model's KPIs + 'olla').")
def evaluate(model: str, scenario: str, slots: int, seed: int, ues: int | None, as_json: bool) -> None:
    """Evaluate an ONNX policy in closed loop on one scenario, next to OLLA (10 % target) on the same seed.

    KPIs use the keys of `ranpd simulate --json`; `olla` holds OLLA's under the same keys."""
    require_extra("evaluate", "train", "tqdm")
    from ranpd.simulator.engine import run_policy
    from ranpd.simulator.observation import OBS_SPEC_VERSION
    from ranpd.simulator.policies import Olla
    from ranpd.simulator.scenarios import load_scenario
    from ranpd.training.evaluate import onnx_policy
    from ranpd.xapp.model import ModelError
    from ranpd.xapp.model_card import ModelCard, card_path_for

    path = _model_path(model)
    card_path = card_path_for(path)
    if not card_path.is_file():
        raise click.ClickException(f"no model card at {card_path}: a model needs its card beside it "
                                   f"(`ranpd train` writes both)")
    try:
        if (version := ModelCard.load(card_path).obs_spec_version) != OBS_SPEC_VERSION:
            raise ModelError(f"trained on observation spec {version}; this build speaks {OBS_SPEC_VERSION}")
        policy = onnx_policy(path, path.stem)
    except ValueError as exc:           # ModelError, or the card's pydantic ValidationError
        raise click.ClickException(" ".join(f"cannot evaluate {path}: {exc}".split())) from exc
    try:
        sc = load_scenario(scenario)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from exc
    kpis = run_policy(sc, policy, slots=slots, seed=seed, n_ues=ues, progress=not as_json)
    olla = run_policy(sc, Olla(), slots=slots, seed=seed, n_ues=ues, progress=not as_json)
    result = {**kpis, "model": str(path), "olla": olla}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{sc.name}: {path.name} vs OLLA 10% ({slots} slots, seed {seed})")
    for col in ("KPI", path.stem, "OLLA", "change"):
        table.add_column(col, justify="right" if col != "KPI" else "left")
    for key in ("throughput_mbps", "throughput_p5_mbps", "cell_throughput_mbps", "spectral_efficiency",
                "bler_first_tx", "bler_residual", "mean_mcs"):
        a, b = kpis[key], olla[key]
        change = f"{100 * (a / b - 1):+.1f}%" if b else "n/a"
        table.add_row(key, f"{a:.4g}", f"{b:.4g}", change)
    Console().print(table)
