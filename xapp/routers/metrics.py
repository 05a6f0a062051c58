"""Prometheus exposition of the xApp's metrics."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ranpd.xapp.routers.deps import get_service
from ranpd.xapp.service import XappService

router = APIRouter(prefix="/ric/v1", tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(service: XappService = Depends(get_service)) -> Response:
    """Per-stage decision latency histograms, decisions, fallbacks, errors by cause, model info."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
