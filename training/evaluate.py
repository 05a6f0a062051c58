"""Closed-loop evaluation: every policy on every scenario, on the same seeds (common random numbers).

Policies are described by small picklable specs (`PolicySpec`) and built inside the worker, so the
grid (baselines x scenarios x seeds) can run on a process pool. Baselines:

- ILLA; OLLA with the textbook 10 % target and 1 dB step;
- best-tuned OLLA: per scenario, the target/step pair from a small grid with the highest mean UE
  throughput on a *tuning* seed, then reported on the evaluation seeds (tuning on the reported
  seeds would flatter the baseline with the noise of those seeds).

Learned policies (teachers and students alike) are ONNX files with their cards, scored by the
xApp's `OnnxPolicyModel`, so evaluation runs the code that serves.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ranpd.simulator.engine import run_closed_loop
from ranpd.simulator.guard import DEFAULT_MAX_TRANSMISSIONS, GuardConfig
from ranpd.simulator.observation import DEFAULT_BLER_TARGET
from ranpd.simulator.policies import LinkAdaptationPolicy, ObservationPolicy, make_baseline
from ranpd.simulator.scenarios import Scenario
from ranpd.training.backend import Backend
from ranpd.training.config import EvalConfig
from ranpd.xapp.model import OnnxPolicyModel

KPI_KEYS = ("throughput_mbps", "cell_throughput_mbps", "spectral_efficiency", "bler_first_tx",
            "bler_residual", "mean_mcs", "throughput_p5_mbps", "rlc_resends")
PACKET_KPI_KEYS = ("upt_mbps", "packet_delay_p50_ms", "packet_delay_p95_ms")   # None without bursty UEs
OPTIONAL_KPI_KEYS = PACKET_KPI_KEYS + ("guard_share",)   # guard_share: share of first transmissions OLLA decided


@dataclass(frozen=True)
class PolicySpec:
    """`kind` is 'illa', 'olla' (params: target_bler, step_up_db) or 'onnx' (params: path; bler_target,
    the operator target its price holds, None for throughput mode; guard: behind the per-UE guard)."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, scenario: Scenario) -> LinkAdaptationPolicy:
        if self.kind == "onnx":
            return onnx_policy(Path(self.params["path"]), self.name, self.params.get("bler_target", DEFAULT_BLER_TARGET),
                               GuardConfig() if self.params.get("guard") else None, scenario.max_transmissions)
        return make_baseline(self.kind, **self.params)


def onnx_policy(path: Path, name: str, bler_target: float | None = DEFAULT_BLER_TARGET,
                guard: GuardConfig | None = None, max_transmissions: int = DEFAULT_MAX_TRANSMISSIONS) -> ObservationPolicy:
    """The xApp's own model wrapper (validated, pre-bound IO, card's tables and input range) as an
    offline policy holding `bler_target` (None: throughput mode), optionally behind the guard."""
    return OnnxPolicyModel.load(path).policy(name, bler_target, guard, max_transmissions)


def olla_spec(target: float = 0.1, step_db: float = 1.0, name: str | None = None) -> PolicySpec:
    return PolicySpec(name or f"olla-{target:g}-{step_db:g}dB", "olla",
                      {"target_bler": target, "step_up_db": step_db})


BASELINES = (PolicySpec("illa", "illa"), olla_spec(0.1, 1.0, name="olla"))


def _run(job: tuple[Scenario, PolicySpec, int, EvalConfig]) -> dict[str, Any]:
    """One closed-loop run: the KPIs plus the per-UE throughputs (for CDFs)."""
    scenario, spec, seed, cfg = job
    policy = spec.build(scenario)
    sim = run_closed_loop(scenario, policy, cfg.slots, seed=seed, n_ues=cfg.n_ues)
    kpis = sim.kpis()
    guard = getattr(policy, "guard", None)
    return {**kpis, "policy": policy.name, "ue_throughput_mbps": sim.ue_throughput_mbps(),
            "guard_share": guard.handed_back_decisions / max(kpis["first_transmissions"], 1) if guard else None}


def job_key(job: tuple[Scenario, PolicySpec, int, EvalConfig]) -> str:
    """What a closed-loop run's outcome depends on: the scenario, the policy's kind and parameters
    (not its display name), the seed and the run length. Runs are deterministic given these."""
    scenario, spec, seed, cfg = job
    return json.dumps([scenario.model_dump_json(), spec.kind, spec.params, seed, cfg.slots, cfg.n_ues],
                      sort_keys=True, default=str)


class JobRunner:
    """Closed-loop runs on one backend for a whole evaluation, each distinct run once.

    One backend, not one per section: workers start once and keep their channel-trace caches warm.
    A run that several sections list (OLLA 10% in throughput mode and at 10%, the shipped-size
    student in the size sweep) is simulated once and its KPIs shared: the same deterministic run,
    so every figure is what it was. `backend` is a started `Backend`, or a number of local
    processes (then the runner owns its pool). Use as a context manager."""

    def __init__(self, backend: "Backend | int" = 1):
        self._owned = not isinstance(backend, Backend)
        self.backend = Backend("local", backend) if self._owned else backend
        self.memo: dict[str, dict] = {}
        self.simulated = self.reused = 0

    def __enter__(self) -> "JobRunner":
        if self._owned:
            self.backend.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._owned:
            self.backend.__exit__(*exc)

    def run(self, jobs: list[tuple[Scenario, PolicySpec, int, EvalConfig]], desc: str) -> list[dict]:
        keys = [job_key(job) for job in jobs]
        todo = {key: job for key, job in zip(keys, jobs) if key not in self.memo}
        self.simulated += len(todo)
        self.reused += len(jobs) - len(todo)
        todo_keys = list(todo)
        runs = self.backend.as_completed([(_run, (job,)) for job in todo.values()])
        for i, result, _ in tqdm(runs, total=len(todo), desc=desc, leave=False):
            self.memo[todo_keys[i]] = result
        return [self.memo[key] for key in keys]


def run_jobs(jobs: list[tuple[Scenario, PolicySpec, int, EvalConfig]], workers: "int | JobRunner",
             desc: str) -> list[dict]:
    """Run closed-loop simulations, in order, on `workers` processes (1: in this process) or on a
    shared `JobRunner`."""
    if isinstance(workers, JobRunner):
        return workers.run(jobs, desc)
    with JobRunner(workers) as runner:
        return runner.run(jobs, desc)


def mean_kpis(runs: list[dict]) -> dict[str, Any]:
    """KPIs averaged over seeds, plus every UE's throughput pooled over seeds (for CDFs)."""
    packet = {key: [r[key] for r in runs if r.get(key) is not None] for key in OPTIONAL_KPI_KEYS}
    return {**{key: float(np.mean([r[key] for r in runs])) for key in KPI_KEYS},
            **{key: float(np.mean(values)) if values else None for key, values in packet.items()},
            "ue_throughput_mbps": np.concatenate([r["ue_throughput_mbps"] for r in runs]).tolist()}


def tune_olla(scenarios: list[Scenario], cfg: EvalConfig, workers: "int | JobRunner" = 1) -> dict[str, PolicySpec]:
    """Per scenario, the OLLA target/step with the best mean UE throughput on the tuning seed
    (`cfg.tune_slots` slots per run)."""
    grid = [olla_spec(t, s) for t, s in itertools.product(cfg.olla_targets, cfg.olla_steps_db)]
    tuning = replace(cfg, slots=cfg.tune_slots or cfg.slots)
    jobs = [(sc, spec, cfg.olla_tune_seed, tuning) for sc in scenarios for spec in grid]
    results = run_jobs(jobs, workers, "tune OLLA")
    best = {}
    for i, sc in enumerate(scenarios):
        scores = [r["throughput_mbps"] for r in results[i * len(grid):(i + 1) * len(grid)]]
        winner = grid[int(np.argmax(scores))]
        best[sc.name] = PolicySpec("olla-best", "olla", winner.params)
    return best


def evaluate(scenarios: list[Scenario], policies: dict[str, list[PolicySpec]], cfg: EvalConfig,
             workers: "int | JobRunner" = 1) -> dict[str, dict[str, dict[str, float]]]:
    """KPIs[scenario][policy], each averaged over `cfg.seeds`. `policies[scenario]` lists what runs there."""
    jobs = [(sc, spec, seed, cfg) for sc in scenarios for spec in policies[sc.name] for seed in cfg.seeds]
    results = iter(run_jobs(jobs, workers, "evaluate"))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for sc in scenarios:
        table[sc.name] = {}
        for spec in policies[sc.name]:
            table[sc.name][spec.name] = mean_kpis([next(results) for _ in cfg.seeds])
    return table
