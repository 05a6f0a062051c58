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
from dataclasses import dataclass
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


# The project's held-out set: deployments written for evaluation only (never trained or tuned on), each
# with a description of what it probes: a mixed cell, bursty low load, mmWave pedestrians with bursty
# traffic, fresh but noisy CQI at the cell edge, static (always_on) interference, a table-1 network.
HELDOUT_DIR = Path(__file__).resolve().parent / "heldout"


def heldout_scenarios() -> list[Scenario]:
    """The held-out scenarios (the files in HELDOUT_DIR), sorted by name."""
    return sorted((load_scenario(path) for path in HELDOUT_DIR.glob("*.yaml")), key=lambda sc: sc.name)


# ---------------------------------------------------------------- domain randomisation
@dataclass(frozen=True)
class Band:
    """A carrier that randomised deployments use: numerologies with their channel bandwidths' N_RB,
    environments with their radio fields and inter-site distances, the share of indoor UEs, and the
    TDD patterns operators configure on it."""

    carrier_ghz: float
    duplex: Literal["FDD", "TDD"]
    prbs: dict[int, tuple[int, ...]]            # numerology -> N_RB of the band's channel bandwidths
    radio: dict[str, dict[str, float]]          # environment -> tx PSD (dBm/MHz), antenna gain, noise figure
    isds_m: dict[str, tuple[float, ...]]        # environment -> inter-site distances
    indoor_fractions: tuple[float, ...] = (0.0, 0.5, 0.8)
    tdd_patterns: tuple[str, ...] = ("D",)


# N_RB: TS 38.101-1 Table 5.3.2-1 (FR1: 5/10/15/20 MHz at 15 kHz; 20/40/50/100 MHz at 30 kHz; 20/40/50 MHz
# at 15 kHz) and TS 38.101-2 Table 5.3.2-1 (FR2: 50/100/200 MHz at 60 kHz, 50/100/200/400 MHz at 120 kHz).
# Radio fields: those of the built-ins on the same band, the transmit power as their power spectral density
# (46 dBm macro and 40 dBm micro on 273 PRBs at 30 kHz, 43 dBm on 52 PRBs at 15 kHz, 33 dBm on 66 PRBs at
# 120 kHz with 24 dB of beamforming gain and a 10 dB UE noise figure), so a wider carrier has more power
# and the same link budget per resource element. ISDs: TR 38.901 Table 7.2-1
# (UMa 500 m, UMi 200 m, RMa 1732 m), a sparser 750 m low-band macro grid, denser 300/100 m mid-band grids.
# Indoor shares up to TR 38.901 §7.8's 0.8; 28 GHz street cells serve outdoor UEs (O2I loss leaves indoor
# UEs out of coverage).
RANDOMIZATION_BANDS: dict[str, Band] = {
    # n28 (703-803 MHz, FDD): coverage layer, wide rural and urban macro cells.
    "low": Band(0.7, "FDD", {0: (25, 52, 79, 106)},
                {env: dict(tx_psd_dbm_mhz=33.3, bs_antenna_gain_db=5.0) for env in ("UMa", "RMa")},
                {"UMa": (500.0, 750.0), "RMa": (1732.0,)}),
    # n78 (3.3-3.8 GHz, TDD): 2.5 ms DDDSU, 5 ms DDDDDDDSUU and the 5 ms dual period DDDSUDDSUU.
    "mid": Band(3.5, "TDD", {0: (106, 216, 270), 1: (51, 106, 133, 273)},
                {"UMa": dict(tx_psd_dbm_mhz=26.1), "UMi": dict(tx_psd_dbm_mhz=20.1)},
                {"UMa": (300.0, 500.0), "UMi": (100.0, 200.0)}, tdd_patterns=("DDDSU", "DDDDDDDSUU", "DDDSUDDSUU")),
    # n257/n261 (28 GHz, TDD) street-level micro cells: 0.625 ms DDDSU (120 kHz) and DDSU.
    "mmwave": Band(28.0, "TDD", {2: (66, 132, 264), 3: (32, 66, 132, 264)},
                   {"UMi": dict(tx_psd_dbm_mhz=13.2, bs_antenna_gain_db=24.0, ue_noise_figure_db=10.0)},
                   {"UMi": (100.0, 200.0)}, (0.0,), ("DDDSU", "DDSU")),
}


@dataclass(frozen=True)
class RandomizationFamily:
    """A region of the randomisation space: the bands it deploys on and its traffic (one full-buffer
    class, one bursty class at a load where buffers empty, or a mixed cell of 2-3 classes)."""

    description: str
    bands: tuple[str, ...]
    traffic: Literal["full_buffer", "bursty", "mixed"]


# Families for specialist teachers; together (the union, family=None) they cover every axis.
# Names are stable: model cards and reports refer to them.
RANDOMIZATION_FAMILIES: dict[str, RandomizationFamily] = {
    "low-band": RandomizationFamily("700 MHz FDD, 15 kHz, UMa/RMa, 3-250 km/h, full buffer", ("low",), "full_buffer"),
    "mid-band": RandomizationFamily("3.5 GHz TDD, 15/30 kHz, UMa/UMi, 3-200 km/h, full buffer", ("mid",), "full_buffer"),
    "mmwave": RandomizationFamily("28 GHz TDD, 60/120 kHz, UMi, 3-90 km/h, full buffer", ("mmwave",), "full_buffer"),
    "bursty": RandomizationFamily("any band, one class of FTP 3 or small packets at 5-70% of the UE's fair "
                                  "share: buffers empty", tuple(RANDOMIZATION_BANDS), "bursty"),
    "mixed": RandomizationFamily("any band, 2-3 UE classes: a pedestrian and a vehicle class, traffic "
                                 "mixed", tuple(RANDOMIZATION_BANDS), "mixed"),
}

# Grids of the parameters that key the fading and interference trace caches (speed, delay spread, PRBs,
# load, burst length): quantised so that randomised episodes reuse traces as the built-ins do.
SPEEDS_KMH = (3.0, 10.0, 30.0, 60.0, 90.0, 120.0, 160.0, 200.0, 250.0)   # TR 38.913 §6.1: 3-500 km/h
DELAY_SPREADS_NS = {"UMa": (100.0, 300.0, 1000.0), "UMi": (30.0, 100.0, 300.0), "RMa": (RMA_DELAY_SPREAD_NS,)}
LOS_PROFILE_SHARE = {"UMa": 0.2, "UMi": 0.3, "RMa": 0.7}          # P(TDL-D) rather than TDL-C
NEIGHBOUR_LOADS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
INTERFERENCE_MODELS = {"scheduled": 0.4, "onoff": 0.2, "always_on": 0.4}
BURSTS_MS = (10.0, 20.0, 50.0)
CQI_PERIODS_SLOTS = (1, 2, 4, 5, 8, 10, 16, 20, 40, 80)
OFFERED_LOADS = (0.05, 0.1, 0.2, 0.4, 0.7)            # bursty traffic: share of a UE's fair share of the cell
FTP_FILE_RATES_HZ = (1.0, 2.0, 5.0, 10.0)              # lowered (to MIN_FTP_RATE_HZ) to keep files
MIN_FTP_FILE_BYTES, MIN_FTP_RATE_HZ = 10_000, 0.5       # of at least 10 kB (TR 36.814: 0.5 MB)
SMALL_PACKET_BYTES = (100, 200, 500, 1500)             # IoT reports ... one MTU
SMALL_PACKET_RATES_HZ = (10.0, 20.0, 50.0, 100.0, 200.0)   # interactive, VoIP (50 Hz), gaming
REFERENCE_SPECTRAL_EFFICIENCY = 2.0                    # bit/s/Hz: a one-layer cell's mean, for offered load


def _choice(rng: np.random.Generator, options, p=None):
    """One element of `options` (any sequence), drawn with `rng`."""
    options = tuple(options)
    return options[int(rng.choice(len(options), p=p))]


def _fair_share_bps(cell_prbs: int, numerology: int, pattern: str, special_dl_symbols: int) -> float:
    """A UE's share (1/16) of its cell's downlink capacity at the reference spectral efficiency."""
    downlink = (pattern.count("D") + pattern.count("S") * special_dl_symbols / 14) / len(pattern)
    return cell_prbs * 12 * 15e3 * (1 << numerology) * downlink * REFERENCE_SPECTRAL_EFFICIENCY / 16


def _bursty_class(rng: np.random.Generator, fair_share_bps: float) -> dict:
    """FTP 3 files or small packets at most an OFFERED_LOADS share of the UE's fair share, so buffers
    empty. FTP 3 keeps files arriving often enough to be seen in a short episode (FTP_FILE_RATES_HZ)
    and sizes them to the load; small packets draw size and rate, the rate capped by the load."""
    rate_bps = _choice(rng, OFFERED_LOADS) * fair_share_bps
    if rng.uniform() < 0.5:
        rate = max(MIN_FTP_RATE_HZ, min(_choice(rng, FTP_FILE_RATES_HZ), rate_bps / 8 / MIN_FTP_FILE_BYTES))
        return dict(traffic="ftp3", packet_bytes=max(1000, int(round(rate_bps / 8 / rate, -3))),
                    arrival_rate_hz=float(f"{rate:.2g}"))
    size = _choice(rng, SMALL_PACKET_BYTES)
    rate = min(_choice(rng, SMALL_PACKET_RATES_HZ), float(f"{rate_bps / 8 / size:.2g}"))
    return dict(traffic="small_packets", packet_bytes=size, arrival_rate_hz=rate)


def _ue_classes(rng: np.random.Generator, kind: str, speeds: list[float], share_bps: float) -> dict:
    """Scenario fields of the UE population: one class (full buffer or bursty) or a mixed cell."""
    if kind == "full_buffer":
        return dict(ue_speed_kmh=_choice(rng, speeds))
    if kind == "bursty":
        c = _bursty_class(rng, share_bps)
        return dict(ue_speed_kmh=_choice(rng, speeds), traffic=c["traffic"], ftp_packet_bytes=c["packet_bytes"],
                    ftp_arrival_rate_hz=c["arrival_rate_hz"])
    # Two classes, or three (a quarter of the draws: each class adds its own fading traces to a reset).
    shares = _choice(rng, ((0.5, 0.5), (0.25, 0.75), (0.75, 0.25), (0.5, 0.25, 0.25)))
    pools = ([v for v in speeds if v <= 10.0], [v for v in speeds if v >= 30.0], speeds)   # pedestrian, vehicle, any
    classes = []
    for i, share in enumerate(shares):
        speed = _choice(rng, pools[i])
        traffic = _choice(rng, ("full_buffer", "ftp3", "small_packets"))
        c = _bursty_class(rng, share_bps) if traffic != "full_buffer" else dict(traffic=traffic)
        classes.append(UeClass(name=f"{i}-{speed:g}kmh-{c['traffic']}", share=share, ue_speed_kmh=speed, **c))
    return dict(ue_classes=tuple(classes))


def randomized_scenario(rng: np.random.Generator, family: str | None = None) -> Scenario:
    """Domain randomisation: a valid deployment drawn with `rng` from one of RANDOMIZATION_FAMILIES
    (`family=None`: a family drawn uniformly, the generalist's union). The result's `family` names it.

    Axes and ranges (grids where a parameter keys a trace cache):
    - band and numerology (RANDOMIZATION_BANDS): 700 MHz FDD μ=0, 3.5 GHz TDD μ=0/1, 28 GHz TDD
      μ=2/3 (TS 38.101-1/-2 bands n28, n78, n257); N_RB of the band's channel bandwidths; TDD patterns
      with 6 or 10 downlink symbols in S slots (TS 38.213 slot formats 6:4:4, 10:2:2).
    - environment UMa/UMi/RMa with TR 38.901 Table 7.2-1 ISDs (and denser/sparser grids), TDL-C or
      TDL-D, delay spreads of Table 7.7.3-1 (RMa: Table 7.5-6 median), indoor share 0/0.5/0.8 (§7.8: 0.8; 28 GHz: outdoor).
    - speed: SPEEDS_KMH (3-250 km/h) within the band's Doppler limit (MAX_DOPPLER_PER_SLOT, 10% margin).
    - traffic: full buffer; FTP 3 or small packets at 5-70% of a UE's fair share (buffers empty);
      mixed cells of 2-3 classes (shares 1/4, 1/2, 3/4) with a pedestrian and a vehicle class.
    - MCS and CQI tables together: both 64QAM (table 1, P=1/3) or both 256QAM (TS 38.214
      Tables 5.1.3.1-1/-2 and 5.2.2.1-2/-3), as networks configure them.
    - interference: scheduled (0.4), onoff (0.2, bursts of 10-50 ms), always_on (0.4, load 1:
      the 3GPP full-buffer convention); neighbour load 0.05-1.
    - CSI: period 1-80 slots (TS 38.331 periods 4-80, and 1-2 slots for aperiodic reports); the
      reference resource 4-6 ms before a periodic report (TS 38.214 §5.2.2.5), 1-2 slots before an
      aperiodic one; measurement error σ and per-UE bias σ 0-3 dB.
    - scheduling and HARQ: 1/2/4/8 UEs per slot, PF (0.8) or RR; K1 2-8 slots (TS 38.213 §9.2.3,
      the DCI 1_0 range above the N1 processing time); 2-5 transmissions (5G-LENA: 4; srsRAN: 1 + 4
      retransmissions); both BLER-curve levels.
    Fixed at the built-ins' values: 16 UEs per cell, one layer, 8 subbands, 12 PDSCH symbols with 1
    DMRS symbol, 16 HARQ processes, RLC retransmission after 20 ms, the hex19x3 layout.
    """
    names = tuple(RANDOMIZATION_FAMILIES)
    family = _choice(rng, names) if family is None else family
    if family not in RANDOMIZATION_FAMILIES:
        raise ValueError(f"unknown randomisation family {family!r}; families: {', '.join(names)}")
    spec = RANDOMIZATION_FAMILIES[family]
    band = RANDOMIZATION_BANDS[_choice(rng, spec.bands)]
    mu = _choice(rng, band.prbs)
    environment = _choice(rng, band.radio)
    prbs = _choice(rng, band.prbs[mu])
    radio = dict(band.radio[environment])
    bandwidth_mhz = prbs * 12 * 15e-3 * (1 << mu)
    fields: dict = dict(
        environment=environment, carrier_ghz=band.carrier_ghz, numerology=mu, duplex=band.duplex,
        cell_prbs=prbs, tdd_pattern=_choice(rng, band.tdd_patterns),
        tx_power_dbm=round(radio.pop("tx_psd_dbm_mhz") + 10 * np.log10(bandwidth_mhz), 1), **radio, isd_m=_choice(rng, band.isds_m[environment]),
        indoor_fraction=_choice(rng, band.indoor_fractions),
        tdl_profile="D" if rng.uniform() < LOS_PROFILE_SHARE[environment] else "C",
        delay_spread_ns=_choice(rng, DELAY_SPREADS_NS[environment]),
        bler_level=_choice(rng, ("pdsch-awgn", "5g-lena")))
    if band.duplex == "TDD":
        fields["special_slot_dl_symbols"] = _choice(rng, (6, 10))
    table = 1 if rng.uniform() < 1 / 3 else 2
    model = _choice(rng, INTERFERENCE_MODELS, p=list(INTERFERENCE_MODELS.values()))
    period = _choice(rng, CQI_PERIODS_SLOTS)
    delay = _choice(rng, (1, 2)) if period <= 2 else _choice(rng, (4, 5, 6)) << mu
    fields.update(
        mcs_table=table, cqi_table=table, interference_model=model,
        load=1.0 if model == "always_on" else _choice(rng, NEIGHBOUR_LOADS),
        interference_burst_ms=_choice(rng, BURSTS_MS) if model == "onoff" else 20.0,
        cqi_period_slots=period, cqi_delay_slots=delay,
        cqi_error_db=round(float(rng.uniform(0.0, 3.0)), 1), cqi_bias_db=round(float(rng.uniform(0.0, 3.0)), 1),
        ues_per_slot=_choice(rng, (1, 2, 4, 8) if spec.traffic == "full_buffer" else (4, 8)), scheduler="rr" if rng.uniform() < 0.2 else "pf",
        k1_slots=int(rng.integers(2, 9)), max_transmissions=int(rng.integers(2, 6)))
    speeds = [v for v in SPEEDS_KMH
              if doppler_hz(v, band.carrier_ghz) * 1e-3 / (1 << mu) <= 0.9 * MAX_DOPPLER_PER_SLOT]
    share_bps = _fair_share_bps(prbs, mu, fields["tdd_pattern"] if band.duplex == "TDD" else "D",
                                fields.get("special_slot_dl_symbols", 14))
    fields.update(_ue_classes(rng, spec.traffic, speeds, share_bps))
    sc = Scenario(name=f"random-{family}", family=family, **fields)
    return sc.model_copy(update={"description": "randomised " + ", ".join(
        f"{k}={v}" for k, v in sc.summary().items() if k not in ("name", "family", "ues"))})
