"""`ranpd bench ...`: benchmarks report medians/p99 and rates; they are never timed tests."""
from __future__ import annotations

import click

from ranpd.cli import LazyGroup

BENCHMARKS = {
    "sim": "ranpd.simulator.bench:bench_sim",
    "xapp": "ranpd.xapp.bench:bench_xapp",
    "student": "ranpd.training.bench:bench_student",
    "sensitivity": "ranpd.training.sensitivity:bench_sensitivity",
    "soak": "ranpd.cli.soak:bench_soak",
    "fuzz": "ranpd.xapp.fuzz:fuzz_command",
    "c-export": "ranpd.xapp.baseband:bench_c_export",
    "shadow": "ranpd.cli.e2node:bench_shadow",
    "targets": "ranpd.training.attainable:bench_targets",
}
SUMMARIES = {
    "sim": "Simulator speed in UE-slots per second on one core.",
    "xapp": "Indication -> control round trip over loopback, per-stage split, max rate.",
    "student": "Student size and onnxruntime inference p50/p99 at batch 1 and 64.",
    "sensitivity": "ILLA, OLLA, best OLLA and a model under each interference model: where gains come from.",
    "soak": "xApp under N cells for minutes: per-cell fallback and RTT, RSS growth, fd drift.",
    "fuzz": "E2 codecs and handlers under mutated frames and structure-aware envelopes: crashes, causes.",
    "c-export": "Exported C student (fp32, int8) ns per decision at batch 1 and 64, beside onnxruntime.",
    "shadow": "Near-RT shadow estimate of a model's gain (per SINR-error sigma) beside its closed-loop gain.",
    "targets": "Held-out set at operator targets: BLER from UEs below the MCS floor; delay, air time.",
}


class _BenchGroup(LazyGroup):
    commands_map, summaries = BENCHMARKS, SUMMARIES


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks (quote their output, not timed tests: shared machines are noisy)."""
