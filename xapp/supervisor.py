"""Near-RT supervision of the model an E2 node runs as inference host (`ranpd.simulator.nearrt`).

One `ModelSupervisor` per node in the near-RT loop, driven only by what the node sends (its KPM
reports and its verdicts on the model controls), so it needs no timer:

1. **Deploy** when the node subscribes, and whenever the xApp's serving model changes (a REST
   upload flows through here): the node validates the model; a refusal (RIC Control Failure) is
   counted and logged, and that version is not offered to that node again.
2. **Shadow** for `shadow_reports` KPM periods: the node runs the candidate beside the applied
   policy and reports disagreements and the expected delivered bits of both. It passes when the
   candidate's expected bits are at least (1 + `min_expected_gain`) times the applied choices';
   then PROMOTE, else DISCARD. The applied policy's KPIs in those periods (OLLA, or the model in
   use) are the baseline. A shadow period of 0 deploys with `activate` (no shadow, no baseline).
3. **Watch** after promotion, window by window (`window_reports` periods, judged once it holds
   `min_window_tbs` first transmissions): ROLLBACK (to the previous model, or OLLA) when
   - first-tx BLER > target + `bler_margin` (a node with a BLER target), or
   - residual loss per first transmission > baseline + `residual_margin`, or
   - mean UE throughput < (1 − `throughput_drop`) × baseline.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import e2sm_la_pb2, kpm, la_codec
from ranpd.xapp.budgets import wire

log = logging.getLogger(__name__)

COMMAND_NAMES = {e2sm_la_pb2.MODEL_COMMAND_DEPLOY: "deploy", e2sm_la_pb2.MODEL_COMMAND_PROMOTE: "promote",
                 e2sm_la_pb2.MODEL_COMMAND_DISCARD: "discard", e2sm_la_pb2.MODEL_COMMAND_ROLLBACK: "rollback"}


@dataclass(frozen=True)
class SupervisorConfig:
    shadow_reports: int = 10            # KPM periods a candidate runs in shadow (0: activate at once)
    min_expected_gain: float = -0.02    # candidate's expected bits vs the applied choices', to promote
    window_reports: int = 5             # KPM periods per watch window after promotion
    min_window_tbs: int = 200           # first transmissions a window needs before it is judged
    bler_margin: float = 0.10           # first-tx BLER above target + this rolls back
    residual_margin: float = 0.005      # residual loss above baseline + this rolls back
    throughput_drop: float = 0.20       # mean UE throughput below (1 - this) x baseline rolls back


@dataclass
class Window:
    """KPM counts summed over periods: first transmissions, their NACKs, residual losses, and
    the mean UE throughput per period (kbit/s)."""

    reports: int = 0
    first_tx: float = 0.0
    first_nacks: float = 0.0
    residual: float = 0.0
    throughput_kbps: list[float] = field(default_factory=list)

    def add(self, cell: kpm.Records) -> None:
        def scalar(name: str) -> float:
            return (cell.get(name) or [0.0])[0]
        self.reports += 1
        self.first_tx += scalar("TB.TotNbrDlInitial")
        self.first_nacks += scalar("TB.IntialErrNbrDl")
        self.residual += scalar("TB.ResidualErrNbrDl")
        self.throughput_kbps.append(scalar("DRB.UEThpDl"))

    @property
    def bler(self) -> float:
        return self.first_nacks / self.first_tx if self.first_tx else 0.0

    @property
    def residual_rate(self) -> float:
        return self.residual / self.first_tx if self.first_tx else 0.0

    @property
    def throughput(self) -> float:
        return sum(self.throughput_kbps) / len(self.throughput_kbps) if self.throughput_kbps else 0.0


@dataclass
class ModelSupervisor:
    """The deploy → shadow → promote → watch → rollback cycle of one node (module docstring).
    `on_*` return the model controls to send, as (command, model) pairs for the session to frame."""

    config: SupervisorConfig
    node: str                                       # node id, for log lines
    metrics: object                                 # XappMetrics
    active: str | None = None                       # versions as the node last reported them
    candidate: str | None = None
    phase: str = "idle"                             # idle, deploying, shadow, watch
    refused: set[str] = field(default_factory=set)  # versions this node refused or rolled back
    baseline: Window | None = None
    window: Window = field(default_factory=Window)
    shadow_reports: int = 0
    shadow_bits: list[float] = field(default_factory=lambda: [0.0, 0.0])    # candidate, applied
    events: list[tuple[str, str]] = field(default_factory=list)

    def on_model(self, model) -> list[tuple[int, object]]:
        """The xApp serves `model` (an OnnxPolicyModel, or None): deploy it unless the node runs it,
        has it in shadow, or refused it."""
        if model is None or model.version in (self.active, self.candidate) or model.version in self.refused \
                or self.phase == "deploying":
            return []
        self.phase = "deploying"
        return [(e2sm_la_pb2.MODEL_COMMAND_DEPLOY, model)]

    def on_report(self, cell: kpm.Records, model, bler_target: float | None) -> list[tuple[int, object]]:
        """One KPM report of the node: shadow bookkeeping, watch verdicts, and a new model to deploy."""
        if self.phase == "shadow":
            return self._shadow(cell, model)
        if self.phase == "watch":
            self.window.add(cell)
            if self.window.reports >= self.config.window_reports and self.window.first_tx >= self.config.min_window_tbs:
                reason = self._regression(self.window, bler_target)
                self.window = Window()
                if reason:
                    self._event("rolled_back", self.active, reason)
                    self.refused.add(self.active)
                    self.phase = "rolling_back"
                    return [(e2sm_la_pb2.MODEL_COMMAND_ROLLBACK, self.active)]
        return self.on_model(model) if self.phase in ("idle", "watch") else []

    def _shadow(self, cell: kpm.Records, model) -> list[tuple[int, object]]:
        self.baseline.add(cell)
        if cell.get("RANPD.ShadowDecisionNbr"):
            self.shadow_bits[0] += cell["RANPD.ShadowExpBitsCandidate"][0]
            self.shadow_bits[1] += cell["RANPD.ShadowExpBitsApplied"][0]
        self.shadow_reports += 1
        if self.shadow_reports < self.config.shadow_reports:
            return []
        candidate, applied = self.shadow_bits
        gain = candidate / applied - 1.0 if applied > 0 else 0.0
        if gain >= self.config.min_expected_gain:
            self._event("promoting", self.candidate, f"expected gain {gain:+.1%}")
            self.phase = "promoting"
            return [(e2sm_la_pb2.MODEL_COMMAND_PROMOTE, self.candidate)]
        self._event("discarded", self.candidate, f"expected gain {gain:+.1%} below "
                                                 f"{self.config.min_expected_gain:+.1%}")
        self.refused.add(self.candidate)
        self.phase = "discarding"
        return [(e2sm_la_pb2.MODEL_COMMAND_DISCARD, self.candidate)]

    def _regression(self, window: Window, bler_target: float | None) -> str | None:
        """Why the window regresses (None: it does not)."""
        cfg, base = self.config, self.baseline
        if bler_target is not None and window.bler > bler_target + cfg.bler_margin:
            return f"first-tx BLER {window.bler:.3f} > target {bler_target:g} + {cfg.bler_margin:g}"
        if base is None or base.first_tx < cfg.min_window_tbs:
            return None
        if window.residual_rate > base.residual_rate + cfg.residual_margin:
            return f"residual loss {window.residual_rate:.4f} > baseline {base.residual_rate:.4f} + {cfg.residual_margin:g}"
        if window.throughput < (1 - cfg.throughput_drop) * base.throughput:
            return (f"throughput {window.throughput:.0f} kbit/s < {1 - cfg.throughput_drop:.0%} of baseline "
                    f"{base.throughput:.0f}")
        return None

    def on_verdict(self, command: int, version: str, status: e2sm_la_pb2.LaModelStatus | None,
                   failure: str | None = None) -> None:
        """The node's Acknowledge (its models after `command`) or Failure (why it refused)."""
        if failure is not None:
            self._event("refused", version, f"{COMMAND_NAMES.get(command, command)}: {failure}")
            self.refused.add(version)
            self.phase = "watch" if self.active else "idle"
            return
        self.active, self.candidate = status.active or None, status.candidate or None
        if command == e2sm_la_pb2.MODEL_COMMAND_DEPLOY and self.candidate == version:
            self.phase, self.shadow_reports, self.shadow_bits = "shadow", 0, [0.0, 0.0]
            self.baseline = Window()
            self._event("shadow", version)
        elif self.active == version and command in (e2sm_la_pb2.MODEL_COMMAND_DEPLOY, e2sm_la_pb2.MODEL_COMMAND_PROMOTE):
            self.phase, self.window = "watch", Window()
            self._event("promoted", version)
        else:                                        # discarded, rolled back, or a deploy of what runs
            self.phase = "watch" if self.active else "idle"

    def _event(self, event: str, version: str | None, detail: str = "") -> None:
        self.events.append((event, version or ""))
        self.metrics.model_events.labels(event).inc()
        log.info("near-RT %s: %s %s %s", wire(self.node), event, wire(version or "OLLA"), wire(detail, 300))


class ModelControls:
    """Frames the supervisor's commands as RIC Control Requests on the node's POLICY subscription
    and matches the node's verdicts to them (by call process id)."""

    def __init__(self, request_id: e2.RicRequestId, activate: bool):
        self.request_id, self.activate = request_id, activate
        self._ids = itertools.count(1)
        self.pending: dict[bytes, tuple[int, str]] = {}

    def request(self, command: int, model) -> e2.RICControlRequest:
        version = model if isinstance(model, str) else model.version
        onnx, card = (model.onnx_bytes, model.card.model_dump_json()) if command == e2sm_la_pb2.MODEL_COMMAND_DEPLOY \
            else (b"", "")
        header, message = la_codec.encode_model_control(command, version, onnx, card, activate=self.activate)
        call = next(self._ids).to_bytes(8, "big")
        self.pending[call] = (command, version)
        if len(self.pending) > 64:                   # a node that never answers
            del self.pending[next(iter(self.pending))]
        return e2.RICControlRequest(request_id=self.request_id, ran_function_id=la_codec.LA_RAN_FUNCTION.id,
                                    call_process_id=call, header=header, message=message,
                                    ack_request=e2.CONTROL_ACK_REQUEST_ACK)

    def answered(self, call_process_id: bytes) -> tuple[int, str] | None:
        return self.pending.pop(call_process_id, None)

