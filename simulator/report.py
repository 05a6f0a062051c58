"""What a gNB knows at one slot's link-adaptation decision: the contract between the simulator,
its policies and the E2 node.

A `SlotReport` carries the events the gNB received in this slot (CSI reports, HARQ-ACK feedback)
and the UEs scheduled for a *new* transmission, each needing an MCS. Retransmissions reuse the
MCS of their first transmission (TS 38.214 §5.1.3.1, MCS 28-31 / 29-31 on retransmission) and need
no decision. The E2 node turns one report into one RIC Indication; the xApp rebuilds the same
report from it, so a policy behind the xApp sees exactly what it sees in the simulator.

All arrays are numpy; UE ids are the simulator's UE indices.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _ints(n: int = 0) -> np.ndarray:
    return np.zeros(n, np.int64)


@dataclass
class SlotReport:
    slot: int
    mcs_table: int = 2
    cqi_table: int = 2
    # CSI reports received this slot: wideband CQI and the slot of its reference resource.
    cqi_ue: np.ndarray = field(default_factory=_ints)
    cqi_value: np.ndarray = field(default_factory=_ints)
    cqi_slot: np.ndarray = field(default_factory=_ints)
    # HARQ-ACK feedback received this slot, in the order the PDSCHs were sent. Under TDD one
    # uplink slot can acknowledge several of a UE's transmissions (TS 38.213 §9.1 codebook).
    harq_ue: np.ndarray = field(default_factory=_ints)
    harq_ack: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    harq_mcs: np.ndarray = field(default_factory=_ints)
    harq_tbs: np.ndarray = field(default_factory=_ints)
    harq_tx: np.ndarray = field(default_factory=_ints)       # transmission number, 1 = first
    harq_process: np.ndarray = field(default_factory=_ints)
    # UEs scheduled for a new transmission this slot: each needs an MCS.
    ue: np.ndarray = field(default_factory=_ints)
    prbs: np.ndarray = field(default_factory=_ints)
    layers: np.ndarray = field(default_factory=_ints)
    buffer_bytes: np.ndarray = field(default_factory=_ints)

    @property
    def n_decisions(self) -> int:
        return int(self.ue.size)


def occurrence_rounds(ids: np.ndarray):
    """Masks over `ids` that split it into rounds in which each id appears at most once, keeping
    order (the k-th occurrence of every id falls in round k). One round when ids are unique.

    Lets vectorised per-UE state updates (gather, update, scatter) apply several events of one UE
    in the order they were received.
    """
    ids = np.asarray(ids)
    if ids.size < 2 or np.unique(ids).size == ids.size:
        yield np.ones(ids.size, bool)
        return
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_ids)) + 1]
    rank = np.empty(ids.size, np.int64)
    rank[order] = np.arange(ids.size) - np.repeat(starts, np.diff(np.r_[starts, ids.size]))
    for r in range(int(rank.max()) + 1):
        yield rank == r
