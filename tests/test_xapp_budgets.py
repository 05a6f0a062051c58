"""The E2 loop's budgets (xapp/server.py `E2Protocol._charge`), on a simulated clock:
heavy peers share one budget however many they are, a light node is never paused by them, and
connections not set up share the pre-setup pool's budget."""
from __future__ import annotations

import pytest

from ranpd.xapp import budgets
from ranpd.xapp.budgets import E2Limits
from ranpd.xapp.config import XappSettings
from ranpd.xapp.handlers import E2Session
from ranpd.xapp.server import E2Protocol, E2Server
from ranpd.xapp.service import XappService


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(budgets.time, "monotonic", clock)
    return clock


def _peer(server: E2Server, node_id: str | None) -> E2Protocol:
    protocol = E2Protocol(server)
    protocol.session = E2Session(server.service, node_id or "?")
    protocol.session.node_id = node_id
    return protocol


def _granted(clock: Clock, peers: dict[str, tuple[E2Protocol, float, float]], seconds: float) -> dict[str, float]:
    """Each peer asks for `cost` s of loop CPU every `period` s (when not paused), on a 0.1 ms
    tick; the loop CPU each was granted over `seconds`, and "NAME paused": how often it was paused."""
    tick = 1e-4
    granted = {name: 0.0 for name in peers}
    paused_until = {name: 0 for name in peers}
    next_at = {name: 0 for name in peers}
    start = clock.now
    for t in range(int(round(seconds / tick))):
        clock.now = start + t * tick
        for name, (protocol, cost, period) in peers.items():
            if t >= next_at[name] and t >= paused_until[name]:
                granted[name] += cost
                wait = protocol._charge(cost)
                paused_until[name] = t + int(-(-wait // tick))
                next_at[name] = t + int(round(period / tick))
                if wait > 0:
                    granted[f"{name} paused"] = granted.get(f"{name} paused", 0.0) + 1
    return granted


def test_heavy_peers_share_one_budget_and_light_nodes_are_never_paused(clock):
    limits = E2Limits()
    server = E2Server(XappService(XappSettings(), limits=limits))
    peers = {"huge": (_peer(server, "huge"), 0.002, 0.0), "sink": (_peer(server, "sink"), 0.0005, 0.0),
             "normal": (_peer(server, "normal"), 0.0002, 0.002)}
    granted = _granted(clock, peers, 10.0)
    heavy = (granted["huge"] + granted["sink"]) / 10.0
    # Each alone may use work_share; together they get heavy_work_share (plus bursts and one
    # request each past the budget), not twice work_share.
    assert heavy <= limits.heavy_work_share + 0.03, granted
    assert "normal paused" not in granted, granted
    assert granted["normal"] == pytest.approx(0.0002 * 10 / 0.002, rel=0.01)


def test_one_heavy_peer_keeps_its_own_share(clock):
    limits = E2Limits()
    server = E2Server(XappService(XappSettings(), limits=limits))
    granted = _granted(clock, {"heavy": (_peer(server, "heavy"), 0.001, 0.0)}, 10.0)
    assert granted["heavy"] / 10.0 == pytest.approx(min(limits.work_share, limits.heavy_work_share), abs=0.02)


def test_connections_not_set_up_share_the_pool_budget(clock):
    limits = E2Limits()
    server = E2Server(XappService(XappSettings(), limits=limits))
    peers = {f"garbage{i}": (_peer(server, None), 0.0001, 0.0) for i in range(5)}
    granted = _granted(clock, peers, 10.0)
    total = sum(v for k, v in granted.items() if "paused" not in k) / 10.0
    assert total <= limits.setup_work_share + 0.01, granted
