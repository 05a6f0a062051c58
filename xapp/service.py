"""The xApp's core, shared by the E2 server and the REST API: model slot, metrics, decisions, and
the serving guards: the MCS-table check against the model card, inputs clipped into the model's
training range (counted), the per-UE guard's hand-backs to the node's OLLA, and the operator's
BLER target per E2 node."""
from __future__ import annotations

import logging
import time

import numpy as np

from ranpd.proto import e2ap_pb2, la_codec
from ranpd.proto.framing import CodecError
from ranpd.simulator.guard import GuardConfig
from ranpd.simulator.observation import FEATURES
from ranpd.simulator.policies import scores_to_mcs
from ranpd.simulator.report import SlotReport
from ranpd.xapp.budgets import E2Limits, LabelBudget, LogLimiter
from ranpd.xapp.config import XappSettings
from ranpd.xapp.metrics import XappMetrics
from ranpd.xapp.model import (PACKAGED_MODEL, ModelError, ModelLimits, ModelSlot, OnnxPolicyModel,
                              validate_model_isolated)
from ranpd.xapp.model_card import ModelCard
from ranpd.xapp.model_store import load_persisted_model
from ranpd.xapp.state import UeStateStore
from ranpd.xapp.supervisor import SupervisorConfig

log = logging.getLogger(__name__)


def load_configured_model(settings: XappSettings) -> OnnxPolicyModel | None:
    """The model named by the settings (ModelError if it is bad), else the shipped student if
    the package holds one, else None (the xApp serves, not ready, until a model is uploaded).
    A model uploaded and persisted in `settings.model_dir` comes first."""
    limits = ModelLimits.from_settings(settings)
    persisted = load_persisted_model(settings)
    if persisted is not None:
        return persisted
    if settings.model_path is not None:
        return OnnxPolicyModel.load(settings.model_path, limits=limits)
    if PACKAGED_MODEL.is_file():
        return OnnxPolicyModel.load(PACKAGED_MODEL, limits=limits)
    log.warning("no model: %s is not shipped in this build and no --model / RANPD_XAPP_MODEL_PATH "
                "was given. Serving without a model: every indication gets ErrorIndication(NO_MODEL) "
                "(nodes fall back to OLLA) until one is uploaded with PUT /ric/v1/model.",
                PACKAGED_MODEL)
    return None


MAX_TARGET_NODES = 1024        # E2 nodes that may have a BLER target of their own


class BlerTargets:
    """The operator's first-tx BLER target per E2 node (None: throughput mode, 'max'): a default
    and per-node targets (bounded: `MAX_TARGET_NODES`). LA indications carry no cell id, so an E2
    node is the unit. `version` grows on every change: a session compares it at each indication
    and applies a change on its own thread."""

    def __init__(self, default: float | None):
        self.default, self.nodes, self.version = default, {}, 0

    def for_node(self, node_id: str | None) -> float | None:
        return self.nodes.get(node_id, self.default)

    def set(self, target: float | None, node_id: str | None = None) -> None:
        """Set the default (`node_id` None) or one node's target; OverflowError when too many nodes."""
        if node_id is None:
            self.default = target
        else:
            if node_id not in self.nodes and len(self.nodes) >= MAX_TARGET_NODES:
                raise OverflowError(f"{MAX_TARGET_NODES} nodes have a BLER target of their own already")
            self.nodes[node_id] = target
        self.version += 1


class XappService:
    """The model slot, metrics and E2 sessions of one xApp. The E2 loop and the REST loop run in
    different threads; what they share is read-mostly (the model is swapped by one reference
    assignment, sessions are copied before the REST side iterates them)."""

    def __init__(self, settings: XappSettings, model: OnnxPolicyModel | None = None,
                 limits: E2Limits | None = None):
        self.settings = settings
        self.limits = limits or E2Limits()
        self.metrics = XappMetrics()
        self.models = ModelSlot()
        self.sessions: set = set()            # open E2 sessions (handlers.E2Session)
        self.replicas: list = []              # E2 worker processes: `.install(model)` reaches each
        self.e2_listening = False
        self.node_labels = LabelBudget(self.limits.max_label_nodes)
        self.log_limiter = LogLimiter(logging.getLogger("ranpd.xapp.e2"), self.limits.log_lines_per_window,
                                      self.limits.log_window_s)
        self.bler_targets = BlerTargets(settings.bler_target_value)
        self.guard = GuardConfig() if settings.guard else None
        self.supervisor_config = SupervisorConfig(shadow_reports=settings.shadow_reports,
                                                  min_expected_gain=settings.shadow_min_gain)
        self.metrics.ue_contexts.set_function(
            lambda: sum(len(s.store) for s in list(self.sessions) if s.store))
        self.metrics.guard_handed_back.set_function(
            lambda: sum(s.store.guard.n_handed_back for s in list(self.sessions) if s.store and s.store.guard))
        if model is not None:
            self.install(model)

    @property
    def model(self) -> OnnxPolicyModel | None:
        return self.models.current

    def install(self, model: OnnxPolicyModel) -> None:
        """Serve `model` (already validated) here and in every E2 worker process."""
        self.models.swap(model)
        for replica in self.replicas:
            replica.install(model)
        card = model.card
        self.metrics.model_info.info({"name": card.name, "kind": card.kind, "sha256": model.sha256,
                                      "obs_spec_version": card.obs_spec_version,
                                      "architecture": card.architecture, "precision": card.precision})

    async def hot_swap(self, onnx_bytes: bytes, card: ModelCard) -> OnnxPolicyModel:
        """Validate in a child process (timeout, memory cap, latency budget; the event loops keep
        running), then swap; on failure the serving model stays and ModelError says why."""
        try:
            model = await validate_model_isolated(onnx_bytes, card, ModelLimits.from_settings(self.settings))
        except ModelError:
            self.metrics.model_swaps.labels("rejected").inc()
            raise
        self.install(model)
        self.metrics.model_swaps.labels("installed").inc()
        return model

    def set_bler_target(self, target: float | None, node_id: str | None = None) -> None:
        """The operator's BLER target (None: throughput mode) for one E2 node, or the default of
        every node without its own; here and in every E2 worker process."""
        self.bler_targets.set(target, node_id)
        for replica in self.replicas:
            replica.set_bler_target(target, node_id)

    def check_mcs_table(self, mcs_table: int) -> None:
        """Refuse (CodecError MCS_TABLE_NOT_SUPPORTED, counted) an indication in an MCS table the
        serving model's card does not declare: its indices would mean another table's entries."""
        model = self.models.current
        if model is not None and mcs_table not in model.card.mcs_tables:
            self.metrics.mcs_table_refusals.labels(str(mcs_table)).inc()
            raise CodecError(e2ap_pb2.CAUSE_MCS_TABLE_NOT_SUPPORTED,
                             f"indication uses MCS table {mcs_table} (TS 38.214 Table 5.1.3.1-{mcs_table}); "
                             f"model {model.version} was trained for MCS table(s) {model.card.mcs_tables}: "
                             "use the node's own link adaptation")

    def decide(self, store: UeStateStore, fields: dict) -> tuple[np.ndarray, np.ndarray]:
        """Apply one decoded LA indication to `store` and pick the MCS of each deciding UE.

        Returns (ue, mcs) without the UEs the store's guard hands back (the node's OLLA decides
        them); records the observation and inference stage latencies and the guard and clipping
        counters. Raises CodecError with the cause to answer (no model, too many UEs, inference
        failure).
        """
        model = self.models.current
        if model is None:
            raise CodecError(e2ap_pb2.CAUSE_NO_MODEL, "no policy model loaded; upload one with PUT /ric/v1/model")
        t0 = time.perf_counter_ns()
        report = SlotReport(**fields)
        guard, metrics = store.guard, self.metrics
        hand_backs = guard.hand_backs if guard is not None else 0
        try:
            rows, obs = store.observe_rows(report)
        except OverflowError as exc:
            raise CodecError(e2ap_pb2.CAUSE_OVERLOAD, str(exc)) from exc
        if guard is not None:
            metrics.guard_hand_backs.inc(guard.hand_backs - hand_backs)
        t1 = time.perf_counter_ns()
        try:
            mcs = model.decide_mcs(obs, report.mcs_table, store.builder.cqi[rows])
        except Exception as exc:  # onnxruntime errors have no common base class
            raise CodecError(e2ap_pb2.CAUSE_INFERENCE_FAILED, f"inference failed: {exc}") from exc
        t2 = time.perf_counter_ns()
        metrics.stages["observation"].observe((t1 - t0) * 1e-9)
        metrics.stages["inference"].observe((t2 - t1) * 1e-9)
        self._count_clipped(model)
        ue = report.ue
        if guard is not None:
            ue, mcs = self._leave_out_handed_back(store, rows, report.slot, ue, mcs)
        metrics.decisions.inc(mcs.size)
        return ue, mcs

    def _leave_out_handed_back(self, store: UeStateStore, rows, slot: int, ue, mcs):
        """(ue, mcs) without the UEs the guard has handed back (returning those recovered)."""
        guard, metrics = store.guard, self.metrics
        returns = guard.returns
        kept = ~guard.select(rows, slot, store.builder.bler_target[rows])
        metrics.guard_returns.inc(guard.returns - returns)
        if kept.all():
            return ue, mcs
        metrics.guard_left_to_node.inc(int(kept.size - kept.sum()))
        return ue[kept], mcs[kept]

    def _count_clipped(self, model: OnnxPolicyModel) -> None:
        clipped = model.take_clipped()
        if clipped is not None:
            for i in np.flatnonzero(clipped):
                self.metrics.clipped_inputs.labels(FEATURES[i]).inc(int(clipped[i]))


def warm_up() -> None:
    """Compile the numba kernels one indication runs (codec checks, per-UE state and guard, scores
    -> MCS), or load them from numba's cache, so that the first indication after start does not
    pay for it (~0.5 s from the cache, a few seconds without)."""
    one = np.ones(1, np.int64)
    report = SlotReport(slot=2, cqi_ue=one, cqi_value=one, cqi_slot=one, harq_ue=one, harq_ack=np.ones(1, bool),
                        harq_mcs=one, harq_tbs=one, harq_tx=one, harq_process=one, ue=one, prbs=one, layers=one,
                        buffer_bytes=one)
    _, fields = la_codec.decode_indication(*la_codec.encode_indication(report, deadline_ns=0))
    store = UeStateStore(2, guard=GuardConfig())
    rows, _ = store.observe_rows(SlotReport(**fields))
    scores_to_mcs(np.zeros((1, 2), np.float32), np.arange(2), 28, store.builder.cqi[rows])
