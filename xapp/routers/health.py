"""Liveness and readiness at the O-RAN SC conventional paths."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel

from ranpd.xapp.routers.deps import get_service
from ranpd.xapp.service import XappService

router = APIRouter(prefix="/ric/v1/health", tags=["health"])


class Health(BaseModel):
    status: str
    reasons: list[str] = []


@router.get("/alive", response_model=Health)
def alive() -> Health:
    """The process answers."""
    return Health(status="alive")


@router.get("/ready", response_model=Health, responses={503: {"model": Health}})
def ready(response: Response, service: XappService = Depends(get_service)) -> Health:
    """Ready to decide: a model is loaded and the E2 server listens (503 with reasons if not)."""
    reasons = [reason for ok, reason in ((service.model is not None, "no model loaded"),
                                         (service.e2_listening, "E2 server not listening")) if not ok]
    if reasons:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="not ready", reasons=reasons)
    return Health(status="ready")
