"""`ranpd train` and `ranpd evaluate` (torch is imported only when these commands run)."""
from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import click

from ranpd.cli import require_extra

DEFAULT_MODEL = "default"


class BlerTarget(click.ParamType):
    """An operator first-tx BLER target: a probability in (0, 1), or 'max' (throughput mode: None)."""

    name = "T|max"

    def convert(self, value, param, ctx):
        from ranpd.simulator.policies import parse_bler_target

        try:
            return parse_bler_target(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.option("--profile", type=click.Choice(["smoke", "full"]), default="smoke", show_default=True,
              help="smoke: the whole pipeline in a few minutes (tests); full: the shipped models.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="JSON file of overrides on the profile: {\"teacher\": {\"env_steps\": 5000}, ...}.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override one setting of the profile (repeatable; values are JSON), e.g. "
                   "--set teacher.env_steps=5000 --set distill.hidden=[16,16] --set evaluation.seeds=[1001]. "
                   "Applied after --config. Sections: teacher, distill, evaluation, and top-level fields.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: runs/<profile>-seed<S>). A rerun into it resumes from the teachers "
                   "and students it has finished (checkpoints/), whatever killed the earlier run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random stream.")
@click.option("--ship/--no-ship", default=None,
              help="Install the better student as the packaged default (xapp/models/default.onnx + int8, with "
                   "cards) and copy the report to docs/report. Default: on for --profile full, off for smoke.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes (local backend; default 1) or CPUs of the local Ray (ray backend; default: every "
                   "core) for teachers, distillation and closed-loop evaluation.")
@click.option("--scenarios", "scenario_items", multiple=True, metavar="NAME|FILE|DIR",
              help="Train the teachers on these scenarios instead of the built-ins and randomised draws (repeatable): "
                   "a built-in name, a scenario file (.yaml/.yml/.json) or a folder of them. One specialist per "
                   "family among them (bursty, mixed, low-band, mid-band, mmwave), the generalist on all.")
@click.option("--heldout", "heldout_items", multiple=True, metavar="NAME|FILE|DIR",
              help="Evaluate on these held-out scenarios instead of the project's held-out set (repeatable; same "
                   "forms as --scenarios). None of them may also be a training scenario.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where teachers, distillation and closed-loop evaluation jobs run: local processes, or Ray tasks "
                   "(needs the 'ray' extra: pip install 'ranpd[ray]'). Results are identical for the same seed.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --backend ray: the Ray cluster to join (ray.init(address=ADDR), e.g. 'auto' or "
                   "'ray://head:10001'); default: start a local Ray. The run directory must be on a path every node "
                   "can read (evaluation loads the ONNX models from it).")
@click.option("--report-only", is_flag=True,
              help="Rewrite the report of the finished run in --out from its results.json (and ship with --ship); "
                   "trains and evaluates nothing.")
def train(profile: str, config_file: Path | None, overrides: tuple[str, ...], out: Path | None, seed: int,
          ship: bool | None, workers: int | None, scenario_items: tuple[str, ...], heldout_items: tuple[str, ...],
          backend: str, ray_address: str | None, report_only: bool) -> None:
    """Train RL teachers (one specialist per randomisation family + a generalist over every simulator axis),
    distil them into tiny students (single- and multi-policy, with DAgger, at several sizes), export ONNX
    (fp32 + int8) with model cards, evaluate in closed loop on the built-ins and on the held-out set (at
    operator BLER targets against OLLA at the same target, in throughput mode against best-tuned OLLA) and
    write a markdown report with plots.

    Each teacher and distillation job is checkpointed in --out as it finishes: rerun the same command
    after a crash or a kill and it resumes from the last finished job. Training curves and evaluation
    KPIs are also written as TensorBoard scalars to <out>/tensorboard (with the 'tensorboard' extra)."""
    require_extra("train", "train", "torch", "tqdm", "matplotlib")
    from ranpd.training.config import assignments, load_profile, override
    from ranpd.training.pipeline import ShipTargets, rerender, run_pipeline, scenario_sets
    from ranpd.xapp.model import PACKAGED_MODEL

    if backend == "ray":
        require_extra("train --backend ray", "ray", "ray")
    if ray_address and backend != "ray":
        raise click.BadParameter("takes --backend ray", param_hint="--ray-address")
    cfg = load_profile(profile, seed)
    try:
        if config_file:
            cfg = override(cfg, assignments(json.loads(config_file.read_text())))
        cfg = override(cfg, list(overrides))
    except ValueError as exc:           # also json.JSONDecodeError
        raise click.BadParameter(str(exc), param_hint="--config/--set") from exc
    cfg = replace(cfg, scenarios=_scenario_sources(scenario_items) or cfg.scenarios,
                  heldout=_scenario_sources(heldout_items) or cfg.heldout)
    try:
        scenario_sets(cfg)
    except ValueError as exc:
        raise click.BadParameter(" ".join(str(exc).split()), param_hint="--scenarios/--heldout") from exc
    workers = workers or ((os.cpu_count() or 1) if backend == "ray" and not ray_address else 1)
    out = out or Path("runs") / f"{profile}-seed{seed}"
    command = "ranpd train " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else \
        f"ranpd train --profile {profile} --seed {seed}"
    ship_to = ShipTargets(PACKAGED_MODEL, PACKAGED_MODEL.with_name("default.int8.onnx"),
                          Path(__file__).resolve().parent.parent / "docs" / "report")
    ship_to = ship_to if (profile == "full" if ship is None else ship) else None
    if report_only:
        if not (out / "results.json").is_file():
            raise click.BadParameter(f"{out} holds no results.json of a finished run", param_hint="--out")
        rerender(out, ship_to)
        click.echo(f"report: {out / 'report' / 'README.md'}")
        return
    results = run_pipeline(cfg, out, ship_to=ship_to, workers=workers, command=command, backend=backend,
                           ray_address=ray_address)
    click.echo(f"run directory: {out}  (report: {out / 'report' / 'README.md'})")
    click.echo(f"wall time: {results['wall_s']['total'] / 60:.1f} min")


def _scenario_sources(items: tuple[str, ...]) -> tuple[str, ...]:
    """Files and folders as absolute paths (a resumed or re-rendered run finds them from anywhere);
    built-in names as they are."""
    return tuple(str(Path(item).resolve()) if Path(item).exists() else item for item in items)


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
@click.option("--bler-target", "bler_target", type=BlerTarget(), default="0.1", show_default=True,
              help="Operator first-tx BLER target the model holds (its NACK price), in (0, 1); 'max' for "
                   "throughput mode (no target). OLLA runs at the same target (at 0.1 for 'max').")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the model's KPIs + 'olla').")
def evaluate(model: str, scenario: str, slots: int, seed: int, ues: int | None, bler_target: float | None,
             as_json: bool) -> None:
    """Evaluate an ONNX policy in closed loop on one scenario at an operator BLER target, next to OLLA at
    the same target on the same seed (common random numbers).

    KPIs use the keys of `ranpd simulate --json` (with `goodput_mbps` and `residual_loss`); `olla` holds
    OLLA's under the same keys; `bler_target` is the target (null: throughput mode)."""
    require_extra("evaluate", "train", "tqdm")
    from ranpd.simulator.engine import run_policy
    from ranpd.simulator.observation import DEFAULT_BLER_TARGET, OBS_SPEC_VERSION
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
        policy = onnx_policy(path, path.stem, bler_target)
    except ValueError as exc:           # ModelError, or the card's pydantic ValidationError
        raise click.ClickException(" ".join(f"cannot evaluate {path}: {exc}".split())) from exc
    try:
        sc = load_scenario(scenario)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from exc
    kpis = run_policy(sc, policy, slots=slots, seed=seed, n_ues=ues, progress=not as_json)
    olla_target = DEFAULT_BLER_TARGET if bler_target is None else bler_target
    olla = run_policy(sc, Olla(olla_target), slots=slots, seed=seed, n_ues=ues, progress=not as_json)
    result = {**kpis, "model": str(path), "bler_target": bler_target, "olla": {**olla, "target_bler": olla_target}}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    mode = "throughput mode" if bler_target is None else f"target {bler_target:g}"
    table = Table(title=f"{sc.name}: {path.name} ({mode}) vs OLLA {olla_target:g} ({slots} slots, seed {seed})")
    for col in ("KPI", path.stem, "OLLA", "change"):
        table.add_column(col, justify="right" if col != "KPI" else "left")
    for key in ("goodput_mbps", "throughput_p5_mbps", "cell_throughput_mbps", "spectral_efficiency",
                "bler_first_tx", "residual_loss", "mean_mcs"):
        a, b = kpis[key], olla[key]
        change = f"{100 * (a / b - 1):+.1f}%" if b else "n/a"
        table.add_row(key, f"{a:.4g}", f"{b:.4g}", change)
    Console().print(table)
