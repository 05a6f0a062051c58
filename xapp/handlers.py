"""One E2 connection (one E2 node): a handler per E2AP message type, as O-RAN SC xApps do.

`E2Session.handle(envelope, received_ns)` returns the frames to send back. A handler never lets
an exception escape for bad input: it answers ErrorIndication (or the failure field of the
procedure's response) with a cause, and the connection keeps serving.

Procedures (O-RAN.WG3.E2AP §8): E2 Setup, RIC Subscription, RIC Subscription Delete, RIC
Indication (INSERT for link adaptation -> RIC Control Request; REPORT for KPM -> metrics), RIC
Control Acknowledge / Failure (the node's verdict on a control), Error Indication, Reset.

Two loops. Real-time: an LA subscription with an INSERT action; every indication is answered
with the MCS of its UEs. Near-RT: an LA subscription with a POLICY action makes the node the
inference host; its `ModelSupervisor` (xapp/supervisor.py) deploys the serving model to it,
promotes or discards it after the shadow period and rolls it back on regression, all driven by
the node's KPM reports and its verdicts on those model controls.

Conformance and bounds (E2AP §9.2): a second E2 Setup starts the session afresh; a RIC request
id already subscribed is refused, not replaced; a subscription has 1..16 actions
(maxofRICactionID) with distinct ids in 0..255; a node's slots never go backwards; an
indication past its `deadline_ns` is dropped unanswered (the node has fallen back already).
Every string a peer sends is escaped before it reaches a log line, and repeated errors are
logged a few times per window (see `budgets.LogLimiter`).

Serving guards: an LA indication in an MCS table the model card does not declare is answered
ErrorIndication(MCS_TABLE_NOT_SUPPORTED) (the node uses its own OLLA); UEs the per-UE guard has
handed back are left out of the RIC Control (the node's OLLA decides them, per UE); the node's
BLER target (`XappService.bler_targets`) is applied to its UE store at the next indication after
a change.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import kpm, la_codec
from ranpd.proto.framing import PROTOCOL_VERSION, CodecError, encode_frame, message_type, wrap
from ranpd.simulator.guard import DEFAULT_MAX_TRANSMISSIONS
from ranpd.xapp.budgets import wire
from ranpd.xapp.metrics import cause_name
from ranpd.xapp.service import XappService
from ranpd.xapp.state import UeStateStore
from ranpd.xapp.supervisor import ModelControls, ModelSupervisor

log = logging.getLogger(__name__)

SUPPORTED_FUNCTIONS = {la_codec.LA_RAN_FUNCTION.id: la_codec.LA_RAN_FUNCTION,
                       kpm.KPM_RAN_FUNCTION.id: kpm.KPM_RAN_FUNCTION}
# The action types each service model supports, each with its event trigger: LA's INSERT is the
# real-time loop, its POLICY the near-RT loop (the node runs the deployed model).
SUPPORTED_ACTIONS = {la_codec.LA_RAN_FUNCTION.id: {e2.ACTION_TYPE_INSERT: "per_slot_insert",
                                                   e2.ACTION_TYPE_POLICY: "report_period_ms"},
                     kpm.KPM_RAN_FUNCTION.id: {e2.ACTION_TYPE_REPORT: "report_period_ms"}}
IDLE_SWEEP_EVERY = 1024      # indications between sweeps for idle UEs
MAX_ACTIONS = 16             # E2AP maxofRICactionID
MAX_ACTION_ID = 255          # E2AP RIC Action ID, INTEGER (0..255)


def _key(request_id: e2.RicRequestId) -> tuple[int, int]:
    return request_id.requestor_id, request_id.instance_id


class E2Session:
    def __init__(self, service: XappService, peer: str = "?"):
        self.service, self.metrics, self.peer = service, service.metrics, peer
        self.limits = service.limits
        self.node_id: str | None = None
        self.node_label = ""                                    # node id as a (bounded) metric label
        self.ran_functions: set[int] = set()
        self.subscriptions: dict[tuple[int, int], int] = {}     # request id -> RAN function id
        self.store: UeStateStore | None = None
        self.transport = None                                   # set by the server
        self.admit: Callable[["E2Session"], bool] = lambda session: True   # server's slot check
        self._indications = 0
        self._bler_target: float | None = None                 # this node's, applied to `store`
        self._target_version = -1                               # of service.bler_targets applied
        self._last_slot = -1
        self._clock_offset: int | None = None     # min(received - node timestamp), ns
        self.supervisor: ModelSupervisor | None = None          # near-RT loop: the node runs the model
        self._controls: ModelControls | None = None
        self._handlers: dict[str, Callable] = {
            "e2_setup_request": self.on_setup,
            "ric_subscription_request": self.on_subscription,
            "ric_subscription_delete_request": self.on_subscription_delete,
            "ric_indication": self.on_indication,
            "ric_control_acknowledge": self.on_control_acknowledge,
            "ric_control_failure": self.on_control_failure,
            "error_indication": self.on_error_indication,
            "reset_request": self.on_reset,
        }

    # -- replies -------------------------------------------------------------------------------
    def _reply(self, message, transaction_id: int) -> list[bytes]:
        return [encode_frame(wrap(message, transaction_id))]

    def error(self, cause: int, text: str, transaction_id: int = 0, request_id=None,
              ran_function_id: int = 0, sequence_number: int = 0) -> list[bytes]:
        """ErrorIndication with a cause, counted and logged (the connection stays up)."""
        self.metrics.error("sent", cause)
        self.service.log_limiter.log(logging.WARNING, f"sent {cause_name(cause)}", "E2 %s (%s): %s: %s",
                                     wire(self.node_id), self.peer, cause_name(cause), wire(text, 300))
        return self._reply(e2.ErrorIndication(request_id=request_id, ran_function_id=ran_function_id,
                                              cause=cause, text=text, sequence_number=sequence_number),
                           transaction_id)

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, envelope: e2.Envelope, received_ns: int) -> list[bytes]:
        tid = envelope.transaction_id
        if envelope.protocol_version != PROTOCOL_VERSION:
            return self.error(e2.CAUSE_PROTOCOL_VERSION,
                              f"protocol version {envelope.protocol_version} not supported; "
                              f"this xApp speaks {PROTOCOL_VERSION}", tid)
        kind = message_type(envelope)
        if kind is None:
            return self.error(e2.CAUSE_UNKNOWN_MESSAGE_TYPE,
                              "envelope carries no message type known to this protocol version", tid)
        handler = self._handlers.get(kind)
        if handler is None:
            return self.error(e2.CAUSE_MESSAGE_NOT_COMPATIBLE, f"{kind} is not sent to an xApp", tid)
        if kind != "e2_setup_request" and self.node_id is None:
            return self.error(e2.CAUSE_MESSAGE_NOT_COMPATIBLE, f"{kind} before E2 Setup", tid)
        return handler(getattr(envelope, kind), tid, received_ns)

    # -- handlers ------------------------------------------------------------------------------
    def on_setup(self, request: e2.E2SetupRequest, tid: int, _: int) -> list[bytes]:
        node_id, limits = request.global_e2_node_id, self.limits
        if not node_id or len(node_id) > limits.max_node_id_chars or not node_id.isprintable():
            return self.error(e2.CAUSE_INVALID_FIELD, f"global_e2_node_id must be 1..{limits.max_node_id_chars} "
                                                      "printable characters", tid)
        if len(request.ran_functions) > limits.max_ran_functions:
            return self.error(e2.CAUSE_INVALID_FIELD, f"{len(request.ran_functions)} RAN functions; at most "
                                                      f"{limits.max_ran_functions}", tid)
        if self.node_id is None and not self.admit(self):
            return self.error(e2.CAUSE_OVERLOAD, "xApp at its limit of set-up E2 nodes", tid)
        if self.node_id is not None:                  # E2AP §8.3.1: a new setup starts afresh
            self.service.log_limiter.log(logging.INFO, "setup again", "E2 %s (%s) set up again as %s: "
                                         "session reset", wire(self.node_id), self.peer, wire(node_id))
        self._reset()
        accepted, rejected = [], []
        for function in request.ran_functions:
            known = SUPPORTED_FUNCTIONS.get(function.id)
            if known is not None and known.name == function.name and function.revision <= known.revision:
                accepted.append(function.id)
            else:
                rejected.append(e2.RanFunctionRejection(ran_function_id=function.id,
                                                        cause=e2.CAUSE_UNKNOWN_RAN_FUNCTION))
        self.node_id, self.ran_functions = node_id, set(accepted)
        self.node_label = self.service.node_labels(node_id)
        self._follow_bler_target()
        self.service.log_limiter.log(logging.INFO, f"setup {self.node_label}", "E2 setup from %s (%s): RAN functions accepted "
                                     "%s, rejected %s", wire(node_id), self.peer, accepted,
                                     [r.ran_function_id for r in rejected][:16])
        return self._reply(e2.E2SetupResponse(global_ric_id=self.service.settings.ric_id,
                                              accepted_ran_function_ids=accepted, rejected=rejected), tid)

    def on_subscription(self, request: e2.RICSubscriptionRequest, tid: int, _: int) -> list[bytes]:
        function = request.ran_function_id
        response = e2.RICSubscriptionResponse(request_id=request.request_id, ran_function_id=function)
        if function not in self.ran_functions:
            return self.error(e2.CAUSE_UNKNOWN_RAN_FUNCTION,
                              f"RAN function {function} was not set up by this node", tid,
                              request.request_id, function)
        key, context = _key(request.request_id), (tid, request.request_id, function)
        if key in self.subscriptions:
            return self.error(e2.CAUSE_INVALID_FIELD, f"RIC request id {key} is already subscribed; "
                                                      "delete that subscription first", *context)
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            return self.error(e2.CAUSE_OVERLOAD, f"connection at its limit of "
                                                 f"{self.limits.max_subscriptions} subscriptions", *context)
        action_ids = [action.action_id for action in request.actions]
        if not 1 <= len(action_ids) <= MAX_ACTIONS:
            return self.error(e2.CAUSE_INVALID_FIELD, f"a subscription has 1..{MAX_ACTIONS} actions, "
                                                      f"not {len(action_ids)}", *context)
        if max(action_ids) > MAX_ACTION_ID or len(set(action_ids)) != len(action_ids):
            return self.error(e2.CAUSE_INVALID_FIELD, f"action ids must be distinct and in "
                                                      f"0..{MAX_ACTION_ID}: {action_ids}", *context)
        trigger, supported = request.event_trigger.WhichOneof("trigger"), SUPPORTED_ACTIONS[function]
        if trigger not in supported.values():
            return self.error(e2.CAUSE_ACTION_NOT_SUPPORTED, f"RAN function {function} needs event trigger "
                                                             f"{' or '.join(sorted(set(supported.values())))}", *context)
        policy = False
        for action in request.actions:
            if supported.get(action.type) == trigger:
                response.admitted_action_ids.append(action.action_id)
                policy |= action.type == e2.ACTION_TYPE_POLICY
            else:
                response.not_admitted.add(action_id=action.action_id, cause=e2.CAUSE_ACTION_NOT_SUPPORTED)
        if policy and self.supervisor is not None:
            return self.error(e2.CAUSE_INVALID_FIELD, "this node already has a near-RT (POLICY) subscription",
                              *context)
        if not response.admitted_action_ids:
            return self._reply(response, tid)
        self.subscriptions[key] = function
        frames = self._reply(response, tid)
        if policy:                                    # near-RT loop: deploy the serving model
            settings = self.service.settings
            self.supervisor = ModelSupervisor(self.service.supervisor_config, self.node_id, self.metrics)
            self._controls = ModelControls(request.request_id, activate=settings.shadow_reports == 0)
            frames += self._model_controls(self.supervisor.on_model(self.service.model))
        return frames

    def _model_controls(self, commands) -> list[bytes]:
        return [frame for command, model in commands
                for frame in self._reply(self._controls.request(command, model), 0)]

    def on_subscription_delete(self, request: e2.RICSubscriptionDeleteRequest, tid: int, _: int) -> list[bytes]:
        deleted = self.subscriptions.pop(_key(request.request_id), None) is not None
        return self._reply(e2.RICSubscriptionDeleteResponse(
            request_id=request.request_id, ran_function_id=request.ran_function_id, deleted=deleted,
            cause=e2.CAUSE_UNSPECIFIED if deleted else e2.CAUSE_UNKNOWN_SUBSCRIPTION), tid)

    def on_indication(self, indication: e2.RICIndication, tid: int, received_ns: int) -> list[bytes]:
        function = self.subscriptions.get(_key(indication.request_id))
        context = dict(request_id=indication.request_id, ran_function_id=indication.ran_function_id,
                       sequence_number=indication.sequence_number)
        if function is None:
            return self.error(e2.CAUSE_UNKNOWN_SUBSCRIPTION, "indication for no active subscription",
                              tid, **context)
        if indication.ran_function_id != function:
            return self.error(e2.CAUSE_UNKNOWN_RAN_FUNCTION,
                              f"indication names RAN function {indication.ran_function_id}, "
                              f"subscription is for {function}", tid, **context)
        try:
            if function == la_codec.LA_RAN_FUNCTION.id:
                return self._decide(indication, tid, received_ns)
            return self._kpm(indication)
        except CodecError as exc:
            return self.error(exc.cause, exc.text, tid, **context)

    def _decide(self, indication: e2.RICIndication, tid: int, received_ns: int) -> list[bytes]:
        metrics = self.metrics
        metrics.la_indications.inc()
        if indication.type != e2.INDICATION_TYPE_INSERT:
            raise CodecError(e2.CAUSE_ACTION_NOT_SUPPORTED, "link adaptation takes INSERT indications")
        header = la_codec.decode_header(indication.header)
        if self._stale(header, received_ns):
            metrics.stale.inc()
            return []
        if header.slot < self._last_slot:
            raise CodecError(e2.CAUSE_INVALID_FIELD, f"slot {header.slot} is before slot {self._last_slot} "
                                                     "already decided: slots must not go backwards")
        self.service.check_mcs_table(header.mcs_table)
        header, fields = la_codec.decode_indication(header, indication.message, min(
            self.service.settings.max_indication_ues, self.limits.max_ues_per_indication))
        self._last_slot = header.slot
        metrics.stages["decode"].observe((time.perf_counter_ns() - received_ns) * 1e-9)
        if self._target_version != self.service.bler_targets.version:
            self._follow_bler_target()
        store = self._store(header)
        evicted = store.evictions
        self._indications += 1
        if self._indications % IDLE_SWEEP_EVERY == 0:
            store.evict_idle(header.slot)
        ue, mcs = self.service.decide(store, fields)
        if store.evictions > evicted:                 # idle sweep and LRU admissions alike
            metrics.ue_evictions.inc(store.evictions - evicted)
        t0 = time.perf_counter_ns()
        control_header, control_message = la_codec.encode_control(
            header.slot, indication.sequence_number, ue, mcs)
        frames = self._reply(e2.RICControlRequest(
            request_id=indication.request_id, ran_function_id=indication.ran_function_id,
            call_process_id=indication.call_process_id, header=control_header,
            message=control_message), tid)
        t1 = time.perf_counter_ns()
        metrics.stages["encode"].observe((t1 - t0) * 1e-9)
        metrics.stages["total"].observe((t1 - received_ns) * 1e-9)
        return frames

    def _stale(self, header, received_ns: int) -> bool:
        """Past its deadline now? The node's clock is mapped onto ours with the smallest
        (received - node timestamp) seen, which never overstates how late an indication is."""
        if not header.deadline_ns or not header.timestamp_ns:
            return False
        offset = received_ns - header.timestamp_ns
        if self._clock_offset is None or offset < self._clock_offset:
            self._clock_offset = offset
        return time.perf_counter_ns() - self._clock_offset > header.deadline_ns

    def _store(self, header) -> UeStateStore:
        """This node's UE store; a change of MCS/CQI table or of HARQ transmissions starts a fresh one."""
        max_tx = header.max_harq_tx or DEFAULT_MAX_TRANSMISSIONS
        store = self.store
        if store is None or store.tables != (header.mcs_table, header.cqi_table) or \
                (store.guard is not None and store.guard.max_transmissions != max_tx):
            settings = self.service.settings
            self.store = store = UeStateStore(settings.ue_capacity, header.mcs_table, header.cqi_table,
                                              settings.ue_idle_slots, self._bler_target, self.service.guard,
                                              max_tx)
        return store

    def _follow_bler_target(self) -> None:
        """Take this node's BLER target from the service (after E2 Setup or a change over REST)."""
        targets = self.service.bler_targets
        self._target_version = targets.version
        target = targets.for_node(self.node_id)
        if self.store is not None and target != self._bler_target:
            self.store.set_bler_target(target)
        self._bler_target = target
        self.metrics.bler_target.labels(self.node_label).set(1.0 if target is None else target)

    def _kpm(self, indication: e2.RICIndication) -> list[bytes]:
        """KPM REPORT -> metrics (and a fallback warning); near-RT: the supervisor's controls."""
        metrics, node = self.metrics, self.node_label
        metrics.kpm_indications.inc()
        _, cell, _ = kpm.decode_report(indication.header, indication.message)
        fallback = kpm.fallback_ratio(cell)
        for name, values in cell.items():
            if len(values) == 1:
                metrics.kpm.labels(node, name).set(values[0])
        if fallback is not None and self.supervisor is None:    # near-RT: OLLA decides until a promotion
            self._watch_fallbacks(*fallback)
        if self.supervisor is None:
            return []
        return self._model_controls(self.supervisor.on_report(cell, self.service.model, self._bler_target))

    def _watch_fallbacks(self, fallbacks: float, decisions: float) -> None:
        metrics, node = self.metrics, self.node_label
        metrics.node_fallbacks.labels(node).inc(fallbacks)
        ratio = fallbacks / decisions if decisions else 0.0
        metrics.node_fallback_ratio.labels(node).set(ratio)
        if ratio > self.limits.fallback_warn_ratio:
            metrics.high_fallback_reports.labels(node).inc()
            self.service.log_limiter.log(
                logging.WARNING, f"high fallback {node}", "E2 %s: %.1f%% of %d decisions fell back to "
                "the node's own link adaptation (warning above %.1f%%)", wire(self.node_id), 100 * ratio,
                decisions, 100 * self.limits.fallback_warn_ratio)

    def on_control_acknowledge(self, ack: e2.RICControlAcknowledge, tid: int, _: int) -> list[bytes]:
        answered = self._controls.answered(ack.call_process_id) if self._controls else None
        if answered is not None:
            try:
                status = la_codec.decode_model_status(ack.outcome)
            except CodecError as exc:
                return self.error(exc.cause, exc.text, tid, ack.request_id, ack.ran_function_id)
            self.supervisor.on_verdict(*answered, status)
        return []

    def on_control_failure(self, failure: e2.RICControlFailure, tid: int, _: int) -> list[bytes]:
        answered = self._controls.answered(failure.call_process_id) if self._controls else None
        if answered is not None:
            self.supervisor.on_verdict(*answered, None, f"{cause_name(failure.cause)}: {wire(failure.text, 300)}")
            return []
        self.metrics.fallbacks.labels(cause_name(failure.cause)).inc()
        return []

    def on_error_indication(self, error: e2.ErrorIndication, tid: int, _: int) -> list[bytes]:
        self.metrics.error("received", error.cause)
        self.service.log_limiter.log(logging.WARNING, f"received {cause_name(error.cause)}",
                                     "E2 %s reports %s: %s", wire(self.node_id), cause_name(error.cause),
                                     wire(error.text, 300))
        return []

    def on_reset(self, request: e2.ResetRequest, tid: int, _: int) -> list[bytes]:
        self.service.log_limiter.log(logging.INFO, "reset", "E2 %s reset (%s): dropping %d subscriptions "
                                     "and %d UE contexts", wire(self.node_id), cause_name(request.cause),
                                     len(self.subscriptions), len(self.store or ()))
        self._reset()
        return self._reply(e2.ResetResponse(), tid)

    def _reset(self) -> None:
        """Drop subscriptions, UE contexts and the slot and clock history (Reset, new Setup)."""
        self.subscriptions.clear()
        self.store = None
        self.supervisor = self._controls = None
        self._last_slot, self._clock_offset = -1, None
