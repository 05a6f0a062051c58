"""`ranpd bench sensitivity`: where a policy's gain comes from, interference model by interference model.

Runs ILLA, OLLA at a 10 % target, the best-tuned OLLA (per scenario *and* interference model, picked
on a tuning seed, reported on the evaluation seeds) and optionally a learned model (ONNX + card)
over the built-in scenarios under each interference model of the simulator:

- `onoff`: the legacy model, six-plus neighbours switching the whole band on/off in 20 ms bursts,
  flat and unfaded — what the first shipped student was trained on;
- `always_on`: every neighbour on every PRB, flat and unfaded (the 3GPP full-buffer convention);
- `scheduled`: neighbours' per-slot, per-subband PRB use through each link's own fading (default).

A gain that holds only under `onoff` is an artefact of that model, not something to ship.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, Scenario
from ranpd.training.config import EvalConfig

INTERFERENCE_MODELS = ("onoff", "always_on", "scheduled")
POLICY_ORDER = ("illa", "olla", "olla-best", "model")


def with_interference(scenario: Scenario, model: str) -> Scenario:
    return scenario.model_copy(update={"interference_model": model})


def run_sensitivity(scenarios: list[Scenario], model_path: Path | None, cfg, workers: int = 1,
                    models: tuple[str, ...] = INTERFERENCE_MODELS) -> dict[str, Any]:
    """KPIs[interference model][scenario][policy] (mean over `cfg.seeds`) and the tuned OLLA settings."""
    from ranpd.training.evaluate import BASELINES, PolicySpec, evaluate, tune_olla

    out: dict[str, Any] = {"kpis": {}, "olla_best": {}, "scenarios": [sc.model_dump(mode="json") for sc in scenarios]}
    for model in models:
        variants = [with_interference(sc, model) for sc in scenarios]
        best = tune_olla(variants, cfg, workers=workers)
        policies = {sc.name: [*BASELINES, best[sc.name]] for sc in variants}
        if model_path is not None:
            for sc in variants:
                policies[sc.name].append(PolicySpec("model", "onnx", {"path": str(model_path), "bler_target": None}))
        out["kpis"][model] = evaluate(variants, policies, cfg, workers=workers)
        out["olla_best"][model] = {name: spec.params for name, spec in best.items()}
    return out


def gains(kpis: dict[str, dict[str, dict]], policy: str, base: str) -> dict[str, float]:
    """Throughput gain (%) of `policy` over `base` per scenario."""
    return {sc: 100.0 * (row[policy]["throughput_mbps"] / row[base]["throughput_mbps"] - 1.0)
            for sc, row in kpis.items() if policy in row and base in row}


def best_baseline_gains(kpis: dict[str, dict[str, dict]], policy: str) -> dict[str, float]:
    """Throughput gain (%) of `policy` over the better of ILLA and best-tuned OLLA, per scenario."""
    return {sc: 100.0 * (row[policy]["throughput_mbps"]
                         / max(row["illa"]["throughput_mbps"], row["olla-best"]["throughput_mbps"]) - 1.0)
            for sc, row in kpis.items() if policy in row}


def summary(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per interference model: mean gain over scenarios of each policy vs OLLA 10 %, vs best OLLA and (the
    model) vs the best baseline, plus how many scenarios the model loses to the best baseline."""
    table = {}
    for model, kpis in result["kpis"].items():
        row = {}
        for policy in ("illa", "olla-best", "model"):
            for base in ("olla", "olla-best"):
                if policy == base:
                    continue
                g = gains(kpis, policy, base)
                if g:
                    row[f"{policy}_vs_{base}_pct"] = float(np.mean(list(g.values())))
        best = best_baseline_gains(kpis, "model")
        if best:
            row["model_vs_best_baseline_pct"] = float(np.mean(list(best.values())))
            row["model_losses_to_best_baseline"] = sum(g < 0 for g in best.values())
        table[model] = row
    return table


def markdown(result: dict[str, Any], cfg, model_label: str) -> str:
    """The sensitivity report as markdown: summary, then per-model KPI tables."""
    lines = ["# Where the gain comes from: interference-model sensitivity", "",
             f"Built-in scenarios, {cfg.slots} slots, evaluation seeds {list(cfg.seeds)}, best-tuned OLLA picked "
             f"per scenario and interference model on seed {cfg.olla_tune_seed} from targets "
             f"{list(cfg.olla_targets)} x steps {list(cfg.olla_steps_db)} dB. Model: "
             f"{model_label}. BLER-curve level: "
             f"{', '.join(sorted({sc['bler_level'] for sc in result['scenarios']}))}. "
             "Throughput is goodput (after HARQ and RLC).", "",
             "## Mean throughput gain over the scenarios", "",
             "Best baseline: per scenario, the better of ILLA and the best-tuned OLLA. Losses: scenarios where "
             "the model's throughput is below the best baseline's.", "",
             "| interference | " + " | ".join(k.replace("_pct", "").replace("_", " ")
                                               for k in next(iter(summary(result).values()))) + " |",
             "|---|" + "---|" * len(next(iter(summary(result).values())))]
    for model, row in summary(result).items():
        lines.append(f"| {model} | " + " | ".join(f"{v:+.1f}%" if isinstance(v, float) else f"{v} of "
                                                  f"{len(result['kpis'][model])}" for v in row.values()) + " |")
    for model, kpis in result["kpis"].items():
        policies = [p for p in POLICY_ORDER if p in next(iter(kpis.values()))]
        lines += ["", f"## `{model}`: throughput (Mbit/s) and first-transmission BLER", "",
                  "| scenario | " + " | ".join(policies) + " | " + " | ".join(f"BLER {p}" for p in policies)
                  + " | best OLLA |",
                  "|---|" + "---|" * (2 * len(policies) + 1)]
        for sc, row in kpis.items():
            best = result["olla_best"][model][sc]
            lines.append(f"| {sc} | " + " | ".join(f"{row[p]['throughput_mbps']:.2f}" for p in policies) + " | "
                         + " | ".join(f"{row[p]['bler_first_tx']:.3f}" for p in policies)
                         + f" | {best['target_bler']:g} / {best['step_up_db']:g} dB |")
    scheduled = result["kpis"].get("scheduled", {})
    if scheduled:
        lines += ["", "## Baselines on every scenario (`scheduled` interference): all KPIs", "",
                  "| scenario | policy | goodput (Mbit/s) | p5 (Mbit/s) | BLER 1st tx | residual BLER | RLC resends "
                  "| UPT (Mbit/s) | packet delay p50 / p95 (ms) |", "|---|---|---|---|---|---|---|---|---|"]
        for sc, row in scheduled.items():
            for policy in ("illa", "olla", "olla-best"):
                k = row[policy]
                delay = ("n/a" if k["packet_delay_p50_ms"] is None
                         else f"{k['packet_delay_p50_ms']:.1f} / {k['packet_delay_p95_ms']:.1f}")
                upt = "n/a" if k["upt_mbps"] is None else f"{k['upt_mbps']:.2f}"
                lines.append(f"| {sc} | {policy} | {k['throughput_mbps']:.2f} | {k['throughput_p5_mbps']:.2f} | "
                             f"{k['bler_first_tx']:.3f} | {k['bler_residual']:.4f} | {k['rlc_resends']:.0f} | {upt} | "
                             f"{delay} |")
    return "\n".join(lines) + "\n"


@click.command("sensitivity")
@click.option("--model", "model", default="default", show_default=True,
              help="Learned model to include: an ONNX file with its card, 'default' (the shipped student) "
                   "or 'none' (baselines only).")
@click.option("--scenario", "scenarios", multiple=True,
              help="Built-in scenario name or scenario file (repeatable). Default: every built-in.")
@click.option("--slots", type=click.IntRange(min=50), default=1000, show_default=True, help="Slots per run.")
@click.option("--seeds", default="1001,1002", show_default=True, help="Evaluation seeds (comma-separated).")
@click.option("--interference", "interference", multiple=True, type=click.Choice(INTERFERENCE_MODELS),
              help="Interference model to run (repeatable). Default: all three.")
@click.option("--bler-level", type=click.Choice(["pdsch-awgn", "5g-lena"]), default=None,
              help="Override every scenario's BLER-curve level (default: the scenarios' own, pdsch-awgn).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as markdown to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_sensitivity(model, scenarios, slots, seeds, interference, bler_level, workers, markdown_path,
                      as_json) -> None:
    """ILLA, OLLA 10 %, best-tuned OLLA and a model over the scenarios under each interference model
    (onoff 20 ms, always on, network-scheduled): see where a policy's gain comes from."""
    from ranpd.cli import require_extra
    require_extra("bench sensitivity", "train", "tqdm")
    from ranpd.simulator.cli import load_scenario_or_fail
    from ranpd.xapp.model import PACKAGED_MODEL

    model_path = None if model == "none" else PACKAGED_MODEL if model == "default" else Path(model)
    if model_path is not None and not model_path.is_file():
        raise click.BadParameter(f"no model at {model_path}", param_hint="--model")
    try:
        seed_list = tuple(int(s) for s in seeds.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {seeds!r}", param_hint="--seeds") from exc
    chosen = [load_scenario_or_fail(s) for s in scenarios] or list(BUILTIN_SCENARIOS.values())
    if bler_level:
        chosen = [sc.model_copy(update={"bler_level": bler_level}) for sc in chosen]
    cfg = EvalConfig(slots=slots, seeds=seed_list, olla_steps_db=(0.5, 1.0))
    result = run_sensitivity(chosen, model_path, cfg, workers=workers, models=interference or INTERFERENCE_MODELS)
    label = {"none": "none", "default": "the shipped student (xapp/models/default.onnx)"}.get(model, model)
    if markdown_path:
        markdown_path.write_text(markdown(result, cfg, label))
    if as_json:
        click.echo(json.dumps({"summary": summary(result), **result}, default=float))
    else:
        click.echo(markdown(result, cfg, label))
