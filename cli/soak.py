"""`ranpd bench soak`: the xApp in its own process under N simulated cells for minutes.

Each cell is the simulator as E2 node (`ranpd.simulator.e2node.E2Node`) in its own process,
paced at its scenario's slot duration (`--realtime`: a gNB does not wait), with the deadline of
one slot unless told otherwise, sending KPM reports, and reconnecting every `--reconnect-every-s`
(a fresh E2 Setup and UE store in the xApp: what leaks per session shows up as growth). This
process samples the xApp's resident memory (VmRSS) and open file descriptors from /proc (the
xApp process and its descendants, Linux) every `--sample-s`, and each process of that tree at
the start and the end.

Reported: per cell the slots simulated and the real-time ratio (simulated / wall time), the
fallback rate and the indication -> control RTT p50/p99; for the xApp RSS and fds at the end of
the warm-up and at the end (medians of the samples in the first and last `WINDOW` of the run after
warm-up, so one sample taken mid-reconnect does not decide), their growth and the max.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import numpy as np

WINDOW = 0.1        # share of the post-warm-up samples in each of the start and end windows
NODE_KEYS = ("slots", "deadline_us", "decisions", "fallback_rate", "rtt_p50_us", "rtt_p99_us", "rtt_samples", "late_controls",
             "reconnects", "connect_failures", "kpm_reports", "throughput_mbps", "bler_first_tx")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc/PID/task/TID/children)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in children.read_text().split())
            except OSError:
                continue
    return tree


def tree_usage(pid: int) -> dict[int, tuple[float, int]]:
    """pid -> (resident MiB, open fds) for every process of the tree under `pid`."""
    usage = {}
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            rss_kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
            usage[member] = (rss_kib / 1024, len(os.listdir(f"/proc/{member}/fd")))
        except (OSError, StopIteration):
            continue            # it exited between the listing and the read
    return usage


def sample(pid: int) -> tuple[float, int]:
    """(resident MiB, open fds) of the process tree under `pid`, summed."""
    usage = tree_usage(pid).values()
    return sum(rss for rss, _ in usage), sum(fds for _, fds in usage)


def _relative(path: str) -> str:
    """`path` relative to the working directory when it lies under it (results carry no machine paths)."""
    cwd = str(Path.cwd()) + "/"
    return path.replace(cwd, "")


def _by_process(start: dict[int, tuple[float, int]], end: dict[int, tuple[float, int]]) -> list[dict]:
    """RSS and fds of each process of the xApp tree at the start and the end of the run."""
    def name(pid: int) -> str:
        """The command line, with paths shown relative to this checkout and the interpreter by name."""
        try:
            args = [a for a in Path(f"/proc/{pid}/cmdline").read_text().split("\0") if a]
        except OSError:
            return "?"
        args = [Path(a).name if i == 0 else _relative(a) for i, a in enumerate(args)]
        return " ".join(args)[:120]
    return [{"pid": pid, "cmd": name(pid), "rss_mib_start": start.get(pid, (None,))[0],
             "rss_mib_end": end.get(pid, (None,))[0], "fds_start": start.get(pid, (0, None))[1],
             "fds_end": end.get(pid, (0, None))[1]} for pid in sorted(start.keys() | end.keys())]


def _node(cell: int, scenario: str, port: int, ues: int, seconds: float, deadline_us: float | None,
          reconnect_every_s: float, kpm_period_ms: int) -> dict:
    """One cell for `seconds` of wall time (runs in its own process)."""
    from ranpd.simulator.e2node import E2Node
    from ranpd.simulator.scenarios import load_scenario

    sc = load_scenario(scenario)
    node = E2Node(sc, ("127.0.0.1", port), seed=cell, n_ues=ues, deadline_us=deadline_us, realtime=True,
                  kpm_period_ms=kpm_period_ms)
    node.node_id = f"soak-cell{cell}"
    start = time.monotonic()
    next_wave = start + reconnect_every_s if reconnect_every_s > 0 else float("inf")

    def on_slot(_: int) -> None:
        nonlocal next_wave
        if time.monotonic() >= next_wave:
            node.disconnect()
            next_wave += reconnect_every_s

    result = node.run(10**9, on_slot=on_slot, max_wall_s=seconds)
    wall = time.monotonic() - start
    return {"cell": cell, **{k: result[k] for k in NODE_KEYS},
            "realtime_ratio": result["slots"] * sc.slot_duration_s / wall, "wall_s": wall}


def memory_summary(samples: list[tuple[float, float, int]], warmup_s: float) -> dict:
    """RSS and fd figures after the warm-up from (t, rss MiB, fds) samples."""
    t, rss, fds = (np.asarray(c, np.float64) for c in zip(*samples))
    after = t >= warmup_s
    if after.sum() < 4:
        raise click.ClickException(f"only {int(after.sum())} samples after the {warmup_s:.0f} s warm-up: run longer")
    w = max(1, int(round(WINDOW * after.sum())))
    rss_a, fds_a = rss[after], fds[after]
    start_rss, end_rss = float(np.median(rss_a[:w])), float(np.median(rss_a[-w:]))
    start_fds, end_fds = float(np.median(fds_a[:w])), float(np.median(fds_a[-w:]))
    return {"rss_mib_first_sample": float(rss[0]), "rss_mib_after_warmup": start_rss, "rss_mib_end": end_rss,
            "rss_growth_after_warmup_pct": 100 * (end_rss / start_rss - 1), "rss_mib_max": float(rss.max()),
            "fds_after_warmup": start_fds, "fds_end": end_fds, "fd_drift": end_fds - start_fds,
            "fds_min": int(fds_a.min()), "fds_max": int(fds_a.max()), "samples": int(t.size), "window_samples": w}


def run_soak(model: Path, cells: int, ues: int, seconds: float, scenario: str, deadline_us: float | None,
             reconnect_every_s: float, kpm_period_ms: int, warmup_s: float, sample_s: float,
             progress: bool = True) -> dict:
    import multiprocessing as mp

    from rich.progress import Progress

    from ranpd.cli.demo import xapp_process

    os.environ.setdefault("OMP_NUM_THREADS", "1")       # inherited by the node processes
    samples: list[tuple[float, float, int]] = []
    with xapp_process(model) as xapp, ProcessPoolExecutor(cells, mp_context=mp.get_context("spawn")) as pool, \
            Progress(disable=not progress, transient=True) as bar:
        idle_usage = tree_usage(xapp.pid)
        idle_rss, idle_fds = sum(r for r, _ in idle_usage.values()), sum(f for _, f in idle_usage.values())
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        futures = [pool.submit(_node, cell, scenario, xapp.e2_port, ues, seconds, deadline_us, reconnect_every_s,
                               kpm_period_ms) for cell in range(cells)]
        task = bar.add_task(f"soak: {cells} cells x {ues} UEs", total=seconds)
        while not all(f.done() for f in futures):
            now = time.monotonic() - start
            samples.append((now, *sample(xapp.pid)))
            bar.update(task, completed=min(now, seconds))
            time.sleep(sample_s)
        nodes = [f.result() for f in futures]
        processes = _by_process(idle_usage, tree_usage(xapp.pid))
    return {"cells": cells, "ues": ues, "minutes": seconds / 60, "scenario": scenario, "deadline_us": deadline_us,
            "reconnect_every_s": reconnect_every_s, "kpm_period_ms": kpm_period_ms, "warmup_s": warmup_s,
            "cpus": os.cpu_count(), "loadavg_1min": {"before": load_before, "end": os.getloadavg()[0]},
            "model": _relative(str(model)),
            "xapp": {"idle_rss_mib": idle_rss, "idle_fds": idle_fds, **memory_summary(samples, warmup_s)},
            "processes": processes, "nodes": nodes, "samples": [[round(t, 2), round(r, 2), f] for t, r, f in samples]}


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"soak: {report['cells']} cells x {report['ues']} UEs, {report['minutes']:g} min, "
                        f"{report['scenario']}, deadline {report['nodes'][0]['deadline_us']:.0f} us")
    for column in ("cell", "slots", "real-time", "fallback", "RTT p50 us", "RTT p99 us", "reconnects", "KPM"):
        table.add_column(column, justify="right")
    for n in report["nodes"]:
        rtt = [f"{n[k]:.0f}" if n[k] is not None else "n/a" for k in ("rtt_p50_us", "rtt_p99_us")]
        table.add_row(str(n["cell"]), str(n["slots"]), f"{n['realtime_ratio']:.2f}", f"{n['fallback_rate']:.1%}",
                      *rtt, str(n["reconnects"]), str(n["kpm_reports"]))
    console = Console()
    console.print(table)
    x = report["xapp"]
    console.print(f"xApp RSS {x['rss_mib_after_warmup']:.1f} -> {x['rss_mib_end']:.1f} MiB after the "
                  f"{report['warmup_s']:.0f} s warm-up ({x['rss_growth_after_warmup_pct']:+.2f}%, max "
                  f"{x['rss_mib_max']:.1f}); fds {x['fds_after_warmup']:.0f} -> {x['fds_end']:.0f} "
                  f"(drift {x['fd_drift']:+.0f}, range {x['fds_min']}..{x['fds_max']}); {x['samples']} samples; "
                  f"load average {report['loadavg_1min']['before']:.1f} before, {report['loadavg_1min']['end']:.1f} "
                  f"at the end on {report['cpus']} CPUs")


@click.command("soak", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cells", type=click.IntRange(1, 64), default=4, show_default=True, help="E2 nodes, one process each.")
@click.option("--ues", type=click.IntRange(1), default=64, show_default=True, help="UEs per cell.")
@click.option("--minutes", type=click.FloatRange(min=0.02), default=10.0, show_default=True, help="Wall-clock length.")
@click.option("--scenario", default="uma-mid-pedestrian", show_default=True,
              help="Scenario of every cell (uma-mid-pedestrian: 30 kHz, 0.5 ms slots).")
@click.option("--deadline-us", type=click.FloatRange(min=1.0), default=None,
              help="Per-slot round-trip budget (default: one slot).")
@click.option("--reconnect-every-s", type=click.FloatRange(min=0.0), default=60.0, show_default=True,
              help="Each node drops its link and sets it up again this often (0: never).")
@click.option("--kpm-period-ms", type=click.IntRange(min=0), default=100, show_default=True,
              help="KPM report period of every node (0: none).")
@click.option("--warmup-s", type=click.FloatRange(min=0.0), default=None,
              help="Samples before this are warm-up (default: 10% of the run, at most 60 s).")
@click.option("--sample-s", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="RSS/fd sampling interval.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX student with its card (default: the shipped one, else a random-weight MLP of its shape).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with every RSS/fd sample).")
def bench_soak(cells, ues, minutes, scenario, deadline_us, reconnect_every_s, kpm_period_ms, warmup_s, sample_s,
               model, as_json) -> None:
    """Soak the xApp: N cells x UEs for minutes; per-cell fallback and RTT p50/p99, the xApp's RSS
    growth after warm-up and fd drift (Linux /proc)."""
    from ranpd.simulator.cli import load_scenario_or_fail
    from ranpd.xapp.model import PACKAGED_MODEL
    from ranpd.xapp.synthetic import write_synthetic_model

    if not Path("/proc/self/status").is_file():
        raise click.ClickException("the soak samples memory and fds from /proc: Linux only")
    load_scenario_or_fail(scenario)
    seconds = minutes * 60
    warmup_s = min(60.0, 0.1 * seconds) if warmup_s is None else warmup_s
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            model = PACKAGED_MODEL if PACKAGED_MODEL.is_file() else write_synthetic_model(Path(tmp) / "synthetic.onnx")
        report = run_soak(model, cells, ues, seconds, scenario, deadline_us, reconnect_every_s, kpm_period_ms,
                          warmup_s, sample_s, progress=not as_json)
    report["command"] = "ranpd " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print(report)
