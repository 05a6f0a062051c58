"""The observation a learned link-adaptation policy sees: built only from what a gNB has.

This module is the single definition of the policy's input. The simulator's environment and the
xApp both call it, on the same events, so a policy sees in deployment exactly what it saw in
training (the parity tests guard this). It never touches the true SINR: its inputs are the events
a gNB (and an E2 report) carries:

- CSI reports: wideband CQI and the slot of its reference resource (TS 38.214 §5.2.2.5),
- HARQ-ACK feedback already received: process, ACK/NACK, MCS, transmission number (38.213 §9),
- the allocation of the slot being decided: PRBs, layers, buffer occupancy,
- the operator's first-transmission BLER target of the UE's cell, held by a per-UE price on NACKs.

The price (`nack_price`, the last feature) is the Lagrange multiplier of the constraint
P(NACK on a first transmission) = target: a policy's network scores each MCS as
E[delivered bits] - price * P(NACK) (see `ranpd.training.networks.PricedQ`), and the price follows
dual ascent on every first-transmission outcome: u = log(price + PRICE_SHIFT) steps by +PRICE_STEP
on a NACK and by -PRICE_STEP * t / (1 - t) on an ACK, which is stationary exactly where the UE's
NACK rate is t (the same balance OLLA strikes on its SINR offset). The log scale makes the step
proportional to the price (prices for 1% and 30% differ by orders of magnitude); the shift lets the
price go slightly negative, which an equality target needs when it lies above the policy's
throughput-optimal BLER (then the constraint asks for more aggressive MCS than bits alone would).
Throughput mode (no target) holds the price at 0.

State is kept in arrays with one row per UE, so the same code serves a vectorised simulator
(thousands of rows updated at once) and the xApp's per-UE state store (a row per known UE).
Events for one row must be applied in the order the gNB received them.
"""
from __future__ import annotations

import numpy as np

from ranpd.simulator.report import SlotReport, occurrence_rounds
from ranpd.simulator.tables import MAX_PRBS, MAX_SUPPORTED_MCS_ACTIONS

OBS_SPEC_VERSION = "2"
HISTORY = 4                    # last first-transmission HARQ outcomes kept per UE
AGE_SCALE_SLOTS = 64.0         # ages are clipped to this many slots, then scaled to [0, 1]
BUFFER_SCALE_LOG2 = 24.0       # log2(1 + bytes) / 24 -> 16 MB reads as 1
NACK_EWMA_ALPHA = 0.1
OFFSET_STEP_DB = 0.5           # internal OLLA-like offset (a feature, not a decision)
OFFSET_TARGET_BLER = 0.1
OFFSET_LIMIT_DB = 10.0
NEVER = -(1 << 40)             # slot stamp of "no report / no feedback yet": ages saturate
DEFAULT_BLER_TARGET = 0.1      # the industry default first-tx BLER target
PRICE_INIT = 0.0               # price of a new UE (in units of the normalised bits)
PRICE_SHIFT = 1.0              # prices live in (-PRICE_SHIFT, PRICE_MAX]
PRICE_MIN, PRICE_MAX = 1e-3 - PRICE_SHIFT, 16.0
PRICE_STEP = 0.1               # step of log(price + PRICE_SHIFT) on a NACK

FEATURES = (
    "cqi", "cqi_age", "cqi_trend", "mcs_table_256qam", "nack_ewma", "ack_offset",
    *(f"ack_{k}" for k in range(HISTORY)), *(f"mcs_{k}" for k in range(HISTORY)),
    "feedback_age", "prbs", "buffer", "layers", "nack_price",
)
OBS_DIM = len(FEATURES)


class ObservationBuilder:
    """Per-UE link state, updated by gNB events, turned into the policy's observation vector.

    Rows are addressed by integer index (the simulator's UE index or the xApp's slot in its state
    store). `reset_rows` clears rows for new UEs. `bler_target` is the first-tx BLER target of
    every row (None: throughput mode); `set_bler_target` changes it for some rows.
    """

    def __init__(self, capacity: int, mcs_table: int = 2, cqi_table: int = 2,
                 bler_target: float | None = DEFAULT_BLER_TARGET):
        self.mcs_table = mcs_table
        self.cqi_table = cqi_table
        n = capacity
        self.bler_target = np.full(n, np.nan)
        self.nack_price = np.zeros(n)
        self.cqi = np.zeros(n, np.int64)
        self.prev_cqi = np.zeros(n, np.int64)
        self.cqi_slot = np.full(n, NEVER, np.int64)
        self.nack_ewma = np.zeros(n, np.float64)
        self.ack_offset_db = np.zeros(n, np.float64)
        # Newest first: [row, 0, k] = +1 ACK / -1 NACK / 0 none; [row, 1, k] = MCS used / 28.
        self.history = np.zeros((n, 2, HISTORY), np.float32)
        self.feedback_slot = np.full(n, NEVER, np.int64)
        self.set_bler_target(np.arange(n), bler_target)

    @property
    def capacity(self) -> int:
        return len(self.cqi)

    def reset_rows(self, rows) -> None:
        """Forget everything about these rows (a UE attached or a store slot was reused)."""
        self.cqi[rows] = 0
        self.prev_cqi[rows] = 0
        self.cqi_slot[rows] = NEVER
        self.nack_ewma[rows] = 0.0
        self.ack_offset_db[rows] = 0.0
        self.history[rows] = 0.0
        self.feedback_slot[rows] = NEVER
        self.nack_price[rows] = np.where(np.isnan(self.bler_target[rows]), 0.0, PRICE_INIT)

    def set_bler_target(self, rows, target: float | None) -> None:
        """The operator's first-tx BLER target for these rows, in (0, 1); None: throughput mode
        (price 0). A row keeps its price when only the target moves, so the loop re-converges
        from where it stands."""
        if target is not None and not 0.0 < target < 1.0:
            raise ValueError(f"BLER target must be in (0, 1) or None (throughput mode), got {target}")
        rows = np.atleast_1d(rows)
        was_priced = ~np.isnan(self.bler_target[rows])
        self.bler_target[rows] = np.nan if target is None else target
        self.nack_price[rows] = 0.0 if target is None else np.where(was_priced, self.nack_price[rows], PRICE_INIT)

    def apply_cqi(self, rows, cqi, report_slot) -> None:
        """A CSI report (wideband CQI) whose reference resource lies at `report_slot`.

        Reports older than the one held are ignored, so a report repeated in several E2
        indications (same slot) is idempotent.
        """
        rows = np.atleast_1d(rows)
        if rows.size == 0:
            return
        cqi, report_slot = np.atleast_1d(cqi), np.atleast_1d(report_slot)
        newer = report_slot > self.cqi_slot[rows]
        rows, cqi, report_slot = rows[newer], cqi[newer], report_slot[newer]
        self.prev_cqi[rows] = np.where(self.cqi_slot[rows] == NEVER, cqi, self.cqi[rows])
        self.cqi[rows] = cqi
        self.cqi_slot[rows] = report_slot

    def apply_harq(self, rows, ack, mcs, tx_number, slot) -> None:
        """HARQ-ACK feedback received at `slot`, in the order the transmissions were sent; a row
        may appear several times (TDD: one uplink slot acknowledges several downlink slots).

        Only first transmissions update the link state: their outcome is what the MCS choice
        controls (retransmissions reuse the first transmission's MCS).
        """
        rows = np.atleast_1d(rows)
        if rows.size == 0:
            return
        ack, mcs, tx_number = np.atleast_1d(ack), np.atleast_1d(mcs), np.atleast_1d(tx_number)
        first = tx_number == 1
        rows, ack, mcs = rows[first], ack[first].astype(bool), mcs[first]
        for sel in occurrence_rounds(rows):
            self._apply_first_tx_outcomes(rows[sel], ack[sel], mcs[sel], slot)

    def _apply_first_tx_outcomes(self, rows, ack, mcs, slot) -> None:
        """One outcome per row (rows unique)."""
        if rows.size == 0:
            return
        nack = (~ack).astype(np.float64)
        self.nack_ewma[rows] += NACK_EWMA_ALPHA * (nack - self.nack_ewma[rows])
        step_down = OFFSET_STEP_DB * OFFSET_TARGET_BLER / (1.0 - OFFSET_TARGET_BLER)
        self.ack_offset_db[rows] = np.clip(
            self.ack_offset_db[rows] + np.where(ack, -step_down, OFFSET_STEP_DB),
            -OFFSET_LIMIT_DB, OFFSET_LIMIT_DB)
        history = self.history[rows]
        history[:, :, 1:] = history[:, :, :-1]
        history[:, 0, 0] = np.where(ack, 1.0, -1.0)
        history[:, 1, 0] = mcs / (MAX_SUPPORTED_MCS_ACTIONS - 1)
        self.history[rows] = history
        self.feedback_slot[rows] = slot
        target = self.bler_target[rows]
        priced = ~np.isnan(target)
        rows, target, nack = rows[priced], target[priced], nack[priced]
        step = PRICE_STEP * np.where(nack > 0, 1.0, -target / (1.0 - target))
        shifted = (self.nack_price[rows] + PRICE_SHIFT) * np.exp(step)
        self.nack_price[rows] = np.clip(shifted - PRICE_SHIFT, PRICE_MIN, PRICE_MAX)

    def apply_report(self, report: SlotReport) -> None:
        """Apply the events of one slot report: CSI reports first, then HARQ feedback."""
        self.apply_cqi(report.cqi_ue, report.cqi_value, report.cqi_slot)
        self.apply_harq(report.harq_ue, report.harq_ack, report.harq_mcs, report.harq_tx, report.slot)

    def observe_report(self, report: SlotReport) -> np.ndarray:
        """Apply a slot report, then observe the UEs it asks decisions for."""
        self.apply_report(report)
        return self.observe(report.ue, report.slot, report.prbs, report.layers, report.buffer_bytes)

    def observe(self, rows, slot, prbs, layers, buffer_bytes) -> np.ndarray:
        """Observation vectors (float32, shape [len(rows), OBS_DIM]) for a decision at `slot`."""
        rows = np.atleast_1d(rows)
        obs = np.empty((rows.size, OBS_DIM), np.float32)
        cqi = self.cqi[rows]
        obs[:, 0] = cqi / 15.0
        obs[:, 1] = np.minimum(slot - self.cqi_slot[rows], AGE_SCALE_SLOTS) / AGE_SCALE_SLOTS
        obs[:, 2] = (cqi - self.prev_cqi[rows]) / 15.0
        obs[:, 3] = 1.0 if self.mcs_table == 2 else 0.0
        obs[:, 4] = self.nack_ewma[rows]
        obs[:, 5] = self.ack_offset_db[rows] / OFFSET_LIMIT_DB
        k = 6 + 2 * HISTORY
        obs[:, 6:k] = self.history[rows].reshape(rows.size, 2 * HISTORY)
        obs[:, k] = np.minimum(slot - self.feedback_slot[rows], AGE_SCALE_SLOTS) / AGE_SCALE_SLOTS
        obs[:, k + 1] = np.asarray(prbs, np.float64) / MAX_PRBS
        obs[:, k + 2] = np.minimum(np.log2(1.0 + np.asarray(buffer_bytes, np.float64)),
                                   BUFFER_SCALE_LOG2) / BUFFER_SCALE_LOG2
        obs[:, k + 3] = np.asarray(layers, np.float64) / 4.0
        obs[:, k + 4] = self.nack_price[rows]
        return obs
