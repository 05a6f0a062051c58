"""The two E2 worker processes: the front hands set-up nodes to the main worker, and the main
worker moves a heavy node (frames far costlier than the others', or answers it does not read)
back to the front, which serves it from its next connection (xapp/server.py)."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from ranpd.proto import framing
from ranpd.proto.e2link import E2Link, E2LinkError, la_subscription_request, setup_request
from ranpd.xapp.budgets import E2Limits
from ranpd.xapp.config import XappSettings
from ranpd.xapp.server import FRAME_CHECK_EVERY, XappThread
from tests.test_xapp_isolation import indication

HUGE = E2Limits().max_ues_per_indication


@pytest.fixture(scope="module")
def xapp():
    # small write buffers: a node that does not read reaches the high-water mark within a second
    limits = E2Limits(write_high_bytes=8192, socket_send_bytes=8192)
    with XappThread(XappSettings(e2_port=0, http_port=0, log_level="warning"), limits=limits, e2_process=True) as running:
        yield running


def _metric(xapp, name: str, labels: dict | None = None) -> float:
    return xapp.service.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def _decide(link: E2Link, slot: int, ues: np.ndarray):
    link.send(indication(slot, ues, slot))
    return link.receive(time.monotonic_ns() + 2_000_000_000)


def test_set_up_nodes_are_handed_to_the_main_worker(xapp):
    before = _metric(xapp, "ranpd_xapp_connections_handed_off_total")
    links = [E2Link("127.0.0.1", xapp.e2_port, f"handed-{i}", timeout_s=5.0) for i in range(2)]
    for slot in range(1, 4):
        for link in links:
            assert _decide(link, slot, np.arange(16)).HasField("ric_control_request")
    assert _metric(xapp, "ranpd_xapp_connections_handed_off_total") - before == 2
    for link in links:
        link.close()


def test_a_node_with_heavy_frames_is_moved_to_the_front(xapp):
    """512 new UEs a frame beside two 16-UE nodes: moved (OVERLOAD, closed) within a few checks;
    from its next connection the front serves it (no hand-off) and still answers it."""
    normal = [E2Link("127.0.0.1", xapp.e2_port, f"light-{i}", timeout_s=5.0) for i in range(2)]
    for slot in range(1, FRAME_CHECK_EVERY + 2):
        for link in normal:
            assert _decide(link, slot, np.arange(16)).HasField("ric_control_request")
    heavy = E2Link("127.0.0.1", xapp.e2_port, "heavy-frames", timeout_s=5.0)
    moved_before = _metric(xapp, "ranpd_xapp_connections_dropped_total", {"reason": "moved_heavy"})
    handed = _metric(xapp, "ranpd_xapp_connections_handed_off_total")
    answer = None
    with pytest.raises(E2LinkError):
        for slot in range(1, 10 * FRAME_CHECK_EVERY):
            answer = _decide(heavy, slot, np.arange(slot * HUGE, (slot + 1) * HUGE))
            assert answer is not None
            for link in normal:
                _decide(link, 1000 + slot, np.arange(16))
    assert answer is not None and answer.HasField("error_indication") and "lower priority" in answer.error_indication.text
    assert _metric(xapp, "ranpd_xapp_connections_dropped_total", {"reason": "moved_heavy"}) == moved_before + 1
    again = E2Link("127.0.0.1", xapp.e2_port, "heavy-frames", timeout_s=5.0)
    assert _decide(again, 1, np.arange(16)).HasField("ric_control_request")
    assert _metric(xapp, "ranpd_xapp_connections_handed_off_total") == handed      # served by the front
    for link in (*normal, again):
        link.close()


def test_a_node_that_does_not_read_is_moved_to_the_front(xapp):
    """A node that sends fresh indications and never reads the controls: once the xApp's write
    buffer for it reaches the high-water mark, the main worker moves it."""
    sink = socket.socket()
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)    # before connecting: a small window
    sink.connect(("127.0.0.1", xapp.e2_port))
    sink.sendall(framing.encode_frame(framing.wrap(setup_request("never-reads"), 1)) +
                 framing.encode_frame(framing.wrap(la_subscription_request(), 2)))
    time.sleep(0.5)                              # set up (and handed to the main worker) before the flood
    sink.setblocking(False)
    before = _metric(xapp, "ranpd_xapp_connections_dropped_total", {"reason": "moved_heavy"})
    deadline, slot, unsent = time.monotonic() + 30, 0, b""
    while time.monotonic() < deadline and (slot % 100 or _metric(
            xapp, "ranpd_xapp_connections_dropped_total", {"reason": "moved_heavy"}) == before):
        slot += 1                                # fresh: a stale indication is dropped unanswered
        if len(unsent) < 1 << 16:
            unsent += framing.encode_frame(indication(slot, np.arange(64), slot))
        try:
            unsent = unsent[sink.send(unsent):]     # whole frames only, however the kernel splits them
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:                          # closed by the xApp
            break
        time.sleep(0.0005)                       # answered before their 20 ms deadline
    time.sleep(0.1)
    assert _metric(xapp, "ranpd_xapp_connections_dropped_total", {"reason": "moved_heavy"}) == before + 1
    sink.close()
