"""Scenarios: validated descriptions of a downlink deployment, built-in or from a YAML/JSON file.

A scenario fixes everything the simulator needs: band and numerology (TS 38.211 §4.2), TR 38.901
environment and TDL profile, UE classes (share, speed, traffic), scheduler, neighbour load and the
interference model, CSI and HARQ timelines, RLC retransmission delay.
Users describe their own networks in a file with the same fields (`ranpd scenarios --json` shows
every field of every built-in); unknown fields are rejected, bad values are refused with the field
and the reason. Files written for earlier versions (one speed, one traffic model) load unchanged:
the top-level `ue_speed_kmh`, `traffic`, `ftp_packet_bytes` and `ftp_arrival_rate_hz` describe the
single UE class of a scenario that lists no `ue_classes`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ranpd.simulator.channel import DEPLOYMENTS, doppler_hz

MAX_DOPPLER_PER_SLOT = 0.4   # fading is sampled once per slot: f_D·T_slot must stay below Nyquist
Traffic = Literal["full_buffer", "ftp3", "small_packets"]
# Default packet size (bytes) and per-UE arrival rate (Hz) of the bursty traffic models:
# FTP model 3 (TR 36.814 Table A.2.1.3.1-1 / TR 38.901 §7.8 traffic: 0.5 MB files, Poisson arrivals)
# and a small-packet model (interactive/IoT-like: 200-byte packets at 50 Hz, a modelling choice whose
# point is TBs of a few PRBs and short code blocks).
TRAFFIC_DEFAULTS = {"ftp3": (500_000, 2.0), "small_packets": (200, 50.0)}


class UeClass(BaseModel):
    """A share of a cell's UEs with one speed and one traffic model (a mixed cell has several)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "ues"
    share: float = Field(1.0, gt=0.0, le=1.0, description="fraction of each cell's UEs")
    ue_speed_kmh: float = Field(3.0, ge=0.0, le=500.0)
    traffic: Traffic = "full_buffer"
    packet_bytes: int | None = Field(None, ge=1, le=1 << 30, description="default per traffic model")
    arrival_rate_hz: float | None = Field(None, gt=0.0, le=10_000.0, description="per-UE Poisson arrivals")

    @property
    def bursty(self) -> bool:
        return self.traffic != "full_buffer"

    def packet(self) -> tuple[int, float]:
        """(packet bytes, arrival rate Hz) with the traffic model's defaults filled in."""
        size, rate = TRAFFIC_DEFAULTS.get(self.traffic, (0, 0.0))
        return (self.packet_bytes or size, self.arrival_rate_hz or rate)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    family: str = Field("custom", description="group used to train specialist teachers")
    # Band and carrier
    environment: Literal["UMa", "UMi", "RMa"] = "UMa"
    carrier_ghz: float = Field(3.5, gt=0.4, le=100.0)
    numerology: int = Field(1, ge=0, le=3, description="mu: SCS = 15·2^mu kHz")
    cell_prbs: int = Field(273, ge=1, le=275)
    duplex: Literal["FDD", "TDD"] = "TDD"
    tdd_pattern: str = Field("DDDSU", pattern="^[DSU]+$", description="D slots carry PDSCH")
    tx_power_dbm: float = Field(46.0, ge=0.0, le=60.0)
    bs_antenna_gain_db: float = Field(8.0, ge=0.0, le=40.0, description="incl. beamforming gain")
    ue_noise_figure_db: float = Field(7.0, ge=0.0, le=20.0)
    isd_m: float | None = Field(None, gt=0.0, description="default per environment (TR 38.901)")
    site_layout: Literal["hex19x3", "omni7"] = Field(
        "hex19x3", description="19 three-sector sites (TR 38.901 §7.8 calibration) or the legacy 7 omni sites")
    indoor_fraction: float = Field(0.0, ge=0.0, le=1.0, description="UEs indoors behind low-loss O2I "
                                   "penetration (TR 38.901 §7.4.3); 0.8 is the §7.8 calibration mix (hex19x3 only)")
    # Small-scale fading
    ue_speed_kmh: float = Field(3.0, ge=0.0, le=500.0)
    tdl_profile: Literal["C", "D"] = "C"
    delay_spread_ns: float = Field(300.0, gt=0.0, le=3000.0)
    n_subbands: int = Field(8, ge=1, le=32)
    bler_level: Literal["pdsch-awgn", "5g-lena"] = Field(
        "pdsch-awgn", description="absolute level of the link-level BLER curves (phy.BLER_LEVELS): the public "
        "PDSCH AWGN calibration, or 5G-LENA's link-level SINRs (2-5 dB higher)")
    # Population, traffic, scheduling
    n_ues: int = Field(64, ge=1)
    ues_per_cell: int = Field(16, ge=1)
    ues_per_slot: int = Field(4, ge=1, description="UEs frequency-multiplexed per slot and cell")
    traffic: Traffic = Field("full_buffer", description="single-class traffic (when ue_classes is empty)")
    ftp_packet_bytes: int = Field(500_000, ge=1, description="single-class packet size (FTP 3: TR 36.814)")
    ftp_arrival_rate_hz: float = Field(2.0, gt=0.0, description="single-class per-UE Poisson arrivals")
    ue_classes: tuple[UeClass, ...] = Field((), description="mixed cell: classes with shares summing to 1")
    scheduler: Literal["pf", "rr"] = "pf"
    load: float = Field(0.5, ge=0.0, le=1.0, description="neighbour cells' mean PRB utilisation")
    interference_model: Literal["scheduled", "onoff", "always_on"] = Field(
        "scheduled", description="scheduled: neighbours' per-slot, per-subband PRB use through their own "
        "fading; onoff: the legacy whole-band on/off chains (flat, unfaded); always_on: every neighbour on "
        "every PRB, flat and unfaded (the 3GPP full-buffer convention)")
    interference_burst_ms: float = Field(20.0, gt=0.0, description="onoff model: mean neighbour busy period")
    # CSI and HARQ timelines
    cqi_period_slots: int = Field(10, ge=1, le=320)
    cqi_delay_slots: int = Field(8, ge=1, le=320, description="reference resource to use")
    cqi_error_db: float = Field(1.0, ge=0.0, le=10.0, description="measurement error σ")
    cqi_bias_db: float = Field(1.0, ge=0.0, le=10.0, description="σ of a static per-UE CQI bias")
    harq_processes: int = Field(16, ge=1, le=32)
    k1_slots: int = Field(4, ge=1, le=15, description="PDSCH to HARQ-ACK delay")
    max_transmissions: int = Field(4, ge=1, le=8)
    rlc_retx_delay_ms: float = Field(20.0, ge=0.0, le=1000.0,
                                     description="a TB lost after its last HARQ attempt is resent by RLC after this")
    # PDSCH allocation
    mcs_table: Literal[1, 2] = 2
    cqi_table: Literal[1, 2] = 2
    pdsch_symbols: int = Field(12, ge=1, le=14)
    special_slot_dl_symbols: int = Field(10, ge=0, le=14, description="downlink symbols of a TDD S slot")
    dmrs_per_prb: int = Field(12, ge=0, le=48)
    layers: int = Field(1, ge=1, le=4)

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        if self.ues_per_slot > self.ues_per_cell:
            raise ValueError("ues_per_slot cannot exceed ues_per_cell")
        if self.cell_prbs < self.ues_per_slot:
            raise ValueError("cell_prbs must give every scheduled UE at least one PRB")
        if self.n_ues % self.ues_per_cell:
            raise ValueError(f"n_ues ({self.n_ues}) must be a multiple of ues_per_cell ({self.ues_per_cell})")
        if self.duplex == "TDD" and "D" not in self.tdd_pattern:
            raise ValueError("a TDD pattern needs at least one D slot")
        if 12 * self.pdsch_symbols <= self.dmrs_per_prb:
            raise ValueError("DMRS leaves no resource element for data")
        if self.ue_classes and abs(sum(c.share for c in self.ue_classes) - 1.0) > 1e-6:
            raise ValueError("ue_classes shares must sum to 1")
        for c in self.classes:
            if doppler_hz(c.ue_speed_kmh, self.carrier_ghz) * self.slot_duration_s > MAX_DOPPLER_PER_SLOT:
                raise ValueError(
                    f"{c.ue_speed_kmh} km/h at {self.carrier_ghz} GHz gives f_D·T_slot = "
                    f"{doppler_hz(c.ue_speed_kmh, self.carrier_ghz) * self.slot_duration_s:.2f} > "
                    f"{MAX_DOPPLER_PER_SLOT}: the channel would change faster than one sample per slot; "
                    f"lower the speed or raise the numerology")
        return self

    @property
    def classes(self) -> tuple[UeClass, ...]:
        """The UE classes; a scenario without `ue_classes` has one, from the top-level fields."""
        if self.ue_classes:
            return self.ue_classes
        explicit = self.traffic == "ftp3" or {"ftp_packet_bytes", "ftp_arrival_rate_hz"} & self.model_fields_set
        return (UeClass(ue_speed_kmh=self.ue_speed_kmh, traffic=self.traffic,
                        packet_bytes=self.ftp_packet_bytes if explicit else None,
                        arrival_rate_hz=self.ftp_arrival_rate_hz if explicit else None),)

    @property
    def doppler_per_slot(self) -> float:
        """Normalised Doppler f_D·T_slot (f_D = v·f_c/c) of the fastest UE class."""
        fastest = max(c.ue_speed_kmh for c in self.classes)
        return doppler_hz(fastest, self.carrier_ghz) * self.slot_duration_s

    @property
    def slot_duration_s(self) -> float:
        return 1e-3 / (1 << self.numerology)

    @property
    def bandwidth_hz(self) -> float:
        return self.cell_prbs * 12 * 15e3 * (1 << self.numerology)

    @property
    def site(self) -> tuple[float, float, float]:
        """(BS height, inter-site distance, minimum distance) in metres."""
        h_bs, isd, d_min = DEPLOYMENTS[self.environment]
        return h_bs, self.isd_m or isd, d_min

    def with_ues(self, n_ues: int) -> "Scenario":
        """The same scenario with another population (rounded up to whole cells)."""
        cells = max(1, -(-n_ues // self.ues_per_cell))
        return self.model_copy(update={"n_ues": cells * self.ues_per_cell})

    def summary(self) -> dict:
        """Key parameters for listings."""
        return {
            "name": self.name, "family": self.family, "environment": self.environment,
            "carrier_ghz": self.carrier_ghz, "scs_khz": 15 * (1 << self.numerology),
            "duplex": self.duplex, "prbs": self.cell_prbs,
            "speed_kmh": "/".join(f"{c.ue_speed_kmh:g}" for c in self.classes),
            "traffic": "/".join(c.traffic for c in self.classes), "load": self.load,
            "interference": self.interference_model, "cqi_period_slots": self.cqi_period_slots,
            "ues": self.n_ues,
        }


def _builtin(name: str, family: str, description: str, **fields) -> Scenario:
    return Scenario(name=name, family=family, description=description, **fields)


# TR 38.901 Table 7.5-6 Part-2, RMa: median delay spread 10^-7.49 s = 32 ns (LOS; NLOS 37 ns).
RMA_DELAY_SPREAD_NS = 32.0
_MID = dict(environment="UMa", carrier_ghz=3.5, numerology=1, cell_prbs=273, duplex="TDD")
_LOW = dict(carrier_ghz=0.7, numerology=0, cell_prbs=52, duplex="FDD", tx_power_dbm=43.0,
            bs_antenna_gain_db=5.0, cqi_period_slots=5, cqi_delay_slots=4)
_MMW = dict(environment="UMi", carrier_ghz=28.0, numerology=3, cell_prbs=66, duplex="TDD",
            tx_power_dbm=33.0, bs_antenna_gain_db=24.0, ue_noise_figure_db=10.0, tdl_profile="D",
            delay_spread_ns=30.0, cqi_period_slots=40, cqi_delay_slots=32, k1_slots=8)

BUILTIN_SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    _builtin("uma-mid-pedestrian", "low-mobility", "3.5 GHz TDD macro, 3 km/h, full buffer", **_MID),
    _builtin("uma-mid-vehicular", "medium-mobility", "3.5 GHz TDD macro, 30 km/h, full buffer",
             **_MID, ue_speed_kmh=30.0),
    _builtin("uma-mid-highway", "high-mobility", "3.5 GHz TDD macro, 120 km/h, full buffer",
             **_MID, ue_speed_kmh=120.0),
    _builtin("uma-mid-slow-cqi", "medium-mobility", "3.5 GHz macro, 60 km/h, CQI every 40 ms",
             **_MID, ue_speed_kmh=60.0, cqi_period_slots=80),
    _builtin("umi-mid-bursty", "low-mobility", "3.5 GHz micro, 3 km/h, FTP model 3 traffic",
             **{**_MID, "environment": "UMi", "tx_power_dbm": 40.0, "delay_spread_ns": 100.0},
             traffic="ftp3", load=0.3),
    _builtin("umi-mid-dense", "medium-mobility", "3.5 GHz micro, 30 km/h, fully loaded neighbours",
             **{**_MID, "environment": "UMi", "tx_power_dbm": 40.0, "delay_spread_ns": 100.0},
             ue_speed_kmh=30.0, load=0.9),
    _builtin("uma-low-pedestrian", "low-mobility", "700 MHz FDD macro, 3 km/h, full buffer",
             environment="UMa", **_LOW),
    _builtin("rma-low-vehicular", "high-mobility", "700 MHz FDD rural, 120 km/h, LOS-rich TDL-D",
             environment="RMa", **_LOW, ue_speed_kmh=120.0, tdl_profile="D", delay_spread_ns=RMA_DELAY_SPREAD_NS),
    _builtin("rma-low-train", "high-mobility", "700 MHz FDD rural, 250 km/h high-speed train",
             environment="RMa", **_LOW, ue_speed_kmh=250.0, tdl_profile="D", delay_spread_ns=RMA_DELAY_SPREAD_NS),
    _builtin("umi-mmwave-pedestrian", "low-mobility", "28 GHz micro, 120 kHz SCS, 3 km/h",
             **_MMW),
    _builtin("uma-mid-mixed", "mixed", "3.5 GHz macro: pedestrians on FTP 3, vehicles on full buffer, "
             "small packets", **_MID, ue_classes=(
                 UeClass(name="pedestrian-ftp3", share=0.5, ue_speed_kmh=3.0, traffic="ftp3"),
                 UeClass(name="vehicle-full-buffer", share=0.25, ue_speed_kmh=60.0),
                 UeClass(name="pedestrian-small-packets", share=0.25, ue_speed_kmh=3.0, traffic="small_packets"))),
]}

FAMILIES: dict[str, list[str]] = {}
for _s in BUILTIN_SCENARIOS.values():
    FAMILIES.setdefault(_s.family, []).append(_s.name)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file (.yaml, .yml or .json)."""
    key = str(name_or_path)
    if key in BUILTIN_SCENARIOS:
        return BUILTIN_SCENARIOS[key]
    path = Path(key)
    if not path.suffix:
        raise ValueError(f"unknown scenario {key!r}; built-ins: {', '.join(BUILTIN_SCENARIOS)}")
    if not path.is_file():
        raise ValueError(f"scenario file {key!r} does not exist")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot parse scenario file {key}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"scenario file {key} must hold a mapping of fields")
    data.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid scenario file {key}:\n{exc}") from exc


def randomized_scenario(rng: np.random.Generator) -> Scenario:
    """Domain randomisation: a built-in deployment with speed, load, CQI timeline, delay spread and
    traffic drawn at random, so one policy sees the whole range of conditions in training."""
    base = list(BUILTIN_SCENARIOS.values())[rng.integers(len(BUILTIN_SCENARIOS))]
    slots_per_ms = 1 << base.numerology
    fastest = min(250.0, 0.9 * MAX_DOPPLER_PER_SLOT / doppler_hz(1.0, base.carrier_ghz) / base.slot_duration_s)
    return Scenario.model_validate({
        **base.model_dump(),
        "name": f"random-{base.name}",
        "family": "randomized",
        "ue_speed_kmh": float(np.exp(rng.uniform(np.log(3.0), np.log(fastest)))),
        "load": float(rng.uniform(0.1, 1.0)),
        "cqi_period_slots": int(rng.choice([5, 10, 20, 40]) * slots_per_ms),
        "cqi_delay_slots": int(rng.integers(4, 9) * slots_per_ms),
        "cqi_error_db": float(rng.uniform(0.5, 2.0)),
        "delay_spread_ns": float(np.exp(rng.uniform(np.log(30.0), np.log(1000.0)))),
        "traffic": "ftp3" if rng.uniform() < 0.25 else "full_buffer",
        "ue_classes": (),
    })
