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
from numba import njit

from ranpd.simulator.report import SlotReport
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
        """CSI reports (wideband CQI), each with the slot of its reference resource, in the order
        received. A report older than the one held is ignored, so a report repeated in several E2
        indications (same slot) is idempotent."""
        _apply_cqi(_ints(rows), _ints(cqi), _ints(report_slot), self.cqi, self.prev_cqi, self.cqi_slot)

    def apply_harq(self, rows, ack, mcs, tx_number, slot) -> None:
        """HARQ-ACK feedback received at `slot`, in the order the transmissions were sent; a row
        may appear several times (TDD: one uplink slot acknowledges several downlink slots).

        Only first transmissions update the link state: their outcome is what the MCS choice
        controls (retransmissions reuse the first transmission's MCS).
        """
        _apply_first_tx_outcomes(_ints(rows), np.asarray(ack, np.bool_).reshape(-1), _ints(mcs), _ints(tx_number),
                                 int(slot), self.nack_ewma, self.ack_offset_db, self.history, self.feedback_slot,
                                 self.bler_target, self.nack_price)

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
        rows = _ints(rows)
        obs = np.empty((rows.size, OBS_DIM), np.float32)
        _observe(rows, int(slot), _floats(prbs, rows.size), _floats(layers, rows.size),
                 _floats(buffer_bytes, rows.size), self.mcs_table == 2, self.cqi, self.prev_cqi, self.cqi_slot,
                 self.nack_ewma, self.ack_offset_db, self.history, self.feedback_slot, self.nack_price, obs)
        return obs


# -- per-UE kernels ---------------------------------------------------------------------------------
# One event (or one deciding UE) at a time, in the order received, compiled by numba: a UE listed
# twice in one slot (TDD HARQ bundles) needs no special case, and the xApp's per-slot cost is a few
# calls instead of ~60 numpy operations on 16-row arrays (docs/xapp-isolation.md, "CPU per frame").

def _ints(values) -> np.ndarray:
    return np.asarray(values, np.int64).reshape(-1)


def _floats(values, n: int) -> np.ndarray:
    """A per-row float64 column (a scalar is broadcast to n rows)."""
    column = np.asarray(values, np.float64).reshape(-1)
    return np.full(n, column[0]) if column.size == 1 and n != 1 else column


@njit(cache=True, nogil=True)
def _apply_cqi(rows, cqi, report_slot, held_cqi, prev_cqi, cqi_slot):
    for i in range(rows.size):
        r = rows[i]
        if report_slot[i] > cqi_slot[r]:
            prev_cqi[r] = cqi[i] if cqi_slot[r] == NEVER else held_cqi[r]
            held_cqi[r] = cqi[i]
            cqi_slot[r] = report_slot[i]


@njit(cache=True, nogil=True)
def _apply_first_tx_outcomes(rows, ack, mcs, tx_number, slot, nack_ewma, ack_offset_db, history, feedback_slot,
                             bler_target, nack_price):
    """NACK EWMA, the OLLA-like offset, the outcome/MCS history and the price's dual-ascent step
    (module docstring) for each first transmission, in order."""
    step_down = OFFSET_STEP_DB * OFFSET_TARGET_BLER / (1.0 - OFFSET_TARGET_BLER)
    for i in range(rows.size):
        if tx_number[i] != 1:
            continue
        r, acked = rows[i], ack[i]
        nack = 0.0 if acked else 1.0
        nack_ewma[r] += NACK_EWMA_ALPHA * (nack - nack_ewma[r])
        offset = ack_offset_db[r] + (-step_down if acked else OFFSET_STEP_DB)
        ack_offset_db[r] = min(max(offset, -OFFSET_LIMIT_DB), OFFSET_LIMIT_DB)
        for k in range(HISTORY - 1, 0, -1):
            history[r, 0, k] = history[r, 0, k - 1]
            history[r, 1, k] = history[r, 1, k - 1]
        history[r, 0, 0] = 1.0 if acked else -1.0
        history[r, 1, 0] = mcs[i] / (MAX_SUPPORTED_MCS_ACTIONS - 1)
        feedback_slot[r] = slot
        target = bler_target[r]
        if not np.isnan(target):             # throughput mode: the price stays 0
            step = PRICE_STEP * (-target / (1.0 - target) if acked else 1.0)
            shifted = (nack_price[r] + PRICE_SHIFT) * np.exp(step)
            nack_price[r] = min(max(shifted - PRICE_SHIFT, PRICE_MIN), PRICE_MAX)


@njit(cache=True, nogil=True)
def _observe(rows, slot, prbs, layers, buffer_bytes, table_256qam, cqi, prev_cqi, cqi_slot, nack_ewma,
             ack_offset_db, history, feedback_slot, nack_price, obs):
    for i in range(rows.size):
        r = rows[i]
        obs[i, 0] = cqi[r] / 15.0
        obs[i, 1] = min(slot - cqi_slot[r], AGE_SCALE_SLOTS) / AGE_SCALE_SLOTS
        obs[i, 2] = (cqi[r] - prev_cqi[r]) / 15.0
        obs[i, 3] = 1.0 if table_256qam else 0.0
        obs[i, 4] = nack_ewma[r]
        obs[i, 5] = ack_offset_db[r] / OFFSET_LIMIT_DB
        for k in range(HISTORY):
            obs[i, 6 + k] = history[r, 0, k]
            obs[i, 6 + HISTORY + k] = history[r, 1, k]
        k = 6 + 2 * HISTORY
        obs[i, k] = min(slot - feedback_slot[r], AGE_SCALE_SLOTS) / AGE_SCALE_SLOTS
        obs[i, k + 1] = prbs[i] / MAX_PRBS
        obs[i, k + 2] = min(np.log2(1.0 + buffer_bytes[i]), BUFFER_SCALE_LOG2) / BUFFER_SCALE_LOG2
        obs[i, k + 3] = layers[i] / 4.0
        obs[i, k + 4] = nack_price[r]
