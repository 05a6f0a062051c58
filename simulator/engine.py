"""The slot loop: a gNB doing downlink link adaptation for many UEs at once (numpy, vectorised).

Per slot t (TS 38.214/38.213 timelines):
1. HARQ-ACK feedback of the transmissions made at t - K1 arrives; a NACK queues a retransmission
   (chase combining) until `max_transmissions`, after which the TB counts as residual error.
2. CSI reports arrive for UEs whose period falls on t; each carries the CQI measured on the
   reference resource at t - cqi_delay (38.214 §5.2.2.1: highest CQI with TBLER <= 0.1), with a
   Gaussian measurement error on the effective SINR.
3. New data arrives (full buffer, or FTP model 3 files at Poisson instants).
4. On downlink slots, each cell schedules up to `ues_per_slot` UEs (retransmissions first, then
   proportional fair or round robin on what the gNB knows: CQI and served throughput) and the
   slot's `SlotReport` asks the policy for the MCS of every new transmission.
5. `step(mcs)` transmits: per-subband SINR from the fading and interference traces, EESM,
   TBLER (phy.py), a Bernoulli decode, and the outcome joins the HARQ timeline.

Randomness comes from separate streams (drop, channel, traffic, CSI error, decoding), all drawn
in amounts that do not depend on the policy, so two policies with the same seed face the same
channel, traffic and decoding luck (common random numbers), and a seed reproduces a run bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranpd.simulator import phy
from ranpd.simulator.channel import doppler_hz, drop_ues, neighbour_activity_traces, subband_gain_traces
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import Scenario
from ranpd.simulator.tables import CQI_TABLES, MCS_TABLES, cqi_to_mcs_map
from ranpd.simulator.tbs import ldpc_segmentation, n_re, tbs_from_n_info, tbs_per_mcs

N_TRACES = 8
TRACE_POOL = 4    # seeds share trace sets modulo this (drops and trace offsets stay per seed)
FULL_BUFFER_BYTES = 1 << 30          # what a full-buffer UE reports as its buffer
PF_AVERAGING_SLOTS = 100.0           # proportional-fair throughput averaging window


@dataclass
class StepOutcome:
    """The result of one slot's new transmissions, aligned with the decided UEs."""

    report: SlotReport       # the next slot's report
    ue: np.ndarray
    ack: np.ndarray          # first transmission decoded
    tbs_bits: np.ndarray
    reward: np.ndarray       # delivered bits / TBS of the table's top MCS, float32 in [0, 1]


def _trace_length(doppler_norm: float) -> int:
    """Long enough for ~64 Doppler-spectrum bins (a faithful J0), within 4k..64k slots."""
    wanted = 64.0 / (2.0 * doppler_norm)
    return int(np.clip(2 ** np.ceil(np.log2(wanted)), 4096, 65536))


def _segmentation(tbs: np.ndarray, code_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number of code blocks and bits per code block for each TBS (TS 38.212 §5.2.2)."""
    seg = np.array([ldpc_segmentation(int(b), float(r))[1:] for b, r in zip(tbs, code_rate)])
    return seg[:, 0], seg[:, 1]


class Simulation:
    """A seeded population of UEs in `n_ues / ues_per_cell` independent cells."""

    def __init__(self, scenario: Scenario, seed: int = 0, n_ues: int | None = None):
        sc = scenario if n_ues is None else scenario.with_ues(n_ues)
        self.scenario, self.seed = sc, seed
        self.n_ues, self.n_cells = sc.n_ues, sc.n_ues // sc.ues_per_cell
        self.mcs_table, self.cqi_table = sc.mcs_table, sc.cqi_table
        self.slot_duration_s = sc.slot_duration_s
        self._streams = dict(zip(("drop", "traffic", "csi", "decode"), np.random.SeedSequence(seed).spawn(4)))
        drop_rng = np.random.default_rng(self._streams["drop"])
        n = self.n_ues

        # Link budget per resource element, relative to thermal noise (-174 dBm/Hz).
        h_bs, isd, d_min = sc.site
        serving_db, neighbour_db = drop_ues(sc.environment, n, sc.carrier_ghz, isd, h_bs, d_min, drop_rng)
        scs_hz = 15e3 * (1 << sc.numerology)
        re_power_dbm = sc.tx_power_dbm - 10 * np.log10(sc.cell_prbs * 12) + sc.bs_antenna_gain_db
        noise_dbm = -174.0 + 10 * np.log10(scs_hz) + sc.ue_noise_figure_db
        self._snr = 10 ** ((re_power_dbm + serving_db - noise_dbm) / 10)
        self._inr = 10 ** ((re_power_dbm + neighbour_db - noise_dbm) / 10)

        # Fading and interference traces; each UE reads one at its own offset.
        doppler_norm = max(doppler_hz(sc.ue_speed_kmh, sc.carrier_ghz) * sc.slot_duration_s, 1e-4)
        self._trace_len = _trace_length(doppler_norm)
        chan_seed = seed % TRACE_POOL
        self._gains = subband_gain_traces(sc.tdl_profile, sc.delay_spread_ns, doppler_norm, sc.bandwidth_hz,
                                          sc.n_subbands, N_TRACES, self._trace_len, chan_seed)
        burst_slots = sc.interference_burst_ms * 1e-3 / sc.slot_duration_s
        self._activity = neighbour_activity_traces(sc.load, burst_slots, N_TRACES, self._trace_len, chan_seed)
        self._trace = drop_rng.integers(N_TRACES, size=n)
        self._offset = drop_rng.integers(self._trace_len, size=n)

        # Allocation: every scheduled UE gets an equal share of the carrier.
        self.prbs_per_ue = sc.cell_prbs // sc.ues_per_slot
        table = MCS_TABLES[sc.mcs_table]
        self._tbs = tbs_per_mcs(sc.mcs_table, self.prbs_per_ue, sc.pdsch_symbols, sc.dmrs_per_prb, sc.layers)
        self._n_cb, self._cb_bits = _segmentation(self._tbs, table.code_rate)
        self._threshold = phy.mcs_sinr_threshold_db(table)
        self._beta = phy.eesm_beta(table.efficiency)
        self.max_mcs = table.size - 1

        # CQI definition on the same reference allocation (CQI rows 1..15).
        cqi = CQI_TABLES[sc.cqi_table]
        n_re_alloc = n_re(self.prbs_per_ue, sc.pdsch_symbols, sc.dmrs_per_prb)
        cqi_tbs = tbs_from_n_info(n_re_alloc * cqi.code_rate[1:] * cqi.qm[1:] * sc.layers, cqi.code_rate[1:])
        self._cqi_n_cb, self._cqi_cb_bits = _segmentation(cqi_tbs, cqi.code_rate[1:])
        self._cqi_threshold = phy.bler10_sinr_db(cqi.efficiency[1:])
        self._cqi_beta = phy.eesm_beta(cqi.efficiency[1:])
        self._illa_efficiency = table.efficiency[cqi_to_mcs_map(sc.mcs_table, sc.cqi_table)]  # PF's rate estimate
        self._cqi_phase = drop_rng.integers(sc.cqi_period_slots, size=n)

        tdd = sc.tdd_pattern if sc.duplex == "TDD" else "D"
        self._downlink = np.array([c == "D" for c in tdd])
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> SlotReport:
        """Start over (same seed: same drop, channel and luck); return slot 0's report."""
        sc, n = self.scenario, self.n_ues
        self._traffic_rng = np.random.default_rng(self._streams["traffic"])
        self._csi_rng = np.random.default_rng(self._streams["csi"])
        self._decode_rng = np.random.default_rng(self._streams["decode"])
        d, p = sc.k1_slots, sc.harq_processes
        self.slot = 0
        self.known_cqi = np.zeros(n, np.int64)
        self.buffer_bytes = np.full(n, np.inf if sc.traffic == "full_buffer" else 0.0)
        self._avg_rate = np.full(n, 1.0)
        self._last_served = np.zeros(n, np.int64)
        self._busy = np.zeros(n, np.int64)                    # bitmask of HARQ processes in use
        self._ring = {k: np.zeros((d, n), t) for k, t in (
            ("valid", bool), ("ack", bool), ("mcs", np.int64), ("tbs", np.int64), ("tx", np.int64),
            ("acc", np.float64), ("proc", np.int64), ("bits", np.float64))}
        self._queue = {k: np.zeros((n, p), t) for k, t in (
            ("mcs", np.int64), ("tbs", np.int64), ("tx", np.int64), ("acc", np.float64),
            ("proc", np.int64), ("bits", np.float64))}
        self._q_head = np.zeros(n, np.int64)
        self._q_count = np.zeros(n, np.int64)
        self._stats = dict(delivered_bits=np.zeros(n), first_tx=0, first_nack=0, tb_done=0, tb_lost=0,
                           mcs_sum=0, retx=0)
        return self._begin_slot()

    # ------------------------------------------------------------------ channel
    def _sinr(self, ue: np.ndarray, slot: int) -> np.ndarray:
        """Linear SINR per subband [len(ue), n_subbands] at `slot` (interference flat in frequency)."""
        k, idx = self._trace[ue], (self._offset[ue] + slot) % self._trace_len
        inr = (self._inr[ue] * self._activity[k, idx]).sum(axis=1)
        return self._gains[k, idx] * (self._snr[ue] / (1.0 + inr))[:, None]

    def _measure_cqi(self, ue: np.ndarray, reference_slot: int) -> np.ndarray:
        """38.214 §5.2.2.1: the highest CQI whose TBLER on the reference resource is <= 0.1."""
        sinr = self._sinr(ue, reference_slot)
        eff_db = phy.eesm_db(sinr[:, None, :], self._cqi_beta[None, :])
        eff_db += self.scenario.cqi_error_db * self._csi_rng.standard_normal((ue.size, 1))
        bler = phy.transport_block_bler(eff_db, self._cqi_threshold, self._cqi_cb_bits, self._cqi_n_cb)
        ok = bler <= 0.1
        return np.where(ok.any(axis=1), 15 - np.argmax(ok[:, ::-1], axis=1), 0)

    # ------------------------------------------------------------------ slot
    def _begin_slot(self) -> SlotReport:
        sc, t, n = self.scenario, self.slot, self.n_ues
        report = SlotReport(slot=t, mcs_table=self.mcs_table, cqi_table=self.cqi_table)

        # 1. HARQ feedback for the transmissions of slot t - K1.
        row = t % sc.k1_slots
        ring = self._ring
        fb = np.flatnonzero(ring["valid"][row])
        if fb.size:
            ring["valid"][row, fb] = False
            ack, tx = ring["ack"][row, fb], ring["tx"][row, fb]
            proc = ring["proc"][row, fb]
            retx = ~ack & (tx < sc.max_transmissions)
            self._enqueue(fb[retx], {k: ring[k][row, fb[retx]] for k in self._queue}, tx[retx] + 1)
            done = ~retx
            self._busy[fb[done]] &= ~(np.int64(1) << proc[done])
            self._stats["tb_done"] += int(done.sum())
            self._stats["tb_lost"] += int((done & ~ack).sum())
            report.harq_ue, report.harq_ack, report.harq_tx = fb, ack, tx
            report.harq_mcs, report.harq_tbs, report.harq_process = ring["mcs"][row, fb], ring["tbs"][row, fb], proc

        # 2. CSI reports (every UE reports once at attach, slot 0).
        reporting = np.arange(n) if t == 0 else np.flatnonzero((t + self._cqi_phase) % sc.cqi_period_slots == 0)
        if reporting.size:
            reference = t - sc.cqi_delay_slots
            cqi = self._measure_cqi(reporting, reference)
            self.known_cqi[reporting] = cqi
            report.cqi_ue, report.cqi_value = reporting, cqi
            report.cqi_slot = np.full(reporting.size, reference, np.int64)

        # 3. Traffic: FTP model 3 files arrive as a Poisson process per UE.
        if sc.traffic == "ftp3":
            files = self._traffic_rng.poisson(sc.ftp_arrival_rate_hz * self.slot_duration_s, n)
            self.buffer_bytes += files * sc.ftp_packet_bytes

        # 4. Scheduling on downlink slots.
        self._new_ue = self._retx_ue = np.zeros(0, np.int64)
        if self._downlink[t % self._downlink.size]:
            self._schedule(report)
        return report

    def _schedule(self, report: SlotReport) -> None:
        sc = self.scenario
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
        else:
            cols = np.broadcast_to(np.arange(k), (self.n_cells, k))
        chosen = (cols + (np.arange(self.n_cells) * sc.ues_per_cell)[:, None]).ravel()
        chosen = np.sort(chosen[eligible[chosen]])
        self._retx_ue = chosen[retx_pending[chosen]]
        self._new_ue = chosen[~retx_pending[chosen]]
        new = self._new_ue
        report.ue = new
        report.prbs = np.full(new.size, self.prbs_per_ue, np.int64)
        report.layers = np.full(new.size, sc.layers, np.int64)
        report.buffer_bytes = np.minimum(self.buffer_bytes[new], FULL_BUFFER_BYTES).astype(np.int64)

    def _enqueue(self, ue: np.ndarray, fields: dict, next_tx: np.ndarray) -> None:
        """Queue retransmissions (one per UE per call) at the tail of each UE's FIFO."""
        pos = (self._q_head[ue] + self._q_count[ue]) % self.scenario.harq_processes
        for key, values in fields.items():
            self._queue[key][ue, pos] = values
        self._queue["tx"][ue, pos] = next_tx
        self._q_count[ue] += 1

    def _dequeue(self, ue: np.ndarray) -> dict:
        pos = self._q_head[ue]
        fields = {key: q[ue, pos] for key, q in self._queue.items()}
        self._q_head[ue] = (pos + 1) % self.scenario.harq_processes
        self._q_count[ue] -= 1
        return fields

    def step(self, mcs) -> StepOutcome:
        """Transmit this slot with `mcs` for the report's UEs (aligned with `report.ue`)."""
        new = self._new_ue
        mcs = np.asarray(mcs)
        if mcs.shape != new.shape:
            raise ValueError(f"expected {new.size} MCS values (one per report.ue), got shape {mcs.shape}")
        mcs = np.clip(mcs.astype(np.int64), 0, self.max_mcs)
        sc, t = self.scenario, self.slot

        # New transmissions take the lowest free HARQ process.
        free = ~self._busy[new] & ((np.int64(1) << sc.harq_processes) - 1)
        proc = np.log2(free & -free).astype(np.int64)
        self._busy[new] |= np.int64(1) << proc
        tbs = self._tbs[mcs]
        bits = np.minimum(tbs, self.buffer_bytes[new] * 8.0)
        self.buffer_bytes[new] -= bits / 8.0
        old = self._dequeue(self._retx_ue) if self._retx_ue.size else {k: q[:0, 0] for k, q in self._queue.items()}

        ue = np.concatenate([new, self._retx_ue])
        tx_mcs = np.concatenate([mcs, old["mcs"]])
        sinr = self._sinr(ue, t)
        eff = 10 ** (phy.eesm_db(sinr, self._beta[tx_mcs]) / 10)
        acc = np.concatenate([np.zeros(new.size), old["acc"]]) + eff          # chase combining
        bler = phy.transport_block_bler(10 * np.log10(acc), self._threshold[tx_mcs],
                                        self._cb_bits[tx_mcs], self._n_cb[tx_mcs])
        ack = self._decode_rng.random(self.n_ues)[ue] >= bler
        tx_bits = np.concatenate([bits, old["bits"]])

        row = t % sc.k1_slots
        ring = self._ring
        ring["valid"][row, ue] = True
        for key, values in (("ack", ack), ("mcs", tx_mcs), ("tbs", np.concatenate([tbs, old["tbs"]])),
                            ("tx", np.concatenate([np.ones(new.size, np.int64), old["tx"]])), ("acc", acc),
                            ("proc", np.concatenate([proc, old["proc"]])), ("bits", tx_bits)):
            ring[key][row, ue] = values

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

        outcome_ack = ack[:new.size]
        reward = (outcome_ack * bits / self._tbs[-1]).astype(np.float32)
        self.slot += 1
        return StepOutcome(self._begin_slot(), new, outcome_ack, tbs, reward)

    # ------------------------------------------------------------------ KPIs
    def ue_throughput_mbps(self) -> np.ndarray:
        """Delivered throughput per UE so far (Mbit/s)."""
        return self._stats["delivered_bits"] / max(self.slot, 1) / self.slot_duration_s / 1e6

    def kpis(self) -> dict:
        """KPIs of the run so far (keys shared by `ranpd simulate --json` and the evaluations)."""
        s, sc = self._stats, self.scenario
        ue_tput = self.ue_throughput_mbps()
        cell_tput = ue_tput.sum() / self.n_cells
        return {
            "scenario": sc.name,
            "throughput_mbps": float(ue_tput.mean()),
            "throughput_p5_mbps": float(np.percentile(ue_tput, 5)),
            "cell_throughput_mbps": float(cell_tput),
            "spectral_efficiency": float(cell_tput * 1e6 / sc.bandwidth_hz),
            "bler_first_tx": s["first_nack"] / max(s["first_tx"], 1),
            "bler_residual": s["tb_lost"] / max(s["tb_done"], 1),
            "mean_mcs": s["mcs_sum"] / max(s["first_tx"], 1),
            "retransmissions": int(s["retx"]),
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
