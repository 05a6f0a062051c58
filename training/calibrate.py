"""Calibrate the NACK penalty of the `full-bler10` profile (`python3 -m ranpd.training.calibrate`).

For each lambda, train a generalist teacher (the full profile's DQN, a reduced budget, the same
domain-randomised scenarios and seed as `ranpd train`) and measure its first-tx BLER and throughput
next to OLLA 10% on a few built-in scenarios (same seed: common random numbers). Prints one JSON
line per lambda; the figures behind docs/report-bler10's calibration table.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import click
import torch

from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import ObservationPolicy, Olla
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS
from ranpd.training.config import full_profile
from ranpd.training.dqn import train_dqn
from ranpd.training.networks import scores
from ranpd.training.pipeline import domain_randomised

SCENARIOS = ("uma-mid-pedestrian", "uma-mid-highway", "umi-mid-dense")


def calibrate(nack_penalty: float, env_steps: int, slots: int = 1500, seed: int = 0,
              eval_seed: int = 1001) -> dict:
    """First-tx BLER and throughput gain vs OLLA 10% of a generalist trained with `nack_penalty`."""
    cfg = replace(full_profile(seed).teacher, env_steps=env_steps, nack_penalty=nack_penalty, log_every=1000)
    net = train_dqn(cfg, domain_randomised(seed), seed=seed, desc=f"lambda {nack_penalty:g}").q_network

    row: dict = {"lambda": nack_penalty, "env_steps": env_steps, "slots": slots, "eval_seed": eval_seed}
    for name in SCENARIOS:
        sc = BUILTIN_SCENARIOS[name]
        learned = run_policy(sc, ObservationPolicy(partial(scores, net), "generalist"), slots=slots, seed=eval_seed)
        olla = run_policy(sc, Olla(), slots=slots, seed=eval_seed)
        row[name] = {"bler_first_tx": learned["bler_first_tx"], "olla_bler_first_tx": olla["bler_first_tx"],
                     "throughput_vs_olla": learned["throughput_mbps"] / olla["throughput_mbps"] - 1}
    return row


@click.command()
@click.option("--lam", "lambdas", type=click.FloatRange(0), multiple=True, required=True,
              help="NACK penalty to try (repeat the option for several).")
@click.option("--env-steps", type=click.IntRange(1), default=15_000, show_default=True,
              help="Vectorised env steps per generalist.")
@click.option("--slots", type=click.IntRange(1), default=1500, show_default=True, help="Evaluation slots.")
def main(lambdas: tuple[float, ...], env_steps: int, slots: int) -> None:
    """Train one generalist per lambda and print its BLER / throughput vs OLLA 10% as JSON lines."""
    torch.set_num_threads(1)
    for lam in lambdas:
        click.echo(json.dumps(calibrate(lam, env_steps, slots)))


if __name__ == "__main__":
    main()
