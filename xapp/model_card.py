"""The model card: the JSON that travels with every ONNX policy (student or teacher).

The xApp refuses a model whose observation-spec version it does not speak; training writes the
card at export time with the figures it measured.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ranpd.simulator.observation import FEATURES, OBS_DIM, OBS_SPEC_VERSION


class ActionTable(BaseModel):
    """Output index i of the model is MCS index `mcs[i]` of TS 38.214 MCS table `mcs_table`."""

    model_config = ConfigDict(extra="forbid")
    mcs_table: int = Field(2, ge=1, le=2)
    mcs: list[int]


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["student", "teacher"]
    obs_spec_version: str = OBS_SPEC_VERSION
    obs_features: list[str] = Field(default_factory=lambda: list(FEATURES))
    obs_dim: int = OBS_DIM
    action_table: ActionTable
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
