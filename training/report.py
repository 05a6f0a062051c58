"""The evaluation report: markdown tables and matplotlib plots, written by the pipeline.

Every figure comes from the tables the pipeline measured (`results.json` in the run directory:
KPIs[section][scenario][policy]); nothing here is typed in by hand. The targets table and the
"where the student does not beat OLLA" list are generated from the same numbers, so a missed
target shows as missed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ranpd.simulator.observation import PRICE_STEP  # noqa: E402
from ranpd.training.export import QUANTIZATION  # noqa: E402
from ranpd.training.networks import PricedQ, count_params, describe  # noqa: E402

# policy names in the evaluation tables
TEACHER, SPECIALIST = "teacher-generalist", "teacher-specialist"
SINGLE, MULTI, SINGLE_INT8, MULTI_INT8 = "student-single", "student-multi", "student-single-int8", "student-multi-int8"
SINGLE_GUARDED = "student-single-guarded"
SCRATCH, DISTILLED = "scratch-small-rl", "distilled"
STUDENTS = (SINGLE, MULTI)
TEACHER_OF = {SINGLE: TEACHER, MULTI: SPECIALIST, SINGLE_INT8: TEACHER, MULTI_INT8: SPECIALIST}

# the issue's acceptance thresholds
BLER_TOLERANCE = 0.02            # first-tx BLER within +-2 points of the operator target
MIN_GAIN_AT_TARGET = 0.05        # >= +5% mean UE throughput over OLLA at the same target
RESIDUAL_SLACK = 0.005           # residual loss <= OLLA's + 0.5 points
BUILTIN_SLACK = 0.01             # never more than 1% below best-tuned OLLA on a built-in
MIN_RETENTION = 0.98


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def gain(row: dict, policy: str, base: str, key: str = "throughput_mbps") -> float:
    return row[policy][key] / row[base][key] - 1 if row[base][key] else float("nan")


def _throughput_sections(tables: dict) -> list[str]:
    """The built-ins in throughput mode, under their own and every other interference model."""
    return [s for s in tables if s == "builtins" or s.startswith("builtins/")]


def _check(name: str, values: dict[str, float], margin, fmt) -> dict[str, Any]:
    """One target: per-scenario values, passing where `margin(value) >= 0`; the worst is the
    scenario with the smallest margin."""
    margins = {sc: margin(v) for sc, v in values.items()}
    worst = min(margins, key=margins.get)
    return {"target": name, "passed": sum(m >= 0 for m in margins.values()), "of": len(values),
            "met": all(m >= 0 for m in margins.values()), "worst": f"{worst}: {fmt(values[worst])}", "values": values}


def summary(tables: dict, cfg) -> dict[str, Any]:
    """The acceptance checks for both students, and mean gains per section."""
    out: dict[str, Any] = {"checks": {}, "mean_gains": {}}
    for student in STUDENTS:
        checks = []
        for target in cfg.evaluation.bler_targets:
            t = tables[f"heldout@{target:g}"]
            checks += [
                _check(f"held-out @{target:g}: first-tx BLER within ±{100 * BLER_TOLERANCE:g} pts of {target:g}",
                       {sc: r[student]["bler_first_tx"] - target for sc, r in t.items()},
                       lambda v: BLER_TOLERANCE - abs(v), lambda v: f"{100 * v:+.1f} pts"),
                _check(f"held-out @{target:g}: throughput ≥ {_pct(MIN_GAIN_AT_TARGET)} vs OLLA {target:g}",
                       {sc: gain(r, student, "olla") for sc, r in t.items()},
                       lambda v: v - MIN_GAIN_AT_TARGET, _pct),
                _check(f"held-out @{target:g}: residual loss ≤ OLLA's + {100 * RESIDUAL_SLACK:g} pts",
                       {sc: r[student]["bler_residual"] - r["olla"]["bler_residual"] for sc, r in t.items()},
                       lambda v: RESIDUAL_SLACK - v, lambda v: f"{100 * v:+.2f} pts"),
                _check(f"held-out @{target:g}: 5th-percentile UE throughput ≥ OLLA's",
                       {sc: r[student]["throughput_p5_mbps"] - r["olla"]["throughput_p5_mbps"] for sc, r in t.items()},
                       lambda v: v, lambda v: f"{v:+.3f} Mbit/s"),
            ]
        checks.append(_check("held-out, throughput mode: ≥ best-tuned OLLA",
                             {sc: gain(r, student, "olla-best") for sc, r in tables["heldout@max"].items()},
                             lambda v: v, _pct))
        for section in _throughput_sections(tables):
            model = section.partition("/")[2] or "own interference model"
            checks.append(_check(f"built-ins ({model}), throughput mode: ≥ best-tuned OLLA − {100 * BUILTIN_SLACK:g}%",
                                 {sc: gain(r, student, "olla-best") for sc, r in tables[section].items()},
                                 lambda v: v + BUILTIN_SLACK, _pct))
        for section in ("builtins", "heldout@max", "heldout@0.1"):
            if section in tables:
                checks.append(_check(f"retention ({section}): student ÷ its teacher ≥ {MIN_RETENTION:g}",
                                     {sc: r[student]["throughput_mbps"] / r[TEACHER_OF[student]]["throughput_mbps"]
                                      for sc, r in tables[section].items()},
                                     lambda v: v - MIN_RETENTION, lambda v: f"{v:.3f}"))
        out["checks"][student] = checks
    for section, table in tables.items():
        base = "olla-best" if "olla-best" in next(iter(table.values())) else "olla"
        policies = [p for p in next(iter(table.values())) if p not in ("illa", "olla", "olla-best")]
        out["mean_gains"][section] = {"baseline": base, **{
            p: float(np.mean([gain(r, p, base) for r in table.values()])) for p in policies}}
    return out


def choose_student(tables: dict) -> str:
    """The student to ship: the better mean gain over the built-ins (throughput mode vs best-tuned
    OLLA, plus at 10% vs OLLA 10%); the held-out set plays no part in the choice."""
    def score(student: str) -> float:
        return sum(np.mean([gain(r, student, base) for r in tables[section].values()])
                   for section, base in (("builtins", "olla-best"), ("builtins@0.1", "olla")))
    return max(STUDENTS, key=score)


def card_figures(tables: dict, policy: str) -> dict[str, Any]:
    """What a model card records: per section, the policy's KPIs per scenario."""
    keys = ("throughput_mbps", "bler_first_tx", "bler_residual", "throughput_p5_mbps")
    return {section: {sc: {k: row[policy][k] for k in keys} for sc, row in table.items()}
            for section, table in tables.items() if policy in next(iter(table.values()))}


# ------------------------------------------------------------------ tables and plots
def _target_table(table: dict) -> list[str]:
    lines = ["| scenario | OLLA Mbit/s | student-single | student-multi | teacher | first-tx BLER single / multi / OLLA | "
             "residual loss single / OLLA | p5 Mbit/s single / OLLA | guard share |", "|---" * 9 + "|"]
    for sc, r in table.items():
        guarded = r.get(SINGLE_GUARDED, {}).get("guard_share")
        lines.append(
            f"| {sc} | {r['olla']['throughput_mbps']:.3f} | {_pct(gain(r, SINGLE, 'olla'))} | {_pct(gain(r, MULTI, 'olla'))} | "
            f"{_pct(gain(r, TEACHER, 'olla'))} | {r[SINGLE]['bler_first_tx']:.3f} / {r[MULTI]['bler_first_tx']:.3f} / "
            f"{r['olla']['bler_first_tx']:.3f} | {100 * r[SINGLE]['bler_residual']:.2f}% / {100 * r['olla']['bler_residual']:.2f}% | "
            f"{r[SINGLE]['throughput_p5_mbps']:.3f} / {r['olla']['throughput_p5_mbps']:.3f} | "
            f"{'—' if guarded is None else f'{100 * guarded:.1f}%'} |")
    return lines


def _throughput_mode_table(table: dict) -> list[str]:
    policies = [p for p in (TEACHER, SPECIALIST, SINGLE, MULTI, SINGLE_INT8, MULTI_INT8, SCRATCH)
                if p in next(iter(table.values()))]
    lines = ["| scenario | best OLLA (target, step) | illa | " + " | ".join(policies) + " |", "|---" * (len(policies) + 3) + "|"]
    for sc, r in table.items():
        best = r["olla-best"]
        lines.append(f"| {sc} | {best['throughput_mbps']:.3f} ({best.get('olla_params', '')}) | {_pct(gain(r, 'illa', 'olla-best'))} | "
                     + " | ".join(_pct(gain(r, p, "olla-best")) for p in policies) + " |")
    return lines


def _sizes_rows(table: dict, sizes: list[tuple[int, ...]]) -> tuple[list[str], list[dict]]:
    rows, points = [], []
    for hidden in sizes:
        params = count_params(PricedQ(hidden))
        distilled, scratch = f"{DISTILLED}-{params}", f"{SCRATCH}-{params}"
        d = float(np.mean([gain(r, distilled, "olla") for r in table.values()]))
        s = float(np.mean([gain(r, scratch, "olla") for r in table.values()]))
        bd = float(np.mean([r[distilled]["bler_first_tx"] for r in table.values()]))
        bs = float(np.mean([r[scratch]["bler_first_tx"] for r in table.values()]))
        rows.append(f"| {describe(hidden)} | {params:,} | {params * 32 / 1e3:.0f} kbit | {_pct(d)} | {_pct(s)} | "
                    f"{bd:.3f} / {bs:.3f} |")
        points.append({"params": params, "distilled": d, "scratch": s})
    return rows, points


def _scratch_rows(tables: dict) -> list[str]:
    """The distilled students against RL from scratch at the shipped size, wherever both ran: mean
    gains over the section's baseline, and which is best (so a scratch student that beats every
    distilled one shows, whatever was shipped)."""
    lines = ["| section | baseline | student-single | student-multi | RL from scratch (same size) | best |",
             "|---|---|---|---|---|---|"]
    for section, table in tables.items():
        row = next(iter(table.values()))
        if SCRATCH not in row or section.startswith("sizes"):
            continue
        base = "olla-best" if "olla-best" in row else "olla"
        means = {p: float(np.mean([gain(r, p, base) for r in table.values()])) for p in (SINGLE, MULTI, SCRATCH)}
        lines.append(f"| {section} | {base} | {_pct(means[SINGLE])} | {_pct(means[MULTI])} | {_pct(means[SCRATCH])} | "
                     f"{max(means, key=means.get)} |")
    return lines


def plot_sizes(points: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [p["params"] for p in points]
    ax.plot(x, [100 * p["distilled"] for p in points], "o-", label="distilled from the generalist")
    ax.plot(x, [100 * p["scratch"] for p in points], "s--", label="RL from scratch (same budget)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("held-out throughput vs OLLA 10% (%), target 10%")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gains(table: dict, path: Path, title: str, base: str = "olla") -> None:
    scenarios = list(table)
    policies = [p for p in (TEACHER, SPECIALIST, SINGLE, MULTI, SINGLE_INT8) if p in table[scenarios[0]]]
    x = np.arange(len(scenarios))
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(11, 4.2))
    for i, p in enumerate(policies):
        ax.bar(x + i * width, [100 * gain(table[s], p, base) for s in scenarios], width, label=p)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x + 0.4 - width / 2, scenarios, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(f"mean UE throughput vs {base} (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cdfs(table, path: Path, policies) -> None:
    scenarios = list(table)
    cols = 3
    rows = -(-len(scenarios) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, sc in zip(axes.flat, scenarios):
        for p in policies:
            values = np.sort(table[sc][p]["ue_throughput_mbps"])
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=p, lw=1.2)
        ax.set_title(sc, fontsize=8)
        ax.set_xlabel("UE throughput (Mbit/s)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(scenarios):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(logs: dict[str, list[dict]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, log in logs.items():
        rows = [r for r in log if r.get("mean_reward") is not None]
        ax.plot([r["step"] for r in rows], [r["mean_reward"] for r in rows], label=name, lw=1)
    ax.set_xlabel("environment step")
    ax.set_ylabel("mean normalised delivered bits (incl. exploration)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shortfalls(tables: dict, student: str) -> list[str]:
    """Every (section, scenario) where the student is below its baseline, with the symptom."""
    rows = []
    for section, table in tables.items():
        if section.startswith("sizes"):
            continue
        base = "olla-best" if "olla-best" in next(iter(table.values())) else "olla"
        for sc, r in table.items():
            g = gain(r, student, base)
            if not g < 0:
                continue
            s, b = r[student], r[base]
            symptom = ("more aggressive: higher first-tx BLER" if s["bler_first_tx"] > b["bler_first_tx"] + 0.01
                       else "more conservative: lower MCS" if s["mean_mcs"] < b["mean_mcs"] - 0.3
                       else "same operating point, worse placement of the MCS")
            rows.append(f"| {section} | {sc} | {base} | {_pct(g)} | {s['bler_first_tx']:.3f} / {b['bler_first_tx']:.3f} | "
                        f"{s['mean_mcs']:.1f} / {b['mean_mcs']:.1f} | {symptom} |")
    if not rows:
        return ["None: the student is at or above its baseline in every section and scenario."]
    return ["| section | scenario | baseline | throughput | first-tx BLER student / baseline | mean MCS | symptom |",
            "|---|---|---|---|---|---|---|", *rows]


def _guard_rows(tables: dict, targets) -> list[str]:
    lines = ["| target | scenario | guard share | throughput guarded vs unguarded | first-tx BLER guarded / unguarded | "
             "residual loss guarded / unguarded |", "|---|---|---|---|---|---|"]
    for target in targets:
        for sc, r in tables[f"heldout@{target:g}"].items():
            g, u = r[SINGLE_GUARDED], r[SINGLE]
            lines.append(f"| {target:g} | {sc} | {100 * (g['guard_share'] or 0):.1f}% | {_pct(gain(r, SINGLE_GUARDED, SINGLE))} | "
                         f"{g['bler_first_tx']:.3f} / {u['bler_first_tx']:.3f} | {100 * g['bler_residual']:.2f}% / "
                         f"{100 * u['bler_residual']:.2f}% |")
    return lines


def write_report(out: Path, *, tables: dict, summary: dict, students: dict, sets, logs: dict, config,
                 wall_s: dict, command: str, shipped: str | None, resumed: list[str] = ()) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ev = config.evaluation
    student = shipped or choose_student(tables)
    plot_gains(tables["heldout@0.1"], out / "heldout_gains.png", "held-out set at operator target 10%: vs OLLA 10%")
    plot_gains(tables["builtins"], out / "builtin_gains.png", "built-ins, throughput mode: vs best-tuned OLLA", "olla-best")
    plot_cdfs(tables["heldout@0.1"], out / "ue_throughput_cdf.png", ("olla", TEACHER, SINGLE, MULTI))
    plot_training(logs, out / "training.png")
    size_rows, points = _sizes_rows(tables["sizes@0.1"], list(config.sizes))
    plot_sizes(points, out / "sizes.png")

    minutes = {k: "unknown" if v is None else f"{v / 60:.1f} min" for k, v in wall_s.items()}
    md = [
        "# ranpd evaluation report", "",
        f"Generated by `{command}` (profile `{config.profile}`, seed {config.seed}). Closed loop in the simulator, "
        f"{ev.slots} slots per run, evaluation seeds {ev.seeds} (the built-ins in throughput mode on the first "
        f"{min(ev.builtin_seeds, len(ev.seeds))} of them, and on the first under {', '.join(ev.interference_models)} "
        f"interference; every policy sees the same channel, traffic and decoding luck). Best-tuned OLLA: per scenario (and interference model) the best of targets {ev.olla_targets} × "
        f"steps {ev.olla_steps_db} dB on tuning seed {ev.olla_tune_seed}, reported on the evaluation seeds.", "",
        f"Pipeline wall time: **{minutes['total']}** (" + ", ".join(f"{k} {v}" for k, v in minutes.items() if k != "total")
        + ")" + (f"; resumed from the checkpoints of an earlier run (their time is not in these figures): "
                 f"{', '.join(resumed)}" if resumed else "")
        + ". Shipped student: **" + (shipped or "none (not shipped)") + "**, chosen on the built-ins only.", "",
        "## Method", "",
        f"- **Objective**: each MCS is scored by the Lagrangian of *max goodput s.t. first-tx BLER = the operator's "
        f"target*: score = V − price·P, with V the bits its transport block delivers per transmission its HARQ takes "
        f"(normalised by the top MCS's TBS; after chase-combined retransmissions, 0 when lost after the last one, so "
        f"residual loss costs the air time it took) and P the NACK probability of its first transmission, both heads of "
        f"one network. V is regressed on bits delivered / transmissions weighted by the transmissions, so it converges to "
        f"the renewal ratio E[bits] / E[transmissions]. The price is each UE's Lagrange multiplier, held by "
        f"dual ascent on its own HARQ-ACKs in the observation builder (log(price + 1) steps {PRICE_STEP:g} up on a NACK, "
        f"{PRICE_STEP:g}·t/(1−t) down on an ACK), so the target is held by construction; throughput mode holds the price "
        f"at 0. The heads are regressed on the outcome of the action taken (DQN with γ = 0: a constrained contextual "
        f"bandit). The MCS is non-decreasing in the CQI by construction: each state is also scored at every better CQI "
        f"and gets the minimum of the MCS chosen there.",
        f"- **Teachers** ({describe(tuple(config.teacher.hidden))}, {config.teacher.env_steps} env steps of "
        f"{config.teacher.n_ues} UEs): one specialist per randomisation family ({', '.join(sets.specialists)}; "
        + (f"the user's scenarios {', '.join(f'`{sc.name}`' for sc in sets.generalist)} grouped by family"
           if config.scenarios else f"{config.randomized_per_family} seeded draws each over every simulator axis, "
           "plus the built-ins of the family")
        + f") and a generalist on all of them; UEs draw operator targets from {config.teacher.bler_targets} "
        "(None: throughput mode).",
        f"- **Students** ({describe(tuple(config.distill.hidden))}): policy distillation (KL at τ = {config.distill.tau} on "
        f"the priced scores, at the state's own price and at resampled prices), teacher rollouts then "
        f"{config.distill.dagger_rounds} DAgger rounds. Single-policy: generalist → student. Multi-policy: each family's "
        f"specialist labels its own scenarios, one student, no family id in its input.",
        "- **Held-out set** (never trained or tuned on): " + ", ".join(f"`{sc.name}`" for sc in sets.heldout) + ".",
        f"- **int8**: ONNX Runtime {QUANTIZATION}.", "",
        "## Targets", "",
        f"Checked on the shipped student (`{student}`); the other student's verdicts are in results.json.", "",
        "| target | scenarios passing | worst | verdict |", "|---|---|---|---|",
        *(f"| {c['target']} | {c['passed']}/{c['of']} | {c['worst']} | {'met' if c['met'] else '**not met**'} |"
          for c in summary["checks"][student]), "",
    ]
    for target in ev.bler_targets:
        md += [f"## Held-out set at operator target {target:g} (vs OLLA at {target:g})", "",
               *_target_table(tables[f"heldout@{target:g}"]), ""]
    md += ["![held-out gains](heldout_gains.png)", "", "![UE throughput CDFs](ue_throughput_cdf.png)", "",
           "## Throughput mode (no target) vs best-tuned OLLA", "", "### Held-out set", "",
           *_throughput_mode_table(tables["heldout@max"]), ""]
    for section in _throughput_sections(tables):
        model = section.partition("/")[2] or "each scenario's own interference model"
        md += [f"### Built-ins, {model}", "", *_throughput_mode_table(tables[section]), ""]
    md += ["![built-in gains](builtin_gains.png)", "", "## Built-ins at operator target 10% (vs OLLA 10%)", "",
           *_target_table(tables["builtins@0.1"]), "",
           "## What distillation buys (held-out set, target 10%)", "",
           "Each size distilled from the generalist, and trained by the same DQN with the teacher's budget and no teacher.", "",
           "| architecture | parameters | fp32 size | distilled vs OLLA 10% | RL from scratch vs OLLA 10% | first-tx BLER distilled / scratch |",
           "|---|---|---|---|---|---|", *size_rows, "", "![sizes](sizes.png)", "",
           "At the shipped size, in throughput mode (mean gain over each section's baseline):", "",
           *_scratch_rows(tables), "",
           "## Students", "", "| student | architecture | parameters | fp32 / int8 bytes | torch↔ONNX argmax | int8↔fp32 argmax |",
           "|---|---|---|---|---|---|",
           *(f"| {name} | {s['architecture']} | {s['params']:,} | {s['bytes_fp32']:,} / {s['bytes_int8']:,} | "
             f"{s['parity']['argmax_agreement']:.4f} | {s['int8_argmax_agreement']:.4f} |" for name, s in students.items()), "",
           "## The per-UE guard", "",
           "`student-single-guarded` is the single-policy student behind the serving guard (simulator/guard.py): a UE "
           "whose NACK rate exceeds the target by the margin, or whose residual loss breaks the limit, is decided by "
           "OLLA at the target until it recovers. Share of first transmissions OLLA decided, and the effect:", "",
           *_guard_rows(tables, ev.bler_targets), "",
           f"## Where `{student}` does not beat its baseline", "", *_shortfalls(tables, student), "",
           "## Training", "", "![training](training.png)", ""]
    path = out / "README.md"
    path.write_text("\n".join(md))
    return path
