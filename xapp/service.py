"""The xApp's core, shared by the E2 server and the REST API: model slot, metrics, decisions."""
from __future__ import annotations

import logging
import time

import numpy as np

from ranpd.proto import e2ap_pb2
from ranpd.proto.framing import CodecError
from ranpd.simulator.report import SlotReport
from ranpd.xapp.budgets import E2Limits, LabelBudget, LogLimiter
from ranpd.xapp.config import XappSettings
from ranpd.xapp.metrics import XappMetrics
from ranpd.xapp.model import (PACKAGED_MODEL, ModelError, ModelLimits, ModelSlot, OnnxPolicyModel,
                              validate_model_isolated)
from ranpd.xapp.model_card import ModelCard
from ranpd.xapp.model_store import load_persisted_model
from ranpd.xapp.state import UeStateStore

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
        self.metrics.ue_contexts.set_function(
            lambda: sum(len(s.store) for s in list(self.sessions) if s.store))
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

    def decide(self, store: UeStateStore, fields: dict) -> tuple[np.ndarray, np.ndarray]:
        """Apply one decoded LA indication to `store` and pick the MCS of each deciding UE.

        Returns (ue, mcs); records the observation and inference stage latencies. Raises
        CodecError with the cause to answer (no model, too many UEs, inference failure).
        """
        model = self.models.current
        if model is None:
            raise CodecError(e2ap_pb2.CAUSE_NO_MODEL, "no policy model loaded; upload one with PUT /ric/v1/model")
        t0 = time.perf_counter_ns()
        report = SlotReport(**fields)
        try:
            obs = store.observe(report)
        except OverflowError as exc:
            raise CodecError(e2ap_pb2.CAUSE_OVERLOAD, str(exc)) from exc
        t1 = time.perf_counter_ns()
        try:
            mcs = model.decide_mcs(obs, report.mcs_table)
        except Exception as exc:  # onnxruntime errors have no common base class
            raise CodecError(e2ap_pb2.CAUSE_INFERENCE_FAILED, f"inference failed: {exc}") from exc
        t2 = time.perf_counter_ns()
        self.metrics.stages["observation"].observe((t1 - t0) * 1e-9)
        self.metrics.stages["inference"].observe((t2 - t1) * 1e-9)
        self.metrics.decisions.inc(mcs.size)
        return report.ue, mcs
