"""Prometheus metrics of one xApp instance (own registry, served at /ric/v1/metrics).

When E2 runs in a child process, the child keeps its own `XappMetrics`; the parent's `registry`
merges the child's exposition (fetched on each scrape) into its own: counters, histograms and
gauges of the same series add up, info series appear once.
"""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ranpd.proto import e2ap_pb2
from ranpd.simulator.observation import FEATURES

# 5 us .. 20 ms: decisions live in the tens to hundreds of microseconds.
LATENCY_BUCKETS = (5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 2e-2)
STAGES = ("decode", "observation", "inference", "encode", "total")


_CAUSE_NAMES = {value: name.removeprefix("CAUSE_").lower() for name, value in e2ap_pb2.Cause.items()}


def cause_name(cause: int) -> str:
    """Metric label of a cause; values outside the enum (open in proto3) are all "unknown"."""
    return _CAUSE_NAMES.get(cause, "unknown")


class _Merged:
    """Collector: this process's metrics plus those of each `remote()` (exposition text), series summed."""

    def __init__(self, own: CollectorRegistry, metrics: "XappMetrics"):
        self.own, self.metrics = own, metrics

    def collect(self):
        own = list(self.own.collect())
        if not self.metrics.remote:
            yield from own
            return
        owner: dict[str, Metric] = {}                      # sample name -> family it goes to
        values: dict[tuple, float] = {}
        families: list[Metric] = []
        batches = [(False, own)] + [(True, text_string_to_metric_families(remote().decode()))
                                    for remote in list(self.metrics.remote)]
        for remote, batch in batches:
            for family in batch:
                for sample in family.samples:
                    if remote and sample.name.endswith("_created"):
                        continue
                    target = owner.get(sample.name)
                    if target is None:
                        target = owner[sample.name] = family
                        if not any(f is family for f in families):
                            families.append(family)
                    key = (id(target), sample.name, tuple(sorted(sample.labels.items())))
                    previous = values.get(key)
                    values[key] = sample.value if previous is None or target.type == "info" \
                        else previous + sample.value
        for family in families:
            out = Metric(family.name, family.documentation, family.type)
            for (target, name, labels), value in values.items():
                if target == id(family):
                    out.add_sample(name, dict(labels), value)
            yield out


class XappMetrics:
    def __init__(self) -> None:
        self.remote: list[Callable[[], bytes]] = []       # child processes' expositions, if any
        self.registry = CollectorRegistry(auto_describe=False)
        self.own = r = CollectorRegistry()
        self.registry.register(_Merged(r, self))
        self.stage_latency = Histogram(
            "ranpd_xapp_decision_stage_seconds", "Time per stage of one LA indication -> control",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.stages = {stage: self.stage_latency.labels(stage) for stage in STAGES}
        self.indications = Counter("ranpd_xapp_indications", "RIC indications received",
                                   ["service_model"], registry=r)
        self.la_indications, self.kpm_indications = (self.indications.labels(m) for m in ("la", "kpm"))
        self.decisions = Counter("ranpd_xapp_decisions", "MCS decisions sent (one per UE)", registry=r)
        self.fallbacks = Counter("ranpd_xapp_fallbacks",
                                 "Controls the node reported as not applied (RICControlFailure)",
                                 ["cause"], registry=r)
        self.errors = Counter("ranpd_xapp_errors", "Errors answered or received, by cause",
                              ["direction", "cause"], registry=r)
        self.connections = Gauge("ranpd_xapp_e2_connections", "Open E2 connections", registry=r)
        self.ue_contexts = Gauge("ranpd_xapp_ue_contexts", "UE contexts held, all nodes", registry=r)
        self.ue_evictions = Counter("ranpd_xapp_ue_evictions", "UE contexts evicted (idle or LRU)",
                                    registry=r)
        self.model_info = Info("ranpd_xapp_model", "The serving model", registry=r)
        self.model_events = Counter("ranpd_xapp_nearrt_model_events", "Near-RT loop: models deployed to nodes "
                                    "in shadow, promoted, discarded after shadow, refused by a node, rolled back",
                                    ["event"], registry=r)
        self.model_swaps = Counter("ranpd_xapp_model_swaps", "Model hot-swap attempts", ["result"],
                                   registry=r)
        self.kpm = Gauge("ranpd_xapp_kpm_cell", "Last KPM cell measurement (scalars; first bin of "
                         "distributions is not exported); node ids beyond the label budget are 'other'",
                         ["node", "measurement"], registry=r)
        self.node_fallbacks = Counter("ranpd_xapp_node_fallbacks", "Decisions nodes report (KPM) as "
                                      "taken by their own fallback", ["node"], registry=r)
        self.node_fallback_ratio = Gauge("ranpd_xapp_node_fallback_ratio", "Fallback share of the "
                                         "node's last KPM period", ["node"], registry=r)
        self.high_fallback_reports = Counter("ranpd_xapp_node_high_fallback_reports", "KPM periods whose "
                                             "fallback share exceeded the warning ratio", ["node"], registry=r)
        self.stale = Counter("ranpd_xapp_stale_indications", "Indications dropped unanswered because "
                             "their deadline had passed", registry=r)
        self.throttled = Counter("ranpd_xapp_throttled", "Times a connection was paused for using more "
                                 "than its share of the E2 loop", registry=r)
        self.handed_off = Counter("ranpd_xapp_connections_handed_off", "Connections the main E2 worker took "
                                  "over from the front at their E2 Setup", registry=r)
        self.dropped = Counter("ranpd_xapp_connections_dropped", "E2 connections closed by the xApp",
                               ["reason"], registry=r)
        self.mcs_table_refusals = Counter("ranpd_xapp_mcs_table_refusals", "LA indications refused "
                                          "because the model card does not declare their MCS table",
                                          ["mcs_table"], registry=r)
        self.clipped_inputs = Counter("ranpd_xapp_clipped_inputs", "Observation rows whose feature was "
                                      "clipped into the model's training range (card obs_range)",
                                      ["feature"], registry=r)
        for feature in FEATURES:
            self.clipped_inputs.labels(feature)
        self.guard_handed_back = Gauge("ranpd_xapp_guard_handed_back_ues", "UEs the per-UE guard has "
                                       "handed back to their node's OLLA, all nodes", registry=r)
        self.guard_hand_backs = Counter("ranpd_xapp_guard_hand_backs", "UEs handed back to the node's "
                                        "OLLA (NACK or residual-loss rate over its limit)", registry=r)
        self.guard_returns = Counter("ranpd_xapp_guard_returns", "Handed-back UEs returned to the "
                                     "model after recovering", registry=r)
        self.guard_left_to_node = Counter("ranpd_xapp_guard_left_to_node", "UE decisions left out of "
                                          "the RIC Control because the UE is handed back", registry=r)
        self.bler_target = Gauge("ranpd_xapp_bler_target", "Operator first-tx BLER target of the node's "
                                 "UEs (1 = throughput mode, 'max'); node ids beyond the label budget "
                                 "are 'other'", ["node"], registry=r)
        self.internal_errors = Counter("ranpd_xapp_internal_errors", "Frames that raised an unexpected "
                                       "exception (a bug; answered CAUSE_UNSPECIFIED)", registry=r)

    def error(self, direction: str, cause: int) -> None:
        self.errors.labels(direction, cause_name(cause)).inc()
