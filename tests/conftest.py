"""Fixtures shared by the E2 node tests (real-time and near-RT loops)."""
from __future__ import annotations

import numpy as np
import pytest

from ranpd.simulator import engine


@pytest.fixture
def counted_steps(monkeypatch):
    """Counts the UE-slots the simulation transmits anew and the valid MCS values it was given."""
    counts = {"scheduled": 0, "given": 0}
    step = engine.Simulation.step

    def counting_step(self, mcs):
        outcome = step(self, mcs)
        mcs = np.asarray(mcs)
        counts["scheduled"] += outcome.ue.size
        counts["given"] += int(((mcs >= 0) & (mcs <= self.max_mcs)).sum())
        return outcome

    monkeypatch.setattr(engine.Simulation, "step", counting_step)
    return counts
