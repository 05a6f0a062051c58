"""xApp configuration: the O-RAN SC-style descriptor (`config-file.json`) and settings.

Precedence, lowest first: field defaults < the descriptor's `controls` and messaging ports <
environment variables `RANPD_XAPP_*` < explicit arguments (the CLI's options). The descriptor is
what a RIC onboards (name, version, containers, messaging ports, controls); it is validated here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ranpd.simulator.policies import parse_bler_target

DESCRIPTOR_PATH = Path(__file__).parent / "config-file.json"


class MessagingPort(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    container: str
    port: int = Field(ge=1, le=65535)
    description: str = ""


class Container(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    image: dict[str, str]


class Messaging(BaseModel):
    ports: list[MessagingPort]


class XappDescriptor(BaseModel):
    """The xApp descriptor (O-RAN SC `config-file.json`): the fields this xApp relies on."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str
    version: str
    containers: list[Container] = Field(min_length=1)
    messaging: Messaging
    controls: dict[str, Any] = Field(default_factory=dict)

    def port(self, name: str) -> int:
        for port in self.messaging.ports:
            if port.name == name:
                return port.port
        raise KeyError(f"descriptor has no messaging port named {name!r}")

    @classmethod
    def load(cls, path: str | Path = DESCRIPTOR_PATH) -> "XappDescriptor":
        return cls.model_validate_json(Path(path).read_text())


class _DescriptorSource(PydanticBaseSettingsSource):
    """Settings from the descriptor: `controls` plus the `e2` and `http` messaging ports."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path):
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field, field_name):  # required by the base class; unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        descriptor = XappDescriptor.load(self.path)
        values = {k: v for k, v in descriptor.controls.items() if k in self.settings_cls.model_fields}
        return {"e2_port": descriptor.port("e2"), "http_port": descriptor.port("http"), **values}


class XappSettings(BaseSettings):
    """Runtime settings; every field can be set as `RANPD_XAPP_<FIELD>` (e.g. RANPD_XAPP_E2_PORT)."""

    model_config = SettingsConfigDict(env_prefix="RANPD_XAPP_", extra="ignore")

    host: str = Field("127.0.0.1", description="address both servers bind")
    e2_port: int = Field(36421, ge=0, le=65535, description="E2 stream port (0: any free port)")
    http_port: int = Field(8080, ge=0, le=65535, description="REST port (0: any free port)")
    model_path: Path | None = Field(None, description="ONNX student (card beside it); default: the shipped one")
    admin_token: SecretStr | None = Field(None, description="bearer token for model upload; unset: uploads disabled")
    ue_capacity: int = Field(4096, ge=1, description="UE contexts kept per E2 node (LRU beyond)")
    ue_idle_slots: int = Field(20000, ge=1, description="a UE unseen this many slots is forgotten")
    max_frame_bytes: int = Field(1 << 20, ge=64, description="largest E2 frame accepted")
    max_connections: int = Field(256, ge=1, description="concurrent E2 node connections")
    ric_id: str = Field("ranpd-ric", description="global RIC id sent in E2 Setup Response")
    descriptor_path: Path = Field(DESCRIPTOR_PATH, description="the xApp descriptor (config-file.json)")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="python logging level")
    max_indication_ues: int = Field(4096, ge=1, description="UEs one indication or decide request may "
                                    "name in each of its lists (CQI, HARQ, scheduled)")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest REST request body, checked before "
                                "it is read (model upload: see max_model_bytes)")
    max_model_bytes: int = Field(16 << 20, ge=1024, description="largest ONNX model accepted by upload")
    model_dir: Path | None = Field(None, description="where uploaded models persist (with the previous one "
                                   "for rollback); unset: uploads live until the process exits")
    model_check_timeout_s: float = Field(30.0, gt=0, description="model validation (own process) is "
                                         "killed after this long")
    model_check_memory_mb: int = Field(2048, ge=256, description="address-space cap of the validation "
                                       "process (RLIMIT_AS)")
    bler_target: float | Literal["max"] = Field(0.1, description="operator first-tx BLER target of every "
                                                "E2 node's UEs, in (0, 1), or 'max' (throughput mode); "
                                                "PUT /ric/v1/config/bler-target changes it, per node too")
    guard: bool = Field(True, description="per-UE guard: hand a UE back to its node's OLLA while its NACK "
                        "or residual-loss rate breaks a limit (ranpd.simulator.guard)")
    model_latency_budget_us: float = Field(500.0, gt=0, description="a model is refused if the p99 CPU "
                                           "time of its 64-UE batch inference exceeds this (one 30 kHz slot)")
    shadow_reports: int = Field(10, ge=0, le=1000, description="near-RT loop: KPM periods a model deployed to a "
                                "node runs in shadow before it may be promoted (0: it decides at once)")
    shadow_min_gain: float = Field(-0.02, ge=-1.0, le=1.0, description="near-RT loop: promote after the shadow "
                                   "period only if the node's expected delivered bits of the model's choices are at "
                                   "least (1 + this) times those of the applied choices")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("bler_target", mode="before")
    @classmethod
    def _target(cls, value: Any) -> float | str:
        target = parse_bler_target(value)
        return "max" if target is None else target

    @property
    def bler_target_value(self) -> float | None:
        """`bler_target` as the observation builder takes it (None: throughput mode)."""
        return None if self.bler_target == "max" else self.bler_target

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        path = init_settings.init_kwargs.get("descriptor_path") or os.environ.get(
            "RANPD_XAPP_DESCRIPTOR_PATH", DESCRIPTOR_PATH)
        path = Path(path)
        return init_settings, env_settings, _DescriptorSource(settings_cls, path)

    def public(self) -> dict[str, Any]:
        """What GET /ric/v1/config shows: everything but the admin token (only whether one is set)."""
        out = json.loads(self.model_dump_json(exclude={"admin_token"}))
        out["admin_token_set"] = self.admin_token is not None
        return out
