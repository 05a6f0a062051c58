"""The xApp's memory stays bounded under a long stream of indications (docs/soak.md).

- The E2 server pops one frame per turn and stops when no whole frame is left; the frame decoder
  must release the handled bytes on that path too (it used to keep every byte a connection ever
  sent: the E2 worker grew by exactly the bytes received, ~20 MiB/min in the soak).
- The E2 worker process, fed whole 64-UE indications by four nodes, keeps a flat RSS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto.e2link import E2Link
from ranpd.proto.framing import FrameDecoder, encode_frame, wrap

sys.path.insert(0, str(Path(__file__).parent))
from test_xapp_isolation import SERVE, indication  # noqa: E402

FRAME = encode_frame(wrap(e2.ErrorIndication(text="x" * 1400)))


def _traced_growth(feed) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_decoder_releases_frames_popped_one_per_turn():
    """The server's pattern: whole frames arrive, one is popped per turn until none is complete."""
    decoder = FrameDecoder()

    def feed():
        for _ in range(10_000):                          # 14 MB through the decoder
            decoder.push(FRAME)
            while decoder.complete():
                assert decoder.pop() is not None

    assert _traced_growth(feed) < 64 << 10
    assert decoder.pending == 0


def test_decoder_releases_frames_with_partial_tails():
    """Chunks that end inside a frame (a partial frame always left behind) are released too."""
    decoder, rng = FrameDecoder(), np.random.default_rng(0)
    stream = FRAME * 5_000
    frames = 0

    def feed():
        nonlocal frames
        i = 0
        while i < len(stream):
            step = int(rng.integers(1, 3 * len(FRAME)))
            decoder.push(stream[i:i + step])
            i += step
            while decoder.complete():
                assert not isinstance(decoder.pop(), Exception)
                frames += 1

    assert _traced_growth(feed) < 64 << 10
    assert frames == 5_000 and decoder.pending == 0


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def _children(pid: int) -> list[int]:
    return [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in f.read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads RSS from /proc (Linux)")
def test_e2_worker_rss_flat_under_a_stream_of_indications(tmp_path):
    """Four nodes send 64-UE indications (776-byte frames) as fast as the worker takes them;
    after a warm-up the E2 worker's RSS must not follow the bytes received (before the decoder
    fix it grew by exactly that: ~7.4 MiB per 10k frames)."""
    from ranpd.xapp.synthetic import write_synthetic_model

    model = write_synthetic_model(tmp_path / "student.onnx")
    # work_share 1: the four nodes each want more than a quarter of the main worker, which would move
    # them to the front (tests/test_xapp_workers.py); this test is about memory, not that rule
    xapp = subprocess.Popen([sys.executable, "-c", SERVE, str(model), '{"work_share": 1.0}'], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True)
    stop = threading.Event()
    sent = [0] * 4
    try:
        e2_port, _ = json.loads(xapp.stdout.readline())
        workers = [pid for pid in _children(xapp.pid) if _rss_mib(pid) > 50]   # both E2 workers, not the tracker

        def worker_rss() -> float:
            return sum(_rss_mib(pid) for pid in workers)

        links = [E2Link("127.0.0.1", e2_port, f"mem-{i}", timeout_s=5.0) for i in range(4)]

        def drive(i: int, link: E2Link) -> None:
            ues, seq = np.arange(64), 0
            link.sock.setblocking(True)
            while not stop.is_set():
                seq += 1
                link.send(indication(seq, ues, seq))
                sent[i] += 1
                if seq % 32 == 0:
                    time.sleep(0.005)

        def drain(link: E2Link) -> None:
            while not stop.is_set():
                try:
                    if not link.sock.recv(1 << 16):
                        return
                except OSError:
                    if stop.is_set():
                        return

        for i, link in enumerate(links):
            link.sock.settimeout(0.5)
            threading.Thread(target=drain, args=(link,), daemon=True).start()
            threading.Thread(target=drive, args=(i, link), daemon=True).start()
        deadline = time.monotonic() + 120                     # a dropped node stops sending: fail, not hang
        while sum(sent) < 5_000 and time.monotonic() < deadline:   # warm-up
            time.sleep(0.1)
        start_rss, start_sent = worker_rss(), sum(sent)
        while sum(sent) - start_sent < 15_000 and time.monotonic() < deadline:   # 11 MiB of frames
            time.sleep(0.1)
        assert sum(sent) - start_sent >= 15_000, f"the nodes stopped sending after {sum(sent)} frames"
        growth, frames = worker_rss() - start_rss, sum(sent) - start_sent
    finally:
        stop.set()
        xapp.stdin.close()
        xapp.wait(10)
    received_mib = frames * 776 / 2**20
    print(f"E2 workers' RSS {start_rss:.1f} MiB, +{growth:.2f} MiB over {frames} frames ({received_mib:.1f} MiB)")
    assert growth < 2.0, f"E2 workers grew {growth:.1f} MiB over {frames} frames ({received_mib:.1f} MiB received)"


def test_model_bindings_bounded_across_batch_sizes(tmp_path):
    """A peer that varies its batch size (1..1024 UEs) must not grow the model's IO bindings:
    one binding per size held ~136 MiB of buffers; exact sizes up to 64, then powers of two."""
    from ranpd.simulator.observation import OBS_DIM
    from ranpd.xapp.model import EXACT_BOUND_BATCH, MAX_BOUND_BATCH, OnnxPolicyModel
    from ranpd.xapp.synthetic import write_synthetic_model

    model = OnnxPolicyModel.load(write_synthetic_model(tmp_path / "student.onnx"))
    rng = np.random.default_rng(0)
    model.score(rng.random((EXACT_BOUND_BATCH, OBS_DIM), dtype=np.float32))
    start = _rss_mib(os.getpid()) if Path("/proc/self/status").is_file() else None
    for n in range(1, MAX_BOUND_BATCH + 1):
        model.score(rng.random((n, OBS_DIM), dtype=np.float32))
    assert len(model._bound) <= EXACT_BOUND_BATCH + 4
    if start is not None:
        assert _rss_mib(os.getpid()) - start < 16
    # Padded rows hold earlier inputs; the scores of the real rows are those of a plain run.
    for n in (1, 63, 64, 65, 100, 513, 1024, 1500):
        obs = rng.random((n, OBS_DIM), dtype=np.float32)
        expected = model.session.run(None, {model.input_name: obs})[0]
        scores = model.score(obs)
        assert scores.shape == (n, model.n_actions)
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_closed_sessions_release_their_ue_store(tmp_path):
    """A node that reconnects leaves no UE store behind: the store is released when the connection
    closes, not at the next full garbage collection (protocol, session and transport refer to each
    other; dead stores piled up between collections and the E2 worker's RSS stepped up with each
    reconnect wave of the soak). The collector is off during the waves, so only that release frees them."""
    import gc

    from ranpd.xapp.config import XappSettings
    from ranpd.xapp.model import OnnxPolicyModel
    from ranpd.xapp.server import XappThread
    from ranpd.xapp.state import UeStateStore
    from ranpd.xapp.synthetic import write_synthetic_model

    model = OnnxPolicyModel.load(write_synthetic_model(tmp_path / "student.onnx"))

    def stores() -> int:
        return sum(isinstance(o, UeStateStore) for o in gc.get_objects())

    with XappThread(XappSettings(e2_port=0, http_port=0, log_level="error"), model, http=False) as running:
        gc.collect()
        gc.disable()
        try:
            for wave in range(3):
                links = [E2Link("127.0.0.1", running.e2_port, f"wave{wave}-{i}", timeout_s=5.0) for i in range(4)]
                for slot in range(10, 15):
                    for link in links:
                        link.send(indication(slot, np.arange(64), slot))
                    for link in links:
                        assert link.receive(time.monotonic_ns() + 2_000_000_000).HasField("ric_control_request")
                assert stores() >= 4
                for link in links:
                    link.sock.close()
                deadline = time.monotonic() + 5
                while running.service.sessions and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert not running.service.sessions
            assert stores() == 0
        finally:
            gc.enable()
