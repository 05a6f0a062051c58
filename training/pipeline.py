"""`ranpd train`: teachers -> distillation -> export -> evaluation -> report, in one run directory.

Run directory layout:
    config.json                       the profile, verbatim
    logs/<model>.json                 training logs (losses, rewards, epsilon, DAgger rounds)
    models/<model>.onnx + .card.json  every teacher and student, with model cards
    results.json                      KPIs[scenario][policy] and the headline summary
    report/README.md + *.png          the evaluation report
With `ship`, the best student (by mean UE throughput over the scenarios) becomes the packaged
default (`xapp/models/default.onnx` + card + int8 variant) and the report is copied to docs/report.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, FAMILIES, Scenario, randomized_scenario
from ranpd.training import report as rpt
from ranpd.training.config import TrainConfig
from ranpd.training.distill import DistillGroup, distill
from ranpd.training.dqn import train_dqn
from ranpd.training.evaluate import BASELINES, KPI_KEYS, PolicySpec, evaluate, tune_olla
from ranpd.training.export import QUANTIZATION, argmax_agreement, export_onnx, ort_scores, parity, quantize_int8, write_card
from ranpd.training.networks import count_params, describe
from ranpd.xapp.model import PACKAGED_MODEL
from ranpd.xapp.model_card import ModelCard, card_path_for

SHIPPED_REPORT = Path(__file__).resolve().parent.parent / "docs" / "report"

console = Console(stderr=True)


def _save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def domain_randomised(seed: int, n_random: int = 30) -> list[Scenario]:
    """The generalist's training set: every built-in plus `n_random` draws of `randomized_scenario`
    (a fixed, seeded list, so the built-ins themselves are part of what the generalist sees)."""
    rng = np.random.default_rng(seed)
    drawn = [randomized_scenario(rng) for _ in range(n_random)]
    return list(BUILTIN_SCENARIOS.values()) + [sc.model_copy(update={"name": f"{sc.name}-{i}"})
                                               for i, sc in enumerate(drawn)]


def run_pipeline(cfg: TrainConfig, out: Path, ship: bool = False, workers: int = 1,
                 command: str = "ranpd train") -> dict[str, Any]:
    """Run every stage of `cfg` into `out`; return the results (also saved as results.json).
    `workers` processes run the closed-loop evaluation; `command` is quoted in the report and cards."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    wall: dict[str, float] = {}
    out.mkdir(parents=True, exist_ok=True)
    _save_json(out / "config.json", cfg.to_dict())
    scenarios = list(BUILTIN_SCENARIOS.values())
    family_of = {s.name: s.family for s in scenarios}
    models = out / "models"

    # 1. Teachers: one specialist per family, one generalist with domain randomisation,
    #    and the ablation: the student's architecture trained by the same RL with the same budget.
    t0 = time.perf_counter()
    specialists, logs = {}, {}
    for i, (family, names) in enumerate(FAMILIES.items()):
        console.log(f"teacher: specialist {family} on {names}")
        result = train_dqn(cfg.teacher, [BUILTIN_SCENARIOS[n] for n in names], seed=cfg.seed + 1 + i,
                           desc=f"teacher {family}")
        specialists[family], logs[f"teacher-{family}"] = result.q_network, result.log
    console.log("teacher: generalist (domain randomisation over every scenario)")
    randomised = domain_randomised(cfg.seed)
    generalist = train_dqn(cfg.teacher, randomised, seed=cfg.seed, desc="teacher generalist",
                           snapshot_at=cfg.curve_steps)
    logs[rpt.TEACHER] = generalist.log
    console.log("ablation: student-sized network trained by RL from scratch")
    scratch = train_dqn(cfg.scratch, randomised, seed=cfg.seed, desc="RL from scratch",
                        snapshot_at=cfg.curve_steps)
    logs[rpt.SCRATCH] = scratch.log
    wall["teachers"] = time.perf_counter() - t0

    # 2. Distillation: single-policy (generalist) and multi-policy (one specialist per family).
    t0 = time.perf_counter()
    console.log("distillation: single-policy")
    single = distill([DistillGroup("all", randomised, generalist.q_network)], cfg.distill,
                     seed=cfg.seed, holdout=cfg.evaluation.holdout_states, desc="distil single")
    console.log("distillation: multi-policy")
    multi = distill([DistillGroup(f, [BUILTIN_SCENARIOS[n] for n in names], specialists[f])
                     for f, names in FAMILIES.items()], cfg.distill, seed=cfg.seed,
                    holdout=cfg.evaluation.holdout_states, desc="distil multi")
    logs["distil-single"], logs["distil-multi"] = single.log, multi.log
    wall["distillation"] = time.perf_counter() - t0
    for name, log in logs.items():
        _save_json(out / "logs" / f"{name}.json", log)

    # 3. Export: every model to ONNX with its card (the xApp's loader needs the card); students
    #    also as int8. Parity and int8 agreement on held-out states the students visited.
    t0 = time.perf_counter()
    config = cfg.to_dict()
    names = list(BUILTIN_SCENARIOS)
    teacher_cfg = {"profile": cfg.profile, "seed": cfg.seed, "teacher": config["teacher"]}
    cards: dict[str, dict[str, Any]] = {}      # policy name -> write_card arguments

    def export(policy: str, model: torch.nn.Module, file: str, **card_args) -> Path:
        path = export_onnx(model, models / file, cfg.onnx_opset)
        cards[policy] = dict(onnx_path=path, name=policy, model=model, opset=cfg.onnx_opset, **card_args)
        write_card(**cards[policy])
        return path

    paths = {rpt.TEACHER: export(rpt.TEACHER, generalist.q_network, f"{rpt.TEACHER}.onnx", kind="teacher",
                                 architecture=describe(cfg.teacher.hidden), scenarios=names + ["randomized"],
                                 training_config=teacher_cfg)}
    for family, net in specialists.items():
        paths[family] = export(f"teacher-{family}", net, f"teacher-{family}.onnx", kind="teacher",
                               architecture=describe(cfg.teacher.hidden), scenarios=FAMILIES[family],
                               training_config=teacher_cfg)
    paths[rpt.SCRATCH] = export(rpt.SCRATCH, scratch.q_network, f"{rpt.SCRATCH}.onnx", kind="student",
                                architecture=describe(cfg.distill.hidden), scenarios=names + ["randomized"],
                                training_config={"profile": cfg.profile, "seed": cfg.seed,
                                                 "rl_from_scratch": asdict(cfg.scratch)})
    curve = []                                   # learning-curve snapshots, evaluated like the rest
    for base, result in ((rpt.TEACHER, generalist), (rpt.SCRATCH, scratch)):
        for step, net in result.snapshots.items():
            curve.append(f"{base}@{step}")
            paths[curve[-1]] = export(curve[-1], net, f"curve/{curve[-1]}.onnx", **{
                **{k: v for k, v in cards[base].items() if k in ("kind", "architecture", "scenarios")},
                "training_config": {**cards[base]["training_config"], "snapshot_after_env_steps": step}})
    students: dict[str, dict] = {}
    for name, result in ((rpt.SINGLE, single), (rpt.MULTI, multi)):
        student_args = dict(kind="student", architecture=describe(cfg.distill.hidden), scenarios=names,
                            training_config={"profile": cfg.profile, "seed": cfg.seed, "distill": config["distill"],
                                             "teachers": "teacher-generalist" if name == rpt.SINGLE else
                                             "one specialist per family: " + ", ".join(FAMILIES)})
        fp32 = paths[name] = export(name, result.student, f"{name}.onnx", **student_args)
        half = len(result.holdout_states) // 2        # calibrate on one half, measure on the other
        int8 = paths[f"{name}-int8"] = quantize_int8(fp32, models / f"{name}.int8.onnx", result.holdout_states[:half])
        cards[f"{name}-int8"] = {**cards[name], "onnx_path": int8, "name": f"{name}-int8", "precision": "int8",
                                 "architecture": f"{cards[name]['architecture']}, {QUANTIZATION}"}
        write_card(**cards[f"{name}-int8"])
        held = result.holdout_states[half:]
        students[name] = {
            "architecture": describe(cfg.distill.hidden), "params": count_params(result.student),
            "bytes_fp32": fp32.stat().st_size, "bytes_int8": int8.stat().st_size,
            "parity": parity(result.student, fp32, held),
            "int8_argmax_agreement": argmax_agreement(ort_scores(fp32, held), ort_scores(int8, held)),
            "holdout_states": len(held),
        }
    wall["export"] = time.perf_counter() - t0

    # 4. Closed-loop evaluation on every built-in scenario, same seeds for all; each scenario's
    #    specialist is its family's teacher.
    t0 = time.perf_counter()
    console.log("evaluation: tuning OLLA per scenario")
    olla_best = tune_olla(scenarios, cfg.evaluation, workers)

    def onnx(policy: str, path_key: str | None = None) -> PolicySpec:
        return PolicySpec(policy, "onnx", {"path": str(paths[path_key or policy])})

    learned = (rpt.TEACHER, rpt.SINGLE, rpt.MULTI, rpt.SINGLE_INT8, rpt.MULTI_INT8, rpt.SCRATCH)
    policies = {sc.name: [*BASELINES, olla_best[sc.name], onnx(rpt.SPECIALIST, sc.family), *map(onnx, learned),
                          *map(onnx, curve)] for sc in scenarios}
    console.log("evaluation: every policy on every scenario")
    table = evaluate(scenarios, policies, cfg.evaluation, workers)
    olla_params = {s: f"target {p.params['target_bler']:g}, step {p.params['step_up_db']:g} dB"
                   for s, p in olla_best.items()}
    wall["evaluation"] = time.perf_counter() - t0
    wall["total"] = time.perf_counter() - started
    head = rpt.summary(table, family_of)

    # 5. Cards again, now with the figures measured above; the results and the report.
    def figures(policy: str, subset: list[str]) -> dict[str, Any]:
        return {"eval_slots": cfg.evaluation.slots, "eval_seeds": list(cfg.evaluation.seeds),
                **{key: {s: table[s][policy][key] for s in subset} for key in KPI_KEYS}}

    for policy, args in cards.items():
        if policy.removeprefix("teacher-") in FAMILIES:
            evaluation = figures(rpt.SPECIALIST, FAMILIES[policy.removeprefix("teacher-")])
        else:
            evaluation = {**figures(policy, names), **head.get(policy, {})}
        if policy in head["retention"]:
            evaluation["retention"] = head["retention"][policy]
        if policy.removesuffix("-int8") in students:
            evaluation.update(students[policy.removesuffix("-int8")])
        write_card(**args, evaluation=evaluation)
    results = {"table": table, "summary": head, "olla_best": olla_params, "students": students, "wall_s": wall}
    _save_json(out / "results.json", results)
    report_path = rpt.write_report(out / "report", table=table, families=family_of, olla_best=olla_params,
                                   curve_steps=list(cfg.curve_steps) + [cfg.teacher.env_steps],
                                   students=students, logs={k: v for k, v in logs.items() if k.startswith(("teacher", "scratch"))},
                                   config=config, wall_s=wall, command=command)
    console.log(f"report: {report_path}")

    if ship:
        shipped = max((rpt.SINGLE, rpt.MULTI), key=lambda p: np.mean([table[s][p]["throughput_mbps"] for s in table]))
        install_student(paths[shipped], PACKAGED_MODEL, name="default", origin=shipped, command=command)
        install_student(paths[f"{shipped}-int8"], PACKAGED_MODEL.with_name("default.int8.onnx"),
                        name="default-int8", origin=f"{shipped}-int8", command=command)
        if SHIPPED_REPORT.exists():
            shutil.rmtree(SHIPPED_REPORT)
        shutil.copytree(out / "report", SHIPPED_REPORT)
        console.log(f"shipped {shipped} as {PACKAGED_MODEL} and the report to {SHIPPED_REPORT}")
        results["shipped"] = shipped
    return results


def install_student(src: Path, dst: Path, name: str, origin: str, command: str) -> None:
    """Copy an ONNX student and its card into the package; the card names its origin and the
    command that regenerates it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    card = ModelCard.load(card_path_for(src))
    card = card.model_copy(update={"name": name, "training_config": {**card.training_config, "origin": origin,
                                                               "regenerate": command}})
    card.save(card_path_for(dst))
