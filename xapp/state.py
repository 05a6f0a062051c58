"""Per-UE link state of one E2 node: a bounded map UE id -> row of an ObservationBuilder.

The xApp keeps, for each E2 node, the same `ranpd.simulator.observation.ObservationBuilder` the
training environment uses, with one row per known UE. A UE gets a row when it first appears (in a
CSI report, HARQ feedback or a decision request); rows are freed when a UE stays silent for
`idle_slots`, and when the store is full the least recently seen UEs are evicted (LRU), so memory
is bounded by `capacity` whatever the node sends.

With a guard configuration the store also keeps the E2 node's `ranpd.simulator.guard.UeGuard`
(the same one offline evaluation uses), fed the same HARQ feedback, on the same rows. The
operator's BLER target of the node is every row's target (`set_bler_target`), so a UE that joins
later gets it too.

Every operation is vectorised: the id -> row index is a sorted array searched with
`np.searchsorted`, rebuilt only when UEs join or leave, so one indication costs
O(N log C + C) in numpy for N listed UEs and capacity C (no Python loop per UE).
"""
from __future__ import annotations

import numpy as np

from ranpd.simulator.guard import DEFAULT_MAX_TRANSMISSIONS, GuardConfig, UeGuard
from ranpd.simulator.observation import DEFAULT_BLER_TARGET, ObservationBuilder
from ranpd.simulator.report import SlotReport

_NEVER = np.iinfo(np.int64).min
_FREE = -1


class UeStateStore:
    def __init__(self, capacity: int, mcs_table: int = 2, cqi_table: int = 2, idle_slots: int = 20000,
                 bler_target: float | None = DEFAULT_BLER_TARGET, guard: GuardConfig | None = None,
                 max_transmissions: int = DEFAULT_MAX_TRANSMISSIONS):
        self.capacity, self.idle_slots = capacity, idle_slots
        self.builder = ObservationBuilder(capacity, mcs_table, cqi_table, bler_target)
        self.guard = None if guard is None else UeGuard(capacity, guard, max_transmissions)
        self._ue_of = np.full(capacity, _FREE, np.int64)          # row -> UE id
        self._last_seen = np.full(capacity, _NEVER, np.int64)
        self._keys = np.empty(0, np.int64)                         # sorted UE ids held
        self._key_rows = np.empty(0, np.int64)                     # their rows
        self.evictions = 0

    @property
    def tables(self) -> tuple[int, int]:
        return self.builder.mcs_table, self.builder.cqi_table

    def set_bler_target(self, target: float | None) -> None:
        """The node's first-tx BLER target (None: throughput mode) for every row, held or free."""
        self.builder.set_bler_target(np.arange(self.capacity), target)

    def __len__(self) -> int:
        return self._keys.size

    def __contains__(self, ue: int) -> bool:
        i = np.searchsorted(self._keys, ue)
        return bool(i < self._keys.size and self._keys[i] == ue)

    def _reindex(self) -> None:
        held = np.flatnonzero(self._ue_of != _FREE)
        order = np.argsort(self._ue_of[held], kind="stable")
        self._key_rows = held[order]
        self._keys = self._ue_of[self._key_rows]

    def _release(self, rows: np.ndarray) -> None:
        self._ue_of[rows] = _FREE
        self._last_seen[rows] = _NEVER
        self.evictions += rows.size
        if self.guard is not None:           # a forgotten UE is no longer handed back
            self.guard.reset_rows(rows)

    def evict_idle(self, slot: int) -> int:
        """Forget UEs unseen for more than `idle_slots`; returns how many."""
        idle = np.flatnonzero((self._ue_of != _FREE) & (self._last_seen < slot - self.idle_slots))
        if idle.size:
            self._release(idle)
            self._reindex()
        return idle.size

    def _lookup(self, ues: np.ndarray) -> np.ndarray:
        """Row of each UE id, -1 where the UE is not held."""
        keys = self._keys
        if keys.size == 0:
            return np.full(ues.size, -1, np.int64)
        i = np.minimum(np.searchsorted(keys, ues), keys.size - 1)
        return np.where(keys[i] == ues, self._key_rows[i], -1)

    def rows(self, ues: np.ndarray, slot: int) -> np.ndarray:
        """Rows of these UE ids (new UEs get fresh rows, evicting the least recently seen UEs
        not in `ues` when full); marks them seen at `slot`. Raises OverflowError when `ues`
        holds more distinct UEs than the store can."""
        ues = np.asarray(ues, np.int64)
        rows = self._lookup(ues)
        missing = rows < 0
        if missing.any():
            self._last_seen[rows[~missing]] = slot                # never evict a UE in use
            new, which = np.unique(ues[missing], return_inverse=True)
            rows[missing] = self._admit(new, slot)[which]
        self._last_seen[rows] = slot
        return rows

    def _admit(self, new: np.ndarray, slot: int) -> np.ndarray:
        """Rows for `new` UE ids (sorted, not held), evicting the least recently seen when full.
        The sorted index is patched (stale keys out, new keys in place), not re-sorted."""
        free = np.flatnonzero(self._ue_of == _FREE)
        short = new.size - free.size
        if short > 0:
            candidates = np.flatnonzero((self._ue_of != _FREE) & (self._last_seen < slot))
            if candidates.size < short:
                raise OverflowError(f"an indication names more than {self.capacity} UEs")
            oldest = candidates[np.argpartition(self._last_seen[candidates], short - 1)[:short]]
            self._release(oldest)
            free = np.concatenate((free, oldest))
        rows = free[:new.size]
        self.builder.reset_rows(rows)
        self._ue_of[rows] = new
        held = self._ue_of[self._key_rows] == self._keys       # False where a key's UE was evicted
        keys, key_rows = self._keys[held], self._key_rows[held]
        at = np.searchsorted(keys, new)
        self._keys, self._key_rows = np.insert(keys, at, new), np.insert(key_rows, at, rows)
        return rows

    def observe(self, report: SlotReport) -> np.ndarray:
        """Apply the report's events to its UEs' rows, then observe the UEs needing a decision
        (float32 [len(report.ue), OBS_DIM]), exactly as `ObservationBuilder.observe_report`."""
        return self.observe_rows(report)[1]

    def observe_rows(self, report: SlotReport) -> tuple[np.ndarray, np.ndarray]:
        """`observe`, also returning the rows of the deciding UEs (for their CQI and the guard)."""
        n_cqi, n_harq = report.cqi_ue.size, report.harq_ue.size
        rows = self.rows(np.concatenate((report.cqi_ue, report.harq_ue, report.ue)), report.slot)
        builder, harq_rows, decide_rows = self.builder, rows[n_cqi:n_cqi + n_harq], rows[n_cqi + n_harq:]
        builder.apply_cqi(rows[:n_cqi], report.cqi_value, report.cqi_slot)
        builder.apply_harq(harq_rows, report.harq_ack, report.harq_mcs, report.harq_tx, report.slot)
        if self.guard is not None:
            self.guard.apply_harq(harq_rows, report.harq_ack, report.harq_tx, report.slot,
                                  builder.bler_target[harq_rows])
        return decide_rows, builder.observe(decide_rows, report.slot, report.prbs, report.layers,
                                            report.buffer_bytes)
