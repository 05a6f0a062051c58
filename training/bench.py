"""`ranpd bench student`: size and onnxruntime inference latency of the shipped student (fp32, int8).

Latency is measured per call of the xApp's `OnnxPolicyModel.score` (input and output bound once
with IO binding, one intra-op thread), after a warm-up; we report p50 and p99 in µs at batch 1
and 64. The int8 argmax agreement is measured on observations the student itself visits in the
simulator (held-out seeds), not read from the card.

Runtime only (numpy, onnxruntime): it measures the shipped student on an install without the
`train` extra, as the xApp container serves it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from ranpd.simulator.engine import run_policy
from ranpd.simulator.observation import OBS_DIM
from ranpd.simulator.policies import ObservationPolicy
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS
from ranpd.xapp.model import PACKAGED_MODEL, OnnxPolicyModel

AGREEMENT_SEED = 424_242


def latency_us(model: OnnxPolicyModel, batch: int, iterations: int) -> dict[str, float]:
    """p50/p99 of one `OnnxPolicyModel.score` call (the xApp's pre-bound IO path), in microseconds."""
    x = np.random.default_rng(0).random((batch, OBS_DIM), dtype=np.float32)
    for _ in range(min(1000, iterations)):
        model.score(x)
    samples = np.empty(iterations)
    clock = time.perf_counter_ns
    for i in range(iterations):
        start = clock()
        model.score(x)
        samples[i] = clock() - start
    return {"p50_us": float(np.percentile(samples, 50) / 1e3), "p99_us": float(np.percentile(samples, 99) / 1e3)}


def visited_states(model: OnnxPolicyModel, slots: int) -> np.ndarray:
    """Observations the model meets when it drives every built-in scenario (a held-out seed)."""
    seen: list[np.ndarray] = []

    def score(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.copy())
        return model.score(obs)

    for scenario in BUILTIN_SCENARIOS.values():
        run_policy(scenario, ObservationPolicy(score, "probe"), slots=slots, seed=AGREEMENT_SEED)
    return np.concatenate(seen)


@click.command("student")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="fp32 ONNX student (default: the shipped xapp/models/default.onnx).")
@click.option("--iterations", type=click.IntRange(100), default=20_000, show_default=True)
@click.option("--slots", type=click.IntRange(10), default=300, show_default=True,
              help="Slots per scenario for the int8 agreement states.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_student(model: Path | None, iterations: int, slots: int, as_json: bool) -> None:
    """Student params, ONNX bytes (fp32, int8), int8 argmax agreement, and onnxruntime p50/p99 latency
    at batch 1 and 64 on one thread with IO binding (about 2-4 µs per call is the Python floor)."""
    fp32 = model or PACKAGED_MODEL
    int8 = fp32.with_name(fp32.stem + ".int8.onnx")
    for path in (fp32, int8):
        if not path.is_file():
            raise click.BadParameter(f"missing {path} (written by `ranpd train --profile full`)", param_hint="--model")
    models = {"fp32": OnnxPolicyModel.load(fp32), "int8": OnnxPolicyModel.load(int8)}
    card = models["fp32"].card
    states = visited_states(models["fp32"], slots)
    result = {
        "model": str(fp32), "params": card.params, "architecture": card.architecture,
        "bytes_fp32": fp32.stat().st_size, "bytes_int8": int8.stat().st_size,
        "fp32_bits_under_1mbit": card.params * 32 < 1_000_000,
        "int8_argmax_agreement": float(np.mean(models["fp32"].score(states).argmax(1) ==
                                               models["int8"].score(states).argmax(1))),
        "agreement_states": len(states), "threads": 1, "iterations": iterations,
        "latency": {f"{precision}_batch{batch}": latency_us(m, batch, iterations)
                    for precision, m in models.items() for batch in (1, 64)},
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['architecture']}: {result['params']} params, ONNX {result['bytes_fp32']} B fp32, "
               f"{result['bytes_int8']} B int8; int8 argmax agreement {result['int8_argmax_agreement']:.4f} "
               f"on {len(states)} visited states")
    for key, lat in result["latency"].items():
        click.echo(f"  {key:12s} p50 {lat['p50_us']:7.2f} µs   p99 {lat['p99_us']:7.2f} µs")
