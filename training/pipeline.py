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

from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, FAMILIES
from ranpd.training import report as rpt
from ranpd.training.config import TrainConfig
from ranpd.training.distill import DistillGroup, distill
from ranpd.training.dqn import train_dqn
from ranpd.training.evaluate import BASELINES, PolicySpec, evaluate, tune_olla
from ranpd.training.export import argmax_agreement, export_onnx, ort_scores, parity, quantize_int8, write_card
from ranpd.training.networks import count_params, describe
from ranpd.xapp.model_card import ModelCard, card_path_for

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "xapp" / "models" / "default.onnx"
SHIPPED_REPORT = REPO_ROOT / "docs" / "report"

console = Console(stderr=True)


def _save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_pipeline(cfg: TrainConfig, out: Path, ship: bool = False, workers: int = 1,
                 command: str = "ranpd train") -> dict[str, Any]:
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
    generalist = train_dqn(cfg.teacher, scenarios, seed=cfg.seed, randomize=True, desc="teacher generalist")
    logs[rpt.TEACHER] = generalist.log
    console.log("ablation: student-sized network trained by RL from scratch")
    scratch = train_dqn(cfg.scratch, scenarios, seed=cfg.seed, randomize=True, desc="RL from scratch")
    logs[rpt.SCRATCH] = scratch.log
    wall["teachers"] = time.perf_counter() - t0

    # 2. Distillation: single-policy (generalist) and multi-policy (one specialist per family).
    t0 = time.perf_counter()
    console.log("distillation: single-policy")
    single = distill([DistillGroup("all", scenarios, generalist.q_network, randomize=True)], cfg.distill,
                     seed=cfg.seed, holdout=cfg.evaluation.holdout_states, desc="distil single")
    console.log("distillation: multi-policy")
    multi = distill([DistillGroup(f, [BUILTIN_SCENARIOS[n] for n in names], specialists[f])
                     for f, names in FAMILIES.items()], cfg.distill, seed=cfg.seed,
                    holdout=cfg.evaluation.holdout_states, desc="distil multi")
    logs["distil-single"], logs["distil-multi"] = single.log, multi.log
    wall["distillation"] = time.perf_counter() - t0
    for name, log in logs.items():
        _save_json(out / "logs" / f"{name}.json", log)

    # 3. Export: every model to ONNX with a card; students also as int8, with parity figures.
    t0 = time.perf_counter()
    config = cfg.to_dict()
    teacher_paths = {rpt.TEACHER: export_onnx(generalist.q_network, models / f"{rpt.TEACHER}.onnx", cfg.onnx_opset)}
    for family, net in specialists.items():
        teacher_paths[family] = export_onnx(net, models / f"teacher-{family}.onnx", cfg.onnx_opset)
    scratch_path = export_onnx(scratch.q_network, models / f"{rpt.SCRATCH}.onnx", cfg.onnx_opset)
    students: dict[str, dict] = {}
    student_paths: dict[str, Path] = {}
    for name, result in ((rpt.SINGLE, single), (rpt.MULTI, multi)):
        fp32 = export_onnx(result.student, models / f"{name}.onnx", cfg.onnx_opset)
        half = len(result.holdout_states) // 2        # calibrate on one half, measure on the other
        int8 = quantize_int8(fp32, models / f"{name}.int8.onnx", result.holdout_states[:half])
        held = result.holdout_states[half:]
        student_paths[name], student_paths[f"{name}-int8"] = fp32, int8
        students[name] = {
            "architecture": describe(cfg.distill.hidden), "params": count_params(result.student),
            "bytes_fp32": fp32.stat().st_size, "bytes_int8": int8.stat().st_size,
            "parity": parity(result.student, fp32, held),
            "int8_argmax_agreement": argmax_agreement(ort_scores(fp32, held), ort_scores(int8, held)),
            "holdout_states": len(held),
        }
    wall["export"] = time.perf_counter() - t0

    # 4. Closed-loop evaluation on every built-in scenario, same seeds for all.
    t0 = time.perf_counter()
    console.log("evaluation: tuning OLLA per scenario")
    olla_best = tune_olla(scenarios, cfg.evaluation, workers)

    def onnx(name: str, path: Path) -> PolicySpec:
        return PolicySpec(name, "onnx", {"path": str(path)})

    policies = {sc.name: [*BASELINES, olla_best[sc.name], onnx(rpt.TEACHER, teacher_paths[rpt.TEACHER]),
                          onnx(rpt.SPECIALIST, teacher_paths[sc.family]),
                          onnx(rpt.SINGLE, student_paths[rpt.SINGLE]), onnx(rpt.MULTI, student_paths[rpt.MULTI]),
                          onnx(rpt.SINGLE_INT8, student_paths[f"{rpt.SINGLE}-int8"]),
                          onnx(rpt.MULTI_INT8, student_paths[f"{rpt.MULTI}-int8"]),
                          onnx(rpt.SCRATCH, scratch_path)]
                for sc in scenarios}
    console.log("evaluation: every policy on every scenario")
    table = evaluate(scenarios, policies, cfg.evaluation, workers)
    olla_params = {s: f"target {p.params['target_bler']:g}, step {p.params['step_up_db']:g} dB"
                   for s, p in olla_best.items()}
    wall["evaluation"] = time.perf_counter() - t0
    wall["total"] = time.perf_counter() - started
    head = rpt.summary(table, family_of)

    # 5. Model cards with the figures measured above, the results and the report.
    def figures(policy: str) -> dict[str, Any]:
        return {"throughput_mbps": {s: table[s][policy]["throughput_mbps"] for s in table},
                "bler_first_tx": {s: table[s][policy]["bler_first_tx"] for s in table},
                **{k: v for k, v in head[policy].items()},
                "eval_slots": cfg.evaluation.slots, "eval_seeds": list(cfg.evaluation.seeds)}

    names = list(BUILTIN_SCENARIOS)
    write_card(teacher_paths[rpt.TEACHER], name=rpt.TEACHER, kind="teacher", model=generalist.q_network,
               architecture=describe(cfg.teacher.hidden), scenarios=names + ["randomized"], opset=cfg.onnx_opset,
               training_config={"profile": cfg.profile, "teacher": config["teacher"]}, evaluation=figures(rpt.TEACHER))
    for family, net in specialists.items():
        write_card(teacher_paths[family], name=f"teacher-{family}", kind="teacher", model=net,
                   architecture=describe(cfg.teacher.hidden), scenarios=FAMILIES[family], opset=cfg.onnx_opset,
                   training_config={"profile": cfg.profile, "teacher": config["teacher"]})
    write_card(scratch_path, name=rpt.SCRATCH, kind="student", model=scratch.q_network,
               architecture=describe(cfg.distill.hidden), scenarios=names + ["randomized"], opset=cfg.onnx_opset,
               training_config={"profile": cfg.profile, "rl_from_scratch": asdict(cfg.scratch)},
               evaluation=figures(rpt.SCRATCH))
    for name, result in ((rpt.SINGLE, single), (rpt.MULTI, multi)):
        teachers = "teacher-generalist" if name == rpt.SINGLE else "one specialist per family: " + ", ".join(FAMILIES)
        for path, precision, policy in ((student_paths[name], "fp32", name),
                                        (student_paths[f"{name}-int8"], "int8", f"{name}-int8")):
            write_card(path, name=policy, kind="student", model=result.student, architecture=students[name]["architecture"],
                       scenarios=names, opset=cfg.onnx_opset, precision=precision,
                       training_config={"profile": cfg.profile, "distill": config["distill"], "teachers": teachers,
                                        "seed": cfg.seed},
                       evaluation={**figures(policy), **students[name],
                                   "retention": head["retention"][policy]})
    results = {"table": table, "summary": head, "olla_best": olla_params, "students": students, "wall_s": wall}
    _save_json(out / "results.json", results)
    report_path = rpt.write_report(out / "report", table=table, families=family_of, olla_best=olla_params,
                                   students=students, logs={k: v for k, v in logs.items() if k.startswith(("teacher", "scratch"))},
                                   config=config, wall_s=wall, command=command)
    console.log(f"report: {report_path}")

    if ship:
        shipped = max((rpt.SINGLE, rpt.MULTI), key=lambda p: np.mean([table[s][p]["throughput_mbps"] for s in table]))
        install_student(student_paths[shipped], SHIPPED_MODEL, name="default", origin=shipped, command=command)
        install_student(student_paths[f"{shipped}-int8"], SHIPPED_MODEL.with_name("default.int8.onnx"),
                        name="default-int8", origin=f"{shipped}-int8", command=command)
        if SHIPPED_REPORT.exists():
            shutil.rmtree(SHIPPED_REPORT)
        shutil.copytree(out / "report", SHIPPED_REPORT)
        console.log(f"shipped {shipped} as {SHIPPED_MODEL} and the report to {SHIPPED_REPORT}")
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
