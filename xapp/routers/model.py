"""The serving model's card, and upload of a new model (admin; validated before the swap)."""
from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from ranpd.xapp.model import ModelError
from ranpd.xapp.model_card import ModelCard
from ranpd.xapp.routers.deps import get_service, require_admin
from ranpd.xapp.service import XappService

router = APIRouter(prefix="/ric/v1/model", tags=["model"])
MAX_MODEL_BYTES = 16 << 20
UNPROCESSABLE = 422   # (starlette renamed the constant; the code is what counts)


class ModelUpload(BaseModel):
    card: ModelCard
    onnx_base64: str = Field(description="the ONNX file, base64", max_length=MAX_MODEL_BYTES * 4 // 3 + 4)


class ModelStatus(BaseModel):
    version: str
    card: ModelCard


@router.get("", response_model=ModelStatus, responses={404: {"description": "no model loaded"}})
def get_model(service: XappService = Depends(get_service)) -> ModelStatus:
    """The card of the serving model."""
    model = service.model
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no model loaded")
    return ModelStatus(version=model.version, card=model.card)


@router.put("", response_model=ModelStatus, dependencies=[Depends(require_admin)],
            responses={401: {"description": "missing or wrong bearer token"},
                       403: {"description": "uploads disabled"},
                       422: {"description": "model rejected; the previous model keeps serving"}})
async def put_model(upload: ModelUpload, service: XappService = Depends(get_service)) -> ModelStatus:
    """Validate (onnx checker, shapes, observation-spec version, sha256, test inference), then
    swap atomically. On any failure the serving model is unchanged."""
    try:
        onnx_bytes = base64.b64decode(upload.onnx_base64, validate=True)
    except binascii.Error as exc:
        raise HTTPException(UNPROCESSABLE, f"onnx_base64 is not base64: {exc}")
    try:
        model = await service.hot_swap(onnx_bytes, upload.card)
    except ModelError as exc:
        raise HTTPException(UNPROCESSABLE, f"model rejected: {exc}")
    return ModelStatus(version=model.version, card=model.card)
