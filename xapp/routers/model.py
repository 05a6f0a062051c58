"""The serving model's card; upload of a new model and rollback to the previous one (admin).

The bearer token is checked before the body is read (the route reads its own body, so nothing is
parsed for an unauthenticated caller; the size limit is enforced before that by `limits`).
Validation runs in a child process (`validate_model_isolated`); an accepted model is persisted
(`ModelStore`) with the one it replaced, which `POST /ric/v1/model/rollback` reinstates.
"""
from __future__ import annotations

import asyncio
import base64
import binascii

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ranpd.xapp.model import ModelError, OnnxPolicyModel
from ranpd.xapp.model_card import ModelCard
from ranpd.xapp.model_store import ModelStore
from ranpd.xapp.routers.deps import ADMIN_RESPONSES, error_responses, get_service, require_admin, unprocessable
from ranpd.xapp.service import XappService

router = APIRouter(prefix="/ric/v1/model", tags=["model"])
UNPROCESSABLE = 422   # (starlette renamed the constant; the code is what counts)


class ModelUpload(BaseModel):
    """A model to install: its card and the ONNX file (base64, at most `max_model_bytes` decoded)."""

    model_config = ConfigDict(extra="forbid")
    card: ModelCard
    onnx_base64: str = Field(description="the ONNX file, base64 (RFC 4648 §4)", pattern=r"^[A-Za-z0-9+/]*={0,2}$")


class Latency(BaseModel):
    """CPU time of one inference, measured when the model was validated."""

    batch: int = Field(description="UEs per inference")
    median_us: float
    p99_us: float


class ModelStatus(BaseModel):
    version: str = Field(description="name@sha256[:12]")
    card: ModelCard
    latency: Latency | None = Field(None, description="measured when the model was validated")
    persisted: bool = Field(description="kept across restarts (RANPD_XAPP_MODEL_DIR set)")
    previous: str | None = Field(None, description="version that a rollback would reinstate")


def get_store(request: Request) -> ModelStore:
    return request.app.state.model_store


def _status(model: OnnxPolicyModel, store: ModelStore) -> ModelStatus:
    latency = model.latency
    return ModelStatus(
        version=model.version, card=model.card, persisted=store.persistent,
        latency=Latency(batch=latency.batch, median_us=latency.median_us, p99_us=latency.p99_us) if latency else None,
        previous=store.previous.card.version if store.previous else None)


_BUSY = error_responses(_409="another model change is in progress, or nothing to roll back to")
_REJECTED = error_responses(_422="invalid body, or the model was rejected (the previous model keeps serving)",
                            _507="the model was installed but could not be persisted")
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ModelUpload"}}}}}


@router.get("", response_model=ModelStatus, responses=error_responses(_404="no model loaded"))
def get_model(service: XappService = Depends(get_service), store: ModelStore = Depends(get_store)) -> ModelStatus:
    """The card of the serving model, its measured latency, and the rollback target."""
    model = service.model
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no model loaded")
    return _status(model, store)


async def _change(request: Request, store: ModelStore, install) -> ModelStatus:
    lock: asyncio.Lock = request.app.state.model_lock
    if lock.locked():
        raise HTTPException(status.HTTP_409_CONFLICT, "another model change is in progress")
    async with lock:
        try:
            model = await install()
        except ModelError as exc:
            raise HTTPException(UNPROCESSABLE, f"model rejected: {exc}")
        return _status(model, store)


@router.put("", response_model=ModelStatus, dependencies=[Depends(require_admin)], openapi_extra=_UPLOAD_BODY,
            responses={**ADMIN_RESPONSES, **_BUSY, **_REJECTED,
                       **error_responses(_413="body or model larger than the limits")})
async def put_model(request: Request, service: XappService = Depends(get_service),
                    store: ModelStore = Depends(get_store)) -> ModelStatus:
    """Validate (onnx checker, shapes, observation-spec version, sha256, test inference, latency
    budget; in a child process under a timeout and a memory cap), then swap atomically and
    persist. On any failure the serving model is unchanged."""
    try:
        upload = ModelUpload.model_validate_json(await request.body(), strict=True)
    except ValidationError as exc:
        raise unprocessable(exc)
    try:
        onnx_bytes = base64.b64decode(upload.onnx_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(UNPROCESSABLE, [{"loc": ["body", "onnx_base64"], "msg": f"not base64: {exc}",
                                             "type": "value_error"}])
    limit = service.settings.max_model_bytes
    if len(onnx_bytes) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"model of {len(onnx_bytes)} bytes exceeds max_model_bytes ({limit})")

    async def install() -> OnnxPolicyModel:
        model = await service.hot_swap(onnx_bytes, upload.card)
        try:
            await asyncio.to_thread(store.commit, onnx_bytes, upload.card)
        except OSError as exc:
            raise HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE,
                                f"model installed but not persisted in {store.directory}: {exc}")
        return model
    return await _change(request, store, install)


@router.post("/rollback", response_model=ModelStatus, dependencies=[Depends(require_admin)],
             responses={**ADMIN_RESPONSES, **_BUSY, **_REJECTED})
async def rollback(request: Request, service: XappService = Depends(get_service),
                   store: ModelStore = Depends(get_store)) -> ModelStatus:
    """Reinstate the model the serving one replaced (validated again); they trade places, so a
    second rollback undoes the first."""
    previous = store.previous
    if previous is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no previous model to roll back to")

    async def install() -> OnnxPolicyModel:
        model = await service.hot_swap(previous.onnx_bytes, previous.card)
        await asyncio.to_thread(store.rollback)
        return model
    return await _change(request, store, install)
