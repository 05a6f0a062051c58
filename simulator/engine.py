"""The slot loop: a gNB doing downlink link adaptation for many UEs at once (numpy, vectorised).

Per slot t (TS 38.214/38.213 timelines):
1. HARQ-ACK feedback arrives for the transmissions whose PUCCH falls on t: the first uplink-capable
   slot (U, or the uplink symbols of an S slot) at or after K1 slots from the PDSCH (TS 38.213
   §9.2.3), so under TDD one slot can carry several of a UE's HARQ-ACKs. A NACK queues a
   retransmission (chase combining) until `max_transmissions`; a TB that fails its last attempt is
   lost at MAC and resent by RLC after `rlc_retx_delay_ms` (TS 38.322 ARQ: status report, then
   retransmission), costing air time again.
2. CSI reports arrive for UEs whose period falls on t; each carries the CQI measured on the
   reference resource at t - cqi_delay (38.214 §5.2.2.1: highest CQI with TBLER <= 0.1), with a
   static per-UE bias and a Gaussian measurement error on the effective SINR.
3. New data arrives per UE class: full buffer, or packets (FTP model 3 files, small packets) at
   Poisson instants.
4. On slots with PDSCH (D slots, and S slots with their downlink symbols), each cell schedules up
   to `ues_per_slot` UEs (retransmissions first, then proportional fair or round robin on what the
   gNB knows: CQI and served throughput). PRBs follow the buffers: a UE whose data fits in fewer
   PRBs (at its CQI's rate) gets only those, the rest is shared (water-filling), so small packets
   travel in small TBs with short code blocks. The slot's `SlotReport` asks the policy for the MCS
   of every new transmission.
5. `step(mcs)` transmits: per-subband SINR from the fading traces and the interference model,
   EESM, TBLER (phy.py), a Bernoulli decode, and the outcome joins the HARQ timeline.

Interference (`Scenario.interference_model`): `scheduled` — each of a UE's strongest neighbour
sectors occupies a share of every subband that changes slot by slot with its own traffic and
scheduling (channel.neighbour_occupancy_traces), through its own small-scale fading, plus the
remaining sectors as a load-scaled static term; `onoff` — the legacy whole-band on/off chains
(flat, unfaded); `always_on` — every neighbour on every PRB, flat, unfaded.

Randomness comes from separate streams (drop, channel traces, traffic, CSI error, decoding), all
drawn in amounts that do not depend on the policy, so two policies with the same seed face the same
channel, traffic and decoding luck (common random numbers), and a seed reproduces a run bit for bit.
Every seed draws its own fading and interference traces: two seeds share none.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ranpd.simulator import phy
from ranpd.simulator.channel import (Drop, doppler_hz, drop_sectors, drop_ues, interference_per_subband,
                                     neighbour_activity_traces, neighbour_occupancy_traces, read_traces,
                                     subband_gain_traces)
from ranpd.simulator.report import SlotReport, occurrence_rounds
from ranpd.simulator.scenarios import Scenario
from ranpd.simulator.tables import CQI_TABLES, MCS_TABLES, SYMBOLS_PER_SLOT, cqi_to_mcs_map
from ranpd.simulator.tbs import ldpc_segmentation_array, n_re, tbs_from_n_info, tbs_per_mcs

N_TRACES = 8                         # fading traces per UE class; UEs read them at random offsets
OCCUPANCY_SLOTS = 1 << 16            # length of the neighbour-activity traces (a power of two)
FULL_BUFFER_BYTES = 1 << 30          # what a full-buffer UE reports as its buffer
PF_AVERAGING_SLOTS = 100.0           # proportional-fair throughput averaging window
PACKET_QUEUE = 64                    # packets remembered per UE for delay/UPT (older ones: dropped, counted)
MAX_DELAY_SAMPLES = 1 << 21          # packet-delay samples kept per run (bounded memory)


class HarqEnded(NamedTuple):
    """TBs whose HARQ ended: their first transmission's id (`StepOutcome.decision`), whether they
    were delivered (else lost after max_transmissions), and the transmissions they took."""

    decision: np.ndarray
    delivered: np.ndarray
    transmissions: np.ndarray


NO_HARQ_ENDED = HarqEnded(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64))


@dataclass
class StepOutcome:
    """The result of one slot's new transmissions, aligned with the decided UEs."""

    report: SlotReport       # the next slot's report
    ue: np.ndarray
    ack: np.ndarray          # first transmission decoded
    tbs_bits: np.ndarray
    offered: np.ndarray      # bits the TB carries / TBS of the table's top MCS on the same PRBs, in [0, 1]
    reward: np.ndarray       # delivered bits (offered if the first transmission decoded, else 0)
    decision: np.ndarray     # each new transmission's id (a counter of first transmissions since reset)
    harq_ended: HarqEnded    # TBs whose HARQ ended at the feedback of the next slot


def _trace_length(doppler_norm: float) -> int:
    """Long enough for ~64 Doppler-spectrum bins (a faithful J0), within 4k..64k slots."""
    wanted = 64.0 / (2.0 * doppler_norm)
    return int(np.clip(2 ** np.ceil(np.log2(wanted)), 4096, 65536))


@lru_cache(maxsize=16)
def _tb_table(mcs_table: int, max_prbs: int, symbols: int, dmrs: int, layers: int) -> np.ndarray:
    """TBS, code blocks and code-block bits for every (PRBs, MCS): int64 [3, max_prbs + 1, n_mcs].

    Row 0 (no PRBs) is zero. TS 38.214 §5.1.3.2 and TS 38.212 §5.2.2, computed once per carrier.
    """
    table = MCS_TABLES[mcs_table]
    out = np.zeros((3, max_prbs + 1, table.size), np.int64)
    tbs = tbs_per_mcs(mcs_table, np.arange(1, max_prbs + 1), symbols, dmrs, layers)
    _, n_cb, cb_bits = ldpc_segmentation_array(tbs, table.code_rate)
    out[:, 1:] = tbs, n_cb, cb_bits
    return out


def _feedback_delays(pattern: str, k1: int) -> np.ndarray:
    """Slots from a PDSCH in pattern slot i to its HARQ-ACK: K1, pushed to the first uplink-capable
    slot (U or S) at or after it (TS 38.213 §9.2.3). FDD ("D"): always K1."""
    uplink = [c in "SU" for c in pattern] if set(pattern) != {"D"} else [True]
    period = len(uplink)
    delays = []
    for i in range(period):
        d = k1
        while not uplink[(i + d) % period]:
            d += 1
        delays.append(d)
    return np.array(delays, np.int64)


def _water_fill(need: np.ndarray, active: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """PRBs per column of each row: every active column gets min(need, equal share of what is left),
    smallest needs first, so what a small need leaves over goes to the others. [rows, k] int64."""
    rows = np.arange(need.shape[0])
    order = np.argsort(np.where(active, need, np.iinfo(np.int64).max), axis=1, kind="stable")
    n_active = active.sum(axis=1)
    alloc = np.zeros_like(need)
    left = budget.copy()
    for i in range(need.shape[1]):
        col = order[:, i]
        share = left // np.maximum(n_active - i, 1)
        give = np.where(i < n_active, np.minimum(need[rows, col], share), 0)
        alloc[rows, col] = give
        left -= give
    return alloc


class Simulation:
    """A seeded population of UEs in `n_ues / ues_per_cell` independent cells."""

    def __init__(self, scenario: Scenario, seed: int = 0, n_ues: int | None = None, trace_seed: int | None = None):
        """`seed` sets everything; `trace_seed` (default: `seed`) alone sets the fading and interference
        traces, so training can reuse a few cached trace sets while drops and luck stay per seed."""
        sc = scenario if n_ues is None else scenario.with_ues(n_ues)
        self.scenario, self.seed = sc, seed
        self.trace_seed = seed if trace_seed is None else trace_seed
        self.n_ues, self.n_cells = sc.n_ues, sc.n_ues // sc.ues_per_cell
        self.mcs_table, self.cqi_table = sc.mcs_table, sc.cqi_table
        self.slot_duration_s = sc.slot_duration_s
        streams = np.random.SeedSequence(seed).spawn(5)
        self._streams = dict(zip(("drop", "traffic", "csi", "decode"), streams[:4]))
        trace_stream = streams[4] if trace_seed is None else np.random.SeedSequence(trace_seed).spawn(5)[4]
        trace_seeds = [int(x) for x in trace_stream.generate_state(4)]
        drop_rng = np.random.default_rng(self._streams["drop"])
        n = self.n_ues

        # UE classes: each cell holds every class in its share (largest remainder).
        self.classes = sc.classes
        counts = np.floor([c.share * sc.ues_per_cell for c in self.classes]).astype(int)
        remainders = np.array([c.share * sc.ues_per_cell for c in self.classes]) - counts
        counts[np.argsort(-remainders)[:sc.ues_per_cell - counts.sum()]] += 1
        self.ue_class = np.tile(np.repeat(np.arange(len(self.classes)), counts), self.n_cells)
        packet = np.array([c.packet() for c in self.classes])
        self._full_buffer = ~np.array([c.bursty for c in self.classes])[self.ue_class]
        self._packet_bytes = packet[self.ue_class, 0]
        self._arrivals_per_slot = packet[self.ue_class, 1] * self.slot_duration_s

        # Link budget per resource element, relative to thermal noise (-174 dBm/Hz).
        h_bs, isd, d_min = sc.site
        if sc.site_layout == "hex19x3":
            drop = drop_sectors(sc.environment, n, sc.carrier_ghz, isd, h_bs, d_min, drop_rng,
                                indoor_fraction=sc.indoor_fraction)
        else:
            serving_db, neighbour_db = drop_ues(sc.environment, n, sc.carrier_ghz, isd, h_bs, d_min, drop_rng)
            drop = Drop(serving_db, neighbour_db, np.full(n, -np.inf))
        scs_hz = 15e3 * (1 << sc.numerology)
        re_power_dbm = sc.tx_power_dbm - 10 * np.log10(sc.cell_prbs * 12) + sc.bs_antenna_gain_db
        noise_dbm = -174.0 + 10 * np.log10(scs_hz) + sc.ue_noise_figure_db
        self._snr = 10 ** ((re_power_dbm + drop.serving_db - noise_dbm) / 10)
        self._inr = 10 ** ((re_power_dbm + drop.interferer_db - noise_dbm) / 10)      # [n, J]
        residual = 10 ** ((re_power_dbm + drop.residual_db - noise_dbm) / 10)
        self._static_inr = residual * (1.0 if sc.interference_model == "always_on" else sc.load)
        self._cqi_bias_db = sc.cqi_bias_db * drop_rng.standard_normal(n)

        # Fading traces, one set per UE class (its own Doppler); each UE reads one at its own offset.
        dopplers = [max(doppler_hz(c.ue_speed_kmh, sc.carrier_ghz) * sc.slot_duration_s, 1e-4)
                    for c in self.classes]
        self._trace_len = _trace_length(min(dopplers))
        self._gains = np.concatenate([
            subband_gain_traces(sc.tdl_profile, sc.delay_spread_ns, f_d, sc.bandwidth_hz, sc.n_subbands,
                                N_TRACES, self._trace_len, trace_seeds[0] + i)
            for i, f_d in enumerate(dopplers)])
        self._trace = self.ue_class * N_TRACES + drop_rng.integers(N_TRACES, size=n)
        self._offset = drop_rng.integers(self._trace_len, size=n)
        n_interferers = self._inr.shape[1]
        self._inr_sum = self._inr.sum(axis=1)
        # Each interfering link fades on its own (another trace of the UE's class, at another offset)
        # and follows its neighbour's activity from another offset.
        self._i_trace = (self.ue_class[:, None] * N_TRACES
                         + (self._trace[:, None] % N_TRACES + 1 + np.arange(n_interferers)) % N_TRACES)
        self._i_offset = drop_rng.integers(self._trace_len, size=(n, n_interferers))
        self._i_offset_occ = drop_rng.integers(OCCUPANCY_SLOTS, size=(n, n_interferers))
        if sc.interference_model == "scheduled":
            # Own length: neighbours' busy periods last up to seconds, longer than a fading trace.
            self._occupancy = neighbour_occupancy_traces(sc.load, sc.n_subbands, 2 * N_TRACES, OCCUPANCY_SLOTS,
                                                         sc.slot_duration_s, trace_seeds[1])
            self._i_chain = drop_rng.integers(self._occupancy.shape[0], size=(n, n_interferers))
        elif sc.interference_model == "onoff":
            burst_slots = sc.interference_burst_ms * 1e-3 / sc.slot_duration_s
            self._activity = neighbour_activity_traces(sc.load, burst_slots, N_TRACES, OCCUPANCY_SLOTS,
                                                       trace_seeds[1])
            # Each (UE, neighbour) follows one chain: a random trace, column j mod the chains per trace.
            self._a_trace = drop_rng.integers(N_TRACES, size=(n, n_interferers))
            self._a_column = np.arange(n_interferers) % self._activity.shape[2]
        # Slot structure: D slots, S slots with their downlink symbols, uplink-capable slots for PUCCH.
        pattern = sc.tdd_pattern if sc.duplex == "TDD" else "D"
        s_symbols = sc.pdsch_symbols - (SYMBOLS_PER_SLOT - sc.special_slot_dl_symbols)
        s_has_pdsch = s_symbols >= 1 and 12 * s_symbols > sc.dmrs_per_prb
        self._kind = np.array([{"D": 0, "S": 1 if s_has_pdsch else -1, "U": -1}[c] for c in pattern])
        self._ack_delay = _feedback_delays(pattern, sc.k1_slots)
        symbols = [sc.pdsch_symbols, s_symbols if s_has_pdsch else sc.pdsch_symbols]
        self._tb = np.stack([_tb_table(sc.mcs_table, sc.cell_prbs, sym, sc.dmrs_per_prb, sc.layers)
                             for sym in symbols])                              # [kind, 3, prbs+1, mcs]
        self._tb_flat, self._tb_stride = self._tb.reshape(-1), self._tb[0, 0].size   # TBS -> blocks -> bits
        self._re_per_prb = np.array([n_re(1, sym, sc.dmrs_per_prb) for sym in symbols])
        self._rlc_delay = int(round(sc.rlc_retx_delay_ms * 1e-3 / sc.slot_duration_s))

        table = MCS_TABLES[sc.mcs_table]
        self._curves = phy.mcs_curves(sc.mcs_table, sc.bler_level)
        self.max_mcs = table.size - 1

        # CQI definition on a reference allocation: an equal share of the carrier in a D slot.
        self.prbs_per_ue = sc.cell_prbs // sc.ues_per_slot
        cqi = CQI_TABLES[sc.cqi_table]
        n_re_alloc = n_re(self.prbs_per_ue, sc.pdsch_symbols, sc.dmrs_per_prb)
        cqi_tbs = tbs_from_n_info(n_re_alloc * cqi.code_rate[1:] * cqi.qm[1:] * sc.layers, cqi.code_rate[1:])
        _, self._cqi_n_cb, self._cqi_cb_bits = ldpc_segmentation_array(cqi_tbs, cqi.code_rate[1:])
        self._cqi_curves = phy.cqi_curves(sc.cqi_table, sc.bler_level)
        self._illa_efficiency = table.efficiency[cqi_to_mcs_map(sc.mcs_table, sc.cqi_table)]  # gNB's rate estimate
        self._cqi_phase = drop_rng.integers(sc.cqi_period_slots, size=n)
        self.reset()

    def transport_block(self, prbs, mcs, special_slot: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(TBS, code blocks, code-block bits) of `mcs` on `prbs` PRBs in a D slot (or an S slot)."""
        table = self._tb[int(special_slot)]
        return table[0, prbs, mcs], table[1, prbs, mcs], table[2, prbs, mcs]

    # ------------------------------------------------------------------ state
    def reset(self) -> SlotReport:
        """Start over (same seed: same drop, channel and luck); return slot 0's report."""
        sc, n = self.scenario, self.n_ues
        self._traffic_rng = np.random.default_rng(self._streams["traffic"])
        self._csi_rng = np.random.default_rng(self._streams["csi"])
        self._decode_rng = np.random.default_rng(self._streams["decode"])
        self.slot = 0
        self.known_cqi = np.zeros(n, np.int64)
        self.buffer_bytes = np.where(self._full_buffer, np.inf, 0.0)
        self._avg_rate = np.full(n, 1.0)
        self._last_served = np.zeros(n, np.int64)
        self._busy = np.zeros(n, np.int64)                    # bitmask of HARQ processes in use
        self._feedback: dict[int, list[dict]] = {}            # PUCCH slot -> transmissions it acknowledges
        self._rlc: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}   # slot -> (UEs, bytes) back in buffer
        p = sc.harq_processes
        self._queue = {k: np.zeros((n, p), t) for k, t in (
            ("mcs", np.int64), ("tb", np.int64), ("tx", np.int64), ("acc", np.float64),
            ("proc", np.int64), ("bits", np.float64), ("prbs", np.int64), ("decision", np.int64))}
        self._next_decision = 0
        self._q_head = np.zeros(n, np.int64)
        self._q_count = np.zeros(n, np.int64)
        # Packets in flight per UE (ring): arrival slot and the cumulative byte count that completes it.
        self._pkt_slot = np.zeros((n, PACKET_QUEUE), np.int64)
        self._pkt_end = np.zeros((n, PACKET_QUEUE), np.float64)
        self._pkt_head = np.zeros(n, np.int64)
        self._pkt_count = np.zeros(n, np.int64)
        self._arrived = np.zeros(n)
        self._delivered = np.zeros(n)
        self._delays: list[np.ndarray] = []
        self._upt: list[np.ndarray] = []
        self._stats = dict(delivered_bits=np.zeros(n), first_tx=0, first_nack=0, tb_done=0, tb_lost=0,
                           mcs_sum=0, retx=0, rlc_resends=0, packets_dropped=0, delay_samples=0)
        return self._begin_slot()

    # ------------------------------------------------------------------ channel
    def _sinr(self, ue: np.ndarray, slot: int) -> np.ndarray:
        """Linear SINR per subband [len(ue), n_subbands] at `slot` under the scenario's interference model.

        Every trace is read at (offset + slot) mod T (T a power of two: a mask).
        """
        wrap = self._trace_len - 1
        signal = read_traces(self._gains, self._trace[ue], (self._offset[ue] + slot) & wrap)
        signal *= self._snr[ue][:, None]
        model = self.scenario.interference_model
        if model == "always_on":
            interference = self._inr_sum[ue][:, None]
        else:
            when = (self._i_offset_occ[ue] + slot) & (OCCUPANCY_SLOTS - 1)
            if model == "scheduled":
                fading = read_traces(self._gains, self._i_trace[ue], (self._i_offset[ue] + slot) & wrap)
                interference = interference_per_subband(
                    self._inr[ue], read_traces(self._occupancy, self._i_chain[ue], when), fading)
            else:
                active = self._activity[self._a_trace[ue], when, self._a_column]
                interference = (self._inr[ue] * active).sum(axis=1)[:, None]
        return signal / (1.0 + self._static_inr[ue][:, None] + interference)

    def _measure_cqi(self, ue: np.ndarray, reference_slot: int) -> np.ndarray:
        """38.214 §5.2.2.1: the highest CQI whose TBLER on the reference resource is <= 0.1, as a UE
        with a static bias and a measurement error on its effective SINR estimates it."""
        sinr = self._sinr(ue, reference_slot)
        eff_db = phy.eesm_db(sinr[:, None, :], self._cqi_curves.beta[None, :])
        eff_db += (self._cqi_bias_db[ue] + self.scenario.cqi_error_db * self._csi_rng.standard_normal(ue.size))[:, None]
        bler = self._cqi_curves.tbler(eff_db, np.arange(15), self._cqi_cb_bits, self._cqi_n_cb)
        ok = bler <= 0.1
        return np.where(ok.any(axis=1), 15 - np.argmax(ok[:, ::-1], axis=1), 0)

    # ------------------------------------------------------------------ slot
    def _begin_slot(self) -> SlotReport:
        sc, t, n = self.scenario, self.slot, self.n_ues
        report = SlotReport(slot=t, mcs_table=self.mcs_table, cqi_table=self.cqi_table)

        # 1. HARQ feedback on this slot's PUCCH, in transmission order.
        self._harq_ended = NO_HARQ_ENDED
        events = self._feedback.pop(t, None)
        if events:
            fb = {k: np.concatenate([e[k] for e in events]) for k in events[0]}
            ue, ack, tx = fb["ue"], fb["ack"], fb["tx"]
            retx = ~ack & (tx < sc.max_transmissions)
            if retx.any():
                self._enqueue(ue[retx], {k: fb[k][retx] for k in self._queue if k != "tx"}, tx[retx] + 1)
            done = ~retx
            self._harq_ended = HarqEnded(fb["decision"][done], ack[done], tx[done])
            self._busy[ue[done]] &= ~(np.int64(1) << fb["proc"][done])
            lost = done & ~ack
            self._stats["tb_done"] += int(done.sum())
            self._stats["tb_lost"] += int(lost.sum())
            if lost.any():
                self._stats["rlc_resends"] += int(lost.sum())
                self._rlc.setdefault(t + self._rlc_delay, []).append((ue[lost], fb["bits"][lost] / 8.0))
            tbs = self._tb_flat[fb["tb"]]
            report.harq_ue, report.harq_ack, report.harq_tx = ue, ack, tx
            report.harq_mcs, report.harq_tbs, report.harq_process = fb["mcs"], tbs, fb["proc"]

        # 2. RLC retransmissions re-enter the buffer once the status report has asked for them.
        for ue, nbytes in self._rlc.pop(t, ()):
            np.add.at(self.buffer_bytes, ue, nbytes)

        # 3. CSI reports (every UE reports once at attach, slot 0).
        reporting = np.arange(n) if t == 0 else np.flatnonzero((t + self._cqi_phase) % sc.cqi_period_slots == 0)
        if reporting.size:
            reference = t - sc.cqi_delay_slots
            cqi = self._measure_cqi(reporting, reference)
            self.known_cqi[reporting] = cqi
            report.cqi_ue, report.cqi_value = reporting, cqi
            report.cqi_slot = np.full(reporting.size, reference, np.int64)

        # 4. Traffic: packets arrive as a Poisson process per UE.
        arrivals = self._traffic_rng.poisson(self._arrivals_per_slot)
        if arrivals.any():
            self._arrive(np.flatnonzero(arrivals), arrivals[arrivals > 0])

        # 5. Scheduling on slots with PDSCH.
        self._new_ue = self._retx_ue = self._new_prbs = np.zeros(0, np.int64)
        self._kind_now = int(self._kind[t % self._kind.size])
        if self._kind_now >= 0:
            self._schedule(report)
        return report

    def _arrive(self, ue: np.ndarray, count: np.ndarray) -> None:
        """`count` packets of each UE's size arrive now; a UE's packet ring drops what does not fit."""
        size = self._packet_bytes[ue]
        self.buffer_bytes[ue] += count * size
        for i in range(int(count.max())):
            sel = count > i
            u = ue[sel]
            self._arrived[u] += size[sel]
            full = self._pkt_count[u] >= PACKET_QUEUE
            self._stats["packets_dropped"] += int(full.sum())   # still delivered, but not timed
            u = u[~full]
            pos = (self._pkt_head[u] + self._pkt_count[u]) % PACKET_QUEUE
            self._pkt_slot[u, pos] = self.slot
            self._pkt_end[u, pos] = self._arrived[u]
            self._pkt_count[u] += 1

    def _complete_packets(self, ue: np.ndarray) -> None:
        """Packets whose last byte has been delivered: record delay and user-perceived throughput
        (packet size / time from arrival to delivery, TR 36.814 A.2.1.3.1)."""
        while ue.size:
            head = self._pkt_head[ue]
            done = (self._pkt_count[ue] > 0) & (self._pkt_end[ue, head] <= self._delivered[ue] + 1e-6)
            ue, head = ue[done], head[done]
            if not ue.size:
                return
            delay_slots = self.slot - self._pkt_slot[ue, head] + 1
            if self._stats["delay_samples"] < MAX_DELAY_SAMPLES:
                self._delays.append(delay_slots * self.slot_duration_s * 1e3)
                self._upt.append(self._packet_bytes[ue] * 8.0 / (delay_slots * self.slot_duration_s) / 1e6)
                self._stats["delay_samples"] += ue.size
            self._pkt_head[ue] = (head + 1) % PACKET_QUEUE
            self._pkt_count[ue] -= 1

    def _schedule(self, report: SlotReport) -> None:
        sc, kind = self.scenario, self._kind_now
        retx_pending = self._q_count > 0
        can_new = (self.buffer_bytes > 0) & (np.bitwise_count(self._busy) < sc.harq_processes)
        eligible = retx_pending | can_new
        if sc.scheduler == "pf":
            metric = self._illa_efficiency[self.known_cqi] / self._avg_rate
        else:
            metric = (self.slot - self._last_served).astype(np.float64)
        metric = np.where(eligible, metric + 1e12 * retx_pending, -np.inf).reshape(self.n_cells, -1)
        k = sc.ues_per_slot
        if k < sc.ues_per_cell:
            cols = np.argpartition(-metric, k - 1, axis=1)[:, :k]
            cols = np.take_along_axis(cols, np.argsort(-np.take_along_axis(metric, cols, 1), axis=1), 1)
        else:
            cols = np.argsort(-metric, axis=1, kind="stable")[:, :k]
        chosen = cols + (np.arange(self.n_cells) * sc.ues_per_cell)[:, None]        # [cells, k], best first
        valid = eligible[chosen]
        retx = valid & retx_pending[chosen]
        # Retransmissions keep their PRBs; those that no longer fit in the carrier wait.
        retx_prbs = np.where(retx, self._queue["prbs"][chosen, self._q_head[chosen]], 0)
        retx &= np.cumsum(retx_prbs, axis=1) <= sc.cell_prbs
        left = sc.cell_prbs - np.where(retx, retx_prbs, 0).sum(axis=1)
        new = valid & ~retx_pending[chosen]
        bits_per_prb = self._illa_efficiency[self.known_cqi[chosen]] * self._re_per_prb[kind] * sc.layers
        need = np.minimum(np.ceil(np.minimum(self.buffer_bytes[chosen], FULL_BUFFER_BYTES) * 8.0
                                  / bits_per_prb), sc.cell_prbs).astype(np.int64)
        prbs = _water_fill(np.maximum(need, 1), new, left)
        new &= prbs > 0
        self._retx_ue = np.sort(chosen[retx])
        order = np.argsort(chosen[new])
        new_ue = chosen[new][order]
        self._new_ue, self._new_prbs = new_ue, prbs[new][order]
        report.ue = new_ue
        report.prbs = self._new_prbs
        report.layers = np.full(new_ue.size, sc.layers, np.int64)
        report.buffer_bytes = np.minimum(self.buffer_bytes[new_ue], FULL_BUFFER_BYTES).astype(np.int64)

    def _enqueue(self, ue: np.ndarray, fields: dict, next_tx: np.ndarray) -> None:
        """Queue retransmissions at the tail of each UE's FIFO (a UE may appear several times)."""
        for sel in occurrence_rounds(ue):
            u = ue[sel]
            pos = (self._q_head[u] + self._q_count[u]) % self.scenario.harq_processes
            for key, values in fields.items():
                self._queue[key][u, pos] = values[sel]
            self._queue["tx"][u, pos] = next_tx[sel]
            self._q_count[u] += 1

    def _dequeue(self, ue: np.ndarray) -> dict:
        pos = self._q_head[ue]
        fields = {key: q[ue, pos] for key, q in self._queue.items()}
        self._q_head[ue] = (pos + 1) % self.scenario.harq_processes
        self._q_count[ue] -= 1
        return fields

    def _new_transport_blocks(self, index: np.ndarray, mcs: np.ndarray):
        """The report's new transmissions at positions `index` sent with `mcs` (clipped to the table):
        (MCS, flat TB-table index, TBS, bits carried as the buffer allows, those bits over the TBS at
        the table's top MCS on the same PRBs: float32 in [0, 1])."""
        mcs = np.clip(mcs.astype(np.int64), 0, self.max_mcs)
        prbs = self._new_prbs[index]
        tb_index = np.ravel_multi_index((np.full(index.size, self._kind_now), np.zeros(index.size, np.int64),
                                         prbs, mcs), self._tb.shape)
        tbs = self._tb_flat[tb_index]
        bits = np.minimum(tbs, self.buffer_bytes[self._new_ue[index]] * 8.0)
        offered = (bits / self._tb[self._kind_now, 0, prbs, self.max_mcs]).astype(np.float32)
        return mcs, tb_index, tbs, bits, offered

    def _decode(self, ue: np.ndarray, tb: np.ndarray, tx_mcs: np.ndarray, prior_acc: np.ndarray,
                luck: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chase-combined effective SINR (linear, `prior_acc` plus this slot's EESM) and the decode
        outcome (`luck` >= TBLER) of transmissions sent this slot."""
        flat, stride = self._tb_flat, self._tb_stride
        eff = 10 ** (phy.eesm_db(self._sinr(ue, self.slot), self._curves.beta[tx_mcs]) / 10)
        acc = prior_acc + eff
        bler = self._curves.tbler(10 * np.log10(acc), tx_mcs, flat[tb + 2 * stride], flat[tb + stride])
        return acc, luck >= bler

    def preview_first_transmissions(self, index, mcs) -> tuple[np.ndarray, np.ndarray]:
        """(offered, ack) that `step` will give the report's new transmissions at positions `index`
        (into `report.ue`) if they are sent with `mcs`, without changing any state: the same
        transport blocks, channel and decoding luck (a copy of the decode stream). A decision's
        outcome depends on its own MCS only, so it is known before the slot's other decisions."""
        index = np.asarray(index, np.int64).reshape(-1)
        mcs, tb, _, _, offered = self._new_transport_blocks(index, np.asarray(mcs).reshape(-1))
        ue = self._new_ue[index]
        luck = copy.deepcopy(self._decode_rng).random(self.n_ues)[ue]
        _, ack = self._decode(ue, tb, mcs, np.zeros(ue.size), luck)
        return offered, ack

    def step(self, mcs) -> StepOutcome:
        """Transmit this slot with `mcs` for the report's UEs (aligned with `report.ue`)."""
        new = self._new_ue
        mcs = np.asarray(mcs)
        if mcs.shape != new.shape:
            raise ValueError(f"expected {new.size} MCS values (one per report.ue), got shape {mcs.shape}")
        mcs, tb_index, tbs, bits, offered = self._new_transport_blocks(np.arange(new.size), mcs)
        sc, t = self.scenario, self.slot
        decision = self._next_decision + np.arange(new.size, dtype=np.int64)
        self._next_decision += new.size

        # New transmissions take the lowest free HARQ process.
        free = ~self._busy[new] & ((np.int64(1) << sc.harq_processes) - 1)
        proc = np.log2(free & -free).astype(np.int64)
        self._busy[new] |= np.int64(1) << proc
        self.buffer_bytes[new] -= bits / 8.0
        old = self._dequeue(self._retx_ue) if self._retx_ue.size else {k: q[:0, 0] for k, q in self._queue.items()}

        ue = np.concatenate([new, self._retx_ue])
        tb = np.concatenate([tb_index, old["tb"]])
        tx_mcs = np.concatenate([mcs, old["mcs"]])
        acc, ack = self._decode(ue, tb, tx_mcs, np.concatenate([np.zeros(new.size), old["acc"]]),   # chase combining
                                self._decode_rng.random(self.n_ues)[ue])
        tx_bits = np.concatenate([bits, old["bits"]])

        self._feedback.setdefault(t + int(self._ack_delay[t % self._ack_delay.size]), []).append({
            "ue": ue, "ack": ack, "mcs": tx_mcs, "tb": tb,
            "tx": np.concatenate([np.ones(new.size, np.int64), old["tx"]]), "acc": acc,
            "proc": np.concatenate([proc, old["proc"]]), "bits": tx_bits,
            "prbs": np.concatenate([self._new_prbs, old["prbs"]]),
            "decision": np.concatenate([decision, old["decision"]])})

        served = np.zeros(self.n_ues)
        served[ue] = ack * tx_bits
        stats = self._stats
        stats["delivered_bits"] += served
        stats["first_tx"] += new.size
        stats["first_nack"] += int(new.size - ack[:new.size].sum())
        stats["mcs_sum"] += int(mcs.sum())
        stats["retx"] += self._retx_ue.size
        self._avg_rate += (served - self._avg_rate) / PF_AVERAGING_SLOTS
        self._last_served[ue] = t
        got = ue[ack & ~self._full_buffer[ue]]
        if got.size:
            self._delivered[got] += served[got] / 8.0
            self._complete_packets(got)

        outcome_ack = ack[:new.size]
        self.slot += 1
        report = self._begin_slot()
        return StepOutcome(report, new, outcome_ack, tbs, offered, offered * outcome_ack, decision, self._harq_ended)

    # ------------------------------------------------------------------ KPIs
    def ue_throughput_mbps(self) -> np.ndarray:
        """Goodput per UE so far (Mbit/s): bits delivered after HARQ and RLC."""
        return self._stats["delivered_bits"] / max(self.slot, 1) / self.slot_duration_s / 1e6

    def kpis(self) -> dict:
        """KPIs of the run so far (keys shared by `ranpd simulate --json` and the evaluations).

        Packet KPIs (user-perceived throughput, packet delay) cover the bursty classes and are None
        when the scenario has none or no packet completed. Throughput counts each bit once, when
        the TB carrying it is acknowledged (after HARQ and RLC), so `goodput_mbps` is the same
        figure under its explicit name; `residual_loss` (= `bler_residual`) is the share of TBs
        lost after their last HARQ attempt, each resent by RLC at the cost of air time and delay.
        """
        s, sc = self._stats, self.scenario
        ue_tput = self.ue_throughput_mbps()
        cell_tput = ue_tput.sum() / self.n_cells
        delays = np.concatenate(self._delays) if self._delays else np.zeros(0)
        upt = np.concatenate(self._upt) if self._upt else np.zeros(0)
        return {
            "scenario": sc.name,
            "throughput_mbps": float(ue_tput.mean()),
            "goodput_mbps": float(ue_tput.mean()),
            "throughput_p5_mbps": float(np.percentile(ue_tput, 5)),
            "cell_throughput_mbps": float(cell_tput),
            "spectral_efficiency": float(cell_tput * 1e6 / sc.bandwidth_hz),
            "bler_first_tx": s["first_nack"] / max(s["first_tx"], 1),
            "bler_residual": s["tb_lost"] / max(s["tb_done"], 1),
            "residual_loss": s["tb_lost"] / max(s["tb_done"], 1),
            "mean_mcs": s["mcs_sum"] / max(s["first_tx"], 1),
            "first_transmissions": int(s["first_tx"]),
            "retransmissions": int(s["retx"]),
            "rlc_resends": int(s["rlc_resends"]),
            "upt_mbps": float(upt.mean()) if upt.size else None,
            "packet_delay_p50_ms": float(np.percentile(delays, 50)) if delays.size else None,
            "packet_delay_p95_ms": float(np.percentile(delays, 95)) if delays.size else None,
            "packets_delivered": int(delays.size),
            "slots": self.slot,
            "ues": self.n_ues,
        }


def run_closed_loop(scenario: Scenario, policy, slots: int, seed: int = 0, n_ues: int | None = None,
                    progress: bool = False) -> Simulation:
    """Run `policy` closed loop for `slots` slots; return the simulation (KPIs, per-UE figures)."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    sim = Simulation(scenario, seed=seed, n_ues=n_ues)
    policy.reset(sim.n_ues, sim.mcs_table, sim.cqi_table)
    report = sim.reset()
    steps = range(slots)
    if progress:
        from rich.progress import track
        steps = track(steps, description=f"{scenario.name} / {policy.name}", transient=True)
    for _ in steps:
        report = sim.step(policy.decide(report)).report
    return sim


def run_policy(scenario: Scenario, policy, slots: int, seed: int = 0, n_ues: int | None = None,
               progress: bool = False) -> dict:
    """Run `policy` closed loop for `slots` slots; return the KPIs (plus `policy`)."""
    sim = run_closed_loop(scenario, policy, slots, seed=seed, n_ues=n_ues, progress=progress)
    return {**sim.kpis(), "policy": policy.name}
