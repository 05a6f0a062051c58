"""Per-UE link state of one E2 node: a bounded map UE id -> row of an ObservationBuilder.

The xApp keeps, for each E2 node, the same `ranpd.simulator.observation.ObservationBuilder` the
training environment uses, with one row per known UE. A UE gets a row when it first appears (in a
CSI report, HARQ feedback or a decision request); rows are freed when a UE stays silent for
`idle_slots`, and when the store is full the least recently seen UE is evicted (LRU), so memory
is bounded by `capacity` whatever the node sends.
"""
from __future__ import annotations

import numpy as np

from ranpd.simulator.observation import ObservationBuilder
from ranpd.simulator.report import SlotReport

_NEVER = np.iinfo(np.int64).min


class UeStateStore:
    def __init__(self, capacity: int, mcs_table: int = 2, cqi_table: int = 2, idle_slots: int = 20000):
        self.capacity, self.idle_slots = capacity, idle_slots
        self.builder = ObservationBuilder(capacity, mcs_table, cqi_table)
        self._row_of: dict[int, int] = {}
        self._ue_of = np.full(capacity, -1, np.int64)
        self._last_seen = np.full(capacity, _NEVER, np.int64)
        self._free = list(range(capacity - 1, -1, -1))
        self.evictions = 0

    @property
    def tables(self) -> tuple[int, int]:
        return self.builder.mcs_table, self.builder.cqi_table

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, ue: int) -> bool:
        return ue in self._row_of

    def _release(self, rows: np.ndarray) -> None:
        for row in rows.tolist():
            del self._row_of[int(self._ue_of[row])]
            self._free.append(row)
        self._ue_of[rows] = -1
        self._last_seen[rows] = _NEVER
        self.evictions += len(rows)

    def evict_idle(self, slot: int) -> int:
        """Forget UEs unseen for more than `idle_slots`; returns how many."""
        idle = np.flatnonzero((self._ue_of >= 0) & (self._last_seen < slot - self.idle_slots))
        self._release(idle)
        return idle.size

    def rows(self, ues: np.ndarray, slot: int) -> np.ndarray:
        """Rows of these UE ids (new UEs get fresh rows, evicting the least recently seen
        UE not in `ues` when full); marks them seen at `slot`. Raises OverflowError when `ues`
        holds more distinct UEs than the store can."""
        row_of = self._row_of
        rows = [row_of.get(ue, -1) for ue in ues.tolist()]
        if -1 in rows:
            for i, ue in enumerate(ues.tolist()):
                if rows[i] == -1:
                    rows[i] = row_of.get(ue, -1)
                    if rows[i] == -1:
                        rows[i] = self._admit(ue, rows, slot)
        out = np.array(rows, np.int64)
        self._last_seen[out] = slot
        return out

    def _admit(self, ue: int, protected: list[int], slot: int) -> int:
        if not self._free:
            self._last_seen[[r for r in protected if r >= 0]] = slot    # never evict a UE in use
            oldest = int(np.argmin(self._last_seen))
            if self._last_seen[oldest] == slot:
                raise OverflowError(f"an indication names more than {self.capacity} UEs")
            self._release(np.array([oldest]))
        row = self._free.pop()
        self.builder.reset_rows([row])
        self._row_of[ue] = row
        self._ue_of[row] = ue
        return row

    def observe(self, report: SlotReport) -> np.ndarray:
        """Apply the report's events to its UEs' rows, then observe the UEs needing a decision
        (float32 [len(report.ue), OBS_DIM]), exactly as `ObservationBuilder.observe_report`."""
        n_cqi, n_harq = report.cqi_ue.size, report.harq_ue.size
        rows = self.rows(np.concatenate((report.cqi_ue, report.harq_ue, report.ue)), report.slot)
        builder = self.builder
        builder.apply_cqi(rows[:n_cqi], report.cqi_value, report.cqi_slot)
        builder.apply_harq(rows[n_cqi:n_cqi + n_harq], report.harq_ack, report.harq_mcs, report.harq_tx,
                           report.slot)
        return builder.observe(rows[n_cqi + n_harq:], report.slot, report.prbs, report.layers,
                               report.buffer_bytes)
