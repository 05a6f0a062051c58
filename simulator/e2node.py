"""The simulator as an E2 node: the gNB side of the link-adaptation loop with an xApp.

Each slot the node sends the simulation's `SlotReport` as one RANPD-E2SM-LA INSERT indication
(O-RAN E2AP §8.2.3 RIC Indication) and waits, up to the decision deadline, for the RIC Control
(§8.2.4) carrying the MCS of every UE scheduled for a new transmission. A UE gets the xApp's MCS
when the control arrives in time and is for this slot and names it; otherwise (late, missing, or
a UE the control leaves out because the xApp's guard handed it back) it gets the node's own OLLA
decision, at the operator's BLER target. OLLA sees every report's CSI and HARQ events every
slot, so it is always ready to take over. When the xApp goes away the node runs on OLLA and
reconnects with exponential backoff (E2 Setup §8.3.1, then RIC Subscription §8.2.1 again): no
UE-slot ever goes without an MCS. Each indication's header also tells the xApp the node's HARQ
transmissions per TB (`max_harq_tx`), so its guard can tell a residual loss.

Every KPM granularity period (`kpm_period_ms` of simulated time) the node also sends a
RANPD-E2SM-KPM REPORT indication on its KPM subscription (E2AP §8.2.3, REPORT action): cell and
UE measurements named as in 3GPP TS 28.552 §5.1.1 (DL UE throughput, initial and erroneous
transport blocks, CQI and MCS distributions) plus the period's link-adaptation decisions and
how many of them fell back to OLLA, so the xApp can watch every cell it serves.

The simulator runs faster or slower than real time, so the deadline is a per-slot round-trip
budget on the wall clock (default: one slot of the scenario's numerology, TS 38.211 §4.3.2),
counted like the reported RTT from the moment the node starts encoding the indication until it
has read the control.

Two loops (`loop`). `rt` (above): the xApp decides every slot over E2. `near-rt`: the node is the
inference host (`ranpd.simulator.nearrt`): it subscribes to the LA function's POLICY action, runs
the model the xApp deploys in its own slot loop (shadow first, then promoted; OLLA while none is
active and for the UEs the guard hands back), carries out the xApp's promote, discard and rollback
controls, and adds the model's decisions and the shadow comparison to every KPM report. The link
being down costs the near-RT node nothing: it keeps deciding with what it runs.

The connection itself (setup, subscriptions, frames) is `ranpd.proto.e2link.E2Link`.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ranpd.proto import e2ap_pb2, kpm, la_codec
from ranpd.proto.e2link import (KPM_ACTION_ID, KPM_REQUEST_ID, LA_ACTION_ID, LOOPS, MODEL_REQUEST_ID, REQUEST_ID,
                                 E2Link, E2LinkError, parse_address)
from ranpd.proto.framing import CodecError, message_type, wrap
from ranpd.simulator.engine import Simulation
from ranpd.simulator.guard import GuardConfig
from ranpd.simulator.nearrt import CommandRefused, InferenceHost, ModelLoader
from ranpd.simulator.observation import DEFAULT_BLER_TARGET
from ranpd.simulator.policies import Olla, parse_bler_target
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import Scenario
from ranpd.simulator.tables import MCS_TABLES

MAX_PENDING = 1024          # unanswered indications remembered for late-RTT measurement
# Errors after which the subscription is gone: set the link up again (E2 Setup, Subscription).
RESUBSCRIBE_CAUSES = {e2ap_pb2.CAUSE_UNKNOWN_SUBSCRIPTION, e2ap_pb2.CAUSE_MESSAGE_NOT_COMPATIBLE}


@dataclass
class LoopStats:
    """Counters of the node's decision loop (UE-slots unless said otherwise)."""

    scheduled: int = 0           # UE-slots that needed an MCS
    xapp_decisions: int = 0      # ... that got the xApp's MCS in time
    fallbacks: int = 0           # ... that got OLLA's (late, missing, stale, failure or no link)
    late_controls: int = 0       # controls that arrived after their slot's deadline (dropped)
    error_indications: int = 0
    reconnects: int = 0          # links re-established after a loss
    connect_failures: int = 0
    kpm_reports: int = 0         # KPM REPORT indications sent (one per granularity period on a link)
    kpm_errors: int = 0          # ErrorIndications the xApp sent about them
    model_decisions: int = 0     # near-RT: UE-slots the node's active model decided
    # Indication built -> control read; a late control counts until the node read it (upper bound).
    rtt_ns: list[int] = field(default_factory=list)

    def summary(self, deadline_us: float) -> dict:
        rtt = np.asarray(self.rtt_ns, np.float64) / 1e3
        percentile = (lambda q: float(np.percentile(rtt, q))) if rtt.size else (lambda q: None)
        return {
            "decisions": self.xapp_decisions + self.model_decisions + self.fallbacks,
            "scheduled": self.scheduled,
            "xapp_decisions": self.xapp_decisions,
            "fallbacks": self.fallbacks,
            "fallback_rate": self.fallbacks / max(self.scheduled, 1),
            "rtt_p50_us": percentile(50),
            "rtt_p99_us": percentile(99),
            "rtt_samples": int(rtt.size),
            "deadline_us": deadline_us,
            "late_controls": self.late_controls,
            "error_indications": self.error_indications,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "kpm_reports": self.kpm_reports,
            "kpm_errors": self.kpm_errors,
            "model_decisions": self.model_decisions,
        }


class KpmCollector:
    """One granularity period's measurements, from what a gNB sees: HARQ-ACK feedback (TB counts,
    first-transmission errors, acknowledged bits), CSI reports and its own decisions.

    Names and meaning after 3GPP TS 28.552 §5.1.1: DRB.UEThpDl per UE = acknowledged TB bits over
    the period (kbit/s), the cell value is its mean over the UEs with feedback; TB.TotNbrDl(Initial)
    and TB.IntialErrNbrDl count HARQ feedback of all / first transmissions and first-transmission
    NACKs; CARR.WBCQIDist and CARR.PDSCHMCSDist are histograms of reported CQI and of first-
    transmission MCS. The period's first-transmission BLER is IntialErrNbrDl / TotNbrDlInitial;
    TB.ResidualErrNbrDl counts NACKs on a TB's last allowed transmission (lost to HARQ).
    """

    def __init__(self, period_slots: int, slot_duration_s: float, max_transmissions: int):
        self.period_slots, self.period_s = period_slots, period_slots * slot_duration_s
        self.max_transmissions = max_transmissions
        self.start(time.monotonic_ns())

    def start(self, now_ns: int) -> None:
        self.start_ns, self.slots = now_ns, 0
        self._harq: list[tuple[np.ndarray, ...]] = []
        self._cqi: list[np.ndarray] = []

    def add(self, report: SlotReport) -> None:
        self.slots += 1
        if report.harq_ue.size:
            self._harq.append((report.harq_ue, report.harq_ack, report.harq_tbs, report.harq_tx, report.harq_mcs))
        if report.cqi_value.size:
            self._cqi.append(report.cqi_value)

    def records(self, decisions: int, fallbacks: int, extra: kpm.Records | None = None
                ) -> tuple[kpm.Records, dict[int, kpm.Records]]:
        ue, ack, tbs, tx, mcs = (np.concatenate(c) for c in zip(*self._harq)) if self._harq else \
            (np.zeros(0, np.int64), np.zeros(0, bool), *(np.zeros(0, np.int64) for _ in range(3)))
        first, served = tx == 1, np.unique(ue)
        ue_kbps = np.bincount(ue, weights=np.where(ack, tbs, 0).astype(np.float64))[served] / self.period_s / 1e3
        cqi = np.concatenate(self._cqi) if self._cqi else np.zeros(0, np.int64)
        cell = {
            "DRB.UEThpDl": [float(ue_kbps.mean()) if ue_kbps.size else 0.0],
            "TB.TotNbrDl": [float(ue.size)],
            "TB.TotNbrDlInitial": [float(first.sum())],
            "TB.IntialErrNbrDl": [float((first & ~ack).sum())],
            "TB.ResidualErrNbrDl": [float(((tx >= self.max_transmissions) & ~ack).sum())],
            "CARR.WBCQIDist": np.bincount(np.clip(cqi, 0, 15), minlength=16).astype(float).tolist(),
            "CARR.PDSCHMCSDist": np.bincount(np.clip(mcs[first], 0, 31), minlength=32).astype(float).tolist(),
            kpm.DECISIONS: [float(decisions)],
            kpm.FALLBACKS: [float(fallbacks)],
            **(extra or {}),
        }
        return cell, {int(u): {"DRB.UEThpDl": [float(k)]} for u, k in zip(served, ue_kbps)}


class E2Node:
    """A simulated gNB that asks an xApp for its MCS decisions and falls back to OLLA.

    The fallback OLLA runs at the operator's first-tx BLER target `bler_target` (10% in throughput
    mode, None), and decides every UE the xApp's control leaves out (e.g. one its guard handed
    back). `run(slots)` returns the KPIs of `Simulation.kpis()` plus the loop's `LoopStats.summary`.

    `loop="near-rt"` makes the node the inference host (module docstring): `load_model` validates
    a deployed model (ONNX bytes, card JSON), `guard` is the node's per-UE guard around it, and
    after each (re)connection the node waits up to `model_wait_s` for the xApp's first model
    control before its next slot.
    """

    def __init__(self, scenario: Scenario, xapp: tuple[str, int], seed: int = 0, n_ues: int | None = None,
                 deadline_us: float | None = None, backoff_s: tuple[float, float] = (0.01, 1.0),
                 realtime: bool = False, connect_timeout_s: float = 2.0, kpm_period_ms: int = 100,
                 bler_target: float | None = DEFAULT_BLER_TARGET, loop: str = "rt",
                 load_model: ModelLoader | None = None, guard: GuardConfig | None = GuardConfig(),
                 model_wait_s: float = 1.0):
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
        if loop == "near-rt" and (load_model is None or not kpm_period_ms):
            raise ValueError("the near-RT loop needs a model loader and KPM reports (kpm_period_ms > 0)")
        self.loop, self.load_model, self.guard, self.model_wait_s = loop, load_model, guard, model_wait_s
        self.host: InferenceHost | None = None       # near-RT: the node's models, set up by `run`
        self.scenario, self.seed, self.n_ues = scenario, seed, n_ues
        self.bler_target = bler_target
        self.olla_target = DEFAULT_BLER_TARGET if bler_target is None else bler_target
        self.address, self.port = xapp
        self.deadline_us = scenario.slot_duration_s * 1e6 if deadline_us is None else float(deadline_us)
        if self.deadline_us <= 0:
            raise ValueError(f"deadline must be positive, got {self.deadline_us} us")
        self.backoff_initial_s, self.backoff_max_s = backoff_s
        self.realtime, self.connect_timeout_s = realtime, connect_timeout_s
        if kpm_period_ms < 0:
            raise ValueError(f"KPM period must be >= 0 ms (0: no reports), got {kpm_period_ms}")
        self.kpm_period_ms = kpm_period_ms
        self.node_id = f"ranpd-gnb-{scenario.name}-seed{seed}"
        self.stats = LoopStats()
        self._link: E2Link | None = None
        self.ever_connected = False
        self.last_error: str | None = None      # why the last connection attempt or link failed
        self._backoff_s = self.backoff_initial_s
        self._next_attempt = 0.0
        self._sequence = itertools.count(1)
        self._sent_ns: dict[int, int] = {}     # indication sequence number -> send time, unanswered

    # ------------------------------------------------------------------ connection
    def _ensure_link(self) -> E2Link | None:
        """The live link, or a new one when the backoff allows an attempt; None while down."""
        if self._link is not None or time.monotonic() < self._next_attempt:
            return self._link
        try:
            self._link = E2Link(self.address, self.port, self.node_id, self.connect_timeout_s, self.kpm_period_ms,
                                self.loop)
        except E2LinkError as exc:
            self.last_error = str(exc)
            self.stats.connect_failures += 1
            self._next_attempt = time.monotonic() + self._backoff_s
            self._backoff_s = min(2 * self._backoff_s, self.backoff_max_s)
            return None
        self.stats.reconnects += self.ever_connected
        self.ever_connected = True
        self._backoff_s = self.backoff_initial_s
        if self.loop == "near-rt":
            try:
                self._serve_controls(self._link, time.monotonic_ns() + int(self.model_wait_s * 1e9))
            except E2LinkError as exc:
                self.last_error = str(exc)
                self._drop_link()
        return self._link

    def disconnect(self) -> None:
        """Close the link now (the next slot sets it up again, as after a loss)."""
        if self._link is not None:
            self._drop_link()

    def _drop_link(self) -> None:
        self._link.close()
        self._link = None
        self._sent_ns.clear()
        self._next_attempt = time.monotonic() + self._backoff_s

    # ------------------------------------------------------------------ one slot
    def _ask_xapp(self, link: E2Link, report: SlotReport) -> np.ndarray | None:
        """Send the slot's indication; return the xApp's MCS per `report.ue` (-1 = none in time)."""
        if report.n_decisions == 0 and report.cqi_ue.size == 0 and report.harq_ue.size == 0:
            return None
        sequence = next(self._sequence)
        sent = time.monotonic_ns()
        deadline = sent + int(self.deadline_us * 1e3)
        link.send(la_codec.indication_envelope(report, request_id=REQUEST_ID, sequence_number=sequence,
                                               deadline_ns=deadline, timestamp_ns=sent, action_id=LA_ACTION_ID,
                                               max_harq_tx=self.scenario.max_transmissions))
        if report.n_decisions == 0:
            return None
        self._sent_ns[sequence] = sent
        if len(self._sent_ns) > MAX_PENDING:
            del self._sent_ns[next(iter(self._sent_ns))]
        while (envelope := link.receive(deadline)) is not None:
            kind = message_type(envelope)
            if kind == "ric_control_request":
                try:
                    control = la_codec.decode_control(envelope.ric_control_request)
                except la_codec.CodecError:
                    continue
                answered = self._sent_ns.pop(control.indication_sequence_number, None)
                if answered is None:       # an answer to an indication without decisions
                    continue
                received = time.monotonic_ns()
                self.stats.rtt_ns.append(received - answered)
                if control.indication_sequence_number == sequence and control.slot == report.slot \
                        and received <= deadline:
                    return self._align(report, control)
                self._report_late(link, envelope.ric_control_request)
            elif kind == "error_indication":
                error = envelope.error_indication
                self.stats.error_indications += 1
                if error.ran_function_id == kpm.KPM_RAN_FUNCTION.id:     # about a KPM report
                    self.stats.kpm_errors += 1
                    continue
                if error.cause in RESUBSCRIBE_CAUSES:
                    raise E2LinkError(f"xApp lost the subscription: {e2ap_pb2.Cause.Name(error.cause)}")
                if error.sequence_number == sequence:
                    self._sent_ns.pop(sequence, None)
                    return None
            elif kind == "reset_request":       # E2AP §8.3.3: both ends drop their subscriptions
                link.send(wrap(e2ap_pb2.ResetResponse(), envelope.transaction_id))
                raise E2LinkError("xApp reset the E2 connection")
        return None

    def _align(self, report: SlotReport, control: la_codec.ControlDecision) -> np.ndarray:
        """The control's MCS per `report.ue`; -1 where it has none or an invalid one."""
        max_mcs = MCS_TABLES[report.mcs_table].size - 1
        if np.array_equal(control.ue, report.ue):
            mcs = control.mcs.copy()
        else:
            by_ue = dict(zip(control.ue.tolist(), control.mcs.tolist()))
            mcs = np.array([by_ue.get(u, -1) for u in report.ue.tolist()], np.int64)
        mcs[mcs > max_mcs] = -1
        return mcs

    def _report_late(self, link: E2Link, control: e2ap_pb2.RICControlRequest) -> None:
        """Tell the xApp a control was dropped (E2AP RIC Control Failure, cause: too late)."""
        self.stats.late_controls += 1
        link.send(wrap(e2ap_pb2.RICControlFailure(
            request_id=control.request_id, ran_function_id=control.ran_function_id,
            call_process_id=control.call_process_id, cause=e2ap_pb2.CAUSE_CONTROL_TOO_LATE,
            text="control arrived after the slot's deadline; the node used OLLA")))

    def _send_kpm(self, collector: KpmCollector, counted: tuple[int, int, int]) -> None:
        """Send the period's KPM REPORT when the link has a KPM subscription; start a new period.
        Near-RT reports add the active model's decisions and the candidate's shadow comparison."""
        stats, link = self.stats, self._link
        extra = None
        if self.host is not None:
            shadow = self.host.take_shadow()
            extra = {"RANPD.LaModelDecisionNbr": [float(stats.model_decisions - counted[2])]}
            if shadow.decisions:
                extra |= {"RANPD.ShadowDecisionNbr": [float(shadow.decisions)],
                          "RANPD.ShadowDisagreeNbr": [float(shadow.disagreements)],
                          "RANPD.ShadowExpBitsCandidate": [shadow.expected_bits_candidate],
                          "RANPD.ShadowExpBitsApplied": [shadow.expected_bits_applied]}
        if link is not None and link.kpm_subscribed:
            cell, ues = collector.records(stats.scheduled - counted[0], stats.fallbacks - counted[1], extra)
            header, message = kpm.encode_report(cell, ues, sender_name=self.node_id,
                                                granularity_period_ms=self.kpm_period_ms,
                                                collection_start_ns=collector.start_ns)
            try:
                link.send(wrap(e2ap_pb2.RICIndication(
                    request_id=KPM_REQUEST_ID, ran_function_id=kpm.KPM_RAN_FUNCTION.id, action_id=KPM_ACTION_ID,
                    sequence_number=stats.kpm_reports + 1, type=e2ap_pb2.INDICATION_TYPE_REPORT,
                    header=header, message=message)))
                stats.kpm_reports += 1
            except E2LinkError as exc:
                self.last_error = str(exc)
                self._drop_link()
        collector.start(time.monotonic_ns())

    # ------------------------------------------------------------------ near-RT: model controls
    def _serve_controls(self, link: E2Link, until_ns: int) -> None:
        """Carry out the xApp's model controls that arrive before `until_ns` (all already received
        when it is now); with a wait, return after the first one and what came with it."""
        while (envelope := link.receive(until_ns)) is not None:
            kind = message_type(envelope)
            if kind == "ric_control_request" and envelope.ric_control_request.request_id == MODEL_REQUEST_ID:
                link.send(wrap(self._model_control(envelope.ric_control_request)))
                until_ns = 0                     # then only what has already arrived
            elif kind == "error_indication" and envelope.error_indication.cause in RESUBSCRIBE_CAUSES:
                raise E2LinkError(f"xApp lost the subscription: {e2ap_pb2.Cause.Name(envelope.error_indication.cause)}")
            elif kind == "error_indication":
                self.stats.error_indications += 1
                self.stats.kpm_errors += envelope.error_indication.ran_function_id == kpm.KPM_RAN_FUNCTION.id
            elif kind == "reset_request":
                link.send(wrap(e2ap_pb2.ResetResponse(), envelope.transaction_id))
                raise E2LinkError("xApp reset the E2 connection")

    def _model_control(self, control: e2ap_pb2.RICControlRequest):
        """The node's answer to one model control: Acknowledge with its models, or Failure."""
        ids = dict(request_id=control.request_id, ran_function_id=control.ran_function_id,
                   call_process_id=control.call_process_id)
        try:
            self.host.command(la_codec.decode_model_control(control))
        except (CodecError, CommandRefused) as exc:
            return e2ap_pb2.RICControlFailure(**ids, cause=exc.cause, text=str(exc)[:500])
        return e2ap_pb2.RICControlAcknowledge(**ids, outcome=la_codec.encode_model_status(*self.host.status()))

    def _decide_inline(self, report: SlotReport, olla: Olla, fallback: np.ndarray) -> np.ndarray:
        """Near-RT: the xApp's model controls first, then the node's own models decide."""
        if (link := self._ensure_link()) is not None:
            try:
                self._serve_controls(link, 0)
            except E2LinkError as exc:
                self.last_error = str(exc)
                self._drop_link()
        mcs, from_model = self.host.decide(report, fallback, olla.offset_db)
        self.stats.scheduled += mcs.size
        self.stats.model_decisions += from_model
        self.stats.fallbacks += mcs.size - from_model
        return mcs

    def decide(self, report: SlotReport, olla: Olla) -> np.ndarray:
        """The MCS of every UE of `report`: the xApp's where in time (near-RT: the node's active
        model's), OLLA's elsewhere."""
        fallback = olla.decide(report)          # OLLA sees every report, always ready
        if self.loop == "near-rt":
            return self._decide_inline(report, olla, fallback)
        link = self._ensure_link()
        xapp_mcs = None
        if link is not None:
            try:
                xapp_mcs = self._ask_xapp(link, report)
            except E2LinkError as exc:
                self.last_error = str(exc)
                self._drop_link()
        n = report.n_decisions
        self.stats.scheduled += n
        if xapp_mcs is None:
            self.stats.fallbacks += n
            return fallback
        from_xapp = xapp_mcs >= 0
        self.stats.xapp_decisions += int(from_xapp.sum())
        self.stats.fallbacks += int(n - from_xapp.sum())
        return np.where(from_xapp, xapp_mcs, fallback)

    # ------------------------------------------------------------------ the run
    def run(self, slots: int, on_slot: Callable[[int], None] | None = None, max_wall_s: float | None = None) -> dict:
        """Simulate `slots` slots in the loop with the xApp; `on_slot(i)` runs before slot i.
        With `max_wall_s`, stop earlier once that much wall-clock time has passed."""
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        sim = Simulation(self.scenario, seed=self.seed, n_ues=self.n_ues)
        olla = Olla(target_bler=self.olla_target)
        olla.reset(sim.n_ues, sim.mcs_table, sim.cqi_table)
        if self.loop == "near-rt":
            self.host = InferenceHost(self.load_model, sim.n_ues, sim.mcs_table, sim.cqi_table, self.bler_target,
                                      self.guard, self.scenario.max_transmissions)
        report = sim.reset()
        start = time.monotonic()
        collector = KpmCollector(max(1, round(self.kpm_period_ms * 1e-3 / sim.slot_duration_s)),
                                 sim.slot_duration_s, self.scenario.max_transmissions) if self.kpm_period_ms else None
        counted = (0, 0, 0)         # (scheduled, fallbacks, model decisions) at the start of the KPM period
        try:
            for i in range(slots):
                if max_wall_s is not None and time.monotonic() - start >= max_wall_s:
                    break
                if on_slot is not None:
                    on_slot(i)
                if self.realtime and (wait := start + i * sim.slot_duration_s - time.monotonic()) > 0:
                    time.sleep(wait)
                report = sim.step(self.decide(report, olla)).report
                if collector is not None:
                    collector.add(report)
                    if collector.slots == collector.period_slots:
                        self._send_kpm(collector, counted)
                        counted = (self.stats.scheduled, self.stats.fallbacks, self.stats.model_decisions)
        finally:
            if self._link is not None:
                self._link.close()
                self._link = None
        return {**sim.kpis(), "policy": "xapp", "reached_xapp": self.ever_connected,
                "olla_bler_target": self.olla_target, "loop": self.loop,
                **self.stats.summary(self.deadline_us), **self._model_summary()}

    def _model_summary(self) -> dict:
        """Near-RT: the model in use at the end, promotions, rollbacks and every model event."""
        if self.host is None:
            return {}
        events = self.host.events
        return {"model": self.host.version(self.host.active),
                "promotions": sum(e.event == "promoted" for e in events),
                "rollbacks": sum(e.event == "rolled_back" for e in events),
                "model_events": [vars(e) for e in events]}
