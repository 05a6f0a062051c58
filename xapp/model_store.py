"""Where accepted models live: the serving one and the one before it (for rollback).

With a directory (`RANPD_XAPP_MODEL_DIR`), each model is `<sha256>.onnx` + `<sha256>.card.json`
and `state.json` names the current and previous sha256. Every file is written to a temporary
name, fsynced and renamed over the old one (POSIX rename is atomic), `state.json` last: a crash
at any point leaves either the old or the new state, never a half-written model. Files no longer
named are removed. Without a directory the two models are kept in memory only.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ranpd.xapp.model import ModelError, ModelLimits, OnnxPolicyModel, validate_model
from ranpd.xapp.model_card import ModelCard

log = logging.getLogger(__name__)
STATE = "state.json"


@dataclass(frozen=True)
class StoredModel:
    onnx_bytes: bytes
    card: ModelCard


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)          # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


class ModelStore:
    """The current and previous accepted models, persisted when `directory` is set."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory
        self.current: StoredModel | None = None
        self.previous: StoredModel | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.current, self.previous = self._read()

    @property
    def persistent(self) -> bool:
        return self.directory is not None

    def _read(self) -> tuple[StoredModel | None, StoredModel | None]:
        path = self.directory / STATE
        if not path.is_file():
            return None, None
        state = json.loads(path.read_text())
        return tuple(self._read_model(state.get(key)) for key in ("current", "previous"))

    def _read_model(self, sha256: str | None) -> StoredModel | None:
        if sha256 is None:
            return None
        return StoredModel((self.directory / f"{sha256}.onnx").read_bytes(),
                           ModelCard.load(self.directory / f"{sha256}.card.json"))

    def _write(self) -> None:
        if self.directory is None:
            return
        keep = {m.card.sha256 for m in (self.current, self.previous) if m is not None}
        for model in (self.current, self.previous):
            if model is not None and not (self.directory / f"{model.card.sha256}.onnx").is_file():
                _write_atomic(self.directory / f"{model.card.sha256}.card.json",
                              model.card.model_dump_json(indent=2).encode())
                _write_atomic(self.directory / f"{model.card.sha256}.onnx", model.onnx_bytes)
        state = {key: m.card.sha256 if m else None for key, m in (("current", self.current),
                                                                  ("previous", self.previous))}
        _write_atomic(self.directory / STATE, json.dumps(state).encode())
        for path in self.directory.iterdir():
            if path.name != STATE and not path.name.startswith(".") and path.name.split(".")[0] not in keep:
                path.unlink()

    def seed(self, onnx_bytes: bytes, card: ModelCard) -> None:
        """Record the model the xApp started with as current, if the store holds none (in memory:
        a shipped or configured model is not copied to disk until something replaces it)."""
        if self.current is None:
            self.current = StoredModel(onnx_bytes, card)

    def commit(self, onnx_bytes: bytes, card: ModelCard) -> None:
        """A newly installed model becomes current; the current one becomes previous."""
        if self.current is not None and self.current.card.sha256 == card.sha256:
            return
        self.previous, self.current = self.current, StoredModel(onnx_bytes, card)
        self._write()

    def rollback(self) -> None:
        """Previous and current trade places (a second rollback undoes the first)."""
        self.current, self.previous = self.previous, self.current
        self._write()


def load_persisted_model(settings) -> OnnxPolicyModel | None:
    """The model last installed through the API and persisted in `settings.model_dir`, if any
    (it passed isolated validation when uploaded; it is validated again, in process, here)."""
    if settings.model_dir is None:
        return None
    try:
        current = ModelStore(settings.model_dir).current
    except (OSError, ValueError) as exc:
        raise ModelError(f"model directory {settings.model_dir} is unreadable: {exc}") from exc
    if current is None:
        return None
    log.info("serving the model persisted in %s (%s)", settings.model_dir, current.card.name)
    return validate_model(current.onnx_bytes, current.card, ModelLimits.from_settings(settings))
