"""The model card: the JSON that travels with every ONNX policy (student or teacher).

The xApp refuses a model whose observation-spec version it does not speak; training writes the
card at export time with the figures it measured.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ranpd.simulator.observation import FEATURES, OBS_DIM, OBS_SPEC_VERSION


class ActionTable(BaseModel):
    """Output index i of the model is MCS index `mcs[i]` of TS 38.214 MCS table `mcs_table`."""

    model_config = ConfigDict(extra="forbid")
    mcs_table: int = Field(2, ge=1, le=2)
    mcs: list[int]


class ObsRange(BaseModel):
    """Per-feature range of the inputs the model was trained on (the distillation dataset's min and
    max, in `obs_features` order): serving clips observations into it and counts what it clipped."""

    model_config = ConfigDict(extra="forbid")
    low: list[float] = Field(min_length=OBS_DIM, max_length=OBS_DIM)
    high: list[float] = Field(min_length=OBS_DIM, max_length=OBS_DIM)

    @model_validator(mode="after")
    def _ordered(self) -> "ObsRange":
        bad = [name for name, lo, hi in zip(FEATURES, self.low, self.high)
               if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi)]
        if bad:
            raise ValueError(f"obs_range needs finite low <= high for every feature; not so for {bad}")
        return self


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["student", "teacher"]
    obs_spec_version: str = OBS_SPEC_VERSION
    obs_features: list[str] = Field(default_factory=lambda: list(FEATURES))
    obs_dim: int = OBS_DIM
    action_table: ActionTable
    mcs_tables: list[Literal[1, 2]] | None = Field(
        None, min_length=1, description="TS 38.214 MCS tables (5.1.3.1-1 / -2) it was trained for; the "
        "xApp refuses indications in any other. Absent (an older card): [action_table.mcs_table]")
    obs_range: ObsRange | None = Field(None, description="training range of the inputs; absent: no clipping")
    scenarios: list[str] = Field(default_factory=list, description="scenarios it was trained on")
    architecture: str = Field("", description="e.g. 'MLP 18-32-32-29 ReLU'")
    params: int = Field(ge=0)
    precision: Literal["fp32", "int8"] = "fp32"
    onnx_opset: int
    bytes: int = Field(ge=0, description="size of the ONNX file")
    sha256: str
    training_config: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    created: str = ""

    @model_validator(mode="after")
    def _default_mcs_tables(self) -> "ModelCard":
        if self.mcs_tables is None:
            self.mcs_tables = [self.action_table.mcs_table]
        return self

    @property
    def version(self) -> str:
        """`name@sha256[:12]`: what the metrics and the REST API call this model."""
        return f"{self.name}@{self.sha256[:12]}"

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        return cls.model_validate_json(Path(path).read_text())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")


def card_path_for(onnx_path: str | Path) -> Path:
    """The card sits beside its model: `student.onnx` -> `student.card.json`."""
    p = Path(onnx_path)
    return p.with_name(p.stem + ".card.json")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dumps(card: ModelCard) -> str:
    return json.dumps(card.model_dump(), indent=2)
