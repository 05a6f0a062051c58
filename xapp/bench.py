"""`ranpd bench xapp`: indication -> control round trip over loopback TCP, per-stage split, max rate.

The xApp runs in its own process (E2 server only, one onnxruntime thread); this process plays
the E2 node with a blocking socket and pre-encoded indications, so the round trip measures the
xApp plus the loopback. Each indication asks an MCS for every one of its N UEs and carries CQI
reports for N/10 and HARQ feedback for N/4 of them, as a busy cell would. The stage split
(decode, observation, inference, encode, total) is the xApp's own handler timing the same
indications in this process. Max rate: indications kept 32 in flight for a few seconds' worth.
The floor: a plain asyncio echo server in a third process answers the same frames byte for byte,
timed in the same run; issue 10's target is the xApp's p50 within 2x of it.
"""
from __future__ import annotations

import functools
import json
import multiprocessing as mp
import socket
import tempfile
import time
from pathlib import Path

import click
import numpy as np

PIPELINE_DEPTH = 32
REPLY_TIMEOUT_S = 10.0
REPLY_TIMEOUT_NS = int(REPLY_TIMEOUT_S * 1e9)


def _indications(n_ues: int, count: int, seed: int = 0):
    from ranpd.simulator.report import SlotReport

    rng = np.random.default_rng(seed)
    n_cqi, n_harq = max(n_ues // 10, 1), max(n_ues // 4, 1)
    ues = np.arange(n_ues)
    for slot in range(count):
        cqi_ue, harq_ue = rng.choice(ues, n_cqi, replace=False), rng.choice(ues, n_harq, replace=False)
        yield SlotReport(
            slot=slot + 100, cqi_ue=cqi_ue, cqi_value=rng.integers(1, 16, n_cqi), cqi_slot=np.full(n_cqi, slot + 92),
            harq_ue=harq_ue, harq_ack=rng.random(n_harq) < 0.9, harq_mcs=rng.integers(0, 28, n_harq),
            harq_tbs=rng.integers(1000, 100_000, n_harq), harq_tx=rng.integers(1, 3, n_harq),
            harq_process=rng.integers(0, 16, n_harq), ue=rng.permutation(ues),
            prbs=rng.integers(1, 69, n_ues), layers=rng.integers(1, 3, n_ues),
            buffer_bytes=rng.integers(0, 10**6, n_ues))


def _serve(model_path: str, conn) -> None:
    """The xApp (E2 only, on its own thread) serving `model_path`; sends its E2 port on `conn`."""
    import asyncio

    from ranpd.xapp.config import XappSettings
    from ranpd.xapp.model import OnnxPolicyModel
    from ranpd.xapp.server import serve_xapp

    async def main():
        settings = XappSettings(host="127.0.0.1", e2_port=0, http_port=0, log_level="warning")
        async with serve_xapp(settings, OnnxPolicyModel.load(model_path), http=False) as running:
            conn.send(running.e2_port)
            await asyncio.Event().wait()

    asyncio.run(main())


def _echo_serve(conn) -> None:
    """The floor of the real-time loop (issue 10): a plain asyncio server that answers each frame
    with the same bytes, parsing nothing but the 4-byte length."""
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, bytearray()

        def data_received(self, data):
            self.buffer += data
            while len(self.buffer) >= 4 and len(self.buffer) >= 4 + int.from_bytes(self.buffer[:4], "big"):
                end = 4 + int.from_bytes(self.buffer[:4], "big")
                self.transport.write(bytes(self.buffer[:end]))
                del self.buffer[:end]

    async def main():
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def _echo_rtts(port: int, frames: list[bytes], warmup: int) -> list[int]:
    """Round trips (ns) of `frames` through the echo server, after `warmup` of them."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtt = []
    try:
        for i, frame in enumerate(frames):
            t0 = time.perf_counter_ns()
            sock.sendall(frame)
            left = len(frame)
            while left:
                left -= len(sock.recv(left))
            if i >= warmup:
                rtt.append(time.perf_counter_ns() - t0)
    finally:
        sock.close()
    return rtt


def _start(ctx, target) -> tuple:
    """A spawned server process and the port it reports."""
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child,), daemon=True)
    process.start()
    if not parent.poll(60):
        process.terminate()
        raise click.ClickException(f"{target.__name__} did not start within 60 s")
    return process, parent.recv()


def _percentiles_us(ns) -> dict:
    ns = np.asarray(ns, np.float64)
    return {"p50_us": float(np.percentile(ns, 50) / 1e3), "p99_us": float(np.percentile(ns, 99) / 1e3)}


class _Recorder:
    """Stands in for one of the xApp's stage histograms in `_stages`: keeps every observation."""

    def __init__(self):
        self.seconds: list[float] = []

    def observe(self, seconds: float) -> None:
        self.seconds.append(seconds)


def _stages(frames: list[bytes], model_path: Path) -> dict:
    """Per-stage p50/p99 on the same frames, through the xApp's own handler (an E2 session in this
    process) with its stage timers recording every frame instead of filling histograms."""
    from ranpd.proto.e2link import la_subscription_request, setup_request
    from ranpd.proto.framing import FrameDecoder, wrap
    from ranpd.xapp.config import XappSettings
    from ranpd.xapp.handlers import E2Session
    from ranpd.xapp.model import OnnxPolicyModel
    from ranpd.xapp.service import XappService

    service = XappService(XappSettings(log_level="warning"), OnnxPolicyModel.load(model_path))
    timers = service.metrics.stages = {stage: _Recorder() for stage in service.metrics.stages}
    session, decoder = E2Session(service, "bench"), FrameDecoder()
    for message in (setup_request("bench-stages"), la_subscription_request()):
        session.handle(wrap(message), time.perf_counter_ns())
    for frame in frames:
        (envelope,) = decoder.feed(frame)
        session.handle(envelope, time.perf_counter_ns())
    return {stage: _percentiles_us(np.asarray(t.seconds) * 1e9) for stage, t in timers.items()}


def run_bench(ue_counts: list[int], n_indications: int, model_path: Path, progress: bool = True) -> dict:
    from rich.progress import Progress

    from ranpd.proto.e2link import REQUEST_ID, E2Link
    from ranpd.proto.framing import encode_frame
    from ranpd.proto.la_codec import indication_envelope
    from ranpd.xapp.model import OnnxPolicyModel

    model = OnnxPolicyModel.load(model_path)
    ctx = mp.get_context("spawn")
    server, port = _start(ctx, functools.partial(_serve, str(model_path)))
    echo, echo_port = _start(ctx, _echo_serve)
    try:
        results = []
        with Progress(disable=not progress, transient=True) as bar:
            for n_ues in ue_counts:
                task = bar.add_task(f"{n_ues} UEs", total=3 * n_indications)
                frames = [encode_frame(indication_envelope(r, request_id=REQUEST_ID, sequence_number=i, deadline_ns=0))
                          for i, r in enumerate(_indications(n_ues, n_indications))]
                client = E2Link("127.0.0.1", port, f"bench-{n_ues}", timeout_s=REPLY_TIMEOUT_S)
                warmup = min(200, n_indications // 5)
                rtt = []
                for i, frame in enumerate(frames):
                    t0 = time.perf_counter_ns()
                    client.send_frames(frame)
                    reply = client.receive(time.monotonic_ns() + REPLY_TIMEOUT_NS)
                    if i >= warmup:
                        rtt.append(time.perf_counter_ns() - t0)
                    if reply is None or not reply.HasField("ric_control_request"):
                        raise click.ClickException(f"xApp answered {reply}")
                    bar.advance(task)
                client.close()                         # a fresh session: slots must not go backwards
                echo_rtt = _echo_rtts(echo_port, frames, warmup)
                bar.advance(task, len(frames))
                client = E2Link("127.0.0.1", port, f"bench-{n_ues}", timeout_s=REPLY_TIMEOUT_S)
                t0 = time.perf_counter_ns()
                for start in range(0, len(frames), PIPELINE_DEPTH):
                    batch = frames[start:start + PIPELINE_DEPTH]
                    client.send_frames(b"".join(batch))
                    for _ in batch:
                        if client.receive(time.monotonic_ns() + REPLY_TIMEOUT_NS) is None:
                            raise click.ClickException(f"no answer within {REPLY_TIMEOUT_S} s")
                    bar.advance(task, len(batch))
                rate = len(frames) / ((time.perf_counter_ns() - t0) * 1e-9)
                client.close()
                floor = {f"echo_{k}": v for k, v in _percentiles_us(echo_rtt).items()}
                results.append({"ues": n_ues, "indications": len(rtt), **_percentiles_us(rtt), **floor,
                                "p50_vs_echo": float(np.median(rtt) / np.median(echo_rtt)),
                                "max_indications_per_s": rate, "stages": _stages(frames, model_path)})
    finally:
        for process in (server, echo):
            process.terminate()
            process.join(5)
    return {"model": model.version, "architecture": model.card.architecture, "results": results}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--ues", default="1,16,64", show_default=True, help="UEs per indication, comma-separated.")
@click.option("--indications", default=3000, show_default=True, help="Round trips per UE count.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="ONNX model with its card (default: the shipped student, else a random-weight MLP "
                   "of the student's shape, which costs the same to serve).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_xapp(ues: str, indications: int, model_path: Path | None, as_json: bool) -> None:
    """Indication -> control round trip over loopback TCP (p50/p99 us) beside a plain Python echo
    server answering the same frames in the same run (the loop's floor), the per-stage split
    (decode, observation, inference, encode) and the most indications/s one xApp process
    sustains, for each UE count. Targets for 64 UEs (issue 10): p50 within 2x of the echo,
    p99 <= 400 us, >= 12,000 indications/s."""
    from ranpd.xapp.model import PACKAGED_MODEL
    from ranpd.xapp.synthetic import write_synthetic_model

    try:
        ue_counts = [int(u) for u in ues.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {ues!r}", param_hint="--ues")
    if indications < 10 or any(u < 1 for u in ue_counts):
        raise click.BadParameter("need >= 10 indications and >= 1 UE per indication")
    with tempfile.TemporaryDirectory() as tmp:
        if model_path is None:
            model_path = PACKAGED_MODEL if PACKAGED_MODEL.is_file() else write_synthetic_model(Path(tmp) / "synthetic.onnx")
        report = run_bench(ue_counts, indications, model_path, progress=not as_json)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"xApp round trip over loopback ({report['model']}, {report['architecture']})")
    for column in ("UEs", "RTT p50 µs", "RTT p99 µs", "echo p50 / p99 µs", "p50 ÷ echo", "decode p50",
                   "observation p50", "inference p50", "encode p50", "handler total p50", "max indications/s"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        s = r["stages"]
        table.add_row(str(r["ues"]), f"{r['p50_us']:.0f}", f"{r['p99_us']:.0f}",
                      f"{r['echo_p50_us']:.0f} / {r['echo_p99_us']:.0f}", f"{r['p50_vs_echo']:.1f}x",
                      *(f"{s[k]['p50_us']:.1f}" for k in ("decode", "observation", "inference", "encode", "total")),
                      f"{r['max_indications_per_s']:.0f}")
    Console().print(table)
