"""`ranpd train`: named stages, each a function of the typed config and the previous stages' output.

    scenario_sets -> train_teachers -> distil_students -> export_models -> evaluate_models -> report
    (-> ship, to explicit paths)

Run directory layout:
    config.json                       the configuration, verbatim (with the user's scenario sets)
    checkpoints/{teachers,students}/  one file per finished teacher / distillation job (resume)
    logs/<model>.json                 training logs (losses, rewards, epsilon, DAgger rounds)
    tensorboard/<model>/              the same curves and the evaluation KPIs as TensorBoard scalars
    models/<model>.onnx + .card.json  every teacher and student, with model cards
    results.json                      KPIs[section][scenario][policy], the headline, the wall times
    report/README.md + *.png          the evaluation report

Teachers are behind one small interface (`Teacher`: scenarios and a seed in, a priced network and
its log out); DQN is today's implementation. Teachers, students and closed-loop runs are
independent jobs, dispatched by one `Backend` (here, a process pool, or Ray tasks); each teacher and
distillation job is checkpointed as it finishes, so a killed run rerun into the same directory
resumes from the last finished job with the results of an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from rich.console import Console

from ranpd.simulator.scenarios import (BUILTIN_SCENARIOS, RANDOMIZATION_FAMILIES, Scenario, heldout_scenarios,
                                       load_scenario, randomized_scenario)
from ranpd.training import report as rpt
from ranpd.training.backend import Backend, Job
from ranpd.training.config import DqnConfig, TrainConfig, from_dict
from ranpd.training.distill import DistillGroup, DistillResult, distill
from ranpd.training.dqn import DqnResult, train_dqn
from ranpd.training.evaluate import BASELINES, JobRunner, PolicySpec, evaluate, olla_spec, tune_olla
from ranpd.training.export import QUANTIZATION, argmax_agreement, export_onnx, ort_scores, parity, quantize_int8, write_card
from ranpd.training.networks import PricedQ, count_params, describe
from ranpd.training.scalars import Scalars
from ranpd.training.sensitivity import with_interference

console = Console(stderr=True)
MCS_TABLES_TRAINED = [1, 2]            # the randomisation draws both tables


# ------------------------------------------------------------------ 0. scenario sets
@dataclass
class ScenarioSets:
    """What each model trains on, and what evaluation holds out."""

    builtins: list[Scenario]                   # evaluated in every run
    specialists: dict[str, list[Scenario]]     # randomisation family -> its training scenarios
    generalist: list[Scenario]                 # every family's training scenarios
    heldout: list[Scenario]                    # never trained or tuned on
    trained_on: list[str]                      # what model cards say the models were trained on

    def specialist_of(self, sc: Scenario) -> str:
        """The teacher of `sc`'s family; the generalist where no training scenario is of that family."""
        family = family_of(sc)
        return f"teacher-{family}" if family in self.specialists else rpt.TEACHER


def family_of(sc: Scenario) -> str:
    """The randomisation family a scenario belongs to (by traffic, then band): which specialist
    labels it in multi-policy distillation and serves as its specialist teacher in evaluation."""
    classes = sc.classes
    if len(classes) > 1:
        return "mixed"
    if classes[0].bursty:
        return "bursty"
    return "low-band" if sc.carrier_ghz < 1.0 else "mid-band" if sc.carrier_ghz < 10.0 else "mmwave"


SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


def load_scenario_set(items: tuple[str, ...]) -> list[Scenario]:
    """Scenarios from built-in names, scenario files and folders of them (their .yaml, .yml and
    .json files, by name). ValueError naming the item that fails, or a name that comes twice."""
    scenarios = []
    for item in items:
        if Path(item).is_dir():
            files = sorted(p for p in Path(item).iterdir() if p.suffix in SCENARIO_SUFFIXES)
            if not files:
                raise ValueError(f"folder {item} holds no scenario files ({', '.join(SCENARIO_SUFFIXES)})")
            scenarios += [load_scenario(path) for path in files]
        else:
            scenarios.append(load_scenario(item))
    names = [sc.name for sc in scenarios]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"scenario names that come twice: {', '.join(twice)}")
    return scenarios


def scenario_sets(cfg: TrainConfig) -> ScenarioSets:
    """Training: the user's scenarios (`cfg.scenarios`, one specialist per family among them), or
    seeded draws of every randomisation family plus the built-ins (each in its family's set).
    Held-out: the user's (`cfg.heldout`) or the project's. ValueError if one is in both."""
    builtins = list(BUILTIN_SCENARIOS.values())
    specialists: dict[str, list[Scenario]] = {}
    if cfg.scenarios:
        for sc in load_scenario_set(cfg.scenarios):
            specialists.setdefault(family_of(sc), []).append(sc)
        trained_on = [sc.name for group in specialists.values() for sc in group]
    else:
        rng = np.random.default_rng(cfg.seed)
        specialists = {family: [randomized_scenario(rng, family).model_copy(update={"name": f"{family}-{i}"})
                                for i in range(cfg.randomized_per_family)] for family in RANDOMIZATION_FAMILIES}
        for sc in builtins:
            specialists[family_of(sc)].append(sc)
        trained_on = [sc.name for sc in builtins] + [f"randomised: {', '.join(RANDOMIZATION_FAMILIES)}"]
    generalist = [sc for group in specialists.values() for sc in group]
    heldout = load_scenario_set(cfg.heldout) if cfg.heldout else heldout_scenarios()
    trained = {sc.model_dump_json(exclude={"name", "description", "family"}) for sc in generalist}
    leaked = [sc.name for sc in heldout if sc.model_dump_json(exclude={"name", "description", "family"}) in trained]
    if leaked:
        raise ValueError(f"held-out scenarios {leaked} are also training scenarios")
    return ScenarioSets(builtins, specialists, generalist, heldout, trained_on)


# ------------------------------------------------------------------ 1. teachers
class Teacher(Protocol):
    """An RL algorithm that trains a priced network (`networks.PricedQ`) on scenarios."""

    def train(self, scenarios: list[Scenario], seed: int, desc: str) -> DqnResult: ...


@dataclass(frozen=True)
class DqnTeacher:
    """DQN with gamma = 0 (training/dqn.py)."""

    cfg: DqnConfig

    def train(self, scenarios: list[Scenario], seed: int, desc: str) -> DqnResult:
        return train_dqn(self.cfg, scenarios, seed=seed, desc=desc)


# the settings a stage's result depends on (with the training scenarios): a run that changes only
# later settings (evaluation, the report) resumes from the checkpoints
TEACHER_SETTINGS = ("seed", "randomized_per_family", "sizes", "teacher")
STUDENT_SETTINGS = TEACHER_SETTINGS + ("distill",)


@dataclass
class StageRun:
    """A checkpointed stage's results by job name, each job's own seconds (then, for a resumed
    job), and the jobs loaded from checkpoints."""

    results: dict[str, Any]
    seconds: dict[str, float]
    resumed: list[str]


def checkpoint_key(cfg: TrainConfig, settings: tuple[str, ...], sets: ScenarioSets) -> str:
    """What a stage's jobs depend on: `settings` of `cfg` and the training scenarios' contents."""
    config = cfg.to_dict()
    scenarios = hashlib.sha256("".join(sc.model_dump_json() for sc in sets.generalist).encode()).hexdigest()
    return json.dumps({**{name: config[name] for name in settings}, "scenarios": scenarios}, sort_keys=True)


def run_checkpointed(jobs: dict[str, Job], key: str, directory: Path, backend: Backend) -> StageRun:
    """Every job's result by name. A job that an earlier run into `directory` saved under the same
    `key` is loaded; the others run on `backend` and each is saved (atomically) as it finishes, so a
    run killed mid-stage loses only the jobs in progress."""
    run = StageRun({}, {}, [])
    for name in jobs:
        path = directory / f"{name}.pt"
        if path.is_file() and (saved := torch.load(path, weights_only=False))["key"] == key:
            run.results[name], run.seconds[name] = saved["result"], saved["seconds"]
            run.resumed.append(name)
    if run.resumed:
        console.log(f"resumed {', '.join(run.resumed)} from {directory}")
    todo = [name for name in jobs if name not in run.results]
    directory.mkdir(parents=True, exist_ok=True)
    for i, result, seconds in backend.as_completed([jobs[name] for name in todo]):
        tmp = directory / f"{todo[i]}.tmp"
        torch.save({"key": key, "result": result, "seconds": seconds}, tmp)
        tmp.replace(directory / f"{todo[i]}.pt")
        run.results[todo[i]], run.seconds[todo[i]] = result, seconds
    run.results = {name: run.results[name] for name in jobs}
    return run


def scratch_name(hidden: tuple[int, ...]) -> str:
    return f"{rpt.SCRATCH}-{count_params(PricedQ(hidden))}"


def distilled_name(hidden: tuple[int, ...]) -> str:
    return f"{rpt.DISTILLED}-{count_params(PricedQ(hidden))}"


def train_teachers(cfg: TrainConfig, sets: ScenarioSets, backend: Backend, checkpoints: Path) -> StageRun:
    """One specialist per randomisation family, the generalist on everything, and the ablation:
    every student size trained by the same RL with the same budget and no teacher."""
    jobs = {f"teacher-{family}": (DqnTeacher(cfg.teacher), scenarios, cfg.seed + 1 + i)
            for i, (family, scenarios) in enumerate(sets.specialists.items())}
    jobs[rpt.TEACHER] = (DqnTeacher(cfg.teacher), sets.generalist, cfg.seed)
    for hidden in cfg.sizes:
        jobs[scratch_name(hidden)] = (DqnTeacher(replace(cfg.teacher, hidden=hidden)), sets.generalist, cfg.seed)
    console.log(f"teachers: {', '.join(jobs)} on {backend.describe()}")
    return run_checkpointed({name: (teacher.train, (scenarios, seed, name)) for name, (teacher, scenarios, seed)
                             in jobs.items()}, checkpoint_key(cfg, TEACHER_SETTINGS, sets), checkpoints / "teachers",
                            backend)


# ------------------------------------------------------------------ 2. students
def distil_students(cfg: TrainConfig, sets: ScenarioSets, teachers: dict[str, DqnResult], backend: Backend,
                    checkpoints: Path) -> StageRun:
    """Single-policy (generalist -> student), multi-policy (each family's specialist labels its own
    scenarios; the student never sees a family id), and the generalist distilled at every size."""
    generalist = [DistillGroup("all", sets.generalist, teachers[rpt.TEACHER].q_network)]
    multi = [DistillGroup(family, scenarios, teachers[f"teacher-{family}"].q_network)
             for family, scenarios in sets.specialists.items()]
    # rollout budgets are per group: the single group gets the multi-policy student's total
    single_cfg = replace(cfg.distill, teacher_rollout_steps=cfg.distill.teacher_rollout_steps * len(multi),
                         dagger_steps=cfg.distill.dagger_steps * len(multi))
    jobs = {rpt.SINGLE: (generalist, single_cfg), rpt.MULTI: (multi, cfg.distill)}
    for hidden in cfg.sizes:
        if tuple(hidden) != tuple(cfg.distill.hidden):
            jobs[distilled_name(hidden)] = (generalist, replace(single_cfg, hidden=hidden))
    console.log(f"distillation: {', '.join(jobs)} on {backend.describe()}")
    run = run_checkpointed({name: (distill, (groups, dcfg, cfg.seed, cfg.evaluation.holdout_states, name))
                            for name, (groups, dcfg) in jobs.items()}, checkpoint_key(cfg, STUDENT_SETTINGS, sets),
                           checkpoints / "students", backend)
    run.results[distilled_name(cfg.distill.hidden)] = run.results[rpt.SINGLE]
    return run


# ------------------------------------------------------------------ 3. export
@dataclass
class Exported:
    paths: dict[str, Path] = field(default_factory=dict)               # policy -> ONNX file
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)     # policy -> write_card arguments
    students: dict[str, dict[str, Any]] = field(default_factory=dict)  # size, parity, int8 agreement


def export_models(cfg: TrainConfig, out: Path, sets: ScenarioSets, teachers: dict[str, DqnResult],
                  students: dict[str, DistillResult]) -> Exported:
    """Every model to ONNX with its card; the two students also as int8, with parity and int8
    agreement measured on held-out states they visited."""
    ex = Exported()
    models = out / "models"
    config = cfg.to_dict()
    trained_on = sets.trained_on

    def export(policy: str, model: PricedQ, **card_args) -> Path:
        path = export_onnx(model, models / f"{policy}.onnx", cfg.onnx_opset)
        ex.cards[policy] = dict(onnx_path=path, name=policy, model=model, opset=cfg.onnx_opset,
                                architecture=describe(model.hidden), mcs_tables=MCS_TABLES_TRAINED, **card_args)
        write_card(**ex.cards[policy])
        ex.paths[policy] = path
        return path

    rl = {"profile": cfg.profile, "seed": cfg.seed, "teacher": config["teacher"]}
    for name, result in teachers.items():
        family = name.removeprefix("teacher-")
        export(name, result.q_network, kind="student" if name.startswith(rpt.SCRATCH) else "teacher",
               scenarios=[sc.name for sc in sets.specialists[family]] if family in sets.specialists else trained_on,
               training_config={**rl, "hidden": list(result.q_network.hidden)})
    for name, result in students.items():
        if name != rpt.SINGLE and result is students[rpt.SINGLE]:
            continue                       # the shipped-size distilled student is student-single itself
        teacher = "one specialist per family: " + ", ".join(sets.specialists) if name == rpt.MULTI \
            else rpt.TEACHER
        fp32 = export(name, result.student, kind="student", scenarios=trained_on, obs_range=result.obs_range,
                      training_config={"profile": cfg.profile, "seed": cfg.seed, "distill": config["distill"],
                                       "hidden": list(result.student.hidden), "teachers": teacher})
        if name not in (rpt.SINGLE, rpt.MULTI):
            continue
        half = len(result.holdout_states) // 2        # calibrate on one half, measure on the other
        int8 = quantize_int8(fp32, models / f"{name}.int8.onnx", result.holdout_states[:half])
        ex.paths[f"{name}-int8"] = int8
        ex.cards[f"{name}-int8"] = {**ex.cards[name], "onnx_path": int8, "name": f"{name}-int8", "precision": "int8",
                                    "architecture": f"{ex.cards[name]['architecture']}, {QUANTIZATION}"}
        write_card(**ex.cards[f"{name}-int8"])
        held = result.holdout_states[half:]
        ex.students[name] = {
            "architecture": describe(result.student.hidden), "params": count_params(result.student),
            "bytes_fp32": fp32.stat().st_size, "bytes_int8": int8.stat().st_size,
            "parity": parity(result.student, fp32, held),
            "int8_argmax_agreement": argmax_agreement(ort_scores(fp32, held), ort_scores(int8, held)),
            "holdout_states": len(held),
        }
    return ex


# ------------------------------------------------------------------ 4. evaluation
def _onnx(ex: Exported, policy: str, target: float | None, name: str | None = None, **extra) -> PolicySpec:
    return PolicySpec(name or policy, "onnx", {"path": str(ex.paths[policy]), "bler_target": target, **extra})


def evaluate_models(cfg: TrainConfig, sets: ScenarioSets, ex: Exported, backend: Backend) -> dict[str, dict]:
    """KPIs[section][scenario][policy]. Sections: the built-ins in throughput mode under their own
    interference model and each of `evaluation.interference_models`, the built-ins at 10%, the
    held-out set at each operator target and in throughput mode, and the size sweep (held-out, 10%).
    Best-tuned OLLA is tuned per scenario (and interference model) on the tuning seed.

    Every section runs on one `JobRunner`: one process pool for the stage, and a run that two
    sections list with the same settings is simulated once (OLLA 10% in throughput mode and at 10%,
    student-single at 10% in the size sweep). What runs where is what the report reads: the int8
    twins run closed loop in the built-ins in throughput mode and the held-out set at 10% (elsewhere
    their int8-vs-fp32 argmax agreement stands for them); the specialist teachers where they are
    student-multi's teacher in a retention check (built-ins, held-out at 10% and in throughput mode).
    The previous full run evaluated every model in every section: 38.9 of its 80.9 minutes.)"""
    ev = cfg.evaluation
    specialist = {sc.name: sets.specialist_of(sc) for sc in sets.builtins + sets.heldout}
    students = (rpt.SINGLE, rpt.MULTI)
    int8 = (rpt.SINGLE_INT8, rpt.MULTI_INT8)
    tables: dict[str, dict] = {}
    runner = JobRunner(backend)

    def run(section: str, scenarios: list[Scenario], specs: Callable[[Scenario], list[PolicySpec]],
            tuned: bool = False, seeds: tuple[int, ...] = ev.seeds) -> None:
        console.log(f"evaluation: {section}")
        best = tune_olla(scenarios, ev, runner) if tuned else {}
        policies = {sc.name: ([best[sc.name]] if tuned else []) + specs(sc) for sc in scenarios}
        tables[section] = evaluate(scenarios, policies, replace(ev, seeds=seeds), runner)
        for sc, spec in best.items():
            tables[section][sc]["olla-best"]["olla_params"] = \
                f"{spec.params['target_bler']:g}, {spec.params['step_up_db']:g} dB"

    def throughput_mode(*learned: str) -> Callable[[Scenario], list[PolicySpec]]:
        def specs(sc: Scenario) -> list[PolicySpec]:
            return [*BASELINES, *(_onnx(ex, specialist[sc.name], None, rpt.SPECIALIST) for p in learned if p == rpt.SPECIALIST),
                    *(_onnx(ex, p, None, rpt.SCRATCH if p.startswith(rpt.SCRATCH) else None)
                      for p in learned if p != rpt.SPECIALIST)]
        return specs

    def at_target(target: float, *learned: str, guard: bool = False) -> Callable[[Scenario], list[PolicySpec]]:
        def specs(sc: Scenario) -> list[PolicySpec]:
            out = [olla_spec(target, 1.0, name="olla"),
                   *(_onnx(ex, specialist[sc.name], target, rpt.SPECIALIST) for p in learned if p == rpt.SPECIALIST),
                   *(_onnx(ex, p, target) for p in learned if p != rpt.SPECIALIST)]
            if guard:
                out.append(_onnx(ex, rpt.SINGLE, target, rpt.SINGLE_GUARDED, guard=True))
            return out
        return specs

    # the specialist runs where it is the multi-policy student's teacher in a retention check
    scratch = scratch_name(cfg.distill.hidden)
    with runner:
        run("builtins", sets.builtins, throughput_mode(rpt.SPECIALIST, rpt.TEACHER, *students, *int8, scratch),
            tuned=True, seeds=ev.seeds[:ev.builtin_seeds])
        for model in ev.interference_models:
            run(f"builtins/{model}", [with_interference(sc, model) for sc in sets.builtins],
                throughput_mode(rpt.TEACHER, *students), tuned=True, seeds=ev.seeds[:1])
        run("builtins@0.1", sets.builtins, at_target(0.1, rpt.TEACHER, *students))
        for target in ev.bler_targets:
            learned = (rpt.SPECIALIST, rpt.TEACHER, *students, *int8) if target == 0.1 else (rpt.TEACHER, *students)
            run(f"heldout@{target:g}", sets.heldout, at_target(target, *learned, guard=True))
        run("heldout@max", sets.heldout, throughput_mode(rpt.SPECIALIST, rpt.TEACHER, *students, scratch), tuned=True)
        sizes = [distilled_name(h) for h in cfg.sizes] + [scratch_name(h) for h in cfg.sizes]
        run("sizes@0.1", sets.heldout, lambda sc: [olla_spec(0.1, 1.0, name="olla"), *(_onnx(ex, rpt.SINGLE if p ==
            distilled_name(cfg.distill.hidden) else p, 0.1, p) for p in sizes)])
    console.log(f"evaluation: {runner.simulated} closed-loop runs, {runner.reused} shared between sections")
    return tables


# ------------------------------------------------------------------ 5. ship
@dataclass(frozen=True)
class ShipTargets:
    """Where `ship` installs the chosen student (fp32 and int8, each with its card) and the report."""

    model: Path
    model_int8: Path
    report: Path


def ship(models: Path, student: str, run_report: Path, to: ShipTargets, command: str) -> None:
    """Install `student` and its int8 twin from the run's `models` at `to`, and copy the report; the
    cards name their origin and the command that regenerates them."""
    for src, dst, name in ((models / f"{student}.onnx", to.model, "default"),
                           (models / f"{student}.int8.onnx", to.model_int8, "default-int8")):
        install_student(src, dst, name=name, origin=src.stem, command=command)
    if to.report.exists():
        shutil.rmtree(to.report)
    shutil.copytree(run_report, to.report)
    console.log(f"shipped {student} as {to.model} (+ int8) and the report to {to.report}")


def install_student(src: Path, dst: Path, name: str, origin: str, command: str) -> None:
    """Copy an ONNX student and its card; the card names its origin and the regenerating command."""
    from ranpd.xapp.model_card import ModelCard, card_path_for

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    card = ModelCard.load(card_path_for(src))
    card = card.model_copy(update={"name": name, "training_config": {**card.training_config, "origin": origin,
                                                                       "regenerate": command}})
    card.save(card_path_for(dst))


# ------------------------------------------------------------------ the run
def _save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_pipeline(cfg: TrainConfig, out: Path, ship_to: ShipTargets | None = None, workers: int = 1,
                 command: str = "ranpd train", backend: str = "local",
                 ray_address: str | None = None) -> dict[str, Any]:
    """Run every stage of `cfg` into `out` on `backend` ('local': `workers` processes; 'ray': Ray
    tasks on a local Ray with `workers` CPUs or the cluster at `ray_address`); return the results
    (also saved as results.json). With `ship_to`, the student with the better built-in figures is
    installed there."""
    torch.set_num_threads(1)
    wall: dict[str, float] = {}
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    _save_json(out / "config.json", cfg.to_dict())

    def timed(stage: str, fn: Callable, *args):
        t0 = time.perf_counter()
        result = fn(*args)
        wall[stage] = time.perf_counter() - t0
        return result

    sets = timed("scenarios", scenario_sets, cfg)
    checkpoints = out / "checkpoints"
    scalars = Scalars(out / "tensorboard")
    with Backend(backend, workers, ray_address) as jobs, scalars:
        teachers = timed("teachers", train_teachers, cfg, sets, jobs, checkpoints)
        students = timed("distillation", distil_students, cfg, sets, teachers.results, jobs, checkpoints)
        for name, result in {**teachers.results, **students.results}.items():
            _save_json(out / "logs" / f"{name}.json", result.log)
            scalars.training_log(name, result.log)
        ex = timed("export", export_models, cfg, out, sets, teachers.results, students.results)
        tables = timed("evaluation", evaluate_models, cfg, sets, ex, jobs)
        scalars.evaluation(tables)
    wall["total"] = time.perf_counter() - started
    for policy, args in ex.cards.items():
        write_card(**args, evaluation={**rpt.card_figures(tables, policy), **ex.students.get(policy.removesuffix("-int8"), {})})
    results = {"tables": tables, "students": ex.students, "wall_s": wall, "backend": jobs.describe(),
               "resumed": teachers.resumed + students.resumed, "job_s": {**teachers.seconds, **students.seconds},
               "command": command,
               "scenarios": {"heldout": [sc.name for sc in sets.heldout],
                             "training": [sc.name for sc in sets.generalist]},
               "shipped": rpt.choose_student(tables) if ship_to else None}
    return finish(out, cfg, results, ship_to)


def finish(out: Path, cfg: TrainConfig, results: dict[str, Any], ship_to: ShipTargets | None) -> dict[str, Any]:
    """The summary, results.json and the report of a run whose tables are measured; then ship."""
    results["summary"] = rpt.summary(results["tables"], cfg)
    _save_json(out / "results.json", results)
    logs = {path.stem: json.loads(path.read_text()) for path in sorted((out / "logs").glob("*.json"))
            if path.stem.startswith(("teacher-", rpt.SCRATCH))}
    report = rpt.write_report(out / "report", tables=results["tables"], summary=results["summary"],
                              students=results["students"], sets=scenario_sets(cfg), logs=logs, config=cfg,
                              wall_s=results["wall_s"], resumed=results.get("resumed", []), command=results["command"],
                              shipped=results["shipped"])
    console.log(f"report: {report}")
    if ship_to:
        ship(out / "models", results["shipped"], out / "report", ship_to, results["command"])
    return results


def rerender(out: Path, ship_to: ShipTargets | None = None) -> dict[str, Any]:
    """Rewrite the report (and ship, with `ship_to`) of a finished run from its results.json and
    config.json: report changes need no retraining."""
    cfg = from_dict(json.loads((out / "config.json").read_text()))
    results = json.loads((out / "results.json").read_text())
    results.setdefault("command", f"ranpd train --profile {cfg.profile} --seed {cfg.seed}")
    if ship_to and not results.get("shipped"):
        results["shipped"] = rpt.choose_student(results["tables"])
    return finish(out, cfg, results, ship_to)
