"""Link-adaptation policies behind one small interface.

A policy is reset for a population of UEs, then asked once per slot for the MCS of every UE the
report schedules for a new transmission. It learns about the link only through the report's
events (CQI, HARQ-ACK), like a real gNB.

- ILLA (inner-loop link adaptation): CQI -> MCS by spectral efficiency.
- OLLA (outer-loop link adaptation): the CQI's SINR minus an offset that rises by Δup on a NACK
  and falls by Δdown = Δup·t/(1-t) on an ACK, so that in steady state P(NACK) = t on first
  transmissions; the offset is clipped to ±limit (defaults as NVIDIA Sionna SYS: t = 0.1,
  Δup = 1 dB).
- `ObservationPolicy`: any callable scoring observations (an ONNX student, a torch teacher);
  the MCS is the action-table entry of the argmax, clipped to the MCS table, and ILLA/OLLA's
  MCS 0 where the CQI is 0 (`scores_to_mcs`), made non-decreasing in the CQI by construction
  (`decide_mcs`; the xApp and the baseband C kernel decide the same way); optionally behind the
  per-UE guard (`ranpd.simulator.guard`) with an OLLA for the UEs it hands back.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np
from numba import njit

from ranpd.simulator import phy
from ranpd.simulator.guard import DEFAULT_MAX_TRANSMISSIONS, GuardConfig, UeGuard
from ranpd.simulator.observation import DEFAULT_BLER_TARGET, FEATURES, ObservationBuilder
from ranpd.simulator.report import SlotReport, occurrence_rounds
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS, MCS_TABLES, cqi_to_mcs_map


class LinkAdaptationPolicy(Protocol):
    name: str

    def reset(self, n_ues: int, mcs_table: int, cqi_table: int) -> None: ...

    def decide(self, report: SlotReport) -> np.ndarray:
        """Apply the report's events and return one MCS index per `report.ue`."""


class _CqiTracker:
    """Latest wideband CQI per UE (shared by ILLA and OLLA)."""

    def reset(self, n_ues: int, mcs_table: int, cqi_table: int) -> None:
        self.cqi = np.zeros(n_ues, np.int64)
        self.mcs_table, self.cqi_table = mcs_table, cqi_table

    def _apply_cqi(self, report: SlotReport) -> None:
        self.cqi[report.cqi_ue] = report.cqi_value


class Illa(_CqiTracker):
    """Inner loop only: the highest MCS whose efficiency does not exceed the reported CQI's."""

    name = "illa"

    def reset(self, n_ues: int, mcs_table: int, cqi_table: int) -> None:
        super().reset(n_ues, mcs_table, cqi_table)
        self._map = cqi_to_mcs_map(mcs_table, cqi_table)

    def decide(self, report: SlotReport) -> np.ndarray:
        self._apply_cqi(report)
        return self._map[self.cqi[report.ue]]


class Olla(_CqiTracker):
    """Outer-loop link adaptation on an SINR offset in dB (see module docstring)."""

    name = "olla"

    def __init__(self, target_bler: float = 0.1, step_up_db: float = 1.0, limit_db: float = 20.0):
        if not 0.0 < target_bler < 1.0:
            raise ValueError(f"OLLA target BLER must be in (0, 1), got {target_bler}")
        if step_up_db <= 0.0:
            raise ValueError(f"OLLA step must be positive, got {step_up_db}")
        self.target_bler, self.step_up_db, self.limit_db = target_bler, step_up_db, limit_db
        self.step_down_db = step_up_db * target_bler / (1.0 - target_bler)

    def reset(self, n_ues: int, mcs_table: int, cqi_table: int) -> None:
        super().reset(n_ues, mcs_table, cqi_table)
        self.offset_db = np.zeros(n_ues)
        self._cqi_sinr = phy.cqi_bler10_sinr_db(cqi_table)
        self._mcs_threshold = phy.mcs_bler10_sinr_db(mcs_table)

    def update(self, report: SlotReport) -> None:
        """Step the offset on first-transmission HARQ feedback."""
        first = report.harq_tx == 1
        ue, ack = report.harq_ue[first], report.harq_ack[first]
        step = np.where(ack, -self.step_down_db, self.step_up_db)
        for sel in occurrence_rounds(ue):
            u = ue[sel]
            self.offset_db[u] = np.clip(self.offset_db[u] + step[sel], -self.limit_db, self.limit_db)

    def decide(self, report: SlotReport) -> np.ndarray:
        self._apply_cqi(report)
        self.update(report)
        sinr = self._cqi_sinr[self.cqi[report.ue]] - self.offset_db[report.ue]
        mcs = np.searchsorted(self._mcs_threshold, sinr, side="right") - 1
        return np.clip(mcs, 0, None)


OUT_OF_RANGE_MCS = 0   # CQI 0 (no report yet, or "out of range", TS 38.214 Table 5.2.2.1-2/-3)
MAX_CQI = 15           # the top of the 4-bit CQI tables (TS 38.214 Table 5.2.2.1-2/-3/-4)
CQI_FEATURE = FEATURES.index("cqi")   # the observation holds cqi / MAX_CQI there


def scores_to_mcs(scores: np.ndarray, action_mcs: np.ndarray, max_mcs: int, cqi: np.ndarray) -> np.ndarray:
    """MCS index per row of `scores` [n, n_actions]: `action_mcs[argmax]`, clipped to `max_mcs`
    (the last index of the TS 38.214 Table 5.1.3.1-1/-2 in use); rows whose latest CQI is 0 (cold
    start, or out of range) get `OUT_OF_RANGE_MCS`, what ILLA and a fresh OLLA give there, not the
    network's choice. The one scores -> MCS mapping, offline (`ObservationPolicy`) and online (the
    xApp's `OnnxPolicyModel.decide_mcs`)."""
    return _scores_to_mcs(scores, np.asarray(action_mcs, np.int64), max_mcs, np.asarray(cqi, np.int64).reshape(-1))


@njit(cache=True, nogil=True)
def _scores_to_mcs(scores, action_mcs, max_mcs, cqi):
    """Row-wise argmax as np.argmax takes it (the first maximum; the first NaN if any)."""
    mcs = np.empty(scores.shape[0], np.int64)
    for i in range(scores.shape[0]):
        if cqi[i] == 0:
            mcs[i] = OUT_OF_RANGE_MCS
            continue
        best = 0
        for a in range(scores.shape[1]):
            if np.isnan(scores[i, a]):
                best = a
                break
            if scores[i, a] > scores[i, best]:
                best = a
        mcs[i] = min(action_mcs[best], max_mcs)
    return mcs


def decide_mcs(score: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, action_mcs: np.ndarray, max_mcs: int,
               cqi: np.ndarray, probe: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The MCS of each row of `obs` for a learned policy, non-decreasing in the CQI by construction.

    m(c) is `scores_to_mcs` of the network's scores with the row's CQI feature set to c, the rest of
    the state fixed. A row with CQI c > 0 gets MCS(c) = min(m(c), m(c+1), ..., m(15)), so
    MCS(c) = min(m(c), MCS(c+1)) <= MCS(c+1) whatever the network learned: a better CQI never gets
    a lower MCS. The minimum over better CQIs (not the maximum over worse ones) makes a network that
    is backwards at low CQI conservative where it errs instead of aggressive at every CQI above.
    The row itself is scored by `score`; its (15 - c) copies at better CQIs by `probe` (default
    `score`; the xApp's model passes one that does not count them as clipped inputs again). The one
    observation -> MCS decision: offline (`ObservationPolicy`), the xApp (`OnnxPolicyModel.decide_mcs`)
    and the baseband C kernel (`ranpd.xapp.baseband`)."""
    cqi = np.asarray(cqi, np.int64).reshape(-1)
    mcs = scores_to_mcs(score(obs), action_mcs, max_mcs, cqi)
    better = np.where(cqi > 0, MAX_CQI - np.clip(cqi, 0, MAX_CQI), 0)   # how many better CQIs each row has
    owner = np.repeat(np.arange(cqi.size), better)
    if owner.size == 0:
        return mcs
    first = np.cumsum(better) - better
    probe_cqi = cqi[owner] + 1 + np.arange(owner.size) - first[owner]
    probes = obs[owner]
    probes[:, CQI_FEATURE] = probe_cqi / MAX_CQI
    np.minimum.at(mcs, owner, scores_to_mcs((probe or score)(probes), action_mcs, max_mcs, probe_cqi))
    return mcs


def parse_bler_target(value: str | float) -> float | None:
    """An operator's first-tx BLER target as written in a setting or on a command line: a number
    in (0, 1), or `max` for throughput mode (None). Raises ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() == "max":
        return None
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"BLER target must be a number in (0, 1) or 'max', got {value!r}") from None
    if not 0.0 < target < 1.0:
        raise ValueError(f"BLER target must be in (0, 1) or 'max', got {value!r}")
    return target


class ObservationPolicy:
    """A learned policy: observation builder -> scores per action -> MCS (`decide_mcs`).

    `score` maps float32 observations [n, OBS_DIM] to scores [n, n_actions]; output i means MCS
    `action_mcs[i]` (a model card's action table; default the identity, as for the teachers).
    `probe` scores `decide_mcs`'s copies of a state at better CQIs (default `score`).
    `bler_target` is the operator's first-tx BLER target the observation's price holds (None:
    throughput mode). `mcs_tables`: the MCS tables the model was trained for (a model card's
    `mcs_tables`); `reset` refuses another (None: any).

    With a `guard` (its thresholds), a `UeGuard` watches every UE's HARQ feedback and rows it hands
    back are decided by an OLLA at the target (10% in throughput mode) that sees every report, as
    the E2 node's fallback does; `max_transmissions` is the scenario's HARQ limit (residual loss).
    After a run, `policy.guard.handed_back_decisions` counts the UE-slots OLLA decided; after each
    `observe`, `handed_back` marks the report's scheduled UEs the guard gives OLLA.
    """

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], name: str = "learned",
                 action_mcs: Sequence[int] | None = None, bler_target: float | None = DEFAULT_BLER_TARGET,
                 mcs_tables: Sequence[int] | None = None, guard: GuardConfig | None = None,
                 max_transmissions: int = DEFAULT_MAX_TRANSMISSIONS,
                 probe: Callable[[np.ndarray], np.ndarray] | None = None):
        self.score, self.probe, self.name, self.bler_target = score, probe, name, bler_target
        self.action_mcs = np.asarray(range(MAX_SUPPORTED_MCS_ACTIONS) if action_mcs is None else action_mcs,
                                     np.int64)
        self.mcs_tables = None if mcs_tables is None else tuple(mcs_tables)
        self.guard_config, self.max_transmissions = guard, max_transmissions
        self.guard: UeGuard | None = None
        self.fallback: Olla | None = None

    def reset(self, n_ues: int, mcs_table: int, cqi_table: int) -> None:
        if self.mcs_tables is not None and mcs_table not in self.mcs_tables:
            raise ValueError(f"{self.name} was trained for MCS table(s) {list(self.mcs_tables)} "
                             f"(TS 38.214 Table 5.1.3.1-x); this scenario uses MCS table {mcs_table}")
        self.builder = ObservationBuilder(n_ues, mcs_table, cqi_table, self.bler_target)
        self._max_mcs = MCS_TABLES[mcs_table].size - 1
        if self.guard_config is not None:
            self.guard = UeGuard(n_ues, self.guard_config, self.max_transmissions)
            self.fallback = Olla(target_bler=self.bler_target or DEFAULT_BLER_TARGET)
            self.fallback.reset(n_ues, mcs_table, cqi_table)

    def decide(self, report: SlotReport) -> np.ndarray:
        return self.choose(self.observe(report), report)

    def observe(self, report: SlotReport) -> np.ndarray:
        """Apply the report's events (builder, guard and its OLLA) and return the observations of
        the UEs it schedules: the state every scorer of this slot decides from."""
        obs = self.builder.observe_report(report)
        if self.guard is not None:           # the guard and its OLLA see every report
            self._fallback_mcs = self.fallback.decide(report)
            target = self.builder.bler_target
            self.guard.apply_harq(report.harq_ue, report.harq_ack, report.harq_tx, report.slot, target[report.harq_ue])
            self.handed_back = self.guard.select(report.ue, report.slot, target[report.ue])
        return obs

    def choose(self, obs: np.ndarray, report: SlotReport, score: Callable[[np.ndarray], np.ndarray] | None = None,
               action_mcs: np.ndarray | None = None) -> np.ndarray:
        """The MCS per `report.ue` from `observe`'s `obs`, scored by `score` through `action_mcs`
        (default: this policy's own): several models can decide from one observed state, as the
        E2 node's active and shadow models do (`ranpd.simulator.nearrt`)."""
        if obs.shape[0] == 0:
            return np.zeros(0, np.int64)
        probe = self.probe if score is None else None
        score = self.score if score is None else score
        action_mcs = self.action_mcs if action_mcs is None else action_mcs
        mcs = decide_mcs(score, obs, action_mcs, self._max_mcs, self.builder.cqi[report.ue], probe)
        return mcs if self.guard is None else np.where(self.handed_back, self._fallback_mcs, mcs)


def make_baseline(name: str, **kwargs) -> LinkAdaptationPolicy:
    """`illa` or `olla` (kwargs go to OLLA: target_bler, step_up_db, limit_db)."""
    if name == "illa":
        return Illa()
    if name == "olla":
        return Olla(**kwargs)
    raise ValueError(f"unknown baseline policy {name!r}; choose 'illa' or 'olla'")
